/* luaopen_ws_testing: require "ws.testing", helpers the specs need and the
 * library must not offer (raw sockets, any fd closed, cache counters).
 * Built by make next to ws/core.so; never installed by the rockspec. */
#include "lua/lua_compat.h"
#include "lua/lua_tls_cache.h"
#include "testing.h"

int luaopen_ws_testing(lua_State *L);

/* tls_client_contexts() -> how many client TLS contexts ws.core caches in
 * this Lua state */
static int l_tls_client_contexts(lua_State *L)
{
    lua_pushinteger(L, ws_lua_client_tls_cached(L));
    return 1;
}

static const luaL_Reg funcs[] = {{"tls_client_contexts", l_tls_client_contexts}, {NULL, NULL}};

int luaopen_ws_testing(lua_State *L)
{
    lua_newtable(L);
    ws_setfuncs(L, funcs);
    ws_testing_open_tcp(L);
    ws_testing_open_fd(L);
    return 1;
}
