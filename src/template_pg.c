/*
 * template_pg.c — SQL functions of the template engine: validation for the
 * segment.template domain, segment.render over jsonb, segment.render_stored
 * (partials from segment.templates), and the jsonb value model the renderer
 * reads through (direct container lookups, no conversion of the document).
 */
#include "template_pg.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

int			segment_max_render_size = 1024;

/*
 * JbBind's memory of object shapes: the key section of an object (its key
 * JEntries and key text) and which of its keys a program's names are.  The
 * rows of a query mostly have the same keys, and so do the elements of an
 * array, so names and keys are merged once per shape; each further object
 * of that shape costs two memcmp calls and a pass over its value entries.
 */
#define BIND_SHAPES 4
#define BIND_SHAPE_MAX 4096		/* largest key section remembered, bytes */

/* Name `name` is key `key` of the object. */
typedef struct BindMatch
{
	int32		name;
	uint32		key;
} BindMatch;

typedef struct BindShape
{
	const TmplName *names;		/* the program's name table; NULL: unused */
	uint64		generation;		/* template_cache_generation it belongs to */
	int			nnames;
	uint32		count;			/* keys of the object */
	uint32		size;			/* bytes of keys: count JEntries, then key text */
	char	   *keys;
	uint32		cap_keys;
	BindMatch  *match;			/* in key order */
	int			nmatch;
	int			cap_match;
} BindShape;

typedef struct BindShapes
{
	BindShape	shape[BIND_SHAPES];
	int			next;			/* the one to replace next */
	BindMatch  *scratch;		/* a merge's matches */
	int			cap_scratch;
} BindShapes;

/* Per call site state kept in fn_extra: the last program, and a size guess. */
typedef struct CallCache
{
	uint64		generation;
	const char *text;			/* the cached entry's copy (valid while generation holds) */
	size_t		len;
	const TmplProgram *prog;
	bool		stable;			/* the template argument is the same all query */
	size_t		out_guess;
	/* render_stored: partial sources already read from segment.templates */
	MemoryContext mcxt;
	HTAB	   *stored;
	BindShapes	shapes;
} CallCache;

typedef struct RenderCtx
{
	Jsonb	   *partials;		/* segment.render: name -> template text */
	CallCache  *cc;
	const char *part;			/* segment.render_stored: which column */
	bool		spi_connected;
	/* JbAt: the last element read (loops read them in order) and where it ends */
	JsonbContainer *at_array;
	uint32		at_index;
	uint32		at_end;
	/* JbBind: the slots it wrote last and the shape it wrote them for */
	TmplSlot   *bound_slots;
	const BindShape *bound_shape;
} RenderCtx;

/* ---- the jsonb value model ---- */

/* A jsonb array or object as a template value. */
static void
FromContainer(JsonbContainer *c, TmplValue *out)
{
	out->ref = c;
	if (JsonContainerIsArray(c))
	{
		out->kind = TMPL_ARRAY;
		out->count = JsonContainerSize(c);
	}
	else
		out->kind = TMPL_OBJECT;
}

/*
 * The value of child `index` of container c (an array element or an object
 * value) whose data starts at base + off and is len bytes long, read in
 * place: strings point into the jsonb, containers stay containers.
 */
static inline void
FillEntry(JsonbContainer *c, int index, char *base, uint32 off, uint32 len, TmplValue *out)
{
	JEntry		e = c->children[index];

	/* every field set once (this runs for each value printed) */
	out->b = false;
	out->ref = NULL;
	out->count = 0;
	if (JBE_ISSTRING(e))
	{
		out->kind = TMPL_STRING;
		out->str = base + off;
		out->len = len;
		return;
	}
	out->str = NULL;
	out->len = 0;
	if (JBE_ISNULL(e))
		out->kind = TMPL_NULL;
	else if (JBE_ISNUMERIC(e))
	{
		out->kind = TMPL_NUMBER;
		out->str = DatumGetCString(DirectFunctionCall1(numeric_out,
													   PointerGetDatum(base + INTALIGN(off))));
		out->len = strlen(out->str);
	}
	else if (JBE_ISBOOL_TRUE(e) || JBE_ISBOOL_FALSE(e))
	{
		out->kind = TMPL_BOOL;
		out->b = JBE_ISBOOL_TRUE(e);
	}
	else
		FromContainer((JsonbContainer *) (base + INTALIGN(off)), out);
}

/*
 * Look a key up in a jsonb object.  Keys are stored sorted by length, then
 * bytes, and each JEntry holds a length (or, every JB_OFFSET_STRIDE entries,
 * an end offset): one running sum over the entries finds the key and its
 * value, cheaper for the small objects of a template context than a binary
 * search that recomputes every probe's offset.
 */
static bool
JbGet(void *ctx, const TmplValue *object, const char *key, size_t keylen, TmplValue *out)
{
	JsonbContainer *c = (JsonbContainer *) object->ref;
	uint32		count;
	char	   *base;
	uint32		end = 0;
	uint32		i;

	if (object->kind != TMPL_OBJECT)
		return false;
	count = JsonContainerSize(c);
	base = (char *) &c->children[count * 2];
	for (i = 0; i < count; i++)
	{
		JEntry		e = c->children[i];
		uint32		start = end;
		uint32		len;

		end = JBE_HAS_OFF(e) ? JBE_OFFLENFLD(e) : start + JBE_OFFLENFLD(e);
		len = end - start;
		if (len < keylen)
			continue;
		if (len > keylen)
			return false;
		if (memcmp(base + start, key, keylen) == 0)
		{
			uint32		j;

			/* the value is entry count + i: keep summing up to it */
			for (j = i + 1; j <= count + i; j++)
			{
				JEntry		ej = c->children[j];

				start = end;
				end = JBE_HAS_OFF(ej) ? JBE_OFFLENFLD(ej) : start + JBE_OFFLENFLD(ej);
			}
			FillEntry(c, (int) (count + i), base, start, end - start, out);
			return true;
		}
	}
	return false;
}

/*
 * memcmp for the short strings of names and keys: inline, no library call
 * (which costs more than the comparison itself here).
 */
static inline int
ShortCompare(const char *a, const char *b, uint32 len)
{
	uint32		k;

	for (k = 0; k < len; k++)
		if (a[k] != b[k])
			return (unsigned char) a[k] < (unsigned char) b[k] ? -1 : 1;
	return 0;
}

/*
 * Merge a program's names with the keys of object c (count keys, key text at
 * base): both are sorted by length, then bytes, so one pass finds every name
 * that is a key.  Writes the matches in key order; returns how many.
 */
static int
MergeNames(JsonbContainer *c, uint32 count, const char *base,
		   const TmplName *names, int nnames, BindMatch *match)
{
	uint32		end = 0;
	uint32		i;
	int			j = 0;
	int			n = 0;

	for (i = 0; i < count && j < nnames; i++)
	{
		JEntry		e = c->children[i];
		uint32		start = end;
		uint32		klen;

		end = JBE_HAS_OFF(e) ? JBE_OFFLENFLD(e) : start + JBE_OFFLENFLD(e);
		klen = end - start;
		while (j < nnames && names[j].len < klen)
			j++;
		while (j < nnames && names[j].len == klen)
		{
			int			cmp = ShortCompare(names[j].s, base + start, klen);

			if (cmp > 0)
				break;
			if (cmp == 0)
			{
				match[n].name = j++;
				match[n].key = i;
				n++;
				break;
			}
			j++;
		}
	}
	return n;
}

/*
 * memcmp(a, b, n) == 0 for the few bytes of a key section, inline: words,
 * the last one overlapping the one before (no byte loop for the tail).
 */
static inline bool
SameBytes(const char *a, const char *b, size_t n)
{
	uint64		x,
				y;
	uint32		u,
				v;
	size_t		i;

	if (n >= 8)
	{
		for (i = 0; i + 8 < n; i += 8)
		{
			memcpy(&x, a + i, 8);
			memcpy(&y, b + i, 8);
			if (x != y)
				return false;
		}
		memcpy(&x, a + n - 8, 8);
		memcpy(&y, b + n - 8, 8);
		return x == y;
	}
	if (n >= 4)
	{
		memcpy(&u, a, 4);
		memcpy(&v, b, 4);
		if (u != v)
			return false;
		memcpy(&u, a + n - 4, 4);
		memcpy(&v, b + n - 4, 4);
		return u == v;
	}
	for (i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/*
 * Is sh remembered for these names and object c's key section?  Equal key
 * JEntries mean equal key lengths, so the key text to compare is as long as
 * the remembered one.
 */
static inline bool
ShapeFits(const BindShape *sh, const TmplName *names, int nnames, JsonbContainer *c,
		  uint32 count, const char *base)
{
	return sh->names == names && sh->count == count && sh->nnames == nnames &&
		sh->generation == template_cache_generation &&
		SameBytes(sh->keys, (const char *) c->children, count * sizeof(JEntry)) &&
		SameBytes(sh->keys + count * sizeof(JEntry), base, sh->size - count * sizeof(JEntry));
}

/*
 * The shape remembered for these names and object c's key section, or NULL;
 * first the one the previous object bound had (last, may be NULL): the
 * elements of an array mostly share one.
 */
static BindShape *
FindShape(BindShapes *bs, const BindShape *last, const TmplName *names, int nnames,
		  JsonbContainer *c, uint32 count, const char *base)
{
	int			k;

	if (last != NULL && ShapeFits(last, names, nnames, c, count, base))
		return (BindShape *) last;
	for (k = 0; k < BIND_SHAPES; k++)
	{
		BindShape  *sh = &bs->shape[k];

		if (sh != last && ShapeFits(sh, names, nnames, c, count, base))
			return sh;
	}
	return NULL;
}

/* Remember the matches of a merge for this shape (replacing the oldest). */
static void
RememberShape(BindShapes *bs, MemoryContext mcxt, const TmplName *names, int nnames,
			  JsonbContainer *c, uint32 count, const char *base, uint32 size,
			  const BindMatch *match, int nmatch)
{
	BindShape  *sh = &bs->shape[bs->next];

	bs->next = (bs->next + 1) % BIND_SHAPES;
	sh->names = NULL;			/* unusable until complete */
	if (sh->cap_keys < size)
	{
		if (sh->keys)
			pfree(sh->keys);
		sh->keys = MemoryContextAlloc(mcxt, size);
		sh->cap_keys = size;
	}
	if (sh->cap_match < nmatch)
	{
		if (sh->match)
			pfree(sh->match);
		sh->match = MemoryContextAlloc(mcxt, nmatch * sizeof(BindMatch));
		sh->cap_match = nmatch;
	}
	if (size > 0)				/* an empty object has no keys (and sh->keys may be NULL) */
	{
		memcpy(sh->keys, c->children, count * sizeof(JEntry));
		memcpy(sh->keys + count * sizeof(JEntry), base, size - count * sizeof(JEntry));
	}
	if (nmatch > 0)
		memcpy(sh->match, match, nmatch * sizeof(BindMatch));
	sh->nmatch = nmatch;
	sh->generation = template_cache_generation;
	sh->nnames = nnames;
	sh->count = count;
	sh->size = size;
	sh->names = names;
}

/*
 * Find all of a program's names in a jsonb object at once (TmplModel.bind).
 * Which key each name is comes from a remembered shape or a merge; then one
 * running sum over the value entries, up to the last key matched, finds the
 * values: strings are handed over in place, anything else by a handle for
 * JbFetch, the value's entry index (high half) and data offset (low half).
 */
static bool
JbBind(void *ctx, const TmplValue *object, const TmplName *names, int nnames, TmplSlot *slots)
{
	RenderCtx  *rc = (RenderCtx *) ctx;
	BindShapes *bs = &rc->cc->shapes;
	JsonbContainer *c = (JsonbContainer *) object->ref;
	uint32		count = JsonContainerSize(c);
	char	   *base = (char *) &c->children[count * 2];
	BindShape  *sh = FindShape(bs, rc->bound_shape, names, nnames, c, count, base);
	uint32		end;			/* running offset; first, where the key text ends */
	const BindMatch *match;
	int			nmatch;
	int			m;
	uint32		i;

	if (sh != NULL)
	{
		match = sh->match;
		nmatch = sh->nmatch;
		end = sh->size - count * sizeof(JEntry);
	}
	else
	{
		uint32		size;

		end = getJsonbOffset(c, (int) count);
		size = count * sizeof(JEntry) + end;
		if (bs->cap_scratch < nnames)
		{
			if (bs->scratch)
				pfree(bs->scratch);
			bs->scratch = MemoryContextAlloc(rc->cc->mcxt, nnames * sizeof(BindMatch));
			bs->cap_scratch = nnames;
		}
		nmatch = MergeNames(c, count, base, names, nnames, bs->scratch);
		match = bs->scratch;
		if (size <= BIND_SHAPE_MAX)
			RememberShape(bs, rc->cc->mcxt, names, nnames, c, count, base, size,
						  match, nmatch);
		rc->bound_shape = NULL; /* a remembered shape may have been replaced */
	}

	/*
	 * Names that are no key are missing (other fields are read only for a
	 * match).  When these very slots were last written for this shape (the
	 * elements of a loop, bound in turn in the same slots), only the matched
	 * ones are rewritten below: the others are missing already.
	 */
	if (sh == NULL || rc->bound_slots != slots || rc->bound_shape != sh)
		for (m = 0; m < nnames; m++)
			slots[m].kind = TMPL_MISSING;
	rc->bound_slots = slots;
	rc->bound_shape = sh;
	m = 0;
	for (i = 0; m < nmatch; i++)
	{
		JEntry		e = c->children[count + i];
		uint32		start = end;

		end = JBE_HAS_OFF(e) ? JBE_OFFLENFLD(e) : start + JBE_OFFLENFLD(e);
		if (match[m].key == i)
		{
			TmplSlot   *slot = &slots[match[m].name];

			if (JBE_ISSTRING(e))
			{
				slot->kind = TMPL_STRING;
				slot->str = base + start;
				slot->len = end - start;
			}
			else if (JBE_ISBOOL_TRUE(e) || JBE_ISBOOL_FALSE(e))
			{
				slot->kind = TMPL_BOOL;
				slot->len = JBE_ISBOOL_TRUE(e) ? 1 : 0;
			}
			else
			{
				slot->kind = TMPL_NULL; /* not missing: JbFetch tells */
				slot->handle = ((uint64) (count + i) << 32) | start;
			}
			m++;
		}
	}
	return true;
}

/* The value behind a handle of JbBind. */
static void
JbFetch(void *ctx, const TmplValue *object, uint64 handle, TmplValue *out)
{
	JsonbContainer *c = (JsonbContainer *) object->ref;
	uint32		count = JsonContainerSize(c);
	uint32		index = (uint32) (handle >> 32);
	uint32		start = (uint32) handle;
	JEntry		e = c->children[index];
	uint32		len = JBE_HAS_OFF(e) ? JBE_OFFLENFLD(e) - start : JBE_OFFLENFLD(e);

	FillEntry(c, (int) index, (char *) &c->children[count * 2], start, len, out);
}

/*
 * Element i of a jsonb array, read in place.  When it follows the element
 * read last (a loop), its data starts where that one ended.
 */
static bool
JbAt(void *ctx, const TmplValue *array, size_t index, TmplValue *out)
{
	RenderCtx  *rc = (RenderCtx *) ctx;
	JsonbContainer *c = (JsonbContainer *) array->ref;
	uint32		n;
	uint32		start;
	uint32		end;
	JEntry		e;

	if (array->kind != TMPL_ARRAY || index >= (n = JsonContainerSize(c)))
		return false;
	if (rc != NULL && rc->at_array == c && index == (size_t) rc->at_index + 1)
		start = rc->at_end;
	else
		start = getJsonbOffset(c, (int) index);
	e = c->children[index];
	end = JBE_HAS_OFF(e) ? JBE_OFFLENFLD(e) : start + JBE_OFFLENFLD(e);
	FillEntry(c, (int) index, (char *) &c->children[n], start, end - start, out);
	if (rc != NULL)
	{
		rc->at_array = c;
		rc->at_index = (uint32) index;
		rc->at_end = end;
	}
	return true;
}

static bool
JbToJson(void *ctx, const TmplValue *value, CoreBuf *out)
{
	char	   *s = JsonbToCString(NULL, (JsonbContainer *) value->ref, 64);
	bool		ok = CoreBufAppendStr(out, s);

	pfree(s);
	return ok;
}

/*
 * Rendering over a table scan reads most of each row's document, and rows
 * come from shared buffers that are rarely in the CPU cache: waiting for
 * each cache line as a lookup first touches it costs more than the lookups.
 * In a heap page the scan's next tuples lie just below the current one (a
 * page fills from its end), so ask the CPU for the 2 kB below this datum
 * now: the next row's document is on its way while this one renders.  A
 * prefetch is only a hint: it never faults and reads nothing the program
 * sees, whatever the address holds.
 */
static uintptr_t prefetch_last = 0;	/* the previous datum: only a hint */

static inline void
PrefetchNextRows(const void *datum)
{
	uintptr_t	p = (uintptr_t) datum;
	uintptr_t	off;
	uintptr_t	lim;

	/*
	 * Not just below the previous datum: a new page, whose first row nobody
	 * asked for; ask for all of it at once rather than line by line.
	 */
	if (p >= prefetch_last || prefetch_last - p > 4096)
		for (off = 0; off < VARSIZE_ANY(datum) && off < 4096; off += 64)
			__builtin_prefetch((const void *) (p + off));
	prefetch_last = p;
	lim = p < 2048 ? p : 2048;
	for (off = 64; off <= lim; off += 64)
		__builtin_prefetch((const void *) (p - off));
}

/* The top-level value of a jsonb document (NULL: no data at all). */
static void
JsonbRoot(Jsonb *jb, TmplValue *root)
{
	memset(root, 0, sizeof(*root));
	if (jb == NULL)
	{
		root->kind = TMPL_NULL;
		return;
	}
	PrefetchNextRows(jb);
	root->ref = &jb->root;
	if (JB_ROOT_IS_SCALAR(jb))
	{
		root->kind = TMPL_ARRAY;
		root->count = 1;
		JbAt(NULL, root, 0, root);
	}
	else if (JB_ROOT_IS_ARRAY(jb))
	{
		root->kind = TMPL_ARRAY;
		root->count = JB_ROOT_COUNT(jb);
	}
	else
		root->kind = TMPL_OBJECT;
}

/* ---- rendering ---- */


static CallCache *
GetCallCache(FunctionCallInfo fcinfo)
{
	CallCache  *cc = (CallCache *) fcinfo->flinfo->fn_extra;

	if (cc == NULL)
	{
		cc = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CallCache));
		cc->mcxt = fcinfo->flinfo->fn_mcxt;
		cc->stable = get_fn_expr_arg_stable(fcinfo->flinfo, 0);
		fcinfo->flinfo->fn_extra = cc;
	}
	return cc;
}

/*
 * The program for src: the one this call site used last when the text is the
 * same (no hashing), else from the backend cache.
 */
static const TmplProgram *
ProgramFor(CallCache *cc, const char *src, size_t len)
{
	const TmplProgram *volatile prog = NULL;

	if (cc->prog && cc->generation == template_cache_generation &&
		cc->len == len && (cc->stable || memcmp(cc->text, src, len) == 0))
		return cc->prog;
	TemplateCacheTrim();
	TemplateCacheEnter();
	PG_TRY();
	{
		prog = TemplateCompile(src, len, NULL, NULL, 0);
	}
	PG_FINALLY();
	{
		TemplateCacheLeave();
	}
	PG_END_TRY();
	if (cc->text == NULL || cc->len < len)
	{
		if (cc->text)
			pfree((char *) cc->text);
		cc->text = MemoryContextAlloc(cc->mcxt, len + 1);
	}
	memcpy((char *) cc->text, src, len);
	cc->len = len;
	cc->prog = prog;
	cc->generation = template_cache_generation;
	return prog;
}


static const TmplProgram *
JsonbPartial(void *ctx, const char *name, size_t len, CoreError *err)
{
	RenderCtx  *rc = (RenderCtx *) ctx;
	JsonbValue	jv;

	if (rc->partials == NULL || !JB_ROOT_IS_OBJECT(rc->partials) ||
		getKeyJsonValueFromContainer(&rc->partials->root, name, (int) len, &jv) == NULL ||
		jv.type != jbvString)
		return NULL;
	return TemplateCompile(jv.val.string.val, jv.val.string.len,
						   "partial \"%.*s\"", name, len);
}

/*
 * TmplRender with the template cache held: the partials it compiles on the
 * way must not trim the cache (and free prog) under it.
 */
static bool
RenderGuarded(const TmplProgram *prog, const TmplModel *model, const TmplValue *root,
			  const TmplRenderOptions *opts, CoreBuf *out, CoreError *err)
{
	volatile bool ok = false;

	TemplateCacheEnter();
	PG_TRY();
	{
		ok = TmplRender(prog, model, root, opts, out, err);
	}
	PG_FINALLY();
	{
		TemplateCacheLeave();
	}
	PG_END_TRY();
	return ok;
}

/* Render prog into a new text datum; errors of the renderer become ereport. */
static text *
RenderToText(const TmplProgram *prog, const TmplModel *model, const TmplValue *root,
			 const TmplRenderOptions *opts, CallCache *cc)
{
	CoreBuf		out;
	CoreError	err;
	CoreAllocator here;
	size_t		literal = TmplLiteralSize(prog);
	size_t		guess = literal + literal / 4 + 64;
	bool		ok;
	text	   *result;

	if (cc && cc->out_guess > guess)
		guess = cc->out_guess;

	/*
	 * Between 4 kB and 8 kB a request takes an 8 kB chunk, which after the
	 * per-row reset never fits the context's first block: the allocator then
	 * makes a new block and carves the old one's free space into its free
	 * lists, every row.  Beyond ALLOCSET_SEPARATE_THRESHOLD a request gets a
	 * block of its own straight from malloc, which costs less.
	 */
	if (guess + VARHDRSZ > 4096 && guess + VARHDRSZ <= ALLOCSET_SEPARATE_THRESHOLD)
		guess = ALLOCSET_SEPARATE_THRESHOLD + 1 - VARHDRSZ;
	/*
	 * The output stays in the caller's memory context even when a partial
	 * lookup connects to SPI (which switches contexts) in the middle.
	 */
	here = template_context_allocator;
	here.ctx = CurrentMemoryContext;
	CoreBufInit(&out, &here, guess + VARHDRSZ);
	if (!out.oom)
		out.len = VARHDRSZ;		/* the varlena header, set at the end */
	if (!TmplUsesPartials(prog))
	{
		/*
		 * Only a partial compiles a program (and may trim the cache) while
		 * rendering: without one there is nothing to guard.
		 */
		ok = TmplRender(prog, model, root, opts, &out, &err);
	}
	else
		ok = RenderGuarded(prog, model, root, opts, &out, &err);
	if (!ok)
	{
		if (err.code == CORE_ERR_LIMIT && out.overflow)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("rendered template exceeds segment.max_render_size (%d kB)",
							segment_max_render_size),
					 errhint("Raise segment.max_render_size, or render less data.")));
		if (err.code == CORE_ERR_LIMIT)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("template rendering stopped: %s", err.message),
					 errhint("A partial that includes itself needs a section that ends the recursion.")));
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	if (cc && out.len > cc->out_guess)
		cc->out_guess = out.len;
	result = (text *) out.data;
	SET_VARSIZE(result, out.len);
	return result;
}

/* The jsonb model with the given way of finding partials. */
static void
InitModel(TmplModel *m, const TmplProgram *(*partial) (void *, const char *, size_t, CoreError *),
		  RenderCtx *rc)
{
	m->get = JbGet;
	m->at = JbAt;
	m->to_json = JbToJson;
	m->partial = partial;
	m->bind = JbBind;
	m->fetch = JbFetch;
	m->ctx = rc;
}

static void
InitOptions(TmplRenderOptions *o, bool escape, bool single_line)
{
	memset(o, 0, sizeof(*o));
	o->escape_html = escape;
	o->single_line = single_line;
	o->max_output = (size_t) segment_max_render_size * 1024;
	o->max_partial_depth = TMPL_DEFAULT_PARTIAL_DEPTH;
}

/*
 * segment.template_valid(text) -> boolean: true, or the parse error.  The
 * CHECK of the segment.template domain.
 */
PG_FUNCTION_INFO_V1(segment_template_valid);
Datum
segment_template_valid(PG_FUNCTION_ARGS)
{
	text	   *t;
	char	   *volatile what = NULL;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	t = PG_GETARG_TEXT_PP(0);
	if (PG_NARGS() > 1 && !PG_ARGISNULL(1))
		what = text_to_cstring(PG_GETARG_TEXT_PP(1));
	TemplateCacheTrim();
	TemplateCacheEnter();
	PG_TRY();
	{
		TemplateCompile(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), what ? "%.*s" : NULL,
						what, what ? strlen(what) : 0);
	}
	PG_FINALLY();
	{
		TemplateCacheLeave();
	}
	PG_END_TRY();
	PG_RETURN_BOOL(true);
}

/*
 * segment.render(template text, context jsonb, partials jsonb) -> text:
 * Mustache over a jsonb document, partials from a jsonb object.
 */
PG_FUNCTION_INFO_V1(segment_render);
Datum
segment_render(PG_FUNCTION_ARGS)
{
	text	   *t;
	Jsonb	   *data;
	CallCache  *cc = GetCallCache(fcinfo);
	RenderCtx	rc;
	TmplModel	model;
	TmplValue	root;
	TmplRenderOptions opts;
	const TmplProgram *prog;
	const char *src;
	size_t		len;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	t = PG_GETARG_TEXT_PP(0);
	data = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	src = VARDATA_ANY(t);
	len = VARSIZE_ANY_EXHDR(t);
	memset(&rc, 0, sizeof(rc));
	rc.partials = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	rc.cc = cc;
	prog = ProgramFor(cc, src, len);
	InitModel(&model, JsonbPartial, &rc);
	JsonbRoot(data, &root);
	InitOptions(&opts, true, false);
	PG_RETURN_TEXT_P(RenderToText(prog, &model, &root, &opts, cc));
}

/* ---- render_stored: partials are other stored templates ---- */

typedef struct StoredPartial
{
	char		name[NAMEDATALEN * 2];	/* key */
	char	   *text;			/* NULL: no such template */
	size_t		len;
} StoredPartial;

static const TmplProgram *
StoredPartialLookup(void *ctx, const char *name, size_t len, CoreError *err)
{
	RenderCtx  *rc = (RenderCtx *) ctx;
	CallCache  *cc = rc->cc;
	char		key[NAMEDATALEN * 2];
	StoredPartial *sp;
	bool		found;

	if (len >= sizeof(key))
		return NULL;
	memset(key, 0, sizeof(key));
	memcpy(key, name, len);
	if (cc->stored == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(StoredPartial);
		ctl.hcxt = cc->mcxt;
		cc->stored = hash_create("segment stored partials", 16, &ctl,
								 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	sp = hash_search(cc->stored, key, HASH_ENTER, &found);
	if (!found)
	{
		char	   *sql;
		Datum		arg = CStringGetTextDatum(key);
		Oid			argtype = TEXTOID;
		int			rc_spi;

		sp->text = NULL;
		if (!rc->spi_connected)
		{
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			rc->spi_connected = true;
		}
		sql = psprintf("SELECT %s::text FROM segment.templates WHERE name = $1", rc->part);
		rc_spi = SPI_execute_with_args(sql, 1, &argtype, &arg, NULL, true, 1);
		if (rc_spi != SPI_OK_SELECT)
			elog(ERROR, "reading segment.templates failed");
		if (SPI_processed == 1)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
			{
				text	   *tx = DatumGetTextPP(d);

				sp->len = VARSIZE_ANY_EXHDR(tx);
				sp->text = MemoryContextAlloc(cc->mcxt, sp->len + 1);
				memcpy(sp->text, VARDATA_ANY(tx), sp->len);
			}
		}
		SPI_freetuptable(SPI_tuptable);
	}
	if (sp->text == NULL)
		return NULL;
	if (strcmp(rc->part, "html") == 0)
		return TemplateCompile(sp->text, sp->len, "html part of template \"%.*s\"", name, len);
	if (strcmp(rc->part, "text") == 0)
		return TemplateCompile(sp->text, sp->len, "text part of template \"%.*s\"", name, len);
	return TemplateCompile(sp->text, sp->len, "subject of template \"%.*s\"", name, len);
}

/*
 * segment.render_stored(template text, context jsonb, part text) -> text:
 * render as part `part` of an email ('subject', 'html' or 'text'): partials
 * are the same part of other stored templates; html escapes values, text
 * and subject do not; subject is kept on one line.
 */
PG_FUNCTION_INFO_V1(segment_render_stored);
Datum
segment_render_stored(PG_FUNCTION_ARGS)
{
	text	   *t;
	Jsonb	   *data;
	char	   *part;
	CallCache  *cc = GetCallCache(fcinfo);
	RenderCtx	rc;
	TmplModel	model;
	TmplValue	root;
	TmplRenderOptions opts;
	const TmplProgram *prog;
	const char *src;
	size_t		len;
	text	   *result;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	t = PG_GETARG_TEXT_PP(0);
	data = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	part = PG_ARGISNULL(2) ? "html" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	src = VARDATA_ANY(t);
	len = VARSIZE_ANY_EXHDR(t);

	if (strcmp(part, "html") != 0 && strcmp(part, "text") != 0 && strcmp(part, "subject") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown template part \"%s\"", part),
				 errhint("The parts are subject, html and text.")));
	memset(&rc, 0, sizeof(rc));
	rc.cc = cc;
	rc.part = part;
	prog = ProgramFor(cc, src, len);
	InitModel(&model, StoredPartialLookup, &rc);
	JsonbRoot(data, &root);
	InitOptions(&opts, strcmp(part, "html") == 0, strcmp(part, "subject") == 0);
	result = RenderToText(prog, &model, &root, &opts, cc);
	if (rc.spi_connected)
		SPI_finish();
	PG_RETURN_TEXT_P(result);
}

/* segment.html_to_text(html text) -> text: the derived text part. */
PG_FUNCTION_INFO_V1(segment_html_to_text);
Datum
segment_html_to_text(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	CoreBuf		out;
	text	   *result;

	CoreBufInit(&out, &template_palloc_allocator, VARSIZE_ANY_EXHDR(t) + VARHDRSZ + 16);
	CoreBufAppend(&out, "\0\0\0\0", VARHDRSZ);
	TmplHtmlToText(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &out);
	result = (text *) out.data;
	SET_VARSIZE(result, out.len);
	PG_RETURN_TEXT_P(result);
}

void
TemplateDefineGucs(void)
{
	DefineCustomIntVariable("segment.max_render_size",
							"Largest output one template rendering may produce.",
							"Rendering stops with an error beyond it.",
							&segment_max_render_size, 1024, 1, 1024 * 1024,
							PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
}
