/* Fan-out of one message: each frame is built once, on first need, and
 * every receiver's queue references it.  With permessage-deflate a
 * receiver that does not keep the compression context between messages
 * (server_no_context_takeover) shares one compressed frame per window
 * size; one that keeps it compresses the message with its own context. */
#include "fanout.h"

#include <string.h>

#include "core/deflate.h"
#include "core/frame.h"
#include "shared_frame.h"

void ws_fanout_begin(ws_fanout *f, bool binary, const uint8_t *p, size_t n)
{
    memset(f, 0, sizeof *f);
    f->p = p;
    f->n = n;
    f->binary = binary;
}

/* A shared frame of payload p, n (servers never mask). */
static ws_shared_frame *make_frame(const ws_fanout *f, bool compressed, const uint8_t *p, size_t n)
{
    ws_frame_header h;
    memset(&h, 0, sizeof h);
    h.fin = true;
    h.rsv = compressed ? WS_RSV1 : 0;
    h.opcode = f->binary ? WS_OP_BINARY : WS_OP_TEXT;
    h.len = n;
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    size_t hl = ws_frame_encode(hdr, &h);
    ws_shared_frame *sf = ws_shared_frame_new(hl + n);
    if (!sf)
        return NULL;
    memcpy(sf->data, hdr, hl);
    if (n)
        memcpy(sf->data + hl, p, n);
    return sf;
}

/* The message compressed as d would with a fresh context, for every
 * receiver whose window is bits. */
static ws_shared_frame *compressed_frame(ws_fanout *f, const ws_deflate *d, int bits)
{
    if (f->z[bits])
        return f->z[bits];
    ws_buf z;
    ws_buf_init(&z);
    if (ws_deflate_once(d, f->p, f->n, &z) == WS_OK &&
        (f->z[bits] = make_frame(f, true, ws_buf_begin(&z), ws_buf_size(&z))) != NULL)
        ws_shared_frame_stats_get()->compressed++;
    ws_buf_free(&z);
    return f->z[bits];
}

int ws_fanout_queue(ws_fanout *f, ws_conn *c)
{
    ws_session *s = ws_conn_session(c);
    if (ws_session_state(s) != WS_OPEN)
        return WS_E_STATE;
    if (ws_session_role(s) != WS_SERVER)
        return WS_E_ARG; /* a client would have to mask each copy */
    const ws_deflate *d = ws_session_deflate(s);
    ws_shared_frame *sf;
    if (d && ws_deflate_wants(d, f->n)) {
        int bits = ws_deflate_shared_bits(d);
        if (!bits) /* its context goes on from its last message */
            return ws_conn_send_ex(c, f->binary, f->p, f->n, WS_SEND_COMPRESS);
        sf = compressed_frame(f, d, bits);
    } else {
        sf = f->plain ? f->plain : (f->plain = make_frame(f, false, f->p, f->n));
    }
    return sf ? ws_conn_send_shared(c, sf) : WS_E_NOMEM;
}

void ws_fanout_end(ws_fanout *f)
{
    ws_shared_frame_unref(f->plain);
    for (int i = 0; i <= WS_FANOUT_MAX_BITS; i++)
        ws_shared_frame_unref(f->z[i]);
}
