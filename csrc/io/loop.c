/* The event loop: epoll + timerfd on Linux, poll() elsewhere (or with
 * -DWS_LOOP_USE_POLL); a binary min-heap of timers; a queue of deferred
 * callbacks; a wake-up fd (eventfd, or a self-pipe with poll) so that work
 * queued outside a turn shows on the loop's fd; one shared read buffer.
 * See loop.h for the contract. */
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if WS_LOOP_EPOLL
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#else
#include <poll.h>
#endif

/* Flags of watchers and timers. */
#define F_ACTIVE     WS_IO_F_ACTIVE /* (timers use the same bit) */
#define F_UNREF      2u
#define F_REGISTERED 4u /* io: in the kernel set (interest != 0) */
#define F_STARTED    8u /* timer: started once (after/repeat are set) */

#define MAX_EVENTS  256 /* epoll events collected per turn */
#define NOT_IN_HEAP SIZE_MAX

/* The nodes of one ws_defer_node callback: `run`, a deferred callback in
 * the loop's queue, stands for them there while the list is not empty. */
typedef struct node_list {
    ws_defer_node_cb cb;
    ws_defer_node head; /* sentinel of a circular list */
    ws_defer_node mark; /* while it runs: where the nodes to run end */
    ws_deferred run;
} node_list;

typedef struct pending_io {
    ws_io *io; /* NULL once the watcher was stopped during the turn */
    unsigned events;
} pending_io;

struct ws_loop {
    ws_clock_fn clock;
    void *clock_ud;
    uint64_t now;

    ws_timer **heap;
    size_t nheap, heap_cap;
    uint64_t timer_seq;

    ws_deferred defer_queue; /* sentinels of circular lists */
    ws_deferred defer_running;

    size_t refs; /* active watchers and timers not unref'd (see has_refs) */

    ws_io_cb io_cbs[WS_LOOP_IO_CALLBACKS]; /* what ws_io.cb indexes */
    unsigned nio_cbs;
    node_list nodes[WS_LOOP_NODE_CALLBACKS];
    unsigned nnodes;
    int node_count; /* nodes run by the deferred phase (callbacks counted) */

    pending_io *pending;
    size_t npending, pending_cap, pending_pos;
    bool dispatching;

    bool running, stop_flag, break_flag;
    uint8_t *read_buf;
    ws_buf_pool out_pool; /* output storage the connections pass on */
    /* Gives the pool's large buffer back once no large message has used it
     * for POOL_LARGE_IDLE_NS (an idle loop must not keep up to 16 MiB). */
    ws_timer pool_timer;
    unsigned long pool_uses_seen;

    /* The wake-up fd: eventfd (wake_r == wake_w) or a self-pipe.  `woken`
     * saves a write when one is already pending (same thread only;
     * ws_loop_wake writes unconditionally). */
    int wake_r, wake_w;
    bool woken;

#if WS_LOOP_EPOLL
    int epfd;
    int tfd;
    bool tfd_armed;
    uint64_t tfd_deadline;
    struct epoll_event events[MAX_EVENTS];
#else
    ws_io **ios; /* active watchers */
    size_t nios, ios_cap;
    struct pollfd *pfds;
    ws_io **pfd_io;
    size_t pfd_cap;
#endif
};

/* ---- time ----------------------------------------------------------------- */

static uint64_t monotonic_ns(void *ud)
{
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * WS_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t ws_loop_now(const ws_loop *loop)
{
    return loop->now;
}

uint64_t ws_loop_update_time(ws_loop *loop)
{
    uint64_t t = loop->clock(loop->clock_ud);
    if (t > loop->now)
        loop->now = t;
    return loop->now;
}

void ws_loop_set_clock(ws_loop *loop, ws_clock_fn fn, void *ud)
{
    loop->clock = fn ? fn : monotonic_ns;
    loop->clock_ud = fn ? ud : NULL;
    loop->now = loop->clock(loop->clock_ud);
}

/* ---- lists of deferred callbacks ------------------------------------------ */

static void list_init(ws_deferred *head)
{
    head->next = head->prev = head;
}
static bool list_empty(const ws_deferred *head)
{
    return head->next == head;
}

static void list_push(ws_deferred *head, ws_deferred *d)
{
    d->prev = head->prev;
    d->next = head;
    head->prev->next = d;
    head->prev = d;
}

static void list_unlink(ws_deferred *d)
{
    d->prev->next = d->next;
    d->next->prev = d->prev;
    d->next = d->prev = NULL;
}

/* Moves every node of `from` to the front of `to`. */
static void list_splice_front(ws_deferred *to, ws_deferred *from)
{
    if (list_empty(from))
        return;
    ws_deferred *first = from->next, *last = from->prev;
    last->next = to->next;
    to->next->prev = last;
    to->next = first;
    first->prev = to;
    list_init(from);
}

/* Something keeps the loop alive: an active watcher or timer that is not
 * unref'd (counted), or a queued deferred callback (those of the current
 * deferred phase that have not run yet wait in defer_running). */
static bool has_refs(const ws_loop *loop)
{
    return loop->refs > 0 || !list_empty(&loop->defer_queue) || !list_empty(&loop->defer_running);
}

/* ---- the wake-up fd --------------------------------------------------------- */

static void wake_close(ws_loop *loop)
{
    if (loop->wake_r >= 0)
        close(loop->wake_r);
    if (loop->wake_w >= 0 && loop->wake_w != loop->wake_r)
        close(loop->wake_w);
}

void ws_loop_wake(ws_loop *loop)
{
    /* EAGAIN (the counter or the pipe is full) still leaves it readable. */
#if WS_LOOP_EPOLL
    uint64_t one = 1;
    if (write(loop->wake_w, &one, sizeof one) < 0) {
    }
#else
    char one = 1;
    if (write(loop->wake_w, &one, 1) < 0) {
    }
#endif
}

/* Work queued outside a step: the host polling ws_loop_fd must wake up. */
static void wake_once(ws_loop *loop)
{
    if (loop->woken)
        return;
    loop->woken = true;
    ws_loop_wake(loop);
}

static void wake_drain(ws_loop *loop)
{
    char buf[64];
    while (read(loop->wake_r, buf, sizeof buf) > 0) {
    }
    loop->woken = false;
}

/* ---- creation --------------------------------------------------------------- */

#define POOL_LARGE_IDLE_NS (2 * WS_NSEC_PER_SEC)

static void pool_idle_cb(ws_loop *loop, ws_timer *t, void *ud)
{
    (void)t;
    (void)ud;
    ws_buf_pool *p = &loop->out_pool;
    if (p->large_uses != loop->pool_uses_seen)
        return; /* used in this turn: the end of the turn arms it again */
    free(p->large);
    p->large = NULL;
    p->large_cap = 0;
}

/* At the end of a turn that leaves a large buffer in the pool: the timer
 * runs from its last use (re-armed in every turn that used it), so it
 * fires once, POOL_LARGE_IDLE_NS after large messages stopped. */
static void watch_pool(ws_loop *loop)
{
    if (loop->out_pool.large_uses == loop->pool_uses_seen && ws_timer_active(&loop->pool_timer))
        return;
    loop->pool_uses_seen = loop->out_pool.large_uses;
    if (ws_timer_start(loop, &loop->pool_timer, POOL_LARGE_IDLE_NS, 0) < 0) {
        pool_idle_cb(loop, &loop->pool_timer, NULL); /* no timer: give it back now */
        return;
    }
    ws_timer_unref(&loop->pool_timer); /* it keeps no loop running */
}

ws_loop *ws_loop_new(void)
{
    ws_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    loop->clock = monotonic_ns;
    loop->now = monotonic_ns(NULL);
    list_init(&loop->defer_queue);
    list_init(&loop->defer_running);
    ws_timer_init(&loop->pool_timer, pool_idle_cb, NULL);
    loop->wake_r = loop->wake_w = -1;
#if WS_LOOP_EPOLL
    loop->tfd = -1;
    loop->pending = malloc(MAX_EVENTS * sizeof *loop->pending);
    loop->pending_cap = MAX_EVENTS;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!loop->pending || loop->epfd < 0)
        goto fail;
    loop->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    loop->wake_r = loop->wake_w = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->tfd < 0 || loop->wake_r < 0)
        goto fail;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = &loop->tfd; /* the timerfd's marker: never a ws_io */
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->tfd, &ev) < 0)
        goto fail;
    ev.data.ptr = &loop->wake_r; /* the wake-up fd's marker */
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wake_r, &ev) < 0)
        goto fail;
#else
    int fds[2];
    if (pipe(fds) < 0)
        goto fail;
    loop->wake_r = fds[0];
    loop->wake_w = fds[1];
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(fds[i], F_GETFL);
        if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0)
            goto fail;
    }
#endif
    return loop;
fail : {
    int saved = errno ? errno : ENOMEM;
#if WS_LOOP_EPOLL
    if (loop->epfd >= 0)
        close(loop->epfd);
    if (loop->tfd >= 0)
        close(loop->tfd);
#endif
    wake_close(loop);
    free(loop->pending);
    free(loop);
    errno = saved;
    return NULL;
}
}

void ws_loop_free(ws_loop *loop)
{
    if (!loop)
        return;
    wake_close(loop);
#if WS_LOOP_EPOLL
    close(loop->epfd);
    close(loop->tfd);
#else
    free(loop->ios);
    free(loop->pfds);
    free(loop->pfd_io);
#endif
    free(loop->pending);
    free(loop->heap);
    free(loop->read_buf);
    ws_buf_pool_free(&loop->out_pool);
    free(loop);
}

const char *ws_loop_backend(const ws_loop *loop)
{
    (void)loop;
    return WS_LOOP_EPOLL ? "epoll" : "poll";
}

bool ws_loop_alive(const ws_loop *loop)
{
    return has_refs(loop);
}
bool ws_loop_running(const ws_loop *loop)
{
    return loop->running;
}

void ws_loop_stop(ws_loop *loop)
{
    loop->stop_flag = true;
}
void ws_loop_break(ws_loop *loop)
{
    loop->break_flag = true;
}

uint8_t *ws_loop_read_buffer(ws_loop *loop, size_t *size)
{
    if (!loop->read_buf)
        loop->read_buf = malloc(WS_LOOP_READ_BUFFER_SIZE);
    *size = loop->read_buf ? WS_LOOP_READ_BUFFER_SIZE : 0;
    return loop->read_buf;
}

ws_buf_pool *ws_loop_output_pool(ws_loop *loop)
{
    return &loop->out_pool;
}

/* ---- timer heap ------------------------------------------------------------- */

static bool timer_before(const ws_timer *a, const ws_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(ws_loop *loop, size_t i, ws_timer *t)
{
    loop->heap[i] = t;
    t->index = i;
}

static void heap_up(ws_loop *loop, size_t i)
{
    ws_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, loop->heap[parent]))
            break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void heap_down(ws_loop *loop, size_t i)
{
    ws_timer *t = loop->heap[i];
    size_t n = loop->nheap;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && timer_before(loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!timer_before(loop->heap[child], t))
            break;
        heap_set(loop, i, loop->heap[child]);
        i = child;
    }
    heap_set(loop, i, t);
}

/* After t's key changed in place. */
static void heap_fix(ws_loop *loop, size_t i)
{
    if (i > 0 && timer_before(loop->heap[i], loop->heap[(i - 1) / 2]))
        heap_up(loop, i);
    else
        heap_down(loop, i);
}

static void heap_remove(ws_loop *loop, ws_timer *t)
{
    size_t i = t->index;
    ws_timer *last = loop->heap[--loop->nheap];
    t->index = NOT_IN_HEAP;
    if (last != t) {
        heap_set(loop, i, last);
        heap_fix(loop, i);
    }
}

/* ---- timerfd (what makes ws_loop_fd readable for timers) ----------------- */

#if WS_LOOP_EPOLL
static void tfd_arm(ws_loop *loop, uint64_t deadline)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    uint64_t now = ws_loop_update_time(loop);
    uint64_t rel = deadline > now ? deadline - now : 1; /* 0 would disarm */
    its.it_value.tv_sec = (time_t)(rel / WS_NSEC_PER_SEC);
    its.it_value.tv_nsec = (long)(rel % WS_NSEC_PER_SEC);
    if (timerfd_settime(loop->tfd, 0, &its, NULL) == 0) {
        loop->tfd_armed = true;
        loop->tfd_deadline = deadline;
    }
}

static void tfd_disarm(ws_loop *loop)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    timerfd_settime(loop->tfd, 0, &its, NULL); /* also clears a pending expiry */
    loop->tfd_armed = false;
}

/* End of a step: the timerfd follows the earliest timer exactly. */
static void tfd_sync(ws_loop *loop)
{
    if (loop->nheap == 0) {
        if (loop->tfd_armed)
            tfd_disarm(loop);
        return;
    }
    uint64_t d = loop->heap[0]->deadline;
    if (!loop->tfd_armed || loop->tfd_deadline != d)
        tfd_arm(loop, d);
}

/* Outside a step: re-arm only when a timer became due earlier than the
 * timerfd would fire (a later deadline just costs a spurious wake-up), so
 * restarting timers from outside the loop rarely costs a system call. */
static void tfd_earlier(ws_loop *loop)
{
    uint64_t d = loop->heap[0]->deadline;
    if (!loop->tfd_armed || d < loop->tfd_deadline)
        tfd_arm(loop, d);
}
#endif

/* ---- timers ------------------------------------------------------------------ */

static void ref_add(ws_loop *loop, unsigned flags)
{
    if (!(flags & F_UNREF))
        loop->refs++;
}

static void ref_del(ws_loop *loop, unsigned flags)
{
    if (!(flags & F_UNREF))
        loop->refs--;
}

void ws_timer_init(ws_timer *t, ws_timer_cb cb, void *ud)
{
    memset(t, 0, sizeof *t);
    t->cb = cb;
    t->ud = ud;
    t->index = NOT_IN_HEAP;
}

int ws_timer_start(ws_loop *loop, ws_timer *t, uint64_t after_ns, uint64_t repeat_ns)
{
    if ((t->flags & F_ACTIVE) && t->loop != loop)
        ws_timer_stop(t);
    if (!(t->flags & F_ACTIVE) && loop->nheap == loop->heap_cap) {
        size_t cap = loop->heap_cap ? 2 * loop->heap_cap : 16;
        ws_timer **h = realloc(loop->heap, cap * sizeof *h);
        if (!h) {
            errno = ENOMEM;
            return -1;
        }
        loop->heap = h;
        loop->heap_cap = cap;
    }
    uint64_t now = loop->running ? loop->now : ws_loop_update_time(loop);
    t->loop = loop;
    t->after = after_ns;
    t->repeat = repeat_ns;
    t->deadline = sat_add(now, after_ns);
    t->seq = ++loop->timer_seq;
    t->flags |= F_STARTED;
    if (t->flags & F_ACTIVE) {
        heap_fix(loop, t->index);
    } else {
        t->flags |= F_ACTIVE;
        ref_add(loop, t->flags);
        heap_set(loop, loop->nheap++, t);
        heap_up(loop, t->index);
    }
#if WS_LOOP_EPOLL
    if (!loop->running)
        tfd_earlier(loop);
#endif
    return 0;
}

int ws_timer_again(ws_timer *t)
{
    if (!(t->flags & F_STARTED) || !t->loop) {
        errno = EINVAL;
        return -1;
    }
    return ws_timer_start(t->loop, t, t->after, t->repeat);
}

void ws_timer_stop(ws_timer *t)
{
    if (!(t->flags & F_ACTIVE))
        return;
    heap_remove(t->loop, t);
    t->flags &= ~F_ACTIVE;
    ref_del(t->loop, t->flags);
}

bool ws_timer_active(const ws_timer *t)
{
    return (t->flags & F_ACTIVE) != 0;
}

void ws_timer_ref(ws_timer *t)
{
    if (!(t->flags & F_UNREF))
        return;
    t->flags &= ~F_UNREF;
    if (t->flags & F_ACTIVE)
        t->loop->refs++;
}

void ws_timer_unref(ws_timer *t)
{
    if (t->flags & F_UNREF)
        return;
    t->flags |= F_UNREF;
    if (t->flags & F_ACTIVE)
        t->loop->refs--;
}

/* Runs the timers due at the turn's time.  A timer started or re-armed
 * during this phase gets a sequence number >= phase_seq; its key is then
 * (deadline >= now, seq >= phase_seq), after every timer that was already
 * due, so meeting one at the top ends the phase: nothing runs twice in one
 * turn, even with a zero delay. */
static int run_timers(ws_loop *loop)
{
    int count = 0;
    uint64_t now = loop->now;
    uint64_t phase_seq = loop->timer_seq + 1;
    while (loop->nheap > 0 && !loop->break_flag) {
        ws_timer *t = loop->heap[0];
        if (t->deadline > now || t->seq >= phase_seq)
            break;
        if (t->repeat > 0) {
            t->deadline = sat_add(now, t->repeat);
            t->seq = ++loop->timer_seq;
            heap_down(loop, 0);
        } else {
            ws_timer_stop(t);
        }
        count++;
        t->cb(loop, t, t->ud); /* t may be gone now */
    }
    return count;
}

/* ---- deferred callbacks --------------------------------------------------- */

void ws_deferred_init(ws_deferred *d, ws_deferred_cb cb, void *ud)
{
    memset(d, 0, sizeof *d);
    d->cb = cb;
    d->ud = ud;
}

void ws_loop_defer(ws_loop *loop, ws_deferred *d)
{
    if (d->next)
        return;
    list_push(&loop->defer_queue, d);
    if (!loop->running)
        wake_once(loop);
}

void ws_deferred_cancel(ws_deferred *d)
{
    if (d->next)
        list_unlink(d);
}

bool ws_deferred_queued(const ws_deferred *d)
{
    return d->next != NULL;
}

/* ---- deferred nodes --------------------------------------------------------- */

void ws_defer_node_init(ws_defer_node *n)
{
    n->next = n->prev = NULL;
}

/* The deferred callback standing for a list: runs the nodes queued before
 * it started (a marker ends them), in order; one queued meanwhile re-queues
 * the list and runs next turn. */
static void run_nodes(ws_loop *loop, ws_deferred *d, void *ud)
{
    (void)d;
    node_list *nl = ud;
    ws_defer_node *h = &nl->head, *mark = &nl->mark;
    mark->prev = h->prev;
    mark->next = h;
    h->prev->next = mark;
    h->prev = mark;
    while (!loop->break_flag) {
        ws_defer_node *n = h->next;
        if (n == mark)
            break;
        h->next = n->next;
        n->next->prev = h;
        n->next = n->prev = NULL;
        loop->node_count++;
        nl->cb(loop, n); /* n may be gone now */
    }
    mark->prev->next = mark->next;
    mark->next->prev = mark->prev;
    mark->next = mark->prev = NULL;
    if (h->next == h) /* re-queued by a node cancelled since */
        ws_deferred_cancel(&nl->run);
    if (loop->break_flag && h->next != h) {
        /* What did not run goes back in front, where the list was. */
        ws_deferred_cancel(&nl->run);
        nl->run.prev = &loop->defer_running;
        nl->run.next = loop->defer_running.next;
        loop->defer_running.next->prev = &nl->run;
        loop->defer_running.next = &nl->run;
    }
}

static node_list *node_list_of(ws_loop *loop, ws_defer_node_cb cb)
{
    for (unsigned i = 0; i < loop->nnodes; i++)
        if (loop->nodes[i].cb == cb)
            return &loop->nodes[i];
    if (loop->nnodes == WS_LOOP_NODE_CALLBACKS)
        abort(); /* more distinct callbacks than loop.h allows */
    node_list *nl = &loop->nodes[loop->nnodes++];
    nl->cb = cb;
    nl->head.next = nl->head.prev = &nl->head;
    ws_deferred_init(&nl->run, run_nodes, nl);
    return nl;
}

void ws_loop_defer_node(ws_loop *loop, ws_defer_node *n, ws_defer_node_cb cb)
{
    if (n->next)
        return;
    node_list *nl = node_list_of(loop, cb);
    ws_defer_node *h = &nl->head;
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
    ws_loop_defer(loop, &nl->run); /* idempotent while queued */
}

void ws_defer_node_cancel(ws_defer_node *n)
{
    if (!n->next)
        return;
    /* Alone in its list, n's neighbour both ways is the list's head (while
     * the list runs, its marker is there too): the list is then empty and
     * leaves the deferred queue, so it keeps nothing alive. */
    bool last = n->next == n->prev;
    ws_defer_node *h = n->next;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
    if (last) {
        node_list *nl = (node_list *)(void *)((char *)h - offsetof(node_list, head));
        ws_deferred_cancel(&nl->run);
    }
}

static int run_deferred(ws_loop *loop)
{
    int count = 0;
    loop->node_count = 0;
    ws_deferred *run = &loop->defer_running;
    list_splice_front(run, &loop->defer_queue);
    while (!list_empty(run) && !loop->break_flag) {
        ws_deferred *d = run->next;
        ws_deferred_cancel(d);
        if (d->cb != run_nodes) /* its nodes are counted */
            count++;
        d->cb(loop, d, d->ud); /* d may be gone now */
    }
    /* After a break, what did not run goes back in front, in order. */
    list_splice_front(&loop->defer_queue, run);
    return count + loop->node_count;
}

/* ---- I/O watchers: the backends --------------------------------------------- */

#if WS_LOOP_EPOLL
static uint32_t to_epoll(unsigned events)
{
    return ((events & WS_IO_READ) ? EPOLLIN : 0u) | ((events & WS_IO_WRITE) ? EPOLLOUT : 0u);
}

static int backend_set(ws_loop *loop, ws_io *io, unsigned events)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = to_epoll(events);
    ev.data.ptr = io;
    if (events == 0) {
        if (io->flags & F_REGISTERED) {
            epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, &ev);
            io->flags &= ~F_REGISTERED;
        }
        return 0;
    }
    int op = (io->flags & F_REGISTERED) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(loop->epfd, op, io->fd, &ev) < 0)
        return -1;
    io->flags |= F_REGISTERED;
    return 0;
}

static int backend_add(ws_loop *loop, ws_io *io)
{
    return backend_set(loop, io, io->events);
}
static void backend_del(ws_loop *loop, ws_io *io)
{
    (void)backend_set(loop, io, 0);
}

static int backend_wait(ws_loop *loop, int timeout_ms)
{
    int n = epoll_wait(loop->epfd, loop->events, MAX_EVENTS, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    size_t np = 0;
    for (int i = 0; i < n; i++) {
        uint32_t e = loop->events[i].events;
        void *p = loop->events[i].data.ptr;
        if (p == &loop->tfd) {
            uint64_t ticks;
            if (read(loop->tfd, &ticks, sizeof ticks) < 0) {
                /* EAGAIN: already re-armed; nothing to drain */
            }
            loop->tfd_armed = false;
            continue;
        }
        if (p == &loop->wake_r) {
            wake_drain(loop);
            continue;
        }
        unsigned ev = 0;
        if (e & EPOLLIN)
            ev |= WS_IO_READ;
        if (e & EPOLLOUT)
            ev |= WS_IO_WRITE;
        if (e & (EPOLLERR | EPOLLHUP))
            ev |= WS_IO_ERROR | WS_IO_READ | WS_IO_WRITE;
        loop->pending[np].io = p;
        loop->pending[np].events = ev;
        np++;
    }
    loop->npending = np;
    return 0;
}

int ws_loop_fd(ws_loop *loop)
{
    /* Timers started outside a step armed it already (tfd_earlier). */
    return loop->epfd;
}

#else /* poll() */

static int backend_set(ws_loop *loop, ws_io *io, unsigned events)
{
    (void)loop;
    (void)io;
    (void)events;
    return 0; /* the poll set is rebuilt every turn */
}

static int backend_add(ws_loop *loop, ws_io *io)
{
    for (size_t i = 0; i < loop->nios; i++) {
        if (loop->ios[i]->fd == io->fd) {
            errno = EEXIST;
            return -1;
        }
    }
    if (fcntl(io->fd, F_GETFD) < 0)
        return -1; /* EBADF, as epoll would say */
    if (loop->nios == loop->ios_cap) {
        size_t cap = loop->ios_cap ? 2 * loop->ios_cap : 16;
        ws_io **a = realloc(loop->ios, cap * sizeof *a);
        if (!a) {
            errno = ENOMEM;
            return -1;
        }
        loop->ios = a;
        loop->ios_cap = cap;
    }
    io->index = (uint32_t)loop->nios;
    loop->ios[loop->nios++] = io;
    io->flags |= F_REGISTERED;
    return 0;
}

static void backend_del(ws_loop *loop, ws_io *io)
{
    if (!(io->flags & F_REGISTERED))
        return;
    ws_io *last = loop->ios[--loop->nios];
    loop->ios[io->index] = last;
    last->index = io->index;
    io->flags &= ~F_REGISTERED;
}

static int backend_wait(ws_loop *loop, int timeout_ms)
{
    if (loop->pfd_cap < loop->nios + 1) {
        size_t cap = loop->nios + 1; /* + the wake-up fd, first */
        struct pollfd *p = realloc(loop->pfds, cap * sizeof *p);
        if (!p)
            return -1;
        loop->pfds = p;
        ws_io **q = realloc(loop->pfd_io, cap * sizeof *q);
        if (!q)
            return -1;
        loop->pfd_io = q;
        pending_io *r = realloc(loop->pending, cap * sizeof *r);
        if (!r)
            return -1;
        loop->pending = r;
        loop->pfd_cap = loop->pending_cap = cap;
    }
    loop->pfds[0].fd = loop->wake_r;
    loop->pfds[0].events = POLLIN;
    loop->pfds[0].revents = 0;
    loop->pfd_io[0] = NULL;
    nfds_t n = 1;
    for (size_t i = 0; i < loop->nios; i++) {
        ws_io *io = loop->ios[i];
        if (io->events == 0)
            continue;
        loop->pfds[n].fd = io->fd;
        loop->pfds[n].events = (short)(((io->events & WS_IO_READ) ? POLLIN : 0) |
                                       ((io->events & WS_IO_WRITE) ? POLLOUT : 0));
        loop->pfds[n].revents = 0;
        loop->pfd_io[n] = io;
        n++;
    }
    loop->npending = 0;
    int r = poll(loop->pfds, n, timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -1;
    size_t np = 0;
    for (nfds_t i = 0; i < n && r > 0; i++) {
        short e = loop->pfds[i].revents;
        if (!e)
            continue;
        r--;
        if (!loop->pfd_io[i]) {
            wake_drain(loop);
            continue;
        }
        unsigned ev = 0;
        if (e & POLLIN)
            ev |= WS_IO_READ;
        if (e & POLLOUT)
            ev |= WS_IO_WRITE;
        if (e & (POLLERR | POLLHUP | POLLNVAL))
            ev |= WS_IO_ERROR | WS_IO_READ | WS_IO_WRITE;
        loop->pending[np].io = loop->pfd_io[i];
        loop->pending[np].events = ev;
        np++;
    }
    loop->npending = np;
    return 0;
}

int ws_loop_fd(ws_loop *loop)
{
    (void)loop;
    errno = ENOSYS;
    return -1;
}
#endif

/* ---- I/O watchers ------------------------------------------------------------ */

void ws_io_init(ws_io *io, int fd)
{
    memset(io, 0, sizeof *io);
    io->fd = fd;
}

/* The index of cb in the loop's table, added on first use; -1 when full. */
static int io_cb_index(ws_loop *loop, ws_io_cb cb)
{
    for (unsigned i = 0; i < loop->nio_cbs; i++)
        if (loop->io_cbs[i] == cb)
            return (int)i;
    if (loop->nio_cbs == WS_LOOP_IO_CALLBACKS)
        return -1;
    loop->io_cbs[loop->nio_cbs] = cb;
    return (int)loop->nio_cbs++;
}

int ws_io_start(ws_loop *loop, ws_io *io, ws_io_cb cb, unsigned events)
{
    events &= WS_IO_READ | WS_IO_WRITE;
    if (io->flags & F_ACTIVE)
        return ws_io_modify(loop, io, events);
    int k = io_cb_index(loop, cb);
    if (k < 0) {
        errno = ENOSPC;
        return -1;
    }
    io->cb = (uint8_t)k;
    io->events = (uint8_t)events;
    if (backend_add(loop, io) < 0)
        return -1;
    io->flags |= F_ACTIVE;
    ref_add(loop, io->flags);
    return 0;
}

int ws_io_modify(ws_loop *loop, ws_io *io, unsigned events)
{
    events &= WS_IO_READ | WS_IO_WRITE;
    if (!(io->flags & F_ACTIVE) || events == io->events) {
        io->events = (uint8_t)events;
        return 0;
    }
    if (backend_set(loop, io, events) < 0)
        return -1;
    io->events = (uint8_t)events;
    return 0;
}

void ws_io_stop(ws_loop *loop, ws_io *io)
{
    if (!(io->flags & F_ACTIVE))
        return;
    backend_del(loop, io);
    io->flags &= (uint8_t)~F_ACTIVE;
    ref_del(loop, io->flags);
    if (loop->dispatching) {
        /* Forget events already collected for it in this turn. */
        for (size_t i = loop->pending_pos; i < loop->npending; i++)
            if (loop->pending[i].io == io)
                loop->pending[i].io = NULL;
    }
}

int ws_io_fd(const ws_io *io)
{
    return io->fd;
}
unsigned ws_io_events(const ws_io *io)
{
    return io->events;
}

void ws_io_ref(ws_loop *loop, ws_io *io)
{
    if (!(io->flags & F_UNREF))
        return;
    io->flags &= (uint8_t)~F_UNREF;
    if (io->flags & F_ACTIVE)
        loop->refs++;
}

void ws_io_unref(ws_loop *loop, ws_io *io)
{
    if (io->flags & F_UNREF)
        return;
    io->flags |= F_UNREF;
    if (io->flags & F_ACTIVE)
        loop->refs--;
}

static int run_io(ws_loop *loop)
{
    int count = 0;
    loop->dispatching = true;
    for (loop->pending_pos = 0; loop->pending_pos < loop->npending && !loop->break_flag;) {
        pending_io p = loop->pending[loop->pending_pos++];
        if (!p.io)
            continue;
        unsigned ev = p.events & (p.io->events | WS_IO_ERROR);
        if (!(ev & (WS_IO_READ | WS_IO_WRITE)))
            continue; /* interest changed this turn (or is empty) */
        count++;
        loop->io_cbs[p.io->cb](loop, p.io, ev); /* p.io may be gone now */
    }
    loop->dispatching = false;
    loop->npending = loop->pending_pos = 0;
    return count;
}

/* ---- the turn ---------------------------------------------------------------- */

static int wait_timeout(ws_loop *loop, int timeout_ms)
{
    if (timeout_ms == 0 || !list_empty(&loop->defer_queue))
        return 0;
    if (timeout_ms < 0 && !has_refs(loop))
        return 0;
    if (loop->nheap == 0)
        return timeout_ms < 0 ? -1 : timeout_ms;
    uint64_t d = loop->heap[0]->deadline, now = loop->now;
    if (d <= now)
        return 0;
    uint64_t ms = (d - now + WS_NSEC_PER_MSEC - 1) / WS_NSEC_PER_MSEC;
    if (ms > INT_MAX)
        ms = INT_MAX;
    if (timeout_ms >= 0 && (uint64_t)timeout_ms < ms)
        return timeout_ms;
    return (int)ms;
}

int64_t ws_loop_timeout(ws_loop *loop)
{
    if (!list_empty(&loop->defer_queue))
        return 0;
    if (loop->nheap == 0)
        return -1;
    uint64_t d = loop->heap[0]->deadline;
    uint64_t now = loop->running ? loop->now : ws_loop_update_time(loop);
    if (d <= now)
        return 0;
    return d - now > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)(d - now);
}

int ws_loop_step(ws_loop *loop, int timeout_ms)
{
    if (loop->running) {
        errno = EBUSY;
        return -1;
    }
    loop->running = true;
    loop->stop_flag = false;
    loop->break_flag = false;
    ws_loop_update_time(loop);
    if (backend_wait(loop, wait_timeout(loop, timeout_ms)) < 0) {
        int saved = errno;
        loop->running = false;
        errno = saved;
        return -1;
    }
    ws_loop_update_time(loop);
    int count = run_io(loop);
    if (!loop->break_flag)
        count += run_timers(loop);
    if (!loop->break_flag)
        count += run_deferred(loop);
    if (loop->out_pool.large)
        watch_pool(loop);
#if WS_LOOP_EPOLL
    tfd_sync(loop);
#endif
    loop->running = false;
    /* Deferred callbacks queued during the deferred phase (or left by a
     * break) run next turn: the fd must say so. */
    if (!list_empty(&loop->defer_queue))
        wake_once(loop);
    return count;
}

int ws_loop_run(ws_loop *loop)
{
    if (loop->running) {
        errno = EBUSY;
        return -1;
    }
    while (has_refs(loop)) {
        if (ws_loop_step(loop, -1) < 0)
            return -1;
        if (loop->stop_flag || loop->break_flag) {
            bool alive = has_refs(loop);
            loop->stop_flag = loop->break_flag = false;
            return alive ? 1 : 0;
        }
    }
    return 0;
}
