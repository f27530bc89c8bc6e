/* hiredis's asynchronous contexts driven by a ws_loop: the adapter hooks
 * (addRead, delRead, addWrite, delWrite, cleanup) map to one level-
 * triggered watcher on the context's socket, whose events call
 * redisAsyncHandleRead/Write.  No thread, no timer of hiredis's own. */
#ifndef WS_REDIS_LOOP_H
#define WS_REDIS_LOOP_H

#include <hiredis/async.h>

#include "io/loop.h"

/* Embedded by the owner of the context; it must outlive the context (the
 * context's cleanup hook stops the watcher and clears ac). */
typedef struct ws_redis_link {
    ws_io io; /* first: the watcher's callback finds the link from it */
    ws_loop *loop;
    redisAsyncContext *ac; /* NULL once hiredis freed it */
    unsigned events;
} ws_redis_link;

/* Attach ac (just created, no error) to loop; the watcher does not keep
 * the loop alive (unref'd).  0, or -1 when hiredis refuses the hooks (ac
 * already has an adapter). */
int ws_redis_link_attach(ws_redis_link *link, ws_loop *loop, redisAsyncContext *ac);

#endif
