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
    f->bytes = f->data;
    f->release = NULL;
    stats.live++;
    stats.made++;
    return f;
}

ws_shared_frame *ws_shared_frame_lent(const uint8_t *p, size_t len, ws_shared_release release,
                                      void *ud, uintptr_t token)
{
    ws_shared_frame *f = malloc(sizeof *f);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = len;
    f->bytes = p;
    f->release = release;
    f->ud = ud;
    f->token = token;
    return f;
}

void ws_shared_frame_unref(ws_shared_frame *f)
{
    if (f && --f->refs == 0) {
        if (f->release)
            f->release(f->ud, f->token);
        else
            stats.live--;
        free(f);
    }
}

ws_shared_frame_stats *ws_shared_frame_stats_get(void)
{
    return &stats;
}
