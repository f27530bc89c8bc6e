/* Shared by the connection and server bindings. */
#ifndef WS_LUA_CONN_H
#define WS_LUA_CONN_H

#include <stdbool.h>

#include "conn.h"
#include "lua_compat.h"
#include "lua_loop.h"

#define CONN_MT "ws.core.conn"

typedef struct lserver lserver;

typedef struct lconn {
    ws_conn *c;
    ws_lua_loop *ll;
    lserver *srv; /* server side: the server that accepted it */
    struct lconn *next, *prev;
    int self_ref; /* registry anchor while the transport is open */
    bool opened;  /* on_open was delivered */
} lconn;

/* Push a new connection userdata (with an empty uservalue table) whose
 * callbacks are conn_callbacks; the caller creates the ws_conn and then
 * anchors it with ws_lua_conn_anchor. */
lconn *ws_lua_conn_push(lua_State *L, ws_lua_loop *ll);
void ws_lua_conn_anchor(lua_State *L, lconn *lc, int idx);
extern const ws_conn_callbacks ws_lua_conn_callbacks;

/* Options shared by clients and servers. */
void ws_lua_read_limits(lua_State *L, int t, ws_session_config *scfg);
void ws_lua_read_timeouts(lua_State *L, int t, ws_conn_config *ccfg, bool server);

/* Server hooks used by the connection code. */
void ws_lua_server_detach(lconn *lc);
void ws_lua_push_server(lua_State *L, lconn *lc); /* the server userdata or nil */

#endif
