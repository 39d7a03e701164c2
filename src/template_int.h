/*
 * template_int.h — the compiled form of a template, shared by the parser,
 * the renderer and the filters (not part of the engine's public surface).
 *
 * A program is a flat array of nodes in document order.  A container node
 * (section, helper block, block, parent) owns the nodes up to its `end`;
 * its else branch, if any, starts at `mid` (mid == end when there is none).
 * All text (literal chunks, names, string literals) lives in one pool and is
 * referenced by offset and length, so a program is a handful of allocations.
 */
#ifndef SEGMENT_TEMPLATE_INT_H
#define SEGMENT_TEMPLATE_INT_H

#include <stdint.h>

#include "template.h"

typedef enum TmplOp
{
	OP_TEXT,					/* literal chunk */
	OP_VAR,						/* {{x}} {{{x}}} {{&x}}, with filters */
	OP_SECTION,					/* {{#x}} */
	OP_INVERTED,				/* {{^x}} */
	OP_IF,						/* {{#if e}} */
	OP_UNLESS,					/* {{#unless e}} */
	OP_EACH,					/* {{#each e}} */
	OP_PARTIAL,					/* {{>name}} {{>*dynamic}} */
	OP_BLOCK,					/* {{$name}} */
	OP_PARENT					/* {{<name}} {{<*dynamic}} */
} TmplOp;

/* Node flags */
#define NF_RAW		0x01		/* VAR: no HTML escaping */
#define NF_DYNAMIC	0x02		/* PARTIAL/PARENT: name is looked up in the data */
#define NF_STANDALONE 0x04		/* PARTIAL/PARENT/BLOCK: tag stood alone on its line */
#define NF_SIMPLE	0x08		/* VAR (no filters), sections: a plain name (the renderer's fast path) */
#define NF_NEXT_VAR	0x10		/* TEXT: the next node is a VAR of the same branch */
#define NF_NEXT_TEXT 0x20		/* VAR: the next node is a TEXT of the same branch */

typedef struct TmplNode
{
	uint8_t		op;
	uint8_t		flags;
	int32_t		expr;			/* VAR/SECTION/IF/...: expression; -1 none */
	uint32_t	off;			/* TEXT: chunk; others: the name as written */
	uint32_t	len;
	uint32_t	indent_off;		/* PARTIAL/PARENT standalone: indentation */
	uint32_t	indent_len;
	int32_t		filter;			/* VAR: first filter; -1 none */
	int32_t		nfilters;
	int32_t		mid;			/* containers: start of else branch */
	int32_t		end;			/* containers: one past the last owned node */
	uint32_t	name;			/* NF_SIMPLE: the name's index in names */
	int32_t		piece;			/* TEXT/VAR that starts a run: its first piece; else -1 */
	int32_t		run_end;		/* ... and the node after the run */
} TmplNode;

/*
 * A run of text and variables (nodes linked by NF_NEXT_VAR and NF_NEXT_TEXT)
 * flattened for the renderer: each piece is a literal chunk (possibly empty)
 * followed by at most one variable, so a run renders as a walk over small
 * records instead of node by node.
 */
#define PC_VAR		0x01		/* a variable follows the text: node */
#define PC_SIMPLE	0x02		/* ... a plain name (NF_SIMPLE): name */
#define PC_RAW		0x04		/* ... not HTML-escaped (NF_RAW) */
#define PC_LAST		0x08		/* the run ends with this piece */

typedef struct TmplPiece
{
	uint32_t	off;			/* literal text in the pool */
	uint32_t	len;
	uint32_t	name;			/* PC_SIMPLE: the name's index in names */
	int32_t		node;			/* the piece's last node (its VAR, if PC_VAR) */
	uint32_t	flags;
} TmplPiece;

typedef enum TmplExprKind
{
	EX_PATH,
	EX_STRING,
	EX_NUMBER,
	EX_TRUE,
	EX_FALSE,
	EX_NULL,
	EX_CALL
} TmplExprKind;

/* How a path starts */
typedef enum TmplPathRoot
{
	PR_NAME,					/* first segment searched up the context stack */
	PR_DOT,						/* . or this: the current context */
	PR_ROOT,					/* @root: the top-level data */
	PR_INDEX,					/* @index */
	PR_FIRST,					/* @first */
	PR_LAST,					/* @last */
	PR_KEY						/* @key */
} TmplPathRoot;

typedef enum TmplCallOp
{
	CALL_EQ,
	CALL_NE,
	CALL_LT,
	CALL_LE,
	CALL_GT,
	CALL_GE,
	CALL_AND,
	CALL_OR,
	CALL_NOT
} TmplCallOp;

typedef struct TmplExpr
{
	uint8_t		kind;
	uint8_t		op;				/* EX_PATH: TmplPathRoot; EX_CALL: TmplCallOp */
	int32_t		first;			/* EX_PATH: first segment; EX_CALL: first arg */
	int32_t		count;			/* segments or args */
	uint32_t	off;			/* EX_STRING/EX_NUMBER: text in the pool */
	uint32_t	len;
} TmplExpr;

/* A path segment; a first segment searched up the context stack has a name id. */
#define TMPL_NO_NAME UINT32_MAX

typedef struct TmplSeg
{
	uint32_t	off;
	uint32_t	len;
	uint32_t	name;			/* index in the program's names, or TMPL_NO_NAME */
} TmplSeg;

typedef enum TmplFilterKind
{
	FL_DEFAULT,
	FL_UPPER,
	FL_LOWER,
	FL_CAPITALIZE,
	FL_TRUNCATE,
	FL_DATE,
	FL_MONEY,
	FL_URL_ENCODE,
	FL_JSON
} TmplFilterKind;

typedef struct TmplFilter
{
	uint8_t		kind;
	int32_t		arg[2];			/* expressions; -1 when absent */
} TmplFilter;

struct TmplProgram
{
	const CoreAllocator *a;
	char	   *pool;
	size_t		pool_len;
	size_t		literal_size;
	bool		uses_partials;	/* has {{>partial}} or {{<parent}} nodes */
	TmplNode   *nodes;
	int			nnodes;
	TmplExpr   *exprs;
	int			nexprs;
	int32_t    *args;			/* EX_CALL argument lists: expression indexes */
	int			nargs;
	TmplSeg    *segs;
	int			nsegs;
	TmplFilter *filters;
	int			nfilters;
	TmplName   *names;			/* first segments of PR_NAME paths, sorted, distinct */
	int			nnames;
	TmplPiece  *pieces;			/* the runs, flattened (see TmplPiece) */
	int			npieces;
};

/* template_filters.c */
extern int	TmplFilterLookup(const char *name, size_t len, int *min_args, int *max_args);

/* Filter input/output: a value, or text produced into a scratch buffer. */
extern bool TmplApplyFilter(int kind, const TmplValue *in, const TmplValue *args,
							int nargs, const TmplModel *model, CoreBuf *scratch,
							TmplValue *out);
extern bool TmplValueText(const TmplValue *v, const TmplModel *model,
						  CoreBuf *scratch, const char **s, size_t *len);
extern bool TmplJsonString(CoreBuf *out, const char *s, size_t len);
extern bool TmplTruthyLoose(const TmplValue *v);
extern int	TmplCompare(const TmplValue *a, const TmplValue *b, bool *comparable);
extern bool TmplEqual(const TmplValue *a, const TmplValue *b);

#endif							/* SEGMENT_TEMPLATE_INT_H */
