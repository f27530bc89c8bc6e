/* Publish/subscribe on a server: c:subscribe, c:unsubscribe, c:topics,
 * srv:publish, srv:subscribers.  A publish frames the message once and
 * queues the same frame for every subscriber, with no Lua call per
 * receiver; each receiver's max_buffered and buffer_policy apply to it
 * alone. */
/***
 * Topics (publish/subscribe) of module ws, implemented in C.
 * @module ws
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "io/fanout.h"
#include "lua_backplane.h"
#include "lua_core.h"
#include "lua_opts.h"
#include "lua_topic.h"

/* The connection's topics (in its extras): made at the first subscribe
 * (free() it whole: the member comes first) and pointing back at its
 * connection. */
typedef struct conn_topics {
    ws_topic_member m;
    lconn *lc;
} conn_topics;

static lconn *member_conn(ws_topic_member *m)
{
    return ((conn_topics *)(void *)m)->lc;
}

/* The topic argument: a string of 1 to WS_TOPIC_MAX bytes. */
static const char *check_topic(lua_State *L, int i, size_t *len)
{
    *len = 0;
    const char *p = lua_type(L, i) == LUA_TSTRING ? lua_tolstring(L, i, len) : NULL;
    if (!p || *len == 0 || *len > WS_TOPIC_MAX)
        luaL_argerror(
            L, i,
            lua_pushfstring(L, "topic must be a non-empty string of at most %d bytes, got %s",
                            WS_TOPIC_MAX,
                            p ? lua_pushfstring(L, "%d bytes", (int)*len) : luaL_typename(L, i)));
    return p;
}

/* The connection's server, or NULL (nil, "connection is closed" pushed)
 * once it is closing or closed.  A client connection raises. */
static lserver *conn_server(lua_State *L, lconn *lc, const char *what)
{
    if (!lc->server_side)
        luaL_error(L, "%s: topics belong to a server's connections, not to a client", what);
    lserver *srv = ws_lua_conn_server(lc);
    if (srv && lc->c && ws_session_state(ws_conn_session(lc->c)) <= WS_OPEN)
        return srv;
    lua_pushnil(L);
    lua_pushliteral(L, "connection is closed");
    return NULL;
}

static lua_Integer deliver(ws_fanout *f, const lconn *lc)
{
    return lc->c && ws_fanout_queue(f, lc->c) == WS_OK;
}

lua_Integer ws_lua_server_fanout(lserver *srv, const char *topic, size_t tlen, bool binary,
                                 const uint8_t *p, size_t n)
{
    const ws_topic_sub *subs = NULL;
    size_t nsubs = 0;
    if (topic) {
        ws_topics *ts = ws_lua_server_topics(srv, false);
        if (ts)
            subs = ws_topics_subscribers(ts, topic, tlen, &nsubs);
        if (nsubs == 0)
            return 0;
    } else if (!ws_lua_server_clients(srv)) {
        return 0;
    }
    ws_fanout f;
    ws_fanout_begin(&f, binary, p, n);
    /* Queuing never calls back into Lua nor changes the set: a full queue
     * closes later, at a flush. */
    lua_Integer count = 0;
    if (topic) {
        for (size_t i = 0; i < nsubs; i++)
            count += deliver(&f, member_conn(subs[i].member));
    } else {
        for (const lconn *lc = ws_lua_server_clients(srv); lc; lc = lc->next)
            count += deliver(&f, lc);
    }
    ws_fanout_end(&f);
    return count;
}

/***
 * @type Connection
 */

/***
 * Subscribe the connection to a topic: `srv:publish(topic, ...)` sends to it
 * until `c:unsubscribe(topic)` or until it closes.  Server side only: a
 * client connection raises.
 * @function Connection:subscribe
 * @tparam string topic 1 to 1024 bytes, any bytes
 * @return `true` when it subscribed now, `false` when it was already, or
 *  `nil, "connection is closed"` once CLOSING or CLOSED
 * @raise when topic is not a string of 1 to 1024 bytes
 */
static int l_subscribe(lua_State *L)
{
    lconn *lc = luaL_checkudata(L, 1, CONN_MT);
    size_t len;
    const char *topic = check_topic(L, 2, &len);
    lserver *srv = conn_server(L, lc, "subscribe");
    if (!srv)
        return 2;
    ws_topics *ts = ws_lua_server_topics(srv, true);
    ws_lua_conn_extras *x = ts ? ws_lua_conn_extras_get(lc) : NULL;
    if (x && !x->topics) {
        conn_topics *ct = calloc(1, sizeof *ct);
        if (ct) {
            ct->lc = lc;
            x->topics = &ct->m;
        }
    }
    int r = x && x->topics ? ws_topics_subscribe(ts, x->topics, topic, len) : -1;
    if (r < 0)
        return luaL_error(L, "subscribe: out of memory");
    lua_pushboolean(L, r);
    return 1;
}

/***
 * Leave a topic.
 * @function Connection:unsubscribe
 * @tparam string topic
 * @treturn boolean `true` when it left it, `false` when it was not subscribed
 *  (a closed connection has left every topic)
 */
static int l_unsubscribe(lua_State *L)
{
    lconn *lc = luaL_checkudata(L, 1, CONN_MT);
    size_t len;
    const char *topic = check_topic(L, 2, &len);
    if (!lc->server_side)
        return luaL_error(L,
                          "unsubscribe: topics belong to a server's connections, not to a client");
    lserver *srv = ws_lua_conn_server(lc);
    ws_topics *ts = srv ? ws_lua_server_topics(srv, false) : NULL;
    ws_topic_member *tm = lc->side.extras ? lc->side.extras->topics : NULL;
    lua_pushboolean(L, ts && tm && ws_topics_unsubscribe(ts, tm, topic, len));
    return 1;
}

/***
 * The topics the connection is subscribed to, in no particular order.
 * @function Connection:topics
 * @treturn {string,...} a new list (empty once closed)
 */
static int l_topics(lua_State *L)
{
    lconn *lc = luaL_checkudata(L, 1, CONN_MT);
    ws_topic_member *tm = lc->server_side && lc->side.extras ? lc->side.extras->topics : NULL;
    size_t n = tm ? tm->n : 0;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *name = ws_topic_member_name(tm, i, &len);
        lua_pushlstring(L, name, len);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/***
 * @type Server
 */

/***
 * Send a message to every connection subscribed to topic: framed once,
 * the same frame referenced from each receiver's queue (with
 * permessage-deflate: one compressed frame for the receivers without
 * context takeover, their own for the others).  A receiver whose queue is full
 * misses it (buffer_policy "drop") or is closed with 1013 (buffer_policy
 * "close"); the others are not held up.
 * @function Server:publish
 * @tparam string topic
 * @tparam string data
 * @tparam[opt="text"] string kind `"text"` or `"binary"`
 * @return how many connections queued it, or `nil, "server is closed"`
 * @raise when text is not UTF-8, or topic is not a string of 1 to 1024 bytes
 */
static int l_publish(lua_State *L)
{
    lserver *srv = ws_lua_check_server(L, 1);
    size_t tlen, n;
    const char *topic = check_topic(L, 2, &tlen);
    const char *p = luaL_checklstring(L, 3, &n);
    bool binary = ws_lua_check_kind(L, 4);
    if (!binary && !ws_utf8_valid((const uint8_t *)p, n))
        return luaL_argerror(L, 3, "invalid UTF-8 in a text message; send it as binary");
    if (ws_lua_server_released(srv)) {
        lua_pushnil(L);
        lua_pushliteral(L, "server is closed");
        return 2;
    }
    lua_pushinteger(L, ws_lua_server_fanout(srv, topic, tlen, binary, (const uint8_t *)p, n));
    /* Attached to a backplane: the other nodes get it through Redis. */
    return 1 +
           ws_lua_backplane_publish(L, *ws_lua_server_backplane(srv), topic, tlen, p, n, binary);
}

/***
 * How many connections are subscribed to topic.
 * @function Server:subscribers
 * @tparam string topic
 * @treturn integer
 */
static int l_subscribers(lua_State *L)
{
    lserver *srv = ws_lua_check_server(L, 1);
    size_t len, n = 0;
    const char *topic = check_topic(L, 2, &len);
    ws_topics *ts = ws_lua_server_topics(srv, false);
    if (ts)
        ws_topics_subscribers(ts, topic, len, &n);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static void add_methods(lua_State *L, const char *mt, const luaL_Reg *fns)
{
    luaL_getmetatable(L, mt);
    lua_getfield(L, -1, "methods");
    ws_setfuncs(L, fns);
    lua_pop(L, 2);
}

void ws_lua_open_topics(lua_State *L)
{
    static const luaL_Reg conn_fns[] = {{"subscribe", l_subscribe},
                                        {"unsubscribe", l_unsubscribe},
                                        {"topics", l_topics},
                                        {NULL, NULL}};
    static const luaL_Reg server_fns[] = {
        {"publish", l_publish}, {"subscribers", l_subscribers}, {NULL, NULL}};
    add_methods(L, CONN_MT, conn_fns);
    add_methods(L, "ws.core.server", server_fns);
    /* For ws.testing, which links none of this. */
    lua_pushlightuserdata(L, ws_shared_frame_stats_get());
    lua_setfield(L, LUA_REGISTRYINDEX, WS_LUA_SHARED_STATS_KEY);
}
