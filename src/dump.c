/*
 * dump.c — restoring a pg_dump of the extension's tables.
 *
 * Every table of the extension is dumped (sql/install/95_dump.sql) and a dump
 * is restored verbatim with the extension's triggers off
 * (session_replication_role = replica).  Restored with the triggers on, the
 * rows loading into contacts, events and contact_tags would be maintained a
 * second time on top of their dumped copies.  The one-row table
 * segment._restore_guard tells the two apart: its dumped row is the first data
 * a restore loads, and its trigger (ENABLE ALWAYS) refuses it when the session
 * replication role is origin.  From then on this backend refuses the
 * maintenance triggers too, so the rest of such a restore fails instead of
 * computing a wrong database.
 *
 * A dump of a database whose segment.events was partitioned attaches the
 * dumped partitions to the segment.events CREATE EXTENSION made, a plain
 * table.  An event trigger sees those statements coming and makes the table
 * partitioned first (segment.convert_events_to_partitioned(true)), then the
 * parent's indexes before the partitions' indexes are attached to them.
 */
#include "segment.h"

#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"

/* Set once this backend has begun a restore with the triggers on. */
static bool restore_refused = false;

static void
RestoreRefusedError(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("a dump of extension \"segment\" must be restored with session_replication_role = replica"),
			 errdetail("Restored with the extension's triggers on, segment memberships, tags, stages, event aggregates and the change feed would be computed again on top of their dumped copies."),
			 errhint("Restore as a superuser into a new database with PGOPTIONS='-c session_replication_role=replica', for example PGOPTIONS='-c session_replication_role=replica' psql --single-transaction -v ON_ERROR_STOP=1 -f dump.sql, or the same PGOPTIONS with pg_restore --single-transaction.")));
}

/*
 * Called by the maintenance triggers once per statement: after a refused
 * restore this backend maintains nothing more.  A backend-local flag, so
 * ordinary statements pay one branch.
 */
void
SegmentCheckRestore(void)
{
	if (unlikely(restore_refused))
		RestoreRefusedError();
}

/*
 * BEFORE INSERT ON segment._restore_guard FOR EACH ROW, ENABLE ALWAYS.  The
 * table holds one row from CREATE EXTENSION on; a row inserted later comes
 * from a restore.  With the triggers off the dumped row is skipped (the one
 * CREATE EXTENSION made stays); with them on the restore is refused.
 */
PG_FUNCTION_INFO_V1(segment_restore_guard);
Datum
segment_restore_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event))
		elog(ERROR, "segment._restore_guard must be called as a BEFORE INSERT ... FOR EACH ROW trigger");
	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_ORIGIN)
	{
		restore_refused = true;
		RestoreRefusedError();
	}
	return PointerGetDatum(NULL);
}

/* An ALTER TABLE / ALTER INDEX segment.<relname> ... ATTACH PARTITION? */
static bool
IsAttachTo(AlterTableStmt *stmt, ObjectType objtype, const char *relname)
{
	ListCell   *lc;

	if (stmt->objtype != objtype || stmt->relation == NULL ||
		stmt->relation->schemaname == NULL ||
		strcmp(stmt->relation->schemaname, "segment") != 0 ||
		strcmp(stmt->relation->relname, relname) != 0)
		return false;
	foreach(lc, stmt->cmds)
	{
		if (((AlterTableCmd *) lfirst(lc))->subtype == AT_AttachPartition)
			return true;
	}
	return false;
}

/*
 * ON ddl_command_start WHEN TAG IN ('ALTER TABLE', 'ALTER INDEX'), ENABLE
 * ALWAYS.  ALTER TABLE ONLY segment.events ATTACH PARTITION ... while
 * segment.events is an empty plain table (a restore): make it partitioned.
 * ALTER INDEX segment.events_pkey ATTACH PARTITION ... while that index does
 * not exist (the same restore, later): make the parent's indexes.  Anything
 * else passes untouched, so every other ALTER TABLE pays a look at its parse
 * tree.
 */
PG_FUNCTION_INFO_V1(segment_restore_partitions);
Datum
segment_restore_partitions(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	AlterTableStmt *stmt;
	const char *check;
	const char *act;
	bool		needed;
	bool		isnull;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "segment._restore_partitions must be called as an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!IsA(trigdata->parsetree, AlterTableStmt))
		PG_RETURN_NULL();
	stmt = (AlterTableStmt *) trigdata->parsetree;
	if (IsAttachTo(stmt, OBJECT_TABLE, "events"))
	{
		/* Checked apart: the conversion drops the table a check would hold open. */
		check = "SELECT (SELECT relkind FROM pg_catalog.pg_class WHERE oid = 'segment.events'::pg_catalog.regclass) = 'r'"
			"   AND NOT EXISTS (SELECT 1 FROM segment.events)";
		act = "SELECT segment.convert_events_to_partitioned(true)";
	}
	else if (IsAttachTo(stmt, OBJECT_INDEX, "events_pkey") ||
			 IsAttachTo(stmt, OBJECT_INDEX, "events_contact_type_time") ||
			 IsAttachTo(stmt, OBJECT_INDEX, "events_type_time"))
	{
		check = "SELECT (SELECT relkind FROM pg_catalog.pg_class WHERE oid = 'segment.events'::pg_catalog.regclass) = 'p'"
			"   AND pg_catalog.to_regclass('segment.events_pkey') IS NULL";
		act = "SELECT segment._events_indexes(true)";
	}
	else
		PG_RETURN_NULL();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(check, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "segment._restore_partitions: %s failed", check);
	needed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!isnull && needed && SPI_execute(act, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "segment._restore_partitions: %s failed", act);
	SPI_finish();
	PG_RETURN_NULL();
}
