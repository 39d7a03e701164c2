/*
 * template_cache.c — compiled templates cached per backend, keyed by a hash
 * of their text, so rendering the same template row after row never parses.
 *
 * Each entry owns a small memory context holding the program and a copy of
 * the text (a hash match is confirmed by comparing the text).  When the cache
 * grows past its limits it is emptied, but only between top-level calls, so
 * a program being rendered is never freed under the renderer.
 */
#include "template_pg.h"

#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#define CACHE_MAX_ENTRIES 1024
#define CACHE_MAX_BYTES (64 * 1024 * 1024)

/* One compiled template (its context holds the program and a copy of the text). */
typedef struct CacheItem
{
	MemoryContext cxt;
	char	   *text;
	size_t		len;
	TmplProgram *prog;
	struct CacheItem *next;		/* another text with the same hash */
} CacheItem;

typedef struct CacheEntry
{
	uint64		hash;			/* key */
	CacheItem  *items;
} CacheEntry;

static HTAB *cache = NULL;
static MemoryContext cache_cxt = NULL;
static size_t cache_bytes = 0;
static int	active_calls = 0;

uint64		template_cache_generation = 1;

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

const CoreAllocator template_palloc_allocator = {PallocAlloc, PallocRelease, NULL};

/* Allocations in a given memory context (ctx is the MemoryContext). */
static void *
EntryAlloc(void *ctx, size_t size)
{
	return MemoryContextAlloc((MemoryContext) ctx, size ? size : 1);
}

static void
EntryRelease(void *ctx, void *ptr)
{
	pfree(ptr);
}

const CoreAllocator template_context_allocator = {EntryAlloc, EntryRelease, NULL};

static void
CacheInit(void)
{
	HASHCTL		ctl;

	cache_cxt = AllocSetContextCreate(CacheMemoryContext, "segment template cache",
									  ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(CacheEntry);
	ctl.hcxt = cache_cxt;
	cache = hash_create("segment template cache", 256, &ctl,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	cache_bytes = 0;
}

/* Drop every entry (only called when no render is running). */
static void
CacheReset(void)
{
	if (cache_cxt)
		MemoryContextDelete(cache_cxt);
	cache_cxt = NULL;
	cache = NULL;
	template_cache_generation++;
}

/*
 * Drop every entry when the cache is over its limits and no render is running.
 * Called before looking a program up, never while the caller holds one: a
 * trim between compiling a program and rendering it would free it under the
 * renderer.
 */
void
TemplateCacheTrim(void)
{
	if (active_calls == 0 && cache != NULL &&
		(hash_get_num_entries(cache) > CACHE_MAX_ENTRIES || cache_bytes > CACHE_MAX_BYTES))
		CacheReset();
}

void
TemplateCacheEnter(void)
{
	active_calls++;
}

void
TemplateCacheLeave(void)
{
	if (active_calls > 0)
		active_calls--;
}

/*
 * The line of src holding the error, with a caret under the column; long
 * lines are cut to a window around it.
 */
void
TemplateReportParseError(const char *src, size_t len, const CoreError *err, const char *what)
{
	StringInfoData detail;
	size_t		ls = 0,
				le;
	int			line = 1;
	size_t		i;
	size_t		caret;
	size_t		from;
	size_t		col_bytes = 0;
	int			chars = 0;

	if (err->code == CORE_ERR_OOM)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (err->code != CORE_ERR_SYNTAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("invalid template: %s", err->message)));
	for (i = 0; i < len && line < err->line; i++)
		if (src[i] == '\n')
		{
			line++;
			ls = i + 1;
		}
	le = ls;
	while (le < len && src[le] != '\n' && src[le] != '\r')
		le++;
	/* byte offset of the column within the line */
	for (i = ls; i < le && chars < err->column - 1; i++)
		if (((unsigned char) src[i] & 0xC0) != 0x80)
			chars++;
	while (i < le && ((unsigned char) src[i] & 0xC0) == 0x80)
		i++;
	col_bytes = i - ls;
	from = ls;
	if (col_bytes > 60)
	{
		from = ls + col_bytes - 40;
		while (from < le && ((unsigned char) src[from] & 0xC0) == 0x80)
			from++;
	}
	if (le - from > 120)
	{
		size_t		cut = from + 120;

		while (cut > from && ((unsigned char) src[cut] & 0xC0) == 0x80)
			cut--;
		le = cut;
	}
	initStringInfo(&detail);
	if (from > ls)
		appendStringInfoString(&detail, "...");
	appendBinaryStringInfo(&detail, src + from, (int) (le - from));
	appendStringInfoChar(&detail, '\n');
	if (from > ls)
		appendStringInfoString(&detail, "   ");
	caret = from;
	while (caret < ls + col_bytes)
	{
		if (src[caret] == '\t')
			appendStringInfoChar(&detail, '\t');
		else if (((unsigned char) src[caret] & 0xC0) != 0x80)
			appendStringInfoChar(&detail, ' ');
		caret++;
	}
	appendStringInfoChar(&detail, '^');
	if (what)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid template at line %d, column %d: %s",
						err->line, err->column, err->message),
				 errdetail_internal("%s", detail.data),
				 errcontext("%s", what)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid template at line %d, column %d: %s",
					err->line, err->column, err->message),
			 errdetail_internal("%s", detail.data)));
	pg_unreachable();
}

/*
 * Every program handed out belongs to the cache (texts whose hash collides
 * share an entry), so it lives until a trim between top-level calls, which
 * bumps template_cache_generation: callers may remember a program, or data
 * derived from it, as long as the generation holds.
 */
const TmplProgram *
TemplateCompile(const char *src, size_t len, const char *what_fmt,
				const char *name, size_t namelen)
{
	uint64		hash = hash_bytes_extended((const unsigned char *) src, (int) len, 0);
	CacheEntry *e;
	CacheItem  *item;
	bool		found;
	MemoryContext cxt;
	CoreAllocator *a;
	CoreError	err;
	TmplProgram *prog;

	if (cache == NULL)
		CacheInit();
	e = hash_search(cache, &hash, HASH_FIND, NULL);
	if (e != NULL)
		for (item = e->items; item != NULL; item = item->next)
			if (item->len == len && memcmp(item->text, src, len) == 0)
				return item->prog;
	cxt = AllocSetContextCreate(cache_cxt, "segment template", ALLOCSET_SMALL_SIZES);
	a = MemoryContextAlloc(cxt, sizeof(CoreAllocator));
	*a = template_context_allocator;
	a->ctx = cxt;
	prog = TmplParse(src, len, a, &err);
	if (prog == NULL)
	{
		char	   *what = NULL;

		MemoryContextDelete(cxt);
		if (what_fmt)
			what = psprintf(what_fmt, (int) namelen, name);
		TemplateReportParseError(src, len, &err, what);
	}
	item = MemoryContextAlloc(cxt, sizeof(CacheItem));
	item->cxt = cxt;
	item->text = MemoryContextAlloc(cxt, len + 1);
	memcpy(item->text, src, len);
	item->text[len] = '\0';
	item->len = len;
	item->prog = prog;
	e = hash_search(cache, &hash, HASH_ENTER, &found);
	item->next = found ? e->items : NULL;
	e->items = item;
	cache_bytes += MemoryContextMemAllocated(cxt, false);
	return prog;
}
