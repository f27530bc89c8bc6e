/* ws.core.session: the sans-I/O engine as a Lua object. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lua_alloc.h"
#include "lua_compat.h"
#include "lua_gc_pace.h"
#include "lua_request.h"
#include "lua_error.h"
#include "lua_core.h"
#include "lua_opts.h"
#include "lua_optkeys.h"
#include "core/session.h"

#define SESSION_MT "ws.core.session"

typedef struct lsession {
    ws_session *s;
    uint8_t mask_key[4]; /* fixed masking key (tests) */
    size_t unpaced;      /* bytes of large strings made, their collector steps not yet taken */
} lsession;

static lsession *check_session(lua_State *L)
{
    lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
    if (!ls->s)
        luaL_argerror(L, 1, "session is freed");
    return ls;
}

static void fixed_random(void *ud, uint8_t *buf, size_t n)
{
    const uint8_t *key = ud;
    for (size_t i = 0; i < n; i++)
        buf[i] = key[i & 3];
}

/* The session's uservalue table keeps what Lua code gave it (the server's
 * supported protocols). */
static int start_client(lua_State *L, lsession *ls, int opts)
{
    ws_client_request *req = ws_lua_client_request(L, 0, opts);
    char err[256];
    int rc = ws_session_start_client(ls->s, req, req->protocols, req->num_protocols,
                                     req->extensions, err, sizeof err);
    if (rc != WS_OK)
        return ws_lua_raise(L, "session", rc, err, opts);
    lua_pop(L, 1);
    return 0;
}

static int l_session(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    ws_lua_check_keys(L, 1, 1, "session", "");
    const char *role = ws_lua_opt_string(L, 1, "role", NULL);
    if (!role || (strcmp(role, "client") != 0 && strcmp(role, "server") != 0))
        return ws_lua_opt_error(L, 1, "'role' must be \"client\" or \"server\"");
    ws_session_config cfg;
    ws_session_config_init(&cfg, role[0] == 'c' ? WS_CLIENT : WS_SERVER);
    cfg.handshake = ws_lua_opt_bool(L, 1, "handshake", true);
    cfg.stream = ws_lua_opt_bool(L, 1, "stream", false);
    ws_lua_opt_compress(L, 1, cfg.role == WS_SERVER, !cfg.handshake, &cfg.compress);
    ws_lua_read_limits(L, 1, &cfg);
    size_t mask_len = 0;
    const char *mask_key = ws_lua_opt_lstring(L, 1, "mask_key", NULL, &mask_len);
    if (mask_key && mask_len != 4)
        return ws_lua_opt_error(L, 1, "'mask_key' must be 4 bytes");
    if (cfg.role == WS_SERVER) {
        size_t np;
        ws_lua_opt_strings(L, 1, "protocols", &np); /* type check only */
        lua_pop(L, 1);
    }

    lsession *ls = lua_newuserdata(L, sizeof *ls);
    memset(ls, 0, sizeof *ls);
    luaL_getmetatable(L, SESSION_MT);
    lua_setmetatable(L, -2);
    int ud = lua_gettop(L);
    if (mask_key) {
        memcpy(ls->mask_key, mask_key, 4);
        cfg.random = fixed_random;
        cfg.random_ud = ls->mask_key;
    }
    ls->s = ws_session_new(&cfg);
    if (!ls->s)
        return ws_lua_nomem(L, "session");

    lua_createtable(L, 0, 1);
    lua_getfield(L, 1, "protocols");
    lua_setfield(L, -2, "protocols");
    ws_setuservalue(L, ud);

    if (cfg.handshake && cfg.role == WS_CLIENT)
        start_client(L, ls, 1);
    lua_settop(L, ud);
    return 1;
}

/***
 * Sans-I/O sessions of module ws, implemented in C.
 * @module ws
 */

/***
 * A sans-I/O session from `ws.session`: bytes in, events and bytes out.
 * @type Session
 */

/***
 * Give the session bytes received from the transport; they may be split
 * anywhere. It only buffers: parsing happens as events are pulled.
 * @function Session:feed
 * @tparam string bytes received data
 */
static int l_feed(lua_State *L)
{
    lsession *ls = check_session(L);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    if (ws_session_feed(ls->s, (const uint8_t *)p, n) != WS_OK)
        return ws_lua_nomem(L, "session:feed");
    return 0;
}

static int push_event(lua_State *L, lsession *ls, const ws_event *ev)
{
    switch (ev->type) {
    case WS_EV_OPEN:
        lua_pushliteral(L, "open");
        lua_createtable(L, 0, 4);
        if (ev->head) {
            lua_pushinteger(L, ev->head->status);
            lua_setfield(L, -2, "status");
            ws_lua_push_headers(L, ev->head);
            lua_setfield(L, -2, "headers");
        }
        if (ws_session_protocol(ls->s)) {
            lua_pushstring(L, ws_session_protocol(ls->s));
            lua_setfield(L, -2, "protocol");
        }
        if (ws_session_extensions(ls->s)) {
            lua_pushstring(L, ws_session_extensions(ls->s));
            lua_setfield(L, -2, "extensions");
        }
        return 2;
    case WS_EV_REQUEST:
        lua_pushliteral(L, "request");
        ws_lua_push_request(L, ev->head, ev->request);
        return 2;
    case WS_EV_MESSAGE:
    case WS_EV_FRAGMENT:
        if (ev->type == WS_EV_MESSAGE)
            lua_pushliteral(L, "message");
        else
            lua_pushliteral(L, "fragment");
        lua_pushlstring(L, (const char *)ev->data, ev->len);
        if (ev->len >= WS_LUA_LARGE_BLOCK)
            ls->unpaced += ev->len;
        if (ev->binary)
            lua_pushliteral(L, "binary");
        else
            lua_pushliteral(L, "text");
        if (ev->type == WS_EV_MESSAGE)
            return 3;
        lua_pushboolean(L, ev->fin);
        return 4;
    case WS_EV_PING:
    case WS_EV_PONG:
        if (ev->type == WS_EV_PING)
            lua_pushliteral(L, "ping");
        else
            lua_pushliteral(L, "pong");
        lua_pushlstring(L, (const char *)ev->data, ev->len);
        return 2;
    case WS_EV_ERROR:
        lua_pushliteral(L, "error");
        lua_pushlstring(L, (const char *)ev->data, ev->len);
        if (ev->code)
            lua_pushinteger(L, ev->code);
        else
            lua_pushnil(L);
        if (!ev->head)
            return 3;
        ws_lua_push_headers(L, ev->head);
        return 4;
    case WS_EV_CLOSE:
        lua_pushliteral(L, "close");
        lua_pushinteger(L, ev->code);
        lua_pushlstring(L, (const char *)ev->data, ev->len);
        lua_pushboolean(L, ev->was_clean);
        return 4;
    default: return 0;
    }
}

/***
 * Pull the next event (see `Session.event_kinds`); pull events before taking
 * `output()`.
 * @function Session:next_event
 * @treturn string kind, followed by its values; nil when nothing is ready
 */
static int l_next_event(lua_State *L)
{
    lsession *ls = check_session(L);
    ws_event ev;
    if (ls->unpaced) { /* before an event is taken: a finalizer's raise loses none */
        size_t n = ls->unpaced;
        ls->unpaced = 0;
        ws_lua_gc_pace(L, n);
        if (!ls->s) /* a finalizer the steps ran freed it */
            return luaL_argerror(L, 1, "session is freed");
    }
    if (!ws_session_next(ls->s, &ev)) {
        lua_pushnil(L);
        return 1;
    }
    return push_event(L, ls, &ev);
}

static int events_iter(lua_State *L)
{
    lua_settop(L, 1);
    return l_next_event(L);
}

/***
 * Iterator over `next_event`: `for kind, a, b, c in s:events() do ... end`.
 * @function Session:events
 */
static int l_events(lua_State *L)
{
    check_session(L);
    lua_pushcfunction(L, events_iter);
    lua_pushvalue(L, 1);
    return 2;
}

/***
 * The bytes to send, removed from the session.
 * @function Session:output
 * @treturn string the bytes (`""` when none)
 */
static int l_output(lua_State *L)
{
    lsession *ls = check_session(L);
    size_t n;
    const uint8_t *p = ws_session_output(ls->s, &n);
    lua_pushlstring(L, (const char *)p, n);
    ws_session_output_consume(ls->s, n);
    if (n >= WS_LUA_LARGE_BLOCK)
        ls->unpaced += n;
    return 1;
}

/* nil, message for a state error; raises for a bad argument. */
static int send_result(lua_State *L, int r, int arg, const char *argmsg)
{
    if (r == WS_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (r == WS_E_ARG)
        return luaL_argerror(L, arg, argmsg);
    if (r == WS_E_NOMEM)
        return ws_lua_nomem(L, "session");
    lua_pushnil(L);
    lua_pushstring(L, ws_strerror(r));
    return 2;
}

/***
 * Queue a message.
 * @function Session:send
 * @tparam string data the message
 * @tparam[opt="text"] string kind `"text"` or `"binary"`
 * @tparam[opt] table opts `{compress = bool}`, as for `Connection:send`
 * @return `true`, or `nil, err` when not OPEN
 * @raise when a text message is not UTF-8
 */
static int l_send(lua_State *L)
{
    lsession *ls = check_session(L);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    bool binary = ws_lua_check_kind(L, 3);
    int r = ws_session_send_ex(ls->s, binary, (const uint8_t *)p, n, ws_lua_send_compress(L, 4));
    return send_result(L, r, 2, "invalid UTF-8 in a text message; send it as binary");
}

/***
 * Queue one part of a message streamed in parts; control frames may go
 * between parts.
 * @function Session:send_fragment
 * @tparam string data this part
 * @tparam bool fin true on the last part
 * @tparam[opt="text"] string kind `"text"` or `"binary"`
 * @return `true`, or `nil, err`
 */
static int l_send_fragment(lua_State *L)
{
    lsession *ls = check_session(L);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    bool fin = lua_toboolean(L, 3) != 0;
    bool binary = ws_lua_check_kind(L, 4);
    int r = ws_session_send_fragment(ls->s, binary, (const uint8_t *)p, n, fin);
    return send_result(L, r, 2, "invalid UTF-8 in a text message; send it as binary");
}

/***
 * Queue a ping.
 * @function Session:ping
 * @tparam[opt=""] string payload at most 125 bytes
 */
static int l_ping(lua_State *L)
{
    lsession *ls = check_session(L);
    size_t n;
    const char *p = luaL_optlstring(L, 2, "", &n);
    if (n > 125)
        return luaL_argerror(L, 2, "ping payload over 125 bytes");
    return send_result(L, ws_session_ping(ls->s, (const uint8_t *)p, n), 2, "bad payload");
}

/***
 * Queue an unsolicited pong.
 * @function Session:pong
 * @tparam[opt=""] string payload at most 125 bytes
 */
static int l_pong(lua_State *L)
{
    lsession *ls = check_session(L);
    size_t n;
    const char *p = luaL_optlstring(L, 2, "", &n);
    if (n > 125)
        return luaL_argerror(L, 2, "pong payload over 125 bytes");
    return send_result(L, ws_session_pong(ls->s, (const uint8_t *)p, n), 2, "bad payload");
}

/***
 * Start the close handshake.
 * @function Session:close
 * @tparam[opt=1000] integer code close code
 * @tparam[opt] string reason at most 123 bytes
 * @raise on an invalid code or a reason over 123 bytes
 */
static int l_close(lua_State *L)
{
    lsession *ls = check_session(L);
    lua_Number code = luaL_optnumber(L, 2, WS_CLOSE_NORMAL);
    size_t n;
    const char *reason = luaL_optlstring(L, 3, "", &n);
    if (code != (int)code || !ws_close_code_valid((int)code))
        return luaL_argerror(L, 2, "invalid close code (1000-1003, 1007-1014, 3000-4999)");
    if (n > 123)
        return luaL_argerror(L, 3, "close reason over 123 bytes");
    int r = ws_session_close(ls->s, (int)code, (const uint8_t *)reason, n);
    return send_result(L, r, 3, "close reason is not valid UTF-8");
}

/***
 * Server, after a `request` event: answer 101.
 * @function Session:accept
 * @tparam[opt] table answer `{protocol=, extensions=, headers=}`; without `protocol` the
 *  first of the client's offers that `protocols` supports is chosen
 */
static int l_accept(lua_State *L)
{
    lsession *ls = check_session(L);
    int opts = ws_lua_opts_table(L, 2);
    ws_lua_check_keys(L, opts, 2, "session_accept", "");
    const char *protocol = ws_lua_opt_string(L, opts, "protocol", NULL);
    const char *extensions = ws_lua_opt_string(L, opts, "extensions", NULL);
    /* The request is still in the input buffer: the core chooses from the
     * session's supported list, or checks the one given was offered. */
    const ws_http_head *request = ws_session_request_head(ls->s);
    if (!protocol && request) {
        lua_settop(L, 2);
        ws_getuservalue(L, 1);
        size_t n;
        const char **supported = ws_lua_opt_strings(L, 3, "protocols", &n);
        protocol = ws_handshake_choose_protocol(request, supported, n);
    } else if (protocol && request && !ws_handshake_choose_protocol(request, &protocol, 1)) {
        return luaL_argerror(L, 2, "protocol was not offered by the client");
    }
    size_t nh;
    ws_kv *headers = ws_lua_opt_headers(L, opts, "headers", &nh);
    char err[256];
    int r = ws_session_accept(ls->s, protocol, extensions, headers, nh, err, sizeof err);
    if (r == WS_E_ARG)
        return luaL_argerror(L, 2, err);
    if (r != WS_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * Server, after a `request` event: answer with an error status.
 * @function Session:reject
 * @tparam integer status HTTP status
 * @tparam[opt] string reason body text
 * @tparam[opt] table headers extra headers
 */
static int l_reject(lua_State *L)
{
    lsession *ls = check_session(L);
    lua_Integer status = luaL_checkinteger(L, 2);
    if (status < 300 || status > 599)
        return luaL_argerror(L, 2, "status must be between 300 and 599");
    const char *reason = luaL_optstring(L, 3, "");
    size_t nh = 0;
    ws_kv *headers = NULL;
    if (!lua_isnoneornil(L, 4)) {
        /* Read through a {headers = arg 4} wrapper; report errors as arg 4. */
        luaL_checktype(L, 4, LUA_TTABLE);
        lua_settop(L, 4);
        lua_newtable(L);
        lua_pushvalue(L, 4);
        lua_setfield(L, -2, "headers");
        lua_replace(L, 4);
        headers = ws_lua_opt_headers(L, 4, "headers", &nh);
    }
    int r = ws_session_reject(ls->s, (int)status, reason, headers, nh);
    return send_result(L, r, 4, "invalid header name or value");
}

/***
 * The transport ended (the peer closed TCP).
 * @function Session:eof
 */

/***
 * The host gave up on the connection (a close timeout): the session closes
 * with 1006.
 * @function Session:abort
 */
static int l_eof(lua_State *L)
{
    ws_session_eof(check_session(L)->s);
    return 0;
}

/***
 * The state.
 * @function Session:state
 * @treturn string `"CONNECTING"`, `"OPEN"`, `"CLOSING"` or `"CLOSED"`
 */
static int l_state(lua_State *L)
{
    lua_pushstring(L, ws_state_name(ws_session_state(check_session(L)->s)));
    return 1;
}

static int push_opt_string(lua_State *L, const char *s)
{
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
    return 1;
}

/***
 * The negotiated subprotocol.
 * @function Session:protocol
 * @treturn string the subprotocol, or nil
 */
static int l_protocol(lua_State *L)
{
    return push_opt_string(L, ws_session_protocol(check_session(L)->s));
}
/***
 * The negotiated extensions.
 * @function Session:extensions
 * @treturn string the `Sec-WebSocket-Extensions` value, or nil
 */
static int l_extensions(lua_State *L)
{
    return push_opt_string(L, ws_session_extensions(check_session(L)->s));
}

/* Bytes held: buffers (capacity) and zlib state. */
/***
 * Memory held by the session.
 * @function Session:memory
 * @treturn integer bytes held in buffers
 * @treturn integer bytes held by zlib
 */

/***
 * The events `next_event` returns: the kind, then its values.
 * @table event_kinds
 * @tfield table open `info`: client `{status, protocol, extensions, headers}`; server
 *  `{protocol}`
 * @tfield table request server: `{method, path, query, headers, origin, protocols,
 *  extensions, key}`; answer with `accept` or `reject`
 * @tfield string message `data, "text"|"binary"`: a whole message
 * @tfield string fragment `data, "text"|"binary", fin`: with `stream = true`, one per data
 *  frame
 * @tfield string ping `payload`: the pong is already queued
 * @tfield string pong `payload`
 * @tfield string error `message, number[, headers]`: before the close of a failed connection,
 *  the close code sent (1002, 1007, 1009) or the HTTP status of a failed handshake
 * @tfield integer close `code, reason, was_clean`: exactly once per session
 */
static int l_memory(lua_State *L)
{
    size_t zlib;
    size_t bufs = ws_session_memory(check_session(L)->s, &zlib);
    lua_pushinteger(L, (lua_Integer)bufs);
    lua_pushinteger(L, (lua_Integer)zlib);
    return 2;
}

static int l_gc(lua_State *L)
{
    lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
    ws_session_free(ls->s);
    ls->s = NULL;
    return 0;
}

/* __close (Lua 5.4), as on connections and servers: start a normal close
 * (1000) when OPEN; the memory goes with the garbage collector. */
static int l_close_meta(lua_State *L)
{
    lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
    if (ls->s && ws_session_state(ls->s) == WS_OPEN)
        ws_session_close(ls->s, WS_CLOSE_NORMAL, NULL, 0);
    return 0;
}

/* Methods (upvalue 1), then the field ready_state, named as on
 * connections (s:state() is the same value). */
static int l_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    if (!lua_isnil(L, -1))
        return 1;
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    if (key && strcmp(key, "ready_state") == 0)
        return l_state(L);
    lua_pushnil(L);
    return 1;
}

static int l_tostring(lua_State *L)
{
    lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
    lua_pushfstring(L, "ws.core.session (%p)", (void *)ls);
    return 1;
}

static const luaL_Reg session_methods[] = {
    {"feed", l_feed},         {"next_event", l_next_event},
    {"events", l_events},     {"output", l_output},
    {"send", l_send},         {"send_fragment", l_send_fragment},
    {"ping", l_ping},         {"pong", l_pong},
    {"close", l_close},       {"accept", l_accept},
    {"reject", l_reject},     {"eof", l_eof},
    {"abort", l_eof},         {"state", l_state},
    {"protocol", l_protocol}, {"extensions", l_extensions},
    {"memory", l_memory},     {NULL, NULL}};

static const luaL_Reg session_meta[] = {
    {"__gc", l_gc}, {"__close", l_close_meta}, {"__tostring", l_tostring}, {NULL, NULL}};

void ws_lua_open_session(lua_State *L)
{
    if (luaL_newmetatable(L, SESSION_MT)) {
        ws_setfuncs(L, session_meta);
        lua_newtable(L);
        ws_setfuncs(L, session_methods);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "methods");
        lua_pushcclosure(L, l_index, 1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_session);
    lua_setfield(L, -2, "session");
}
