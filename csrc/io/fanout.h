/* One message on its way to many connections (a server's broadcast, a
 * topic's subscribers): framed once, then queued to each receiver without
 * a Lua call.  Each receiver's max_buffered and buffer_policy apply to it
 * alone, so a full queue never holds up the others. */
#ifndef WS_FANOUT_H
#define WS_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "shared_frame.h"

#define WS_FANOUT_MAX_BITS 15

/* Lives on the caller's stack for the length of one fan-out: nothing keeps
 * it after ws_fanout_end (receivers hold references to its frames). */
typedef struct ws_fanout {
    const uint8_t *p; /* the payload (the caller's) */
    size_t n;
    bool binary;
    ws_shared_frame *plain;                     /* uncompressed; NULL until needed */
    ws_shared_frame *z[WS_FANOUT_MAX_BITS + 1]; /* compressed with a window of i bits */
} ws_fanout;

/* Start a message of n bytes at p; p must stay valid until ws_fanout_end.
 * Text must be valid UTF-8 (the caller checks it once).  Allocates
 * nothing: frames are made on first need. */
void ws_fanout_begin(ws_fanout *f, bool binary, const uint8_t *p, size_t n);
/* Queue the message to c, a server's connection: WS_OK, or as
 * ws_conn_send (WS_E_STATE unless OPEN, WS_E_FULL over max_buffered,
 * WS_E_BUSY while it sends a fragmented message, WS_E_NOMEM); WS_E_ARG for
 * a client's connection. */
int ws_fanout_queue(ws_fanout *f, ws_conn *c);
/* Done queuing: what receivers still hold stays until they wrote it. */
void ws_fanout_end(ws_fanout *f);

#endif
