/* Fan-out of one message: the frame is built once, on first need. */
#include "fanout.h"

#include <stdlib.h>
#include <string.h>

#include "core/frame.h"

struct ws_fanout {
    const uint8_t *p; /* the payload (the caller's) */
    size_t n;
    bool binary;
    uint8_t *frame; /* header + payload, uncompressed; NULL until needed */
    size_t frame_len;
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
static int plain_frame(ws_fanout *f)
{
    if (f->frame)
        return WS_OK;
    ws_frame_header h;
    memset(&h, 0, sizeof h);
    h.fin = true;
    h.opcode = f->binary ? WS_OP_BINARY : WS_OP_TEXT;
    h.len = f->n;
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    size_t hl = ws_frame_encode(hdr, &h);
    if (!(f->frame = malloc(hl + f->n)))
        return WS_E_NOMEM;
    memcpy(f->frame, hdr, hl);
    if (f->n)
        memcpy(f->frame + hl, f->p, f->n);
    f->frame_len = hl + f->n;
    return WS_OK;
}

int ws_fanout_queue(ws_fanout *f, ws_conn *c)
{
    if (ws_session_state(ws_conn_session(c)) != WS_OPEN)
        return WS_E_STATE;
    int r = plain_frame(f);
    return r != WS_OK ? r : ws_conn_send_raw(c, f->frame, f->frame_len);
}

void ws_fanout_end(ws_fanout *f)
{
    if (!f)
        return;
    free(f->frame);
    free(f);
}
