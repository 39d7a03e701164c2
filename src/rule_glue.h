/*
 * rule_glue.h — what the PostgreSQL glue files of the rule language share:
 * the stored form of segment.rule and loading it back into a tree.
 *
 * Stored form (a varlena): the canonical text, a NUL, then the resolved
 * types of the custom fields it reads (";name:type;...").  Output, equality
 * and the plan cache use the canonical text; compiling uses the types, so a
 * stored rule never looks fields up again.
 */
#ifndef SEGMENT_RULE_GLUE_H
#define SEGMENT_RULE_GLUE_H

#include "postgres.h"
#include "fmgr.h"

#include "rule.h"

/* A CoreAllocator over palloc in the given memory context. */
extern void RuleAllocatorInit(CoreAllocator *a, MemoryContext cxt);

/* Parse, resolve and check text; ereport on any error.  Returns the stored form. */
extern struct varlena *RuleFromText(const char *src, size_t len);

/* The tree of a stored rule (palloc'd in the current context). */
extern Rule *RuleFromStored(struct varlena *stored);

/* The canonical text of a stored rule (points into stored). */
extern const char *RuleStoredText(struct varlena *stored);

/* Report a core error about src as ereport(ERROR). */
extern void RuleReportError(const char *src, const CoreError *err,
							const RuleCheckFailure *failure) pg_attribute_noreturn();

/* _PG_init: segment.inline_members and the planner hook that inlines members() (rule_inline.c). */
extern void RuleInlineInit(void);

#define PG_GETARG_RULE_P(n) ((struct varlena *) PG_DETOAST_DATUM(PG_GETARG_DATUM(n)))

#endif							/* SEGMENT_RULE_GLUE_H */
