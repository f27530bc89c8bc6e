#include "utf8.h"

#include <string.h>

#define HIGH_BITS 0x8080808080808080ULL

int ws_utf8_feed(ws_utf8 *u, const uint8_t *p, size_t n)
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

bool ws_utf8_valid(const uint8_t *p, size_t n)
{
    ws_utf8 u;
    ws_utf8_init(&u);
    return ws_utf8_feed(&u, p, n) == WS_UTF8_OK;
}
