/* Redis backplane over two hiredis connections (see backplane.h). */
#include "io/backplane.h"

#include <hiredis/async.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/utf8.h"
#include "io/redis_loop.h"

#define MAX_ERRORS  4 /* reports kept per turn; later ones are dropped */
#define ERROR_LEN   256
#define STACK_BYTES 4096 /* payloads up to this size are built on the stack */

typedef enum { DOWN, WAITING, CONNECTING, READY } rstate;

typedef struct rconn {
    ws_backplane *bp;
    ws_redis_link link;
    ws_timer timer; /* the connect timeout while CONNECTING, the backoff while WAITING,
                       the publisher's PING while READY */
    uint64_t backoff_ns;
    bool ping_out; /* a PING is unanswered */
    rstate state;
    bool subscriber;
    const char *name; /* "subscriber" / "publisher", for messages */
} rconn;

struct ws_backplane {
    ws_loop *loop;
    ws_backplane_callbacks cbs;
    void *ud;
    char *host, *unix_path, *username, *password;
    int port;
    char prefix[WS_BACKPLANE_PREFIX_MAX];
    size_t prefix_len;
    uint64_t connect_timeout, backoff_initial, backoff_max, ping_interval;
    size_t max_pending, pending; /* bytes of PUBLISHes not answered yet */
    uint8_t node[WS_BACKPLANE_NODE_LEN];
    ws_topics *ts;
    rconn sub, pub;
    ws_deferred report;
    char errors[MAX_ERRORS][ERROR_LEN];
    size_t nerrors;
    ws_backplane_stats stats;
    bool freeing;
};

static void start(rconn *rc);

/* ---- errors: reported from a deferred callback, outside hiredis ------------ */

static void on_report(ws_loop *loop, ws_deferred *d, void *ud)
{
    ws_backplane *bp = ud;
    if (bp->nerrors == 0)
        return;
    char msg[ERROR_LEN];
    memcpy(msg, bp->errors[0], sizeof msg);
    bp->nerrors--;
    memmove(bp->errors[0], bp->errors[1], bp->nerrors * sizeof bp->errors[0]);
    if (bp->nerrors > 0)
        ws_loop_defer(loop, d);
    /* Last: the callback may free bp. */
    if (bp->cbs.error)
        bp->cbs.error(bp->ud, msg);
}

static void report(ws_backplane *bp, const char *fmt, const char *a, const char *b)
{
    if (bp->freeing || bp->nerrors == MAX_ERRORS)
        return;
    snprintf(bp->errors[bp->nerrors++], ERROR_LEN, fmt, a, b);
    ws_loop_defer(bp->loop, &bp->report);
}

/* ---- connecting and reconnecting ------------------------------------------ */

static void retry_later(rconn *rc)
{
    ws_backplane *bp = rc->bp;
    if (bp->freeing || rc->state == WAITING)
        return;
    rc->state = WAITING;
    ws_timer_start(bp->loop, &rc->timer, rc->backoff_ns, 0);
    ws_timer_unref(&rc->timer);
    rc->backoff_ns = rc->backoff_ns * 2 > bp->backoff_max ? bp->backoff_max : rc->backoff_ns * 2;
}

static void on_pong(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    rconn *rc = privdata;
    if (r)
        rc->ping_out = false;
}

/* The publisher's liveness check, every ping_interval while READY: a
 * Redis that stopped answering (stopped, or its host gone quiet) is left
 * and reconnected to, the subscriber too (same server), instead of
 * piling up commands. */
static void ping(rconn *rc)
{
    ws_backplane *bp = rc->bp;
    if (rc->ping_out) {
        char secs[32];
        snprintf(secs, sizeof secs, "%.3g s", (double)bp->ping_interval / 1e9);
        report(bp, "redis %s: no answer to PING in %s", rc->name, secs);
        rconn *both[2] = {rc, &bp->sub};
        for (int i = 0; i < 2; i++) {
            if (!both[i]->link.ac)
                continue;
            both[i]->state = CONNECTING; /* no "connection lost" report on top */
            redisAsyncFree(both[i]->link.ac);
            if (both[i]->state == CONNECTING) {
                both[i]->state = DOWN;
                retry_later(both[i]);
            }
        }
        return;
    }
    rc->ping_out = true;
    redisAsyncCommand(rc->link.ac, on_pong, rc, "PING");
    ws_timer_start(bp->loop, &rc->timer, bp->ping_interval, 0);
    ws_timer_unref(&rc->timer);
}

static void on_timer(ws_loop *loop, ws_timer *t, void *ud)
{
    (void)loop;
    (void)t;
    rconn *rc = ud;
    if (rc->state == WAITING) {
        rc->bp->stats.reconnects++;
        start(rc);
        return;
    }
    if (rc->state == CONNECTING && rc->link.ac) {
        report(rc->bp, "redis %s: no answer in time (%s)", rc->name, "connect or AUTH");
        redisAsyncFree(rc->link.ac); /* runs on_disconnect when it was connected */
        if (rc->state == CONNECTING) {
            rc->state = DOWN;
            retry_later(rc);
        }
        return;
    }
    if (rc->state == READY && rc->link.ac)
        ping(rc);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rconn *rc = ac->data;
    if (status == REDIS_OK)
        return;
    report(rc->bp, "redis %s: cannot connect: %s", rc->name, ac->errstr);
    rc->state = DOWN;
    retry_later(rc); /* hiredis frees the context after this */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    rconn *rc = ac->data;
    if (rc->state == READY)
        report(rc->bp, "redis %s: connection lost: %s", rc->name, ac->err ? ac->errstr : "closed");
    rc->state = DOWN;
    retry_later(rc);
}

static size_t channel(const ws_backplane *bp, char *buf, const char *topic, size_t tlen)
{
    memcpy(buf, bp->prefix, bp->prefix_len);
    memcpy(buf + bp->prefix_len, topic, tlen);
    return bp->prefix_len + tlen;
}

static void on_subscribed(redisAsyncContext *ac, void *r, void *privdata);

static void send_subscription(ws_backplane *bp, const char *topic, size_t tlen, bool on)
{
    char chan[WS_BACKPLANE_PREFIX_MAX + WS_TOPIC_MAX];
    size_t clen = channel(bp, chan, topic, tlen);
    redisAsyncCommand(bp->sub.link.ac, on ? on_subscribed : NULL, &bp->sub,
                      on ? "SUBSCRIBE %b" : "UNSUBSCRIBE %b", chan, clen);
}

static void on_topic(void *ud, const char *name, size_t len, bool exists)
{
    ws_backplane *bp = ud;
    if (bp->sub.state == READY && bp->sub.link.ac)
        send_subscription(bp, name, len, exists);
}

/* PING answered (after AUTH): the connection works. */
static void on_ready(redisAsyncContext *ac, void *r, void *privdata)
{
    rconn *rc = privdata;
    redisReply *reply = r;
    if (!reply)
        return; /* the context is going away */
    if (reply->type == REDIS_REPLY_ERROR) {
        report(rc->bp, "redis %s: %s", rc->name, reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    ws_backplane *bp = rc->bp;
    rc->state = READY;
    rc->backoff_ns = bp->backoff_initial;
    ws_timer_stop(&rc->timer);
    if (!rc->subscriber) {
        rc->ping_out = false;
        ws_timer_start(bp->loop, &rc->timer, bp->ping_interval, 0);
        ws_timer_unref(&rc->timer);
        return;
    }
    /* The channel named by the prefix alone is no topic's: subscribed for
     * as long as the connection lasts, it keeps the connection in
     * subscriber mode however many topics come and go. */
    redisAsyncCommand(ac, on_subscribed, rc, "SUBSCRIBE %b", bp->prefix, bp->prefix_len);
    if (bp->ts)
        ws_topics_each(bp->ts, on_topic, bp);
}

static void on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    rconn *rc = privdata;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        report(rc->bp, "redis %s: AUTH refused: %s", rc->name, reply->str);
        redisAsyncDisconnect(ac); /* after the PING's answer, which is an error too */
    }
}

static void start(rconn *rc)
{
    ws_backplane *bp = rc->bp;
    redisAsyncContext *ac = bp->unix_path ? redisAsyncConnectUnix(bp->unix_path)
                                          : redisAsyncConnect(bp->host, bp->port);
    if (!ac || ac->err || ws_redis_link_attach(&rc->link, bp->loop, ac) != 0) {
        report(bp, "redis %s: cannot connect: %s", rc->name, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        rc->state = DOWN;
        retry_later(rc);
        return;
    }
    ac->data = rc;
    /* A Redis host that vanishes without a reset is noticed by TCP
     * keepalive (hiredis's interval); a Unix socket needs none. */
    if (!bp->unix_path)
        redisEnableKeepAlive(&ac->c);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    rc->state = CONNECTING;
    if (bp->password && bp->username)
        redisAsyncCommand(ac, on_auth, rc, "AUTH %s %s", bp->username, bp->password);
    else if (bp->password)
        redisAsyncCommand(ac, on_auth, rc, "AUTH %s", bp->password);
    redisAsyncCommand(ac, on_ready, rc, "PING");
    ws_timer_start(bp->loop, &rc->timer, bp->connect_timeout, 0);
    ws_timer_unref(&rc->timer);
}

/* ---- messages -------------------------------------------------------------- */

static void on_message(ws_backplane *bp, const redisReply *chan, const redisReply *payload)
{
    if (chan->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING ||
        chan->len <= bp->prefix_len || memcmp(chan->str, bp->prefix, bp->prefix_len) != 0)
        return; /* the prefix's own channel, or not ours */
    const uint8_t *p = (const uint8_t *)payload->str;
    size_t n = payload->len;
    if (n < 1 + WS_BACKPLANE_NODE_LEN || (p[0] != 't' && p[0] != 'b')) {
        bp->stats.dropped++;
        return;
    }
    if (memcmp(p + 1, bp->node, WS_BACKPLANE_NODE_LEN) == 0) {
        bp->stats.own++;
        return;
    }
    bool binary = p[0] == 'b';
    p += 1 + WS_BACKPLANE_NODE_LEN;
    n -= 1 + WS_BACKPLANE_NODE_LEN;
    if (!binary && !ws_utf8_valid(p, n)) {
        bp->stats.dropped++;
        return;
    }
    bp->stats.received++;
    bp->cbs.message(bp->ud, chan->str + bp->prefix_len, chan->len - bp->prefix_len, p, n, binary);
}

static void on_subscribed(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    rconn *rc = privdata;
    redisReply *reply = r;
    if (!reply || rc->bp->freeing)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        report(rc->bp, "redis %s: %s", rc->name, reply->str);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(reply->element[0]->str, "message") == 0)
        on_message(rc->bp, reply->element[1], reply->element[2]);
}

static void on_published(redisAsyncContext *ac, void *r, void *privdata)
{
    rconn *rc = ac->data;
    redisReply *reply = r;
    rc->bp->pending -= (size_t)(uintptr_t)privdata;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        rc->bp->stats.failed++;
        report(rc->bp, "redis %s: PUBLISH refused: %s", rc->name, reply->str);
    }
}

int ws_backplane_publish(ws_backplane *bp, const char *topic, size_t tlen, const uint8_t *data,
                         size_t n, bool binary, char *err, size_t errlen)
{
    if (bp->pub.state != READY || !bp->pub.link.ac) {
        bp->stats.failed++;
        snprintf(err, errlen, "redis publisher is not connected");
        return -1;
    }
    size_t plen = 1 + WS_BACKPLANE_NODE_LEN + n;
    if (bp->pending + plen > bp->max_pending) {
        bp->stats.failed++;
        snprintf(err, errlen, "redis is not keeping up (%zu bytes of publishes unanswered)",
                 bp->pending);
        return -1;
    }
    char chan[WS_BACKPLANE_PREFIX_MAX + WS_TOPIC_MAX];
    size_t clen = channel(bp, chan, topic, tlen);
    uint8_t stack[STACK_BYTES];
    uint8_t *payload = plen <= sizeof stack ? stack : malloc(plen);
    if (!payload) {
        bp->stats.failed++;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    payload[0] = binary ? 'b' : 't';
    memcpy(payload + 1, bp->node, WS_BACKPLANE_NODE_LEN);
    if (n)
        memcpy(payload + 1 + WS_BACKPLANE_NODE_LEN, data, n);
    int rc = redisAsyncCommand(bp->pub.link.ac, on_published, (void *)(uintptr_t)plen,
                               "PUBLISH %b %b", chan, clen, payload, plen);
    if (payload != stack)
        free(payload);
    if (rc != REDIS_OK) {
        bp->stats.failed++;
        snprintf(err, errlen, "redis publisher cannot take the command");
        return -1;
    }
    bp->pending += plen;
    bp->stats.published++;
    return 0;
}

/* ---- the backplane ----------------------------------------------------------- */

static char *dup_or_null(const char *s, bool *ok)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *ok = false;
    return d;
}

static void make_node_id(uint8_t *node)
{
    if (RAND_bytes(node, WS_BACKPLANE_NODE_LEN) == 1)
        return;
    /* No entropy from OpenSSL: pid, time and an address still differ
     * between the nodes of one deployment. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^
                 (uint64_t)(uintptr_t)node;
    memcpy(node, &x, WS_BACKPLANE_NODE_LEN);
}

static void init_conn(ws_backplane *bp, rconn *rc, bool subscriber)
{
    rc->bp = bp;
    rc->subscriber = subscriber;
    rc->name = subscriber ? "subscriber" : "publisher";
    rc->backoff_ns = bp->backoff_initial;
    rc->state = DOWN;
    ws_timer_init(&rc->timer, on_timer, rc);
}

ws_backplane *ws_backplane_new(ws_loop *loop, const ws_backplane_config *cfg,
                               const ws_backplane_callbacks *cbs, void *ud)
{
    if (cfg->prefix_len >= WS_BACKPLANE_PREFIX_MAX)
        return NULL;
    ws_backplane *bp = calloc(1, sizeof *bp);
    if (!bp)
        return NULL;
    bool ok = true;
    bp->loop = loop;
    bp->cbs = *cbs;
    bp->ud = ud;
    bp->host = dup_or_null(cfg->host, &ok);
    bp->unix_path = dup_or_null(cfg->unix_path, &ok);
    bp->username = dup_or_null(cfg->username, &ok);
    bp->password = dup_or_null(cfg->password, &ok);
    if (!ok) {
        bp->freeing = true;
        ws_backplane_free(bp);
        return NULL;
    }
    bp->port = cfg->port;
    memcpy(bp->prefix, cfg->prefix, cfg->prefix_len);
    bp->prefix_len = cfg->prefix_len;
    bp->connect_timeout = cfg->connect_timeout_ns;
    bp->backoff_initial = cfg->backoff_initial_ns;
    bp->backoff_max = cfg->backoff_max_ns;
    bp->ping_interval = cfg->ping_interval_ns;
    bp->max_pending = cfg->max_pending;
    make_node_id(bp->node);
    ws_deferred_init(&bp->report, on_report, bp);
    init_conn(bp, &bp->sub, true);
    init_conn(bp, &bp->pub, false);
    start(&bp->sub);
    start(&bp->pub);
    return bp;
}

static void close_conn(rconn *rc)
{
    ws_timer_stop(&rc->timer);
    if (rc->link.ac)
        redisAsyncFree(rc->link.ac); /* its callbacks see bp->freeing */
    rc->state = DOWN;
}

void ws_backplane_free(ws_backplane *bp)
{
    if (!bp)
        return;
    bp->freeing = true;
    if (bp->ts)
        ws_topics_watch(bp->ts, NULL, NULL);
    bp->ts = NULL;
    close_conn(&bp->sub);
    close_conn(&bp->pub);
    ws_deferred_cancel(&bp->report);
    free(bp->host);
    free(bp->unix_path);
    free(bp->username);
    free(bp->password);
    free(bp);
}

static void unsubscribe_each(void *ud, const char *name, size_t len, bool exists)
{
    (void)exists;
    on_topic(ud, name, len, false);
}

void ws_backplane_bind(ws_backplane *bp, ws_topics *ts)
{
    if (bp->ts == ts)
        return;
    if (bp->ts) {
        ws_topics_watch(bp->ts, NULL, NULL);
        ws_topics_each(bp->ts, unsubscribe_each, bp);
    }
    bp->ts = ts;
    if (ts) {
        ws_topics_watch(ts, on_topic, bp);
        ws_topics_each(ts, on_topic, bp);
    }
}

bool ws_backplane_connected(const ws_backplane *bp)
{
    return bp->sub.state == READY && bp->pub.state == READY;
}

const uint8_t *ws_backplane_node(const ws_backplane *bp)
{
    return bp->node;
}

const ws_backplane_stats *ws_backplane_stats_of(const ws_backplane *bp)
{
    return &bp->stats;
}
