/* libwebsockets echo server for the benchmarks (Debian libwebsockets 4.1).
 *   lws_echo [--deflate] [PORT]
 * --deflate accepts permessage-deflate offers (lws's own extension, default
 * settings).
 * Built by scripts/bench.sh:
 *   gcc -O2 -Wall -Wextra -o lws_echo lws_echo.c -lwebsockets
 * Prints "listening on ws://127.0.0.1:PORT/" and serves until killed.
 *
 * Every message is echoed with its own opcode.  lws hands a message over in
 * pieces (at most rx_buffer_size bytes per LWS_CALLBACK_RECEIVE, and one
 * piece per frame of a fragmented message): the pieces are appended to a
 * buffer that starts with LWS_PRE bytes of headroom, and once the last piece
 * of the message is in, that buffer moves to the connection's write queue as
 * it is (no copy).  The queue is written one message per
 * LWS_CALLBACK_SERVER_WRITEABLE, as lws wants; a write the socket does not
 * take at once is kept by lws, which holds the next WRITEABLE back until it
 * is flushed, so 1 MiB messages need no more care than that.
 *
 * Sizes: lws reads the socket through a per-thread buffer of pt_serv_buf_size
 * (64 KiB here instead of 4 KiB, so large messages are not read 4 KiB at a
 * time) and hands messages over in pieces of up to rx_buffer_size (16 KiB,
 * allocated per connection); messages themselves are limited only by
 * MAX_MESSAGE below. */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE ((size_t)64 << 20)
#define RX_PIECE 16384
#define SERV_BUF 65536

struct msg {
    struct msg *next;
    size_t len, cap;
    int binary;
    unsigned char *buf; /* LWS_PRE + cap bytes; the payload starts at buf + LWS_PRE */
};

struct conn {
    struct msg *rx;          /* message being received */
    struct msg *head, *tail; /* messages waiting to be written */
};

static void msg_free(struct msg *m)
{
    if (!m) return;
    free(m->buf);
    free(m);
}

static int rx_append(struct conn *c, const void *in, size_t len, int binary)
{
    struct msg *m = c->rx;
    if (!m) {
        m = calloc(1, sizeof *m);
        if (!m) return -1;
        m->binary = binary;
        c->rx = m;
    }
    if (m->len + len > MAX_MESSAGE) return -1;
    if (!m->buf || m->len + len > m->cap) { /* an empty message gets a buffer too */
        size_t cap = m->cap ? m->cap : 256;
        while (cap < m->len + len) cap *= 2;
        unsigned char *b = realloc(m->buf, LWS_PRE + cap);
        if (!b) return -1;
        m->buf = b;
        m->cap = cap;
    }
    if (len) memcpy(m->buf + LWS_PRE + m->len, in, len);
    m->len += len;
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(c, 0, sizeof *c);
        return 0;

    case LWS_CALLBACK_RECEIVE:
        if (rx_append(c, in, len, lws_frame_is_binary(wsi)) < 0) return -1;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            struct msg *m = c->rx;
            c->rx = NULL;
            if (c->tail) c->tail->next = m; else c->head = m;
            c->tail = m;
            lws_callback_on_writable(wsi);
        }
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE: {
        struct msg *m = c->head;
        if (!m) return 0;
        c->head = m->next;
        if (!c->head) c->tail = NULL;
        int n = lws_write(wsi, m->buf + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        size_t want = m->len;
        msg_free(m);
        if (n < 0 || (size_t)n < want) return -1;
        if (c->head) lws_callback_on_writable(wsi);
        return 0;
    }

    case LWS_CALLBACK_CLOSED:
        msg_free(c->rx);
        c->rx = NULL;
        while (c->head) {
            struct msg *m = c->head;
            c->head = m->next;
            msg_free(m);
        }
        c->tail = NULL;
        return 0;

    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static struct lws_protocols protocols[] = {
    {"echo", callback, sizeof(struct conn), RX_PIECE, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[argc - 1]) : 0;
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.pt_serv_buf_size = SERV_BUF;
    info.vhost_name = "default";
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    static const struct lws_extension exts[] = {
        {"permessage-deflate", lws_extension_callback_pm_deflate, "permessage-deflate"},
        {NULL, NULL, NULL},
    };
    if (argc > 1 && !strcmp(argv[1], "--deflate")) info.extensions = exts;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "lws_echo: lws_create_context failed\n");
        return 1;
    }
    struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "default");
    printf("listening on ws://127.0.0.1:%d/\n", vh ? lws_get_vhost_listen_port(vh) : port);
    fflush(stdout);
    while (lws_service(ctx, 1000) >= 0) {}
    lws_context_destroy(ctx);
    return 0;
}
