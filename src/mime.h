/*
 * mime.h — the MIME message builder: turns a subject, an HTML and a text
 * body, addresses and headers into one RFC 5322 message ready for SMTP DATA
 * (CRLF line ends, every line at most 998 octets, non-ASCII words as RFC 2047
 * encoded-words, bodies in quoted-printable, multipart/alternative when both
 * parts are present).  A pure core: no PostgreSQL headers; values come with
 * their length so that a NUL inside a header value can be seen and refused.
 */
#ifndef SEGMENT_MIME_H
#define SEGMENT_MIME_H

#include "core.h"

/* A string and its length; data == NULL means "absent". */
typedef struct MimeText
{
	const char *data;
	size_t		len;
} MimeText;

/* A header the caller adds (name and unstructured value). */
typedef struct MimeHeader
{
	MimeText	name;
	MimeText	value;
} MimeHeader;

typedef struct MimeMessage
{
	MimeText	from_name;		/* display name, may be absent */
	MimeText	from_addr;		/* addr-spec, required */
	MimeText	to_name;		/* display name, may be absent */
	MimeText	to_addr;		/* addr-spec, required */
	MimeText	reply_to;		/* a mailbox ("Name <a@b>" or "a@b"), may be absent */
	MimeText	subject;
	MimeText	text;			/* text/plain body, may be absent */
	MimeText	html;			/* text/html body, may be absent */
	MimeText	message_id;		/* "left@right", without angle brackets, required */
	long long	date;			/* seconds since 1970-01-01 UTC */
	/* List-Unsubscribe targets (marketing mail); each may be absent. */
	MimeText	unsubscribe_mailto; /* "mailto:..." */
	MimeText	unsubscribe_url;	/* "https://..."; adds List-Unsubscribe-Post */
	const MimeHeader *headers;
	int			nheaders;
} MimeMessage;

/* The longest line a message may hold (RFC 5322 2.1.1), without CRLF. */
#define MIME_MAX_LINE 998
/* The longest encoded-word (RFC 2047 section 2). */
#define MIME_MAX_ENCODED_WORD 75
/* The longest quoted-printable line (RFC 2045 6.7), without CRLF. */
#define MIME_MAX_QP_LINE 76

/* A MimeText over a NUL-terminated string (or absent for NULL). */
extern MimeText MimeCString(const char *s);

/*
 * Build the message into out (initialised by the caller).  On failure returns
 * false with err set: CORE_ERR_INVALID for a bad address, header name or a
 * CR, LF or NUL in a header value; CORE_ERR_OOM when the allocator failed.
 */
extern bool MimeBuild(const MimeMessage *msg, CoreBuf *out, CoreError *err);

/*
 * Split a mailbox such as 'Shop <news@shop.example>', '"Doe, J" <j@x.example>'
 * or 'news@shop.example' into display name (possibly empty) and addr-spec,
 * both pointing into the input (a quoted name keeps its quotes and escapes
 * out: name_buf receives the unquoted name).  Returns false with err set when
 * the text is not one valid mailbox.
 */
extern bool MimeParseMailbox(MimeText mailbox, CoreBuf *name_buf, MimeText *addr,
							 CoreError *err);

/*
 * Can t stand between angle brackets in List-Unsubscribe: it starts with
 * scheme ("mailto:" or "https://"), has more after it, and holds printable
 * ASCII other than '<', '>' and ','.  Errors name the target as what.
 */
extern bool MimeCheckListTarget(MimeText t, const char *scheme, const char *what, CoreError *err);

/* Is addr a plain ASCII addr-spec (local@domain) we can put in a header and an envelope? */
extern bool MimeValidAddress(MimeText addr, CoreError *err, const char *what);

/* The domain part of an addr-spec (after the last '@'), for Message-IDs. */
extern MimeText MimeAddressDomain(MimeText addr);

#endif							/* SEGMENT_MIME_H */
