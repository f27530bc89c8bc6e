/* Topics of a server: which connections receive a publish.  Per topic an
 * array of subscribers, per subscriber the list of its topics; each entry
 * knows its partner's index in the other array, so leaving a topic costs
 * no search (removal swaps the last entry in).  A topic exists while it
 * has subscribers. */
#ifndef WS_TOPIC_H
#define WS_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest topic name, in bytes. */
#define WS_TOPIC_MAX 1024

typedef struct ws_topics ws_topics;
typedef struct ws_topic ws_topic;

typedef struct ws_topic_member ws_topic_member;

typedef struct ws_topic_ref {
    ws_topic *topic;
    size_t slot; /* index in the topic's subscriber array */
} ws_topic_ref;

typedef struct ws_topic_sub {
    ws_topic_member *member;
    size_t ref; /* index in the member's list */
} ws_topic_sub;

/* Embedded in whatever subscribes (zeroed: no topics).  The first
 * topic's ref lives inline: most subscribers watch one topic, and the
 * list then needs no allocation of its own. */
struct ws_topic_member {
    ws_topic_ref *refs; /* in no particular order; &first while cap is 1 */
    uint32_t n, cap;
    ws_topic_ref first;
};

ws_topics *ws_topics_new(void);
/* Every member leaves every topic (their lists are freed) first. */
void ws_topics_free(ws_topics *ts);

/* 1: subscribed now, 0: it was already, -1: out of memory. */
int ws_topics_subscribe(ws_topics *ts, ws_topic_member *m, const char *name, size_t len);
/* 1: it left the topic, 0: it was not subscribed. */
int ws_topics_unsubscribe(ws_topics *ts, ws_topic_member *m, const char *name, size_t len);
void ws_topics_leave_all(ws_topics *ts, ws_topic_member *m);

/* The subscribers of a topic (NULL and *n = 0 without any).  Valid until
 * the next change of the topic's subscribers. */
const ws_topic_sub *ws_topics_subscribers(const ws_topics *ts, const char *name, size_t len,
                                          size_t *n);

/* Told when a topic comes to exist (its first subscriber) and when it
 * ends (its last left), not when the table is freed.  It must not change
 * the table.  One watcher per table; fn NULL removes it. */
typedef void (*ws_topics_watch_fn)(void *ud, const char *name, size_t len, bool exists);
void ws_topics_watch(ws_topics *ts, ws_topics_watch_fn fn, void *ud);

/* fn(ud, name, len, true) for every topic, in no particular order; fn
 * must not change the table. */
void ws_topics_each(const ws_topics *ts, ws_topics_watch_fn fn, void *ud);

/* Name of the member's i-th topic (i < m->n); not NUL-terminated. */
const char *ws_topic_member_name(const ws_topic_member *m, size_t i, size_t *len);

#endif
