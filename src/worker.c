/*
 * worker.c — the launcher and the sending worker.
 *
 * The launcher is a static background worker connected to no database: it
 * can read the shared catalog pg_database, so it waits (quietly, one log
 * line) for segment.database to exist, then starts the sending worker as a
 * dynamic background worker connected to it, and starts it again whenever it
 * stops (pg_terminate_backend, the database being dropped and re-created).
 * The sending worker waits for CREATE EXTENSION segment, then runs its loop.
 */
#include "segment.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include <signal.h>

#include "queue.h"

PGDLLEXPORT void segment_launcher_main(Datum arg);
PGDLLEXPORT void segment_worker_main(Datum arg);

SegmentShared *segment_shared = NULL;

/* Seconds between checks while waiting for the database or the extension. */
#define SEGMENT_POLL_SECONDS 5

/*
 * Seconds between runs of the flows and the A/B decisions by the sending
 * worker, and after one failed.
 */
#define AUTOMATION_SECONDS 5
#define AUTOMATION_ERROR_SECONDS 60

static bool wake_at_commit = false;
static bool xact_callback_registered = false;

void
SegmentShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(SegmentShared)));
}

void
SegmentShmemInit(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	segment_shared = ShmemInitStruct("segment", sizeof(SegmentShared), &found);
	if (!found)
	{
		memset(segment_shared, 0, sizeof(SegmentShared));
		SpinLockInit(&segment_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

const char *
SegmentWorkerStateName(SegmentWorkerState state)
{
	switch (state)
	{
		case SWS_STOPPED:
			return "stopped";
		case SWS_STARTING:
			return "starting";
		case SWS_NO_DATABASE:
			return "waiting for database";
		case SWS_NO_EXTENSION:
			return "waiting for extension";
		case SWS_NO_SMTP:
			return "waiting for smtp_url";
		case SWS_IDLE:
			return "idle";
		case SWS_SENDING:
			return "sending";
	}
	return "unknown";
}

/* Publish what the worker does, for segment.worker_status() and pg_stat_activity. */
void
SegmentSetWorkerState(SegmentWorkerState state, const char *detail)
{
	if (segment_shared == NULL)
		return;
	SpinLockAcquire(&segment_shared->mutex);
	if (segment_shared->state != state)
		segment_shared->state_since = GetCurrentTimestamp();
	segment_shared->state = state;
	strlcpy(segment_shared->detail, detail ? detail : "", SEGMENT_DETAIL_LEN);
	SpinLockRelease(&segment_shared->mutex);
	pgstat_report_activity(state == SWS_SENDING ? STATE_RUNNING : STATE_IDLE,
						   detail ? detail : SegmentWorkerStateName(state));
}

static void
SegmentXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && wake_at_commit && segment_shared)
	{
		Latch	   *latch;

		SpinLockAcquire(&segment_shared->mutex);
		latch = segment_shared->worker_latch;
		SpinLockRelease(&segment_shared->mutex);
		if (latch)
			SetLatch(latch);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		wake_at_commit = false;
}

/*
 * Ask for the worker to be woken when the current transaction commits (new
 * queue rows become visible to it then, not before).
 */
void
SegmentWakeWorkerAtCommit(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(SegmentXactCallback, NULL);
		xact_callback_registered = true;
	}
	wake_at_commit = true;
}

PG_FUNCTION_INFO_V1(segment_wake_worker);
Datum
segment_wake_worker(PG_FUNCTION_ARGS)
{
	SegmentWakeWorkerAtCommit();
	PG_RETURN_VOID();
}

void
SegmentRegisterLauncher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "segment", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "segment_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "segment launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "segment launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* Is a sending worker alive (started by us or by a previous launcher)? */
static bool
SenderAlive(void)
{
	pid_t		pid;

	SpinLockAcquire(&segment_shared->mutex);
	pid = segment_shared->worker_pid;
	SpinLockRelease(&segment_shared->mutex);
	return pid != 0 && kill(pid, 0) == 0;
}

static bool
StartSender(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "segment", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "segment_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "segment worker", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "segment worker", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(LOG,
				(errmsg("segment launcher could not start the sending worker"),
				 errhint("Raise max_worker_processes.")));
		return false;
	}
	return WaitForBackgroundWorkerStartup(handle, &pid) == BGWH_STARTED;
}

/*
 * Look up segment.database in the shared catalog; InvalidOid when missing.
 * A heap scan: with no database selected, catalog indexes cannot be opened.
 */
static Oid
LookupSegmentDatabase(void)
{
	Oid			dboid = InvalidOid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), segment_database) == 0)
		{
			dboid = db->oid;
			break;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dboid;
}

void
segment_launcher_main(Datum arg)
{
	bool		reported_missing = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	SpinLockAcquire(&segment_shared->mutex);
	segment_shared->launcher_pid = MyProcPid;
	SpinLockRelease(&segment_shared->mutex);
	pgstat_report_activity(STATE_IDLE, "watching segment.database");

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (!SenderAlive())
		{
			Oid			dboid = LookupSegmentDatabase();

			if (!OidIsValid(dboid))
			{
				if (!reported_missing)
					ereport(LOG,
							(errmsg("segment worker: database \"%s\" named by segment.database does not exist; waiting for it",
									segment_database),
							 errhint("Create the database, or set segment.database and restart the server.")));
				reported_missing = true;
				SegmentSetWorkerState(SWS_NO_DATABASE, "waiting for the database named by segment.database");
			}
			else
			{
				if (reported_missing)
					ereport(LOG, (errmsg("segment worker: database \"%s\" found; starting", segment_database)));
				reported_missing = false;
				StartSender(dboid);
			}
		}

		/* A missing database is looked for every second: the check is cheap. */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 reported_missing ? 1000L : SEGMENT_POLL_SECONDS * 1000L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

static void
SenderShutdown(int code, Datum arg)
{
	SpinLockAcquire(&segment_shared->mutex);
	if (segment_shared->worker_pid == MyProcPid)
	{
		segment_shared->worker_pid = 0;
		segment_shared->worker_latch = NULL;
		segment_shared->state = SWS_STOPPED;
		segment_shared->state_since = GetCurrentTimestamp();
		segment_shared->detail[0] = '\0';
	}
	SpinLockRelease(&segment_shared->mutex);
}

/* Is the extension created in our database?  Called in a transaction. */
static bool
ExtensionPresent(void)
{
	return OidIsValid(get_extension_oid("segment", true));
}

/*
 * In a transaction of the worker: is the extension there, and keep it there
 * until the transaction ends.  DROP EXTENSION locks the extension object
 * exclusively before it drops any member, so a share lock on it keeps the
 * worker's statements from meeting a half-dropped schema (a relation or
 * function gone between two statements, or between the presence check and
 * the statement).  Taking the lock reads the invalidations, so the lookup
 * after it sees a drop that committed while we waited; the extension
 * dropped and created again meanwhile is another extension and counts as
 * gone for this transaction.
 */
bool
SegmentHoldExtension(void)
{
	Oid			ext = get_extension_oid("segment", true);

	if (!OidIsValid(ext))
		return false;
	LockDatabaseObject(ExtensionRelationId, ext, 0, AccessShareLock);
	return get_extension_oid("segment", true) == ext;
}

/*
 * Move triggered flows and decide due A/B tests (segment.run_flows() and
 * segment.run_campaigns()) every few seconds, so that a flow mails and a
 * test's winner goes out without anyone scheduling them; pg_cron calls of the
 * same functions stay safe alongside.  Each in a transaction of its own (a
 * failing one does not hold up the other), never waiting long on a lock a
 * session holds (sending must not stall); an error is logged and the next
 * try waits longer.  Returns the ms until the next run.
 */
static long
RunAutomations(void)
{
	static const char *const statements[] = {
		"SELECT count(*) FROM segment.run_flows()",
		"SELECT count(*) FROM segment.run_campaigns()"
	};
	static TimestampTz next_run = 0;
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext cxt = CurrentMemoryContext;
	int			i;

	if (now < next_run)
		return (long) ((next_run - now) / 1000) + 1;
	next_run = TimestampTzPlusMilliseconds(now, AUTOMATION_SECONDS * 1000);

	for (i = 0; i < lengthof(statements); i++)
	{
		PG_TRY();
		{
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			/* Dropped since the main loop looked: nothing to run. */
			if (SegmentHoldExtension())
			{
				if (SPI_connect() != SPI_OK_CONNECT)
					elog(ERROR, "SPI_connect failed");
				PushActiveSnapshot(GetTransactionSnapshot());
				pgstat_report_activity(STATE_RUNNING, statements[i]);
				if (SPI_execute("SET LOCAL lock_timeout = '1s'", false, 0) != SPI_OK_UTILITY ||
					SPI_execute(statements[i], false, 0) != SPI_OK_SELECT)
					elog(ERROR, "\"%s\" failed", statements[i]);
				SPI_finish();
				PopActiveSnapshot();
			}
			CommitTransactionCommand();
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			next_run = TimestampTzPlusMilliseconds(now, AUTOMATION_ERROR_SECONDS * 1000);
		}
		PG_END_TRY();
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	/* A run longer than the interval: the next one is due at once. */
	return Max((long) ((next_run - GetCurrentTimestamp()) / 1000) + 1, 0L);
}

void
segment_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	bool		claimed;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	SegmentQueueWorkerInit();	/* SIGTERM also cuts SMTP connections */
	BackgroundWorkerUnblockSignals();

	/* Only one sending worker at a time, whoever started it. */
	SpinLockAcquire(&segment_shared->mutex);
	claimed = segment_shared->worker_pid == 0 || kill(segment_shared->worker_pid, 0) != 0;
	if (claimed)
	{
		segment_shared->worker_pid = MyProcPid;
		segment_shared->worker_latch = MyLatch;
		segment_shared->started_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&segment_shared->mutex);
	if (!claimed)
		proc_exit(0);
	before_shmem_exit(SenderShutdown, (Datum) 0);

	SegmentSetWorkerState(SWS_STARTING, "connecting");
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	for (;;)
	{
		bool		present;
		long		timeout_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		present = ExtensionPresent();
		CommitTransactionCommand();

		if (!present)
		{
			SegmentSetWorkerState(SWS_NO_EXTENSION, "waiting for CREATE EXTENSION segment");
			timeout_ms = SEGMENT_POLL_SECONDS * 1000L;
		}
		else
		{
			long		automation_ms = RunAutomations();

			timeout_ms = SegmentWorkerCycle();
			timeout_ms = Min(timeout_ms, automation_ms);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

PG_FUNCTION_INFO_V1(segment_worker_status);
Datum
segment_worker_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[9];
	bool		nulls[9];
	SegmentShared snap;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, 0, sizeof(nulls));
	if (segment_shared == NULL)
	{
		memset(&snap, 0, sizeof(snap));
		strlcpy(snap.detail, "segment is not in shared_preload_libraries", SEGMENT_DETAIL_LEN);
	}
	else
	{
		SpinLockAcquire(&segment_shared->mutex);
		memcpy(&snap, segment_shared, sizeof(snap));
		SpinLockRelease(&segment_shared->mutex);
	}

	values[0] = CStringGetTextDatum(SegmentWorkerStateName(snap.state));
	values[1] = CStringGetTextDatum(snap.detail);
	nulls[2] = snap.worker_pid == 0;
	values[2] = Int32GetDatum(snap.worker_pid);
	nulls[3] = snap.launcher_pid == 0;
	values[3] = Int32GetDatum(snap.launcher_pid);
	nulls[4] = snap.started_at == 0;
	values[4] = TimestampTzGetDatum(snap.started_at);
	nulls[5] = snap.state_since == 0;
	values[5] = TimestampTzGetDatum(snap.state_since);
	values[6] = Int64GetDatum((int64) snap.sent);
	values[7] = Int64GetDatum((int64) snap.failed);
	values[8] = Int64GetDatum((int64) snap.retried);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
