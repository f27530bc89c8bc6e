#include "lua_route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "lua_opts.h"

const char *ws_lua_unix_url_error(const char *url, ws_lua_route *route)
{
    static const char prefix[] = "ws+unix://";
    if (strncmp(url, prefix, sizeof prefix - 1) != 0)
        return NULL;
    const char *path = url + sizeof prefix - 1;
    /* The socket path ends at the first ':'; the request path follows. */
    const char *colon = strchr(path, ':');
    size_t n = colon ? (size_t)(colon - path) : strlen(path);
    if (n == 0 || path[0] != '/')
        return "ws+unix:// needs an absolute socket path";
    if (n >= sizeof route->unix_path)
        return "Unix socket path too long";
    if (colon && colon[1] != '/')
        return "the request path after ':' must start with '/'";
    memcpy(route->unix_path, path, n);
    route->unix_path[n] = '\0';
    return NULL;
}

bool ws_lua_unix_url(lua_State *L, const char *url, ws_lua_route *route)
{
    const char *err = ws_lua_unix_url_error(url, route);
    if (err)
        luaL_argerror(L, 1, lua_pushfstring(L, "invalid URL: %s", err));
    if (!route->unix_path[0])
        return false;
    const char *colon = strchr(url + sizeof "ws+unix://" - 1, ':');
    lua_pushfstring(L, "ws://localhost%s", colon ? colon + 1 : "/");
    return true;
}

static const char *env(const char *upper, const char *lower)
{
    const char *v = getenv(lower);
    if (!v || !*v)
        v = getenv(upper);
    return v && *v ? v : NULL;
}

/* NO_PROXY: comma-separated host names, domain suffixes (".example.org"
 * or "example.org" both cover sub.example.org), optional ":port", and "*"
 * for every host. */
static bool no_proxy_matches(const char *list, const char *host, int port)
{
    size_t hl = strlen(host);
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        size_t n = (size_t)(e - p);
        const char *entry = p;
        p = e;
        if (n == 0)
            continue;
        if (n == 1 && entry[0] == '*')
            return true;
        /* An optional ":port": after "]" for [IPv6], else after the only ':'. */
        const char *pc = NULL;
        if (entry[0] == '[') {
            const char *rb = memchr(entry, ']', n);
            if (!rb)
                continue;
            if (rb + 1 < entry + n && rb[1] == ':')
                pc = rb + 1;
            n = (size_t)(rb - entry) + 1;
            entry++;
            n -= 2;
        } else {
            const char *c1 = memchr(entry, ':', n);
            if (c1 && !memchr(c1 + 1, ':', (size_t)(entry + n - c1 - 1))) {
                pc = c1;
                n = (size_t)(c1 - entry);
            }
        }
        if (pc && atoi(pc + 1) != port)
            continue;
        if (n && entry[0] == '.') {
            entry++;
            n--;
        }
        if (n == 0 || n > hl)
            continue;
        if (strncasecmp(host + hl - n, entry, n) == 0 && (n == hl || host[hl - n - 1] == '.'))
            return true;
    }
    return false;
}

/* "http(s)://user:pass@host:port" (scheme optional: http) into the route. */
static const char *parse_proxy(lua_State *L, const char *url, ws_lua_route *route)
{
    const char *rest = url;
    const char *sep = strstr(url, "://");
    if (sep) {
        size_t sl = (size_t)(sep - url);
        if (sl == 4 && strncasecmp(url, "http", 4) == 0)
            rest = sep + 3;
        else if (sl == 5 && strncasecmp(url, "https", 5) == 0) {
            rest = sep + 3;
            route->proxy_secure = true;
        } else if (sl >= 5 && strncasecmp(url, "socks", 5) == 0)
            return "SOCKS proxies are not supported; use an HTTP proxy";
        else
            return lua_pushfstring(L, "unsupported proxy scheme '%s'",
                                   lua_tostring(L, (lua_pushlstring(L, url, sl), -1)));
    }
    /* The URL parser reads authority, credentials and port the same way. */
    lua_pushfstring(L, "ws://%s", rest);
    ws_url pu;
    char err[200];
    if (ws_url_parse(lua_tostring(L, -1), &pu, err, sizeof err) != 0)
        return lua_pushfstring(L, "%s", err);
    lua_pop(L, 1);
    if (strcmp(pu.resource, "/") != 0)
        return "a proxy URL has no path";
    snprintf(route->proxy_host, sizeof route->proxy_host, "%s", pu.host);
    route->proxy_port = pu.port_explicit ? pu.port : route->proxy_secure ? 443 : 80;
    route->proxy_auth[0] = '\0';
    if (pu.userinfo[0]) {
        unsigned char b64[sizeof route->proxy_auth - 6]; /* after "Basic " */
        size_t ul = strlen(pu.userinfo);
        if ((ul + 2) / 3 * 4 >= sizeof b64)
            return "proxy credentials too long";
        EVP_EncodeBlock(b64, (const unsigned char *)pu.userinfo, (int)ul);
        memcpy(route->proxy_auth, "Basic ", 6);
        memcpy(route->proxy_auth + 6, b64, strlen((const char *)b64) + 1);
    }
    return NULL;
}

void ws_lua_read_route(lua_State *L, int opts, const ws_url *u, ws_lua_route *route)
{
    const char *sock = ws_lua_opt_text(L, opts, "unix_socket", NULL);
    if (sock) {
        if (strlen(sock) >= sizeof route->unix_path || !sock[0])
            ws_lua_opt_error(L, opts, "'unix_socket' must be a path of 1 to %d bytes",
                             (int)sizeof route->unix_path - 1);
        snprintf(route->unix_path, sizeof route->unix_path, "%s", sock);
    }
    const char *proxy = NULL, *from = NULL;
    int t = LUA_TNIL;
    if (opts) {
        lua_getfield(L, opts, "proxy");
        t = lua_type(L, -1);
        if (t == LUA_TSTRING)
            proxy = lua_tostring(L, -1);
        else if (t != LUA_TNIL && !(t == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
            ws_lua_opt_error(L, opts, "'proxy' must be a URL string or false, got %s",
                             luaL_typename(L, -1));
        lua_pop(L, 1); /* the string stays in opts */
    }
    if (t == LUA_TNIL && !route->unix_path[0]) {
        proxy = u->secure ? env("HTTPS_PROXY", "https_proxy") : env("HTTP_PROXY", "http_proxy");
        from = u->secure ? "HTTPS_PROXY" : "HTTP_PROXY";
        if (!proxy) {
            proxy = env("ALL_PROXY", "all_proxy");
            from = "ALL_PROXY";
        }
        const char *np = env("NO_PROXY", "no_proxy");
        if (proxy && np && no_proxy_matches(np, u->host, u->port))
            proxy = NULL;
    }
    if (!proxy)
        return;
    if (route->unix_path[0])
        ws_lua_opt_error(L, opts, "'proxy' cannot be used with a Unix socket");
    const char *err = parse_proxy(L, proxy, route);
    if (!err)
        return;
    if (from)
        luaL_error(L, "ws.connect: invalid proxy in %s: %s", from, err);
    ws_lua_opt_error(L, opts, "'proxy': %s", err);
}

int ws_lua_apply_route(ws_conn *c, const ws_lua_route *route, ws_tls_ctx *proxy_tls)
{
    if (route->unix_path[0])
        return ws_conn_set_unix(c, route->unix_path);
    if (route->proxy_host[0])
        return ws_conn_set_proxy(c, route->proxy_host, route->proxy_port,
                                 route->proxy_auth[0] ? route->proxy_auth : NULL, proxy_tls);
    return 0;
}
