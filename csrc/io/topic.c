/* Topics: a hash table of names, each with an array of subscribers. */
#include "io/topic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ws_topic {
    ws_topic *next; /* in its bucket */
    uint32_t hash;
    ws_topic_sub *subs;
    size_t n, cap;
    size_t len;
    char name[];
};

struct ws_topics {
    ws_topic **buckets; /* NULL while there is no topic */
    size_t nbuckets;    /* a power of two */
    size_t count;       /* topics */
    uint32_t seed;      /* differs per table: names chosen by peers do not collide everywhere */
    ws_topics_watch_fn watch;
    void *watch_ud;
};

#define MIN_BUCKETS 16

static uint32_t hash_name(uint32_t seed, const char *p, size_t n)
{
    uint32_t h = 2166136261u ^ seed; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 16777619u;
    }
    return h;
}

ws_topics *ws_topics_new(void)
{
    ws_topics *ts = calloc(1, sizeof *ts);
    if (ts)
        ts->seed = hash_name(0, (const char *)&ts, sizeof ts);
    return ts;
}

static ws_topic *find(const ws_topics *ts, uint32_t h, const char *name, size_t len)
{
    if (!ts->buckets)
        return NULL;
    for (ws_topic *t = ts->buckets[h & (ts->nbuckets - 1)]; t; t = t->next)
        if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0)
            return t;
    return NULL;
}

/* Rehash into nb buckets; on failure the table stays as it is. */
static void resize(ws_topics *ts, size_t nb)
{
    ws_topic **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < ts->nbuckets; i++) {
        ws_topic *next;
        for (ws_topic *t = ts->buckets[i]; t; t = next) {
            next = t->next;
            t->next = b[t->hash & (nb - 1)];
            b[t->hash & (nb - 1)] = t;
        }
    }
    free(ts->buckets);
    ts->buckets = b;
    ts->nbuckets = nb;
}

static ws_topic *create(ws_topics *ts, uint32_t h, const char *name, size_t len)
{
    if (!ts->buckets) {
        resize(ts, MIN_BUCKETS);
        if (!ts->buckets)
            return NULL;
    } else if (ts->count >= ts->nbuckets) {
        resize(ts, ts->nbuckets * 2);
    }
    ws_topic *t = calloc(1, sizeof *t + len);
    if (!t)
        return NULL;
    t->hash = h;
    t->len = len;
    memcpy(t->name, name, len);
    size_t i = h & (ts->nbuckets - 1);
    t->next = ts->buckets[i];
    ts->buckets[i] = t;
    ts->count++;
    return t;
}

static void destroy(ws_topics *ts, ws_topic *t)
{
    ws_topic **pp = &ts->buckets[t->hash & (ts->nbuckets - 1)];
    while (*pp != t)
        pp = &(*pp)->next;
    *pp = t->next;
    ts->count--;
    free(t->subs);
    free(t);
    if (ts->count == 0) {
        free(ts->buckets);
        ts->buckets = NULL;
        ts->nbuckets = 0;
    } else if (ts->nbuckets > MIN_BUCKETS && ts->count < ts->nbuckets / 4) {
        resize(ts, ts->nbuckets / 2);
    }
}

/* Index of t in m's list, m->n when absent: searches the shorter of m's
 * list and t's subscribers. */
static size_t ref_index(const ws_topic_member *m, const ws_topic *t)
{
    if (m->n <= t->n) {
        for (size_t i = 0; i < m->n; i++)
            if (m->refs[i].topic == t)
                return i;
    } else {
        for (size_t j = 0; j < t->n; j++)
            if (t->subs[j].member == m)
                return t->subs[j].ref;
    }
    return m->n;
}

/* Room for one more ref: the inline one first, then an array that
 * doubles (copied out of the inline slot the first time). */
static int grow_refs(ws_topic_member *m)
{
    if (m->cap == 0) {
        m->refs = &m->first;
        m->cap = 1;
        return 0;
    }
    if (m->cap > UINT32_MAX / 2)
        return -1;
    uint32_t cap = m->cap * 2;
    ws_topic_ref *r;
    if (m->refs == &m->first) {
        r = malloc(cap * sizeof *r);
        if (r)
            r[0] = m->first;
    } else {
        r = realloc(m->refs, cap * sizeof *r);
    }
    if (!r)
        return -1;
    m->refs = r;
    m->cap = cap;
    return 0;
}

/* The member's list is empty: its array (if any) goes. */
static void release_refs(ws_topic_member *m)
{
    if (m->refs != &m->first)
        free(m->refs);
    m->refs = NULL;
    m->n = m->cap = 0;
}

int ws_topics_subscribe(ws_topics *ts, ws_topic_member *m, const char *name, size_t len)
{
    uint32_t h = hash_name(ts->seed, name, len);
    ws_topic *t = find(ts, h, name, len);
    if (t && ref_index(m, t) < m->n)
        return 0;
    if (m->n == m->cap && grow_refs(m) != 0)
        return -1;
    if (!t && !(t = create(ts, h, name, len)))
        return -1;
    if (t->n == t->cap) {
        /* Grown by half: a topic of many subscribers leaves a quarter of
         * its array unused on average, not half. */
        size_t cap = t->cap ? t->cap + t->cap / 2 : 4;
        ws_topic_sub *s = realloc(t->subs, cap * sizeof *s);
        if (!s) {
            if (t->n == 0)
                destroy(ts, t);
            return -1;
        }
        t->subs = s;
        t->cap = cap;
    }
    t->subs[t->n].member = m;
    t->subs[t->n].ref = m->n;
    m->refs[m->n].topic = t;
    m->refs[m->n].slot = t->n;
    t->n++;
    m->n++;
    if (t->n == 1 && ts->watch)
        ts->watch(ts->watch_ud, t->name, t->len, true);
    return 1;
}

/* Remove the member's i-th ref and its slot in that topic: the last of
 * each array moves into the hole, and what points at it follows. */
static void leave(ws_topics *ts, ws_topic_member *m, size_t i)
{
    ws_topic *t = m->refs[i].topic;
    size_t slot = m->refs[i].slot;
    ws_topic_sub last = t->subs[--t->n];
    if (slot != t->n) {
        t->subs[slot] = last;
        last.member->refs[last.ref].slot = slot;
    }
    ws_topic_ref moved = m->refs[--m->n];
    if (i != m->n) {
        m->refs[i] = moved;
        moved.topic->subs[moved.slot].ref = i;
    }
    if (t->n == 0) {
        if (ts->watch)
            ts->watch(ts->watch_ud, t->name, t->len, false);
        destroy(ts, t);
    } else if (t->cap > 4 && t->n < t->cap / 4) {
        /* Give back most of a topic that many left; a failed shrink keeps it. */
        ws_topic_sub *s = realloc(t->subs, t->cap / 2 * sizeof *s);
        if (s) {
            t->subs = s;
            t->cap /= 2;
        }
    }
    if (m->n == 0)
        release_refs(m);
}

int ws_topics_unsubscribe(ws_topics *ts, ws_topic_member *m, const char *name, size_t len)
{
    ws_topic *t = find(ts, hash_name(ts->seed, name, len), name, len);
    size_t i = t ? ref_index(m, t) : m->n;
    if (i == m->n)
        return 0;
    leave(ts, m, i);
    return 1;
}

void ws_topics_leave_all(ws_topics *ts, ws_topic_member *m)
{
    while (m->n > 0)
        leave(ts, m, m->n - 1);
}

const ws_topic_sub *ws_topics_subscribers(const ws_topics *ts, const char *name, size_t len,
                                          size_t *n)
{
    ws_topic *t = find(ts, hash_name(ts->seed, name, len), name, len);
    *n = t ? t->n : 0;
    return t ? t->subs : NULL;
}

const char *ws_topic_member_name(const ws_topic_member *m, size_t i, size_t *len)
{
    *len = m->refs[i].topic->len;
    return m->refs[i].topic->name;
}

void ws_topics_watch(ws_topics *ts, ws_topics_watch_fn fn, void *ud)
{
    ts->watch = fn;
    ts->watch_ud = ud;
}

void ws_topics_each(const ws_topics *ts, ws_topics_watch_fn fn, void *ud)
{
    for (size_t i = 0; i < ts->nbuckets; i++)
        for (ws_topic *t = ts->buckets[i]; t; t = t->next)
            fn(ud, t->name, t->len, true);
}

void ws_topics_free(ws_topics *ts)
{
    if (!ts)
        return;
    for (size_t i = 0; i < ts->nbuckets; i++) {
        ws_topic *next;
        for (ws_topic *t = ts->buckets[i]; t; t = next) {
            next = t->next;
            for (size_t j = 0; j < t->n; j++) {
                release_refs(t->subs[j].member);
            }
            free(t->subs);
            free(t);
        }
    }
    free(ts->buckets);
    free(ts);
}
