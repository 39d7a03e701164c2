/*
 * queue.c — the sending worker's pass over the send queue (segment.messages).
 *
 * A pass: requeue rows whose lease expired (all leased rows on the worker's
 * first pass: only one worker runs, so they were in flight when its
 * predecessor died), claim a batch of due rows with FOR UPDATE SKIP LOCKED
 * and a lease in one transaction, transmit them (smtp.c, in the background),
 * and record every outcome in one more transaction.  Pipelined: while a batch
 * goes out, the previous one's outcomes are recorded and the next one is
 * claimed, in one transaction.  Delivery is at-least-once: a
 * message transmitted but not yet recorded when the worker dies is sent again
 * (at most two batches: the one on the wire and the one being recorded).
 */
#include "segment.h"

#include <math.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "queue.h"
#include "smtp.h"

int			segment_smtp_timeout = 30;
int			segment_retry_delay = 60;
char	   *segment_smtp_ca_file = NULL;

/* Longest wait between attempts of one message, and between passes. */
#define MAX_RETRY_DELAY_S 86400
#define MAX_IDLE_MS 60000L
/* After an error in a pass (not an SMTP failure), wait this long. */
#define ERROR_PAUSE_MS 10000L

static MemoryContext pass_cxt = NULL;
static bool recovered_at_start = false;
static long server_backoff_ms = 0;

void
SegmentQueueDefineGucs(void)
{
	DefineCustomIntVariable("segment.smtp_timeout",
							"How long the worker waits to connect to the SMTP server or for any reply.",
							"A server silent for longer counts as a connection error (the message is retried).",
							&segment_smtp_timeout, 30, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomStringVariable("segment.smtp_ca_file",
							   "File of CA certificates (PEM) that SMTP servers' certificates must chain to.",
							   "Empty: the system's certificate store.  Verification cannot be turned off.",
							   &segment_smtp_ca_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("segment.retry_delay",
							"Delay before the first retry of a temporarily failed message.",
							"Each further retry waits twice as long (at most a day), with random jitter.",
							&segment_retry_delay, 60, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
}

/*
 * Set up the sending worker process.  Each batch allocates and frees about a
 * megabyte (the claimed messages).  glibc's adaptive thresholds would first
 * map and unmap such blocks (a system call, page faults and, with the sending
 * thread, TLB shootdowns, every batch), then keep them in the heap from the
 * first time one is freed.  Fixed thresholds keep them in the heap from the
 * start: it grows to what a few batches need and stays there.
 */
void
SegmentQueueWorkerInit(void)
{
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
#endif
	SmtpInstallSignalHandlers();
}

/*
 * Set when a pass stops because the extension was dropped under it (see
 * StartTx); SegmentWorkerCycle then says so in a LOG line, not an ERROR.
 */
static bool extension_dropped = false;

/*
 * Start a transaction of the pass, holding the extension (SegmentHoldExtension)
 * until it ends.  If the extension was dropped since the main loop looked,
 * the pass ends here: the rows of what it claimed or sent are gone with the
 * extension's tables.
 */
static void
StartTx(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (!SegmentHoldExtension())
	{
		extension_dropped = true;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"segment\" was dropped")));
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
CommitTx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Run a statement through a plan prepared once per worker (planning costs
 * more than executing these short statements).  Kept plans are revalidated
 * by the plan cache, also after DROP and CREATE EXTENSION.
 */
static int
RunPlan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types, Datum *vals)
{
	return SPI_execute_plan(SegmentKeptPlan(plan, sql, nargs, types, 0), vals, NULL, false, 0);
}

/* Put leased rows back in the queue: all of them (first pass) or expired ones. */
static void
RequeueLeased(bool all)
{
	static SPIPlanPtr plan_all = NULL;
	static SPIPlanPtr plan_expired = NULL;
	int			rc;

	rc = all
		? RunPlan(&plan_all, "UPDATE segment.messages SET status = 'queued', lease_until = NULL "
				  "WHERE status = 'sending'", 0, NULL, NULL)
		: RunPlan(&plan_expired, "UPDATE segment.messages SET status = 'queued', lease_until = NULL "
				  "WHERE status = 'sending' AND lease_until < segment.now()", 0, NULL, NULL);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "requeueing leased messages failed");
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg("segment worker: requeued %llu message(s) %s",
						(unsigned long long) SPI_processed,
						all ? "left in flight by a previous worker" : "whose lease expired"),
				 errdetail("They may have been delivered already; they will be sent again (at-least-once).")));
}

/*
 * Why a claimed row must not be sent after all (the contact unsubscribed,
 * bounced or complained since the enqueue, or the address was suppressed),
 * or NULL to send it.  The same rules as at enqueue time.
 */
static const char *
RefusedAtSendTime(const char *kind, const char *contact_status, bool suppressed)
{
	if (contact_status &&
		(strcmp(contact_status, "bounced") == 0 || strcmp(contact_status, "complained") == 0))
		return psprintf("contact is %s", contact_status);
	if (strcmp(kind, "marketing") == 0 &&
		(contact_status == NULL || strcmp(contact_status, "subscribed") != 0))
		return psprintf("contact is %s", contact_status ? contact_status : "deleted");
	if (suppressed)
		return "address is suppressed";
	return NULL;
}

/*
 * Claim up to batch_size due rows (after requeueing expired leases); the jobs
 * are allocated in cxt.
 *
 * Every statement here reads or writes one table by index, so its plan does
 * not depend on statistics: a join between the due rows and the queue can be
 * planned as a nested loop over the whole backlog, quadratic in it, when the
 * statistics lag behind a bulk enqueue.  The due rows are locked (FOR UPDATE
 * SKIP LOCKED) with what eligibility needs, looked up per row; the sendable
 * ones then get their lease in one UPDATE by primary key, the refused ones
 * are cancelled one by one (rare).
 */
static SmtpJob *
ClaimBatch(int *njobs, MemoryContext cxt)
{
	static SPIPlanPtr due_plan = NULL;
	static SPIPlanPtr lease_plan = NULL;
	static SPIPlanPtr cancel_plan = NULL;
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		vals[2];
	SmtpJob    *jobs;
	Datum	   *lease_ids;
	int			nlease = 0;
	uint64		ndue;
	uint64		i;
	SPITupleTable *due;
	MemoryContext spi;

	/*
	 * The claim must walk messages_due in order and stop after batch_size
	 * rows, whatever the statistics say right after a bulk enqueue (a bitmap
	 * scan and sort would read the whole backlog for every batch).
	 */
	if (SPI_execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off",
					false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not set the claim's plan settings");
	RequeueLeased(!recovered_at_start);
	recovered_at_start = true;

	/*
	 * The suppression test is segment.is_suppressed() written out: a SQL
	 * function holding a subquery is never inlined, and calling it costs a
	 * parse and a plan per row.
	 */
	vals[0] = Int32GetDatum(segment_batch_size);
	if (RunPlan(&due_plan,
				"SELECT m.id, coalesce(m.contact_id, 0), m.attempts, m.mail_from, m.rcpt_to, m.mime, m.kind,"
				"       (SELECT c.status FROM segment.contacts c WHERE c.id = m.contact_id),"
				"       EXISTS (SELECT 1 FROM segment.suppressions s"
				"                WHERE s.address_hash = segment.address_hash(m.rcpt_to))"
				"  FROM segment.messages m"
				" WHERE m.status IN ('queued', 'retry') AND m.next_attempt_at <= segment.now()"
				" ORDER BY m.next_attempt_at, m.id LIMIT $1"
				"   FOR UPDATE SKIP LOCKED",
				1, types, vals) != SPI_OK_SELECT)
		elog(ERROR, "claiming messages failed");
	due = SPI_tuptable;
	ndue = SPI_processed;

	spi = MemoryContextSwitchTo(cxt);
	jobs = palloc0(sizeof(SmtpJob) * Max(ndue, 1));
	MemoryContextSwitchTo(spi);
	lease_ids = palloc(sizeof(Datum) * Max(ndue, 1));
	for (i = 0; i < ndue; i++)
	{
		HeapTuple	tup = due->vals[i];
		TupleDesc	desc = due->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *kind = TextDatumGetCString(SPI_getbinval(tup, desc, 7, &isnull));
		Datum		cstatus = SPI_getbinval(tup, desc, 8, &isnull);
		char	   *contact_status = isnull ? NULL : TextDatumGetCString(cstatus);
		bool		suppressed = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
		const char *refused = RefusedAtSendTime(kind, contact_status, suppressed);
		SmtpJob    *j;

		if (refused)
		{
			Oid			ctypes[2] = {INT8OID, TEXTOID};
			Datum		cvals[2];

			cvals[0] = Int64GetDatum(id);
			cvals[1] = CStringGetTextDatum(refused);
			if (RunPlan(&cancel_plan,
						"UPDATE segment.messages SET status = 'cancelled',"
						"       last_response = 'cancelled at send time: ' || $2"
						" WHERE id = $1",
						2, ctypes, cvals) != SPI_OK_UPDATE)
				elog(ERROR, "cancelling a message failed");
			continue;
		}
		lease_ids[nlease] = Int64GetDatum(id);
		spi = MemoryContextSwitchTo(cxt);
		j = &jobs[nlease++];
		j->id = id;
		j->contact_id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		j->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		j->mail_from = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
		j->rcpt_to = TextDatumGetCString(SPI_getbinval(tup, desc, 5, &isnull));
		j->data = TextDatumGetCString(SPI_getbinval(tup, desc, 6, &isnull));
		j->len = strlen(j->data);
		MemoryContextSwitchTo(spi);
	}

	if (nlease > 0)
	{
		Oid			ltypes[2] = {INT8ARRAYOID, INT4OID};
		Datum		lvals[2];

		lvals[0] = PointerGetDatum(construct_array(lease_ids, nlease, INT8OID, 8,
												   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		lvals[1] = Int32GetDatum(segment_lease_timeout);
		if (RunPlan(&lease_plan,
					"UPDATE segment.messages"
					"   SET status = 'sending', lease_until = segment.now() + $2 * interval '1 second'"
					" WHERE id = ANY ($1)",
					2, ltypes, lvals) != SPI_OK_UPDATE || SPI_processed != (uint64) nlease)
			elog(ERROR, "leasing claimed messages failed");
	}
	*njobs = nlease;
	return jobs;
}

/* Milliseconds until the next row is due or a lease expires (capped). */
static long
NextDueMs(void)
{
	bool		isnull;
	Datum		d;
	double		secs;

	if (SPI_execute("SELECT extract(epoch FROM least("
					"  (SELECT min(next_attempt_at) FROM segment.messages WHERE status IN ('queued', 'retry')),"
					"  (SELECT min(lease_until) FROM segment.messages WHERE status = 'sending'))"
					"  - segment.now())::float8",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking up the next due message failed");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return MAX_IDLE_MS;
	secs = DatumGetFloat8(d);
	/* Due but not claimable (locked by someone else): look again soon. */
	if (secs * 1000.0 < 100.0)
		return 100;
	if (secs * 1000.0 > MAX_IDLE_MS)
		return MAX_IDLE_MS;
	return (long) ceil(secs * 1000.0);
}

/* Seconds until retry number `attempt` (1-based): exponential, +-25% jitter (random() is 0..2^31-1). */
static double
RetryDelay(int attempt)
{
	double		d = segment_retry_delay * pow(2.0, Min(attempt - 1, 30));

	if (d > MAX_RETRY_DELAY_S)
		d = MAX_RETRY_DELAY_S;
	return d * (0.75 + 0.5 * ((double) random() / 2147483647.0));
}

typedef struct PassCounts
{
	int			sent;
	int			retried;
	int			failed;
	int			bounced;
	int			untried;
} PassCounts;

/* Write the outcomes of a batch, hard bounces included, in the current transaction. */
static void
RecordOutcomes(SmtpJob *jobs, int n, PassCounts *counts)
{
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *statuses = palloc(sizeof(Datum) * n);
	Datum	   *codes = palloc(sizeof(Datum) * n);
	Datum	   *responses = palloc(sizeof(Datum) * n);
	Datum	   *delays = palloc(sizeof(Datum) * n);
	Datum	   *b_contacts = palloc(sizeof(Datum) * n);
	Datum	   *b_addresses = palloc(sizeof(Datum) * n);
	Datum	   *b_responses = palloc(sizeof(Datum) * n);
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr bounce_plan = NULL;
	int			nb = 0;
	int			i;
	Oid			types[5] = {INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID};
	Datum		vals[5];

	memset(counts, 0, sizeof(*counts));
	for (i = 0; i < n; i++)
	{
		SmtpJob    *j = &jobs[i];
		const char *status;
		double		delay = 0;

		switch (j->outcome)
		{
			case SMTP_SENT:
				status = "sent";
				counts->sent++;
				break;
			case SMTP_TEMPFAIL:
				if (j->attempts + 1 >= segment_max_attempts)
				{
					status = "failed";
					counts->failed++;
				}
				else
				{
					status = "retry";
					delay = RetryDelay(j->attempts + 1);
					counts->retried++;
				}
				break;
			case SMTP_BOUNCE:
				b_contacts[nb] = Int64GetDatum(j->contact_id);
				b_addresses[nb] = CStringGetTextDatum(j->rcpt_to);
				b_responses[nb] = CStringGetTextDatum(j->response);
				nb++;
				counts->bounced++;
				/* FALLTHROUGH */
			case SMTP_PERMFAIL:
				status = "failed";
				counts->failed++;
				break;
			default:
				/* not attempted: back to the queue as it was */
				status = "queued";
				counts->untried++;
				break;
		}
		ids[i] = Int64GetDatum(j->id);
		statuses[i] = CStringGetTextDatum(status);
		codes[i] = Int32GetDatum(j->code);
		responses[i] = CStringGetTextDatum(j->response);
		delays[i] = Float8GetDatum(delay);
	}

	vals[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	vals[1] = PointerGetDatum(construct_array(statuses, n, TEXTOID, -1, false, TYPALIGN_INT));
	vals[2] = PointerGetDatum(construct_array(codes, n, INT4OID, 4, true, TYPALIGN_INT));
	vals[3] = PointerGetDatum(construct_array(responses, n, TEXTOID, -1, false, TYPALIGN_INT));
	vals[4] = PointerGetDatum(construct_array(delays, n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (RunPlan(&plan,
							  "UPDATE segment.messages m SET"
							  "  status = r.status,"
							  "  attempts = m.attempts + CASE WHEN r.status = 'queued' THEN 0 ELSE 1 END,"
							  "  next_attempt_at = CASE WHEN r.status = 'retry'"
							  "    THEN segment.now() + r.delay * interval '1 second' ELSE m.next_attempt_at END,"
							  "  lease_until = NULL,"
							  "  last_code = CASE WHEN r.status = 'queued' THEN m.last_code ELSE nullif(r.code, 0) END,"
							  "  last_response = CASE WHEN r.status = 'queued' THEN m.last_response ELSE nullif(r.response, '') END,"
							  "  sent_at = CASE WHEN r.status = 'sent' THEN segment.now() ELSE m.sent_at END"
							  " FROM unnest($1, $2, $3, $4, $5) AS r (id, status, code, response, delay)"
							  " WHERE m.id = r.id AND m.status = 'sending'",
							  5, types, vals) != SPI_OK_UPDATE)
		elog(ERROR, "recording message outcomes failed");

	if (nb > 0)
	{
		Oid			btypes[3] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
		Datum		bvals[3];

		bvals[0] = PointerGetDatum(construct_array(b_contacts, nb, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		bvals[1] = PointerGetDatum(construct_array(b_addresses, nb, TEXTOID, -1, false, TYPALIGN_INT));
		bvals[2] = PointerGetDatum(construct_array(b_responses, nb, TEXTOID, -1, false, TYPALIGN_INT));
		if (RunPlan(&bounce_plan,
								  "WITH b AS (SELECT * FROM unnest($1, $2, $3) AS b (contact_id, address, response)),"
								  " c AS (UPDATE segment.contacts c SET status = 'bounced', updated_at = segment.now()"
								  "        FROM b WHERE c.id = b.contact_id AND c.status NOT IN ('bounced', 'complained')"
								  "        RETURNING c.id) "
								  "INSERT INTO segment.suppressions (address_hash, address, reason, detail)"
								  " SELECT DISTINCT ON (segment.address_hash(address))"
								  "        segment.address_hash(address), lower(address), 'bounce', response FROM b"
								  " ON CONFLICT (address_hash) DO NOTHING",
								  3, btypes, bvals) != SPI_OK_INSERT)
			elog(ERROR, "recording hard bounces failed");
	}
}

static void
AddCounters(const PassCounts *c)
{
	if (segment_shared == NULL)
		return;
	SpinLockAcquire(&segment_shared->mutex);
	segment_shared->sent += c->sent;
	segment_shared->failed += c->failed;
	segment_shared->retried += c->retried;
	SpinLockRelease(&segment_shared->mutex);
}

/* The server could not be reached: say so, and how long we wait. */
static long
ServerDown(SmtpJob *jobs, int n)
{
	const char *why = "";
	char		detail[SEGMENT_DETAIL_LEN];
	int			i;

	for (i = 0; i < n; i++)
		if (jobs[i].outcome == SMTP_TEMPFAIL)
			why = jobs[i].response;
	server_backoff_ms = server_backoff_ms ? server_backoff_ms * 2 : 1000;
	server_backoff_ms = Min(server_backoff_ms, Min((long) segment_retry_delay * 1000L, MAX_IDLE_MS));
	snprintf(detail, sizeof(detail), "SMTP server unavailable (%s); trying again in %.0f s",
			 why, server_backoff_ms / 1000.0);
	ereport(LOG, (errmsg("segment worker: %s", detail)));
	SegmentSetWorkerState(SWS_SENDING, detail);
	return server_backoff_ms;
}

/* Record a batch's outcomes in a transaction of their own. */
static void
RecordAlone(SmtpJob *jobs, int n)
{
	PassCounts	counts;

	StartTx("recording outcomes");
	RecordOutcomes(jobs, n, &counts);
	CommitTx();
	AddCounters(&counts);
}

/*
 * One pass; returns ms to sleep.  Pipelined: while one batch is on the wire
 * (smtp.c's thread), the outcomes of the one before and the claim of the
 * next share a transaction, so the connections do not wait for the database
 * and the database does not wait for the connections.  Claiming goes on while
 * batches come full, for up to a second, then the main loop gets control back
 * (settings, extension check).  At most three batches are alive: the one
 * being recorded, the one being sent and the one claimed next, each in a
 * memory context of its own.
 */
static long
DoPass(void)
{
	MemoryContext batch_cxt[3];
	int			cur = 0;
	SmtpJob    *jobs;
	int			n;
	SmtpJob    *prev = NULL;
	int			prev_n = 0;
	bool		server_down;
	char		detail[SEGMENT_DETAIL_LEN];
	TimestampTz pass_start = GetCurrentTimestamp();
	int			i;

	for (i = 0; i < 3; i++)
		batch_cxt[i] = AllocSetContextCreate(pass_cxt, "segment worker batch", ALLOCSET_DEFAULT_SIZES);

	StartTx("claiming messages");
	jobs = ClaimBatch(&n, batch_cxt[cur]);
	if (n == 0)
	{
		long		ms = NextDueMs();

		CommitTx();
		if (ms >= MAX_IDLE_MS)
			snprintf(detail, sizeof(detail), "idle: nothing queued");
		else
			snprintf(detail, sizeof(detail), "idle: next message due in %.1f s", ms / 1000.0);
		SegmentSetWorkerState(SWS_IDLE, detail);
		return ms;
	}
	CommitTx();

	for (;;)
	{
		SmtpJob    *next_jobs = NULL;
		int			next_n = 0;
		bool		go_on;
		PassCounts	counts;
		TimestampTz t1;
		TimestampTz t2;
		TimestampTz t3;

		snprintf(detail, sizeof(detail), "sending %d message(s) over up to %d connection(s)",
				 n, segment_connections);
		SegmentSetWorkerState(SWS_SENDING, detail);
		t1 = GetCurrentTimestamp();
		SmtpSendStart(jobs, n);

		/* Meanwhile: the previous outcomes, and another batch if this one came full. */
		go_on = n == segment_batch_size && !ConfigReloadPending &&
			!InterruptPending && t1 - pass_start < USECS_PER_SEC;
		memset(&counts, 0, sizeof(counts));
		if (prev != NULL || go_on)
		{
			StartTx(go_on ? "recording outcomes and claiming messages" : "recording outcomes");
			if (prev != NULL)
				RecordOutcomes(prev, prev_n, &counts);
			if (go_on)
			{
				MemoryContextReset(batch_cxt[(cur + 1) % 3]);
				next_jobs = ClaimBatch(&next_n, batch_cxt[(cur + 1) % 3]);
			}
			CommitTx();
			AddCounters(&counts);
		}
		t2 = GetCurrentTimestamp();

		SmtpSendWait(&server_down);
		t3 = GetCurrentTimestamp();
		elog(DEBUG1, "segment worker: batch of %d sent in %.1f ms; alongside, %d outcome(s) recorded%s in %.1f ms (%d sent, %d retry, %d failed (%d bounced), %d not tried)",
			 n, (t3 - t1) / 1000.0, prev_n, go_on ? " and a batch claimed" : "",
			 (t2 - t1) / 1000.0, counts.sent, counts.retried, counts.failed, counts.bounced,
			 counts.untried);

		if (server_down)
		{
			/* This batch's outcomes; the one claimed meanwhile goes back untried. */
			StartTx("recording outcomes");
			RecordOutcomes(jobs, n, &counts);
			AddCounters(&counts);
			if (next_n > 0)
			{
				RecordOutcomes(next_jobs, next_n, &counts);
				AddCounters(&counts);
			}
			CommitTx();
			return ServerDown(jobs, n);
		}
		server_backoff_ms = 0;
		if (next_n == 0)
		{
			RecordAlone(jobs, n);
			return 0;
		}
		prev = jobs;
		prev_n = n;
		cur = (cur + 1) % 3;
		jobs = next_jobs;
		n = next_n;
	}
}

long
SegmentWorkerCycle(void)
{
	char		detail[SEGMENT_DETAIL_LEN];
	long		ms;
	MemoryContext oldcxt;

	if (!SmtpConfigured(detail, sizeof(detail)))
	{
		SmtpReset();
		SegmentSetWorkerState(SWS_NO_SMTP, detail);
		return MAX_IDLE_MS;
	}
	if (pass_cxt == NULL)
		pass_cxt = AllocSetContextCreate(TopMemoryContext, "segment worker pass",
										 ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(pass_cxt);
	oldcxt = MemoryContextSwitchTo(pass_cxt);

	PG_TRY();
	{
		ms = DoPass();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* Report, clean up, and try again later instead of dying. */
		MemoryContextSwitchTo(pass_cxt);
		edata = CopyErrorData();
		if (!extension_dropped)
			EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		SmtpReset();
		if (extension_dropped)
		{
			/* Not an error: the main loop now waits for CREATE EXTENSION. */
			ereport(LOG,
					(errmsg("segment worker: extension \"segment\" was dropped during a pass")));
			extension_dropped = false;
			ms = 0;
		}
		else
		{
			snprintf(detail, sizeof(detail), "error: %s; trying again in %ld s",
					 edata->message, ERROR_PAUSE_MS / 1000);
			SegmentSetWorkerState(SWS_IDLE, detail);
			ms = ERROR_PAUSE_MS;
		}
	}
	PG_END_TRY();

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(pass_cxt);
	return ms;
}
