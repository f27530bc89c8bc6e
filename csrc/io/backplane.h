/* A Redis backplane: one topic space across processes and machines.  Two
 * hiredis connections driven by the loop (a subscriber connection cannot
 * publish): the subscriber is SUBSCRIBEd to prefix..topic for every topic
 * of the bound table (ws_topics) while the topic exists, the publisher
 * sends PUBLISH.  Each message carries the publishing node's random id so
 * a node skips its own publishes (it delivered them locally already).
 * Either connection that fails or drops is retried with a doubling
 * backoff; the subscriber SUBSCRIBEs every live topic again.  Nothing here
 * queues a publish while Redis is away: across nodes delivery is at most
 * once.
 *
 * Wire form of a message: one byte 't' (text) or 'b' (binary), the
 * 8-byte node id, then the data. */
#ifndef WS_BACKPLANE_H
#define WS_BACKPLANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/loop.h"
#include "io/topic.h"

#define WS_BACKPLANE_PREFIX_MAX 256
#define WS_BACKPLANE_NODE_LEN   8

typedef struct ws_backplane ws_backplane;

typedef struct ws_backplane_config {
    const char *host; /* TCP (resolved when connecting), unless unix_path */
    int port;
    const char *unix_path;
    const char *username; /* NULL: AUTH password (Redis < 6 or the default user) */
    const char *password; /* NULL: no AUTH */
    const char *prefix;   /* channel = prefix .. topic */
    size_t prefix_len;
    uint64_t connect_timeout_ns; /* connect and AUTH */
    uint64_t backoff_initial_ns, backoff_max_ns;
    uint64_t ping_interval_ns; /* the publisher PINGs this often; no answer by the next: down */
    size_t max_pending;        /* bytes of unanswered PUBLISHes; over it publishes fail */
} ws_backplane_config;

typedef struct ws_backplane_callbacks {
    /* A message of another node for topic; runs inside hiredis's read
     * handler: it must not free the backplane nor call into it. */
    void (*message)(void *ud, const char *topic, size_t tlen, const uint8_t *data, size_t n,
                    bool binary);
    /* Something failed (connect, AUTH, a lost connection, a refused
     * PUBLISH); runs from a deferred callback, so it may do anything,
     * ws_backplane_free included. */
    void (*error)(void *ud, const char *msg);
} ws_backplane_callbacks;

typedef struct ws_backplane_stats {
    uint64_t published; /* PUBLISH commands queued */
    uint64_t failed;    /* publishes refused for want of a connection, or by Redis */
    uint64_t received;  /* messages of other nodes delivered */
    uint64_t own;       /* echoes of our own publishes, skipped */
    uint64_t dropped;   /* messages not in the wire form, or text that is not UTF-8 */
    uint64_t reconnects;
} ws_backplane_stats;

/* Copies what it needs of cfg and starts connecting.  NULL when out of
 * memory. */
ws_backplane *ws_backplane_new(ws_loop *loop, const ws_backplane_config *cfg,
                               const ws_backplane_callbacks *cbs, void *ud);
/* Disconnects at once (no callback runs) and frees; unbinds first. */
void ws_backplane_free(ws_backplane *bp);

/* Follow ts's topics (NULL: stop following and unsubscribe them all).
 * Sets ts's watcher. */
void ws_backplane_bind(ws_backplane *bp, ws_topics *ts);

/* Queue a PUBLISH of data to prefix..topic.  0, or -1 with a message in
 * err when the publisher is not connected or max_pending bytes are
 * unanswered (the message is not sent). */
int ws_backplane_publish(ws_backplane *bp, const char *topic, size_t tlen, const uint8_t *data,
                         size_t n, bool binary, char *err, size_t errlen);

/* Both connections are up (AUTH done, subscriptions sent). */
bool ws_backplane_connected(const ws_backplane *bp);
const uint8_t *ws_backplane_node(const ws_backplane *bp); /* WS_BACKPLANE_NODE_LEN bytes */
const ws_backplane_stats *ws_backplane_stats_of(const ws_backplane *bp);

#endif
