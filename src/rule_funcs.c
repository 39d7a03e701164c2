/*
 * rule_funcs.c — SQL functions over a stored rule that need no database
 * access: the compiled SQL (for members(), EXPLAIN and the segments code),
 * the dependencies, and the jsonb form.
 */
#include "rule_glue.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"

/* Run a core printer over the tree of a stored rule; ereport on failure. */
static char *
Compile(struct varlena *stored, int what, bool per_contact)
{
	Rule	   *r = RuleFromStored(stored);
	CoreAllocator a;
	CoreBuf		out;
	CoreError	err;
	bool		ok;

	RuleAllocatorInit(&a, CurrentMemoryContext);
	CoreBufInit(&out, &a, 256);
	CoreErrorClear(&err);
	switch (what)
	{
		case 0:
			ok = RuleCompileMembers(r, &out, &err);
			break;
		case 1:
			ok = RuleCompileCondition(r, per_contact, &out, &err);
			break;
		case 2:
			ok = RulePrintDependencies(r, &out);
			break;
		default:
			ok = RulePrintJson(r, &out);
			break;
	}
	if (!ok)
		RuleReportError(RuleStoredText(stored), &err, NULL);
	return out.data;
}

/* segment.rule_sql(rule): SELECT c.id FROM segment.contacts c WHERE ... */
PG_FUNCTION_INFO_V1(rule_sql);
Datum
rule_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(Compile(PG_GETARG_RULE_P(0), 0, false)));
}

/* segment.rule_condition_sql(rule, per_contact): the never-NULL condition over alias c. */
PG_FUNCTION_INFO_V1(rule_condition_sql);
Datum
rule_condition_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(Compile(PG_GETARG_RULE_P(0), 1, PG_GETARG_BOOL(1))));
}

/* segment.rule_dependencies(rule): what the rule reads. */
PG_FUNCTION_INFO_V1(rule_dependencies);
Datum
rule_dependencies(PG_FUNCTION_ARGS)
{
	char	   *json = Compile(PG_GETARG_RULE_P(0), 2, false);

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

/* segment.rule_to_jsonb(rule): the JSON form for UI builders. */
PG_FUNCTION_INFO_V1(rule_to_jsonb);
Datum
rule_to_jsonb(PG_FUNCTION_ARGS)
{
	char	   *json = Compile(PG_GETARG_RULE_P(0), 3, false);

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}
