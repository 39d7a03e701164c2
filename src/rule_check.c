/*
 * rule_check.c — name resolution and type checking of a parsed rule:
 * built-in columns, custom fields (through the caller's resolver), untyped
 * attrs paths and event properties; literals must fit the field's type and
 * the operator must make sense for it.  Pure C: no PostgreSQL headers.
 */
#include "rule.h"

#include <stdio.h>
#include <string.h>

/* The built-in columns of segment.contacts a rule may read, and their types. */
static const struct
{
	const char *name;
	RuleType	type;
}			builtin[] = {
	{"email", RT_TEXT},
	{"first_name", RT_TEXT},
	{"last_name", RT_TEXT},
	{"locale", RT_TEXT},
	{"time_zone", RT_TEXT},
	{"status", RT_ENUM},
	{"created_at", RT_TIMESTAMP},
	{"updated_at", RT_TIMESTAMP},
};

const char *const rule_builtin_columns[] = {
	"email", "first_name", "last_name", "locale", "time_zone", "status",
	"created_at", "updated_at", NULL
};

static const char *const status_values[] = {
	"subscribed", "pending", "unsubscribed", "bounced", "complained"
};

static const char *const type_names[] = {
	[RT_UNKNOWN] = "unknown", [RT_TEXT] = "text", [RT_NUMBER] = "number",
	[RT_BOOLEAN] = "boolean", [RT_DATE] = "date", [RT_TIMESTAMP] = "timestamp",
	[RT_ENUM] = "enum", [RT_TEXT_ARRAY] = "text[]", [RT_UNTYPED] = "untyped"
};

const char *
RuleTypeName(RuleType t)
{
	return type_names[t];
}

/* The RuleType of a segment.fields type name; RT_UNKNOWN if none. */
RuleType
RuleTypeFromName(const char *name)
{
	int			t;

	for (t = RT_TEXT; t <= RT_TEXT_ARRAY; t++)
		if (strcmp(name, type_names[t]) == 0)
			return (RuleType) t;
	return RT_UNKNOWN;
}

bool
RuleIsBuiltinColumn(const char *name, RuleType *type)
{
	size_t		i;

	for (i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (strcmp(name, builtin[i].name) == 0)
		{
			if (type)
				*type = builtin[i].type;
			return true;
		}
	return false;
}

/* What a field's type calls a literal, for messages. */
static const char *
TypeNoun(RuleType t)
{
	switch (t)
	{
		case RT_NUMBER:
			return "a number";
		case RT_BOOLEAN:
			return "true or false";
		case RT_DATE:
			return "a date (date 'YYYY-MM-DD', now, 30 days ago, 2 weeks from now)";
		case RT_TIMESTAMP:
			return "a time (timestamp '...', date 'YYYY-MM-DD', now, 30 days ago, 2 weeks from now)";
		default:
			return "a 'string'";
	}
}

static const char *
LitNoun(const RuleLit *l)
{
	switch (l->kind)
	{
		case RL_NUMBER:
			return "a number";
		case RL_STRING:
			return "a string";
		case RL_BOOL:
			return "a boolean";
		default:
			return "a time";
	}
}

static bool
IsTime(const RuleLit *l)
{
	return l->kind != RL_NUMBER && l->kind != RL_STRING && l->kind != RL_BOOL;
}

typedef struct Checker
{
	const RuleResolver *resolver;
	RuleCheckFailure *failure;
	CoreError  *err;
} Checker;

static const char *
RefWord(const RuleRef *ref)
{
	return ref->kind == RR_PROP ? "property" : "field";
}

/* The reference as written: name, attrs.a.b or a.b. */
static void
RefDisplay(const RuleRef *ref, char *buf, size_t size)
{
	size_t		n = 0;
	int			i;

	buf[0] = '\0';
	if (ref->kind != RR_ATTRS && ref->kind != RR_PROP)
	{
		snprintf(buf, size, "%s", ref->name);
		return;
	}
	if (ref->kind == RR_ATTRS)
		n = (size_t) snprintf(buf, size, "attrs");
	for (i = 0; i < ref->npath && n < size; i++)
		n += (size_t) snprintf(buf + n, size - n, "%s%s", (n > 0) ? "." : "", ref->path[i]);
}

/* Does literal l fit a value of type t (enum values checked when known)? */
static bool
CheckLit(Checker *c, const Rule *r, const RuleLit *l, RuleType t, const RuleFieldInfo *info)
{
	char		name[128];
	bool		ok;

	RefDisplay(&r->ref, name, sizeof(name));

	switch (t)
	{
		case RT_TEXT:
		case RT_ENUM:
			ok = l->kind == RL_STRING;
			break;
		case RT_NUMBER:
			ok = l->kind == RL_NUMBER;
			break;
		case RT_BOOLEAN:
			ok = l->kind == RL_BOOL;
			break;
		case RT_DATE:
		case RT_TIMESTAMP:
			ok = IsTime(l);
			break;
		case RT_UNTYPED:
			if (IsTime(l) && r->ref.kind == RR_PROP)
				return CoreErrorSet(c->err, CORE_ERR_TYPE, l->pos,
									"expected a number, a 'string' or true/false for the event property \"%s\", found a time",
									name);
			if (IsTime(l))
				return CoreErrorSet(c->err, CORE_ERR_TYPE, l->pos,
									"expected a number, a 'string' or true/false for the untyped \"%s\", found a time (define a timestamp field with segment.define_field to compare times)",
									name);
			return true;
		default:
			ok = false;
	}
	if (!ok)
		return CoreErrorSet(c->err, CORE_ERR_TYPE, l->pos, "expected %s for %s field \"%s\", found %s",
							TypeNoun(t), RuleTypeName(t), name, LitNoun(l));
	if (t == RT_ENUM && info && info->enum_values)
	{
		char		list[200];
		size_t		n = 0;
		int			i;

		for (i = 0; i < info->nenum; i++)
			if (strcmp(info->enum_values[i], l->text) == 0)
				return true;
		list[0] = '\0';
		for (i = 0; i < info->nenum; i++)
		{
			int			w = snprintf(list + n, sizeof(list) - n, "%s'%s'", i ? ", " : "",
									 info->enum_values[i]);

			if (w < 0 || (size_t) w >= sizeof(list) - n - 5)
			{
				snprintf(list + n, sizeof(list) - n, ", ...");
				break;
			}
			n += (size_t) w;
		}
		return CoreErrorSet(c->err, CORE_ERR_TYPE, l->pos, "expected one of %s for enum field \"%s\", found '%.60s'",
							list, name, l->text);
	}
	return true;
}

/* Type and check one value condition (cmp, in, is null, between, match). */
static bool
CheckValueCond(Checker *c, Rule *r)
{
	RuleFieldInfo info = {RT_UNKNOWN, NULL, 0};
	RuleFieldInfo *pinfo = NULL;
	RuleType	t;
	char		name[128];
	int			i;

	switch (r->ref.kind)
	{
		case RR_COLUMN:
			RuleIsBuiltinColumn(r->ref.name, &t);
			if (t == RT_ENUM)
			{
				info.type = RT_ENUM;
				info.enum_values = status_values;
				info.nenum = 5;
				pinfo = &info;
			}
			break;
		case RR_FIELD:
			if (c->resolver->field == NULL || !c->resolver->field(c->resolver->ctx, r->ref.name, &info) ||
				info.type == RT_UNKNOWN)
			{
				if (c->failure)
				{
					c->failure->kind = RUK_FIELD;
					strncpy(c->failure->name, r->ref.name, sizeof(c->failure->name) - 1);
				}
				return CoreErrorSet(c->err, CORE_ERR_UNDEFINED, r->ref.pos, "unknown field \"%.60s\"", r->ref.name);
			}
			t = info.type;
			pinfo = &info;
			break;
		case RR_AMOUNT:
			t = RT_NUMBER;
			break;
		default:
			t = RT_UNTYPED;
			break;
	}
	r->ref.type = t;
	RefDisplay(&r->ref, name, sizeof(name));

	if (t == RT_TEXT_ARRAY && !(r->kind == RK_NULL || (r->kind == RK_MATCH && r->match == RM_CONTAINS)))
		return CoreErrorSet(c->err, CORE_ERR_TYPE, r->ref.pos,
							"expected contains, not contains, is null or is not null after the text[] field \"%s\"",
							name);
	switch (r->kind)
	{
		case RK_NULL:
			return true;
		case RK_MATCH:
			if (t == RT_TEXT || t == RT_UNTYPED || t == RT_TEXT_ARRAY)
				return true;
			return CoreErrorSet(c->err, CORE_ERR_TYPE, r->ref.pos,
								"expected a text field before %s, but \"%s\" is a%s %s field",
								r->match == RM_CONTAINS ? "contains" : r->match == RM_STARTS ? "starts with" : "ends with",
								name, t == RT_ENUM ? "n" : "", RuleTypeName(t));
		case RK_CMP:
			if ((t == RT_ENUM || t == RT_BOOLEAN) && r->cmp != RC_EQ && r->cmp != RC_NE)
				return CoreErrorSet(c->err, CORE_ERR_TYPE, r->ref.pos,
									"expected = or != after the %s field \"%s\", found %s",
									RuleTypeName(t), name, RuleCmpText(r->cmp));
			if (t == RT_UNTYPED && r->lits[0].kind == RL_BOOL && r->cmp != RC_EQ && r->cmp != RC_NE)
				return CoreErrorSet(c->err, CORE_ERR_TYPE, r->lits[0].pos,
									"expected = or != before true or false, found %s", RuleCmpText(r->cmp));
			break;
		case RK_BETWEEN:
			if (t == RT_ENUM || t == RT_BOOLEAN)
				return CoreErrorSet(c->err, CORE_ERR_TYPE, r->ref.pos,
									"expected =, !=, in or not in after the %s field \"%s\", found between",
									RuleTypeName(t), name);
			if (t == RT_UNTYPED && r->lits[0].kind == RL_BOOL)
				return CoreErrorSet(c->err, CORE_ERR_TYPE, r->lits[0].pos,
									"expected a number or a 'string' as bound of between, found a boolean");
			break;
		default:
			break;
	}
	for (i = 0; i < r->nlits; i++)
	{
		if (!CheckLit(c, r, &r->lits[i], t, pinfo))
			return false;
		if (t == RT_UNTYPED && i > 0 && r->lits[i].kind != r->lits[0].kind)
			return CoreErrorSet(c->err, CORE_ERR_TYPE, r->lits[i].pos,
								"expected %s like the first value, found %s (values of an untyped %s are compared as numbers, strings or booleans, not a mix)",
								LitNoun(&r->lits[0]), LitNoun(&r->lits[i]), RefWord(&r->ref));
	}
	return true;
}

static bool
CheckNode(Checker *c, Rule *r)
{
	int			i;

	switch (r->kind)
	{
		case RK_TRUE:
		case RK_FALSE:
		case RK_TAGGED:
			return true;
		case RK_AND:
		case RK_OR:
		case RK_NOT:
			for (i = 0; i < r->nkids; i++)
				if (!CheckNode(c, r->kids[i]))
					return false;
			return true;
		case RK_CMP:
		case RK_IN:
		case RK_NULL:
		case RK_BETWEEN:
		case RK_MATCH:
			return CheckValueCond(c, r);
		case RK_SEGMENT:
			if (c->resolver->segment && !c->resolver->segment(c->resolver->ctx, r->lits[0].text))
			{
				if (c->failure)
				{
					c->failure->kind = RUK_SEGMENT;
					strncpy(c->failure->name, r->lits[0].text, sizeof(c->failure->name) - 1);
				}
				return CoreErrorSet(c->err, CORE_ERR_UNDEFINED, r->lits[0].pos,
									"unknown segment '%.60s'", r->lits[0].text);
			}
			return true;
		case RK_STAGE_CMP:
		case RK_STAGE_IN:
			for (i = 0; i < r->nlits; i++)
				if (c->resolver->stage && !c->resolver->stage(c->resolver->ctx, r->lits[i].text))
				{
					if (c->failure)
					{
						c->failure->kind = RUK_STAGE;
						strncpy(c->failure->name, r->lits[i].text, sizeof(c->failure->name) - 1);
					}
					return CoreErrorSet(c->err, CORE_ERR_UNDEFINED, r->lits[i].pos,
										"unknown stage '%.60s'", r->lits[i].text);
				}
			return true;
		case RK_DID:
		case RK_AGG:
			return r->where == NULL || CheckNode(c, r->where);
	}
	return true;
}

/*
 * Resolve every name of r and check the types of its literals.  On failure
 * err says what and where; failure (when given) names what was unknown.
 */
bool
RuleCheck(Rule *r, const RuleResolver *resolver, RuleCheckFailure *failure, CoreError *err)
{
	Checker		c = {resolver, failure, err};

	if (failure)
		memset(failure, 0, sizeof(*failure));
	CoreErrorClear(err);
	return CheckNode(&c, r);
}
