/* TLS over a non-blocking socket with OpenSSL 3, behind the transport
 * interface (transport.h).  No Lua, no global state (OpenSSL 3 initialises
 * itself).
 *
 * A ws_tls_ctx holds an SSL_CTX and its settings (certificates, trust
 * store, ALPN); it is reference counted and every transport made from it
 * holds a reference, so the creator may unref it while connections live.
 * Reference counts are not atomic: share a context between threads only
 * with outside locking.
 *
 * Settings: TLS 1.2 minimum, no compression, no renegotiation, partial
 * writes, moving write buffers, buffers released while idle (so the
 * transport's idle op is NULL).  Writes go through send(MSG_NOSIGNAL): a
 * vanished peer is an error, never a SIGPIPE.
 *
 * Contract for the caller of the transport ops (in addition to
 * transport.h):
 * - read: when it returns exactly n (the whole buffer), call it again
 *   before waiting for the fd: OpenSSL may hold the rest of a record that
 *   the fd no longer signals.  Reading until WS_T_AGAIN is always right.
 * - writev: after WS_T_AGAIN (or a count short of what was offered), the
 *   next writev must start with the same unaccepted bytes (it may offer
 *   more after them, in any iovec layout).  OpenSSL has already encrypted
 *   up to one record of them and requires the retry to pass them again; a
 *   queue that only drops accepted bytes from its front and appends at its
 *   end satisfies this.
 * - wants: after WS_T_AGAIN, wait for these events (a read may need the fd
 *   writable and a write may need it readable) and retry the same op.
 * - errors: the messages are "TLS certificate verify failed for HOST:
 *   REASON" (X509 verification, HOST only on clients), "TLS handshake
 *   failed: REASON", "TLS error: REASON" after the handshake, or the
 *   system error ("connection reset by peer").  An EOF without close_notify
 *   is end of stream (read returns 0), not an error: WebSocket detects
 *   truncation with its own close frame. */
#ifndef WS_TLS_H
#define WS_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "transport.h"

typedef struct ws_tls_ctx ws_tls_ctx;

typedef struct ws_tls_options {
    /* Client: verify the server's certificate chain and host name (default
     * true).  Ignored by servers (see verify_client). */
    bool verify;
    /* Server: request a client certificate, fail the handshake without one
     * and verify it against cafile/capath (default false).  Ignored by
     * clients. */
    bool verify_client;
    /* Trust store (PEM bundle / hashed directory).  Both NULL when
     * verifying: the system store. */
    const char *cafile;
    const char *capath;
    /* PEM certificate with its chain (server: required; client: optional
     * client certificate) and its PEM private key (NULL: read from cert). */
    const char *cert;
    const char *key;
    /* Optional OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites keep their
     * defaults). */
    const char *ciphers;
    /* Optional comma-separated ALPN protocols, e.g. "http/1.1": offered by
     * a client, accepted by a server (its first match in this list). */
    const char *alpn;
} ws_tls_options;

/* Defaults: verify = true, everything else off / NULL. */
void ws_tls_options_init(ws_tls_options *o);

/* A client / server context; NULL with a message in err (a file that does
 * not load, a key that does not match the certificate, a bad cipher list,
 * a server without a certificate).  The caller owns one reference. */
ws_tls_ctx *ws_tls_client_ctx_new(const ws_tls_options *o, char *err, size_t err_len);
ws_tls_ctx *ws_tls_server_ctx_new(const ws_tls_options *o, char *err, size_t err_len);

/* Take / drop a reference; the last unref frees the context. */
void ws_tls_ctx_ref(ws_tls_ctx *c);
void ws_tls_ctx_unref(ws_tls_ctx *c);

/* A client transport over a connected non-blocking socket.  Takes
 * ownership of fd (closed on failure too).  host: the server's name, sent
 * as SNI and checked against its certificate; an IPv4/IPv6 literal (with or
 * without brackets) is checked as an IP address and sends no SNI (RFC
 * 6066).  NULL: no SNI and no name check (the chain is still verified).
 * The handshake runs on the first handshake/read/writev call.  NULL with a
 * message in err when out of memory. */
ws_transport *ws_tls_client_new(ws_tls_ctx *ctx, int fd, const char *host, char *err,
                                size_t err_len);

/* A client transport whose records travel over another transport instead
 * of the fd: TLS inside TLS (a wss:// origin through an https:// proxy,
 * lower being the TLS session with the proxy).  Takes ownership of lower
 * (destroyed with this transport, and on failure); fd is lower's, wants()
 * names the events lower waits for, shutdown sends close_notify, then
 * shuts lower down.  host as for ws_tls_client_new: the inner name, never
 * lower's. */
ws_transport *ws_tls_client_over(ws_tls_ctx *ctx, ws_transport *lower, const char *host, char *err,
                                 size_t err_len);

/* A server transport over an accepted non-blocking socket; same rules. */
ws_transport *ws_tls_server_new(ws_tls_ctx *ctx, int fd, char *err, size_t err_len);

/* Server: the SNI host name the client sent (client: the one we sent), or
 * NULL.  Valid from the handshake on (NULL for a non-TLS transport). */
const char *ws_tls_server_name(const ws_transport *t);

#endif
