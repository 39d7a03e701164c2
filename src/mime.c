/*
 * mime.c — the MIME message builder (see mime.h).  No PostgreSQL headers.
 *
 * Header values are written plain when they are printable ASCII words
 * separated by single spaces, and otherwise as a run of RFC 2047 "B"
 * encoded-words (each at most 75 characters, on lines of at most 76, never
 * splitting a UTF-8 sequence), which keeps every byte of the value, spaces
 * included.  Bodies are quoted-printable, so the "=_" in the multipart
 * boundary can never occur in an encoded part.
 */
#include "mime.h"

#include <string.h>

/*
 * Header line length we fold at: within RFC 5322's 78, and within RFC 2047's
 * 76 for lines that hold encoded-words.
 */
#define FOLD_AT 76
/* Longest plain word or quoted name we write unencoded. */
#define MAX_PLAIN_WORD 900
/* Longest header field name we accept. */
#define MAX_HEADER_NAME 76

static const char b64chars[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hexchars[] = "0123456789ABCDEF";

/* Header names the builder writes itself; callers may not add them. */
static const char *const reserved_headers[] = {
	"from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id",
	"mime-version", "content-type", "content-transfer-encoding",
	"list-unsubscribe", "list-unsubscribe-post", "sender", "return-path", NULL
};

/* Header writer: the output buffer and the column of the current line. */
typedef struct HeaderOut
{
	CoreBuf    *out;
	size_t		col;
} HeaderOut;

MimeText
MimeCString(const char *s)
{
	MimeText	t;

	t.data = s;
	t.len = s ? strlen(s) : 0;
	return t;
}

static bool
Present(MimeText t)
{
	return t.data != NULL;
}

/* Record an out-of-memory failure of the buffer. */
static bool
Oom(CoreError *err)
{
	return CoreErrorSet(err, CORE_ERR_OOM, 0, "out of memory while building the message");
}

/* Refuse CR, LF and NUL in a header value: they would let it inject headers. */
static bool
CheckHeaderValue(MimeText v, const char *what, CoreError *err)
{
	size_t		i;

	for (i = 0; i < v.len; i++)
	{
		char		c = v.data[i];

		if (c == '\r' || c == '\n' || c == '\0')
			return CoreErrorSet(err, CORE_ERR_INVALID, (int) i + 1,
								"%s contains a %s at byte %zu: header values must not contain CR, LF or NUL",
								what,
								c == '\r' ? "carriage return" : c == '\n' ? "line feed" : "NUL",
								i + 1);
	}
	return true;
}

static int
LowerAscii(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static bool
EqualsIgnoreCase(MimeText t, const char *s)
{
	size_t		i;

	if (t.len != strlen(s))
		return false;
	for (i = 0; i < t.len; i++)
		if (LowerAscii((unsigned char) t.data[i]) != LowerAscii((unsigned char) s[i]))
			return false;
	return true;
}

static bool
StartsWithIgnoreCase(MimeText t, const char *prefix)
{
	size_t		n = strlen(prefix);
	size_t		i;

	if (t.len < n)
		return false;
	for (i = 0; i < n; i++)
		if (LowerAscii((unsigned char) t.data[i]) != LowerAscii((unsigned char) prefix[i]))
			return false;
	return true;
}

/* Characters RFC 5322 does not allow unquoted in an address we write. */
static bool
AddressSpecial(unsigned char c)
{
	return c <= 32 || c >= 127 || strchr("<>()[]\\,;:\"", c) != NULL;
}

bool
MimeValidAddress(MimeText addr, CoreError *err, const char *what)
{
	size_t		i;
	size_t		at = 0;
	int			nat = 0;

	if (!Present(addr) || addr.len == 0)
		return CoreErrorSet(err, CORE_ERR_INVALID, 0, "%s address is empty", what);
	if (!CheckHeaderValue(addr, what, err))
		return false;
	if (addr.len > 254)
		return CoreErrorSet(err, CORE_ERR_INVALID, 0,
							"%s address is longer than 254 characters", what);
	for (i = 0; i < addr.len; i++)
	{
		unsigned char c = (unsigned char) addr.data[i];

		if (c == '@')
		{
			nat++;
			at = i;
		}
		else if (c >= 127)
			return CoreErrorSet(err, CORE_ERR_INVALID, (int) i + 1,
								"%s address \"%.*s\" contains non-ASCII characters (internationalized addresses are not supported)",
								what, (int) addr.len, addr.data);
		else if (c <= 32)
			return CoreErrorSet(err, CORE_ERR_INVALID, (int) i + 1,
								"%s address \"%.*s\" contains a space or control character",
								what, (int) addr.len, addr.data);
		else if (AddressSpecial(c))
			return CoreErrorSet(err, CORE_ERR_INVALID, (int) i + 1,
								"%s address \"%.*s\" contains '%c', which is not allowed in an address",
								what, (int) addr.len, addr.data, c);
	}
	if (nat != 1 || at == 0 || at == addr.len - 1)
		return CoreErrorSet(err, CORE_ERR_INVALID, 0,
							"%s address \"%.*s\" is not of the form local@domain",
							what, (int) addr.len, addr.data);
	/* The domain: dot-separated labels of letters, digits and hyphens. */
	for (i = at + 1; i < addr.len; i++)
	{
		char		c = addr.data[i];
		bool		dot = c == '.';

		if (!(dot || c == '-' || (c >= '0' && c <= '9') ||
			  (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) ||
			(dot && (i == at + 1 || i == addr.len - 1 || addr.data[i - 1] == '.')))
			return CoreErrorSet(err, CORE_ERR_INVALID, (int) i + 1,
								"%s address \"%.*s\" has an invalid domain (letters, digits, hyphens and dots only)",
								what, (int) addr.len, addr.data);
	}
	return true;
}

MimeText
MimeAddressDomain(MimeText addr)
{
	MimeText	d = {NULL, 0};
	size_t		i = addr.len;

	while (i > 0)
	{
		i--;
		if (addr.data[i] == '@')
		{
			d.data = addr.data + i + 1;
			d.len = addr.len - i - 1;
			break;
		}
	}
	return d;
}

static bool
IsWsp(char c)
{
	return c == ' ' || c == '\t';
}

bool
MimeParseMailbox(MimeText mailbox, CoreBuf *name_buf, MimeText *addr, CoreError *err)
{
	const char *s = mailbox.data;
	size_t		n = mailbox.len;
	size_t		lt;
	size_t		i;
	size_t		b;
	size_t		e;

	if (!Present(mailbox))
		return CoreErrorSet(err, CORE_ERR_INVALID, 0, "mailbox is empty");
	if (!CheckHeaderValue(mailbox, "mailbox", err))
		return false;
	CoreBufReset(name_buf);

	/* trim */
	b = 0;
	e = n;
	while (b < e && IsWsp(s[b]))
		b++;
	while (e > b && IsWsp(s[e - 1]))
		e--;

	/* Find an unquoted '<'. */
	lt = e;
	{
		bool		quoted = false;

		for (i = b; i < e; i++)
		{
			if (quoted && s[i] == '\\' && i + 1 < e)
				i++;
			else if (s[i] == '"')
				quoted = !quoted;
			else if (!quoted && s[i] == '<')
			{
				lt = i;
				break;
			}
		}
		if (quoted)
			return CoreErrorSet(err, CORE_ERR_INVALID, 0,
								"mailbox \"%.*s\" has an unterminated quoted name", (int) n, s);
	}

	if (lt == e)
	{
		/* A bare address. */
		addr->data = s + b;
		addr->len = e - b;
		return MimeValidAddress(*addr, err, "mailbox");
	}

	if (s[e - 1] != '>' || e - 1 <= lt)
		return CoreErrorSet(err, CORE_ERR_INVALID, 0,
							"mailbox \"%.*s\" must end with '>' after the address", (int) n, s);
	addr->data = s + lt + 1;
	addr->len = e - 1 - lt - 1;
	if (!MimeValidAddress(*addr, err, "mailbox"))
		return false;

	/* The display name: trimmed, unquoted. */
	{
		size_t		nb = b;
		size_t		ne = lt;

		while (ne > nb && IsWsp(s[ne - 1]))
			ne--;
		if (ne > nb + 1 && s[nb] == '"' && s[ne - 1] == '"')
		{
			for (i = nb + 1; i < ne - 1; i++)
			{
				if (s[i] == '\\' && i + 1 < ne - 1)
					i++;
				CoreBufAppendChar(name_buf, s[i]);
			}
		}
		else
			CoreBufAppend(name_buf, s + nb, ne - nb);
	}
	if (name_buf->oom)
		return Oom(err);
	return true;
}

/* Length of the UTF-8 sequence at p (1 for an invalid or truncated one). */
static size_t
Utf8SeqLen(const unsigned char *p, size_t avail)
{
	size_t		need;
	size_t		i;

	if (p[0] < 0x80)
		return 1;
	else if ((p[0] & 0xE0) == 0xC0)
		need = 2;
	else if ((p[0] & 0xF0) == 0xE0)
		need = 3;
	else if ((p[0] & 0xF8) == 0xF0)
		need = 4;
	else
		return 1;
	if (need > avail)
		return 1;
	for (i = 1; i < need; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 1;
	return need;
}

static void
AppendBase64(CoreBuf *out, const unsigned char *p, size_t n)
{
	size_t		i;
	char		q[4];

	for (i = 0; i + 2 < n; i += 3)
	{
		q[0] = b64chars[p[i] >> 2];
		q[1] = b64chars[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		q[2] = b64chars[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		q[3] = b64chars[p[i + 2] & 63];
		CoreBufAppend(out, q, 4);
	}
	if (n - i == 1)
	{
		q[0] = b64chars[p[i] >> 2];
		q[1] = b64chars[(p[i] & 3) << 4];
		q[2] = q[3] = '=';
		CoreBufAppend(out, q, 4);
	}
	else if (n - i == 2)
	{
		q[0] = b64chars[p[i] >> 2];
		q[1] = b64chars[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		q[2] = b64chars[(p[i + 1] & 15) << 2];
		q[3] = '=';
		CoreBufAppend(out, q, 4);
	}
}

/* Start a continuation line (folding whitespace). */
static void
Fold(HeaderOut *h)
{
	CoreBufAppend(h->out, "\r\n", 2);
	h->col = 0;
}

/*
 * Append " word", folding first when the line would pass FOLD_AT and we are
 * not at the start of a continuation line already.
 */
static void
AppendWord(HeaderOut *h, const char *w, size_t len)
{
	if (h->col + 1 + len > FOLD_AT && h->col > 1)
		Fold(h);
	CoreBufAppendChar(h->out, ' ');
	CoreBufAppend(h->out, w, len);
	h->col += 1 + len;
}

/*
 * Append the whole value as "B" encoded-words, one after another separated
 * by folding whitespace: each word at most 75 characters, each line at most
 * 76, and a UTF-8 sequence always inside one word.
 */
static void
AppendEncodedWords(HeaderOut *h, MimeText v)
{
	const unsigned char *p = (const unsigned char *) v.data;
	size_t		pos = 0;
	const size_t overhead = 12;	/* "=?UTF-8?B?" + "?=" */

	while (pos < v.len)
	{
		size_t		avail;
		size_t		maxbytes;
		size_t		take = 0;

		/* Room on this line for " " + word, within 76 and 75. */
		avail = (h->col + 1 < MIME_MAX_QP_LINE) ? MIME_MAX_QP_LINE - h->col - 1 : 0;
		if (avail > MIME_MAX_ENCODED_WORD)
			avail = MIME_MAX_ENCODED_WORD;
		maxbytes = avail > overhead ? (avail - overhead) / 4 * 3 : 0;
		if (maxbytes < 4 && h->col > 1)
		{
			Fold(h);
			continue;
		}
		while (pos + take < v.len)
		{
			size_t		l = Utf8SeqLen(p + pos + take, v.len - pos - take);

			if (take + l > maxbytes)
				break;
			take += l;
		}
		CoreBufAppend(h->out, " =?UTF-8?B?", 11);
		AppendBase64(h->out, p + pos, take);
		CoreBufAppend(h->out, "?=", 2);
		h->col += 1 + overhead + (take + 2) / 3 * 4;
		pos += take;
	}
}

/*
 * Can an unstructured value go out as it is: printable ASCII words separated
 * by single spaces, no "=?" (it would read as an encoded-word), no word too
 * long to fit a line.
 */
static bool
PlainUnstructured(MimeText v)
{
	size_t		i;
	size_t		word = 0;

	if (v.len == 0)
		return true;
	if (v.data[0] == ' ' || v.data[v.len - 1] == ' ')
		return false;
	for (i = 0; i < v.len; i++)
	{
		unsigned char c = (unsigned char) v.data[i];

		if (c == ' ')
		{
			if (v.data[i - 1] == ' ')
				return false;
			word = 0;
			continue;
		}
		if (c < 33 || c > 126)
			return false;
		if (c == '=' && i + 1 < v.len && v.data[i + 1] == '?')
			return false;
		if (++word > MAX_PLAIN_WORD)
			return false;
	}
	return true;
}

/* Write an unstructured value (Subject, custom headers). */
static void
AppendUnstructured(HeaderOut *h, MimeText v)
{
	size_t		i;
	size_t		start;

	if (!PlainUnstructured(v))
	{
		AppendEncodedWords(h, v);
		return;
	}
	if (v.len == 0)
	{
		/* "Subject:" with nothing after it is valid; keep one space. */
		CoreBufAppendChar(h->out, ' ');
		h->col++;
		return;
	}
	start = 0;
	for (i = 0; i <= v.len; i++)
	{
		if (i == v.len || v.data[i] == ' ')
		{
			AppendWord(h, v.data + start, i - start);
			start = i + 1;
		}
	}
}

/* Is c allowed in an atom (RFC 5322 atext)? */
static bool
AText(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		(c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/*
 * Write a display name as a phrase: atoms when it is plain words, a
 * quoted-string when it is printable ASCII with specials, encoded-words
 * otherwise.
 */
static void
AppendPhrase(HeaderOut *h, MimeText name)
{
	size_t		i;
	bool		ascii = true;
	bool		atoms = true;

	for (i = 0; i < name.len; i++)
	{
		unsigned char c = (unsigned char) name.data[i];

		if (c < 32 || c > 126)
			ascii = false;
		else if (!AText(c) && !(c == ' ' && i > 0 && name.data[i - 1] != ' '))
			atoms = false;
	}
	if (name.len > 0 && name.data[name.len - 1] == ' ')
		atoms = false;
	/* Text that looks like an encoded-word is encoded, so it reads literally. */
	for (i = 0; i + 1 < name.len; i++)
		if (name.data[i] == '=' && name.data[i + 1] == '?')
			ascii = false;
	if (ascii && atoms)
	{
		AppendUnstructured(h, name);
		return;
	}
	if (ascii)
	{
		size_t		extra = 0;

		for (i = 0; i < name.len; i++)
			if (name.data[i] == '"' || name.data[i] == '\\')
				extra++;
		if (name.len + extra < MAX_PLAIN_WORD)
		{
			CoreBuf    *out = h->out;

			if (h->col + 3 + name.len + extra > FOLD_AT && h->col > 1)
				Fold(h);
			CoreBufAppend(out, " \"", 2);
			for (i = 0; i < name.len; i++)
			{
				if (name.data[i] == '"' || name.data[i] == '\\')
					CoreBufAppendChar(out, '\\');
				CoreBufAppendChar(out, name.data[i]);
			}
			CoreBufAppendChar(out, '"');
			h->col += 3 + name.len + extra;
			return;
		}
	}
	AppendEncodedWords(h, name);
}

/* "Name <addr>" or "addr" after a header name. */
static void
AppendMailbox(HeaderOut *h, MimeText name, MimeText addr)
{
	if (Present(name) && name.len > 0)
	{
		CoreBuf    *out = h->out;

		AppendPhrase(h, name);
		if (h->col + 3 + addr.len > FOLD_AT && h->col > 1)
			Fold(h);
		CoreBufAppend(out, " <", 2);
		CoreBufAppend(out, addr.data, addr.len);
		CoreBufAppendChar(out, '>');
		h->col += 3 + addr.len;
	}
	else
		AppendWord(h, addr.data, addr.len);
}

static void
StartHeader(HeaderOut *h, const char *name, size_t len)
{
	CoreBufAppend(h->out, name, len);
	CoreBufAppendChar(h->out, ':');
	h->col = len + 1;
}

static void
EndHeader(HeaderOut *h)
{
	CoreBufAppend(h->out, "\r\n", 2);
	h->col = 0;
}

/* RFC 5322 date-time in UTC, e.g. "Mon, 23 Nov 2026 09:05:00 +0000". */
static void
AppendDate(CoreBuf *out, long long t)
{
	static const char *const days[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	long long	z;
	long long	era;
	long long	doe;
	long long	yoe;
	long long	doy;
	long long	mp;
	long long	y;
	long long	secs;
	int			m;
	int			d;
	int			wd;

	/* Keep to years 1..9999 (a 4-digit year). */
	if (t < -62135596800LL)
		t = -62135596800LL;
	if (t > 253402300799LL)
		t = 253402300799LL;
	secs = ((t % 86400) + 86400) % 86400;
	z = (t - secs) / 86400;
	wd = (int) (((z % 7) + 7) % 7);
	/* days to civil (Howard Hinnant's algorithm) */
	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = (int) (doy - (153 * mp + 2) / 5 + 1);
	m = (int) (mp < 10 ? mp + 3 : mp - 9);
	if (m <= 2)
		y++;
	CoreBufPrintf(out, "%s, %02d %s %04lld %02lld:%02lld:%02lld +0000",
				  days[wd], d, months[m - 1], y,
				  secs / 3600, (secs / 60) % 60, secs % 60);
}

/*
 * Quoted-printable (RFC 2045 6.7) with CRLF line ends: any of CRLF, LF or CR
 * in the input is a line break; lines at most 76 characters with soft breaks
 * that never split an =XX escape; whitespace before a line end is encoded.
 */
static void
AppendQuotedPrintable(CoreBuf *out, MimeText body)
{
	const unsigned char *p = (const unsigned char *) body.data;
	size_t		n = body.len;
	size_t		i;
	size_t		col = 0;
	char		chunk[1024];	/* output is staged here: far fewer buffer calls */
	size_t		k = 0;

	for (i = 0; i < n; i++)
	{
		unsigned char c = p[i];
		bool		at_eol;
		size_t		tlen;

		/* Room for the longest step: soft break (3) + escape (3) or CRLF. */
		if (k + 6 > sizeof(chunk))
		{
			CoreBufAppend(out, chunk, k);
			k = 0;
		}
		if (c == '\r' || c == '\n')
		{
			if (c == '\r' && i + 1 < n && p[i + 1] == '\n')
				i++;
			chunk[k++] = '\r';
			chunk[k++] = '\n';
			col = 0;
			continue;
		}
		at_eol = (i + 1 == n || p[i + 1] == '\r' || p[i + 1] == '\n');
		if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol))
			tlen = 1;
		else
			tlen = 3;
		/* The last token of a line may use column 76; others leave room for "=". */
		if (col + tlen > (at_eol ? MIME_MAX_QP_LINE : MIME_MAX_QP_LINE - 1))
		{
			chunk[k++] = '=';
			chunk[k++] = '\r';
			chunk[k++] = '\n';
			col = 0;
		}
		if (tlen == 1)
			chunk[k++] = (char) c;
		else
		{
			chunk[k++] = '=';
			chunk[k++] = hexchars[c >> 4];
			chunk[k++] = hexchars[c & 15];
		}
		col += tlen;
	}
	CoreBufAppend(out, chunk, k);
}

/* One body part: its headers, a blank line, the QP body. */
static void
AppendPart(CoreBuf *out, const char *type, MimeText body)
{
	CoreBufPrintf(out, "Content-Type: %s; charset=UTF-8\r\n"
				  "Content-Transfer-Encoding: quoted-printable\r\n\r\n", type);
	AppendQuotedPrintable(out, body);
}

/* A boundary derived from the Message-ID (FNV-1a), so builds are reproducible. */
static void
MakeBoundary(char *buf, size_t size, MimeText message_id)
{
	unsigned long long hash = 1469598103934665603ULL;
	size_t		i;
	char		hex[17];

	for (i = 0; i < message_id.len; i++)
	{
		hash ^= (unsigned char) message_id.data[i];
		hash *= 1099511628211ULL;
	}
	for (i = 0; i < 16; i++)
		hex[i] = hexchars[(hash >> (60 - 4 * i)) & 15];
	hex[16] = '\0';
	/* "=_" cannot occur in quoted-printable text, so no part can contain it. */
	strncpy(buf, "=_segment_", size);
	strncat(buf, hex, size - strlen(buf) - 1);
}

/* Is this a URL we can put between angle brackets in List-Unsubscribe? */
bool
MimeCheckListTarget(MimeText t, const char *scheme, const char *what, CoreError *err)
{
	size_t		i;

	if (!CheckHeaderValue(t, what, err))
		return false;
	if (!StartsWithIgnoreCase(t, scheme) || t.len == strlen(scheme))
		return CoreErrorSet(err, CORE_ERR_INVALID, 0, "%s must start with \"%s\"", what, scheme);
	if (t.len > MAX_PLAIN_WORD)
		return CoreErrorSet(err, CORE_ERR_INVALID, 0, "%s is longer than %d characters",
							what, MAX_PLAIN_WORD);
	for (i = 0; i < t.len; i++)
	{
		unsigned char c = (unsigned char) t.data[i];

		if (c <= 32 || c >= 127 || c == '<' || c == '>' || c == ',')
			return CoreErrorSet(err, CORE_ERR_INVALID, (int) i + 1,
								"%s contains a character that must be percent-encoded at byte %zu",
								what, i + 1);
	}
	return true;
}

static bool
CheckCustomHeader(const MimeHeader *hd, CoreError *err)
{
	size_t		i;
	const char *const *r;

	if (!Present(hd->name) || hd->name.len == 0)
		return CoreErrorSet(err, CORE_ERR_INVALID, 0, "header name is empty");
	if (hd->name.len > MAX_HEADER_NAME)
		return CoreErrorSet(err, CORE_ERR_INVALID, 0, "header name \"%.40s...\" is longer than %d characters",
							hd->name.data, MAX_HEADER_NAME);
	for (i = 0; i < hd->name.len; i++)
	{
		unsigned char c = (unsigned char) hd->name.data[i];

		if (c < 33 || c > 126 || c == ':')
			return CoreErrorSet(err, CORE_ERR_INVALID, (int) i + 1,
								"header name \"%.*s\" may only contain printable ASCII other than ':' and space",
								(int) hd->name.len, hd->name.data);
	}
	for (r = reserved_headers; *r; r++)
		if (EqualsIgnoreCase(hd->name, *r))
			return CoreErrorSet(err, CORE_ERR_INVALID, 0,
								"header \"%.*s\" is set by segment and cannot be given as a custom header",
								(int) hd->name.len, hd->name.data);
	return true;
}

/* Validate everything before writing anything, so errors come out clean. */
static bool
CheckMessage(const MimeMessage *m, CoreError *err)
{
	int			i;

	if (!MimeValidAddress(m->from_addr, err, "From"))
		return false;
	if (!MimeValidAddress(m->to_addr, err, "To"))
		return false;
	if (Present(m->from_name) && !CheckHeaderValue(m->from_name, "From display name", err))
		return false;
	if (Present(m->to_name) && !CheckHeaderValue(m->to_name, "To display name", err))
		return false;
	if (Present(m->subject) && !CheckHeaderValue(m->subject, "Subject", err))
		return false;
	if (!Present(m->message_id) || !MimeValidAddress(m->message_id, err, "Message-ID"))
	{
		if (!Present(m->message_id))
			CoreErrorSet(err, CORE_ERR_INVALID, 0, "Message-ID is missing");
		return false;
	}
	if (Present(m->unsubscribe_mailto) &&
		!MimeCheckListTarget(m->unsubscribe_mailto, "mailto:", "List-Unsubscribe mailto", err))
		return false;
	if (Present(m->unsubscribe_url) &&
		!MimeCheckListTarget(m->unsubscribe_url, "https://", "List-Unsubscribe URL", err))
		return false;
	for (i = 0; i < m->nheaders; i++)
	{
		char		what[MAX_HEADER_NAME + 16];

		if (!CheckCustomHeader(&m->headers[i], err))
			return false;
		if (!Present(m->headers[i].value))
			return CoreErrorSet(err, CORE_ERR_INVALID, 0, "header \"%.*s\" has no value",
								(int) m->headers[i].name.len, m->headers[i].name.data);
		memcpy(what, "header \"", 8);
		memcpy(what + 8, m->headers[i].name.data, m->headers[i].name.len);
		memcpy(what + 8 + m->headers[i].name.len, "\"", 2);
		if (!CheckHeaderValue(m->headers[i].value, what, err))
			return false;
	}
	return true;
}

bool
MimeBuild(const MimeMessage *m, CoreBuf *out, CoreError *err)
{
	HeaderOut	h;
	CoreBuf		name;
	MimeText	reply_addr = {NULL, 0};
	char		boundary[64];
	int			i;

	if (!CheckMessage(m, err))
		return false;
	CoreBufInit(&name, out->a, 64);
	if (Present(m->reply_to) && !MimeParseMailbox(m->reply_to, &name, &reply_addr, err))
	{
		/* Say which header the bad mailbox was in. */
		char		msg[CORE_ERRMSG_LEN];

		memcpy(msg, err->message, sizeof(msg));
		CoreErrorSet(err, err->code, err->position, "Reply-To: %s", msg);
		CoreBufFree(&name);
		return false;
	}

	h.out = out;
	h.col = 0;

	StartHeader(&h, "From", 4);
	AppendMailbox(&h, m->from_name, m->from_addr);
	EndHeader(&h);

	StartHeader(&h, "To", 2);
	AppendMailbox(&h, m->to_name, m->to_addr);
	EndHeader(&h);

	if (Present(m->reply_to))
	{
		MimeText	rn;

		rn.data = name.data;
		rn.len = name.len;
		StartHeader(&h, "Reply-To", 8);
		AppendMailbox(&h, rn, reply_addr);
		EndHeader(&h);
	}
	CoreBufFree(&name);

	StartHeader(&h, "Subject", 7);
	AppendUnstructured(&h, Present(m->subject) ? m->subject : MimeCString(""));
	EndHeader(&h);

	CoreBufAppendStr(out, "Date: ");
	AppendDate(out, m->date);
	CoreBufAppendStr(out, "\r\n");

	CoreBufAppendStr(out, "Message-ID: <");
	CoreBufAppend(out, m->message_id.data, m->message_id.len);
	CoreBufAppendStr(out, ">\r\nMIME-Version: 1.0\r\n");

	if (Present(m->unsubscribe_mailto) || Present(m->unsubscribe_url))
	{
		StartHeader(&h, "List-Unsubscribe", 16);
		if (Present(m->unsubscribe_mailto))
		{
			CoreBuf		w;

			CoreBufInit(&w, out->a, m->unsubscribe_mailto.len + 4);
			CoreBufAppendChar(&w, '<');
			CoreBufAppend(&w, m->unsubscribe_mailto.data, m->unsubscribe_mailto.len);
			CoreBufAppendStr(&w, Present(m->unsubscribe_url) ? ">," : ">");
			if (w.oom)
				out->oom = true;
			else
				AppendWord(&h, w.data, w.len);
			CoreBufFree(&w);
		}
		if (Present(m->unsubscribe_url))
		{
			CoreBuf		w;

			CoreBufInit(&w, out->a, m->unsubscribe_url.len + 4);
			CoreBufAppendChar(&w, '<');
			CoreBufAppend(&w, m->unsubscribe_url.data, m->unsubscribe_url.len);
			CoreBufAppendChar(&w, '>');
			if (w.oom)
				out->oom = true;
			else
				AppendWord(&h, w.data, w.len);
			CoreBufFree(&w);
		}
		EndHeader(&h);
		/* RFC 8058 one-click needs an HTTPS target. */
		if (Present(m->unsubscribe_url))
			CoreBufAppendStr(out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
	}

	for (i = 0; i < m->nheaders; i++)
	{
		StartHeader(&h, m->headers[i].name.data, m->headers[i].name.len);
		AppendUnstructured(&h, m->headers[i].value);
		EndHeader(&h);
	}

	if (Present(m->text) && Present(m->html))
	{
		MakeBoundary(boundary, sizeof(boundary), m->message_id);
		CoreBufPrintf(out, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n"
					  "This is a multi-part message in MIME format.\r\n\r\n--%s\r\n",
					  boundary, boundary);
		AppendPart(out, "text/plain", m->text);
		CoreBufPrintf(out, "\r\n--%s\r\n", boundary);
		AppendPart(out, "text/html", m->html);
		CoreBufPrintf(out, "\r\n--%s--\r\n", boundary);
	}
	else
	{
		if (Present(m->html))
			AppendPart(out, "text/html", m->html);
		else
			AppendPart(out, "text/plain", Present(m->text) ? m->text : MimeCString(""));
		/* SMTP data ends with a line break. */
		if (out->len < 2 || out->data[out->len - 1] != '\n')
			CoreBufAppend(out, "\r\n", 2);
	}

	if (out->oom || out->overflow)
		return Oom(err);
	return true;
}
