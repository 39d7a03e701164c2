/*
 * rule_deps.c — what a rule reads: event types, contact fields, tags,
 * segments, whether it reads lifecycle stages and whether its truth can
 * change with time alone.  Segments use it to re-evaluate only the rules
 * a change can affect.  Pure C: no PostgreSQL headers.
 */
#include "rule.h"

#include <stdlib.h>
#include <string.h>

#define DEP_LISTS 4

typedef struct DepList
{
	const char **items;
	int			n;
	int			cap;
} DepList;

typedef struct Deps
{
	const CoreAllocator *a;
	DepList		lists[DEP_LISTS];	/* events, fields, segments, tags */
	bool		stages;
	bool		time;
	bool		oom;
} Deps;

enum
{
	D_EVENTS, D_FIELDS, D_SEGMENTS, D_TAGS
};

static void
Add(Deps *d, int which, const char *s)
{
	DepList    *l = &d->lists[which];
	int			i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->items[i], s) == 0)
			return;
	if (l->n == l->cap)
	{
		int			cap = l->cap ? l->cap * 2 : 8;
		const char **bigger = CoreAlloc(d->a, sizeof(char *) * cap);

		if (bigger == NULL)
		{
			d->oom = true;
			return;
		}
		if (l->n)
			memcpy(bigger, l->items, sizeof(char *) * l->n);
		CoreFree(d->a, l->items);
		l->items = bigger;
		l->cap = cap;
	}
	l->items[l->n++] = s;
}

static bool
IsRelative(const RuleLit *l)
{
	return l->kind == RL_NOW || l->kind == RL_AGO || l->kind == RL_FROM_NOW;
}

static void
Walk(Deps *d, const Rule *r)
{
	int			i;

	for (i = 0; i < r->nlits; i++)
		if (IsRelative(&r->lits[i]))
			d->time = true;
	switch (r->kind)
	{
		case RK_AND:
		case RK_OR:
		case RK_NOT:
			for (i = 0; i < r->nkids; i++)
				Walk(d, r->kids[i]);
			break;
		case RK_CMP:
		case RK_IN:
		case RK_NULL:
		case RK_BETWEEN:
		case RK_MATCH:
			if (r->ref.kind == RR_ATTRS)
				Add(d, D_FIELDS, "attrs");
			else if (r->ref.kind == RR_COLUMN || r->ref.kind == RR_FIELD)
				Add(d, D_FIELDS, r->ref.name);
			break;
		case RK_TAGGED:
			Add(d, D_TAGS, r->lits[0].text);
			break;
		case RK_SEGMENT:
			Add(d, D_SEGMENTS, r->lits[0].text);
			break;
		case RK_STAGE_CMP:
		case RK_STAGE_IN:
			d->stages = true;
			break;
		case RK_DID:
		case RK_AGG:
			Add(d, D_EVENTS, r->event);
			if (r->window.kind == RW_WITHIN ||
				(r->window.kind != RW_NONE && IsRelative(&r->window.from)) ||
				(r->window.kind == RW_BETWEEN && IsRelative(&r->window.to)))
				d->time = true;
			if (r->where)
				Walk(d, r->where);
			break;
		default:
			break;
	}
}

static int
CompareStrings(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * {"events": [...], "fields": [...], "segments": [...], "stages": bool,
 * "tags": [...], "time": bool}, arrays sorted and de-duplicated.  Event
 * properties inside where are not fields: they belong to the event.
 */
bool
RulePrintDependencies(const Rule *r, CoreBuf *out)
{
	static const char *const names[DEP_LISTS] = {"events", "fields", "segments", "tags"};
	Deps		d;
	int			k,
				i;

	memset(&d, 0, sizeof(d));
	d.a = out->a;
	Walk(&d, r);
	CoreBufAppendChar(out, '{');
	for (k = 0; k < DEP_LISTS; k++)
	{
		DepList    *l = &d.lists[k];

		if (l->n > 1)
			qsort(l->items, l->n, sizeof(char *), CompareStrings);
		CoreBufPrintf(out, "%s\"%s\": [", k ? ", " : "", names[k]);
		for (i = 0; i < l->n; i++)
		{
			if (i)
				CoreBufAppendStr(out, ", ");
			RuleAppendJsonString(out, l->items[i]);
		}
		CoreBufAppendChar(out, ']');
		if (k == D_SEGMENTS)
			CoreBufPrintf(out, ", \"stages\": %s", d.stages ? "true" : "false");
		CoreFree(d.a, l->items);
	}
	CoreBufPrintf(out, ", \"time\": %s}", d.time ? "true" : "false");
	return !d.oom && !out->oom && !out->overflow;
}
