/* Lua binding of the handshake: URL parsing, the client request and
 * response check, the server's accept, and raw head parsing. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "handshake.h"
#include "http.h"
#include "lua_compat.h"
#include "lua_core.h"
#include "url.h"

#define BUF_MT "ws.core.handshake_buf"
#define DEFAULT_MAX_HEAD 8192
#define DEFAULT_MAX_HEADERS 64
#define LIMIT_MAX 100000000     /* bytes */
#define MAX_HEADERS_MAX 100000  /* the header array is allocated up front */
/* parse_head's "need more bytes"; WS_HTTP_INCOMPLETE is 0 like success. */
#define HEAD_INCOMPLETE 1

typedef struct limits {
    size_t max_head;
    size_t max_headers;
} limits;

static int buf_gc(lua_State *L)
{
    ws_buf_free((ws_buf *)luaL_checkudata(L, 1, BUF_MT));
    return 0;
}

/* A ws_buf owned by a userdata, so a Lua error cannot leak its memory. */
static ws_buf *new_buf(lua_State *L)
{
    ws_buf *b = (ws_buf *)lua_newuserdata(L, sizeof *b);
    ws_buf_init(b);
    if (luaL_newmetatable(L, BUF_MT)) {
        lua_pushcfunction(L, buf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return b;
}

static void push_buf(lua_State *L, const ws_buf *b)
{
    lua_pushlstring(L, (const char *)ws_buf_begin(b), ws_buf_size(b));
}

/* Options: nil/none or a table at arg. */
static void check_opts(lua_State *L, int arg)
{
    if (!lua_isnoneornil(L, arg))
        luaL_checktype(L, arg, LUA_TTABLE);
}

/* Push opts[name] (nil when there are no options). */
static int get_opt(lua_State *L, int arg, const char *name)
{
    if (lua_isnoneornil(L, arg)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_getfield(L, arg, name);
    return lua_type(L, -1);
}

/* A whole number in [min, max]; the range is checked before the cast, which
 * would be undefined for NaN or huge values. */
static bool is_count(lua_Number n, lua_Number min, lua_Number max)
{
    return n >= min && n <= max && n == (lua_Number)(long)n;
}

static size_t opt_size(lua_State *L, int arg, const char *name, size_t def, size_t max)
{
    int t = get_opt(L, arg, name);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    lua_Number n = lua_tonumber(L, -1);
    if (t != LUA_TNUMBER || !is_count(n, 1, (lua_Number)max))
        luaL_argerror(L, arg, lua_pushfstring(L, "'%s' must be a positive integer", name));
    lua_pop(L, 1);
    return (size_t)n;
}

/* A string option without NUL bytes, or NULL.  The value stays referenced
 * from the options table, so the pointer outlives the pop. */
static const char *opt_string(lua_State *L, int arg, const char *name)
{
    int t = get_opt(L, arg, name);
    const char *s = NULL;
    size_t len;
    if (t != LUA_TNIL) {
        if (t != LUA_TSTRING)
            luaL_argerror(L, arg, lua_pushfstring(L, "'%s' must be a string", name));
        s = lua_tolstring(L, -1, &len);
        if (strlen(s) != len)
            luaL_argerror(L, arg, lua_pushfstring(L, "'%s' contains a NUL byte", name));
    }
    lua_pop(L, 1);
    return s;
}

static void get_limits(lua_State *L, int arg, limits *lim)
{
    lim->max_head = opt_size(L, arg, "max_head", DEFAULT_MAX_HEAD, LIMIT_MAX);
    lim->max_headers = opt_size(L, arg, "max_headers", DEFAULT_MAX_HEADERS, MAX_HEADERS_MAX);
}

/* Remember a string value in the anchor table so its pointer stays valid;
 * pops it. */
static const char *anchor(lua_State *L, int anchors)
{
    const char *s = lua_tostring(L, -1);
    lua_rawseti(L, anchors, (int)ws_rawlen(L, anchors) + 1);
    return s;
}

/* opts.protocols (a list of strings, or one string) as a C array kept in a
 * userdata on the stack; the strings are anchored. */
static const char **opt_protocols(lua_State *L, int arg, int anchors, size_t *count)
{
    int t = get_opt(L, arg, "protocols");
    const char **list = NULL;
    *count = 0;
    if (t == LUA_TSTRING) {
        list = (const char **)lua_newuserdata(L, sizeof *list);
        lua_pushvalue(L, -2);
        list[0] = anchor(L, anchors);
        *count = 1;
    } else if (t == LUA_TTABLE) {
        size_t n = ws_rawlen(L, -1);
        list = (const char **)lua_newuserdata(L, (n ? n : 1) * sizeof *list);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, -2, (int)i + 1);
            size_t len;
            const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
            if (s == NULL || strlen(s) != len)
                luaL_argerror(L, arg, "'protocols' must be a list of strings");
            list[i] = anchor(L, anchors);
        }
        *count = n;
    } else if (t != LUA_TNIL) {
        luaL_argerror(L, arg, "'protocols' must be a list of strings");
    }
    if (list != NULL)
        lua_rawseti(L, anchors, (int)ws_rawlen(L, anchors) + 1); /* keep the array */
    lua_pop(L, 1);
    return list;
}

/* A header name or value at the top of the stack: strings, and numbers
 * for values.  Anchored and popped. */
static const char *header_part(lua_State *L, int arg, int anchors, bool is_value)
{
    int t = lua_type(L, -1);
    if (t != LUA_TSTRING && !(is_value && t == LUA_TNUMBER))
        luaL_argerror(L, arg, is_value ? "header values must be strings or numbers"
                                       : "header names must be strings");
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (strlen(s) != len)
        luaL_argerror(L, arg, lua_pushfstring(L, "header %s contains a NUL byte",
                                              is_value ? "value" : "name"));
    return anchor(L, anchors);
}

/* opts.headers as a ws_kv array: a list of {name, value} pairs first, in
 * order, then name = value entries.  Room is left for extra entries. */
static ws_kv *opt_headers(lua_State *L, int arg, int anchors, size_t extra, size_t *count)
{
    int t = get_opt(L, arg, "headers");
    int tbl = lua_gettop(L);
    size_t n = 0, cap = extra;
    *count = 0;
    if (t != LUA_TNIL && t != LUA_TTABLE)
        luaL_argerror(L, arg, "'headers' must be a table");
    size_t len = t == LUA_TTABLE ? ws_rawlen(L, tbl) : 0;
    if (t == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, tbl)) {
            cap++;
            lua_pop(L, 1);
        }
    }
    ws_kv *kv = (ws_kv *)lua_newuserdata(L, (cap ? cap : 1) * sizeof *kv);
    lua_rawseti(L, anchors, (int)ws_rawlen(L, anchors) + 1);
    for (size_t i = 1; i <= len; i++) {
        lua_rawgeti(L, tbl, (int)i);
        if (lua_type(L, -1) != LUA_TTABLE)
            luaL_argerror(L, arg, "'headers' list entries must be {name, value} pairs");
        lua_rawgeti(L, -1, 1);
        kv[n].name = header_part(L, arg, anchors, false);
        lua_rawgeti(L, -1, 2);
        kv[n].value = header_part(L, arg, anchors, true);
        n++;
        lua_pop(L, 1);
    }
    if (t == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, tbl)) {
            if (lua_type(L, -2) == LUA_TNUMBER) {
                lua_Number k = lua_tonumber(L, -2);
                if (k >= 1 && k <= (lua_Number)len && k == (lua_Number)(long)k) {
                    lua_pop(L, 1);
                    continue; /* a pair, done above */
                }
            }
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_argerror(L, arg, "'headers' must map names to values");
            kv[n].value = header_part(L, arg, anchors, true);
            lua_pushvalue(L, -1); /* the key stays for lua_next */
            kv[n].name = header_part(L, arg, anchors, false);
            n++;
        }
    }
    lua_pop(L, 1);
    *count = n;
    return kv;
}

static const char *head_error(int rc, bool request)
{
    switch (rc) {
    case HEAD_INCOMPLETE: return request ? "incomplete request head" : "incomplete response head";
    case WS_HTTP_ERR_TOO_LARGE: return request ? "request head too large" : "response head too large";
    case WS_HTTP_ERR_TOO_MANY: return "too many headers";
    case WS_HTTP_ERR_VERSION:
        return request ? "unsupported HTTP version (HTTP/1.1 or later required)"
                       : "unsupported HTTP version (HTTP/1.x required)";
    default: return request ? "malformed request head" : "malformed response head";
    }
}

/* Find and parse the head in the string at idx.  The parser writes into its
 * buffer, so it works on a copy; the copy and the header array are
 * userdata left on the stack.  Returns 0, HEAD_INCOMPLETE or a negative
 * WS_HTTP_ERR_* code. */
static int parse_head(lua_State *L, int idx, bool request, const limits *lim, ws_http_head *head,
                      size_t *head_len)
{
    size_t len;
    const char *s = luaL_checklstring(L, idx, &len);
    size_t scanned = 0;
    long end = ws_http_head_end(s, len, &scanned, lim->max_head);
    lua_pushnil(L); /* keep the stack shape the same on every path */
    lua_pushnil(L);
    if (end <= 0)
        return end == 0 ? HEAD_INCOMPLETE : (int)end;
    char *copy = (char *)lua_newuserdata(L, (size_t)end);
    memcpy(copy, s, (size_t)end);
    lua_replace(L, -3);
    head->headers = (ws_http_header *)lua_newuserdata(L, lim->max_headers * sizeof(ws_http_header));
    lua_replace(L, -2);
    head->num_headers = lim->max_headers;
    *head_len = (size_t)end;
    return request ? ws_http_parse_request(copy, (size_t)end, head)
                   : ws_http_parse_response(copy, (size_t)end, head);
}

/* Headers as {lowercase name = value}, repeated names joined with ", ". */
static void push_header_map(lua_State *L, const ws_http_head *head)
{
    lua_newtable(L);
    int t = lua_gettop(L);
    for (size_t i = 0; i < head->num_headers; i++) {
        const ws_http_header *h = &head->headers[i];
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t k = 0; k < h->name_len; k++) {
            char c = h->name[k];
            luaL_addchar(&b, c >= 'A' && c <= 'Z' ? (char)(c + 32) : c);
        }
        luaL_pushresult(&b);
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, h->value, h->value_len);
        } else {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, h->value, h->value_len);
            lua_concat(L, 3);
        }
        lua_rawset(L, t);
    }
}

/* Headers as a list of {name = ..., value = ...}, in order. */
static void push_header_list(lua_State *L, const ws_http_head *head)
{
    lua_createtable(L, (int)head->num_headers, 0);
    for (size_t i = 0; i < head->num_headers; i++) {
        lua_createtable(L, 0, 2);
        lua_pushlstring(L, head->headers[i].name, head->headers[i].name_len);
        lua_setfield(L, -2, "name");
        lua_pushlstring(L, head->headers[i].value, head->headers[i].value_len);
        lua_setfield(L, -2, "value");
        lua_rawseti(L, -2, (int)i + 1);
    }
}

static void set_lstring(lua_State *L, const char *field, const char *s, size_t n)
{
    if (s == NULL)
        return;
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, field);
}

static int parse_any(lua_State *L, bool request)
{
    limits lim;
    ws_http_head head;
    size_t head_len = 0;
    check_opts(L, 2);
    get_limits(L, 2, &lim);
    int rc = parse_head(L, 1, request, &lim, &head, &head_len);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, head_error(rc, request));
        return 2;
    }
    lua_createtable(L, 0, 8);
    set_lstring(L, "method", head.method, head.method_len);
    set_lstring(L, "target", head.target, head.target_len);
    set_lstring(L, "reason", head.reason, head.reason_len);
    if (!request) {
        lua_pushinteger(L, head.status);
        lua_setfield(L, -2, "status");
    }
    lua_pushinteger(L, head.version_minor);
    lua_setfield(L, -2, "version_minor");
    lua_pushinteger(L, (lua_Integer)head_len);
    lua_setfield(L, -2, "head_length");
    push_header_list(L, &head);
    lua_setfield(L, -2, "headers");
    return 1;
}

static int l_parse_request(lua_State *L) { return parse_any(L, true); }
static int l_parse_response(lua_State *L) { return parse_any(L, false); }

/* head_end(data[, scanned[, max_head]]) -> length, scanned: length is 0
 * while the head is incomplete; pass scanned back with more data so the
 * search resumes.  nil, message when max_head bytes hold no end. */
static int l_head_end(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_Number sc = luaL_optnumber(L, 2, 0);
    lua_Number max = luaL_optnumber(L, 3, DEFAULT_MAX_HEAD);
    luaL_argcheck(L, is_count(sc, 0, (lua_Number)len), 2, "must be an integer in 0..#data");
    luaL_argcheck(L, is_count(max, 1, LIMIT_MAX), 3, "must be a positive integer");
    size_t scanned = (size_t)sc;
    long end = ws_http_head_end(s, len, &scanned, (size_t)max);
    if (end < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "head too large");
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)end);
    lua_pushinteger(L, (lua_Integer)scanned);
    return 2;
}

static void push_url(lua_State *L, const ws_url *u)
{
    lua_createtable(L, 0, 5);
    lua_pushboolean(L, u->secure);
    lua_setfield(L, -2, "secure");
    lua_pushstring(L, u->host);
    lua_setfield(L, -2, "host");
    lua_pushinteger(L, u->port);
    lua_setfield(L, -2, "port");
    lua_pushstring(L, u->resource);
    lua_setfield(L, -2, "resource");
    if (u->userinfo[0] != '\0') {
        lua_pushstring(L, u->userinfo);
        lua_setfield(L, -2, "userinfo");
    }
}

static void check_url(lua_State *L, int arg, ws_url *u)
{
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    char err[160];
    if (strlen(s) != len)
        luaL_argerror(L, arg, "invalid URL: URL contains a NUL byte");
    if (ws_url_parse(s, u, err, sizeof err) != 0)
        luaL_argerror(L, arg, lua_pushfstring(L, "invalid URL: %s", err));
}

static int l_parse_url(lua_State *L)
{
    ws_url u;
    check_url(L, 1, &u);
    push_url(L, &u);
    return 1;
}

static bool has_header(const ws_kv *kv, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        const char *a = kv[i].name, *b = name;
        while (*a && *b && (*a | 0x20) == (*b | 0x20))
            a++, b++;
        if (*a == '\0' && *b == '\0')
            return true;
    }
    return false;
}

static int l_client_handshake(lua_State *L)
{
    ws_url u;
    check_url(L, 1, &u);
    check_opts(L, 2);
    lua_settop(L, 2);
    lua_newtable(L);
    int anchors = lua_gettop(L);
    ws_client_request req;
    memset(&req, 0, sizeof req);
    req.host = u.host;
    req.port = u.port;
    req.secure = u.secure;
    req.resource = u.resource;
    req.origin = opt_string(L, 2, "origin");
    req.extensions = opt_string(L, 2, "extensions");
    req.key = opt_string(L, 2, "key");
    req.protocols = opt_protocols(L, 2, anchors, &req.num_protocols);
    size_t nh;
    ws_kv *kv = opt_headers(L, 2, anchors, 1, &nh);
    /* URL credentials become Basic auth unless the caller set Authorization. */
    if (u.userinfo[0] != '\0' && !has_header(kv, nh, "Authorization")) {
        unsigned char b64[4 * ((sizeof u.userinfo + 2) / 3) + 1];
        EVP_EncodeBlock(b64, (const unsigned char *)u.userinfo, (int)strlen(u.userinfo));
        lua_pushfstring(L, "Basic %s", (const char *)b64);
        kv[nh].name = "Authorization";
        kv[nh].value = anchor(L, anchors);
        nh++;
    }
    req.headers = kv;
    req.num_headers = nh;
    ws_buf *out = new_buf(L);
    char accept[WS_ACCEPT_LEN + 1];
    char err[160];
    if (ws_handshake_client_request(out, &req, accept, err, sizeof err) != 0) {
        if (strcmp(err, "out of memory") == 0 || strncmp(err, "random", 6) == 0)
            return luaL_error(L, "client_handshake: %s", err);
        return luaL_argerror(L, 2, err);
    }
    push_buf(L, out);
    ws_buf_free(out);
    lua_pushstring(L, accept);
    return 2;
}

static int l_check_response(lua_State *L)
{
    luaL_checkstring(L, 1);
    const char *accept = luaL_checkstring(L, 2);
    check_opts(L, 3);
    lua_settop(L, 3);
    lua_newtable(L);
    int anchors = lua_gettop(L);
    limits lim;
    get_limits(L, 3, &lim);
    size_t np;
    const char **protocols = opt_protocols(L, 3, anchors, &np);
    const char *extensions = opt_string(L, 3, "extensions");
    ws_http_head head;
    size_t head_len = 0;
    int rc = parse_head(L, 1, false, &lim, &head, &head_len);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, head_error(rc, false));
        return 2;
    }
    ws_client_result res;
    char err[200];
    if (ws_handshake_check_response(&head, accept, protocols, np, extensions, &res, err,
                                    sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        lua_pushinteger(L, head.status);
        push_header_map(L, &head);
        return 4;
    }
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, head.status);
    lua_setfield(L, -2, "status");
    set_lstring(L, "protocol", res.protocol, res.protocol_len);
    set_lstring(L, "extensions", res.extensions, res.extensions_len);
    lua_pushinteger(L, (lua_Integer)head_len);
    lua_setfield(L, -2, "head_length");
    push_header_map(L, &head);
    lua_setfield(L, -2, "headers");
    return 1;
}

/* nil, status, reason, error response. */
static int reject(lua_State *L, int status, const char *reason)
{
    ws_buf *out = new_buf(L);
    if (ws_handshake_error_response(out, status, reason, NULL, 0) != 0)
        return luaL_error(L, "accept: out of memory");
    lua_pushnil(L);
    lua_pushinteger(L, status);
    lua_pushstring(L, reason);
    push_buf(L, out);
    ws_buf_free(out);
    return 4;
}

/* Push the client's subprotocol offers as a list and return the first one
 * (in the client's order) the server supports, or NULL. */
static const char *push_offers(lua_State *L, const ws_http_head *head, const char *const *server,
                               size_t num_server)
{
    const char *chosen = NULL;
    int n = 0;
    lua_newtable(L);
    for (size_t i = 0; i < head->num_headers; i++) {
        const ws_http_header *h = &head->headers[i];
        if (h->name_len != 22 || strncasecmp(h->name, "Sec-WebSocket-Protocol", 22) != 0)
            continue;
        size_t pos = 0, len;
        const char *e;
        while (ws_http_next_element(h->value, h->value_len, &pos, &e, &len)) {
            lua_pushlstring(L, e, len);
            lua_rawseti(L, -2, ++n);
            for (size_t k = 0; chosen == NULL && k < num_server; k++)
                if (strlen(server[k]) == len && memcmp(server[k], e, len) == 0)
                    chosen = server[k];
        }
    }
    return chosen;
}

/* All Sec-WebSocket-Extensions values joined with ", ", or nil. */
static void push_offered_extensions(lua_State *L, const ws_http_head *head)
{
    int parts = 0;
    for (size_t i = 0; i < head->num_headers; i++) {
        const ws_http_header *h = &head->headers[i];
        if (h->name_len != 24 || strncasecmp(h->name, "Sec-WebSocket-Extensions", 24) != 0 ||
            h->value_len == 0)
            continue;
        if (parts > 0) {
            lua_pushliteral(L, ", ");
            parts++;
        }
        lua_pushlstring(L, h->value, h->value_len);
        parts++;
        if (parts > 8) { /* keep the stack small */
            lua_concat(L, parts);
            parts = 1;
        }
    }
    if (parts == 0)
        lua_pushnil(L);
    else
        lua_concat(L, parts);
}

static int l_accept(lua_State *L)
{
    luaL_checkstring(L, 1);
    check_opts(L, 2);
    lua_settop(L, 2);
    lua_newtable(L);
    int anchors = lua_gettop(L);
    limits lim;
    get_limits(L, 2, &lim);
    size_t np, nh;
    const char **protocols = opt_protocols(L, 2, anchors, &np);
    const char *extensions = opt_string(L, 2, "extensions");
    ws_kv *kv = opt_headers(L, 2, anchors, 0, &nh);
    char err[200];
    /* Bad options raise now, not only when a valid request arrives. */
    if (ws_handshake_check_headers(kv, nh, err, sizeof err) != 0)
        return luaL_argerror(L, 2, err);
    for (size_t i = 0; i < np; i++)
        if (!ws_http_is_token(protocols[i], strlen(protocols[i])))
            return luaL_argerror(L, 2, lua_pushfstring(L, "invalid subprotocol '%s'",
                                                       protocols[i]));

    ws_http_head head;
    size_t head_len = 0;
    int rc = parse_head(L, 1, true, &lim, &head, &head_len);
    if (rc != 0) {
        bool too_big = rc == WS_HTTP_ERR_TOO_LARGE || rc == WS_HTTP_ERR_TOO_MANY;
        return reject(L, too_big ? 431 : 400, head_error(rc, true));
    }
    ws_server_request info;
    const char *reason = NULL;
    int status = ws_handshake_check_request(&head, &info, &reason);
    if (status != 0)
        return reject(L, status, reason);

    lua_createtable(L, 0, 12); /* info */
    int t = lua_gettop(L);
    const char *chosen = push_offers(L, &head, protocols, np);
    lua_setfield(L, t, "protocols");
    push_offered_extensions(L, &head);
    lua_setfield(L, t, "extensions");
    set_lstring(L, "method", head.method, head.method_len);
    set_lstring(L, "path", info.path, info.path_len);
    set_lstring(L, "query", info.query, info.query_len);
    set_lstring(L, "key", info.key, info.key_len);
    if (info.origin != NULL)
        set_lstring(L, "origin", info.origin->value, info.origin->value_len);
    if (chosen != NULL) {
        lua_pushstring(L, chosen);
        lua_setfield(L, t, "protocol");
    }
    lua_pushinteger(L, (lua_Integer)head_len);
    lua_setfield(L, t, "head_length");
    push_header_map(L, &head);
    lua_setfield(L, t, "headers");

    ws_buf *out = new_buf(L);
    if (ws_handshake_server_response(out, info.key, info.key_len, chosen, extensions, kv, nh,
                                     err, sizeof err) != 0) {
        if (strcmp(err, "out of memory") == 0)
            return luaL_error(L, "accept: %s", err);
        return luaL_argerror(L, 2, err);
    }
    push_buf(L, out);
    ws_buf_free(out);
    lua_pushvalue(L, t);
    return 2;
}

void ws_lua_open_handshake(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"parse_url", l_parse_url},
        {"client_handshake", l_client_handshake},
        {"check_response", l_check_response},
        {"accept", l_accept},
        {"parse_request", l_parse_request},
        {"parse_response", l_parse_response},
        {"head_end", l_head_end},
        {NULL, NULL},
    };
    ws_setfuncs(L, funcs);
}
