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

typedef struct ws_fanout ws_fanout;

/* Start a message of n bytes at p; p must stay valid until ws_fanout_end.
 * Text must be valid UTF-8 (the caller checks it once).  NULL when out of
 * memory. */
ws_fanout *ws_fanout_begin(bool binary, const uint8_t *p, size_t n);
/* Queue the message to c, a server's connection: WS_OK, or as
 * ws_conn_send (WS_E_STATE unless OPEN, WS_E_FULL over max_buffered,
 * WS_E_BUSY while it sends a fragmented message, WS_E_NOMEM); WS_E_ARG for
 * a client's connection. */
int ws_fanout_queue(ws_fanout *f, ws_conn *c);
/* Done queuing: what receivers still hold stays until they wrote it. */
void ws_fanout_end(ws_fanout *f);

#endif
