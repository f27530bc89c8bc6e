/* The byte stream under a connection: plain TCP or TLS behind one small
 * table of operations, so the connection code never asks which it has. */
#ifndef WS_TRANSPORT_H
#define WS_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

enum {
    WS_T_AGAIN = -1, /* would block: wait for the events wants() names */
    WS_T_ERROR = -2  /* failed: error() says why; the transport is dead */
};

typedef struct ws_transport ws_transport;

typedef struct ws_transport_ops {
    /* Finish connection set-up (the TLS handshake): 0 when done,
     * WS_T_AGAIN or WS_T_ERROR.  NULL for plain TCP, which has none (the
     * conn calls it only for TLS). */
    int (*handshake)(ws_transport *t);
    /* Up to n bytes into buf: the count, 0 at end of stream, WS_T_AGAIN or
     * WS_T_ERROR. */
    ssize_t (*read)(ws_transport *t, uint8_t *buf, size_t n);
    /* Gathered write: bytes accepted (possibly fewer than offered),
     * WS_T_AGAIN or WS_T_ERROR. */
    ssize_t (*writev)(ws_transport *t, const struct iovec *iov, int iovcnt);
    /* WS_IO_READ / WS_IO_WRITE bits the last WS_T_AGAIN waits for (TLS may
     * need to read in order to write and the other way round). */
    unsigned (*wants)(const ws_transport *t);
    /* Orderly end of our direction (FIN, TLS close_notify); best effort. */
    void (*shutdown)(ws_transport *t);
    /* Close the fd and free everything. */
    void (*destroy)(ws_transport *t);
    /* Message of the last WS_T_ERROR ("connection reset by peer",
     * "TLS certificate verify failed: ..."). */
    const char *(*error)(const ws_transport *t);
    /* Release buffers while idle (TLS); may be NULL. */
    void (*idle)(ws_transport *t);
    /* A read that returns fewer bytes than asked left nothing behind, so
     * the caller may wait for readiness instead of reading again, and the
     * bytes on the socket are the stream's, so it may pace reads with
     * SO_RCVLOWAT (plain TCP; TLS may hold a failure or decrypted bytes the
     * fd never signals). */
    bool short_read_drains;
} ws_transport_ops;

struct ws_transport {
    const ws_transport_ops *ops;
    int fd;
};

/* Plain TCP over a connected non-blocking socket; takes ownership of fd.
 * NULL when out of memory (fd is closed then). */
ws_transport *ws_tcp_transport_new(int fd);

#endif
