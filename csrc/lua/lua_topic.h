/* Topics of a server's connections (c:subscribe, srv:publish): what the
 * topic binding needs of the server binding. */
#ifndef WS_LUA_TOPIC_H
#define WS_LUA_TOPIC_H

#include <stdbool.h>

#include "io/topic.h"
#include "lua_conn.h"

/* The server at stack index idx, or raise. */
lserver *ws_lua_check_server(lua_State *L, int idx);
/* Its loop closed it. */
bool ws_lua_server_released(const lserver *srv);
/* The server's topics; NULL before the first subscribe unless create
 * (and when out of memory). */
ws_topics *ws_lua_server_topics(lserver *srv, bool create);

#endif
