/*
 * rule_test.c — unit tests of the rule core (TAP): parsing and canonical
 * printing, parse(print(x)) == x, errors with positions, type checking,
 * the nesting limit, SQL compilation (quoting, aggregates, forms), JSON and
 * dependencies.  Links the core alone, no PostgreSQL.
 */
#include "rule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	tests = 0;
static int	failures = 0;

static void
ok(bool cond, const char *name, const char *got)
{
	tests++;
	if (cond)
		printf("ok %d - %s\n", tests, name);
	else
	{
		failures++;
		printf("not ok %d - %s\n", tests, name);
		if (got)
			printf("# got: %s\n", got);
	}
}

static const char *const enum_values[] = {"free", "pro"};

/* Fields of the tests: lifetime number, country text, plan enum, ... */
static bool
TestField(void *ctx, const char *name, RuleFieldInfo *out)
{
	static const struct
	{
		const char *name;
		RuleType	type;
	}			fields[] = {
		{"lifetime", RT_NUMBER}, {"country", RT_TEXT}, {"plan", RT_ENUM},
		{"vip", RT_BOOLEAN}, {"birthday", RT_DATE}, {"renews_at", RT_TIMESTAMP},
		{"interests", RT_TEXT_ARRAY}
	};
	size_t		i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strcmp(fields[i].name, name) == 0)
		{
			out->type = fields[i].type;
			out->enum_values = enum_values;
			out->nenum = 2;
			return true;
		}
	if (strcmp(name, "lifetim") == 0)
		return false;
	/* other names: t... are timestamps, the rest compare like attrs paths */
	out->type = name[0] == 't' ? RT_TIMESTAMP : RT_UNTYPED;
	out->enum_values = NULL;
	out->nenum = 0;
	return true;
}

static bool
TestSegment(void *ctx, const char *name)
{
	return strcmp(name, "high_value") == 0;
}

static const RuleResolver resolver = {TestField, TestSegment, NULL, NULL};

/* Parse and check src; on success return what (0 text, 1 json, 2 deps, 3 set sql, 4 per-contact sql, 5 types). */
static char *
Run(const char *src, int what, CoreError *err)
{
	const CoreAllocator *a = &core_malloc_allocator;
	Rule	   *r = RuleParse(a, src, strlen(src), err);
	CoreBuf		b;

	if (r == NULL)
		return NULL;
	if (!RuleCheck(r, &resolver, NULL, err))
	{
		RuleFree(a, r);
		return NULL;
	}
	CoreBufInit(&b, a, 64);
	switch (what)
	{
		case 0:
			RulePrint(r, &b);
			break;
		case 1:
			RulePrintJson(r, &b);
			break;
		case 2:
			RulePrintDependencies(r, &b);
			break;
		case 3:
			RuleCompileCondition(r, false, &b, err);
			break;
		case 4:
			RuleCompileCondition(r, true, &b, err);
			break;
		case 6:
			RuleCompileMembers(r, &b, err);
			break;
		default:
			RulePrintTypes(r, &b);
			break;
	}
	RuleFree(a, r);
	return CoreBufDetach(&b, NULL);
}

static void
Canonical(const char *src, const char *want)
{
	CoreError	err;
	char	   *got = Run(src, 0, &err);
	char	   *again = got ? Run(got, 0, &err) : NULL;
	char		name[300];

	snprintf(name, sizeof(name), "canonical: %s", src);
	ok(got && strcmp(got, want) == 0, name, got ? got : err.message);
	snprintf(name, sizeof(name), "reparses: %s", want);
	ok(again && got && strcmp(again, got) == 0, name, again ? again : err.message);
	free(got);
	free(again);
}

static void
Error(const char *src, CoreErrorCode code, int pos, const char *msg)
{
	CoreError	err;
	char	   *got = Run(src, 0, &err);
	char		name[300];
	char		desc[400];

	snprintf(name, sizeof(name), "error at %d: %s", pos, src);
	snprintf(desc, sizeof(desc), "code %d at %d: %s", err.code, err.position, err.message);
	ok(got == NULL && err.code == code && err.position == pos && strstr(err.message, msg) != NULL,
	   name, got ? got : desc);
	free(got);
}

static void
Contains(const char *src, int what, const char *want)
{
	CoreError	err;
	char	   *got = Run(src, what, &err);
	char		name[300];

	snprintf(name, sizeof(name), "%s of %s has %s", what == 3 ? "set sql" : what == 4 ? "per-contact sql" :
			 what == 1 ? "json" : what == 2 ? "deps" : what == 6 ? "members sql" : "types", src, want);
	ok(got && strstr(got, want) != NULL, name, got ? got : err.message);
	free(got);
}

static void
Equals(const char *src, int what, const char *want)
{
	CoreError	err;
	char	   *got = Run(src, what, &err);
	char		name[300];

	snprintf(name, sizeof(name), "%s of %s", what == 1 ? "json" : what == 2 ? "deps" : what == 6 ? "members sql" : "output", src);
	ok(got && strcmp(got, want) == 0, name, got ? got : err.message);
	free(got);
}

int
main(void)
{
	char	   *deep;
	size_t		i;
	CoreError	err;

	/* grammar and canonical printing */
	Canonical("TRUE", "true");
	Canonical("sum(purchase.amount) > 500", "sum(purchase.amount) > 500");
	Canonical("count(purchase) WITHIN 60 DAY > 3", "count(purchase) within 60 days > 3");
	Canonical("did purchase and not did purchase within 180 days", "did purchase and not did purchase within 180 days");
	Canonical("country in ('DE','AT') and tagged 'VIP'", "country in ('DE', 'AT') and tagged 'VIP'");
	Canonical("did purchase where (category = 'golf') within 365 days", "did purchase where (category = 'golf') within 365 days");
	Canonical("((a_ = 1))", "a_ = 1");
	Canonical("a = 1 or b = 2 and c = 3", "a = 1 or b = 2 and c = 3");
	Canonical("(a = 1 or b = 2) and c = 3", "(a = 1 or b = 2) and c = 3");
	Canonical("a = 1 and (b = 2 and c = 3)", "a = 1 and b = 2 and c = 3");
	Canonical("(a = 1 or b = 2) or (c = 3 or d = 4)", "a = 1 or b = 2 or c = 3 or d = 4");
	Canonical("not (a = 1) and not (b = 1 or c = 1)", "not a = 1 and not (b = 1 or c = 1)");
	Canonical("not (not (a = 1 and b = 2))", "not not (a = 1 and b = 2)");
	Canonical("x <> 1 and y != -0.0 and z = 007", "x != 1 and y != 0.0 and z = 7");
	Canonical("x not between 1 and 2 and y is not null and z is null", "x not between 1 and 2 and y is not null and z is null");
	Canonical("e starts with 'a' and e not ends with 'b' and e not contains 'it''s'", "e starts with 'a' and e not ends with 'b' and e not contains 'it''s'");
	Canonical("t > 1 minute ago and t < 1 hours from now and t = now", "t > 1 minute ago and t < 1 hour from now and t = now");
	Canonical("t between date '2024-02-29' and timestamp '2024-03-01T10:00:00.5+02:00'", "t between date '2024-02-29' and timestamp '2024-03-01T10:00:00.5+02:00'");
	Canonical("stage in ('a','b') or stage not in ('c') or stage > 'x'", "stage in ('a', 'b') or stage not in ('c') or stage > 'x'");
	Canonical("in segment 'high_value'", "in segment 'high_value'");
	Canonical("did not 'page-view' since 2 weeks ago", "did not 'page-view' since 2 weeks ago");
	Canonical("did x between 3 days ago and now", "did x between 3 days ago and now");
	Canonical("did x where (amount > 1 and (p.q = 'a' or not r = true))", "did x where (amount > 1 and (p.q = 'a' or not r = true))");
	Canonical("avg(x.price where (a = 1)) since date '2024-01-01' >= 1.50", "avg(x.price where (a = 1)) since date '2024-01-01' >= 1.50");
	Canonical("last(x) <= 1 year ago and min(x.amount) < 0 and max(x.amount) > 0", "last(x) <= 1 year ago and min(x.amount) < 0 and max(x.amount) > 0");
	Canonical("did 'not' and did 'where' and did Within", "did 'not' and did 'where' and did 'Within'");
	Canonical("attrs.a.b.c = 'x' and attrs.null = 1", "attrs.a.b.c = 'x' and attrs.null = 1");
	Canonical("count = 1 and sum = 2", "count = 1 and sum = 2");

	/* syntax errors: position and message */
	Error("", CORE_ERR_SYNTAX, 1, "expected a condition, found the end of the rule");
	Error("a = 1 and", CORE_ERR_SYNTAX, 10, "expected a condition");
	Error("a = 'x", CORE_ERR_SYNTAX, 5, "closing quote");
	Error("a = 1 )", CORE_ERR_SYNTAX, 7, "expected and, or or the end of the rule");
	Error("(a = 1", CORE_ERR_SYNTAX, 7, "to close the ( at character 1");
	Error("a ~ 1", CORE_ERR_SYNTAX, 3, "unexpected character \"~\"");
	Error("é = 1", CORE_ERR_SYNTAX, 1, "unexpected character \"é\"");
	Error("x = 'é' or ~", CORE_ERR_SYNTAX, 12, "unexpected character");
	Error("a = 1e3", CORE_ERR_SYNTAX, 6, "space after the number");
	Error("t > 3 days", CORE_ERR_SYNTAX, 11, "ago or from now");
	Error("t > 3 eons ago", CORE_ERR_SYNTAX, 7, "expected and, or");
	Error("t > date '2023-02-29'", CORE_ERR_SYNTAX, 10, "expected a date");
	Error("t > timestamp '2023-02-28 24:00'", CORE_ERR_SYNTAX, 15, "expected a timestamp");
	Error("did x within 366001 days", CORE_ERR_SYNTAX, 14, "from 0 to 365000");
	Error("count(x.amount) > 1", CORE_ERR_SYNTAX, 8, "take no property");
	Error("sum(x) > 1", CORE_ERR_SYNTAX, 6, "as in sum(purchase.amount)");
	Error("last(x) > 1", CORE_ERR_SYNTAX, 11, "expected a time");
	Error("did x where (did y)", CORE_ERR_SYNTAX, 18, "expected an operator");
	Error("a = \"x\"", CORE_ERR_SYNTAX, 5, "single-quoted");
	Error("a = 'x\0'", CORE_ERR_SYNTAX, 5, "closing quote");

	/* nesting limit */
	deep = malloc(1000);
	for (i = 0; i < 250; i++)
		deep[i] = '(';
	strcpy(deep + 250, "true");
	Error(deep, CORE_ERR_LIMIT, 201, "levels of nesting");
	for (i = 0; i < 240; i++)
		memcpy(deep + i * 4, "not ", 4);
	strcpy(deep + 960, "true");
	Error(deep, CORE_ERR_LIMIT, 801, "levels of nesting");
	free(deep);

	/* type checking */
	Error("lifetime > 'abc'", CORE_ERR_TYPE, 12, "expected a number for number field \"lifetime\"");
	Error("plan = 'gold'", CORE_ERR_TYPE, 8, "expected one of 'free', 'pro'");
	Error("plan < 'pro'", CORE_ERR_TYPE, 1, "expected = or !=");
	Error("vip = 'yes'", CORE_ERR_TYPE, 7, "true or false");
	Error("birthday > 'x'", CORE_ERR_TYPE, 12, "expected a date");
	Error("interests = 'x'", CORE_ERR_TYPE, 1, "text[] field");
	Error("status = 'active'", CORE_ERR_TYPE, 10, "'subscribed'");
	Error("attrs.a in (1, 'x')", CORE_ERR_TYPE, 16, "not a mix");
	Error("attrs.a > now", CORE_ERR_TYPE, 11, "found a time");
	Error("lifetim > 1", CORE_ERR_UNDEFINED, 1, "unknown field \"lifetim\"");
	Error("in segment 'nope'", CORE_ERR_UNDEFINED, 12, "unknown segment 'nope'");
	Error("did x where (amount = 'a')", CORE_ERR_TYPE, 23, "expected a number");

	/* SQL: aggregates from event_stats, windows from events, quoting */
	Contains("sum(purchase.amount) > 500", 3, "FROM segment.event_stats s WHERE s.type = 'purchase' AND s.sum_amount > 500");
	Contains("count(purchase) < 3", 3, "(NOT (c.id IN (SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'purchase' AND NOT (s.count < 3))))");
	Contains("count(purchase) < 3", 4, "(coalesce((SELECT s.count FROM segment.event_stats s WHERE s.contact_id = c.id AND s.type = 'purchase'), 0) < 3)");
	Contains("did purchase within 30 days", 3, "(c.id IN (SELECT e.contact_id FROM segment.events e WHERE e.type = 'purchase' AND e.occurred_at >= (segment.now() - interval '30 days')))");
	Contains("did purchase within 30 days", 4, "s.type = 'purchase' AND s.last_at >= (segment.now() - interval '30 days')");
	Contains("did purchase between now and now", 3, "FROM segment.events e WHERE e.type = 'purchase' AND e.occurred_at BETWEEN segment.now() AND segment.now()");
	Contains("count(purchase) within 2 weeks >= 0", 3, "(NOT (c.id IN (SELECT e.contact_id FROM segment.events e");
	Contains("count(purchase) within 2 weeks >= 0", 3, "HAVING NOT (count(*) >= 0)");
	Contains("sum(purchase.price) < 1", 4, "(coalesce((SELECT sum(");
	Contains("sum(purchase.price) > 1", 3, "HAVING sum(segment.jsonb_number(e.properties, 'price')) > 1");
	Contains("lifetime between 1 and 2", 3, "((segment.jsonb_number(c.attrs, 'lifetime') BETWEEN 1 AND 2) IS TRUE)");
	Contains("attrs.x.y > 1", 3, "(CASE WHEN jsonb_typeof((c.attrs #> '{\"x\",\"y\"}')) = 'number' THEN (c.attrs #> '{\"x\",\"y\"}')::numeric END)");
	Contains("avg(purchase.amount) > 1", 4, "coalesce((SELECT (s.sum_amount / nullif(s.amount_count, 0)) FROM segment.event_stats s");
	Contains("last(purchase where (a = 1)) > now", 4, "coalesce((SELECT max(e.occurred_at) FROM segment.events e WHERE e.contact_id = c.id");
	Contains("did not purchase", 4, "(NOT EXISTS (SELECT 1 FROM segment.event_stats s WHERE s.contact_id = c.id AND s.type = 'purchase'))");
	Contains("country = 'it''s'", 3, "(((c.attrs->>'country') = 'it''s') IS TRUE)");
	Contains("country = 'a\\b'", 3, "= E'a\\\\b'");
	Contains("country contains '%_'", 3, "LIKE E'%\\\\%\\\\_%'");
	Contains("attrs.x.y = 1", 3, "(c.attrs #> '{\"x\",\"y\"}')::numeric");
	Contains("birthday < 3 days ago", 3, "((segment.now() - interval '3 days') AT TIME ZONE 'UTC')::date");
	Contains("renews_at > timestamp '2024-01-01 10:00'", 3, "'2024-01-01 10:00+00'::timestamptz");
	Contains("renews_at > date '2024-01-01'", 3, "'2024-01-01 00:00:00+00'::timestamptz");
	Contains("interests not contains 'x'", 3, "((jsonb_typeof((c.attrs->'interests')) = 'array' AND NOT ((c.attrs->'interests') ? 'x')) IS TRUE)");
	Contains("tagged 'v'", 4, "t.expires_at > segment.now()) AND t.contact_id = c.id))");
	Contains("stage < 'b'", 3, "st.position < (SELECT p.position FROM segment.stages p WHERE p.name = 'b')");
	Contains("lifetime > -5", 3, "> (-5)");
	Contains("last(x) > 3 days ago", 3, "(c.id IN (SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'x' AND s.last_at > (SELECT (segment.now() - interval '3 days'))))");
	Contains("last(x) > 3 days ago", 4, "coalesce((SELECT s.last_at FROM segment.event_stats s WHERE s.contact_id = c.id AND s.type = 'x') > (segment.now() - interval '3 days'), false)");
	Contains("last(x where (k = 1)) < date '2024-01-01'", 3, "HAVING max(e.occurred_at) < '2024-01-01 00:00:00+00'::timestamptz))");
	Contains("lifetime = 1 and country = 'x' and lifetime = 2", 5, ";lifetime:number;country:text;");

	/* members: set algebra over lookups, or a scan of contacts */
	Equals("did x within 1 day and not did y within 1 day", 6,
		   "(SELECT e.contact_id FROM segment.events e WHERE e.type = 'x' AND e.occurred_at >= (segment.now() - interval '1 days')) EXCEPT (SELECT e.contact_id FROM segment.events e WHERE e.type = 'y' AND e.occurred_at >= (segment.now() - interval '1 days'))");
	Equals("did x within 1 day", 6, "SELECT DISTINCT e.contact_id FROM segment.events e WHERE e.type = 'x' AND e.occurred_at >= (segment.now() - interval '1 days')");
	Equals("not (not did x or not did y)", 6, "(SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'x') INTERSECT (SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'y')");
	Equals("did x or count(y) > 1", 6, "(SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'x') UNION (SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'y' AND s.count > 1)");
	Contains("did x or not did y", 6, "SELECT c.id FROM segment.contacts c WHERE ");
	Contains("did x and country = 'a'", 6, "SELECT c.id FROM segment.contacts c WHERE ");
	/* members: a complement among the top-level conjuncts is an anti-join; under or / not, NOT IN */
	Equals("count(x) < 1", 6, "SELECT c.id FROM segment.contacts c WHERE (NOT EXISTS (SELECT 1 FROM (SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'x' AND NOT (s.count < 1)) AS x(id) WHERE x.id = c.id))");
	Contains("did x or not did y", 6, "(NOT (c.id IN (SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'y')))");
	Contains("country = 'a' and not (did y and country = 'b')", 6, "(NOT ((c.id IN (SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'y'))");
	Contains("country = 'a' and not not did y", 6, "(NOT (NOT (c.id IN (SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'y'))))");
	Contains("country = 'a' and not tagged 'v'", 6, "(NOT EXISTS (SELECT 1 FROM (SELECT t.contact_id FROM segment.contact_tags t WHERE t.tag = 'v'");
	Contains("country = 'a' and not did y where (k = 1)", 4, "(NOT (EXISTS (SELECT 1 FROM segment.events e WHERE e.contact_id = c.id");
	/* members: no IS TRUE where NULL rejects like false, kept under not */
	Equals("country = 'a' and not country = 'b'", 6,
		   "SELECT c.id FROM segment.contacts c WHERE (((c.attrs->>'country') = 'a') AND (NOT (((c.attrs->>'country') = 'b') IS TRUE)))");
	Equals("did x where (k = 1 or not k = 2) within 1 day", 6,
		   "SELECT DISTINCT e.contact_id FROM segment.events e WHERE e.type = 'x' AND e.occurred_at >= (segment.now() - interval '1 days') AND ((segment.jsonb_number(e.properties, 'k') = 1) OR (NOT ((segment.jsonb_number(e.properties, 'k') = 2) IS TRUE)))");

	/* stats groups: conditions on one event type answered by its event_stats row, read once */
	Equals("did purchase and not did purchase within 180 days", 6,
		   "(SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'purchase' AND (NOT (s.last_at >= (SELECT segment.now() - interval '180 days'))))");
	Equals("sum(purchase.amount) > 500 and country in ('DE','AT') and not did purchase within 180 days", 6,
		   "SELECT c.id FROM segment.contacts c WHERE ((c.id IN (SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'purchase' AND (s.sum_amount > 500) AND (NOT (s.last_at >= (SELECT segment.now() - interval '180 days'))))) AND ((c.attrs->>'country') IN ('DE', 'AT')))");
	Equals("did x within 1 day and count(x) >= 2 and did x since date '2024-01-02' and sum(x.amount) < 5 and last(x) < now", 6,
		   "(SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'x' AND (s.last_at >= (SELECT segment.now() - interval '1 days')) AND (s.count >= 2) AND (s.last_at >= '2024-01-02 00:00:00+00'::timestamptz) AND (coalesce(s.sum_amount, 0) < 5) AND (s.last_at < (SELECT segment.now())))");
	Equals("did x and not (sum(x.amount) > 5 or avg(x.amount) > 1) and not min(x.amount) < 0 and max(x.amount) > 2", 6,
		   "(SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'x' AND (NOT coalesce((s.min_amount < 0), false)) AND (s.max_amount > 2)) EXCEPT ((SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'x' AND s.sum_amount > 5) UNION (SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'x' AND (s.sum_amount / nullif(s.amount_count, 0)) > 1))");
	Contains("did x and not sum(x.amount) > 5 and country = 'a'", 3,
		   "(c.id IN (SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'x' AND (NOT (coalesce(s.sum_amount, 0) > 5))))");
	Contains("did x and not sum(x.amount) > 5 and country = 'a'", 4,
		   "(EXISTS (SELECT 1 FROM segment.event_stats s WHERE s.contact_id = c.id AND s.type = 'x'))");
	/* no group: nothing requires the row, or a condition it cannot decide */
	Equals("count(x) < 3 and not did x within 1 day", 6,
		   "SELECT c.id FROM segment.contacts c WHERE ((NOT EXISTS (SELECT 1 FROM (SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'x' AND NOT (s.count < 3)) AS x(id) WHERE x.id = c.id)) AND (NOT EXISTS (SELECT 1 FROM (SELECT e.contact_id FROM segment.events e WHERE e.type = 'x' AND e.occurred_at >= (segment.now() - interval '1 days')) AS x(id) WHERE x.id = c.id)))");
	Equals("did x and not did x between 2 days ago and now and not did x where (k = 1) and not did y within 1 day", 6,
		   "(SELECT s.contact_id FROM segment.event_stats s WHERE s.type = 'x') EXCEPT (SELECT e.contact_id FROM segment.events e WHERE e.type = 'x' AND e.occurred_at BETWEEN (segment.now() - interval '2 days') AND segment.now()) EXCEPT (SELECT e.contact_id FROM segment.events e WHERE e.type = 'x' AND (segment.jsonb_number(e.properties, 'k') = 1)) EXCEPT (SELECT e.contact_id FROM segment.events e WHERE e.type = 'y' AND e.occurred_at >= (segment.now() - interval '1 days'))");

	/* JSON and dependencies */
	Equals("did purchase within 3 days", 1, "{\"did\": \"purchase\", \"within\": {\"amount\": 3, \"unit\": \"day\"}}");
	Equals("not a = 'x\"\\'", 1, "{\"not\": {\"field\": \"a\", \"op\": \"=\", \"value\": \"x\\\"\\\\\"}}");
	Equals("t > 2 weeks from now", 1, "{\"field\": \"t\", \"op\": \">\", \"value\": {\"from_now\": {\"amount\": 2, \"unit\": \"week\"}}}");
	Equals("did b and count(a) > 1 and email = 'x' and attrs.q = 1 and lifetime > 1 and tagged 'z' and tagged 'y' and did b",
		   2, "{\"events\": [\"a\", \"b\"], \"fields\": [\"attrs\", \"email\", \"lifetime\"], \"segments\": [], \"stages\": false, \"tags\": [\"y\", \"z\"], \"time\": false}");
	Contains("last(x) > 3 days ago", 2, "\"time\": true");
	Contains("did x since date '2024-01-01'", 2, "\"time\": false");
	Contains("stage = 'a' or in segment 'high_value'", 2, "\"segments\": [\"high_value\"], \"stages\": true");

	/* a lone parse error leaks nothing and reports OOM-free */
	ok(RuleParse(&core_malloc_allocator, "(((", 3, &err) == NULL && err.code == CORE_ERR_SYNTAX, "unclosed parentheses", err.message);

	printf("1..%d\n", tests);
	return failures ? 1 : 0;
}
