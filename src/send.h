/*
 * send.h — queueing a message: build it with the MIME core and insert it
 * into segment.messages.  Used by segment.send() and segment.enqueue(), and
 * by campaign launch and flows.
 */
#ifndef SEGMENT_SEND_H
#define SEGMENT_SEND_H

#include "postgres.h"
#include "utils/timestamp.h"

typedef enum SegmentMailKind
{
	SEGMENT_MAIL_TRANSACTIONAL,
	SEGMENT_MAIL_MARKETING
} SegmentMailKind;

/* A custom header for SegmentOutgoing. */
typedef struct SegmentHeader
{
	const char *name;
	const char *value;
} SegmentHeader;

/* One message to queue.  NULL / 0 fields are "not given". */
typedef struct SegmentOutgoing
{
	int64		contact_id;
	SegmentMailKind kind;
	const char *subject;
	const char *html;
	const char *text;
	const char *from;			/* mailbox; NULL: segment.from_address */
	const char *reply_to;
	const SegmentHeader *headers;
	int			nheaders;
	const char *unsubscribe_url;	/* marketing; NULL: segment.unsubscribe_url() */
	const char *unsubscribe_mailto;
	int64		campaign_id;	/* 0: none */
	int64		flow_id;		/* 0: none */
	const char *variant;
	const char *template_name;
	const char *campaign_name;	/* for the unsubscribe token */
	TimestampTz send_at;		/* 0: now */
	const char *message_id;		/* left@right; NULL: a random one at the From domain */
} SegmentOutgoing;

/*
 * Check the contact may receive it, build the message and insert it; the
 * worker is woken when the transaction commits.  Returns the message id.
 * Errors: 42704 no such contact; 55000 contact bounced, complained,
 * suppressed or (marketing) not subscribed; 22023 bad From / headers /
 * header injection.
 */
extern int64 SegmentEnqueue(const SegmentOutgoing *out);

#endif							/* SEGMENT_SEND_H */
