/*
 * smtp.c — the worker's SMTP client over libcurl's multi interface.
 *
 * One connection slot per segment.connections, each an easy handle in a
 * multi handle of its own that keeps the connection open between messages, so
 * a message costs MAIL, RCPT, DATA and the end of data, not a new TCP/TLS
 * session.  libcurl's SMTP (7.88) waits for the reply to the end of data in a
 * blocking call, which would stall every other transfer of a shared multi
 * handle for a round trip per message; hence one multi handle per
 * connection, each driven by a thread of its own while a batch is on the
 * wire.  The threads take the batch's messages in order from a shared
 * counter, so every connection stays busy until the batch is done.
 *
 * The batch goes out in the background (SmtpSendStart), so that the worker
 * records the previous batch and claims the next one in the database
 * meanwhile; SmtpSendWait collects it.  The threads only drive libcurl over
 * memory the main thread does not touch meanwhile: no palloc, no ereport, no
 * PostgreSQL state; they have every signal blocked, and they stop at once
 * when asked (error, settings change, exit) or on SIGTERM.  libcurl's QUIT on
 * close blocks too; to keep SIGTERM prompt even when a server stalls, we track
 * every socket libcurl opens and the SIGTERM handler shuts them down, which
 * makes any such wait return at once.
 *
 * Outcomes come from the server's last reply before any QUIT (seen through
 * the debug callback) and the command it answered: 4xx and connection errors are
 * temporary, 5xx permanent, and a 5xx to RCPT (or 550/551/553 after the
 * data) is a hard bounce.  A failure before MAIL FROM (connect, greeting,
 * TLS, AUTH) means the server is unusable: the batch stops there.
 */
#include "segment.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "miscadmin.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "queue.h"
#include "smtp.h"

/* Which command the server's next reply answers. */
typedef enum SmtpStage
{
	STAGE_CONNECT,				/* greeting, EHLO, STARTTLS, AUTH */
	STAGE_MAIL,
	STAGE_RCPT,
	STAGE_DATA,					/* DATA sent, waiting for 354 */
	STAGE_BODY					/* data sent, waiting for the final reply */
} SmtpStage;

typedef struct SmtpSlot
{
	int			index;
	CURLM	   *multi;			/* this connection's own */
	CURL	   *easy;
	pthread_t	thread;			/* while a batch is on the wire */
	char		error[256];		/* a libcurl failure in the thread, "" if none */
	SmtpJob    *job;			/* NULL when free */
	SmtpStage	stage;
	struct curl_slist rcpt;		/* one recipient, no allocation */
	char		errbuf[CURL_ERROR_SIZE];
	char		reply[256];		/* the last complete reply line */
	int			reply_code;
	bool		quitting;		/* QUIT sent: later replies say nothing about the message */
} SmtpSlot;

#define MAX_SLOTS 64
#define SOCKETS_PER_SLOT 2
#define MAX_SOCKETS (MAX_SLOTS * SOCKETS_PER_SLOT)

static bool handles_ready = false;
static SmtpSlot slots[MAX_SLOTS];
static int	nslots = 0;
static bool curl_ready = false;
static bool exit_callback_registered = false;

/* The settings the handles were made with; a change rebuilds them. */
static char *cur_url = NULL;
static char *cur_user = NULL;
static char *cur_password = NULL;
static char *cur_ca_file = NULL;
static int	cur_connections = 0;
static int	cur_timeout = 0;

/* Sockets libcurl has open, for the SIGTERM handler (-1: free); each slot's thread writes its own. */
static volatile sig_atomic_t open_sockets[MAX_SOCKETS];

/* Rate limiting: the earliest time the next transfer may start (under rate_lock). */
static TimestampTz next_start_allowed = 0;
static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * The batch on the wire.  The main thread writes jobs, njobs and max_rate
 * before starting the threads and reads the outcomes after joining them;
 * meanwhile the threads share the counters and the flags.
 */
typedef struct SmtpBatch
{
	SmtpJob    *jobs;
	int			njobs;
	double		max_rate;		/* segment.max_rate when it started */
	pg_atomic_uint32 next;		/* the next job to take */
	pg_atomic_uint32 running;	/* threads not finished yet */
	pg_atomic_uint32 server_down;	/* out: 1 once a thread found the server unusable */
	volatile bool failed;		/* a thread hit a libcurl failure: all stop */
} SmtpBatch;

static SmtpBatch batch;
static int	nthreads = 0;		/* started and not yet joined */
static volatile sig_atomic_t batch_stop = false;	/* asks the threads to stop */

/* The worker's SIGTERM: cut the SMTP sockets so no libcurl wait blocks, then die(). */
static void
SmtpSigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;
	int			i;

	batch_stop = true;
	for (i = 0; i < MAX_SOCKETS; i++)
		if (open_sockets[i] >= 0)
			shutdown((int) open_sockets[i], SHUT_RDWR);
	errno = save_errno;
	die(postgres_signal_arg);
}

void
SmtpInstallSignalHandlers(void)
{
	int			i;

	for (i = 0; i < MAX_SOCKETS; i++)
		open_sockets[i] = -1;
	pqsignal(SIGTERM, SmtpSigterm);
}

static curl_socket_t
OpenSocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
	SmtpSlot   *slot = (SmtpSlot *) clientp;
	int			fd = socket(addr->family, addr->socktype, addr->protocol);
	int			i;

	if (fd < 0)
		return CURL_SOCKET_BAD;
	for (i = slot->index * SOCKETS_PER_SLOT; i < (slot->index + 1) * SOCKETS_PER_SLOT; i++)
		if (open_sockets[i] < 0)
		{
			open_sockets[i] = fd;
			break;
		}
	return fd;
}

static int
CloseSocket(void *clientp, curl_socket_t fd)
{
	SmtpSlot   *slot = (SmtpSlot *) clientp;
	int			i;

	for (i = slot->index * SOCKETS_PER_SLOT; i < (slot->index + 1) * SOCKETS_PER_SLOT; i++)
		if (open_sockets[i] == fd)
			open_sockets[i] = -1;
	return close(fd);
}

/* Shut every SMTP socket down so that closing cannot wait on the server. */
static void
ShutdownSockets(void)
{
	int			i;

	for (i = 0; i < MAX_SOCKETS; i++)
		if (open_sockets[i] >= 0)
			shutdown((int) open_sockets[i], SHUT_RDWR);
}

/* Wait for the sending threads to finish. */
static void
JoinThreads(void)
{
	int			i;

	for (i = 0; i < nthreads; i++)
		pthread_join(slots[i].thread, NULL);
	nthreads = 0;
}

/* Stop the sending threads, if they run, and wait for them (they stop promptly). */
static void
StopThreads(void)
{
	if (nthreads == 0)
		return;
	batch_stop = true;
	ShutdownSockets();
	JoinThreads();
}

void
SmtpReset(void)
{
	int			i;

	StopThreads();
	if (!handles_ready)
		return;
	/* No polite QUIT: it would block on a stalled server. */
	ShutdownSockets();
	for (i = 0; i < nslots; i++)
	{
		if (slots[i].easy)
		{
			if (slots[i].job && slots[i].multi)
				curl_multi_remove_handle(slots[i].multi, slots[i].easy);
			curl_easy_cleanup(slots[i].easy);
		}
		if (slots[i].multi)
			curl_multi_cleanup(slots[i].multi);
		slots[i].easy = NULL;
		slots[i].multi = NULL;
		slots[i].job = NULL;
	}
	nslots = 0;
	handles_ready = false;
}

/* Free libcurl's handles however the worker exits (FATAL on SIGTERM included). */
static void
SmtpAtExit(int code, Datum arg)
{
	SmtpReset();
}

/* libcurl asks for message data: hand over the next piece of the job's text. */
static size_t
ReadJob(char *buf, size_t size, size_t nitems, void *userdata)
{
	SmtpSlot   *slot = (SmtpSlot *) userdata;
	SmtpJob    *job = slot->job;
	size_t		room = size * nitems;
	size_t		n;

	if (job == NULL)
		return 0;
	n = job->len - job->pos;
	if (n > room)
		n = room;
	memcpy(buf, job->data + job->pos, n);
	job->pos += n;
	return n;
}

/*
 * The conversation as libcurl reports it: the commands we send tell which
 * reply comes next, and each reply line is kept (the last one explains a
 * failure).
 */
static int
Debug(CURL *easy, curl_infotype type, char *data, size_t size, void *userptr)
{
	SmtpSlot   *slot = (SmtpSlot *) userptr;

	if (slot->quitting)
		return 0;
	if (type == CURLINFO_HEADER_OUT && size >= 4)
	{
		if (strncmp(data, "QUIT", 4) == 0)
			slot->quitting = true;
		else if (strncmp(data, "MAIL", 4) == 0)
			slot->stage = STAGE_MAIL;
		else if (strncmp(data, "RCPT", 4) == 0)
			slot->stage = STAGE_RCPT;
		else if (strncmp(data, "DATA", 4) == 0)
			slot->stage = STAGE_DATA;
	}
	else if (type == CURLINFO_HEADER_IN && size >= 3)
	{
		size_t		n = size;

		while (n > 0 && (data[n - 1] == '\r' || data[n - 1] == '\n'))
			n--;
		if (n >= sizeof(slot->reply))
			n = sizeof(slot->reply) - 1;
		memcpy(slot->reply, data, n);
		slot->reply[n] = '\0';
		if (data[0] >= '1' && data[0] <= '5' && data[1] >= '0' && data[1] <= '9' &&
			data[2] >= '0' && data[2] <= '9')
			slot->reply_code = (data[0] - '0') * 100 + (data[1] - '0') * 10 + (data[2] - '0');
		if (slot->stage == STAGE_DATA && slot->reply_code == 354)
			slot->stage = STAGE_BODY;
	}
	return 0;
}

bool
SmtpConfigured(char *detail, size_t size)
{
	if (segment_smtp_url == NULL || segment_smtp_url[0] == '\0')
	{
		strlcpy(detail, "waiting for segment.smtp_url to be set", size);
		return false;
	}
	if (pg_strncasecmp(segment_smtp_url, "smtp://", 7) != 0 &&
		pg_strncasecmp(segment_smtp_url, "smtps://", 8) != 0)
	{
		strlcpy(detail, "segment.smtp_url must start with smtp:// or smtps://", size);
		return false;
	}
	return true;
}

static bool
SameString(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static char *
KeepString(char *old, const char *s)
{
	if (old)
		pfree(old);
	return MemoryContextStrdup(TopMemoryContext, s ? s : "");
}

/* Make (or remake, after a settings change) the slots and their handles. */
static void
EnsureHandles(void)
{
	int			i;
	int			n;

	if (handles_ready &&
		SameString(cur_url, segment_smtp_url) && SameString(cur_user, segment_smtp_username) &&
		SameString(cur_password, segment_smtp_password) &&
		SameString(cur_ca_file, segment_smtp_ca_file) &&
		cur_connections == segment_connections && cur_timeout == segment_smtp_timeout)
		return;
	if (handles_ready)
		ereport(LOG, (errmsg("segment worker: SMTP settings changed, reconnecting")));
	SmtpReset();

	if (!curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			elog(ERROR, "curl_global_init failed");
		curl_ready = true;
	}
	if (!exit_callback_registered)
	{
		before_shmem_exit(SmtpAtExit, (Datum) 0);
		exit_callback_registered = true;
	}
	cur_url = KeepString(cur_url, segment_smtp_url);
	cur_user = KeepString(cur_user, segment_smtp_username);
	cur_password = KeepString(cur_password, segment_smtp_password);
	cur_ca_file = KeepString(cur_ca_file, segment_smtp_ca_file);
	cur_connections = segment_connections;
	cur_timeout = segment_smtp_timeout;

	handles_ready = true;
	n = Min(cur_connections, MAX_SLOTS);
	for (i = 0; i < n; i++)
	{
		SmtpSlot   *slot = &slots[i];
		CURLM	   *m = curl_multi_init();
		CURL	   *e = m ? curl_easy_init() : NULL;

		memset(slot, 0, sizeof(*slot));
		slot->index = i;
		slot->multi = m;
		slot->easy = e;
		nslots = i + 1;
		if (e == NULL)
			elog(ERROR, "could not create libcurl handles");
		curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 1L);
		curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 1L);
		curl_easy_setopt(e, CURLOPT_URL, cur_url);
#if LIBCURL_VERSION_NUM >= 0x075500
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
#endif
		if (pg_strncasecmp(cur_url, "smtp://", 7) == 0)
			curl_easy_setopt(e, CURLOPT_USE_SSL, (long) CURLUSESSL_TRY);
		if (cur_user[0])
		{
			curl_easy_setopt(e, CURLOPT_USERNAME, cur_user);
			curl_easy_setopt(e, CURLOPT_PASSWORD, cur_password);
		}
		/* TLS verification stays at libcurl's default: on. */
		if (cur_ca_file[0])
			curl_easy_setopt(e, CURLOPT_CAINFO, cur_ca_file);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long) cur_timeout);
		curl_easy_setopt(e, CURLOPT_SERVER_RESPONSE_TIMEOUT, (long) cur_timeout);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long) cur_timeout);
		curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, ReadJob);
		curl_easy_setopt(e, CURLOPT_READDATA, slot);
		curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
		curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, Debug);
		curl_easy_setopt(e, CURLOPT_DEBUGDATA, slot);
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, slot->errbuf);
		curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, OpenSocket);
		curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, slot);
		curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, CloseSocket);
		curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, slot);
		curl_easy_setopt(e, CURLOPT_PRIVATE, slot);
	}
}

/* Start a job on a free slot (sending thread); false if libcurl refuses. */
static bool
StartJob(SmtpSlot *slot, SmtpJob *job)
{
	CURL	   *e = slot->easy;
	CURLMcode	rc;

	slot->job = job;
	slot->stage = STAGE_CONNECT;
	slot->reply[0] = '\0';
	slot->reply_code = 0;
	slot->quitting = false;
	slot->errbuf[0] = '\0';
	slot->rcpt.data = (char *) job->rcpt_to;
	slot->rcpt.next = NULL;
	job->pos = 0;
	job->outcome = SMTP_UNTRIED;
	curl_easy_setopt(e, CURLOPT_MAIL_FROM, job->mail_from);
	curl_easy_setopt(e, CURLOPT_MAIL_RCPT, &slot->rcpt);
	curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t) job->len);
	rc = curl_multi_add_handle(slot->multi, e);
	if (rc != CURLM_OK)
	{
		slot->job = NULL;
		snprintf(slot->error, sizeof(slot->error), "curl_multi_add_handle failed: %s",
				 curl_multi_strerror(rc));
		return false;
	}
	return true;
}

/*
 * The server turned out unusable (connect, greeting, TLS, AUTH): the first
 * transfer to find out counts an attempt; one that finds out at the same
 * time on another connection goes back to the queue untried, like the rest
 * of the batch.
 */
static SmtpOutcome
ServerUnusable(void)
{
	return pg_atomic_exchange_u32(&batch.server_down, 1) == 0 ? SMTP_TEMPFAIL : SMTP_UNTRIED;
}

/* A transfer ended: classify it (see the file comment). */
static void
FinishJob(SmtpSlot *slot, CURLcode result)
{
	SmtpJob    *job = slot->job;
	int			code = slot->reply_code;

	curl_multi_remove_handle(slot->multi, slot->easy);
	slot->job = NULL;
	job->code = 0;
	if (result == CURLE_OK)
	{
		job->outcome = SMTP_SENT;
		job->code = code;
		strlcpy(job->response, slot->reply, sizeof(job->response));
		return;
	}
	if (code >= 400 && code <= 599)
	{
		job->code = code;
		strlcpy(job->response, slot->reply, sizeof(job->response));
		if (slot->stage == STAGE_CONNECT)
		{
			/* Greeting, EHLO, STARTTLS or AUTH refused: the server, not the message. */
			job->outcome = ServerUnusable();
		}
		else if (code < 500)
			job->outcome = SMTP_TEMPFAIL;
		else if (slot->stage == STAGE_RCPT)
			job->outcome = SMTP_BOUNCE;
		else if ((slot->stage == STAGE_DATA || slot->stage == STAGE_BODY) &&
				 (code == 550 || code == 551 || code == 553))
			job->outcome = SMTP_BOUNCE;
		else
			job->outcome = SMTP_PERMFAIL;
		return;
	}
	/* No error reply: the connection failed (refused, timed out, dropped). */
	job->outcome = slot->stage == STAGE_CONNECT ? ServerUnusable() : SMTP_TEMPFAIL;
	snprintf(job->response, sizeof(job->response), "%s",
			 slot->errbuf[0] ? slot->errbuf : curl_easy_strerror(result));
}

/*
 * May another transfer start now (segment.max_rate)?  If so, it is counted;
 * if not, ms to wait.
 */
static long
RateTake(void)
{
	TimestampTz now;
	long		wait_ms = 0;

	if (batch.max_rate <= 0)
		return 0;
	pthread_mutex_lock(&rate_lock);
	now = GetCurrentTimestamp();
	if (next_start_allowed < now)
		next_start_allowed = now;
	if (next_start_allowed > now)
		wait_ms = (long) ((next_start_allowed - now + 999) / 1000);
	else
		next_start_allowed += (TimestampTz) (USECS_PER_SEC / batch.max_rate);
	pthread_mutex_unlock(&rate_lock);
	return wait_ms;
}

/* Drive one transfer on the slot's connection to its end (or a stop). */
static bool
RunJob(SmtpSlot *slot)
{
	for (;;)
	{
		int			running;
		int			queued;
		int			numfds = 0;
		CURLMsg    *msg;
		CURLMcode	rc;

		rc = curl_multi_perform(slot->multi, &running);
		if (rc != CURLM_OK)
		{
			snprintf(slot->error, sizeof(slot->error), "curl_multi_perform failed: %s",
					 curl_multi_strerror(rc));
			return false;
		}
		while ((msg = curl_multi_info_read(slot->multi, &queued)) != NULL)
		{
			if (msg->msg == CURLMSG_DONE && slot->job != NULL)
			{
				FinishJob(slot, msg->data.result);
				return true;
			}
		}
		if (batch_stop || batch.failed)
			return false;

		/*
		 * Short waits: the stop flag is looked at about every 100 ms.
		 * curl_multi_wait polls this connection's socket alone (several times
		 * per message), where curl_multi_poll adds the multi handle's wake-up
		 * socket pair, which nobody uses here.  It returns at once when
		 * libcurl has no socket to wait on (say, while a name resolves):
		 * then curl_multi_poll, which sleeps, so that the thread never spins.
		 */
		rc = curl_multi_wait(slot->multi, NULL, 0, 100, &numfds);
		if (rc == CURLM_OK && numfds == 0)
			rc = curl_multi_poll(slot->multi, NULL, 0, 10, NULL);
		if (rc != CURLM_OK)
		{
			snprintf(slot->error, sizeof(slot->error), "waiting for the SMTP server failed: %s",
					 curl_multi_strerror(rc));
			return false;
		}
	}
}

/*
 * A sending thread: take the batch's next message, transmit it over this
 * slot's connection, and again, until none is left, the server is down, or
 * the threads are asked to stop.  Only libcurl and plain C here.  The last
 * thread to finish wakes the main thread.
 */
static void *
SlotThread(void *arg)
{
	SmtpSlot   *slot = (SmtpSlot *) arg;

	while (!batch_stop && !batch.failed && pg_atomic_read_u32(&batch.server_down) == 0)
	{
		uint32		next = pg_atomic_fetch_add_u32(&batch.next, 1);
		long		wait_ms;

		if (next >= (uint32) batch.njobs)
			break;
		/* segment.max_rate: wait for this message's turn (it stays untried if told to stop). */
		while ((wait_ms = RateTake()) > 0 && !batch_stop)
			pg_usleep(Min(wait_ms, 100L) * 1000L);
		if (batch_stop)
			break;
		if (!StartJob(slot, &batch.jobs[next]) || !RunJob(slot))
		{
			if (slot->error[0] != '\0')
				batch.failed = true;
			break;
		}
	}
	if (pg_atomic_sub_fetch_u32(&batch.running, 1) == 0)
		SetLatch(MyLatch);
	return NULL;
}

void
SmtpSendStart(SmtpJob *jobs, int njobs)
{
	sigset_t	all;
	sigset_t	old;
	int			n;
	int			i;
	int			rc = 0;

	Assert(nthreads == 0);
	EnsureHandles();
	batch.jobs = jobs;
	batch.njobs = njobs;
	batch.max_rate = segment_max_rate;
	pg_atomic_init_u32(&batch.server_down, 0);
	batch.failed = false;
	batch_stop = false;
	n = Min(nslots, njobs);
	pg_atomic_init_u32(&batch.next, 0);
	pg_atomic_init_u32(&batch.running, (uint32) n);
	for (i = 0; i < n; i++)
		slots[i].error[0] = '\0';

	/* The threads inherit a mask blocking every signal: they go to the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < n; i++)
	{
		rc = pthread_create(&slots[i].thread, NULL, SlotThread, &slots[i]);
		if (rc != 0)
			break;
		nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
	{
		SmtpReset();
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start an SMTP sending thread: %s", strerror(rc))));
	}
}

void
SmtpSendWait(bool *server_down)
{
	int			i;

	*server_down = false;
	if (nthreads == 0)
		return;
	while (pg_atomic_read_u32(&batch.running) > 0)
	{
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	JoinThreads();
	for (i = 0; i < nslots; i++)
		if (slots[i].error[0] != '\0')
		{
			char		error[256];

			strlcpy(error, slots[i].error, sizeof(error));
			SmtpReset();
			elog(ERROR, "%s", error);
		}
	*server_down = pg_atomic_read_u32(&batch.server_down) != 0;
}
