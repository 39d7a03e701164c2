/*
 * template_render.c — runs a compiled template over data reached through a
 * TmplModel.
 *
 * The context stack holds the values sections entered; a name is looked up
 * from the innermost context outwards, then its dotted tail inside what was
 * found (the Mustache rules).  Output goes straight into the caller's
 * buffer: literal chunks are copied, values escaped on the way.  Nothing is
 * allocated except the output and, when filters are used, two scratch
 * buffers.  No PostgreSQL headers.
 *
 * When the model can bind (TmplModel.bind), each object context finds all of
 * the program's names in one pass the first time a name is looked up in it;
 * the handles live in a fixed slot area on the stack, taken and given back
 * as contexts are pushed and popped, and every later lookup there is an
 * array access.  Without room (or a bind callback) lookups use get.
 */
#include "template_int.h"

#include <stdio.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The few helpers of the per-node hot path must be inlined whatever their size. */
#ifdef __GNUC__
#define HOT_INLINE inline __attribute__((always_inline))
#else
#define HOT_INLINE inline
#endif

#define MAX_FRAMES 256
#define MAX_INDENTS 64
#define MAX_OVERRIDES 64
#define SLOT_AREA 512			/* bound names, for all contexts together */

/*
 * An object context's names found for one program: p NULL = not yet;
 * slots NULL with p set = the model could not bind, use get.
 */
typedef struct Binding
{
	const TmplProgram *p;
	TmplSlot   *slots;
} Binding;

typedef struct Frame
{
	TmplValue	v;
	bool		iter;			/* pushed by a loop: @index, @first, @last */
	size_t		index;
	size_t		count;
	Binding		bound;
	size_t		slot_mark;		/* slot area in use when the frame was pushed */
	char		numbuf[24];
} Frame;

typedef struct Override
{
	const TmplProgram *p;
	int			node;			/* the OP_PARENT node whose body overrides */
} Override;

typedef struct Render
{
	const TmplModel *m;
	const TmplRenderOptions *o;
	CoreBuf    *out;
	CoreError  *err;
	TmplValue	root;
	Binding		root_bound;
	Frame		frames[MAX_FRAMES];
	int			nframes;
	int			partial_depth;
	int			max_partial_depth;
	struct
	{
		const char *s;
		size_t		len;
	}			indents[MAX_INDENTS];
	int			nindents;
	bool		pending_indent;
	Override	overrides[MAX_OVERRIDES];
	int			noverrides;
	int			override_limit; /* blocks search overrides[0, limit) */
	CoreBuf		scratch[2];
	bool		have_scratch;
	bool		escape;			/* the options' escape_html */
	size_t		limit;			/* output length allowed */
	char	   *w;				/* Put's fast path: next byte of the output */
	char	   *wend;			/* ... and how far it may write */
	size_t		slot_top;		/* slots[0, slot_top) belong to bindings */
	TmplSlot	slots[SLOT_AREA];
} Render;

static bool RenderRange(Render *r, const TmplProgram *p, int from, int to);
static int	PlainRun(Render *r, const TmplProgram *p, int i);

/*
 * Render a section's body, nodes [from, to): when the body is one run of
 * text and variables (the usual loop body), straight to PlainRun.
 */
static inline bool
RenderBody(Render *r, const TmplProgram *p, int from, int to)
{
	if (from < to && p->nodes[from].run_end == to && r->nindents == 0)
		return PlainRun(r, p, from) >= 0;
	return RenderRange(r, p, from, to);
}

static bool
Fail(Render *r, CoreErrorCode code, const char *fmt,...)
	__attribute__((format(printf, 3, 4)));

static bool
Fail(Render *r, CoreErrorCode code, const char *fmt,...)
{
	va_list		ap;

	if (r->err->code != CORE_OK)
		return false;
	r->err->code = code;
	va_start(ap, fmt);
	vsnprintf(r->err->message, sizeof(r->err->message), fmt, ap);
	va_end(ap);
	return false;
}

/*
 * memcpy for the output: most pieces (values, the text between two tags) are
 * short, and copying them as two overlapping blocks beats a library call.
 */
static HOT_INLINE void
CopyBytes(char *d, const char *s, size_t len)
{
	if (len > 32)
		memcpy(d, s, len);
	else if (len >= 16)
	{
#ifdef __SSE2__
		__m128i		a = _mm_loadu_si128((const __m128i *) s);
		__m128i		b = _mm_loadu_si128((const __m128i *) (s + len - 16));

		_mm_storeu_si128((__m128i *) d, a);
		_mm_storeu_si128((__m128i *) (d + len - 16), b);
#else
		memcpy(d, s, len);
#endif
	}
	else if (len >= 8)
	{
		uint64_t	a,
					b;

		memcpy(&a, s, 8);
		memcpy(&b, s + len - 8, 8);
		memcpy(d, &a, 8);
		memcpy(d + len - 8, &b, 8);
	}
	else if (len >= 4)
	{
		uint32_t	a,
					b;

		memcpy(&a, s, 4);
		memcpy(&b, s + len - 4, 4);
		memcpy(d, &a, 4);
		memcpy(d + len - 4, &b, 4);
	}
	else if (len > 0)
	{
		char		a = s[0],
					m = s[len / 2],
					z = s[len - 1];

		d[0] = a;
		d[len / 2] = m;
		d[len - 1] = z;
	}
}

/*
 * Where Put writes (w) and how far it may go before taking the slow path
 * (wend): below the buffer's capacity, keeping room for the NUL, and within
 * the limit.  While rendering, out->len is behind: w is the truth, and
 * SyncOut writes it back.
 */
static void
SetRoom(Render *r)
{
	CoreBuf    *b = r->out;
	size_t		room = b->cap > 0 ? b->cap - 1 : 0;

	if (room > r->limit)
		room = r->limit;
	if (room < b->len)
		room = b->len;
	if (b->data == NULL)
	{
		r->w = r->wend = NULL;	/* out of memory already: the render fails */
		return;
	}
	r->w = b->data + b->len;
	r->wend = b->data + room;
}

static void
SyncOut(Render *r)
{
	if (r->out->data != NULL)
		r->out->len = (size_t) (r->w - r->out->data);
}

/* Turn a failed append into the right error. */
static bool
OutputFailed(Render *r)
{
	if (r->out->overflow)
		return Fail(r, CORE_ERR_LIMIT, "rendered output exceeds %zu bytes", r->o->max_output);
	return Fail(r, CORE_ERR_OOM, "out of memory");
}

/*
 * Append to the output.  The common case (room left, under the limit) is a
 * plain copy; the terminating NUL is written once at the end of rendering.
 */
static HOT_INLINE bool
Put(Render *r, const char *s, size_t len)
{
	if (len <= (size_t) (r->wend - r->w))
	{
		CopyBytes(r->w, s, len);
		r->w += len;
		return true;
	}
	SyncOut(r);
	if (!CoreBufAppend(r->out, s, len))
		return OutputFailed(r);
	SetRoom(r);
	return true;
}

/* Indentation of the standalone partials we are inside, at a line start. */
static bool
PutIndent(Render *r)
{
	int			i;

	r->pending_indent = false;
	for (i = 0; i < r->nindents; i++)
		if (!Put(r, r->indents[i].s, r->indents[i].len))
			return false;
	return true;
}

/*
 * Literal template text: inside an indented partial every line of the
 * partial's own text starts with the indentation.
 */
static HOT_INLINE bool
EmitText(Render *r, const char *s, size_t len)
{
	if (r->nindents == 0)
		return Put(r, s, len);
	while (len > 0)
	{
		const char *nl = memchr(s, '\n', len);
		size_t		n = nl ? (size_t) (nl - s) + 1 : len;

		if (r->pending_indent && !PutIndent(r))
			return false;
		if (!Put(r, s, n))
			return false;
		if (nl)
			r->pending_indent = true;
		s += n;
		len -= n;
	}
	return true;
}

/* Characters HTML escaping replaces. */
static const unsigned char html_special[256] = {
	['&'] = 1,['<'] = 1,['>'] = 1,['"'] = 1,['\''] = 1
};

/* Does the 8-byte word w contain byte c?  (The classic has-zero-byte test.) */
#define HAS_BYTE(w, c) \
	((((w) ^ (0x0101010101010101ULL * (c))) - 0x0101010101010101ULL) & \
	 ~((w) ^ (0x0101010101010101ULL * (c))) & 0x8080808080808080ULL)

/* Does the 8-byte word at s hold a character HTML escaping replaces? */
static inline bool
WordHasSpecial(const char *s)
{
	uint64_t	w;

	memcpy(&w, s, 8);
	return (HAS_BYTE(w, '&') | HAS_BYTE(w, '<') | HAS_BYTE(w, '>') |
			HAS_BYTE(w, '"') | HAS_BYTE(w, '\'')) != 0;
}

#ifdef __SSE2__
/*
 * Bit k set: byte k of v is a character HTML escaping replaces.  Three
 * comparisons test all five: c | 2 is '>' only for '<' and '>', c | 1 is
 * '\'' only for '&' and '\'', and '"' is tested alone.
 */
static inline unsigned int
SpecialMask16Vec(__m128i v)
{
	__m128i		m;

	m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(_mm_or_si128(v, _mm_set1_epi8(2)),
												 _mm_set1_epi8('>')),
								  _mm_cmpeq_epi8(_mm_or_si128(v, _mm_set1_epi8(1)),
												 _mm_set1_epi8('\''))),
					 _mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
	return (unsigned int) _mm_movemask_epi8(m);
}

/* The same for the 16 bytes at s. */
static inline unsigned int
SpecialMask16(const char *s)
{
	return SpecialMask16Vec(_mm_loadu_si128((const __m128i *) s));
}
#endif

static inline size_t SafePrefix(const char *s, size_t len);

/*
 * Does s need any HTML escaping?  The question asked for every value printed,
 * almost always answered no, so it is answered with few branches: the bytes
 * are gathered into one 16-byte block (two overlapping 8- or 4-byte loads, or
 * three single bytes, never reading outside s) or scanned in blocks, and all
 * five characters tested at once.
 */
static HOT_INLINE bool
HasSpecial(const char *s, size_t len)
{
#ifdef __SSE2__
	__m128i		v;

	if (len >= 16)
	{
		unsigned int m = 0;
		size_t		i;

		for (i = 0; i + 16 < len; i += 16)
			m |= SpecialMask16(s + i);
		return (m | SpecialMask16(s + len - 16)) != 0;
	}
	if (len >= 8)
		v = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *) s),
							   _mm_loadl_epi64((const __m128i *) (s + len - 8)));
	else if (len >= 4)
	{
		uint32_t	a,
					b;

		memcpy(&a, s, 4);
		memcpy(&b, s + len - 4, 4);
		v = _mm_set_epi32(0, 0, (int) b, (int) a);
	}
	else if (len > 0)
		v = _mm_set_epi32(0, 0, 0, (int) ((unsigned char) s[0] |
										  (unsigned char) s[len / 2] << 8 |
										  (unsigned char) s[len - 1] << 16));
	else
		return false;
	return SpecialMask16Vec(v) != 0;
#else
	return SafePrefix(s, len) != len;
#endif
}

/*
 * Length of the prefix of s that needs no HTML escaping.  Values are mostly
 * plain text, so whole blocks are checked at a time (16 bytes with SSE2, else
 * 8), the last one overlapping the previous so no byte is read outside s;
 * only strings shorter than a word go byte by byte.
 */
static inline size_t
SafePrefix(const char *s, size_t len)
{
	size_t		i = 0;

#ifdef __SSE2__
	if (len >= 16)
	{
		unsigned int m;

		for (; i + 16 <= len; i += 16)
			if ((m = SpecialMask16(s + i)) != 0)
				return i + (size_t) __builtin_ctz(m);
		if (i == len)
			return len;
		/* bit k of the last block is byte len - 16 + k: keep those from i on */
		m = SpecialMask16(s + len - 16) >> (16 - (len - i));
		return m ? i + (size_t) __builtin_ctz(m) : len;
	}
#endif
	if (len >= 8)
	{
		for (; i + 8 <= len; i += 8)
			if (WordHasSpecial(s + i))
				break;
		if (i + 8 > len && (i == len || !WordHasSpecial(s + len - 8)))
			return len;
	}
	while (i < len && !html_special[(unsigned char) s[i]])
		i++;
	return i;
}

/*
 * Copy a value's len bytes to d if none of them needs HTML escaping (true);
 * else false, with the bytes at d (room for len of them) left undefined.
 * The pieces are loaded once for both the test and the copy: most values
 * printed are short and clean.
 */
static HOT_INLINE bool
CopyIfSafe(char *d, const char *s, size_t len)
{
#ifdef __SSE2__
	if (len >= 16 && len <= 32)
	{
		__m128i		a = _mm_loadu_si128((const __m128i *) s);
		__m128i		b = _mm_loadu_si128((const __m128i *) (s + len - 16));

		if ((SpecialMask16Vec(a) | SpecialMask16Vec(b)) != 0)
			return false;
		_mm_storeu_si128((__m128i *) d, a);
		_mm_storeu_si128((__m128i *) (d + len - 16), b);
		return true;
	}
	if (len >= 8 && len < 16)
	{
		__m128i		a = _mm_loadl_epi64((const __m128i *) s);
		__m128i		b = _mm_loadl_epi64((const __m128i *) (s + len - 8));

		if (SpecialMask16Vec(_mm_unpacklo_epi64(a, b)) != 0)
			return false;
		_mm_storel_epi64((__m128i *) d, a);
		_mm_storel_epi64((__m128i *) (d + len - 8), b);
		return true;
	}
	if (len >= 4 && len < 8)
	{
		uint32_t	a,
					b;

		memcpy(&a, s, 4);
		memcpy(&b, s + len - 4, 4);
		if (SpecialMask16Vec(_mm_set_epi32(0, 0, (int) b, (int) a)) != 0)
			return false;
		memcpy(d, &a, 4);
		memcpy(d + len - 4, &b, 4);
		return true;
	}
#endif
	if (HasSpecial(s, len))
		return false;
	CopyBytes(d, s, len);
	return true;
}

/* A value's text, HTML-escaped unless raw. */
static bool
EmitValue(Render *r, const char *s, size_t len, bool raw)
{
	if (len == 0)
		return true;
	if (r->pending_indent && r->nindents > 0 && !PutIndent(r))
		return false;
	if (raw || !r->escape)
		return Put(r, s, len);
	while (len > 0)
	{
		size_t		run = SafePrefix(s, len);
		const char *ent;
		size_t		elen;

		if (run > 0 && !Put(r, s, run))
			return false;
		if (run == len)
			break;
		switch (s[run])
		{
			case '&':
				ent = "&amp;";
				elen = 5;
				break;
			case '<':
				ent = "&lt;";
				elen = 4;
				break;
			case '>':
				ent = "&gt;";
				elen = 4;
				break;
			case '"':
				ent = "&quot;";
				elen = 6;
				break;
			default:
				ent = "&#39;";
				elen = 5;
				break;
		}
		if (!Put(r, ent, elen))
			return false;
		s += run + 1;
		len -= run + 1;
	}
	return true;
}

/* A string value: the common case (nothing to escape) inline. */
static HOT_INLINE bool
EmitString(Render *r, const char *s, size_t len, bool raw)
{
	if (raw || !r->escape || !HasSpecial(s, len))
		return Put(r, s, len);
	return EmitValue(r, s, len, raw);
}

static void
SetBool(TmplValue *v, bool b)
{
	memset(v, 0, sizeof(*v));
	v->kind = TMPL_BOOL;
	v->b = b;
}

/* A number held in a frame's buffer (for @index). */
static void
SetIndex(Frame *f, TmplValue *v)
{
	memset(v, 0, sizeof(*v));
	v->kind = TMPL_NUMBER;
	v->len = (size_t) snprintf(f->numbuf, sizeof(f->numbuf), "%zu", f->index);
	v->str = f->numbuf;
}

/*
 * Find program p's names in object v (a context) for binding b, taking slots
 * from the top of the slot area.  NULL when the model cannot bind or there
 * is no room: lookups in v then use get.
 */
static const TmplSlot *
Bind(Render *r, Binding *b, const TmplValue *v, const TmplProgram *p)
{
	b->p = p;
	b->slots = NULL;
	if (r->m->bind == NULL || p->nnames == 0 ||
		(size_t) p->nnames > SLOT_AREA - r->slot_top)
		return NULL;
	if (!r->m->bind(r->m->ctx, v, p->names, p->nnames, r->slots + r->slot_top))
		return NULL;
	b->slots = r->slots + r->slot_top;
	r->slot_top += (size_t) p->nnames;
	return b->slots;
}

/* One past the last slot binding b holds (0 when it holds none). */
static size_t
BindingEnd(Render *r, const Binding *b)
{
	return b->slots ? (size_t) (b->slots - r->slots) + (size_t) b->p->nnames : 0;
}

/*
 * Look a name (the first segment of a path) up the context stack, innermost
 * first: through the contexts' bindings when the model binds, else get.
 * False, with out missing, when no context has it.
 */
static inline bool
FindName(Render *r, const TmplProgram *p, const TmplSeg *s, TmplValue *out)
{
	int			i;

	for (i = r->nframes - 1; i >= -1; i--)
	{
		const TmplValue *ctx = i >= 0 ? &r->frames[i].v : &r->root;
		Binding    *b = i >= 0 ? &r->frames[i].bound : &r->root_bound;
		const TmplSlot *slots;

		if (ctx->kind != TMPL_OBJECT)
			continue;
		slots = b->p == p ? b->slots : Bind(r, b, ctx, p);
		if (slots != NULL && s->name != TMPL_NO_NAME)
		{
			const TmplSlot *slot = &slots[s->name];

			if (slot->kind == TMPL_MISSING)
				continue;
			if (slot->kind == TMPL_STRING)
			{
				out->kind = TMPL_STRING;
				out->b = false;
				out->str = slot->str;
				out->len = slot->len;
				out->ref = NULL;
				out->count = 0;
			}
			else if (slot->kind == TMPL_BOOL)
				SetBool(out, slot->len != 0);
			else
				r->m->fetch(r->m->ctx, ctx, slot->handle, out);
			return true;
		}
		if (r->m->get(r->m->ctx, ctx, p->pool + s->off, s->len, out))
			return true;
	}
	out->kind = TMPL_MISSING;
	return false;
}

/*
 * FindName's fast path for a section's plain name: the slot of the name
 * found by the same walk up the stack, with the context it is in (*ctx), when
 * every object context on the way is bound for p.  NULL whenever one is not
 * (or no context has the name): then FindName decides.
 */
static HOT_INLINE const TmplSlot *
BoundSlot(Render *r, const TmplProgram *p, uint32_t name, const TmplValue **ctx)
{
	const TmplSlot *slot;
	int			i;

	for (i = r->nframes - 1; i >= 0; i--)
	{
		const Frame *f = &r->frames[i];

		if (f->v.kind != TMPL_OBJECT)
			continue;
		if (f->bound.p != p || f->bound.slots == NULL)
			return NULL;
		slot = &f->bound.slots[name];
		if (slot->kind != TMPL_MISSING)
		{
			*ctx = &f->v;
			return slot;
		}
	}
	if (r->root.kind != TMPL_OBJECT || r->root_bound.p != p || r->root_bound.slots == NULL)
		return NULL;
	slot = &r->root_bound.slots[name];
	*ctx = &r->root;
	return slot->kind != TMPL_MISSING ? slot : NULL;
}

/*
 * FindName's fast path for printing: the slot of the name when it is a string
 * in a context already bound for p (BoundSlot's walk).  NULL whenever anything
 * else is involved (an unbound context, a value to fetch, no such name): then
 * FindName decides.
 */
static HOT_INLINE const TmplSlot *
BoundString(Render *r, const TmplProgram *p, uint32_t name)
{
	const TmplValue *ctx;
	const TmplSlot *slot = BoundSlot(r, p, name, &ctx);

	return slot != NULL && slot->kind == TMPL_STRING ? slot : NULL;
}

/*
 * Does the list hold the string key?  A name after a list reads the list as a
 * set of strings, so the contact context's tags are a map as well as a list
 * ({{#if tags.VIP}}); the Mustache spec gives lists no named members.
 */
static bool
ListHoldsString(Render *r, const TmplValue *list, const char *key, size_t keylen)
{
	size_t		i;
	TmplValue	el;

	for (i = 0; i < list->count; i++)
		if (r->m->at(r->m->ctx, list, i, &el) && el.kind == TMPL_STRING &&
			el.len == keylen && memcmp(el.str, key, keylen) == 0)
			return true;
	return false;
}

/*
 * Resolve a name against the context stack (Mustache rules).  Values are
 * written straight into out (the model allows out to be the object it reads),
 * so nothing is copied around.
 */
static void
ResolvePath(Render *r, const TmplProgram *p, const TmplExpr *e, TmplValue *out)
{
	int			i;
	int			seg = 0;

	switch (e->op)
	{
		case PR_DOT:
			*out = r->nframes > 0 ? r->frames[r->nframes - 1].v : r->root;
			break;
		case PR_ROOT:
			*out = r->root;
			break;
		case PR_INDEX:
		case PR_FIRST:
		case PR_LAST:
			for (i = r->nframes - 1; i >= 0; i--)
				if (r->frames[i].iter)
				{
					Frame	   *f = &r->frames[i];

					if (e->op == PR_INDEX)
						SetIndex(f, out);
					else if (e->op == PR_FIRST)
						SetBool(out, f->index == 0);
					else
						SetBool(out, f->index + 1 == f->count);
					return;
				}
			out->kind = TMPL_MISSING;
			return;
		default:
			if (!FindName(r, p, &p->segs[e->first], out))
				return;
			seg = 1;
			break;
	}
	for (; seg < e->count; seg++)
	{
		const TmplSeg *s = &p->segs[e->first + seg];

		if (out->kind == TMPL_ARRAY)
		{
			if (!ListHoldsString(r, out, p->pool + s->off, s->len))
			{
				out->kind = TMPL_MISSING;
				return;
			}
			SetBool(out, true);
			continue;
		}
		if (out->kind != TMPL_OBJECT ||
			!r->m->get(r->m->ctx, out, p->pool + s->off, s->len, out))
		{
			out->kind = TMPL_MISSING;
			return;
		}
	}
}

static inline void Eval(Render *r, const TmplProgram *p, int ei, TmplValue *out);
static void EvalOther(Render *r, const TmplProgram *p, const TmplExpr *e, TmplValue *out);

/* (eq a b), (gt a b), (and ...), (not a) */
static void
EvalCall(Render *r, const TmplProgram *p, const TmplExpr *e, TmplValue *out)
{
	TmplValue	a,
				b;
	int			i;
	bool		res = false;
	bool		comparable;
	int			c;

	switch (e->op)
	{
		case CALL_AND:
		case CALL_OR:
			res = e->op == CALL_AND;
			for (i = 0; i < e->count; i++)
			{
				Eval(r, p, p->args[e->first + i], &a);
				if (TmplTruthyLoose(&a) != res)
				{
					res = !res;
					break;
				}
			}
			break;
		case CALL_NOT:
			Eval(r, p, p->args[e->first], &a);
			res = !TmplTruthyLoose(&a);
			break;
		case CALL_EQ:
		case CALL_NE:
			Eval(r, p, p->args[e->first], &a);
			Eval(r, p, p->args[e->first + 1], &b);
			res = TmplEqual(&a, &b) == (e->op == CALL_EQ);
			break;
		default:
			Eval(r, p, p->args[e->first], &a);
			Eval(r, p, p->args[e->first + 1], &b);
			c = TmplCompare(&a, &b, &comparable);
			if (comparable)
				res = e->op == CALL_LT ? c < 0 : e->op == CALL_LE ? c <= 0 :
					e->op == CALL_GT ? c > 0 : c >= 0;
			break;
	}
	SetBool(out, res);
}

/* An expression's value; a plain name (the usual case) is looked up inline. */
static inline void
Eval(Render *r, const TmplProgram *p, int ei, TmplValue *out)
{
	const TmplExpr *e = &p->exprs[ei];

	if (e->kind == EX_PATH && e->op == PR_NAME && e->count == 1)
		FindName(r, p, &p->segs[e->first], out);
	else
		EvalOther(r, p, e, out);
}

static void
EvalOther(Render *r, const TmplProgram *p, const TmplExpr *e, TmplValue *out)
{
	if (e->kind == EX_PATH)
	{
		ResolvePath(r, p, e, out);
		return;
	}
	memset(out, 0, sizeof(*out));
	switch (e->kind)
	{
		case EX_PATH:
			break;
		case EX_STRING:
		case EX_NUMBER:
			out->kind = e->kind == EX_STRING ? TMPL_STRING : TMPL_NUMBER;
			out->str = p->pool + e->off;
			out->len = e->len;
			break;
		case EX_TRUE:
		case EX_FALSE:
			SetBool(out, e->kind == EX_TRUE);
			break;
		case EX_NULL:
			out->kind = TMPL_NULL;
			break;
		case EX_CALL:
			EvalCall(r, p, e, out);
			break;
	}
}

/* Enter a context (v NULL: the caller then fills the new frame's value). */
static bool
Push(Render *r, const TmplValue *v, bool iter, size_t index, size_t count)
{
	Frame	   *f;

	if (r->nframes >= MAX_FRAMES)
		return Fail(r, CORE_ERR_LIMIT, "sections and partials nested deeper than %d levels", MAX_FRAMES);
	f = &r->frames[r->nframes++];
	if (v != NULL)
		f->v = *v;
	f->iter = iter;
	f->index = index;
	f->count = count;
	f->bound.p = NULL;
	f->bound.slots = NULL;
	f->slot_mark = r->slot_top;
	return true;
}

/*
 * Give back the slots bound since mark (when a context was pushed), except
 * those of the outer contexts frames[0, nouter) and the root bound meanwhile
 * (a name inside a loop found further out): they stay valid.
 */
static inline void
GiveBackSlots(Render *r, size_t mark, int nouter)
{
	size_t		top = mark;
	int			i;

	if (r->slot_top > top)
	{
		for (i = 0; i < nouter; i++)
		{
			size_t		end = BindingEnd(r, &r->frames[i].bound);

			if (end > top)
				top = end;
		}
		if (BindingEnd(r, &r->root_bound) > top)
			top = BindingEnd(r, &r->root_bound);
		r->slot_top = top;
	}
}

/* Leave the innermost context, giving back the slots bound since it was pushed. */
static void
Pop(Render *r)
{
	Frame	   *f = &r->frames[--r->nframes];

	GiveBackSlots(r, f->slot_mark, r->nframes);
}

/* Mustache truthiness: missing, null, false and the empty list are falsy. */
static bool
TruthyStrict(const TmplValue *v)
{
	switch (v->kind)
	{
		case TMPL_MISSING:
		case TMPL_NULL:
			return false;
		case TMPL_BOOL:
			return v->b;
		case TMPL_ARRAY:
			return v->count > 0;
		default:
			return true;
	}
}

/*
 * Render a body once per element of an array, each element as the context:
 * one frame for the loop, whose value, binding and index each element
 * replaces.
 */
static bool
Loop(Render *r, const TmplProgram *p, const TmplValue *arr, int from, int to)
{
	Frame	   *f;
	size_t		i;

	if (!Push(r, NULL, true, 0, arr->count))
		return false;
	f = &r->frames[r->nframes - 1];
	for (i = 0; i < arr->count; i++)
	{
		if (i > 0)
		{
			f->index = i;
			f->bound.p = NULL;
			f->bound.slots = NULL;
			GiveBackSlots(r, f->slot_mark, r->nframes - 1);
		}
		/* the element goes straight into its frame (no copy of a fresh value) */
		if (!r->m->at(r->m->ctx, arr, i, &f->v))
			memset(&f->v, 0, sizeof(f->v));
		else if (f->v.kind == TMPL_OBJECT)
			Bind(r, &f->bound, &f->v, p);	/* the body reads it */
		if (!RenderBody(r, p, from, to))
			return false;
	}
	Pop(r);
	return true;
}

static bool
RenderSection(Render *r, const TmplProgram *p, const TmplNode *n, int self)
{
	TmplValue	v;
	bool		yes;
	const TmplSlot *slot;
	const TmplValue *ctx;

	if ((n->flags & NF_SIMPLE) && (slot = BoundSlot(r, p, n->name, &ctx)) != NULL)
	{
		/* what FindName makes of a bound slot, without the walk's set-up */
		if (slot->kind == TMPL_BOOL)
			SetBool(&v, slot->len != 0);
		else if (slot->kind == TMPL_STRING)
		{
			memset(&v, 0, sizeof(v));
			v.kind = TMPL_STRING;
			v.str = slot->str;
			v.len = slot->len;
		}
		else
			r->m->fetch(r->m->ctx, ctx, slot->handle, &v);
	}
	else
		Eval(r, p, n->expr, &v);
	switch (n->op)
	{
		case OP_SECTION:
		case OP_EACH:
			if (v.kind == TMPL_ARRAY && v.count > 0)
				return Loop(r, p, &v, self + 1, n->mid);
			if (v.kind == TMPL_ARRAY ||
				!(n->op == OP_SECTION ? TruthyStrict(&v) : TmplTruthyLoose(&v)))
				return RenderBody(r, p, n->mid, n->end);
			if (!Push(r, &v, n->op == OP_EACH, 0, 1))
				return false;
			if (v.kind == TMPL_OBJECT)
				Bind(r, &r->frames[r->nframes - 1].bound, &v, p);
			if (!RenderBody(r, p, self + 1, n->mid))
				return false;
			Pop(r);
			return true;
		case OP_INVERTED:
			yes = !TruthyStrict(&v);
			break;
		case OP_IF:
			yes = TmplTruthyLoose(&v);
			break;
		default:				/* OP_UNLESS */
			yes = !TmplTruthyLoose(&v);
			break;
	}
	return yes ? RenderBody(r, p, self + 1, n->mid) : RenderBody(r, p, n->mid, n->end);
}

/*
 * Filters write into two scratch buffers in turn, so a filter's input is in
 * the other one.  A filter that hands its input through unchanged (money on a
 * non-number, default on a truthy value) leaves the value in the buffer the
 * next filter writes: move it to the other buffer (whose content that filter
 * left unused) before that one is reset.
 */
static void
KeepOutOf(TmplValue *v, CoreBuf *dst, CoreBuf *other)
{
	if ((v->kind != TMPL_STRING && v->kind != TMPL_NUMBER) || dst->data == NULL ||
		v->str < dst->data || v->str >= dst->data + dst->cap)
		return;
	CoreBufReset(other);
	CoreBufAppend(other, v->str, v->len);
	v->str = other->oom ? "" : other->data;
	if (other->oom)
		v->len = 0;
}

/* {{x | f: a | g}}: evaluate, filter, print. */
static bool
RenderVar(Render *r, const TmplProgram *p, const TmplNode *n)
{
	TmplValue	v;
	const char *s;
	size_t		len;
	int			k;

	Eval(r, p, n->expr, &v);
	if (n->nfilters == 0 && (v.kind == TMPL_STRING || v.kind == TMPL_NUMBER))
		return EmitValue(r, v.str, v.len, (n->flags & NF_RAW) != 0);
	if (n->nfilters > 0 && !r->have_scratch)
	{
		CoreBufInit(&r->scratch[0], r->out->a, 64);
		CoreBufInit(&r->scratch[1], r->out->a, 64);
		r->have_scratch = true;
	}
	for (k = 0; k < n->nfilters; k++)
	{
		const TmplFilter *f = &p->filters[n->filter + k];
		TmplValue	args[2];
		int			nargs = 0;
		CoreBuf    *sb = &r->scratch[k & 1];

		while (nargs < 2 && f->arg[nargs] >= 0)
		{
			Eval(r, p, f->arg[nargs], &args[nargs]);
			nargs++;
		}
		KeepOutOf(&v, sb, &r->scratch[(k + 1) & 1]);
		CoreBufReset(sb);
		if (!TmplApplyFilter(f->kind, &v, args, nargs, r->m, sb, &v))
			return Fail(r, CORE_ERR_OOM, "out of memory");
	}
	if (n->nfilters > 0)
		KeepOutOf(&v, &r->scratch[n->nfilters & 1], &r->scratch[(n->nfilters + 1) & 1]);
	if (n->nfilters > 0)
		CoreBufReset(&r->scratch[n->nfilters & 1]);
	if (!TmplValueText(&v, r->m, n->nfilters > 0 ? &r->scratch[n->nfilters & 1] : NULL, &s, &len))
	{
		/* arrays and objects print as JSON; that needs scratch space */
		if (!r->have_scratch)
		{
			CoreBufInit(&r->scratch[0], r->out->a, 64);
			CoreBufInit(&r->scratch[1], r->out->a, 64);
			r->have_scratch = true;
		}
		CoreBufReset(&r->scratch[0]);
		if (!TmplValueText(&v, r->m, &r->scratch[0], &s, &len))
			return Fail(r, CORE_ERR_OOM, "out of memory");
	}
	return EmitValue(r, s, len, (n->flags & NF_RAW) != 0);
}

/* The name of a partial or parent: as written, or looked up ({{>*name}}). */
static const TmplProgram *
FindPartial(Render *r, const TmplProgram *p, const TmplNode *n)
{
	const char *name = p->pool + n->off;
	size_t		len = n->len;
	const TmplProgram *target;

	if (n->flags & NF_DYNAMIC)
	{
		TmplValue	v;

		Eval(r, p, n->expr, &v);
		if (v.kind != TMPL_STRING)
			return NULL;
		name = v.str;
		len = v.len;
	}
	if (r->m->partial == NULL)
		return NULL;
	if (r->partial_depth >= r->max_partial_depth)
	{
		Fail(r, CORE_ERR_LIMIT, "partials nested deeper than %d levels (at {{>%.*s}}; is a partial including itself?)",
			 r->max_partial_depth, (int) (len > 64 ? 64 : len), name);
		return NULL;
	}
	target = r->m->partial(r->m->ctx, name, len, r->err);
	if (target == NULL && r->err->code == CORE_OK)
		return NULL;
	return target;
}

/*
 * A standalone partial or parent tag was indented: every line it renders
 * starts with that indentation (on top of any outer one).
 */
static bool
PushIndent(Render *r, const TmplProgram *p, const TmplNode *n)
{
	if (r->nindents >= MAX_INDENTS)
		return Fail(r, CORE_ERR_LIMIT, "partials nested deeper than %d levels", MAX_INDENTS);
	r->indents[r->nindents].s = p->pool + n->indent_off;
	r->indents[r->nindents].len = n->indent_len;
	r->nindents++;
	r->pending_indent = true;
	return true;
}

static bool
RenderPartial(Render *r, const TmplProgram *p, const TmplNode *n)
{
	const TmplProgram *target = FindPartial(r, p, n);
	bool		indent = (n->flags & NF_STANDALONE) && n->indent_len > 0;
	bool		ok;

	if (target == NULL)
		return r->err->code == CORE_OK;
	if (indent && !PushIndent(r, p, n))
		return false;
	r->partial_depth++;
	ok = RenderRange(r, target, 0, target->nnodes);
	r->partial_depth--;
	if (indent)
		r->nindents--;
	return ok;
}

/* {{<parent}}...{{/parent}}: render the parent with this body's blocks. */
static bool
RenderParent(Render *r, const TmplProgram *p, const TmplNode *n, int self)
{
	const TmplProgram *target = FindPartial(r, p, n);
	int			saved_limit = r->override_limit;
	bool		indent = (n->flags & NF_STANDALONE) && n->indent_len > 0;
	bool		ok;

	if (target == NULL)
		return r->err->code == CORE_OK;
	if (r->noverrides >= MAX_OVERRIDES)
		return Fail(r, CORE_ERR_LIMIT, "parents nested deeper than %d levels", MAX_OVERRIDES);
	if (indent && !PushIndent(r, p, n))
		return false;
	r->overrides[r->noverrides].p = p;
	r->overrides[r->noverrides].node = self;
	r->noverrides++;
	r->override_limit = r->noverrides;
	r->partial_depth++;
	ok = RenderRange(r, target, 0, target->nnodes);
	r->partial_depth--;
	r->noverrides--;
	r->override_limit = saved_limit;
	if (indent)
		r->nindents--;
	return ok;
}

/*
 * {{$name}}default{{/name}}: the outermost parent call that overrides the
 * block wins; otherwise the default body.
 */
static bool
RenderBlock(Render *r, const TmplProgram *p, const TmplNode *n, int self)
{
	int			i;

	for (i = 0; i < r->override_limit; i++)
	{
		const TmplProgram *op = r->overrides[i].p;
		const TmplNode *parent = &op->nodes[r->overrides[i].node];
		int			j = r->overrides[i].node + 1;

		while (j < parent->end)
		{
			const TmplNode *c = &op->nodes[j];

			if (c->op == OP_BLOCK && c->len == n->len &&
				memcmp(op->pool + c->off, p->pool + n->off, n->len) == 0)
			{
				int			saved = r->override_limit;
				bool		ok;

				r->override_limit = i;
				ok = RenderRange(r, op, j + 1, c->end);
				r->override_limit = saved;
				return ok;
			}
			j = c->end > j ? c->end : j + 1;
		}
	}
	return RenderRange(r, p, self + 1, n->end);
}

/*
 * The slots of the innermost object context when it is bound for p: where
 * BoundString looks first (contexts that are not objects are skipped).
 * NULL when that context is not bound for p.
 */
static HOT_INLINE const TmplSlot *
InnermostSlots(Render *r, const TmplProgram *p)
{
	int			i;

	for (i = r->nframes - 1; i >= 0; i--)
	{
		const Frame *f = &r->frames[i];

		if (f->v.kind == TMPL_OBJECT)
			return f->bound.p == p ? f->bound.slots : NULL;
	}
	if (r->root.kind == TMPL_OBJECT && r->root_bound.p == p)
		return r->root_bound.slots;
	return NULL;
}

/*
 * The run of text and variables starting at node i (its pieces, see
 * TmplPiece) when no partial's indentation is pending, the usual case: the
 * checks the general path makes for each node are made once.  A run pushes
 * no context, so the innermost context's slots are found once; a name that
 * is a string there is printed from them, anything else takes the general
 * path.  The write position is kept in a local while pieces fit, and handed
 * back to Put and RenderVar whenever they are called.  Returns the node
 * after the run, or -1 on error.
 */
static int
PlainRun(Render *r, const TmplProgram *p, int i)
{
	const TmplSlot *top = InnermostSlots(r, p);
	const char *pool = p->pool;
	const TmplPiece *pc = &p->pieces[p->nodes[i].piece];
	char	   *w = r->w;
	char	   *wend = r->wend;
	uint32_t	raw = r->escape ? PC_RAW : PC_RAW | PC_SIMPLE;	/* flags that skip escaping */

	for (;; pc++)
	{
		uint32_t	flags = pc->flags;
		const TmplSlot *slot;

		if (pc->len <= (size_t) (wend - w))
		{
			CopyBytes(w, pool + pc->off, pc->len);
			w += pc->len;
		}
		else
		{
			r->w = w;
			if (!Put(r, pool + pc->off, pc->len))
				return -1;
			w = r->w;
			wend = r->wend;
		}
		if (flags & PC_SIMPLE)
		{
			if (top != NULL && top[pc->name].kind == TMPL_STRING)
				slot = &top[pc->name];
			else
				slot = BoundString(r, p, pc->name);
			if (slot != NULL && slot->len <= (size_t) (wend - w) &&
				((flags & raw) ? (CopyBytes(w, slot->str, slot->len), true) :
				 CopyIfSafe(w, slot->str, slot->len)))
				w += slot->len;
			else
			{
				r->w = w;
				if (slot != NULL)
				{
					if (!EmitString(r, slot->str, slot->len, (flags & PC_RAW) != 0))
						return -1;
				}
				else if (!RenderVar(r, p, &p->nodes[pc->node]))
					return -1;
				w = r->w;
				wend = r->wend;
			}
		}
		else if (flags & PC_VAR)
		{
			r->w = w;
			if (!RenderVar(r, p, &p->nodes[pc->node]))
				return -1;
			w = r->w;
			wend = r->wend;
		}
		if (flags & PC_LAST)
			break;
	}
	r->w = w;
	return pc->node + 1;
}

/*
 * Render nodes [from, to).  Runs of text and variables in one branch go from
 * node to node directly (NF_NEXT_VAR, NF_NEXT_TEXT), the usual shape of an
 * email, so the dispatch is taken once per run.
 */
static bool
RenderRange(Render *r, const TmplProgram *p, int from, int to)
{
	int			i = from;

	while (i < to)
	{
		const TmplNode *n = &p->nodes[i];

		switch (n->op)
		{
			case OP_TEXT:
				if (r->nindents == 0 && n->piece >= 0)
				{
					if ((i = PlainRun(r, p, i)) < 0)
						return false;
					continue;
				}
		text:
				if (!EmitText(r, p->pool + n->off, n->len))
					return false;
				i++;
				if (n->flags & NF_NEXT_VAR)
				{
					n = &p->nodes[i];
					goto var;
				}
				continue;
			case OP_VAR:
				if (r->nindents == 0 && n->piece >= 0)
				{
					if ((i = PlainRun(r, p, i)) < 0)
						return false;
					continue;
				}
		var:
				{
					const TmplSlot *slot = NULL;

					if ((n->flags & NF_SIMPLE) && r->nindents == 0)
						slot = BoundString(r, p, n->name);
					if (slot != NULL)
					{
						if (!EmitString(r, slot->str, slot->len, (n->flags & NF_RAW) != 0))
							return false;
					}
					else if (!RenderVar(r, p, n))
						return false;
				}
				i++;
				if (n->flags & NF_NEXT_TEXT)
				{
					n = &p->nodes[i];
					goto text;
				}
				continue;
			case OP_PARTIAL:
				if (!RenderPartial(r, p, n))
					return false;
				i++;
				continue;
			case OP_PARENT:
				if (!RenderParent(r, p, n, i))
					return false;
				break;
			case OP_BLOCK:
				if (!RenderBlock(r, p, n, i))
					return false;
				break;
			default:
				if (!RenderSection(r, p, n, i))
					return false;
				break;
		}
		i = n->end;
	}
	return true;
}

/*
 * The length of the control character at p (n bytes left): C0 (CR, LF and
 * tab among them) and DEL are one byte, C1 (U+0080 to U+009F) two in UTF-8;
 * 0 when p starts no control character.
 */
static size_t
ControlLength(const char *p, size_t n)
{
	unsigned char c = (unsigned char) p[0];

	if (c < 0x20 || c == 0x7f)
		return 1;
	if (c == 0xc2 && n > 1 && (unsigned char) p[1] >= 0x80 && (unsigned char) p[1] <= 0x9f)
		return 2;
	return 0;
}

/*
 * A subject line must stay one line of plain text, whatever the values put in
 * it hold (an address with line breaks): each run of control characters,
 * with the spaces next to it, becomes one space, and spaces around the whole
 * are trimmed.  The message then goes out, and no header can be injected.
 */
static void
SingleLine(CoreBuf *out, size_t from)
{
	size_t		i = from,
				j = from,
				k,
				start;

	while (i < out->len)
	{
		k = ControlLength(out->data + i, out->len - i);
		if (k == 0)
		{
			out->data[j++] = out->data[i++];
			continue;
		}
		while (j > from && out->data[j - 1] == ' ')
			j--;
		for (i += k; i < out->len; i += k)
		{
			k = out->data[i] == ' ' ? 1 : ControlLength(out->data + i, out->len - i);
			if (k == 0)
				break;
		}
		out->data[j++] = ' ';
	}
	while (j > from && out->data[j - 1] == ' ')
		j--;
	start = from;
	while (start < j && out->data[start] == ' ')
		start++;
	memmove(out->data + from, out->data + start, j - start);
	out->len = from + (j - start);
	out->data[out->len] = '\0';
}

bool
TmplRender(const TmplProgram *prog, const TmplModel *model,
		   const TmplValue *root, const TmplRenderOptions *opts,
		   CoreBuf *out, CoreError *err)
{
	Render	   *r;
	Render		local;
	bool		ok;
	size_t		start = out->len;
	size_t		saved_limit = out->limit;

	/* a cleared error, without clearing its message buffer on every render */
	err->code = CORE_OK;
	err->position = err->line = err->column = 0;
	err->message[0] = '\0';
	r = &local;
	r->m = model;
	r->o = opts;
	r->out = out;
	r->err = err;
	r->root = *root;
	r->nframes = 0;
	r->partial_depth = 0;
	r->max_partial_depth = opts->max_partial_depth > 0 ? opts->max_partial_depth : TMPL_DEFAULT_PARTIAL_DEPTH;
	r->nindents = 0;
	r->pending_indent = false;
	r->noverrides = 0;
	r->override_limit = 0;
	r->have_scratch = false;
	r->escape = opts->escape_html;
	r->slot_top = 0;
	r->root_bound.p = NULL;
	r->root_bound.slots = NULL;
	if (root->kind == TMPL_OBJECT)
		Bind(r, &r->root_bound, &r->root, prog);	/* before any loop takes slots */
	if (opts->max_output > 0)
		out->limit = start + opts->max_output;
	r->limit = out->limit ? out->limit : (size_t) -1;
	SetRoom(r);
	if (out->data == NULL || out->oom)
		ok = Fail(r, CORE_ERR_OOM, "out of memory");
	else
	{
		ok = RenderRange(r, prog, 0, prog->nnodes);
		SyncOut(r);
		out->data[out->len] = '\0';
		if (ok && out->oom)
			ok = Fail(r, CORE_ERR_OOM, "out of memory");
	}
	if (r->have_scratch)
	{
		CoreBufFree(&r->scratch[0]);
		CoreBufFree(&r->scratch[1]);
	}
	out->limit = saved_limit;
	if (ok && opts->single_line)
		SingleLine(out, start);
	return ok;
}
