/* fork() failure injection for the specs (LD_PRELOAD): a supervisor that
 * cannot fork, as at the process limit, whoever runs the specs (root
 * ignores RLIMIT_NPROC).
 *
 *   WS_FAIL_FORK=N     the Nth fork() of the process fails with EAGAIN
 *   WS_FAIL_FORK=N-    the Nth and every later one fails
 *   WS_FAIL_FORK=N-M   the Nth to the Mth fail
 *
 * Counted per process image: preload it into the Lua interpreter only
 * (`timeout 60 env LD_PRELOAD=... lua`), not a shell that forks itself. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

static long seen;

static int must_fail(long n)
{
    const char *spec = getenv("WS_FAIL_FORK");
    if (!spec || !*spec)
        return 0;
    char *end;
    long from = strtol(spec, &end, 10), to = from;
    if (*end == '-')
        to = end[1] ? strtol(end + 1, NULL, 10) : LONG_MAX;
    return from > 0 && n >= from && n <= to;
}

pid_t fork(void)
{
    static pid_t (*real)(void);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "fork");
    if (must_fail(++seen)) {
        errno = EAGAIN;
        return -1;
    }
    return real();
}
