/*
 * template_text.c — the plain-text part of an email derived from its HTML
 * part: tags stripped (block elements become line breaks, list items "- "
 * lines), link targets kept as "text (url)", entities decoded, white space
 * collapsed, <head>, <style>
 * and <script> dropped.  Mustache tags {{...}} pass through verbatim, so the
 * result is itself a template.  No PostgreSQL headers.
 */
#include "template_int.h"

#include <string.h>

typedef struct TextOut
{
	CoreBuf    *out;
	size_t		start;			/* where our output begins in out */
	bool		space;			/* a space is due before the next text */
	int			newlines;		/* line breaks due before the next text */
	bool		bullet;			/* a list item starts: "- " before the next text */
	int			absorb;			/* breaks written before a section tag, owed to its first block */
} TextOut;

/* Write the line breaks that are due (none at the very start). */
static void
FlushBreaks(TextOut *t)
{
	if (t->newlines > 0 && t->out->len > t->start)
	{
		CoreBufAppend(t->out, "\n\n", t->newlines > 1 ? 2 : 1);
		t->space = false;
	}
	t->newlines = 0;
}

/* Emit visible text, first the white space that is due. */
static void
Visible(TextOut *t, const char *s, size_t len)
{
	if (len == 0)
		return;
	if (t->newlines > 0)
		FlushBreaks(t);
	else if (t->space && t->out->len > t->start)
		CoreBufAppendChar(t->out, ' ');
	t->space = false;
	t->absorb = 0;
	if (t->bullet)
	{
		CoreBufAppend(t->out, "- ", 2);
		t->bullet = false;
	}
	CoreBufAppend(t->out, s, len);
}

/* A block boundary asks for n line breaks before the next text. */
static void
Break(TextOut *t, int n)
{
	if (t->absorb > 0)
	{
		/* the first block of a section: those breaks were written before the tag */
		n -= t->absorb;
		t->absorb = 0;
	}
	if (t->newlines < n)
		t->newlines = n;
}

static bool
StartsWithCI(const char *s, size_t len, const char *word)
{
	size_t		n = strlen(word);
	size_t		i;

	if (len < n)
		return false;
	for (i = 0; i < n; i++)
	{
		char		c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		if (c != word[i])
			return false;
	}
	return true;
}

static const struct
{
	const char *name;
	const char *utf8;
}			entities[] = {
	{"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"},
	{"nbsp", " "}, {"copy", "\xC2\xA9"}, {"reg", "\xC2\xAE"}, {"trade", "\xE2\x84\xA2"},
	{"euro", "\xE2\x82\xAC"}, {"pound", "\xC2\xA3"}, {"yen", "\xC2\xA5"},
	{"hellip", "\xE2\x80\xA6"}, {"mdash", "\xE2\x80\x94"}, {"ndash", "\xE2\x80\x93"},
	{"lsquo", "\xE2\x80\x98"}, {"rsquo", "\xE2\x80\x99"}, {"ldquo", "\xE2\x80\x9C"},
	{"rdquo", "\xE2\x80\x9D"}, {"bull", "\xE2\x80\xA2"}, {"middot", "\xC2\xB7"},
	{"laquo", "\xC2\xAB"}, {"raquo", "\xC2\xBB"}, {"times", "\xC3\x97"}
};

/*
 * Decode the entity at s[0] == '&' into out; returns the bytes consumed, 0
 * when it is not an entity we know (then '&' is literal text).  Entities for
 * '{' and '}' stay encoded so decoding never creates Mustache tags.
 */
static size_t
DecodeEntity(const char *s, size_t len, char *b, size_t *blen)
{
	size_t		i = 1;
	size_t		k;

	if (len > 2 && s[1] == '#')
	{
		unsigned long cp = 0;
		bool		hex = len > 3 && (s[2] == 'x' || s[2] == 'X');
		size_t		digits = 0;

		i = hex ? 3 : 2;
		for (; i < len && digits < 8; i++, digits++)
		{
			char		c = s[i];

			if (c >= '0' && c <= '9')
				cp = cp * (hex ? 16 : 10) + (unsigned long) (c - '0');
			else if (hex && c >= 'a' && c <= 'f')
				cp = cp * 16 + (unsigned long) (c - 'a' + 10);
			else if (hex && c >= 'A' && c <= 'F')
				cp = cp * 16 + (unsigned long) (c - 'A' + 10);
			else
				break;
		}
		if (digits == 0 || i >= len || s[i] != ';' || cp == 0 || cp > 0x10FFFF ||
			cp == '{' || cp == '}' || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		if (cp == 0xA0)
			cp = ' ';
		if (cp < 0x80)
		{
			b[0] = (char) cp;
			*blen = 1;
		}
		else
		{
			size_t		n;

			if (cp < 0x800)
			{
				b[0] = (char) (0xC0 | (cp >> 6));
				b[1] = (char) (0x80 | (cp & 0x3F));
				n = 2;
			}
			else if (cp < 0x10000)
			{
				b[0] = (char) (0xE0 | (cp >> 12));
				b[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
				b[2] = (char) (0x80 | (cp & 0x3F));
				n = 3;
			}
			else
			{
				b[0] = (char) (0xF0 | (cp >> 18));
				b[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
				b[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
				b[3] = (char) (0x80 | (cp & 0x3F));
				n = 4;
			}
			*blen = n;
		}
		return i + 1;
	}
	for (k = 0; k < sizeof(entities) / sizeof(entities[0]); k++)
	{
		size_t		n = strlen(entities[k].name);

		if (len >= n + 2 && memcmp(s + 1, entities[k].name, n) == 0 && s[n + 1] == ';')
		{
			*blen = strlen(entities[k].utf8);
			memcpy(b, entities[k].utf8, *blen);
			return n + 2;
		}
	}
	return 0;
}

/* Length of the Mustache tag at s ("{{...}}" or "{{{...}}}"), 0 if none. */
static size_t
MustacheTag(const char *s, size_t len)
{
	size_t		i;
	bool		triple = len > 2 && s[2] == '{';

	if (len < 4 || s[0] != '{' || s[1] != '{')
		return 0;
	for (i = 2; i + 1 < len; i++)
		if (s[i] == '}' && s[i + 1] == '}')
		{
			if (triple && i + 2 < len && s[i + 2] == '}')
				return i + 3;
			return i + 2;
		}
	return 0;
}

/* The value of attribute `name` inside a tag's text, entities decoded. */
static void
Attribute(const char *tag, size_t len, const char *name, CoreBuf *out)
{
	size_t		n = strlen(name);
	size_t		i;

	for (i = 0; i + n < len; i++)
	{
		size_t		j;
		char		q;

		if (!(i == 0 || tag[i - 1] == ' ' || tag[i - 1] == '\t' || tag[i - 1] == '\n' || tag[i - 1] == '\r') ||
			!StartsWithCI(tag + i, len - i, name))
			continue;
		j = i + n;
		while (j < len && (tag[j] == ' ' || tag[j] == '\t'))
			j++;
		if (j >= len || tag[j] != '=')
			continue;
		j++;
		while (j < len && (tag[j] == ' ' || tag[j] == '\t'))
			j++;
		q = j < len && (tag[j] == '"' || tag[j] == '\'') ? tag[j++] : 0;
		while (j < len && (q ? tag[j] != q : !(tag[j] == ' ' || tag[j] == '>')))
		{
			char		b[8];
			size_t		bl = 0;
			size_t		m = tag[j] == '&' ? DecodeEntity(tag + j, len - j, b, &bl) : 0;

			if (m == 0)
				CoreBufAppendChar(out, tag[j++]);
			else
			{
				CoreBufAppend(out, b, bl);
				j += m;
			}
		}
		return;
	}
}

/* Tags that start a new line (1) or paragraph (2). */
static int
BlockBreak(const char *name, size_t n)
{
	static const char *const para[] = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol",
	"blockquote", "hr", "pre"};
	static const char *const line[] = {"br", "div", "tr", "li", "section", "article", "header",
	"footer", "center", "dd", "dt", "dl", "body"};
	size_t		k;

	for (k = 0; k < sizeof(para) / sizeof(para[0]); k++)
		if (strlen(para[k]) == n && StartsWithCI(name, n, para[k]))
			return 2;
	for (k = 0; k < sizeof(line) / sizeof(line[0]); k++)
		if (strlen(line[k]) == n && StartsWithCI(name, n, line[k]))
			return 1;
	return 0;
}

bool
TmplHtmlToText(const char *html, size_t len, CoreBuf *out)
{
	TextOut		t;
	size_t		i = 0;
	CoreBuf		href;
	size_t		link_start = 0;
	bool		in_link = false;

	t.out = out;
	t.start = out->len;
	t.space = false;
	t.newlines = 0;
	t.bullet = false;
	t.absorb = 0;
	CoreBufInit(&href, out->a, 64);
	while (i < len)
	{
		char		c = html[i];
		size_t		m;
		char		ent[8];
		size_t		entlen = 0;

		if (c == '{' && (m = MustacheTag(html + i, len - i)) > 0)
		{
			/*
			 * Section and else tags print nothing themselves.  The line
			 * breaks due go before an opening tag (once, not in every turn of
			 * a loop; the first block inside does not ask again) and before a
			 * closing or else tag (each turn ends its own line, as a list item
			 * does).  Where a branch left out doubles a break, the renderer of
			 * derived text parts collapses the blank lines (segment.render_for).
			 * Comments stay inline.
			 */
			char		sigil = html[i + 2];
			bool		is_else = m >= 8 && memcmp(html + i, "{{else}}", 8) == 0;

			if (sigil == '#' || sigil == '^' || sigil == '/' || is_else)
			{
				int			carried = out->len > t.start ? (t.newlines > 1 ? 2 : t.newlines) : 0;

				FlushBreaks(&t);
				t.absorb = (sigil == '#' || sigil == '^') ? carried : 0;
				CoreBufAppend(out, html + i, m);
			}
			else if (sigil == '!')
				CoreBufAppend(out, html + i, m);
			else
				Visible(&t, html + i, m);
			i += m;
		}
		else if (c == '<' && len - i >= 4 && memcmp(html + i, "<!--", 4) == 0)
		{
			const char *end = NULL;
			size_t		k;

			for (k = i + 4; k + 3 <= len; k++)
				if (memcmp(html + k, "-->", 3) == 0)
				{
					end = html + k;
					break;
				}
			i = end ? (size_t) (end - html) + 3 : len;
		}
		else if (c == '<' && i + 1 < len &&
				 ((html[i + 1] >= 'a' && html[i + 1] <= 'z') || (html[i + 1] >= 'A' && html[i + 1] <= 'Z') ||
				  html[i + 1] == '/' || html[i + 1] == '!'))
		{
			size_t		j = i + 1;
			bool		closing = false;
			size_t		ns,
						nl;
			char		q = 0;
			int			brk;
			const char *skip;

			if (html[j] == '/')
			{
				closing = true;
				j++;
			}
			ns = j;
			while (j < len && ((html[j] >= 'a' && html[j] <= 'z') || (html[j] >= 'A' && html[j] <= 'Z') ||
							   (html[j] >= '0' && html[j] <= '9')))
				j++;
			nl = j - ns;
			/* the end of the tag, skipping quoted attribute values */
			while (j < len && (q || html[j] != '>'))
			{
				if (q && html[j] == q)
					q = 0;
				else if (!q && (html[j] == '"' || html[j] == '\''))
					q = html[j];
				j++;
			}
			skip = NULL;
			if (!closing)
			{
				static const char *const dropped[] = {"style", "script", "head", "title"};
				size_t		k;

				for (k = 0; k < sizeof(dropped) / sizeof(dropped[0]); k++)
					if (strlen(dropped[k]) == nl && StartsWithCI(html + ns, nl, dropped[k]))
						skip = dropped[k];
			}
			if (skip)
			{
				/* drop everything up to the matching close tag */
				size_t		k;

				for (k = j; k + 2 + nl <= len; k++)
					if (html[k] == '<' && html[k + 1] == '/' && StartsWithCI(html + k + 2, len - k - 2, skip))
						break;
				while (k < len && html[k] != '>')
					k++;
				i = k < len ? k + 1 : len;
				continue;
			}
			if (nl == 1 && (html[ns] | 32) == 'a')
			{
				if (!closing)
				{
					CoreBufReset(&href);
					Attribute(html + ns + 1, j - ns - 1, "href", &href);
					in_link = true;
					link_start = out->len;
				}
				else if (in_link)
				{
					size_t		tl = out->len - link_start;
					const char *lt = out->data + link_start;

					while (tl > 0 && (*lt == ' ' || *lt == '\n'))
						lt++, tl--;
					if (href.len > 0 && href.data[0] != '#' &&
						!(tl == href.len && memcmp(lt, href.data, tl) == 0))
					{
						if (tl == 0)
							Visible(&t, href.data, href.len);
						else
						{
							t.space = true;
							Visible(&t, "(", 1);
							CoreBufAppend(out, href.data, href.len);
							CoreBufAppendChar(out, ')');
						}
					}
					in_link = false;
				}
			}
			brk = BlockBreak(html + ns, nl);
			if (brk)
				Break(&t, brk);
			if (!closing && nl == 2 && StartsWithCI(html + ns, nl, "li"))
				t.bullet = true;
			i = j < len ? j + 1 : len;
		}
		else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f')
		{
			t.space = true;
			i++;
		}
		else if (c == '&' && (m = DecodeEntity(html + i, len - i, ent, &entlen)) > 0)
		{
			if (entlen == 1 && ent[0] == ' ')
				t.space = true;
			else
				Visible(&t, ent, entlen);
			i += m;
		}
		else
		{
			size_t		k = i + 1;

			while (k < len && html[k] != '<' && html[k] != '&' && html[k] != '{' &&
				   html[k] != ' ' && html[k] != '\t' && html[k] != '\n' && html[k] != '\r' && html[k] != '\f')
				k++;
			Visible(&t, html + i, k - i);
			i = k;
		}
	}
	CoreBufFree(&href);
	return !out->oom;
}
