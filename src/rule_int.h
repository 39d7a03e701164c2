/*
 * rule_int.h — internals of the rule core shared by its files: the arena
 * every AST lives in, and the tokens passed from the lexer to the parser.
 * Not part of the core's API (see rule.h).
 */
#ifndef SEGMENT_RULE_INT_H
#define SEGMENT_RULE_INT_H

#include "rule.h"

/* A bump allocator: every node, string and token of one parse lives here. */
typedef struct RuleArenaBlock RuleArenaBlock;

typedef struct RuleArena
{
	const CoreAllocator *a;
	RuleArenaBlock *blocks;
	char	   *next;
	size_t		left;
} RuleArena;

extern void *RuleArenaAlloc(RuleArena *arena, size_t size);
extern char *RuleArenaStrndup(RuleArena *arena, const char *s, size_t len);
extern void RuleArenaFree(RuleArena *arena);

typedef enum RuleTokKind
{
	TK_EOF,
	TK_IDENT,
	TK_STRING,
	TK_NUMBER,
	TK_LPAREN,
	TK_RPAREN,
	TK_COMMA,
	TK_DOT,
	TK_OP
} RuleTokKind;

typedef struct RuleTok
{
	RuleTokKind kind;
	int			pos;			/* 1-based character position */
	char	   *text;			/* identifier, string value or canonical number */
	RuleCmp		op;
} RuleTok;

typedef struct RuleTokens
{
	RuleTok    *toks;
	int			ntoks;			/* including the final TK_EOF */
} RuleTokens;

extern bool RuleLex(RuleArena *arena, const char *src, size_t len,
					RuleTokens *out, CoreError *err);

#endif							/* SEGMENT_RULE_INT_H */
