#include "buf.h"

#include <stdbool.h>

#include <stdlib.h>
#include <string.h>

void ws_buf_init(ws_buf *b)
{
    memset(b, 0, sizeof *b);
}

void ws_buf_free(ws_buf *b)
{
    if (!ws_buf_lent(b))
        free(b->data);
    ws_buf_init(b);
}

void ws_buf_lend(ws_buf *b, unsigned char *p, size_t n)
{
    b->data = n ? p : NULL;
    b->start = 0;
    b->len = n;
    b->cap = 0;
}

ws_err ws_buf_own(ws_buf *b)
{
    return !ws_buf_lent(b) || ws_buf_reserve(b, 0) ? WS_OK : WS_E_NOMEM;
}

void ws_buf_clear(ws_buf *b)
{
    ws_buf_free(b);
}

unsigned char *ws_buf_reserve(ws_buf *b, size_t n)
{
    if (ws_buf_lent(b)) {
        /* Copy what is left of the lent bytes into storage of our own. */
        size_t used = b->len - b->start;
        if (n > (size_t)-1 / 2 - used)
            return NULL;
        size_t cap = 256;
        while (cap < used + n)
            cap *= 2;
        unsigned char *p = malloc(cap);
        if (!p)
            return NULL;
        memcpy(p, b->data + b->start, used);
        b->data = p;
        b->start = 0;
        b->len = used;
        b->cap = cap;
        return b->data + b->len;
    }
    if (b->cap - b->len >= n)
        return b->data + b->len;
    size_t used = b->len - b->start;
    /* Reclaim the consumed front before growing. */
    if (b->start > 0 && b->cap - used >= n && b->start >= used) {
        memmove(b->data, b->data + b->start, used);
        b->start = 0;
        b->len = used;
        return b->data + b->len;
    }
    if (n > (size_t)-1 / 2 - used)
        return NULL;
    size_t need = used + n;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    unsigned char *p = malloc(cap);
    if (!p)
        return NULL;
    if (used)
        memcpy(p, b->data + b->start, used);
    free(b->data);
    b->data = p;
    b->start = 0;
    b->len = used;
    b->cap = cap;
    return b->data + b->len;
}

void ws_buf_commit(ws_buf *b, size_t n)
{
    b->len += n;
}

ws_err ws_buf_append(ws_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return WS_OK;
    unsigned char *w = ws_buf_reserve(b, n);
    if (!w)
        return WS_E_NOMEM;
    memcpy(w, p, n);
    b->len += n;
    return WS_OK;
}

ws_err ws_buf_puts(ws_buf *b, const char *s)
{
    return ws_buf_append(b, s, strlen(s));
}

void ws_buf_consume(ws_buf *b, size_t n)
{
    b->start += n;
    if (b->start >= b->len)
        ws_buf_free(b);
}

void ws_buf_from_pool(ws_buf *b, ws_buf_pool *pool, size_t n)
{
    if (b->data)
        return;
    if (n > WS_BUF_POOL_MAX) {
        if (pool->large_cap < n)
            return;
        b->data = pool->large;
        b->cap = pool->large_cap;
        pool->large = NULL;
        pool->large_cap = 0;
        pool->large_uses++;
    } else {
        if (!pool->data || pool->cap < n)
            return;
        b->data = pool->data;
        b->cap = pool->cap;
        pool->data = NULL;
        pool->cap = 0;
    }
    b->start = b->len = 0;
}

void ws_buf_consume_to_pool(ws_buf *b, size_t n, ws_buf_pool *pool)
{
    if (b->start + n < b->len || ws_buf_lent(b) || b->cap > WS_BUF_POOL_LARGE_MAX) {
        ws_buf_consume(b, n);
        return;
    }
    bool large = b->cap > WS_BUF_POOL_MAX;
    unsigned char **slot = large ? &pool->large : &pool->data;
    size_t *cap = large ? &pool->large_cap : &pool->cap;
    if (!large && pool->large) { /* large messages stopped: give that back */
        free(pool->large);
        pool->large = NULL;
        pool->large_cap = 0;
    }
    if (*slot && *cap >= b->cap) {
        ws_buf_consume(b, n);
        return;
    }
    free(*slot); /* the larger one stays: a small one would block the slot */
    *slot = b->data;
    *cap = b->cap;
    if (large)
        pool->large_uses++;
    ws_buf_init(b);
}

void ws_buf_pool_free(ws_buf_pool *pool)
{
    free(pool->data);
    free(pool->large);
    if (pool->parts)
        pool->free_parts(pool->parts);
    memset(pool, 0, sizeof *pool);
}
