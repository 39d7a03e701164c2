/*
 * core.h — what the pure C cores (rule language, templates, MIME) share:
 * an allocator supplied by the caller, a growable byte buffer, and errors
 * reported as values.  No PostgreSQL headers: the cores link alone into unit
 * tests and fuzzers; the PostgreSQL glue passes a palloc-based allocator and
 * turns a CoreError into ereport().
 */
#ifndef SEGMENT_CORE_H
#define SEGMENT_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Allocation: alloc returns NULL on failure (glue allocators may throw instead). */
typedef struct CoreAllocator
{
	void	   *(*alloc) (void *ctx, size_t size);
	void		(*release) (void *ctx, void *ptr);
	void	   *ctx;
} CoreAllocator;

/* The malloc/free allocator, for unit tests, fuzzers and tools. */
extern const CoreAllocator core_malloc_allocator;

extern void *CoreAlloc(const CoreAllocator *a, size_t size);
extern void *CoreAllocZero(const CoreAllocator *a, size_t size);
extern void CoreFree(const CoreAllocator *a, void *ptr);
extern char *CoreStrndup(const CoreAllocator *a, const char *s, size_t len);

/* A growable byte buffer; data is always NUL-terminated.  oom is sticky. */
typedef struct CoreBuf
{
	const CoreAllocator *a;
	char	   *data;
	size_t		len;
	size_t		cap;
	size_t		limit;			/* 0 = no limit; appends beyond it set overflow */
	bool		oom;
	bool		overflow;
} CoreBuf;

extern void CoreBufInit(CoreBuf *b, const CoreAllocator *a, size_t initial);
extern bool CoreBufAppend(CoreBuf *b, const char *s, size_t len);
extern bool CoreBufAppendStr(CoreBuf *b, const char *s);
extern bool CoreBufAppendChar(CoreBuf *b, char c);
extern bool CoreBufPrintf(CoreBuf *b, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
extern bool CoreBufVPrintf(CoreBuf *b, const char *fmt, va_list ap)
			__attribute__((format(printf, 2, 0)));
extern void CoreBufReset(CoreBuf *b);
extern void CoreBufFree(CoreBuf *b);
/* Hand the data over to the caller (who frees it with the same allocator). */
extern char *CoreBufDetach(CoreBuf *b, size_t *len);

/* An error as a value: what went wrong and where (1-based; 0 = unknown). */
#define CORE_ERRMSG_LEN 256

typedef enum CoreErrorCode
{
	CORE_OK = 0,
	CORE_ERR_SYNTAX,			/* malformed input */
	CORE_ERR_TYPE,				/* well-formed but ill-typed */
	CORE_ERR_UNDEFINED,			/* names something that does not exist */
	CORE_ERR_LIMIT,				/* a size, depth or length limit was hit */
	CORE_ERR_INVALID,			/* a value is not acceptable (e.g. header injection) */
	CORE_ERR_OOM				/* out of memory */
} CoreErrorCode;

typedef struct CoreError
{
	CoreErrorCode code;
	int			position;		/* character offset, 1-based */
	int			line;
	int			column;
	char		message[CORE_ERRMSG_LEN];
} CoreError;

extern void CoreErrorClear(CoreError *err);
extern bool CoreErrorSet(CoreError *err, CoreErrorCode code, int position,
						 const char *fmt,...) __attribute__((format(printf, 4, 5)));

#endif							/* SEGMENT_CORE_H */
