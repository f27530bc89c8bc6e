/* Growable byte buffer with a read position, used for session input and
 * output.  Memory is released when the buffer drains, so an idle session
 * holds no buffer at all. */
#ifndef WS_BUF_H
#define WS_BUF_H

#include <stddef.h>

#include "error.h"

typedef struct ws_buf {
    unsigned char *data;
    size_t start; /* first unread byte */
    size_t len;   /* one past the last byte */
    size_t cap;   /* 0 with data set: lent memory (ws_buf_lend), not ours */
} ws_buf;

void ws_buf_init(ws_buf *b);
void ws_buf_free(ws_buf *b);

/* Make room for n more bytes at the end; returns the write pointer or NULL
 * when out of memory.  Commit what was written with ws_buf_commit. */
unsigned char *ws_buf_reserve(ws_buf *b, size_t n);
void ws_buf_commit(ws_buf *b, size_t n);

/* Append bytes (or a NUL-terminated string); WS_OK or WS_E_NOMEM. */
ws_err ws_buf_append(ws_buf *b, const void *p, size_t n);
ws_err ws_buf_puts(ws_buf *b, const char *s);

static inline size_t ws_buf_size(const ws_buf *b)
{
    return b->len - b->start;
}
static inline unsigned char *ws_buf_begin(const ws_buf *b)
{
    /* NULL + 0 is undefined in C (UBSan: pointer-overflow). */
    return b->data ? b->data + b->start : b->data;
}

/* Read from memory the caller lends instead of a copy (b must be empty).
 * Anything that grows b first copies it into storage of its own;
 * ws_buf_own does that at once, before the caller reuses the memory.
 * ws_buf_own returns WS_OK or WS_E_NOMEM. */
void ws_buf_lend(ws_buf *b, unsigned char *p, size_t n);
ws_err ws_buf_own(ws_buf *b);
static inline int ws_buf_lent(const ws_buf *b)
{
    return b->cap == 0 && b->data != NULL;
}

/* Drop n bytes from the front; frees the storage once empty. */
void ws_buf_consume(ws_buf *b, size_t n);
void ws_buf_clear(ws_buf *b);

/* Storage for the payload of a large message, from the host, so that its
 * bytes are received where the host keeps them (the Lua binding: the block
 * its string is made in, with no copy; lua_alloc.c).  get returns a block
 * holding n bytes at *payload, or NULL (the session's own buffer serves);
 * put gives back one the host did not take (the block says where it goes,
 * so a session may outlive whatever ud is). */
typedef struct ws_payload_store {
    void *(*get)(void *ud, size_t n, unsigned char **payload);
    void (*put)(void *block);
    void *ud;
    size_t min; /* smaller payloads use the session's own buffer */
} ws_payload_store;

/* One drained buffer kept for whoever needs one next: the connections of a
 * loop share a pool, so queueing and writing a reply per message costs no
 * malloc and free while idle connections still hold no buffer.  A second
 * slot keeps one large buffer (the unsent part of a large message) while
 * large messages keep coming: growing the C heap for it and trimming it
 * again cost page faults per message (bench/PROFILE.md, 4 MiB messages).
 * It also keeps the parts sessions take while bytes are in flight and give
 * back when idle (session.c), so that costs no malloc and free per message
 * either: a list at most WS_BUF_POOL_PARTS long (what a burst of busy
 * connections leaves), freed by free_parts. */
typedef struct ws_buf_pool {
    unsigned char *data;
    size_t cap;
    unsigned char *large;
    size_t large_cap;
    unsigned long large_uses;        /* the large slot filled or taken so far */
    void *parts;                     /* idle session parts; NULL when none */
    unsigned nparts;                 /* how many */
    void (*free_parts)(void *parts); /* set by whoever fills `parts` */
    const ws_payload_store *store;   /* NULL: none */
} ws_buf_pool;

/* Buffers up to this size go back to the pool's small slot, larger ones up
 * to WS_BUF_POOL_LARGE_MAX to its large slot (given back when a small one
 * comes back, or by the pool's owner once large_uses stays the same a
 * while: large messages stopped). */
#define WS_BUF_POOL_MAX       4096u
#define WS_BUF_POOL_LARGE_MAX (16u << 20)
#define WS_BUF_POOL_PARTS     64u

/* b (with no storage) takes the pooled storage if it holds n bytes. */
void ws_buf_from_pool(ws_buf *b, ws_buf_pool *pool, size_t n);
/* ws_buf_consume, except that storage emptied goes to the pool when it is
 * larger than what the pool holds in the slot of its size. */
void ws_buf_consume_to_pool(ws_buf *b, size_t n, ws_buf_pool *pool);
void ws_buf_pool_free(ws_buf_pool *pool);

#endif
