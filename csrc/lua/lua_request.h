/* The one Lua shape of a request a server received. */
#ifndef WS_LUA_REQUEST_H
#define WS_LUA_REQUEST_H

#include "core/handshake.h"
#include "core/http.h"
#include "lua_compat.h"

/* Push the request as a table, the same for on_upgrade, on_request, the
 * session's "request" event and ws.core.accept: method, path, query (when
 * there is one), headers, origin, protocols (every subprotocol offered, in
 * the client's order), extensions (every Sec-WebSocket-Extensions value
 * joined with ", "; nil when none).  With r (an upgrade request) also key
 * and head_length.  Servers add the peer's fields themselves. */
void ws_lua_push_request(lua_State *L, const ws_http_head *h, const ws_server_request *r);

#endif
