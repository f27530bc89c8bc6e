/* ws.core.listen: a listening socket whose accepted connections share the
 * server's callbacks and settings; on_upgrade / on_request handling;
 * broadcast framing a message once for every client. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lua_backplane.h"
#include "lua_conn.h"
#include "lua_core.h"
#include "lua_opts.h"
#include "lua_optkeys.h"
#include "lua_request.h"
#include "lua_topic.h"
#include "io/net.h"
#include "io/tls.h"
#include "core/utf8.h"

#define SERVER_MT        "ws.core.server"
#define ACCEPTS_PER_TURN 128

/* Out of file descriptors: the listener is not watched for this long
 * (doubling up to the maximum while the shortage lasts), so a full backlog
 * does not wake the loop over and over. */
#define ACCEPT_BACKOFF_MIN (50 * WS_NSEC_PER_MSEC)
#define ACCEPT_BACKOFF_MAX (1000 * WS_NSEC_PER_MSEC)

struct lserver {
    ws_lua_loop *ll; /* first: lua_conn.h, ws_lua_conn_loop */
    ws_lua_member member;
    ws_io io;
    ws_timer backoff;    /* runs while accepting is suspended */
    uint64_t backoff_ns; /* the current pause; 0 while accepting works */
    int fd;
    int port;
    int self_ref; /* anchor while listening */
    int msg_ref;  /* on_message while anchored: one registry lookup per message */
    ws_tls_ctx *tls;
    ws_session_settings *sst; /* what its connections share */
    ws_conn_settings *cst;
    lconn *clients; /* every connection not yet closed */
    size_t nclients;
    unsigned cbs;      /* bit i: callback i is set */
    bool keep_request; /* keep every connection's request, not only when read */
    char *unix_path;   /* a Unix socket server: its file, removed at close */
    unsigned long unix_dev, unix_ino;
    bool released;         /* its loop closed it */
    ws_topics *topics;     /* made at the first subscribe */
    lbackplane *backplane; /* srv:attach(bp), or NULL */
};

/* lua_conn.h reads a connection's loop through its server's first field. */
typedef char lserver_loop_first[offsetof(lserver, ll) == 0 ? 1 : -1];

/* The server stays anchored while it listens or has connections, whose
 * callbacks it holds. */
static void release_anchor(lua_State *L, lserver *srv)
{
    if (srv->fd < 0 && srv->nclients == 0 && srv->self_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, srv->self_ref);
        srv->self_ref = LUA_NOREF;
        luaL_unref(L, LUA_REGISTRYINDEX, srv->msg_ref);
        srv->msg_ref = LUA_NOREF;
    }
}

/* msg_ref = the function at idx (nil: none), while the server is anchored. */
static void set_message_ref(lua_State *L, lserver *srv, int idx)
{
    luaL_unref(L, LUA_REGISTRYINDEX, srv->msg_ref);
    srv->msg_ref = LUA_NOREF;
    if (srv->self_ref != LUA_NOREF && lua_isfunction(L, idx)) {
        lua_pushvalue(L, idx);
        srv->msg_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
}

/* The detach hook (lc attached to this server). */
static void detach(lua_State *L, lconn *lc, bool release)
{
    lserver *srv = lc->on.srv;
    ws_lua_conn_extras *x = lc->side.extras;
    if (x && x->topics) { /* a connection leaves its topics as it leaves the server */
        if (srv->topics)
            ws_topics_leave_all(srv->topics, x->topics);
        free(x->topics);
        x->topics = NULL;
    }
    ws_lua_conn_detach(L, lc, &srv->clients, release);
    srv->nclients--;
    release_anchor(L, srv);
}

static void push_server(lua_State *L, lconn *lc)
{
    lserver *srv = ws_lua_conn_server(lc);
    if (srv && srv->self_ref != LUA_NOREF)
        lua_rawgeti(L, LUA_REGISTRYINDEX, srv->self_ref);
    else
        lua_pushnil(L);
}

static unsigned server_callbacks(const lconn *lc)
{
    lserver *srv = ws_lua_conn_server(lc);
    return srv ? srv->cbs : 0;
}

static bool server_callback(lua_State *L, lconn *lc, int cb)
{
    lserver *srv = ws_lua_conn_server(lc);
    if (!srv || !(srv->cbs & (1u << cb)) || srv->self_ref == LUA_NOREF)
        return false;
    if (cb == CB_MESSAGE && srv->msg_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, srv->msg_ref);
        return true;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, srv->self_ref);
    ws_getuservalue(L, -1);
    lua_rawgeti(L, -1, cb);
    lua_replace(L, -3);
    lua_pop(L, 1);
    return true;
}

/* The request as a Lua table (also kept as conn.request): the common
 * shape, and the peer. */
static void push_request(lua_State *L, lconn *lc, const ws_http_head *h, const ws_server_request *r)
{
    ws_lua_push_request(L, h, r);
    char addr[64];
    int port;
    ws_conn_peer(lc->c, addr, sizeof addr, &port);
    lua_pushstring(L, addr);
    lua_setfield(L, -2, "peer_address");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "peer_port");
    const char *sni = ws_conn_server_name(lc->c);
    if (sni) {
        lua_pushstring(L, sni);
        lua_setfield(L, -2, "server_name");
    }
}

/* The server's protocols list chosen from by the core; the string lives
 * in that list (the server's uservalue). */
static const char *choose_protocol(lua_State *L, lconn *lc, const ws_http_head *h)
{
    push_server(L, lc);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    ws_getuservalue(L, -1);
    size_t n;
    const char **supported = ws_lua_opt_strings(L, lua_gettop(L), "protocols", &n);
    /* The server, its uservalue and the array stay on the stack (the
     * caller's frame ends soon): the chosen string is anchored by them. */
    return ws_handshake_choose_protocol(h, supported, n);
}

/* on_upgrade returns up to four values: a protocol or a table (accept), or
 * false, status, reason, headers (refuse). */
#define UPGRADE_RESULTS 4

/* false, status, reason, headers as on_upgrade returned them, the false
 * at stack index first; a value of the wrong kind raises. */
static void reject_args(lua_State *L, int first, int *status, const char **reason, ws_kv **headers,
                        size_t *nh)
{
    lua_pushvalue(L, first + 1);
    if (!lua_isnil(L, -1)) {
        lua_Number v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        /* A rejection is an error answer; 1xx and 2xx would read as
         * progress or success. */
        if (!(v >= 300 && v <= 599) || v != (lua_Number)(int)v)
            luaL_error(L,
                       "on_upgrade: the rejection status must be an integer from 300 to 599, "
                       "got %s",
                       lua_type(L, -1) == LUA_TNUMBER ? lua_pushfstring(L, "%f", v)
                                                      : luaL_typename(L, -1));
        *status = (int)v;
        *reason = NULL; /* the status's own phrase */
    }
    lua_pushvalue(L, first + 2);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "on_upgrade: the rejection reason must be a string, got %s",
                       luaL_typename(L, -1));
        *reason = lua_tostring(L, -1);
    }
    lua_pushvalue(L, first + 3);
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            luaL_error(L, "on_upgrade: the rejection headers must be a table, got %s",
                       luaL_typename(L, -1));
        lua_newtable(L);
        lua_insert(L, -2);
        lua_setfield(L, -2, "headers");
        *headers = ws_lua_opt_headers(L, lua_gettop(L), "headers", nh);
    }
}

/* Answer the request of lc (head) as on_upgrade decided: the
 * UPGRADE_RESULTS values it returned from stack index first (0: there is
 * no on_upgrade; called = false: it failed, answer 500).  A result of the
 * wrong kind raises, before or after the answer (500). */
static void answer_upgrade(lua_State *L, lconn *lc, int first, bool called,
                           const ws_http_head *head)
{
    ws_session *s = ws_conn_session(lc->c);
    bool accepted = true;
    int status = 403;
    const char *reason = "Forbidden";
    const char *protocol = NULL;
    ws_kv *headers = NULL;
    size_t nh = 0;
    if (!called) {
        accepted = false;
        status = 500;
        reason = "Internal Server Error";
    } else if (first) {
        int type = lua_type(L, first);
        if (type == LUA_TSTRING) {
            protocol = lua_tostring(L, first);
        } else if (type == LUA_TTABLE) {
            ws_lua_push_key_error(L, first, "upgrade_answer", "");
            if (!lua_isnil(L, -1))
                luaL_error(L, "on_upgrade's answer: %s", lua_tostring(L, -1));
            lua_pop(L, 1);
            protocol = ws_lua_opt_text(L, first, "protocol", NULL);
            headers = ws_lua_opt_headers(L, first, "headers", &nh);
        } else if (type == LUA_TBOOLEAN && !lua_toboolean(L, first)) {
            accepted = false;
            reject_args(L, first, &status, &reason, &headers, &nh);
        } else if (type != LUA_TNIL && type != LUA_TBOOLEAN) {
            /* Anything else is a mistake, never an accept: the client
             * gets 500 and the error leaves ws.run. */
            luaL_error(L,
                       "on_upgrade returned a %s: return nothing or true to accept, a "
                       "subprotocol or {protocol=, headers=}, or false[, status[, "
                       "reason[, headers]]] to reject",
                       lua_typename(L, type));
        }
    }
    if (accepted && !protocol)
        protocol = choose_protocol(L, lc, head);
    char err[256];
    int rc;
    if (accepted) {
        rc = ws_session_accept(s, protocol, NULL, headers, nh, err, sizeof err);
        if (rc != WS_OK)
            ws_session_reject(s, 500, "Internal Server Error", NULL, 0);
    } else {
        rc = ws_session_reject(s, status, reason, headers, nh);
        if (rc == WS_E_ARG) {
            ws_handshake_check_headers(headers, nh, err, sizeof err);
            ws_session_reject(s, status, reason, NULL, 0);
        }
    }
    ws_conn_output_changed(lc->c);
    /* What on_upgrade asked for could not be sent (a bad header or
     * subprotocol): the client got 500 (or the rejection without the
     * headers), and the mistake reaches whoever runs the loop. */
    if (rc == WS_E_ARG)
        luaL_error(L, "on_upgrade: %s", err);
}

/* ws.core.upgrade_answer(conn, ...): the decision of an on_upgrade that
 * waited (its task ended), as it returned it.  false when it came too late
 * (the handshake timed out, the client left, the server closed). */
static int l_upgrade_answer(lua_State *L)
{
    lconn *lc = luaL_checkudata(L, 1, CONN_MT);
    const ws_http_head *head =
        lc->c && lc->upgrade_wait ? ws_session_request_head(ws_conn_session(lc->c)) : NULL;
    if (!head) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_settop(L, 1 + UPGRADE_RESULTS);
    answer_upgrade(L, lc, 2, true, head);
    lc->upgrade_wait = false;
    lua_pushboolean(L, 1);
    return 1;
}

static void upgrade(lua_State *L, lconn *lc, int idx, const ws_event *ev)
{
    lserver *srv = ws_lua_conn_server(lc);
    unsigned cbs = srv ? srv->cbs : 0;
    const ws_server_request *r = ev->request;
    ws_lua_conn_set_path(lc, r->path, r->path_len);
    /* The request table is made only for whoever can read it: on_upgrade,
     * on_open, or every connection with keep_request. */
    int req = 0;
    if ((srv && srv->keep_request) || (cbs & ((1u << CB_UPGRADE) | (1u << CB_OPEN)))) {
        push_request(L, lc, ev->head, ev->request);
        req = lua_gettop(L);
        lua_pushvalue(L, req);
        if (srv && srv->keep_request) {
            ws_lua_conn_fields(L, lc, idx);
            lua_insert(L, -2);
            lua_setfield(L, -2, "request");
            lua_pop(L, 1);
        } else {
            ws_lua_conn_temp_request(L, lc, idx);
        }
    }

    int first = 0;
    bool called = true;
    if (req && server_callback(L, lc, CB_UPGRADE)) {
        /* The Lua layer runs on_upgrade as a task that may wait (its
         * "upgrade" hook returns true then, else false and the results);
         * ws.core alone calls it directly. */
        lua_getfield(L, LUA_REGISTRYINDEX, WS_HOOK_PREFIX "upgrade");
        if (lua_isfunction(L, -1)) {
            lua_insert(L, -2);
            lua_pushvalue(L, req);
            lua_pushvalue(L, idx);
            called = ws_lua_loop_call_results(ws_lua_conn_loop(lc), 3, 1 + UPGRADE_RESULTS);
            if (called && lua_toboolean(L, -1 - UPGRADE_RESULTS)) {
                /* It waits: the answer comes with ws.core.upgrade_answer,
                 * or 503 at the handshake timeout. */
                lc->upgrade_wait = true;
                return;
            }
        } else {
            lua_pop(L, 1);
            lua_pushvalue(L, req);
            called = ws_lua_loop_call_results(ws_lua_conn_loop(lc), 1, UPGRADE_RESULTS);
        }
        if (called)
            first = lua_gettop(L) - UPGRADE_RESULTS + 1;
    }
    answer_upgrade(L, lc, first, called, ev->head);
}

static void http(lua_State *L, lconn *lc, int idx, const ws_event *ev)
{
    (void)idx;
    ws_session *s = ws_conn_session(lc->c);
    push_request(L, lc, ev->head, NULL);
    int req = lua_gettop(L);
    lua_createtable(L, 0, 3);
    int res = lua_gettop(L);
    lua_pushinteger(L, 200);
    lua_setfield(L, res, "status");
    lua_newtable(L);
    lua_setfield(L, res, "headers");
    lua_pushliteral(L, "");
    lua_setfield(L, res, "body");
    int status;
    char err[256];
    if (!server_callback(L, lc, CB_REQUEST)) {
        static const char body[] = "This is a WebSocket endpoint.\n";
        ws_session_respond(s, 426, NULL, 0, (const uint8_t *)body, sizeof body - 1, err,
                           sizeof err);
        ws_conn_output_changed(lc->c);
        return;
    }
    lua_pushvalue(L, req);
    lua_pushvalue(L, res);
    if (!ws_lua_loop_call(ws_lua_conn_loop(lc), 2)) {
        static const char body[] = "Internal Server Error\n";
        ws_session_respond(s, 500, NULL, 0, (const uint8_t *)body, sizeof body - 1, err,
                           sizeof err);
        ws_conn_output_changed(lc->c);
        return;
    }
    /* A wrong kind of status or body raises: conn_event answers 500. */
    lua_getfield(L, res, "status");
    status = 200;
    if (!lua_isnil(L, -1)) {
        lua_Number v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        if (!(v >= 200 && v <= 599) || v != (lua_Number)(int)v)
            luaL_error(L, "on_request: res.status must be an integer from 200 to 599, got %s",
                       lua_type(L, -1) == LUA_TNUMBER ? lua_pushfstring(L, "%f", v)
                                                      : luaL_typename(L, -1));
        status = (int)v;
    }
    lua_getfield(L, res, "body");
    size_t blen = 0;
    const char *body = "";
    if (!lua_isnil(L, -1)) {
        if (!lua_isstring(L, -1))
            luaL_error(L, "on_request: res.body must be a string, got %s", luaL_typename(L, -1));
        body = lua_tolstring(L, -1, &blen);
    }
    size_t nh = 0;
    ws_kv *headers = ws_lua_opt_headers(L, res, "headers", &nh);
    if (ws_session_respond(s, status, headers, nh, (const uint8_t *)body, blen, err, sizeof err) ==
        WS_OK) {
        ws_conn_output_changed(lc->c);
        return;
    }
    /* The answer cannot be sent as given: the client gets 500 and the
     * mistake reaches whoever runs the loop. */
    static const char fallback[] = "Internal Server Error\n";
    char unused[64];
    ws_session_respond(s, 500, NULL, 0, (const uint8_t *)fallback, sizeof fallback - 1, unused,
                       sizeof unused);
    ws_conn_output_changed(lc->c);
    luaL_error(L, "on_request: %s", err);
}

const ws_lua_server_hooks ws_lua_server_conn_hooks = {
    detach, push_server, server_callback, server_callbacks, upgrade, http};

/* ---- the server object ---------------------------------------------------- */

static lserver *check_server(lua_State *L)
{
    return luaL_checkudata(L, 1, SERVER_MT);
}

static void accept_one(lua_State *L, lserver *srv, int fd)
{
    lconn *lc = ws_lua_conn_push(L, srv->ll, 0); /* the server is a member already */
    int idx = lua_gettop(L);
    char err[256];
    lc->c = ws_conn_accept(ws_lua_loop_get(srv->ll), srv->cst, srv->sst, &ws_lua_conn_callbacks, lc,
                           fd, srv->tls, err, sizeof err);
    if (!lc->c) {
        lua_pop(L, 1);
        return;
    }
    ws_lua_conn_attach(lc, srv, &srv->clients);
    srv->nclients++;
    ws_lua_conn_anchor(L, lc, idx);
    lua_pop(L, 1);
}

static bool out_of_resources(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

/* Accepting failed for want of fds or memory: stop watching the listener
 * for a while (pending clients wait in the backlog) and tell
 * on_accept_error once per shortage. */
static void suspend_accepting(lua_State *L, lserver *srv, int sidx, int e)
{
    bool first = srv->backoff_ns == 0;
    srv->backoff_ns = first ? ACCEPT_BACKOFF_MIN : srv->backoff_ns * 2;
    if (srv->backoff_ns > ACCEPT_BACKOFF_MAX)
        srv->backoff_ns = ACCEPT_BACKOFF_MAX;
    ws_io_stop(ws_lua_loop_get(srv->ll), &srv->io);
    ws_timer_start(ws_lua_loop_get(srv->ll), &srv->backoff, srv->backoff_ns, 0);
    if (!first || !(srv->cbs & (1u << CB_ACCEPT_ERROR)))
        return;
    ws_getuservalue(L, sidx);
    lua_rawgeti(L, -1, CB_ACCEPT_ERROR);
    lua_remove(L, -2);
    lua_pushvalue(L, sidx);
    lua_pushfstring(L, "accept: %s; accepting paused until descriptors free up", strerror(e));
    ws_lua_loop_call(srv->ll, 2);
}

static void on_listen(ws_loop *loop, ws_io *io, unsigned events)
{
    (void)loop;
    (void)events;
    lserver *srv = (lserver *)(void *)((char *)io - offsetof(lserver, io));
    lua_State *L = ws_lua_loop_state(srv->ll);
    if (!L || srv->self_ref == LUA_NOREF || !lua_checkstack(L, 16))
        return;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, srv->self_ref); /* alive while accepting */
    int sidx = lua_gettop(L);
    for (int i = 0; i < ACCEPTS_PER_TURN && srv->fd >= 0; i++) {
        struct sockaddr_storage peer;
        socklen_t len;
        int fd = ws_net_accept(srv->fd, &peer, &len);
        if (fd < 0) {
            if (out_of_resources(errno))
                suspend_accepting(L, srv, sidx, errno);
            break; /* EAGAIN (nothing pending), or a client gone already */
        }
        srv->backoff_ns = 0;
        accept_one(L, srv, fd);
    }
    lua_settop(L, top);
}

/* The pause is over: watch the listener again (a still-failing accept
 * suspends it again, for longer). */
static void on_backoff(ws_loop *loop, ws_timer *t, void *ud)
{
    (void)t;
    lserver *srv = ud;
    if (srv->fd >= 0)
        ws_io_start(loop, &srv->io, on_listen, WS_IO_READ);
}

static void close_listener(lserver *srv)
{
    if (srv->fd >= 0) {
        ws_loop *loop = srv->ll ? ws_lua_loop_get(srv->ll) : NULL;
        if (loop) /* (a closed loop forgot its watchers) */
            ws_io_stop(loop, &srv->io);
        ws_timer_stop(&srv->backoff);
        close(srv->fd);
        srv->fd = -1;
    }
    if (srv->unix_path) {
        ws_net_unlink_unix(srv->unix_path, srv->unix_dev, srv->unix_ino);
        free(srv->unix_path);
        srv->unix_path = NULL;
    }
}

static void stop_listening(lua_State *L, lserver *srv)
{
    close_listener(srv);
    release_anchor(L, srv);
}

/* ---- membership of the loop ------------------------------------------------- */

static lserver *member_server(ws_lua_member *m)
{
    return (lserver *)(void *)((char *)m - offsetof(lserver, member));
}

/* The server's membership stands for its clients too (they are no
 * members of their own: bench/PROFILE.md, idle memory).  A client that
 * closes moves to its loop's list (lua_conn.c). */
static void member_shutdown(lua_State *L, ws_lua_member *m)
{
    lserver *srv = member_server(m);
    stop_listening(L, srv);
    lconn *next;
    for (lconn *lc = srv->clients; lc; lc = next) {
        next = lc->next;
        ws_lua_conn_shutdown(lc);
    }
}

static bool member_done(ws_lua_member *m)
{
    lserver *srv = member_server(m);
    if (srv->fd >= 0)
        return false;
    for (const lconn *lc = srv->clients; lc; lc = lc->next)
        if (!ws_lua_conn_done(lc))
            return false;
    return true;
}

static void member_release(lua_State *L, ws_lua_member *m)
{
    lserver *srv = member_server(m);
    while (srv->clients)
        ws_lua_conn_release(L, srv->clients);
    stop_listening(L, srv);
    srv->released = true;
    ws_lua_loop_detach(L, srv->ll, m);
}

static uint64_t member_close_timeout(ws_lua_member *m)
{
    uint64_t longest = 0;
    for (const lconn *lc = member_server(m)->clients; lc; lc = lc->next) {
        uint64_t t = ws_lua_conn_close_timeout(lc);
        if (t > longest)
            longest = t;
    }
    return longest;
}

/* Listening counts as one, and each client not finished. */
static size_t member_pending(ws_lua_member *m)
{
    lserver *srv = member_server(m);
    size_t n = srv->fd >= 0;
    for (const lconn *lc = srv->clients; lc; lc = lc->next)
        n += !ws_lua_conn_done(lc);
    return n;
}

static const ws_lua_member_ops member_ops = {member_shutdown, member_done, member_release,
                                             member_close_timeout, member_pending};

static ws_tls_ctx *server_tls(lua_State *L, int opts)
{
    lua_getfield(L, opts, "tls");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (!lua_istable(L, -1))
        ws_lua_opt_error(L, opts, "'tls' must be a table");
    int t = lua_gettop(L);
    ws_lua_check_keys(L, t, opts, "tls", "tls.");
    ws_tls_options to;
    ws_tls_options_init(&to);
    to.verify_client = ws_lua_opt_bool(L, t, "verify", false);
    to.cafile = ws_lua_opt_text(L, t, "cafile", NULL);
    to.capath = ws_lua_opt_text(L, t, "capath", NULL);
    to.cert = ws_lua_opt_text(L, t, "cert", NULL);
    to.key = ws_lua_opt_text(L, t, "key", NULL);
    to.ciphers = ws_lua_opt_text(L, t, "ciphers", NULL);
    to.alpn = ws_lua_opt_text(L, t, "alpn", NULL);
    if (!to.cert || !to.key)
        ws_lua_opt_error(L, opts, "'tls' needs cert and key files");
    char err[256];
    ws_tls_ctx *ctx = ws_tls_server_ctx_new(&to, err, sizeof err);
    if (!ctx)
        luaL_error(L, "ws.listen: %s", err);
    lua_pop(L, 1);
    return ctx;
}

/* ws.core.listen(opts, loop) */
static int l_listen(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    ws_lua_loop *ll = ws_lua_check_loop(L, 2);
    lua_settop(L, 2);
    int opts = 1;
    ws_lua_check_keys(L, opts, 1, "listen", "");
    const char *host = ws_lua_opt_text(L, opts, "host", "127.0.0.1");
    int port = (int)ws_lua_opt_size(L, opts, "port", 0, 0, 65535);
    bool reuseport = ws_lua_opt_bool(L, opts, "reuseport", false);
    int backlog = (int)ws_lua_opt_size(L, opts, "backlog", 511, 1, 65535);
    bool keep_request = ws_lua_opt_bool(L, opts, "keep_request", false);
    const char *unix_path = ws_lua_opt_text(L, opts, "unix", NULL);
    int mode = -1;
    lua_getfield(L, opts, "mode");
    if (lua_type(L, -1) == LUA_TSTRING) {
        /* "660" / "0660": octal, as chmod takes it */
        char *end;
        long m = strtol(lua_tostring(L, -1), &end, 8);
        if (*end || m < 0 || m > 07777 || end == lua_tostring(L, -1))
            return ws_lua_opt_error(L, opts, "'mode' must be an octal string such as \"660\"");
        mode = (int)m;
    } else if (!lua_isnil(L, -1)) {
        mode = (int)ws_lua_opt_size(L, opts, "mode", 0, 0, 07777);
    }
    lua_pop(L, 1);
    if (mode >= 0 && !unix_path)
        return ws_lua_opt_error(L, opts, "'mode' applies to Unix sockets only (option 'unix')");
    for (int i = CB_OPEN; i <= CB_LAST; i++) {
        lua_getfield(L, opts, ws_lua_callback_names[i]);
        if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
            return ws_lua_opt_error(L, opts, "'%s' must be a function", ws_lua_callback_names[i]);
        lua_pop(L, 1);
    }
    size_t np;
    ws_lua_opt_strings(L, opts, "protocols", &np); /* type check */
    lua_pop(L, 1);
    ws_lua_backplane_check_option(L, opts);

    lserver *srv = lua_newuserdata(L, sizeof *srv);
    memset(srv, 0, sizeof *srv);
    srv->fd = -1;
    srv->self_ref = LUA_NOREF;
    srv->msg_ref = LUA_NOREF;
    luaL_getmetatable(L, SERVER_MT);
    lua_setmetatable(L, -2);
    int sidx = lua_gettop(L);
    ws_session_config scfg;
    ws_session_config_init(&scfg, WS_SERVER);
    scfg.allow_http = true;
    ws_lua_read_limits(L, opts, &scfg);
    scfg.inflate_step = WS_LUA_INFLATE_STEP;
    ws_lua_opt_compress(L, opts, true, false, &scfg.compress);
    scfg.out_pool = ws_loop_output_pool(ws_lua_loop_get(ll));
    ws_conn_config ccfg;
    ws_conn_config_init(&ccfg);
    ws_lua_read_timeouts(L, opts, &ccfg, true);
    if (!(srv->sst = ws_session_settings_new(&scfg)) || !(srv->cst = ws_conn_settings_new(&ccfg)))
        return luaL_error(L, "ws.listen: out of memory");

    srv->keep_request = keep_request;
    lua_newtable(L);
    for (int i = CB_OPEN; i <= CB_LAST; i++) {
        lua_getfield(L, opts, ws_lua_callback_names[i]);
        if (lua_isfunction(L, -1))
            srv->cbs |= 1u << i;
        lua_rawseti(L, -2, i);
    }
    lua_getfield(L, opts, "protocols");
    if (lua_type(L, -1) == LUA_TSTRING) {
        lua_newtable(L);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
    }
    lua_setfield(L, -2, "protocols");
    ws_setuservalue(L, sidx);

    srv->tls = server_tls(L, opts);
    srv->ll = ll;
    ws_lua_loop_ref(ll);
    ws_lua_loop_attach(L, ll, &srv->member, &member_ops, 2);
    char err[256];
    if (unix_path) {
        srv->fd = ws_net_listen_unix(unix_path, mode, backlog, &srv->unix_dev, &srv->unix_ino, err,
                                     sizeof err);
        if (srv->fd >= 0 && !(srv->unix_path = strdup(unix_path))) {
            close(srv->fd);
            srv->fd = -1;
            snprintf(err, sizeof err, "out of memory");
        }
    } else {
        srv->fd = ws_net_listen(host, port, reuseport, backlog, err, sizeof err);
    }
    if (srv->fd < 0)
        return luaL_error(L, "ws.listen: %s", err);
    srv->port = unix_path ? 0 : ws_net_local_port(srv->fd);
    ws_io_init(&srv->io, srv->fd);
    ws_timer_init(&srv->backoff, on_backoff, srv);
    if (ws_io_start(ws_lua_loop_get(ll), &srv->io, on_listen, WS_IO_READ) != 0)
        return luaL_error(L, "ws.listen: cannot watch the socket: %s", strerror(errno));
    lua_pushvalue(L, sidx);
    srv->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    ws_lua_backplane_attach_option(L, opts, sidx);
    ws_getuservalue(L, sidx);
    lua_rawgeti(L, -1, CB_MESSAGE);
    set_message_ref(L, srv, -1);
    lua_settop(L, sidx);
    return 1;
}

/***
 * Servers of module ws, implemented in C.
 * @module ws
 */

/***
 * A listening server from `ws.listen`.
 * @type Server
 */

/***
 * Frame a message once and queue the same frame for every OPEN client
 * (with permessage-deflate as `Server:publish` does).
 * @function Server:broadcast
 * @tparam string data the message
 * @tparam[opt="text"] string kind `"text"` or `"binary"`
 * @treturn integer how many clients it was queued for
 */
static int l_broadcast(lua_State *L)
{
    lserver *srv = check_server(L);
    if (srv->released) {
        lua_pushnil(L);
        lua_pushliteral(L, "server is closed");
        return 2;
    }
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    bool binary = ws_lua_check_kind(L, 3);
    if (!binary && !ws_utf8_valid((const uint8_t *)p, n))
        return luaL_argerror(L, 2, "invalid UTF-8 in a text message; send it as binary");
    lua_pushinteger(L, ws_lua_server_fanout(srv, NULL, 0, binary, (const uint8_t *)p, n));
    return 1;
}

lserver *ws_lua_check_server(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, SERVER_MT);
}

bool ws_lua_server_released(const lserver *srv)
{
    return srv->released;
}

lconn *ws_lua_server_clients(lserver *srv)
{
    return srv->clients;
}

lbackplane **ws_lua_server_backplane(lserver *srv)
{
    return &srv->backplane;
}

ws_topics *ws_lua_server_topics(lserver *srv, bool create)
{
    if (!srv->topics && create)
        srv->topics = ws_topics_new();
    return srv->topics;
}

/***
 * The OPEN connections.
 * @function Server:clients
 * @treturn {Connection,...} a new list
 */
static int l_clients(lua_State *L)
{
    lserver *srv = check_server(L);
    lua_createtable(L, (int)srv->nclients, 0);
    int i = 0;
    for (lconn *lc = srv->clients; lc; lc = lc->next) {
        if (!lc->c || ws_session_state(ws_conn_session(lc->c)) != WS_OPEN ||
            lc->self_ref == LUA_NOREF)
            continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, lc->self_ref);
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

/* Stop listening; close every open client with code (their queued output
 * goes first), and drop the ones still in the handshake. */
static void close_server(lua_State *L, lserver *srv, int code, const char *reason, size_t n)
{
    stop_listening(L, srv);
    lconn *next;
    for (lconn *lc = srv->clients; lc; lc = next) {
        next = lc->next;
        if (!lc->c)
            continue;
        ws_session *s = ws_conn_session(lc->c);
        if (ws_session_state(s) == WS_OPEN)
            ws_conn_close(lc->c, code, (const uint8_t *)reason, n);
        else if (ws_session_state(s) == WS_CONNECTING)
            ws_conn_abort(lc->c);
    }
}

static const char default_reason[] = "server shutting down";

/***
 * Stop listening and close every client after their queued output (also
 * `__close`, with the defaults). The code and reason are checked as
 * `Connection:close` checks them, before anything is closed.
 * @function Server:close
 * @tparam[opt=1001] integer code close code sent to the clients
 * @tparam[opt] string reason close reason (at most 123 bytes of UTF-8)
 * @treturn bool true
 * @raise on an invalid code or reason
 */
static int l_close(lua_State *L)
{
    lserver *srv = check_server(L);
    lua_Number code = luaL_optnumber(L, 2, WS_CLOSE_GOING_AWAY);
    size_t n;
    const char *reason = luaL_optlstring(L, 3, default_reason, &n);
    if (code != (int)code || !ws_close_code_valid((int)code))
        return luaL_argerror(L, 2, "invalid close code (1000-1003, 1007-1014, 3000-4999)");
    if (n > 123)
        return luaL_argerror(L, 3, "close reason over 123 bytes");
    if (!ws_utf8_valid((const uint8_t *)reason, n))
        return luaL_argerror(L, 3, "close reason is not valid UTF-8");
    close_server(L, srv, (int)code, reason, n);
    lua_pushboolean(L, 1);
    return 1;
}

/* __close (Lua 5.4): its second argument is an error, not a code. */
static int l_close_meta(lua_State *L)
{
    close_server(L, check_server(L), WS_CLOSE_GOING_AWAY, default_reason,
                 sizeof default_reason - 1);
    return 0;
}

/***
 * Fields of a server; the `on_*` callbacks can be read and set too.
 * @table fields
 * @tfield integer port the port it listens on (0 on a Unix socket)
 * @tfield bool listening false once closed
 * @tfield string unix the Unix socket path, or nil
 */
static int l_index(lua_State *L)
{
    lserver *srv = check_server(L);
    const char *key = lua_tostring(L, 2);
    if (key && strcmp(key, "port") == 0) {
        lua_pushinteger(L, srv->port);
        return 1;
    }
    if (key && strcmp(key, "listening") == 0) {
        lua_pushboolean(L, srv->fd >= 0);
        return 1;
    }
    if (key && strcmp(key, "unix") == 0) {
        if (srv->unix_path)
            lua_pushstring(L, srv->unix_path);
        else
            lua_pushnil(L);
        return 1;
    }
    int cb = ws_lua_callback_index(key);
    if (cb) {
        ws_getuservalue(L, 1);
        lua_rawgeti(L, -1, cb);
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    if (!lua_isnil(L, -1))
        return 1;
    ws_getuservalue(L, 1);
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int l_newindex(lua_State *L)
{
    lserver *srv = check_server(L);
    const char *key = lua_tostring(L, 2);
    if (key &&
        (strcmp(key, "port") == 0 || strcmp(key, "listening") == 0 || strcmp(key, "unix") == 0))
        return luaL_error(L, "server field '%s' is read-only", key);
    if (key && strncmp(key, "on_", 3) == 0 && !lua_isnil(L, 3) && !lua_isfunction(L, 3))
        return luaL_error(L, "server field '%s' must be a function", key);
    ws_getuservalue(L, 1);
    int cb = ws_lua_callback_index(key);
    if (cb) {
        lua_pushvalue(L, 3);
        lua_rawseti(L, -2, cb);
        if (lua_isnil(L, 3))
            srv->cbs &= ~(1u << cb);
        else
            srv->cbs |= 1u << cb;
        if (cb == CB_MESSAGE)
            set_message_ref(L, srv, 3);
        return 0;
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, -3);
    return 0;
}

static int l_gc(lua_State *L)
{
    lserver *srv = luaL_checkudata(L, 1, SERVER_MT);
    /* Listening or with clients it is anchored: collected anchored only as
     * the state closes, and its loop closes everything on it first. */
    if (srv->ll && srv->self_ref != LUA_NOREF)
        ws_lua_loop_close_quietly(L, srv->ll);
    close_listener(srv);
    while (srv->clients) /* (never seen: they go with the loop) onto the loop's list */
        detach(L, srv->clients, false);
    ws_lua_backplane_server_gone(srv->backplane); /* before its topics go */
    srv->backplane = NULL;
    ws_topics_free(srv->topics);
    srv->topics = NULL;
    if (srv->tls) {
        ws_tls_ctx_unref(srv->tls);
        srv->tls = NULL;
    }
    ws_session_settings_unref(srv->sst); /* its connections keep theirs */
    srv->sst = NULL;
    ws_conn_settings_unref(srv->cst);
    srv->cst = NULL;
    if (srv->ll) {
        ws_lua_loop_detach(L, srv->ll, &srv->member);
        ws_lua_loop_unref(srv->ll);
        srv->ll = NULL;
    }
    return 0;
}

static const luaL_Reg server_methods[] = {
    {"broadcast", l_broadcast}, {"clients", l_clients}, {"close", l_close}, {NULL, NULL}};

static const luaL_Reg server_meta[] = {{"__index", l_index},
                                       {"__newindex", l_newindex},
                                       {"__gc", l_gc},
                                       {"__close", l_close_meta},
                                       {NULL, NULL}};

void ws_lua_open_server(lua_State *L)
{
    if (luaL_newmetatable(L, SERVER_MT)) {
        ws_setfuncs(L, server_meta);
        lua_newtable(L);
        ws_setfuncs(L, server_methods);
        lua_setfield(L, -2, "methods");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_listen);
    lua_setfield(L, -2, "listen");
    lua_pushcfunction(L, l_upgrade_answer);
    lua_setfield(L, -2, "upgrade_answer");
}
