/* Reference-counted frames shared between output queues. */
#include "shared_frame.h"

#include <stdlib.h>

static ws_shared_frame_stats stats;

ws_shared_frame *ws_shared_frame_new(size_t len)
{
    ws_shared_frame *f = malloc(sizeof *f + len);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = len;
    stats.live++;
    stats.made++;
    return f;
}

void ws_shared_frame_unref(ws_shared_frame *f)
{
    if (f && --f->refs == 0) {
        stats.live--;
        free(f);
    }
}

ws_shared_frame_stats *ws_shared_frame_stats_get(void)
{
    return &stats;
}
