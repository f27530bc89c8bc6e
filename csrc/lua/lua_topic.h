/* Topics of a server's connections (c:subscribe, srv:publish): what the
 * topic binding needs of the server binding. */
#ifndef WS_LUA_TOPIC_H
#define WS_LUA_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/topic.h"
#include "lua_conn.h"

/* The server at stack index idx, or raise. */
lserver *ws_lua_check_server(lua_State *L, int idx);
/* Its loop closed it. */
bool ws_lua_server_released(const lserver *srv);
/* The server's topics; NULL before the first subscribe unless create
 * (and when out of memory). */
ws_topics *ws_lua_server_topics(lserver *srv, bool create);
/* Registry field: a light userdata, the process's ws_shared_frame_stats. */
#define WS_LUA_SHARED_STATS_KEY "ws.core.shared_frame_stats"

/* Its connections (a list through lconn.next). */
lconn *ws_lua_server_clients(lserver *srv);

/* Frame a message once and queue it to every OPEN client of srv (topic
 * NULL) or to every subscriber of topic (tlen bytes), without a Lua call:
 * srv:broadcast and srv:publish, and deliveries arriving from elsewhere.
 * Text must be valid UTF-8 (not checked).  Returns how many connections
 * queued it (one that could not, out of memory included, is not counted). */
lua_Integer ws_lua_server_fanout(lserver *srv, const char *topic, size_t tlen, bool binary,
                                 const uint8_t *p, size_t n);

/* The server's attached backplane slot (NULL when none). */
struct lbackplane **ws_lua_server_backplane(lserver *srv);

#endif
