/* Plain TCP behind the transport interface. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"
#include "net.h"
#include "transport.h"

typedef struct tcp_transport {
    ws_transport base;
    unsigned wants;
    int err; /* errno of the last failure */
} tcp_transport;

static ssize_t tcp_read(ws_transport *t, uint8_t *buf, size_t n)
{
    tcp_transport *tt = (tcp_transport *)t;
    for (;;) {
        ssize_t r = recv(t->fd, buf, n, 0);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            tt->wants = WS_IO_READ;
            return WS_T_AGAIN;
        }
        tt->err = errno;
        return WS_T_ERROR;
    }
}

static ssize_t tcp_writev(ws_transport *t, const struct iovec *iov, int iovcnt)
{
    tcp_transport *tt = (tcp_transport *)t;
    for (;;) {
        /* send/sendmsg rather than write/writev: MSG_NOSIGNAL keeps a reset
         * peer from raising SIGPIPE in the host process.  One buffer (the
         * usual case) needs no message header. */
        ssize_t r;
        if (iovcnt == 1) {
            r = send(t->fd, iov[0].iov_base, iov[0].iov_len, WS_NET_SEND_FLAGS);
        } else {
            struct msghdr msg;
            memset(&msg, 0, sizeof msg);
            msg.msg_iov = (struct iovec *)iov;
            msg.msg_iovlen = (size_t)iovcnt;
            r = sendmsg(t->fd, &msg, WS_NET_SEND_FLAGS);
        }
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            tt->wants = WS_IO_WRITE;
            return WS_T_AGAIN;
        }
        tt->err = errno;
        return WS_T_ERROR;
    }
}

static unsigned tcp_wants(const ws_transport *t)
{
    return ((const tcp_transport *)t)->wants;
}

static void tcp_shutdown(ws_transport *t)
{
    shutdown(t->fd, SHUT_WR);
}

static void tcp_destroy(ws_transport *t)
{
    close(t->fd);
    free(t);
}

static const char *tcp_error(const ws_transport *t)
{
    int e = ((const tcp_transport *)t)->err;
    if (e == ECONNRESET)
        return "connection reset by peer";
    return e ? strerror(e) : "no error";
}

static const ws_transport_ops tcp_ops = {
    NULL, tcp_read, tcp_writev, tcp_wants, tcp_shutdown, tcp_destroy, tcp_error, NULL, true};

ws_transport *ws_tcp_transport_new(int fd)
{
    tcp_transport *tt = calloc(1, sizeof *tt);
    if (!tt) {
        close(fd);
        return NULL;
    }
    tt->base.ops = &tcp_ops;
    tt->base.fd = fd;
    return &tt->base;
}
