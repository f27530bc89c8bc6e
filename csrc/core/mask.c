#include "mask.h"

#include <string.h>

/* The key rotated so that byte 0 lines up with payload position `offset`,
 * repeated across a 64-bit word. */
static uint64_t key_word(const uint8_t key[4], uint64_t offset)
{
    /* The key three times over: the word starting at byte offset % 4 is
     * the rotated key twice (a few moves, not a loop per byte). */
    uint8_t k[12];
    memcpy(k, key, 4);
    memcpy(k + 4, key, 4);
    memcpy(k + 8, key, 4);
    uint64_t w;
    memcpy(&w, k + (offset & 3), 8);
    return w;
}

void ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset)
{
    ws_mask_copy(p, p, n, key, offset);
}

void ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4], uint64_t offset)
{
    size_t i = 0;
    /* Long runs first step bytewise until dst is 8-byte aligned; short ones
     * (most messages) go straight to words.  memcpy keeps the unaligned
     * loads and stores well-defined and compiles to plain moves. */
    if (n >= 256) {
        while (((uintptr_t)(dst + i) & 7) != 0) {
            dst[i] = src[i] ^ key[(offset + i) & 3];
            i++;
        }
    }
    uint64_t kw = key_word(key, offset + i);
    /* 64 bytes a turn: the loop's own overhead is a quarter of its work. */
    for (; i + 64 <= n; i += 64) {
        uint64_t a, b, c, d, e, f, g, h;
        memcpy(&a, src + i, 8);
        memcpy(&b, src + i + 8, 8);
        memcpy(&c, src + i + 16, 8);
        memcpy(&d, src + i + 24, 8);
        memcpy(&e, src + i + 32, 8);
        memcpy(&f, src + i + 40, 8);
        memcpy(&g, src + i + 48, 8);
        memcpy(&h, src + i + 56, 8);
        a ^= kw;
        b ^= kw;
        c ^= kw;
        d ^= kw;
        e ^= kw;
        f ^= kw;
        g ^= kw;
        h ^= kw;
        memcpy(dst + i, &a, 8);
        memcpy(dst + i + 8, &b, 8);
        memcpy(dst + i + 16, &c, 8);
        memcpy(dst + i + 24, &d, 8);
        memcpy(dst + i + 32, &e, 8);
        memcpy(dst + i + 40, &f, 8);
        memcpy(dst + i + 48, &g, 8);
        memcpy(dst + i + 56, &h, 8);
    }
    for (; i + 16 <= n; i += 16) { /* short messages: two words a turn */
        uint64_t a, b;
        memcpy(&a, src + i, 8);
        memcpy(&b, src + i + 8, 8);
        a ^= kw;
        b ^= kw;
        memcpy(dst + i, &a, 8);
        memcpy(dst + i + 8, &b, 8);
    }
    if (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= kw;
        memcpy(dst + i, &w, 8);
        i += 8;
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ key[(offset + i) & 3];
}
