/*
 * rule_tojson.c — a rule as JSON text in the shape UI builders use (see
 * doc/rules.md, "JSON form"); the glue turns it into jsonb, and
 * rule_from_jsonb (rule_json.c) reads the same shape back.  Pure C: no
 * PostgreSQL headers.
 */
#include "rule.h"

#include <string.h>

/* A JSON string: quotes, backslashes and control characters escaped. */
bool
RuleAppendJsonString(CoreBuf *out, const char *s)
{
	const unsigned char *q;

	CoreBufAppendChar(out, '"');
	for (q = (const unsigned char *) s; *q; q++)
	{
		if (*q == '"' || *q == '\\')
		{
			CoreBufAppendChar(out, '\\');
			CoreBufAppendChar(out, (char) *q);
		}
		else if (*q == '\n')
			CoreBufAppendStr(out, "\\n");
		else if (*q == '\t')
			CoreBufAppendStr(out, "\\t");
		else if (*q == '\r')
			CoreBufAppendStr(out, "\\r");
		else if (*q < 0x20)
			CoreBufPrintf(out, "\\u%04x", *q);
		else
			CoreBufAppendChar(out, (char) *q);
	}
	return CoreBufAppendChar(out, '"');
}

static void
JsonDuration(CoreBuf *out, const RuleLit *l)
{
	CoreBufPrintf(out, "{\"amount\": %ld, \"unit\": \"%s\"}", l->amount, RuleUnitText(l->unit));
}

static void
JsonLit(CoreBuf *out, const RuleLit *l)
{
	switch (l->kind)
	{
		case RL_NUMBER:
			CoreBufAppendStr(out, l->text);
			break;
		case RL_STRING:
			RuleAppendJsonString(out, l->text);
			break;
		case RL_BOOL:
			CoreBufAppendStr(out, l->boolval ? "true" : "false");
			break;
		case RL_NOW:
			CoreBufAppendStr(out, "{\"now\": true}");
			break;
		case RL_AGO:
		case RL_FROM_NOW:
			CoreBufAppendStr(out, l->kind == RL_AGO ? "{\"ago\": " : "{\"from_now\": ");
			JsonDuration(out, l);
			CoreBufAppendChar(out, '}');
			break;
		case RL_DATE:
		case RL_TIMESTAMP:
			CoreBufAppendStr(out, l->kind == RL_DATE ? "{\"date\": " : "{\"timestamp\": ");
			RuleAppendJsonString(out, l->text);
			CoreBufAppendChar(out, '}');
			break;
	}
}

static void
JsonLitArray(CoreBuf *out, const Rule *r)
{
	int			i;

	CoreBufAppendChar(out, '[');
	for (i = 0; i < r->nlits; i++)
	{
		if (i)
			CoreBufAppendStr(out, ", ");
		JsonLit(out, &r->lits[i]);
	}
	CoreBufAppendChar(out, ']');
}

/* The reference as its rule text, as a JSON string. */
static void
JsonRef(CoreBuf *out, const RuleRef *ref)
{
	CoreBuf		name;

	CoreBufInit(&name, out->a, 32);
	RulePrintRef(&name, ref);
	if (name.oom)
		out->oom = true;
	else
		RuleAppendJsonString(out, name.data);
	CoreBufFree(&name);
}

static void JsonNode(CoreBuf *out, const Rule *r);

static void
JsonEventParts(CoreBuf *out, const Rule *r)
{
	if (r->prop)
	{
		CoreBufAppendStr(out, ", \"property\": ");
		RuleAppendJsonString(out, r->prop);
	}
	if (r->where)
	{
		CoreBufAppendStr(out, ", \"where\": ");
		JsonNode(out, r->where);
	}
	switch (r->window.kind)
	{
		case RW_NONE:
			break;
		case RW_WITHIN:
			CoreBufAppendStr(out, ", \"within\": ");
			JsonDuration(out, &r->window.within);
			break;
		case RW_SINCE:
			CoreBufAppendStr(out, ", \"since\": ");
			JsonLit(out, &r->window.from);
			break;
		case RW_BETWEEN:
			CoreBufAppendStr(out, ", \"between\": [");
			JsonLit(out, &r->window.from);
			CoreBufAppendStr(out, ", ");
			JsonLit(out, &r->window.to);
			CoreBufAppendChar(out, ']');
			break;
	}
}

static void
JsonNode(CoreBuf *out, const Rule *r)
{
	int			i;
	const char *op;

	switch (r->kind)
	{
		case RK_TRUE:
		case RK_FALSE:
			CoreBufAppendStr(out, r->kind == RK_TRUE ? "{\"const\": true}" : "{\"const\": false}");
			break;
		case RK_AND:
		case RK_OR:
			CoreBufAppendStr(out, r->kind == RK_AND ? "{\"and\": [" : "{\"or\": [");
			for (i = 0; i < r->nkids; i++)
			{
				if (i)
					CoreBufAppendStr(out, ", ");
				JsonNode(out, r->kids[i]);
			}
			CoreBufAppendStr(out, "]}");
			break;
		case RK_NOT:
			CoreBufAppendStr(out, "{\"not\": ");
			JsonNode(out, r->kids[0]);
			CoreBufAppendChar(out, '}');
			break;
		case RK_CMP:
		case RK_IN:
		case RK_NULL:
		case RK_BETWEEN:
		case RK_MATCH:
			CoreBufAppendStr(out, "{\"field\": ");
			JsonRef(out, &r->ref);
			if (r->kind == RK_CMP)
				op = RuleCmpText(r->cmp);
			else if (r->kind == RK_IN)
				op = r->negated ? "not in" : "in";
			else if (r->kind == RK_NULL)
				op = r->negated ? "is not null" : "is null";
			else if (r->kind == RK_BETWEEN)
				op = r->negated ? "not between" : "between";
			else if (r->match == RM_CONTAINS)
				op = r->negated ? "not contains" : "contains";
			else if (r->match == RM_STARTS)
				op = r->negated ? "not starts with" : "starts with";
			else
				op = r->negated ? "not ends with" : "ends with";
			CoreBufPrintf(out, ", \"op\": \"%s\"", op);
			if (r->kind == RK_IN || r->kind == RK_BETWEEN)
			{
				CoreBufAppendStr(out, ", \"values\": ");
				JsonLitArray(out, r);
			}
			else if (r->kind != RK_NULL)
			{
				CoreBufAppendStr(out, ", \"value\": ");
				JsonLit(out, &r->lits[0]);
			}
			CoreBufAppendChar(out, '}');
			break;
		case RK_TAGGED:
		case RK_SEGMENT:
			CoreBufAppendStr(out, r->kind == RK_TAGGED ? "{\"tagged\": " : "{\"in_segment\": ");
			RuleAppendJsonString(out, r->lits[0].text);
			CoreBufAppendChar(out, '}');
			break;
		case RK_STAGE_CMP:
			CoreBufPrintf(out, "{\"stage\": {\"op\": \"%s\", \"value\": ", RuleCmpText(r->cmp));
			RuleAppendJsonString(out, r->lits[0].text);
			CoreBufAppendStr(out, "}}");
			break;
		case RK_STAGE_IN:
			CoreBufPrintf(out, "{\"stage\": {\"op\": \"%s\", \"values\": ", r->negated ? "not in" : "in");
			JsonLitArray(out, r);
			CoreBufAppendStr(out, "}}");
			break;
		case RK_DID:
			CoreBufAppendStr(out, r->negated ? "{\"did_not\": " : "{\"did\": ");
			RuleAppendJsonString(out, r->event);
			JsonEventParts(out, r);
			CoreBufAppendChar(out, '}');
			break;
		case RK_AGG:
			CoreBufPrintf(out, "{\"%s\": ", RuleAggText(r->agg));
			RuleAppendJsonString(out, r->event);
			JsonEventParts(out, r);
			CoreBufPrintf(out, ", \"op\": \"%s\", \"value\": ", RuleCmpText(r->cmp));
			JsonLit(out, &r->lits[0]);
			CoreBufAppendChar(out, '}');
			break;
	}
}

/* The JSON form of r; false when out ran out of memory. */
bool
RulePrintJson(const Rule *r, CoreBuf *out)
{
	JsonNode(out, r);
	return !out->oom && !out->overflow;
}
