/*
 * send.c — queueing mail: segment.enqueue(), segment.send() and the C entry
 * point SegmentEnqueue() that campaigns and flows use.  The message is built
 * here, once, by the MIME core (so a bad header is an error at enqueue time,
 * never at send time) and stored whole in segment.messages; the worker only
 * transmits it.
 */
#include "segment.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "core.h"
#include "mime.h"
#include "send.h"

/* The CoreAllocator of the glue: palloc in the current memory context. */
static void *
PallocAlloc(void *ctx, size_t size)
{
	return palloc(size ? size : 1);
}

static void
PallocRelease(void *ctx, void *ptr)
{
	pfree(ptr);
}

static const CoreAllocator palloc_allocator = {PallocAlloc, PallocRelease, NULL};

/* A MIME error as an ereport: header problems are bad parameters (22023). */
static void
ReportMimeError(const CoreError *err)
{
	if (err->code == CORE_ERR_OOM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while building a message")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("cannot build the message: %s", err->message),
			 strstr(err->message, "CR, LF or NUL") ?
			 errdetail("A line break in a header value could add headers of its own (header injection).") : 0));
}

/*
 * Run a statement through a plan prepared once per backend: enqueueing is
 * called once per message (campaign launches call it for every recipient).
 */
static int
RunSaved(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types, Datum *vals,
		 const char *nulls, bool read_only)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*plan = p;
	}
	return SPI_execute_plan(*plan, vals, nulls, read_only, 1);
}

/*
 * The mailto: target of List-Unsubscribe (RFC 2369): the option, else
 * segment.unsubscribe_mailto, else the From address asking to unsubscribe;
 * "none" leaves it out.
 */
static const char *
UnsubscribeMailto(const char *option, MimeText from_addr)
{
	const char *s = option ? option : segment_unsubscribe_mailto;

	if (s != NULL && strcmp(s, "none") == 0)
		return NULL;
	if (s != NULL && s[0] != '\0')
		return s;
	return psprintf("mailto:%.*s?subject=unsubscribe", (int) from_addr.len, from_addr.data);
}

/* A fresh Message-ID: 128 random bits at the sender's domain. */
static char *
NewMessageId(MimeText from_addr)
{
	uint8		rnd[16];
	char		hex[33];
	MimeText	domain = MimeAddressDomain(from_addr);
	int			i;

	if (!pg_strong_random(rnd, sizeof(rnd)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a Message-ID")));
	for (i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	return psprintf("%s@%.*s", hex, (int) domain.len, domain.data);
}

static MimeText
Text(const char *s)
{
	return MimeCString(s);
}

/* The first column of a one-row SPI result as a palloc'd string, or NULL. */
static char *
SpiString(int col)
{
	bool		isnull;

	if (SPI_processed == 0)
		return NULL;
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
	if (isnull)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);
}

/* segment._unsubscribe_link(contact, campaign): NULL when it is not configured. */
static char *
UnsubscribeUrlFor(int64 contact_id, const char *campaign)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		vals[2];
	char		nulls[2] = {' ', ' '};

	vals[0] = Int64GetDatum(contact_id);
	if (campaign)
		vals[1] = CStringGetTextDatum(campaign);
	else
		nulls[1] = 'n';
	if (RunSaved(&plan, "SELECT segment._unsubscribe_link($1, $2)", 2, types, vals, nulls,
				 false) != SPI_OK_SELECT)
		elog(ERROR, "segment._unsubscribe_link failed");
	return SpiString(1);
}

/* Is this Message-ID already on a queued or sent message? */
static bool
MessageIdTaken(const char *message_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		vals[1];

	vals[0] = CStringGetTextDatum(message_id);
	if (RunSaved(&plan, "SELECT 1 FROM segment.messages WHERE message_id = $1", 1, types, vals, NULL,
				 false) != SPI_OK_SELECT)
		elog(ERROR, "Message-ID lookup failed");
	return SPI_processed > 0;
}

int64
SegmentEnqueue(const SegmentOutgoing *o)
{
	static SPIPlanPtr lookup_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	Oid			argtypes[12];
	Datum		values[12];
	char		nulls[12];
	char	   *email;
	char	   *first_name;
	char	   *last_name;
	char	   *status;
	bool		suppressed;
	const char *from;
	CoreBuf		from_name;
	MimeText	from_addr;
	CoreError	err;
	MimeMessage m;
	MimeHeader *headers = NULL;
	CoreBuf		out;
	char	   *to_name;
	char	   *message_id;
	char	   *unsubscribe_url = NULL;
	TimestampTz now = SegmentNow();	/* the one clock: segment.clock_override */
	TimestampTz due;
	int64		id;
	int			i;
	MemoryContext caller = CurrentMemoryContext;

	/* From: given, else the setting. */
	from = o->from ? o->from : segment_from_address;
	if (from == NULL || from[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no From address: segment.from_address is empty"),
				 errhint("Set it, e.g. ALTER SYSTEM SET segment.from_address = 'Shop <news@shop.example>' and SELECT pg_reload_conf().")));
	CoreErrorClear(&err);
	CoreBufInit(&from_name, &palloc_allocator, 64);
	if (!MimeParseMailbox(Text(from), &from_name, &from_addr, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid From address: %s", err.message),
				 errhint("Use 'Name <address@domain>' or 'address@domain'.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	argtypes[0] = INT8OID;
	values[0] = Int64GetDatum(o->contact_id);
	if (RunSaved(&lookup_plan,
				 "SELECT email, first_name, last_name, status, "
				 "       segment.is_suppressed(email) "
				 "  FROM segment.contacts WHERE id = $1",
				 1, argtypes, values, NULL, false) != SPI_OK_SELECT)
		elog(ERROR, "contact lookup failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("contact %lld does not exist", (long long) o->contact_id)));
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		email = SPI_getvalue(tup, desc, 1);
		first_name = SPI_getvalue(tup, desc, 2);
		last_name = SPI_getvalue(tup, desc, 3);
		status = SPI_getvalue(tup, desc, 4);
		suppressed = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	}

	if (strcmp(status, "bounced") == 0 || strcmp(status, "complained") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("contact %lld cannot be mailed: its status is %s",
						(long long) o->contact_id, status),
				 errdetail("Mail is never sent to bounced or complained addresses, not even transactional mail.")));
	if (suppressed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("contact %lld cannot be mailed: address \"%s\" is suppressed",
						(long long) o->contact_id, email),
				 errhint("segment.unsuppress(address) removes it from the suppression list.")));
	if (o->kind == SEGMENT_MAIL_MARKETING && strcmp(status, "subscribed") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("contact %lld cannot receive marketing mail: its status is %s",
						(long long) o->contact_id, status),
				 errdetail("Marketing mail goes to subscribed contacts only.")));

	if (o->kind == SEGMENT_MAIL_MARKETING)
	{
		unsubscribe_url = o->unsubscribe_url ? pstrdup(o->unsubscribe_url)
			: UnsubscribeUrlFor(o->contact_id, o->campaign_name);
		if (unsubscribe_url == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("marketing mail needs an unsubscribe URL"),
					 errdetail("Marketing mail carries List-Unsubscribe with a one-click HTTPS URL (RFC 8058)."),
					 errhint("Pass unsubscribe_url, or configure segment.unsubscribe_url and segment.secret.")));
	}

	/* The message, built in the caller's context (it outlives SPI). */
	MemoryContextSwitchTo(caller);
	to_name = NULL;
	if (first_name || last_name)
		to_name = psprintf("%s%s%s", first_name ? first_name : "",
						   first_name && last_name ? " " : "", last_name ? last_name : "");
	if (o->message_id)
	{
		CoreErrorClear(&err);
		if (!MimeValidAddress(Text(o->message_id), &err, "Message-ID"))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid option \"message_id\": %s", err.message),
					 errhint("A Message-ID is unique-part@domain, without angle brackets.")));
		if (MessageIdTaken(o->message_id))
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("Message-ID \"%s\" is already used by another message", o->message_id),
					 errhint("Leave message_id out to get a new random one.")));
		message_id = pstrdup(o->message_id);
	}
	else
		message_id = NewMessageId(from_addr);
	due = (o->send_at != 0 && o->send_at > now) ? o->send_at : 0;

	memset(&m, 0, sizeof(m));
	m.from_name.data = from_name.data;
	m.from_name.len = from_name.len;
	m.from_addr = from_addr;
	m.to_name = Text(to_name);
	m.to_addr = Text(email);
	m.reply_to = Text(o->reply_to);
	m.subject = Text(o->subject ? o->subject : "");
	m.text = Text(o->text);
	m.html = Text(o->html);
	m.message_id = Text(message_id);
	m.date = (long long) timestamptz_to_time_t(due ? due : now);
	m.unsubscribe_url = Text(unsubscribe_url);
	m.unsubscribe_mailto = o->kind == SEGMENT_MAIL_MARKETING
		? Text(UnsubscribeMailto(o->unsubscribe_mailto, from_addr)) : Text(NULL);
	if (o->nheaders > 0)
	{
		headers = palloc(sizeof(MimeHeader) * o->nheaders);
		for (i = 0; i < o->nheaders; i++)
		{
			headers[i].name = Text(o->headers[i].name);
			headers[i].value = Text(o->headers[i].value);
		}
		m.headers = headers;
		m.nheaders = o->nheaders;
	}
	CoreBufInit(&out, &palloc_allocator, 4096);
	if (!MimeBuild(&m, &out, &err))
		ReportMimeError(&err);

	for (i = 0; i < 12; i++)
		nulls[i] = ' ';
	argtypes[0] = INT8OID;
	values[0] = Int64GetDatum(o->contact_id);
	argtypes[1] = TEXTOID;
	values[1] = CStringGetTextDatum(o->kind == SEGMENT_MAIL_MARKETING ? "marketing" : "transactional");
	argtypes[2] = TEXTOID;
	if (o->template_name)
		values[2] = CStringGetTextDatum(o->template_name);
	else
		nulls[2] = 'n';
	argtypes[3] = INT8OID;
	values[3] = Int64GetDatum(o->campaign_id);
	nulls[3] = o->campaign_id ? ' ' : 'n';
	argtypes[4] = INT8OID;
	values[4] = Int64GetDatum(o->flow_id);
	nulls[4] = o->flow_id ? ' ' : 'n';
	argtypes[5] = TEXTOID;
	if (o->variant)
		values[5] = CStringGetTextDatum(o->variant);
	else
		nulls[5] = 'n';
	argtypes[6] = TEXTOID;
	values[6] = PointerGetDatum(cstring_to_text_with_len(from_addr.data, from_addr.len));
	argtypes[7] = TEXTOID;
	values[7] = CStringGetTextDatum(email);
	argtypes[8] = TEXTOID;
	values[8] = CStringGetTextDatum(o->subject ? o->subject : "");
	argtypes[9] = TEXTOID;
	values[9] = PointerGetDatum(cstring_to_text_with_len(out.data, out.len));
	argtypes[10] = TEXTOID;
	values[10] = CStringGetTextDatum(message_id);
	argtypes[11] = TIMESTAMPTZOID;
	values[11] = TimestampTzGetDatum(due);
	nulls[11] = due ? ' ' : 'n';

	if (RunSaved(&insert_plan, "INSERT INTO segment.messages "
				 "  (contact_id, kind, template, campaign_id, flow_id, variant, "
				 "   mail_from, rcpt_to, subject, mime, message_id, next_attempt_at) "
				 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
				 "        coalesce($12, segment.now())) RETURNING id",
				 12, argtypes, values, nulls, false) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not queue the message");
	{
		bool		isnull;

		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	SegmentWakeWorkerAtCommit();
	return id;
}

/* A jsonb scalar as a C string (NULL for json null); errors name the option. */
static char *
OptionString(JsonbValue *v, const char *key)
{
	if (v->type == jbvNull)
		return NULL;
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a string", key)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static int64
OptionInt8(JsonbValue *v, const char *key)
{
	if (v->type == jbvNull)
		return 0;
	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a number", key)));
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
}

/* The "headers" option: an object of name: string value. */
static void
OptionHeaders(JsonbValue *v, SegmentOutgoing *o)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	val;
	JsonbIteratorToken tok;
	SegmentHeader *hs;
	int			n = 0;
	int			cap = 8;

	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"headers\" must be an object of header names and string values")));
	hs = palloc(sizeof(SegmentHeader) * cap);
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &val, true);
		if (val.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("header \"%s\" must have a string value", name)));
		if (n == cap)
		{
			cap *= 2;
			hs = repalloc(hs, sizeof(SegmentHeader) * cap);
		}
		hs[n].name = name;
		hs[n].value = pnstrdup(val.val.string.val, val.val.string.len);
		n++;
	}
	o->headers = hs;
	o->nheaders = n;
}

/*
 * segment.enqueue(contact_id, subject, html, text, options): build and queue
 * one message; see 50_queue.sql for the options.
 */
PG_FUNCTION_INFO_V1(segment_enqueue);
Datum
segment_enqueue(PG_FUNCTION_ARGS)
{
	SegmentOutgoing o;
	Jsonb	   *options;
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("contact_id must not be null")));
	memset(&o, 0, sizeof(o));
	o.contact_id = PG_GETARG_INT64(0);
	o.kind = SEGMENT_MAIL_TRANSACTIONAL;
	o.subject = PG_ARGISNULL(1) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(1));
	o.html = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	o.text = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));

	if (!PG_ARGISNULL(4))
	{
		options = PG_GETARG_JSONB_P(4);
		if (!JB_ROOT_IS_OBJECT(options))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("options must be a JSON object")));
		it = JsonbIteratorInit(&options->root);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			char	   *key;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(k.val.string.val, k.val.string.len);
			(void) JsonbIteratorNext(&it, &v, true);
			if (strcmp(key, "kind") == 0)
			{
				char	   *kind = OptionString(&v, key);

				if (kind && strcmp(kind, "marketing") == 0)
					o.kind = SEGMENT_MAIL_MARKETING;
				else if (kind == NULL || strcmp(kind, "transactional") != 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("option \"kind\" must be \"transactional\" or \"marketing\"")));
			}
			else if (strcmp(key, "from") == 0)
				o.from = OptionString(&v, key);
			else if (strcmp(key, "reply_to") == 0)
				o.reply_to = OptionString(&v, key);
			else if (strcmp(key, "headers") == 0)
				OptionHeaders(&v, &o);
			else if (strcmp(key, "unsubscribe_url") == 0)
				o.unsubscribe_url = OptionString(&v, key);
			else if (strcmp(key, "unsubscribe_mailto") == 0)
				o.unsubscribe_mailto = OptionString(&v, key);
			else if (strcmp(key, "campaign_id") == 0)
				o.campaign_id = OptionInt8(&v, key);
			else if (strcmp(key, "flow_id") == 0)
				o.flow_id = OptionInt8(&v, key);
			else if (strcmp(key, "variant") == 0)
				o.variant = OptionString(&v, key);
			else if (strcmp(key, "template") == 0)
				o.template_name = OptionString(&v, key);
			else if (strcmp(key, "campaign") == 0)
				o.campaign_name = OptionString(&v, key);
			else if (strcmp(key, "message_id") == 0)
				o.message_id = OptionString(&v, key);
			else if (strcmp(key, "send_at") == 0)
			{
				char	   *s = OptionString(&v, key);

				if (s)
					o.send_at = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
																		CStringGetDatum(s),
																		ObjectIdGetDatum(InvalidOid),
																		Int32GetDatum(-1)));
			}
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown option \"%s\"", key),
						 errhint("Options are kind, from, reply_to, headers, unsubscribe_url, unsubscribe_mailto, campaign_id, campaign, flow_id, variant, template, send_at and message_id.")));
		}
	}
	PG_RETURN_INT64(SegmentEnqueue(&o));
}

/*
 * segment.send(contact_id, template, extra, send_at): render a stored
 * template for the contact and queue it as transactional mail.
 */
PG_FUNCTION_INFO_V1(segment_send);
Datum
segment_send(PG_FUNCTION_ARGS)
{
	SegmentOutgoing o;
	Oid			types[3] = {TEXTOID, INT8OID, JSONBOID};
	Datum		vals[3];
	char	   *tmpl;
	MemoryContext caller = CurrentMemoryContext;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("contact_id and template must not be null")));
	memset(&o, 0, sizeof(o));
	o.contact_id = PG_GETARG_INT64(0);
	o.kind = SEGMENT_MAIL_TRANSACTIONAL;
	tmpl = text_to_cstring(PG_GETARG_TEXT_PP(1));
	o.template_name = tmpl;
	o.send_at = PG_ARGISNULL(3) ? 0 : PG_GETARG_TIMESTAMPTZ(3);

	vals[0] = PG_GETARG_DATUM(1);
	vals[1] = PG_GETARG_DATUM(0);
	vals[2] = PG_ARGISNULL(2) ? DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")) : PG_GETARG_DATUM(2);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT subject, html, text FROM segment.render_for($1, $2, $3)",
							  3, types, vals, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "segment.render_for failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("template \"%s\" rendered nothing", tmpl)));
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(caller);
		char	   *s = SPI_getvalue(tup, desc, 1);
		char	   *h = SPI_getvalue(tup, desc, 2);
		char	   *t = SPI_getvalue(tup, desc, 3);

		MemoryContextSwitchTo(spi);
		o.subject = s;
		o.html = h;
		o.text = t;
	}
	SPI_finish();
	PG_RETURN_INT64(SegmentEnqueue(&o));
}

/*
 * segment._mailto_error(target): NULL when the text can be the mailto:
 * target of List-Unsubscribe (or is "none"), else why not.
 */
PG_FUNCTION_INFO_V1(segment_mailto_error);
Datum
segment_mailto_error(PG_FUNCTION_ARGS)
{
	char	   *target = text_to_cstring(PG_GETARG_TEXT_PP(0));
	CoreError	err;

	CoreErrorClear(&err);
	if (strcmp(target, "none") == 0 ||
		MimeCheckListTarget(Text(target), "mailto:", "the mailto: target", &err))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(err.message));
}

/*
 * segment._mailbox_error(mailbox): NULL when the text is one mailbox a
 * message can carry in From or Reply-To, else why not.  Lets campaign options
 * be checked when they are stored rather than when the first mail is built.
 */
PG_FUNCTION_INFO_V1(segment_mailbox_error);
Datum
segment_mailbox_error(PG_FUNCTION_ARGS)
{
	char	   *mailbox = text_to_cstring(PG_GETARG_TEXT_PP(0));
	CoreBuf		name;
	MimeText	addr;
	CoreError	err;

	CoreErrorClear(&err);
	CoreBufInit(&name, &palloc_allocator, 64);
	if (MimeParseMailbox(Text(mailbox), &name, &addr, &err))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(err.message));
}
