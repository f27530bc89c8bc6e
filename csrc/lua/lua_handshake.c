/* Lua binding of the handshake: URL parsing, the client request and
 * response check, the server's accept, and raw head parsing. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "core/handshake.h"
#include "core/http.h"
#include "lua_compat.h"
#include "lua_request.h"
#include "lua_error.h"
#include "lua_core.h"
#include "lua_opts.h"
#include "lua_optkeys.h"
#include "core/url.h"

#define BUF_MT "ws.core.handshake_buf"

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

static void get_limits(lua_State *L, int t, limits *lim)
{
    ws_session_config defaults;
    ws_session_config_init(&defaults, WS_SERVER);
    lim->max_head = defaults.max_head;
    lim->max_headers = defaults.max_headers;
    ws_lua_read_head_limits(L, t, &lim->max_head, &lim->max_headers);
}

static const char *head_error(ws_err rc, bool request)
{
    switch (rc) {
    case WS_E_NEED_MORE: return request ? "incomplete request head" : "incomplete response head";
    case WS_E_TOO_BIG: return request ? "request head too large" : "response head too large";
    case WS_E_TOO_MANY: return "too many headers";
    case WS_E_VERSION:
        return request ? "unsupported HTTP version (HTTP/1.1 or later required)"
                       : "unsupported HTTP version (HTTP/1.x required)";
    default: return request ? "malformed request head" : "malformed response head";
    }
}

/* Find and parse the head in the string at idx.  The parser writes into its
 * buffer, so it works on a copy; the copy and the header array are
 * userdata left on the stack.  Returns WS_OK, WS_E_NEED_MORE or another
 * ws_err of the head parser. */
static ws_err parse_head(lua_State *L, int idx, bool request, const limits *lim, ws_http_head *head,
                         size_t *head_len)
{
    size_t len;
    const char *s = luaL_checklstring(L, idx, &len);
    size_t scanned = 0;
    long end = ws_http_head_end(s, len, &scanned, lim->max_head);
    lua_pushnil(L); /* keep the stack shape the same on every path */
    lua_pushnil(L);
    if (end < 0)
        return (ws_err)end;
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
    get_limits(L, ws_lua_opts_table(L, 2), &lim);
    ws_err rc = parse_head(L, 1, request, &lim, &head, &head_len);
    if (rc != WS_OK) {
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

/***
 * Handshake helpers of ws.core.
 * @module ws.core
 */

/***
 * Parse an HTTP request head.
 * @function parse_request
 * @tparam string head bytes up to and including the blank line
 * @tparam[opt] table opts `max_head`, `max_headers`
 * @treturn table the request line's fields (`method`, the target), `version_minor`,
 *  `head_length` and `headers` as a list of `{name=, value=}`
 * @return `nil, err` when it is not a valid head
 */
static int l_parse_request(lua_State *L)
{
    return parse_any(L, true);
}
/***
 * Parse an HTTP response head.
 * @function parse_response
 * @tparam string head bytes up to and including the blank line
 * @tparam[opt] table opts `max_head`, `max_headers`
 * @treturn table `status`, `version_minor`, `head_length` and `headers` as a list of `{name=,
 *  value=}`
 * @return `nil, err`
 */
static int l_parse_response(lua_State *L)
{
    return parse_any(L, false);
}

/* head_end(data[, scanned[, max_head]]) -> length, scanned: length is 0
 * while the head is incomplete; pass scanned back with more data so the
 * search resumes.  nil, message when max_head bytes hold no end. */
/***
 * Find the end of an HTTP head, resumably.
 * @function head_end
 * @tparam string data bytes received so far
 * @tparam[opt=0] integer scanned the second value of the previous call, so the search resumes
 * @tparam[opt=8192] integer max_head limit
 * @treturn integer the head's length (0 while incomplete)
 * @treturn integer scanned
 * @return `nil, "head too large"` when `max_head` bytes hold no end
 */
static int l_head_end(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_Number sc = luaL_optnumber(L, 2, 0);
    limits lim;
    get_limits(L, 0, &lim);
    lua_Number max = luaL_optnumber(L, 3, (lua_Number)lim.max_head);
    luaL_argcheck(L, ws_lua_is_count(sc, 0, (lua_Number)len), 2, "must be an integer in 0..#data");
    luaL_argcheck(L, ws_lua_is_count(max, 1, (lua_Number)WS_LUA_MAX_HEAD_MAX), 3,
                  "must be an integer in 1..1048576");
    size_t scanned = (size_t)sc;
    long end = ws_http_head_end(s, len, &scanned, (size_t)max);
    if (end == WS_E_TOO_BIG) {
        lua_pushnil(L);
        lua_pushliteral(L, "head too large");
        return 2;
    }
    /* 0: incomplete, call again with more data */
    lua_pushinteger(L, end == WS_E_NEED_MORE ? 0 : (lua_Integer)end);
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

/***
 * Parse a `ws://` or `wss://` URL.
 * @function parse_url
 * @tparam string url the URL
 * @treturn table `{secure, host, port, resource, userinfo}`
 * @raise on an invalid URL (the message names the problem)
 */
static int l_parse_url(lua_State *L)
{
    ws_url u;
    check_url(L, 1, &u);
    push_url(L, &u);
    return 1;
}

static bool has_header(const ws_kv *kv, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(kv[i].name, name) == 0)
            return true;
    return false;
}

typedef struct client_request {
    ws_url url;
    ws_client_request req;
} client_request;

ws_client_request *ws_lua_client_request(lua_State *L, int url, int t)
{
    client_request *cr = (client_request *)lua_newuserdata(L, sizeof *cr);
    memset(cr, 0, sizeof *cr);
    int ud = lua_gettop(L);
    lua_createtable(L, 3, 0); /* its uservalue: what the request points to */
    int keep = ud + 1;
    if (url) {
        check_url(L, url, &cr->url);
    } else {
        const char *s = ws_lua_opt_text(L, t, "url", NULL);
        char err[160];
        if (s == NULL)
            ws_lua_opt_error(L, t, "'url' must be set for a client handshake");
        if (ws_url_parse(s, &cr->url, err, sizeof err) != 0)
            ws_lua_opt_error(L, t, "'url' is invalid: %s", err);
    }
    ws_client_request *req = &cr->req;
    req->host = cr->url.host;
    req->port = cr->url.port;
    req->secure = cr->url.secure;
    req->resource = cr->url.resource;
    req->origin = ws_lua_opt_text(L, t, "origin", NULL);
    req->extensions = ws_lua_opt_text(L, t, "extensions", NULL);
    req->key = ws_lua_opt_text(L, t, "key", NULL);
    req->protocols = ws_lua_opt_strings(L, t, "protocols", &req->num_protocols);
    lua_rawseti(L, keep, 1);
    size_t nh;
    ws_kv *kv = ws_lua_opt_headers(L, t, "headers", &nh);
    lua_rawseti(L, keep, 2);
    /* URL credentials become Basic auth unless the caller set Authorization. */
    if (cr->url.userinfo[0] != '\0' && !has_header(kv, nh, "Authorization")) {
        ws_kv *all = (ws_kv *)lua_newuserdata(L, (nh + 1) * sizeof *all);
        lua_rawseti(L, keep, 3);
        if (nh)
            memcpy(all, kv, nh * sizeof *all);
        unsigned char b64[4 * ((sizeof cr->url.userinfo + 2) / 3) + 1];
        EVP_EncodeBlock(b64, (const unsigned char *)cr->url.userinfo,
                        (int)strlen(cr->url.userinfo));
        all[nh].name = "Authorization";
        all[nh].value = lua_pushfstring(L, "Basic %s", (const char *)b64);
        lua_rawseti(L, keep, 4);
        kv = all;
        nh++;
    }
    req->headers = kv;
    req->num_headers = nh;
    ws_setuservalue(L, ud);
    return req;
}

/***
 * A client's opening handshake request.
 * @function client_handshake
 * @tparam string url `ws://` or `wss://` URL
 * @tparam[opt] table opts `protocols`, `origin`, `extensions`, `headers`, `key`
 * @treturn string the request
 * @treturn string the `Sec-WebSocket-Accept` value to expect
 */
static int l_client_handshake(lua_State *L)
{
    int t = ws_lua_opts_table(L, 2);
    ws_lua_check_keys(L, t, 2, "client_handshake", "");
    ws_client_request *req = ws_lua_client_request(L, 1, t);
    ws_buf *out = new_buf(L);
    char accept[WS_ACCEPT_LEN + 1];
    char err[160];
    int rc = ws_handshake_client_request(out, req, accept, err, sizeof err);
    if (rc != WS_OK)
        return ws_lua_raise(L, "client_handshake", rc, err, 2);
    push_buf(L, out);
    ws_buf_free(out);
    lua_pushstring(L, accept);
    return 2;
}

/***
 * Check a server's response head against the request.
 * @function check_response
 * @tparam string head the response head
 * @tparam string accept the value `client_handshake` returned
 * @tparam[opt] table opts `protocols` offered, `max_head`, `max_headers`
 * @treturn table `{status, head_length, headers, ...}` with the negotiated protocol and
 *  extensions
 * @return `nil, err, status, headers` when the handshake failed
 */
static int l_check_response(lua_State *L)
{
    luaL_checkstring(L, 1);
    const char *accept = luaL_checkstring(L, 2);
    int t = ws_lua_opts_table(L, 3);
    lua_settop(L, 3);
    ws_lua_check_keys(L, t, 3, "check_response", "");
    limits lim;
    get_limits(L, t, &lim);
    size_t np;
    const char **protocols = ws_lua_opt_strings(L, t, "protocols", &np);
    const char *extensions = ws_lua_opt_text(L, t, "extensions", NULL);
    ws_http_head head;
    size_t head_len = 0;
    ws_err rc = parse_head(L, 1, false, &lim, &head, &head_len);
    if (rc != WS_OK) {
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
        ws_lua_push_headers(L, &head);
        return 4;
    }
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, head.status);
    lua_setfield(L, -2, "status");
    set_lstring(L, "protocol", res.protocol, res.protocol_len);
    set_lstring(L, "extensions", res.extensions, res.extensions_len);
    lua_pushinteger(L, (lua_Integer)head_len);
    lua_setfield(L, -2, "head_length");
    ws_lua_push_headers(L, &head);
    lua_setfield(L, -2, "headers");
    return 1;
}

/* nil, status, reason, error response. */
static int reject(lua_State *L, int status, const char *reason)
{
    ws_buf *out = new_buf(L);
    if (ws_handshake_error_response(out, status, reason, NULL, 0) != WS_OK)
        return ws_lua_nomem(L, "accept");
    lua_pushnil(L);
    lua_pushinteger(L, status);
    lua_pushstring(L, reason);
    push_buf(L, out);
    ws_buf_free(out);
    return 4;
}

/***
 * Validate a client's request head and build the answer.
 * @function accept
 * @tparam string head the request head
 * @tparam[opt] table opts `protocols` supported, `protocol`, `extensions`, `headers`,
 *  `max_head`, `max_headers`
 * @treturn string the 101 response
 * @treturn table the request: `method`, `path`, `query`, `key`, `origin`, `protocols`,
 *  `extensions`, the chosen `protocol`, `head_length`, `headers`
 * @return `nil, status, reason, response` when the request is refused
 */
static int l_accept(lua_State *L)
{
    luaL_checkstring(L, 1);
    int opts = ws_lua_opts_table(L, 2);
    lua_settop(L, 2);
    ws_lua_check_keys(L, opts, 2, "accept", "");
    limits lim;
    get_limits(L, opts, &lim);
    size_t np, nh;
    const char **protocols = ws_lua_opt_strings(L, opts, "protocols", &np);
    const char *extensions = ws_lua_opt_text(L, opts, "extensions", NULL);
    ws_kv *kv = ws_lua_opt_headers(L, opts, "headers", &nh);
    char err[200];
    /* Bad options raise now, not only when a valid request arrives. */
    if (ws_handshake_check_headers(kv, nh, err, sizeof err) != 0)
        return luaL_argerror(L, 2, err);
    for (size_t i = 0; i < np; i++)
        if (!ws_http_is_token(protocols[i], strlen(protocols[i])))
            return luaL_argerror(L, 2,
                                 lua_pushfstring(L, "invalid subprotocol '%s'", protocols[i]));

    ws_http_head head;
    size_t head_len = 0;
    ws_err rc = parse_head(L, 1, true, &lim, &head, &head_len);
    if (rc != WS_OK) {
        bool too_big = rc == WS_E_TOO_BIG || rc == WS_E_TOO_MANY;
        return reject(L, too_big ? 431 : 400, head_error(rc, true));
    }
    ws_server_request info;
    const char *reason = NULL;
    int status = ws_handshake_check_request(&head, &info, &reason);
    if (status != 0)
        return reject(L, status, reason);

    info.head_len = head_len;
    ws_lua_push_request(L, &head, &info);
    int t = lua_gettop(L);
    const char *chosen = ws_handshake_choose_protocol(&head, protocols, np);
    if (chosen != NULL) {
        lua_pushstring(L, chosen);
        lua_setfield(L, t, "protocol");
    }

    ws_buf *out = new_buf(L);
    rc = ws_handshake_server_response(out, info.key, info.key_len, chosen, extensions, kv, nh, err,
                                      sizeof err);
    if (rc != WS_OK)
        return ws_lua_raise(L, "accept", rc, err, 2);
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
