/* ws.core.connect and the connection object shared by clients and
 * server-side connections: methods, fields, and the callbacks that turn
 * connection events into calls of on_open, on_message, on_close, ... */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/conn.h"
#include "lua_alloc.h"
#include "lua_gc_pace.h"
#include "lua_lent.h"
#include "lua_conn.h"
#include "lua_error.h"
#include "lua_core.h"
#include "lua_opts.h"
#include "lua_optkeys.h"
#include "lua_redirect.h"
#include "lua_route.h"
#include "lua_tls_cache.h"
#include "io/tls.h"
#include "core/frame.h"
#include "core/url.h"

/* ---- options ------------------------------------------------------------ */

static uint64_t opt_seconds(lua_State *L, int t, const char *field, uint64_t def)
{
    lua_Number v = ws_lua_opt_number(L, t, field, (lua_Number)def / 1e9, 0, 1e7);
    return (uint64_t)(v * 1e9);
}

void ws_lua_read_timeouts(lua_State *L, int t, ws_conn_config *ccfg, bool server)
{
    ccfg->open_timeout_ns = opt_seconds(L, t, server ? "handshake_timeout" : "timeout",
                                        server ? 10 * WS_NSEC_PER_SEC : ccfg->open_timeout_ns);
    ccfg->close_timeout_ns = opt_seconds(L, t, "close_timeout", ccfg->close_timeout_ns);
    ccfg->ping_interval_ns = opt_seconds(L, t, "ping_interval", 0);
    ccfg->ping_timeout_ns = opt_seconds(L, t, "ping_timeout", ccfg->ping_interval_ns);
    ccfg->idle_timeout_ns = opt_seconds(L, t, "idle_timeout", 0);
    ccfg->max_buffered =
        ws_lua_opt_size(L, t, "max_buffered", ccfg->max_buffered, 1, (size_t)1 << 53);
    ccfg->low_water = ws_lua_opt_size(L, t, "low_water_mark", ccfg->low_water, 0, (size_t)1 << 53);
    const char *policy = ws_lua_opt_string(L, t, "buffer_policy", "error");
    if (strcmp(policy, "error") != 0 && strcmp(policy, "close") != 0)
        ws_lua_opt_error(L, t, "'buffer_policy' must be \"error\" or \"close\"");
    ccfg->close_on_full = policy[0] == 'c';
}

/* ---- callbacks into Lua ------------------------------------------------- */

const char *const ws_lua_callback_names[CB_LAST + 1] = {
    NULL,      "on_open", "on_message", "on_close",   "on_error",       "on_drain",
    "on_ping", "on_pong", "on_upgrade", "on_request", "on_accept_error"};

int ws_lua_callback_index(const char *name)
{
    if (!name || strncmp(name, "on_", 3) != 0)
        return 0;
    for (int i = 1; i <= CB_LAST; i++)
        if (strcmp(name, ws_lua_callback_names[i]) == 0)
            return i;
    return 0;
}

/* Push the connection userdata of lc (anchored while it runs). */
static bool push_self(lua_State *L, lconn *lc)
{
    if (lc->self_ref == LUA_NOREF)
        return false;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->self_ref);
    return true;
}

#if LUA_VERSION_NUM >= 504
/* On Lua 5.4 a uservalue slot adds 16 bytes to every userdata, and most
 * connections never get a fields table: those that do find it in a
 * registry table with weak keys (an ephemeron table, so a fields table
 * that refers back to its connection does not keep it alive; __gc may
 * still read it).  Elsewhere the uservalue costs nothing extra (5.1 and
 * LuaJIT: the environment; 5.2 and 5.3: a slot in every userdata). */
static const char fields_key = 'f';

static void get_fields(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &fields_key);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    lua_remove(L, -2);
}

/* The table on top (popped) becomes the fields of the userdata at idx. */
static void set_fields(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &fields_key);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

static void make_fields_registry(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &fields_key);
    bool made = lua_istable(L, -1);
    lua_pop(L, 1);
    if (made)
        return;
    ws_newweakkeys(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &fields_key);
}
#else
#define get_fields(L, idx)      ws_getuservalue((L), (idx))
#define set_fields(L, idx)      ws_setuservalue((L), (idx))
#define make_fields_registry(L) ((void)(L))
#endif

void ws_lua_conn_fields(lua_State *L, lconn *lc, int idx)
{
    if (!lc->has_fields) {
        lua_newtable(L);
        lua_pushvalue(L, -1);
        set_fields(L, idx);
        lc->has_fields = true;
        return;
    }
    get_fields(L, idx);
}

/* Push fields[name] of the connection at idx (nil without a table). */
static void get_field(lua_State *L, lconn *lc, int idx, const char *name)
{
    if (!lc->has_fields) {
        lua_pushnil(L);
        return;
    }
    get_fields(L, idx);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
}

/* Push callback cb of the connection at idx: its own, else its server's.
 * Returns false (nothing pushed) when there is none. */
static bool push_callback(lua_State *L, lconn *lc, int idx, int cb)
{
    if (lc->own_cbs & (1u << cb)) {
        get_fields(L, idx);
        lua_rawgeti(L, -1, cb);
        lua_remove(L, -2);
        return true;
    }
    return lc->attached && ws_lua_server_conn_hooks.callback(L, lc, cb);
}

/* Registry key of the hooks of c:receive(), {[cb] = function}: one set
 * for every connection, which finds its own state in its fields. */
static const char receive_hooks_key = 'r';

/* Push the receive hook for cb when the connection receives. */
static bool push_hook(lua_State *L, const lconn *lc, int cb)
{
    if (!lc->receiving)
        return false;
    lua_pushlightuserdata(L, (void *)&receive_hooks_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    lua_rawgeti(L, -1, cb);
    lua_remove(L, -2);
    if (lua_isfunction(L, -1))
        return true;
    lua_pop(L, 1);
    return false;
}

static bool has_callback(const lconn *lc, int cb)
{
    if (lc->receiving && (cb == CB_CLOSE || cb == CB_ERROR))
        return true;
    unsigned server_cbs = lc->attached ? ws_lua_server_conn_hooks.callbacks(lc) : 0;
    return ((lc->own_cbs | server_cbs) & (1u << cb)) != 0;
}

/* Closed: off its server's clients, onto its loop's list. */
static void detach_from_server(lua_State *L, lconn *lc)
{
    if (lc->attached)
        ws_lua_server_conn_hooks.detach(L, lc, false);
}

/* fields[name] = the value on top (popped) for the connection at idx. */
static void set_field(lua_State *L, lconn *lc, int idx, const char *name)
{
    ws_lua_conn_fields(L, lc, idx);
    lua_insert(L, -2);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

/* Stack index of the traceback handler event_body pushes for the
 * callbacks of events other than messages; 0 elsewhere (ws_lua_loop_call
 * pushes one). */
#define EVENT_HANDLER 3
#define NO_HANDLER    0

static void call_with(lconn *lc, int nargs, int handler)
{
    if (handler)
        ws_lua_loop_call_with(ws_lua_conn_loop(lc), nargs, handler);
    else
        ws_lua_loop_call(ws_lua_conn_loop(lc), nargs);
}

/* Call callback cb(conn, <nargs values on the stack>) if it exists; pops
 * the values.  conn is at idx.  Open, close and error also reach the
 * receive hook, after the callback. */
static void call_callback(lua_State *L, lconn *lc, int idx, int cb, int nargs, int handler)
{
    int hook_args = 0;
    int first = lua_gettop(L) - nargs + 1;
    if ((cb == CB_OPEN || cb == CB_CLOSE || cb == CB_ERROR) && push_hook(L, lc, cb)) {
        lua_pushvalue(L, idx);
        for (int i = 0; i < nargs; i++)
            lua_pushvalue(L, first + i);
        for (int i = 0; i < nargs + 2; i++) /* hook, conn, copies go below the values */
            lua_insert(L, first);
        hook_args = nargs + 1;
    }
    if (!push_callback(L, lc, idx, cb)) {
        lua_pop(L, nargs);
    } else {
        lua_insert(L, -nargs - 1);
        lua_pushvalue(L, idx);
        lua_insert(L, -nargs - 1);
        call_with(lc, nargs + 1, handler);
    }
    if (hook_args)
        call_with(lc, hook_args, handler);
}

/* Before on_close / on_error: keep the peer's address readable once the
 * socket is gone. */
static void keep_peer(lua_State *L, lconn *lc, int idx, int cb)
{
    char addr[64];
    int port;
    if (!lc->opened || !has_callback(lc, cb))
        return;
    ws_conn_peer(lc->c, addr, sizeof addr, &port);
    if (port < 0)
        return;
    lua_pushstring(L, addr);
    set_field(L, lc, idx, "remote_address");
    lua_pushinteger(L, port);
    set_field(L, lc, idx, "remote_port");
}

/* A request kept only for the handshake callbacks waits in a registry
 * table with weak keys, not in the connection's fields: most connections
 * never get a fields table, and one made for the request would stay after
 * on_open (an empty table per connection).  Reading c.request moves it
 * into the fields for good. */
#define TEMP_REQUESTS "ws.core.temp_requests"

static void make_temp_requests(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, TEMP_REQUESTS);
    bool made = lua_istable(L, -1);
    lua_pop(L, 1);
    if (made)
        return;
    ws_newweakkeys(L);
    lua_setfield(L, LUA_REGISTRYINDEX, TEMP_REQUESTS);
}

/* temp_requests[connection at idx > 0] = value on top (popped). */
static void set_temp_request(lua_State *L, int idx)
{
    lua_getfield(L, LUA_REGISTRYINDEX, TEMP_REQUESTS);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

void ws_lua_conn_temp_request(lua_State *L, lconn *lc, int idx)
{
    set_temp_request(L, idx);
    lc->request_temp = true;
}

/* After on_open (or a close before it): the request goes unless read. */
static void drop_temp_request(lua_State *L, lconn *lc, int idx)
{
    if (!lc->request_temp)
        return;
    lc->request_temp = false;
    lua_pushnil(L);
    set_temp_request(L, idx);
}

static void push_head_fields(lua_State *L, const ws_http_head *h)
{
    ws_lua_push_headers(L, h);
}

/* A message, protected (making the payload string may raise):
 * (callback, conn), the event handed on through the loop.  The callback
 * runs in this call's protection (its error reaches the same traceback
 * handler), not a pcall of its own. */
static int message_body(lua_State *L)
{
    ws_lua_loop *ll = ws_lua_conn_loop(lua_touserdata(L, 2));
    const ws_event *ev = ws_lua_loop_event(ll);
    if (ev->len >= WS_LUA_LARGE_BLOCK)
        ws_lua_large_message(L, ll);
    if (!ev->block) {
        lua_pushlstring(L, (const char *)ev->data, ev->len);
    } else { /* received into a string block: made in place when it can be */
        int r = ws_lua_push_block(L, ev->data, ev->len, ev->block);
        if (r != 0)
            ws_session_take_block(ws_conn_session(((lconn *)lua_touserdata(L, 2))->c));
        if (r < 0)
            return luaL_error(L, "ws: a message's storage was reused before it became a string");
    }
    lua_pushboolean(L, ev->binary);
    lua_call(L, 3, 0);
    if (ev->len >= WS_LUA_LARGE_BLOCK)
        ws_lua_gc_pace(L, ev->len);
    return 0;
}

static const char message_body_key = 'm';

/* Push the message callback (the connection's own, its server's, else the
 * receive hook); false (nothing pushed) without one. */
static bool push_message_callback(lua_State *L, lconn *lc)
{
    if (lc->own_cbs & (1u << CB_MESSAGE)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lc->self_ref); /* anchored: it runs */
        get_fields(L, -1);
        lua_rawgeti(L, -1, CB_MESSAGE);
        lua_replace(L, -3);
        lua_pop(L, 1);
        return true;
    }
    return (lc->attached && ws_lua_server_conn_hooks.callback(L, lc, CB_MESSAGE)) ||
           push_hook(L, lc, CB_MESSAGE);
}

/* The hot path: one protected call of message_body, which calls the
 * callback.  Nothing is pushed (no string made) when no one listens. */
static void message_event(lconn *lc, const ws_event *ev)
{
    int handler;
    ws_lua_loop *ll = ws_lua_conn_loop(lc);
    lua_State *L = ws_lua_loop_event_state(ll, &handler);
    if (!L || lc->self_ref == LUA_NOREF)
        return;
    int top = 0;
    if (handler) {
        lua_pushvalue(L, handler + 1); /* message_body, kept by the turn */
    } else {
        /* inside a callback: a handler of its own */
        if (!lua_checkstack(L, WS_LUA_EVENT_STACK))
            return;
        top = lua_gettop(L);
        handler = top + 1;
        ws_lua_push_traceback(L);
        ws_pushcfunction_kept(L, message_body, &message_body_key);
    }
    if (push_message_callback(L, lc)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lc->self_ref);
        ws_lua_loop_set_event(ll, ev);
        ws_lua_loop_call_with(ll, 2, handler);
        /* the call popped its function and arguments */
        if (top)
            lua_settop(L, top);
    } else {
        lua_settop(L, top ? top : handler + 1);
    }
}

/* Runs protected (anything in it may raise): (ev, conn), the events other
 * than messages.  The connection userdata is the lconn itself. */
static int event_body(lua_State *L)
{
    const ws_event *ev = lua_touserdata(L, 1);
    lconn *lc = lua_touserdata(L, 2);
    int idx = 2;
    luaL_checkstack(L, 20, "ws: event");
    ws_lua_push_traceback(L); /* EVENT_HANDLER */
    switch (ev->type) {
    case WS_EV_REQUEST:
        if (lc->server_side)
            ws_lua_server_conn_hooks.upgrade(L, lc, idx, ev);
        break;
    case WS_EV_HTTP:
        if (lc->server_side)
            ws_lua_server_conn_hooks.http(L, lc, idx, ev);
        break;
    case WS_EV_OPEN:
        lc->opened = true;
        if (ev->head) {
            lua_pushinteger(L, ev->head->status);
            set_field(L, lc, idx, "status");
            push_head_fields(L, ev->head);
            set_field(L, lc, idx, "headers");
        }
        call_callback(L, lc, idx, CB_OPEN, 0, EVENT_HANDLER);
        drop_temp_request(L, lc, idx);
        break;
    case WS_EV_PING:
    case WS_EV_PONG:
        lua_pushlstring(L, (const char *)ev->data, ev->len);
        call_callback(L, lc, idx, ev->type == WS_EV_PING ? CB_PING : CB_PONG, 1, EVENT_HANDLER);
        break;
    case WS_EV_ERROR: {
        int why = 0; /* a redirect's failure replaces the 3xx message */
        if (!lc->server_side && lc->side.redirect && ev->head) {
            int r = ws_lua_redirect(L, lc, idx, ev);
            if (r == WS_LUA_REDIRECTED)
                break;
            if (r == WS_LUA_REDIRECT_FAILED)
                why = lua_gettop(L);
        }
        if (ev->head) { /* a client's failed handshake: keep the answer */
            lua_pushinteger(L, ev->code);
            set_field(L, lc, idx, "status");
            push_head_fields(L, ev->head);
            set_field(L, lc, idx, "headers");
            lua_pushlstring(L, (const char *)ev->body, ev->body_len);
            set_field(L, lc, idx, "body");
        }
        if (why)
            lua_pushvalue(L, why);
        else
            lua_pushlstring(L, (const char *)ev->data, ev->len);
        if (!lc->opened) {
            lua_pushliteral(L, "handshake failed: ");
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        lua_pushvalue(L, -1);
        set_field(L, lc, idx, "error");
        keep_peer(L, lc, idx, CB_ERROR);
        if (lc->opened || !lc->attached)
            call_callback(L, lc, idx, CB_ERROR, 1, EVENT_HANDLER);
        break;
    }
    case WS_EV_CLOSE:
        lc->closed = true;
        lc->close_code = (uint16_t)ev->code;
        lc->was_clean = ev->was_clean;
        if (ev->len) {
            lua_pushlstring(L, (const char *)ev->data, ev->len);
            set_field(L, lc, idx, "close_reason");
        }
        drop_temp_request(L, lc, idx);
        keep_peer(L, lc, idx, CB_CLOSE);
        if (lc->opened || !lc->attached) {
            lua_pushinteger(L, ev->code);
            lua_pushlstring(L, (const char *)ev->data, ev->len);
            lua_pushboolean(L, ev->was_clean);
            call_callback(L, lc, idx, CB_CLOSE, 3, EVENT_HANDLER);
        }
        if (lc->notify_close) { /* tasks wait in close() */
            lc->notify_close = false;
            lua_getfield(L, LUA_REGISTRYINDEX, WS_HOOK_PREFIX "close");
            if (lua_isfunction(L, -1)) {
                lua_pushvalue(L, idx);
                ws_lua_loop_call_with(ws_lua_conn_loop(lc), 1, EVENT_HANDLER);
            } else {
                lua_pop(L, 1);
            }
        }
        break;
    default: break;
    }
    return 0;
}

static const char event_body_key = 'e';

static void conn_event(ws_conn *c, const ws_event *ev, void *ud)
{
    lconn *lc = ud;
    if (c != lc->c)
        return; /* a connection left for a redirect: it ends silently */
    if (ev->type == WS_EV_MESSAGE) {
        message_event(lc, ev);
        return;
    }
    lua_State *L = ws_lua_loop_state(ws_lua_conn_loop(lc));
    if (!L || !lua_checkstack(L, 8))
        return;
    int top = lua_gettop(L);
    int handler = top + 1; /* below the call: no shuffling of the stack */
    ws_lua_push_traceback(L);
    ws_pushcfunction_kept(L, event_body, &event_body_key);
    lua_pushlightuserdata(L, (void *)ev);
    ws_session *s = ws_conn_session(c);
    if (push_self(L, lc) && !ws_lua_loop_call_with(ws_lua_conn_loop(lc), 2, handler) &&
        ws_session_state(s) == WS_CONNECTING) {
        /* on_upgrade's or on_request's answer could not be used: answer 500
         * rather than leave the client hanging. */
        static const char body[] = "Internal Server Error\n";
        char err[128];
        if (ev->type == WS_EV_REQUEST)
            ws_session_reject(s, 500, "Internal Server Error", NULL, 0);
        else if (ev->type == WS_EV_HTTP)
            ws_session_respond(s, 500, NULL, 0, (const uint8_t *)body, sizeof body - 1, err,
                               sizeof err);
        ws_conn_output_changed(c);
    }
    lua_settop(L, top);
}

static void conn_error(ws_conn *c, const char *msg, void *ud)
{
    lconn *lc = ud;
    if (c != lc->c)
        return;
    lua_State *L = ws_lua_loop_state(ws_lua_conn_loop(lc));
    if (!L || !lua_checkstack(L, 8))
        return;
    int top = lua_gettop(L);
    if (!push_self(L, lc))
        return;
    int idx = lua_gettop(L);
    lua_pushstring(L, msg);
    set_field(L, lc, idx, "error");
    keep_peer(L, lc, idx, CB_ERROR);
    if (lc->opened || !lc->attached) {
        lua_pushstring(L, msg);
        call_callback(L, lc, idx, CB_ERROR, 1, NO_HANDLER);
    }
    lua_settop(L, top);
}

static void conn_drain(ws_conn *c, void *ud)
{
    (void)c;
    lconn *lc = ud;
    if (!has_callback(lc, CB_DRAIN))
        return;
    lua_State *L = ws_lua_loop_state(ws_lua_conn_loop(lc));
    if (!L || !lua_checkstack(L, 8))
        return;
    int top = lua_gettop(L);
    if (push_self(L, lc))
        call_callback(L, lc, top + 1, CB_DRAIN, 0, NO_HANDLER);
    lua_settop(L, top);
}

static void conn_closed(ws_conn *c, void *ud)
{
    lconn *lc = ud;
    if (c != lc->c)
        return;
    lua_State *L = ws_lua_loop_state(ws_lua_conn_loop(lc));
    if (L)
        detach_from_server(L, lc);
    if (L && lc->self_ref != LUA_NOREF) {
        /* Closed: from now on the garbage collector may take it. */
        luaL_unref(L, LUA_REGISTRYINDEX, lc->self_ref);
        lc->self_ref = LUA_NOREF;
    }
}

const ws_conn_callbacks ws_lua_conn_callbacks = {conn_event, conn_error, conn_drain, conn_closed};

/* ---- the object --------------------------------------------------------- */

/* ---- where the connection is held ------------------------------------------ */

static void link_conn(lconn *lc, lconn **head)
{
    lc->prev = NULL;
    lc->next = *head;
    if (lc->next)
        lc->next->prev = lc;
    *head = lc;
}

static void unlink_conn(lconn *lc, lconn **head)
{
    if (lc->prev)
        lc->prev->next = lc->next;
    else if (*head == lc)
        *head = lc->next;
    if (lc->next)
        lc->next->prev = lc->prev;
    lc->next = lc->prev = NULL;
}

void ws_lua_conn_shutdown(lconn *lc)
{
    if (!lc->c || ws_conn_finished(lc->c))
        return;
    int state = ws_session_state(ws_conn_session(lc->c));
    if (state == WS_OPEN) {
        const char *why = lc->attached ? "server shutting down" : "going away";
        ws_conn_close(lc->c, 1001, (const uint8_t *)why, strlen(why));
    } else if (state == WS_CONNECTING) {
        ws_conn_abort(lc->c);
    }
}

bool ws_lua_conn_done(const lconn *lc)
{
    return !lc->c || ws_conn_finished(lc->c);
}

uint64_t ws_lua_conn_close_timeout(const lconn *lc)
{
    return lc->c ? ws_conn_close_timeout(lc->c) : 0;
}

/* The loop's list: one member stands for every connection on it. */
static ws_lua_conn_list *member_list(ws_lua_member *m)
{
    return (ws_lua_conn_list *)(void *)((char *)m - offsetof(ws_lua_conn_list, member));
}

static void list_shutdown(lua_State *L, ws_lua_member *m)
{
    (void)L;
    lconn *next;
    for (lconn *lc = member_list(m)->head; lc; lc = next) {
        next = lc->next;
        ws_lua_conn_shutdown(lc);
    }
}

static bool list_done(ws_lua_member *m)
{
    for (lconn *lc = member_list(m)->head; lc; lc = lc->next)
        if (!ws_lua_conn_done(lc))
            return false;
    return true;
}

/* Each release takes its connection off the list; the last one detaches
 * the member. */
static void list_release(lua_State *L, ws_lua_member *m)
{
    ws_lua_conn_list *cl = member_list(m);
    while (cl->head)
        ws_lua_conn_release(L, cl->head);
}

static uint64_t list_close_timeout(ws_lua_member *m)
{
    uint64_t longest = 0;
    for (lconn *lc = member_list(m)->head; lc; lc = lc->next) {
        uint64_t t = ws_lua_conn_close_timeout(lc);
        if (t > longest)
            longest = t;
    }
    return longest;
}

static size_t list_pending(ws_lua_member *m)
{
    size_t n = 0;
    for (lconn *lc = member_list(m)->head; lc; lc = lc->next)
        n += !ws_lua_conn_done(lc);
    return n;
}

static const ws_lua_member_ops list_ops = {list_shutdown, list_done, list_release,
                                           list_close_timeout, list_pending};

/* Onto the loop's list.  With loop_idx (the loop object) it may raise
 * "loop is closing"; without, the list's member joins a loop that has
 * members (the connection's server), and with none the connection stays
 * on no list (its loop has released everything). */
static void list_add(lua_State *L, lconn *lc, ws_lua_loop *ll, int loop_idx)
{
    ws_lua_conn_list *cl = ws_lua_loop_conns(ll);
    if (loop_idx)
        ws_lua_loop_check_open(L, ll);
    if (!cl->head) {
        if (loop_idx)
            ws_lua_loop_attach(L, ll, &cl->member, &list_ops, loop_idx);
        else if (!ws_lua_loop_join(ll, &cl->member, &list_ops))
            return;
    }
    link_conn(lc, &cl->head);
    lc->listed = true;
}

static void list_remove(lua_State *L, lconn *lc)
{
    if (!lc->listed)
        return;
    ws_lua_conn_list *cl = ws_lua_loop_conns(lc->on.ll);
    unlink_conn(lc, &cl->head);
    lc->listed = false;
    if (!cl->head)
        ws_lua_loop_detach(L, lc->on.ll, &cl->member);
}

/* Off its server, or off the loop's list, onto none. */
static void leave(lua_State *L, lconn *lc)
{
    if (lc->attached)
        ws_lua_server_conn_hooks.detach(L, lc, true);
    else
        list_remove(L, lc);
}

void ws_lua_conn_attach(lconn *lc, lserver *srv, lconn **head)
{
    lc->on.srv = srv;
    lc->attached = true;
    lc->server_side = true;
    link_conn(lc, head);
}

void ws_lua_conn_detach(lua_State *L, lconn *lc, lconn **head, bool release)
{
    ws_lua_loop *ll = ws_lua_conn_loop(lc);
    unlink_conn(lc, head);
    lc->attached = false;
    lc->on.ll = ll;
    if (!release)
        list_add(L, lc, ll, 0);
}

/* Free everything that points into the loop, without waiting and without
 * callbacks, and leave the server or list that holds it. */
void ws_lua_conn_release(lua_State *L, lconn *lc)
{
    const char *why = lc->attached ? "server shutting down" : "going away";
    leave(L, lc);
    if (lc->c) {
        if (!lc->closed) {
            lc->closed = true;
            lc->close_code = 1006;
            lc->was_clean = false;
        }
        ws_conn_goodbye(lc->c, 1001, why);
        ws_conn_free(lc->c);
        lc->c = NULL;
    }
    if (lc->self_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, lc->self_ref);
        lc->self_ref = LUA_NOREF;
    }
}

lconn *ws_lua_conn_push(lua_State *L, ws_lua_loop *ll, int loop_idx)
{
#if LUA_VERSION_NUM >= 504
    lconn *lc = lua_newuserdatauv(L, sizeof *lc, 0);
#else
    lconn *lc = lua_newuserdata(L, sizeof *lc);
#endif
    memset(lc, 0, sizeof *lc);
    lc->magic = WS_LUA_CONN_MAGIC;
    lc->self_ref = LUA_NOREF;
    lc->on.ll = ll;
    ws_lua_loop_ref(ll);
    luaL_getmetatable(L, CONN_MT);
    lua_setmetatable(L, -2);
    if (loop_idx)
        list_add(L, lc, ll, loop_idx);
    return lc;
}

/* ---- the request path (server side) ------------------------------------------- */

const char *ws_lua_conn_path(const lconn *lc)
{
    if (!lc->server_side || lc->no_path)
        return NULL;
    return lc->side.extras ? lc->side.extras->path : "/";
}

static ws_lua_conn_extras *make_extras(const char *path, size_t len)
{
    ws_lua_conn_extras *x = malloc(sizeof *x + len + 1);
    if (x) {
        x->topics = NULL;
        memcpy(x->path, path, len);
        x->path[len] = '\0';
    }
    return x;
}

bool ws_lua_conn_set_path(lconn *lc, const char *path, size_t len)
{
    if (lc->side.extras || (len == 1 && path[0] == '/'))
        return true; /* (set once, at the upgrade request) */
    lc->side.extras = make_extras(path, len);
    lc->no_path = !lc->side.extras;
    return !lc->no_path;
}

ws_lua_conn_extras *ws_lua_conn_extras_get(lconn *lc)
{
    if (!lc->side.extras) /* (a path lost for want of memory stays lost) */
        lc->side.extras = lc->no_path ? make_extras("", 0) : make_extras("/", 1);
    return lc->side.extras;
}

void ws_lua_conn_anchor(lua_State *L, lconn *lc, int idx)
{
    lua_pushvalue(L, idx);
    lc->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Argument 1 as a connection.  Every c:send() checks self (and the
 * __index that finds `send` first), so the common case is cheap: a full
 * userdata of exactly our size carrying our magic.  Lua code cannot write
 * a userdata's bytes, so only C code forging one on purpose could pass;
 * anything else gets luaL_checkudata, which also words the error. */
static lconn *to_conn_slow(lua_State *L)
{
    return luaL_checkudata(L, 1, CONN_MT);
}

static inline lconn *to_conn(lua_State *L)
{
    lconn *lc = lua_touserdata(L, 1);
    if (lc && ws_rawlen(L, 1) == sizeof *lc && lc->magic == WS_LUA_CONN_MAGIC)
        return lc;
    return to_conn_slow(L);
}

/* The connection, or NULL (with nil, "connection is closed" pushed) once
 * its loop has closed it. */
static inline lconn *check_conn(lua_State *L)
{
    lconn *lc = to_conn(L);
    if (!lc->c) {
        lua_pushnil(L);
        lua_pushliteral(L, "connection is closed");
        return NULL;
    }
    return lc;
}

/* opts[field] as a table of TLS options (its index, or 0 when absent);
 * raises naming the field when it is no table or holds an unknown key. */
static int tls_table(lua_State *L, int opts, const char *field)
{
    if (!opts)
        return 0;
    lua_getfield(L, opts, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1))
        ws_lua_opt_error(L, opts, "'%s' must be a table", field);
    int t = lua_gettop(L);
    ws_lua_check_keys(L, t, opts, "tls", lua_pushfstring(L, "%s.", field));
    lua_pop(L, 1);
    return t;
}

/* The client context for the TLS options opts[field] ("tls" for the
 * origin, "proxy_tls" for an https:// proxy; shared with earlier connects
 * with the same options). */
static ws_tls_ctx *client_tls(lua_State *L, int opts, const char *field, char *err, size_t err_len)
{
    int top = lua_gettop(L);
    int t = tls_table(L, opts, field);
    ws_tls_options to;
    ws_tls_options_init(&to);
    to.verify = ws_lua_opt_bool(L, t, "verify", true);
    to.cafile = ws_lua_opt_text(L, t, "cafile", NULL);
    to.capath = ws_lua_opt_text(L, t, "capath", NULL);
    to.cert = ws_lua_opt_text(L, t, "cert", NULL);
    to.key = ws_lua_opt_text(L, t, "key", NULL);
    to.ciphers = ws_lua_opt_text(L, t, "ciphers", NULL);
    to.alpn = ws_lua_opt_text(L, t, "alpn", NULL);
    ws_tls_ctx *ctx = ws_lua_client_tls_ctx(L, &to, err, err_len);
    lua_settop(L, top);
    if (!ctx && strcmp(field, "tls") != 0 && strncmp(err, "TLS: ", 5) == 0) {
        /* say which of the two contexts failed: "proxy_tls: cannot load ..." */
        char why[512];
        snprintf(why, sizeof why, "%s: %s", field, err + 5);
        snprintf(err, err_len, "%s", why);
    }
    return ctx;
}

ws_conn *ws_lua_client_dial(lua_State *L, lconn *lc, int url, int opts, int ropts,
                            const ws_session_config *scfg, const ws_conn_config *ccfg, char *err,
                            size_t err_len)
{
    int top = lua_gettop(L);
    ws_url u;
    ws_lua_route route;
    memset(&route, 0, sizeof route);
    /* ws+unix:// URLs are requested as ws://localhost/... */
    if (!ws_lua_unix_url(L, lua_tostring(L, url), &route))
        lua_pushvalue(L, url);
    int req_url = lua_gettop(L);
    if (ws_url_parse(lua_tostring(L, req_url), &u, err, err_len) != 0)
        luaL_argerror(L, 1, lua_pushfstring(L, "invalid URL: %s", err));
    ws_lua_read_route(L, opts, &u, &route);
    /* The request (URL, origin, protocols, headers) is read the way
     * ws.core.client_handshake reads it. */
    lua_pushvalue(L, req_url);
    lua_setfield(L, ropts, "url");
    const ws_client_request *req = ws_lua_client_request(L, 0, ropts);
    ws_tls_ctx *tls = NULL, *proxy_tls = NULL;
    if (u.secure && !(tls = client_tls(L, opts, "tls", err, err_len))) {
        lua_settop(L, top);
        return NULL;
    }
    if (!route.proxy_secure) {
        int mark = lua_gettop(L);
        (void)tls_table(L, opts, "proxy_tls"); /* unused, but still checked */
        lua_settop(L, mark);
    } else if (!(proxy_tls = client_tls(L, opts, "proxy_tls", err, err_len))) {
        if (tls)
            ws_tls_ctx_unref(tls);
        lua_settop(L, top);
        return NULL;
    }
    ws_session *s = ws_session_new(scfg);
    int rc = s ? ws_session_start_client(s, req, req->protocols, req->num_protocols,
                                         req->extensions, err, err_len)
               : WS_E_NOMEM;
    if (rc != WS_OK) {
        ws_session_free(s);
        if (tls)
            ws_tls_ctx_unref(tls);
        if (proxy_tls)
            ws_tls_ctx_unref(proxy_tls);
        ws_lua_raise(L, "ws.connect", rc, err, 0);
    }
    ws_conn *c = ws_conn_connect(ws_lua_loop_get(ws_lua_conn_loop(lc)), ccfg,
                                 &ws_lua_conn_callbacks, lc, s, u.host, u.port, tls, err, err_len);
    if (tls)
        ws_tls_ctx_unref(tls); /* the connection holds its own reference */
    if (!c) {
        ws_session_free(s);
    } else if (ws_lua_apply_route(c, &route, proxy_tls) != 0) {
        ws_conn_free(c); /* and its session */
        c = NULL;
        snprintf(err, err_len, "out of memory");
    }
    if (proxy_tls)
        ws_tls_ctx_unref(proxy_tls); /* the connection holds its own reference */
    lua_settop(L, top);
    return c;
}

/* ws.core.connect(url, opts, loop) */
static int l_connect(lua_State *L)
{
    luaL_checkstring(L, 1);
    int opts = ws_lua_opts_table(L, 2);
    ws_lua_loop *ll = ws_lua_check_loop(L, 3);
    lua_settop(L, 3);
    ws_lua_check_keys(L, opts, 2, "connect", "");
    char err[256];

    /* Everything that may raise comes before anything is allocated. */
    ws_session_config scfg;
    ws_session_config_init(&scfg, WS_CLIENT);
    ws_lua_read_limits(L, opts, &scfg);
    scfg.inflate_step = WS_LUA_INFLATE_STEP;
    ws_lua_opt_compress(L, opts, false, false, &scfg.compress);
    ws_conn_config ccfg;
    ws_conn_config_init(&ccfg);
    ws_lua_read_timeouts(L, opts, &ccfg, false);
    int redirects = ws_lua_opt_redirects(L, opts);
    for (int i = CB_OPEN; opts && i <= CB_PONG; i++) {
        lua_getfield(L, opts, ws_lua_callback_names[i]);
        if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
            return ws_lua_opt_error(L, opts, "'%s' must be a function", ws_lua_callback_names[i]);
        lua_pop(L, 1);
    }
    /* A copy of the options the request is read from (its url is set). */
    lua_newtable(L);
    int ropts = lua_gettop(L);
    if (opts) {
        lua_pushnil(L);
        while (lua_next(L, opts)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, ropts);
        }
    }
    lconn *lc = ws_lua_conn_push(L, ll, 3);
    int idx = lua_gettop(L);
    ws_lua_conn_fields(L, lc, idx);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "url");
    for (int i = CB_OPEN; opts && i <= CB_PONG; i++) {
        lua_getfield(L, opts, ws_lua_callback_names[i]);
        if (lua_isfunction(L, -1))
            lc->own_cbs |= (uint16_t)(1u << i);
        lua_rawseti(L, -2, i);
    }
    lua_pop(L, 1);

    lc->c = ws_lua_client_dial(L, lc, 1, opts, ropts, &scfg, &ccfg, err, sizeof err);
    if (!lc->c)
        return luaL_error(L, "ws.connect: %s", err);
    if (redirects && ws_lua_redirect_init(L, lc, idx, ropts, &scfg, &ccfg, redirects) != 0)
        return ws_lua_nomem(L, "ws.connect");
    ws_lua_conn_anchor(L, lc, idx);
    lua_settop(L, idx);
    return 1;
}

static int send_result(lua_State *L, int r)
{
    if (r == WS_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (r == WS_E_ARG)
        return luaL_argerror(L, 2, "invalid UTF-8 in a text message; send it as binary");
    lua_pushnil(L);
    lua_pushstring(L, ws_strerror(r));
    return 2;
}

/* c:send's kind (argument 3): "binary" and "text" are told apart by their
 * bytes here, without a call; anything else goes to ws_lua_check_kind
 * (nil, and the errors). */
static inline bool send_kind(lua_State *L)
{
    if (lua_type(L, 3) == LUA_TSTRING) {
        size_t n;
        const char *k = lua_tolstring(L, 3, &n);
        if (n == 6 && k[0] == 'b' && k[1] == 'i' && k[2] == 'n' && k[3] == 'a' && k[4] == 'r' &&
            k[5] == 'y')
            return true;
        if (n == 4 && k[0] == 't' && k[1] == 'e' && k[2] == 'x' && k[3] == 't')
            return false;
    }
    return ws_lua_check_kind(L, 3);
}

/***
 * Connections of module ws, implemented in C.
 * @module ws
 */

/***
 * @type Connection
 */

/***
 * Send a message.
 * @function Connection:send
 * @tparam string data the message
 * @tparam[opt="text"] string kind `"text"` or `"binary"`
 * @tparam[opt] table opts `{compress = bool}`: with permessage-deflate agreed, `false` sends
 *  this message uncompressed and `true` compresses it even under the `threshold`
 * @return `true`, or `nil, err` (`"connection is not open"`, `"send buffer full"`)
 * @raise when a text message is not UTF-8, or `kind` is wrong
 * @usage -- a server's message of 16 KiB or more, sent while nothing is queued, is written
 * -- from `data` itself; what the socket does not take (when over half of it, or 256 KiB or
 * -- more and over an eighth) stays queued by reference to `data`, kept alive until written
 * c:send(big, "binary")
 */
/* A large message: what the socket does not take now may be written later
 * from the string itself (anchored meanwhile) instead of a copy. */
static int send_lent(lua_State *L, lconn *lc, bool binary, const char *p, size_t n)
{
    ws_lua_lent *lt = ws_lua_loop_lent(ws_lua_conn_loop(lc));
    ws_lend lend;
    if (!ws_lua_lent_anchor(L, lt, 2, &lend))
        return ws_conn_send_ex(lc->c, binary, (const uint8_t *)p, n, WS_SEND_AUTO);
    int r = ws_conn_send_lent(lc->c, binary, (const uint8_t *)p, n, &lend);
    ws_lua_lent_settle(L, lt, &lend);
    return r;
}

static int l_send(lua_State *L)
{
    lconn *lc = check_conn(L);
    if (!lc)
        return 2;
    size_t n;
    const char *p = lua_tolstring(L, 2, &n);
    if (!p)
        p = luaL_checklstring(L, 2, &n); /* raises, naming the argument */
    bool binary = send_kind(L);
    /* Most calls pass no options: no look at argument 4 then. */
    int compress = lua_gettop(L) >= 4 ? ws_lua_send_compress(L, 4) : WS_SEND_AUTO;
    int r = n >= WS_CONN_LEND_MIN && compress == WS_SEND_AUTO
                ? send_lent(L, lc, binary, p, n)
                : ws_conn_send_ex(lc->c, binary, (const uint8_t *)p, n, compress);
    if (r != WS_OK)
        return send_result(L, r);
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * Send one part of a message streamed in parts; `fin` ends the message.
 * @function Connection:send_fragment
 * @tparam string data this part
 * @tparam bool fin true on the last part
 * @tparam[opt="text"] string kind `"text"` or `"binary"` (taken from the first part)
 * @return `true`, or `nil, err`
 */
static int l_send_fragment(lua_State *L)
{
    lconn *lc = check_conn(L);
    if (!lc)
        return 2;
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    bool binary = ws_lua_check_kind(L, 4);
    return send_result(
        L, ws_conn_send_fragment(lc->c, binary, (const uint8_t *)p, n, lua_toboolean(L, 3) != 0));
}

/* c:ping and c:pong: a control frame of opcode with an optional payload. */
static int send_control(lua_State *L, int opcode)
{
    lconn *lc = check_conn(L);
    if (!lc)
        return 2;
    size_t n;
    const char *p = luaL_optlstring(L, 2, "", &n);
    bool ping = opcode == WS_OP_PING;
    if (n > 125)
        return luaL_argerror(L, 2,
                             ping ? "ping payload over 125 bytes" : "pong payload over 125 bytes");
    int (*send)(ws_conn *, const uint8_t *, size_t) = ping ? ws_conn_ping : ws_conn_pong;
    return send_result(L, send(lc->c, (const uint8_t *)p, n));
}

/***
 * Send a ping.
 * @function Connection:ping
 * @tparam[opt=""] string payload at most 125 bytes
 * @return `true`, or `nil, err`
 * @raise when the payload is over 125 bytes
 */
static int l_ping(lua_State *L)
{
    return send_control(L, WS_OP_PING);
}

/***
 * Send an unsolicited pong (a one-way heartbeat; pings are answered
 * automatically).
 * @function Connection:pong
 * @tparam[opt=""] string payload at most 125 bytes
 * @treturn bool true
 * @return `nil, err` when the connection is not open
 * @raise when the payload is over 125 bytes
 */
static int l_pong(lua_State *L)
{
    return send_control(L, WS_OP_PONG);
}

/***
 * Close (the close frame goes after the queued output). Outside callbacks it
 * returns once the handshake is done (the peer answered, or `close_timeout`
 * passed and `c.was_clean` is false); inside a task it yields meanwhile;
 * inside a callback it returns at once and the handshake completes later
 * (`on_close`). Closing while CONNECTING fails the connection (1006).
 * @function Connection:close
 * @tparam[opt=1000] integer code 1000-1003, 1007-1014 or 3000-4999
 * @tparam[opt] string reason at most 123 bytes of UTF-8
 * @return `true`, or `nil, err` when already closing
 * @raise on an invalid code or reason
 */
static int l_close(lua_State *L)
{
    lconn *lc = check_conn(L);
    if (!lc)
        return 2;
    lua_Number code = luaL_optnumber(L, 2, WS_CLOSE_NORMAL);
    size_t n;
    const char *reason = luaL_optlstring(L, 3, "", &n);
    if (code != (int)code || !ws_close_code_valid((int)code))
        return luaL_argerror(L, 2, "invalid close code (1000-1003, 1007-1014, 3000-4999)");
    if (n > 123)
        return luaL_argerror(L, 3, "close reason over 123 bytes");
    int r = ws_conn_close(lc->c, (int)code, (const uint8_t *)reason, n);
    if (r == WS_E_ARG)
        return luaL_argerror(L, 3, "close reason is not valid UTF-8");
    return send_result(L, r);
}

/***
 * Bytes queued but not yet written to the socket.
 * @function Connection:buffered_amount
 * @treturn integer bytes
 */
static int l_buffered_amount(lua_State *L)
{
    lconn *lc = check_conn(L);
    if (!lc) {
        lua_pushinteger(L, 0);
        return 1;
    }
    ws_pushsize(L, ws_conn_buffered(lc->c));
    return 1;
}

/* Set or clear a hold bit: true, or nil, "connection is closed" once the
 * connection's loop closed it. */
static int hold(lua_State *L, unsigned bit, bool on)
{
    lconn *lc = check_conn(L);
    if (!lc)
        return 2;
    ws_conn_hold(lc->c, bit, on); /* no effect once closed */
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * Stop reading the socket and delivering events: no `on_message` (not even
 * for data already read) until `Connection:resume`, and TCP pushes back on
 * the sender. `c:close()` lifts it; a connection that fails delivers what
 * was held, then `on_close`. See also the `paused` field.
 * @function Connection:pause
 * @treturn bool true
 */
static int l_pause(lua_State *L)
{
    return hold(L, WS_HOLD_USER, true);
}

/***
 * Deliver what `Connection:pause` held and read the socket again.
 * @function Connection:resume
 * @treturn bool true
 */
static int l_resume(lua_State *L)
{
    return hold(L, WS_HOLD_USER, false);
}

/* The straight-line receive queue's own hold, apart from pause/resume:
 * ws.core.hold_queue(c, on), used by ws/init.lua. */
static int l_hold_queue(lua_State *L)
{
    return hold(L, WS_HOLD_QUEUE, lua_toboolean(L, 2) != 0);
}

/* ---- fields: one table of the names the connection computes or guards -- */

/* Push the value of a computed field of lc (userdata at index 1). */
typedef void (*field_getter)(lua_State *L, lconn *lc, const char *key);

static void push_opt_string(lua_State *L, const char *p)
{
    if (p)
        lua_pushstring(L, p);
    else
        lua_pushnil(L);
}

static void get_ready_state(lua_State *L, lconn *lc, const char *key)
{
    (void)key;
    /* Released with its loop: closed. */
    push_opt_string(L, lc->c ? ws_state_name(ws_session_state(ws_conn_session(lc->c))) : "CLOSED");
}

static void get_protocol(lua_State *L, lconn *lc, const char *key)
{
    if (!lc->c) {
        lua_pushnil(L);
        return;
    }
    ws_session *s = ws_conn_session(lc->c);
    const char *p = key[0] == 'p' ? ws_session_protocol(s) : ws_session_extensions(s);
    push_opt_string(L, p && *p ? p : NULL); /* nil when none, as everywhere in lua-ws */
}

static void get_server_name(lua_State *L, lconn *lc, const char *key)
{
    (void)key;
    push_opt_string(L, lc->c ? ws_conn_server_name(lc->c) : NULL);
}

/* The live peer while connected; what was kept once the socket is gone. */
static void get_remote(lua_State *L, lconn *lc, const char *key)
{
    char addr[64];
    int port = -1;
    if (lc->c)
        ws_conn_peer(lc->c, addr, sizeof addr, &port);
    if (!lc->c || !lc->opened || port < 0)
        get_field(L, lc, 1, key);
    else if (strcmp(key, "remote_address") == 0)
        lua_pushstring(L, addr);
    else
        lua_pushinteger(L, port);
}

static void get_server(lua_State *L, lconn *lc, const char *key)
{
    (void)key;
    if (lc->attached)
        ws_lua_server_conn_hooks.push(L, lc);
    else
        lua_pushnil(L);
}

static void get_close_code(lua_State *L, lconn *lc, const char *key)
{
    (void)key;
    if (lc->closed)
        lua_pushinteger(L, lc->close_code);
    else
        lua_pushnil(L);
}

static void get_was_clean(lua_State *L, lconn *lc, const char *key)
{
    (void)key;
    if (lc->closed)
        lua_pushboolean(L, lc->was_clean);
    else
        lua_pushnil(L);
}

static void get_close_reason(lua_State *L, lconn *lc, const char *key)
{
    get_field(L, lc, 1, key);
    if (lc->closed && lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "");
    }
}

static void get_path(lua_State *L, lconn *lc, const char *key)
{
    (void)key;
    push_opt_string(L, ws_lua_conn_path(lc));
}

/* Reading it keeps it past on_open (see drop_temp_request). */
static void get_request(lua_State *L, lconn *lc, const char *key)
{
    if (lc->request_temp) {
        lc->request_temp = false;
        lua_getfield(L, LUA_REGISTRYINDEX, TEMP_REQUESTS);
        lua_pushvalue(L, 1);
        lua_rawget(L, -2);
        lua_pushvalue(L, 1);
        lua_pushnil(L);
        lua_rawset(L, -4);
        lua_remove(L, -2);
        lua_pushvalue(L, -1);
        set_field(L, lc, 1, key);
        return;
    }
    get_field(L, lc, 1, key);
}

static void get_paused(lua_State *L, lconn *lc, const char *key)
{
    (void)key;
    lua_pushboolean(L, lc->c && (ws_conn_holds(lc->c) & WS_HOLD_USER));
}

/* Stored in the fields table by the connection itself. */
static void get_stored(lua_State *L, lconn *lc, const char *key)
{
    get_field(L, lc, 1, key);
}

/* Every name here is read-only for Lua code; other names are free fields
 * kept in the fields table. */
static const struct conn_field {
    const char *name;
    field_getter get;
    bool read_only;
} conn_fields[] = {
    {"ready_state", get_ready_state, true}, {"protocol", get_protocol, true},
    {"extensions", get_protocol, true},     {"url", get_stored, true},
    {"server", get_server, true},           {"server_name", get_server_name, true},
    {"request", get_request, true},         {"path", get_path, true},
    {"close_code", get_close_code, true},   {"close_reason", get_close_reason, true},
    {"was_clean", get_was_clean, true},     {"remote_address", get_remote, true},
    {"remote_port", get_remote, true},      {"paused", get_paused, true},
};

/* The entry for the key at index 2 (looked up in the name -> entry table
 * at upvalue up), or NULL. */
static const struct conn_field *find_field(lua_State *L, int up)
{
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(up));
    const struct conn_field *f = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return f;
}

/* Methods first (upvalue 2), then callbacks, the field table (upvalue 3),
 * then the fields table. */
/***
 * Fields of a connection. Any other field can be set and read
 * (`c.user = "bob"`); the `on_*` callbacks can be set as fields.
 * @table fields
 * @tfield string ready_state `"CONNECTING"`, `"OPEN"`, `"CLOSING"` or `"CLOSED"`
 * @tfield string protocol the negotiated subprotocol, or nil
 * @tfield string extensions the negotiated `Sec-WebSocket-Extensions`, or nil
 * @tfield string url client: the URL
 * @tfield table headers client: the response headers
 * @tfield integer status client: the response status
 * @tfield string body client: the body of a failed handshake's answer
 * @tfield string remote_address the peer's address
 * @tfield integer remote_port the peer's port
 * @tfield string path server side: the request path, without the query
 * @tfield string server_name server side: the TLS SNI name
 * @tfield table request server side: the `upgrade_request`; kept only if read while
 *  `on_upgrade`/`on_open` runs, or with `keep_request = true`
 * @tfield Server server server side: the server that accepted it
 * @tfield integer close_code how it ended: the close code
 * @tfield string close_reason how it ended: the close reason
 * @tfield bool was_clean how it ended: whether the close handshake completed
 * @tfield string error the error that failed it, or nil
 * @tfield bool paused `Connection:pause` is in effect
 */
static int l_index(lua_State *L)
{
    lconn *lc = to_conn(L);
    lua_pushvalue(L, 2);
#if LUA_VERSION_NUM >= 503
    if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) /* a method: c:send */
        return 1;
#else
    lua_rawget(L, lua_upvalueindex(2));
    if (!lua_isnil(L, -1))
        return 1;
#endif
    lua_settop(L, 2);
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    int cb = ws_lua_callback_index(key);
    if (cb) {
        if (lc->own_cbs & (1u << cb)) {
            get_fields(L, 1);
            lua_rawgeti(L, -1, cb);
        } else {
            lua_pushnil(L);
        }
        return 1;
    }
    const struct conn_field *f = key ? find_field(L, 3) : NULL;
    if (f) {
        f->get(L, lc, key);
        return 1;
    }
    if (lc->has_fields) {
        get_fields(L, 1);
        lua_pushvalue(L, 2);
        lua_rawget(L, -2);
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

static int l_newindex(lua_State *L)
{
    lconn *lc = to_conn(L);
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    const struct conn_field *f = key ? find_field(L, 2) : NULL;
    if (f && f->read_only)
        return luaL_error(L, "connection field '%s' is read-only", key);
    int cb = ws_lua_callback_index(key);
    if (cb > CB_PONG)
        return luaL_error(L, "connection field '%s' is read-only", key);
    if (key && strncmp(key, "on_", 3) == 0 && !lua_isnil(L, 3) && !lua_isfunction(L, 3))
        return luaL_error(L, "connection field '%s' must be a function", key);
    ws_lua_conn_fields(L, lc, 1);
    if (cb) {
        lua_pushvalue(L, 3);
        lua_rawseti(L, -2, cb);
        if (lua_isnil(L, 3))
            lc->own_cbs &= (uint16_t) ~(1u << cb);
        else
            lc->own_cbs |= (uint16_t)(1u << cb);
        return 0;
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, -3);
    return 0;
}

static int l_gc(lua_State *L)
{
    lconn *lc = luaL_checkudata(L, 1, CONN_MT);
    /* Collected while anchored (not finished): the state is closing; its
     * loop closes everything on it first. */
    if (lc->c && lc->self_ref != LUA_NOREF)
        ws_lua_loop_close_quietly(L, ws_lua_conn_loop(lc));
    leave(L, lc); /* (still with a server only if released first: never seen) */
    if (lc->c) {
        ws_conn_free(lc->c);
        lc->c = NULL;
    }
    if (lc->server_side) {
        if (lc->side.extras) /* its topics went as it left its server */
            free(lc->side.extras->topics);
        free(lc->side.extras);
        lc->side.extras = NULL;
    } else {
        ws_lua_redirect_free(lc);
    }
    if (lc->on.ll) {
        ws_lua_loop_unref(lc->on.ll);
        lc->on.ll = NULL;
    }
    return 0;
}

/* __close (Lua 5.4 to-be-closed variables): start a normal close.  The
 * one in use when ws.core is loaded without the ws module (which replaces
 * it with a close that also waits; spec/core_alone_spec.lua covers this
 * one). */
static int l_close_meta(lua_State *L)
{
    lconn *lc = luaL_checkudata(L, 1, CONN_MT);
    if (lc->c && ws_session_state(ws_conn_session(lc->c)) <= WS_OPEN)
        ws_conn_close(lc->c, WS_CLOSE_NORMAL, NULL, 0);
    return 0;
}

static int l_tostring(lua_State *L)
{
    lconn *lc = luaL_checkudata(L, 1, CONN_MT);
    lua_pushfstring(L, "ws.conn (%p)", (void *)lc);
    return 1;
}

/* ---- for the Lua layer (not public) ---------------------------------------- */

/* set_hook(name, fn): "close" is called with the connection after the
 * close event of a connection marked by notify_close; "upgrade" runs
 * on_upgrade (lua_server.c). */
static int l_set_hook(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!lua_isnil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_pushfstring(L, WS_HOOK_PREFIX "%s", name);
    lua_pushvalue(L, 2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return 0;
}

/* ws.core.set_receive_hooks{on_open=, on_message=, on_close=, on_error=}:
 * what c:receive() needs to hear, for every connection that receives. */
static int l_set_receive_hooks(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushlightuserdata(L, (void *)&receive_hooks_key);
    lua_newtable(L);
    static const int cbs[] = {CB_OPEN, CB_MESSAGE, CB_CLOSE, CB_ERROR};
    for (size_t i = 0; i < sizeof cbs / sizeof cbs[0]; i++) {
        lua_getfield(L, 1, ws_lua_callback_names[cbs[i]]);
        lua_rawseti(L, -2, cbs[i]);
    }
    lua_rawset(L, LUA_REGISTRYINDEX);
    return 0;
}

static int l_notify_close(lua_State *L)
{
    lconn *lc = luaL_checkudata(L, 1, CONN_MT);
    lc->notify_close = true;
    return 0;
}

/* The loop object the connection runs on; nil once its transport is done
 * or its loop closed. */
static int l_conn_loop(lua_State *L)
{
    lconn *lc = luaL_checkudata(L, 1, CONN_MT);
    if (!lc->c || ws_conn_finished(lc->c) || !ws_lua_loop_push(L, ws_lua_conn_loop(lc)))
        lua_pushnil(L);
    return 1;
}

/* ws.core.conn_receiving(c): from now on the receive hooks hear c. */
static int l_conn_receiving(lua_State *L)
{
    lconn *lc = luaL_checkudata(L, 1, CONN_MT);
    lc->receiving = true;
    return 0;
}

static const luaL_Reg conn_methods[] = {{"send", l_send},   {"send_fragment", l_send_fragment},
                                        {"ping", l_ping},   {"pong", l_pong},
                                        {"close", l_close}, {"buffered_amount", l_buffered_amount},
                                        {"pause", l_pause}, {"resume", l_resume},
                                        {NULL, NULL}};

static const luaL_Reg conn_meta[] = {
    {"__gc", l_gc}, {"__close", l_close_meta}, {"__tostring", l_tostring}, {NULL, NULL}};

void ws_lua_open_conn(lua_State *L)
{
    ws_lua_loop_turn_function(message_body, &message_body_key);
    make_fields_registry(L);
    make_temp_requests(L);
    if (luaL_newmetatable(L, CONN_MT)) {
        ws_setfuncs(L, conn_meta);
        lua_newtable(L);
        for (const luaL_Reg *r = conn_methods; r->name; r++) {
            lua_pushvalue(L, -2);
            lua_pushcclosure(L, r->func, 1);
            lua_setfield(L, -2, r->name);
        }
        /* name -> entry of conn_fields, shared by __index and __newindex */
        lua_createtable(L, 0, (int)(sizeof conn_fields / sizeof conn_fields[0]));
        for (size_t i = 0; i < sizeof conn_fields / sizeof conn_fields[0]; i++) {
            lua_pushlightuserdata(L, (void *)&conn_fields[i]);
            lua_setfield(L, -2, conn_fields[i].name);
        }
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -3);
        lua_pushcclosure(L, l_index, 3);
        lua_setfield(L, -4, "__index");
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -2);
        lua_pushcclosure(L, l_newindex, 2);
        lua_setfield(L, -4, "__newindex");
        lua_pop(L, 1);
        lua_setfield(L, -2, "methods");
    }
    /* Lua code adds methods (receive) through ws.core.conn_methods and
     * metamethods (__close) through ws.core.conn_meta. */
    lua_getfield(L, -1, "methods");
    lua_setfield(L, -3, "conn_methods");
    /* The C close, for the Lua close that wraps it (which replaces the
     * method; a module loaded again must not wrap its own wrapper). */
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_close, 1);
    lua_setfield(L, -3, "conn_close");
    lua_setfield(L, -2, "conn_meta");
    static const luaL_Reg layer[] = {{"set_hook", l_set_hook},
                                     {"notify_close", l_notify_close},
                                     {"conn_loop", l_conn_loop},
                                     {NULL, NULL}};
    ws_setfuncs(L, layer);
    lua_pushcfunction(L, l_connect);
    lua_setfield(L, -2, "connect");
    luaL_getmetatable(L, CONN_MT);
    lua_pushcclosure(L, l_hold_queue, 1);
    lua_setfield(L, -2, "hold_queue");
    lua_pushcfunction(L, l_set_receive_hooks);
    lua_setfield(L, -2, "set_receive_hooks");
    lua_pushcfunction(L, l_conn_receiving);
    lua_setfield(L, -2, "conn_receiving");
}
