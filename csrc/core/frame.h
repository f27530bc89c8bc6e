/* WebSocket frame headers (RFC 6455 section 5.2): decode and encode. */
#ifndef WS_FRAME_H
#define WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA
};

#define WS_RSV1 0x40
#define WS_RSV2 0x20
#define WS_RSV3 0x10

#define WS_FRAME_HEADER_MAX 14
#define WS_CONTROL_MAX      125

typedef struct ws_frame_header {
    uint64_t len;
    uint8_t mask[4];
    uint8_t opcode;
    uint8_t rsv; /* WS_RSV1 | WS_RSV2 | WS_RSV3 bits as on the wire */
    bool fin;
    bool masked;
} ws_frame_header;

static inline bool ws_opcode_is_control(unsigned op)
{
    return (op & 0x8) != 0;
}

/* Decode a header from the first n bytes of p.  Returns the header length
 * (> 0) on success, or a negative ws_err: WS_E_NEED_MORE when more bytes
 * are needed, WS_E_PROTOCOL when the 64-bit length has its most
 * significant bit set. */
int ws_frame_decode(const uint8_t *p, size_t n, ws_frame_header *h);

/* Encode h into out (WS_FRAME_HEADER_MAX bytes), always with the shortest
 * length form.  Returns the header length. */
size_t ws_frame_encode(uint8_t *out, const ws_frame_header *h);

#endif
