/*
 * template_filters.c — value semantics shared by helpers and filters:
 * truthiness, comparison, text form, and the pipe filters (default, upper,
 * lower, capitalize, truncate, date, money, url_encode, json).
 *
 * Filters never fail on odd input: a value they cannot use passes through
 * unchanged (render time is no place for errors).  No PostgreSQL headers.
 */
#include "template_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct
{
	const char *name;
	TmplFilterKind kind;
	int			min_args;
	int			max_args;
}			filter_table[] = {
	{"default", FL_DEFAULT, 1, 1},
	{"upper", FL_UPPER, 0, 0},
	{"lower", FL_LOWER, 0, 0},
	{"capitalize", FL_CAPITALIZE, 0, 0},
	{"truncate", FL_TRUNCATE, 1, 2},
	{"date", FL_DATE, 0, 1},
	{"money", FL_MONEY, 0, 1},
	{"url_encode", FL_URL_ENCODE, 0, 0},
	{"json", FL_JSON, 0, 0}
};

/* Filter kind by name, with its argument count range; -1 if unknown. */
int
TmplFilterLookup(const char *name, size_t len, int *min_args, int *max_args)
{
	size_t		i;

	for (i = 0; i < sizeof(filter_table) / sizeof(filter_table[0]); i++)
		if (strlen(filter_table[i].name) == len && memcmp(filter_table[i].name, name, len) == 0)
		{
			*min_args = filter_table[i].min_args;
			*max_args = filter_table[i].max_args;
			return filter_table[i].kind;
		}
	return -1;
}

/* A NUL-terminated copy of a short numeric text, for strtod. */
static bool
ParseNumber(const char *s, size_t len, double *out)
{
	char		buf[64];
	char	   *end;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	*out = strtod(buf, &end);
	return end == buf + len;
}

/*
 * A character count from a numeric argument: negative, NaN and zero give 0,
 * huge values are capped before the conversion (out of range is undefined).
 */
static long
CountArg(double n)
{
	if (!(n > 0))
		return 0;
	if (n >= 1e15)
		return 1000000000000000L;
	return (long) n;
}

static bool
IsZeroNumber(const TmplValue *v)
{
	size_t		i;

	for (i = 0; i < v->len; i++)
		if (v->str[i] >= '1' && v->str[i] <= '9')
			return false;
		else if (v->str[i] == 'e' || v->str[i] == 'E')
			break;
	return true;
}

/*
 * Handlebars truthiness (if, unless, and, or, not, default): missing, null,
 * false, "", 0 and [] are falsy; everything else (including {}) is truthy.
 */
bool
TmplTruthyLoose(const TmplValue *v)
{
	switch (v->kind)
	{
		case TMPL_MISSING:
		case TMPL_NULL:
			return false;
		case TMPL_BOOL:
			return v->b;
		case TMPL_STRING:
			return v->len > 0;
		case TMPL_NUMBER:
			return !IsZeroNumber(v);
		case TMPL_ARRAY:
			return v->count > 0;
		default:
			return true;
	}
}

/* Both sides as numbers, when at least one is a number and the other parses. */
static bool
BothNumbers(const TmplValue *a, const TmplValue *b, double *x, double *y)
{
	if (a->kind != TMPL_NUMBER && b->kind != TMPL_NUMBER)
		return false;
	if (a->kind != TMPL_NUMBER && a->kind != TMPL_STRING)
		return false;
	if (b->kind != TMPL_NUMBER && b->kind != TMPL_STRING)
		return false;
	return ParseNumber(a->str, a->len, x) && ParseNumber(b->str, b->len, y);
}

/*
 * Order two values: numbers numerically, strings bytewise (so ISO dates
 * compare as dates); anything else is not comparable (comparisons are false).
 */
int
TmplCompare(const TmplValue *a, const TmplValue *b, bool *comparable)
{
	double		x,
				y;

	*comparable = true;
	if (BothNumbers(a, b, &x, &y))
		return x < y ? -1 : x > y ? 1 : 0;
	if (a->kind == TMPL_STRING && b->kind == TMPL_STRING)
	{
		size_t		n = a->len < b->len ? a->len : b->len;
		int			c = memcmp(a->str, b->str, n);

		if (c != 0)
			return c < 0 ? -1 : 1;
		return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
	}
	*comparable = false;
	return 0;
}

/* Equality for eq/ne: numbers by value, strings by bytes, null = missing. */
bool
TmplEqual(const TmplValue *a, const TmplValue *b)
{
	double		x,
				y;
	bool		an = a->kind == TMPL_NULL || a->kind == TMPL_MISSING;
	bool		bn = b->kind == TMPL_NULL || b->kind == TMPL_MISSING;

	if (an || bn)
		return an && bn;
	if (BothNumbers(a, b, &x, &y))
		return x == y;
	if (a->kind != b->kind)
		return false;
	switch (a->kind)
	{
		case TMPL_BOOL:
			return a->b == b->b;
		case TMPL_STRING:
			return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
		case TMPL_ARRAY:
		case TMPL_OBJECT:
			return a->ref == b->ref;
		default:
			return false;
	}
}

/* A JSON string literal for s. */
bool
TmplJsonString(CoreBuf *out, const char *s, size_t len)
{
	size_t		i,
				run = 0;

	CoreBufAppendChar(out, '"');
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		CoreBufAppend(out, s + run, i - run);
		run = i + 1;
		switch (c)
		{
			case '"':
				CoreBufAppend(out, "\\\"", 2);
				break;
			case '\\':
				CoreBufAppend(out, "\\\\", 2);
				break;
			case '\n':
				CoreBufAppend(out, "\\n", 2);
				break;
			case '\r':
				CoreBufAppend(out, "\\r", 2);
				break;
			case '\t':
				CoreBufAppend(out, "\\t", 2);
				break;
			default:
				CoreBufPrintf(out, "\\u%04x", c);
				break;
		}
	}
	CoreBufAppend(out, s + run, len - run);
	return CoreBufAppendChar(out, '"');
}

/*
 * The text a value prints as: strings and numbers as they are, true/false,
 * nothing for null and missing, JSON for arrays and objects (which needs
 * scratch; returns false without it).
 */
bool
TmplValueText(const TmplValue *v, const TmplModel *model, CoreBuf *scratch,
			  const char **s, size_t *len)
{
	switch (v->kind)
	{
		case TMPL_STRING:
		case TMPL_NUMBER:
			*s = v->str;
			*len = v->len;
			return true;
		case TMPL_BOOL:
			*s = v->b ? "true" : "false";
			*len = v->b ? 4 : 5;
			return true;
		case TMPL_MISSING:
		case TMPL_NULL:
			*s = "";
			*len = 0;
			return true;
		default:
			if (scratch == NULL)
				return false;
			if (!model->to_json(model->ctx, v, scratch) || scratch->oom)
				return false;
			*s = scratch->data;
			*len = scratch->len;
			return true;
	}
}

/* ---- UTF-8 and case mapping ---- */

/* Decode one UTF-8 character; invalid bytes decode as themselves (Latin-1). */
static size_t
Utf8Decode(const unsigned char *s, size_t len, unsigned int *cp)
{
	if (s[0] < 0x80)
	{
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xE0) == 0xC0 && len >= 2 && (s[1] & 0xC0) == 0x80)
	{
		*cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
		return 2;
	}
	if ((s[0] & 0xF0) == 0xE0 && len >= 3 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80)
	{
		*cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
		return 3;
	}
	if ((s[0] & 0xF8) == 0xF0 && len >= 4 && (s[1] & 0xC0) == 0x80 &&
		(s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80)
	{
		*cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
		return 4;
	}
	*cp = 0xFFFFFFFF;			/* not UTF-8: copied through as is */
	return 1;
}

static void
Utf8Append(CoreBuf *out, unsigned int cp)
{
	char		b[4];

	if (cp < 0x80)
		CoreBufAppendChar(out, (char) cp);
	else if (cp < 0x800)
	{
		b[0] = (char) (0xC0 | (cp >> 6));
		b[1] = (char) (0x80 | (cp & 0x3F));
		CoreBufAppend(out, b, 2);
	}
	else if (cp < 0x10000)
	{
		b[0] = (char) (0xE0 | (cp >> 12));
		b[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		b[2] = (char) (0x80 | (cp & 0x3F));
		CoreBufAppend(out, b, 3);
	}
	else
	{
		b[0] = (char) (0xF0 | (cp >> 18));
		b[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
		b[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
		b[3] = (char) (0x80 | (cp & 0x3F));
		CoreBufAppend(out, b, 4);
	}
}

/*
 * Simple case mapping for ASCII, Latin-1, Latin Extended-A, Greek and
 * Cyrillic (what names and subjects in European languages need).
 */
static unsigned int
CaseMap(unsigned int c, bool upper)
{
	if (upper)
	{
		if ((c >= 'a' && c <= 'z') || (c >= 0xE0 && c <= 0xFE && c != 0xF7) ||
			(c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) || (c >= 0x430 && c <= 0x44F))
			return c - 0x20;
		if (c == 0x3C2)
			return 0x3A3;
		if (c == 0xFF)
			return 0x178;
		if (c >= 0x450 && c <= 0x45F)
			return c - 0x50;
		if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F)
		{
			bool		upper_is_odd = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);

			if (upper_is_odd ? (c & 1) == 0 : (c & 1) == 1)
				return c - 1;
		}
		return c;
	}
	if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) ||
		(c >= 0x391 && c <= 0x3A9 && c != 0x3A2) || (c >= 0x410 && c <= 0x42F))
		return c + 0x20;
	if (c == 0x178)
		return 0xFF;
	if (c >= 0x400 && c <= 0x40F)
		return c + 0x50;
	if (c >= 0x100 && c <= 0x17E && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149)
	{
		bool		upper_is_odd = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);

		if (upper_is_odd ? (c & 1) == 1 : (c & 1) == 0)
			return c + 1;
	}
	return c;
}

/* mode: 'u' upper, 'l' lower, 'c' first character upper and the rest lower. */
static void
ChangeCase(const char *s, size_t len, int mode, CoreBuf *out)
{
	size_t		i = 0;
	bool		first = true;

	while (i < len)
	{
		unsigned int cp;
		size_t		n = Utf8Decode((const unsigned char *) s + i, len - i, &cp);

		if (cp == 0xFFFFFFFF)
			CoreBufAppend(out, s + i, n);
		else
			Utf8Append(out, CaseMap(cp, mode == 'u' || (mode == 'c' && first)));
		first = false;
		i += n;
	}
}

/* Liquid-style truncate: at most max characters, the ellipsis included. */
static void
Truncate(const char *s, size_t len, long max, const char *ell, size_t ell_len, CoreBuf *out)
{
	size_t		chars = 0;
	size_t		ell_chars = 0;
	size_t		i;
	long		keep;

	for (i = 0; i < len; i++)
		if (((unsigned char) s[i] & 0xC0) != 0x80)
			chars++;
	if (max < 0)
		max = 0;
	if ((long) chars <= max)
	{
		CoreBufAppend(out, s, len);
		return;
	}
	for (i = 0; i < ell_len; i++)
		if (((unsigned char) ell[i] & 0xC0) != 0x80)
			ell_chars++;
	keep = max - (long) ell_chars;
	if (keep < 0)
		keep = 0;
	for (i = 0; i < len; i++)
		if (((unsigned char) s[i] & 0xC0) != 0x80 && keep-- == 0)
			break;
	CoreBufAppend(out, s, i);
	CoreBufAppend(out, ell, ell_len);
}

/* RFC 3986: everything but unreserved characters percent-encoded. */
static void
UrlEncode(const char *s, size_t len, CoreBuf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		i;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			c == '-' || c == '_' || c == '.' || c == '~')
			CoreBufAppendChar(out, (char) c);
		else
		{
			char		e[3] = {'%', hex[c >> 4], hex[c & 15]};

			CoreBufAppend(out, e, 3);
		}
	}
}

/* ---- money ---- */

/*
 * Round a decimal number text to two decimals (half away from zero) and
 * print it with thousands separators: "1234.5" -> "1,234.50".
 */
static bool
FormatAmount(const char *s, size_t len, CoreBuf *out)
{
	char		digits[80];
	size_t		nd = 0;
	size_t		intlen = 0;
	bool		neg = false;
	bool		seen_dot = false;
	size_t		i = 0;
	int			carry;
	long		k;
	double		d;

	/* exponent notation or anything unusual: go through a double */
	for (i = 0; i < len; i++)
		if (s[i] == 'e' || s[i] == 'E')
		{
			char		buf[64];

			if (!ParseNumber(s, len, &d) || d > 1e15 || d < -1e15)
				return false;
			snprintf(buf, sizeof(buf), "%.2f", d);
			return FormatAmount(buf, strlen(buf), out);
		}
	i = 0;
	while (i < len && (s[i] == ' '))
		i++;
	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	for (; i < len; i++)
	{
		if (s[i] == '.' && !seen_dot)
			seen_dot = true;
		else if (s[i] >= '0' && s[i] <= '9')
		{
			if (nd >= sizeof(digits) - 4)
				return false;
			if (!seen_dot)
				intlen++;
			else if (nd - intlen >= 3)
				continue;		/* only the third decimal matters for rounding */
			digits[nd++] = s[i];
		}
		else
			return false;
	}
	if (nd == 0)
		return false;
	while (nd - intlen < 3)
		digits[nd++] = '0';
	/* round at the third decimal */
	carry = digits[nd - 1] >= '5';
	nd--;
	for (k = (long) nd - 1; k >= 0 && carry; k--)
	{
		if (digits[k] == '9')
			digits[k] = '0';
		else
		{
			digits[k]++;
			carry = 0;
		}
	}
	if (carry)
	{
		memmove(digits + 1, digits, nd);
		digits[0] = '1';
		nd++;
		intlen++;
	}
	/* drop leading zeros of the integer part, keep one */
	i = 0;
	while (i + 1 < intlen && digits[i] == '0')
		i++;
	if (neg)
	{
		size_t		z;
		bool		nonzero = false;

		for (z = i; z < nd; z++)
			if (digits[z] != '0')
				nonzero = true;
		if (nonzero)
			CoreBufAppendChar(out, '-');
	}
	if (intlen == 0)
		CoreBufAppendChar(out, '0');
	for (k = (long) i; k < (long) intlen; k++)
	{
		CoreBufAppendChar(out, digits[k]);
		if (k + 1 < (long) intlen && (intlen - (size_t) k - 1) % 3 == 0)
			CoreBufAppendChar(out, ',');
	}
	CoreBufAppendChar(out, '.');
	CoreBufAppend(out, digits + intlen, 2);
	return true;
}

static const struct
{
	const char *code;
	const char *symbol;
}			currency_symbols[] = {
	{"USD", "$"}, {"EUR", "\xE2\x82\xAC"}, {"GBP", "\xC2\xA3"}, {"JPY", "\xC2\xA5"},
	{"CNY", "\xC2\xA5"}, {"INR", "\xE2\x82\xB9"}, {"KRW", "\xE2\x82\xA9"},
	{"RUB", "\xE2\x82\xBD"}, {"BRL", "R$"}, {"CAD", "CA$"}, {"AUD", "A$"},
	{"NZD", "NZ$"}, {"MXN", "MX$"}, {"ILS", "\xE2\x82\xAA"}, {"TRY", "\xE2\x82\xBA"},
	{"UAH", "\xE2\x82\xB4"}, {"PLN", "z\xC5\x82 "}
};

/*
 * money: "EUR" -> "€1,234.50"; a code without a known symbol prints before
 * the amount ("CHF 1,234.50"); no code -> "1,234.50".  The minus sign comes
 * first: "-€5.00".
 */
static bool
Money(const TmplValue *v, const TmplValue *code, CoreBuf *out)
{
	char		amount[128];
	size_t		alen;
	size_t		start = out->len;
	size_t		i;
	const char *sym = NULL;
	size_t		symlen = 0;
	bool		space = false;

	if (v->kind != TMPL_NUMBER && v->kind != TMPL_STRING)
		return false;
	if (code && code->kind == TMPL_STRING && code->len > 0)
	{
		for (i = 0; i < sizeof(currency_symbols) / sizeof(currency_symbols[0]); i++)
			if (strlen(currency_symbols[i].code) == code->len &&
				memcmp(currency_symbols[i].code, code->str, code->len) == 0)
			{
				sym = currency_symbols[i].symbol;
				symlen = strlen(sym);
			}
		if (sym == NULL)
		{
			sym = code->str;
			symlen = code->len;
			space = true;
		}
	}
	if (!FormatAmount(v->str, v->len, out) || out->oom)
	{
		CoreBufReset(out);
		return false;
	}
	if (sym == NULL)
		return true;
	/* put the symbol between the sign and the amount */
	alen = out->len - start;
	if (alen >= sizeof(amount))
		return true;
	memcpy(amount, out->data + start, alen);
	out->len = start;
	i = 0;
	if (amount[0] == '-')
	{
		CoreBufAppendChar(out, '-');
		i = 1;
	}
	CoreBufAppend(out, sym, symlen);
	if (space)
		CoreBufAppendChar(out, ' ');
	CoreBufAppend(out, amount + i, alen - i);
	return true;
}

/* ---- date ---- */

typedef struct DateParts
{
	int			year,
				month,
				day,
				hour,
				minute,
				second;
	bool		has_time;
	bool		has_offset;
	int			offset_minutes;
} DateParts;

static bool
Digits(const char *s, size_t len, size_t *i, int n, int *out)
{
	int			v = 0;
	int			k;

	if (*i + (size_t) n > len)
		return false;
	for (k = 0; k < n; k++)
	{
		char		c = s[*i + (size_t) k];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*i += (size_t) n;
	*out = v;
	return true;
}

static int
DaysInMonth(int y, int m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

/*
 * ISO 8601 date or timestamp: YYYY-MM-DD, optionally followed by T or space,
 * HH:MM[:SS[.fraction]], and Z or an offset ±HH[:MM].  The wall-clock time is
 * kept as written (no time zone conversion).
 */
static bool
ParseIsoDate(const char *s, size_t len, DateParts *d)
{
	size_t		i = 0;

	memset(d, 0, sizeof(*d));
	if (!Digits(s, len, &i, 4, &d->year) || i >= len || s[i++] != '-' ||
		!Digits(s, len, &i, 2, &d->month) || i >= len || s[i++] != '-' ||
		!Digits(s, len, &i, 2, &d->day))
		return false;
	if (d->month < 1 || d->month > 12 || d->day < 1 || d->day > DaysInMonth(d->year, d->month))
		return false;
	if (i == len)
		return true;
	if (s[i] != 'T' && s[i] != ' ' && s[i] != 't')
		return false;
	i++;
	if (!Digits(s, len, &i, 2, &d->hour) || i >= len || s[i++] != ':' ||
		!Digits(s, len, &i, 2, &d->minute))
		return false;
	d->has_time = true;
	if (i < len && s[i] == ':')
	{
		i++;
		if (!Digits(s, len, &i, 2, &d->second))
			return false;
		if (i < len && s[i] == '.')
		{
			i++;
			while (i < len && s[i] >= '0' && s[i] <= '9')
				i++;
		}
	}
	if (d->hour > 24 || d->minute > 59 || d->second > 60)
		return false;
	if (i < len && (s[i] == 'Z' || s[i] == 'z'))
	{
		d->has_offset = true;
		i++;
	}
	else if (i < len && (s[i] == '+' || s[i] == '-'))
	{
		int			sign = s[i] == '-' ? -1 : 1;
		int			oh,
					om = 0;

		i++;
		if (!Digits(s, len, &i, 2, &oh))
			return false;
		if (i < len && s[i] == ':')
			i++;
		if (i < len && !Digits(s, len, &i, 2, &om))
			return false;
		d->has_offset = true;
		d->offset_minutes = sign * (oh * 60 + om);
	}
	return i == len;
}

/* Civil date from days since 1970-01-01 (proleptic Gregorian). */
static void
CivilFromDays(long z, int *y, int *m, int *d)
{
	long		era,
				doe,
				yoe,
				doy,
				mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int) (doy - (153 * mp + 2) / 5 + 1);
	*m = (int) (mp < 10 ? mp + 3 : mp - 9);
	*y = (int) (yoe + era * 400 + (*m <= 2));
}

/* Unix seconds (UTC) into date parts. */
static bool
FromEpoch(const char *s, size_t len, DateParts *d)
{
	double		x;
	long		secs,
				days,
				rem;

	if (!ParseNumber(s, len, &x) || x > 253402300799.0 || x < -62135596800.0)
		return false;
	secs = (long) x;
	days = secs / 86400;
	rem = secs % 86400;
	if (rem < 0)
	{
		rem += 86400;
		days--;
	}
	memset(d, 0, sizeof(*d));
	CivilFromDays(days, &d->year, &d->month, &d->day);
	d->hour = (int) (rem / 3600);
	d->minute = (int) (rem / 60 % 60);
	d->second = (int) (rem % 60);
	d->has_time = true;
	d->has_offset = true;
	return true;
}

static int
DayOfWeek(int y, int m, int d)
{
	static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};

	if (m < 3)
		y -= 1;
	return (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;	/* 0 = Sunday */
}

static int
DayOfYear(int y, int m, int d)
{
	int			k,
				n = d;

	for (k = 1; k < m; k++)
		n += DaysInMonth(y, k);
	return n;
}

static const char *const month_names[] = {"January", "February", "March", "April", "May", "June",
"July", "August", "September", "October", "November", "December"};
static const char *const day_names[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday",
"Friday", "Saturday"};

/* strftime subset over date parts. */
static void
FormatDate(const DateParts *d, const char *f, size_t flen, CoreBuf *out)
{
	size_t		i;

	for (i = 0; i < flen; i++)
	{
		char		c;

		if (f[i] != '%' || i + 1 == flen)
		{
			CoreBufAppendChar(out, f[i]);
			continue;
		}
		c = f[++i];
		switch (c)
		{
			case 'Y':
				CoreBufPrintf(out, "%04d", d->year);
				break;
			case 'y':
				CoreBufPrintf(out, "%02d", d->year % 100);
				break;
			case 'm':
				CoreBufPrintf(out, "%02d", d->month);
				break;
			case 'd':
				CoreBufPrintf(out, "%02d", d->day);
				break;
			case 'e':
				CoreBufPrintf(out, "%d", d->day);
				break;
			case 'H':
				CoreBufPrintf(out, "%02d", d->hour);
				break;
			case 'I':
				CoreBufPrintf(out, "%02d", d->hour % 12 == 0 ? 12 : d->hour % 12);
				break;
			case 'M':
				CoreBufPrintf(out, "%02d", d->minute);
				break;
			case 'S':
				CoreBufPrintf(out, "%02d", d->second);
				break;
			case 'p':
				CoreBufAppendStr(out, d->hour < 12 ? "AM" : "PM");
				break;
			case 'B':
				CoreBufAppendStr(out, month_names[d->month - 1]);
				break;
			case 'b':
				CoreBufAppend(out, month_names[d->month - 1], 3);
				break;
			case 'A':
				CoreBufAppendStr(out, day_names[DayOfWeek(d->year, d->month, d->day)]);
				break;
			case 'a':
				CoreBufAppend(out, day_names[DayOfWeek(d->year, d->month, d->day)], 3);
				break;
			case 'j':
				CoreBufPrintf(out, "%03d", DayOfYear(d->year, d->month, d->day));
				break;
			case 'z':
				{
					int			o = d->offset_minutes;

					CoreBufPrintf(out, "%c%02d%02d", o < 0 ? '-' : '+', (o < 0 ? -o : o) / 60,
								  (o < 0 ? -o : o) % 60);
				}
				break;
			case 'F':
				CoreBufPrintf(out, "%04d-%02d-%02d", d->year, d->month, d->day);
				break;
			case 'T':
				CoreBufPrintf(out, "%02d:%02d:%02d", d->hour, d->minute, d->second);
				break;
			case '%':
				CoreBufAppendChar(out, '%');
				break;
			default:
				CoreBufAppendChar(out, '%');
				CoreBufAppendChar(out, c);
				break;
		}
	}
}

static void
SetText(TmplValue *out, CoreBuf *scratch)
{
	memset(out, 0, sizeof(*out));
	out->kind = TMPL_STRING;
	out->str = scratch->data;
	out->len = scratch->len;
}

/*
 * Apply filter `kind` to *in (args evaluated), writing any new text into
 * scratch; *out may be in.  Returns false only when out of memory.
 */
bool
TmplApplyFilter(int kind, const TmplValue *in, const TmplValue *args, int nargs,
				const TmplModel *model, CoreBuf *scratch, TmplValue *out)
{
	const char *s;
	size_t		len;
	TmplValue	v = *in;

	if (kind == FL_DEFAULT)
	{
		*out = TmplTruthyLoose(&v) ? v : args[0];
		return true;
	}
	if (kind == FL_JSON)
	{
		switch (v.kind)
		{
			case TMPL_STRING:
				TmplJsonString(scratch, v.str, v.len);
				break;
			case TMPL_MISSING:
			case TMPL_NULL:
				CoreBufAppendStr(scratch, "null");
				break;
			default:
				if (!TmplValueText(&v, model, scratch, &s, &len))
					return !scratch->oom;
				if (s != scratch->data)
					CoreBufAppend(scratch, s, len);
				break;
		}
		SetText(out, scratch);
		return !scratch->oom;
	}
	if (v.kind == TMPL_MISSING || v.kind == TMPL_NULL)
	{
		*out = v;
		return true;
	}
	if (kind == FL_MONEY)
	{
		if (Money(&v, nargs > 0 ? &args[0] : NULL, scratch))
			SetText(out, scratch);
		else
			*out = v;
		return !scratch->oom;
	}
	if (kind == FL_DATE)
	{
		DateParts	d;
		bool		ok = false;

		if (v.kind == TMPL_STRING)
			ok = ParseIsoDate(v.str, v.len, &d);
		else if (v.kind == TMPL_NUMBER)
			ok = FromEpoch(v.str, v.len, &d);
		if (!ok)
		{
			*out = v;
			return true;
		}
		if (nargs > 0 && args[0].kind == TMPL_STRING)
			FormatDate(&d, args[0].str, args[0].len, scratch);
		else
			FormatDate(&d, "%Y-%m-%d", 8, scratch);
		SetText(out, scratch);
		return !scratch->oom;
	}
	{
		CoreBuf		tmp;
		bool		ok;

		/* arrays and objects are filtered as their JSON text */
		if (v.kind == TMPL_ARRAY || v.kind == TMPL_OBJECT)
		{
			CoreBufInit(&tmp, scratch->a, 64);
			ok = TmplValueText(&v, model, &tmp, &s, &len);
			if (!ok)
			{
				CoreBufFree(&tmp);
				return false;
			}
		}
		else
		{
			memset(&tmp, 0, sizeof(tmp));
			TmplValueText(&v, model, NULL, &s, &len);
		}
		switch (kind)
		{
			case FL_UPPER:
				ChangeCase(s, len, 'u', scratch);
				break;
			case FL_LOWER:
				ChangeCase(s, len, 'l', scratch);
				break;
			case FL_CAPITALIZE:
				ChangeCase(s, len, 'c', scratch);
				break;
			case FL_TRUNCATE:
				{
					double		n = 0;

					ParseNumber(args[0].str, args[0].len, &n);
					if (nargs > 1)
					{
						const char *es;
						size_t		el;

						TmplValueText(&args[1], model, NULL, &es, &el);
						Truncate(s, len, CountArg(n), es ? es : "", es ? el : 0, scratch);
					}
					else
						Truncate(s, len, CountArg(n), "...", 3, scratch);
				}
				break;
			case FL_URL_ENCODE:
				UrlEncode(s, len, scratch);
				break;
		}
		if (tmp.data)
			CoreBufFree(&tmp);
		SetText(out, scratch);
		return !scratch->oom;
	}
}
