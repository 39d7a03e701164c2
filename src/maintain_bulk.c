/*
 * maintain_bulk.c — the bulk writes of whole-rule recomputation
 * (segment._recompute_all, create_segment): many membership or stage rows at
 * once, inserted the way COPY inserts them (heap multi-insert, then the index
 * entries) instead of row by row through the executor.
 *
 * What the row-by-row path would also do is done here set-wise: the foreign
 * keys of segment_members (segments, contacts) and contact_stages (contacts,
 * stages) are checked, and the referenced rows locked FOR KEY SHARE, by one
 * query per referenced table, exactly as the per-row foreign-key triggers
 * lock them (a concurrent delete of a contact waits for us, or we fail).  The
 * tables have no other insert triggers; an unexpected one is an error, not
 * something silently skipped.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

/* Rows handed to table_multi_insert at a time (as COPY's buffer). */
#define BULK_BATCH 1000

PG_FUNCTION_INFO_V1(segment_insert_members);
PG_FUNCTION_INFO_V1(segment_insert_stages);

/* Fill the column values of row i. */
typedef void (*BulkFillFn) (void *arg, int i, Datum *values, bool *nulls);

/*
 * Error unless the only insert triggers of rel are the foreign-key checks
 * (nfks of them) that the caller checks set-wise instead.
 */
static void
CheckTriggers(Relation rel, int nfks)
{
	TriggerDesc *td = rel->trigdesc;
	int			found = 0;
	int			i;

	for (i = 0; td && i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];

		if (!TRIGGER_FOR_INSERT(t->tgtype) || !t->tgenabled || t->tgenabled == TRIGGER_DISABLED)
			continue;
		if (RI_FKey_trigger_type(t->tgfoid) == RI_TRIGGER_FK)
			found++;
		else
			elog(ERROR, "segment bulk insert: unexpected insert trigger \"%s\" on %s",
				 t->tgname, RelationGetRelationName(rel));
	}
	if (found != nfks)
		elog(ERROR, "segment bulk insert: %s has %d foreign keys checked on insert, expected %d",
			 RelationGetRelationName(rel), found, nfks);
}

/*
 * Lock FOR KEY SHARE the rows of segment.<table> whose <column> is one of the
 * array's elements (distinct), as a foreign-key check does, and error unless
 * every one exists.
 */
static void
LockReferenced(const char *from, const char *table, const char *column,
			   Datum array, Oid arraytype, int64 expected)
{
	char	   *sql = psprintf("SELECT count(*) FROM (SELECT 1 FROM segment.%s r WHERE r.%s = ANY ($1)"
							   " FOR KEY SHARE OF r) x", table, column);
	Oid			types[1] = {arraytype};
	Datum		args[1] = {array};
	bool		isnull;
	int64		found;

	if (SPI_execute_with_args(sql, 1, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "segment bulk insert: foreign key check failed");
	found = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (found != expected)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("insert into table \"%s\" violates a foreign key to table \"%s\"", from, table),
				 errdetail("%lld of %lld keys are missing from table \"%s\".",
						   (long long) (expected - found), (long long) expected, table),
				 errhint("Something the rows refer to was deleted meanwhile: recompute the rule again.")));
}

/*
 * Insert n rows into segment.<table> (values from fill), with their index
 * entries, bypassing the row-level foreign-key triggers (nfks of them: the
 * caller has checked those keys).
 */
static void
BulkInsert(const char *table, int nfks, int n, BulkFillFn fill, void *arg)
{
	Oid			relid = get_relname_relid(table, get_namespace_oid("segment", false));
	Relation	rel;
	AclResult	acl;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slots[BULK_BATCH];
	BulkInsertState bistate;
	CommandId	cid = GetCurrentCommandId(true);
	int			i,
				done;

	if (!OidIsValid(relid))
		elog(ERROR, "segment bulk insert: no table segment.%s", table);
	rel = table_open(relid, RowExclusiveLock);
	acl = pg_class_aclcheck(relid, GetUserId(), ACL_INSERT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, RelationGetRelationName(rel));
	CheckTriggers(rel, nfks);

	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	for (i = 0; i < BULK_BATCH; i++)
		slots[i] = MakeSingleTupleTableSlot(RelationGetDescr(rel), table_slot_callbacks(rel));
	bistate = GetBulkInsertState();

	for (done = 0; done < n;)
	{
		int			nb = Min(BULK_BATCH, n - done);

		for (i = 0; i < nb; i++)
		{
			TupleTableSlot *slot = slots[i];

			ExecClearTuple(slot);
			fill(arg, done + i, slot->tts_values, slot->tts_isnull);
			ExecStoreVirtualTuple(slot);
			if (rel->rd_att->constr)
				ExecConstraints(rri, slot, estate);
		}
		table_multi_insert(rel, slots, nb, cid, 0, bistate);
		for (i = 0; i < nb; i++)
		{
			List	   *recheck;

			ResetPerTupleExprContext(estate);
			recheck = ExecInsertIndexTuples(rri, slots[i], estate, false, false, NULL, NIL);
			list_free(recheck);
		}
		done += nb;
		CHECK_FOR_INTERRUPTS();
	}

	FreeBulkInsertState(bistate);
	table_finish_bulk_insert(rel, 0);
	for (i = 0; i < BULK_BATCH; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
}

/* The elements of a bigint[] without NULLs; error on a NULL or a repeat. */
static int64 *
DistinctIds(ArrayType *arr, int *n)
{
	Datum	   *d;
	bool	   *nulls;
	int64	   *ids;
	int			i;

	deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d, &nulls, n);
	ids = palloc(sizeof(int64) * (*n + 1));
	for (i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							errmsg("contact ids must not be NULL")));
		ids[i] = DatumGetInt64(d[i]);
		if (i > 0 && ids[i] <= ids[i - 1])
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("contact ids must be in increasing order")));
	}
	return ids;
}

typedef struct MembersRows
{
	int64		segment_id;
	int64	   *ids;
	TimestampTz since;
} MembersRows;

static void
FillMember(void *arg, int i, Datum *values, bool *nulls)
{
	MembersRows *r = (MembersRows *) arg;

	values[0] = Int64GetDatum(r->segment_id);
	values[1] = Int64GetDatum(r->ids[i]);
	values[2] = TimestampTzGetDatum(r->since);
	nulls[0] = nulls[1] = nulls[2] = false;
}

/*
 * segment._insert_members(segment_id bigint, contact_ids bigint[], since
 * timestamptz): add these contacts (increasing ids, none a member yet) to the
 * segment, in bulk.  Change rows are the caller's.
 */
Datum
segment_insert_members(PG_FUNCTION_ARGS)
{
	MembersRows r;
	int			n;
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	Datum		sid = PG_GETARG_DATUM(0);

	r.segment_id = PG_GETARG_INT64(0);
	r.since = PG_GETARG_TIMESTAMPTZ(2);
	r.ids = DistinctIds(arr, &n);
	if (n == 0)
		PG_RETURN_VOID();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	LockReferenced("segment_members", "segments", "id",
				   PointerGetDatum(construct_array(&sid, 1, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
				   INT8ARRAYOID, 1);
	LockReferenced("segment_members", "contacts", "id", PointerGetDatum(arr), INT8ARRAYOID, n);
	SPI_finish();
	BulkInsert("segment_members", 2, n, FillMember, &r);
	PG_RETURN_VOID();
}

typedef struct StagesRows
{
	int64	   *ids;
	Datum	   *stages;
	TimestampTz since;
} StagesRows;

static void
FillStage(void *arg, int i, Datum *values, bool *nulls)
{
	StagesRows *r = (StagesRows *) arg;

	values[0] = Int64GetDatum(r->ids[i]);
	values[1] = r->stages[i];
	values[2] = TimestampTzGetDatum(r->since);
	nulls[0] = nulls[1] = nulls[2] = false;
}

/*
 * segment._insert_stages(contact_ids bigint[], stages text[], since
 * timestamptz): give these contacts (increasing ids, none with a stage yet)
 * their stage, in bulk.  Change rows are the caller's.
 */
Datum
segment_insert_stages(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *sarr = PG_GETARG_ARRAYTYPE_P(1);
	StagesRows	r;
	bool	   *snulls;
	int			n,
				ns,
				i;
	ArrayType  *names;
	MemoryContext outer = CurrentMemoryContext;
	Oid			argtype = TEXTARRAYOID;
	Datum		arg = PointerGetDatum(sarr);
	bool		isnull;

	r.since = PG_GETARG_TIMESTAMPTZ(2);
	r.ids = DistinctIds(arr, &n);
	deconstruct_array(sarr, TEXTOID, -1, false, TYPALIGN_INT, &r.stages, &snulls, &ns);
	if (ns != n)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("one stage per contact is needed: %d contacts, %d stages", n, ns)));
	for (i = 0; i < ns; i++)
		if (snulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							errmsg("stages must not be NULL")));
	if (n == 0)
		PG_RETURN_VOID();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* the distinct stage names, for the stages check */
	if (SPI_execute_with_args("SELECT array_agg(DISTINCT s) FROM unnest($1) s", 1,
							  &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "segment bulk insert: distinct stages failed");
	arg = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	outer = MemoryContextSwitchTo(outer);
	names = DatumGetArrayTypePCopy(arg);
	MemoryContextSwitchTo(outer);
	LockReferenced("contact_stages", "stages", "name", PointerGetDatum(names), TEXTARRAYOID,
				   ArrayGetNItems(ARR_NDIM(names), ARR_DIMS(names)));
	LockReferenced("contact_stages", "contacts", "id", PointerGetDatum(arr), INT8ARRAYOID, n);
	SPI_finish();
	BulkInsert("contact_stages", 2, n, FillStage, &r);
	pfree(names);
	PG_RETURN_VOID();
}
