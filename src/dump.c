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
 */
#include "segment.h"

#include "commands/trigger.h"
#include "fmgr.h"

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
