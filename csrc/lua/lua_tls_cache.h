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

/* How many contexts the cache holds (for the specs). */
int ws_lua_client_tls_cached(lua_State *L);

#define WS_TLS_CACHE_SECONDS 600
#define WS_TLS_CACHE_MAX     16

#endif
