/*
 * template_pg.h — PostgreSQL side of the template engine: the per-backend
 * cache of compiled templates and the error reporting shared by the SQL
 * functions (template_pg.c) and the cache (template_cache.c).
 */
#ifndef SEGMENT_TEMPLATE_PG_H
#define SEGMENT_TEMPLATE_PG_H

#include "postgres.h"

#include "template.h"

/* segment.max_render_size, in kB */
extern int	segment_max_render_size;

extern void TemplateDefineGucs(void);

/*
 * The compiled program of src, from the cache or compiled now (and cached).
 * Invalid templates raise `invalid template at line L, column C: ...`
 * (22P02).  what_fmt (may be NULL), formatted with name as "%.*s", becomes
 * the error context naming the template; it is formatted only on error.
 */
extern const TmplProgram *TemplateCompile(const char *src, size_t len,
										  const char *what_fmt,
										  const char *name, size_t namelen);

/*
 * Top-level SQL calls bracket their work with Enter/Leave, and call Trim
 * before looking up a program (never while holding one): the cache is trimmed
 * only when no render is running, so programs in use are never freed.
 */
extern void TemplateCacheTrim(void);
extern void TemplateCacheEnter(void);
extern void TemplateCacheLeave(void);

/* Bumped whenever the cache drops entries: callers' remembered programs expire. */
extern uint64 template_cache_generation;

/* Raise the error of a failed parse of src. */
extern void TemplateReportParseError(const char *src, size_t len, const CoreError *err,
									 const char *what) pg_attribute_noreturn();

/* The palloc allocator over CurrentMemoryContext at the time of each call. */
extern const CoreAllocator template_palloc_allocator;

/* Allocations in the MemoryContext given as ctx (copy it and set ctx). */
extern const CoreAllocator template_context_allocator;

#endif							/* SEGMENT_TEMPLATE_PG_H */
