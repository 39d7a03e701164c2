/*
 * maintain_graph.c — the rule graph of this backend and the cached query
 * plans of maintenance requests.
 *
 * The graph is loaded from segment.segments, segment.tag_rules, segment.stages
 * and the dependency index (segment.dependency_index), each rule compiled
 * by maintain_eval.c, and kept until the rules change: functions that
 * change rules call segment._rules_changed(), which sends a relcache
 * invalidation of segment.dependency_index; our callback marks the graph stale
 * in every backend (this one at the next command, others at commit).
 */
#include "postgres.h"

#include <malloc.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "maintain.h"

/* Requests cached per graph before the cache is emptied. */
#define MAINT_MAX_REQUESTS 256

static MaintGraph *graph = NULL;
static bool graph_stale = true;
static bool callback_registered = false;
static Oid	index_relid = InvalidOid;

/* Is relid one of the relations or indexes the C evaluation of the graph reads? */
static bool
GraphReads(MaintGraph *g, Oid relid)
{
	MaintRels  *r = &g->rels;
	Oid			used[] = {r->contacts, r->contacts_pk, r->members, r->members_pk,
		r->tags, r->tags_pk, r->stages, r->stages_pk, r->stats, r->stats_pk,
	r->events, r->events_idx};
	int			i;

	for (i = 0; i < lengthof(used); i++)
		if (used[i] == relid)
			return true;
	return false;
}

/*
 * Relcache callback: the dependency index changed (or everything did), or a
 * relation the evaluation reads (segment.partition_events replaces events),
 * so the graph must be rebuilt before its next use.  Only a flag: plans may
 * be in use.
 */
static void
MaintRelcacheCallback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == index_relid || (graph && GraphReads(graph, relid)))
		graph_stale = true;
}

/* The OID of segment.dependency_index (InvalidOid if the extension is gone). */
static Oid
DependencyIndexRelid(void)
{
	Oid			nsp = get_namespace_oid("segment", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid("dependency_index", nsp);
}

/*
 * Tell every backend, at commit (and this one at the next command), that the
 * rules changed.
 */
void
MaintInvalidateAtCommit(void)
{
	Oid			relid = DependencyIndexRelid();

	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
	graph_stale = true;
}

/* Release the kept plans of every cached request. */
static void
FreeRequests(MaintGraph *g)
{
	ListCell   *lc;

	foreach(lc, g->requests)
	{
		MaintRequest *r = (MaintRequest *) lfirst(lc);
		int			i;

		for (i = 0; i < r->nlevels; i++)
			if (r->levels[i].plan)
				SPI_freeplan(r->levels[i].plan);
		MemoryContextDelete(r->cxt);
	}
	list_free(g->requests);
	g->requests = NIL;
}

/* Index of the node of kind/name, or -1. */
static int
FindNode(MaintNode *nodes, int n, char kind, const char *name)
{
	int			i;

	for (i = 0; i < n; i++)
		if (nodes[i].kind == kind &&
			(kind == 'g' || strcmp(nodes[i].name, name) == 0))
			return i;
	return -1;
}

static bool
ListHasString(List *l, const char *s)
{
	ListCell   *lc;

	foreach(lc, l)
		if (strcmp((char *) lfirst(lc), s) == 0)
			return true;
	return false;
}

/*
 * Level of each node: 0 when it depends on no other node's output, else one
 * more than the highest level among the nodes it depends on.  Rule creation
 * rejects cycles; the pass count bounds the work should one slip through.
 */
static void
ComputeLevels(MaintGraph *g)
{
	int			pass;
	bool		changed = true;

	for (pass = 0; changed && pass <= g->nnodes; pass++)
	{
		int			i,
					j;

		changed = false;
		for (i = 0; i < g->nnodes; i++)
			for (j = 0; j < g->nnodes; j++)
				if (i != j && ListHasString(g->nodes[i].deps, g->nodes[j].output) &&
					g->nodes[i].level < g->nodes[j].level + 1)
				{
					g->nodes[i].level = g->nodes[j].level + 1;
					changed = true;
				}
	}
	if (changed)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("segment rules form a cycle"),
				 errhint("Drop or change one of the rules that refer to each other through in segment, tagged or stage.")));
}

/* Copy the text of column col of the current SPI row into cxt (NULL stays NULL). */
static char *
SpiText(HeapTuple tup, TupleDesc desc, int col, MemoryContext cxt)
{
	char	   *s = SPI_getvalue(tup, desc, col);

	return s ? MemoryContextStrdup(cxt, s) : NULL;
}

/*
 * Load the graph from the catalog tables.  SPI must be connected.  Not
 * read-only: under READ COMMITTED that takes a fresh snapshot, so a run that
 * waited for a rule change to commit (MaintRun locks, then loads) sees it;
 * the statement's own snapshot predates the wait.
 */
static MaintGraph *
LoadGraph(void)
{
	MemoryContext cxt;
	MaintGraph *g;
	uint64		i;
	int			n = 0;
	int			nstage = 0;
	int			ret;

	cxt = AllocSetContextCreate(CacheMemoryContext, "segment rule graph",
								ALLOCSET_SMALL_SIZES);
	g = MemoryContextAllocZero(cxt, sizeof(MaintGraph));
	g->cxt = cxt;

	MaintLookupRels(g);
	ret = SPI_execute("SELECT 's', s.id, s.name, s.mode = 'scheduled', s.rule, 0"
					  "  FROM segment.segments s WHERE s.mode <> 'static' AND s.rule IS NOT NULL"
					  " UNION ALL "
					  "SELECT 't', r.id, r.tag, false, r.rule, 0"
					  "  FROM segment.tag_rules r"
					  " UNION ALL "
					  "SELECT 'g', 0, st.name, false, st.rule, st.position"
					  "  FROM segment.stages st WHERE st.rule IS NOT NULL"
					  " ORDER BY 1, 6 DESC, 2", false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not load segment rules: %s", SPI_result_code_string(ret));

	g->nodes = MemoryContextAllocZero(cxt, sizeof(MaintNode) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *kind = SPI_getvalue(tup, desc, 1);
		bool		isnull;
		struct varlena *rule = (struct varlena *) PG_DETOAST_DATUM(SPI_getbinval(tup, desc, 5, &isnull));
		MaintNode  *node;

		if (kind[0] == 'g')
		{
			int			gi = FindNode(g->nodes, n, 'g', NULL);

			if (gi < 0)
			{
				gi = n++;
				node = &g->nodes[gi];
				node->kind = 'g';
				node->output = MemoryContextStrdup(cxt, "g");
				node->stage_names = MemoryContextAllocZero(cxt, sizeof(char *) * SPI_processed);
				node->stage_exprs = MemoryContextAllocZero(cxt, sizeof(MaintExpr *) * SPI_processed);
			}
			node = &g->nodes[gi];
			node->stage_names[node->nstages] = SpiText(tup, desc, 3, cxt);
			node->stage_exprs[node->nstages] = MaintCompileRule(g, rule);
			node->leaf_free = (node->nstages == 0 || node->leaf_free) &&
				MaintExprLeafFree(node->stage_exprs[node->nstages]);
			node->nstages++;
			nstage++;
			continue;
		}
		node = &g->nodes[n++];
		node->kind = kind[0];
		node->id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		node->name = SpiText(tup, desc, 3, cxt);
		node->scheduled = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		node->expr = MaintCompileRule(g, rule);
		node->leaf_free = MaintExprLeafFree(node->expr);
		node->output = MemoryContextStrdup(cxt, psprintf("%c:%s", node->kind, node->name));
	}
	g->nnodes = n;

	ret = SPI_execute("SELECT node_kind, node_name,"
					  "       CASE key_kind WHEN 'event' THEN 'e:' WHEN 'field' THEN 'f:'"
					  "                     WHEN 'tag' THEN 't:' WHEN 'segment' THEN 's:' END || key,"
					  "       key_kind = 'stage'"
					  "  FROM segment.dependency_index WHERE key_kind <> 'time'", false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not load segment rule dependencies: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *kind = SPI_getvalue(tup, desc, 1);
		char	   *name = SPI_getvalue(tup, desc, 2);
		char	   *key = strcmp(SPI_getvalue(tup, desc, 4), "t") == 0 ? "g" : SPI_getvalue(tup, desc, 3);
		int			ni;
		MemoryContext old;

		ni = FindNode(g->nodes, n,
					  strcmp(kind, "segment") == 0 ? 's' : strcmp(kind, "tag_rule") == 0 ? 't' : 'g',
					  name);
		if (ni < 0 || key == NULL || ListHasString(g->nodes[ni].deps, key))
			continue;			/* static segment, or a duplicate key */
		old = MemoryContextSwitchTo(cxt);
		g->nodes[ni].deps = lappend(g->nodes[ni].deps, pstrdup(key));
		MemoryContextSwitchTo(old);
	}
	ComputeLevels(g);
	return g;
}

/*
 * The current rule graph, (re)loaded when the rules changed.  SPI must be
 * connected.  Never rebuilt while a maintenance run is using it: the caller
 * says whether that is allowed.
 */
MaintGraph *
MaintGetGraph(bool may_rebuild)
{
	if (!callback_registered)
	{
		/*
		 * Each evaluation starts one index scan per rule condition, and each
		 * btree scan allocates ~27 kB outside the allocator's free lists; with
		 * glibc's default trim threshold (128 kB) every statement then shrinks
		 * and regrows the heap (brk + page faults: a fifth of the time with 50
		 * segments).  Keep up to 4 MB of freed heap in this backend instead.
		 */
		mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
		CacheRegisterRelcacheCallback(MaintRelcacheCallback, (Datum) 0);
		callback_registered = true;
	}
	if (graph && (!graph_stale || !may_rebuild))
		return graph;
	if (graph)
	{
		FreeRequests(graph);
		MemoryContextDelete(graph->cxt);
		graph = NULL;
	}
	index_relid = DependencyIndexRelid();
	graph_stale = false;
	PG_TRY();
	{
		graph = LoadGraph();
	}
	PG_CATCH();
	{
		graph_stale = true;
		PG_RE_THROW();
	}
	PG_END_TRY();
	return graph;
}

static int
CompareKeyCells(const ListCell *a, const ListCell *b)
{
	return strcmp((const char *) lfirst(a), (const char *) lfirst(b));
}

/* The canonical cache key of a list of keys: sorted, unique, '\n'-joined. */
static char *
RequestKey(List *keys)
{
	List	   *sorted = list_copy(keys);
	StringInfoData buf;
	ListCell   *lc;
	char	   *prev = NULL;

	list_sort(sorted, CompareKeyCells);
	initStringInfo(&buf);
	foreach(lc, sorted)
	{
		char	   *k = (char *) lfirst(lc);

		if (prev && strcmp(prev, k) == 0)
			continue;
		appendStringInfo(&buf, "%s\n", k);
		prev = k;
	}
	list_free(sorted);
	return buf.data;
}

/* Does node depend on (or is it named by) one of the request keys? */
static bool
NodeIsSeed(MaintNode *node, List *keys)
{
	ListCell   *lc;

	foreach(lc, keys)
	{
		char	   *k = (char *) lfirst(lc);

		if (strncmp(k, "n:", 2) == 0)
		{
			if (strcmp(k + 2, node->output) == 0)
				return true;
			continue;
		}
		if (node->scheduled)
			continue;
		if (strcmp(k, "*") == 0 || ListHasString(node->deps, k))
			return true;
	}
	return false;
}

/*
 * Plan a request: the nodes named by the keys and everything downstream of
 * them (never scheduled segments: only refresh moves those), grouped by level,
 * each level with the kept query of its SQL leaves.
 */
static MaintRequest *
BuildRequest(MaintGraph *g, List *keys, char *key)
{
	bool	   *in = palloc0(sizeof(bool) * (g->nnodes + 1));
	int			i,
				j,
				level,
				maxlevel = 0;
	bool		grew = true;
	MaintRequest *r;
	MemoryContext cxt;

	for (i = 0; i < g->nnodes; i++)
		in[i] = NodeIsSeed(&g->nodes[i], keys);
	while (grew)
	{
		grew = false;
		for (i = 0; i < g->nnodes; i++)
			if (in[i])
				for (j = 0; j < g->nnodes; j++)
					if (!in[j] && !g->nodes[j].scheduled &&
						ListHasString(g->nodes[j].deps, g->nodes[i].output))
						in[j] = grew = true;
	}
	for (i = 0; i < g->nnodes; i++)
		if (in[i] && g->nodes[i].level > maxlevel)
			maxlevel = g->nodes[i].level;

	cxt = AllocSetContextCreate(g->cxt, "segment maintenance request",
								ALLOCSET_SMALL_SIZES);
	r = MemoryContextAllocZero(cxt, sizeof(MaintRequest));
	r->cxt = cxt;
	r->key = MemoryContextStrdup(cxt, key);
	r->levels = MemoryContextAllocZero(cxt, sizeof(MaintLevel) * (maxlevel + 1));
	for (level = 0; level <= maxlevel; level++)
	{
		MaintLevel *lv = &r->levels[r->nlevels];

		lv->nodes = MemoryContextAllocZero(cxt, sizeof(int) * (g->nnodes + 1));
		for (i = 0; i < g->nnodes; i++)
			if (in[i] && g->nodes[i].level == level)
				lv->nodes[lv->nnodes++] = i;
		if (lv->nnodes == 0)
			continue;
		MaintLevelLeaves(g, lv, cxt);
		r->nlevels++;
	}
	pfree(in);
	return r;
}

/* The cached plan of a request, built on first use. */
MaintRequest *
MaintGetRequest(MaintGraph *g, List *keys)
{
	char	   *key = RequestKey(keys);
	ListCell   *lc;
	MaintRequest *r;
	MemoryContext old;

	foreach(lc, g->requests)
	{
		r = (MaintRequest *) lfirst(lc);
		if (strcmp(r->key, key) == 0)
			return r;
	}
	if (list_length(g->requests) >= MAINT_MAX_REQUESTS)
		FreeRequests(g);
	r = BuildRequest(g, keys, key);
	old = MemoryContextSwitchTo(g->cxt);
	g->requests = lappend(g->requests, r);
	MemoryContextSwitchTo(old);
	return r;
}
