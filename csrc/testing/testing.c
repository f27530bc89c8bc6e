/* luaopen_ws_testing: require "ws.testing", helpers the specs need and the
 * library must not offer (raw sockets, any fd closed, cache counters).
 * Built by make next to ws/core.so; never installed by the rockspec. */
#include "core/utf8.h"
#include "lua/lua_compat.h"
#include "lua/lua_loop.h"
#include "lua/lua_tls_cache.h"
#include "lua/lua_topic.h"
#include "testing.h"

int luaopen_ws_testing(lua_State *L);

/* tls_client_contexts() -> how many client TLS contexts ws.core caches in
 * this Lua state */
static int l_tls_client_contexts(lua_State *L)
{
    lua_pushinteger(L, ws_lua_client_tls_cached(L));
    return 1;
}

/* tls_client_cache_clear(): forget the cached client TLS contexts (a spec
 * counting them starts from none, whatever ran before it) */
static int l_tls_client_cache_clear(lua_State *L)
{
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, WS_TLS_CACHE_KEY);
    return 0;
}

static int check_impl(lua_State *L, int arg)
{
    static const char *const names[] = {"scalar", "ssse3", "avx2", NULL};
    static const int impls[] = {WS_UTF8_SCALAR, WS_UTF8_SSSE3, WS_UTF8_AVX2};
    return impls[luaL_checkoption(L, arg, NULL, names)];
}

/* utf8_with(s, impl[, chunk]) -> valid (whole), result of feeding s in
 * chunks of `chunk` bytes ("ok", "partial" or "invalid"); nil when this CPU
 * cannot run impl ("scalar", "ssse3" or "avx2").  The vector validators are
 * otherwise chosen by the CPU alone. */
static int l_utf8_with(lua_State *L)
{
    size_t n;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
    int impl = check_impl(L, 2);
    lua_Integer chunk = luaL_optinteger(L, 3, (lua_Integer)n);
    luaL_argcheck(L, chunk > 0 || n == 0, 3, "must be positive");
    if (!ws_utf8_have_impl(impl))
        return 0;
    lua_pushboolean(L, ws_utf8_valid_with(p, n, impl));
    ws_utf8 u;
    ws_utf8_init(&u);
    int r = WS_UTF8_OK;
    for (size_t i = 0; i < n && r != WS_UTF8_INVALID; i += (size_t)chunk) {
        size_t k = n - i < (size_t)chunk ? n - i : (size_t)chunk;
        r = ws_utf8_feed_with(&u, p + i, k, impl);
    }
    lua_pushstring(L, r == WS_UTF8_OK ? "ok" : r == WS_UTF8_PARTIAL ? "partial" : "invalid");
    return 2;
}

/* shared_frames() -> {live, made, compressed, queued}: the frames ws.core
 * shares between output queues (broadcast, publish) in this process:
 * allocated and not freed, allocated so far, of which compressed once for
 * several receivers, and references queued by connections so far. */
static int l_shared_frames(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, WS_LUA_SHARED_STATS_KEY);
    const ws_shared_frame_stats *st = lua_touserdata(L, -1);
    if (!st)
        return luaL_error(L, "shared_frames: require \"ws\" first");
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)st->live);
    lua_setfield(L, -2, "live");
    lua_pushinteger(L, (lua_Integer)st->made);
    lua_setfield(L, -2, "made");
    lua_pushinteger(L, (lua_Integer)st->compressed);
    lua_setfield(L, -2, "compressed");
    lua_pushinteger(L, (lua_Integer)st->queued);
    lua_setfield(L, -2, "queued");
    return 1;
}

/* loop_output_pool(loop) -> bytes of the small and of the large buffer the
 * loop's connections pass on (0: none held). */
static int l_loop_output_pool(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, WS_LUA_LOOP_HOOKS);
    const ws_lua_loop_hooks *h = lua_touserdata(L, -1);
    if (!h)
        return luaL_error(L, "loop_output_pool: require \"ws.core\" first");
    lua_pop(L, 1);
    const ws_buf_pool *p = h->output_pool(h->check(L, 1));
    lua_pushinteger(L, (lua_Integer)(p->data ? p->cap : 0));
    lua_pushinteger(L, (lua_Integer)(p->large ? p->large_cap : 0));
    return 2;
}

static const luaL_Reg funcs[] = {{"tls_client_contexts", l_tls_client_contexts},
                                 {"tls_client_cache_clear", l_tls_client_cache_clear},
                                 {"utf8_with", l_utf8_with},
                                 {"shared_frames", l_shared_frames},
                                 {"loop_output_pool", l_loop_output_pool},
                                 {NULL, NULL}};

int luaopen_ws_testing(lua_State *L)
{
    lua_newtable(L);
    ws_setfuncs(L, funcs);
    ws_testing_open_tcp(L);
    ws_testing_open_fd(L);
    ws_testing_open_clock(L);
    ws_testing_open_fork(L);
    return 1;
}
