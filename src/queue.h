/*
 * queue.h — the sending worker's unit of work on the send queue.
 */
#ifndef SEGMENT_QUEUE_H
#define SEGMENT_QUEUE_H

/*
 * One pass of the sending worker, called in its main loop once the extension
 * exists in the database.  Returns how long to sleep (ms) unless woken.
 */
extern long SegmentWorkerCycle(void);

#endif
