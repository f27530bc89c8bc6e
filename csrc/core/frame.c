#include "frame.h"

#include <string.h>

int ws_frame_decode(const uint8_t *p, size_t n, ws_frame_header *h)
{
    if (n < 2)
        return WS_E_NEED_MORE;
    /* Most frames a server reads: masked, length in 7 bits. */
    if (p[1] >= 0x80 && p[1] < 0x80 + 126) {
        if (n < 6)
            return WS_E_NEED_MORE;
        h->fin = (p[0] & 0x80) != 0;
        h->rsv = p[0] & 0x70;
        h->opcode = p[0] & 0x0f;
        h->masked = true;
        h->len = p[1] & 0x7f;
        memcpy(h->mask, p + 2, 4);
        return 6;
    }
    size_t need = 2;
    unsigned len7 = p[1] & 0x7f;
    if (len7 == 126)
        need += 2;
    else if (len7 == 127)
        need += 8;
    if (p[1] & 0x80)
        need += 4;
    if (n < need)
        return WS_E_NEED_MORE;

    h->fin = (p[0] & 0x80) != 0;
    h->rsv = p[0] & 0x70;
    h->opcode = p[0] & 0x0f;
    h->masked = (p[1] & 0x80) != 0;
    const uint8_t *q = p + 2;
    if (len7 == 126) {
        h->len = ((uint64_t)q[0] << 8) | q[1];
        q += 2;
    } else if (len7 == 127) {
        if (q[0] & 0x80)
            return WS_E_PROTOCOL;
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v = (v << 8) | q[i];
        h->len = v;
        q += 8;
    } else {
        h->len = len7;
    }
    if (h->masked)
        memcpy(h->mask, q, 4);
    else
        memset(h->mask, 0, 4);
    return (int)need;
}

size_t ws_frame_encode(uint8_t *out, const ws_frame_header *h)
{
    size_t i = 0;
    out[i++] = (uint8_t)((h->fin ? 0x80 : 0) | (h->rsv & 0x70) | (h->opcode & 0x0f));
    uint8_t maskbit = h->masked ? 0x80 : 0;
    if (h->len <= 125) {
        out[i++] = (uint8_t)(maskbit | h->len);
    } else if (h->len <= 0xffff) {
        out[i++] = (uint8_t)(maskbit | 126);
        out[i++] = (uint8_t)(h->len >> 8);
        out[i++] = (uint8_t)h->len;
    } else {
        out[i++] = (uint8_t)(maskbit | 127);
        for (int s = 56; s >= 0; s -= 8)
            out[i++] = (uint8_t)(h->len >> s);
    }
    if (h->masked) {
        memcpy(out + i, h->mask, 4);
        i += 4;
    }
    return i;
}
