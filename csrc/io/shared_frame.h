/* A frame queued by many connections at once (a broadcast, a publish):
 * one allocation, referenced from each receiver's output queue and freed
 * by the last one to write it or to close.  The loop is single-threaded,
 * so the count is a plain integer. */
#ifndef WS_SHARED_FRAME_H
#define WS_SHARED_FRAME_H

#include <stddef.h>
#include <stdint.h>

typedef struct ws_shared_frame {
    size_t refs;
    size_t len;
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
void ws_shared_frame_unref(ws_shared_frame *f);
ws_shared_frame_stats *ws_shared_frame_stats_get(void);

#endif
