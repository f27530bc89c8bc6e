/* Allocation failure injection for the specs (LD_PRELOAD, glibc only).
 *
 *   WS_FAIL_ALLOC=N   the Nth allocation made by code in ws/core.so (its
 *                     own malloc/calloc/realloc/strdup calls, zlib's through
 *                     its allocator) returns NULL; every other one works.
 *   WS_FAIL_ALLOC_FROM=M  counting starts after M allocations of any kind
 *                     (0 by default), so start-up can be skipped.
 *
 * At exit, "failalloc: N allocations, failed: yes|no" goes to stderr, so a
 * spec knows when N passed the last allocation of its scenario.  Lua's own
 * allocations, OpenSSL's and libc's are never failed: only lua-ws's
 * handling of a NULL is under test. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);

static long target = -1, skip_first, seen_any, counted;
static int failed, ready, in_hook, exiting;

static void report(void)
{
    char line[96];
    int n = snprintf(line, sizeof line, "failalloc: %ld allocations, failed: %s\n", counted,
                     failed ? "yes" : "no");
    if (n > 0 && write(2, line, (size_t)n) < 0)
        return;
}

static void setup(void)
{
    ready = 1;
    const char *t = getenv("WS_FAIL_ALLOC");
    const char *f = getenv("WS_FAIL_ALLOC_FROM");
    if (t)
        target = atol(t);
    if (f)
        skip_first = atol(f);
    atexit(report);
}

/* Lua unloads ws/core.so when its state closes: the module's destructors
 * then run, among them the --coverage build's profile dump (linked into
 * ws/core.so), whose allocations are not under test. */
int dlclose(void *handle)
{
    static int (*real_dlclose)(void *);
    exiting = 1;
    if (real_dlclose == NULL)
        *(void **)&real_dlclose = dlsym(RTLD_NEXT, "dlclose");
    return real_dlclose != NULL ? real_dlclose(handle) : -1;
}

/* True when this allocation, called from `caller`, is the one to fail. */
static int fail_here(void *caller)
{
    if (in_hook || exiting)
        return 0;
    in_hook = 1;
    if (!ready)
        setup();
    int fail = 0;
    if (target > 0 && ++seen_any > skip_first) {
        Dl_info info;
        if (dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "ws/core.so")) {
            if (++counted == target) {
                failed = 1;
                fail = 1;
                errno = ENOMEM; /* as a real failure sets it */
            }
        }
    }
    in_hook = 0;
    return fail;
}

void *malloc(size_t n)
{
    if (fail_here(__builtin_return_address(0)))
        return NULL;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    if (fail_here(__builtin_return_address(0)))
        return NULL;
    return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    if (fail_here(__builtin_return_address(0)))
        return NULL;
    return __libc_realloc(p, n);
}

char *strdup(const char *s)
{
    if (fail_here(__builtin_return_address(0)))
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = __libc_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
