#include "lua_redirect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/url.h"
#include "lua_opts.h"
#include "lua_route.h"

#define DEFAULT_REDIRECTS 10
#define OPTS_FIELD        "__redirect_opts" /* in the fields table: the request options */

struct ws_lua_redirect {
    ws_session_config scfg;
    ws_conn_config ccfg;
    ws_conn *retired; /* the previous hop's connection, ended */
    int left, limit;
    bool insecure;
};

int ws_lua_opt_redirects(lua_State *L, int opts)
{
    if (!opts)
        return 0;
    lua_getfield(L, opts, "follow_redirects");
    int t = lua_type(L, -1);
    int n = 0;
    if (t == LUA_TBOOLEAN)
        n = lua_toboolean(L, -1) ? DEFAULT_REDIRECTS : 0;
    else if (t != LUA_TNIL)
        n = (int)ws_lua_opt_size(L, opts, "follow_redirects", 0, 0, 100);
    lua_pop(L, 1);
    return n;
}

int ws_lua_redirect_init(lua_State *L, lconn *lc, int idx, int ropts, const ws_session_config *scfg,
                         const ws_conn_config *ccfg, int limit)
{
    struct ws_lua_redirect *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->scfg = *scfg;
    r->ccfg = *ccfg;
    r->left = r->limit = limit;
    lua_getfield(L, ropts, "redirect_insecure");
    r->insecure = lua_toboolean(L, -1) != 0;
    lua_pop(L, 1);
    lc->side.redirect = r;
    ws_lua_conn_fields(L, lc, idx);
    lua_pushvalue(L, ropts);
    lua_setfield(L, -2, OPTS_FIELD);
    lua_pop(L, 1);
    return 0;
}

void ws_lua_redirect_free(lconn *lc)
{
    if (lc->side.redirect) {
        ws_conn_free(lc->side.redirect->retired);
        free(lc->side.redirect);
        lc->side.redirect = NULL;
    }
}

static bool has_prefix(const char *s, const char *p)
{
    return strncasecmp(s, p, strlen(p)) == 0;
}

/* Push the absolute URL Location (loc) names, relative to cur. */
static void push_target(lua_State *L, const char *cur, const char *loc)
{
    if (has_prefix(loc, "http://")) {
        lua_pushfstring(L, "ws://%s", loc + 7);
        return;
    }
    if (has_prefix(loc, "https://")) {
        lua_pushfstring(L, "wss://%s", loc + 8);
        return;
    }
    if (strstr(loc, "://")) {
        lua_pushstring(L, loc);
        return;
    }
    const char *scheme_end = strstr(cur, "://");
    if (!scheme_end) {
        lua_pushstring(L, loc);
        return;
    }
    if (loc[0] == '/' && loc[1] == '/') { /* scheme-relative */
        lua_pushlstring(L, cur, (size_t)(scheme_end - cur) + 1);
        lua_pushstring(L, loc);
        lua_concat(L, 2);
        return;
    }
    const char *auth = scheme_end + 3;
    /* ws+unix:///socket:/path: the request path follows the ':'. */
    const char *path = has_prefix(cur, "ws+unix://") ? strchr(auth, ':') : strchr(auth, '/');
    if (has_prefix(cur, "ws+unix://") && path)
        path++;
    size_t base = path ? (size_t)(path - cur) : strlen(cur);
    if (loc[0] == '/') {
        lua_pushlstring(L, cur, base);
        lua_pushstring(L, loc);
        lua_concat(L, 2);
        return;
    }
    /* A relative path replaces the last segment of the current path. */
    size_t end = base;
    if (path) {
        size_t plen = strcspn(path, "?#");
        const char *slash = NULL;
        for (const char *q = path; q < path + plen; q++)
            if (*q == '/')
                slash = q;
        end = slash ? (size_t)(slash - cur) + 1 : base;
    }
    lua_pushlstring(L, cur, end);
    if (end == base)
        lua_pushliteral(L, "/");
    else
        lua_pushliteral(L, "");
    lua_pushstring(L, loc);
    lua_concat(L, 3);
}

/* scheme, host and port of a URL, for the same-origin test; NULL, or what
 * is wrong with the URL (in err). */
static const char *origin_of(const char *url, ws_url *u, char *unix_path, size_t n, char *err,
                             size_t err_len)
{
    unix_path[0] = '\0';
    if (has_prefix(url, "ws+unix://")) {
        ws_lua_route route;
        memset(&route, 0, sizeof route);
        const char *bad = ws_lua_unix_url_error(url, &route);
        if (bad)
            return bad;
        snprintf(unix_path, n, "%s", route.unix_path);
        memset(u, 0, sizeof *u);
        return NULL;
    }
    return ws_url_parse(url, u, err, err_len) == 0 ? NULL : err;
}

static bool same_origin(const ws_url *a, const char *ua, const ws_url *b, const char *ub)
{
    return strcmp(ua, ub) == 0 && a->secure == b->secure && a->port == b->port &&
           strcasecmp(a->host, b->host) == 0;
}

static bool dropped_header(lua_State *L, int i)
{
    if (lua_type(L, i) != LUA_TSTRING)
        return false;
    const char *n = lua_tostring(L, i);
    return strcasecmp(n, "authorization") == 0 || strcasecmp(n, "cookie") == 0;
}

/* Push a copy of the headers option at t without credentials. */
static void push_headers_without_credentials(lua_State *L, int t)
{
    lua_newtable(L);
    int out = lua_gettop(L);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) == LUA_TNUMBER && lua_istable(L, -1)) {
            lua_rawgeti(L, -1, 1);
            bool drop = dropped_header(L, -1);
            lua_pop(L, 1);
            if (!drop) {
                lua_pushvalue(L, -1);
                lua_rawseti(L, out, ++n);
            }
        } else if (lua_type(L, -2) == LUA_TSTRING && !dropped_header(L, -2)) {
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
            lua_rawset(L, out);
        }
        lua_pop(L, 1);
    }
}

/* "invalid redirect to 'TARGET' (Location 'VALUE'): WHY"; the Location
 * is named when it differs from the URL it resolved to. */
static void push_invalid(lua_State *L, const char *target, const ws_http_header *loc,
                         const char *why)
{
    if (strlen(target) == loc->value_len && memcmp(target, loc->value, loc->value_len) == 0)
        lua_pushfstring(L, "invalid redirect to '%s': %s", target, why);
    else {
        lua_pushlstring(L, loc->value, loc->value_len);
        lua_pushfstring(L, "invalid redirect to '%s' (Location '%s'): %s", target,
                        lua_tostring(L, -1), why);
        lua_remove(L, -2);
    }
}

/* Protected: (lc, ev, conn) -> status code of the outcome [, message]. */
static int redirect_body(lua_State *L)
{
    lconn *lc = lua_touserdata(L, 1);
    const ws_event *ev = lua_touserdata(L, 2);
    int idx = 3;
    struct ws_lua_redirect *r = lc->side.redirect;
    int status = ev->head->status;
    const ws_http_header *loc = ws_http_find(ev->head, "location");
    if ((status != 301 && status != 302 && status != 303 && status != 307 && status != 308) ||
        !loc || loc->value_len == 0) {
        lua_pushinteger(L, WS_LUA_NO_REDIRECT);
        return 1;
    }
    if (r->left == 0) {
        lua_pushinteger(L, WS_LUA_REDIRECT_FAILED);
        lua_pushfstring(L, "too many redirects (follow_redirects = %d)", r->limit);
        return 2;
    }
    ws_lua_conn_fields(L, lc, idx);
    int fields = lua_gettop(L);
    lua_getfield(L, fields, "url");
    const char *cur = lua_tostring(L, -1);
    lua_pushlstring(L, loc->value, loc->value_len);
    push_target(L, cur, lua_tostring(L, -1));
    int target = lua_gettop(L);
    const char *next = lua_tostring(L, target);

    ws_url a, b;
    char ua[256], ub[256], why[128];
    const char *bad = origin_of(next, &b, ub, sizeof ub, why, sizeof why);
    if (!bad)
        bad = origin_of(cur, &a, ua, sizeof ua, why, sizeof why);
    if (bad) {
        lua_pushinteger(L, WS_LUA_REDIRECT_FAILED);
        push_invalid(L, next, loc, bad);
        return 2;
    }
    if (a.secure && !b.secure && !r->insecure) {
        lua_pushinteger(L, WS_LUA_REDIRECT_FAILED);
        lua_pushfstring(
            L, "redirect from wss:// to '%s' refused (redirect_insecure = true allows it)", next);
        return 2;
    }
    /* The next hop's options: the same, less credentials for another origin. */
    lua_getfield(L, fields, OPTS_FIELD);
    int old_opts = lua_gettop(L);
    lua_newtable(L);
    int ropts = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, old_opts)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, ropts);
    }
    if (!same_origin(&a, ua, &b, ub)) {
        lua_getfield(L, ropts, "headers");
        if (lua_istable(L, -1)) {
            push_headers_without_credentials(L, lua_gettop(L));
            lua_setfield(L, ropts, "headers");
        }
        lua_pop(L, 1);
    }
    char err[256];
    ws_conn *c =
        ws_lua_client_dial(L, lc, target, ropts, ropts, &r->scfg, &r->ccfg, err, sizeof err);
    if (!c) {
        lua_pushinteger(L, WS_LUA_REDIRECT_FAILED);
        lua_pushfstring(L, "redirect to '%s' failed: %s", next, err);
        return 2;
    }
    ws_conn *old = lc->c;
    ws_conn_free(r->retired); /* ended on an earlier turn */
    r->retired = old;
    lc->c = c;
    ws_conn_abort(old); /* its events no longer reach Lua */
    r->left--;
    lua_pushvalue(L, ropts);
    lua_setfield(L, fields, OPTS_FIELD);
    lua_pushvalue(L, target);
    lua_setfield(L, fields, "url");
    lua_pushinteger(L, WS_LUA_REDIRECTED);
    return 1;
}

int ws_lua_redirect(lua_State *L, lconn *lc, int idx, const ws_event *ev)
{
    lua_pushcfunction(L, redirect_body);
    lua_pushlightuserdata(L, lc);
    lua_pushlightuserdata(L, (void *)ev);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 3, 2, 0) != 0) {
        /* Out of memory, or an option of the next hop that raised. */
        const char *msg = lua_tostring(L, -1);
        const ws_http_header *loc = ws_http_find(ev->head, "location");
        if (loc)
            lua_pushlstring(L, loc->value, loc->value_len);
        else
            lua_pushliteral(L, "");
        lua_pushfstring(L, "redirect to Location '%s' failed: %s", lua_tostring(L, -1),
                        msg ? msg : "error object is not a string");
        lua_replace(L, -3);
        lua_pop(L, 1);
        return WS_LUA_REDIRECT_FAILED;
    }
    int r = (int)lua_tointeger(L, -2);
    if (r == WS_LUA_REDIRECT_FAILED) {
        lua_remove(L, -2);
        return r;
    }
    lua_pop(L, 2);
    return r;
}
