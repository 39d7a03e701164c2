/*
 * maintain_trigger.c — the statement-level triggers that keep segments, rule
 * tags and stages current: they read the transition tables of segment.events,
 * segment.contacts and segment.contact_tags, derive which keys the statement
 * touched (event types, changed fields and attrs keys, tags) and for which
 * contacts, and hand that to MaintRun (one pass per statement, so bulk loads
 * are maintained set-wise).
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "maintain.h"
#include "segment.h"

PG_FUNCTION_INFO_V1(segment_events_trigger);
PG_FUNCTION_INFO_V1(segment_contacts_trigger);
PG_FUNCTION_INFO_V1(segment_contact_tags_trigger);

/* Contact ids collected from a statement. */
typedef struct IdSet
{
	int64	   *ids;
	int			n;
	int			cap;
} IdSet;

static void
IdSetAdd(IdSet *s, int64 id)
{
	if (s->n == s->cap)
	{
		s->cap = s->cap ? s->cap * 2 : 16;
		s->ids = s->ids ? repalloc(s->ids, sizeof(int64) * s->cap) : palloc(sizeof(int64) * s->cap);
	}
	s->ids[s->n++] = id;
}

/* Add key to the list unless it is there already. */
static List *
AddKey(List *keys, char *key)
{
	ListCell   *lc;

	foreach(lc, keys)
		if (strcmp((char *) lfirst(lc), key) == 0)
			return keys;
	return lappend(keys, key);
}

/* Attribute number of a column of the trigger's table. */
static int
ColumnNumber(Relation rel, const char *name)
{
	int			att = SPI_fnumber(RelationGetDescr(rel), name);

	if (att <= 0)
		elog(ERROR, "table %s has no column \"%s\"", RelationGetRelationName(rel), name);
	return att;
}

/* Rewind a transition table with a read pointer of our own. */
static void
RewindStore(Tuplestorestate *store)
{
	int			ptr = tuplestore_alloc_read_pointer(store, EXEC_FLAG_REWIND);

	tuplestore_select_read_pointer(store, ptr);
	tuplestore_rescan(store);
}

/*
 * Collect from a transition table the contact ids (column idcol) and the keys
 * prefix || <column keycol> (keycol 0: none).
 */
static void
ScanStore(Relation rel, Tuplestorestate *store, int idcol, int keycol,
		  const char *prefix, IdSet *ids, List **keys)
{
	TupleTableSlot *slot;

	if (store == NULL)
		return;
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	RewindStore(store);
	while (tuplestore_gettupleslot(store, true, false, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, idcol, &isnull);

		if (isnull)
			continue;
		IdSetAdd(ids, DatumGetInt64(d));
		if (keycol > 0)
		{
			d = slot_getattr(slot, keycol, &isnull);
			if (!isnull)
				*keys = AddKey(*keys, psprintf("%s%s", prefix, TextDatumGetCString(d)));
		}
	}
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * The statement's inserted event when it inserted exactly one (the case of
 * segment.track): its contact, type, time and amount.  False otherwise.
 */
static bool
OneEvent(Relation rel, Tuplestorestate *store, MaintDelta *d)
{
	TupleTableSlot *slot;
	bool		one = false;

	if (store == NULL || tuplestore_tuple_count(store) != 1)
		return false;
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	RewindStore(store);
	if (tuplestore_gettupleslot(store, true, false, slot))
	{
		bool		eventnull,
					idnull,
					typenull,
					atnull,
					amountnull;
		Datum		event = slot_getattr(slot, ColumnNumber(rel, "id"), &eventnull);
		Datum		id = slot_getattr(slot, ColumnNumber(rel, "contact_id"), &idnull);
		Datum		type = slot_getattr(slot, ColumnNumber(rel, "type"), &typenull);
		Datum		at = slot_getattr(slot, ColumnNumber(rel, "occurred_at"), &atnull);
		Datum		amount = slot_getattr(slot, ColumnNumber(rel, "amount"), &amountnull);

		if (!idnull && !typenull && !atnull)
		{
			d->event_id = eventnull ? 0 : DatumGetInt64(event);
			d->contact = DatumGetInt64(id);
			d->type = TextDatumGetCString(type);
			d->at = DatumGetTimestampTz(at);
			d->amount = amountnull ? (Datum) 0 : datumCopy(amount, false, -1);
			one = true;
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	return one;
}

/* Hand the collected work to the maintenance run. */
static void
Maintain(List *keys, IdSet *ids, const MaintDelta *delta)
{
	if (ids->n == 0 || keys == NIL)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	MaintRun(keys, ids->ids, ids->n, delta);
	SPI_finish();
}

static void
CheckStatementTrigger(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		!TRIGGER_FIRED_AFTER(td->tg_event))
		elog(ERROR, "%s must be called as an AFTER ... FOR EACH STATEMENT trigger", name);
	SegmentCheckRestore();
}

/*
 * AFTER INSERT / UPDATE / DELETE ON segment.events FOR EACH STATEMENT:
 * re-evaluate the rules depending on the event types written, for the
 * contacts written.
 */
Datum
segment_events_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	IdSet		ids = {0};
	List	   *keys = NIL;
	int			idcol,
				typecol;
	MaintDelta	delta;
	bool		one;

	CheckStatementTrigger(fcinfo, "segment._events_trigger");
	rel = td->tg_relation;
	idcol = ColumnNumber(rel, "contact_id");
	typecol = ColumnNumber(rel, "type");
	ScanStore(rel, td->tg_newtable, idcol, typecol, "e:", &ids, &keys);
	ScanStore(rel, td->tg_oldtable, idcol, typecol, "e:", &ids, &keys);
	one = TRIGGER_FIRED_BY_INSERT(td->tg_event) && td->tg_oldtable == NULL &&
		OneEvent(rel, td->tg_newtable, &delta);
	Maintain(keys, &ids, one ? &delta : NULL);
	return PointerGetDatum(NULL);
}

/* Are two jsonb values (as returned by the jsonb iterator or lookup) equal? */
static bool
JsonbValuesEqual(JsonbValue *a, JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNull:
			return true;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvNumeric:
			return DatumGetBool(DirectFunctionCall2(numeric_eq,
													NumericGetDatum(a->val.numeric),
													NumericGetDatum(b->val.numeric)));
		case jbvBinary:
			return compareJsonbContainers(a->val.binary.data, b->val.binary.data) == 0;
		default:
			return false;
	}
}

/*
 * Add "f:<key>" for every top-level key of a whose value differs in b (or is
 * missing from b).  Returns whether any did.
 */
static bool
AddChangedAttrs(Jsonb *a, Jsonb *b, List **keys)
{
	JsonbIterator *it = JsonbIteratorInit(&a->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;
	int			keylen = 0;
	bool		any = false;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = v.val.string.val;
			keylen = v.val.string.len;
		}
		else if (tok == WJB_VALUE && key)
		{
			JsonbValue *other = getKeyJsonValueFromContainer(&b->root, key, keylen, NULL);

			if (other == NULL || !JsonbValuesEqual(&v, other))
			{
				*keys = AddKey(*keys, psprintf("f:%.*s", keylen, key));
				any = true;
			}
		}
	}
	return any;
}

/*
 * Add the keys of the fields that differ between the old and the new version
 * of a contact: "f:<column>" for columns, "f:<key>" for each changed top-level
 * key of attrs, and "f:attrs" when attrs changed at all.
 */
static bool
AddChangedFields(TupleDesc desc, TupleTableSlot *o, TupleTableSlot *n, int attrscol, List **keys)
{
	int			i;
	bool		any = false;

	slot_getallattrs(o);
	slot_getallattrs(n);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		bool		on = o->tts_isnull[i],
					nn = n->tts_isnull[i];

		if (att->attisdropped || (on && nn))
			continue;
		if (i + 1 == attrscol && !on && !nn)
		{
			Jsonb	   *a = DatumGetJsonbP(o->tts_values[i]);
			Jsonb	   *b = DatumGetJsonbP(n->tts_values[i]);
			bool		changed = AddChangedAttrs(a, b, keys);

			changed = AddChangedAttrs(b, a, keys) || changed;
			if (changed)
			{
				*keys = AddKey(*keys, "f:attrs");
				any = true;
			}
			continue;
		}
		if (on != nn || !datumIsEqual(o->tts_values[i], n->tts_values[i], att->attbyval, att->attlen))
		{
			*keys = AddKey(*keys, psprintf("f:%s", NameStr(att->attname)));
			any = true;
		}
	}
	return any;
}

/*
 * AFTER INSERT / UPDATE ON segment.contacts FOR EACH STATEMENT: a new contact
 * is evaluated against every dynamic rule; a changed one against the rules on
 * the fields that changed.
 */
Datum
segment_contacts_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	IdSet		ids = {0};
	List	   *keys = NIL;
	int			idcol;

	CheckStatementTrigger(fcinfo, "segment._contacts_trigger");
	rel = td->tg_relation;
	idcol = ColumnNumber(rel, "id");
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		ScanStore(rel, td->tg_newtable, idcol, 0, NULL, &ids, &keys);
		keys = list_make1("*");
	}
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event) && td->tg_oldtable && td->tg_newtable)
	{
		TupleDesc	desc = RelationGetDescr(rel);
		TupleTableSlot *o = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
		TupleTableSlot *n = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
		int			attrscol = ColumnNumber(rel, "attrs");

		/* UPDATE fills both tables in step, one old and one new row per updated row */
		RewindStore(td->tg_oldtable);
		RewindStore(td->tg_newtable);
		for (;;)
		{
			bool		ho,
						hn,
						isnull;
			int64		oid,
						nid;

			ho = tuplestore_gettupleslot(td->tg_oldtable, true, false, o);
			hn = tuplestore_gettupleslot(td->tg_newtable, true, false, n);
			if (!ho || !hn)
				break;
			oid = DatumGetInt64(slot_getattr(o, idcol, &isnull));
			nid = DatumGetInt64(slot_getattr(n, idcol, &isnull));
			if (oid != nid)
			{
				/* not in step after all: re-evaluate both against everything */
				keys = AddKey(keys, "*");
				IdSetAdd(&ids, oid);
				IdSetAdd(&ids, nid);
				continue;
			}
			if (AddChangedFields(desc, o, n, attrscol, &keys))
				IdSetAdd(&ids, nid);
		}
		ExecDropSingleTupleTableSlot(o);
		ExecDropSingleTupleTableSlot(n);
	}
	Maintain(keys, &ids, NULL);
	return PointerGetDatum(NULL);
}

/*
 * AFTER INSERT / UPDATE / DELETE ON segment.contact_tags FOR EACH STATEMENT:
 * re-evaluate the rules naming the tags written, for those contacts.  Quiet
 * while maintenance itself writes rule tags (it cascades on its own).
 */
Datum
segment_contact_tags_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	IdSet		ids = {0};
	List	   *keys = NIL;
	int			idcol,
				tagcol;

	CheckStatementTrigger(fcinfo, "segment._contact_tags_trigger");
	if (MaintApplying())
		return PointerGetDatum(NULL);
	rel = td->tg_relation;
	idcol = ColumnNumber(rel, "contact_id");
	tagcol = ColumnNumber(rel, "tag");
	ScanStore(rel, td->tg_newtable, idcol, tagcol, "t:", &ids, &keys);
	ScanStore(rel, td->tg_oldtable, idcol, tagcol, "t:", &ids, &keys);
	Maintain(keys, &ids, NULL);
	return PointerGetDatum(NULL);
}
