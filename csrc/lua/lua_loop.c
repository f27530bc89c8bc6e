/* ws.core.loop: the binding of the event loop (csrc/io/loop.h) that
 * lua/ws drives (ws.loop(), ws.run, ws.step, timers).
 *
 *   local loop = ws.core.loop()
 *   loop:timer(s, fn) / loop:every(s, fn) -> timer  (fn(timer))
 *       timer:cancel(), timer:again([s]), timer:active(), :ref(), :unref()
 *   loop:defer(fn) -> deferred  (fn(deferred)), deferred:cancel(),
 *       :again() (queue it again; no-op while queued), :queued()
 *   loop:watch(fd, "r"|"w"|"rw", fn) -> watcher | nil, err, errno
 *       fn(watcher, events): events is "r", "w" or "rw", with "e" appended on
 *       error/hang-up.  watcher:stop(), :start([mode]), :modify(mode),
 *       :active(), :fd(), :mode(), :ref(), :unref()
 *   loop:step([timeout_s]) -> number of callbacks run (nil: wait until
 *       something happens; <= 0: do not wait), loop:run(), loop:stop(),
 *       loop:alive(),
 *   loop:now() (seconds, monotonic), loop:fd() (nil, err on the poll
 *       backend), loop:timeout() (seconds until the next timer, 0 when
 *       work is due, nil when none), loop:backend(), loop:running()
 *       (inside one of its callbacks), loop:close() (also __gc, __close),
 *       loop:closed()
 *   loop:pollfd(), loop:events() ("r"), loop:timeout(): the protocol of
 *       cqueues' pollable objects, so cqueues.poll(loop) waits for it
 *
 * Lifetime: a Lua callback lives in its handle's uservalue table
 * {fn, U}, where U is the loop's uservalue table; while a handle is active
 * (timer armed, watcher started, deferred queued) U[lightuserdata(handle)]
 * = handle anchors it, so a dropped handle still fires and everything is
 * traced by the GC (no registry references: cycles through callbacks are
 * collectable).  Handles do not keep the loop alive: they share a small
 * refcounted context with it, and once the loop is closed or collected
 * their methods raise "loop is closed".  Connections and servers do keep
 * it alive (lua_loop.h, members), and closing it closes them first.
 *
 * Errors: callbacks run under lua_pcall with a traceback handler
 * (ws_lua_loop_call, also used by the connection bindings); the first
 * error of a turn is kept in U, ws_loop_break makes the C loop return in a
 * consistent state, and step/run re-raise it.  The loop stays usable.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/loop.h"
#include "io/proc.h"
#include "lua_alloc.h"
#include "lua_compat.h"
#include "lua_error.h"
#include "lua_core.h"
#include "lua_lent.h"
#include "lua_loop.h"

#define LOOP_MT     "ws.core.loop"
#define TIMER_MT    "ws.core.loop.timer"
#define WATCHER_MT  "ws.core.loop.watcher"
#define DEFERRED_MT "ws.core.loop.deferred"

/* Shared by a loop userdata, its handles and the C objects of other
 * bindings (connections, servers) that run on it: see lua_loop.h. */
struct ws_lua_loop {
    ws_loop *loop;          /* NULL once closed */
    lua_State *L;           /* the thread in step/run, else NULL */
    ws_lua_member *members; /* connections and servers on the loop */
    int anchor;             /* registry reference to the loop object while it has members */
    bool err;               /* an error waits in U[lightuserdata(ctx)] */
    bool closing;           /* its members are being closed */
    unsigned refs;          /* the loop userdata + its handles + ws_lua_loop_ref */
    unsigned long gen;      /* fork generation that made it: a forked child must not use it */
    int handler;            /* in step/run: stack index of the turn's traceback handler, 0 else */
    int top;                /* the stack's top as publish left it (handler, turn function) */
    int depth;              /* Lua callbacks of this loop running now (nested calls) */
    const void *event;      /* what ws_lua_loop_set_event passed on */
    ws_io stop_io;          /* in a worker: the stop request's self-pipe (io/proc.h) */
    ws_lua_conn_list conns; /* connections no server holds */
    ws_lua_lent lent;       /* strings its connections write from */
    ws_deferred lent_back;  /* releases what they gave back, at the end of the turn */
    ws_payload_store store; /* large messages received into string blocks (lua_alloc.c) */
};
typedef struct ws_lua_loop lctx;

typedef struct lloop {
    lctx *ctx;
} lloop;

/* Every handle starts with its context. */
typedef struct lhandle {
    lctx *ctx;
} lhandle;

typedef struct ltimer {
    lctx *ctx;
    ws_timer t;
} ltimer;

typedef struct lwatcher {
    lctx *ctx;
    ws_io io;
} lwatcher;

#define WATCHER_OF(io) ((lwatcher *)(void *)((char *)(io)-offsetof(lwatcher, io)))

typedef struct ldeferred {
    lctx *ctx;
    ws_deferred d;
} ldeferred;

static void ctx_unref(lctx *ctx)
{
    if (--ctx->refs == 0) {
        ws_lua_lent_free(&ctx->lent);
        free(ctx);
    }
}

static int absindex(lua_State *L, int idx)
{
    return (idx > 0 || idx <= LUA_REGISTRYINDEX) ? idx : lua_gettop(L) + idx + 1;
}

/* ---- arguments -------------------------------------------------------------- */

static lctx *check_loop(lua_State *L)
{
    lloop *l = luaL_checkudata(L, 1, LOOP_MT);
    if (!l->ctx || !l->ctx->loop)
        luaL_error(L, "loop is closed");
    return l->ctx;
}

static void *check_handle(lua_State *L, const char *mt)
{
    lhandle *h = luaL_checkudata(L, 1, mt);
    if (!h->ctx || !h->ctx->loop)
        luaL_error(L, "loop is closed");
    return h;
}

static uint64_t check_seconds(lua_State *L, int arg, bool positive)
{
    double s = luaL_checknumber(L, arg);
    if (s != s || s < 0 || (positive && s == 0))
        luaL_argerror(L, arg, positive ? "seconds must be > 0" : "seconds must be >= 0");
    double ns = s * 1e9 + 0.5;
    return ns >= 1.8e19 ? UINT64_MAX : (uint64_t)ns;
}

/* nil/none or math.huge: -1 (until something happens); a negative
 * timeout (a deadline already past) does not wait. */
static int opt_timeout_ms(lua_State *L, int arg)
{
    if (lua_isnoneornil(L, arg))
        return -1;
    double s = luaL_checknumber(L, arg);
    if (s != s)
        luaL_argerror(L, arg, "timeout must be a number of seconds, not NaN");
    if (s <= 0)
        return 0;
    if (s == HUGE_VAL)
        return -1;
    double ms = ceil(s * 1000.0);
    return ms >= INT_MAX ? INT_MAX : (int)ms;
}

static unsigned check_mode(lua_State *L, int arg)
{
    const char *m = luaL_checkstring(L, arg);
    if (strcmp(m, "r") == 0)
        return WS_IO_READ;
    if (strcmp(m, "w") == 0)
        return WS_IO_WRITE;
    if (strcmp(m, "rw") == 0 || strcmp(m, "wr") == 0)
        return WS_IO_READ | WS_IO_WRITE;
    return (unsigned)luaL_argerror(L, arg, "mode must be \"r\", \"w\" or \"rw\"");
}

static void check_function(lua_State *L, int arg)
{
    if (lua_type(L, arg) != LUA_TFUNCTION)
        luaL_argerror(L, arg, "function expected");
}

/* ---- handles and anchors ---------------------------------------------------- */

/* Pushes a new handle userdata whose uservalue is {fn, U}; the loop is at
 * index 1, the function at fn_idx. */
static void *new_handle(lua_State *L, lctx *ctx, size_t size, const char *mt, int fn_idx)
{
    lhandle *h = lua_newuserdata(L, size);
    memset(h, 0, size);
    h->ctx = ctx;
    ctx->refs++;
    luaL_getmetatable(L, mt);
    lua_setmetatable(L, -2);
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, fn_idx);
    lua_rawseti(L, -2, 1);
    ws_getuservalue(L, 1);
    lua_rawseti(L, -2, 2);
    ws_setuservalue(L, -2);
    return h;
}

/* U[lightuserdata(h)] = handle (on) or nil: active handles are reachable
 * from the loop, inactive ones only from whoever holds them. */
static void anchor(lua_State *L, int idx, void *h, bool on)
{
    idx = absindex(L, idx);
    ws_getuservalue(L, idx);
    lua_rawgeti(L, -1, 2);
    lua_pushlightuserdata(L, h);
    if (on)
        lua_pushvalue(L, idx);
    else
        lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

/* ---- calling Lua from the loop ----------------------------------------------- */

static int traceback(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TSTRING)
        return 1; /* error objects pass through untouched */
#if LUA_VERSION_NUM >= 502
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
#else
    lua_getglobal(L, "debug");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "traceback");
        if (lua_isfunction(L, -1)) {
            lua_pushvalue(L, 1);
            lua_pushinteger(L, 2);
            lua_call(L, 2, 1);
            return 1;
        }
    }
    lua_settop(L, 1);
#endif
    return 1;
}

/* While a step/run executes, registry[lightuserdata(ctx)] = U: reachable
 * from callbacks at any C call depth (a stack index would not be). */
static void push_u(lua_State *L, lctx *ctx)
{
    lua_pushlightuserdata(L, ctx);
    lua_rawget(L, LUA_REGISTRYINDEX);
}

static const char traceback_key = 't';

void ws_lua_push_traceback(lua_State *L)
{
    ws_pushcfunction_kept(L, traceback, &traceback_key);
}

/* The error on top: keep the first of the turn and break the loop. */
static void record_error(lua_State *L, ws_lua_loop *ll)
{
    if (!ll->err && ll->loop) {
        /* Kept in U, out of the way of the callers' lua_settop. */
        push_u(L, ll);
        lua_pushlightuserdata(L, ll);
        lua_pushvalue(L, -3);
        lua_rawset(L, -3);
        lua_pop(L, 2);
        ll->err = true;
        ws_loop_break(ll->loop);
    } else {
        lua_pop(L, 1); /* a later error of the same turn */
    }
}

static bool call(ws_lua_loop *ll, int nargs, int nresults, int handler)
{
    lua_State *L = ll->L;
    ll->depth++;
    int r = lua_pcall(L, nargs, nresults, handler);
    ll->depth--;
    if (r == 0)
        return true;
    record_error(L, ll);
    return false;
}

lua_State *ws_lua_loop_event_state(ws_lua_loop *ll, int *handler)
{
    lua_State *L = ll->L;
    /* Straight from the C loop (no callback of this loop runs), the stack
     * is the one publish left: the handler is where it put it. */
    *handler = L && ll->depth == 0 && lua_gettop(L) == ll->top ? ll->handler : 0;
    return L;
}

void ws_lua_loop_set_event(ws_lua_loop *ll, const void *event)
{
    ll->event = event;
}

const void *ws_lua_loop_event(const ws_lua_loop *ll)
{
    return ll->event;
}

static lua_CFunction turn_fn;
static const void *turn_key;

void ws_lua_loop_turn_function(lua_CFunction f, const void *key)
{
    turn_fn = f;
    turn_key = key;
}

bool ws_lua_loop_call_with(ws_lua_loop *ll, int nargs, int handler)
{
    return ll->L && call(ll, nargs, 0, handler);
}

bool ws_lua_loop_call_results(ws_lua_loop *ll, int nargs, int nresults)
{
    lua_State *L = ll->L;
    if (!L)
        return false;
    int base = lua_gettop(L) - nargs; /* the function */
    ws_lua_push_traceback(L);
    lua_insert(L, base);
    bool ok = call(ll, nargs, nresults, base);
    lua_remove(L, base);
    return ok;
}

bool ws_lua_loop_call(ws_lua_loop *ll, int nargs)
{
    return ws_lua_loop_call_results(ll, nargs, 0);
}

/* Runs the callback of handle h.  `keep`: the handle stays active, so it
 * stays anchored. */
static void call_handle(lctx *ctx, void *h, bool keep, const char *events)
{
    lua_State *L = ctx->L;
    if (!L || ctx->err || !lua_checkstack(L, 8))
        return;
    int top = lua_gettop(L);
    push_u(L, ctx);
    if (!lua_istable(L, -1)) {
        lua_settop(L, top);
        return;
    }
    lua_pushlightuserdata(L, h);
    lua_rawget(L, top + 1);
    if (lua_isnil(L, -1)) { /* cannot happen: active handles are anchored */
        lua_settop(L, top);
        return;
    }
    if (!keep) {
        lua_pushlightuserdata(L, h);
        lua_pushnil(L);
        lua_rawset(L, top + 1);
    }
    ws_getuservalue(L, top + 2);
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
    lua_pushvalue(L, top + 2);
    int nargs = 1;
    if (events) {
        lua_pushstring(L, events);
        nargs++;
    }
    ws_lua_loop_call(ctx, nargs);
    lua_settop(L, top);
}

static void timer_cb(ws_loop *loop, ws_timer *t, void *ud)
{
    (void)loop;
    ltimer *lt = ud;
    call_handle(lt->ctx, lt, ws_timer_active(t), NULL);
}

static void io_cb(ws_loop *loop, ws_io *io, unsigned events)
{
    lwatcher *lw = WATCHER_OF(io);
    if (!lw->ctx->L) {
        /* The loop runs without Lua (its members close as the state
         * closes): a ready fd nobody handles would keep it spinning. */
        ws_io_stop(loop, io);
        return;
    }
    char ev[4];
    size_t n = 0;
    if (events & WS_IO_READ)
        ev[n++] = 'r';
    if (events & WS_IO_WRITE)
        ev[n++] = 'w';
    if (events & WS_IO_ERROR)
        ev[n++] = 'e';
    ev[n] = '\0';
    call_handle(lw->ctx, lw, true, ev);
}

static void deferred_cb(ws_loop *loop, ws_deferred *d, void *ud)
{
    (void)loop;
    (void)d;
    ldeferred *ld = ud;
    call_handle(ld->ctx, ld, false, NULL);
}

/* ---- what other bindings use (lua_loop.h) ------------------------------------ */

ws_lua_loop *ws_lua_check_loop(lua_State *L, int idx)
{
    lloop *l = luaL_checkudata(L, idx, LOOP_MT);
    if (!l->ctx || !l->ctx->loop)
        luaL_argerror(L, idx, "loop is closed");
    return l->ctx;
}

ws_loop *ws_lua_loop_get(ws_lua_loop *ll)
{
    return ll->loop;
}
void ws_lua_loop_ref(ws_lua_loop *ll)
{
    ll->refs++;
}
void ws_lua_loop_unref(ws_lua_loop *ll)
{
    ctx_unref(ll);
}
ws_lua_lent *ws_lua_loop_lent(ws_lua_loop *ll)
{
    return &ll->lent;
}

lua_State *ws_lua_loop_state(ws_lua_loop *ll)
{
    return ll->L;
}

void ws_lua_loop_check_open(lua_State *L, ws_lua_loop *ll)
{
    if (!ll->loop || ll->closing)
        luaL_error(L, "loop is closing");
}

void ws_lua_loop_attach(lua_State *L, ws_lua_loop *ll, ws_lua_member *m,
                        const ws_lua_member_ops *ops, int loop_idx)
{
    ws_lua_loop_check_open(L, ll);
    if (!ll->members && loop_idx) {
        lua_pushvalue(L, loop_idx);
        ll->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    m->ops = ops;
    m->prev = NULL;
    m->next = ll->members;
    if (m->next)
        m->next->prev = m;
    ll->members = m;
}

bool ws_lua_loop_join(ws_lua_loop *ll, ws_lua_member *m, const ws_lua_member_ops *ops)
{
    if (!ll->loop || !ll->members)
        return false;
    m->ops = ops;
    m->prev = NULL;
    m->next = ll->members;
    m->next->prev = m;
    ll->members = m;
    return true;
}

ws_lua_conn_list *ws_lua_loop_conns(ws_lua_loop *ll)
{
    return &ll->conns;
}

void ws_lua_loop_detach(lua_State *L, ws_lua_loop *ll, ws_lua_member *m)
{
    if (!m->ops)
        return;
    m->ops = NULL;
    if (m->prev)
        m->prev->next = m->next;
    else
        ll->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->next = m->prev = NULL;
    if (!ll->members && ll->anchor != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, ll->anchor);
        ll->anchor = LUA_NOREF;
    }
}

bool ws_lua_loop_push(lua_State *L, ws_lua_loop *ll)
{
    if (ll->anchor == LUA_NOREF)
        return false;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ll->anchor);
    return true;
}

/* ---- the loop ---------------------------------------------------------------- */

static void stop_cb(ws_loop *loop, ws_io *io, unsigned events)
{
    (void)io;
    (void)events;
    ws_proc_stop_drain();
    ws_loop_break(loop);
}

/* Lent strings given back during a turn are released at its end (the
 * deferred phase runs inside step/run, with the thread that drives it). */
static void lent_back_cb(ws_loop *loop, ws_deferred *d, void *ud)
{
    (void)loop;
    (void)d;
    lctx *ctx = ud;
    if (ctx->L)
        ws_lua_lent_release(ctx->L, &ctx->lent);
}

static void lent_given_back(ws_lua_lent *lt)
{
    lctx *ctx = (lctx *)(void *)((char *)lt - offsetof(lctx, lent));
    if (ctx->loop)
        ws_loop_defer(ctx->loop, &ctx->lent_back);
}

static int l_loop_new(lua_State *L)
{
    lloop *l = lua_newuserdata(L, sizeof *l);
    l->ctx = NULL;
    luaL_getmetatable(L, LOOP_MT);
    lua_setmetatable(L, -2);
    lctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return ws_lua_nomem(L, "ws.core.loop");
    ctx->refs = 1;
    ctx->anchor = LUA_NOREF;
    ctx->lent.given_back = lent_given_back;
    ws_deferred_init(&ctx->lent_back, lent_back_cb, ctx);
    l->ctx = ctx;
    ctx->loop = ws_loop_new();
    if (!ctx->loop)
        return luaL_error(L, "ws.core.loop: %s", strerror(errno));
    ws_lua_payload_store_init(&ctx->store, &ctx->L);
    ws_loop_output_pool(ctx->loop)->store = &ctx->store;
    ctx->gen = ws_proc_generation();
    if (ws_proc_stop_fd() >= 0) {
        /* A worker's stop request ends the running turn; drive() then
         * closes the members.  Unref'd: it keeps nothing alive. */
        ws_io_init(&ctx->stop_io, ws_proc_stop_fd());
        if (ws_io_start(ctx->loop, &ctx->stop_io, stop_cb, WS_IO_READ) < 0)
            return luaL_error(L, "ws.core.loop: %s", strerror(errno));
        ws_io_unref(ctx->loop, &ctx->stop_io);
    }
    lua_newtable(L);
    ws_setuservalue(L, -2);
    return 1;
}

/* While Lua drives the loop, U (at uidx) is published in the registry
 * for the callbacks, and ctx->L says which thread runs them. */
/* Also pushes the traceback handler of the turn (unpublish pops it) and
 * makes room for the events that use it without a stack check each. */
static void publish(lua_State *L, lctx *ctx, int uidx)
{
    lua_pushlightuserdata(L, ctx);
    lua_pushvalue(L, uidx);
    lua_rawset(L, LUA_REGISTRYINDEX);
    luaL_checkstack(L, WS_LUA_EVENT_STACK + 2, "ws: loop");
    ws_lua_push_traceback(L);
    ctx->handler = lua_gettop(L);
    if (turn_fn)
        ws_pushcfunction_kept(L, turn_fn, turn_key);
    ctx->top = lua_gettop(L);
    ctx->depth = 0;
    ctx->L = L;
    ctx->err = false;
}

static void unpublish(lua_State *L, lctx *ctx)
{
    lua_settop(L, ctx->handler - 1);
    ctx->handler = 0;
    ctx->L = NULL;
    lua_pushlightuserdata(L, ctx);
    lua_pushnil(L);
    lua_rawset(L, LUA_REGISTRYINDEX);
}

/* Push the error a callback raised (kept in U at uidx) and forget it. */
static void take_error(lua_State *L, lctx *ctx, int uidx)
{
    ctx->err = false;
    lua_pushlightuserdata(L, ctx);
    lua_rawget(L, uidx);
    lua_pushlightuserdata(L, ctx);
    lua_pushnil(L);
    lua_rawset(L, uidx);
}

static bool close_members(lua_State *L, lctx *ctx, int uidx);

/* In a worker asked to stop (SIGTERM/SIGINT): close the members as
 * loop:close() does (servers stop accepting, connections close with 1001
 * after their queued output); the loop then takes no new ones.  True with
 * an error on the stack when a callback raised one meanwhile. */
static bool honour_stop(lua_State *L, lctx *ctx, int uidx)
{
    if (!ws_proc_stop_requested() || !ctx->members)
        return false;
    return close_members(L, ctx, uidx);
}

/* step/run: an error raised by a callback is re-raised once the C loop
 * has returned; in a worker asked to stop, run returns once the members
 * are closed. */
static int drive(lua_State *L, lctx *ctx, bool run, int timeout_ms)
{
    const char *what = run ? "run" : "step";
    if (ws_loop_running(ctx->loop))
        return luaL_error(L, "loop:%s: called from a callback of the same loop", what);
    if (ctx->gen != ws_proc_generation())
        return luaL_error(L,
                          "loop:%s: this loop was made in another process (before fork); make a "
                          "new one in this process (in a worker, ws.loop() does)",
                          what);
    ws_getuservalue(L, 1);
    int uidx = lua_gettop(L);
    if (honour_stop(L, ctx, uidx))
        return lua_error(L);
    if (run && ws_proc_stop_requested())
        return 0;
    publish(L, ctx, uidx);
    int r = run ? ws_loop_run(ctx->loop) : ws_loop_step(ctx->loop, timeout_ms);
    int saved = errno;
    unpublish(L, ctx);
    ws_lua_lent_release(L, &ctx->lent);
    if (ctx->err) {
        take_error(L, ctx, uidx);
        return lua_error(L);
    }
    if (r < 0)
        return luaL_error(L, "loop:%s: %s", what, strerror(saved));
    if (honour_stop(L, ctx, uidx))
        return lua_error(L);
    if (run)
        return 0;
    lua_pushinteger(L, r);
    return 1;
}

/***
 * The event loop of module ws, implemented in C.
 * @module ws
 */

/***
 * An event loop (epoll on Linux, poll() elsewhere) from `ws.loop()` or `ws.core.loop()`.
 * @type Loop
 */

/***
 * One turn: wait for something to happen (at most `timeout` seconds), then
 * run what is ready. Must not be called from a callback of this loop.
 * @function Loop:step
 * @tparam[opt] number timeout seconds (nil: until something happens; 0 or less: do not wait)
 * @treturn integer how many callbacks ran
 */
static int l_step(lua_State *L)
{
    lctx *ctx = check_loop(L);
    int timeout = opt_timeout_ms(L, 2);
    lua_settop(L, 1);
    return drive(L, ctx, false, timeout);
}

/***
 * Turn until nothing keeps the loop alive (see `alive`) or `stop` is called.
 * An error raised in a callback comes out of `run` with its traceback.
 * @function Loop:run
 */
static int l_run(lua_State *L)
{
    lctx *ctx = check_loop(L);
    lua_settop(L, 1);
    return drive(L, ctx, true, -1);
}

/***
 * Make the running `run` return after this turn.
 * @function Loop:stop
 */
static int l_stop(lua_State *L)
{
    ws_loop_stop(check_loop(L)->loop);
    return 0;
}

/***
 * Whether anything keeps the loop going: an active handle that is not
 * unref'd (a timer, a watcher, a connection, a server, queued work).
 * @function Loop:alive
 * @treturn bool
 */
static int l_alive(lua_State *L)
{
    lua_pushboolean(L, ws_loop_alive(check_loop(L)->loop));
    return 1;
}

/***
 * The loop's clock.
 * @function Loop:now
 * @treturn number seconds of a monotonic clock
 */
static int l_now(lua_State *L)
{
    lctx *ctx = check_loop(L);
    uint64_t ns =
        ws_loop_running(ctx->loop) ? ws_loop_now(ctx->loop) : ws_loop_update_time(ctx->loop);
    lua_pushnumber(L, (lua_Number)ns / 1e9);
    return 1;
}

/***
 * An fd (the epoll fd) that polls readable whenever `step(0)` has work:
 * a socket is ready, a timer is due, or work was queued from outside a turn.
 * It can be readable early, never late.
 * @function Loop:fd
 * @treturn integer the fd; `nil, err` with the poll backend
 */

/***
 * cqueues' pollable protocol: the same fd as `fd`.
 * @function Loop:pollfd
 * @treturn integer the fd
 */
static int l_fd(lua_State *L)
{
    int fd = ws_loop_fd(check_loop(L)->loop);
    if (fd < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "loop:fd: not available with the %s backend",
                        ws_loop_backend(check_loop(L)->loop));
        return 2;
    }
    lua_pushinteger(L, fd);
    return 1;
}

/* seconds until step(0) has a timer to run; 0: work is due now; nil:
 * no timer (only I/O or an outside event can bring work) */
/***
 * Seconds until the next timer is due.
 * @function Loop:timeout
 * @treturn number seconds; 0 when work is due now; nil when no timer exists
 */
static int l_timeout(lua_State *L)
{
    int64_t ns = ws_loop_timeout(check_loop(L)->loop);
    if (ns < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, (lua_Number)ns / 1e9);
    return 1;
}

/* cqueues' pollable protocol: the fd is watched for reading. */
/***
 * cqueues' pollable protocol: the fd (`pollfd`) is polled for reading.
 * @function Loop:events
 * @treturn string `"r"`
 */

static int l_events(lua_State *L)
{
    check_loop(L);
    lua_pushliteral(L, "r");
    return 1;
}

/***
 * The backend.
 * @function Loop:backend
 * @treturn string `"epoll"` or `"poll"`
 */
static int l_backend(lua_State *L)
{
    lua_pushstring(L, ws_loop_backend(check_loop(L)->loop));
    return 1;
}

static int new_timer(lua_State *L, bool repeat)
{
    lctx *ctx = check_loop(L);
    uint64_t ns = check_seconds(L, 2, repeat);
    check_function(L, 3);
    ltimer *lt = new_handle(L, ctx, sizeof *lt, TIMER_MT, 3);
    ws_timer_init(&lt->t, timer_cb, lt);
    if (ws_timer_start(ctx->loop, &lt->t, ns, repeat ? ns : 0) < 0)
        return ws_lua_nomem(L, repeat ? "loop:every" : "loop:timer");
    anchor(L, -1, lt, true);
    return 1;
}

/***
 * A one-shot timer: `fn(timer)` runs once after `seconds`.
 * @function Loop:timer
 * @tparam number seconds delay
 * @tparam function fn callback
 * @treturn Timer
 */
static int l_timer(lua_State *L)
{
    return new_timer(L, false);
}
/***
 * A repeating timer: `fn(timer)` runs every `seconds`.
 * @function Loop:every
 * @tparam number seconds interval
 * @tparam function fn callback
 * @treturn Timer
 */
static int l_every(lua_State *L)
{
    return new_timer(L, true);
}

/***
 * Queue `fn(deferred)` to run on the next turn.
 * @function Loop:defer
 * @tparam function fn callback
 * @treturn Deferred
 */
static int l_defer(lua_State *L)
{
    lctx *ctx = check_loop(L);
    check_function(L, 2);
    ldeferred *ld = new_handle(L, ctx, sizeof *ld, DEFERRED_MT, 2);
    ws_deferred_init(&ld->d, deferred_cb, ld);
    ws_loop_defer(ctx->loop, &ld->d);
    anchor(L, -1, ld, true);
    return 1;
}

static int push_errno(lua_State *L, const char *what, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, strerror(err));
    lua_pushinteger(L, err);
    return 3;
}

/***
 * Watch an fd: `fn(watcher, events)` runs when it is ready; `events` is
 * `"r"`, `"w"` or `"rw"`, with `"e"` appended on error or hang-up.
 * @function Loop:watch
 * @tparam integer fd the fd (not a regular file)
 * @tparam string mode `"r"`, `"w"` or `"rw"`
 * @tparam function fn callback
 * @treturn Watcher the watcher, or `nil, err, errno`
 */
static int l_watch(lua_State *L)
{
    lctx *ctx = check_loop(L);
    lua_Integer fd = luaL_checkinteger(L, 2);
    if (fd < 0 || fd > INT_MAX)
        luaL_argerror(L, 2, "fd must be a non-negative integer");
    unsigned mode = check_mode(L, 3);
    check_function(L, 4);
    lwatcher *lw = new_handle(L, ctx, sizeof *lw, WATCHER_MT, 4);
    ws_io_init(&lw->io, (int)fd);
    if (ws_io_start(ctx->loop, &lw->io, io_cb, mode) < 0)
        return push_errno(L, "loop:watch", errno);
    anchor(L, -1, lw, true);
    return 1;
}

static bool members_done(const lctx *ctx)
{
    for (ws_lua_member *m = ctx->members; m; m = m->next)
        if (!m->ops->done(m))
            return false;
    return true;
}

/* Close every member: ask each to shut down, run the loop until all are
 * done or their close timeouts have passed, release what is left.  With
 * uidx (the loop's U) Lua callbacks run meanwhile and the first error one
 * raises is left on the stack (returns true); without, nothing of Lua runs
 * (the state is closing).  Inside a callback of the loop (os.exit from a
 * callback closes the state there) the loop cannot run: members are
 * released at once, each writing what its socket takes without waiting. */
static bool close_members(lua_State *L, lctx *ctx, int uidx)
{
    bool failed = false;
    if (!ctx->members)
        return false;
    ctx->closing = true;
    if (!ws_loop_running(ctx->loop)) {
        uint64_t longest = 0;
        ws_lua_member *next;
        for (ws_lua_member *m = ctx->members; m; m = next) {
            next = m->next;
            uint64_t t = m->ops->close_timeout(m);
            if (t > longest)
                longest = t;
            m->ops->shutdown(L, m);
        }
        /* Each connection's own close timer ends it; this bound is a
         * backstop. */
        uint64_t deadline = ws_loop_update_time(ctx->loop) + longest + WS_NSEC_PER_SEC;
        while (!members_done(ctx)) {
            uint64_t now = ws_loop_update_time(ctx->loop);
            if (now >= deadline)
                break;
            int ms = (int)((deadline - now + WS_NSEC_PER_MSEC - 1) / WS_NSEC_PER_MSEC);
            if (uidx)
                publish(L, ctx, uidx);
            int r = ws_loop_step(ctx->loop, ms);
            int saved = errno;
            if (uidx) {
                unpublish(L, ctx);
                if (ctx->err) {
                    take_error(L, ctx, uidx);
                    if (failed)
                        lua_pop(L, 1); /* the first one is kept */
                    failed = true;
                }
            }
            if (r < 0 && saved != EINTR)
                break;
        }
    }
    while (ctx->members)
        ctx->members->ops->release(L, ctx->members);
    return failed;
}

static void free_loop(lctx *ctx)
{
    /* Still running only when the state closes from inside a callback
     * (os.exit(code, true)): the process ends, and the turn on the C
     * stack must not find its loop freed. */
    ws_deferred_cancel(&ctx->lent_back);
    ws_loop *loop = ctx->loop;
    ctx->loop = NULL; /* (nothing is deferred on it any more) */
    if (!ws_loop_running(loop))
        ws_loop_free(loop);
}

void ws_lua_loop_close_quietly(lua_State *L, ws_lua_loop *ll)
{
    if (!ll->loop || ll->closing)
        return;
    close_members(L, ll, 0);
    free_loop(ll);
    ws_lua_lent_release(L, &ll->lent);
}

/* loop:close(): its connections close (1001, after their queued output;
 * callbacks run), its servers stop, then the loop is freed.  An error a
 * callback raised meanwhile is raised afterwards. */
/***
 * Close the loop (also `__gc` and `__close`): its handles' methods raise
 * "loop is closed" afterwards.
 * @function Loop:close
 */
static int l_close(lua_State *L)
{
    lloop *l = luaL_checkudata(L, 1, LOOP_MT);
    if (!l->ctx || !l->ctx->loop)
        return 0;
    lctx *ctx = l->ctx;
    if (ws_loop_running(ctx->loop))
        return luaL_error(L, "loop:close: called from a callback of the same loop");
    lua_settop(L, 1);
    ws_getuservalue(L, 1);
    bool failed = close_members(L, ctx, 2);
    free_loop(ctx);
    ws_lua_lent_release(L, &ctx->lent);
    lua_newtable(L); /* drop the anchors of its handles */
    ws_setuservalue(L, 1);
    if (failed)
        return lua_error(L);
    return 0;
}

/***
 * Whether the loop is closed (`close`, or collection of the loop).
 * @function Loop:closed
 * @treturn bool
 */
static int l_closed(lua_State *L)
{
    lloop *l = luaL_checkudata(L, 1, LOOP_MT);
    lua_pushboolean(L, !l->ctx || !l->ctx->loop);
    return 1;
}

/***
 * How many connections, servers and other members on this loop are not
 * finished: connections not yet CLOSED, servers still listening.
 * `ws.workers` refuses to fork while the default loop has any.
 * @function Loop:members
 * @treturn integer
 */
static int l_members(lua_State *L)
{
    lctx *ctx = check_loop(L);
    lua_Integer n = 0;
    for (ws_lua_member *m = ctx->members; m; m = m->next)
        n += m->ops->pending ? (lua_Integer)m->ops->pending(m) : !m->ops->done(m);
    lua_pushinteger(L, n);
    return 1;
}

/***
 * Whether a turn of this loop is running now (inside its callbacks).
 * @function Loop:running
 * @treturn bool
 */
static int l_running(lua_State *L)
{
    lua_pushboolean(L, ws_loop_running(check_loop(L)->loop));
    return 1;
}

static int l_loop_gc(lua_State *L)
{
    lloop *l = luaL_checkudata(L, 1, LOOP_MT);
    if (l->ctx) {
        /* With members the loop is anchored: collected only as the
         * state closes. */
        ws_lua_loop_close_quietly(L, l->ctx);
        if (l->ctx->loop)
            free_loop(l->ctx);
        ws_lua_lent_release(L, &l->ctx->lent);
        ctx_unref(l->ctx);
        l->ctx = NULL;
    }
    return 0;
}

static int l_loop_tostring(lua_State *L)
{
    lloop *l = luaL_checkudata(L, 1, LOOP_MT);
    if (l->ctx && l->ctx->loop)
        lua_pushfstring(L, "ws.core.loop (%s, %p)", ws_loop_backend(l->ctx->loop), (void *)l);
    else
        lua_pushfstring(L, "ws.core.loop (closed, %p)", (void *)l);
    return 1;
}

/* ---- timers ------------------------------------------------------------------ */

/***
 * A timer from `loop:timer`, `loop:every`, `ws.timer` or `ws.every`.
 * @type Timer
 */

/***
 * Stop the timer.
 * @function Timer:cancel
 */
static int l_timer_cancel(lua_State *L)
{
    ltimer *lt = check_handle(L, TIMER_MT);
    ws_timer_stop(&lt->t);
    anchor(L, 1, lt, false);
    return 0;
}

/* again([seconds]): restart from now; seconds replaces the delay (and the
 * interval of a repeating timer).  Works on a fired or cancelled timer. */
/***
 * Restart the timer from now.
 * @function Timer:again
 * @tparam[opt] number seconds replaces the delay (and a repeating timer's interval)
 */
static int l_timer_again(lua_State *L)
{
    ltimer *lt = check_handle(L, TIMER_MT);
    int r;
    if (lua_isnoneornil(L, 2)) {
        r = ws_timer_start(lt->ctx->loop, &lt->t, lt->t.after, lt->t.repeat);
    } else {
        bool repeat = lt->t.repeat > 0;
        uint64_t ns = check_seconds(L, 2, repeat);
        r = ws_timer_start(lt->ctx->loop, &lt->t, ns, repeat ? ns : 0);
    }
    if (r < 0)
        return ws_lua_nomem(L, "timer:again");
    anchor(L, 1, lt, true);
    lua_settop(L, 1);
    return 1;
}

/***
 * Whether the timer is armed.
 * @function Timer:active
 * @treturn bool
 */
static int l_timer_active(lua_State *L)
{
    ltimer *lt = luaL_checkudata(L, 1, TIMER_MT);
    lua_pushboolean(L, lt->ctx && lt->ctx->loop && ws_timer_active(&lt->t));
    return 1;
}

/***
 * The armed timer keeps the loop alive (the default).
 * @function Timer:ref
 */
static int l_timer_ref(lua_State *L)
{
    ws_timer_ref(&((ltimer *)check_handle(L, TIMER_MT))->t);
    return 0;
}

/***
 * The armed timer no longer keeps the loop alive.
 * @function Timer:unref
 */
static int l_timer_unref(lua_State *L)
{
    ws_timer_unref(&((ltimer *)check_handle(L, TIMER_MT))->t);
    return 0;
}

static int l_timer_gc(lua_State *L)
{
    ltimer *lt = luaL_checkudata(L, 1, TIMER_MT);
    if (lt->ctx) {
        if (lt->ctx->loop)
            ws_timer_stop(&lt->t);
        ctx_unref(lt->ctx);
        lt->ctx = NULL;
    }
    return 0;
}

/* ---- watchers ---------------------------------------------------------------- */

/***
 * An fd watcher from `loop:watch`.
 * @type Watcher
 */

/***
 * Stop watching.
 * @function Watcher:stop
 */
static int l_watcher_stop(lua_State *L)
{
    lwatcher *lw = check_handle(L, WATCHER_MT);
    ws_io_stop(lw->ctx->loop, &lw->io);
    anchor(L, 1, lw, false);
    return 0;
}

/***
 * Watch again.
 * @function Watcher:start
 * @tparam[opt] string mode `"r"`, `"w"` or `"rw"` (default: the last mode)
 */
static int l_watcher_start(lua_State *L)
{
    lwatcher *lw = check_handle(L, WATCHER_MT);
    unsigned mode = lua_isnoneornil(L, 2) ? ws_io_events(&lw->io) : check_mode(L, 2);
    if (ws_io_start(lw->ctx->loop, &lw->io, io_cb, mode) < 0)
        return push_errno(L, "watcher:start", errno);
    anchor(L, 1, lw, true);
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * Change what is watched.
 * @function Watcher:modify
 * @tparam string mode `"r"`, `"w"` or `"rw"`
 */
static int l_watcher_modify(lua_State *L)
{
    lwatcher *lw = check_handle(L, WATCHER_MT);
    unsigned mode = check_mode(L, 2);
    if (ws_io_modify(lw->ctx->loop, &lw->io, mode) < 0)
        return push_errno(L, "watcher:modify", errno);
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * Whether the watcher is started.
 * @function Watcher:active
 * @treturn bool
 */
static int l_watcher_active(lua_State *L)
{
    lwatcher *lw = luaL_checkudata(L, 1, WATCHER_MT);
    lua_pushboolean(L, lw->ctx && lw->ctx->loop && ws_io_active(&lw->io));
    return 1;
}

/***
 * The watched fd.
 * @function Watcher:fd
 * @treturn integer
 */
static int l_watcher_fd(lua_State *L)
{
    lwatcher *lw = luaL_checkudata(L, 1, WATCHER_MT);
    lua_pushinteger(L, ws_io_fd(&lw->io));
    return 1;
}

/***
 * What is watched.
 * @function Watcher:mode
 * @treturn string `"r"`, `"w"` or `"rw"`
 */
static int l_watcher_mode(lua_State *L)
{
    lwatcher *lw = luaL_checkudata(L, 1, WATCHER_MT);
    unsigned e = ws_io_events(&lw->io);
    lua_pushstring(L, e == (WS_IO_READ | WS_IO_WRITE) ? "rw"
                      : e == WS_IO_READ               ? "r"
                      : e == WS_IO_WRITE              ? "w"
                                                      : "");
    return 1;
}

/***
 * The started watcher keeps the loop alive (the default).
 * @function Watcher:ref
 */
static int l_watcher_ref(lua_State *L)
{
    lwatcher *lw = check_handle(L, WATCHER_MT);
    ws_io_ref(lw->ctx->loop, &lw->io);
    return 0;
}

/***
 * The started watcher no longer keeps the loop alive.
 * @function Watcher:unref
 */
static int l_watcher_unref(lua_State *L)
{
    lwatcher *lw = check_handle(L, WATCHER_MT);
    ws_io_unref(lw->ctx->loop, &lw->io);
    return 0;
}

static int l_watcher_gc(lua_State *L)
{
    lwatcher *lw = luaL_checkudata(L, 1, WATCHER_MT);
    if (lw->ctx) {
        if (lw->ctx->loop)
            ws_io_stop(lw->ctx->loop, &lw->io);
        ctx_unref(lw->ctx);
        lw->ctx = NULL;
    }
    return 0;
}

/* ---- deferred ------------------------------------------------------------------ */

/***
 * Work queued with `loop:defer`.
 * @type Deferred
 */

/***
 * Take it off the queue.
 * @function Deferred:cancel
 */
static int l_deferred_cancel(lua_State *L)
{
    ldeferred *ld = check_handle(L, DEFERRED_MT);
    ws_deferred_cancel(&ld->d);
    anchor(L, 1, ld, false);
    return 0;
}

/* again(): queue it again (no-op while queued). */
/***
 * Queue it again (nothing while queued).
 * @function Deferred:again
 */
static int l_deferred_again(lua_State *L)
{
    ldeferred *ld = check_handle(L, DEFERRED_MT);
    ws_loop_defer(ld->ctx->loop, &ld->d);
    anchor(L, 1, ld, true);
    lua_settop(L, 1);
    return 1;
}

/***
 * Whether it waits in the queue.
 * @function Deferred:queued
 * @treturn bool
 */
static int l_deferred_queued(lua_State *L)
{
    ldeferred *ld = luaL_checkudata(L, 1, DEFERRED_MT);
    lua_pushboolean(L, ld->ctx && ld->ctx->loop && ws_deferred_queued(&ld->d));
    return 1;
}

static int l_deferred_gc(lua_State *L)
{
    ldeferred *ld = luaL_checkudata(L, 1, DEFERRED_MT);
    if (ld->ctx) {
        if (ld->ctx->loop)
            ws_deferred_cancel(&ld->d);
        ctx_unref(ld->ctx);
        ld->ctx = NULL;
    }
    return 0;
}

/* ---- registration ---------------------------------------------------------------- */

static const luaL_Reg loop_methods[] = {
    {"step", l_step},       {"run", l_run},         {"stop", l_stop},   {"alive", l_alive},
    {"now", l_now},         {"fd", l_fd},           {"pollfd", l_fd},   {"events", l_events},
    {"timeout", l_timeout}, {"backend", l_backend}, {"timer", l_timer}, {"every", l_every},
    {"defer", l_defer},     {"watch", l_watch},     {"close", l_close}, {"closed", l_closed},
    {"running", l_running}, {"members", l_members}, {NULL, NULL}};
static const luaL_Reg loop_meta[] = {
    {"__gc", l_loop_gc}, {"__close", l_close}, {"__tostring", l_loop_tostring}, {NULL, NULL}};

static const luaL_Reg timer_methods[] = {{"cancel", l_timer_cancel}, {"again", l_timer_again},
                                         {"active", l_timer_active}, {"ref", l_timer_ref},
                                         {"unref", l_timer_unref},   {NULL, NULL}};
static const luaL_Reg timer_meta[] = {{"__gc", l_timer_gc}, {NULL, NULL}};

static const luaL_Reg watcher_methods[] = {
    {"stop", l_watcher_stop},     {"start", l_watcher_start}, {"modify", l_watcher_modify},
    {"active", l_watcher_active}, {"fd", l_watcher_fd},       {"mode", l_watcher_mode},
    {"ref", l_watcher_ref},       {"unref", l_watcher_unref}, {NULL, NULL}};
static const luaL_Reg watcher_meta[] = {{"__gc", l_watcher_gc}, {NULL, NULL}};

static const luaL_Reg deferred_methods[] = {{"cancel", l_deferred_cancel},
                                            {"again", l_deferred_again},
                                            {"queued", l_deferred_queued},
                                            {NULL, NULL}};
static const luaL_Reg deferred_meta[] = {{"__gc", l_deferred_gc}, {NULL, NULL}};

static const luaL_Reg helpers[] = {{"loop", l_loop_new}, {NULL, NULL}};

static void new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods)
{
    if (luaL_newmetatable(L, name)) {
        ws_setfuncs(L, meta);
        lua_newtable(L);
        ws_setfuncs(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

static ws_loop *check_open_loop(lua_State *L, int idx)
{
    return ws_lua_check_loop(L, idx)->loop;
}

static const ws_lua_loop_hooks hooks = {check_open_loop, ws_loop_set_clock, ws_loop_output_pool};

void ws_lua_open_loop(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&hooks);
    lua_setfield(L, LUA_REGISTRYINDEX, WS_LUA_LOOP_HOOKS);
    new_class(L, LOOP_MT, loop_meta, loop_methods);
    new_class(L, TIMER_MT, timer_meta, timer_methods);
    new_class(L, WATCHER_MT, watcher_meta, watcher_methods);
    new_class(L, DEFERRED_MT, deferred_meta, deferred_methods);
    ws_setfuncs(L, helpers);
}
