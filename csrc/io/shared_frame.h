/* A frame queued by many connections at once (a broadcast, a publish):
 * one allocation, referenced from each receiver's output queue and freed
 * by the last one to write it or to close.  The loop is single-threaded,
 * so the count is a plain integer.
 *
 * A lent frame is the same queue entry over someone else's memory (the
 * unsent part of a large message written from the caller's buffer): its
 * release hook tells the lender once the bytes are no longer needed. */
#ifndef WS_SHARED_FRAME_H
#define WS_SHARED_FRAME_H

#include <stddef.h>
#include <stdint.h>

typedef void (*ws_shared_release)(void *ud, uintptr_t token);

typedef struct ws_shared_frame {
    size_t refs;
    size_t len;
    const uint8_t *bytes;      /* data, or the lender's memory */
    ws_shared_release release; /* lent frames only: called once, as the frame is freed */
    void *ud;
    uintptr_t token;
    uint8_t data[];
} ws_shared_frame;

/* Counters of this process, for specs and benchmarks. */
typedef struct ws_shared_frame_stats {
    size_t live;       /* frames allocated and not yet freed */
    size_t made;       /* frames allocated so far */
    size_t compressed; /* of which compressed once for several receivers */
    size_t queued;     /* references queued by connections so far */
} ws_shared_frame_stats;

/* A frame of len bytes (to be filled) with one reference, or NULL. */
ws_shared_frame *ws_shared_frame_new(size_t len);
/* A frame over len bytes at p that stay the caller's, with one reference;
 * release(ud, token) runs when it is freed.  NULL when out of memory. */
ws_shared_frame *ws_shared_frame_lent(const uint8_t *p, size_t len, ws_shared_release release,
                                      void *ud, uintptr_t token);
void ws_shared_frame_unref(ws_shared_frame *f);
ws_shared_frame_stats *ws_shared_frame_stats_get(void);

#endif
