/*
 * template_parse.c — compiles template text into a TmplProgram.
 *
 * One pass over the text: find the next opening delimiter, classify the tag,
 * apply the spec's standalone-line rule (a section, comment, partial, block,
 * set-delimiter or else tag alone on its line takes the whole line with it),
 * and append nodes.  Names are split into path segments, helper arguments and
 * filters into expressions, once, so rendering does no string work but
 * output.  No PostgreSQL headers.
 */
#include "template_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DELIM 16

typedef struct Parser
{
	const char *src;
	size_t		len;
	const CoreAllocator *a;
	CoreError  *err;
	TmplProgram *p;
	CoreBuf		pool;
	int			cap_nodes;
	int			cap_exprs;
	int			cap_args;
	int			cap_segs;
	int			cap_filters;
	char		otag[MAX_DELIM];
	size_t		olen;
	char		ctag[MAX_DELIM];
	size_t		clen;
	int			open[TMPL_MAX_NESTING];		/* open containers: node index */
	size_t		open_at[TMPL_MAX_NESTING];	/* ... and where their tag starts */
	int			depth;
	/* the tag content being parsed (expressions, filters) */
	const char *t;
	size_t		tlen;
	size_t		tpos;
	size_t		tbase;			/* offset of t in src, for error positions */
	int			edepth;
} Parser;

static bool ParseError(Parser *ps, size_t at, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/*
 * Report a syntax error at byte offset `at` of the source, with its line and
 * column (in characters) filled in.
 */
static bool
ParseError(Parser *ps, size_t at, const char *fmt,...)
{
	va_list		ap;
	int			line = 1;
	int			col = 1;
	size_t		i;

	if (at > ps->len)
		at = ps->len;
	for (i = 0; i < at; i++)
	{
		unsigned char c = (unsigned char) ps->src[i];

		if (c == '\n')
		{
			line++;
			col = 1;
		}
		else if ((c & 0xC0) != 0x80)
			col++;
	}
	CoreErrorClear(ps->err);
	ps->err->code = CORE_ERR_SYNTAX;
	ps->err->position = (int) at + 1;
	ps->err->line = line;
	ps->err->column = col;
	va_start(ap, fmt);
	vsnprintf(ps->err->message, sizeof(ps->err->message), fmt, ap);
	va_end(ap);
	return false;
}

static bool
OutOfMemory(Parser *ps)
{
	CoreErrorClear(ps->err);
	ps->err->code = CORE_ERR_OOM;
	snprintf(ps->err->message, sizeof(ps->err->message), "out of memory");
	return false;
}

/* Grow *arr (of elem-sized items, capacity *cap) to hold n + 1 items. */
static bool
Grow(Parser *ps, void **arr, int *cap, int n, size_t elem)
{
	void	   *na;
	int			ncap;

	if (n < *cap)
		return true;
	ncap = *cap ? *cap * 2 : 16;
	na = CoreAlloc(ps->a, (size_t) ncap * elem);
	if (na == NULL)
		return OutOfMemory(ps);
	if (*arr)
	{
		memcpy(na, *arr, (size_t) n * elem);
		CoreFree(ps->a, *arr);
	}
	*arr = na;
	*cap = ncap;
	return true;
}

static int
NewNode(Parser *ps, TmplOp op, uint32_t off, uint32_t len)
{
	TmplProgram *p = ps->p;
	TmplNode   *n;

	if (!Grow(ps, (void **) &p->nodes, &ps->cap_nodes, p->nnodes, sizeof(TmplNode)))
		return -1;
	n = &p->nodes[p->nnodes];
	memset(n, 0, sizeof(*n));
	n->op = (uint8_t) op;
	n->off = off;
	n->len = len;
	n->expr = -1;
	n->filter = -1;
	n->mid = -1;
	n->end = -1;
	n->piece = -1;
	n->run_end = -1;
	return p->nnodes++;
}

static int
NewExpr(Parser *ps, TmplExprKind kind)
{
	TmplProgram *p = ps->p;
	TmplExpr   *e;

	if (!Grow(ps, (void **) &p->exprs, &ps->cap_exprs, p->nexprs, sizeof(TmplExpr)))
		return -1;
	e = &p->exprs[p->nexprs];
	memset(e, 0, sizeof(*e));
	e->kind = (uint8_t) kind;
	return p->nexprs++;
}

/* Literal text [from, to) of the source becomes a TEXT node. */
static bool
EmitText(Parser *ps, size_t from, size_t to)
{
	if (to <= from)
		return true;
	if (NewNode(ps, OP_TEXT, (uint32_t) from, (uint32_t) (to - from)) < 0)
		return false;
	ps->p->literal_size += to - from;
	return true;
}

static bool
IsSpace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Characters that end a name or literal inside a tag. */
static bool
IsDelimiterChar(char c)
{
	return IsSpace(c) || c == '|' || c == '(' || c == ')' || c == ':' || c == ',';
}

static void
SkipSpace(Parser *ps)
{
	while (ps->tpos < ps->tlen && IsSpace(ps->t[ps->tpos]))
		ps->tpos++;
}

static bool
AtEnd(Parser *ps)
{
	SkipSpace(ps);
	return ps->tpos >= ps->tlen;
}

/* Where we are in the source, for errors inside a tag. */
static size_t
Here(Parser *ps)
{
	return ps->tbase + ps->tpos;
}

/*
 * A name: "." or "this" (current context), "@root", "@index", "@first",
 * "@last", or dot-separated keys.  Segments point into the source copy.
 */
static int
ParsePath(Parser *ps, size_t start, size_t end)
{
	const char *s = ps->t + start;
	size_t		n = end - start;
	size_t		pos = 0;
	int			e;
	TmplExpr   *ex;
	uint8_t		root = PR_NAME;

	e = NewExpr(ps, EX_PATH);
	if (e < 0)
		return -1;
	if (n == 1 && s[0] == '.')
	{
		ps->p->exprs[e].op = PR_DOT;
		return e;
	}
	if (n >= 4 && memcmp(s, "this", 4) == 0 && (n == 4 || s[4] == '.'))
	{
		root = PR_DOT;
		pos = n == 4 ? 4 : 5;
	}
	else if (s[0] == '@')
	{
		static const struct
		{
			const char *name;
			uint8_t		root;
		}			specials[] = {
			{"@root", PR_ROOT}, {"@index", PR_INDEX}, {"@first", PR_FIRST},
			{"@last", PR_LAST}
		};
		size_t		k;
		size_t		wl = 0;

		while (wl < n && s[wl] != '.')
			wl++;
		for (k = 0; k < sizeof(specials) / sizeof(specials[0]); k++)
			if (strlen(specials[k].name) == wl && memcmp(specials[k].name, s, wl) == 0)
				root = specials[k].root;
		if (root == PR_NAME)
		{
			ParseError(ps, ps->tbase + start, "unknown data variable \"%.*s\"", (int) wl, s);
			return -1;
		}
		if (root != PR_ROOT && wl != n)
		{
			ParseError(ps, ps->tbase + start, "\"%.*s\" has no fields", (int) wl, s);
			return -1;
		}
		pos = wl < n ? wl + 1 : wl;
		if (root == PR_ROOT && wl < n && pos >= n)
		{
			ParseError(ps, ps->tbase + start, "invalid name \"%.*s\"", (int) n, s);
			return -1;
		}
	}
	ex = &ps->p->exprs[e];
	ex->op = root;
	ex->first = ps->p->nsegs;
	while (pos < n || (root == PR_NAME && ex->count == 0))
	{
		size_t		segstart = pos;
		TmplSeg    *seg;

		while (pos < n && s[pos] != '.')
			pos++;
		if (pos == segstart || (pos < n && pos + 1 == n))
		{
			ParseError(ps, ps->tbase + start, "invalid name \"%.*s\"", (int) n, s);
			return -1;
		}
		if (!Grow(ps, (void **) &ps->p->segs, &ps->cap_segs, ps->p->nsegs, sizeof(TmplSeg)))
			return -1;
		seg = &ps->p->segs[ps->p->nsegs++];
		seg->off = (uint32_t) (ps->tbase + start + segstart);
		seg->len = (uint32_t) (pos - segstart);
		seg->name = TMPL_NO_NAME;
		ex = &ps->p->exprs[e];
		ex->count++;
		if (pos < n)
			pos++;				/* the dot */
	}
	return e;
}

/* A quoted string literal, with \" \\ \n \t escapes, copied into the pool. */
static int
ParseString(Parser *ps)
{
	char		q = ps->t[ps->tpos];
	size_t		start = ps->tpos;
	size_t		off = ps->pool.len;
	int			e;

	ps->tpos++;
	for (;;)
	{
		char		c;

		if (ps->tpos >= ps->tlen)
		{
			ParseError(ps, ps->tbase + start, "unterminated string");
			return -1;
		}
		c = ps->t[ps->tpos++];
		if (c == q)
			break;
		if (c == '\\' && ps->tpos < ps->tlen)
		{
			c = ps->t[ps->tpos++];
			if (c == 'n')
				c = '\n';
			else if (c == 't')
				c = '\t';
		}
		if (!CoreBufAppendChar(&ps->pool, c))
		{
			OutOfMemory(ps);
			return -1;
		}
	}
	e = NewExpr(ps, EX_STRING);
	if (e < 0)
		return -1;
	ps->p->exprs[e].off = (uint32_t) off;
	ps->p->exprs[e].len = (uint32_t) (ps->pool.len - off);
	return e;
}

static bool
IsNumber(const char *s, size_t n)
{
	size_t		i = 0;
	size_t		digits = 0;

	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (i < n && s[i] == '.')
	{
		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, digits++;
	}
	if (digits == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E'))
	{
		size_t		ed = 0;

		i++;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, ed++;
		if (ed == 0)
			return false;
	}
	return i == n;
}

static int	ParseExpr(Parser *ps, bool literals);

static const struct
{
	const char *name;
	TmplCallOp	op;
	int			min;
	int			max;
}			call_ops[] = {
	{"eq", CALL_EQ, 2, 2}, {"ne", CALL_NE, 2, 2}, {"lt", CALL_LT, 2, 2},
	{"le", CALL_LE, 2, 2}, {"gt", CALL_GT, 2, 2}, {"ge", CALL_GE, 2, 2},
	{"and", CALL_AND, 1, 16}, {"or", CALL_OR, 1, 16}, {"not", CALL_NOT, 1, 1}
};

/* "(op arg ...)": a comparison or boolean operator; the "(" is current. */
static int
ParseCall(Parser *ps)
{
	size_t		start = ps->tpos;
	size_t		ns;
	size_t		k;
	int			found = -1;
	int32_t		argv[16];
	int			argc = 0;
	int			e;
	int			i;

	if (++ps->edepth > TMPL_MAX_EXPR_DEPTH)
	{
		ParseError(ps, Here(ps), "expression nested too deeply");
		return -1;
	}
	ps->tpos++;
	SkipSpace(ps);
	ns = ps->tpos;
	while (ps->tpos < ps->tlen && !IsDelimiterChar(ps->t[ps->tpos]))
		ps->tpos++;
	for (k = 0; k < sizeof(call_ops) / sizeof(call_ops[0]); k++)
		if (strlen(call_ops[k].name) == ps->tpos - ns &&
			memcmp(call_ops[k].name, ps->t + ns, ps->tpos - ns) == 0)
			found = (int) k;
	if (found < 0)
	{
		if (ps->tpos == ns)
			ParseError(ps, ps->tbase + ns, "expected a helper name after \"(\"");
		else
			ParseError(ps, ps->tbase + ns, "unknown helper \"%.*s\" (expected eq, ne, lt, le, gt, ge, and, or or not)",
					   (int) (ps->tpos - ns), ps->t + ns);
		return -1;
	}
	for (;;)
	{
		int			a;

		SkipSpace(ps);
		if (ps->tpos >= ps->tlen)
		{
			ParseError(ps, ps->tbase + start, "missing \")\"");
			return -1;
		}
		if (ps->t[ps->tpos] == ')')
		{
			ps->tpos++;
			break;
		}
		if (argc == call_ops[found].max)
		{
			ParseError(ps, Here(ps), "too many arguments for %s (at most %d)",
					   call_ops[found].name, call_ops[found].max);
			return -1;
		}
		a = ParseExpr(ps, true);
		if (a < 0)
			return -1;
		argv[argc++] = a;
	}
	if (argc < call_ops[found].min)
	{
		ParseError(ps, ps->tbase + start, "%s needs %d argument%s",
				   call_ops[found].name, call_ops[found].min,
				   call_ops[found].min == 1 ? "" : "s");
		return -1;
	}
	ps->edepth--;
	e = NewExpr(ps, EX_CALL);
	if (e < 0)
		return -1;
	ps->p->exprs[e].op = (uint8_t) call_ops[found].op;
	ps->p->exprs[e].first = ps->p->nargs;
	ps->p->exprs[e].count = argc;
	for (i = 0; i < argc; i++)
	{
		if (!Grow(ps, (void **) &ps->p->args, &ps->cap_args, ps->p->nargs, sizeof(int32_t)))
			return -1;
		ps->p->args[ps->p->nargs++] = argv[i];
	}
	return e;
}

/*
 * One expression: a call "(...)", a quoted string, or a name.  With literals,
 * numbers, true, false and null are constants (helper and filter arguments);
 * without, every bare word is a name (Mustache tags).
 */
static int
ParseExpr(Parser *ps, bool literals)
{
	size_t		start;
	int			e;

	SkipSpace(ps);
	if (ps->tpos >= ps->tlen)
	{
		ParseError(ps, Here(ps), "expected a name or a value");
		return -1;
	}
	if (ps->t[ps->tpos] == '(')
		return ParseCall(ps);
	if (ps->t[ps->tpos] == '"' || ps->t[ps->tpos] == '\'')
		return ParseString(ps);
	start = ps->tpos;
	while (ps->tpos < ps->tlen && !IsDelimiterChar(ps->t[ps->tpos]))
		ps->tpos++;
	if (ps->tpos == start)
	{
		ParseError(ps, Here(ps), "unexpected \"%c\"", ps->t[ps->tpos]);
		return -1;
	}
	if (literals)
	{
		const char *w = ps->t + start;
		size_t		wl = ps->tpos - start;

		if (IsNumber(w, wl))
		{
			e = NewExpr(ps, EX_NUMBER);
			if (e >= 0)
			{
				ps->p->exprs[e].off = (uint32_t) (ps->tbase + start);
				ps->p->exprs[e].len = (uint32_t) wl;
			}
			return e;
		}
		if (wl == 4 && memcmp(w, "true", 4) == 0)
			return NewExpr(ps, EX_TRUE);
		if (wl == 5 && memcmp(w, "false", 5) == 0)
			return NewExpr(ps, EX_FALSE);
		if (wl == 4 && memcmp(w, "null", 4) == 0)
			return NewExpr(ps, EX_NULL);
	}
	return ParsePath(ps, start, ps->tpos);
}

/* Pipe filters after a variable: | name [: arg [, arg]] ... */
static bool
ParseFilters(Parser *ps, int node)
{
	while (!AtEnd(ps))
	{
		size_t		ns;
		size_t		fl;
		int			kind;
		int			min_args;
		int			max_args;
		int			nargs = 0;
		TmplFilter *f;

		if (ps->t[ps->tpos] != '|')
			return ParseError(ps, Here(ps), "unexpected \"%.*s\" (expected \"|\" and a filter, or the end of the tag)",
							  (int) (ps->tlen - ps->tpos), ps->t + ps->tpos);
		ps->tpos++;
		SkipSpace(ps);
		ns = ps->tpos;
		while (ps->tpos < ps->tlen && !IsDelimiterChar(ps->t[ps->tpos]))
			ps->tpos++;
		if (ps->tpos == ns)
			return ParseError(ps, Here(ps), "expected a filter name after \"|\"");
		fl = ps->tpos - ns;
		kind = TmplFilterLookup(ps->t + ns, fl, &min_args, &max_args);
		if (kind < 0)
			return ParseError(ps, ps->tbase + ns,
							  "unknown filter \"%.*s\" (expected default, upper, lower, capitalize, truncate, date, money, url_encode or json)",
							  (int) (ps->tpos - ns), ps->t + ns);
		if (!Grow(ps, (void **) &ps->p->filters, &ps->cap_filters, ps->p->nfilters, sizeof(TmplFilter)))
			return false;
		f = &ps->p->filters[ps->p->nfilters];
		f->kind = (uint8_t) kind;
		f->arg[0] = f->arg[1] = -1;
		if (ps->p->nodes[node].filter < 0)
			ps->p->nodes[node].filter = ps->p->nfilters;
		ps->p->nodes[node].nfilters++;
		ps->p->nfilters++;
		SkipSpace(ps);
		if (ps->tpos < ps->tlen && ps->t[ps->tpos] == ':')
		{
			ps->tpos++;
			for (;;)
			{
				int			a;

				SkipSpace(ps);
				if (nargs == max_args)
					return ParseError(ps, Here(ps), "too many arguments for filter %.*s (at most %d)",
									  (int) fl, ps->t + ns, max_args);
				a = ParseExpr(ps, true);
				if (a < 0)
					return false;
				ps->p->filters[ps->p->nfilters - 1].arg[nargs++] = a;
				SkipSpace(ps);
				if (ps->tpos < ps->tlen && ps->t[ps->tpos] == ',')
				{
					ps->tpos++;
					continue;
				}
				break;
			}
		}
		if (nargs < min_args)
			return ParseError(ps, ps->tbase + ns, "filter %.*s needs an argument",
							  (int) fl, ps->t + ns);
		if (kind == FL_TRUNCATE &&
			ps->p->exprs[ps->p->filters[ps->p->nfilters - 1].arg[0]].kind != EX_NUMBER)
			return ParseError(ps, ps->tbase + ns, "truncate needs a number of characters");
	}
	return true;
}

/* Point the tag-content cursor at src[from, to) (trimmed). */
static void
SetTag(Parser *ps, size_t from, size_t to)
{
	while (from < to && IsSpace(ps->src[from]))
		from++;
	while (to > from && IsSpace(ps->src[to - 1]))
		to--;
	ps->t = ps->src + from;
	ps->tlen = to - from;
	ps->tpos = 0;
	ps->tbase = from;
	ps->edepth = 0;
}

/* A single expression filling the whole tag content. */
static int
ParseWholeExpr(Parser *ps, bool literals)
{
	int			e = ParseExpr(ps, literals);

	if (e < 0)
		return -1;
	if (!AtEnd(ps))
	{
		ParseError(ps, Here(ps), "unexpected \"%.*s\"", (int) (ps->tlen - ps->tpos), ps->t + ps->tpos);
		return -1;
	}
	return e;
}

static bool
OpenContainer(Parser *ps, int node, size_t tag_at)
{
	if (ps->depth >= TMPL_MAX_NESTING)
		return ParseError(ps, tag_at, "sections nested too deeply (more than %d levels)", TMPL_MAX_NESTING);
	ps->open[ps->depth] = node;
	ps->open_at[ps->depth] = tag_at;
	ps->depth++;
	return true;
}

static const char *
OpenerSigil(const TmplNode *n)
{
	switch (n->op)
	{
		case OP_INVERTED:
			return "^";
		case OP_BLOCK:
			return "$";
		case OP_PARENT:
			return "<";
		default:
			return "#";
	}
}

/* {{/name}}: close the innermost container, which must have that name. */
static bool
CloseContainer(Parser *ps, size_t tag_at)
{
	TmplNode   *n;

	if (ps->depth == 0)
		return ParseError(ps, tag_at, "unexpected closing tag {{/%.*s}} (no section is open)",
						  (int) ps->tlen, ps->t);
	n = &ps->p->nodes[ps->open[ps->depth - 1]];
	if (n->len != ps->tlen || memcmp(ps->src + n->off, ps->t, ps->tlen) != 0)
		return ParseError(ps, tag_at, "closing tag {{/%.*s}} does not match {{%s%.*s}}",
						  (int) ps->tlen, ps->t, OpenerSigil(n), (int) n->len, ps->src + n->off);
	n->end = ps->p->nnodes;
	if (n->mid < 0)
		n->mid = n->end;
	ps->depth--;
	return true;
}

/* A section-like tag: {{#name}}, {{^name}}, {{#if e}}, {{#unless e}}, {{#each e}}. */
static bool
ParseSectionTag(Parser *ps, char sigil, size_t tag_at)
{
	size_t		wl = 0;
	TmplOp		op = sigil == '^' ? OP_INVERTED : OP_SECTION;
	uint32_t	name_off = (uint32_t) ps->tbase;
	uint32_t	name_len = (uint32_t) ps->tlen;
	int			node;
	int			e;

	if (ps->tlen == 0)
		return ParseError(ps, tag_at, "section tag without a name");
	while (wl < ps->tlen && !IsSpace(ps->t[wl]))
		wl++;
	if (sigil == '#' && wl < ps->tlen)
	{
		if (wl == 2 && memcmp(ps->t, "if", 2) == 0)
			op = OP_IF;
		else if (wl == 6 && memcmp(ps->t, "unless", 6) == 0)
			op = OP_UNLESS;
		else if (wl == 4 && memcmp(ps->t, "each", 4) == 0)
			op = OP_EACH;
		if (op != OP_SECTION)
		{
			name_len = (uint32_t) wl;
			ps->tpos = wl;
		}
	}
	e = ParseWholeExpr(ps, op != OP_SECTION && op != OP_INVERTED);
	if (e < 0)
		return false;
	node = NewNode(ps, op, name_off, name_len);
	if (node < 0)
		return false;
	ps->p->nodes[node].expr = e;
	return OpenContainer(ps, node, tag_at);
}

/* {{>name}} {{>*name}} {{<name}} {{<*name}} {{$name}} */
static bool
ParseNamedTag(Parser *ps, char sigil, size_t tag_at, size_t indent_from, size_t indent_to,
			  bool standalone)
{
	TmplOp		op = sigil == '>' ? OP_PARTIAL : sigil == '<' ? OP_PARENT : OP_BLOCK;
	int			node;
	TmplNode   *n;

	if (ps->tlen == 0)
		return ParseError(ps, tag_at, "%s tag without a name",
						  op == OP_PARTIAL ? "partial" : op == OP_PARENT ? "parent" : "block");
	node = NewNode(ps, op, (uint32_t) ps->tbase, (uint32_t) ps->tlen);
	if (node < 0)
		return false;
	if (op != OP_BLOCK && ps->t[0] == '*')
	{
		int			e;

		ps->tpos = 1;
		e = ParseWholeExpr(ps, false);
		if (e < 0)
			return false;
		ps->p->nodes[node].expr = e;
		ps->p->nodes[node].flags |= NF_DYNAMIC;
	}
	else
	{
		size_t		i;

		for (i = 0; i < ps->tlen; i++)
			if (IsSpace(ps->t[i]))
				return ParseError(ps, ps->tbase + i, "%s name \"%.*s\" contains white space",
								  op == OP_PARTIAL ? "partial" : op == OP_PARENT ? "parent" : "block",
								  (int) ps->tlen, ps->t);
	}
	n = &ps->p->nodes[node];
	if (standalone)
	{
		n->flags |= NF_STANDALONE;
		n->indent_off = (uint32_t) indent_from;
		n->indent_len = (uint32_t) (indent_to - indent_from);
	}
	if (op == OP_PARTIAL)
		return true;
	return OpenContainer(ps, node, tag_at);
}

/* {{x}}, {{{x}}}, {{&x}}: a value with optional filters. */
static bool
ParseVarTag(Parser *ps, bool raw, size_t tag_at)
{
	int			node;
	int			e;

	if (ps->tlen == 0)
		return ParseError(ps, tag_at, "empty tag");
	e = ParseExpr(ps, false);
	if (e < 0)
		return false;
	node = NewNode(ps, OP_VAR, (uint32_t) ps->tbase, (uint32_t) ps->tlen);
	if (node < 0)
		return false;
	ps->p->nodes[node].expr = e;
	if (raw)
		ps->p->nodes[node].flags |= NF_RAW;
	return ParseFilters(ps, node);
}

/* {{else}} inside #if, #unless, #each or a section. */
static bool
ParseElse(Parser *ps, size_t tag_at)
{
	TmplNode   *n;

	if (ps->depth == 0)
		return ParseError(ps, tag_at, "{{else}} outside of a section");
	n = &ps->p->nodes[ps->open[ps->depth - 1]];
	if (n->op == OP_BLOCK || n->op == OP_PARENT)
		return ParseError(ps, tag_at, "{{else}} is not allowed in a %s",
						  n->op == OP_BLOCK ? "block" : "parent");
	if (n->mid >= 0)
		return ParseError(ps, tag_at, "a second {{else}} in the same section");
	n->mid = ps->p->nnodes;
	return true;
}

/* {{=<% %>=}}: content is what lies between the two "=". */
static bool
SetDelimiters(Parser *ps, size_t tag_at)
{
	size_t		i = 0;
	size_t		o0,
				o1,
				c0,
				c1;

	while (i < ps->tlen && IsSpace(ps->t[i]))
		i++;
	o0 = i;
	while (i < ps->tlen && !IsSpace(ps->t[i]))
		i++;
	o1 = i;
	while (i < ps->tlen && IsSpace(ps->t[i]))
		i++;
	c0 = i;
	while (i < ps->tlen && !IsSpace(ps->t[i]))
		i++;
	c1 = i;
	while (i < ps->tlen && IsSpace(ps->t[i]))
		i++;
	if (o1 == o0 || c1 == c0 || i != ps->tlen)
		return ParseError(ps, tag_at, "invalid set-delimiter tag (expected two delimiters separated by a space, like {{=<%% %%>=}})");
	if (o1 - o0 >= MAX_DELIM || c1 - c0 >= MAX_DELIM)
		return ParseError(ps, tag_at, "delimiters longer than %d characters", MAX_DELIM - 1);
	if (memchr(ps->t + o0, '=', o1 - o0) || memchr(ps->t + c0, '=', c1 - c0))
		return ParseError(ps, tag_at, "delimiters must not contain \"=\"");
	memcpy(ps->otag, ps->t + o0, o1 - o0);
	ps->olen = o1 - o0;
	memcpy(ps->ctag, ps->t + c0, c1 - c0);
	ps->clen = c1 - c0;
	return true;
}

static const char *
FindStr(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	size_t		i;

	if (nlen == 0 || hlen < nlen)
		return NULL;
	for (i = 0; i + nlen <= hlen; i++)
	{
		const char *c = memchr(hay + i, needle[0], hlen - nlen + 1 - i);

		if (c == NULL)
			return NULL;
		i = (size_t) (c - hay);
		if (memcmp(c, needle, nlen) == 0)
			return c;
	}
	return NULL;
}

/*
 * For {{<parent}}: the end of a closing tag for it that follows at once
 * ({{<parent}}{{/parent}}), or 0.  The pair counts as one tag for the
 * standalone rule, as the inheritance spec expects.
 */
static size_t
ImmediateClose(Parser *ps, size_t at)
{
	const char *c;
	size_t		from,
				to;

	if (at + ps->olen + 1 > ps->len || memcmp(ps->src + at, ps->otag, ps->olen) != 0 ||
		ps->src[at + ps->olen] != '/')
		return 0;
	from = at + ps->olen + 1;
	c = FindStr(ps->src + from, ps->len - from, ps->ctag, ps->clen);
	if (c == NULL)
		return 0;
	to = (size_t) (c - ps->src);
	while (from < to && IsSpace(ps->src[from]))
		from++;
	while (to > from && IsSpace(ps->src[to - 1]))
		to--;
	if (to - from != ps->tlen || memcmp(ps->src + from, ps->t, ps->tlen) != 0)
		return 0;
	return (size_t) (c - ps->src) + ps->clen;
}

static bool
Compile(Parser *ps)
{
	size_t		pos = 0;
	size_t		text_start = 0;

	for (;;)
	{
		const char *o = FindStr(ps->src + pos, ps->len - pos, ps->otag, ps->olen);
		size_t		tag_at,
					inner,
					close_at,
					tag_end;
		char		sigil = 0;
		const char *closer;
		size_t		closer_len;
		char		closebuf[MAX_DELIM + 1];
		bool		standalone = false;
		bool		closes_now;
		bool		line_before_text;
		size_t		line_start,
					after;

		if (o == NULL)
			return EmitText(ps, text_start, ps->len);
		tag_at = (size_t) (o - ps->src);
		inner = tag_at + ps->olen;
		if (inner < ps->len)
			sigil = ps->src[inner];
		closer = ps->ctag;
		closer_len = ps->clen;
		if (sigil == '{' || sigil == '=')
		{
			closebuf[0] = sigil == '{' ? '}' : '=';
			memcpy(closebuf + 1, ps->ctag, ps->clen);
			closer = closebuf;
			closer_len = ps->clen + 1;
		}
		if (strchr("!#^/>$<&{=", sigil) == NULL || sigil == 0)
			sigil = 0;
		else
			inner++;
		o = FindStr(ps->src + inner, ps->len - inner, closer, closer_len);
		if (o == NULL)
			return ParseError(ps, tag_at, "unclosed tag (no \"%.*s\" after \"%.*s\")",
							  (int) closer_len, closer, (int) ps->olen, ps->otag);
		close_at = (size_t) (o - ps->src);
		tag_end = close_at + closer_len;

		/*
		 * Standalone: only white space before the tag and after it on its line.
		 * The scan back stops at the pending text: a line that began before it
		 * holds an earlier tag, so the tag is not standalone (and a long line of
		 * tags costs linear, not quadratic, time).
		 */
		line_start = tag_at;
		while (line_start > text_start && ps->src[line_start - 1] != '\n')
			line_start--;
		line_before_text = line_start > 0 && ps->src[line_start - 1] != '\n';
		after = tag_end;
		SetTag(ps, inner, close_at);
		closes_now = false;
		if (sigil == '<' && (after = ImmediateClose(ps, tag_end)) > 0)
			closes_now = true;
		else
			after = tag_end;
		if (sigil != 0 && sigil != '&' && sigil != '{')
			standalone = true;
		else if (sigil == 0 && ps->tlen == 4 && memcmp(ps->t, "else", 4) == 0)
			standalone = true;
		if (standalone)
		{
			size_t		i;

			if (line_before_text)
				standalone = false;
			for (i = line_start; standalone && i < tag_at; i++)
				if (ps->src[i] != ' ' && ps->src[i] != '\t')
					standalone = false;
			while (standalone && after < ps->len && (ps->src[after] == ' ' || ps->src[after] == '\t'))
				after++;
			if (standalone && after < ps->len)
			{
				if (ps->src[after] == '\n')
					after++;
				else if (ps->src[after] == '\r' && after + 1 < ps->len && ps->src[after + 1] == '\n')
					after += 2;
				else
					standalone = false;
			}
		}
		if (!standalone)
			closes_now = false; /* the close tag is parsed on its own */
		if (standalone)
		{
			if (!EmitText(ps, text_start, line_start))
				return false;
			pos = text_start = after;
		}
		else
		{
			if (!EmitText(ps, text_start, tag_at))
				return false;
			pos = text_start = tag_end;
		}

		switch (sigil)
		{
			case '!':
				break;
			case '=':
				if (!SetDelimiters(ps, tag_at))
					return false;
				break;
			case '#':
			case '^':
				if (!ParseSectionTag(ps, sigil, tag_at))
					return false;
				break;
			case '/':
				if (!CloseContainer(ps, tag_at))
					return false;
				break;
			case '>':
			case '<':
			case '$':
				if (!ParseNamedTag(ps, sigil, tag_at, line_start, tag_at, standalone))
					return false;
				if (closes_now)
				{
					/* {{<parent}}{{/parent}} alone on its line, consumed together */
					TmplNode   *n = &ps->p->nodes[ps->open[--ps->depth]];

					n->end = n->mid = ps->p->nnodes;
				}
				break;
			case '&':
			case '{':
				if (!ParseVarTag(ps, true, tag_at))
					return false;
				break;
			default:
				if (ps->tlen == 4 && memcmp(ps->t, "else", 4) == 0)
				{
					if (!ParseElse(ps, tag_at))
						return false;
				}
				else if (!ParseVarTag(ps, false, tag_at))
					return false;
				break;
		}
	}
}

/* Names in the order of TmplName: by length, then bytes. */
static int
CompareNames(const void *a, const void *b)
{
	const TmplName *x = a;
	const TmplName *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->s, y->s, x->len);
}

/* Is expression e a plain name, searched up the context stack? */
static bool
IsStackName(const TmplExpr *e)
{
	return e->kind == EX_PATH && e->op == PR_NAME && e->count > 0;
}

/*
 * The table of names the program looks up in its contexts (first segments
 * of plain names), sorted and distinct, and each such segment's index in it:
 * a model can then find them all in an object in one pass (TmplModel.bind).
 */
static bool
BuildNames(Parser *ps)
{
	TmplProgram *p = ps->p;
	TmplName   *names;
	int			n = 0;
	int			distinct = 0;
	int			i;

	for (i = 0; i < p->nexprs; i++)
		if (IsStackName(&p->exprs[i]))
			n++;
	if (n == 0)
		return true;
	names = CoreAlloc(ps->a, (size_t) n * sizeof(TmplName));
	if (names == NULL)
		return OutOfMemory(ps);
	n = 0;
	for (i = 0; i < p->nexprs; i++)
		if (IsStackName(&p->exprs[i]))
		{
			const TmplSeg *seg = &p->segs[p->exprs[i].first];

			names[n].s = p->pool + seg->off;
			names[n].len = seg->len;
			n++;
		}
	qsort(names, (size_t) n, sizeof(TmplName), CompareNames);
	for (i = 0; i < n; i++)
		if (distinct == 0 || CompareNames(&names[distinct - 1], &names[i]) != 0)
			names[distinct++] = names[i];
	p->names = names;
	p->nnames = distinct;
	for (i = 0; i < p->nexprs; i++)
		if (IsStackName(&p->exprs[i]))
		{
			TmplSeg    *seg = &p->segs[p->exprs[i].first];
			TmplName	key;
			const TmplName *found;

			key.s = p->pool + seg->off;
			key.len = seg->len;
			found = bsearch(&key, names, (size_t) distinct, sizeof(TmplName), CompareNames);
			seg->name = (uint32_t) (found - names);
		}
	for (i = 0; i < p->nnodes; i++)
		if ((p->nodes[i].op == OP_VAR ? p->nodes[i].nfilters == 0 :
			 (p->nodes[i].op == OP_SECTION || p->nodes[i].op == OP_INVERTED ||
			  p->nodes[i].op == OP_IF || p->nodes[i].op == OP_UNLESS ||
			  p->nodes[i].op == OP_EACH)) &&
			p->nodes[i].expr >= 0 &&
			p->exprs[p->nodes[i].expr].count == 1 && IsStackName(&p->exprs[p->nodes[i].expr]))
		{
			p->nodes[i].flags |= NF_SIMPLE;
			p->nodes[i].name = p->segs[p->exprs[p->nodes[i].expr].first].name;
		}
	return true;
}

/*
 * Flatten every run of text and variables (see MarkRuns) into pieces: a
 * literal chunk and the variable after it.  The first node of each run
 * points at its first piece; a run is entered only at its first node (runs
 * lie in one branch, and branches start at section boundaries).  Also notes
 * whether the program uses partials.
 */
static bool
BuildPieces(Parser *ps)
{
	TmplProgram *p = ps->p;
	int			count = 0;
	int			i;
	int			k = 0;
	TmplNode   *run_start = NULL;

	for (i = 0; i < p->nnodes; i++)
		if (p->nodes[i].op == OP_PARTIAL || p->nodes[i].op == OP_PARENT)
			p->uses_partials = true;
	/* a piece per TEXT node, plus one per VAR not preceded by linked text */
	for (i = 0; i < p->nnodes; i++)
		if (p->nodes[i].op == OP_TEXT ||
			(p->nodes[i].op == OP_VAR &&
			 !(i > 0 && (p->nodes[i - 1].flags & NF_NEXT_VAR))))
			count++;
	if (count == 0)
		return true;
	p->pieces = CoreAlloc(ps->a, (size_t) count * sizeof(TmplPiece));
	if (p->pieces == NULL)
		return OutOfMemory(ps);
	for (i = 0; i < p->nnodes; i++)
	{
		TmplNode   *n = &p->nodes[i];
		bool		linked = i > 0 && (p->nodes[i - 1].flags & (NF_NEXT_VAR | NF_NEXT_TEXT));
		TmplPiece  *pc;

		if (n->op != OP_TEXT && n->op != OP_VAR)
			continue;
		if (n->op == OP_VAR && i > 0 && (p->nodes[i - 1].flags & NF_NEXT_VAR))
			continue;			/* the variable of the text piece before */
		if (!linked)
		{
			n->piece = k;
			run_start = n;
		}
		pc = &p->pieces[k++];
		memset(pc, 0, sizeof(*pc));
		pc->node = i;
		if (n->op == OP_TEXT)
		{
			pc->off = n->off;
			pc->len = n->len;
			if (n->flags & NF_NEXT_VAR)
				n = &p->nodes[pc->node = i + 1];
		}
		if (n->op == OP_VAR)
		{
			pc->flags |= PC_VAR;
			if (n->flags & NF_SIMPLE)
			{
				pc->flags |= PC_SIMPLE;
				pc->name = n->name;
			}
			if (n->flags & NF_RAW)
				pc->flags |= PC_RAW;
			if (!(n->flags & NF_NEXT_TEXT))
				pc->flags |= PC_LAST;
		}
		else
			pc->flags |= PC_LAST;	/* text not followed by a linked variable */
		if (pc->flags & PC_LAST)
			run_start->run_end = pc->node + 1;
	}
	p->npieces = k;
	return true;
}

/*
 * Mark runs of alternating text and variables that lie in one branch (no
 * section starts, switches to its else part or ends between them): the
 * renderer goes from one to the next without a trip through its dispatch.
 */
static bool
MarkRuns(Parser *ps)
{
	TmplProgram *p = ps->p;
	bool	   *edge;
	int			i;

	if (p->nnodes == 0)
		return true;
	edge = CoreAllocZero(ps->a, (size_t) p->nnodes + 1);
	if (edge == NULL)
		return OutOfMemory(ps);
	for (i = 0; i < p->nnodes; i++)
		if (p->nodes[i].end >= 0)
		{
			edge[i + 1] = true;
			edge[p->nodes[i].mid] = true;
			edge[p->nodes[i].end] = true;
		}
	for (i = 0; i + 1 < p->nnodes; i++)
	{
		TmplNode   *n = &p->nodes[i];

		if (edge[i + 1])
			continue;
		if (n->op == OP_TEXT && p->nodes[i + 1].op == OP_VAR)
			n->flags |= NF_NEXT_VAR;
		else if (n->op == OP_VAR && p->nodes[i + 1].op == OP_TEXT)
			n->flags |= NF_NEXT_TEXT;
	}
	CoreFree(ps->a, edge);
	return BuildPieces(ps);
}

/*
 * Compile a template.  The source is copied into the program's pool, so the
 * caller's text need not outlive the program.
 */
TmplProgram *
TmplParse(const char *src, size_t len, const CoreAllocator *a, CoreError *err)
{
	Parser		ps;
	TmplProgram *p;

	CoreErrorClear(err);
	if (len > (size_t) INT32_MAX / 2)
	{
		CoreErrorSet(err, CORE_ERR_LIMIT, 0, "template too large");
		return NULL;
	}
	memset(&ps, 0, sizeof(ps));
	p = CoreAllocZero(a, sizeof(TmplProgram));
	if (p == NULL)
	{
		CoreErrorSet(err, CORE_ERR_OOM, 0, "out of memory");
		return NULL;
	}
	p->a = a;
	ps.a = a;
	ps.err = err;
	ps.p = p;
	memcpy(ps.otag, "{{", 2);
	ps.olen = 2;
	memcpy(ps.ctag, "}}", 2);
	ps.clen = 2;
	/*
	 * Room for the source plus every string literal (never longer than the
	 * source), so the pool never moves while the parser points into it.
	 */
	CoreBufInit(&ps.pool, a, 2 * len + 64);
	if (ps.pool.oom || !CoreBufAppend(&ps.pool, src, len))
	{
		CoreBufFree(&ps.pool);
		CoreFree(a, p);
		CoreErrorSet(err, CORE_ERR_OOM, 0, "out of memory");
		return NULL;
	}
	/* parse the pool's copy: offsets into the source are pool offsets */
	ps.src = ps.pool.data;
	ps.len = len;
	if (Compile(&ps) && ps.depth > 0)
	{
		TmplNode   *n = &p->nodes[ps.open[ps.depth - 1]];

		ParseError(&ps, ps.open_at[ps.depth - 1], "unclosed section {{%s%.*s}} (expected {{/%.*s}})",
				   OpenerSigil(n), (int) n->len, ps.pool.data + n->off,
				   (int) n->len, ps.pool.data + n->off);
	}
	if (err->code == CORE_OK && (ps.pool.oom || ps.pool.data != ps.src))
		OutOfMemory(&ps);
	p->pool = ps.pool.data;
	p->pool_len = ps.pool.len;
	if (err->code == CORE_OK)
		BuildNames(&ps);
	if (err->code == CORE_OK)
		MarkRuns(&ps);
	if (err->code != CORE_OK)
	{
		TmplFree(p);
		return NULL;
	}
	return p;
}

void
TmplFree(TmplProgram *p)
{
	const CoreAllocator *a;

	if (p == NULL)
		return;
	a = p->a;
	CoreFree(a, p->pool);
	CoreFree(a, p->nodes);
	CoreFree(a, p->exprs);
	CoreFree(a, p->args);
	CoreFree(a, p->segs);
	CoreFree(a, p->filters);
	CoreFree(a, p->names);
	CoreFree(a, p->pieces);
	CoreFree(a, p);
}

const TmplName *
TmplProgramNames(const TmplProgram *prog, int *n)
{
	*n = prog->nnames;
	return prog->names;
}

size_t
TmplLiteralSize(const TmplProgram *prog)
{
	return prog->literal_size;
}

bool
TmplUsesPartials(const TmplProgram *prog)
{
	return prog->uses_partials;
}
