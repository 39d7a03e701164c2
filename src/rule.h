/*
 * rule.h — the segment rule language (design.md §3): lexer, parser, AST,
 * type checker, canonical printer, JSON printer and SQL compiler.
 *
 * A pure core: no PostgreSQL headers.  Everything takes a CoreAllocator and
 * reports failures as a CoreError (code, 1-based character position,
 * message).  The PostgreSQL glue (rule_type.c, rule_match.c, rule_json.c)
 * resolves custom fields, segments and stages through a RuleResolver and
 * turns errors into ereport().
 */
#ifndef SEGMENT_RULE_H
#define SEGMENT_RULE_H

#include "core.h"

/* Deepest nesting of parentheses, not and where accepted by the parser. */
#define RULE_MAX_DEPTH 200

typedef enum RuleKind
{
	RK_TRUE,
	RK_FALSE,
	RK_AND,						/* n-ary, children never RK_AND themselves */
	RK_OR,						/* n-ary, children never RK_OR themselves */
	RK_NOT,
	RK_CMP,						/* value cmp literal */
	RK_IN,						/* value [not] in (literals) */
	RK_NULL,					/* value is [not] null */
	RK_BETWEEN,					/* value [not] between literal and literal */
	RK_MATCH,					/* value [not] contains|starts with|ends with string */
	RK_TAGGED,					/* tagged 'x' */
	RK_SEGMENT,					/* in segment 'x' */
	RK_STAGE_CMP,				/* stage cmp 'x' */
	RK_STAGE_IN,				/* stage [not] in ('x', ...) */
	RK_DID,						/* did [not] event [where] [window] */
	RK_AGG						/* count|sum|avg|min|max|last(...) [window] cmp literal */
} RuleKind;

typedef enum RuleCmp
{
	RC_EQ, RC_NE, RC_LT, RC_LE, RC_GT, RC_GE
} RuleCmp;

typedef enum RuleMatch
{
	RM_CONTAINS, RM_STARTS, RM_ENDS
} RuleMatch;

typedef enum RuleUnit
{
	RU_MINUTE, RU_HOUR, RU_DAY, RU_WEEK, RU_MONTH, RU_YEAR
} RuleUnit;

typedef enum RuleLitKind
{
	RL_NUMBER,					/* text: canonical decimal, e.g. "-12.50" */
	RL_STRING,					/* text: the string's value */
	RL_BOOL,					/* boolval */
	RL_NOW,
	RL_AGO,						/* amount unit ago */
	RL_FROM_NOW,				/* amount unit from now */
	RL_DATE,					/* text: YYYY-MM-DD */
	RL_TIMESTAMP				/* text: ISO 8601 timestamp, zone optional (UTC) */
} RuleLitKind;

typedef struct RuleLit
{
	RuleLitKind kind;
	int			pos;			/* 1-based character position in the source */
	char	   *text;
	bool		boolval;
	long		amount;
	RuleUnit	unit;
} RuleLit;

/* What a value reference reads. */
typedef enum RuleRefKind
{
	RR_COLUMN,					/* a built-in column of segment.contacts */
	RR_FIELD,					/* a custom field from segment.fields */
	RR_ATTRS,					/* attrs.a.b: untyped jsonb path */
	RR_PROP,					/* an event property inside where (untyped path) */
	RR_AMOUNT					/* the amount column of an event, inside where */
} RuleRefKind;

typedef enum RuleType
{
	RT_UNKNOWN = 0,				/* not resolved yet */
	RT_TEXT,
	RT_NUMBER,
	RT_BOOLEAN,
	RT_DATE,
	RT_TIMESTAMP,
	RT_ENUM,
	RT_TEXT_ARRAY,
	RT_UNTYPED					/* attrs paths and event properties */
} RuleType;

typedef struct RuleRef
{
	RuleRefKind kind;
	int			pos;
	char	   *name;			/* column or field name; first path element */
	char	  **path;			/* path elements for RR_ATTRS / RR_PROP */
	int			npath;
	RuleType	type;			/* resolved type */
} RuleRef;

typedef enum RuleWindowKind
{
	RW_NONE, RW_WITHIN, RW_SINCE, RW_BETWEEN
} RuleWindowKind;

typedef struct RuleWindow
{
	RuleWindowKind kind;
	RuleLit		within;			/* RL_AGO-like duration: amount and unit */
	RuleLit		from;			/* since / between lower bound */
	RuleLit		to;				/* between upper bound */
} RuleWindow;

typedef enum RuleAggKind
{
	RA_COUNT, RA_SUM, RA_AVG, RA_MIN, RA_MAX, RA_LAST
} RuleAggKind;

typedef struct Rule Rule;

struct Rule
{
	RuleKind	kind;
	int			pos;			/* where the condition starts */
	bool		negated;		/* not in / is not null / not between / not contains / did not */
	/* RK_AND, RK_OR: children; RK_NOT: one child */
	Rule	  **kids;
	int			nkids;
	/* value conditions */
	RuleRef		ref;
	RuleCmp		cmp;
	RuleMatch	match;
	RuleLit    *lits;			/* cmp: 1, between: 2, in: n, match: 1 */
	int			nlits;
	/* tagged / in segment / stage: lits[] hold the names */
	/* did / aggregates */
	RuleAggKind agg;
	char	   *event;
	int			event_pos;
	char	   *prop;			/* sum/avg/min/max property ("amount" or a property name) */
	int			prop_pos;
	Rule	   *where;			/* NULL when absent */
	RuleWindow	window;
	void	   *arena;			/* root only: where the whole tree lives */
};

/* Type and enum values of a custom field, filled in by the glue. */
typedef struct RuleFieldInfo
{
	RuleType	type;
	const char *const *enum_values;
	int			nenum;
} RuleFieldInfo;

/*
 * Name resolution during RuleCheck.  Each callback returns false when the
 * name does not exist (NULL callbacks accept every name; a NULL field
 * callback makes every custom field unknown).
 */
typedef struct RuleResolver
{
	bool		(*field) (void *ctx, const char *name, RuleFieldInfo *out);
	bool		(*segment) (void *ctx, const char *name);
	bool		(*stage) (void *ctx, const char *name);
	void	   *ctx;
} RuleResolver;

/* What RuleCheck could not find, for the glue's hints and SQLSTATEs. */
typedef enum RuleUndefinedKind
{
	RUK_NONE, RUK_FIELD, RUK_SEGMENT, RUK_STAGE
} RuleUndefinedKind;

typedef struct RuleCheckFailure
{
	RuleUndefinedKind kind;
	char		name[128];
} RuleCheckFailure;

/* rule_lex.c / rule_parse.c */
extern Rule *RuleParse(const CoreAllocator *a, const char *src, size_t len, CoreError *err);
extern void RuleFree(const CoreAllocator *a, Rule *r);

/* rule_check.c: resolve fields, segments and stages, check literal types. */
extern bool RuleCheck(Rule *r, const RuleResolver *resolver, RuleCheckFailure *failure,
					  CoreError *err);
extern const char *RuleTypeName(RuleType t);
extern RuleType RuleTypeFromName(const char *name);
extern bool RuleIsBuiltinColumn(const char *name, RuleType *type);
extern const char *const rule_builtin_columns[];

/* rule_print.c */
extern bool RulePrint(const Rule *r, CoreBuf *out);
extern bool RulePrintTypes(const Rule *r, CoreBuf *out);
extern void RulePrintRef(CoreBuf *out, const RuleRef *ref);
extern bool RuleIsIdentifier(const char *s);
extern bool RuleIsKeyword(const char *s);

/* rule_json.c (core part): the jsonb shape as JSON text. */
extern bool RulePrintJson(const Rule *r, CoreBuf *out);

/* rule_sql.c */
extern bool RuleCompileCondition(const Rule *r, bool per_contact, CoreBuf *out, CoreError *err);
extern bool RuleCompileMembers(const Rule *r, CoreBuf *out, CoreError *err);
extern bool RuleCompileMatch(const Rule *r, CoreBuf *out, CoreError *err);

/* rule_deps.c: what a rule reads, as JSON text (sorted, de-duplicated). */
extern bool RulePrintDependencies(const Rule *r, CoreBuf *out);

/* Shared by the printers: names of enum members. */
extern const char *RuleCmpText(RuleCmp c);
extern const char *RuleUnitText(RuleUnit u);
extern const char *RuleAggText(RuleAggKind k);
extern bool RuleAppendQuoted(CoreBuf *out, const char *s, char quote);
extern bool RuleAppendJsonString(CoreBuf *out, const char *s);

#endif							/* SEGMENT_RULE_H */
