/*
 * mime_fuzz.c — libFuzzer harness for the MIME builder.  The input is cut
 * into fields (subject, names, bodies, a custom header, Reply-To, unsubscribe
 * URL) at 0x00 0x01 separators; whatever MimeBuild accepts must keep the
 * builder's promises: CRLF line ends only, no line over 998 octets, header
 * lines with encoded-words (" =?UTF-8?B?...?=": header names hold no space) within
 * 76, and a refusal must be
 * CORE_ERR_INVALID with a message.
 */
#define _GNU_SOURCE
#include "mime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NFIELDS 9

/*
 * Does this header line hold an encoded-word the builder wrote: " =?UTF-8?B?"
 * up to the next blank, ending in "?="?  Addresses may start with "=?" (atext),
 * but their domain cannot end in "?=".
 */
static int
HasEncodedWord(const char *line, size_t len)
{
	const char *p = line;
	const char *end = line + len;

	while ((p = memmem(p, (size_t) (end - p), " =?UTF-8?B?", 11)) != NULL)
	{
		const char *q = p + 1;

		while (q < end && *q != ' ' && *q != '\t')
			q++;
		if (q - p >= 13 && q[-2] == '?' && q[-1] == '=')
			return 1;
		p = q;
	}
	return 0;
}

static void
CheckMessage(const char *msg, size_t len)
{
	size_t		i;
	size_t		start = 0;
	int			in_headers = 1;

	for (i = 0; i < len; i++)
	{
		if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
			abort();			/* bare LF */
		if (msg[i] == '\r' && (i + 1 >= len || msg[i + 1] != '\n'))
			abort();			/* bare CR */
		if (msg[i] == '\n')
		{
			size_t		linelen = i - 1 - start;

			if (linelen > MIME_MAX_LINE)
				abort();
			if (in_headers)
			{
				if (linelen == 0)
					in_headers = 0;
				else if (linelen > 76 && HasEncodedWord(msg + start, linelen))
					abort();
			}
			start = i + 1;
		}
	}
	if (start != len)
		abort();				/* last line without CRLF */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MimeText	f[NFIELDS];
	MimeHeader	h;
	MimeMessage m;
	CoreBuf		out;
	CoreError	err;
	size_t		i;
	size_t		start = 0;
	int			n = 0;

	memset(f, 0, sizeof(f));
	for (i = 0; i + 1 < size && n < NFIELDS - 1; i++)
	{
		if (data[i] == 0 && data[i + 1] == 1)
		{
			f[n].data = (const char *) data + start;
			f[n].len = i - start;
			n++;
			start = i + 2;
			i++;
		}
	}
	f[n].data = (const char *) data + start;
	f[n].len = size - start;

	memset(&m, 0, sizeof(m));
	m.from_addr = MimeCString("news@shop.example");
	m.to_addr = MimeCString("ann@example.com");
	m.message_id = MimeCString("abc@shop.example");
	m.date = 1795392000LL;
	m.subject = f[0];
	m.from_name = f[1];
	m.to_name = f[2];
	m.text = f[3];
	m.html = f[4];
	if (f[5].data && f[6].data)
	{
		h.name = f[5];
		h.value = f[6];
		m.headers = &h;
		m.nheaders = 1;
	}
	if (f[7].data)
		m.reply_to = f[7];
	if (f[8].data)
		m.unsubscribe_url = f[8];

	CoreErrorClear(&err);
	CoreBufInit(&out, &core_malloc_allocator, 256);
	if (MimeBuild(&m, &out, &err))
		CheckMessage(out.data, out.len);
	else if (err.code != CORE_ERR_INVALID || err.message[0] == '\0')
		abort();
	CoreBufFree(&out);
	return 0;
}
