/* Fan-out of one message: the frame is built once, on first need, and
 * every receiver's queue references it. */
#include "fanout.h"

#include <stdlib.h>
#include <string.h>

#include "core/frame.h"

struct ws_fanout {
    const uint8_t *p; /* the payload (the caller's) */
    size_t n;
    bool binary;
    ws_shared_frame *plain; /* header + payload, uncompressed; NULL until needed */
};

ws_fanout *ws_fanout_begin(bool binary, const uint8_t *p, size_t n)
{
    ws_fanout *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->p = p;
    f->n = n;
    f->binary = binary;
    return f;
}

/* The plain frame (servers never mask). */
static ws_shared_frame *plain_frame(ws_fanout *f)
{
    if (f->plain)
        return f->plain;
    ws_frame_header h;
    memset(&h, 0, sizeof h);
    h.fin = true;
    h.opcode = f->binary ? WS_OP_BINARY : WS_OP_TEXT;
    h.len = f->n;
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    size_t hl = ws_frame_encode(hdr, &h);
    ws_shared_frame *sf = ws_shared_frame_new(hl + f->n);
    if (!sf)
        return NULL;
    memcpy(sf->data, hdr, hl);
    if (f->n)
        memcpy(sf->data + hl, f->p, f->n);
    return f->plain = sf;
}

int ws_fanout_queue(ws_fanout *f, ws_conn *c)
{
    if (ws_session_state(ws_conn_session(c)) != WS_OPEN)
        return WS_E_STATE;
    ws_shared_frame *sf = plain_frame(f);
    return sf ? ws_conn_send_shared(c, sf) : WS_E_NOMEM;
}

void ws_fanout_end(ws_fanout *f)
{
    if (!f)
        return;
    ws_shared_frame_unref(f->plain);
    free(f);
}
