/* Non-blocking TCP sockets over IPv4 and IPv6, and host name resolution
 * that does not block the loop. */
#ifndef WS_NET_H
#define WS_NET_H

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "loop.h"

/* send() flags that keep a reset peer from raising SIGPIPE in the host
 * process.  Where MSG_NOSIGNAL is missing (macOS) sockets made by
 * ws_net_accept / ws_net_connect carry SO_NOSIGPIPE instead. */
#ifdef MSG_NOSIGNAL
#define WS_NET_SEND_FLAGS MSG_NOSIGNAL
#else
#define WS_NET_SEND_FLAGS 0
#endif

/* Listening socket bound to host (NULL or "*": every address; names are
 * resolved synchronously here, at start-up) and port (0: ephemeral).
 * SO_REUSEADDR always, SO_REUSEPORT when asked, non-blocking, close-on-exec.
 * Returns the fd or -1 with a message in err. */
int ws_net_listen(const char *host, int port, bool reuseport, int backlog, char *err,
                  size_t err_len);

/* Listening Unix socket at path, its mode set to mode (when >= 0).  A
 * socket file left by a process that is gone (connect refused) is removed
 * first; a path where something listens, or that is not a socket, is an
 * error.  *dev / *ino identify the file made, so the owner removes only
 * its own at close (ws_net_unlink_unix).  Returns the fd or -1 with err. */
int ws_net_listen_unix(const char *path, int mode, int backlog, unsigned long *dev,
                       unsigned long *ino, char *err, size_t err_len);

/* Remove path if it still is the socket file dev / ino. */
void ws_net_unlink_unix(const char *path, unsigned long dev, unsigned long ino);

/* Port a socket is bound to, or -1. */
int ws_net_local_port(int fd);

/* Have the socket signal readable only once `bytes` bytes are queued
 * (SO_RCVLOWAT; 1 is the default).  The kernel still signals end of
 * stream, errors and a receive window about to close.  Best effort: a
 * no-op where the option is missing. */
void ws_net_set_rcvlowat(int fd, int bytes);

/* Accept one connection: non-blocking, close-on-exec, TCP_NODELAY.  Returns
 * the fd, or -1 with errno (EAGAIN when none is waiting). */
int ws_net_accept(int listen_fd, struct sockaddr_storage *peer, socklen_t *peer_len);

/* Start a non-blocking connect (TCP_NODELAY set).  Returns the fd (the
 * connection completes when it becomes writable; check ws_net_connect_error)
 * or -1 with a message in err. */
int ws_net_connect(const struct sockaddr *addr, socklen_t len, char *err, size_t err_len);

/* 0 when the connect succeeded, else the errno value (SO_ERROR). */
int ws_net_connect_error(int fd);

/* "127.0.0.1" / "::1" and the port of an address. */
void ws_net_addr_string(const struct sockaddr *addr, char *out, size_t out_len, int *port);

/* Resolution on a helper thread; numeric hosts resolve at once without
 * one.  The callback runs on the loop with the list (freed with
 * freeaddrinfo by the callee) or NULL and a message. */
typedef struct ws_resolve ws_resolve;
typedef void (*ws_resolve_cb)(ws_loop *loop, struct addrinfo *res, const char *err, void *ud);

/* Returns a handle or NULL with err set.  Cancel the handle to drop the
 * callback; it is invalid once the callback has run. */
ws_resolve *ws_resolve_start(ws_loop *loop, const char *host, int port, ws_resolve_cb cb, void *ud,
                             char *err, size_t err_len);
void ws_resolve_cancel(ws_resolve *r);

#endif
