/*
 * rule_sql.c — compile a checked rule into SQL over segment.contacts (alias
 * c).  Every condition becomes a boolean expression that is never NULL
 * (two-valued logic).  Two forms with identical results:
 *
 *   set form (per_contact = false): "c.id IN (SELECT contact_id ...)" so
 *     the planner uses semi-joins, or hashed subplans under OR / NOT, when
 *     evaluating the whole base;
 *   per-contact form: correlated EXISTS / scalar subqueries that probe the
 *     (type, contact_id) and (contact_id, type, occurred_at) indexes, for
 *     evaluating one or a few contacts.
 *
 * Per-contact aggregates in segment.event_stats answer every event
 * condition without where and without a window on counts or sums; only the
 * rest reads segment.events.  Literals are quoted here (the tree holds
 * validated numbers, identifiers and arbitrary strings), so no rule can
 * inject SQL.  Pure C: no PostgreSQL headers.
 */
#include "rule.h"

#include <stdio.h>
#include <string.h>

typedef struct Compiler
{
	CoreBuf    *out;
	bool		per_contact;
	CoreError  *err;
	/*
	 * positive: the expression being written is a conjunct or disjunct of a
	 * WHERE clause with no NOT above it, where NULL and false both reject, so
	 * value conditions need no IS TRUE (which would hide them from index
	 * matching and selectivity estimates).
	 */
	bool		positive;
	/*
	 * conjunct: the expression is one of the top-level AND's conjuncts of
	 * members()' WHERE clause (no OR or NOT above it), where a complement
	 * (not did T, count(T) < n) is written NOT EXISTS, which the planner
	 * turns into an anti-join: probing only the rows the other conjuncts
	 * leave, or one hash shared by parallel workers, instead of a hashed NOT
	 * IN built by every worker and probed for every contact.
	 */
	bool		conjunct;
} Compiler;

static void CompileNode(Compiler *c, const Rule *r, const char *alias);
static void CompileSetCond(Compiler *c, const Rule *r, bool invert);

/* A string literal: '...' with quotes doubled, E'...' when it has backslashes. */
static void
SqlQuote(CoreBuf *out, const char *s)
{
	const char *q;

	if (strchr(s, '\\'))
		CoreBufAppendChar(out, 'E');
	CoreBufAppendChar(out, '\'');
	for (q = s; *q; q++)
	{
		if (*q == '\'' || *q == '\\')
			CoreBufAppendChar(out, *q);
		CoreBufAppendChar(out, *q);
	}
	CoreBufAppendChar(out, '\'');
}

/* A validated decimal (digits, optional minus and fraction). */
static void
SqlNumber(CoreBuf *out, const char *text)
{
	if (text[0] == '-')
		CoreBufPrintf(out, "(%s)", text);
	else
		CoreBufAppendStr(out, text);
}

static void
SqlInterval(CoreBuf *out, const RuleLit *l)
{
	CoreBufPrintf(out, "interval '%ld %ss'", l->amount, RuleUnitText(l->unit));
}

static bool
TimestampHasZone(const char *s)
{
	return strlen(s) > 16 && (strchr(s + 16, 'Z') || strchr(s + 16, '+') || strchr(s + 16, '-'));
}

/* A time literal as timestamptz, or as a (UTC) date when as_date. */
static void
SqlTime(CoreBuf *out, const RuleLit *l, bool as_date)
{
	switch (l->kind)
	{
		case RL_DATE:
			if (as_date)
				CoreBufPrintf(out, "'%s'::date", l->text);
			else
				CoreBufPrintf(out, "'%s 00:00:00+00'::timestamptz", l->text);
			return;
		case RL_TIMESTAMP:
			if (as_date)
				CoreBufAppendStr(out, "(");
			CoreBufPrintf(out, "'%s%s'::timestamptz", l->text, TimestampHasZone(l->text) ? "" : "+00");
			if (as_date)
				CoreBufAppendStr(out, " AT TIME ZONE 'UTC')::date");
			return;
		default:
			break;
	}
	if (as_date)
		CoreBufAppendStr(out, "(");
	if (l->kind == RL_NOW)
		CoreBufAppendStr(out, "segment.now()");
	else
	{
		CoreBufPrintf(out, "(segment.now() %s ", l->kind == RL_AGO ? "-" : "+");
		SqlInterval(out, l);
		CoreBufAppendChar(out, ')');
	}
	if (as_date)
		CoreBufAppendStr(out, " AT TIME ZONE 'UTC')::date");
}

/* A literal, typed for a value of type t. */
static void
SqlLit(CoreBuf *out, const RuleLit *l, RuleType t)
{
	switch (l->kind)
	{
		case RL_NUMBER:
			SqlNumber(out, l->text);
			break;
		case RL_STRING:
			SqlQuote(out, l->text);
			break;
		case RL_BOOL:
			CoreBufAppendStr(out, l->boolval ? "true" : "false");
			break;
		default:
			SqlTime(out, l, t == RT_DATE);
			break;
	}
}

/* base->'key' or base #> '{"a","b"}' (jsonb); text form with ->> / #>>. */
static void
SqlJsonPath(CoreBuf *out, const char *base, const RuleRef *ref, bool as_text)
{
	int			i;

	if (ref->kind == RR_FIELD || ref->npath == 1)
	{
		CoreBufPrintf(out, "(%s%s", base, as_text ? "->>" : "->");
		SqlQuote(out, ref->kind == RR_FIELD ? ref->name : ref->path[0]);
		CoreBufAppendChar(out, ')');
		return;
	}
	CoreBufPrintf(out, "(%s%s'{", base, as_text ? " #>> " : " #> ");
	for (i = 0; i < ref->npath; i++)
	{
		/* identifiers: no quote, backslash or brace to escape */
		CoreBufPrintf(out, "%s\"%s\"", i ? "," : "", ref->path[i]);
	}
	CoreBufAppendStr(out, "}')");
}

/* A jsonb value read as a number or boolean only when it is one. */
static void
SqlJsonTyped(CoreBuf *out, const char *base, const RuleRef *ref, const char *jtype, const char *sqltype)
{
	if (strcmp(jtype, "number") == 0 && (ref->kind == RR_FIELD || ref->npath == 1))
	{
		/* one key: one lookup, no intermediate jsonb (segment.jsonb_number, rule_jsonb.c) */
		CoreBufPrintf(out, "segment.jsonb_number(%s, ", base);
		SqlQuote(out, ref->kind == RR_FIELD ? ref->name : ref->path[0]);
		CoreBufAppendChar(out, ')');
		return;
	}
	CoreBufAppendStr(out, "(CASE WHEN jsonb_typeof(");
	SqlJsonPath(out, base, ref, false);
	CoreBufPrintf(out, ") = '%s' THEN ", jtype);
	SqlJsonPath(out, base, ref, false);
	CoreBufPrintf(out, "::%s END)", sqltype);
}

/*
 * The value a reference reads.  Untyped references (attrs paths, event
 * properties) are read as the kind of the literal they meet: a number, a
 * boolean, otherwise text.
 */
static void
SqlValue(CoreBuf *out, const RuleRef *ref, const char *alias, RuleLitKind as)
{
	char		base[32];

	snprintf(base, sizeof(base), "%s.%s", alias, ref->kind == RR_PROP ? "properties" : "attrs");
	switch (ref->kind)
	{
		case RR_COLUMN:
			CoreBufPrintf(out, "%s.%s", alias, ref->name);
			return;
		case RR_AMOUNT:
			CoreBufPrintf(out, "%s.amount", alias);
			return;
		case RR_FIELD:
			switch (ref->type)
			{
				case RT_NUMBER:
					SqlJsonTyped(out, base, ref, "number", "numeric");
					return;
				case RT_BOOLEAN:
					SqlJsonTyped(out, base, ref, "boolean", "boolean");
					return;
				case RT_DATE:
					SqlJsonPath(out, base, ref, true);
					CoreBufAppendStr(out, "::date");
					return;
				case RT_TIMESTAMP:
					SqlJsonPath(out, base, ref, true);
					CoreBufAppendStr(out, "::timestamptz");
					return;
				case RT_TEXT_ARRAY:
					SqlJsonPath(out, base, ref, false);
					return;
				default:
					SqlJsonPath(out, base, ref, true);
					return;
			}
		default:
			if (as == RL_NUMBER)
				SqlJsonTyped(out, base, ref, "number", "numeric");
			else if (as == RL_BOOL)
				SqlJsonTyped(out, base, ref, "boolean", "boolean");
			else
				SqlJsonPath(out, base, ref, true);
			return;
	}
}

static const char *
SqlCmp(RuleCmp op)
{
	static const char *const ops[] = {"=", "<>", "<", "<=", ">", ">="};

	return ops[op];
}

/* A LIKE pattern for contains / starts with / ends with, escaped. */
static void
SqlLikePattern(CoreBuf *out, const Rule *r)
{
	CoreBuf		pat;
	const char *q;

	CoreBufInit(&pat, out->a, 64);
	if (r->match != RM_STARTS)
		CoreBufAppendChar(&pat, '%');
	for (q = r->lits[0].text; *q; q++)
	{
		if (*q == '%' || *q == '_' || *q == '\\')
			CoreBufAppendChar(&pat, '\\');
		CoreBufAppendChar(&pat, *q);
	}
	if (r->match != RM_ENDS)
		CoreBufAppendChar(&pat, '%');
	if (pat.oom)
		out->oom = true;
	else
		SqlQuote(out, pat.data);
	CoreBufFree(&pat);
}

static void
CompileValueCond(Compiler *c, const Rule *r, const char *alias)
{
	CoreBuf    *out = c->out;
	RuleLitKind as = r->nlits > 0 ? r->lits[0].kind : RL_STRING;
	int			i;
	char		base[32];
	/* never NULL, unless NULL rejects like false here */
	const char *open = c->positive ? "(" : "((";
	const char *close = c->positive ? ")" : ") IS TRUE)";

	snprintf(base, sizeof(base), "%s.%s", alias, r->ref.kind == RR_PROP ? "properties" : "attrs");
	switch (r->kind)
	{
		case RK_NULL:
			CoreBufAppendChar(out, '(');
			if (r->ref.kind == RR_COLUMN || r->ref.kind == RR_AMOUNT)
				SqlValue(out, &r->ref, alias, RL_STRING);
			else
				SqlJsonPath(out, base, &r->ref, true);
			CoreBufAppendStr(out, r->negated ? " IS NOT NULL)" : " IS NULL)");
			return;
		case RK_MATCH:
			if (r->ref.type == RT_TEXT_ARRAY)
			{
				/* membership; a missing or non-array value matches neither way */
				CoreBufAppendStr(out, "((jsonb_typeof(");
				SqlJsonPath(out, base, &r->ref, false);
				CoreBufAppendStr(out, r->negated ? ") = 'array' AND NOT (" : ") = 'array' AND (");
				SqlJsonPath(out, base, &r->ref, false);
				CoreBufAppendStr(out, " ? ");
				SqlQuote(out, r->lits[0].text);
				CoreBufAppendStr(out, ")) IS TRUE)");
				return;
			}
			CoreBufAppendStr(out, open);
			SqlValue(out, &r->ref, alias, RL_STRING);
			CoreBufAppendStr(out, r->negated ? " NOT LIKE " : " LIKE ");
			SqlLikePattern(out, r);
			CoreBufAppendStr(out, close);
			return;
		case RK_CMP:
			CoreBufAppendStr(out, open);
			SqlValue(out, &r->ref, alias, as);
			CoreBufPrintf(out, " %s ", SqlCmp(r->cmp));
			SqlLit(out, &r->lits[0], r->ref.type);
			CoreBufAppendStr(out, close);
			return;
		case RK_IN:
			CoreBufAppendStr(out, open);
			SqlValue(out, &r->ref, alias, as);
			CoreBufAppendStr(out, r->negated ? " NOT IN (" : " IN (");
			for (i = 0; i < r->nlits; i++)
			{
				if (i)
					CoreBufAppendStr(out, ", ");
				SqlLit(out, &r->lits[i], r->ref.type);
			}
			CoreBufAppendChar(out, ')');
			CoreBufAppendStr(out, close);
			return;
		case RK_BETWEEN:
			CoreBufAppendStr(out, open);
			SqlValue(out, &r->ref, alias, as);
			CoreBufAppendStr(out, r->negated ? " NOT BETWEEN " : " BETWEEN ");
			SqlLit(out, &r->lits[0], r->ref.type);
			CoreBufAppendStr(out, " AND ");
			SqlLit(out, &r->lits[1], r->ref.type);
			CoreBufAppendStr(out, close);
			return;
		default:
			return;
	}
}

/* Sign of a canonical decimal: -1, 0 or 1. */
static int
NumberSign(const char *s)
{
	bool		neg = s[0] == '-';

	for (; *s; s++)
		if (*s >= '1' && *s <= '9')
			return neg ? -1 : 1;
	return 0;
}

/* Does "0 op n" hold?  (count and sum of a contact without events are 0) */
static bool
ZeroSatisfies(RuleCmp op, const char *n)
{
	int			s = NumberSign(n);

	switch (op)
	{
		case RC_EQ:
			return s == 0;
		case RC_NE:
			return s != 0;
		case RC_LT:
			return s > 0;
		case RC_LE:
			return s >= 0;
		case RC_GT:
			return s < 0;
		case RC_GE:
			return s <= 0;
	}
	return false;
}

/* Is the set form of an aggregate a complement (0 satisfies the comparison)? */
static bool
AggComplement(const Rule *r)
{
	return (r->agg == RA_COUNT || r->agg == RA_SUM) && ZeroSatisfies(r->cmp, r->lits[0].text);
}

/*
 * Can segment.event_stats answer this event condition?  A window on did is
 * answered by last_at for one contact; for the whole base the (type,
 * occurred_at) index of events reads only the window, which event_stats
 * (last_at not indexed, so updates stay HOT) cannot.
 */
static bool
UsesStats(const Rule *r, bool per_contact)
{
	if (r->where != NULL)
		return false;
	if (r->kind == RK_DID)
		return r->window.kind == RW_NONE || (per_contact && r->window.kind != RW_BETWEEN);
	if (r->window.kind != RW_NONE)
		return false;
	if (r->agg == RA_COUNT || r->agg == RA_LAST)
		return true;
	return strcmp(r->prop, "amount") == 0;
}

/* Conditions on e: type, window, where. */
static void
EventFilter(Compiler *c, const Rule *r)
{
	CoreBuf    *out = c->out;

	CoreBufAppendStr(out, "e.type = ");
	SqlQuote(out, r->event);
	switch (r->window.kind)
	{
		case RW_NONE:
			break;
		case RW_WITHIN:
			CoreBufAppendStr(out, " AND e.occurred_at >= (segment.now() - ");
			SqlInterval(out, &r->window.within);
			CoreBufAppendChar(out, ')');
			break;
		case RW_SINCE:
			CoreBufAppendStr(out, " AND e.occurred_at >= ");
			SqlTime(out, &r->window.from, false);
			break;
		case RW_BETWEEN:
			CoreBufAppendStr(out, " AND e.occurred_at BETWEEN ");
			SqlTime(out, &r->window.from, false);
			CoreBufAppendStr(out, " AND ");
			SqlTime(out, &r->window.to, false);
			break;
	}
	if (r->where)
	{
		/* a conjunct of the subquery's WHERE, whatever surrounds the subquery */
		bool		positive = c->positive,
					conjunct = c->conjunct;

		CoreBufAppendStr(out, " AND ");
		c->positive = true;
		c->conjunct = false;
		CompileNode(c, r->where, "e");
		c->positive = positive;
		c->conjunct = conjunct;
	}
}

/* The aggregate over raw events (alias e). */
static void
RawAggregate(CoreBuf *out, const Rule *r)
{
	RuleRef		prop;
	char	   *path[1];

	if (r->agg == RA_COUNT)
	{
		CoreBufAppendStr(out, "count(*)");
		return;
	}
	if (r->agg == RA_LAST)
	{
		CoreBufAppendStr(out, "max(e.occurred_at)");
		return;
	}
	memset(&prop, 0, sizeof(prop));
	path[0] = r->prop;
	prop.kind = strcmp(r->prop, "amount") == 0 ? RR_AMOUNT : RR_PROP;
	prop.name = r->prop;
	prop.path = path;
	prop.npath = 1;
	CoreBufAppendStr(out, r->agg == RA_SUM ? "sum(" : r->agg == RA_AVG ? "avg(" :
					 r->agg == RA_MIN ? "min(" : "max(");
	SqlValue(out, &prop, "e", RL_NUMBER);
	CoreBufAppendChar(out, ')');
}

/* The aggregate as read from segment.event_stats (alias s). */
static const char *
StatsAggregate(const Rule *r)
{
	switch (r->agg)
	{
		case RA_COUNT:
			return "s.count";
		case RA_SUM:
			return "s.sum_amount";
		case RA_AVG:
			return "(s.sum_amount / nullif(s.amount_count, 0))";
		case RA_MIN:
			return "s.min_amount";
		case RA_MAX:
			return "s.max_amount";
		case RA_LAST:
			return "s.last_at";
	}
	return "NULL";
}

static void
AggLiteral(CoreBuf *out, const Rule *r)
{
	SqlLit(out, &r->lits[0], RT_TIMESTAMP);
}

/*
 * A time relative to segment.now(), evaluated once per statement: compared
 * with a column no index covers (event_stats.last_at, an aggregate), the
 * expression itself would be evaluated for every row.  As a scalar subquery
 * it is an InitPlan.
 */
static void
SqlTimeOnce(CoreBuf *out, const RuleLit *l)
{
	bool		relative = l->kind == RL_NOW || l->kind == RL_AGO || l->kind == RL_FROM_NOW;

	if (relative)
		CoreBufAppendStr(out, "(SELECT ");
	SqlTime(out, l, false);
	if (relative)
		CoreBufAppendChar(out, ')');
}

/* The literal of an aggregate condition of the set form (time literals once per statement). */
static void
AggLiteralOnce(CoreBuf *out, const Rule *r)
{
	if (r->agg == RA_LAST)
		SqlTimeOnce(out, &r->lits[0]);
	else
		AggLiteral(out, r);
}

static void
StatsFilter(CoreBuf *out, const Rule *r)
{
	CoreBufAppendStr(out, "s.type = ");
	SqlQuote(out, r->event);
	if (r->kind == RK_DID && r->window.kind == RW_WITHIN)
	{
		CoreBufAppendStr(out, " AND s.last_at >= (segment.now() - ");
		SqlInterval(out, &r->window.within);
		CoreBufAppendChar(out, ')');
	}
	else if (r->kind == RK_DID && r->window.kind == RW_SINCE)
	{
		CoreBufAppendStr(out, " AND s.last_at >= ");
		SqlTime(out, &r->window.from, false);
	}
}

static void
CompileDid(Compiler *c, const Rule *r)
{
	CoreBuf    *out = c->out;
	bool		stats = UsesStats(r, c->per_contact);

	if (c->per_contact)
	{
		CoreBufAppendStr(out, r->negated ? "(NOT EXISTS (SELECT 1 FROM " : "(EXISTS (SELECT 1 FROM ");
		if (stats)
		{
			CoreBufAppendStr(out, "segment.event_stats s WHERE s.contact_id = c.id AND ");
			StatsFilter(out, r);
		}
		else
		{
			CoreBufAppendStr(out, "segment.events e WHERE e.contact_id = c.id AND ");
			EventFilter(c, r);
		}
		CoreBufAppendStr(out, "))");
		return;
	}
	CompileSetCond(c, r, false);
}

/* The set of contacts of did / did not (the latter is its complement). */
static void
DidSubquery(Compiler *c, const Rule *r, bool distinct)
{
	CoreBuf    *out = c->out;

	if (UsesStats(r, false))
	{
		CoreBufAppendStr(out, "SELECT s.contact_id FROM segment.event_stats s WHERE ");
		StatsFilter(out, r);
	}
	else
	{
		CoreBufAppendStr(out, distinct ? "SELECT DISTINCT e.contact_id FROM segment.events e WHERE " :
						 "SELECT e.contact_id FROM segment.events e WHERE ");
		EventFilter(c, r);
	}
}

static void
CompileAgg(Compiler *c, const Rule *r)
{
	CoreBuf    *out = c->out;
	bool		stats = UsesStats(r, c->per_contact);
	const char *op = SqlCmp(r->cmp);

	if (c->per_contact)
	{
		/* count and sum of nothing are 0; the others are NULL (false) */
		bool		nullable = !(r->agg == RA_COUNT || r->agg == RA_SUM);

		CoreBufAppendStr(out, nullable ? "coalesce((SELECT " : "(coalesce((SELECT ");
		if (stats)
		{
			CoreBufPrintf(out, "%s FROM segment.event_stats s WHERE s.contact_id = c.id AND ", StatsAggregate(r));
			StatsFilter(out, r);
		}
		else
		{
			RawAggregate(out, r);
			CoreBufAppendStr(out, " FROM segment.events e WHERE e.contact_id = c.id AND ");
			EventFilter(c, r);
		}
		CoreBufAppendStr(out, nullable ? ")" : "), 0)");
		CoreBufPrintf(out, " %s ", op);
		AggLiteral(out, r);
		CoreBufAppendStr(out, nullable ? ", false)" : ")");
		return;
	}

	CompileSetCond(c, r, false);
}

/*
 * Set form of an aggregate: the contacts whose aggregate satisfies the
 * comparison; when a contact without such events (count or sum 0)
 * satisfies it too, the contacts whose aggregate fails it, to be taken as
 * a complement.  A sum without amounts is NULL here and 0 by the language:
 * NULL fails "sum cmp n" and is not among the failures of the complement
 * either, which is right exactly when 0 satisfies (complement) or fails
 * (direct).
 */
static void
AggSubquery(Compiler *c, const Rule *r)
{
	CoreBuf    *out = c->out;
	bool		zero = AggComplement(r);
	const char *op = SqlCmp(r->cmp);

	if (UsesStats(r, false))
	{
		CoreBufAppendStr(out, "SELECT s.contact_id FROM segment.event_stats s WHERE ");
		StatsFilter(out, r);
		CoreBufPrintf(out, zero ? " AND NOT (%s %s " : " AND %s %s ", StatsAggregate(r), op);
		AggLiteralOnce(out, r);
		CoreBufAppendStr(out, zero ? ")" : "");
	}
	else
	{
		CoreBufAppendStr(out, "SELECT e.contact_id FROM segment.events e WHERE ");
		EventFilter(c, r);
		CoreBufAppendStr(out, zero ? " GROUP BY e.contact_id HAVING NOT (" : " GROUP BY e.contact_id HAVING ");
		RawAggregate(out, r);
		CoreBufPrintf(out, " %s ", op);
		AggLiteralOnce(out, r);
		CoreBufAppendStr(out, zero ? ")" : "");
	}
}

/*
 * Stats groups.  Within an and, the conditions on one event type T that
 * segment.event_stats answers from the contact's row of type T (did and did
 * not without where, with no window or within / since; aggregates that
 * UsesStats) are all decided by that row once one of them requires the row
 * to exist (an anchor: did T, or an aggregate a contact without such events
 * fails).  The set form then reads the rows of type T once, with every
 * condition as a predicate on the row: "did purchase and not did purchase
 * within 180 days" is last_at < now - 180 days on the purchase rows, not a
 * set difference with the raw events of the last 180 days.
 */
static const char *
RowEvent(const Rule *r)
{
	if (r->kind == RK_NOT)
		return RowEvent(r->kids[0]);
	if (r->kind == RK_DID && r->where == NULL && r->window.kind != RW_BETWEEN)
		return r->event;
	if (r->kind == RK_AGG && UsesStats(r, false))
		return r->event;
	return NULL;
}

static bool
RowAnchor(const Rule *r)
{
	if (RowEvent(r) == NULL)
		return false;
	if (r->kind == RK_DID)
		return !r->negated;
	if (r->kind == RK_AGG)
		return !AggComplement(r);
	return false;
}

/* The first kid of r in the stats group of kid i, or -1 when kid i is in none (or r is no and). */
static int
StatsGroupOf(const Rule *r, int i)
{
	const char *ev;
	int			first = -1;
	int			n = 0;
	int			j;
	bool		anchor = false;

	if (r->kind != RK_AND || (ev = RowEvent(r->kids[i])) == NULL)
		return -1;
	for (j = 0; j < r->nkids; j++)
	{
		const char *e = RowEvent(r->kids[j]);

		if (e == NULL || strcmp(e, ev) != 0)
			continue;
		if (first < 0)
			first = j;
		n++;
		anchor |= RowAnchor(r->kids[j]);
	}
	return n >= 2 && anchor ? first : -1;
}

/*
 * A condition as a predicate on its event_stats row s (which exists).
 * positive: NULL may stand for false; otherwise the predicate is never NULL.
 */
static void
RowPredicate(Compiler *c, const Rule *r, bool positive)
{
	CoreBuf    *out = c->out;

	if (r->kind == RK_NOT)
	{
		CoreBufAppendStr(out, "(NOT ");
		RowPredicate(c, r->kids[0], false);
		CoreBufAppendChar(out, ')');
		return;
	}
	if (r->kind == RK_DID)
	{
		if (r->window.kind == RW_NONE)
		{
			CoreBufAppendStr(out, r->negated ? "false" : "true");
			return;
		}
		CoreBufAppendStr(out, r->negated ? "(NOT (s.last_at >= " : "(s.last_at >= ");
		if (r->window.kind == RW_WITHIN)
		{
			CoreBufAppendStr(out, "(SELECT segment.now() - ");
			SqlInterval(out, &r->window.within);
			CoreBufAppendChar(out, ')');
		}
		else
			SqlTimeOnce(out, &r->window.from);
		CoreBufAppendStr(out, r->negated ? "))" : ")");
		return;
	}
	/* count and last_at are never NULL; a sum without amounts is 0; avg, min, max of none fail */
	if (r->agg == RA_SUM && (!positive || ZeroSatisfies(r->cmp, r->lits[0].text)))
		CoreBufPrintf(out, "(coalesce(s.sum_amount, 0) %s ", SqlCmp(r->cmp));
	else if (!positive && (r->agg == RA_AVG || r->agg == RA_MIN || r->agg == RA_MAX))
		CoreBufPrintf(out, "coalesce((%s %s ", StatsAggregate(r), SqlCmp(r->cmp));
	else
		CoreBufPrintf(out, "(%s %s ", StatsAggregate(r), SqlCmp(r->cmp));
	AggLiteralOnce(out, r);
	CoreBufAppendStr(out, !positive && (r->agg == RA_AVG || r->agg == RA_MIN || r->agg == RA_MAX) ?
					 "), false)" : ")");
}

/* The contacts of the stats group led by kid i of r: one scan of event_stats. */
static void
StatsGroupSubquery(Compiler *c, const Rule *r, int i)
{
	int			j;

	CoreBufAppendStr(c->out, "SELECT s.contact_id FROM segment.event_stats s WHERE s.type = ");
	SqlQuote(c->out, r->kids[i]->kind == RK_NOT ? RowEvent(r->kids[i]) : r->kids[i]->event);
	for (j = i; j < r->nkids; j++)
	{
		const Rule *k = r->kids[j];

		if (StatsGroupOf(r, j) != i ||
			(k->kind == RK_DID && !k->negated && k->window.kind == RW_NONE))
			continue;			/* not in the group, or "true" */
		CoreBufAppendStr(c->out, " AND ");
		RowPredicate(c, r->kids[j], true);
	}
}

/* tagged / in segment / stage: " FROM ... WHERE ..." of the lookup table; returns its contact column. */
static const char *
LookupBody(Compiler *c, const Rule *r)
{
	CoreBuf    *out = c->out;
	int			i;

	switch (r->kind)
	{
		case RK_TAGGED:
			CoreBufAppendStr(out, " FROM segment.contact_tags t WHERE t.tag = ");
			SqlQuote(out, r->lits[0].text);
			CoreBufAppendStr(out, " AND (t.expires_at IS NULL OR t.expires_at > segment.now())");
			return "t.contact_id";
		case RK_SEGMENT:
			CoreBufAppendStr(out, " FROM segment.segment_members m JOIN segment.segments g ON g.id = m.segment_id WHERE g.name = ");
			SqlQuote(out, r->lits[0].text);
			return "m.contact_id";
		default:
			if (r->kind == RK_STAGE_IN)
			{
				CoreBufAppendStr(out, " FROM segment.contact_stages cs WHERE cs.stage");
				CoreBufAppendStr(out, r->negated ? " NOT IN (" : " IN (");
				for (i = 0; i < r->nlits; i++)
				{
					if (i)
						CoreBufAppendStr(out, ", ");
					SqlQuote(out, r->lits[i].text);
				}
				CoreBufAppendChar(out, ')');
			}
			else if (r->cmp == RC_EQ || r->cmp == RC_NE)
			{
				CoreBufPrintf(out, " FROM segment.contact_stages cs WHERE cs.stage %s ", SqlCmp(r->cmp));
				SqlQuote(out, r->lits[0].text);
			}
			else
			{
				/* ordered by position; a stage that no longer exists matches nobody */
				CoreBufPrintf(out, " FROM segment.contact_stages cs JOIN segment.stages st ON st.name = cs.stage WHERE st.position %s (SELECT p.position FROM segment.stages p WHERE p.name = ",
							  SqlCmp(r->cmp));
				SqlQuote(out, r->lits[0].text);
				CoreBufAppendChar(out, ')');
			}
			return "cs.contact_id";
	}
}

static const char *
LookupColumn(const Rule *r)
{
	return r->kind == RK_TAGGED ? "t.contact_id" : r->kind == RK_SEGMENT ? "m.contact_id" : "cs.contact_id";
}

static void
CompileLookup(Compiler *c, const Rule *r)
{
	const char *col;

	if (!c->per_contact)
	{
		CompileSetCond(c, r, false);
		return;
	}
	CoreBufAppendStr(c->out, "(EXISTS (SELECT 1");
	col = LookupBody(c, r);
	CoreBufPrintf(c->out, " AND %s = c.id))", col);
}

/*
 * The subquery of the contacts an event, tag, segment or stage condition
 * selects — or, when SetComplement(r), of those it rejects.  Every contact
 * id in it exists (foreign keys with ON DELETE CASCADE).
 */
static void
SetSubquery(Compiler *c, const Rule *r, bool distinct)
{
	if (r->kind == RK_DID)
		DidSubquery(c, r, distinct);
	else if (r->kind == RK_AGG)
		AggSubquery(c, r);
	else
	{
		CoreBufPrintf(c->out, "SELECT %s", LookupColumn(r));
		LookupBody(c, r);
	}
}

/* Is the subquery of r the complement of its contacts (did not, count < n ...)? */
static bool
SetComplement(const Rule *r)
{
	if (r->kind == RK_DID)
		return r->negated;
	if (r->kind == RK_AGG)
		return AggComplement(r);
	return false;
}

/*
 * Set form of one lookup condition (inverted: of its negation): c.id [NOT]
 * IN (subquery), or NOT EXISTS for a complement among the top-level
 * conjuncts.
 */
static void
CompileSetCond(Compiler *c, const Rule *r, bool invert)
{
	bool		neg = SetComplement(r) != invert;

	if (neg && c->conjunct)
	{
		CoreBufAppendStr(c->out, "(NOT EXISTS (SELECT 1 FROM (");
		SetSubquery(c, r, false);
		CoreBufAppendStr(c->out, ") AS x(id) WHERE x.id = c.id))");
		return;
	}
	CoreBufAppendStr(c->out, neg ? "(NOT (c.id IN (" : "(c.id IN (");
	SetSubquery(c, r, false);
	CoreBufAppendStr(c->out, neg ? ")))" : "))");
}

/* Does the set form write this condition with CompileSetCond? */
static bool
IsSetCond(const Rule *r)
{
	switch (r->kind)
	{
		case RK_TAGGED:
		case RK_SEGMENT:
		case RK_STAGE_CMP:
		case RK_STAGE_IN:
		case RK_DID:
		case RK_AGG:
			return true;
		default:
			return false;
	}
}

static void
CompileNode(Compiler *c, const Rule *r, const char *alias)
{
	CoreBuf    *out = c->out;
	int			i;

	switch (r->kind)
	{
		case RK_TRUE:
			CoreBufAppendStr(out, "true");
			break;
		case RK_FALSE:
			CoreBufAppendStr(out, "false");
			break;
		case RK_AND:
		case RK_OR:
			{
				bool		first = true,
							conjunct = c->conjunct;

				c->conjunct = conjunct && r->kind == RK_AND;
				CoreBufAppendChar(out, '(');
				for (i = 0; i < r->nkids; i++)
				{
					int			g = c->per_contact ? -1 : StatsGroupOf(r, i);

					if (g >= 0 && g != i)
						continue;	/* written with its group */
					if (!first)
						CoreBufAppendStr(out, r->kind == RK_AND ? " AND " : " OR ");
					first = false;
					if (g == i)
					{
						CoreBufAppendStr(out, "(c.id IN (");
						StatsGroupSubquery(c, r, i);
						CoreBufAppendStr(out, "))");
					}
					else
						CompileNode(c, r->kids[i], alias);
				}
				CoreBufAppendChar(out, ')');
				c->conjunct = conjunct;
			}
			break;
		case RK_NOT:
			{
				bool		positive = c->positive,
							conjunct = c->conjunct;

				if (conjunct && !c->per_contact && IsSetCond(r->kids[0]))
				{
					/* not of a lookup among the conjuncts: its complement, as an anti-join */
					CompileSetCond(c, r->kids[0], true);
					break;
				}
				CoreBufAppendStr(out, "(NOT ");
				c->positive = false;
				c->conjunct = false;
				CompileNode(c, r->kids[0], alias);
				c->positive = positive;
				c->conjunct = conjunct;
				CoreBufAppendChar(out, ')');
			}
			break;
		case RK_CMP:
		case RK_IN:
		case RK_NULL:
		case RK_BETWEEN:
		case RK_MATCH:
			CompileValueCond(c, r, alias);
			break;
		case RK_TAGGED:
		case RK_SEGMENT:
		case RK_STAGE_CMP:
		case RK_STAGE_IN:
			CompileLookup(c, r);
			break;
		case RK_DID:
			CompileDid(c, r);
			break;
		case RK_AGG:
			CompileAgg(c, r);
			break;
	}
}

static bool
Finish(CoreBuf *out, CoreError *err)
{
	if (out->oom)
		return CoreErrorSet(err, CORE_ERR_OOM, 0, "out of memory");
	if (out->overflow)
		return CoreErrorSet(err, CORE_ERR_LIMIT, 0, "the compiled rule is too long");
	return true;
}

/*
 * The rule as a boolean SQL expression over alias c (a row of
 * segment.contacts) that is never NULL.  r must have passed RuleCheck.
 */
bool
RuleCompileCondition(const Rule *r, bool per_contact, CoreBuf *out, CoreError *err)
{
	Compiler	c = {out, per_contact, err, false, false};

	CompileNode(&c, r, "c");
	return Finish(out, err);
}

/*
 * Set algebra over lookups: a rule made only of event, tag, segment and
 * stage conditions under and / or / not, with something positive to start
 * from, needs no scan of segment.contacts: and is INTERSECT and EXCEPT, or is
 * UNION (and, by De Morgan, an and of negatives is the complement of a
 * UNION, an or of negatives the complement of an INTERSECT).  SK_POS: the rule's contacts are a set expression; SK_NEG: they
 * are the complement of one; SK_NONE: anything else.
 */
typedef enum SetKind
{
	SK_NONE, SK_POS, SK_NEG
} SetKind;

static SetKind
SetKindOf(const Rule *r)
{
	int			i;
	bool		pos = false;
	bool		neg = false;
	SetKind		k;

	switch (r->kind)
	{
		case RK_DID:
		case RK_AGG:
		case RK_TAGGED:
		case RK_SEGMENT:
		case RK_STAGE_CMP:
		case RK_STAGE_IN:
			return SetComplement(r) ? SK_NEG : SK_POS;
		case RK_NOT:
			k = SetKindOf(r->kids[0]);
			return k == SK_POS ? SK_NEG : k == SK_NEG ? SK_POS : SK_NONE;
		case RK_AND:
		case RK_OR:
			/* and: any positive kid makes it positive, all negative make it negative; or: alike */
			for (i = 0; i < r->nkids; i++)
			{
				int			g = StatsGroupOf(r, i);

				if (g >= 0 && g != i)
					continue;	/* counted with its group */
				k = g == i ? SK_POS : SetKindOf(r->kids[i]);
				if (k == SK_NONE)
					return SK_NONE;
				pos |= k == SK_POS;
				neg |= k == SK_NEG;
			}
			if (r->kind == RK_AND)
				return pos ? SK_POS : SK_NEG;
			return pos && neg ? SK_NONE : pos ? SK_POS : SK_NEG;
		default:
			return SK_NONE;
	}
}

/*
 * Write the set expression of r: its contacts when SetKindOf(r) is SK_POS,
 * the contacts it rejects when SK_NEG.  distinct: the result must have no
 * duplicates by itself (set operations remove them anyway).
 */
static void
EmitSet(Compiler *c, const Rule *r, bool distinct)
{
	CoreBuf    *out = c->out;
	int			i;
	bool		first = true;

	switch (r->kind)
	{
		case RK_NOT:
			EmitSet(c, r->kids[0], distinct);
			return;
		case RK_AND:
		case RK_OR:
			if (SetKindOf(r) == SK_NEG)
			{
				/* not a and not b: not (a or b); not a or not b: not (a and b) */
				for (i = 0; i < r->nkids; i++)
				{
					CoreBufAppendStr(out, i == 0 ? "(" : r->kind == RK_AND ? " UNION (" : " INTERSECT (");
					EmitSet(c, r->kids[i], false);
					CoreBufAppendChar(out, ')');
				}
				return;
			}
			if (r->kind == RK_OR)
			{
				for (i = 0; i < r->nkids; i++)
				{
					CoreBufAppendStr(out, i ? " UNION (" : "(");
					EmitSet(c, r->kids[i], false);
					CoreBufAppendChar(out, ')');
				}
				return;
			}
			/* (P1) INTERSECT (P2) ... EXCEPT (N1) EXCEPT (N2) ...; a stats group is one P */
			for (i = 0; i < r->nkids; i++)
			{
				int			g = StatsGroupOf(r, i);

				if (g == i)
				{
					CoreBufAppendStr(out, first ? "(" : " INTERSECT (");
					StatsGroupSubquery(c, r, i);
					CoreBufAppendChar(out, ')');
					first = false;
				}
				else if (g < 0 && SetKindOf(r->kids[i]) == SK_POS)
				{
					CoreBufAppendStr(out, first ? "(" : " INTERSECT (");
					EmitSet(c, r->kids[i], false);
					CoreBufAppendChar(out, ')');
					first = false;
				}
			}
			for (i = 0; i < r->nkids; i++)
				if (StatsGroupOf(r, i) < 0 && SetKindOf(r->kids[i]) == SK_NEG)
				{
					CoreBufAppendStr(out, " EXCEPT (");
					EmitSet(c, r->kids[i], false);
					CoreBufAppendChar(out, ')');
				}
			return;
		default:
			SetSubquery(c, r, distinct);
			return;
	}
}

/*
 * The one statement of members(): set algebra when the rule allows it,
 * otherwise SELECT c.id FROM segment.contacts c WHERE <set form>.
 */
bool
RuleCompileMembers(const Rule *r, CoreBuf *out, CoreError *err)
{
	Compiler	c = {out, false, err, false, false};

	if (SetKindOf(r) == SK_POS)
	{
		EmitSet(&c, r, true);
		return Finish(out, err);
	}
	CoreBufAppendStr(out, "SELECT c.id FROM segment.contacts c WHERE ");
	c.positive = true;
	c.conjunct = true;
	CompileNode(&c, r, "c");
	return Finish(out, err);
}

/* One contact ($1): one row with the rule's value, or none without such contact. */
bool
RuleCompileMatch(const Rule *r, CoreBuf *out, CoreError *err)
{
	CoreBufAppendStr(out, "SELECT ");
	if (!RuleCompileCondition(r, true, out, err))
		return false;
	CoreBufAppendStr(out, " FROM segment.contacts c WHERE c.id = $1");
	return Finish(out, err);
}
