/*
 * mime_test.c — unit tests of the MIME builder (src/mime.c), TAP output.
 *
 * Besides exact expectations on small messages, every built message is
 * checked for the invariants the builder promises: CRLF line ends only,
 * lines of at most 998 octets, encoded-words of at most 75 characters that
 * decode back to whole UTF-8 sequences, quoted-printable lines of at most 76,
 * and bodies and headers that decode back to the input.
 */
#include "mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	test_no = 0;
static int	failures = 0;

static void
ok(int cond, const char *name)
{
	test_no++;
	if (!cond)
		failures++;
	printf("%sok %d - %s\n", cond ? "" : "not ", test_no, name);
}

/* A fresh message with the usual fields. */
static MimeMessage
BaseMessage(void)
{
	MimeMessage m;

	memset(&m, 0, sizeof(m));
	m.from_name = MimeCString("Shop");
	m.from_addr = MimeCString("news@shop.example");
	m.to_name = MimeCString("Ann Lee");
	m.to_addr = MimeCString("ann@example.com");
	m.subject = MimeCString("Your order");
	m.text = MimeCString("Hello Ann\n");
	m.html = MimeCString("<p>Hello Ann</p>\n");
	m.message_id = MimeCString("0123abcd@shop.example");
	m.date = 1795392000LL;
	return m;
}

/* Build; returns the message (malloc'd) or NULL with err set. */
static char *
Build(const MimeMessage *m, CoreError *err)
{
	CoreBuf		b;

	CoreErrorClear(err);
	CoreBufInit(&b, &core_malloc_allocator, 256);
	if (!MimeBuild(m, &b, err))
	{
		CoreBufFree(&b);
		return NULL;
	}
	return CoreBufDetach(&b, NULL);
}

/* The header block of a message (up to the blank line), unfolded per header. */
static char *
HeaderValue(const char *msg, const char *name)
{
	size_t		nlen = strlen(name);
	const char *p = msg;
	char	   *out;
	size_t		o = 0;

	while (*p && !(p[0] == '\r' && p[1] == '\n'))
	{
		if (strncmp(p, name, nlen) == 0 && p[nlen] == ':')
		{
			const char *v = p + nlen + 1;

			out = malloc(strlen(v) + 1);
			for (;;)
			{
				if (v[0] == '\r' && v[1] == '\n')
				{
					if (v[2] == ' ' || v[2] == '\t')
					{
						v += 2;
						continue;
					}
					break;
				}
				out[o++] = *v++;
			}
			out[o] = '\0';
			return out;
		}
		p = strstr(p, "\r\n") + 2;
	}
	return NULL;
}

static int
B64Value(char c)
{
	const char *s = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = strchr(s, c);

	return (c && p) ? (int) (p - s) : -1;
}

/* Decode "n" base64 chars into out; returns bytes written. */
static size_t
B64Decode(const char *in, size_t n, unsigned char *out)
{
	size_t		i;
	size_t		o = 0;
	unsigned int acc = 0;
	int			bits = 0;

	for (i = 0; i < n; i++)
	{
		int			v = B64Value(in[i]);

		if (v < 0)
			continue;
		acc = (acc << 6) | (unsigned) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[o++] = (unsigned char) (acc >> bits);
		}
	}
	return o;
}

/* Is buf whole UTF-8 sequences only (what we put in: valid input)? */
static int
ValidUtf8(const unsigned char *s, size_t n)
{
	size_t		i = 0;

	while (i < n)
	{
		size_t		l = s[i] < 0x80 ? 1 : (s[i] & 0xE0) == 0xC0 ? 2 : (s[i] & 0xF0) == 0xE0 ? 3 : (s[i] & 0xF8) == 0xF0 ? 4 : 0;
		size_t		k;

		if (l == 0 || i + l > n)
			return 0;
		for (k = 1; k < l; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
		i += l;
	}
	return 1;
}

/*
 * Decode an unfolded unstructured value: encoded-words (whitespace between
 * adjacent ones dropped) and plain text.  Checks each word's length and that
 * it holds whole UTF-8 sequences when utf8 is set.
 */
static char *
DecodeUnstructured(const char *v, int utf8, int *words_ok)
{
	char	   *out = malloc(strlen(v) * 2 + 1);
	size_t		o = 0;
	const char *p = v;
	int			prev_encoded = 0;

	*words_ok = 1;
	while (*p == ' ')
		p++;
	while (*p)
	{
		if (strncmp(p, "=?UTF-8?B?", 10) == 0)
		{
			const char *e = strstr(p + 10, "?=");
			size_t		wlen = (size_t) (e + 2 - p);
			size_t		n;

			if (wlen > MIME_MAX_ENCODED_WORD)
				*words_ok = 0;
			/* drop the space between adjacent encoded-words */
			if (prev_encoded && o > 0 && out[o - 1] == ' ')
				o--;
			n = B64Decode(p + 10, (size_t) (e - p - 10), (unsigned char *) out + o);
			if (utf8 && !ValidUtf8((unsigned char *) out + o, n))
				*words_ok = 0;
			o += n;
			p = e + 2;
			prev_encoded = 1;
		}
		else
		{
			if (*p != ' ')
				prev_encoded = 0;
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	return out;
}

/* Every line ends with CRLF, no bare CR or LF, no line over max. */
static int
LinesOk(const char *msg, size_t max)
{
	const char *p = msg;

	while (*p)
	{
		const char *e = strstr(p, "\r\n");

		if (e == NULL)
			return 0;
		if ((size_t) (e - p) > max)
			return 0;
		if (memchr(p, '\r', (size_t) (e - p)) || memchr(p, '\n', (size_t) (e - p)))
			return 0;
		p = e + 2;
	}
	return 1;
}

/* Header lines holding an encoded-word are at most 76 characters. */
static int
EncodedLinesOk(const char *msg)
{
	const char *p = msg;

	while (*p && !(p[0] == '\r' && p[1] == '\n'))
	{
		const char *e = strstr(p, "\r\n");
		size_t		len = (size_t) (e - p);
		char	   *line = strndup(p, len);

		if (strstr(line, "=?UTF-8?B?") && len > 76)
		{
			free(line);
			return 0;
		}
		free(line);
		p = e + 2;
	}
	return 1;
}

static int
HexValue(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode a quoted-printable body up to the end marker (NULL: end of text);
 * lines_ok is cleared when a line is over 76 or an escape is broken.
 */
static char *
DecodeQP(const char *body, const char *end, int *lines_ok)
{
	size_t		n = end ? (size_t) (end - body) : strlen(body);
	char	   *out = malloc(n + 1);
	size_t		o = 0;
	size_t		i = 0;
	size_t		col = 0;

	*lines_ok = 1;
	while (i < n)
	{
		if (body[i] == '\r' && i + 1 < n && body[i + 1] == '\n')
		{
			out[o++] = '\n';
			i += 2;
			col = 0;
			continue;
		}
		if (body[i] == '=')
		{
			if (i + 2 < n && body[i + 1] == '\r' && body[i + 2] == '\n')
			{
				if (col + 1 > 76)
					*lines_ok = 0;
				i += 3;
				col = 0;
				continue;
			}
			if (i + 2 >= n || HexValue(body[i + 1]) < 0 || HexValue(body[i + 2]) < 0)
			{
				*lines_ok = 0;
				i++;
				continue;
			}
			out[o++] = (char) (HexValue(body[i + 1]) * 16 + HexValue(body[i + 2]));
			i += 3;
			col += 3;
		}
		else
		{
			if ((unsigned char) body[i] > 126 || body[i] == '\0')
				*lines_ok = 0;
			out[o++] = body[i++];
			col++;
		}
		if (col > 76)
			*lines_ok = 0;
	}
	out[o] = '\0';
	return out;
}

/* The input with CRLF and CR turned into LF (what a QP round trip gives back). */
static char *
NormalizeBreaks(const char *s)
{
	char	   *out = malloc(strlen(s) + 1);
	size_t		o = 0;

	for (; *s; s++)
	{
		if (*s == '\r')
		{
			out[o++] = '\n';
			if (s[1] == '\n')
				s++;
		}
		else
			out[o++] = *s;
	}
	out[o] = '\0';
	return out;
}

static void
TestBasic(void)
{
	MimeMessage m = BaseMessage();
	CoreError	err;
	char	   *msg = Build(&m, &err);
	char	   *v;

	ok(msg != NULL, "a plain message builds");
	if (!msg)
		return;
	{
		static const char head[] =
			"From: Shop <news@shop.example>\r\nTo: Ann Lee <ann@example.com>\r\n"
			"Subject: Your order\r\nDate: Mon, 23 Nov 2026 00:00:00 +0000\r\n"
			"Message-ID: <0123abcd@shop.example>\r\nMIME-Version: 1.0\r\n"
			"Content-Type: multipart/alternative;\r\n boundary=\"=_segment_";

		ok(strncmp(msg, head, strlen(head)) == 0, "headers come out in order, exactly");
	}
	ok(strstr(msg, "List-Unsubscribe") == NULL, "no List-Unsubscribe without targets");
	ok(strstr(msg, "Reply-To") == NULL, "no Reply-To unless given");
	ok(strstr(msg, "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHello Ann\r\n\r\n--=_segment_") != NULL,
	   "the text part comes first, in quoted-printable");
	ok(strstr(msg, "Content-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>Hello Ann</p>\r\n\r\n--=_segment_") != NULL,
	   "the html part follows");
	v = HeaderValue(msg, "Content-Type");
	ok(v && strlen(msg) > 4 && strcmp(msg + strlen(msg) - 4, "--\r\n") == 0,
	   "the multipart ends with the closing delimiter");
	free(v);
	ok(LinesOk(msg, MIME_MAX_LINE), "CRLF line ends, lines within 998");
	{
		char	   *again = Build(&m, &err);

		ok(again && strcmp(again, msg) == 0, "building twice gives the same bytes");
		free(again);
	}
	free(msg);
}

static void
TestDates(void)
{
	static const struct
	{
		long long	t;
		const char *s;
	}			cases[] = {
		{0, "Thu, 01 Jan 1970 00:00:00 +0000"},
		{951782400LL, "Tue, 29 Feb 2000 00:00:00 +0000"},
		{4102444799LL, "Thu, 31 Dec 2099 23:59:59 +0000"},
		{-86400LL, "Wed, 31 Dec 1969 00:00:00 +0000"},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		MimeMessage m = BaseMessage();
		CoreError	err;
		char	   *msg;
		char	   *v;
		char		name[80];

		m.date = cases[i].t;
		msg = Build(&m, &err);
		v = msg ? HeaderValue(msg, "Date") : NULL;
		snprintf(name, sizeof(name), "Date for %lld is %s", cases[i].t, cases[i].s);
		ok(v && strcmp(v + 1, cases[i].s) == 0, name);
		free(v);
		free(msg);
	}
}

/* Check a header value decodes to want, with words and lines within limits. */
static void
CheckEncodedHeader(const char *msg, const char *header, const char *want,
				   const char *name)
{
	char	   *v = HeaderValue(msg, header);
	int			words_ok = 0;
	char	   *dec = v ? DecodeUnstructured(v, 1, &words_ok) : NULL;
	char		label[200];

	snprintf(label, sizeof(label), "%s: decodes back exactly", name);
	ok(dec && strcmp(dec, want) == 0, label);
	if (dec && strcmp(dec, want) != 0)
		printf("# got  [%s]\n# want [%s]\n", dec, want);
	snprintf(label, sizeof(label), "%s: encoded-words within 75, whole UTF-8 sequences", name);
	ok(words_ok, label);
	snprintf(label, sizeof(label), "%s: lines with encoded-words within 76", name);
	ok(EncodedLinesOk(msg), label);
	free(v);
	free(dec);
}

static void
TestEncodedWords(void)
{
	MimeMessage m = BaseMessage();
	CoreError	err;
	char	   *msg;
	char	   *v;
	char		longsub[2048];
	int			i;

	m.subject = MimeCString("Grüße aus München — 20 % Rabatt");
	m.from_name = MimeCString("Jürgen Müller");
	msg = Build(&m, &err);
	ok(msg != NULL, "a non-ASCII subject and name build");
	v = msg ? HeaderValue(msg, "Subject") : NULL;
	ok(v && strncmp(v, " =?UTF-8?B?", 11) == 0, "a non-ASCII subject is encoded");
	free(v);
	CheckEncodedHeader(msg, "Subject", "Grüße aus München — 20 % Rabatt", "short UTF-8 subject");
	v = msg ? HeaderValue(msg, "From") : NULL;
	ok(v && strstr(v, "=?UTF-8?B?") && strstr(v, " <news@shop.example>"),
	   "a non-ASCII display name is encoded, the address stays plain");
	free(v);
	free(msg);

	/* A long subject of 2- 3- and 4-byte sequences: many words, none split. */
	longsub[0] = '\0';
	for (i = 0; i < 40; i++)
		strcat(longsub, i % 3 == 0 ? "é" : i % 3 == 1 ? "€ " : "😀");
	m.subject = MimeCString(longsub);
	msg = Build(&m, &err);
	CheckEncodedHeader(msg, "Subject", longsub, "long mixed UTF-8 subject");
	ok(msg && LinesOk(msg, MIME_MAX_LINE), "long UTF-8 subject: lines within 998");
	free(msg);

	/* ASCII that looks like an encoded-word is encoded so it reads literally. */
	m.subject = MimeCString("=?UTF-8?B?SGk=?=");
	msg = Build(&m, &err);
	CheckEncodedHeader(msg, "Subject", "=?UTF-8?B?SGk=?=", "subject that looks encoded");
	free(msg);

	/* Double spaces survive (encoded), as do leading ones. */
	m.subject = MimeCString("  two  spaces ");
	msg = Build(&m, &err);
	CheckEncodedHeader(msg, "Subject", "  two  spaces ", "subject with odd spacing");
	free(msg);

	/* A very long ASCII word (no spaces) is encoded rather than overflowing 998. */
	memset(longsub, 'x', 1500);
	longsub[1500] = '\0';
	m.subject = MimeCString(longsub);
	msg = Build(&m, &err);
	CheckEncodedHeader(msg, "Subject", longsub, "1500-character word");
	ok(msg && LinesOk(msg, MIME_MAX_LINE), "1500-character word: lines within 998");
	free(msg);

	/* Invalid UTF-8 goes through byte for byte. */
	m.subject = MimeCString("bad \xC3 byte \xFF");
	msg = Build(&m, &err);
	v = msg ? HeaderValue(msg, "Subject") : NULL;
	{
		int			words_ok;
		char	   *dec = v ? DecodeUnstructured(v, 0, &words_ok) : NULL;

		ok(dec && strcmp(dec, "bad \xC3 byte \xFF") == 0 && words_ok,
		   "invalid UTF-8 in a subject is kept byte for byte");
		free(dec);
	}
	free(v);
	free(msg);
}

static void
TestFolding(void)
{
	MimeMessage m = BaseMessage();
	CoreError	err;
	char	   *msg;
	char	   *v;
	char		sub[1200];
	int			i;
	const char *p;
	int			maxline = 0;

	sub[0] = '\0';
	for (i = 0; i < 60; i++)
		strcat(sub, i ? " word" : "word");
	m.subject = MimeCString(sub);
	msg = Build(&m, &err);
	v = msg ? HeaderValue(msg, "Subject") : NULL;
	ok(v && strcmp(v + 1, sub) == 0, "a long ASCII subject unfolds back exactly");
	ok(v && strstr(msg, "\r\n word") != NULL, "a long ASCII subject is folded");
	for (p = msg; p && *p && !(p[0] == '\r' && p[1] == '\n');)
	{
		const char *e = strstr(p, "\r\n");

		if (e - p > maxline)
			maxline = (int) (e - p);
		p = e + 2;
	}
	ok(maxline <= 78, "folded header lines stay within 78");
	free(v);
	free(msg);

	/* Display names with specials are quoted. */
	m = BaseMessage();
	m.to_name = MimeCString("Lee, Ann \"The Boss\"");
	msg = Build(&m, &err);
	v = msg ? HeaderValue(msg, "To") : NULL;
	ok(v && strcmp(v, " \"Lee, Ann \\\"The Boss\\\"\" <ann@example.com>") == 0,
	   "a display name with specials is a quoted-string");
	free(v);
	free(msg);

	m.to_name = MimeCString(NULL);
	msg = Build(&m, &err);
	v = msg ? HeaderValue(msg, "To") : NULL;
	ok(v && strcmp(v, " ann@example.com") == 0, "no display name: the bare address");
	free(v);
	free(msg);
}

static void
TestQuotedPrintable(void)
{
	MimeMessage m = BaseMessage();
	CoreError	err;
	char	   *msg;
	char		text[4000];
	char	   *start;
	char	   *end;
	char	   *dec;
	char	   *want;
	int			lines_ok = 0;
	int			i;

	/* A mix of long lines, '=', trailing blanks, UTF-8, CR, LF and CRLF. */
	text[0] = '\0';
	for (i = 0; i < 30; i++)
		strcat(text, "Grüße=ü ");
	strcat(text, "trailing space \nline two\t\r\nline=3\rfour ");
	for (i = 0; i < 200; i++)
		strcat(text, "x");
	strcat(text, "=");
	m.text = MimeCString(text);
	m.html = MimeCString(NULL);
	msg = Build(&m, &err);
	ok(msg != NULL, "a text-only message builds");
	if (!msg)
		return;
	ok(strstr(msg, "multipart") == NULL, "text only: a single part, no multipart");
	start = strstr(msg, "quoted-printable\r\n\r\n");
	start = start ? start + 20 : NULL;
	end = start ? msg + strlen(msg) - 2 : NULL;
	dec = start ? DecodeQP(start, end, &lines_ok) : NULL;
	want = NormalizeBreaks(text);
	ok(dec && strcmp(dec, want) == 0, "quoted-printable decodes back to the text");
	ok(lines_ok, "quoted-printable lines within 76, escapes never broken");
	ok(strstr(msg, "space=20\r\n") != NULL, "a space before a line break is encoded");
	ok(strstr(msg, "two=09\r\n") != NULL, "a tab before a line break is encoded");
	ok(strstr(msg, "=3D") != NULL, "'=' is encoded");
	ok(strstr(msg, "=C3=BC") != NULL, "UTF-8 bytes are escaped");
	free(dec);
	free(want);
	free(msg);

	/* html only */
	m.text = MimeCString(NULL);
	m.html = MimeCString("<b>hi</b>");
	msg = Build(&m, &err);
	ok(msg && strstr(msg, "Content-Type: text/html; charset=UTF-8") && !strstr(msg, "multipart")
	   && strcmp(msg + strlen(msg) - 11, "<b>hi</b>\r\n") == 0,
	   "html only: a single html part ending in CRLF");
	free(msg);
}

static void
TestListUnsubscribe(void)
{
	MimeMessage m = BaseMessage();
	CoreError	err;
	char	   *msg;
	char	   *v;

	m.unsubscribe_mailto = MimeCString("mailto:unsub@shop.example?subject=unsubscribe");
	m.unsubscribe_url = MimeCString("https://shop.example/u/abc123");
	msg = Build(&m, &err);
	v = msg ? HeaderValue(msg, "List-Unsubscribe") : NULL;
	ok(v && strcmp(v, " <mailto:unsub@shop.example?subject=unsubscribe>, <https://shop.example/u/abc123>") == 0,
	   "List-Unsubscribe lists mailto and https");
	ok(msg && strstr(msg, "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n") != NULL,
	   "List-Unsubscribe-Post one-click goes with the https target");
	free(v);
	free(msg);

	m.unsubscribe_url = MimeCString(NULL);
	msg = Build(&m, &err);
	ok(msg && strstr(msg, "List-Unsubscribe: <mailto:") && !strstr(msg, "List-Unsubscribe-Post"),
	   "mailto only: no one-click header");
	free(msg);

	m.unsubscribe_url = MimeCString("http://shop.example/u");
	msg = Build(&m, &err);
	ok(msg == NULL && err.code == CORE_ERR_INVALID, "a non-https one-click URL is refused");
	m.unsubscribe_url = MimeCString("https://shop.example/u x");
	msg = Build(&m, &err);
	ok(msg == NULL && err.code == CORE_ERR_INVALID, "a URL with a space is refused");
	m.unsubscribe_url = MimeCString("https://shop.example/u>, <https://evil.example");
	msg = Build(&m, &err);
	ok(msg == NULL && err.code == CORE_ERR_INVALID, "a URL with '>' is refused");
}

static void
TestCustomHeaders(void)
{
	MimeMessage m = BaseMessage();
	MimeHeader	hs[2];
	CoreError	err;
	char	   *msg;
	char	   *v;

	hs[0].name = MimeCString("X-Campaign");
	hs[0].value = MimeCString("spring-sale");
	hs[1].name = MimeCString("X-Note");
	hs[1].value = MimeCString("Привет");
	m.headers = hs;
	m.nheaders = 2;
	m.reply_to = MimeCString("\"Support, Shop\" <help@shop.example>");
	msg = Build(&m, &err);
	v = msg ? HeaderValue(msg, "X-Campaign") : NULL;
	ok(v && strcmp(v, " spring-sale") == 0, "a custom header is written");
	free(v);
	CheckEncodedHeader(msg, "X-Note", "Привет", "non-ASCII custom header");
	v = msg ? HeaderValue(msg, "Reply-To") : NULL;
	ok(v && strcmp(v, " \"Support, Shop\" <help@shop.example>") == 0, "Reply-To is written");
	free(v);
	free(msg);

	hs[0].name = MimeCString("Subject");
	msg = Build(&m, &err);
	ok(msg == NULL && err.code == CORE_ERR_INVALID && strstr(err.message, "set by segment"),
	   "a custom header may not replace Subject");
	hs[0].name = MimeCString("content-TYPE");
	msg = Build(&m, &err);
	ok(msg == NULL && err.code == CORE_ERR_INVALID, "nor Content-Type, in any case");
	hs[0].name = MimeCString("X Bad");
	msg = Build(&m, &err);
	ok(msg == NULL && err.code == CORE_ERR_INVALID, "a header name with a space is refused");
	hs[0].name = MimeCString("X-Bad:");
	msg = Build(&m, &err);
	ok(msg == NULL && err.code == CORE_ERR_INVALID, "a header name with ':' is refused");
}

static void
TestInjection(void)
{
	static const char *const bad[] = {"a\r\nBcc: x@evil.example", "a\nb", "a\rb"};
	size_t		i;
	MimeText	nul = {"a\0b", 3};

	for (i = 0; i < 3; i++)
	{
		MimeMessage m = BaseMessage();
		MimeHeader	h;
		CoreError	err;
		char	   *msg;
		char		name[100];

		m.subject = MimeCString(bad[i]);
		msg = Build(&m, &err);
		snprintf(name, sizeof(name), "line break %zu in Subject is refused", i);
		ok(msg == NULL && err.code == CORE_ERR_INVALID && strstr(err.message, "Subject"), name);

		m = BaseMessage();
		m.from_name = MimeCString(bad[i]);
		msg = Build(&m, &err);
		snprintf(name, sizeof(name), "line break %zu in the From name is refused", i);
		ok(msg == NULL && err.code == CORE_ERR_INVALID, name);

		m = BaseMessage();
		h.name = MimeCString("X-Tag");
		h.value = MimeCString(bad[i]);
		m.headers = &h;
		m.nheaders = 1;
		msg = Build(&m, &err);
		snprintf(name, sizeof(name), "line break %zu in a custom header is refused", i);
		ok(msg == NULL && err.code == CORE_ERR_INVALID && strstr(err.message, "X-Tag"), name);

		m = BaseMessage();
		m.reply_to = MimeCString(bad[i]);
		msg = Build(&m, &err);
		snprintf(name, sizeof(name), "line break %zu in Reply-To is refused", i);
		ok(msg == NULL && err.code == CORE_ERR_INVALID, name);
	}
	{
		MimeMessage m = BaseMessage();
		CoreError	err;
		char	   *msg;

		m.subject = nul;
		msg = Build(&m, &err);
		ok(msg == NULL && err.code == CORE_ERR_INVALID && strstr(err.message, "NUL"),
		   "NUL in Subject is refused");
		m = BaseMessage();
		m.to_addr = MimeCString("ann@example.com\r\nRCPT TO:<x@evil.example>");
		msg = Build(&m, &err);
		ok(msg == NULL && err.code == CORE_ERR_INVALID, "a line break in the To address is refused");
	}
}

static void
TestAddresses(void)
{
	static const char *const good[] = {"a@b", "first.last+tag@sub.example.co.uk", "o'neil@x.example"};
	static const char *const badaddr[] = {"", "noat", "@x", "x@", "a@b@c", "a b@c", "a<b@c", "jürgen@x.example", "a,b@c",
		"a@x.example/path", "a@.x", "a@x..example", "a@x.", "a@x_y.example", "a@x=?.example"};
	size_t		i;
	CoreError	err;
	CoreBuf		name;
	MimeText	addr;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
	{
		char		label[100];

		snprintf(label, sizeof(label), "address %s is valid", good[i]);
		ok(MimeValidAddress(MimeCString(good[i]), &err, "To"), label);
	}
	for (i = 0; i < sizeof(badaddr) / sizeof(badaddr[0]); i++)
	{
		char		label[100];

		CoreErrorClear(&err);
		snprintf(label, sizeof(label), "address \"%s\" is refused", badaddr[i]);
		ok(!MimeValidAddress(MimeCString(badaddr[i]), &err, "To") && err.code == CORE_ERR_INVALID, label);
	}

	CoreBufInit(&name, &core_malloc_allocator, 16);
	ok(MimeParseMailbox(MimeCString("Shop <news@shop.example>"), &name, &addr, &err)
	   && strcmp(name.data, "Shop") == 0 && addr.len == 17 && strncmp(addr.data, "news@shop.example", 17) == 0,
	   "mailbox with a display name");
	ok(MimeParseMailbox(MimeCString("  news@shop.example "), &name, &addr, &err)
	   && name.len == 0 && addr.len == 17, "bare mailbox");
	ok(MimeParseMailbox(MimeCString("\"Doe, J <x>\" <j@x.example>"), &name, &addr, &err)
	   && strcmp(name.data, "Doe, J <x>") == 0 && addr.len == 11, "quoted display name with '<'");
	ok(!MimeParseMailbox(MimeCString("Shop <news@shop.example"), &name, &addr, &err),
	   "a mailbox without '>' is refused");
	ok(!MimeParseMailbox(MimeCString("\"Shop <news@shop.example>"), &name, &addr, &err),
	   "an unterminated quote is refused");
	ok(!MimeParseMailbox(MimeCString("Shop <>"), &name, &addr, &err), "an empty address is refused");
	CoreBufFree(&name);
	{
		MimeText	d = MimeAddressDomain(MimeCString("news@shop.example"));

		ok(d.len == 12 && strncmp(d.data, "shop.example", 12) == 0, "domain of an address");
	}
}

/* Random inputs of every byte: built messages keep every invariant. */
static void
TestRandom(void)
{
	unsigned int seed = 12345;
	int			round;
	int			all_ok = 1;
	int			built = 0;

	for (round = 0; round < 3000; round++)
	{
		char		sub[600];
		char		body[3000];
		char		name[100];
		size_t		sl;
		size_t		bl;
		size_t		nl;
		size_t		i;
		MimeMessage m = BaseMessage();
		CoreError	err;
		char	   *msg;

		seed = seed * 1103515245 + 12345;
		sl = (seed >> 16) % sizeof(sub);
		nl = (seed >> 8) % sizeof(name);
		bl = (seed >> 4) % sizeof(body);
		for (i = 0; i < sl; i++)
		{
			seed = seed * 1103515245 + 12345;
			sub[i] = (char) ((seed >> 16) % 3 == 0 ? 0x80 + (seed >> 8) % 0x70 : 32 + (seed >> 8) % 95);
		}
		for (i = 0; i < nl; i++)
		{
			seed = seed * 1103515245 + 12345;
			name[i] = (char) (32 + (seed >> 8) % 200);
		}
		for (i = 0; i < bl; i++)
		{
			seed = seed * 1103515245 + 12345;
			body[i] = (char) ((seed >> 16) % 256);
		}
		m.subject.data = sub;
		m.subject.len = sl;
		m.to_name.data = name;
		m.to_name.len = nl;
		m.text.data = body;
		m.text.len = bl;
		msg = Build(&m, &err);
		if (msg == NULL)
			continue;
		built++;
		if (!LinesOk(msg, MIME_MAX_LINE) || !EncodedLinesOk(msg))
			all_ok = 0;
		{
			char	   *v = HeaderValue(msg, "Subject");
			int			words_ok;
			char	   *dec = v ? DecodeUnstructured(v, 0, &words_ok) : NULL;

			if (!dec || strlen(dec) != sl || memcmp(dec, sub, sl) != 0 || !words_ok)
				all_ok = 0;
			free(v);
			free(dec);
		}
		free(msg);
	}
	ok(built > 1000, "random inputs without CR/LF/NUL build");
	ok(all_ok, "random inputs: lines within limits, subjects decode back");
}

int
main(void)
{
	TestBasic();
	TestDates();
	TestEncodedWords();
	TestFolding();
	TestQuotedPrintable();
	TestListUnsubscribe();
	TestCustomHeaders();
	TestInjection();
	TestAddresses();
	TestRandom();
	printf("1..%d\n", test_no);
	return failures ? 1 : 0;
}
