/*
 * queue.c — the sending worker's pass over the send queue.
 */
#include "segment.h"

#include "queue.h"

long
SegmentWorkerCycle(void)
{
	if (segment_smtp_url == NULL || segment_smtp_url[0] == '\0')
	{
		SegmentSetWorkerState(SWS_NO_SMTP, "waiting for segment.smtp_url to be set");
		return 60 * 1000L;
	}
	SegmentSetWorkerState(SWS_IDLE, "idle");
	return 60 * 1000L;
}
