/* The Redis backplane binding: ws.core.redis, srv:attach / srv:detach, and
 * what the server and topic bindings call of it. */
#ifndef WS_LUA_BACKPLANE_H
#define WS_LUA_BACKPLANE_H

#include <stdbool.h>
#include <stddef.h>

#include "lua_conn.h"

typedef struct lbackplane lbackplane;

/* The server's topics are going away (its __gc): the backplane forgets it. */
void ws_lua_backplane_server_gone(lbackplane *lb);

/* After a local publish on srv: when a backplane is attached, publish to
 * Redis too and push true, or false and the reason (returns 2 or 3);
 * returns 0 (nothing pushed) without a backplane. */
int ws_lua_backplane_publish(lua_State *L, lbackplane *lb, const char *topic, size_t tlen,
                             const char *data, size_t n, bool binary);

/* ws.listen's `backplane` option of the table at opts: raise unless it is
 * nil or an open backplane (checked before the server is made). */
void ws_lua_backplane_check_option(lua_State *L, int opts);
/* Attach the option's backplane to the server at sidx, if there is one. */
void ws_lua_backplane_attach_option(lua_State *L, int opts, int sidx);

#endif
