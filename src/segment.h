/*
 * segment.h — glue shared by the PostgreSQL side of the extension: GUC
 * variables, the shared-memory state of the background worker, and the
 * clock.  Pure cores (rule language, templates, MIME) never include this.
 */
#ifndef SEGMENT_H
#define SEGMENT_H

#include "postgres.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

/* GUC variables (segment.c) */
extern char *segment_database;
extern char *segment_smtp_url;
extern char *segment_smtp_username;
extern char *segment_smtp_password;
extern char *segment_from_address;
extern int	segment_connections;
extern int	segment_batch_size;
extern double segment_max_rate;
extern int	segment_max_attempts;
extern int	segment_lease_timeout;
extern char *segment_unsubscribe_url;
extern char *segment_unsubscribe_mailto;
extern char *segment_confirm_url;
extern char *segment_tracking_url;
extern char *segment_secret;
extern char *segment_clock_override;

/* Restoring a dump (dump.c): errors once this backend began a restore with the triggers on. */
extern void SegmentCheckRestore(void);

/* The one clock (segment.c): segment.now() as a C call. */
extern TimestampTz SegmentNow(void);

/* What the sending worker is doing, as shown by segment.worker_status(). */
typedef enum SegmentWorkerState
{
	SWS_STOPPED = 0,
	SWS_STARTING,
	SWS_NO_DATABASE,
	SWS_NO_EXTENSION,
	SWS_NO_SMTP,
	SWS_IDLE,
	SWS_SENDING
} SegmentWorkerState;

#define SEGMENT_DETAIL_LEN 256

/* Shared state of the launcher and the sending worker (worker.c). */
typedef struct SegmentShared
{
	slock_t		mutex;
	pid_t		launcher_pid;
	pid_t		worker_pid;
	Latch	   *worker_latch;	/* set to wake the worker (queue rows committed) */
	SegmentWorkerState state;
	char		detail[SEGMENT_DETAIL_LEN];
	TimestampTz started_at;
	TimestampTz state_since;
	uint64		sent;
	uint64		failed;
	uint64		retried;
} SegmentShared;

extern SegmentShared *segment_shared;

/* segment.c: a statement prepared once per backend and kept (SPI connected). */
extern struct _SPI_plan *SegmentKeptPlan(struct _SPI_plan **slot, const char *sql,
										 int nargs, Oid *types, int cursor_options);

/* worker.c */
extern void SegmentShmemRequest(void);
extern void SegmentShmemInit(void);
extern void SegmentRegisterLauncher(void);
extern void SegmentSetWorkerState(SegmentWorkerState state, const char *detail);
extern void SegmentWakeWorkerAtCommit(void);
extern bool SegmentHoldExtension(void);
extern const char *SegmentWorkerStateName(SegmentWorkerState state);

#endif							/* SEGMENT_H */
