#include "conn.h"

#include <errno.h>
#include <netdb.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/frame.h"
#include "core/http.h"
#include "net.h"
#include "tls.h"
#include "transport.h"

enum phase {
    P_RESOLVE,   /* client: waiting for the address list */
    P_CONNECT,   /* client: TCP connect in progress */
    P_PROXY_TLS, /* client: TLS handshake with an https:// proxy */
    P_PROXY,     /* client: HTTP CONNECT through a proxy, awaiting its answer */
    P_TLS,       /* TLS handshake */
    P_ACTIVE,    /* WebSocket handshake and messages */
    P_DRAINING,  /* session closed: flushing the last bytes, maybe awaiting EOF */
    P_DONE       /* transport closed */
};

/* What the one-shot timer is counting down. */
enum { T_NONE, T_OPEN, T_PONG, T_CLOSE };

/* Timers most connections never use, apart to keep idle ones small. */
typedef struct ws_conn_extra_timers {
    ws_timer ka; /* keepalive pings */
    ws_timer idle;
} ws_conn_extra_timers;

struct ws_conn_settings {
    ws_conn_config cfg;
    unsigned refs;
};

static const ws_conn_callbacks no_callbacks = {NULL, NULL, NULL, NULL};

/* Where a client dials when it does not go straight to the origin. */
typedef struct ws_client_route {
    char *proxy_host; /* HTTP proxy (CONNECT tunnel) */
    int proxy_port;
    ws_tls_ctx *proxy_tls; /* TLS to the proxy itself; NULL: plain HTTP */
    char *answer;          /* over TLS: the proxy's answer head read so far */
    size_t answer_len;
    char *unix_path; /* Unix socket */
    char *req;       /* the CONNECT request, until it is written */
    size_t req_len, req_sent;
    size_t scanned; /* how far the proxy's answer was searched for its end */
} ws_client_route;

/* A client's dialling state, apart so server connections do not carry it. */
typedef struct ws_client_dial {
    ws_resolve *resolve;
    struct addrinfo *addrs;
    struct addrinfo *next_addr;
    char *host; /* the origin: SNI, certificate name, CONNECT target */
    int port;
    bool started; /* resolution begun */
    char connect_err[128];
    ws_client_route *route; /* proxy or Unix socket; NULL: straight to host */
    ws_tls_ctx *tls;        /* wss://: the client context; NULL: plain */
} ws_client_dial;

/* Shared frames (fan-out) queued between the session's output bytes: each
 * goes out once the session bytes queued before it are written.  Exists
 * only while some are queued. */
typedef struct shared_entry {
    ws_shared_frame *f;
    uint64_t at; /* the session output position it follows */
} shared_entry;

typedef struct ws_conn_shared {
    uint64_t out_pos; /* session output bytes written since the queue began */
    size_t head, n, cap;
    size_t off;   /* bytes of the head frame written */
    size_t bytes; /* unwritten bytes of the queued frames */
    shared_entry e[];
} ws_conn_shared;

#define READ_TURNS 64 /* reads per readiness event before yielding */

/* Events, and bytes of message data (inflated, for compressed messages),
 * one connection may deliver per loop callback before the others get
 * theirs; the rest follows on this turn's deferred pass or the next turn,
 * without waiting for new socket readiness. */
#define DISPATCH_EVENTS 256
#define DISPATCH_BYTES  (1u << 20)

struct ws_conn {
    /* First, so the loop's pointer to it is the connection's own. */
    ws_io io;               /* its fd is the connection's socket (-1: none) */
    uint32_t budget_events; /* what dispatch may still deliver in this callback */
    uint32_t budget_bytes;
    ws_loop *loop;
    ws_session *s;
    ws_transport *t;
    const ws_conn_callbacks *cb;
    void *ud;
    /* Limits and timeouts, shared with the server's other connections
     * rather than copied into each (bench/PROFILE.md, idle memory). */
    const ws_conn_config *cfg;
    ws_timer *timer;          /* open, pong or close deadline; only while armed */
    ws_conn_extra_timers *xt; /* only when keepalive or an idle timeout is set */
    ws_conn_shared *sq;       /* only while shared frames are queued */
    ws_defer_node flush;      /* in the loop's list of connections to flush */
    uint8_t phase;
    uint8_t timer_kind;
    bool write_blocked; /* the last flush could not write everything */
    bool read_more;     /* the read budget ran out with data maybe left */
    bool backlog;       /* the dispatch budget ran out with events maybe left */
    bool above_low;     /* the output went above low_water since the last drain */
    uint8_t holds;      /* WS_HOLD_* bits */
    /* Flags off the hot paths share a byte: every byte counts in an idle
     * connection (bench/PROFILE.md, idle memory). */
    bool wait_eof : 1;      /* client after a clean close: let the server close first */
    bool abort_pending : 1; /* fail on the next turn (asked from outside the loop) */
    bool secure : 1;        /* the transport is TLS */
    bool in_read : 1;       /* do_read runs: it flushes what its callbacks queue */
    bool own_session : 1;   /* s lives in this allocation (a server's connection) */
    bool got_eof : 1;
    bool ending : 1;   /* failed or got EOF: the last events go out, held or not */
    bool rcvlowat : 1; /* the socket's SO_RCVLOWAT is raised (pace_reads) */
};

/* Where a session made inside the connection's allocation starts. */
#define SESSION_AT ((sizeof(ws_conn) + 15) / 16 * 16)

/* A client's dialling state follows its connection in the same
 * allocation, where a server's connection has its session (own_session
 * tells the two apart): no pointer to it in every connection. */
#define DIAL(c) ((ws_client_dial *)(void *)((char *)(c) + SESSION_AT))

void ws_conn_config_init(ws_conn_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->open_timeout_ns = 30 * WS_NSEC_PER_SEC;
    cfg->close_timeout_ns = 5 * WS_NSEC_PER_SEC;
    cfg->max_buffered = 16u << 20;
}

ws_conn_settings *ws_conn_settings_new(const ws_conn_config *cfg)
{
    ws_conn_settings *st = malloc(sizeof *st);
    if (st) {
        st->cfg = *cfg;
        st->refs = 1;
    }
    return st;
}

void ws_conn_settings_unref(ws_conn_settings *st)
{
    if (st && --st->refs == 0)
        free(st);
}

/* The settings record a connection's cfg points into. */
static ws_conn_settings *conn_settings(const ws_conn *c)
{
    return (ws_conn_settings *)(void *)((char *)c->cfg - offsetof(ws_conn_settings, cfg));
}

static void on_io(ws_loop *loop, ws_io *io, unsigned events);
static void on_timer(ws_loop *loop, ws_timer *t, void *ud);
static void on_keepalive(ws_loop *loop, ws_timer *t, void *ud);
static void on_idle(ws_loop *loop, ws_timer *t, void *ud);
static void on_flush(ws_loop *loop, ws_defer_node *n);
static void do_flush(ws_conn *c);
static void teardown(ws_conn *c);
static void do_tls(ws_conn *c);
static void start_proxy(ws_conn *c);
static void proxy_failed(ws_conn *c, const char *why);
static void proxy_step(ws_conn *c);
static void proxy_tls_step(ws_conn *c);
static void proxy_answered(ws_conn *c, char *head, size_t len);
static void route_free(ws_client_route *r);

/* st: a reference the connection takes over (dropped here on failure).
 * s: the caller's session, or NULL to make one from sst inside the
 * connection's own allocation (one allocation fewer per connection). */
static ws_conn *conn_new(ws_loop *loop, ws_conn_settings *st, const ws_conn_callbacks *cb, void *ud,
                         ws_session *s, ws_session_settings *sst)
{
    ws_conn *c = calloc(1, SESSION_AT + (s ? sizeof(ws_client_dial) : ws_session_size()));
    if (c && !s) {
        s = (ws_session *)(void *)((char *)c + SESSION_AT);
        if (ws_session_init(s, sst) == 0) {
            c->own_session = true;
        } else {
            free(c);
            c = NULL;
        }
    }
    if (!c) {
        ws_conn_settings_unref(st);
        return NULL;
    }
    c->loop = loop;
    c->s = s;
    c->cb = cb;
    c->ud = ud;
    c->cfg = &st->cfg;
    ws_io_init(&c->io, -1);
    if (st->cfg.ping_interval_ns || st->cfg.idle_timeout_ns) {
        if (!(c->xt = malloc(sizeof *c->xt))) {
            ws_conn_settings_unref(st);
            if (c->own_session)
                ws_session_fini(s);
            free(c);
            return NULL;
        }
        ws_timer_init(&c->xt->ka, on_keepalive, c);
        ws_timer_init(&c->xt->idle, on_idle, c);
    }
    if (!c->own_session) /* (a shared configuration names the pool) */
        ws_session_set_output_pool(s, ws_loop_output_pool(loop));
    return c;
}

/* Traffic: the idle timeout starts over. */
static void touch_idle(ws_conn *c)
{
    if (c->xt && ws_timer_active(&c->xt->idle))
        ws_timer_again(&c->xt->idle);
}

static void stop_extra_timers(ws_conn *c)
{
    if (c->xt) {
        ws_timer_stop(&c->xt->ka);
        ws_timer_stop(&c->xt->idle);
    }
}

static void arm(ws_conn *c, int kind, uint64_t after_ns)
{
    if (after_ns && !c->timer && (c->timer = malloc(sizeof *c->timer)) != NULL)
        ws_timer_init(c->timer, on_timer, c);
    if (!after_ns || !c->timer) {
        /* Disarmed (or no memory for a deadline): an idle connection
         * carries no timer. */
        if (c->timer) {
            ws_timer_stop(c->timer);
            free(c->timer);
            c->timer = NULL;
        }
        c->timer_kind = T_NONE;
        return;
    }
    ws_timer_stop(c->timer);
    c->timer_kind = (uint8_t)kind;
    ws_timer_start(c->loop, c->timer, after_ns, 0);
}

static bool has_output(const ws_conn *c)
{
    return ws_session_output_size(c->s) > 0 || c->sq;
}

static size_t buffered(const ws_conn *c)
{
    size_t n = ws_session_output_size(c->s);
    return c->sq ? n + c->sq->bytes : n;
}

/* Session output bytes (of n at pos) that go before the i-th shared frame. */
static size_t session_before(const ws_conn_shared *q, size_t i, uint64_t pos, size_t n)
{
    uint64_t d = q->e[i].at - pos;
    return d < n ? (size_t)d : n;
}

#define WRITE_IOV 16

/* One write of the queued output, the shared frames in their places. */
static ssize_t write_some(ws_conn *c)
{
    size_t n;
    const uint8_t *p = ws_session_output(c->s, &n);
    const ws_conn_shared *q = c->sq;
    if (!q) {
        struct iovec one = {(void *)p, n};
        return c->t->ops->writev(c->t, &one, 1);
    }
    struct iovec iov[WRITE_IOV];
    int k = 0;
    uint64_t pos = q->out_pos;
    size_t off = q->off;
    for (size_t i = q->head; k < WRITE_IOV; i++) {
        size_t before = i < q->n ? session_before(q, i, pos, n) : n;
        if (before) {
            iov[k].iov_base = (void *)p;
            iov[k++].iov_len = before;
            p += before;
            n -= before;
            pos += before;
        }
        if (i == q->n || k == WRITE_IOV)
            break;
        iov[k].iov_base = (void *)(q->e[i].f->bytes + off);
        iov[k++].iov_len = q->e[i].f->len - off;
        off = 0;
    }
    return c->t->ops->writev(c->t, iov, k);
}

/* w bytes of write_some's were written. */
static void consume(ws_conn *c, size_t w)
{
    ws_conn_shared *q = c->sq;
    while (w > 0 && q) {
        size_t before = session_before(q, q->head, q->out_pos, ws_session_output_size(c->s));
        if (before) {
            size_t k = w < before ? w : before;
            ws_session_output_consume(c->s, k);
            q->out_pos += k;
            w -= k;
            continue;
        }
        ws_shared_frame *f = q->e[q->head].f;
        size_t k = f->len - q->off < w ? f->len - q->off : w;
        q->off += k;
        q->bytes -= k;
        w -= k;
        if (q->off == f->len) {
            ws_shared_frame_unref(f);
            q->off = 0;
            if (++q->head == q->n) {
                free(q);
                c->sq = q = NULL;
            }
        }
    }
    if (w)
        ws_session_output_consume(c->s, w);
}

static void drop_shared(ws_conn *c)
{
    ws_conn_shared *q = c->sq;
    if (!q)
        return;
    for (size_t i = q->head; i < q->n; i++)
        ws_shared_frame_unref(q->e[i].f);
    free(q);
    c->sq = NULL;
}

/* Reading and delivering are held (pause, or a full receive queue). */
static bool holding(const ws_conn *c)
{
    return c->holds && !c->ending && c->phase == P_ACTIVE && ws_session_state(c->s) == WS_OPEN;
}

/* A fresh dispatch budget for this loop callback. */
static void refill(ws_conn *c)
{
    c->budget_events = DISPATCH_EVENTS;
    c->budget_bytes = DISPATCH_BYTES;
}

static void set_interest(ws_conn *c);

static inline void update_interest(ws_conn *c)
{
    /* The common case, after most reads and flushes: open, neither held
     * nor blocked, and already waiting for reads only (checked in place:
     * no call). */
    if (c->phase == P_ACTIVE && c->io.events == WS_IO_READ && !c->holds && !c->write_blocked &&
        ws_io_active(&c->io))
        return;
    set_interest(c);
}

static void set_interest(ws_conn *c)
{
    if (c->phase == P_DONE || c->io.fd < 0)
        return;
    unsigned want = 0;
    switch (c->phase) {
    case P_CONNECT: want = WS_IO_WRITE; break;
    case P_PROXY:
        if (c->t) /* TLS to the proxy: what its last WS_T_AGAIN waits for */
            want = c->t->ops->wants(c->t);
        else
            want = DIAL(c)->route->req_sent < DIAL(c)->route->req_len ? WS_IO_WRITE : WS_IO_READ;
        break;
    case P_PROXY_TLS: want = c->t->ops->wants(c->t); break;
    case P_TLS: want = c->t->ops->wants(c->t); break;
    case P_ACTIVE:
        want = holding(c) ? 0 : WS_IO_READ;
        if (has_output(c))
            want |= c->write_blocked ? (WS_IO_WRITE | c->t->ops->wants(c->t)) : 0;
        break;
    case P_DRAINING:
        want = c->wait_eof ? WS_IO_READ : 0;
        if (has_output(c))
            want |= WS_IO_WRITE | c->t->ops->wants(c->t);
        break;
    default: break;
    }
    if (want == 0 && !holding(c))
        want = WS_IO_READ; /* still notice resets (held: hang-ups still come) */
    if (!ws_io_active(&c->io))
        ws_io_start(c->loop, &c->io, on_io, want);
    else if (want != c->io.events)
        ws_io_modify(c->loop, &c->io, want);
}

static void schedule_flush(ws_conn *c)
{
    if (c->phase != P_DONE && !ws_defer_node_queued(&c->flush))
        ws_loop_defer_node(c->loop, &c->flush, on_flush);
}

/* Deliver pending session events to the owner while not held and within
 * the budget (an unbudgeted pass delivers everything: the connection is
 * ending). */
static void dispatch_some(ws_conn *c, bool budgeted)
{
    ws_event ev;
    c->backlog = false;
    while (c->phase != P_DONE && !holding(c)) {
        if (budgeted && (c->budget_events == 0 || c->budget_bytes == 0)) {
            c->backlog = true;
            break;
        }
        int got = ws_session_next(c->s, &ev);
        if (!got)
            break;
        if (budgeted) {
            c->budget_events--;
            c->budget_bytes -= ev.len < c->budget_bytes ? (uint32_t)ev.len : c->budget_bytes;
        }
        if (ev.type == WS_EV_PROGRESS)
            continue; /* inflating: work done, nothing to deliver */
        switch (ev.type) {
        case WS_EV_OPEN:
            arm(c, T_NONE, 0);
            if (c->xt && c->cfg->ping_interval_ns)
                ws_timer_start(c->loop, &c->xt->ka, c->cfg->ping_interval_ns,
                               c->cfg->ping_interval_ns);
            if (c->xt && c->cfg->idle_timeout_ns)
                ws_timer_start(c->loop, &c->xt->idle, c->cfg->idle_timeout_ns, 0);
            break;
        case WS_EV_MESSAGE:
        case WS_EV_FRAGMENT: touch_idle(c); break;
        default: break;
        }
        c->cb->event(c, &ev, c->ud);
        /* Spare the call that would find nothing (2: the session knew it
         * before the callback, which cannot give it more input). */
        if (c->phase != P_DONE && (got == 2 || ws_session_drained(c->s)))
            break;
    }
    if (c->phase == P_DONE)
        return;
    int state = ws_session_state(c->s);
    if (state == WS_CLOSED && c->phase <= P_ACTIVE) {
        /* Flush the last bytes (a close frame, an HTTP answer), then close
         * the transport; a client that closed cleanly lets the server close
         * TCP first (RFC 6455 7.1.1). */
        c->phase = P_DRAINING;
        stop_extra_timers(c);
        c->wait_eof = ws_session_role(c->s) == WS_CLIENT && !c->got_eof && c->t;
        arm(c, T_CLOSE, c->cfg->close_timeout_ns);
    } else if (state == WS_CLOSING && c->timer_kind != T_CLOSE) {
        arm(c, T_CLOSE, c->cfg->close_timeout_ns);
    }
    /* Only when there is something to do: the flush pass dispatches too, so
     * an unconditional reschedule would spin the loop while idle, and so
     * would one while the socket is full (its write readiness wakes us). */
    if (c->backlog ||
        (!c->write_blocked && (c->phase == P_DRAINING || (!c->in_read && has_output(c)))))
        schedule_flush(c);
}

static void dispatch(ws_conn *c)
{
    dispatch_some(c, true);
}

static void fail(ws_conn *c, const char *msg)
{
    if (c->phase == P_DONE)
        return;
    if (msg && c->cb->error)
        c->cb->error(c, msg, c->ud);
    if (c->phase == P_DONE)
        return;
    c->ending = true; /* what was received is delivered before the close */
    ws_session_eof(c->s);
    dispatch_some(c, false);
    teardown(c);
}

/* Called by the owner, maybe outside any loop callback: the failure and
 * its close event happen on the next loop turn, where callbacks can run. */
void ws_conn_abort(ws_conn *c)
{
    if (c->phase == P_DONE)
        return;
    c->abort_pending = true;
    schedule_flush(c);
}

static void teardown(ws_conn *c)
{
    if (c->phase == P_DONE)
        return;
    c->phase = P_DONE;
    drop_shared(c);
    ws_session_set_output_pool(c->s, NULL); /* the session may outlive the loop */
    arm(c, T_NONE, 0);
    stop_extra_timers(c);
    ws_defer_node_cancel(&c->flush);
    if (ws_io_active(&c->io))
        ws_io_stop(c->loop, &c->io);
    if (!c->own_session && DIAL(c)->resolve) {
        ws_resolve_cancel(DIAL(c)->resolve);
        DIAL(c)->resolve = NULL;
    }
    if (!c->own_session && DIAL(c)->addrs) {
        freeaddrinfo(DIAL(c)->addrs);
        DIAL(c)->addrs = NULL;
    }
    if (c->t) {
        c->t->ops->destroy(c->t); /* closes the fd */
        c->t = NULL;
    } else if (c->io.fd >= 0) {
        close(c->io.fd);
    }
    c->io.fd = -1;
    if (c->cb->closed)
        c->cb->closed(c, c->ud);
}

/* ---- client connect ---------------------------------------------------- */

/* The origin's transport, once connected (and tunnelled).  Through an
 * https:// proxy c->t is already the TLS session with the proxy: a ws://
 * origin speaks inside it, a wss:// origin's TLS runs over it. */
static void start_transport(ws_conn *c)
{
    char err[256];
    if (DIAL(c)->tls) {
        if (c->t) {
            ws_transport *outer = c->t;
            c->t = NULL;
            c->t = ws_tls_client_over(DIAL(c)->tls, outer, DIAL(c)->host, err, sizeof err);
        } else {
            c->t = ws_tls_client_new(DIAL(c)->tls, c->io.fd, DIAL(c)->host, err, sizeof err);
        }
        if (!c->t) {
            c->io.fd = -1; /* closed by ws_tls_client_new / _over */
            fail(c, err);
            return;
        }
        c->phase = P_TLS;
        c->secure = true;
        do_tls(c); /* the client speaks first */
        return;
    }
    if (!c->t && !(c->t = ws_tcp_transport_new(c->io.fd))) {
        c->io.fd = -1;
        fail(c, "out of memory");
        return;
    }
    c->phase = P_ACTIVE;
    schedule_flush(c);
    update_interest(c);
}

static const char *dial_host(const ws_conn *c)
{
    const ws_client_route *r = DIAL(c)->route;
    return r && r->proxy_host ? r->proxy_host : DIAL(c)->host;
}

static int dial_port(const ws_conn *c)
{
    const ws_client_route *r = DIAL(c)->route;
    return r && r->proxy_host ? r->proxy_port : DIAL(c)->port;
}

static void dial_failed(ws_conn *c)
{
    const ws_client_route *r = DIAL(c)->route;
    const char *why = DIAL(c)->connect_err[0] ? DIAL(c)->connect_err : "no address";
    char msg[400];
    if (r && r->unix_path)
        snprintf(msg, sizeof msg, "cannot connect to Unix socket %s: %s", r->unix_path, why);
    else
        snprintf(msg, sizeof msg, "cannot connect to %s%s port %d: %s",
                 r && r->proxy_host ? "proxy " : "", dial_host(c), dial_port(c), why);
    fail(c, msg);
}

static void start_connect(ws_conn *c, int fd)
{
    c->phase = P_CONNECT;
    ws_io_init(&c->io, fd);
    update_interest(c);
}

static void connect_unix(ws_conn *c)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    const char *path = DIAL(c)->route->unix_path;
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(DIAL(c)->connect_err, sizeof DIAL(c)->connect_err, "path too long");
        dial_failed(c);
        return;
    }
    memcpy(sa.sun_path, path, strlen(path));
    char err[128];
    int fd = ws_net_connect((struct sockaddr *)&sa, sizeof sa, err, sizeof err);
    if (fd < 0) {
        snprintf(DIAL(c)->connect_err, sizeof DIAL(c)->connect_err, "%s", err);
        dial_failed(c);
        return;
    }
    start_connect(c, fd);
}

static void try_connect(ws_conn *c)
{
    while (DIAL(c)->next_addr) {
        struct addrinfo *ai = DIAL(c)->next_addr;
        DIAL(c)->next_addr = ai->ai_next;
        char err[128];
        int fd = ws_net_connect(ai->ai_addr, ai->ai_addrlen, err, sizeof err);
        if (fd < 0) {
            snprintf(DIAL(c)->connect_err, sizeof DIAL(c)->connect_err, "%s", err);
            continue;
        }
        start_connect(c, fd);
        return;
    }
    dial_failed(c);
}

/* A failed lookup of the proxy's name says it was the proxy's. */
static void resolve_failed(ws_conn *c, const char *err)
{
    if (DIAL(c)->route && DIAL(c)->route->proxy_host)
        proxy_failed(c, err);
    else
        fail(c, err);
}

static void on_resolved(ws_loop *loop, struct addrinfo *res, const char *err, void *ud)
{
    (void)loop;
    ws_conn *c = ud;
    DIAL(c)->resolve = NULL;
    if (!res) {
        resolve_failed(c, err);
        return;
    }
    DIAL(c)->addrs = DIAL(c)->next_addr = res;
    try_connect(c);
}

static void start_resolve(ws_conn *c)
{
    DIAL(c)->started = true;
    if (DIAL(c)->route && DIAL(c)->route->unix_path) {
        connect_unix(c);
        return;
    }
    /* Numeric hosts need no lookup thread. */
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    char port[16];
    snprintf(port, sizeof port, "%d", dial_port(c));
    if (getaddrinfo(dial_host(c), port, &hints, &res) == 0) {
        on_resolved(c->loop, res, NULL, c);
        return;
    }
    char err[256];
    DIAL(c)->resolve =
        ws_resolve_start(c->loop, dial_host(c), dial_port(c), on_resolved, c, err, sizeof err);
    if (!DIAL(c)->resolve)
        resolve_failed(c, err);
}

ws_conn *ws_conn_connect(ws_loop *loop, const ws_conn_config *cfg, const ws_conn_callbacks *cb,
                         void *ud, ws_session *s, const char *host, int port, ws_tls_ctx *tls,
                         char *err, size_t err_len)
{
    ws_conn_settings *st = ws_conn_settings_new(cfg);
    ws_conn *c = st ? conn_new(loop, st, cb, ud, s, NULL) : NULL;
    if (c)
        DIAL(c)->host = strdup(host);
    if (!c || !DIAL(c)->host) {
        if (c) {
            ws_conn_settings_unref(conn_settings(c));
            free(c->xt);
        }
        free(c);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    DIAL(c)->port = port;
    if (tls) {
        ws_tls_ctx_ref(tls);
        DIAL(c)->tls = tls;
    }
    c->phase = P_RESOLVE;
    arm(c, T_OPEN, cfg->open_timeout_ns);
    /* Start on the next turn so failures reach callbacks the caller has
     * finished installing. */
    ws_loop_defer_node(loop, &c->flush, on_flush);
    return c;
}

static void route_free(ws_client_route *r)
{
    if (r) {
        ws_tls_ctx_unref(r->proxy_tls);
        free(r->answer);
        free(r->proxy_host);
        free(r->unix_path);
        free(r->req);
        free(r);
    }
}

static ws_client_route *route_of(ws_conn *c)
{
    if (c->own_session || c->phase != P_RESOLVE || DIAL(c)->started)
        return NULL;
    if (!DIAL(c)->route)
        DIAL(c)->route = calloc(1, sizeof(ws_client_route));
    return DIAL(c)->route;
}

int ws_conn_set_proxy(ws_conn *c, const char *host, int port, const char *auth, ws_tls_ctx *tls)
{
    ws_client_route *r = route_of(c);
    if (!r || r->unix_path)
        return -1;
    if (tls)
        ws_tls_ctx_ref(tls);
    ws_tls_ctx_unref(r->proxy_tls);
    r->proxy_tls = tls;
    /* RFC 9110 9.3.6: the target is the origin's authority. */
    const char *h = DIAL(c)->host;
    bool v6 = strchr(h, ':') != NULL;
    size_t cap = strlen(h) + (auth ? strlen(auth) : 0) + 200;
    free(r->proxy_host);
    free(r->req);
    r->proxy_host = strdup(host);
    r->req = malloc(cap);
    if (!r->proxy_host || !r->req)
        return -1;
    int n = snprintf(r->req, cap, "CONNECT %s%s%s:%d HTTP/1.1\r\nHost: %s%s%s:%d\r\n%s%s%s\r\n",
                     v6 ? "[" : "", h, v6 ? "]" : "", DIAL(c)->port, v6 ? "[" : "", h,
                     v6 ? "]" : "", DIAL(c)->port, auth ? "Proxy-Authorization: " : "",
                     auth ? auth : "", auth ? "\r\n" : "");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    r->req_len = (size_t)n;
    r->proxy_port = port;
    return 0;
}

int ws_conn_set_unix(ws_conn *c, const char *path)
{
    ws_client_route *r = route_of(c);
    if (!r || r->proxy_host)
        return -1;
    free(r->unix_path);
    r->unix_path = strdup(path);
    return r->unix_path ? 0 : -1;
}

/* ---- proxy tunnel ------------------------------------------------------- */

#define PROXY_HEAD_MAX 8192

static void proxy_failed(ws_conn *c, const char *why)
{
    char msg[600];
    const ws_client_route *r = DIAL(c)->route;
    snprintf(msg, sizeof msg, "proxy %s port %d: %s", r->proxy_host, r->proxy_port,
             why ? why : "failed"); /* (gcc sees a NULL `why` through an inlined caller) */
    fail(c, msg);
}

static void start_proxy(ws_conn *c)
{
    ws_client_route *r = DIAL(c)->route;
    if (r->proxy_tls && !c->t) {
        /* https:// proxy: TLS with the proxy first, verified against its
         * name; the CONNECT exchange runs inside it. */
        char err[256];
        c->t = ws_tls_client_new(r->proxy_tls, c->io.fd, r->proxy_host, err, sizeof err);
        if (!c->t) {
            c->io.fd = -1; /* closed by ws_tls_client_new */
            proxy_failed(c, err);
            return;
        }
        c->phase = P_PROXY_TLS;
        proxy_tls_step(c);
        return;
    }
    c->phase = P_PROXY;
    proxy_step(c);
}

static void proxy_tls_step(ws_conn *c)
{
    int r = c->t->ops->handshake(c->t);
    if (r == WS_T_AGAIN) {
        update_interest(c);
        return;
    }
    if (r == WS_T_ERROR) {
        proxy_failed(c, c->t->ops->error(c->t));
        return;
    }
    start_proxy(c);
}

/* Read the proxy's answer head a byte at a time into r->answer, never past
 * its end: what follows belongs to the next layer (TLS or the session).
 * Over TLS the bytes come from OpenSSL's decrypted record; over TCP each is
 * one recv, for a head of a few hundred bytes once per connection (peeking
 * instead could not wait for the rest of a head: the fd stays readable
 * while peeked bytes are unread).  Returns the head's length, 0 while
 * waiting, -1 after failing. */
static long proxy_read_answer(ws_conn *c)
{
    ws_client_route *r = DIAL(c)->route;
    if (!r->answer && !(r->answer = malloc(PROXY_HEAD_MAX))) {
        fail(c, "out of memory");
        return -1;
    }
    for (;;) {
        long end = ws_http_head_end(r->answer, r->answer_len, &r->scanned, PROXY_HEAD_MAX);
        if (end != WS_E_NEED_MORE)
            return end > 0 ? end : (proxy_failed(c, "sent an invalid answer to CONNECT"), -1);
        if (r->answer_len == PROXY_HEAD_MAX) {
            proxy_failed(c, "sent an invalid answer to CONNECT");
            return -1;
        }
        uint8_t *at = (uint8_t *)r->answer + r->answer_len;
        const char *error = NULL;
        ssize_t got;
        if (c->t) {
            got = c->t->ops->read(c->t, at, 1);
            if (got == WS_T_ERROR)
                error = c->t->ops->error(c->t);
        } else {
            got = recv(c->io.fd, at, 1, 0);
            if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                got = WS_T_AGAIN;
            else if (got < 0)
                error = strerror(errno);
        }
        if (got == WS_T_AGAIN) {
            update_interest(c);
            return 0;
        }
        if (got <= 0) {
            char why[400];
            snprintf(why, sizeof why, "closed the connection before answering CONNECT%s%s",
                     error ? ": " : "", error ? error : "");
            proxy_failed(c, why);
            return -1;
        }
        r->answer_len++;
    }
}

/* Write the CONNECT request, then read the whole answer head. */
static void proxy_step(ws_conn *c)
{
    ws_client_route *r = DIAL(c)->route;
    while (r->req_sent < r->req_len) {
        ssize_t w;
        if (c->t) {
            struct iovec iov = {r->req + r->req_sent, r->req_len - r->req_sent};
            w = c->t->ops->writev(c->t, &iov, 1);
            if (w == WS_T_ERROR) {
                proxy_failed(c, c->t->ops->error(c->t));
                return;
            }
        } else {
            w = send(c->io.fd, r->req + r->req_sent, r->req_len - r->req_sent, WS_NET_SEND_FLAGS);
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                w = WS_T_AGAIN;
            else if (w < 0) {
                proxy_failed(c, strerror(errno));
                return;
            }
        }
        if (w == WS_T_AGAIN) {
            update_interest(c);
            return;
        }
        r->req_sent += (size_t)w;
    }
    long end = proxy_read_answer(c);
    if (end > 0)
        proxy_answered(c, r->answer, (size_t)end);
}

/* The proxy's answer head (all of it, consumed): on 2xx the tunnel is
 * open and the origin's transport starts. */
static void proxy_answered(ws_conn *c, char *head, size_t len)
{
    ws_client_route *r = DIAL(c)->route;
    char msg[PROXY_HEAD_MAX + 128];
    ws_http_header hdrs[64];
    ws_http_head h;
    memset(&h, 0, sizeof h);
    h.headers = hdrs;
    h.num_headers = sizeof hdrs / sizeof hdrs[0];
    if (ws_http_parse_response(head, len, &h) != WS_OK) {
        snprintf(msg, sizeof msg, "proxy %s port %d sent an invalid answer to CONNECT",
                 r->proxy_host, r->proxy_port);
        fail(c, msg);
        return;
    }
    if (h.status < 200 || h.status > 299) {
        snprintf(msg, sizeof msg, "proxy answered %d %.*s", h.status, (int)h.reason_len, h.reason);
        fail(c, msg);
        return;
    }
    free(r->req);
    r->req = NULL;
    r->req_len = r->req_sent = 0;
    free(r->answer);
    r->answer = NULL;
    ws_io_stop(c->loop, &c->io); /* restarted with the transport's interest */
    start_transport(c);
}

/* ---- server accept ---------------------------------------------------- */

ws_conn *ws_conn_accept(ws_loop *loop, ws_conn_settings *st, ws_session_settings *sst,
                        const ws_conn_callbacks *cb, void *ud, int fd, ws_tls_ctx *tls, char *err,
                        size_t err_len)
{
    st->refs++;
    ws_conn *c = conn_new(loop, st, cb, ud, NULL, sst);
    if (!c) {
        close(fd);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    ws_io_init(&c->io, fd);
    c->t = tls ? ws_tls_server_new(tls, fd, err, err_len) : ws_tcp_transport_new(fd);
    if (!c->t) {
        if (!tls)
            snprintf(err, err_len, "out of memory");
        ws_conn_settings_unref(st);
        ws_session_fini(c->s);
        free(c->xt);
        free(c);
        return NULL;
    }
    c->phase = tls ? P_TLS : P_ACTIVE;
    c->secure = tls != NULL;
    arm(c, T_OPEN, st->cfg.open_timeout_ns);
    update_interest(c);
    return c;
}

void ws_conn_free(ws_conn *c)
{
    if (!c)
        return;
    c->cb = &no_callbacks;
    if (c->phase != P_DONE) {
        /* No callbacks: the owner is going away. */
        c->phase = P_DRAINING;
        teardown(c);
    }
    if (c->own_session)
        ws_session_fini(c->s);
    else
        ws_session_free(c->s);
    if (!c->own_session) {
        if (DIAL(c)->tls)
            ws_tls_ctx_unref(DIAL(c)->tls);
        free(DIAL(c)->host);
        route_free(DIAL(c)->route);
    }
    if (c->timer) /* armed after the transport closed */
        ws_timer_stop(c->timer);
    free(c->timer);
    free(c->xt);
    ws_conn_settings_unref(conn_settings(c));
    free(c);
}

void ws_conn_goodbye(ws_conn *c, int code, const char *reason)
{
    c->cb = &no_callbacks;
    if (c->phase != P_ACTIVE && c->phase != P_DRAINING)
        return;
    if (ws_session_state(c->s) == WS_OPEN)
        ws_session_close(c->s, code, (const uint8_t *)reason, strlen(reason));
    while (buffered(c)) {
        ssize_t w = write_some(c);
        if (w <= 0)
            break;
        consume(c, (size_t)w);
    }
    if (ws_session_role(c->s) == WS_SERVER)
        c->t->ops->shutdown(c->t);
}

bool ws_conn_finished(const ws_conn *c)
{
    return c->phase == P_DONE;
}

uint64_t ws_conn_close_timeout(const ws_conn *c)
{
    return c->cfg->close_timeout_ns;
}

ws_session *ws_conn_session(ws_conn *c)
{
    return c->s;
}

size_t ws_conn_buffered(const ws_conn *c)
{
    return buffered(c);
}

void ws_conn_peer(const ws_conn *c, char *addr, size_t addr_len, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    addr[0] = '\0';
    *port = -1;
    int fd = c->t ? c->t->fd : c->io.fd;
    if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        ws_net_addr_string((struct sockaddr *)&ss, addr, addr_len, port);
}

const char *ws_conn_server_name(const ws_conn *c)
{
    return c->secure && c->t ? ws_tls_server_name(c->t) : NULL;
}

/* ---- I/O ---------------------------------------------------------------- */

static void do_tls(ws_conn *c)
{
    int r = c->t->ops->handshake(c->t);
    if (r == WS_T_AGAIN) {
        update_interest(c);
        return;
    }
    if (r == WS_T_ERROR) {
        fail(c, c->t->ops->error(c->t));
        return;
    }
    c->phase = P_ACTIVE;
    schedule_flush(c);
    update_interest(c);
}

static void read_and_dispatch(ws_conn *c);

/* Replies queued by the callbacks of a read are flushed at its end (one
 * write for them all), not scheduled one by one. */
static void do_read(ws_conn *c)
{
    bool outer = !c->in_read;
    c->in_read = true;
    read_and_dispatch(c);
    if (outer)
        c->in_read = false;
}

/* While a large frame's payload arrives, the socket is asked to signal
 * readable only once a good part of the rest is there (SO_RCVLOWAT): a
 * fast reader otherwise wakes for every few dozen KiB the sender gets
 * through, and each wake-up and read costs both sides (bench/PROFILE.md,
 * SO_RCVLOWAT).  Only the payload's own bytes are waited for: nothing
 * else can be read before them.  Only where the socket's bytes are the
 * stream's (plain TCP: not TLS, to the origin or to an https:// proxy,
 * which may hold part of a record the socket no longer counts); not while
 * a pong is awaited (any byte shows the peer is alive). */
#define PACE_FROM ((size_t)256 << 10) /* a rest smaller than this is read as it comes */
#define PACE_MAX  ((size_t)1 << 20)   /* at most this much waited for at once */

static void set_rcvlowat(ws_conn *c, size_t bytes)
{
    ws_net_set_rcvlowat(c->t->fd, (int)bytes);
    c->rcvlowat = bytes > 1;
}

static void pace_reads(ws_conn *c)
{
    size_t rest = 0;
    if (c->phase == P_ACTIVE && c->t->ops->short_read_drains && c->timer_kind != T_PONG)
        rest = ws_session_payload_rest(c->s);
    if (rest >= PACE_FROM)
        set_rcvlowat(c, rest < PACE_MAX ? rest : PACE_MAX);
    else if (c->rcvlowat)
        set_rcvlowat(c, 1);
}

static void read_and_dispatch(ws_conn *c)
{
    if (c->backlog && c->phase == P_ACTIVE) {
        /* Deliver what was received before reading more. */
        dispatch(c);
        if (c->phase == P_DONE)
            return;
    }
    bool large = c->rcvlowat; /* a large frame's payload is (or was) arriving */
    int turn;
    for (turn = 0; turn < READ_TURNS && c->phase >= P_ACTIVE && c->phase != P_DONE && !holding(c) &&
                   !c->backlog;
         turn++) {
        /* A large frame's payload goes straight into the session's buffer;
         * everything else through the loop's shared one. */
        size_t size;
        uint8_t *buf = c->phase == P_ACTIVE ? ws_session_feed_space(c->s, &size) : NULL;
        bool direct = buf != NULL;
        if (!direct)
            buf = ws_loop_read_buffer(c->loop, &size);
        ssize_t r = c->t->ops->read(c->t, buf, size);
        if (r == WS_T_AGAIN)
            break;
        if (r == WS_T_ERROR) {
            fail(c, c->t->ops->error(c->t));
            return;
        }
        if (r == 0) {
            c->got_eof = true;
            break;
        }
        if (c->timer_kind == T_PONG)
            arm(c, T_NONE, 0); /* any byte shows the peer is alive */
        if (c->phase == P_DRAINING)
            continue; /* after the close nothing is read, only awaited */
        /* The loop's buffer is lent to the session for this dispatch;
         * what the events leave unread is copied before the next read. */
        if (direct) {
            ws_session_feed_commit(c->s, (size_t)r);
        } else if (ws_session_feed_lent(c->s, buf, (size_t)r) != WS_OK) {
            fail(c, "out of memory");
            return;
        }
        dispatch(c);
        int kept = ws_session_keep_input(c->s);
        if (kept < 0) {
            fail(c, "out of memory");
            return;
        }
        if (kept > 0)
            large = true;
        if (c->phase != P_DONE && (size_t)r < size && c->t->ops->short_read_drains)
            break; /* the socket is empty: a further read would only fail */
    }
    if (c->phase == P_DONE)
        return;
    if (large) /* (small messages: no call) */
        pace_reads(c);
    if (turn == READ_TURNS) {
        /* Budget spent: let other connections run, and come back on this
         * turn's deferred pass (TLS may hold decrypted bytes the fd no
         * longer signals). */
        c->read_more = true;
        schedule_flush(c);
    }
    if (c->got_eof) {
        if (c->phase == P_DRAINING) {
            if (!has_output(c))
                teardown(c);
            return;
        }
        c->ending = true;
        ws_session_eof(c->s);
        dispatch_some(c, false);
        if (c->phase != P_DONE && !has_output(c))
            teardown(c);
        return;
    }
    if (c->phase == P_ACTIVE && !c->write_blocked && has_output(c)) {
        /* The replies to what was just read go out now, one write for the
         * whole read; the deferred pass is left only what else it has (an
         * on_drain run by this flush may have queued more). */
        do_flush(c);
        if (c->phase != P_ACTIVE)
            return;
        if (!c->write_blocked && has_output(c))
            schedule_flush(c); /* an on_drain run by this flush queued more */
        else if (!c->backlog && !c->read_more && !c->abort_pending)
            ws_defer_node_cancel(&c->flush);
        return;
    }
    if (c->phase == P_DRAINING || (c->phase == P_ACTIVE && !c->write_blocked && has_output(c)))
        schedule_flush(c);
    update_interest(c);
}

static void do_flush(ws_conn *c)
{
    if (c->phase < P_ACTIVE || c->phase == P_DONE)
        return;
    size_t n = buffered(c);
    while (n) {
        ssize_t w = write_some(c);
        if (w == WS_T_AGAIN) {
            c->write_blocked = true;
            break;
        }
        if (w == WS_T_ERROR) {
            fail(c, c->t->ops->error(c->t));
            return;
        }
        if ((size_t)w == n && !c->sq) { /* most flushes: one write took it all */
            ws_session_output_written(c->s);
            n = 0;
            break;
        }
        consume(c, (size_t)w);
        n = buffered(c);
    }
    if (n == 0) {
        c->write_blocked = false;
        if (c->phase == P_DRAINING) {
            if (!c->wait_eof || c->got_eof) {
                if (ws_session_role(c->s) == WS_SERVER)
                    c->t->ops->shutdown(c->t);
                teardown(c);
                return;
            }
        }
    }
    if (n > c->cfg->low_water) {
        c->above_low = true;
    } else if (c->above_low && c->phase == P_ACTIVE) {
        c->above_low = false;
        if (c->cb->drain) {
            c->cb->drain(c, c->ud);
            if (c->phase == P_DONE)
                return;
        }
    }
    update_interest(c);
}

/* The connection holding a watcher or flush node. */
#define CONN_OF(p, member) ((ws_conn *)(void *)((char *)(p)-offsetof(ws_conn, member)))

static void on_flush(ws_loop *loop, ws_defer_node *n)
{
    (void)loop;
    ws_conn *c = CONN_OF(n, flush);
    if (c->abort_pending) {
        fail(c, NULL);
        return;
    }
    refill(c);
    if (c->phase == P_RESOLVE && !c->own_session && !DIAL(c)->started) {
        start_resolve(c);
        return;
    }
    if (c->read_more && c->phase >= P_ACTIVE) {
        c->read_more = false;
        do_read(c);
        if (c->phase == P_DONE)
            return;
    }
    /* Events made ready outside a read (accept() called later, say). */
    if (c->phase == P_ACTIVE)
        dispatch(c);
    do_flush(c);
}

static void on_io(ws_loop *loop, ws_io *io, unsigned events)
{
    (void)loop;
    ws_conn *c = CONN_OF(io, io);
    refill(c);
    switch (c->phase) {
    case P_CONNECT: {
        int e = ws_net_connect_error(c->io.fd);
        if (e) {
            snprintf(DIAL(c)->connect_err, sizeof DIAL(c)->connect_err, "%s",
                     e == ECONNREFUSED ? "connection refused" : strerror(e));
            ws_io_stop(c->loop, &c->io);
            close(c->io.fd);
            c->io.fd = -1;
            try_connect(c);
            return;
        }
        ws_io_stop(c->loop, &c->io); /* restarted with the transport's interest */
        if (DIAL(c)->addrs) {
            freeaddrinfo(DIAL(c)->addrs);
            DIAL(c)->addrs = DIAL(c)->next_addr = NULL;
        }
        if (DIAL(c)->route && DIAL(c)->route->proxy_host)
            start_proxy(c);
        else
            start_transport(c);
        return;
    }
    case P_PROXY_TLS: proxy_tls_step(c); return;
    case P_PROXY: proxy_step(c); return;
    case P_TLS: do_tls(c); return;
    case P_ACTIVE:
    case P_DRAINING:
        if ((events & WS_IO_ERROR) && holding(c))
            c->holds = 0; /* hung up or reset: nothing more will come */
        if (events & (WS_IO_READ | WS_IO_ERROR))
            do_read(c);
        if (c->phase != P_DONE && (events & WS_IO_WRITE))
            do_flush(c);
        return;
    default: return;
    }
}

/* ---- timers ------------------------------------------------------------- */

static void on_timer(ws_loop *loop, ws_timer *t, void *ud)
{
    (void)loop;
    (void)t;
    ws_conn *c = ud;
    int kind = c->timer_kind;
    c->timer_kind = T_NONE;
    char msg[128];
    switch (kind) {
    case T_OPEN:
        if (ws_session_request_head(c->s) &&
            ws_session_reject(c->s, 503, "the server did not decide in time", NULL, 0) == WS_OK) {
            /* The request was complete but its owner did not answer in
             * time (an on_upgrade still waiting): say so instead of
             * cutting the connection. */
            dispatch(c);
            break;
        }
        snprintf(msg, sizeof msg, "%s timeout after %.3g s",
                 ws_session_role(c->s) == WS_CLIENT ? "connect" : "handshake",
                 (double)c->cfg->open_timeout_ns / 1e9);
        fail(c, msg);
        break;
    case T_PONG:
        snprintf(msg, sizeof msg, "keepalive timeout: no answer to ping within %.3g s",
                 (double)c->cfg->ping_timeout_ns / 1e9);
        fail(c, msg);
        break;
    case T_CLOSE: fail(c, NULL); break;
    default: break;
    }
}

static void on_keepalive(ws_loop *loop, ws_timer *t, void *ud)
{
    (void)loop;
    (void)t;
    ws_conn *c = ud;
    if (ws_session_state(c->s) != WS_OPEN)
        return;
    if (ws_session_ping(c->s, NULL, 0) == WS_OK)
        schedule_flush(c);
    if (c->timer_kind == T_NONE && !holding(c)) { /* held: the pong is not read */
        arm(c, T_PONG,
            c->cfg->ping_timeout_ns ? c->cfg->ping_timeout_ns : c->cfg->ping_interval_ns);
        if (c->rcvlowat)
            set_rcvlowat(c, 1); /* every byte counts as an answer again */
    }
}

static void on_idle(ws_loop *loop, ws_timer *t, void *ud)
{
    (void)loop;
    (void)t;
    ws_conn *c = ud;
    static const char reason[] = "idle timeout";
    ws_conn_close(c, WS_CLOSE_GOING_AWAY, (const uint8_t *)reason, sizeof reason - 1);
}

/* ---- sending ------------------------------------------------------------ */

static int after_send(ws_conn *c, int r)
{
    if (r == WS_OK) {
        touch_idle(c);
        if (!c->in_read)
            schedule_flush(c);
        if (buffered(c) > c->cfg->low_water)
            c->above_low = true;
    }
    return r;
}

static int check_room(ws_conn *c, size_t n)
{
    if (ws_session_state(c->s) != WS_OPEN)
        return WS_E_STATE;
    /* The cap limits what accumulates: one message of any size goes into
     * an empty queue (max_message may well exceed max_buffered). */
    size_t queued = buffered(c);
    if (queued == 0 || queued + n <= c->cfg->max_buffered)
        return WS_OK;
    if (c->cfg->close_on_full) {
        static const char reason[] = "send buffer full";
        ws_conn_close(c, WS_CLOSE_TRY_AGAIN_LATER, (const uint8_t *)reason, sizeof reason - 1);
    }
    return WS_E_FULL;
}

/* Messages this large are written from the caller's memory when the
 * output is empty: the copy into the output buffer would cost more than
 * the write the next flush saves. */
#define DIRECT_SEND_MIN WS_CONN_LEND_MIN
/* A rest of a directly written message this large is lent when it is at
 * least an eighth of the message, however much the socket took. */
#define LEND_REST_MIN ((size_t)256 << 10)

/* Room for one more shared frame in c's queue, or NULL. */
static ws_conn_shared *shared_room(ws_conn *c)
{
    ws_conn_shared *q = c->sq;
    if (q && q->n == q->cap && q->head > 0) {
        memmove(q->e, q->e + q->head, (q->n - q->head) * sizeof *q->e);
        q->n -= q->head;
        q->head = 0;
    }
    if (q && q->n < q->cap)
        return q;
    size_t cap = q ? q->cap * 2 : 4;
    ws_conn_shared *nq = realloc(q, sizeof *nq + cap * sizeof nq->e[0]);
    if (!nq)
        return NULL;
    if (!q)
        memset(nq, 0, sizeof *nq);
    nq->cap = cap;
    return c->sq = nq;
}

/* f goes into q (with room) after the session output queued now. */
static void queue_shared(ws_conn *c, ws_conn_shared *q, ws_shared_frame *f)
{
    size_t out;
    ws_session_output(c->s, &out);
    q->e[q->n].f = f;
    q->e[q->n].at = q->out_pos + out;
    q->n++;
    q->bytes += f->len;
}

/* The unsent part of a message written from the caller's memory, queued by
 * reference (a lent frame in the shared queue, which is empty: the direct
 * path runs only then).  False (nothing queued) when out of memory. */
static bool queue_lent(ws_conn *c, const uint8_t *p, size_t n, ws_lend *lend)
{
    if (ws_session_send_external(c->s) != WS_OK)
        return false;
    ws_shared_frame *f = ws_shared_frame_lent(p, n, lend->release, lend->ud, lend->token);
    ws_conn_shared *q = f ? shared_room(c) : NULL;
    if (!q) {
        free(f);
        return false;
    }
    queue_shared(c, q, f);
    lend->kept = true;
    return true;
}

/* Write header + payload now; queue what the transport does not take (by
 * reference when the caller lends its memory). */
static int send_direct(ws_conn *c, const uint8_t *hdr, size_t hl, const uint8_t *p, size_t n,
                       ws_lend *lend)
{
    struct iovec iov[2] = {{(void *)hdr, hl}, {(void *)p, n}};
    ssize_t w = c->t->ops->writev(c->t, iov, 2);
    size_t sent = w > 0 ? (size_t)w : 0; /* errors surface at the next flush */
    if (w == WS_T_AGAIN)
        c->write_blocked = true;
    int r = WS_OK;
    if (sent < hl)
        r = ws_session_send_raw(c->s, hdr + sent, hl - sent);
    size_t done = sent > hl ? sent - hl : 0;
    /* Lent when at least half is left (holding the whole message then
     * costs at most twice what a copy of the rest would) or when the rest
     * is large and at least an eighth of it: its copy would take a buffer
     * as large, often fresh pages, and a pass over it, while the string
     * is held (at most eight times the rest) only until the socket
     * drains.  A small rest is copied and the message let go. */
    size_t rest = n - done;
    if (r == WS_OK && done < n &&
        !(lend && (rest >= n / 2 || (rest >= LEND_REST_MIN && rest >= n / 8)) &&
          queue_lent(c, p + done, rest, lend)))
        r = ws_session_send_raw(c->s, p + done, n - done);
    return r;
}

static int send_message(ws_conn *c, bool binary, const uint8_t *p, size_t n, int compress,
                        ws_lend *lend)
{
    /* Room first: when there is, the session's own state check follows
     * (the same WS_E_STATE), one call fewer than check_room's. */
    size_t queued = buffered(c);
    int r = queued == 0 || queued + n <= c->cfg->max_buffered ? WS_OK : check_room(c, n);
    if (r != WS_OK)
        return r;
    if (compress != WS_SEND_AUTO)
        return after_send(c, ws_session_send_ex(c->s, binary, p, n, compress));
    if (n >= DIRECT_SEND_MIN && c->phase == P_ACTIVE && c->t && !c->write_blocked && !c->sq) {
        uint8_t hdr[WS_FRAME_HEADER_MAX];
        int hl = ws_session_frame_direct(c->s, binary, p, n, hdr);
        if (hl < 0)
            return hl;
        if (hl > 0)
            return after_send(c, send_direct(c, hdr, (size_t)hl, p, n, lend));
    }
    return after_send(c, ws_session_send(c->s, binary, p, n));
}

int ws_conn_send_ex(ws_conn *c, bool binary, const uint8_t *p, size_t n, int compress)
{
    return send_message(c, binary, p, n, compress, NULL);
}

int ws_conn_send_lent(ws_conn *c, bool binary, const uint8_t *p, size_t n, ws_lend *lend)
{
    lend->kept = false;
    return send_message(c, binary, p, n, WS_SEND_AUTO, lend);
}

int ws_conn_send_fragment(ws_conn *c, bool binary, const uint8_t *p, size_t n, bool fin)
{
    int r = check_room(c, n);
    return r != WS_OK ? r : after_send(c, ws_session_send_fragment(c->s, binary, p, n, fin));
}

int ws_conn_send_shared(ws_conn *c, ws_shared_frame *f)
{
    int r = check_room(c, f->len);
    if (r == WS_OK)
        r = ws_session_send_external(c->s);
    if (r != WS_OK)
        return r;
    ws_conn_shared *q = shared_room(c);
    if (!q)
        return WS_E_NOMEM;
    queue_shared(c, q, f);
    f->refs++;
    ws_shared_frame_stats_get()->queued++;
    return after_send(c, WS_OK);
}

int ws_conn_ping(ws_conn *c, const uint8_t *p, size_t n)
{
    return after_send(c, ws_session_ping(c->s, p, n));
}

int ws_conn_pong(ws_conn *c, const uint8_t *p, size_t n)
{
    return after_send(c, ws_session_pong(c->s, p, n));
}

int ws_conn_close(ws_conn *c, int code, const uint8_t *reason, size_t n)
{
    int state = ws_session_state(c->s);
    if (state == WS_CONNECTING && c->phase != P_DONE) {
        ws_conn_abort(c); /* closing before the handshake ends fails it (1006) */
        return WS_OK;
    }
    int r = ws_session_close(c->s, code, reason, n);
    if (r == WS_OK) {
        arm(c, T_CLOSE, c->cfg->close_timeout_ns);
        schedule_flush(c);
    }
    return r;
}

void ws_conn_output_changed(ws_conn *c)
{
    schedule_flush(c);
}

void ws_conn_hold(ws_conn *c, unsigned bit, bool on)
{
    bool was = holding(c);
    if (on)
        c->holds |= (uint8_t)bit;
    else
        c->holds &= (uint8_t)~bit;
    if (was == holding(c))
        return;
    if (!was) {
        if (c->timer_kind == T_PONG)
            arm(c, T_NONE, 0);
        update_interest(c);
        return;
    }
    /* Released: deliver what waits in the session, then read again (TLS
     * may hold decrypted bytes the socket no longer signals). */
    c->read_more = true;
    schedule_flush(c);
    update_interest(c);
}

unsigned ws_conn_holds(const ws_conn *c)
{
    return c->holds;
}
