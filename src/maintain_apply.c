/*
 * maintain_apply.c — run a maintenance request: lock the contacts, evaluate
 * each level of the request (maintain_eval.c), compare with the current
 * membership, rule tags and stage, and write only the differences (each with
 * its row in segment.changes).
 *
 * Concurrency: two transactions writing for the same contact must not both
 * decide from a state that lacks the other's write.  Each run takes a
 * transaction-level advisory lock per contact (sorted, so concurrent runs do
 * not deadlock among themselves) before it evaluates; under READ COMMITTED
 * every query after the lock sees what the previous holder committed.  Large
 * runs (many contacts, or a transaction that already locked many) take one
 * global lock in exclusive mode instead, which small runs take in share mode;
 * rule changes take it in exclusive mode too.
 */
#include "segment.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include "maintain.h"

/* Advisory lock space (locktag_field4) of maintenance locks. */
#define MAINT_LOCK_CONTACT	0x5E6D
#define MAINT_LOCK_GLOBAL	0x5E6E
/* A run over more contacts than this takes the global lock instead. */
#define MAINT_MAX_CONTACT_LOCKS_RUN	64
/* A transaction holding more contact locks than this switches to the global lock. */
#define MAINT_MAX_CONTACT_LOCKS_XACT 1024

static int	run_depth = 0;
static bool applying = false;
static LocalTransactionId locks_lxid = InvalidLocalTransactionId;
static int	locks_held = 0;

/* Kept plans of the writes (they refer only to tables, so they survive rule changes). */
static SPIPlanPtr plan_enter = NULL;
static SPIPlanPtr plan_exit = NULL;
static SPIPlanPtr plan_tag_add = NULL;
static SPIPlanPtr plan_tag_remove = NULL;
static SPIPlanPtr plan_stage = NULL;

/* Changes decided for one level, applied together. */
typedef struct MaintChanges
{
	List	   *enter_seg,
			   *enter_contact,
			   *enter_name;
	List	   *exit_seg,
			   *exit_contact,
			   *exit_name;
	List	   *tag_add_contact,	/* the tag's row is there, expired or expiring */
			   *tag_add_tag;
	List	   *tag_new_contact,	/* no row for the tag */
			   *tag_new_tag;
	List	   *tag_rm_contact,
			   *tag_rm_tag;
	List	   *stage_contact,
			   *stage_new,
			   *stage_old;
} MaintChanges;

PG_FUNCTION_INFO_V1(segment_maintain);
PG_FUNCTION_INFO_V1(segment_rules_changed);
PG_FUNCTION_INFO_V1(segment_lock_all);
PG_FUNCTION_INFO_V1(segment_segments_guard);

/* True while maintenance writes rule tags (the tag trigger then stays quiet). */
bool
MaintApplying(void)
{
	return applying;
}

static void GlobalTag(LOCKTAG *tag);

static void
LockGlobal(LOCKMODE mode)
{
	LOCKTAG		tag;

	GlobalTag(&tag);
	(void) LockAcquire(&tag, mode, false, false);
}

static void
GlobalTag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, 0, 0, MAINT_LOCK_GLOBAL);
}

/* Does this transaction hold the global maintenance lock (in either mode)? */
bool
MaintHoldsGlobalLock(void)
{
	LOCKTAG		tag;

	GlobalTag(&tag);
	return LockHeldByMe(&tag, ShareLock) || LockHeldByMe(&tag, ExclusiveLock);
}

/*
 * The global maintenance lock for a run over nids contacts, until the end of
 * the transaction: shared, or exclusive when the run (or the transaction so
 * far) would lock too many contacts one by one.  True when exclusive: then
 * the contacts need no locks of their own.  Rule changes take it exclusively
 * (segment._lock_all), so while it is held the rules stay as they are.
 */
static bool
LockGlobalForRun(int nids)
{
	if (MyProc->lxid != locks_lxid)
	{
		locks_lxid = MyProc->lxid;
		locks_held = 0;
	}
	if (nids > MAINT_MAX_CONTACT_LOCKS_RUN ||
		locks_held + nids > MAINT_MAX_CONTACT_LOCKS_XACT)
	{
		LockGlobal(ExclusiveLock);
		return true;
	}
	LockGlobal(ShareLock);
	return false;
}

/*
 * Serialize maintenance of these contacts (sorted, unique) with every other
 * transaction's, until the end of the transaction.
 */
static void
LockContacts(int64 *ids, int nids)
{
	int			i;

	for (i = 0; i < nids; i++)
	{
		LOCKTAG		tag;
		uint64		id = (uint64) ids[i];

		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (id >> 32), (uint32) id,
							 MAINT_LOCK_CONTACT);
		if (LockAcquire(&tag, ExclusiveLock, false, false) == LOCKACQUIRE_OK)
			locks_held++;
	}
}

/* A bigint[] or text[] datum from a List of int64 pointers / C strings. */
static Datum
Int8Array(List *l)
{
	Datum	   *d = palloc(sizeof(Datum) * (list_length(l) + 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, l)
		d[n++] = Int64GetDatum(*(int64 *) lfirst(lc));
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

static Datum
TextArray(List *l)
{
	Datum	   *d = palloc(sizeof(Datum) * (list_length(l) + 1));
	bool	   *nulls = palloc(sizeof(bool) * (list_length(l) + 1));
	ListCell   *lc;
	int			n = 0;
	int			dims[1];
	int			lbs[1] = {1};

	foreach(lc, l)
	{
		char	   *s = (char *) lfirst(lc);

		nulls[n] = (s == NULL);
		d[n] = s ? CStringGetTextDatum(s) : (Datum) 0;
		n++;
	}
	dims[0] = n;
	return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

/* Run a kept write with its array arguments. */
static void
RunWrite(SPIPlanPtr plan, int nargs, Datum *args)
{
	char		nulls[4] = "    ";
	int			ret = SPI_execute_plan(plan, args, nulls, false, 0);

	if (ret < 0)
		elog(ERROR, "segment maintenance write failed: %s", SPI_result_code_string(ret));
}

/* Write the changes of one level. */
static void
ApplyChanges(MaintGraph *g, MaintChanges *ch)
{
	Oid			s3i[3] = {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID};
	Oid			t2[2] = {INT8ARRAYOID, TEXTARRAYOID};
	Oid			s3[3] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		a[3];

	/*
	 * Entries go in without a statement (maintain_write.c) unless the tables
	 * need the statement; the segment names come along as a third array.
	 */
	if (ch->enter_seg && !MaintWriteEntries(&g->rels, ch->enter_seg, ch->enter_contact, ch->enter_name))
	{
		a[0] = Int8Array(ch->enter_seg);
		a[1] = Int8Array(ch->enter_contact);
		a[2] = TextArray(ch->enter_name);
		RunWrite(SegmentKeptPlan(&plan_enter,
						  "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS u(s, c, n)),"
						  " ins AS (INSERT INTO segment.segment_members (segment_id, contact_id, since)"
						  "         SELECT u.s, u.c, segment.now() FROM u"
						  "         ON CONFLICT DO NOTHING RETURNING segment_id, contact_id)"
						  " INSERT INTO segment.changes (contact_id, kind, name, source)"
						  " SELECT ins.contact_id, 'segment_enter', u.n, 'rule'"
						  "   FROM ins JOIN u ON u.s = ins.segment_id AND u.c = ins.contact_id",
						  3, s3i, CURSOR_OPT_GENERIC_PLAN), 3, a);
	}
	if (ch->exit_seg)
	{
		a[0] = Int8Array(ch->exit_seg);
		a[1] = Int8Array(ch->exit_contact);
		a[2] = TextArray(ch->exit_name);
		RunWrite(SegmentKeptPlan(&plan_exit,
						  "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS u(s, c, n)),"
						  " del AS (DELETE FROM segment.segment_members m USING u"
						  "         WHERE m.segment_id = u.s AND m.contact_id = u.c"
						  "         RETURNING m.segment_id, m.contact_id)"
						  " INSERT INTO segment.changes (contact_id, kind, name, source)"
						  " SELECT del.contact_id, 'segment_exit', u.n, 'rule'"
						  "   FROM del JOIN u ON u.s = del.segment_id AND u.c = del.contact_id",
						  3, s3i, CURSOR_OPT_GENERIC_PLAN), 3, a);
	}
	/*
	 * New rule tags without a statement too; the statement renews expired
	 * ones and takes over expiring manual ones.
	 */
	if (ch->tag_new_contact && !MaintWriteTagAdds(&g->rels, ch->tag_new_contact, ch->tag_new_tag))
	{
		ch->tag_add_contact = list_concat(ch->tag_add_contact, ch->tag_new_contact);
		ch->tag_add_tag = list_concat(ch->tag_add_tag, ch->tag_new_tag);
	}
	applying = true;
	PG_TRY();
	{
		if (ch->tag_add_contact)
		{
			a[0] = Int8Array(ch->tag_add_contact);
			a[1] = TextArray(ch->tag_add_tag);
			RunWrite(SegmentKeptPlan(&plan_tag_add,
							  "WITH up AS (INSERT INTO segment.contact_tags AS ct"
							  "              (contact_id, tag, source, tagged_at, expires_at)"
							  "            SELECT u.c, u.t, 'rule', segment.now(), NULL"
							  "              FROM unnest($1::bigint[], $2::text[]) AS u(c, t)"
							  "            ON CONFLICT (contact_id, tag) DO UPDATE"
							  "               SET source = 'rule', expires_at = NULL,"
							  "                   tagged_at = CASE WHEN ct.expires_at <= EXCLUDED.tagged_at"
							  "                                    THEN EXCLUDED.tagged_at ELSE ct.tagged_at END,"
							  "                   manual_expires_at = CASE WHEN ct.expires_at > EXCLUDED.tagged_at"
							  "                                            THEN ct.expires_at END"
							  "             WHERE ct.expires_at IS NOT NULL"
							  "            RETURNING ct.contact_id, ct.tag, ct.manual_expires_at)"
							  " INSERT INTO segment.changes (contact_id, kind, name, source)"
							  " SELECT contact_id, 'tag_add', tag, 'rule' FROM up WHERE manual_expires_at IS NULL",
							  2, t2, CURSOR_OPT_GENERIC_PLAN), 2, a);
		}
		if (ch->tag_rm_contact)
		{
			a[0] = Int8Array(ch->tag_rm_contact);
			a[1] = TextArray(ch->tag_rm_tag);
			RunWrite(SegmentKeptPlan(&plan_tag_remove,
							  "SELECT segment._release_rule_tags($1::bigint[], $2::text[])",
							  2, t2, CURSOR_OPT_GENERIC_PLAN), 2, a);
		}
	}
	PG_FINALLY();
	{
		applying = false;
	}
	PG_END_TRY();
	if (ch->stage_contact && !MaintWriteStages(&g->rels, ch->stage_contact, ch->stage_new, ch->stage_old))
	{
		a[0] = Int8Array(ch->stage_contact);
		a[1] = TextArray(ch->stage_new);
		a[2] = TextArray(ch->stage_old);
		RunWrite(SegmentKeptPlan(&plan_stage,
						  "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(c, st, old)),"
						  " d AS (DELETE FROM segment.contact_stages cs USING u"
						  "       WHERE u.st IS NULL AND cs.contact_id = u.c RETURNING cs.contact_id),"
						  " i AS (INSERT INTO segment.contact_stages AS cs (contact_id, stage, since)"
						  "       SELECT u.c, u.st, segment.now() FROM u WHERE u.st IS NOT NULL"
						  "       ON CONFLICT (contact_id) DO UPDATE SET stage = EXCLUDED.stage, since = EXCLUDED.since"
						  "        WHERE cs.stage IS DISTINCT FROM EXCLUDED.stage"
						  "       RETURNING cs.contact_id)"
						  " INSERT INTO segment.changes (contact_id, kind, name, previous, source)"
						  " SELECT u.c, 'stage_change', u.st, u.old, 'rule' FROM u"
						  "  WHERE u.c IN (SELECT contact_id FROM d UNION ALL SELECT contact_id FROM i)",
						  3, s3, CURSOR_OPT_GENERIC_PLAN), 3, a);
	}
}

static int64 *
BoxInt64(int64 v)
{
	int64	   *p = palloc(sizeof(int64));

	*p = v;
	return p;
}

/*
 * Decide the changes for one contact of a level: compare each node's value
 * with the contact's current membership, rule tag or stage.
 */
static void
Decide(void *arg, MaintGraph *g, MaintLevel *lv, MaintOutcome *o)
{
	MaintChanges *ch = (MaintChanges *) arg;
	int			i;

	for (i = 0; i < lv->nnodes; i++)
	{
		MaintNode  *node = &g->nodes[lv->nodes[i]];
		bool		w = o->want[i];

		if (node->kind == 'g')
		{
			char	   *cur = o->stage_cur;
			char	   *new = o->stage_new;

			if ((cur == NULL) != (new == NULL) || (cur && strcmp(cur, new) != 0))
			{
				ch->stage_contact = lappend(ch->stage_contact, BoxInt64(o->contact));
				ch->stage_new = lappend(ch->stage_new, new ? pstrdup(new) : NULL);
				ch->stage_old = lappend(ch->stage_old, cur ? pstrdup(cur) : NULL);
			}
		}
		else if (node->kind == 's')
		{
			if (w && !o->member[i])
			{
				ch->enter_seg = lappend(ch->enter_seg, BoxInt64(node->id));
				ch->enter_contact = lappend(ch->enter_contact, BoxInt64(o->contact));
				ch->enter_name = lappend(ch->enter_name, node->name);
			}
			else if (!w && o->member[i])
			{
				ch->exit_seg = lappend(ch->exit_seg, BoxInt64(node->id));
				ch->exit_contact = lappend(ch->exit_contact, BoxInt64(o->contact));
				ch->exit_name = lappend(ch->exit_name, node->name);
			}
		}
		else
		{
			char		state = o->tag_state[i];

			if (w && state == '-')
			{
				ch->tag_new_contact = lappend(ch->tag_new_contact, BoxInt64(o->contact));
				ch->tag_new_tag = lappend(ch->tag_new_tag, node->name);
			}
			else if (w && state != 'r' && state != 'm')
			{
				ch->tag_add_contact = lappend(ch->tag_add_contact, BoxInt64(o->contact));
				ch->tag_add_tag = lappend(ch->tag_add_tag, node->name);
			}
			else if (!w && state == 'r')
			{
				ch->tag_rm_contact = lappend(ch->tag_rm_contact, BoxInt64(o->contact));
				ch->tag_rm_tag = lappend(ch->tag_rm_tag, node->name);
			}
		}
	}
}

/* Evaluate one level for the contacts, then write the changes it decided. */
static void
EvalLevel(MaintGraph *g, MaintLevel *lv, int64 *ids, int nids, const MaintDelta *delta)
{
	MaintChanges ch;

	memset(&ch, 0, sizeof(ch));
	MaintEvalLevel(g, lv, ids, nids, delta, Decide, &ch);
	ApplyChanges(g, &ch);
}

static int
CompareInt64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Maintain the rules named by keys (see maintain.h) for these contacts.  SPI
 * must be connected.  ids is sorted and deduplicated in place.  delta: the
 * statement's one inserted event, or NULL.
 */
void
MaintRun(List *keys, int64 *ids, int nids, const MaintDelta *delta)
{
	int			i,
				n = 0;

	if (nids == 0 || keys == NIL)
		return;
	qsort(ids, nids, sizeof(int64), CompareInt64);
	for (i = 0; i < nids; i++)
		if (n == 0 || ids[n - 1] != ids[i])
			ids[n++] = ids[i];

	run_depth++;
	MaintForgetFoundRow();
	PG_TRY();
	{
		MaintGraph *g;
		bool		exclusive;

		/*
		 * Lock first, then look at the rules: a rule change committed while
		 * we waited is seen, and none commits before this transaction ends.
		 * The contacts are locked only when some rule is to be evaluated:
		 * an event of a type no rule names costs the shared lock alone.
		 */
		exclusive = LockGlobalForRun(n);
		AcceptInvalidationMessages();
		g = MaintGetGraph(run_depth == 1);
		if (g->nnodes > 0)
		{
			MaintRequest *req = MaintGetRequest(g, keys);

			if (req->nlevels > 0 && !exclusive)
				LockContacts(ids, n);
			for (i = 0; i < req->nlevels; i++)
				EvalLevel(g, &req->levels[i], ids, n, delta);
		}
	}
	PG_FINALLY();
	{
		MaintForgetFoundRow();
		run_depth--;
	}
	PG_END_TRY();
}

/*
 * segment._maintain(keys text[], contact_ids bigint[]): re-evaluate the rules
 * named by keys for these contacts (used by the SQL functions of the area).
 */
Datum
segment_maintain(PG_FUNCTION_ARGS)
{
	ArrayType  *karr = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *iarr = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *kd,
			   *id;
	bool	   *kn,
			   *in;
	int			nk,
				ni,
				i,
				n = 0;
	List	   *keys = NIL;
	int64	   *ids;

	deconstruct_array(karr, TEXTOID, -1, false, TYPALIGN_INT, &kd, &kn, &nk);
	deconstruct_array(iarr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &id, &in, &ni);
	for (i = 0; i < nk; i++)
		if (!kn[i])
			keys = lappend(keys, TextDatumGetCString(kd[i]));
	ids = palloc(sizeof(int64) * (ni + 1));
	for (i = 0; i < ni; i++)
		if (!in[i])
			ids[n++] = DatumGetInt64(id[i]);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	MaintRun(keys, ids, n, NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

/* segment._rules_changed(): the rules changed; rebuild the graph everywhere. */
Datum
segment_rules_changed(PG_FUNCTION_ARGS)
{
	MaintInvalidateAtCommit();
	PG_RETURN_VOID();
}

/*
 * segment._lock_all(): hold off every maintenance run until the end of this
 * transaction (rule changes, refresh of large sets).
 */
Datum
segment_lock_all(PG_FUNCTION_ARGS)
{
	LockGlobal(ExclusiveLock);
	PG_RETURN_VOID();
}

/*
 * Trigger segment._segments_guard (before DELETE, UPDATE OF id or TRUNCATE on
 * segment.segments, per statement): wait for every transaction that is
 * maintaining memberships and hold the others off until this one ends, so no
 * segment disappears under a membership being written (maintain_write.c then
 * need not lock the segment's row); every backend reloads its rule graph.
 */
Datum
segment_segments_guard(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("segment._segments_guard() must be called as a trigger")));
	LockGlobal(ExclusiveLock);
	MaintInvalidateAtCommit();
	return PointerGetDatum(NULL);
}
