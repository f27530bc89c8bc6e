/* A connection: a transport (TCP or TLS) + a session + timers on a loop.
 * It moves bytes between the socket and the session, flushes output once
 * per loop turn, runs the handshake, close and keepalive timers, and hands
 * every session event to its owner through callbacks.  No Lua here. */
#ifndef WS_CONN_H
#define WS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"
#include "shared_frame.h"
#include "core/session.h"

typedef struct ws_conn ws_conn;
typedef struct ws_tls_ctx ws_tls_ctx;

typedef struct ws_conn_config {
    uint64_t open_timeout_ns;  /* client: resolve to OPEN; server: handshake (a request
                                  still unanswered then gets 503) */
    uint64_t close_timeout_ns; /* close handshake and final flush */
    uint64_t ping_interval_ns; /* 0: no keepalive */
    uint64_t ping_timeout_ns;  /* no byte from the peer this long after a ping: dead */
    uint64_t idle_timeout_ns;  /* 0: none; no message either way this long: close 1001 */
    size_t max_buffered;       /* unsent output limit (a message into an empty queue passes) */
    size_t low_water;          /* drain fires when the output falls to this after being above */
    bool close_on_full;        /* over max_buffered: close 1013 instead of refusing */
} ws_conn_config;

void ws_conn_config_init(ws_conn_config *cfg);

/* A configuration many connections share (a server's): each connection
 * holds a reference, so it lives as long as the last of them, whoever
 * made it (a server object may be collected before its connections). */
typedef struct ws_conn_settings ws_conn_settings;
/* A shared copy of cfg holding one reference; NULL when out of memory. */
ws_conn_settings *ws_conn_settings_new(const ws_conn_config *cfg);
/* Drop a reference (NULL: nothing). */
void ws_conn_settings_unref(ws_conn_settings *st);

typedef struct ws_conn_callbacks {
    /* A session event (open, request, http, message, ping, pong, error,
     * close).  The handler may send, close or accept from inside. */
    void (*event)(ws_conn *c, const ws_event *ev, void *ud);
    /* A failure outside the protocol: DNS, connect, TLS, reset, timeouts.
     * A close event (1006) follows. */
    void (*error)(ws_conn *c, const char *msg, void *ud);
    /* The unsent output fell to the low-water mark after having been
     * above it. */
    void (*drain)(ws_conn *c, void *ud);
    /* The transport is closed; no callback follows.  The owner frees the
     * connection when it likes (ws_conn_free). */
    void (*closed)(ws_conn *c, void *ud);
} ws_conn_callbacks;

/* ws_conn_connect copies cfg, ws_conn_accept takes a reference to st; cb
 * is kept by reference (a table of functions that lives as long as the
 * program, as a rule).
 *
 * Client: s is a client session whose request is queued.  Resolves host,
 * connects (trying each address), runs TLS when tls is not NULL (host is
 * the SNI and the name verified).  NULL with err on immediate failure. */
ws_conn *ws_conn_connect(ws_loop *loop, const ws_conn_config *cfg, const ws_conn_callbacks *cb,
                         void *ud, ws_session *s, const char *host, int port, ws_tls_ctx *tls,
                         char *err, size_t err_len);

/* Client, right after ws_conn_connect (before the loop turns): dial an
 * HTTP proxy at host:port and open a CONNECT tunnel to the origin, which
 * stays the TLS name.  auth: the Proxy-Authorization value, or NULL.  tls:
 * NULL for a plain HTTP proxy; else TLS to the proxy itself with this
 * client context (SNI and verification against host), the CONNECT inside
 * it and the origin's bytes (TLS inside TLS for wss://) inside that; the
 * connection takes its own reference.  A non-2xx answer fails the
 * connection ("proxy answered 407 Proxy Authentication Required"), a TLS
 * failure with the proxy names it ("proxy HOST port N: TLS certificate
 * verify failed for HOST: ...").  -1 when out of memory or too late. */
int ws_conn_set_proxy(ws_conn *c, const char *host, int port, const char *auth, ws_tls_ctx *tls);

/* Client, as above: connect to the Unix socket at path instead of
 * resolving the host (which stays the Host header and the TLS name). */
int ws_conn_set_unix(ws_conn *c, const char *path);

/* Server: wrap an accepted socket (taken over: closed on failure too),
 * with a server session made from sst in the connection's own allocation
 * (it takes a reference to sst). */
ws_conn *ws_conn_accept(ws_loop *loop, ws_conn_settings *st, ws_session_settings *sst,
                        const ws_conn_callbacks *cb, void *ud, int fd, ws_tls_ctx *tls, char *err,
                        size_t err_len);

/* Free a connection; if it is still running it is aborted first without
 * callbacks. */
void ws_conn_free(ws_conn *c);

ws_session *ws_conn_session(ws_conn *c);

/* Sending: as ws_session_send & co., then a flush is scheduled.  Over
 * max_buffered: WS_E_FULL (or, with close_on_full, the connection closes
 * with 1013 and WS_E_FULL is returned).  compress: WS_SEND_AUTO,
 * WS_SEND_COMPRESS or WS_SEND_NO_COMPRESS (session.h). */
int ws_conn_send_ex(ws_conn *c, bool binary, const uint8_t *p, size_t n, int compress);
/* As ws_conn_send_ex (no compression asked for), except that the unsent
 * part of a message of WS_CONN_LEND_MIN bytes or more written straight from
 * p may stay queued by reference: then lend->kept is set, p must stay valid
 * and unchanged until lend->release(lend->ud, lend->token) is called (once:
 * when it has been written, or the connection drops it or is freed). */
#define WS_CONN_LEND_MIN (16u << 10)
typedef struct ws_lend {
    ws_shared_release release;
    void *ud;
    uintptr_t token;
    bool kept;
} ws_lend;
int ws_conn_send_lent(ws_conn *c, bool binary, const uint8_t *p, size_t n, ws_lend *lend);
int ws_conn_send_fragment(ws_conn *c, bool binary, const uint8_t *p, size_t n, bool fin);
/* Queue a reference to a frame many connections send (shared_frame.h):
 * written after what is queued now, released once written or when the
 * connection ends.  Errors as ws_conn_send_ex. */
int ws_conn_send_shared(ws_conn *c, ws_shared_frame *f);
int ws_conn_ping(ws_conn *c, const uint8_t *p, size_t n);
int ws_conn_pong(ws_conn *c, const uint8_t *p, size_t n); /* unsolicited: a heartbeat */
int ws_conn_close(ws_conn *c, int code, const uint8_t *reason, size_t n);
/* Leaving without the loop (its owner goes away): a close frame with code
 * and reason is queued when the connection is OPEN, whatever the socket
 * takes now is written, and the connection ends without callbacks.  Free
 * it afterwards. */
void ws_conn_goodbye(ws_conn *c, int code, const char *reason);
/* Give up: on the next loop turn the connection closes with 1006 (no
 * error callback). */
void ws_conn_abort(ws_conn *c);
/* After the session's output changed outside the calls above (accept,
 * reject, respond). */
void ws_conn_output_changed(ws_conn *c);

size_t ws_conn_buffered(const ws_conn *c);
uint64_t ws_conn_close_timeout(const ws_conn *c); /* ns */
bool ws_conn_finished(const ws_conn *c);          /* transport closed */

/* Receive-side flow control.  While any hold bit is set and the session is
 * OPEN, the connection neither reads the socket (so TCP pushes back on the
 * peer) nor delivers events; clearing the last bit delivers what was
 * already received and reads again.  Closing lifts the hold.  Keepalive
 * does not count a pong as missing while held. */
enum { WS_HOLD_USER = 1u, WS_HOLD_QUEUE = 2u };
void ws_conn_hold(ws_conn *c, unsigned bit, bool on);
unsigned ws_conn_holds(const ws_conn *c);
/* Peer address of the socket ("" when unknown). */
void ws_conn_peer(const ws_conn *c, char *addr, size_t addr_len, int *port);
/* TLS server: the SNI name the client sent, or NULL. */
const char *ws_conn_server_name(const ws_conn *c);

#endif
