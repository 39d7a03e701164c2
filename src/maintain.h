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
 * it depends on).  Requests also accept "*" (every dynamic node: a new
 * contact) and "n:<output key>" (one node regardless of mode: refresh, rule
 * changes).
 *
 * Each rule is compiled into a MaintExpr (maintain_eval.c): the conditions
 * that segment.event_stats answers (did, all-time aggregates) and counts of
 * raw events in a window are evaluated in C with index probes, one probe per
 * event type and contact; every other condition is a "SQL leaf" (its
 * per-contact SQL from the rule compiler), computed by one cached query per
 * level, and only when the C-evaluated part leaves the rule's value open.
 */
#ifndef MAINTAIN_H
#define MAINTAIN_H

#include "postgres.h"
#include "executor/spi.h"
#include "nodes/pg_list.h"
#include "storage/itemptr.h"
#include "utils/timestamp.h"

/*
 * A compiled rule condition.  op: 't' true, 'f' false, '&' and, '|' or,
 * '!' not (kids), 'd' did [not] (event_stats row of event, last_at within),
 * 'a' all-time aggregate of event_stats compared with lit, 'c' count of raw
 * events of event within the window compared with lit, 'q' a SQL leaf.
 */
typedef struct MaintExpr
{
	char		op;
	bool		negated;		/* 'd': did not */
	int			nkids;
	struct MaintExpr **kids;
	char	   *event;			/* 'd', 'a', 'c' */
	Datum		within;			/* 'd', 'c': Interval of the window (0: none) */
	int			agg;			/* 'a': RuleAggKind */
	int			cmp;			/* 'a', 'c': RuleCmp */
	Datum		lit;			/* 'a', 'c': numeric literal */
	int64		limit;			/* 'c': counting may stop here (CountLimit) */
	int			leaf;			/* 'q': index into MaintGraph.leaves */
	bool		since_known;	/* 'd', 'c' with a window: since is now minus it, */
	TimestampTz since_now;		/* for this now */
	const void *since_tz;		/* and this session_timezone */
	TimestampTz since;
} MaintExpr;

/* Relations and columns the C evaluation reads (looked up with the graph). */
typedef struct MaintRels
{
	Oid			contacts,
				contacts_pk;
	Oid			members,
				members_pk;			/* segment_members (contact_id, segment_id) */
	Oid			tags,
				tags_pk;			/* contact_tags (contact_id, tag) */
	Oid			stages,
				stages_pk;			/* contact_stages (contact_id) */
	Oid			changes;		/* the change feed */
	Oid			stats,
				stats_pk;			/* event_stats (type, contact_id); Invalid: use SQL */
	Oid			events,
				events_idx;			/* events (contact_id, type, occurred_at); Invalid: use SQL */
	AttrNumber	tags_tag,
				tags_source,
				tags_expires;
	AttrNumber	stages_stage;
	AttrNumber	stats_count,
				stats_first,
				stats_last,
				stats_sum,
				stats_min,
				stats_max;
} MaintRels;

/* One rule that is kept current. */
typedef struct MaintNode
{
	char		kind;			/* 's' segment, 't' tag rule, 'g' the stages */
	int64		id;				/* segment id (0 for others) */
	char	   *name;			/* segment name or tag (NULL for 'g') */
	bool		scheduled;		/* segment updated only by refresh */
	MaintExpr  *expr;			/* the rule ('s', 't') */
	int			nstages;		/* 'g': stages, highest position first */
	char	  **stage_names;
	MaintExpr **stage_exprs;
	bool		leaf_free;		/* its rule(s) have no SQL leaf: MaintExprLeafFree */
	char	   *output;			/* key this node produces */
	List	   *deps;			/* keys it depends on (char *) */
	int			level;
} MaintNode;

/*
 * One level of a request: the nodes evaluated together, the SQL leaves their
 * rules contain and the kept query that computes those leaves.
 */
typedef struct MaintLevel
{
	int			nnodes;
	int		   *nodes;			/* indexes into MaintGraph.nodes */
	int			nleaves;
	int		   *leaves;			/* indexes into MaintGraph.leaves */
	int		   *slot;			/* per graph leaf: its place in leaves, or -1 */
	SPIPlanPtr	plan;			/* the SQL leaves query (NULL without leaves), kept */
	int			nsegs;			/* nodes of each kind */
	int			ntags;
	int			nstages;
	bool		reads_stats;	/* has event_stats conditions */
	bool		reads_events;	/* has counts of raw events */
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
	int			nleaves;		/* distinct SQL leaves (per-contact conditions over c) */
	char	  **leaves;
	int			maxleaves;
	MaintRels	rels;
	List	   *requests;		/* MaintRequest *, a small cache */
} MaintGraph;

/* What the evaluation of a level found for one contact (index i: level node i). */
typedef struct MaintOutcome
{
	int64		contact;
	bool	   *want;			/* 's', 't': the rule holds */
	bool	   *member;			/* 's': currently a member */
	char	   *tag_state;		/* 't': 'r' by rule, 'm' manual/flow, 'e' manual/flow expiring, 'x' expired, '-' none */
	char	   *stage_cur;		/* 'g': current stage (NULL: none) */
	char	   *stage_new;		/* 'g': the stage whose rule holds (NULL: none) */
	bool	   *same;			/* the statement's one event left the value as it was: state not read */
} MaintOutcome;

/*
 * The one event a statement inserted into segment.events, when it inserted
 * exactly one.  A rule that reads only event aggregates can then be
 * evaluated as it stood before that event too; when the event did not
 * change its value, the contact's stored state for it (membership, rule tag,
 * stage) is not read: it already agrees.
 */
typedef struct MaintDelta
{
	int64		event_id;		/* its id (0: not known) */
	int64		contact;
	char	   *type;
	TimestampTz at;				/* occurred_at */
	Datum		amount;			/* numeric, (Datum) 0 when NULL */
} MaintDelta;

typedef void (*MaintOutcomeFn) (void *arg, MaintGraph *g, MaintLevel *lv, MaintOutcome *o);

/* maintain_graph.c */
extern MaintGraph *MaintGetGraph(bool may_rebuild);
extern MaintRequest *MaintGetRequest(MaintGraph *graph, List *keys);
extern void MaintInvalidateAtCommit(void);

/* maintain_eval.c */
extern void MaintLookupRels(MaintGraph *g);
extern MaintExpr *MaintCompileRule(MaintGraph *g, struct varlena *stored);
extern bool MaintExprLeafFree(MaintExpr *e);
extern void MaintLevelLeaves(MaintGraph *g, MaintLevel *lv, MemoryContext cxt);
extern void MaintEvalLevel(MaintGraph *g, MaintLevel *lv, int64 *ids, int nids,
						   const MaintDelta *delta, MaintOutcomeFn fn, void *arg);

/* maintain_apply.c */
extern void MaintRun(List *keys, int64 *ids, int nids, const MaintDelta *delta);
extern bool MaintApplying(void);
extern bool MaintHoldsGlobalLock(void);

/* maintain_write.c */
extern bool MaintWriteEntries(MaintRels *r, List *segs, List *contacts, List *names);
extern bool MaintWriteTagAdds(MaintRels *r, List *contacts, List *tags);
extern bool MaintWriteStages(MaintRels *r, List *contacts, List *news, List *olds);
extern bool MaintAddEventStat(Oid stats, int64 event_id, Datum type, Datum contact, Datum at,
							  Datum amount, bool amount_null);
extern void MaintForgetEventStat(void);
extern void MaintNoteFoundRow(Oid pkindex, Datum value, ItemPointer tid);
extern void MaintForgetFoundRow(void);
extern bool MaintNotedEventStat(int64 event_id, Oid stats, ItemPointer tid, TimestampTz *old_last_at);

#endif							/* MAINTAIN_H */
