/* What the other bindings need of a Lua loop object: its ws_loop, and a
 * way to call Lua from a loop callback so that an error stops the turn and
 * is re-raised by loop:step()/loop:run() once the C loop has returned. */
#ifndef WS_LUA_LOOP_H
#define WS_LUA_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/loop.h"
#include "lua_compat.h"

typedef struct ws_lua_loop ws_lua_loop;

/* The loop object at idx (raises an argument error otherwise, or when the
 * loop is closed). */
ws_lua_loop *ws_lua_check_loop(lua_State *L, int idx);
ws_loop *ws_lua_loop_get(ws_lua_loop *ll); /* NULL once closed */

/* Keep the context alive while a C object points at it. */
void ws_lua_loop_ref(ws_lua_loop *ll);
void ws_lua_loop_unref(ws_lua_loop *ll);

/* Servers and backplanes are members of their loop, and connections
 * through one (a server's membership stands for its connections; the
 * loop's list of connections, below, for the others).  A member keeps the
 * loop object alive (a registry anchor while the loop has members), and
 * closing the loop, or collecting it when the Lua state closes, closes its
 * members first: every member is asked to shut down, the loop runs until
 * they are done (bounded by their close timeouts), and what is left is
 * released.  After release a member no longer points into the loop; its
 * methods report it closed. */
typedef struct ws_lua_member ws_lua_member;
typedef struct ws_lua_member_ops {
    /* Start a graceful close (a connection: 1001 unless already closing;
     * a server: stop listening).  Runs no Lua. */
    void (*shutdown)(lua_State *L, ws_lua_member *m);
    /* Nothing left to flush or await. */
    bool (*done)(ws_lua_member *m);
    /* Free everything that points into the loop, without waiting and
     * without callbacks, and detach (ws_lua_loop_detach). */
    void (*release)(lua_State *L, ws_lua_member *m);
    /* How long its close may take (ns). */
    uint64_t (*close_timeout)(ws_lua_member *m);
    /* How many unfinished objects it stands for (Loop:members); NULL: one
     * until done. */
    size_t (*pending)(ws_lua_member *m);
} ws_lua_member_ops;
struct ws_lua_member {
    const ws_lua_member_ops *ops; /* NULL while detached */
    ws_lua_member *next, *prev;
};

/* Attach m; loop_idx is the stack index of the loop object, or 0 when the
 * loop is known to have members already.  Raises "loop is closing" while
 * the loop closes. */
void ws_lua_loop_attach(lua_State *L, ws_lua_loop *ll, ws_lua_member *m,
                        const ws_lua_member_ops *ops, int loop_idx);
/* Raise "loop is closing" while the loop closes or once closed. */
void ws_lua_loop_check_open(lua_State *L, ws_lua_loop *ll);
/* Attach m to a loop that has members already (no anchor is taken),
 * without raising, also while the loop closes (it is then shut down and
 * released with the others).  False, and nothing attached, when the loop
 * has no members. */
bool ws_lua_loop_join(ws_lua_loop *ll, ws_lua_member *m, const ws_lua_member_ops *ops);
/* Idempotent. */
void ws_lua_loop_detach(lua_State *L, ws_lua_loop *ll, ws_lua_member *m);
/* The loop's list of connections no server holds (lua_conn.c keeps it;
 * its member stands for all of them while the list is not empty). */
struct lconn;
typedef struct ws_lua_conn_list {
    ws_lua_member member;
    struct lconn *head;
} ws_lua_conn_list;
ws_lua_conn_list *ws_lua_loop_conns(ws_lua_loop *ll);

/* From a member's __gc while it is not done: this happens only when the
 * Lua state closes (members are anchored until done), so the whole loop
 * closes now, quietly (no Lua callback runs). */
void ws_lua_loop_close_quietly(lua_State *L, ws_lua_loop *ll);
/* The loop object (pushed) while it has members; false (nothing pushed)
 * otherwise. */
bool ws_lua_loop_push(lua_State *L, ws_lua_loop *ll);

/* The strings its connections write from (lua_lent.h). */
struct ws_lua_lent *ws_lua_loop_lent(ws_lua_loop *ll);

/* The Lua thread driving the loop right now (inside step/run), or NULL. */
lua_State *ws_lua_loop_state(ws_lua_loop *ll);

/* The same for an event delivered by the loop; *handler is set to the
 * stack index of a traceback handler already in place when the event
 * comes straight from the C loop (no callback of the loop runs and the
 * stack is as step/run left it: WS_LUA_EVENT_STACK free slots are
 * there), else 0 (push one, check the stack). */
lua_State *ws_lua_loop_event_state(ws_lua_loop *ll, int *handler);
#define WS_LUA_EVENT_STACK 8

/* A C function step/run keep on the stack just above their handler (at
 * handler + 1 when ws_lua_loop_event_state gives one), so that calling
 * it for each event costs no push of a new closure (Lua 5.1, LuaJIT) nor
 * a registry lookup: the connection binding's message delivery.  Set once
 * (key: its registry key for ws_pushcfunction_kept). */
void ws_lua_loop_turn_function(lua_CFunction f, const void *key);

/* A pointer handed from the code that starts a protected call to the
 * function it calls (instead of a light userdata argument): valid until
 * the next set, so read it first thing. */
void ws_lua_loop_set_event(ws_lua_loop *ll, const void *event);
const void *ws_lua_loop_event(const ws_lua_loop *ll);

/* Call the function below nargs arguments on top of ws_lua_loop_state's
 * stack, with a traceback handler; pops them.  The first error raised is
 * kept for step/run to re-raise and breaks the loop turn; later ones in
 * the same turn are dropped.  Returns false on error. */
bool ws_lua_loop_call(ws_lua_loop *ll, int nargs);

/* The same, leaving nresults results on the stack when it returns true. */
bool ws_lua_loop_call_results(ws_lua_loop *ll, int nargs, int nresults);

/* The same with the traceback handler already at stack index handler
 * (pushed by ws_lua_push_traceback), saving its push for each call. */
bool ws_lua_loop_call_with(ws_lua_loop *ll, int nargs, int handler);
void ws_lua_push_traceback(lua_State *L);

/* What the specs' module (ws.testing, which does not link against ws.core)
 * may do to a loop: registry[WS_LUA_LOOP_HOOKS] is a light userdata
 * pointing at this. */
#define WS_LUA_LOOP_HOOKS "ws.core.loop_hooks"
typedef struct ws_lua_loop_hooks {
    ws_loop *(*check)(lua_State *L, int idx); /* the open loop at idx, or raise */
    void (*set_clock)(ws_loop *loop, ws_clock_fn fn, void *ud);
    ws_buf_pool *(*output_pool)(ws_loop *loop);
} ws_lua_loop_hooks;

#endif
