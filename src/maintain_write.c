/*
 * maintain_write.c — write segment entries and new rule tags (a
 * segment.segment_members or segment.contact_tags row and its segment.changes
 * row) without a SQL statement.
 *
 * Entering a segment is the most frequent write of incremental maintenance
 * (a tracked event makes its contact enter one or two windowed segments more
 * often than not), a new rule tag the next.  Done as an INSERT ... RETURNING / INSERT statement, each
 * write pays an executor start-up, the re-preparation of the change feed's
 * CHECK constraints and a foreign-key check per row, each a SQL query of its
 * own; together several times the cost of the rows and their index entries.
 * Here the rows go in through the executor's own pieces (ExecConstraints for
 * NOT NULL and CHECK, table_tuple_insert, ExecInsertIndexTuples, which
 * enforces the unique indexes), column defaults are the tables' own
 * expressions (the change feed's identity, writing transaction and time),
 * and each single-column foreign key the table declares is enforced as its
 * RI trigger would: the referenced row is found by its unique index under a
 * fresh snapshot (or where the run's evaluation just found it, when that
 * version still has the key) and locked FOR KEY SHARE until the end of the
 * transaction, so it cannot be deleted or have its key changed before this
 * transaction ends; a missing row is the same foreign-key violation.  What
 * this takes from the catalogs (the table's triggers and keys, CHECK
 * constraints, defaults) is kept until the table's cache entry is
 * invalidated.
 *
 * The fast path is taken only when it does exactly what the statement would:
 * plain tables, no insert trigger other than the foreign-key checks (and the
 * tag trigger of this area, quiet during maintenance writes), no
 * row-level security, no stored generated columns, and INSERT and SELECT
 * rights held on the tables by the current user.  Otherwise the caller falls
 * back to the SQL statement (maintain_apply.c).
 */
#include "segment.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "maintain.h"

/* Foreign keys checked per table; a table with more takes the SQL path. */
#define WRITE_MAX_FKS 4
/* Referenced rows remembered as locked by the current subtransaction. */
#define WRITE_MAX_LOCKED 64

/* One single-column foreign key of a written table. */
typedef struct WriteFk
{
	Oid			conoid;
	AttrNumber	fkcol;			/* column of the written table */
	Oid			pkrel;			/* referenced table */
	AttrNumber	pkcol;			/* the referenced column */
	Oid			pkindex;		/* its unique index on the referenced column */
	RegProcedure eqproc;		/* equality of the key type */
	bool		guarded;		/* referenced rows go only under the maintenance lock */
	bool		byval;			/* the key is passed by value (its locks can be remembered) */
} WriteFk;

/*
 * What the fast path prepares for a written table, kept across calls until
 * the relation's cache entry is invalidated (any ALTER TABLE, constraint or
 * default change): its CHECK constraints, aligned with constr->check (what
 * ExecConstraints would read and plan from their stored text on every call;
 * the change feed's three cost more than the rows they check), and its
 * column defaults (build_column_default and its planning, per call).
 */
typedef struct RelPrep
{
	Oid			relid;			/* InvalidOid: empty or invalidated */
	MemoryContext cxt;
	int			ncheck;
	char	  **ccbin;			/* the text each state was prepared from */
	ExprState **checks;
	int			natts;
	ExprState **defaults;		/* per attribute, NULL without a default */
	bool		in_use;
} RelPrep;

/* Tables the fast path writes: segment_members, contact_tags, contact_stages, changes */
#define WRITE_REL_PREPS 6
static RelPrep rel_preps[WRITE_REL_PREPS];
static bool rel_preps_callback = false;

/* A table written by the fast path. */
typedef struct WriteTarget
{
	Relation	rel;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	ExprState **defaults;		/* per attribute: its default, for columns not supplied */
	RelPrep    *prep;			/* its kept CHECK constraints and defaults, or NULL */
	int			nfks;
	WriteFk		fks[WRITE_MAX_FKS];
} WriteTarget;

typedef struct WriteState
{
	EState	   *estate;
	Snapshot	snap;
	CommandId	cid;
	bool		global_held;	/* the maintenance lock is held (guarded keys need no row lock) */
} WriteState;

/*
 * Referenced rows (a contact, mostly) this transaction has locked FOR KEY
 * SHARE through the fast path.  The lock lasts until the transaction ends
 * unless the subtransaction that took it rolls back, so the memo is trusted
 * only while that subtransaction is the current one: an event's membership
 * rows, its new rule tags and its stage change, each written by a call of
 * its own, then lock the contact once instead of once per call and table.
 */
typedef struct LockedKey
{
	Oid			pkindex;		/* the referenced key's unique index */
	Datum		value;
} LockedKey;

/*
 * A row the running maintenance found by its key moments ago (the contact it
 * evaluates, MaintNoteFoundRow): where it was, so that locking it for a
 * foreign key needs no second descent of the key's index.  Good for one run
 * only (MaintForgetFoundRow): the run's statement holds a snapshot that saw
 * the row, so its place cannot be pruned and reused meanwhile.
 */
static struct
{
	bool		valid;
	Oid			pkindex;
	Datum		value;
	ItemPointerData tid;
}			found_row;

static LocalTransactionId locked_lxid = InvalidLocalTransactionId;
static SubTransactionId locked_subid = InvalidSubTransactionId;
static int	nlocked = 0;
static LockedKey locked[WRITE_MAX_LOCKED];

/*
 * The columns of segment.event_stats the event path writes, found once per
 * cache entry of the table (RelPrepInvalidate forgets them).
 */
typedef struct StatCols
{
	Oid			relid;			/* InvalidOid: not looked up */
	Oid			pkey;			/* its primary key, on (type, contact_id) */
	AttrNumber	type,
				contact,
				count,
				first_at,
				last_at,
				amount_count,
				sum_amount,
				min_amount,
				max_amount;
} StatCols;

static StatCols stat_cols;

/*
 * The event_stats row MaintAddEventStat updated for the latest event the row
 * trigger handled, noted for the maintenance run of the statement that
 * inserted the event (MaintNotedEventStat): where the new version is and the
 * last_at it replaced.  Forgotten at the next event the trigger handles.
 */
static struct
{
	LocalTransactionId lxid;	/* InvalidLocalTransactionId: nothing noted */
	int64		event_id;
	Oid			relid;
	ItemPointerData tid;
	TimestampTz old_last_at;
}			stat_note;

/*
 * What Writable found in a table's triggers and foreign keys, kept until its
 * cache entry, or that of a table a key refers to (whose guard trigger
 * Guarded read), is invalidated.  The rights and row-level security depend
 * on the user and are checked on every call.
 */
typedef struct WriteShape
{
	Oid			relid;			/* InvalidOid: empty or invalidated */
	bool		modify;
	bool		ok;				/* the triggers allow the fast path */
	int			nfks;
	WriteFk		fks[WRITE_MAX_FKS];
} WriteShape;

#define WRITE_SHAPES 8
static WriteShape shapes[WRITE_SHAPES];
static int	next_shape = 0;

/* Whether the last table asked about carries the segments guard (Guarded). */
static Oid	guard_relid = InvalidOid;
static bool guard_found = false;

/* Is this function segment.<name>? */
static bool
IsSegmentFunction(Oid fn, const char *fname)
{
	char	   *name = get_func_name(fn);
	char	   *nsp = get_namespace_name(get_func_namespace(fn));

	return name && nsp && strcmp(name, fname) == 0 && strcmp(nsp, "segment") == 0;
}

/*
 * Is this function segment._contact_tags_trigger?  It stays quiet while
 * maintenance writes rule tags (the levels cascade on their own), so the
 * fast path need not fire it.
 */
static bool
IsOwnTagTrigger(Oid fn)
{
	return IsSegmentFunction(fn, "_contact_tags_trigger");
}

/* A relation's cache entry was invalidated: forget what was prepared for it. */
static void
RelPrepInvalidate(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < WRITE_REL_PREPS; i++)
		if (relid == InvalidOid || rel_preps[i].relid == relid)
			rel_preps[i].relid = InvalidOid;
	for (i = 0; i < WRITE_SHAPES; i++)
	{
		bool		refers = false;
		int			j;

		for (j = 0; j < shapes[i].nfks; j++)
			refers |= shapes[i].fks[j].pkrel == relid;
		if (relid == InvalidOid || shapes[i].relid == relid || refers)
			shapes[i].relid = InvalidOid;
	}
	if (relid == InvalidOid || relid == guard_relid)
		guard_relid = InvalidOid;
	if (relid == InvalidOid || relid == stat_cols.relid)
		stat_cols.relid = InvalidOid;
}

/*
 * Does the table carry segment._segments_guard, enabled, before DELETE,
 * UPDATE and TRUNCATE?  Then its rows go (or change their key) only under
 * the maintenance lock, and a maintenance write that holds that lock need
 * not lock the row it refers to: none can go before the writer's
 * transaction ends.  Kept until the table's cache entry is invalidated.
 */
static bool
Guarded(Oid relid)
{
	Relation	rel;
	TriggerDesc *td;
	int			i;

	if (relid == guard_relid)
		return guard_found;
	rel = table_open(relid, AccessShareLock);
	td = rel->trigdesc;
	guard_found = false;
	for (i = 0; td && i < td->numtriggers; i++)
	{
		Trigger    *trig = &td->triggers[i];

		if (TRIGGER_FOR_BEFORE(trig->tgtype) && !TRIGGER_FOR_ROW(trig->tgtype) &&
			TRIGGER_FOR_DELETE(trig->tgtype) && TRIGGER_FOR_UPDATE(trig->tgtype) &&
			TRIGGER_FOR_TRUNCATE(trig->tgtype) &&
			(trig->tgenabled == TRIGGER_FIRES_ON_ORIGIN || trig->tgenabled == TRIGGER_FIRES_ALWAYS) &&
			IsSegmentFunction(trig->tgfoid, "_segments_guard"))
			guard_found = true;
	}
	table_close(rel, AccessShareLock);
	guard_relid = relid;
	return guard_found;
}

/*
 * The triggers and foreign keys of the table, as far as the fast path
 * cares (with modify, for INSERT, UPDATE and DELETE): ok when every trigger
 * that would fire is a foreign-key check of a single-column key (or the tag
 * trigger of this area), with those keys collected.  Kept in shapes.
 */
static WriteShape *
Shape(Relation rel, bool modify)
{
	TriggerDesc *td = rel->trigdesc;
	Oid			relid = RelationGetRelid(rel);
	WriteShape *sh;
	int			i;

	for (i = 0; i < WRITE_SHAPES; i++)
		if (shapes[i].relid == relid && shapes[i].modify == modify)
			return &shapes[i];
	sh = &shapes[next_shape];
	next_shape = (next_shape + 1) % WRITE_SHAPES;
	sh->relid = InvalidOid;
	sh->modify = modify;
	sh->ok = false;
	sh->nfks = 0;
	for (i = 0; td && i < td->numtriggers; i++)
	{
		Trigger    *trig = &td->triggers[i];
		HeapTuple	tup;
		Form_pg_constraint con;
		int			numfks,
					j;
		AttrNumber	conkey[INDEX_MAX_KEYS],
					confkey[INDEX_MAX_KEYS];
		Oid			pf_eq[INDEX_MAX_KEYS],
					pp_eq[INDEX_MAX_KEYS],
					ff_eq[INDEX_MAX_KEYS];
		bool		seen = false;
		bool		ok;

		if (!(TRIGGER_FOR_INSERT(trig->tgtype) ||
			  (modify && (TRIGGER_FOR_UPDATE(trig->tgtype) || TRIGGER_FOR_DELETE(trig->tgtype) ||
						  TRIGGER_FOR_TRUNCATE(trig->tgtype)))) ||
			IsOwnTagTrigger(trig->tgfoid))
			continue;
		if (RI_FKey_trigger_type(trig->tgfoid) != RI_TRIGGER_FK || !OidIsValid(trig->tgconstraint))
			goto done;
		for (j = 0; j < sh->nfks; j++)
			seen |= sh->fks[j].conoid == trig->tgconstraint;
		if (seen)
			continue;
		if (sh->nfks == WRITE_MAX_FKS)
			goto done;
		tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(trig->tgconstraint));
		if (!HeapTupleIsValid(tup))
			goto done;
		con = (Form_pg_constraint) GETSTRUCT(tup);
		DeconstructFkConstraintRow(tup, &numfks, conkey, confkey, pf_eq, pp_eq, ff_eq, NULL, NULL);
		ok = numfks == 1 && OidIsValid(con->conindid) &&
			get_atttype(con->confrelid, confkey[0]) ==
			TupleDescAttr(rel->rd_att, conkey[0] - 1)->atttypid;
		if (ok)
		{
			WriteFk    *fk = &sh->fks[sh->nfks++];

			fk->conoid = trig->tgconstraint;
			fk->fkcol = conkey[0];
			fk->pkrel = con->confrelid;
			fk->pkcol = confkey[0];
			fk->pkindex = con->conindid;
			fk->eqproc = get_opcode(pp_eq[0]);
			fk->guarded = Guarded(con->confrelid);
			fk->byval = TupleDescAttr(rel->rd_att, conkey[0] - 1)->attbyval;
		}
		ReleaseSysCache(tup);
		if (!ok)
			goto done;
	}
	sh->ok = true;
done:
	sh->relid = relid;
	return sh;
}

/*
 * Can the fast path write this table exactly as an INSERT (with modify, an
 * INSERT, UPDATE or DELETE) would?  Collects its single-column foreign keys
 * into t.
 */
static bool
Writable(Relation rel, WriteTarget *t, bool modify)
{
	TupleConstr *constr = rel->rd_att->constr;
	WriteShape *sh;

	t->nfks = 0;
	/* what is kept here (RelPrep, WriteShape, Guarded) goes with the tables' cache entries */
	if (!rel_preps_callback)
	{
		CacheRegisterRelcacheCallback(RelPrepInvalidate, (Datum) 0);
		rel_preps_callback = true;
	}
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition)
		return false;
	if (constr && constr->has_generated_stored)
		return false;
	if (pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_INSERT) != ACLCHECK_OK ||
		pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return false;
	if (modify &&
		(pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_UPDATE) != ACLCHECK_OK ||
		 pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_DELETE) != ACLCHECK_OK))
		return false;
	if (check_enable_rls(RelationGetRelid(rel), InvalidOid, true) == RLS_ENABLED)
		return false;
	sh = Shape(rel, modify);
	if (!sh->ok)
		return false;
	t->nfks = sh->nfks;
	memcpy(t->fks, sh->fks, sizeof(WriteFk) * sh->nfks);
	return true;
}

/*
 * The kept CHECK constraints and defaults of the table, prepared now when
 * none are kept; NULL when its entry is in use by an outer call (the caller
 * then prepares its own, as a statement would).
 */
static RelPrep *
GetRelPrep(Relation rel)
{
	TupleConstr *constr = rel->rd_att->constr;
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			relid = RelationGetRelid(rel);
	RelPrep    *p = NULL;
	MemoryContext old;
	int			i;
	bool		same;

	for (i = 0; i < WRITE_REL_PREPS && p == NULL; i++)
		if (rel_preps[i].relid == relid)
			p = &rel_preps[i];
	for (i = 0; i < WRITE_REL_PREPS && p == NULL; i++)
		if (rel_preps[i].relid == InvalidOid && !rel_preps[i].in_use)
			p = &rel_preps[i];
	if (p == NULL || p->in_use)
		return NULL;
	same = p->relid == relid && p->natts == desc->natts &&
		p->ncheck == (constr ? constr->num_check : 0);
	for (i = 0; same && i < p->ncheck; i++)
		same = strcmp(p->ccbin[i], constr->check[i].ccbin) == 0;
	if (same)
		return p;

	if (p->cxt == NULL)
		p->cxt = AllocSetContextCreate(TopMemoryContext, "segment maintenance writes",
									   ALLOCSET_SMALL_SIZES);
	MemoryContextReset(p->cxt);
	p->relid = InvalidOid;
	old = MemoryContextSwitchTo(p->cxt);
	p->ncheck = constr ? constr->num_check : 0;
	p->ccbin = palloc(sizeof(char *) * (p->ncheck + 1));
	p->checks = palloc(sizeof(ExprState *) * (p->ncheck + 1));
	for (i = 0; i < p->ncheck; i++)
	{
		/* what ExecRelCheck does: ExecPrepareExpr of the stored expression */
		p->ccbin[i] = pstrdup(constr->check[i].ccbin);
		p->checks[i] = ExecInitExpr(expression_planner((Expr *) stringToNode(p->ccbin[i])), NULL);
	}
	p->natts = desc->natts;
	p->defaults = palloc0(sizeof(ExprState *) * (desc->natts + 1));
	for (i = 0; i < desc->natts; i++)
	{
		Node	   *def;

		if (TupleDescAttr(desc, i)->attisdropped)
			continue;
		def = build_column_default(rel, i + 1);
		if (def)
			p->defaults[i] = ExecInitExpr(expression_planner((Expr *) def), NULL);
	}
	MemoryContextSwitchTo(old);
	p->relid = relid;
	return p;
}

/*
 * Open a table for the fast path (range table index rti); false, with
 * nothing left open, when it must take the SQL path.
 */
static bool
OpenTarget(WriteState *ws, Oid relid, Index rti, WriteTarget *t, bool modify)
{
	TupleDesc	desc;
	int			i;

	memset(t, 0, sizeof(*t));
	t->rel = table_open(relid, RowExclusiveLock);
	if (!Writable(t->rel, t, modify))
	{
		table_close(t->rel, RowExclusiveLock);
		t->rel = NULL;
		return false;
	}
	desc = RelationGetDescr(t->rel);
	t->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(t->rri, t->rel, rti, NULL, 0);
	ExecOpenIndices(t->rri, false);
	t->slot = table_slot_create(t->rel, NULL);
	t->prep = GetRelPrep(t->rel);
	if (t->prep)
	{
		t->prep->in_use = true;
		if (t->prep->ncheck > 0)
			t->rri->ri_ConstraintExprs = t->prep->checks;
		t->defaults = t->prep->defaults;
	}
	else
	{
		/* an outer call holds the kept ones: prepare for this call only */
		t->defaults = palloc0(sizeof(ExprState *) * (desc->natts + 1));
		for (i = 0; i < desc->natts; i++)
		{
			Node	   *def;

			if (TupleDescAttr(desc, i)->attisdropped)
				continue;
			def = build_column_default(t->rel, i + 1);
			if (def)
				t->defaults[i] = ExecPrepareExpr(expression_planner((Expr *) def), ws->estate);
		}
	}
	return true;
}

static void
CloseTarget(WriteTarget *t)
{
	if (t->rel == NULL)
		return;
	if (t->prep)
		t->prep->in_use = false;
	ExecDropSingleTupleTableSlot(t->slot);
	ExecCloseIndices(t->rri);
	table_close(t->rel, NoLock);
	t->rel = NULL;
}

/* The foreign-key violation, worded as PostgreSQL's own check words it. */
static void
ReportFkViolation(Relation rel, WriteFk *fk, Datum value)
{
	Oid			typoutput;
	bool		varlena;
	Oid			type = TupleDescAttr(RelationGetDescr(rel), fk->fkcol - 1)->atttypid;
	char	   *conname = get_constraint_name(fk->conoid);

	getTypeOutputInfo(type, &typoutput, &varlena);
	ereport(ERROR,
			(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
			 errmsg("insert or update on table \"%s\" violates foreign key constraint \"%s\"",
					RelationGetRelationName(rel), conname),
			 errdetail("Key (%s)=(%s) is not present in table \"%s\".",
					   get_attname(RelationGetRelid(rel), fk->fkcol, false),
					   OidOutputFunctionCall(typoutput, value),
					   get_rel_name(fk->pkrel)),
			 errtableconstraint(rel, conname)));
}

/*
 * Lock the row at tid FOR KEY SHARE, under READ COMMITTED its newest version
 * (slot gets it): false when it went (deleted, or deleted by this
 * transaction), the serialization failure when it changed under a snapshot
 * kept for the transaction.
 */
static bool
LockRowAt(WriteState *ws, Relation pk, ItemPointer tid, TupleTableSlot *slot)
{
	TM_FailureData tmfd;
	TM_Result	res;

	res = table_tuple_lock(pk, tid, ws->snap, slot, ws->cid,
						   LockTupleKeyShare, LockWaitBlock,
						   IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
						   &tmfd);
	switch (res)
	{
		case TM_Ok:
			return true;
		case TM_Updated:
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update")));
			return false;		/* deleted meanwhile: not there */
		case TM_SelfModified:
			return false;		/* deleted by this transaction: not there */
		default:
			elog(ERROR, "segment maintenance: unexpected result %d locking a referenced row", (int) res);
	}
	return false;
}

/*
 * Lock the row the value refers to FOR KEY SHARE (what the foreign key's RI
 * check does), or fail with the foreign-key violation when there is none.
 * A guarded key (Guarded) under the maintenance lock needs neither: the
 * caller writes only rows its rule graph, read under that lock, names.  The
 * row is found at the place this run found it (MaintNoteFoundRow), when the
 * version locked there still has the key, or else by the key's unique index.
 */
static void
LockReferenced(WriteState *ws, Relation rel, WriteFk *fk, Datum value)
{
	Relation	pk;
	TupleTableSlot *slot;
	bool		found = false;
	int			i;

	if (fk->guarded && ws->global_held)
		return;
	if (locked_lxid != MyProc->lxid || locked_subid != GetCurrentSubTransactionId())
	{
		locked_lxid = MyProc->lxid;
		locked_subid = GetCurrentSubTransactionId();
		nlocked = 0;
	}
	for (i = 0; fk->byval && i < nlocked; i++)
		if (locked[i].pkindex == fk->pkindex && locked[i].value == value)
			return;

	pk = table_open(fk->pkrel, RowShareLock);
	slot = table_slot_create(pk, NULL);
	if (found_row.valid && fk->byval && found_row.pkindex == fk->pkindex && found_row.value == value &&
		!IsolationIsSerializable())
	{
		ItemPointerData tid = found_row.tid;

		found = LockRowAt(ws, pk, &tid, slot);
		if (found)
		{
			bool		isnull;
			Datum		key = slot_getattr(slot, fk->pkcol, &isnull);

			/* a newer version may have another key (the row was updated meanwhile) */
			found = !isnull && DatumGetBool(OidFunctionCall2(fk->eqproc, key, value));
		}
	}
	if (!found)
	{
		/* by the index: the row as a new statement would find it */
		Relation	idx = index_open(fk->pkindex, AccessShareLock);
		ScanKeyData key;
		IndexScanDesc scan;

		ScanKeyInit(&key, 1, BTEqualStrategyNumber, fk->eqproc, value);
		scan = index_beginscan(pk, idx, ws->snap, 1, 0);
		index_rescan(scan, &key, 1, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			ItemPointerData tid = slot->tts_tid;

			found = LockRowAt(ws, pk, &tid, slot);
		}
		index_endscan(scan);
		index_close(idx, AccessShareLock);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(pk, NoLock);	/* the RowShareLock stays until the end of the transaction */
	if (!found)
		ReportFkViolation(rel, fk, value);
	if (fk->byval && nlocked < WRITE_MAX_LOCKED)
	{
		locked[nlocked].pkindex = fk->pkindex;
		locked[nlocked].value = value;
		nlocked++;
	}
}

/*
 * The maintenance run found the row of key value in the unique index
 * pkindex at tid (under a snapshot the run's statement still holds).
 */
void
MaintNoteFoundRow(Oid pkindex, Datum value, ItemPointer tid)
{
	found_row.valid = true;
	found_row.pkindex = pkindex;
	found_row.value = value;
	found_row.tid = *tid;
}

/* A maintenance run starts or ends: what it found is not to be trusted any more. */
void
MaintForgetFoundRow(void)
{
	found_row.valid = false;
}

/*
 * Fill slot (cleared, not yet stored) with the columns of the row in old: the
 * new version of a row an update changes a few columns of.
 */
static void
CopyRow(TupleTableSlot *old, TupleTableSlot *slot)
{
	int			i;

	slot_getallattrs(old);
	ExecClearTuple(slot);
	for (i = 0; i < slot->tts_tupleDescriptor->natts; i++)
	{
		slot->tts_values[i] = old->tts_values[i];
		slot->tts_isnull[i] = old->tts_isnull[i];
	}
}

/*
 * Insert one row: the supplied columns from values/isnull where given[]
 * (by attribute), the others from their defaults; then its constraints,
 * foreign keys, heap tuple and index entries.
 */
static void
InsertRow(WriteState *ws, WriteTarget *t, Datum *values, bool *isnull, bool *given)
{
	TupleTableSlot *slot = t->slot;
	TupleDesc	desc = slot->tts_tupleDescriptor;
	ExprContext *econtext = GetPerTupleExprContext(ws->estate);
	List	   *recheck;
	int			i;

	ResetPerTupleExprContext(ws->estate);
	ExecClearTuple(slot);
	for (i = 0; i < desc->natts; i++)
	{
		if (given[i])
		{
			slot->tts_values[i] = values[i];
			slot->tts_isnull[i] = isnull[i];
		}
		else if (t->defaults[i])
			slot->tts_values[i] = ExecEvalExprSwitchContext(t->defaults[i], econtext,
															&slot->tts_isnull[i]);
		else
		{
			slot->tts_values[i] = (Datum) 0;
			slot->tts_isnull[i] = true;
		}
	}
	ExecStoreVirtualTuple(slot);
	if (t->rel->rd_att->constr)
		ExecConstraints(t->rri, slot, ws->estate);
	for (i = 0; i < t->nfks; i++)
	{
		WriteFk    *fk = &t->fks[i];

		if (!slot->tts_isnull[fk->fkcol - 1])
			LockReferenced(ws, t->rel, fk, slot->tts_values[fk->fkcol - 1]);
	}
	table_tuple_insert(t->rel, slot, ws->cid, 0, NULL);
	recheck = ExecInsertIndexTuples(t->rri, slot, ws->estate, false, false, NULL, NIL);
	list_free(recheck);
}

/* A range table entry for a written table (ExecConstraints reads it to word its errors). */
static RangeTblEntry *
WriteRte(Oid relid)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	return rte;
}

/* A fast-path write: one table and the change feed, under one snapshot. */
typedef struct WriteSession
{
	WriteState	ws;
	WriteTarget rows,
				changes;
	Datum	   *rv,				/* a row of the table, by attribute */
			   *cv;				/* a change row */
	bool	   *rnull,
			   *rgiven,
			   *cnull,
			   *cgiven;
	AttrNumber	c_contact,
				c_name,
				c_previous;
} WriteSession;

static AttrNumber
ColumnOf(Oid relid, const char *name)
{
	AttrNumber	att = get_attnum(relid, name);

	if (att <= 0)
		elog(ERROR, "segment maintenance: column \"%s\" of %s not found", name, get_rel_name(relid));
	return att;
}

/*
 * Open target (with modify, for INSERT, UPDATE and DELETE) and the change
 * feed, whose rows will be of this kind, and take the snapshot a statement
 * would.  False, with nothing open, when the fast path cannot be used.
 */
static bool
BeginWrite(WriteSession *s, MaintRels *r, Oid target, bool modify, const char *kind)
{
	AttrNumber	c_kind,
				c_source;
	int			natts;

	memset(s, 0, sizeof(*s));
	if (!OidIsValid(r->changes))
		return false;
	s->ws.estate = CreateExecutorState();
	ExecInitRangeTable(s->ws.estate, list_make2(WriteRte(target), WriteRte(r->changes)));
	if (!OpenTarget(&s->ws, target, 1, &s->rows, modify))
	{
		FreeExecutorState(s->ws.estate);
		return false;
	}
	if (!OpenTarget(&s->ws, r->changes, 2, &s->changes, false))
	{
		CloseTarget(&s->rows);
		FreeExecutorState(s->ws.estate);
		return false;
	}
	natts = RelationGetDescr(s->rows.rel)->natts;
	s->rv = palloc0(sizeof(Datum) * natts);
	s->rnull = palloc0(sizeof(bool) * natts);
	s->rgiven = palloc0(sizeof(bool) * natts);
	natts = RelationGetDescr(s->changes.rel)->natts;
	s->cv = palloc0(sizeof(Datum) * natts);
	s->cnull = palloc0(sizeof(bool) * natts);
	s->cgiven = palloc0(sizeof(bool) * natts);
	s->c_contact = ColumnOf(r->changes, "contact_id");
	s->c_name = ColumnOf(r->changes, "name");
	s->c_previous = ColumnOf(r->changes, "previous");
	c_kind = ColumnOf(r->changes, "kind");
	c_source = ColumnOf(r->changes, "source");
	s->cgiven[s->c_contact - 1] = s->cgiven[c_kind - 1] = s->cgiven[s->c_name - 1] =
		s->cgiven[c_source - 1] = s->cgiven[s->c_previous - 1] = true;
	s->cv[c_kind - 1] = CStringGetTextDatum(kind);
	s->cv[c_source - 1] = CStringGetTextDatum("rule");
	s->cnull[s->c_previous - 1] = true;

	/* what a statement does first: see this transaction's writes and what others committed */
	CommandCounterIncrement();
	s->ws.cid = GetCurrentCommandId(true);
	s->ws.snap = RegisterSnapshot(GetTransactionSnapshot());
	s->ws.global_held = MaintHoldsGlobalLock();
	return true;
}

/* The change-feed row of one change (name and previous may be NULL). */
static void
WriteChange(WriteSession *s, int64 contact, const char *name, const char *previous)
{
	s->cv[s->c_contact - 1] = Int64GetDatum(contact);
	s->cnull[s->c_name - 1] = (name == NULL);
	s->cv[s->c_name - 1] = name ? CStringGetTextDatum(name) : (Datum) 0;
	s->cnull[s->c_previous - 1] = (previous == NULL);
	s->cv[s->c_previous - 1] = previous ? CStringGetTextDatum(previous) : (Datum) 0;
	InsertRow(&s->ws, &s->changes, s->cv, s->cnull, s->cgiven);
}

/* After an error: leave what is kept free for the next call. */
static void
AbandonWrite(WriteSession *s)
{
	if (s->rows.prep)
		s->rows.prep->in_use = false;
	if (s->changes.prep)
		s->changes.prep->in_use = false;
}

static void
EndWrite(WriteSession *s)
{
	UnregisterSnapshot(s->ws.snap);
	CloseTarget(&s->changes);
	CloseTarget(&s->rows);
	FreeExecutorState(s->ws.estate);
	/* later statements and levels see these rows */
	CommandCounterIncrement();
}

/*
 * Insert nrows rows into target (the columns cols, values vals[row * ncols
 * + col], NULL where nulls says so; the other columns get their defaults),
 * each followed by its change-feed row (contact_id contacts[row], kind,
 * name names[row], source 'rule').  Returns false, having written nothing,
 * when the fast path cannot be used.
 */
static bool
WriteRows(MaintRels *r, Oid target, int ncols, const char *const *cols,
		  int nrows, Datum *vals, bool *nulls, const char *kind, int64 *contacts, char **names)
{
	WriteSession s;
	AttrNumber *att = palloc(sizeof(AttrNumber) * ncols);
	int			i,
				k;

	if (nrows == 0 || !BeginWrite(&s, r, target, false, kind))
		return false;
	for (k = 0; k < ncols; k++)
	{
		att[k] = ColumnOf(target, cols[k]);
		s.rgiven[att[k] - 1] = true;
	}
	PG_TRY();
	{
		for (i = 0; i < nrows; i++)
		{
			for (k = 0; k < ncols; k++)
			{
				s.rv[att[k] - 1] = vals[i * ncols + k];
				s.rnull[att[k] - 1] = nulls[i * ncols + k];
			}
			InsertRow(&s.ws, &s.rows, s.rv, s.rnull, s.rgiven);
			WriteChange(&s, contacts[i], names[i], NULL);
		}
	}
	PG_CATCH();
	{
		AbandonWrite(&s);
		PG_RE_THROW();
	}
	PG_END_TRY();
	EndWrite(&s);
	return true;
}

/*
 * Enter contacts[i] into segment segs[i] (named names[i]): the membership
 * row with since = segment.now() and its 'segment_enter' change row, in list
 * order.  The caller has established that none of them is a member.  Returns
 * false, having written nothing, when the fast path cannot be used; the
 * caller then runs the SQL statement.
 */
bool
MaintWriteEntries(MaintRels *r, List *segs, List *contacts, List *names)
{
	static const char *const cols[3] = {"segment_id", "contact_id", "since"};
	int			n = list_length(segs);
	Datum	   *vals = palloc(sizeof(Datum) * 3 * (n + 1));
	bool	   *nulls = palloc0(sizeof(bool) * 3 * (n + 1));
	int64	   *ids = palloc(sizeof(int64) * (n + 1));
	char	  **nm = palloc(sizeof(char *) * (n + 1));
	Datum		now = TimestampTzGetDatum(SegmentNow());
	int			i;

	for (i = 0; i < n; i++)
	{
		ids[i] = *(int64 *) list_nth(contacts, i);
		nm[i] = (char *) list_nth(names, i);
		vals[i * 3] = Int64GetDatum(*(int64 *) list_nth(segs, i));
		vals[i * 3 + 1] = Int64GetDatum(ids[i]);
		vals[i * 3 + 2] = now;
	}
	return WriteRows(r, r->members, 3, cols, n, vals, nulls, "segment_enter", ids, nm);
}

/*
 * Put rule tag tags[i] on contacts[i], who has no row for that tag: the
 * contact_tags row (source 'rule', tagged now, no expiry) and its 'tag_add'
 * change row.  Returns false, having written nothing, when the fast path
 * cannot be used.
 */
bool
MaintWriteTagAdds(MaintRels *r, List *contacts, List *tags)
{
	static const char *const cols[5] = {"contact_id", "tag", "source", "tagged_at", "expires_at"};
	int			n = list_length(contacts);
	Datum	   *vals = palloc(sizeof(Datum) * 5 * (n + 1));
	bool	   *nulls = palloc0(sizeof(bool) * 5 * (n + 1));
	int64	   *ids = palloc(sizeof(int64) * (n + 1));
	char	  **nm = palloc(sizeof(char *) * (n + 1));
	Datum		now = TimestampTzGetDatum(SegmentNow());
	Datum		rule = CStringGetTextDatum("rule");
	int			i;

	for (i = 0; i < n; i++)
	{
		ids[i] = *(int64 *) list_nth(contacts, i);
		nm[i] = (char *) list_nth(tags, i);
		vals[i * 5] = Int64GetDatum(ids[i]);
		vals[i * 5 + 1] = CStringGetTextDatum(nm[i]);
		vals[i * 5 + 2] = rule;
		vals[i * 5 + 3] = now;
		vals[i * 5 + 4] = (Datum) 0;
		nulls[i * 5 + 4] = true;
	}
	return WriteRows(r, r->tags, 5, cols, n, vals, nulls, "tag_add", ids, nm);
}

/*
 * Move contacts[i] from stage olds[i] to stage news[i] (either may be NULL:
 * no stage): the segment.contact_stages row is inserted, updated (stage and
 * since) or deleted, then its 'stage_change' change row is written.  The
 * caller has established that the stages differ.  Returns false, having
 * written nothing, when the fast path cannot be used (it must also UPDATE
 * and DELETE as a statement would).  A row changed meanwhile by a
 * transaction that did not take the contact's maintenance lock is a
 * serialization failure.
 */
bool
MaintWriteStages(MaintRels *r, List *contacts, List *news, List *olds)
{
	WriteSession s;
	AttrNumber	a_contact = ColumnOf(r->stages, "contact_id");
	AttrNumber	a_stage = ColumnOf(r->stages, "stage");
	AttrNumber	a_since = ColumnOf(r->stages, "since");
	Datum		now = TimestampTzGetDatum(SegmentNow());
	Relation	idx;
	TupleTableSlot *old;
	ListCell   *lc,
			   *ln,
			   *lo;

	if (contacts == NIL || !BeginWrite(&s, r, r->stages, true, "stage_change"))
		return false;
	idx = index_open(r->stages_pk, AccessShareLock);
	old = table_slot_create(s.rows.rel, NULL);
	s.rgiven[a_contact - 1] = s.rgiven[a_stage - 1] = s.rgiven[a_since - 1] = true;
	PG_TRY();
	{
		forthree(lc, contacts, ln, news, lo, olds)
		{
			int64		contact = *(int64 *) lfirst(lc);
			char	   *new = (char *) lfirst(ln);
			ScanKeyData key;
			IndexScanDesc scan;
			bool		found;
			TM_Result	res = TM_Ok;
			TM_FailureData tmfd;

			ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(contact));
			scan = index_beginscan(s.rows.rel, idx, s.ws.snap, 1, 0);
			index_rescan(scan, &key, 1, NULL, 0);
			found = index_getnext_slot(scan, ForwardScanDirection, old);
			index_endscan(scan);

			if (found && new == NULL)
				res = table_tuple_delete(s.rows.rel, &old->tts_tid, s.ws.cid, s.ws.snap,
										 InvalidSnapshot, true, &tmfd, false);
			else if (found)
			{
				TupleTableSlot *slot = s.rows.slot;
				LockTupleMode lockmode;
				bool		update_indexes;
				int			i;

				/* the row as it is, with the new stage and since */
				CopyRow(old, slot);
				slot->tts_values[a_stage - 1] = CStringGetTextDatum(new);
				slot->tts_isnull[a_stage - 1] = false;
				slot->tts_values[a_since - 1] = now;
				slot->tts_isnull[a_since - 1] = false;
				ExecStoreVirtualTuple(slot);
				if (s.rows.rel->rd_att->constr)
					ExecConstraints(s.rows.rri, slot, s.ws.estate);
				for (i = 0; i < s.rows.nfks; i++)
					if (s.rows.fks[i].fkcol == a_stage)
						LockReferenced(&s.ws, s.rows.rel, &s.rows.fks[i], slot->tts_values[a_stage - 1]);
				res = table_tuple_update(s.rows.rel, &old->tts_tid, slot, s.ws.cid, s.ws.snap,
										 InvalidSnapshot, true, &tmfd, &lockmode, &update_indexes);
				if (res == TM_Ok && update_indexes)
					list_free(ExecInsertIndexTuples(s.rows.rri, slot, s.ws.estate, true, false, NULL, NIL));
			}
			else if (new != NULL)
			{
				s.rv[a_contact - 1] = Int64GetDatum(contact);
				s.rv[a_stage - 1] = CStringGetTextDatum(new);
				s.rv[a_since - 1] = now;
				InsertRow(&s.ws, &s.rows, s.rv, s.rnull, s.rgiven);
			}
			else
				continue;		/* no row and no stage: nothing changes */
			if (res != TM_Ok)
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update"),
						 errdetail("The lifecycle stage of contact " INT64_FORMAT " changed while it was maintained.",
								   contact)));
			WriteChange(&s, contact, new, (char *) lfirst(lo));
		}
	}
	PG_CATCH();
	{
		AbandonWrite(&s);
		PG_RE_THROW();
	}
	PG_END_TRY();
	ExecDropSingleTupleTableSlot(old);
	index_close(idx, AccessShareLock);
	EndWrite(&s);
	return true;
}

static bool
LookupStatCols(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	Relation	idx;
	bool		ok;

	if (stat_cols.relid == relid)
		return true;
	stat_cols.relid = InvalidOid;
	stat_cols.pkey = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(stat_cols.pkey))
		return false;
	stat_cols.type = ColumnOf(relid, "type");
	stat_cols.contact = ColumnOf(relid, "contact_id");
	stat_cols.count = ColumnOf(relid, "count");
	stat_cols.first_at = ColumnOf(relid, "first_at");
	stat_cols.last_at = ColumnOf(relid, "last_at");
	stat_cols.amount_count = ColumnOf(relid, "amount_count");
	stat_cols.sum_amount = ColumnOf(relid, "sum_amount");
	stat_cols.min_amount = ColumnOf(relid, "min_amount");
	stat_cols.max_amount = ColumnOf(relid, "max_amount");
	idx = index_open(stat_cols.pkey, AccessShareLock);
	ok = IndexRelationGetNumberOfKeyAttributes(idx) == 2 &&
		idx->rd_index->indkey.values[0] == stat_cols.type &&
		idx->rd_index->indkey.values[1] == stat_cols.contact;
	index_close(idx, AccessShareLock);
	if (ok)
		stat_cols.relid = relid;
	return ok;
}

/*
 * Can the event path update rows of segment.event_stats without a statement
 * exactly as the upsert's DO UPDATE would?  A plain table whose triggers are
 * only foreign-key checks (an update that keeps the key fires none), without
 * CHECK constraints (the NOT NULL columns stay set), stored generated columns
 * or row-level security, with the rights the upsert needs.  (A deferred
 * foreign key would check an updated row at commit: not taken either.)  The table's shape
 * is judged once per cache entry, the rights on every call.
 */
static bool
StatsWritable(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	TupleConstr *constr = rel->rd_att->constr;
	TriggerDesc *td = rel->trigdesc;
	int			i;

	if (stat_cols.relid != relid)
	{
		if (!rel_preps_callback)
		{
			CacheRegisterRelcacheCallback(RelPrepInvalidate, (Datum) 0);
			rel_preps_callback = true;
		}
		if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
			(constr && (constr->has_generated_stored || constr->num_check > 0)))
			return false;
		for (i = 0; td && i < td->numtriggers; i++)
			if ((TRIGGER_FOR_UPDATE(td->triggers[i].tgtype) || TRIGGER_FOR_INSERT(td->triggers[i].tgtype)) &&
				(RI_FKey_trigger_type(td->triggers[i].tgfoid) != RI_TRIGGER_FK || td->triggers[i].tgdeferrable))
				return false;
		if (!LookupStatCols(rel))
			return false;
	}
	return pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK &&
		pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) == ACLCHECK_OK &&
		pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE) == ACLCHECK_OK &&
		check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED;
}

/* The index entries of a row an update could not keep HOT. */
static void
InsertIndexEntries(Relation rel, TupleTableSlot *slot)
{
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *rri = makeNode(ResultRelInfo);

	ExecInitRangeTable(estate, list_make1(WriteRte(RelationGetRelid(rel))));
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	list_free(ExecInsertIndexTuples(rri, slot, estate, true, false, NULL, NIL));
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
}

/* least/greatest of two numerics, either NULL (the other wins). */
static Datum
NumericPick(Datum a, bool anull, Datum b, bool bnull, bool greatest, bool *isnull)
{
	int			cmp;

	*isnull = anull && bnull;
	if (anull || bnull)
		return anull ? b : a;
	cmp = DatumGetInt32(DirectFunctionCall2(numeric_cmp, a, b));
	return (greatest ? cmp >= 0 : cmp <= 0) ? a : b;
}

/*
 * Add one event to its contact's existing row of its type in
 * segment.event_stats (stats), exactly as the DO UPDATE arm of the insert
 * trigger's upsert (src/events.c) would, without a SQL statement: the row is
 * found by the primary key under the snapshot a statement takes, and updated
 * (HOT, as a rule: no indexed column changes).  A concurrent writer of the
 * same row is waited for; under READ COMMITTED the row is then looked up
 * again, as ON CONFLICT follows it to its newest version, and under
 * REPEATABLE READ and SERIALIZABLE it is the same serialization failure.
 * Returns false, having written nothing, when there is no row yet (or it
 * went meanwhile) or the fast path cannot be used: the caller's upsert does
 * it then.
 */
bool
MaintAddEventStat(Oid stats, int64 event_id, Datum type, Datum contact, Datum at,
				  Datum amount, bool amount_null)
{
	Relation	rel,
				idx;
	TupleTableSlot *old,
			   *slot;
	ScanKeyData keys[2];
	Snapshot	snap;
	CommandId	cid;
	bool		done = false;

	rel = table_open(stats, RowExclusiveLock);
	if (!StatsWritable(rel))
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}
	idx = index_open(stat_cols.pkey, AccessShareLock);
	old = table_slot_create(rel, NULL);
	slot = table_slot_create(rel, NULL);
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_TEXTEQ, type);
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, contact);

	/* what a statement does first: see this transaction's writes and what others committed */
	CommandCounterIncrement();
	cid = GetCurrentCommandId(true);
	snap = RegisterSnapshot(GetTransactionSnapshot());
	for (;;)
	{
		IndexScanDesc scan;
		bool		found;
		TM_Result	res;
		TM_FailureData tmfd;
		LockTupleMode lockmode;
		bool		update_indexes;
		bool		isnull;
		Datum		d;

		scan = index_beginscan(rel, idx, snap, 2, 0);
		index_rescan(scan, keys, 2, NULL, 0);
		found = index_getnext_slot(scan, ForwardScanDirection, old);
		index_endscan(scan);
		if (!found)
			break;

		/* the row as it is, with this event added */
		CopyRow(old, slot);
#define STAT(col) slot->tts_values[stat_cols.col - 1]
#define STATNULL(col) slot->tts_isnull[stat_cols.col - 1]
		if (STATNULL(count) || STATNULL(first_at) || STATNULL(last_at) || STATNULL(amount_count))
			break;				/* not a row the upsert made: let it decide */
		STAT(count) = Int64GetDatum(DatumGetInt64(STAT(count)) + 1);
		if (DatumGetTimestampTz(at) < DatumGetTimestampTz(STAT(first_at)))
			STAT(first_at) = at;
		if (DatumGetTimestampTz(at) > DatumGetTimestampTz(STAT(last_at)))
			STAT(last_at) = at;
		if (!amount_null)
		{
			STAT(amount_count) = Int64GetDatum(DatumGetInt64(STAT(amount_count)) + 1);
			STAT(sum_amount) = STATNULL(sum_amount) ? amount :
				DirectFunctionCall2(numeric_add, STAT(sum_amount), amount);
			STATNULL(sum_amount) = false;
			d = NumericPick(STAT(min_amount), STATNULL(min_amount), amount, false, false, &isnull);
			STAT(min_amount) = d;
			STATNULL(min_amount) = isnull;
			d = NumericPick(STAT(max_amount), STATNULL(max_amount), amount, false, true, &isnull);
			STAT(max_amount) = d;
			STATNULL(max_amount) = isnull;
		}
#undef STAT
#undef STATNULL
		ExecStoreVirtualTuple(slot);
		res = table_tuple_update(rel, &old->tts_tid, slot, cid, snap, InvalidSnapshot, true,
								 &tmfd, &lockmode, &update_indexes);
		if (res == TM_Ok)
		{
			if (update_indexes)
				InsertIndexEntries(rel, slot);
			if (event_id != 0)
			{
				stat_note.lxid = MyProc->lxid;
				stat_note.event_id = event_id;
				stat_note.relid = stats;
				stat_note.tid = slot->tts_tid;
				stat_note.old_last_at =
					DatumGetTimestampTz(slot_getattr(old, stat_cols.last_at, &isnull));
			}
			done = true;
			break;
		}
		if ((res == TM_Updated || res == TM_Deleted) && !IsolationUsesXactSnapshot())
		{
			/* a concurrent writer committed a change of the row: find its newest version */
			UnregisterSnapshot(snap);
			snap = RegisterSnapshot(GetLatestSnapshot());
			continue;
		}
		if (res == TM_Updated || res == TM_Deleted)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access due to concurrent update")));
		elog(ERROR, "segment.event_stats_insert: unexpected result %d updating an aggregate row", (int) res);
	}
	UnregisterSnapshot(snap);
	ExecDropSingleTupleTableSlot(slot);
	ExecDropSingleTupleTableSlot(old);
	index_close(idx, AccessShareLock);
	table_close(rel, NoLock);
	return done;
}

/* The event trigger handles another event: what was noted is not its. */
void
MaintForgetEventStat(void)
{
	stat_note.lxid = InvalidLocalTransactionId;
}

/*
 * Did the row trigger update the event_stats row of event event_id (in
 * stats) in place, with no other event handled since?  Then *tid is the
 * row's version it wrote (the current one unless something changed the row
 * again since: the reader checks that it sees that version) and
 * *old_last_at the row's last_at before the event.
 */
bool
MaintNotedEventStat(int64 event_id, Oid stats, ItemPointer tid, TimestampTz *old_last_at)
{
	if (stat_note.lxid != MyProc->lxid || stat_note.lxid == InvalidLocalTransactionId ||
		event_id == 0 || stat_note.event_id != event_id || stat_note.relid != stats)
		return false;
	*tid = stat_note.tid;
	*old_last_at = stat_note.old_last_at;
	return true;
}
