/*
 * queue.h — the sending worker's unit of work on the send queue.
 */
#ifndef SEGMENT_QUEUE_H
#define SEGMENT_QUEUE_H

/* GUCs of the worker pass (queue.c) */
extern int	segment_smtp_timeout;
extern int	segment_retry_delay;
extern char *segment_smtp_ca_file;

/* Define the queue's own settings (called from _PG_init). */
extern void SegmentQueueDefineGucs(void);

/* Set up the sending worker process (signal handlers); called once at its start. */
extern void SegmentQueueWorkerInit(void);

/*
 * One pass of the sending worker, called in its main loop once the extension
 * exists in the database.  Returns how long to sleep (ms) unless woken.
 */
extern long SegmentWorkerCycle(void);

#endif
