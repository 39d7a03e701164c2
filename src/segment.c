/*
 * segment.c — module entry point: GUCs, shared-memory hooks, the clock.
 */
#include "segment.h"
#include "template_pg.h"
#include "rule_glue.h"

#include <float.h>

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"

#include "mime.h"
#include "queue.h"

PG_MODULE_MAGIC;

char	   *segment_database = NULL;
char	   *segment_smtp_url = NULL;
char	   *segment_smtp_username = NULL;
char	   *segment_smtp_password = NULL;
char	   *segment_from_address = NULL;
int			segment_connections = 4;
int			segment_batch_size = 200;
double		segment_max_rate = 0;
int			segment_max_attempts = 8;
int			segment_lease_timeout = 120;
char	   *segment_unsubscribe_url = NULL;
char	   *segment_unsubscribe_mailto = NULL;
char	   *segment_confirm_url = NULL;
char	   *segment_tracking_url = NULL;
char	   *segment_secret = NULL;
char	   *segment_clock_override = NULL;

/* Parsed value of segment.clock_override, recomputed when the setting changes. */
static bool clock_override_dirty = true;
static bool clock_override_set = false;
static TimestampTz clock_override_value = 0;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

/* segment.unsubscribe_mailto: empty, "none", or a mailto: URL. */
static bool
CheckUnsubscribeMailto(char **newval, void **extra, GucSource source)
{
	MimeText	t;
	CoreError	err;

	if (*newval == NULL || (*newval)[0] == '\0' || strcmp(*newval, "none") == 0)
		return true;
	t.data = *newval;
	t.len = strlen(*newval);
	CoreErrorClear(&err);
	if (MimeCheckListTarget(t, "mailto:", "segment.unsubscribe_mailto", &err))
		return true;
	GUC_check_errdetail("%s.", err.message);
	GUC_check_errhint("Use a mailto: URL such as 'mailto:unsubscribe@shop.example?subject=unsubscribe', 'none', or leave it empty for the From address.");
	return false;
}

/*
 * Reject a clock override that is not a timestamp, without throwing (check
 * hooks may run outside a transaction, e.g. while reading the config file).
 */
static bool
CheckClockOverride(char **newval, void **extra, GucSource source)
{
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (ParseDateTime(*newval, workbuf, sizeof(workbuf), field, ftype,
					  MAXDATEFIELDS, &nf) != 0 ||
#if PG_VERSION_NUM >= 160000
		DecodeDateTime(field, ftype, nf, &dtype, &tm, &fsec, &tz, NULL) != 0 ||
#else
		DecodeDateTime(field, ftype, nf, &dtype, &tm, &fsec, &tz) != 0 ||
#endif
		dtype != DTK_DATE)
	{
		GUC_check_errdetail("segment.clock_override must be a timestamp with time zone, such as '2026-01-31 09:00+00', or empty.");
		return false;
	}
	return true;
}

static void
AssignClockOverride(const char *newval, void *extra)
{
	clock_override_dirty = true;
}

/*
 * The one clock: now(), unless a superuser set segment.clock_override.
 * Every time-relative decision goes through here.
 */
TimestampTz
SegmentNow(void)
{
	if (clock_override_dirty)
	{
		clock_override_set = segment_clock_override && segment_clock_override[0];
		if (clock_override_set)
			clock_override_value = DatumGetTimestampTz(
				DirectFunctionCall3(timestamptz_in,
									CStringGetDatum(segment_clock_override),
									ObjectIdGetDatum(InvalidOid),
									Int32GetDatum(-1)));
		clock_override_dirty = false;
	}
	return clock_override_set ? clock_override_value : GetCurrentTransactionStartTimestamp();
}

PG_FUNCTION_INFO_V1(segment_now);
Datum
segment_now(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(SegmentNow());
}

/*
 * The statement sql prepared once per backend and kept in *slot: the plan
 * cache revalidates it after schema changes, so hot paths never re-parse.
 */
SPIPlanPtr
SegmentKeptPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types, int cursor_options)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	p = SPI_prepare_cursor(sql, nargs, types, cursor_options);

		if (p == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "could not keep the plan of \"%s\"", sql);
		*slot = p;
	}
	return *slot;
}

#if PG_VERSION_NUM >= 150000
static void
SegmentShmemRequestHook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	SegmentShmemRequest();
}
#endif

static void
SegmentShmemStartupHook(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	SegmentShmemInit();
}

static void
DefineGucs(void)
{
	DefineCustomStringVariable("segment.database",
							   "Database the sending worker connects to.",
							   NULL, &segment_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("segment.smtp_url",
							   "SMTP server the worker sends through (smtp:// or smtps://).",
							   "smtp:// upgrades with STARTTLS when the server offers it.",
							   &segment_smtp_url, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("segment.smtp_username",
							   "User name for SMTP AUTH; empty for none.",
							   NULL, &segment_smtp_username, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("segment.smtp_password",
							   "Password for SMTP AUTH.",
							   "Visible to superusers only.",
							   &segment_smtp_password, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("segment.from_address",
							   "Default From address, e.g. 'Shop <news@shop.example>'.",
							   NULL, &segment_from_address, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("segment.connections",
							"Number of parallel SMTP connections of the worker.",
							NULL, &segment_connections, 4, 1, 64,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("segment.batch_size",
							"Queue rows the worker claims per transaction.",
							NULL, &segment_batch_size, 200, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("segment.max_rate",
							 "Messages per second the worker sends at most; 0 means no limit.",
							 NULL, &segment_max_rate, 0, 0, 1e6,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("segment.max_attempts",
							"Delivery attempts before a temporarily failing message is given up.",
							NULL, &segment_max_attempts, 8, 1, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("segment.lease_timeout",
							"How long a claimed queue row stays leased to the worker.",
							"After a crash, rows whose lease expired are sent again.",
							&segment_lease_timeout, 120, 5, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomStringVariable("segment.unsubscribe_url",
							   "Base URL of the one-click unsubscribe endpoint.",
							   NULL, &segment_unsubscribe_url, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("segment.unsubscribe_mailto",
							   "The mailto: target listed first in List-Unsubscribe of marketing mail.",
							   "Empty: the From address with ?subject=unsubscribe; 'none': no mailto: target.",
							   &segment_unsubscribe_mailto, "",
							   PGC_SUSET, 0, CheckUnsubscribeMailto, NULL, NULL);
	DefineCustomStringVariable("segment.confirm_url",
							   "Base URL of the double opt-in confirmation endpoint.",
							   "segment.subscribe mails a link to it with ?token=...; the endpoint calls segment.confirm(token).",
							   &segment_confirm_url, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("segment.tracking_url",
							   "Base URL of the click and open tracking endpoint.",
							   "segment.track_url makes signed links to it with ?t=...; the endpoint calls segment.resolve_click(token).",
							   &segment_tracking_url, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("segment.secret",
							   "HMAC key for unsubscribe, confirmation and tracking tokens.",
							   "Visible to superusers only.",
							   &segment_secret, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("segment.clock_override",
							   "Time segment.now() returns instead of now(); empty for the real clock.",
							   "For tests and demos: moves rule windows, delays and send times without sleeping.",
							   &segment_clock_override, "",
							   PGC_SUSET, 0, CheckClockOverride, AssignClockOverride, NULL);
}

void
_PG_init(void)
{
	DefineGucs();
	TemplateDefineGucs();
	SegmentQueueDefineGucs();
	RuleInlineInit();
	/* Only after every area defined its settings: reserving drops unknown placeholders. */
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("segment");
#else
	EmitWarningsOnPlaceholders("segment");
#endif

	if (!process_shared_preload_libraries_in_progress)
		return;

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = SegmentShmemRequestHook;
#else
	SegmentShmemRequest();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = SegmentShmemStartupHook;

	SegmentRegisterLauncher();
}
