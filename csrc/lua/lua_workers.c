/* The process primitives under ws.workers (lua/ws/workers.lua keeps the
 * supervisor's policy: restarts, backoff, forwarding, the result). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/proc.h"
#include "lua_compat.h"
#include "lua_core.h"

/***
 * Worker processes (the primitives of `ws.workers`).
 * @module ws.core
 */

static int push_failure(lua_State *L, const char *what)
{
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, strerror(e));
    lua_pushinteger(L, e);
    return 3;
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGTERM: return "TERM";
    case SIGINT: return "INT";
    case SIGKILL: return "KILL";
    case SIGHUP: return "HUP";
    case SIGQUIT: return "QUIT";
    case SIGSEGV: return "SEGV";
    case SIGABRT: return "ABRT";
    case SIGBUS: return "BUS";
    case SIGFPE: return "FPE";
    case SIGILL: return "ILL";
    case SIGPIPE: return "PIPE";
    case SIGUSR1: return "USR1";
    case SIGUSR2: return "USR2";
    default: return NULL;
    }
}

static void push_signal(lua_State *L, int sig)
{
    const char *name = signal_name(sig);
    if (name)
        lua_pushstring(L, name);
    else
        lua_pushfstring(L, "%d", sig);
}

/***
 * Start supervising: SIGTERM, SIGINT and SIGCHLD are caught until
 * `supervise_end`.
 * @function supervise_begin
 * @return true, or nil, err, errno
 */
static int l_supervise_begin(lua_State *L)
{
    if (ws_proc_supervise_begin() < 0) {
        if (errno == EBUSY) {
            lua_pushnil(L);
            lua_pushliteral(L, "ws.workers: called in a worker or while already supervising");
            lua_pushinteger(L, EBUSY);
            return 3;
        }
        return push_failure(L, "ws.workers");
    }
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * Restore the signal handlers `supervise_begin` replaced.
 * @function supervise_end
 */
static int l_supervise_end(lua_State *L)
{
    (void)L;
    ws_proc_supervise_end();
    return 0;
}

/***
 * Wait for a signal or a dead worker, then report what happened.
 * @function supervise_wait
 * @tparam[opt] number timeout seconds (nil: without limit)
 * @treturn string|bool the stop signal that came (`"TERM"` or `"INT"`), or false
 * @treturn table the workers that ended: `{pid = , how = "exit"|"signal", code = }`
 */
static int l_supervise_wait(lua_State *L)
{
    int ms = -1;
    if (!lua_isnoneornil(L, 1)) {
        lua_Number s = luaL_checknumber(L, 1);
        ms = s <= 0 ? 0 : s > 86400 ? 86400000 : (int)ceil(s * 1000);
    }
    int sig = ws_proc_wait(ms);
    if (sig < 0)
        return push_failure(L, "ws.workers");
    if (sig)
        push_signal(L, sig);
    else
        lua_pushboolean(L, 0);
    lua_newtable(L);
    int n = 0;
    pid_t pid;
    int status;
    while (ws_proc_reap(&pid, &status) > 0) {
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, pid);
        lua_setfield(L, -2, "pid");
        if (WIFSIGNALED(status)) {
            lua_pushliteral(L, "signal");
            lua_setfield(L, -2, "how");
            push_signal(L, WTERMSIG(status));
        } else {
            lua_pushliteral(L, "exit");
            lua_setfield(L, -2, "how");
            lua_pushinteger(L, WEXITSTATUS(status));
        }
        lua_setfield(L, -2, "code");
        lua_rawseti(L, -2, ++n);
    }
    return 2;
}

/***
 * Fork a worker: in the child the random generator is reseeded and
 * SIGTERM/SIGINT become a stop request its loops honour.
 * @function fork
 * @return the child's pid in the parent, 0 in the child, or nil, err, errno
 */
static int l_fork(lua_State *L)
{
    pid_t pid = ws_proc_fork();
    if (pid < 0)
        return push_failure(L, "ws.workers: fork");
    lua_pushinteger(L, pid);
    return 1;
}

static const char *const signal_names[] = {"TERM", "INT", "KILL", NULL};
static const int signal_numbers[] = {SIGTERM, SIGINT, SIGKILL};

/***
 * Send a signal to a worker.
 * @function kill
 * @tparam integer pid
 * @tparam string signal `"TERM"`, `"INT"` or `"KILL"`
 * @return true, or nil, err, errno
 */
static int l_kill(lua_State *L)
{
    lua_Integer pid = luaL_checkinteger(L, 1);
    luaL_argcheck(L, pid > 0, 1, "a process id (> 0) expected");
    int sig = signal_numbers[luaL_checkoption(L, 2, NULL, signal_names)];
    if (kill((pid_t)pid, sig) < 0)
        return push_failure(L, "kill");
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * The id of this process.
 * @function pid
 * @treturn integer
 */
static int l_pid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

/***
 * In a worker: the signal that asked it to stop (`"TERM"` or `"INT"`), or
 * false before one came (always false outside workers).
 * @function stop_requested
 * @treturn string|bool
 */
static int l_stop_requested(lua_State *L)
{
    if (ws_proc_stop_requested())
        push_signal(L, ws_proc_stop_signal());
    else
        lua_pushboolean(L, 0);
    return 1;
}

void ws_lua_open_workers(lua_State *L)
{
    static const luaL_Reg fns[] = {{"supervise_begin", l_supervise_begin},
                                   {"supervise_end", l_supervise_end},
                                   {"supervise_wait", l_supervise_wait},
                                   {"fork", l_fork},
                                   {"kill", l_kill},
                                   {"pid", l_pid},
                                   {"stop_requested", l_stop_requested},
                                   {NULL, NULL}};
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
}
