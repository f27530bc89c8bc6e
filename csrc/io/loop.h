/* The event loop: I/O watchers, a timer heap, deferred callbacks and one
 * shared read buffer, on epoll (Linux) or poll() (elsewhere, or with
 * -DWS_LOOP_USE_POLL).  No Lua, no global state: loops are independent.
 *
 * Ownership: the loop is opaque and allocated by ws_loop_new.  Watchers
 * (ws_io), timers (ws_timer) and deferred callbacks (ws_deferred) are
 * owned by the caller, usually embedded in a bigger struct (a connection),
 * so registering them allocates nothing (the timer heap and the poll
 * backend's arrays grow geometrically).  The loop keeps pointers to them
 * while they are active: stop them before freeing them.
 *
 * Re-entrancy: any callback may start, stop, restart or modify any
 * watcher, timer or deferred callback of the loop, including the one it
 * runs in, and may free the one it runs in after stopping it (the loop does
 * not touch it again after its callback returns).  A watcher stopped by a
 * callback never sees an event that was already collected for it, and a
 * timer stopped before its callback runs does not run, even if it was due
 * in the same turn.  ws_loop_step/ws_loop_run must not be called from a
 * callback of the same loop (they fail with EBUSY), nor ws_loop_free.
 *
 * Time: nanoseconds of a monotonic clock (CLOCK_MONOTONIC unless another
 * clock is injected with ws_loop_set_clock).  Like libuv, the loop caches
 * the time at the start of each turn: a timer started inside a callback
 * counts from that cached time (so timers started in one turn keep their
 * relative order exactly); a timer started outside a step reads the clock
 * afresh. */
#ifndef WS_LOOP_H
#define WS_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* The backend, fixed at build time: epoll on Linux unless
 * -DWS_LOOP_USE_POLL (every file of a build must agree: ws_io differs). */
#if defined(__linux__) && !defined(WS_LOOP_USE_POLL)
#define WS_LOOP_EPOLL 1
#else
#define WS_LOOP_EPOLL 0
#endif

typedef struct ws_loop ws_loop;
typedef struct ws_io ws_io;
typedef struct ws_timer ws_timer;
typedef struct ws_deferred ws_deferred;

#define WS_NSEC_PER_MSEC UINT64_C(1000000)
#define WS_NSEC_PER_SEC  UINT64_C(1000000000)

/* Size of the shared read buffer. */
#define WS_LOOP_READ_BUFFER_SIZE 262144

/* ---- the loop ---------------------------------------------------------- */

/* NULL with errno set when the kernel objects or memory are missing. */
ws_loop *ws_loop_new(void);
/* Closes the loop's own fds (epoll fd, timerfd) and frees it.  Watchers,
 * timers and deferred callbacks still registered are not touched (they may
 * already be freed): they are simply forgotten and must not be used with
 * this loop again. */
void ws_loop_free(ws_loop *loop);

/* "epoll" or "poll". */
const char *ws_loop_backend(const ws_loop *loop);

/* One turn: wait at most timeout_ms (-1 or any negative: until something
 * happens; 0: do not wait) for I/O or the earliest timer, then run the
 * callbacks of ready watchers, then those of due timers (in deadline
 * order, ties in start order), then the deferred callbacks queued before
 * that phase began (one queued during it runs on the next turn).  It does
 * not wait when deferred callbacks are queued, nor when the loop is not
 * alive and timeout_ms is negative (so it cannot block forever).  Returns
 * the number of callbacks run, or -1 with errno set (EBUSY when called
 * from a callback of this loop; a failed epoll_wait/poll; EINTR is not an
 * error, the turn simply sees no I/O). */
int ws_loop_step(ws_loop *loop, int timeout_ms);

/* ws_loop_step(loop, -1) until the loop is not alive, ws_loop_stop or
 * ws_loop_break is called from a callback, or an error occurs.  Returns 0
 * when the loop is no longer alive, 1 when stopped while still alive, -1
 * with errno set on error. */
int ws_loop_run(ws_loop *loop);

/* From a callback: the current ws_loop_run returns once this turn is
 * complete (its remaining callbacks, timers and deferred callbacks run).
 * Called outside a step it has no effect. */
void ws_loop_stop(ws_loop *loop);

/* From a callback: no further callback runs in the current turn; the step
 * returns as soon as the running callback returns, and so does
 * ws_loop_run.  Nothing is lost: ready I/O is reported again (level
 * triggered), due timers stay due, queued deferred callbacks stay queued
 * (in their order) and run on the next step.  Bindings use this to
 * surface an error raised in a callback. */
void ws_loop_break(ws_loop *loop);

/* True while a step or run of this loop is executing. */
bool ws_loop_running(const ws_loop *loop);

/* True while an active watcher or timer that is not unref'd, or a queued
 * deferred callback, exists. */
bool ws_loop_alive(const ws_loop *loop);

/* A file descriptor that polls readable when ws_loop_step(loop, 0) has
 * something to do: the epoll fd itself, holding a timerfd armed to the
 * earliest timer and a wake-up eventfd, so an outer loop (luv, cqueues,
 * Neovim, poll) that waits on this fd alone runs lua-ws.  Readable when a
 * watched fd is ready, a timer is due, or a deferred callback is queued
 * (queued outside a step, or left for the next turn by a step).  It may be
 * readable early (a spurious wake-up: step(0) then runs nothing and
 * re-arms it), never late.  The poll backend has no such fd: -1 with errno
 * ENOSYS (its wake-up pipe only interrupts a blocked step). */
int ws_loop_fd(ws_loop *loop);

/* Nanoseconds until the earliest timer is due: 0 when one is due or a
 * deferred callback is queued, -1 when there is neither (wait for I/O
 * only).  For hosts that poll ws_loop_fd with a timeout. */
int64_t ws_loop_timeout(ws_loop *loop);

/* Makes ws_loop_fd readable and interrupts a step blocked in the kernel;
 * the next step drains it.  Safe from another thread or a signal handler
 * (the only function of this API that is). */
void ws_loop_wake(ws_loop *loop);

/* The loop's time (ns): the cached time of the current turn. */
uint64_t ws_loop_now(const ws_loop *loop);
/* Reads the clock into the cached time (which never goes backwards) and
 * returns it. */
uint64_t ws_loop_update_time(ws_loop *loop);

/* Replace the clock (tests): fn(ud) returns nanoseconds and must not go
 * backwards.  NULL restores CLOCK_MONOTONIC.  Set it before starting
 * timers: deadlines already computed are not converted. */
typedef uint64_t (*ws_clock_fn)(void *ud);
void ws_loop_set_clock(ws_loop *loop, ws_clock_fn fn, void *ud);

/* The loop's shared read buffer (WS_LOOP_READ_BUFFER_SIZE bytes, allocated
 * on first use).  An I/O callback may use it for the duration of the
 * callback; its content is not preserved across callbacks.  NULL (and
 * *size 0) when out of memory. */
uint8_t *ws_loop_read_buffer(ws_loop *loop, size_t *size);

/* Output storage the loop's connections pass from one to the next (see
 * ws_session_set_output_pool); freed with the loop. */
ws_buf_pool *ws_loop_output_pool(ws_loop *loop);

/* ---- I/O watchers (level-triggered) ------------------------------------ */

enum {
    WS_IO_READ = 1u,  /* interest / event: readable (or EOF)               */
    WS_IO_WRITE = 2u, /* interest / event: writable                         */
    WS_IO_ERROR = 4u  /* event only: error or hang-up (EPOLLERR/EPOLLHUP,
                         POLLERR/POLLHUP/POLLNVAL); it comes with the
                         READ/WRITE bits of the interest, so the callback's
                         read or write finds out what happened             */
};

/* events: the bits that are ready, restricted to the current interest
 * (plus WS_IO_ERROR).  The watcher carries no user pointer: the callback
 * finds its owner from `io` (the watcher is embedded in it; container_of). */
typedef void (*ws_io_cb)(ws_loop *loop, ws_io *io, unsigned events);

/* How many distinct I/O callbacks one loop can hold: a watcher names its
 * callback by a byte-sized index into the loop's table rather than a
 * pointer of its own (bench/PROFILE.md, idle memory). */
#define WS_LOOP_IO_CALLBACKS 16

/* Level-triggered: as long as the fd stays readable (writable) and the
 * interest includes READ (WRITE), every turn reports it.  One watcher per
 * fd and loop (epoll refuses a second one with EEXIST).  Stop the watcher
 * before closing its fd.  epoll refuses regular files (EPERM).  A watcher
 * belongs to the loop it was started on: every call below that takes a
 * loop must be given that one. */
void ws_io_init(ws_io *io, int fd);
/* Registers the watcher with interest `events` (READ|WRITE; 0 keeps it
 * active but watching nothing) and callback cb.  On an active watcher it
 * is ws_io_modify (cb must be the same).  0, or -1 with errno set (EBADF,
 * EEXIST, EPERM, ENOMEM; ENOSPC when the loop already holds
 * WS_LOOP_IO_CALLBACKS other callbacks). */
int ws_io_start(ws_loop *loop, ws_io *io, ws_io_cb cb, unsigned events);
/* Changes the interest; on a stopped watcher it only records it. */
int ws_io_modify(ws_loop *loop, ws_io *io, unsigned events);
/* Unregisters; idempotent. */
void ws_io_stop(ws_loop *loop, ws_io *io);
static inline bool ws_io_active(const ws_io *io);
int ws_io_fd(const ws_io *io);
unsigned ws_io_events(const ws_io *io); /* the interest */
/* An unref'd watcher does not keep the loop alive (libuv's uv_unref). */
void ws_io_ref(ws_loop *loop, ws_io *io);
void ws_io_unref(ws_loop *loop, ws_io *io);

/* ---- timers (binary min-heap) ------------------------------------------ */

typedef void (*ws_timer_cb)(ws_loop *loop, ws_timer *t, void *ud);

void ws_timer_init(ws_timer *t, ws_timer_cb cb, void *ud);
/* (Re)starts the timer: due `after_ns` from now, then every `repeat_ns`
 * (0: once).  On an active timer it moves the timer inside the heap in
 * O(log n) without allocating.  0, or -1 with errno ENOMEM (only when the
 * heap must grow).  A repeating timer is re-armed just before its callback
 * runs, `repeat_ns` after the turn's time (no catch-up bursts). */
int ws_timer_start(ws_loop *loop, ws_timer *t, uint64_t after_ns, uint64_t repeat_ns);
/* Restart with the last after/repeat (idle and keepalive timers).  The
 * timer must have been started once on some loop; -1 with EINVAL if not. */
int ws_timer_again(ws_timer *t);
/* Idempotent; safe from any callback, including the timer's own. */
void ws_timer_stop(ws_timer *t);
bool ws_timer_active(const ws_timer *t);
void ws_timer_ref(ws_timer *t);
void ws_timer_unref(ws_timer *t);

/* ---- deferred callbacks ("at the end of this turn") -------------------- */

typedef void (*ws_deferred_cb)(ws_loop *loop, ws_deferred *d, void *ud);

void ws_deferred_init(ws_deferred *d, ws_deferred_cb cb, void *ud);
/* Queue d to run at the end of the current turn (or of the next one when
 * called outside a step or from a deferred callback).  Idempotent while d
 * is queued (it runs once, at its first position). */
void ws_loop_defer(ws_loop *loop, ws_deferred *d);
/* Unqueue; idempotent. */
void ws_deferred_cancel(ws_deferred *d);
bool ws_deferred_queued(const ws_deferred *d);

/* ---- deferred nodes: two pointers each --------------------------------- */

/* A lighter deferred callback for objects that exist by the thousand (a
 * connection's flush): the node holds only its links; the callback is
 * given when queueing and the nodes of one callback wait in one per-loop
 * list, which runs, in queueing order, at the place in the deferred queue
 * where its first node was queued.  The callback finds the owner from
 * `n` (container_of).  At most WS_LOOP_NODE_CALLBACKS distinct callbacks
 * per loop (a programming error beyond: abort). */
typedef struct ws_defer_node ws_defer_node;
typedef void (*ws_defer_node_cb)(ws_loop *loop, ws_defer_node *n);

#define WS_LOOP_NODE_CALLBACKS 4

/* Zeroes the node (not queued). */
void ws_defer_node_init(ws_defer_node *n);
/* Like ws_loop_defer: idempotent while queued (cb must then be the same). */
void ws_loop_defer_node(ws_loop *loop, ws_defer_node *n, ws_defer_node_cb cb);
/* Unqueue in O(1) (no loop needed); idempotent.  Required before the
 * owner frees a queued node. */
void ws_defer_node_cancel(ws_defer_node *n);
static inline bool ws_defer_node_queued(const ws_defer_node *n);

/* ---- the structs (embed them; the fields are private) ------------------ */

/* No loop, callback or user pointer of its own: every connection embeds
 * one (bench/PROFILE.md, idle memory). */
struct ws_io {
    int fd;
    uint8_t events; /* interest */
    uint8_t flags;
    uint8_t cb; /* index in the loop's callback table */
#if !WS_LOOP_EPOLL
    uint32_t index; /* position in the watcher array */
#endif
};

#define WS_IO_F_ACTIVE 1u /* ws_io.flags: started */

/* Inline: asked on every read and flush of a connection. */
static inline bool ws_io_active(const ws_io *io)
{
    return (io->flags & WS_IO_F_ACTIVE) != 0;
}

struct ws_timer {
    ws_loop *loop;
    ws_timer_cb cb;
    void *ud;
    uint64_t deadline;
    uint64_t seq; /* start order: ties and the same-turn guard */
    uint64_t after;
    uint64_t repeat;
    size_t index; /* position in the heap */
    unsigned flags;
};

/* Queued when next is set: no loop pointer or flag of its own, as every
 * connection embeds one (bench/PROFILE.md, idle memory). */
struct ws_deferred {
    ws_deferred_cb cb;
    void *ud;
    ws_deferred *next, *prev;
};

/* Queued when next is set. */
struct ws_defer_node {
    ws_defer_node *next, *prev;
};

static inline bool ws_defer_node_queued(const ws_defer_node *n)
{
    return n->next != NULL;
}

#endif
