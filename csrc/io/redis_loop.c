/* hiredis adapter for ws_loop. */
#include "io/redis_loop.h"

static void on_io(ws_loop *loop, ws_io *io, unsigned events)
{
    (void)loop;
    ws_redis_link *link = (ws_redis_link *)(void *)io; /* io is its first member */
    redisAsyncContext *ac = link->ac;
    /* Either handler may free the context (its cleanup clears link->ac);
     * a reconnect never happens inside them, so a changed link->ac means
     * it is gone. */
    if (ac && (events & WS_IO_WRITE))
        redisAsyncHandleWrite(ac);
    if (ac && link->ac == ac && (events & (WS_IO_READ | WS_IO_ERROR)))
        redisAsyncHandleRead(ac);
}

static void update(ws_redis_link *link, unsigned events)
{
    if (events == link->events && ws_io_active(&link->io))
        return;
    link->events = events;
    if (!ws_io_active(&link->io)) {
        if (ws_io_start(link->loop, &link->io, on_io, events) == 0)
            ws_io_unref(link->loop, &link->io);
    } else {
        ws_io_modify(link->loop, &link->io, events);
    }
}

static void add_read(void *p)
{
    ws_redis_link *link = p;
    update(link, link->events | WS_IO_READ);
}

static void del_read(void *p)
{
    ws_redis_link *link = p;
    update(link, link->events & ~(unsigned)WS_IO_READ);
}

static void add_write(void *p)
{
    ws_redis_link *link = p;
    update(link, link->events | WS_IO_WRITE);
}

static void del_write(void *p)
{
    ws_redis_link *link = p;
    update(link, link->events & ~(unsigned)WS_IO_WRITE);
}

static void cleanup(void *p)
{
    ws_redis_link *link = p;
    ws_io_stop(link->loop, &link->io);
    link->events = 0;
    link->ac = NULL;
}

int ws_redis_link_attach(ws_redis_link *link, ws_loop *loop, redisAsyncContext *ac)
{
    if (ac->ev.data)
        return -1;
    link->loop = loop;
    link->ac = ac;
    link->events = 0;
    ws_io_init(&link->io, ac->c.fd);
    ac->ev.data = link;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}
