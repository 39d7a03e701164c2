/*
 * smtp.h — the worker's SMTP client: libcurl's multi interface over
 * segment.connections parallel connections, each kept open and reused for
 * many messages.
 */
#ifndef SEGMENT_SMTP_H
#define SEGMENT_SMTP_H

#include "postgres.h"

typedef enum SmtpOutcome
{
	SMTP_UNTRIED = 0,			/* not attempted (server down, stopping) */
	SMTP_SENT,					/* accepted (2xx after end of data) */
	SMTP_TEMPFAIL,				/* 4xx or connection error: try again later */
	SMTP_PERMFAIL,				/* 5xx: give up */
	SMTP_BOUNCE					/* 5xx naming the recipient: give up, suppress */
} SmtpOutcome;

/* One message to transmit and, afterwards, what became of it. */
typedef struct SmtpJob
{
	int64		id;
	int64		contact_id;		/* 0 when none */
	int			attempts;		/* attempts before this one */
	const char *mail_from;
	const char *rcpt_to;
	const char *data;
	size_t		len;
	size_t		pos;			/* bytes handed to libcurl so far */
	/* outcome */
	SmtpOutcome outcome;
	int			code;			/* SMTP reply code, 0 if none */
	char		response[256];	/* reply text or connection error */
} SmtpJob;

/*
 * Is the SMTP setting usable?  If not, detail says why (for worker_status).
 */
extern bool SmtpConfigured(char *detail, size_t size);

/*
 * Send the jobs over the configured connections, in two halves: start
 * transmitting them in the background and return at once (the jobs must stay
 * untouched until the wait returns), then wait for every outcome
 * (CHECK_FOR_INTERRUPTS meanwhile).  One batch at a time.  Stops starting new
 * transfers when the server cannot be reached (*server_down set, the rest
 * SMTP_UNTRIED).  Respects segment.max_rate.
 */
extern void SmtpSendStart(SmtpJob *jobs, int njobs);
extern void SmtpSendWait(bool *server_down);

/* Stop the batch on the wire, drop every transfer and connection (settings changed, error, exit). */
extern void SmtpReset(void);

/* Install the worker's SIGTERM handler (aborts SMTP sockets, then die()). */
extern void SmtpInstallSignalHandlers(void);

#endif							/* SEGMENT_SMTP_H */
