/* How a client reaches its server when not straight over TCP: an HTTP
 * proxy (option `proxy` or the conventional environment variables) or a
 * Unix socket (`ws+unix://` URLs, option `unix_socket`). */
#ifndef WS_LUA_ROUTE_H
#define WS_LUA_ROUTE_H

#include <stdbool.h>

#include "core/url.h"
#include "io/conn.h"
#include "lua_compat.h"

typedef struct ws_lua_route {
    char proxy_host[256]; /* "" : no proxy */
    int proxy_port;
    char proxy_auth[512]; /* Proxy-Authorization value, "" when none */
    bool proxy_secure;    /* https:// proxy: TLS to the proxy itself */
    char unix_path[256];  /* "" : TCP */
} ws_lua_route;

/* A malformed `ws+unix://` URL: what is wrong with it ("ws+unix:// needs an
 * absolute socket path"); else NULL, with route->unix_path set for a
 * ws+unix:// URL.  Raises nothing. */
const char *ws_lua_unix_url_error(const char *url, ws_lua_route *route);

/* A `ws+unix:///socket/path:/request/path` URL: sets route->unix_path and
 * pushes the equivalent ws://localhost/request/path URL (returns true).
 * Any other URL: pushes nothing, returns false.  Raises on a bad one. */
bool ws_lua_unix_url(lua_State *L, const char *url, ws_lua_route *route);

/* Options `unix_socket` and `proxy` of opts (0: none) and, when `proxy` is
 * nil, HTTPS_PROXY (wss) / HTTP_PROXY (ws) / ALL_PROXY and NO_PROXY (and
 * their lowercase forms).  Raises naming the option or the variable. */
void ws_lua_read_route(lua_State *L, int opts, const ws_url *u, ws_lua_route *route);

/* Give the route to a connection just made; proxy_tls: the client context
 * for an https:// proxy (NULL otherwise).  -1 when out of memory. */
int ws_lua_apply_route(ws_conn *c, const ws_lua_route *route, ws_tls_ctx *proxy_tls);

#endif
