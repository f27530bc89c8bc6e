/* Incremental UTF-8 validation (RFC 3629) that fails as soon as the bytes
 * seen cannot begin valid UTF-8, as RFC 6455 section 8.1 asks. */
#ifndef WS_UTF8_H
#define WS_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ws_utf8 {
    uint8_t need; /* continuation bytes still expected */
    uint8_t lo;   /* allowed range of the next continuation byte */
    uint8_t hi;
} ws_utf8;

enum { WS_UTF8_INVALID = -1, WS_UTF8_OK = 0, WS_UTF8_PARTIAL = 1 };

static inline void ws_utf8_init(ws_utf8 *u)
{
    u->need = 0;
    u->lo = 0x80;
    u->hi = 0xbf;
}

/* Feed n more bytes.  Returns WS_UTF8_INVALID as soon as a byte breaks the
 * encoding, WS_UTF8_PARTIAL when a sequence is still open at the end, else
 * WS_UTF8_OK.  After INVALID the state is undefined. */
int ws_utf8_feed(ws_utf8 *u, const uint8_t *p, size_t n);

/* Whole-buffer check. */
bool ws_utf8_valid(const uint8_t *p, size_t n);

/* The implementations behind the two calls above, for tests, fuzzing and
 * benchmarks.  WS_UTF8_AUTO picks the fastest one this CPU runs (AVX2, then
 * SSSE3 on x86-64 with GCC or clang; the portable scalar code elsewhere).
 * All give the same answers; an implementation this build or CPU cannot run
 * falls back to WS_UTF8_AUTO. */
enum { WS_UTF8_AUTO, WS_UTF8_SCALAR, WS_UTF8_SSSE3, WS_UTF8_AVX2 };
bool ws_utf8_have_impl(int impl);
int ws_utf8_feed_with(ws_utf8 *u, const uint8_t *p, size_t n, int impl);
bool ws_utf8_valid_with(const uint8_t *p, size_t n, int impl);

#endif
