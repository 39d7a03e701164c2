/*
 * tmpl_json.h — a tiny JSON value model for the template engine's unit tests
 * and fuzzer: parses JSON text into a tree (malloc) and serves it through the
 * TmplModel callbacks, with partials compiled from a JSON object of strings.
 * Header-only, test code; not part of the extension.
 */
#ifndef TMPL_JSON_H
#define TMPL_JSON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

typedef struct JNode
{
	TmplKind	kind;
	bool		b;
	char	   *str;			/* string, or number text */
	size_t		len;
	size_t		n;				/* array/object members */
	struct JNode **items;
	char	  **keys;
	size_t	   *keylens;
} JNode;

static JNode *JParseValue(const char **p, const char *end, int depth);

static void
JSkip(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r'))
		(*p)++;
}

static JNode *
JNew(TmplKind kind)
{
	JNode	   *n = calloc(1, sizeof(JNode));

	n->kind = kind;
	return n;
}

static void
JFree(JNode *n)
{
	size_t		i;

	if (n == NULL)
		return;
	for (i = 0; i < n->n; i++)
	{
		JFree(n->items[i]);
		if (n->keys)
			free(n->keys[i]);
	}
	free(n->items);
	free(n->keys);
	free(n->keylens);
	free(n->str);
	free(n);
}

static bool
JParseString(const char **p, const char *end, char **out, size_t *outlen)
{
	CoreBuf		b;

	if (*p >= end || **p != '"')
		return false;
	(*p)++;
	CoreBufInit(&b, &core_malloc_allocator, 16);
	while (*p < end && **p != '"')
	{
		char		c = *(*p)++;

		if (c == '\\' && *p < end)
		{
			c = *(*p)++;
			switch (c)
			{
				case 'n':
					c = '\n';
					break;
				case 't':
					c = '\t';
					break;
				case 'r':
					c = '\r';
					break;
				case 'u':
					{
						unsigned int cp = 0;
						int			k;

						for (k = 0; k < 4 && *p < end; k++)
						{
							char		h = *(*p)++;

							cp = cp * 16 + (unsigned int) (h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
						}
						if (cp < 0x80)
							c = (char) cp;
						else
						{
							if (cp < 0x800)
							{
								CoreBufAppendChar(&b, (char) (0xC0 | (cp >> 6)));
							}
							else
							{
								CoreBufAppendChar(&b, (char) (0xE0 | (cp >> 12)));
								CoreBufAppendChar(&b, (char) (0x80 | ((cp >> 6) & 0x3F)));
							}
							c = (char) (0x80 | (cp & 0x3F));
						}
					}
					break;
				default:
					break;
			}
		}
		CoreBufAppendChar(&b, c);
	}
	if (*p >= end)
	{
		CoreBufFree(&b);
		return false;
	}
	(*p)++;
	*out = CoreBufDetach(&b, outlen);
	return true;
}

static bool
JAdd(JNode *n, JNode *item, char *key, size_t keylen)
{
	n->items = realloc(n->items, (n->n + 1) * sizeof(JNode *));
	if (key)
	{
		n->keys = realloc(n->keys, (n->n + 1) * sizeof(char *));
		n->keylens = realloc(n->keylens, (n->n + 1) * sizeof(size_t));
		n->keys[n->n] = key;
		n->keylens[n->n] = keylen;
	}
	n->items[n->n++] = item;
	return true;
}

static JNode *
JParseValue(const char **p, const char *end, int depth)
{
	JNode	   *n;

	JSkip(p, end);
	if (*p >= end || depth > 64)
		return NULL;
	if (**p == '{' || **p == '[')
	{
		bool		obj = **p == '{';

		n = JNew(obj ? TMPL_OBJECT : TMPL_ARRAY);
		(*p)++;
		JSkip(p, end);
		if (*p < end && **p == (obj ? '}' : ']'))
		{
			(*p)++;
			return n;
		}
		for (;;)
		{
			char	   *key = NULL;
			size_t		keylen = 0;
			JNode	   *item;

			JSkip(p, end);
			if (obj)
			{
				if (!JParseString(p, end, &key, &keylen))
					break;
				JSkip(p, end);
				if (*p >= end || **p != ':')
				{
					free(key);
					break;
				}
				(*p)++;
			}
			item = JParseValue(p, end, depth + 1);
			if (item == NULL)
			{
				free(key);
				break;
			}
			JAdd(n, item, key, keylen);
			JSkip(p, end);
			if (*p < end && **p == ',')
			{
				(*p)++;
				continue;
			}
			if (*p < end && **p == (obj ? '}' : ']'))
			{
				(*p)++;
				return n;
			}
			break;
		}
		JFree(n);
		return NULL;
	}
	if (**p == '"')
	{
		n = JNew(TMPL_STRING);
		if (!JParseString(p, end, &n->str, &n->len))
		{
			JFree(n);
			return NULL;
		}
		return n;
	}
	if (end - *p >= 4 && memcmp(*p, "true", 4) == 0)
	{
		*p += 4;
		n = JNew(TMPL_BOOL);
		n->b = true;
		return n;
	}
	if (end - *p >= 5 && memcmp(*p, "false", 5) == 0)
	{
		*p += 5;
		return JNew(TMPL_BOOL);
	}
	if (end - *p >= 4 && memcmp(*p, "null", 4) == 0)
	{
		*p += 4;
		return JNew(TMPL_NULL);
	}
	{
		const char *s = *p;

		while (*p < end && (strchr("+-.eE", **p) || (**p >= '0' && **p <= '9')))
			(*p)++;
		if (*p == s)
			return NULL;
		n = JNew(TMPL_NUMBER);
		n->len = (size_t) (*p - s);
		n->str = malloc(n->len + 1);
		memcpy(n->str, s, n->len);
		n->str[n->len] = '\0';
		return n;
	}
}

static JNode *
JParse(const char *s, size_t len)
{
	const char *p = s;
	JNode	   *n = JParseValue(&p, s + len, 0);

	if (n == NULL)
		return NULL;
	JSkip(&p, s + len);
	if (p != s + len)
	{
		JFree(n);
		return NULL;
	}
	return n;
}

static void
JValue(const JNode *n, TmplValue *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = n->kind;
	out->b = n->b;
	out->str = n->str;
	out->len = n->len;
	out->ref = n;
	out->count = n->kind == TMPL_ARRAY ? n->n : 0;
}

static bool
JGet(void *ctx, const TmplValue *object, const char *key, size_t keylen, TmplValue *out)
{
	const JNode *n = object->ref;
	size_t		i;

	if (n == NULL || n->kind != TMPL_OBJECT)
		return false;
	for (i = 0; i < n->n; i++)
		if (n->keylens[i] == keylen && memcmp(n->keys[i], key, keylen) == 0)
		{
			JValue(n->items[i], out);
			return true;
		}
	return false;
}

/*
 * bind/fetch: each name's slot is the first member with that key (what JGet
 * finds), strings read in place, other values by index through fetch, so
 * rendering with and without binding must agree.
 */
static bool
JBind(void *ctx, const TmplValue *object, const TmplName *names, int nnames, TmplSlot *slots)
{
	const JNode *n = object->ref;
	int			j;
	size_t		i;

	if (n == NULL || n->kind != TMPL_OBJECT)
		return false;
	for (j = 0; j < nnames; j++)
	{
		memset(&slots[j], 0, sizeof(slots[j]));
		slots[j].kind = TMPL_MISSING;
		for (i = 0; i < n->n; i++)
			if (n->keylens[i] == names[j].len && memcmp(n->keys[i], names[j].s, names[j].len) == 0)
			{
				const JNode *v = n->items[i];

				slots[j].handle = i;
				slots[j].kind = v->kind == TMPL_STRING ? TMPL_STRING :
					v->kind == TMPL_BOOL ? TMPL_BOOL : TMPL_NULL;
				slots[j].str = v->str;
				slots[j].len = v->kind == TMPL_BOOL ? (uint32_t) v->b : (uint32_t) v->len;
				break;
			}
	}
	return true;
}

static void
JFetch(void *ctx, const TmplValue *object, uint64_t handle, TmplValue *out)
{
	const JNode *n = object->ref;

	JValue(n->items[handle], out);
}

static bool
JAt(void *ctx, const TmplValue *array, size_t index, TmplValue *out)
{
	const JNode *n = array->ref;

	if (n == NULL || n->kind != TMPL_ARRAY || index >= n->n)
		return false;
	JValue(n->items[index], out);
	return true;
}

static void
JWrite(const JNode *n, CoreBuf *out)
{
	size_t		i;

	switch (n->kind)
	{
		case TMPL_OBJECT:
		case TMPL_ARRAY:
			CoreBufAppendChar(out, n->kind == TMPL_OBJECT ? '{' : '[');
			for (i = 0; i < n->n; i++)
			{
				if (i)
					CoreBufAppend(out, ", ", 2);
				if (n->kind == TMPL_OBJECT)
				{
					CoreBufPrintf(out, "\"%.*s\": ", (int) n->keylens[i], n->keys[i]);
				}
				JWrite(n->items[i], out);
			}
			CoreBufAppendChar(out, n->kind == TMPL_OBJECT ? '}' : ']');
			break;
		case TMPL_STRING:
			CoreBufPrintf(out, "\"%.*s\"", (int) n->len, n->str);
			break;
		case TMPL_NUMBER:
			CoreBufAppend(out, n->str, n->len);
			break;
		case TMPL_BOOL:
			CoreBufAppendStr(out, n->b ? "true" : "false");
			break;
		default:
			CoreBufAppendStr(out, "null");
			break;
	}
}

static bool
JToJson(void *ctx, const TmplValue *value, CoreBuf *out)
{
	JWrite(value->ref, out);
	return !out->oom;
}

/* Partials: a JSON object of template strings, compiled on first use. */
typedef struct JPartials
{
	const JNode *map;
	TmplProgram *progs[64];
	int			nprogs;
} JPartials;

static const TmplProgram *
JPartial(void *ctx, const char *name, size_t len, CoreError *err)
{
	JPartials  *jp = ctx;
	TmplValue	root,
				v;

	if (jp == NULL || jp->map == NULL)
		return NULL;
	JValue(jp->map, &root);
	if (!JGet(NULL, &root, name, len, &v) || v.kind != TMPL_STRING || jp->nprogs >= 64)
		return NULL;
	jp->progs[jp->nprogs] = TmplParse(v.str, v.len, &core_malloc_allocator, err);
	if (jp->progs[jp->nprogs] == NULL)
		return NULL;
	return jp->progs[jp->nprogs++];
}

static void
JPartialsFree(JPartials *jp)
{
	int			i;

	for (i = 0; i < jp->nprogs; i++)
		TmplFree(jp->progs[i]);
	jp->nprogs = 0;
}

#endif							/* TMPL_JSON_H */
