/*
 * core.c — allocator, buffer and error helpers shared by the pure C cores.
 * No PostgreSQL headers.
 */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *
MallocAlloc(void *ctx, size_t size)
{
	return malloc(size ? size : 1);
}

static void
MallocRelease(void *ctx, void *ptr)
{
	free(ptr);
}

const CoreAllocator core_malloc_allocator = {MallocAlloc, MallocRelease, NULL};

void *
CoreAlloc(const CoreAllocator *a, size_t size)
{
	return a->alloc(a->ctx, size);
}

void *
CoreAllocZero(const CoreAllocator *a, size_t size)
{
	void	   *p = a->alloc(a->ctx, size);

	if (p)
		memset(p, 0, size);
	return p;
}

void
CoreFree(const CoreAllocator *a, void *ptr)
{
	if (ptr)
		a->release(a->ctx, ptr);
}

char *
CoreStrndup(const CoreAllocator *a, const char *s, size_t len)
{
	char	   *p = a->alloc(a->ctx, len + 1);

	if (p)
	{
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

void
CoreBufInit(CoreBuf *b, const CoreAllocator *a, size_t initial)
{
	memset(b, 0, sizeof(*b));
	b->a = a;
	if (initial < 16)
		initial = 16;
	b->data = a->alloc(a->ctx, initial);
	if (b->data == NULL)
	{
		b->oom = true;
		return;
	}
	b->cap = initial;
	b->data[0] = '\0';
}

/* Make room for extra more bytes plus the terminator. */
static bool
BufReserve(CoreBuf *b, size_t extra)
{
	size_t		need;
	size_t		cap;
	char	   *p;

	if (b->oom || b->overflow)
		return false;
	if (b->limit && b->len + extra > b->limit)
	{
		b->overflow = true;
		return false;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 16;
	while (cap < need)
		cap *= 2;
	p = b->a->alloc(b->a->ctx, cap);
	if (p == NULL)
	{
		b->oom = true;
		return false;
	}
	if (b->data)
	{
		memcpy(p, b->data, b->len + 1);
		b->a->release(b->a->ctx, b->data);
	}
	b->data = p;
	b->cap = cap;
	return true;
}

bool
CoreBufAppend(CoreBuf *b, const char *s, size_t len)
{
	if (!BufReserve(b, len))
		return false;
	memcpy(b->data + b->len, s, len);
	b->len += len;
	b->data[b->len] = '\0';
	return true;
}

bool
CoreBufAppendStr(CoreBuf *b, const char *s)
{
	return CoreBufAppend(b, s, strlen(s));
}

bool
CoreBufAppendChar(CoreBuf *b, char c)
{
	return CoreBufAppend(b, &c, 1);
}

bool
CoreBufVPrintf(CoreBuf *b, const char *fmt, va_list ap)
{
	va_list		ap2;
	int			n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || !BufReserve(b, (size_t) n))
		return false;
	vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
	b->len += (size_t) n;
	return true;
}

bool
CoreBufPrintf(CoreBuf *b, const char *fmt,...)
{
	va_list		ap;
	bool		ok;

	va_start(ap, fmt);
	ok = CoreBufVPrintf(b, fmt, ap);
	va_end(ap);
	return ok;
}

void
CoreBufReset(CoreBuf *b)
{
	b->len = 0;
	b->overflow = false;
	if (b->data)
		b->data[0] = '\0';
}

void
CoreBufFree(CoreBuf *b)
{
	if (b->data)
		b->a->release(b->a->ctx, b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *
CoreBufDetach(CoreBuf *b, size_t *len)
{
	char	   *d = b->data;

	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}

void
CoreErrorClear(CoreError *err)
{
	memset(err, 0, sizeof(*err));
}

bool
CoreErrorSet(CoreError *err, CoreErrorCode code, int position, const char *fmt,...)
{
	va_list		ap;

	if (err == NULL)
		return false;
	err->code = code;
	err->position = position;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return false;
}
