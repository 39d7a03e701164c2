/*
 * Preloaded into a server whose segment.so was built with SANITIZE=1: tell
 * ASan that the stack is unwound by PostgreSQL's error longjmp (Debian's
 * postgres calls __longjmp_chk), so that the redzones of the frames it skips
 * are cleared.  ASan's own longjmp interceptors are not active, because its
 * runtime is not preloaded (doc/reliability.md).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <setjmp.h>
#include <stddef.h>

typedef void (*JmpFn) (sigjmp_buf env, int val);

void		__longjmp_chk(sigjmp_buf env, int val);

static void
NoReturn(void)
{
	void		(*no_return) (void) = (void (*) (void)) dlsym(RTLD_DEFAULT, "__asan_handle_no_return");

	if (no_return)
		no_return();
}

void
__longjmp_chk(sigjmp_buf env, int val)
{
	static JmpFn real;

	if (real == NULL)
		real = (JmpFn) dlsym(RTLD_NEXT, "__longjmp_chk");
	NoReturn();
	real(env, val);
	__builtin_unreachable();
}
