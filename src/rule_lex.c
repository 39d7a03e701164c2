/*
 * rule_lex.c — the lexer of the rule language, and the arena the parsed
 * tree lives in.  Pure C: no PostgreSQL headers.
 */
#include "rule_int.h"

#include <string.h>

struct RuleArenaBlock
{
	RuleArenaBlock *next;
};

#define ARENA_BLOCK 8192
#define ARENA_ALIGN 16

/* Allocate size bytes from the arena, zeroed; NULL when out of memory. */
void *
RuleArenaAlloc(RuleArena *arena, size_t size)
{
	void	   *p;

	size = (size + ARENA_ALIGN - 1) & ~((size_t) ARENA_ALIGN - 1);
	if (size > arena->left)
	{
		size_t		want = size > ARENA_BLOCK ? size : ARENA_BLOCK;
		size_t		head = (sizeof(RuleArenaBlock) + ARENA_ALIGN - 1) & ~((size_t) ARENA_ALIGN - 1);
		RuleArenaBlock *b = CoreAlloc(arena->a, head + want);

		if (b == NULL)
			return NULL;
		b->next = arena->blocks;
		arena->blocks = b;
		arena->next = (char *) b + head;
		arena->left = want;
	}
	p = arena->next;
	arena->next += size;
	arena->left -= size;
	memset(p, 0, size);
	return p;
}

/* Copy len bytes of s into the arena as a NUL-terminated string. */
char *
RuleArenaStrndup(RuleArena *arena, const char *s, size_t len)
{
	char	   *p = RuleArenaAlloc(arena, len + 1);

	if (p)
		memcpy(p, s, len);
	return p;
}

/* Release every block of the arena. */
void
RuleArenaFree(RuleArena *arena)
{
	RuleArenaBlock *b = arena->blocks;

	while (b)
	{
		RuleArenaBlock *next = b->next;

		CoreFree(arena->a, b);
		b = next;
	}
	arena->blocks = NULL;
	arena->left = 0;
}

static bool
IsIdentStart(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
IsIdentChar(unsigned char c)
{
	return IsIdentStart(c) || (c >= '0' && c <= '9');
}

static bool
IsDigit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Character positions count UTF-8 code points, not bytes. */
static int
CharsIn(const char *s, size_t len)
{
	int			n = 0;
	size_t		i;

	for (i = 0; i < len; i++)
		if (((unsigned char) s[i] & 0xC0) != 0x80)
			n++;
	return n;
}

/*
 * Canonical text of a number: no leading zeros in the integer part, no sign
 * on zero.  Fractional digits are kept as written (the scale is meaningful
 * to numeric and survives jsonb).
 */
static char *
CanonicalNumber(RuleArena *arena, const char *s, size_t len)
{
	bool		neg = false;
	bool		allzero = true;
	size_t		i;
	char	   *out;
	char	   *o;

	if (len > 0 && s[0] == '-')
	{
		neg = true;
		s++;
		len--;
	}
	for (i = 0; i < len; i++)
		if (IsDigit((unsigned char) s[i]) && s[i] != '0')
			allzero = false;
	while (len > 1 && s[0] == '0' && IsDigit((unsigned char) s[1]))
	{
		s++;
		len--;
	}
	out = RuleArenaAlloc(arena, len + 2);
	if (out == NULL)
		return NULL;
	o = out;
	if (neg && !allzero)
		*o++ = '-';
	memcpy(o, s, len);
	o[len] = '\0';
	return out;
}

/*
 * Split src into tokens.  Keywords are identifiers here; the parser matches
 * them case-insensitively.  Strings are single-quoted with '' for a quote.
 */
bool
RuleLex(RuleArena *arena, const char *src, size_t len, RuleTokens *out, CoreError *err)
{
	size_t		i = 0;
	int			cap = 16;
	int			n = 0;
	int			pos = 1;		/* character position of src[i] */
	RuleTok    *toks = RuleArenaAlloc(arena, sizeof(RuleTok) * cap);

	if (toks == NULL)
		return CoreErrorSet(err, CORE_ERR_OOM, 0, "out of memory");
	for (;;)
	{
		RuleTok    *t;
		size_t		start;
		unsigned char c;

		while (i < len && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' ||
						   src[i] == '\r' || src[i] == '\f' || src[i] == '\v'))
		{
			i++;
			pos++;
		}
		if (n == cap)
		{
			RuleTok    *bigger = RuleArenaAlloc(arena, sizeof(RuleTok) * cap * 2);

			if (bigger == NULL)
				return CoreErrorSet(err, CORE_ERR_OOM, 0, "out of memory");
			memcpy(bigger, toks, sizeof(RuleTok) * cap);
			toks = bigger;
			cap *= 2;
		}
		t = &toks[n++];
		t->pos = pos;
		if (i >= len)
		{
			t->kind = TK_EOF;
			break;
		}
		start = i;
		c = (unsigned char) src[i];
		if (IsIdentStart(c))
		{
			while (i < len && IsIdentChar((unsigned char) src[i]))
				i++;
			t->kind = TK_IDENT;
			t->text = RuleArenaStrndup(arena, src + start, i - start);
		}
		else if (IsDigit(c) || (c == '-' && i + 1 < len && IsDigit((unsigned char) src[i + 1])))
		{
			i++;
			while (i < len && IsDigit((unsigned char) src[i]))
				i++;
			if (i + 1 < len && src[i] == '.' && IsDigit((unsigned char) src[i + 1]))
			{
				i++;
				while (i < len && IsDigit((unsigned char) src[i]))
					i++;
			}
			if (i < len && (IsIdentStart((unsigned char) src[i]) || src[i] == '.'))
				return CoreErrorSet(err, CORE_ERR_SYNTAX, pos + (int) (i - start),
									"expected a space after the number %.*s",
									(int) (i - start), src + start);
			t->kind = TK_NUMBER;
			t->text = CanonicalNumber(arena, src + start, i - start);
		}
		else if (c == '\'')
		{
			size_t		j = i + 1;
			char	   *val;

			/* measure, then copy with '' collapsed */
			for (;;)
			{
				if (j >= len)
					return CoreErrorSet(err, CORE_ERR_SYNTAX, pos,
										"expected a closing quote for the string starting here");
				if (src[j] == '\0')
					return CoreErrorSet(err, CORE_ERR_SYNTAX, pos + CharsIn(src + i, j - i),
										"unexpected NUL byte in string");
				if (src[j] == '\'')
				{
					if (j + 1 < len && src[j + 1] == '\'')
						j += 2;
					else
						break;
				}
				else
					j++;
			}
			val = RuleArenaAlloc(arena, j - i);
			if (val == NULL)
				return CoreErrorSet(err, CORE_ERR_OOM, 0, "out of memory");
			{
				size_t		k;
				size_t		o = 0;

				for (k = i + 1; k < j; k++)
				{
					val[o++] = src[k];
					if (src[k] == '\'')
						k++;
				}
				val[o] = '\0';
			}
			i = j + 1;
			t->kind = TK_STRING;
			t->text = val;
		}
		else if (c == '(' || c == ')' || c == ',' || c == '.')
		{
			i++;
			t->kind = c == '(' ? TK_LPAREN : c == ')' ? TK_RPAREN : c == ',' ? TK_COMMA : TK_DOT;
		}
		else if (c == '=' || c == '<' || c == '>' || c == '!')
		{
			char		d = i + 1 < len ? src[i + 1] : '\0';

			t->kind = TK_OP;
			if (c == '=')
			{
				t->op = RC_EQ;
				i++;
			}
			else if (c == '!' && d == '=')
			{
				t->op = RC_NE;
				i += 2;
			}
			else if (c == '!')
				return CoreErrorSet(err, CORE_ERR_SYNTAX, pos, "expected != but found a lone !");
			else if (c == '<' && d == '>')
			{
				t->op = RC_NE;
				i += 2;
			}
			else if (c == '<' && d == '=')
			{
				t->op = RC_LE;
				i += 2;
			}
			else if (c == '<')
			{
				t->op = RC_LT;
				i++;
			}
			else if (d == '=')
			{
				t->op = RC_GE;
				i += 2;
			}
			else
			{
				t->op = RC_GT;
				i++;
			}
		}
		else if (c == '"')
			return CoreErrorSet(err, CORE_ERR_SYNTAX, pos,
								"expected a single-quoted string; double quotes are not used in rules");
		else if (c == '\0')
			return CoreErrorSet(err, CORE_ERR_SYNTAX, pos, "unexpected NUL byte");
		else
		{
			size_t		clen = 1;

			while (i + clen < len && ((unsigned char) src[i + clen] & 0xC0) == 0x80 && clen < 4)
				clen++;
			return CoreErrorSet(err, CORE_ERR_SYNTAX, pos, "unexpected character \"%.*s\"",
								(int) clen, src + i);
		}
		if ((t->kind == TK_IDENT || t->kind == TK_STRING || t->kind == TK_NUMBER) && t->text == NULL)
			return CoreErrorSet(err, CORE_ERR_OOM, 0, "out of memory");
		pos += CharsIn(src + start, i - start);
	}
	out->toks = toks;
	out->ntoks = n;
	return true;
}
