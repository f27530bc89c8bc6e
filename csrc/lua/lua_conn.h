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
    /* The connection leaves the server's list of clients. */
    void (*detach)(lua_State *L, lconn *lc);
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

struct lconn {
    ws_conn *c; /* NULL once released with its loop */
    ws_lua_member member;
    ws_lua_loop *ll;
    lserver *srv; /* server side: the server that accepted it; NULL once detached */
    struct lconn *next, *prev;
    /* What only one side has (server_side tells which). */
    union {
        char *path; /* server side: the request path (ws_lua_root_path or owned) */
        struct ws_lua_redirect *redirect; /* client with follow_redirects; else NULL */
    } side;
    /* server side: the topics it is subscribed to; made at the first
     * subscribe, freed as it leaves the server (most connections have none) */
    ws_topic_member *topics;
    int self_ref;        /* registry anchor while the transport is open */
    uint32_t magic;      /* WS_LUA_CONN_MAGIC: methods recognise self cheaply */
    uint16_t close_code; /* valid once closed */
    uint16_t own_cbs;    /* bit i: the connection has its own callback i */
    bool opened;         /* on_open was delivered */
    bool closed;         /* the close event was delivered */
    bool receiving;      /* c:receive() was used: its hooks see open, close, error and the
                            messages no on_message callback takes */
    /* Flags off the per-message path share a byte: the record is 96 bytes
     * (bench/PROFILE.md, idle memory). */
    bool has_fields : 1;   /* the uservalue table exists (made on first use) */
    bool was_clean : 1;    /* valid once closed */
    bool request_temp : 1; /* c.request waits in the temporary table (until read or on_open ends) */
    bool notify_close : 1; /* call the close hook after the close event */
    bool upgrade_wait : 1; /* on_upgrade runs on in a task: the answer comes later */
    bool server_side : 1;  /* accepted by a server: ws_lua_server_conn_hooks reach it */
};

/* In every connection userdata. */
#define WS_LUA_CONN_MAGIC 0x77736333u

/* Hooks the Lua layer installs (ws.core.set_hook(name, fn)), kept in the
 * registry under WS_HOOK_PREFIX .. name. */
#define WS_HOOK_PREFIX "ws.core.hook."

/* The path "/" shared by every connection that asked for it. */
extern char ws_lua_root_path[];

/* Push a new connection userdata whose callbacks are conn_callbacks,
 * attached to the loop (the loop object at loop_idx, or 0 when the loop
 * has members already); the caller creates the ws_conn and then anchors
 * it with ws_lua_conn_anchor.  Its fields table is made when something is
 * stored in it. */
lconn *ws_lua_conn_push(lua_State *L, ws_lua_loop *ll, int loop_idx);
void ws_lua_conn_anchor(lua_State *L, lconn *lc, int idx);
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
