/*
 * core_fuzz.c — libFuzzer harness for the shared pure-core buffer (src/core.c).
 * The input is a program of buffer operations (append, append a character,
 * printf, reset, detach, set a limit, make allocations fail); after each step
 * the buffer is compared with a plain model, so any arithmetic slip in growth,
 * limits or the sticky out-of-memory state shows as a crash.
 */
#include "core.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_MAX 65536

/* An allocator that fails once its budget of allocations is spent. */
typedef struct Budget
{
	int			left;			/* < 0: unlimited */
} Budget;

static void *
BudgetAlloc(void *ctx, size_t size)
{
	Budget	   *b = ctx;

	if (b->left == 0)
		return NULL;
	if (b->left > 0)
		b->left--;
	return malloc(size ? size : 1);
}

static void
BudgetRelease(void *ctx, void *ptr)
{
	free(ptr);
}

/* Abort unless the buffer holds exactly the model's bytes, NUL-terminated. */
static void
Check(const CoreBuf *b, const char *model, size_t mlen)
{
	if (b->oom)
		return;
	if (b->len != mlen || b->len >= b->cap || b->data[b->len] != '\0' ||
		memcmp(b->data, model, mlen) != 0)
		abort();
}

/* Whether appending n bytes must succeed, given the model and the flags. */
static bool
Fits(const CoreBuf *b, size_t mlen, size_t n)
{
	return !b->oom && !b->overflow && (!b->limit || mlen + n <= b->limit);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Budget		budget = {-1};
	CoreAllocator a = {BudgetAlloc, BudgetRelease, &budget};
	CoreBuf		b;
	char	   *model = malloc(MODEL_MAX);
	size_t		mlen = 0;
	size_t		i = 0;

	if (model == NULL)
		return 0;
	CoreBufInit(&b, &a, size > 0 ? data[0] : 0);
	while (i < size)
	{
		uint8_t		op = data[i++] % 7;
		size_t		n = i < size ? data[i++] : 0;
		bool		ok;
		bool		fits;

		switch (op)
		{
			case 0:				/* append n bytes of the input (fewer at its end) */
				if (n > size - i)
					n = size - i;
				fits = Fits(&b, mlen, n);
				ok = CoreBufAppend(&b, (const char *) data + i, n);
				if (ok != fits && !b.oom)
					abort();
				if (ok)
				{
					if (mlen + n > MODEL_MAX)
						goto done;
					memcpy(model + mlen, data + i, n);
					mlen += n;
				}
				i += n;
				break;
			case 1:				/* one character */
				fits = Fits(&b, mlen, 1);
				ok = CoreBufAppendChar(&b, (char) n);
				if (ok != fits && !b.oom)
					abort();
				if (ok)
				{
					if (mlen + 1 > MODEL_MAX)
						goto done;
					model[mlen++] = (char) n;
				}
				break;
			case 2:				/* printf of a number and a padded string */
				{
					char		tmp[64];
					int			k = snprintf(tmp, sizeof(tmp), "%d:%*s|", (int) n, (int) (n % 40), "x");

					fits = Fits(&b, mlen, (size_t) k);
					ok = CoreBufPrintf(&b, "%d:%*s|", (int) n, (int) (n % 40), "x");
					if (ok != fits && !b.oom)
						abort();
					if (ok)
					{
						if (mlen + (size_t) k > MODEL_MAX)
							goto done;
						memcpy(model + mlen, tmp, (size_t) k);
						mlen += (size_t) k;
					}
				}
				break;
			case 3:				/* reset clears the content and the overflow flag */
				CoreBufReset(&b);
				if (!b.oom)
					mlen = 0;
				if (b.overflow)
					abort();
				break;
			case 4:				/* a size limit (0 = none) */
				b.limit = n * 8;
				break;
			case 5:				/* the next n % 4 allocations succeed, then all fail */
				budget.left = (int) (n % 4);
				break;
			case 6:				/* take the data, start again */
				{
					size_t		len;
					char	   *d = CoreBufDetach(&b, &len);

					if (d && (len != mlen || memcmp(d, model, mlen) != 0) && !b.oom)
						abort();
					CoreFree(&a, d);
					budget.left = -1;
					CoreBufInit(&b, &a, n);
					mlen = 0;
				}
				break;
		}
		Check(&b, model, mlen);
	}
done:
	CoreBufFree(&b);
	free(model);
	return 0;
}
