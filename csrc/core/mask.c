#include "mask.h"

#include <string.h>

/* The key rotated so that byte 0 lines up with payload position `offset`,
 * repeated across a 64-bit word. */
static uint64_t key_word(const uint8_t key[4], uint64_t offset)
{
    uint8_t k[8];
    for (int i = 0; i < 4; i++)
        k[i] = k[i + 4] = key[(offset + (uint64_t)i) & 3];
    uint64_t w;
    memcpy(&w, k, 8);
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
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, src + i, 32);
        w[0] ^= kw;
        w[1] ^= kw;
        w[2] ^= kw;
        w[3] ^= kw;
        memcpy(dst + i, w, 32);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= kw;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ key[(offset + i) & 3];
}
