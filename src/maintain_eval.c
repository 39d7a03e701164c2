/*
 * maintain_eval.c — evaluate the maintained rules of one level for a set of
 * contacts, and read their current membership, rule tags and stage.
 *
 * A write of one event re-evaluates a few rules for one contact; doing that
 * with one SQL statement per write costs an executor start-up of a plan with
 * a subplan per condition, and as many index descents as conditions (one
 * rule set probes the same event_stats row dozens of times).  Here a rule is
 * compiled once per backend into a MaintExpr: conditions answered by
 * segment.event_stats (did [not] ... [within], all-time count / sum / min /
 * max of amounts) and counts of raw events in a window are evaluated in C
 * with index probes that read each (event type, contact) row once; all other
 * conditions are SQL leaves, the rule compiler's own per-contact SQL for
 * that part of the rule, which one kept query per level computes, only for
 * the contacts and leaves whose value the C part leaves open.  The values are
 * those of the rule compiler's per-contact SQL, read under a fresh snapshot
 * taken the way SPI takes it (so a run that waited for a contact's lock sees
 * what the previous holder committed).
 */
#include "segment.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "pgtime.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "access/visibilitymap.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"
#include "utils/snapmgr.h"

#include "rule_glue.h"
#include "maintain.h"

/*
 * Levels with up to this many segments (tag rules) read membership (rule
 * tags) by primary key; others read all of the contact's in one scan.
 */
#define EVAL_MEMBER_PROBES 1
#define EVAL_TAG_PROBES 1
/* Contacts evaluated together before their SQL leaves are fetched. */
#define EVAL_BATCH 512
/* event_stats rows kept per contact while its rules are evaluated. */
#define EVAL_MAX_STATS 16
/* Counts of raw events kept per contact while its rules are evaluated. */
#define EVAL_MAX_COUNTS 8

typedef enum Tri
{
	TRI_FALSE, TRI_TRUE, TRI_UNKNOWN
} Tri;

/* The event_stats row of one (event type, contact), as far as rules read it. */
typedef struct StatRow
{
	const char *event;
	bool		found;
	int64		count;
	TimestampTz first_at,
				last_at;
	Datum		sum,
				min,
				max;			/* numeric, 0 when NULL */
} StatRow;

/* Open relations and the state of the contact being evaluated. */
typedef struct EvalEnv
{
	MaintGraph *g;
	MaintLevel *lv;
	Snapshot	snap;
	TimestampTz now;
	Relation	contacts,
				contacts_pk,
				members,
				members_pk,
				tags,
				tags_pk,
				stages,
				stages_pk,
				stats,
				stats_pk,
				events,
				events_idx;
	TupleTableSlot *contacts_slot,
			   *members_slot,
			   *tags_slot,
			   *stages_slot,
			   *stats_slot,
			   *events_slot;
	MemoryContext tmp;			/* per contact */
	int64		contact;
	const MaintDelta *delta;	/* the statement's one event, when it is this contact's */
	StatRow		rows[EVAL_MAX_STATS];
	int			nrows;
	MaintExpr  *count_expr[EVAL_MAX_COUNTS];	/* 'c' conditions counted */
	int64		count_val[EVAL_MAX_COUNTS];
	bool		count_exact[EVAL_MAX_COUNTS];	/* the count itself, not a stand-in */
	int			ncounts;
	bool		prev_known;		/* prev_at looked up (delta's type, this contact) */
	TimestampTz prev_at;		/* latest event of that type before the delta's time, 0: none */
	Buffer		vm_members,		/* visibility map pages of index-only reads (one per relation) */
				vm_events;
	bool	   *qknown;			/* per level leaf */
	bool	   *qval;
	bool	   *need;
	bool		any_need;
} EvalEnv;

/* ------------------------------------------------------------------ lookup */

/* Does the index have exactly these leading key columns (by name) and is it a plain btree? */
static bool
IndexHasKeys(Oid indexid, Oid relid, const char *const *cols, int ncols)
{
	Relation	idx;
	bool		ok;
	int			i;

	if (!OidIsValid(indexid))
		return false;
	idx = index_open(indexid, AccessShareLock);
	ok = idx->rd_rel->relam == BTREE_AM_OID &&
		idx->rd_index->indnkeyatts >= ncols &&
		RelationGetIndexPredicate(idx) == NIL;
	for (i = 0; ok && i < ncols; i++)
		ok = idx->rd_index->indkey.values[i] == get_attnum(relid, cols[i]);
	index_close(idx, AccessShareLock);
	return ok;
}

/* The primary key of a relation, or InvalidOid. */
static Oid
PrimaryKeyOf(Oid relid, char *relkind)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Oid			pk = RelationGetPrimaryKeyIndex(rel);

	*relkind = rel->rd_rel->relkind;
	table_close(rel, AccessShareLock);
	return pk;
}

static AttrNumber
Column(Oid relid, const char *name)
{
	AttrNumber	att = get_attnum(relid, name);

	if (att == InvalidAttrNumber)
		elog(ERROR, "segment maintenance: column \"%s\" of %s not found", name, get_rel_name(relid));
	return att;
}

static Oid
Relid(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		elog(ERROR, "segment maintenance: relation segment.%s not found", name);
	return relid;
}

/*
 * Find the relations and indexes the C evaluation reads.  The tables of this
 * area must have their indexes; event_stats and events are read in C only
 * while they have the expected shape (events may have been partitioned:
 * then their conditions are SQL leaves).
 */
void
MaintLookupRels(MaintGraph *g)
{
	MaintRels  *r = &g->rels;
	Oid			nsp = get_namespace_oid("segment", false);
	char		relkind;
	static const char *const by_contact[] = {"contact_id", "segment_id"};
	static const char *const tag_key[] = {"contact_id", "tag"};
	static const char *const id_key[] = {"id"};
	static const char *const contact_key[] = {"contact_id"};
	static const char *const stats_key[] = {"type", "contact_id"};
	static const char *const events_key[] = {"contact_id", "type", "occurred_at"};

	memset(r, 0, sizeof(*r));
	r->contacts = Relid(nsp, "contacts");
	r->contacts_pk = PrimaryKeyOf(r->contacts, &relkind);
	r->members = Relid(nsp, "segment_members");
	r->members_pk = PrimaryKeyOf(r->members, &relkind);
	r->tags = Relid(nsp, "contact_tags");
	r->tags_pk = PrimaryKeyOf(r->tags, &relkind);
	r->stages = Relid(nsp, "contact_stages");
	r->stages_pk = PrimaryKeyOf(r->stages, &relkind);
	r->changes = Relid(nsp, "changes");
	if (!IndexHasKeys(r->contacts_pk, r->contacts, id_key, 1) ||
		!IndexHasKeys(r->members_pk, r->members, by_contact, 2) ||
		!IndexHasKeys(r->tags_pk, r->tags, tag_key, 2) ||
		!IndexHasKeys(r->stages_pk, r->stages, contact_key, 1))
		elog(ERROR, "segment maintenance: an index of segment.contacts, segment_members, contact_tags or contact_stages is missing");
	r->tags_tag = Column(r->tags, "tag");
	r->tags_source = Column(r->tags, "source");
	r->tags_expires = Column(r->tags, "expires_at");
	r->stages_stage = Column(r->stages, "stage");

	r->stats = Relid(nsp, "event_stats");
	r->stats_pk = PrimaryKeyOf(r->stats, &relkind);
	if (relkind != RELKIND_RELATION || !IndexHasKeys(r->stats_pk, r->stats, stats_key, 2))
		r->stats_pk = InvalidOid;
	else
	{
		r->stats_count = Column(r->stats, "count");
		r->stats_first = Column(r->stats, "first_at");
		r->stats_last = Column(r->stats, "last_at");
		r->stats_sum = Column(r->stats, "sum_amount");
		r->stats_min = Column(r->stats, "min_amount");
		r->stats_max = Column(r->stats, "max_amount");
	}

	r->events = Relid(nsp, "events");
	r->events_idx = InvalidOid;
	if (get_rel_relkind(r->events) == RELKIND_RELATION)
	{
		Oid			idx = get_relname_relid("events_contact_type_time", nsp);

		if (IndexHasKeys(idx, r->events, events_key, 3))
			r->events_idx = idx;
	}
}

/* ----------------------------------------------------------------- compile */

static MaintExpr *
NewExpr(MaintGraph *g, char op)
{
	MaintExpr  *e = MemoryContextAllocZero(g->cxt, sizeof(MaintExpr));

	e->op = op;
	return e;
}

/* The index of a SQL leaf in the graph, added unless the same SQL is there already. */
static int
AddLeaf(MaintGraph *g, const char *sql)
{
	int			i;

	for (i = 0; i < g->nleaves; i++)
		if (strcmp(g->leaves[i], sql) == 0)
			return i;
	if (g->nleaves == g->maxleaves)
	{
		g->maxleaves = g->maxleaves ? g->maxleaves * 2 : 32;
		g->leaves = g->leaves ? repalloc(g->leaves, sizeof(char *) * g->maxleaves)
			: MemoryContextAlloc(g->cxt, sizeof(char *) * g->maxleaves);
	}
	g->leaves[g->nleaves] = MemoryContextStrdup(g->cxt, sql);
	return g->nleaves++;
}

/* The window of within, as the Interval the rule compiler writes ("N units"). */
static Datum
WindowInterval(MaintGraph *g, const RuleLit *l)
{
	char	   *text = psprintf("%ld %ss", l->amount, RuleUnitText(l->unit));
	MemoryContext old = MemoryContextSwitchTo(g->cxt);
	Datum		d = DirectFunctionCall3(interval_in, CStringGetDatum(text),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));

	MemoryContextSwitchTo(old);
	return d;
}

static Datum
NumericLiteral(MaintGraph *g, const char *text)
{
	MemoryContext old = MemoryContextSwitchTo(g->cxt);
	Datum		d = DirectFunctionCall3(numeric_in, CStringGetDatum(text),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));

	MemoryContextSwitchTo(old);
	return d;
}

/*
 * The count at which counting raw events can stop: every count above the
 * literal compares with it the same way (the first integer above it; 0 when
 * it is negative, so nothing is read).
 */
static int64
CountLimit(Datum lit)
{
	Datum		zero = DirectFunctionCall1(int8_numeric, Int64GetDatum(0));
	Datum		big = DirectFunctionCall1(int8_numeric, Int64GetDatum(PG_INT64_MAX / 2));
	Datum		fl;

	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, lit, zero)) < 0)
		return 0;
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, lit, big)) >= 0)
		return PG_INT64_MAX;
	fl = DirectFunctionCall1(numeric_floor, lit);
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, fl)) + 1;
}

/* A SQL leaf for a part of the rule: its per-contact condition over alias c. */
static MaintExpr *
SqlLeaf(MaintGraph *g, const Rule *r, const char *source)
{
	CoreAllocator a;
	CoreBuf		out;
	CoreError	err;
	MaintExpr  *e;

	RuleAllocatorInit(&a, CurrentMemoryContext);
	CoreBufInit(&out, &a, 256);
	CoreErrorClear(&err);
	if (!RuleCompileCondition(r, true, &out, &err))
		RuleReportError(source, &err, NULL);
	e = NewExpr(g, 'q');
	e->leaf = AddLeaf(g, out.data);
	return e;
}

/*
 * Compile a rule (sub)tree.  What C evaluates must mean exactly what the
 * rule compiler's per-contact SQL means (rule_sql.c, per_contact): did
 * without where and with no window or a within window reads the event_stats
 * row (last_at for the window); count, and sum / min / max of amount,
 * without where and window read it too (count and sum of nothing are 0,
 * min / max of nothing fail); count within a window counts raw events.
 */
static MaintExpr *
Compile(MaintGraph *g, const Rule *r, const char *source)
{
	MaintExpr  *e;
	int			i;
	bool		stats = OidIsValid(g->rels.stats_pk);

	switch (r->kind)
	{
		case RK_TRUE:
			return NewExpr(g, 't');
		case RK_FALSE:
			return NewExpr(g, 'f');
		case RK_AND:
		case RK_OR:
		case RK_NOT:
			e = NewExpr(g, r->kind == RK_AND ? '&' : r->kind == RK_OR ? '|' : '!');
			e->nkids = r->nkids;
			e->kids = MemoryContextAlloc(g->cxt, sizeof(MaintExpr *) * (r->nkids + 1));
			for (i = 0; i < r->nkids; i++)
				e->kids[i] = Compile(g, r->kids[i], source);
			return e;
		case RK_DID:
			if (stats && r->where == NULL &&
				(r->window.kind == RW_NONE || r->window.kind == RW_WITHIN))
			{
				e = NewExpr(g, 'd');
				e->negated = r->negated;
				e->event = MemoryContextStrdup(g->cxt, r->event);
				if (r->window.kind == RW_WITHIN)
					e->within = WindowInterval(g, &r->window.within);
				return e;
			}
			break;
		case RK_AGG:
			if (r->where != NULL || r->negated || r->nlits != 1 || r->lits[0].kind != RL_NUMBER)
				break;
			if (stats && r->window.kind == RW_NONE &&
				(r->agg == RA_COUNT ||
				 ((r->agg == RA_SUM || r->agg == RA_MIN || r->agg == RA_MAX) &&
				  r->prop != NULL && strcmp(r->prop, "amount") == 0)))
				e = NewExpr(g, 'a');
			else if (OidIsValid(g->rels.events_idx) && r->window.kind == RW_WITHIN &&
					 r->agg == RA_COUNT)
			{
				e = NewExpr(g, 'c');
				e->within = WindowInterval(g, &r->window.within);
			}
			else
				break;
			e->event = MemoryContextStrdup(g->cxt, r->event);
			e->agg = r->agg;
			e->cmp = r->cmp;
			e->lit = NumericLiteral(g, r->lits[0].text);
			if (e->op == 'c')
				e->limit = CountLimit(e->lit);
			return e;
		default:
			break;
	}
	return SqlLeaf(g, r, source);
}

/* Compile a stored rule (segment.rule) into the graph's memory. */
MaintExpr *
MaintCompileRule(MaintGraph *g, struct varlena *stored)
{
	Rule	   *r = RuleFromStored(stored);

	return Compile(g, r, RuleStoredText(stored));
}

/* ------------------------------------------------------------ level query */

static void
CollectLeaves(MaintExpr *e, MaintLevel *lv)
{
	int			i;

	/* a windowed count reads the all-time row first (CountEvents) */
	lv->reads_stats |= (e->op == 'd' || e->op == 'a' || e->op == 'c');
	lv->reads_events |= (e->op == 'c');
	if (e->op == 'q' && lv->slot[e->leaf] < 0)
	{
		lv->slot[e->leaf] = lv->nleaves;
		lv->leaves[lv->nleaves++] = e->leaf;
	}
	for (i = 0; i < e->nkids; i++)
		CollectLeaves(e->kids[i], lv);
}

/*
 * The SQL leaves of a level and their kept query: for the contacts in $1,
 * each leaf whose flag in $2 is set (the others stay NULL, their subplans
 * never run).
 */
void
MaintLevelLeaves(MaintGraph *g, MaintLevel *lv, MemoryContext cxt)
{
	int			i,
				j;
	StringInfoData sql;
	Oid			argtypes[2] = {INT8ARRAYOID, BOOLARRAYOID};

	lv->slot = MemoryContextAlloc(cxt, sizeof(int) * (g->nleaves + 1));
	lv->leaves = MemoryContextAlloc(cxt, sizeof(int) * (g->nleaves + 1));
	lv->nleaves = 0;
	lv->plan = NULL;
	lv->nsegs = lv->ntags = lv->nstages = 0;
	lv->reads_stats = lv->reads_events = false;
	for (i = 0; i < g->nleaves; i++)
		lv->slot[i] = -1;
	for (i = 0; i < lv->nnodes; i++)
	{
		MaintNode  *node = &g->nodes[lv->nodes[i]];

		lv->nsegs += node->kind == 's';
		lv->ntags += node->kind == 't';
		lv->nstages += node->kind == 'g';
		if (node->kind == 'g')
			for (j = 0; j < node->nstages; j++)
				CollectLeaves(node->stage_exprs[j], lv);
		else
			CollectLeaves(node->expr, lv);
	}
	if (lv->nleaves == 0)
		return;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT x.* FROM unnest($1::bigint[]) AS k(id), LATERAL (\n"
						   "SELECT c.id, ARRAY[");
	for (i = 0; i < lv->nleaves; i++)
		appendStringInfo(&sql, "%sCASE WHEN $2[%d] THEN (%s) END", i ? ",\n " : "", i + 1,
						 g->leaves[lv->leaves[i]]);
	/* OFFSET 0 keeps the subquery apart: one primary-key probe per contact */
	appendStringInfoString(&sql, "]::boolean[]\n FROM segment.contacts c WHERE c.id = k.id OFFSET 0) x");
	lv->plan = SPI_prepare_cursor(sql.data, 2, argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (lv->plan == NULL)
		elog(ERROR, "could not prepare segment maintenance query: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(lv->plan);
	pfree(sql.data);
}

/* ------------------------------------------------------------------ probes */

static void
KeyInit(ScanKey key, Relation idx, AttrNumber col, StrategyNumber strategy,
		RegProcedure proc, Datum arg)
{
	ScanKeyEntryInitialize(key, 0, col, strategy, InvalidOid,
						   idx->rd_indcollation[col - 1], proc, arg);
}

static IndexScanDesc
StartScan(EvalEnv *env, Relation rel, Relation idx, ScanKeyData *keys, int nkeys)
{
	IndexScanDesc scan = index_beginscan(rel, idx, env->snap, nkeys, 0);

	index_rescan(scan, keys, nkeys, NULL, 0);
	return scan;
}

/* Does the contact exist (visible to the snapshot)? */
static bool
ContactExists(EvalEnv *env)
{
	ScanKeyData key;
	IndexScanDesc scan;
	bool		found;

	KeyInit(&key, env->contacts_pk, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(env->contact));
	scan = StartScan(env, env->contacts, env->contacts_pk, &key, 1);
	found = index_getnext_slot(scan, ForwardScanDirection, env->contacts_slot);
	if (found)
		MaintNoteFoundRow(RelationGetRelid(env->contacts_pk), Int64GetDatum(env->contact),
						  &env->contacts_slot->tts_tid);
	index_endscan(scan);
	ExecClearTuple(env->contacts_slot);
	return found;
}

static Datum
CopyNumeric(TupleTableSlot *slot, AttrNumber att)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, att, &isnull);

	return isnull ? (Datum) 0 : datumCopy(d, false, -1);
}

/* Fill row from the event_stats row in env->stats_slot. */
static void
FillStatRow(EvalEnv *env, StatRow *row)
{
	MaintRels  *r = &env->g->rels;
	TupleTableSlot *s = env->stats_slot;
	bool		isnull;

	row->found = true;
	row->count = DatumGetInt64(slot_getattr(s, r->stats_count, &isnull));
	row->first_at = DatumGetTimestampTz(slot_getattr(s, r->stats_first, &isnull));
	row->last_at = DatumGetTimestampTz(slot_getattr(s, r->stats_last, &isnull));
	row->sum = CopyNumeric(s, r->stats_sum);
	row->min = CopyNumeric(s, r->stats_min);
	row->max = CopyNumeric(s, r->stats_max);
}

/*
 * The delta's own event_stats row, which the event's row trigger has just
 * updated in place (MaintNotedEventStat): fetched by its place instead of
 * looked up by its key, when the version written there is the one the
 * snapshot sees (nothing changed the row since).  The last_at it replaced is
 * then the time of the contact's latest other event of the type, which
 * PrevEventAt would look up.
 */
static bool
FetchNoted(EvalEnv *env, StatRow *row)
{
	ItemPointerData tid;
	TimestampTz old_last_at;

	if (!MaintNotedEventStat(env->delta->event_id, RelationGetRelid(env->stats), &tid, &old_last_at) ||
		!table_tuple_fetch_row_version(env->stats, &tid, env->snap, env->stats_slot))
		return false;
	FillStatRow(env, row);
	ExecClearTuple(env->stats_slot);
	env->prev_known = true;
	env->prev_at = old_last_at;
	return true;
}

/* The contact's event_stats row of an event type (read once per contact). */
static StatRow *
Stats(EvalEnv *env, const char *event)
{
	StatRow    *row = NULL;
	ScanKeyData keys[2];
	IndexScanDesc scan;
	int			i;

	for (i = 0; i < env->nrows; i++)
		if (strcmp(env->rows[i].event, event) == 0)
			return &env->rows[i];
	row = env->nrows < EVAL_MAX_STATS ? &env->rows[env->nrows++]
		: palloc(sizeof(StatRow));
	memset(row, 0, sizeof(*row));
	row->event = event;
	if (env->delta && strcmp(event, env->delta->type) == 0 && FetchNoted(env, row))
		return row;
	KeyInit(&keys[0], env->stats_pk, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(event));
	KeyInit(&keys[1], env->stats_pk, 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(env->contact));
	scan = StartScan(env, env->stats, env->stats_pk, keys, 2);
	if (index_getnext_slot(scan, ForwardScanDirection, env->stats_slot))
		FillStatRow(env, row);
	index_endscan(scan);
	ExecClearTuple(env->stats_slot);
	return row;
}

/*
 * segment.now() minus e's window, kept in e for the value of now and the
 * time zone it was computed for (the subtraction works in local time: not cheap,
 * and asked for every windowed condition of every contact).
 */
static TimestampTz
WindowStart(EvalEnv *env, MaintExpr *e)
{
	if (!e->since_known || e->since_now != env->now || e->since_tz != session_timezone)
	{
		e->since = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
														   TimestampTzGetDatum(env->now), e->within));
		e->since_now = env->now;
		e->since_tz = session_timezone;
		e->since_known = true;
	}
	return e->since;
}

/*
 * The next entry of an index scan whose heap row the snapshot sees, reading
 * the heap only where the visibility map does not say the page is all
 * visible (what an index-only scan does); false at the end.  The entry is
 * scan->xs_itup.
 */
static bool
NextVisible(EvalEnv *env, IndexScanDesc scan, TupleTableSlot *slot, Buffer *vmbuf)
{
	ItemPointer tid;

	while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
	{
		if (VM_ALL_VISIBLE(scan->heapRelation, ItemPointerGetBlockNumber(tid), vmbuf))
		{
			PredicateLockPage(scan->heapRelation, ItemPointerGetBlockNumber(tid), env->snap);
			return true;
		}
		if (index_fetch_heap(scan, slot))
			return true;
	}
	return false;
}

static bool
CmpHolds(int cmp, int c)
{
	switch ((RuleCmp) cmp)
	{
		case RC_EQ:
			return c == 0;
		case RC_NE:
			return c != 0;
		case RC_LT:
			return c < 0;
		case RC_LE:
			return c <= 0;
		case RC_GT:
			return c > 0;
		case RC_GE:
			return c >= 0;
	}
	return false;
}

static bool
NumericCmpHolds(Datum value, int cmp, Datum lit)
{
	return CmpHolds(cmp, DatumGetInt32(DirectFunctionCall2(numeric_cmp, value, lit)));
}

static Datum
Int8Numeric(int64 v)
{
	return DirectFunctionCall1(int8_numeric, Int64GetDatum(v));
}

/*
 * If every count in [lo, hi] compares with e's literal the same way, that
 * way is settled: *n gets a count that gives it.
 */
static bool
CountSettled(MaintExpr *e, int64 lo, int64 hi, int64 *n)
{
	Datum		l = Int8Numeric(lo),
				h = Int8Numeric(hi);

	if (NumericCmpHolds(l, e->cmp, e->lit) != NumericCmpHolds(h, e->cmp, e->lit))
		return false;
	/* (in)equality can change inside the range only at the literal itself */
	if ((e->cmp == RC_EQ || e->cmp == RC_NE) && lo < hi &&
		NumericCmpHolds(l, RC_LE, e->lit) && NumericCmpHolds(h, RC_GE, e->lit))
		return false;
	*n = lo;
	return true;
}

/*
 * The contact's raw events of a type that occurred at or after since,
 * counted up to limit, on the (contact_id, type, occurred_at) index.
 */
static int64
CountSince(EvalEnv *env, const char *event, TimestampTz since, int64 limit)
{
	ScanKeyData keys[3];
	IndexScanDesc scan;
	int64		n = 0;

	if (limit <= 0)
		return 0;
	KeyInit(&keys[0], env->events_idx, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(env->contact));
	KeyInit(&keys[1], env->events_idx, 2, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(event));
	KeyInit(&keys[2], env->events_idx, 3, BTGreaterEqualStrategyNumber, F_TIMESTAMPTZ_GE,
			TimestampTzGetDatum(since));
	scan = StartScan(env, env->events, env->events_idx, keys, 3);
	while (n < limit && NextVisible(env, scan, env->events_slot, &env->vm_events))
		n++;
	index_endscan(scan);
	ExecClearTuple(env->events_slot);
	return n;
}

/*
 * Raw events of a type in the window of e ("within": occurred_at at or
 * after segment.now() minus the window), as far as e's comparison needs
 * them, once per contact.  The all-time event_stats row bounds the count
 * first: none when the last event is older than the window, all of them
 * when the first is inside it, and only between one and all but one
 * otherwise, which often settles the comparison already.  Else the
 * (contact_id, type, occurred_at) index is counted up to e's limit (beyond
 * it the comparison cannot change).
 */
static int64
CountEvents(EvalEnv *env, MaintExpr *e)
{
	TimestampTz since = WindowStart(env, e);
	int64		n = 0;
	bool		exact = true;
	int			i;

	for (i = 0; i < env->ncounts; i++)
		if (env->count_expr[i] == e)
			return env->count_val[i];
	if (env->stats)
	{
		StatRow    *row = Stats(env, e->event);

		if (!row->found || row->last_at < since)
			goto done;			/* none in the window */
		if (row->first_at >= since)
		{
			n = row->count;		/* all of them */
			goto done;
		}
		if (row->count >= 2 && CountSettled(e, 1, row->count - 1, &n))
		{
			exact = false;
			goto done;
		}
	}
	n = CountSince(env, e->event, since, e->limit);
	exact = n < e->limit;
done:
	if (env->ncounts < EVAL_MAX_COUNTS)
	{
		env->count_expr[env->ncounts] = e;
		env->count_exact[env->ncounts] = exact;
		env->count_val[env->ncounts++] = n;
	}
	return n;
}

/* ---------------------------------------------------------------- evaluate */

static Tri
TriOf(bool b)
{
	return b ? TRI_TRUE : TRI_FALSE;
}

/*
 * The value of e for the current contact; a SQL leaf not fetched yet is
 * unknown (and, when mark, noted as needed).  And / or stop at a deciding
 * kid; only when their value stays open are the leaves of the open kids
 * marked, so a leaf is fetched only when its value can matter.
 */
/* Conditions settled by constants or the event_stats rows alone. */
static bool
IsCheap(MaintExpr *e)
{
	return e->op == 't' || e->op == 'f' || e->op == 'd' || e->op == 'a' ||
		(e->op == '!' && IsCheap(e->kids[0]));
}

static Tri
Eval(EvalEnv *env, MaintExpr *e, bool mark)
{
	int			i,
				round;
	Tri			res,
				r;

	switch (e->op)
	{
		case 't':
			return TRI_TRUE;
		case 'f':
			return TRI_FALSE;
		case '!':
			r = Eval(env, e->kids[0], mark);
			return r == TRI_UNKNOWN ? r : TriOf(r == TRI_FALSE);
		case '&':
		case '|':
			{
				Tri			decide = e->op == '&' ? TRI_FALSE : TRI_TRUE;

				res = e->op == '&' ? TRI_TRUE : TRI_FALSE;
				/* event_stats first (one probe per type, shared), then raw counts and SQL leaves */
				for (round = 0; round < 2; round++)
					for (i = 0; i < e->nkids; i++)
					{
						if (IsCheap(e->kids[i]) != (round == 0))
							continue;
						r = Eval(env, e->kids[i], false);
						if (r == decide)
							return decide;
						if (r == TRI_UNKNOWN)
							res = TRI_UNKNOWN;
					}
				if (res == TRI_UNKNOWN && mark)
					for (i = 0; i < e->nkids; i++)
						if (Eval(env, e->kids[i], false) == TRI_UNKNOWN)
							(void) Eval(env, e->kids[i], true);
				return res;
			}
		case 'd':
			{
				StatRow    *row = Stats(env, e->event);
				bool		did = row->found &&
					(e->within == (Datum) 0 || row->last_at >= WindowStart(env, e));

				return TriOf(e->negated ? !did : did);
			}
		case 'a':
			{
				StatRow    *row = Stats(env, e->event);

				switch ((RuleAggKind) e->agg)
				{
					case RA_COUNT:
						return TriOf(NumericCmpHolds(Int8Numeric(row->found ? row->count : 0), e->cmp, e->lit));
					case RA_SUM:
						return TriOf(NumericCmpHolds(row->sum ? row->sum : Int8Numeric(0), e->cmp, e->lit));
					case RA_MIN:
						return TriOf(row->min && NumericCmpHolds(row->min, e->cmp, e->lit));
					case RA_MAX:
						return TriOf(row->max && NumericCmpHolds(row->max, e->cmp, e->lit));
					default:
						elog(ERROR, "segment maintenance: unexpected aggregate %d", e->agg);
				}
			}
			break;
		case 'c':
			return TriOf(NumericCmpHolds(Int8Numeric(CountEvents(env, e)), e->cmp, e->lit));
		case 'q':
			{
				int			slot = env->lv->slot[e->leaf];

				if (slot < 0)
					elog(ERROR, "segment maintenance: SQL leaf %d is not part of the level", e->leaf);
				if (env->qknown[slot])
					return TriOf(env->qval[slot]);
				if (mark)
				{
					env->need[slot] = true;
					env->any_need = true;
				}
				return TRI_UNKNOWN;
			}
	}
	elog(ERROR, "segment maintenance: unexpected condition '%c'", e->op);
	return TRI_UNKNOWN;			/* keep compiler quiet */
}

/* A rule's value, marking the SQL leaves it needs when it is still open. */
static Tri
EvalRule(EvalEnv *env, MaintExpr *e)
{
	Tri			r = Eval(env, e, false);

	if (r == TRI_UNKNOWN)
		(void) Eval(env, e, true);
	return r;
}

/*
 * The stage: the first (highest) stage whose rule holds.  Open while a
 * stage's value is unknown before one holds; then the leaves of that stage and
 * of every open stage after it are marked, so one fetch settles it.
 */
static Tri
EvalStage(EvalEnv *env, MaintNode *node, char **stage)
{
	int			i;
	bool		open = false;

	*stage = NULL;
	for (i = 0; i < node->nstages; i++)
	{
		Tri			r = Eval(env, node->stage_exprs[i], false);

		if (r == TRI_TRUE && !open)
		{
			*stage = node->stage_names[i];
			return TRI_TRUE;
		}
		if (r == TRI_UNKNOWN)
		{
			open = true;
			(void) Eval(env, node->stage_exprs[i], true);
		}
	}
	return open ? TRI_UNKNOWN : TRI_FALSE;
}

/* ------------------------------------------------ before the one event */

/*
 * Does e read only constants and event aggregates (no SQL leaf)?  Only such
 * a rule's value before the statement's event can be told here.
 */
bool
MaintExprLeafFree(MaintExpr *e)
{
	int			i;

	if (e->op == 'q')
		return false;
	for (i = 0; i < e->nkids; i++)
		if (!MaintExprLeafFree(e->kids[i]))
			return false;
	return true;
}

/*
 * The time of the contact's latest event of the delta's type other than the
 * delta (0: none), asked only when the delta is the latest: known from the
 * event_stats row the delta's trigger updated (FetchNoted), or else one
 * backward step on the (contact_id, type, occurred_at) index to the latest
 * event before the delta's time.  The index step does not see an event at
 * the very same time, so "did ... within" before the delta may come out
 * false where it was true: then the rule looks changed and its state is
 * read, as without this.
 */
static TimestampTz
PrevEventAt(EvalEnv *env)
{
	ScanKeyData keys[3];
	IndexScanDesc scan;
	ItemPointer tid;
	bool		isnull;

	if (env->prev_known)
		return env->prev_at;
	env->prev_known = true;
	env->prev_at = 0;
	KeyInit(&keys[0], env->events_idx, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(env->contact));
	KeyInit(&keys[1], env->events_idx, 2, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(env->delta->type));
	KeyInit(&keys[2], env->events_idx, 3, BTLessStrategyNumber, F_TIMESTAMPTZ_LT,
			TimestampTzGetDatum(env->delta->at));
	scan = index_beginscan(env->events, env->events_idx, env->snap, 3, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, keys, 3, NULL, 0);
	while ((tid = index_getnext_tid(scan, BackwardScanDirection)) != NULL)
	{
		if (!VM_ALL_VISIBLE(scan->heapRelation, ItemPointerGetBlockNumber(tid), &env->vm_events) &&
			!index_fetch_heap(scan, env->events_slot))
			continue;
		PredicateLockPage(scan->heapRelation, ItemPointerGetBlockNumber(tid), env->snap);
		env->prev_at = DatumGetTimestampTz(index_getattr(scan->xs_itup, 3, scan->xs_itupdesc, &isnull));
		break;
	}
	index_endscan(scan);
	ExecClearTuple(env->events_slot);
	return env->prev_at;
}

/*
 * The value of e before env->delta, the statement's one event, was
 * inserted.  The event_stats row of its type already counts it, so that
 * type's conditions take it back out; other conditions are as they are
 * now.  TRI_UNKNOWN when it cannot be told cheaply (a minimum or maximum
 * the event may have set, a SQL leaf): the caller then reads the stored
 * state as usual.
 */
static Tri
EvalBefore(EvalEnv *env, MaintExpr *e)
{
	const MaintDelta *d = env->delta;
	StatRow    *row;
	TimestampTz since = 0;
	int64		before,
				n;
	int			i;
	Tri			res,
				r;

	switch (e->op)
	{
		case 't':
		case 'f':
			return Eval(env, e, false);
		case 'q':
			return TRI_UNKNOWN;
		case '!':
			r = EvalBefore(env, e->kids[0]);
			return r == TRI_UNKNOWN ? r : TriOf(r == TRI_FALSE);
		case '&':
		case '|':
			{
				Tri			decide = e->op == '&' ? TRI_FALSE : TRI_TRUE;

				res = e->op == '&' ? TRI_TRUE : TRI_FALSE;
				for (i = 0; i < e->nkids; i++)
				{
					r = EvalBefore(env, e->kids[i]);
					if (r == decide)
						return decide;
					if (r == TRI_UNKNOWN)
						res = TRI_UNKNOWN;
				}
				return res;
			}
		default:
			break;
	}
	if (strcmp(e->event, d->type) != 0)
		return Eval(env, e, false); /* another type: the event did not touch it */
	if (env->stats == NULL || env->events == NULL)
		return TRI_UNKNOWN;
	row = Stats(env, e->event);
	if (!row->found)
		return TRI_UNKNOWN;		/* the event is not counted: nothing to take back */
	before = row->count - 1;
	if (e->within != (Datum) 0)
	{
		since = WindowStart(env, e);
		if (d->at < since)
			return Eval(env, e, false); /* the event is outside the window */
	}
	switch (e->op)
	{
		case 'd':
			{
				bool		did;

				if (before == 0)
					did = false;
				else if (e->within == (Datum) 0)
					did = true;
				else if (row->last_at > d->at || row->first_at >= since)
					did = true; /* another one at last_at, or all of them, in the window */
				else
					did = PrevEventAt(env) >= since;
				return TriOf(e->negated ? !did : did);
			}
		case 'a':
			switch ((RuleAggKind) e->agg)
			{
				case RA_COUNT:
					return TriOf(NumericCmpHolds(Int8Numeric(before), e->cmp, e->lit));
				case RA_SUM:
					if (d->amount == (Datum) 0)
						return Eval(env, e, false);
					return TriOf(NumericCmpHolds(DirectFunctionCall2(numeric_sub, row->sum, d->amount),
												 e->cmp, e->lit));
				case RA_MIN:
				case RA_MAX:
					{
						Datum		m = e->agg == RA_MIN ? row->min : row->max;
						int			c;

						if (d->amount == (Datum) 0)
							return Eval(env, e, false);
						if (before == 0)
							return TRI_FALSE;	/* no amount before it */
						if (m == (Datum) 0)
							return TRI_UNKNOWN;
						c = DatumGetInt32(DirectFunctionCall2(numeric_cmp, d->amount, m));
						/* an amount above the minimum (below the maximum) did not set it */
						if ((e->agg == RA_MIN && c > 0) || (e->agg == RA_MAX && c < 0))
							return Eval(env, e, false);
						return TRI_UNKNOWN;
					}
				default:
					return TRI_UNKNOWN;
			}
		case 'c':
			if (e->limit <= 0)
				return Eval(env, e, false); /* no count changes the comparison */
			n = CountEvents(env, e);	/* now, this event included */
			for (i = 0; i < env->ncounts; i++)
				if (env->count_expr[i] == e && env->count_exact[i])
					break;
			if (i < env->ncounts)
				n--;			/* exactly one less */
			else if (before == 0)
				n = 0;
			else if (row->first_at >= since)
				n = before;		/* all of them in the window */
			else if (!CountSettled(e, 0, before - 1, &n))
			{
				/* the first one is outside; count the window, this event included */
				n = CountSince(env, e->event, since, e->limit == PG_INT64_MAX ? e->limit : e->limit + 1) - 1;
			}
			return TriOf(NumericCmpHolds(Int8Numeric(n), e->cmp, e->lit));
		default:
			return TRI_UNKNOWN;
	}
}

/* The stage before the statement's one event (*stage NULL: none); TRI_UNKNOWN when not told. */
static Tri
StageBefore(EvalEnv *env, MaintNode *node, char **stage)
{
	int			i;

	*stage = NULL;
	for (i = 0; i < node->nstages; i++)
	{
		Tri			r = EvalBefore(env, node->stage_exprs[i]);

		if (r == TRI_TRUE)
		{
			*stage = node->stage_names[i];
			return TRI_TRUE;
		}
		if (r == TRI_UNKNOWN)
			return TRI_UNKNOWN;
	}
	return TRI_FALSE;
}

/*
 * Did the statement's one event leave node's value (rule value, stage) as
 * it was?  Then the stored state agrees with it and need not be read.
 */
static bool
Unchanged(EvalEnv *env, MaintNode *node, Tri now, char *stage_now)
{
	char	   *stage;

	if (env->delta == NULL || now == TRI_UNKNOWN || !node->leaf_free)
		return false;
	if (node->kind == 'g')
		return StageBefore(env, node, &stage) != TRI_UNKNOWN &&
			(stage == NULL) == (stage_now == NULL) &&
			(stage == NULL || strcmp(stage, stage_now) == 0);
	return EvalBefore(env, node->expr) == now;
}

/*
 * The state of a contact_tags row: 'r' put there by a rule, 'm' manual or by
 * a flow for good, 'e' manual or by a flow until an expiry not yet passed,
 * 'x' expired.  A rule that holds takes over 'e' (and 'x') rows.
 */
static char
TagState(EvalEnv *env, TupleTableSlot *slot)
{
	MaintRels  *r = &env->g->rels;
	bool		isnull;
	char	   *source = TextDatumGetCString(slot_getattr(slot, r->tags_source, &isnull));
	Datum		exp = slot_getattr(slot, r->tags_expires, &isnull);

	if (strcmp(source, "rule") == 0)
		return 'r';
	if (isnull)
		return 'm';
	return DatumGetTimestampTz(exp) > env->now ? 'e' : 'x';
}

/* The current membership of the contact, tag states and stage, for the level's nodes. */
static void
ReadState(EvalEnv *env, MaintOutcome *o)
{
	MaintGraph *g = env->g;
	MaintLevel *lv = env->lv;
	MaintRels  *r = &g->rels;
	int			i;
	int			nsegs = lv->nsegs;
	int64	   *ids = NULL;
	int			nids = 0,
				cap = 0;
	char	  **tags = NULL;
	char	   *states = NULL;
	int			ntags = 0,
				tcap = 0;
	ScanKeyData keys[2];
	IndexScanDesc scan;
	bool		isnull;
	bool		read_segs = false,
				read_tags = false;

	/* what the statement's one event left as it was needs no reading */
	for (i = 0; i < lv->nnodes; i++)
	{
		if (o->same[i])
			continue;
		read_segs |= g->nodes[lv->nodes[i]].kind == 's';
		read_tags |= g->nodes[lv->nodes[i]].kind == 't';
	}

	/* several segments: all of the contact's memberships in one index-only scan */
	if (nsegs > EVAL_MEMBER_PROBES && read_segs)
	{
		KeyInit(&keys[0], env->members_pk, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(env->contact));
		scan = index_beginscan(env->members, env->members_pk, env->snap, 1, 0);
		scan->xs_want_itup = true;
		index_rescan(scan, keys, 1, NULL, 0);
		while (NextVisible(env, scan, env->members_slot, &env->vm_members))
		{
			if (nids == cap)
			{
				cap = cap ? cap * 2 : 32;
				ids = ids ? repalloc(ids, sizeof(int64) * cap) : palloc(sizeof(int64) * cap);
			}
			ids[nids++] = DatumGetInt64(index_getattr(scan->xs_itup, 2, scan->xs_itupdesc, &isnull));
		}
		index_endscan(scan);
		ExecClearTuple(env->members_slot);
	}
	/* several tag rules: all of the contact's tags in one scan */
	if (lv->ntags > EVAL_TAG_PROBES && read_tags)
	{
		KeyInit(&keys[0], env->tags_pk, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(env->contact));
		scan = StartScan(env, env->tags, env->tags_pk, keys, 1);
		while (index_getnext_slot(scan, ForwardScanDirection, env->tags_slot))
		{
			if (ntags == tcap)
			{
				tcap = tcap ? tcap * 2 : 16;
				tags = tags ? repalloc(tags, sizeof(char *) * tcap) : palloc(sizeof(char *) * tcap);
				states = states ? repalloc(states, tcap) : palloc(tcap);
			}
			tags[ntags] = TextDatumGetCString(slot_getattr(env->tags_slot, r->tags_tag, &isnull));
			states[ntags++] = TagState(env, env->tags_slot);
		}
		index_endscan(scan);
		ExecClearTuple(env->tags_slot);
	}
	for (i = 0; i < lv->nnodes; i++)
	{
		MaintNode  *node = &g->nodes[lv->nodes[i]];
		int			j;

		if (o->same[i])
		{
			/* the stored state is what the rule said before: leave it */
			if (node->kind == 'g')
				o->stage_cur = o->stage_new;
			o->member[i] = o->want[i];
			o->tag_state[i] = o->want[i] ? 'r' : '-';
		}
		else if (node->kind == 's' && nsegs > EVAL_MEMBER_PROBES)
		{
			o->member[i] = false;
			for (j = 0; j < nids && !o->member[i]; j++)
				o->member[i] = ids[j] == node->id;
		}
		else if (node->kind == 's')
		{
			/* few segments: one primary-key probe each */
			KeyInit(&keys[0], env->members_pk, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(env->contact));
			KeyInit(&keys[1], env->members_pk, 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(node->id));
			scan = StartScan(env, env->members, env->members_pk, keys, 2);
			o->member[i] = index_getnext_slot(scan, ForwardScanDirection, env->members_slot);
			index_endscan(scan);
			ExecClearTuple(env->members_slot);
		}
		else if (node->kind == 't' && lv->ntags > EVAL_TAG_PROBES)
		{
			o->tag_state[i] = '-';
			for (j = 0; j < ntags; j++)
				if (strcmp(tags[j], node->name) == 0)
					o->tag_state[i] = states[j];
		}
		else if (node->kind == 't')
		{
			KeyInit(&keys[0], env->tags_pk, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(env->contact));
			KeyInit(&keys[1], env->tags_pk, 2, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(node->name));
			scan = StartScan(env, env->tags, env->tags_pk, keys, 2);
			o->tag_state[i] = '-';
			if (index_getnext_slot(scan, ForwardScanDirection, env->tags_slot))
				o->tag_state[i] = TagState(env, env->tags_slot);
			index_endscan(scan);
			ExecClearTuple(env->tags_slot);
		}
		else
		{
			KeyInit(&keys[0], env->stages_pk, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(env->contact));
			scan = StartScan(env, env->stages, env->stages_pk, keys, 1);
			o->stage_cur = NULL;
			if (index_getnext_slot(scan, ForwardScanDirection, env->stages_slot))
				o->stage_cur = TextDatumGetCString(slot_getattr(env->stages_slot, r->stages_stage, &isnull));
			index_endscan(scan);
			ExecClearTuple(env->stages_slot);
		}
	}
}

/*
 * Evaluate every node of the level for the current contact.  Returns false
 * when a value is still open (SQL leaves needed, marked in env->need).
 */
static bool
EvalContact(EvalEnv *env, MaintOutcome *o)
{
	MaintGraph *g = env->g;
	MaintLevel *lv = env->lv;
	int			i;
	bool		settled = true;

	env->nrows = 0;
	env->ncounts = 0;
	env->prev_known = false;
	env->any_need = false;
	for (i = 0; i < lv->nnodes; i++)
	{
		MaintNode  *node = &g->nodes[lv->nodes[i]];
		Tri			r;

		if (node->kind == 'g')
			r = EvalStage(env, node, &o->stage_new);
		else
		{
			r = EvalRule(env, node->expr);
			o->want[i] = (r == TRI_TRUE);
		}
		o->same[i] = Unchanged(env, node, r, o->stage_new);
		settled &= (r != TRI_UNKNOWN);
	}
	return settled;
}

static void
OpenRel(Oid relid, Oid indexid, Relation *rel, Relation *idx, TupleTableSlot **slot)
{
	*rel = table_open(relid, AccessShareLock);
	*idx = index_open(indexid, AccessShareLock);
	*slot = table_slot_create(*rel, NULL);
}

static void
CloseRel(Relation rel, Relation idx, TupleTableSlot *slot)
{
	if (rel == NULL)
		return;
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
}

/* Fetch the needed SQL leaves of the batch's open contacts: vals[k * nleaves + slot]. */
static void
FetchLeaves(EvalEnv *env, int64 *ids, int n, bool *mask, bool *got, bool *vals)
{
	MaintLevel *lv = env->lv;
	Datum	   *d = palloc(sizeof(Datum) * (n + 1));
	Datum	   *m = palloc(sizeof(Datum) * (lv->nleaves + 1));
	Datum		args[2];
	char		nulls[2] = {' ', ' '};
	int			i,
				ret;
	uint64		row;
	SPITupleTable *tt;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(ids[i]);
	for (i = 0; i < lv->nleaves; i++)
		m[i] = BoolGetDatum(mask[i]);
	args[0] = PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[1] = PointerGetDatum(construct_array(m, lv->nleaves, BOOLOID, 1, true, TYPALIGN_CHAR));
	ret = SPI_execute_plan(lv->plan, args, nulls, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "segment maintenance query failed: %s", SPI_result_code_string(ret));
	tt = SPI_tuptable;
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tt->vals[row], tt->tupdesc, 1, &isnull));
		Datum		arr = SPI_getbinval(tt->vals[row], tt->tupdesc, 2, &isnull);
		Datum	   *elems;
		bool	   *enulls;
		int			nelems,
					lo = 0,
					hi = n - 1,
					k = -1;

		while (lo <= hi)
		{
			int			mid = (lo + hi) / 2;

			if (ids[mid] == id)
			{
				k = mid;
				break;
			}
			if (ids[mid] < id)
				lo = mid + 1;
			else
				hi = mid - 1;
		}
		if (k < 0 || isnull)
			continue;
		deconstruct_array(DatumGetArrayTypeP(arr), BOOLOID, 1, true, TYPALIGN_CHAR,
						  &elems, &enulls, &nelems);
		if (nelems != lv->nleaves)
			elog(ERROR, "segment maintenance query returned %d values, expected %d", nelems, lv->nleaves);
		got[k] = true;
		for (i = 0; i < nelems; i++)
			vals[k * lv->nleaves + i] = !enulls[i] && DatumGetBool(elems[i]);
	}
	SPI_freetuptable(tt);
}

/*
 * Evaluate the level for the contacts (sorted, unique) and hand each
 * existing contact's outcome to fn.  SPI must be connected.
 */
void
MaintEvalLevel(MaintGraph *g, MaintLevel *lv, int64 *ids, int nids,
			   const MaintDelta *delta, MaintOutcomeFn fn, void *arg)
{
	EvalEnv		env;
	MaintRels  *r = &g->rels;
	MemoryContext outer = CurrentMemoryContext;
	MaintOutcome o;
	int			nl = lv->nleaves;
	int			start;
	int64	   *open_ids = palloc(sizeof(int64) * EVAL_BATCH);
	bool	   *mask = palloc0(sizeof(bool) * (nl + 1));
	bool	   *got = palloc(sizeof(bool) * EVAL_BATCH);
	bool	   *vals = palloc0(sizeof(bool) * (nl + 1) * EVAL_BATCH);

	memset(&env, 0, sizeof(env));
	env.g = g;
	env.lv = lv;
	env.now = SegmentNow();
	env.qknown = palloc0(sizeof(bool) * (nl + 1));
	env.qval = palloc0(sizeof(bool) * (nl + 1));
	env.need = palloc0(sizeof(bool) * (nl + 1));
	env.tmp = AllocSetContextCreate(outer, "segment maintenance contact", ALLOCSET_SMALL_SIZES);
	o.want = palloc0(sizeof(bool) * (lv->nnodes + 1));
	o.member = palloc0(sizeof(bool) * (lv->nnodes + 1));
	o.tag_state = palloc0(lv->nnodes + 1);
	o.same = palloc0(sizeof(bool) * (lv->nnodes + 1));

	/* what SPI does before a statement: see this transaction's writes and what others committed */
	CommandCounterIncrement();
	env.snap = RegisterSnapshot(GetTransactionSnapshot());
	/* only what the level reads */
	OpenRel(r->contacts, r->contacts_pk, &env.contacts, &env.contacts_pk, &env.contacts_slot);
	if (lv->nsegs > 0)
		OpenRel(r->members, r->members_pk, &env.members, &env.members_pk, &env.members_slot);
	if (lv->ntags > 0)
		OpenRel(r->tags, r->tags_pk, &env.tags, &env.tags_pk, &env.tags_slot);
	env.vm_members = env.vm_events = InvalidBuffer;
	if (lv->nstages > 0)
		OpenRel(r->stages, r->stages_pk, &env.stages, &env.stages_pk, &env.stages_slot);
	if (lv->reads_stats && OidIsValid(r->stats_pk))
		OpenRel(r->stats, r->stats_pk, &env.stats, &env.stats_pk, &env.stats_slot);
	/* a statement's one event: its rules are also evaluated as they were before it (EvalBefore) */
	if ((lv->reads_events || (delta && lv->reads_stats && env.stats)) && OidIsValid(r->events_idx))
		OpenRel(r->events, r->events_idx, &env.events, &env.events_idx, &env.events_slot);

	for (start = 0; start < nids; start += EVAL_BATCH)
	{
		int			end = Min(nids, start + EVAL_BATCH);
		int			nopen = 0;
		int			i,
					k;

		memset(mask, 0, sizeof(bool) * (nl + 1));
		/* pass 1: what C settles alone; note the open contacts and their leaves */
		for (i = start; i < end; i++)
		{
			MemoryContextReset(env.tmp);
			MemoryContextSwitchTo(env.tmp);
			env.contact = ids[i];
			env.delta = delta && delta->contact == ids[i] ? delta : NULL;
			memset(env.qknown, 0, sizeof(bool) * (nl + 1));
			memset(env.need, 0, sizeof(bool) * (nl + 1));
			if (!ContactExists(&env))
			{
				MemoryContextSwitchTo(outer);
				continue;
			}
			o.contact = ids[i];
			if (EvalContact(&env, &o))
			{
				ReadState(&env, &o);
				MemoryContextSwitchTo(outer);
				fn(arg, g, lv, &o);
				continue;
			}
			MemoryContextSwitchTo(outer);
			for (k = 0; k < nl; k++)
				mask[k] |= env.need[k];
			open_ids[nopen++] = ids[i];
		}
		if (nopen == 0)
			continue;

		/* pass 2: fetch the leaves the open contacts need, then settle them */
		memset(got, 0, sizeof(bool) * EVAL_BATCH);
		FetchLeaves(&env, open_ids, nopen, mask, got, vals);
		for (i = 0; i < nopen; i++)
		{
			if (!got[i])
				continue;		/* gone meanwhile */
			MemoryContextReset(env.tmp);
			MemoryContextSwitchTo(env.tmp);
			env.contact = open_ids[i];
			env.delta = delta && delta->contact == open_ids[i] ? delta : NULL;
			for (k = 0; k < nl; k++)
			{
				env.qknown[k] = mask[k];
				env.qval[k] = vals[i * nl + k];
			}
			o.contact = open_ids[i];
			if (!EvalContact(&env, &o))
				elog(ERROR, "segment maintenance: rule value still open after fetching its conditions");
			ReadState(&env, &o);
			MemoryContextSwitchTo(outer);
			fn(arg, g, lv, &o);
		}
	}

	if (BufferIsValid(env.vm_members))
		ReleaseBuffer(env.vm_members);
	if (BufferIsValid(env.vm_events))
		ReleaseBuffer(env.vm_events);
	CloseRel(env.events, env.events_idx, env.events_slot);
	CloseRel(env.stats, env.stats_pk, env.stats_slot);
	CloseRel(env.stages, env.stages_pk, env.stages_slot);
	CloseRel(env.tags, env.tags_pk, env.tags_slot);
	CloseRel(env.members, env.members_pk, env.members_slot);
	CloseRel(env.contacts, env.contacts_pk, env.contacts_slot);
	UnregisterSnapshot(env.snap);
	MemoryContextDelete(env.tmp);
}
