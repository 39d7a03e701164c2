/*
 * events.c — the hot path of event tracking: segment.track(contact_id, ...)
 * and the row trigger that adds each inserted event to segment.event_stats.
 * They are C because they run once per event: track runs a cached SPI plan;
 * the trigger updates an existing aggregate row directly (maintain_write.c,
 * MaintAddEventStat) and runs its cached upsert only for a contact's first
 * event of a type.
 */
#include "segment.h"

#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"

#include "maintain.h"

static SPIPlanPtr track_plan = NULL;
static SPIPlanPtr stats_plan = NULL;

/* Event types are lower-case identifiers, so the rule language can name them. */
static void
CheckEventType(text *type)
{
	const char *s = VARDATA_ANY(type);
	int			len = VARSIZE_ANY_EXHDR(type);
	bool		ok = len >= 1 && len <= 63 && s[0] >= 'a' && s[0] <= 'z';
	int			i;

	for (i = 1; ok && i < len; i++)
		ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid event type: %s", quote_literal_cstr(text_to_cstring(type))),
				 errdetail("Event types are lower-case letters, digits and underscores, starting with a letter."),
				 errhint("Use a name such as 'purchase' or 'cart_add'.")));
}

/*
 * segment.track(contact_id, type, properties, amount, occurred_at) → event id.
 */
PG_FUNCTION_INFO_V1(segment_track);
Datum
segment_track(PG_FUNCTION_ARGS)
{
	Oid			argtypes[5] = {INT8OID, TEXTOID, JSONBOID, NUMERICOID, TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	SPIPlanPtr	plan;
	int64		event_id = 0;
	bool		found;
	bool		isnull;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("contact_id must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid event type: NULL"),
				 errhint("Use a name such as 'purchase' or 'cart_add'.")));
	CheckEventType(PG_GETARG_TEXT_PP(1));
	if (PG_ARGISNULL(2) || !JB_ROOT_IS_OBJECT(PG_GETARG_JSONB_P(2)) || JB_ROOT_IS_SCALAR(PG_GETARG_JSONB_P(2)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event properties must be a JSON object"),
				 errhint("Pass properties as an object, such as {\"product_id\": \"sku-1\"}.")));

	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	values[3] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	nulls[3] = PG_ARGISNULL(3) ? 'n' : ' ';
	values[4] = PG_ARGISNULL(4) ? TimestampTzGetDatum(SegmentNow()) : PG_GETARG_DATUM(4);

	SPI_connect();
	plan = SegmentKeptPlan(&track_plan,
					"INSERT INTO segment.events (contact_id, type, properties, amount, occurred_at) "
					"SELECT c.id, $2, $3, $4, $5 FROM segment.contacts c WHERE c.id = $1 "
					"RETURNING id",
					5, argtypes, 0);
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "segment.track: insert failed");
	found = SPI_processed == 1;
	if (found)
		event_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();

	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("contact " INT64_FORMAT " does not exist", PG_GETARG_INT64(0)),
				 errhint("Create it first with segment.upsert_contact(email).")));
	PG_RETURN_INT64(event_id);
}

/*
 * AFTER INSERT row trigger on segment.events: the event added to its
 * (type, contact) aggregate row.  When the row exists (every event but a
 * contact's first of its type) it is updated in place, as the upsert's DO
 * UPDATE would, without a SQL statement; otherwise the upsert makes it.  The
 * row's update (or the lock of ON CONFLICT DO UPDATE) serialises concurrent
 * writers of the same contact, so counts stay exact.
 */
PG_FUNCTION_INFO_V1(segment_event_stats_insert);
Datum
segment_event_stats_insert(PG_FUNCTION_ARGS)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;
	Oid			argtypes[4] = {TEXTOID, INT8OID, TIMESTAMPTZOID, NUMERICOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	TupleDesc	desc;
	HeapTuple	tuple;
	bool		isnull;
	int			i;
	/* the plan's four parameters, then the event's id */
	static const char *const columns[5] = {"type", "contact_id", "occurred_at", "amount", "id"};
	SPIPlanPtr	plan;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trig->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trig->tg_event) || !TRIGGER_FIRED_BY_INSERT(trig->tg_event))
		elog(ERROR, "segment.event_stats_insert must be an AFTER INSERT row trigger");

	desc = trig->tg_relation->rd_att;
	tuple = trig->tg_trigtuple;
	for (i = 0; i < 5; i++)
	{
		int			attno = SPI_fnumber(desc, columns[i]);

		if (attno <= 0)
			elog(ERROR, "segment.event_stats_insert: column \"%s\" not found", columns[i]);
		values[i] = SPI_getbinval(tuple, desc, attno, &isnull);
		nulls[i] = isnull ? 'n' : ' ';
	}

	MaintForgetEventStat();
	if (nulls[0] == ' ' && nulls[1] == ' ' && nulls[2] == ' ')
	{
		Oid			stats = get_relname_relid("event_stats", get_namespace_oid("segment", false));

		/* the event's id lets its statement's maintenance find the row (MaintNotedEventStat) */
		if (OidIsValid(stats) &&
			MaintAddEventStat(stats, nulls[4] == 'n' ? 0 : DatumGetInt64(values[4]),
							  values[0], values[1], values[2], values[3], nulls[3] == 'n'))
			return PointerGetDatum(NULL);
	}

	SPI_connect();
	plan = SegmentKeptPlan(&stats_plan,
					"INSERT INTO segment.event_stats AS s "
					"(type, contact_id, count, first_at, last_at, amount_count, sum_amount, min_amount, max_amount) "
					"VALUES ($1, $2, 1, $3, $3, ($4 IS NOT NULL)::int, $4, $4, $4) "
					"ON CONFLICT (type, contact_id) DO UPDATE SET "
					"count = s.count + 1, "
					"first_at = least(s.first_at, excluded.first_at), "
					"last_at = greatest(s.last_at, excluded.last_at), "
					"amount_count = s.amount_count + excluded.amount_count, "
					"sum_amount = CASE WHEN excluded.sum_amount IS NULL THEN s.sum_amount "
					"ELSE coalesce(s.sum_amount, 0) + excluded.sum_amount END, "
					"min_amount = least(s.min_amount, excluded.min_amount), "
					"max_amount = greatest(s.max_amount, excluded.max_amount)",
					4, argtypes, 0);
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "segment.event_stats_insert: upsert failed");
	SPI_finish();
	return PointerGetDatum(NULL);
}
