/* UTF-8 validation: a scalar state machine that carries state across feeds
 * and fails on the first impossible byte, and on x86-64 (GCC or clang) a
 * vector check of whole runs of characters chosen at run time (AVX2 or
 * SSSE3).
 *
 * The vector check follows the "lookup" method of Keiser and Lemire,
 * "Validating UTF-8 in less than one instruction per byte" (2021): every
 * byte is judged together with the byte before it.  Three 16-entry tables,
 * indexed by the high nibble of the previous byte, the low nibble of the
 * previous byte and the high nibble of the current byte, each give a set of
 * error kinds that the pair may belong to; a pair is an error of a kind only
 * when all three tables agree, so the three lookups are ANDed.  One kind,
 * "continuation after continuation", is legal exactly where the byte two
 * back opens a 3- or 4-byte sequence or the byte three back opens a 4-byte
 * one; that position mask is XORed in, so a continuation that is missing or
 * one too many both leave a bit set.  The tables below were derived from
 * RFC 3629 section 4 for this file. */
#include "utf8.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WS_UTF8_X86 1
#include <immintrin.h>
#else
#define WS_UTF8_X86 0
#endif

#define HIGH_BITS 0x8080808080808080ULL

/* Runs shorter than this go through the scalar code. */
#define VEC_MIN 32

static int scalar_feed(ws_utf8 *u, const uint8_t *p, size_t n)
{
    size_t i = 0;
    unsigned need = u->need, lo = u->lo, hi = u->hi;
    while (i < n) {
        if (need == 0) {
            /* ASCII fast path: 16 then 8 bytes at a time. */
            while (i + 16 <= n) {
                uint64_t a, b;
                memcpy(&a, p + i, 8);
                memcpy(&b, p + i + 8, 8);
                if ((a | b) & HIGH_BITS)
                    break;
                i += 16;
            }
            while (i + 8 <= n) {
                uint64_t a;
                memcpy(&a, p + i, 8);
                if (a & HIGH_BITS)
                    break;
                i += 8;
            }
            if (i >= n)
                break;
            unsigned c = p[i++];
            if (c < 0x80)
                continue;
            lo = 0x80;
            hi = 0xbf;
            if (c >= 0xc2 && c <= 0xdf) {
                need = 1;
            } else if (c >= 0xe0 && c <= 0xef) {
                need = 2;
                if (c == 0xe0)
                    lo = 0xa0; /* overlong */
                else if (c == 0xed)
                    hi = 0x9f; /* surrogates */
            } else if (c >= 0xf0 && c <= 0xf4) {
                need = 3;
                if (c == 0xf0)
                    lo = 0x90; /* overlong */
                else if (c == 0xf4)
                    hi = 0x8f; /* above U+10FFFF */
            } else {
                return WS_UTF8_INVALID;
            }
        } else {
            unsigned c = p[i++];
            if (c < lo || c > hi)
                return WS_UTF8_INVALID;
            need--;
            lo = 0x80;
            hi = 0xbf;
        }
    }
    u->need = (uint8_t)need;
    u->lo = (uint8_t)lo;
    u->hi = (uint8_t)hi;
    return need ? WS_UTF8_PARTIAL : WS_UTF8_OK;
}

#if WS_UTF8_X86

/* Error kinds of a (previous byte, current byte) pair, one bit each. */
#define TOO_SHORT  0x01 /* lead byte not followed by a continuation */
#define TOO_LONG   0x02 /* ASCII followed by a continuation */
#define OVERLONG_3 0x04 /* E0 80..9F */
#define TOO_LARGE  0x08 /* F4 90..BF, F5..FF 90..BF */
#define SURROGATE  0x10 /* ED A0..BF */
#define OVERLONG_2 0x20 /* C0 or C1 as a lead */
#define F_80_8F    0x40 /* F0 80..8F (overlong), F5..FF 80..8F (too large) */
#define TWO_CONTS  0x80 /* continuation after continuation */

/* Indexed by the high nibble of the previous byte. */
static const uint8_t prev_high[16] = {
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TWO_CONTS,
    TWO_CONTS,
    TWO_CONTS,
    TWO_CONTS,
    TOO_SHORT | OVERLONG_2,
    TOO_SHORT,
    TOO_SHORT | OVERLONG_3 | SURROGATE,
    TOO_SHORT | TOO_LARGE | F_80_8F,
};

/* Indexed by the low nibble of the previous byte. */
#define ANY_LOW (TOO_SHORT | TOO_LONG | TWO_CONTS)
static const uint8_t prev_low[16] = {
    ANY_LOW | OVERLONG_2 | OVERLONG_3 | F_80_8F,
    ANY_LOW | OVERLONG_2,
    ANY_LOW,
    ANY_LOW,
    ANY_LOW | TOO_LARGE,
    ANY_LOW | TOO_LARGE | F_80_8F,
    ANY_LOW | TOO_LARGE | F_80_8F,
    ANY_LOW | TOO_LARGE | F_80_8F,
    ANY_LOW | TOO_LARGE | F_80_8F,
    ANY_LOW | TOO_LARGE | F_80_8F,
    ANY_LOW | TOO_LARGE | F_80_8F,
    ANY_LOW | TOO_LARGE | F_80_8F,
    ANY_LOW | TOO_LARGE | F_80_8F,
    ANY_LOW | TOO_LARGE | F_80_8F | SURROGATE,
    ANY_LOW | TOO_LARGE | F_80_8F,
    ANY_LOW | TOO_LARGE | F_80_8F,
};

/* Indexed by the high nibble of the current byte. */
#define ANY_CONT (TOO_LONG | TWO_CONTS | OVERLONG_2)
static const uint8_t cur_high[16] = {
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    ANY_CONT | OVERLONG_3 | F_80_8F,   /* 80..8F */
    ANY_CONT | OVERLONG_3 | TOO_LARGE, /* 90..9F */
    ANY_CONT | SURROGATE | TOO_LARGE,  /* A0..AF */
    ANY_CONT | SURROGATE | TOO_LARGE,  /* B0..BF */
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
};

/* Largest byte allowed in the last three positions of a text: a lead there
 * would open a sequence that the text does not finish. */
static const uint8_t last_max[32] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xef, 0xdf, 0xbf,
};

#define AVX2  __attribute__((target("avx2")))
#define SSSE3 __attribute__((target("ssse3")))

typedef struct avx2_tables {
    __m256i prev_high, prev_low, cur_high, nibble, last_max, third, fourth;
} avx2_tables;

/* Error bits of the 32 bytes in `in`, given the 32 bytes before them. */
AVX2 static inline __m256i avx2_check(const avx2_tables *t, __m256i in, __m256i before)
{
    /* the previous 1, 2 and 3 bytes of each position */
    __m256i mid = _mm256_permute2x128_si256(before, in, 0x21);
    __m256i prev1 = _mm256_alignr_epi8(in, mid, 15);
    __m256i prev2 = _mm256_alignr_epi8(in, mid, 14);
    __m256i prev3 = _mm256_alignr_epi8(in, mid, 13);
    __m256i a =
        _mm256_shuffle_epi8(t->prev_high, _mm256_and_si256(_mm256_srli_epi16(prev1, 4), t->nibble));
    __m256i b = _mm256_shuffle_epi8(t->prev_low, _mm256_and_si256(prev1, t->nibble));
    __m256i c =
        _mm256_shuffle_epi8(t->cur_high, _mm256_and_si256(_mm256_srli_epi16(in, 4), t->nibble));
    __m256i pair = _mm256_and_si256(_mm256_and_si256(a, b), c);
    /* bit 7 set where a third or fourth byte must be a continuation */
    __m256i must =
        _mm256_or_si256(_mm256_subs_epu8(prev2, t->third), _mm256_subs_epu8(prev3, t->fourth));
    must = _mm256_and_si256(must, _mm256_set1_epi8((char)TWO_CONTS));
    return _mm256_xor_si256(pair, must);
}

/* Are the 64 bytes at p all ASCII? */
AVX2 static inline bool avx2_ascii(const uint8_t *p)
{
    __m256i a = _mm256_loadu_si256((const __m256i *)p);
    __m256i b = _mm256_loadu_si256((const __m256i *)(p + 32));
    return _mm256_movemask_epi8(_mm256_or_si256(a, b)) == 0;
}

/* Is p[0..n) valid and complete UTF-8? */
AVX2 static bool avx2_valid(const uint8_t *p, size_t n)
{
    avx2_tables t;
    t.prev_high = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)prev_high));
    t.prev_low = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)prev_low));
    t.cur_high = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)cur_high));
    t.nibble = _mm256_set1_epi8(0x0f);
    t.last_max = _mm256_loadu_si256((const __m256i *)last_max);
    t.third = _mm256_set1_epi8((char)(0xe0 - 0x80));
    t.fourth = _mm256_set1_epi8((char)(0xf0 - 0x80));
    __m256i zero = _mm256_setzero_si256();
    __m256i before = zero, open = zero, err = zero;
    uint8_t tail[64];
    size_t i = 0;
    while (i < n) {
        const uint8_t *s = p + i;
        if (n - i < 64) {
            /* zeros are ASCII: they neither add nor hide an error */
            memset(tail, 0, sizeof tail);
            memcpy(tail, s, n - i);
            s = tail;
        }
        __m256i in0 = _mm256_loadu_si256((const __m256i *)s);
        __m256i in1 = _mm256_loadu_si256((const __m256i *)(s + 32));
        i += 64;
        if (_mm256_movemask_epi8(_mm256_or_si256(in0, in1)) == 0) {
            err = _mm256_or_si256(err, open); /* a sequence left open before ASCII */
            open = zero;
            before = zero; /* an ASCII block acts like zeros */
            while (i + 64 <= n && avx2_ascii(p + i))
                i += 64;
            continue;
        }
        err = _mm256_or_si256(err, avx2_check(&t, in0, before));
        err = _mm256_or_si256(err, avx2_check(&t, in1, in0));
        open = _mm256_subs_epu8(in1, t.last_max);
        before = in1;
    }
    err = _mm256_or_si256(err, open);
    return _mm256_testz_si256(err, err);
}

typedef struct ssse3_tables {
    __m128i prev_high, prev_low, cur_high, nibble, last_max, third, fourth;
} ssse3_tables;

SSSE3 static inline __m128i ssse3_check(const ssse3_tables *t, __m128i in, __m128i before)
{
    __m128i prev1 = _mm_alignr_epi8(in, before, 15);
    __m128i prev2 = _mm_alignr_epi8(in, before, 14);
    __m128i prev3 = _mm_alignr_epi8(in, before, 13);
    __m128i a = _mm_shuffle_epi8(t->prev_high, _mm_and_si128(_mm_srli_epi16(prev1, 4), t->nibble));
    __m128i b = _mm_shuffle_epi8(t->prev_low, _mm_and_si128(prev1, t->nibble));
    __m128i c = _mm_shuffle_epi8(t->cur_high, _mm_and_si128(_mm_srli_epi16(in, 4), t->nibble));
    __m128i pair = _mm_and_si128(_mm_and_si128(a, b), c);
    __m128i must = _mm_or_si128(_mm_subs_epu8(prev2, t->third), _mm_subs_epu8(prev3, t->fourth));
    must = _mm_and_si128(must, _mm_set1_epi8((char)TWO_CONTS));
    return _mm_xor_si128(pair, must);
}

SSSE3 static inline bool ssse3_ascii(const uint8_t *p)
{
    __m128i a = _mm_or_si128(_mm_loadu_si128((const __m128i *)p),
                             _mm_loadu_si128((const __m128i *)(p + 16)));
    __m128i b = _mm_or_si128(_mm_loadu_si128((const __m128i *)(p + 32)),
                             _mm_loadu_si128((const __m128i *)(p + 48)));
    return _mm_movemask_epi8(_mm_or_si128(a, b)) == 0;
}

SSSE3 static bool ssse3_valid(const uint8_t *p, size_t n)
{
    ssse3_tables t;
    t.prev_high = _mm_loadu_si128((const __m128i *)prev_high);
    t.prev_low = _mm_loadu_si128((const __m128i *)prev_low);
    t.cur_high = _mm_loadu_si128((const __m128i *)cur_high);
    t.nibble = _mm_set1_epi8(0x0f);
    t.last_max = _mm_loadu_si128((const __m128i *)(last_max + 16));
    t.third = _mm_set1_epi8((char)(0xe0 - 0x80));
    t.fourth = _mm_set1_epi8((char)(0xf0 - 0x80));
    __m128i zero = _mm_setzero_si128();
    __m128i before = zero, open = zero, err = zero;
    uint8_t tail[64];
    size_t i = 0;
    while (i < n) {
        const uint8_t *s = p + i;
        if (n - i < 64) {
            memset(tail, 0, sizeof tail);
            memcpy(tail, s, n - i);
            s = tail;
        }
        __m128i in0 = _mm_loadu_si128((const __m128i *)s);
        __m128i in1 = _mm_loadu_si128((const __m128i *)(s + 16));
        __m128i in2 = _mm_loadu_si128((const __m128i *)(s + 32));
        __m128i in3 = _mm_loadu_si128((const __m128i *)(s + 48));
        i += 64;
        __m128i any = _mm_or_si128(_mm_or_si128(in0, in1), _mm_or_si128(in2, in3));
        if (_mm_movemask_epi8(any) == 0) {
            err = _mm_or_si128(err, open);
            open = zero;
            before = zero;
            while (i + 64 <= n && ssse3_ascii(p + i))
                i += 64;
            continue;
        }
        err = _mm_or_si128(err, ssse3_check(&t, in0, before));
        err = _mm_or_si128(err, ssse3_check(&t, in1, in0));
        err = _mm_or_si128(err, ssse3_check(&t, in2, in1));
        err = _mm_or_si128(err, ssse3_check(&t, in3, in2));
        open = _mm_subs_epu8(in3, t.last_max);
        before = in3;
    }
    err = _mm_or_si128(err, open);
    return _mm_movemask_epi8(_mm_cmpeq_epi8(err, zero)) == 0xffff;
}

#endif /* WS_UTF8_X86 */

bool ws_utf8_have_impl(int impl)
{
    switch (impl) {
    case WS_UTF8_AUTO:
    case WS_UTF8_SCALAR: return true;
#if WS_UTF8_X86
    case WS_UTF8_SSSE3: return __builtin_cpu_supports("ssse3");
    case WS_UTF8_AVX2: return __builtin_cpu_supports("avx2");
#endif
    default: return false;
    }
}

static int pick(int impl)
{
    if (impl != WS_UTF8_AUTO && ws_utf8_have_impl(impl))
        return impl;
    if (ws_utf8_have_impl(WS_UTF8_AVX2))
        return WS_UTF8_AVX2;
    if (ws_utf8_have_impl(WS_UTF8_SSSE3))
        return WS_UTF8_SSSE3;
    return WS_UTF8_SCALAR;
}

/* Whole, complete text with a vector implementation. */
static bool vec_valid(int impl, const uint8_t *p, size_t n)
{
#if WS_UTF8_X86
    if (impl == WS_UTF8_AVX2)
        return avx2_valid(p, n);
    if (impl == WS_UTF8_SSSE3)
        return ssse3_valid(p, n);
#endif
    (void)impl;
    ws_utf8 u;
    ws_utf8_init(&u);
    return scalar_feed(&u, p, n) == WS_UTF8_OK;
}

/* The end of the last character that begins in p[start..n): n, or the
 * position of a lead byte in the last three whose sequence runs past n. */
static size_t last_boundary(const uint8_t *p, size_t start, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n - start; k++) {
        unsigned c = p[n - k];
        if (c < 0x80)
            break;
        if (c >= 0xc0) {
            size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            return len > k ? n - k : n;
        }
    }
    return n;
}

int ws_utf8_feed_with(ws_utf8 *u, const uint8_t *p, size_t n, int impl)
{
    impl = pick(impl);
    if (impl == WS_UTF8_SCALAR || n < VEC_MIN)
        return scalar_feed(u, p, n);
    size_t i = 0;
    if (u->need) {
        /* finish the sequence carried over from the last feed */
        i = u->need < n ? u->need : n;
        if (scalar_feed(u, p, i) == WS_UTF8_INVALID)
            return WS_UTF8_INVALID;
    }
    /* The vector code checks whole characters only; an open sequence at the
     * end goes through the state machine, which keeps it for the next feed
     * and rejects it as soon as it cannot be finished. */
    size_t end = last_boundary(p, i, n);
    if (end - i >= VEC_MIN) {
        if (!vec_valid(impl, p + i, end - i))
            return WS_UTF8_INVALID;
        i = end;
    }
    return scalar_feed(u, p + i, n - i);
}

bool ws_utf8_valid_with(const uint8_t *p, size_t n, int impl)
{
    impl = pick(impl);
    if (impl != WS_UTF8_SCALAR && n >= VEC_MIN)
        return vec_valid(impl, p, n);
    ws_utf8 u;
    ws_utf8_init(&u);
    return scalar_feed(&u, p, n) == WS_UTF8_OK;
}

int ws_utf8_feed(ws_utf8 *u, const uint8_t *p, size_t n)
{
    return ws_utf8_feed_with(u, p, n, WS_UTF8_AUTO);
}

bool ws_utf8_valid(const uint8_t *p, size_t n)
{
    return ws_utf8_valid_with(p, n, WS_UTF8_AUTO);
}
