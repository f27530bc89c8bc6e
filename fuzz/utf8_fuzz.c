/* libFuzzer harness: ws_utf8_valid / ws_utf8_feed, every implementation
 * this CPU runs (scalar, SSSE3, AVX2), against an independent reference.
 *
 * Input layout: 3 control bytes, then the text.
 *   [0] seed for the chunk sizes of the multi-chunk feed
 *   [1..2] split point of the two-part feed (modulo text length + 1)
 * Inputs shorter than 3 bytes are all text, split in the middle.
 *
 * The reference works on code point values: it finds the first byte after
 * which the text can no longer begin valid UTF-8 (a sequence cut short is
 * still possible while some ending of it gives an allowed code point), and
 * whether the text ends on a character boundary.  Invariants checked, for
 * each implementation:
 *   - the whole-buffer answer equals the reference, which itself agrees
 *     with fuzz_utf8_valid (fuzz_util.h);
 *   - fed in two parts, and fed in pseudo-random chunks, INVALID comes
 *     from exactly the feed holding the first impossible byte, never
 *     earlier; before it each feed answers PARTIAL iff the bytes so far end
 *     inside a sequence, else OK. */
#include <string.h>

#include "fuzz_util.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Index of the first byte after which p[0..n) cannot begin valid UTF-8,
 * or n if there is none; *complete: the text ends on a boundary.  bnd[i]
 * (n + 1 entries, all false on entry) is set where a character ends before
 * that byte. */
static size_t ref_first_bad(const uint8_t *p, size_t n, bool *complete, bool *bnd)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    static const uint32_t max_cp[5] = {0, 0x7f, 0x7ff, 0xffff, 0x10ffff};
    size_t i = 0;
    *complete = true;
    while (i < n) {
        bnd[i] = true;
        uint8_t c = p[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        for (size_t m = 0; m < len; m++) {
            if (m > 0) {
                if (i + m >= n) {
                    *complete = false;
                    return n;
                }
                if ((p[i + m] & 0xc0) != 0x80)
                    return i + m;
                cp = (cp << 6) | (p[i + m] & 0x3f);
            }
            /* the code points this sequence can still become */
            unsigned rest = 6 * (unsigned)(len - 1 - m);
            uint32_t lo = cp << rest, hi = lo | ((1u << rest) - 1);
            if (lo < min_cp[len])
                lo = min_cp[len];
            if (hi > max_cp[len])
                hi = max_cp[len];
            if (lo > hi || (lo >= 0xd800 && hi <= 0xdfff))
                return i + m;
        }
        i += len;
    }
    bnd[n] = true;
    return n;
}

/* What a feed ending at `end` must answer, given no earlier INVALID. */
static int expect_after(const bool *bnd, size_t end, size_t bad)
{
    if (bad < end)
        return WS_UTF8_INVALID;
    return bnd[end] ? WS_UTF8_OK : WS_UTF8_PARTIAL;
}

static const char *const NAMES[] = {"auto", "scalar", "ssse3", "avx2"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned seed = 1;
    size_t split;
    const uint8_t *p = data;
    size_t n = size;
    if (size >= 3) {
        seed = data[0];
        split = (size_t)((data[1] << 8) | data[2]);
        p = data + 3;
        n = size - 3;
        split %= n + 1;
    } else {
        split = n / 2;
    }

    bool complete;
    bool *bnd = calloc(n + 1, sizeof *bnd);
    FUZZ_CHECK(bnd != NULL, "out of memory");
    size_t bad = ref_first_bad(p, n, &complete, bnd);
    bool valid = bad == n && complete;
    FUZZ_CHECK(valid == fuzz_utf8_valid(p, n), "references disagree (bad %zu of %zu)", bad, n);

    for (int impl = WS_UTF8_AUTO; impl <= WS_UTF8_AVX2; impl++) {
        if (!ws_utf8_have_impl(impl))
            continue;
        const char *name = NAMES[impl];
        FUZZ_CHECK(ws_utf8_valid_with(p, n, impl) == valid, "%s: whole %zu bytes, valid=%d", name,
                   n, valid);
        if (impl == WS_UTF8_AUTO)
            FUZZ_CHECK(ws_utf8_valid(p, n) == valid, "ws_utf8_valid");

        /* two parts */
        ws_utf8 u;
        ws_utf8_init(&u);
        int r = ws_utf8_feed_with(&u, p, split, impl);
        int want = expect_after(bnd, split, bad);
        FUZZ_CHECK(r == want, "%s: first part 0..%zu: %d, want %d (bad %zu)", name, split, r, want,
                   bad);
        if (r != WS_UTF8_INVALID) {
            r = ws_utf8_feed_with(&u, p + split, n - split, impl);
            want = expect_after(bnd, n, bad);
            FUZZ_CHECK(r == want, "%s: second part %zu..%zu: %d, want %d (bad %zu)", name, split, n,
                       r, want, bad);
            FUZZ_CHECK((r == WS_UTF8_OK) == valid, "%s: two parts", name);
        }

        /* pseudo-random chunks: mostly short, some long enough for vectors */
        ws_utf8_init(&u);
        unsigned x = seed * 2654435761u + 1;
        size_t at = 0;
        r = WS_UTF8_OK;
        do {
            x = x * 1103515245u + 12345u;
            unsigned pick = (x >> 16) & 0xff;
            size_t k = pick < 128 ? pick % 5 : pick < 224 ? pick % 97 : pick * 3;
            if (k > n - at)
                k = n - at;
            r = ws_utf8_feed_with(&u, p + at, k, impl);
            at += k;
            want = expect_after(bnd, at, bad);
            FUZZ_CHECK(r == want, "%s: chunk ..%zu: %d, want %d (bad %zu)", name, at, r, want, bad);
        } while (r != WS_UTF8_INVALID && at < n);
    }
    free(bnd);
    return 0;
}
