/*
 * rule_match.c — segment.matches(contact_id, rule): evaluate one rule for
 * one contact.  The per-contact SQL of each rule is prepared once per
 * backend and kept (SPI_keepplan), keyed by the stored rule (canonical
 * text and field types); the plan cache revalidates it on schema changes.
 */
#include "rule_glue.h"

#include "common/hashfn.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

typedef struct MatchPlan
{
	uint32		hash;			/* key */
	char	   *stored;			/* the stored rule bytes, in TopMemoryContext */
	Size		len;
	SPIPlanPtr	plan;
} MatchPlan;

#define MATCH_CACHE_MAX 1024

static HTAB *match_plans = NULL;

/* Drop every cached plan (the cache grew past its bound). */
static void
ResetCache(void)
{
	HASH_SEQ_STATUS seq;
	MatchPlan  *e;

	hash_seq_init(&seq, match_plans);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->plan)
			SPI_freeplan(e->plan);
		if (e->stored)
			pfree(e->stored);
		e->plan = NULL;
		e->stored = NULL;
	}
	hash_destroy(match_plans);
	match_plans = NULL;
}

/* The kept plan of a stored rule, prepared on first use.  SPI must be connected. */
static SPIPlanPtr
PlanFor(struct varlena *stored)
{
	const char *bytes = VARDATA_ANY(stored);
	Size		len = VARSIZE_ANY_EXHDR(stored);
	uint32		hash = hash_bytes((const unsigned char *) bytes, len);
	MatchPlan  *e;
	bool		found;
	Oid			argtypes[1] = {INT8OID};

	if (match_plans && hash_get_num_entries(match_plans) >= MATCH_CACHE_MAX)
		ResetCache();
	if (match_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(uint32);
		ctl.entrysize = sizeof(MatchPlan);
		match_plans = hash_create("segment rule match plans", 64, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	e = hash_search(match_plans, &hash, HASH_ENTER, &found);
	if (found && e->plan && e->len == len && memcmp(e->stored, bytes, len) == 0)
		return e->plan;
	/* new, or a hash collision: (re)build */
	if (found && e->plan)
		SPI_freeplan(e->plan);
	if (found && e->stored)
		pfree(e->stored);
	e->plan = NULL;
	e->stored = NULL;
	{
		Rule	   *r = RuleFromStored(stored);
		CoreAllocator a;
		CoreBuf		sql;
		CoreError	err;
		SPIPlanPtr	plan;

		RuleAllocatorInit(&a, CurrentMemoryContext);
		CoreBufInit(&sql, &a, 512);
		if (!RuleCompileMatch(r, &sql, &err))
			RuleReportError(RuleStoredText(stored), &err, NULL);
		plan = SPI_prepare(sql.data, 1, argtypes);
		if (plan == NULL)
			elog(ERROR, "could not prepare segment rule: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		e->stored = MemoryContextAlloc(TopMemoryContext, len);
		memcpy(e->stored, bytes, len);
		e->len = len;
		e->plan = plan;
	}
	return e->plan;
}

/* segment.matches(contact_id, rule): does the contact satisfy the rule now? */
PG_FUNCTION_INFO_V1(rule_matches);
Datum
rule_matches(PG_FUNCTION_ARGS)
{
	int64		contact_id = PG_GETARG_INT64(0);
	struct varlena *stored = PG_GETARG_RULE_P(1);
	Datum		args[1];
	bool		result = false;
	SPIPlanPtr	plan;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = PlanFor(stored);
	args[0] = Int64GetDatum(contact_id);
	if (SPI_execute_plan(plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not evaluate segment rule");
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		result = !isnull && DatumGetBool(d);
	}
	SPI_finish();
	PG_RETURN_BOOL(result);
}
