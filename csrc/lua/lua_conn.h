/* Shared by the connection and server bindings. */
#ifndef WS_LUA_CONN_H
#define WS_LUA_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "io/conn.h"
#include "io/topic.h"
#include "lua_compat.h"
#include "lua_loop.h"

/* Compressed bytes a networked connection inflates per step: at most about
 * 1 MiB of output (deflate's ratio is at most about 1032:1), so one
 * compressed peer cannot hold the loop for long. */
#define WS_LUA_INFLATE_STEP 1024

#define CONN_MT "ws.core.conn"

typedef struct lserver lserver;
typedef struct lconn lconn;

/* What a server-side connection needs of the server that accepted it; the
 * server hands these to each connection, so the connection code does not
 * depend on the server's. */
typedef struct ws_lua_server_hooks {
    /* The connection leaves the server's list of clients (and its
     * topics): onto its loop's list, or onto none as it is released. */
    void (*detach)(lua_State *L, lconn *lc, bool release);
    /* Push the server userdata, or nil. */
    void (*push)(lua_State *L, lconn *lc);
    /* Push the server's callback cb; false (nothing pushed) without one. */
    bool (*callback)(lua_State *L, lconn *lc, int cb);
    /* Bit i set: the server has callback i. */
    unsigned (*callbacks)(const lconn *lc);
    /* The upgrade request (on_upgrade) and plain HTTP request (on_request)
     * events of the connection at stack index idx. */
    void (*upgrade)(lua_State *L, lconn *lc, int idx, const ws_event *ev);
    void (*http)(lua_State *L, lconn *lc, int idx, const ws_event *ev);
} ws_lua_server_hooks;

/* The hooks of every server-side connection (the server module defines
 * them; a connection keeps a flag, not a pointer: bench/PROFILE.md, idle
 * memory). */
extern const ws_lua_server_hooks ws_lua_server_conn_hooks;

/* The callbacks a connection or its server may have.  In a fields table
 * (the uservalue of a connection or server) a callback lives at its index,
 * so finding one costs no string hashing. */
enum {
    CB_OPEN = 1,
    CB_MESSAGE,
    CB_CLOSE,
    CB_ERROR,
    CB_DRAIN,
    CB_PING,
    CB_PONG,
    CB_UPGRADE,      /* server only */
    CB_REQUEST,      /* server only */
    CB_ACCEPT_ERROR, /* server only: on_accept_error(srv, err) */
    CB_LAST = CB_ACCEPT_ERROR
};
extern const char *const ws_lua_callback_names[CB_LAST + 1]; /* [0] is NULL */
/* The index of callback name, 0 when name is no callback. */
int ws_lua_callback_index(const char *name);

/* A server connection's optional extras: made only for a request path
 * other than "/" or at the first subscribe (most connections have
 * neither), freed with the connection. */
typedef struct ws_lua_conn_extras {
    /* the topics it is subscribed to (lua_topic.c); freed as it leaves
     * its server */
    ws_topic_member *topics;
    char path[]; /* the request path */
} ws_lua_conn_extras;

/* The Lua record of a connection, 56 bytes so that a Lua 5.4 userdata is
 * one 96-byte malloc chunk (bench/PROFILE.md, idle memory).  A server
 * connection is held by its server's list of clients while it runs (the
 * server's loop membership shuts it down and releases it); any other
 * connection (a client, or a server connection once closed or its server
 * gone) is on its loop's list of connections (lua_conn.c), through the
 * same links. */
struct lconn {
    ws_conn *c; /* NULL once released with its loop */
    union {
        lserver *srv;    /* attached: the server that accepted it */
        ws_lua_loop *ll; /* otherwise: its loop (NULL once collected) */
    } on;
    struct lconn *next, *prev; /* the server's clients, or the loop's list */
    /* What only one side has (server_side tells which). */
    union {
        ws_lua_conn_extras *extras;       /* server side: path and topics, or NULL */
        struct ws_lua_redirect *redirect; /* client with follow_redirects; else NULL */
    } side;
    int self_ref;          /* registry anchor while the transport is open */
    uint32_t magic;        /* WS_LUA_CONN_MAGIC: methods recognise self cheaply */
    uint16_t close_code;   /* valid once closed */
    uint16_t own_cbs;      /* bit i: the connection has its own callback i */
    bool opened : 1;       /* on_open was delivered */
    bool closed : 1;       /* the close event was delivered */
    bool receiving : 1;    /* c:receive() was used: its hooks see open, close, error and the
                              messages no on_message callback takes */
    bool has_fields : 1;   /* the uservalue table exists (made on first use) */
    bool was_clean : 1;    /* valid once closed */
    bool request_temp : 1; /* c.request waits in the temporary table (until read or on_open ends) */
    bool notify_close : 1; /* call the close hook after the close event */
    bool upgrade_wait : 1; /* on_upgrade runs on in a task: the answer comes later */
    bool server_side : 1;  /* accepted by a server: ws_lua_server_conn_hooks reach it */
    bool attached : 1;     /* on.srv holds it in its clients; else on.ll */
    bool listed : 1;       /* on its loop's list of connections */
    bool no_path : 1;      /* server side: its path could not be kept (out of memory) */
};

/* A server record starts with its loop (lua_server.c checks it), so a
 * connection finds its loop through its server without a call. */
static inline ws_lua_loop *ws_lua_conn_loop(const lconn *lc)
{
    return lc->attached ? *(ws_lua_loop *const *)(const void *)lc->on.srv : lc->on.ll;
}

/* The server holding the connection, or NULL once detached. */
static inline lserver *ws_lua_conn_server(const lconn *lc)
{
    return lc->attached ? lc->on.srv : NULL;
}

/* In every connection userdata. */
#define WS_LUA_CONN_MAGIC 0x77736333u

/* Hooks the Lua layer installs (ws.core.set_hook(name, fn)), kept in the
 * registry under WS_HOOK_PREFIX .. name. */
#define WS_HOOK_PREFIX "ws.core.hook."

/* The request path of a server connection ("/" without extras), or
 * NULL. */
const char *ws_lua_conn_path(const lconn *lc);
/* Keep path (len bytes) as the request path; false when out of memory
 * (the path then reads nil). */
bool ws_lua_conn_set_path(lconn *lc, const char *path, size_t len);
/* The extras of a server connection, made if needed; NULL when out of
 * memory. */
ws_lua_conn_extras *ws_lua_conn_extras_get(lconn *lc);

/* Push a new connection userdata whose callbacks are conn_callbacks, on
 * the loop's list of connections (the loop object at loop_idx; raises
 * "loop is closing" while the loop closes), or on no list with loop_idx 0
 * (a server then attaches it: ws_lua_conn_attach); the caller creates
 * the ws_conn and then anchors it with ws_lua_conn_anchor.  Its fields
 * table is made when something is stored in it. */
lconn *ws_lua_conn_push(lua_State *L, ws_lua_loop *ll, int loop_idx);
void ws_lua_conn_anchor(lua_State *L, lconn *lc, int idx);

/* What a server does to the connections it holds (its own loop
 * membership stands for them, lua_loop.h): */
/* The connection (pushed with loop_idx 0) joins srv's list at *head. */
void ws_lua_conn_attach(lconn *lc, lserver *srv, lconn **head);
/* It leaves srv's list at *head: onto its loop's list (release false),
 * or onto none as it is released. */
void ws_lua_conn_detach(lua_State *L, lconn *lc, lconn **head, bool release);
/* The member operations for one connection (lua_loop.h). */
void ws_lua_conn_shutdown(lconn *lc);
bool ws_lua_conn_done(const lconn *lc);
void ws_lua_conn_release(lua_State *L, lconn *lc);
uint64_t ws_lua_conn_close_timeout(const lconn *lc);
/* Push the fields table of the connection at idx, making it if needed. */
void ws_lua_conn_fields(lua_State *L, lconn *lc, int idx);
/* The request table on top (popped) is c.request of the connection at idx
 * until on_open has run, and after it only if c.request was read. */
void ws_lua_conn_temp_request(lua_State *L, lconn *lc, int idx);
extern const ws_conn_callbacks ws_lua_conn_callbacks;

/* Open lc's transport to the URL at stack index url (ws://, wss:// or
 * ws+unix://) with the request options of the table ropts (its "url" is
 * set here) and the route and TLS options of opts (0: none).  Raises on
 * bad input; NULL with err when the connection cannot start. */
ws_conn *ws_lua_client_dial(lua_State *L, lconn *lc, int url, int opts, int ropts,
                            const ws_session_config *scfg, const ws_conn_config *ccfg, char *err,
                            size_t err_len);

/* Options shared by clients and servers. */
void ws_lua_read_timeouts(lua_State *L, int t, ws_conn_config *ccfg, bool server);

#endif
