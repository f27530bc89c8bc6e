/* dladdr and RTLD_NODELETE are extensions (glibc, macOS). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#define _DARWIN_C_SOURCE
#endif
#include "pin.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>

static void pin(void)
{
#ifdef RTLD_NODELETE
    Dl_info info;
    if (dladdr((void *)(uintptr_t)pin, &info) && info.dli_fname) {
        /* NODELETE sticks to the object; this extra handle can go. */
        void *self = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
        if (self)
            dlclose(self);
    }
#endif
}

void ws_pin_module(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, pin);
}
