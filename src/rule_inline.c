/*
 * rule_inline.c — inline segment.members(rule) into the query that calls it.
 *
 * members() is a PL/pgSQL wrapper that runs the rule's compiled statement
 * (segment.rule_sql) with RETURN QUERY EXECUTE: every member goes through a
 * tuplestore and a function scan, and the planner sees neither the statement
 * nor its estimates, so "SELECT count(*) FROM segment.members(r)" or a join
 * with members() cannot be planned as one query.  When the rule is known at
 * planning time (a constant, or a parameter of a custom plan), this planner
 * hook replaces the function call in FROM by the compiled statement as a
 * subquery — what PostgreSQL itself does for SQL functions
 * (inline_set_returning_function) — so members(r) costs what the statement
 * written by hand costs.  Same rows, same snapshot, same permission checks on
 * the tables read; the caller must still have EXECUTE on members().  The
 * statement is parsed with members()'s search_path, and the query is planned
 * with at least members()'s work_mem so hashed subplans are chosen as inside
 * the function.  segment.inline_members = off turns it off (then every call
 * runs the function).
 */
#include "rule_glue.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/params.h"
#include "optimizer/planner.h"
#include "parser/parser.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

/* members()'s own SET work_mem (sql/install/20_rules.sql), in kB */
#define MEMBERS_WORK_MEM_KB 65536

static bool inline_members = true;
static planner_hook_type prev_planner_hook = NULL;

typedef struct InlineContext
{
	ParamListInfo params;
	int			inlined;
} InlineContext;

/* Is funcid segment.members(segment.rule)? */
static bool
IsMembersFunction(Oid funcid)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	bool		result = false;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return false;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (strcmp(NameStr(proc->proname), "members") == 0 && proc->pronargs == 1 &&
		proc->prorettype == INT8OID && proc->proretset)
	{
		char	   *nsp = get_namespace_name(proc->pronamespace);
		HeapTuple	typ = SearchSysCache1(TYPEOID, ObjectIdGetDatum(proc->proargtypes.values[0]));

		if (HeapTupleIsValid(typ))
		{
			Form_pg_type t = (Form_pg_type) GETSTRUCT(typ);

			result = nsp != NULL && strcmp(nsp, "segment") == 0 &&
				strcmp(NameStr(t->typname), "rule") == 0 && t->typnamespace == proc->pronamespace;
			ReleaseSysCache(typ);
		}
	}
	ReleaseSysCache(tup);
	return result;
}

/* The value of a constant, or of a parameter fixed for this (custom) plan; NULL if unknown. */
static struct varlena *
RuleArgument(Node *arg, ParamListInfo params)
{
	if (IsA(arg, Const))
	{
		Const	   *c = (Const *) arg;

		return c->constisnull ? NULL : (struct varlena *) PG_DETOAST_DATUM(c->constvalue);
	}
	if (IsA(arg, Param) && params != NULL)
	{
		Param	   *p = (Param *) arg;
		ParamExternData *prm;
		ParamExternData prmdata;

		if (p->paramkind != PARAM_EXTERN || p->paramid <= 0 || p->paramid > params->numParams)
			return NULL;
		if (params->paramFetch != NULL)
			prm = params->paramFetch(params, p->paramid, false, &prmdata);
		else
			prm = &params->params[p->paramid - 1];
		if (prm == NULL || prm->ptype != p->paramtype || !(prm->pflags & PARAM_FLAG_CONST) || prm->isnull)
			return NULL;
		return (struct varlena *) PG_DETOAST_DATUM(prm->value);
	}
	return NULL;
}

/* The compiled statement of a stored rule, parsed and analysed as members() would. */
static Query *
AnalyzeMembersStatement(struct varlena *stored)
{
	Rule	   *r = RuleFromStored(stored);
	CoreAllocator a;
	CoreBuf		sql;
	CoreError	err;
	List	   *raw;
	List	   *queries;
	Query	   *q;
	int			nest;

	RuleAllocatorInit(&a, CurrentMemoryContext);
	CoreBufInit(&sql, &a, 512);
	CoreErrorClear(&err);
	if (!RuleCompileMembers(r, &sql, &err))
		RuleReportError(RuleStoredText(stored), &err, NULL);

	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	raw = raw_parser(sql.data, RAW_PARSE_DEFAULT);
	if (list_length(raw) != 1)
		elog(ERROR, "compiled segment rule is not one statement");
#if PG_VERSION_NUM >= 150000
	queries = pg_analyze_and_rewrite_fixedparams(linitial_node(RawStmt, raw), sql.data, NULL, 0, NULL);
#else
	queries = pg_analyze_and_rewrite(linitial_node(RawStmt, raw), sql.data, NULL, 0, NULL);
#endif
	AtEOXact_GUC(true, nest);

	q = list_length(queries) == 1 ? linitial_node(Query, queries) : NULL;
	if (q == NULL || q->commandType != CMD_SELECT || q->utilityStmt != NULL ||
		list_length(q->targetList) != 1 ||
		exprType((Node *) ((TargetEntry *) linitial(q->targetList))->expr) != INT8OID)
		elog(ERROR, "compiled segment rule is not a query of one bigint column");
	return q;
}

/* Replace rte, a call of members() with a known rule, by its statement. */
static void
InlineRte(RangeTblEntry *rte, InlineContext *cxt)
{
	RangeTblFunction *rtf;
	FuncExpr   *fexpr;
	struct varlena *stored;

	if (rte->rtekind != RTE_FUNCTION || rte->funcordinality || list_length(rte->functions) != 1)
		return;
	rtf = linitial_node(RangeTblFunction, rte->functions);
	if (!IsA(rtf->funcexpr, FuncExpr) || rtf->funccolnames != NIL)
		return;
	fexpr = (FuncExpr *) rtf->funcexpr;
	if (!fexpr->funcretset || list_length(fexpr->args) != 1 || !IsMembersFunction(fexpr->funcid))
		return;
	/* the call would fail: let it, with the usual error */
	if (pg_proc_aclcheck(fexpr->funcid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		return;
	stored = RuleArgument(linitial(fexpr->args), cxt->params);
	if (stored == NULL)
		return;
	rte->subquery = AnalyzeMembersStatement(stored);
	rte->rtekind = RTE_SUBQUERY;
	rte->functions = NIL;
	rte->security_barrier = false;
	cxt->inlined++;
}

/* Walk every query level (subqueries, CTEs, sublinks), inlining as we go. */
static bool
InlineWalker(Node *node, InlineContext *cxt)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		InlineRte((RangeTblEntry *) node, cxt);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, InlineWalker, cxt, QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, InlineWalker, cxt);
}

/* The planner hook: inline, then plan (with members()'s work_mem if anything was inlined). */
static PlannedStmt *
RulePlanner(Query *parse, const char *query_string, int cursorOptions, ParamListInfo boundParams)
{
	InlineContext cxt = {boundParams, 0};
	PlannedStmt *result;
	int			nest = -1;

	if (inline_members && parse->commandType != CMD_UTILITY)
		(void) InlineWalker((Node *) parse, &cxt);
	if (cxt.inlined > 0 && work_mem < MEMBERS_WORK_MEM_KB)
	{
		nest = NewGUCNestLevel();
		(void) set_config_option("work_mem", CppAsString2(MEMBERS_WORK_MEM_KB), PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	if (prev_planner_hook)
		result = prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	else
		result = standard_planner(parse, query_string, cursorOptions, boundParams);
	if (nest >= 0)
		AtEOXact_GUC(true, nest);
	return result;
}

/* Called from _PG_init: the setting and the planner hook. */
void
RuleInlineInit(void)
{
	DefineCustomBoolVariable("segment.inline_members",
							 "Plan segment.members(rule) with a known rule as its compiled statement.",
							 "Off: every call runs the function, which executes the statement separately.",
							 &inline_members, true, PGC_USERSET, 0, NULL, NULL, NULL);
	prev_planner_hook = planner_hook;
	planner_hook = RulePlanner;
}
