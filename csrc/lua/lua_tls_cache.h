/* Client TLS contexts shared by the connections of one Lua state. */
#ifndef WS_LUA_TLS_CACHE_H
#define WS_LUA_TLS_CACHE_H

#include <stddef.h>

#include "lua_compat.h"
#include "io/tls.h"

/* A client context for options o: the one made earlier for the same options
 * (younger than WS_TLS_CACHE_SECONDS) or a new one, which is kept for the
 * next connects.  The caller owns one reference.  NULL with err when the
 * context cannot be made. */
ws_tls_ctx *ws_lua_client_tls_ctx(lua_State *L, const ws_tls_options *o, char *err, size_t err_len);

/* The registry field holding the cache: a table, option key -> context. */
#define WS_TLS_CACHE_KEY "ws.core.tls_client_cache"

/* How many contexts the cache holds (inline: the test module counts them
 * without linking the cache). */
static inline int ws_lua_client_tls_cached(lua_State *L)
{
    int n = 0;
    lua_getfield(L, LUA_REGISTRYINDEX, WS_TLS_CACHE_KEY);
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            n++;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return n;
}

#define WS_TLS_CACHE_SECONDS 600
#define WS_TLS_CACHE_MAX     16

#endif
