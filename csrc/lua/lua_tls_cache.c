/* Making a client TLS context loads the trust store: the system bundle
 * costs tens of milliseconds of CPU, far more than a handshake.  Contexts
 * are therefore kept per option set in a registry table and reused for a
 * while (a trust store or client certificate changed on disk is picked up
 * once the entry is older than WS_TLS_CACHE_SECONDS). */
#include "lua_tls_cache.h"

#include <stdbool.h>
#include <time.h>

#define BOX_MT "ws.core.tls_ctx_box"

typedef struct ctx_box {
    ws_tls_ctx *ctx;
    double made; /* monotonic seconds */
} ctx_box;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int box_gc(lua_State *L)
{
    ctx_box *b = luaL_checkudata(L, 1, BOX_MT);
    if (b->ctx)
        ws_tls_ctx_unref(b->ctx);
    b->ctx = NULL;
    return 0;
}

/* Push the cache table, making it when missing or full. */
static void push_cache(lua_State *L, bool for_insert)
{
    lua_getfield(L, LUA_REGISTRYINDEX, WS_TLS_CACHE_KEY);
    if (lua_istable(L, -1)) {
        if (!for_insert || ws_lua_client_tls_cached(L) < WS_TLS_CACHE_MAX)
            return;
    }
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, WS_TLS_CACHE_KEY);
}

/* One string for an option set; a NUL separates the parts and a leading
 * byte tells an absent path from an empty one. */
static void push_key(lua_State *L, const ws_tls_options *o)
{
    const char *parts[] = {o->cafile, o->capath, o->cert, o->key, o->ciphers, o->alpn};
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, o->verify ? 'v' : 'n');
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        luaL_addchar(&b, '\0');
        luaL_addchar(&b, parts[i] ? '+' : '-');
        if (parts[i])
            luaL_addstring(&b, parts[i]);
    }
    luaL_pushresult(&b);
}

ws_tls_ctx *ws_lua_client_tls_ctx(lua_State *L, const ws_tls_options *o, char *err, size_t err_len)
{
    int top = lua_gettop(L);
    push_key(L, o);
    int key = lua_gettop(L);
    push_cache(L, false);
    lua_pushvalue(L, key);
    lua_rawget(L, -2);
    ctx_box *b = ws_testudata(L, -1, BOX_MT);
    if (b && b->ctx && now_seconds() - b->made < WS_TLS_CACHE_SECONDS) {
        ws_tls_ctx *ctx = b->ctx;
        ws_tls_ctx_ref(ctx);
        lua_settop(L, top);
        return ctx;
    }
    /* The box first: if anything below raises, the collector releases
     * whatever it holds. */
    lua_settop(L, key);
    b = lua_newuserdata(L, sizeof *b);
    b->ctx = NULL;
    if (luaL_newmetatable(L, BOX_MT)) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    ws_tls_ctx *ctx = ws_tls_client_ctx_new(o, err, err_len);
    if (!ctx) {
        lua_settop(L, top);
        return NULL;
    }
    b->ctx = ctx; /* the cache's reference */
    b->made = now_seconds();
    /* Only now may a full cache be dropped: a failure keeps it. */
    push_cache(L, true);
    lua_pushvalue(L, key);
    lua_pushvalue(L, key + 1);
    lua_rawset(L, -3);
    ws_tls_ctx_ref(ctx); /* the caller's */
    lua_settop(L, top);
    return ctx;
}
