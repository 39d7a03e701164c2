/*
 * rule_print.c — canonical text of a rule: lower-case keywords,
 * single-quoted strings, minimal parentheses, one space between tokens.
 * Parsing the output gives back the same tree, so the canonical text is the
 * rule's identity (equality, plan-cache key).  Pure C: no PostgreSQL headers.
 */
#include "rule.h"

#include <string.h>

const char *
RuleCmpText(RuleCmp c)
{
	static const char *const ops[] = {"=", "!=", "<", "<=", ">", ">="};

	return ops[c];
}

/* Words the parser treats specially somewhere; such names print quoted. */
static const char *const keywords[] = {
	"and", "or", "not", "true", "false", "in", "is", "null", "between",
	"contains", "starts", "ends", "with", "tagged", "segment", "stage", "did",
	"where", "within", "since", "count", "sum", "avg", "min", "max", "last",
	"now", "date", "timestamp", "ago", "from", "attrs", NULL
};

bool
RuleIsKeyword(const char *s)
{
	int			i;

	for (i = 0; keywords[i]; i++)
	{
		const char *k = keywords[i];
		const char *q = s;

		for (; *q && *k; q++, k++)
			if ((*q >= 'A' && *q <= 'Z' ? *q - 'A' + 'a' : *q) != *k)
				break;
		if (*q == '\0' && *k == '\0')
			return true;
	}
	return false;
}

/* [A-Za-z_][A-Za-z0-9_]* */
bool
RuleIsIdentifier(const char *s)
{
	const char *q;

	if (s == NULL || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return false;
	for (q = s; *q; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || *q == '_' ||
			  (*q >= '0' && *q <= '9')))
			return false;
	return true;
}

/* Append s between quote characters, doubling any quote inside. */
bool
RuleAppendQuoted(CoreBuf *out, const char *s, char quote)
{
	const char *q;

	CoreBufAppendChar(out, quote);
	for (q = s; *q; q++)
	{
		if (*q == quote)
			CoreBufAppendChar(out, quote);
		CoreBufAppendChar(out, *q);
	}
	return CoreBufAppendChar(out, quote);
}

/* An event or property name: bare when it is a plain identifier. */
static void
PrintName(CoreBuf *out, const char *s)
{
	if (RuleIsIdentifier(s) && !RuleIsKeyword(s))
		CoreBufAppendStr(out, s);
	else
		RuleAppendQuoted(out, s, '\'');
}

static void
PrintDuration(CoreBuf *out, const RuleLit *l)
{
	CoreBufPrintf(out, "%ld %s%s", l->amount, RuleUnitText(l->unit), l->amount == 1 ? "" : "s");
}

static void
PrintLit(CoreBuf *out, const RuleLit *l)
{
	switch (l->kind)
	{
		case RL_NUMBER:
			CoreBufAppendStr(out, l->text);
			break;
		case RL_STRING:
			RuleAppendQuoted(out, l->text, '\'');
			break;
		case RL_BOOL:
			CoreBufAppendStr(out, l->boolval ? "true" : "false");
			break;
		case RL_NOW:
			CoreBufAppendStr(out, "now");
			break;
		case RL_AGO:
			PrintDuration(out, l);
			CoreBufAppendStr(out, " ago");
			break;
		case RL_FROM_NOW:
			PrintDuration(out, l);
			CoreBufAppendStr(out, " from now");
			break;
		case RL_DATE:
			CoreBufAppendStr(out, "date ");
			RuleAppendQuoted(out, l->text, '\'');
			break;
		case RL_TIMESTAMP:
			CoreBufAppendStr(out, "timestamp ");
			RuleAppendQuoted(out, l->text, '\'');
			break;
	}
}

static void
PrintLitList(CoreBuf *out, const Rule *r)
{
	int			i;

	CoreBufAppendChar(out, '(');
	for (i = 0; i < r->nlits; i++)
	{
		if (i)
			CoreBufAppendStr(out, ", ");
		PrintLit(out, &r->lits[i]);
	}
	CoreBufAppendChar(out, ')');
}

/* A value reference as written: name, attrs.a.b, or a property path. */
void
RulePrintRef(CoreBuf *out, const RuleRef *ref)
{
	int			i;

	if (ref->kind == RR_ATTRS)
		CoreBufAppendStr(out, "attrs.");
	if (ref->kind == RR_ATTRS || ref->kind == RR_PROP)
		for (i = 0; i < ref->npath; i++)
		{
			if (i)
				CoreBufAppendChar(out, '.');
			CoreBufAppendStr(out, ref->path[i]);
		}
	else
		CoreBufAppendStr(out, ref->name);
}

static void
PrintWindow(CoreBuf *out, const RuleWindow *w)
{
	switch (w->kind)
	{
		case RW_NONE:
			break;
		case RW_WITHIN:
			CoreBufAppendStr(out, " within ");
			PrintDuration(out, &w->within);
			break;
		case RW_SINCE:
			CoreBufAppendStr(out, " since ");
			PrintLit(out, &w->from);
			break;
		case RW_BETWEEN:
			CoreBufAppendStr(out, " between ");
			PrintLit(out, &w->from);
			CoreBufAppendStr(out, " and ");
			PrintLit(out, &w->to);
			break;
	}
}

static void PrintNode(CoreBuf *out, const Rule *r);

static void
PrintWhere(CoreBuf *out, const Rule *r)
{
	if (r->where == NULL)
		return;
	CoreBufAppendStr(out, " where (");
	PrintNode(out, r->where);
	CoreBufAppendChar(out, ')');
}

/* Print a child, in parentheses when it binds looser than its parent. */
static void
PrintKid(CoreBuf *out, const Rule *kid, RuleKind parent)
{
	bool		parens = (kid->kind == RK_OR && parent != RK_OR) ||
		(kid->kind == RK_AND && parent == RK_NOT);

	if (parens)
		CoreBufAppendChar(out, '(');
	PrintNode(out, kid);
	if (parens)
		CoreBufAppendChar(out, ')');
}

static void
PrintNode(CoreBuf *out, const Rule *r)
{
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
			for (i = 0; i < r->nkids; i++)
			{
				if (i)
					CoreBufAppendStr(out, r->kind == RK_AND ? " and " : " or ");
				PrintKid(out, r->kids[i], r->kind);
			}
			break;
		case RK_NOT:
			CoreBufAppendStr(out, "not ");
			PrintKid(out, r->kids[0], RK_NOT);
			break;
		case RK_CMP:
			RulePrintRef(out, &r->ref);
			CoreBufPrintf(out, " %s ", RuleCmpText(r->cmp));
			PrintLit(out, &r->lits[0]);
			break;
		case RK_IN:
			RulePrintRef(out, &r->ref);
			CoreBufAppendStr(out, r->negated ? " not in " : " in ");
			PrintLitList(out, r);
			break;
		case RK_NULL:
			RulePrintRef(out, &r->ref);
			CoreBufAppendStr(out, r->negated ? " is not null" : " is null");
			break;
		case RK_BETWEEN:
			RulePrintRef(out, &r->ref);
			CoreBufAppendStr(out, r->negated ? " not between " : " between ");
			PrintLit(out, &r->lits[0]);
			CoreBufAppendStr(out, " and ");
			PrintLit(out, &r->lits[1]);
			break;
		case RK_MATCH:
			RulePrintRef(out, &r->ref);
			CoreBufAppendStr(out, r->negated ? " not " : " ");
			CoreBufAppendStr(out, r->match == RM_CONTAINS ? "contains " :
							 r->match == RM_STARTS ? "starts with " : "ends with ");
			PrintLit(out, &r->lits[0]);
			break;
		case RK_TAGGED:
			CoreBufAppendStr(out, "tagged ");
			PrintLit(out, &r->lits[0]);
			break;
		case RK_SEGMENT:
			CoreBufAppendStr(out, "in segment ");
			PrintLit(out, &r->lits[0]);
			break;
		case RK_STAGE_CMP:
			CoreBufPrintf(out, "stage %s ", RuleCmpText(r->cmp));
			PrintLit(out, &r->lits[0]);
			break;
		case RK_STAGE_IN:
			CoreBufAppendStr(out, r->negated ? "stage not in " : "stage in ");
			PrintLitList(out, r);
			break;
		case RK_DID:
			CoreBufAppendStr(out, r->negated ? "did not " : "did ");
			PrintName(out, r->event);
			PrintWhere(out, r);
			PrintWindow(out, &r->window);
			break;
		case RK_AGG:
			CoreBufAppendStr(out, RuleAggText(r->agg));
			CoreBufAppendChar(out, '(');
			PrintName(out, r->event);
			if (r->prop)
			{
				CoreBufAppendChar(out, '.');
				PrintName(out, r->prop);
			}
			PrintWhere(out, r);
			CoreBufAppendChar(out, ')');
			PrintWindow(out, &r->window);
			CoreBufPrintf(out, " %s ", RuleCmpText(r->cmp));
			PrintLit(out, &r->lits[0]);
			break;
	}
}

/* The canonical text of r; false when out ran out of memory. */
bool
RulePrint(const Rule *r, CoreBuf *out)
{
	PrintNode(out, r);
	return !out->oom && !out->overflow;
}

static void
CollectTypes(const Rule *r, CoreBuf *out)
{
	int			i;

	switch (r->kind)
	{
		case RK_AND:
		case RK_OR:
		case RK_NOT:
			for (i = 0; i < r->nkids; i++)
				CollectTypes(r->kids[i], out);
			break;
		case RK_CMP:
		case RK_IN:
		case RK_NULL:
		case RK_BETWEEN:
		case RK_MATCH:
			if (r->ref.kind == RR_FIELD)
			{
				CoreBuf		entry;

				/* ";name:type;" appears once */
				CoreBufInit(&entry, out->a, 32);
				CoreBufPrintf(&entry, ";%s:%s;", r->ref.name, RuleTypeName(r->ref.type));
				if (out->len == 0)
					CoreBufAppendChar(out, ';');
				if (!entry.oom && out->data && strstr(out->data, entry.data) == NULL)
					CoreBufAppend(out, entry.data + 1, entry.len - 1);
				CoreBufFree(&entry);
			}
			break;
		default:
			break;
	}
}

/*
 * The resolved types of the custom fields r reads, as ";name:type;..."
 * (empty when none).  Stored next to the canonical text so a stored rule
 * compiles without looking fields up again.
 */
bool
RulePrintTypes(const Rule *r, CoreBuf *out)
{
	CollectTypes(r, out);
	return !out->oom && !out->overflow;
}
