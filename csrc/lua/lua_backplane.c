/* ws.core.redis: a Redis backplane (io/backplane.c) as a Lua object, a
 * member of its loop; srv:attach(bp) / srv:detach() bind it to a server's
 * topics.  Messages from other nodes reach the local subscribers in C
 * (ws_lua_server_fanout), without a Lua call. */
/***
 * The Redis backplane of module ws, implemented in C.
 * @module ws
 */
#include <stdio.h>
#include <string.h>

#include "io/backplane.h"
#include "lua_backplane.h"
#include "lua_core.h"
#include "lua_optkeys.h"
#include "lua_opts.h"
#include "lua_topic.h"

#define BACKPLANE_MT "ws.core.backplane"

/* Slots of the backplane's uservalue table. */
enum { UV_ON_ERROR = 1, UV_LAST_ERROR, UV_SERVER };

struct lbackplane {
    ws_backplane *bp; /* NULL once closed */
    ws_lua_loop *ll;
    ws_lua_member member;
    lserver *srv; /* the server it is attached to, or NULL */
    int self_ref; /* anchor while open */
};

static lbackplane *check_bp(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, BACKPLANE_MT);
}

/* ---- callbacks of the C backplane ------------------------------------------ */

static void on_message(void *ud, const char *topic, size_t tlen, const uint8_t *data, size_t n,
                       bool binary)
{
    lbackplane *lb = ud;
    if (lb->srv)
        ws_lua_server_fanout(lb->srv, topic, tlen, binary, data, n);
}

/* From a deferred callback of the loop: Lua may run. */
static void on_error(void *ud, const char *msg)
{
    lbackplane *lb = ud;
    lua_State *L = ws_lua_loop_state(lb->ll);
    if (!L || lb->self_ref == LUA_NOREF || !lua_checkstack(L, 8))
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lb->self_ref);
    int idx = lua_gettop(L);
    ws_getuservalue(L, idx);
    lua_pushstring(L, msg);
    lua_rawseti(L, -2, UV_LAST_ERROR);
    lua_rawgeti(L, -1, UV_ON_ERROR);
    if (!lua_isfunction(L, -1)) {
        lua_settop(L, idx - 1);
        return;
    }
    lua_pushvalue(L, idx);
    lua_pushstring(L, msg);
    ws_lua_loop_call(lb->ll, 2);
    lua_settop(L, idx - 1);
}

static const ws_backplane_callbacks callbacks = {on_message, on_error};

/* ---- attaching ------------------------------------------------------------- */

static void detach(lua_State *L, lbackplane *lb)
{
    lserver *srv = lb->srv;
    if (!srv)
        return;
    if (lb->bp)
        ws_backplane_bind(lb->bp, NULL);
    *ws_lua_server_backplane(srv) = NULL;
    lb->srv = NULL;
    if (L && lb->self_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lb->self_ref);
        ws_getuservalue(L, -1);
        lua_pushnil(L);
        lua_rawseti(L, -2, UV_SERVER);
        lua_pop(L, 2);
    }
}

void ws_lua_backplane_server_gone(lbackplane *lb)
{
    if (lb)
        detach(NULL, lb);
}

/* Attach the backplane at bidx to the server at sidx. */
static void attach(lua_State *L, int sidx, int bidx)
{
    lserver *srv = ws_lua_check_server(L, sidx);
    lbackplane *lb = ws_testudata(L, bidx, BACKPLANE_MT);
    if (!lb)
        luaL_argerror(L, bidx, "a backplane (ws.redis) expected");
    if (!lb->bp)
        luaL_argerror(L, bidx, "the backplane is closed");
    if (ws_lua_server_released(srv))
        luaL_error(L, "attach: server is closed");
    lbackplane **slot = ws_lua_server_backplane(srv);
    if (lb->srv == srv)
        return;
    if (lb->srv)
        luaL_argerror(L, bidx, "the backplane is attached to another server");
    if (*slot)
        luaL_error(L, "attach: the server has a backplane already (srv:detach() first)");
    ws_topics *ts = ws_lua_server_topics(srv, true);
    if (!ts)
        luaL_error(L, "attach: out of memory");
    *slot = lb;
    lb->srv = srv;
    ws_backplane_bind(lb->bp, ts);
    /* The backplane keeps the server object alive while attached: its
     * messages go to it. */
    ws_getuservalue(L, bidx);
    lua_pushvalue(L, sidx);
    lua_rawseti(L, -2, UV_SERVER);
    lua_pop(L, 1);
}

/***
 * @type Server
 */

/***
 * Join the server's topics to a Redis backplane: from now on a publish on
 * this server also goes to Redis, and messages published on other nodes
 * reach this server's subscribers. One backplane serves one server.
 * @function Server:attach
 * @tparam Backplane bp from `ws.redis`
 * @treturn bool true
 * @raise when bp is not an open backplane, is attached to another server, or
 *  the server has another backplane
 */
static int l_attach(lua_State *L)
{
    attach(L, 1, 2);
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * Detach the server's backplane: its topics are UNSUBSCRIBEd and
 * publishes stay local.
 * @function Server:detach
 * @treturn bool whether a backplane was attached
 */
static int l_detach(lua_State *L)
{
    lserver *srv = ws_lua_check_server(L, 1);
    lbackplane *lb = *ws_lua_server_backplane(srv);
    if (lb)
        detach(L, lb);
    lua_pushboolean(L, lb != NULL);
    return 1;
}

int ws_lua_backplane_publish(lua_State *L, lbackplane *lb, const char *topic, size_t tlen,
                             const char *data, size_t n, bool binary)
{
    if (!lb || !lb->bp)
        return 0;
    char err[128];
    if (ws_backplane_publish(lb->bp, topic, tlen, (const uint8_t *)data, n, binary, err,
                             sizeof err) == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, err);
    return 2;
}

void ws_lua_backplane_check_option(lua_State *L, int opts)
{
    lua_getfield(L, opts, "backplane");
    if (!lua_isnil(L, -1)) {
        lbackplane *lb = ws_testudata(L, -1, BACKPLANE_MT);
        if (!lb)
            ws_lua_opt_error(L, opts, "'backplane' must be a backplane (ws.redis), got %s",
                             luaL_typename(L, -1));
        if (!lb->bp)
            ws_lua_opt_error(L, opts, "'backplane' is closed");
        if (lb->srv)
            ws_lua_opt_error(L, opts, "'backplane' is attached to another server");
    }
    lua_pop(L, 1);
}

void ws_lua_backplane_attach_option(lua_State *L, int opts, int sidx)
{
    lua_getfield(L, opts, "backplane");
    if (!lua_isnil(L, -1))
        attach(L, sidx, lua_gettop(L));
    lua_pop(L, 1);
}

/* ---- the backplane object -------------------------------------------------- */

static void close_bp(lua_State *L, lbackplane *lb)
{
    detach(L, lb);
    if (lb->bp) {
        ws_backplane_free(lb->bp);
        lb->bp = NULL;
    }
    if (L && lb->self_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, lb->self_ref);
        lb->self_ref = LUA_NOREF;
    }
    if (lb->ll)
        ws_lua_loop_detach(L, lb->ll, &lb->member);
}

static lbackplane *member_bp(ws_lua_member *m)
{
    return (lbackplane *)(void *)((char *)m - offsetof(lbackplane, member));
}

/* Nothing to wait for: what is not sent when the loop closes is lost, as
 * during an outage. */
static void member_shutdown(lua_State *L, ws_lua_member *m)
{
    close_bp(L, member_bp(m));
}

static bool member_done(ws_lua_member *m)
{
    return member_bp(m)->bp == NULL;
}

static uint64_t member_close_timeout(ws_lua_member *m)
{
    (void)m;
    return 0;
}

static const ws_lua_member_ops member_ops = {member_shutdown, member_done, member_shutdown,
                                             member_close_timeout, NULL};

/* ws.core.redis(opts, loop) */
static int l_redis(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    ws_lua_loop *ll = ws_lua_check_loop(L, 2);
    lua_settop(L, 2);
    int opts = 1;
    ws_lua_check_keys(L, opts, 1, "redis", "");
    ws_backplane_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.host = ws_lua_opt_text(L, opts, "host", "127.0.0.1");
    cfg.port = (int)ws_lua_opt_size(L, opts, "port", 6379, 1, 65535);
    cfg.unix_path = ws_lua_opt_text(L, opts, "unix", NULL);
    cfg.username = ws_lua_opt_text(L, opts, "username", NULL);
    cfg.password = ws_lua_opt_text(L, opts, "password", NULL);
    if (cfg.username && !cfg.password)
        return ws_lua_opt_error(L, opts, "'username' needs 'password'");
    cfg.prefix = ws_lua_opt_lstring(L, opts, "prefix", "ws:", &cfg.prefix_len);
    if (cfg.prefix_len == 0 || cfg.prefix_len >= WS_BACKPLANE_PREFIX_MAX)
        return ws_lua_opt_error(L, opts, "'prefix' must be 1 to %d bytes",
                                WS_BACKPLANE_PREFIX_MAX - 1);
    cfg.connect_timeout_ns =
        (uint64_t)(ws_lua_opt_number(L, opts, "connect_timeout", 5, 0.001, 3600) * 1e9);
    cfg.ping_interval_ns =
        (uint64_t)(ws_lua_opt_number(L, opts, "ping_interval", 5, 0.01, 3600) * 1e9);
    cfg.max_pending =
        ws_lua_opt_size(L, opts, "max_pending", (size_t)16 << 20, 1024, (size_t)1 << 40);
    lua_Number initial = 0.1, max = 5;
    lua_getfield(L, opts, "backoff");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            return ws_lua_opt_error(L, opts, "'backoff' must be a table, got %s",
                                    luaL_typename(L, -1));
        int t = lua_gettop(L);
        ws_lua_check_keys(L, t, opts, "redis_backoff", "backoff.");
        initial = ws_lua_opt_number(L, t, "initial", initial, 0.001, 3600);
        max = ws_lua_opt_number(L, t, "max", max > initial ? max : initial, initial, 3600);
    }
    lua_pop(L, 1);
    cfg.backoff_initial_ns = (uint64_t)(initial * 1e9);
    cfg.backoff_max_ns = (uint64_t)(max * 1e9);
    lua_getfield(L, opts, "on_error");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
        return ws_lua_opt_error(L, opts, "'on_error' must be a function");
    int on_err = lua_gettop(L);

    lbackplane *lb = lua_newuserdata(L, sizeof *lb);
    memset(lb, 0, sizeof *lb);
    lb->self_ref = LUA_NOREF;
    luaL_getmetatable(L, BACKPLANE_MT);
    lua_setmetatable(L, -2);
    int idx = lua_gettop(L);
    lua_createtable(L, 3, 0);
    lua_pushvalue(L, on_err);
    lua_rawseti(L, -2, UV_ON_ERROR);
    ws_setuservalue(L, idx);
    ws_lua_loop_attach(L, ll, &lb->member, &member_ops, 2);
    lb->ll = ll;
    ws_lua_loop_ref(ll);
    lb->bp = ws_backplane_new(ws_lua_loop_get(ll), &cfg, &callbacks, lb);
    if (!lb->bp)
        return luaL_error(L, "ws.redis: out of memory");
    lua_pushvalue(L, idx);
    lb->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/***
 * A Redis backplane from `ws.redis`.
 * @type Backplane
 */

/***
 * Disconnect from Redis for good (also `__close`): detached from its
 * server, no reconnect. Idempotent.
 * @function Backplane:close
 */
static int l_close(lua_State *L)
{
    close_bp(L, check_bp(L, 1));
    return 0;
}

/***
 * Counters since `ws.redis`.
 * @function Backplane:stats
 * @treturn table `{published=, failed=, received=, own=, dropped=, reconnects=}`: publishes
 *  sent to Redis, publishes that failed (no connection, or refused), messages of other nodes
 *  delivered here, echoes of this node's own publishes skipped, messages not in lua-ws's form
 *  dropped, reconnection attempts
 */
static int l_stats(lua_State *L)
{
    lbackplane *lb = check_bp(L, 1);
    static const ws_backplane_stats zero;
    const ws_backplane_stats *s = lb->bp ? ws_backplane_stats_of(lb->bp) : &zero;
    lua_createtable(L, 0, 6);
    ws_pushsize(L, s->published);
    lua_setfield(L, -2, "published");
    ws_pushsize(L, s->failed);
    lua_setfield(L, -2, "failed");
    ws_pushsize(L, s->received);
    lua_setfield(L, -2, "received");
    ws_pushsize(L, s->own);
    lua_setfield(L, -2, "own");
    ws_pushsize(L, s->dropped);
    lua_setfield(L, -2, "dropped");
    ws_pushsize(L, s->reconnects);
    lua_setfield(L, -2, "reconnects");
    return 1;
}

/***
 * Fields of a backplane (read-only).
 * @table backplane_fields
 * @tfield bool connected both Redis connections are up (AUTH passed)
 * @tfield bool closed `bp:close()` was called, or its loop closed
 * @tfield string node this node's id (16 hex digits), random per backplane
 * @tfield string last_error the last error reported, or nil
 * @tfield Server server the server it is attached to, or nil
 */
static int l_index(lua_State *L)
{
    lbackplane *lb = check_bp(L, 1);
    const char *key = lua_tostring(L, 2);
    if (!key)
        return 0;
    if (strcmp(key, "connected") == 0) {
        lua_pushboolean(L, lb->bp && ws_backplane_connected(lb->bp));
    } else if (strcmp(key, "closed") == 0) {
        lua_pushboolean(L, lb->bp == NULL);
    } else if (strcmp(key, "node") == 0) {
        if (!lb->bp)
            return 0;
        char hex[2 * WS_BACKPLANE_NODE_LEN + 1];
        const uint8_t *node = ws_backplane_node(lb->bp);
        for (int i = 0; i < WS_BACKPLANE_NODE_LEN; i++)
            snprintf(hex + 2 * i, 3, "%02x", node[i]);
        lua_pushstring(L, hex);
    } else if (strcmp(key, "last_error") == 0 || strcmp(key, "server") == 0) {
        ws_getuservalue(L, 1);
        lua_rawgeti(L, -1, key[0] == 'l' ? UV_LAST_ERROR : UV_SERVER);
    } else {
        lua_getmetatable(L, 1);
        lua_getfield(L, -1, "methods");
        lua_getfield(L, -1, key);
    }
    return 1;
}

static int l_newindex(lua_State *L)
{
    return luaL_error(L, "backplane fields are read-only");
}

static int l_gc(lua_State *L)
{
    lbackplane *lb = luaL_checkudata(L, 1, BACKPLANE_MT);
    /* Anchored while open: collected open only as the state closes, when
     * its loop may be gone already (it released the backplane then). */
    if (lb->bp && lb->ll && ws_lua_loop_get(lb->ll))
        close_bp(L, lb);
    if (lb->ll) {
        ws_lua_loop_detach(L, lb->ll, &lb->member);
        ws_lua_loop_unref(lb->ll);
        lb->ll = NULL;
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    lbackplane *lb = check_bp(L, 1);
    lua_pushfstring(L, "ws.backplane (%s): %p",
                    !lb->bp                          ? "closed"
                    : ws_backplane_connected(lb->bp) ? "connected"
                                                     : "connecting",
                    (void *)lb);
    return 1;
}

void ws_lua_open_backplane(lua_State *L)
{
    static const luaL_Reg meta[] = {
        {"__index", l_index}, {"__newindex", l_newindex}, {"__gc", l_gc},
        {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};
    static const luaL_Reg methods[] = {{"close", l_close}, {"stats", l_stats}, {NULL, NULL}};
    if (luaL_newmetatable(L, BACKPLANE_MT)) {
        ws_setfuncs(L, meta);
        lua_newtable(L);
        ws_setfuncs(L, methods);
        lua_setfield(L, -2, "methods");
    }
    lua_pop(L, 1);
    luaL_getmetatable(L, "ws.core.server");
    lua_getfield(L, -1, "methods");
    lua_pushcfunction(L, l_attach);
    lua_setfield(L, -2, "attach");
    lua_pushcfunction(L, l_detach);
    lua_setfield(L, -2, "detach");
    lua_pop(L, 2);
    lua_pushcfunction(L, l_redis);
    lua_setfield(L, -2, "redis");
}
