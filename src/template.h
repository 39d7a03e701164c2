/*
 * template.h — the template engine: Mustache (spec v1.4.2 core modules,
 * inheritance and dynamic names) plus the helpers and filters email marketers
 * expect (if/unless/each, comparisons, pipe filters).
 *
 * A template is compiled once into a TmplProgram; rendering walks the program
 * over data reached only through a TmplModel (value-access callbacks), so the
 * engine never sees how the data is stored (jsonb in the server, a tiny value
 * model in the unit tests).  No PostgreSQL headers.
 */
#ifndef SEGMENT_TEMPLATE_H
#define SEGMENT_TEMPLATE_H

#include <stdint.h>

#include "core.h"

/* Nesting limits: sections/blocks in one template, parentheses, partials. */
#define TMPL_MAX_NESTING 64
#define TMPL_MAX_EXPR_DEPTH 32
#define TMPL_DEFAULT_PARTIAL_DEPTH 16

typedef struct TmplProgram TmplProgram;

typedef enum TmplKind
{
	TMPL_MISSING = 0,			/* no such key: renders empty, is falsy */
	TMPL_NULL,
	TMPL_BOOL,
	TMPL_NUMBER,				/* str/len hold its decimal text */
	TMPL_STRING,				/* str/len hold the UTF-8 text (not NUL-terminated) */
	TMPL_ARRAY,					/* ref identifies it for the model; count = elements */
	TMPL_OBJECT					/* ref identifies it for the model */
} TmplKind;

typedef struct TmplValue
{
	TmplKind	kind;
	bool		b;				/* TMPL_BOOL */
	const char *str;			/* TMPL_STRING, TMPL_NUMBER */
	size_t		len;
	const void *ref;			/* TMPL_ARRAY, TMPL_OBJECT: the model's handle */
	size_t		count;			/* TMPL_ARRAY: number of elements */
} TmplValue;

/*
 * A name a program looks up in its contexts (the first segment of a dotted
 * name).  TmplProgramNames lists them sorted by length, then bytes (memcmp),
 * without duplicates: the order jsonb keeps object keys in.
 */
typedef struct TmplName
{
	const char *s;
	size_t		len;
} TmplName;

/*
 * What bind found for one name in one object: kind TMPL_MISSING, no such
 * key; TMPL_STRING, a string read in place (str, len); TMPL_BOOL, a boolean
 * read in place (len 1 true, 0 false); any other kind, a value to get with
 * fetch(handle).
 */
typedef struct TmplSlot
{
	uint64_t	handle;
	const char *str;
	uint32_t	len;
	uint8_t		kind;			/* a TmplKind */
} TmplSlot;

/*
 * How the renderer reaches data and partials.  get/at return false when the
 * key or index does not exist (or the value is not an object/array), and
 * then leave out untouched; get must work when out is the object itself.
 * to_json writes an array or object as JSON text.  partial returns the
 * compiled partial of that name, NULL when there is none (renders empty) or
 * on error (then err is set).
 */
typedef struct TmplModel
{
	bool		(*get) (void *ctx, const TmplValue *object, const char *key,
						size_t keylen, TmplValue *out);
	bool		(*at) (void *ctx, const TmplValue *array, size_t index,
					   TmplValue *out);
	bool		(*to_json) (void *ctx, const TmplValue *value, CoreBuf *out);
	const TmplProgram *(*partial) (void *ctx, const char *name, size_t len,
								   CoreError *err);

	/*
	 * Optional, both or neither (NULL): find all of a program's names in one
	 * object at once, so that every later lookup there is an array access.
	 * bind fills slots[j] for each of the nnames names (sorted as
	 * TmplProgramNames says; see TmplSlot); returning false means "use get
	 * for this object".  fetch turns a slot's handle into the value (out may
	 * be the object itself).
	 */
	bool		(*bind) (void *ctx, const TmplValue *object, const TmplName *names,
						 int nnames, TmplSlot *slots);
	void		(*fetch) (void *ctx, const TmplValue *object, uint64_t handle,
						  TmplValue *out);
	void	   *ctx;
} TmplModel;

typedef struct TmplRenderOptions
{
	bool		escape_html;	/* {{x}} escapes & < > " ' (the Mustache default) */
	bool		single_line;	/* CR and LF in the output become spaces (subjects) */
	size_t		max_output;		/* bytes; 0 = no limit */
	int			max_partial_depth;	/* 0 = TMPL_DEFAULT_PARTIAL_DEPTH */
} TmplRenderOptions;

/*
 * Compile src (len bytes, UTF-8) into a program allocated with a.  On a syntax
 * error returns NULL with err set (code, line, column, message).
 */
extern TmplProgram *TmplParse(const char *src, size_t len,
							  const CoreAllocator *a, CoreError *err);
extern void TmplFree(TmplProgram *prog);

/* The names prog looks up in its contexts (see TmplName); *n gets how many. */
extern const TmplName *TmplProgramNames(const TmplProgram *prog, int *n);

/* Bytes of literal text in the program: a good first guess of output size. */
extern size_t TmplLiteralSize(const TmplProgram *prog);

/*
 * Does rendering prog ask the model for partials ({{>name}}, {{<parent}})?
 * When not, the model's partial callback is never called.
 */
extern bool TmplUsesPartials(const TmplProgram *prog);

/*
 * Render prog over root into out (appended).  Only limits (output size,
 * partial depth) and out-of-memory are errors; unknown names render empty.
 */
extern bool TmplRender(const TmplProgram *prog, const TmplModel *model,
					   const TmplValue *root, const TmplRenderOptions *opts,
					   CoreBuf *out, CoreError *err);

/*
 * Plain text from HTML (for the text part of an email): tags stripped, link
 * targets kept as "text (url)", entities decoded, whitespace collapsed,
 * Mustache tags {{...}} kept verbatim.
 */
extern bool TmplHtmlToText(const char *html, size_t len, CoreBuf *out);

#endif							/* SEGMENT_TEMPLATE_H */
