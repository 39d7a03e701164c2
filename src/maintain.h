/*
 * maintain.h — incremental maintenance of segment membership, rule tags and
 * lifecycle stages.
 *
 * Every rule that is kept current (a dynamic or scheduled segment, a tag rule,
 * the lifecycle stages taken together) is a node of a small graph.  A node
 * depends on "keys" (what a write can touch):
 *
 *     e:<event type>   f:<field>   t:<tag>   s:<segment>   g (the stages)
 *
 * and produces one key (s:<name>, t:<tag>, g).  A write names the keys it
 * touched and the contacts it touched; the nodes that depend on those keys,
 * plus everything downstream of them, are re-evaluated for those contacts
 * only, level by level (a node's level is one more than the level of any node
 * it depends on), each level with ONE cached query.  Requests also accept
 * "*" (every dynamic node: a new contact) and "n:<output key>" (one node
 * regardless of mode: refresh, rule changes).
 */
#ifndef MAINTAIN_H
#define MAINTAIN_H

#include "postgres.h"
#include "executor/spi.h"
#include "nodes/pg_list.h"

/* One rule that is kept current. */
typedef struct MaintNode
{
	char		kind;			/* 's' segment, 't' tag rule, 'g' the stages */
	int64		id;				/* segment id (0 for others) */
	char	   *name;			/* segment name or tag (NULL for 'g') */
	bool		scheduled;		/* segment updated only by refresh */
	char	   *cond;			/* per-contact condition SQL ('s', 't') */
	int			nstages;		/* 'g': stages, highest position first */
	char	  **stage_names;
	char	  **stage_conds;
	char	   *output;			/* key this node produces */
	List	   *deps;			/* keys it depends on (char *) */
	int			level;
} MaintNode;

/* One level of a request: the nodes evaluated together and their query. */
typedef struct MaintLevel
{
	int			nnodes;
	int		   *nodes;			/* indexes into MaintGraph.nodes */
	SPIPlanPtr	plan;			/* the evaluation query, kept */
} MaintLevel;

/* The plan of one request (a set of keys). */
typedef struct MaintRequest
{
	MemoryContext cxt;			/* holds the request (the plans are kept apart) */
	char	   *key;			/* the sorted keys, '\n'-separated */
	int			nlevels;
	MaintLevel *levels;
} MaintRequest;

/* The rule graph of this backend, rebuilt when the rules change. */
typedef struct MaintGraph
{
	MemoryContext cxt;
	int			nnodes;
	MaintNode  *nodes;
	List	   *requests;		/* MaintRequest *, a small cache */
} MaintGraph;

/* maintain_graph.c */
extern MaintGraph *MaintGetGraph(bool may_rebuild);
extern MaintRequest *MaintGetRequest(MaintGraph *graph, List *keys);
extern void MaintInvalidateAtCommit(void);

/* maintain_apply.c */
extern void MaintLockContacts(int64 *ids, int nids);
extern void MaintRun(List *keys, int64 *ids, int nids);
extern bool MaintApplying(void);

#endif							/* MAINTAIN_H */
