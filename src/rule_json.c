/*
 * rule_json.c — segment.rule_from_jsonb: read the JSON form of a rule
 * (written by rule_to_jsonb, or by a UI builder) back into a rule.  The
 * jsonb is turned into rule text (every name quoted, every value checked
 * here so nothing in the jsonb can change the structure of the text), which
 * then goes through the ordinary input path: the same resolution, type
 * checks and canonical form as a cast from text.
 */
#include "rule_glue.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

typedef struct JsonReader
{
	StringInfoData out;
} JsonReader;

static void EmitRule(JsonReader *jr, JsonbContainer *c, const char *path, bool prop, int depth);

static void
Bad(const char *path, const char *what) pg_attribute_noreturn();

static void
Bad(const char *path, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid segment rule jsonb at %s: expected %s", path, what),
			 errhint("See the JSON form in doc/rules.md; segment.rule_to_jsonb shows the form of any rule.")));
}

static bool
Key(JsonbContainer *c, const char *key, JsonbValue *v)
{
	return getKeyJsonValueFromContainer(c, key, strlen(key), v) != NULL;
}

static JsonbContainer *
AsContainer(JsonbValue *v, bool array, const char *path, const char *what)
{
	if (v->type != jbvBinary ||
		(array ? !JsonContainerIsArray(v->val.binary.data) : !JsonContainerIsObject(v->val.binary.data)))
		Bad(path, what);
	return v->val.binary.data;
}

static char *
AsString(JsonbValue *v, const char *path, const char *what)
{
	if (v->type != jbvString)
		Bad(path, what);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static char *
Sub(const char *path, const char *key)
{
	return psprintf("%s.%s", path, key);
}

static char *
Elem(const char *path, int i)
{
	return psprintf("%s[%d]", path, i);
}

/* A string in rule syntax: single quotes doubled. */
static void
EmitQuoted(JsonReader *jr, const char *s)
{
	const char *q;

	appendStringInfoChar(&jr->out, '\'');
	for (q = s; *q; q++)
	{
		if (*q == '\'')
			appendStringInfoChar(&jr->out, '\'');
		appendStringInfoChar(&jr->out, *q);
	}
	appendStringInfoChar(&jr->out, '\'');
}

/* A number as rule text: plain decimal (numeric output never uses exponents). */
static void
EmitNumber(JsonReader *jr, JsonbValue *v, const char *path)
{
	char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	const char *q;

	for (q = s; *q; q++)
		if (!((*q >= '0' && *q <= '9') || *q == '.' || (*q == '-' && q == s)))
			Bad(path, "a finite number");
	appendStringInfoString(&jr->out, s);
}

static const char *const unit_names[] = {"minute", "hour", "day", "week", "month", "year", NULL};

/* {"amount": 30, "unit": "day"} */
static void
EmitDuration(JsonReader *jr, JsonbValue *v, const char *path)
{
	JsonbContainer *c = AsContainer(v, false, path, "a duration object such as {\"amount\": 30, \"unit\": \"day\"}");
	JsonbValue	amount,
				unit;
	char	   *u;
	int			i;
	size_t		len;

	if (!Key(c, "amount", &amount) || amount.type != jbvNumeric)
		Bad(Sub(path, "amount"), "a whole number");
	if (!Key(c, "unit", &unit))
		Bad(Sub(path, "unit"), "a unit: minute, hour, day, week, month or year");
	u = AsString(&unit, Sub(path, "unit"), "a unit: minute, hour, day, week, month or year");
	len = strlen(u);
	if (len > 1 && u[len - 1] == 's')
		u[len - 1] = '\0';
	for (i = 0; unit_names[i]; i++)
		if (strcmp(u, unit_names[i]) == 0)
			break;
	if (unit_names[i] == NULL)
		Bad(Sub(path, "unit"), "a unit: minute, hour, day, week, month or year");
	if (JsonContainerSize(c) != 2)
		Bad(path, "only the keys amount and unit");
	EmitNumber(jr, &amount, Sub(path, "amount"));
	appendStringInfo(&jr->out, " %s", unit_names[i]);
}

/* A value: number, string, boolean, or a time object. */
static void
EmitLiteral(JsonReader *jr, JsonbValue *v, const char *path)
{
	JsonbContainer *c;
	JsonbValue	x;

	switch (v->type)
	{
		case jbvNumeric:
			EmitNumber(jr, v, path);
			return;
		case jbvString:
			EmitQuoted(jr, AsString(v, path, "a string"));
			return;
		case jbvBool:
			appendStringInfoString(&jr->out, v->val.boolean ? "true" : "false");
			return;
		case jbvBinary:
			if (!JsonContainerIsObject(v->val.binary.data))
				break;
			c = v->val.binary.data;
			if (JsonContainerSize(c) != 1)
				break;
			if (Key(c, "now", &x))
			{
				if (x.type != jbvBool || !x.val.boolean)
					Bad(Sub(path, "now"), "true");
				appendStringInfoString(&jr->out, "now");
				return;
			}
			if (Key(c, "ago", &x) || Key(c, "from_now", &x))
			{
				bool		ago = Key(c, "ago", &x);

				EmitDuration(jr, &x, Sub(path, ago ? "ago" : "from_now"));
				appendStringInfoString(&jr->out, ago ? " ago" : " from now");
				return;
			}
			if (Key(c, "date", &x) || Key(c, "timestamp", &x))
			{
				bool		date = Key(c, "date", &x);

				appendStringInfoString(&jr->out, date ? "date " : "timestamp ");
				EmitQuoted(jr, AsString(&x, Sub(path, date ? "date" : "timestamp"), "a string"));
				return;
			}
			break;
		default:
			break;
	}
	Bad(path, "a number, a string, true, false, or a time object ({\"now\": true}, {\"ago\": {...}}, {\"from_now\": {...}}, {\"date\": \"...\"} or {\"timestamp\": \"...\"})");
}

/* A field or property name: identifiers joined by dots. */
static void
EmitFieldName(JsonReader *jr, const char *name, const char *path)
{
	char	   *copy = pstrdup(name);
	char	   *part;
	char	   *save = NULL;
	bool		first = true;

	if (name[0] == '\0' || name[strlen(name) - 1] == '.' || strstr(name, "..") || name[0] == '.')
		Bad(path, "a field name such as \"email\", \"lifetime\" or \"attrs.plan\"");
	for (part = strtok_r(copy, ".", &save); part; part = strtok_r(NULL, ".", &save))
	{
		if (!RuleIsIdentifier(part))
			Bad(path, "a field name made of letters, digits and underscores, with dots between keys");
		appendStringInfo(&jr->out, "%s%s", first ? "" : ".", part);
		first = false;
	}
}

/* The array of values of in / between / stage in. */
static void
EmitList(JsonReader *jr, JsonbContainer *obj, const char *path, int exact, bool strings, const char *sep)
{
	JsonbValue	v;
	JsonbContainer *arr;
	int			n,
				i;
	char	   *p = Sub(path, "values");

	if (!Key(obj, "values", &v))
		Bad(p, exact ? "an array of two values" : "a non-empty array of values");
	arr = AsContainer(&v, true, p, exact ? "an array of two values" : "a non-empty array of values");
	n = JsonContainerSize(arr);
	if (n == 0 || (exact && n != exact))
		Bad(p, exact ? "an array of two values" : "a non-empty array of values");
	for (i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(arr, i);

		if (i)
			appendStringInfoString(&jr->out, sep);
		if (strings)
			EmitQuoted(jr, AsString(e, Elem(p, i), "a stage name (a string)"));
		else
			EmitLiteral(jr, e, Elem(p, i));
	}
}

static const char *const value_ops[] = {
	"=", "!=", "<>", "<", "<=", ">", ">=", "contains", "not contains",
	"starts with", "not starts with", "ends with", "not ends with", NULL
};

/* {"field": ..., "op": ..., "value" | "values": ...} */
static void
EmitValueCond(JsonReader *jr, JsonbContainer *c, const char *path)
{
	JsonbValue	f,
				o,
				v;
	char	   *op;
	int			i;
	int			keys = 2;

	Key(c, "field", &f);
	EmitFieldName(jr, AsString(&f, Sub(path, "field"), "a field name"), Sub(path, "field"));
	if (!Key(c, "op", &o))
		Bad(Sub(path, "op"), "an operator");
	op = AsString(&o, Sub(path, "op"), "an operator");
	appendStringInfo(&jr->out, " ");
	if (strcmp(op, "is null") == 0 || strcmp(op, "is not null") == 0)
		appendStringInfoString(&jr->out, op);
	else if (strcmp(op, "in") == 0 || strcmp(op, "not in") == 0)
	{
		appendStringInfo(&jr->out, "%s (", op);
		EmitList(jr, c, path, 0, false, ", ");
		appendStringInfoChar(&jr->out, ')');
		keys++;
	}
	else if (strcmp(op, "between") == 0 || strcmp(op, "not between") == 0)
	{
		appendStringInfo(&jr->out, "%s ", op);
		EmitList(jr, c, path, 2, false, " and ");
		keys++;
	}
	else
	{
		for (i = 0; value_ops[i]; i++)
			if (strcmp(op, value_ops[i]) == 0)
				break;
		if (value_ops[i] == NULL)
			Bad(Sub(path, "op"), "one of =, !=, <, <=, >, >=, in, not in, is null, is not null, between, not between, contains, not contains, starts with, not starts with, ends with, not ends with");
		if (!Key(c, "value", &v))
			Bad(Sub(path, "value"), "a value");
		appendStringInfo(&jr->out, "%s ", op);
		EmitLiteral(jr, &v, Sub(path, "value"));
		keys++;
	}
	if (JsonContainerSize(c) != keys)
		Bad(path, "only the keys field, op and value (or values)");
}

static void
EmitCmpOp(JsonReader *jr, JsonbContainer *c, const char *path)
{
	JsonbValue	o;
	char	   *op;

	if (!Key(c, "op", &o))
		Bad(Sub(path, "op"), "a comparison operator (=, !=, <, <=, >, >=)");
	op = AsString(&o, Sub(path, "op"), "a comparison operator (=, !=, <, <=, >, >=)");
	if (strcmp(op, "=") && strcmp(op, "!=") && strcmp(op, "<>") && strcmp(op, "<") &&
		strcmp(op, "<=") && strcmp(op, ">") && strcmp(op, ">="))
		Bad(Sub(path, "op"), "a comparison operator (=, !=, <, <=, >, >=)");
	appendStringInfo(&jr->out, " %s ", op);
}

/* did / did_not / count / sum / avg / min / max / last */
static void
EmitEvent(JsonReader *jr, JsonbContainer *c, const char *path, const char *kind, int depth)
{
	JsonbValue	v;
	bool		agg = strcmp(kind, "did") != 0 && strcmp(kind, "did_not") != 0;
	bool		needs_prop = strcmp(kind, "sum") == 0 || strcmp(kind, "avg") == 0 ||
		strcmp(kind, "min") == 0 || strcmp(kind, "max") == 0;
	int			keys = 1;
	int			windows = 0;

	Key(c, kind, &v);
	if (agg)
		appendStringInfo(&jr->out, "%s(", kind);
	else
		appendStringInfoString(&jr->out, strcmp(kind, "did") == 0 ? "did " : "did not ");
	EmitQuoted(jr, AsString(&v, Sub(path, kind), "an event type (a string)"));
	if (Key(c, "property", &v))
	{
		if (!needs_prop)
			Bad(Sub(path, "property"), "no property: only sum, avg, min and max take one");
		appendStringInfoChar(&jr->out, '.');
		EmitQuoted(jr, AsString(&v, Sub(path, "property"), "a property name (a string)"));
		keys++;
	}
	else if (needs_prop)
		Bad(Sub(path, "property"), "a property name such as \"amount\"");
	if (Key(c, "where", &v))
	{
		appendStringInfoString(&jr->out, " where (");
		EmitRule(jr, AsContainer(&v, false, Sub(path, "where"), "a rule object"), Sub(path, "where"), true, depth + 1);
		appendStringInfoChar(&jr->out, ')');
		keys++;
	}
	if (agg)
		appendStringInfoChar(&jr->out, ')');
	if (Key(c, "within", &v))
	{
		appendStringInfoString(&jr->out, " within ");
		EmitDuration(jr, &v, Sub(path, "within"));
		windows++;
	}
	if (Key(c, "since", &v))
	{
		appendStringInfoString(&jr->out, " since ");
		EmitLiteral(jr, &v, Sub(path, "since"));
		windows++;
	}
	if (Key(c, "between", &v))
	{
		JsonbContainer *arr = AsContainer(&v, true, Sub(path, "between"), "an array of two times");

		if (JsonContainerSize(arr) != 2)
			Bad(Sub(path, "between"), "an array of two times");
		appendStringInfoString(&jr->out, " between ");
		EmitLiteral(jr, getIthJsonbValueFromContainer(arr, 0), Elem(Sub(path, "between"), 0));
		appendStringInfoString(&jr->out, " and ");
		EmitLiteral(jr, getIthJsonbValueFromContainer(arr, 1), Elem(Sub(path, "between"), 1));
		windows++;
	}
	if (windows > 1)
		Bad(path, "at most one of within, since and between");
	keys += windows;
	if (agg)
	{
		EmitCmpOp(jr, c, path);
		if (!Key(c, "value", &v))
			Bad(Sub(path, "value"), strcmp(kind, "last") == 0 ? "a time" : "a number");
		EmitLiteral(jr, &v, Sub(path, "value"));
		keys += 2;
	}
	if (JsonContainerSize(c) != keys)
		Bad(path, agg ? "only the keys of an aggregate: the function, property, where, within/since/between, op and value" :
			"only the keys of did: did or did_not, where, within/since/between");
}

static const char *const kinds[] = {
	"const", "and", "or", "not", "field", "tagged", "in_segment", "stage",
	"did", "did_not", "count", "sum", "avg", "min", "max", "last", NULL
};

/* One rule object; in prop context (inside where) only value conditions. */
static void
EmitRule(JsonReader *jr, JsonbContainer *c, const char *path, bool prop, int depth)
{
	JsonbValue	v;
	const char *kind = NULL;
	int			i;

	check_stack_depth();
	if (depth > RULE_MAX_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_STATEMENT_TOO_COMPLEX),
				 errmsg("invalid segment rule jsonb at %s: expected at most %d levels of nesting", path, RULE_MAX_DEPTH)));
	if (!JsonContainerIsObject(c))
		Bad(path, "a rule object");
	for (i = 0; kinds[i]; i++)
		if (Key(c, kinds[i], &v))
		{
			if (kind)
				Bad(path, psprintf("one kind of condition, found both \"%s\" and \"%s\"", kind, kinds[i]));
			kind = kinds[i];
		}
	if (kind == NULL)
		Bad(path, "a rule object with one of the keys const, and, or, not, field, tagged, in_segment, stage, did, did_not, count, sum, avg, min, max, last");
	if (prop && strcmp(kind, "const") && strcmp(kind, "and") && strcmp(kind, "or") &&
		strcmp(kind, "not") && strcmp(kind, "field"))
		Bad(path, "a condition on event properties (const, and, or, not or field) inside where");
	Key(c, kind, &v);
	if (strcmp(kind, "const") == 0)
	{
		if (v.type != jbvBool || JsonContainerSize(c) != 1)
			Bad(path, "{\"const\": true} or {\"const\": false}");
		appendStringInfoString(&jr->out, v.val.boolean ? "true" : "false");
	}
	else if (strcmp(kind, "and") == 0 || strcmp(kind, "or") == 0)
	{
		char	   *p = Sub(path, kind);
		JsonbContainer *arr = AsContainer(&v, true, p, "a non-empty array of rules");
		int			n = JsonContainerSize(arr);

		if (n == 0 || JsonContainerSize(c) != 1)
			Bad(p, "a non-empty array of rules");
		appendStringInfoChar(&jr->out, '(');
		for (i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(arr, i);

			if (i)
				appendStringInfo(&jr->out, ") %s (", kind);
			EmitRule(jr, AsContainer(e, false, Elem(p, i), "a rule object"), Elem(p, i), prop, depth + 1);
		}
		appendStringInfoChar(&jr->out, ')');
	}
	else if (strcmp(kind, "not") == 0)
	{
		if (JsonContainerSize(c) != 1)
			Bad(path, "only the key not");
		appendStringInfoString(&jr->out, "not (");
		EmitRule(jr, AsContainer(&v, false, Sub(path, "not"), "a rule object"), Sub(path, "not"), prop, depth + 1);
		appendStringInfoChar(&jr->out, ')');
	}
	else if (strcmp(kind, "field") == 0)
		EmitValueCond(jr, c, path);
	else if (strcmp(kind, "tagged") == 0 || strcmp(kind, "in_segment") == 0)
	{
		if (JsonContainerSize(c) != 1)
			Bad(path, psprintf("only the key %s", kind));
		appendStringInfoString(&jr->out, strcmp(kind, "tagged") == 0 ? "tagged " : "in segment ");
		EmitQuoted(jr, AsString(&v, Sub(path, kind), "a name (a string)"));
	}
	else if (strcmp(kind, "stage") == 0)
	{
		char	   *p = Sub(path, "stage");
		JsonbContainer *s = AsContainer(&v, false, p, "an object such as {\"op\": \"=\", \"value\": \"lead\"}");
		JsonbValue	o,
					x;
		char	   *op;

		if (JsonContainerSize(c) != 1 || JsonContainerSize(s) != 2)
			Bad(p, "an object such as {\"op\": \"=\", \"value\": \"lead\"}");
		if (!Key(s, "op", &o))
			Bad(Sub(p, "op"), "an operator");
		op = AsString(&o, Sub(p, "op"), "an operator");
		if (strcmp(op, "in") == 0 || strcmp(op, "not in") == 0)
		{
			appendStringInfo(&jr->out, "stage %s (", op);
			EmitList(jr, s, p, 0, true, ", ");
			appendStringInfoChar(&jr->out, ')');
		}
		else
		{
			appendStringInfoString(&jr->out, "stage");
			EmitCmpOp(jr, s, p);
			if (!Key(s, "value", &x))
				Bad(Sub(p, "value"), "a stage name (a string)");
			EmitQuoted(jr, AsString(&x, Sub(p, "value"), "a stage name (a string)"));
		}
	}
	else
		EmitEvent(jr, c, path, kind, depth);
}

static void
JsonRuleContext(void *arg)
{
	errcontext("segment rule built from jsonb: %s", (const char *) arg);
}

/* segment.rule_from_jsonb(jsonb): the rule of a JSON form (see rule_to_jsonb). */
PG_FUNCTION_INFO_V1(rule_from_jsonb);
Datum
rule_from_jsonb(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	JsonReader	jr;
	ErrorContextCallback cb;
	struct varlena *result;

	if (JB_ROOT_IS_SCALAR(jb) || !JB_ROOT_IS_OBJECT(jb))
		Bad("$", "a rule object");
	initStringInfo(&jr.out);
	EmitRule(&jr, &jb->root, "$", false, 0);
	cb.callback = JsonRuleContext;
	cb.arg = jr.out.data;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	result = RuleFromText(jr.out.data, jr.out.len);
	error_context_stack = cb.previous;
	PG_RETURN_POINTER(result);
}
