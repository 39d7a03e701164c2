/*
 * rule_parse.c — recursive-descent parser of the rule language (design.md
 * §3).  Precedence: not binds tighter than and, and tighter than or;
 * and/or are n-ary and flattened, so parentheses that do not change the
 * meaning leave no trace in the tree (canonical printing relies on it).
 * Pure C: no PostgreSQL headers.
 */
#include "rule_int.h"

#include <stdio.h>
#include <string.h>

typedef struct Parser
{
	RuleArena  *arena;
	RuleTok    *toks;
	int			ntoks;
	int			i;
	CoreError  *err;
} Parser;

static Rule *ParseOr(Parser *p, int depth, bool prop);

/* Units of durations, their singular names and the largest amount allowed. */
static const struct
{
	const char *name;
	long		max;
}			units[] = {
	[RU_MINUTE] = {"minute", 525600000L},
	[RU_HOUR] = {"hour", 8760000L},
	[RU_DAY] = {"day", 365000L},
	[RU_WEEK] = {"week", 52000L},
	[RU_MONTH] = {"month", 12000L},
	[RU_YEAR] = {"year", 1000L},
};

static const char *const agg_names[] = {
	[RA_COUNT] = "count", [RA_SUM] = "sum", [RA_AVG] = "avg",
	[RA_MIN] = "min", [RA_MAX] = "max", [RA_LAST] = "last"
};

const char *
RuleUnitText(RuleUnit u)
{
	return units[u].name;
}

const char *
RuleAggText(RuleAggKind k)
{
	return agg_names[k];
}

/* ASCII case-insensitive equality (keywords are case-insensitive). */
static bool
EqualsIgnoreCase(const char *s, const char *kw)
{
	for (; *s && *kw; s++, kw++)
	{
		char		c = *s;

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		if (c != *kw)
			return false;
	}
	return *s == '\0' && *kw == '\0';
}

static RuleTok *
Peek(Parser *p, int k)
{
	int			i = p->i + k;

	return &p->toks[i < p->ntoks ? i : p->ntoks - 1];
}

static void
Advance(Parser *p)
{
	if (p->i < p->ntoks - 1)
		p->i++;
}

static bool
IsKw(const RuleTok *t, const char *kw)
{
	return t->kind == TK_IDENT && EqualsIgnoreCase(t->text, kw);
}

/* Advance past keyword kw when it is next. */
static bool
AcceptKw(Parser *p, const char *kw)
{
	if (!IsKw(Peek(p, 0), kw))
		return false;
	Advance(p);
	return true;
}

/* Fail with "expected <what>, found <the next token>". */
static bool
Expected(Parser *p, const RuleTok *t, const char *what)
{
	static const char *const kinds[] = {
		[TK_LPAREN] = "(", [TK_RPAREN] = ")", [TK_COMMA] = ",", [TK_DOT] = "."
	};

	switch (t->kind)
	{
		case TK_EOF:
			return CoreErrorSet(p->err, CORE_ERR_SYNTAX, t->pos, "expected %s, found the end of the rule", what);
		case TK_IDENT:
			return CoreErrorSet(p->err, CORE_ERR_SYNTAX, t->pos, "expected %s, found \"%.60s\"", what, t->text);
		case TK_STRING:
			return CoreErrorSet(p->err, CORE_ERR_SYNTAX, t->pos, "expected %s, found the string '%.60s'", what, t->text);
		case TK_NUMBER:
			return CoreErrorSet(p->err, CORE_ERR_SYNTAX, t->pos, "expected %s, found the number %.60s", what, t->text);
		case TK_OP:
			return CoreErrorSet(p->err, CORE_ERR_SYNTAX, t->pos, "expected %s, found \"%s\"", what, RuleCmpText(t->op));
		default:
			return CoreErrorSet(p->err, CORE_ERR_SYNTAX, t->pos, "expected %s, found \"%s\"", what, kinds[t->kind]);
	}
}

static bool
ExpectKind(Parser *p, RuleTokKind kind, const char *what)
{
	if (Peek(p, 0)->kind != kind)
		return Expected(p, Peek(p, 0), what);
	Advance(p);
	return true;
}

static bool
ExpectKw(Parser *p, const char *kw, const char *what)
{
	if (!AcceptKw(p, kw))
		return Expected(p, Peek(p, 0), what);
	return true;
}

static bool
TooDeep(Parser *p, int depth)
{
	if (depth <= RULE_MAX_DEPTH)
		return false;
	CoreErrorSet(p->err, CORE_ERR_LIMIT, Peek(p, 0)->pos,
				 "expected at most %d levels of nesting", RULE_MAX_DEPTH);
	return true;
}

static Rule *
NewRule(Parser *p, RuleKind kind, int pos)
{
	Rule	   *r = RuleArenaAlloc(p->arena, sizeof(Rule));

	if (r == NULL)
	{
		CoreErrorSet(p->err, CORE_ERR_OOM, 0, "out of memory");
		return NULL;
	}
	r->kind = kind;
	r->pos = pos;
	return r;
}

static int
UnitOf(const RuleTok *t)
{
	int			u;

	if (t->kind != TK_IDENT)
		return -1;
	for (u = 0; u <= RU_YEAR; u++)
	{
		char		plural[16];

		if (EqualsIgnoreCase(t->text, units[u].name))
			return u;
		strcpy(plural, units[u].name);
		strcat(plural, "s");
		if (EqualsIgnoreCase(t->text, plural))
			return u;
	}
	return -1;
}

/* number unit: a whole, non-negative amount within the unit's range. */
static bool
ParseDurationAfterNumber(Parser *p, const RuleTok *num, RuleLit *lit)
{
	int			u = UnitOf(Peek(p, 0));
	const char *s = num->text;
	long		v = 0;
	size_t		n = strlen(s);
	size_t		k;

	if (u < 0)
		return Expected(p, Peek(p, 0), "a unit (minutes, hours, days, weeks, months or years)");
	for (k = 0; k < n; k++)
		if (s[k] < '0' || s[k] > '9' || k >= 10)
			return CoreErrorSet(p->err, CORE_ERR_SYNTAX, num->pos,
								"expected a whole number of %ss from 0 to %ld, found %.40s",
								units[u].name, units[u].max, s);
	for (k = 0; k < n; k++)
		v = v * 10 + (s[k] - '0');
	if (v > units[u].max)
		return CoreErrorSet(p->err, CORE_ERR_SYNTAX, num->pos,
							"expected a whole number of %ss from 0 to %ld, found %.40s",
							units[u].name, units[u].max, s);
	Advance(p);
	lit->amount = v;
	lit->unit = (RuleUnit) u;
	return true;
}

static bool
ParseDuration(Parser *p, RuleLit *lit)
{
	RuleTok    *t = Peek(p, 0);

	if (t->kind != TK_NUMBER)
		return Expected(p, t, "a duration such as 30 days");
	Advance(p);
	lit->kind = RL_AGO;
	lit->pos = t->pos;
	return ParseDurationAfterNumber(p, t, lit);
}

static bool
Digits(const char *s, int n, int *v)
{
	int			k;

	*v = 0;
	for (k = 0; k < n; k++)
	{
		if (s[k] < '0' || s[k] > '9')
			return false;
		*v = *v * 10 + (s[k] - '0');
	}
	return true;
}

/* YYYY-MM-DD, a real calendar day from year 1 to 9999. */
static bool
ValidDate(const char *s)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			y,
				m,
				d;

	if (strlen(s) < 10 || s[4] != '-' || s[7] != '-' ||
		!Digits(s, 4, &y) || !Digits(s + 5, 2, &m) || !Digits(s + 8, 2, &d))
		return false;
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	return true;
}

/*
 * ISO 8601: YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]][Z|+HH[:MM]|-HH[:MM]].  Without
 * a zone the timestamp is UTC.
 */
static bool
ValidTimestamp(const char *s)
{
	int			h,
				mi,
				sec,
				v;
	const char *q;

	if (!ValidDate(s) || (s[10] != ' ' && s[10] != 'T'))
		return false;
	q = s + 11;
	if (strlen(q) < 5 || q[2] != ':' || !Digits(q, 2, &h) || !Digits(q + 3, 2, &mi) ||
		h > 23 || mi > 59)
		return false;
	q += 5;
	if (q[0] == ':')
	{
		int			nf = 0;

		if (!Digits(q + 1, 2, &sec) || sec > 59)
			return false;
		q += 3;
		if (q[0] == '.')
		{
			q++;
			while (q[0] >= '0' && q[0] <= '9')
			{
				q++;
				nf++;
			}
			if (nf < 1 || nf > 6)
				return false;
		}
	}
	if (q[0] == '\0')
		return true;
	if (q[0] == 'Z' && q[1] == '\0')
		return true;
	if (q[0] != '+' && q[0] != '-')
		return false;
	if (!Digits(q + 1, 2, &v) || v > 15)
		return false;
	q += 3;
	if (q[0] == '\0')
		return true;
	if (q[0] == ':')
		q++;
	if (!Digits(q, 2, &v) || v > 59)
		return false;
	return q[2] == '\0';
}

#define VALUE_WHAT "a value (a number, a 'string', true, false, now, 30 days ago, 2 weeks from now, date 'YYYY-MM-DD' or timestamp 'YYYY-MM-DD HH:MM:SS+00')"
#define TIME_WHAT "a time (now, 30 days ago, 2 weeks from now, date 'YYYY-MM-DD' or timestamp 'YYYY-MM-DD HH:MM:SS+00')"

/* literal := number | string | true | false | time */
static bool
ParseLiteral(Parser *p, RuleLit *lit, const char *what)
{
	RuleTok    *t = Peek(p, 0);

	memset(lit, 0, sizeof(*lit));
	lit->pos = t->pos;
	if (t->kind == TK_NUMBER)
	{
		Advance(p);
		if (UnitOf(Peek(p, 0)) >= 0)
		{
			if (!ParseDurationAfterNumber(p, t, lit))
				return false;
			if (AcceptKw(p, "ago"))
				lit->kind = RL_AGO;
			else if (IsKw(Peek(p, 0), "from") && IsKw(Peek(p, 1), "now"))
			{
				Advance(p);
				Advance(p);
				lit->kind = RL_FROM_NOW;
			}
			else
				return Expected(p, Peek(p, 0), "ago or from now after the duration");
			return true;
		}
		lit->kind = RL_NUMBER;
		lit->text = t->text;
		return true;
	}
	if (t->kind == TK_STRING)
	{
		Advance(p);
		lit->kind = RL_STRING;
		lit->text = t->text;
		return true;
	}
	if (IsKw(t, "true") || IsKw(t, "false"))
	{
		Advance(p);
		lit->kind = RL_BOOL;
		lit->boolval = IsKw(t, "true");
		return true;
	}
	if (IsKw(t, "now"))
	{
		Advance(p);
		lit->kind = RL_NOW;
		return true;
	}
	if (IsKw(t, "date") || IsKw(t, "timestamp"))
	{
		bool		isdate = IsKw(t, "date");
		RuleTok    *s;

		Advance(p);
		s = Peek(p, 0);
		if (s->kind != TK_STRING)
			return Expected(p, s, isdate ? "a quoted date such as date '2024-01-31'" :
							"a quoted timestamp such as timestamp '2024-01-31 09:00:00+00'");
		lit->text = s->text;
		if (!isdate && strlen(s->text) == 10 && ValidDate(s->text))
		{
			/* timestamp 'YYYY-MM-DD' is midnight UTC, as PostgreSQL reads it */
			char	   *full = RuleArenaAlloc(p->arena, sizeof("YYYY-MM-DD 00:00"));

			if (full == NULL)
				return CoreErrorSet(p->err, CORE_ERR_OOM, 0, "out of memory");
			memcpy(full, s->text, 10);
			memcpy(full + 10, " 00:00", sizeof(" 00:00"));
			lit->text = full;
		}
		else if (isdate ? !ValidDate(s->text) || strlen(s->text) != 10 : !ValidTimestamp(s->text))
			return CoreErrorSet(p->err, CORE_ERR_SYNTAX, s->pos,
								isdate ? "expected a date as 'YYYY-MM-DD', found '%.60s'" :
								"expected a timestamp as 'YYYY-MM-DD HH:MM[:SS[.ffffff]][+HH[:MM]|Z]', found '%.60s'",
								s->text);
		Advance(p);
		lit->kind = isdate ? RL_DATE : RL_TIMESTAMP;
		return true;
	}
	return Expected(p, t, what);
}

static bool
IsTimeLit(const RuleLit *l)
{
	return l->kind == RL_NOW || l->kind == RL_AGO || l->kind == RL_FROM_NOW ||
		l->kind == RL_DATE || l->kind == RL_TIMESTAMP;
}

static bool
ParseTime(Parser *p, RuleLit *lit)
{
	RuleTok    *t = Peek(p, 0);

	if (!ParseLiteral(p, lit, TIME_WHAT))
		return false;
	if (!IsTimeLit(lit))
		return Expected(p, t, TIME_WHAT);
	return true;
}

/* A growable array of literals in the arena. */
static RuleLit *
GrowLits(Parser *p, RuleLit *lits, int n, int *cap)
{
	RuleLit    *bigger;

	if (n < *cap)
		return lits;
	*cap = *cap ? *cap * 2 : 4;
	bigger = RuleArenaAlloc(p->arena, sizeof(RuleLit) * *cap);
	if (bigger == NULL)
	{
		CoreErrorSet(p->err, CORE_ERR_OOM, 0, "out of memory");
		return NULL;
	}
	if (n)
		memcpy(bigger, lits, sizeof(RuleLit) * n);
	return bigger;
}

/* '(' literal {',' literal} ')'; only strings when strings_only. */
static bool
ParseList(Parser *p, Rule *r, bool strings_only)
{
	int			cap = 0;

	if (!ExpectKind(p, TK_LPAREN, "( to start the list of values"))
		return false;
	for (;;)
	{
		r->lits = GrowLits(p, r->lits, r->nlits, &cap);
		if (r->lits == NULL)
			return false;
		if (strings_only)
		{
			RuleTok    *t = Peek(p, 0);

			if (t->kind != TK_STRING)
				return Expected(p, t, "a stage name as a 'string'");
			Advance(p);
			r->lits[r->nlits].kind = RL_STRING;
			r->lits[r->nlits].pos = t->pos;
			r->lits[r->nlits].text = t->text;
		}
		else if (!ParseLiteral(p, &r->lits[r->nlits], VALUE_WHAT))
			return false;
		r->nlits++;
		if (Peek(p, 0)->kind == TK_COMMA)
		{
			Advance(p);
			continue;
		}
		return ExpectKind(p, TK_RPAREN, ", or ) in the list of values");
	}
}

static bool
SetOneLit(Parser *p, Rule *r, int n)
{
	r->lits = RuleArenaAlloc(p->arena, sizeof(RuleLit) * n);
	if (r->lits == NULL)
		return CoreErrorSet(p->err, CORE_ERR_OOM, 0, "out of memory");
	r->nlits = n;
	return true;
}

/* A string operand: tag, segment or stage name. */
static bool
ParseName(Parser *p, Rule *r, const char *what)
{
	RuleTok    *t = Peek(p, 0);

	if (t->kind != TK_STRING)
		return Expected(p, t, what);
	if (t->text[0] == '\0')
		return CoreErrorSet(p->err, CORE_ERR_SYNTAX, t->pos, "expected %s, found an empty string", what);
	if (!SetOneLit(p, r, 1))
		return false;
	Advance(p);
	r->lits[0].kind = RL_STRING;
	r->lits[0].pos = t->pos;
	r->lits[0].text = t->text;
	return true;
}

#define OPS_WHAT "an operator (=, !=, <, <=, >, >=, in, not in, is null, is not null, between, contains, starts with or ends with)"

/* What follows a value reference: cmp, in, is null, between, contains... */
static Rule *
ParseValueTail(Parser *p, Rule *r)
{
	RuleTok    *t = Peek(p, 0);

	if (t->kind == TK_OP)
	{
		Advance(p);
		r->kind = RK_CMP;
		r->cmp = t->op;
		if (!SetOneLit(p, r, 1) || !ParseLiteral(p, &r->lits[0], VALUE_WHAT))
			return NULL;
		return r;
	}
	if (AcceptKw(p, "is"))
	{
		r->kind = RK_NULL;
		r->negated = AcceptKw(p, "not");
		if (!ExpectKw(p, "null", r->negated ? "null after is not" : "null or not null after is"))
			return NULL;
		return r;
	}
	if (IsKw(t, "not"))
	{
		RuleTok    *n = Peek(p, 1);

		if (!IsKw(n, "in") && !IsKw(n, "between") && !IsKw(n, "contains") &&
			!IsKw(n, "starts") && !IsKw(n, "ends"))
		{
			Expected(p, n, "in, between, contains, starts with or ends with after not");
			return NULL;
		}
		Advance(p);
		r->negated = true;
		t = Peek(p, 0);
	}
	if (AcceptKw(p, "in"))
	{
		r->kind = RK_IN;
		return ParseList(p, r, false) ? r : NULL;
	}
	if (AcceptKw(p, "between"))
	{
		r->kind = RK_BETWEEN;
		if (!SetOneLit(p, r, 2) || !ParseLiteral(p, &r->lits[0], VALUE_WHAT) ||
			!ExpectKw(p, "and", "and between the two bounds of between") ||
			!ParseLiteral(p, &r->lits[1], VALUE_WHAT))
			return NULL;
		return r;
	}
	if (IsKw(t, "contains") || IsKw(t, "starts") || IsKw(t, "ends"))
	{
		RuleTok    *s;

		Advance(p);
		r->kind = RK_MATCH;
		r->match = IsKw(t, "contains") ? RM_CONTAINS : IsKw(t, "starts") ? RM_STARTS : RM_ENDS;
		if (r->match != RM_CONTAINS && !ExpectKw(p, "with", r->match == RM_STARTS ? "with after starts" : "with after ends"))
			return NULL;
		s = Peek(p, 0);
		if (s->kind != TK_STRING)
		{
			Expected(p, s, "a 'string'");
			return NULL;
		}
		Advance(p);
		if (!SetOneLit(p, r, 1))
			return NULL;
		r->lits[0].kind = RL_STRING;
		r->lits[0].pos = s->pos;
		r->lits[0].text = s->text;
		return r;
	}
	Expected(p, t, OPS_WHAT);
	return NULL;
}

/* A path of identifiers joined by dots (first, when given, is already read). */
static bool
ParsePath(Parser *p, Rule *r, const char *first)
{
	int			cap = 4;
	char	  **path = RuleArenaAlloc(p->arena, sizeof(char *) * cap);

	if (path == NULL)
		return CoreErrorSet(p->err, CORE_ERR_OOM, 0, "out of memory");
	if (first)
		path[r->ref.npath++] = (char *) first;
	while (Peek(p, 0)->kind == TK_DOT)
	{
		RuleTok    *t;

		Advance(p);
		t = Peek(p, 0);
		if (t->kind != TK_IDENT)
			return Expected(p, t, "a key name after the dot");
		Advance(p);
		if (r->ref.npath == cap)
		{
			char	  **bigger = RuleArenaAlloc(p->arena, sizeof(char *) * cap * 2);

			if (bigger == NULL)
				return CoreErrorSet(p->err, CORE_ERR_OOM, 0, "out of memory");
			memcpy(bigger, path, sizeof(char *) * cap);
			path = bigger;
			cap *= 2;
		}
		path[r->ref.npath++] = t->text;
	}
	r->ref.path = path;
	r->ref.name = path[0];
	return true;
}

/* field | attrs.path | (inside where) property path | amount */
static Rule *
ParseValueCond(Parser *p, bool prop)
{
	RuleTok    *t = Peek(p, 0);
	Rule	   *r = NewRule(p, RK_CMP, t->pos);
	RuleType	type;

	if (r == NULL)
		return NULL;
	r->ref.pos = t->pos;
	Advance(p);
	if (prop)
	{
		if (!ParsePath(p, r, t->text))
			return NULL;
		if (r->ref.npath == 1 && strcmp(t->text, "amount") == 0)
			r->ref.kind = RR_AMOUNT;
		else
			r->ref.kind = RR_PROP;
	}
	else if (strcmp(t->text, "attrs") == 0)
	{
		if (Peek(p, 0)->kind != TK_DOT)
		{
			Expected(p, Peek(p, 0), "a key after attrs, as in attrs.plan");
			return NULL;
		}
		r->ref.kind = RR_ATTRS;
		if (!ParsePath(p, r, NULL))
			return NULL;
	}
	else
	{
		r->ref.kind = RuleIsBuiltinColumn(t->text, &type) ? RR_COLUMN : RR_FIELD;
		r->ref.name = t->text;
		if (Peek(p, 0)->kind == TK_DOT)
		{
			Expected(p, Peek(p, 0), OPS_WHAT " (nested keys are read as attrs.a.b)");
			return NULL;
		}
	}
	return ParseValueTail(p, r);
}

/* where '(' prop-rule ')' */
static bool
ParseWhere(Parser *p, Rule *r, int depth)
{
	RuleTok    *open;

	if (!AcceptKw(p, "where"))
		return true;
	if (TooDeep(p, depth + 1))
		return false;
	open = Peek(p, 0);
	if (!ExpectKind(p, TK_LPAREN, "( after where"))
		return false;
	r->where = ParseOr(p, depth + 1, true);
	if (r->where == NULL)
		return false;
	if (Peek(p, 0)->kind != TK_RPAREN)
	{
		char		what[64];

		snprintf(what, sizeof(what), "and, or or ) to close the ( at character %d", open->pos);
		return Expected(p, Peek(p, 0), what);
	}
	Advance(p);
	return true;
}

/* within duration | since time | between time and time */
static bool
ParseWindow(Parser *p, Rule *r)
{
	if (AcceptKw(p, "within"))
	{
		r->window.kind = RW_WITHIN;
		return ParseDuration(p, &r->window.within);
	}
	if (AcceptKw(p, "since"))
	{
		r->window.kind = RW_SINCE;
		return ParseTime(p, &r->window.from);
	}
	if (AcceptKw(p, "between"))
	{
		r->window.kind = RW_BETWEEN;
		return ParseTime(p, &r->window.from) &&
			ExpectKw(p, "and", "and between the two times of between") &&
			ParseTime(p, &r->window.to);
	}
	return true;
}

static bool
ParseEventName(Parser *p, char **name, int *pos, const char *what)
{
	RuleTok    *t = Peek(p, 0);

	if ((t->kind != TK_IDENT && t->kind != TK_STRING) || t->text[0] == '\0')
		return Expected(p, t, what);
	Advance(p);
	*name = t->text;
	*pos = t->pos;
	return true;
}

/* did [not] event [where] [window] */
static Rule *
ParseDid(Parser *p, int depth)
{
	Rule	   *r = NewRule(p, RK_DID, Peek(p, 0)->pos);

	if (r == NULL)
		return NULL;
	Advance(p);
	r->negated = AcceptKw(p, "not");
	if (!ParseEventName(p, &r->event, &r->event_pos, "an event type such as purchase") ||
		!ParseWhere(p, r, depth) || !ParseWindow(p, r))
		return NULL;
	return r;
}

/* count|sum|avg|min|max|last '(' event[.prop] [where] ')' [window] cmp literal */
static Rule *
ParseAgg(Parser *p, int depth, RuleAggKind agg)
{
	Rule	   *r = NewRule(p, RK_AGG, Peek(p, 0)->pos);
	RuleTok    *t;

	if (r == NULL)
		return NULL;
	r->agg = agg;
	Advance(p);
	Advance(p);					/* ( */
	if (!ParseEventName(p, &r->event, &r->event_pos, "an event type such as purchase"))
		return NULL;
	if (agg == RA_SUM || agg == RA_AVG || agg == RA_MIN || agg == RA_MAX)
	{
		if (Peek(p, 0)->kind != TK_DOT)
		{
			Expected(p, Peek(p, 0), agg == RA_SUM ? ". and a property, as in sum(purchase.amount)" :
					 agg == RA_AVG ? ". and a property, as in avg(purchase.amount)" :
					 agg == RA_MIN ? ". and a property, as in min(purchase.amount)" :
					 ". and a property, as in max(purchase.amount)");
			return NULL;
		}
		Advance(p);
		if (!ParseEventName(p, &r->prop, &r->prop_pos, "a property name such as amount"))
			return NULL;
	}
	if (!ParseWhere(p, r, depth))
		return NULL;
	if (!ExpectKind(p, TK_RPAREN, Peek(p, 0)->kind == TK_DOT ? ") (count and last take no property)" :
					"where or )"))
		return NULL;
	if (agg != RA_LAST && !ParseWindow(p, r))
		return NULL;
	t = Peek(p, 0);
	if (t->kind != TK_OP)
	{
		Expected(p, t, agg == RA_LAST ? "a comparison operator (=, !=, <, <=, >, >=)" :
				 "within, since, between or a comparison operator (=, !=, <, <=, >, >=)");
		return NULL;
	}
	Advance(p);
	r->cmp = t->op;
	if (!SetOneLit(p, r, 1))
		return NULL;
	if (agg == RA_LAST)
	{
		if (!ParseTime(p, &r->lits[0]))
			return NULL;
	}
	else
	{
		t = Peek(p, 0);
		if (t->kind != TK_NUMBER)
		{
			Expected(p, t, "a number");
			return NULL;
		}
		if (!ParseLiteral(p, &r->lits[0], "a number"))
			return NULL;
		if (r->lits[0].kind != RL_NUMBER)
		{
			CoreErrorSet(p->err, CORE_ERR_SYNTAX, t->pos, "expected a number, found a time");
			return NULL;
		}
	}
	return r;
}

/* stage cmp 'x' | stage [not] in ('x', ...) */
static Rule *
ParseStage(Parser *p)
{
	Rule	   *r = NewRule(p, RK_STAGE_CMP, Peek(p, 0)->pos);
	RuleTok    *t;

	if (r == NULL)
		return NULL;
	Advance(p);
	t = Peek(p, 0);
	if (t->kind == TK_OP)
	{
		Advance(p);
		r->cmp = t->op;
		return ParseName(p, r, "a stage name as a 'string'") ? r : NULL;
	}
	r->kind = RK_STAGE_IN;
	if (IsKw(t, "not") && IsKw(Peek(p, 1), "in"))
	{
		Advance(p);
		r->negated = true;
	}
	if (!ExpectKw(p, "in", "a comparison operator (=, !=, <, <=, >, >=), in or not in after stage"))
		return NULL;
	return ParseList(p, r, true) ? r : NULL;
}

/* One condition (not and/or/not/parentheses). */
static Rule *
ParseCond(Parser *p, int depth, bool prop)
{
	RuleTok    *t = Peek(p, 0);
	int			agg;

	if (t->kind != TK_IDENT)
	{
		Expected(p, t, prop ? "a condition on an event property or amount" : "a condition");
		return NULL;
	}
	if (!prop)
	{
		if (IsKw(t, "tagged"))
		{
			Rule	   *r = NewRule(p, RK_TAGGED, t->pos);

			if (r == NULL)
				return NULL;
			Advance(p);
			return ParseName(p, r, "a tag name as a 'string' after tagged") ? r : NULL;
		}
		if (IsKw(t, "in"))
		{
			Rule	   *r = NewRule(p, RK_SEGMENT, t->pos);

			if (r == NULL)
				return NULL;
			Advance(p);
			if (!ExpectKw(p, "segment", "segment after in"))
				return NULL;
			return ParseName(p, r, "a segment name as a 'string' after in segment") ? r : NULL;
		}
		if (IsKw(t, "stage"))
			return ParseStage(p);
		if (IsKw(t, "did"))
			return ParseDid(p, depth);
		if (Peek(p, 1)->kind == TK_LPAREN)
			for (agg = RA_COUNT; agg <= RA_LAST; agg++)
				if (IsKw(t, agg_names[agg]))
					return ParseAgg(p, depth, (RuleAggKind) agg);
	}
	return ParseValueCond(p, prop);
}

static Rule *
ParsePrimary(Parser *p, int depth, bool prop)
{
	RuleTok    *t = Peek(p, 0);

	if (t->kind == TK_LPAREN)
	{
		Rule	   *r;

		if (TooDeep(p, depth + 1))
			return NULL;
		Advance(p);
		r = ParseOr(p, depth + 1, prop);
		if (r == NULL)
			return NULL;
		if (Peek(p, 0)->kind != TK_RPAREN)
		{
			char		what[64];

			snprintf(what, sizeof(what), "and, or or ) to close the ( at character %d", t->pos);
			Expected(p, Peek(p, 0), what);
			return NULL;
		}
		Advance(p);
		return r;
	}
	if (IsKw(t, "true") || IsKw(t, "false"))
	{
		Advance(p);
		return NewRule(p, IsKw(t, "true") ? RK_TRUE : RK_FALSE, t->pos);
	}
	return ParseCond(p, depth, prop);
}

static Rule *
ParseNot(Parser *p, int depth, bool prop)
{
	RuleTok    *t = Peek(p, 0);
	Rule	   *r;

	if (!IsKw(t, "not"))
		return ParsePrimary(p, depth, prop);
	if (TooDeep(p, depth + 1))
		return NULL;
	Advance(p);
	r = NewRule(p, RK_NOT, t->pos);
	if (r == NULL)
		return NULL;
	r->kids = RuleArenaAlloc(p->arena, sizeof(Rule *));
	if (r->kids == NULL)
	{
		CoreErrorSet(p->err, CORE_ERR_OOM, 0, "out of memory");
		return NULL;
	}
	r->nkids = 1;
	r->kids[0] = ParseNot(p, depth + 1, prop);
	return r->kids[0] ? r : NULL;
}

/* Append kid to an n-ary node, splicing kids of the same kind (flattening). */
static bool
AddKid(Parser *p, Rule *r, Rule *kid, int *cap)
{
	int			n = kid->kind == r->kind ? kid->nkids : 1;
	Rule	  **src = kid->kind == r->kind ? kid->kids : &kid;

	if (r->nkids + n > *cap)
	{
		Rule	  **bigger;

		while (r->nkids + n > *cap)
			*cap = *cap ? *cap * 2 : 4;
		bigger = RuleArenaAlloc(p->arena, sizeof(Rule *) * *cap);
		if (bigger == NULL)
			return CoreErrorSet(p->err, CORE_ERR_OOM, 0, "out of memory");
		if (r->nkids)
			memcpy(bigger, r->kids, sizeof(Rule *) * r->nkids);
		r->kids = bigger;
	}
	memcpy(r->kids + r->nkids, src, sizeof(Rule *) * n);
	r->nkids += n;
	return true;
}

/* One level of and or or: operand {kw operand}. */
static Rule *
ParseNary(Parser *p, int depth, bool prop, RuleKind kind)
{
	Rule	   *first = kind == RK_OR ? ParseNary(p, depth, prop, RK_AND) : ParseNot(p, depth, prop);
	const char *kw = kind == RK_OR ? "or" : "and";
	Rule	   *r;
	int			cap = 0;

	if (first == NULL || !IsKw(Peek(p, 0), kw))
		return first;
	r = NewRule(p, kind, first->pos);
	if (r == NULL || !AddKid(p, r, first, &cap))
		return NULL;
	while (AcceptKw(p, kw))
	{
		Rule	   *next = kind == RK_OR ? ParseNary(p, depth, prop, RK_AND) : ParseNot(p, depth, prop);

		if (next == NULL || !AddKid(p, r, next, &cap))
			return NULL;
	}
	return r;
}

static Rule *
ParseOr(Parser *p, int depth, bool prop)
{
	return ParseNary(p, depth, prop, RK_OR);
}

/*
 * Parse a rule.  Returns the tree (free with RuleFree) or NULL with err set.
 * Names are not resolved and types not checked yet: see RuleCheck.
 */
Rule *
RuleParse(const CoreAllocator *a, const char *src, size_t len, CoreError *err)
{
	RuleArena	arena = {a, NULL, NULL, 0};
	RuleArena  *home;
	RuleTokens	toks;
	Parser		p;
	Rule	   *r = NULL;

	CoreErrorClear(err);
	if (RuleLex(&arena, src, len, &toks, err))
	{
		p.arena = &arena;
		p.toks = toks.toks;
		p.ntoks = toks.ntoks;
		p.i = 0;
		p.err = err;
		r = ParseOr(&p, 0, false);
		if (r && Peek(&p, 0)->kind != TK_EOF)
		{
			Expected(&p, Peek(&p, 0), "and, or or the end of the rule");
			r = NULL;
		}
	}
	if (r)
	{
		home = RuleArenaAlloc(&arena, sizeof(RuleArena));
		if (home == NULL)
		{
			CoreErrorSet(err, CORE_ERR_OOM, 0, "out of memory");
			r = NULL;
		}
		else
		{
			*home = arena;
			r->arena = home;
			return r;
		}
	}
	RuleArenaFree(&arena);
	return NULL;
}

/* Release a tree returned by RuleParse. */
void
RuleFree(const CoreAllocator *a, Rule *r)
{
	RuleArena	arena;

	if (r == NULL || r->arena == NULL)
		return;
	arena = *(RuleArena *) r->arena;
	RuleArenaFree(&arena);
}
