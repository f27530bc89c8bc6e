/* fork() and wait_pid() for the specs: a plain fork(2), not through
 * ws.workers, as an application (or a library it uses) may make one.
 * Part of ws.testing only. */
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lua/lua_compat.h"
#include "testing.h"

/* fork() -> the child's pid in the parent, 0 in the child | nil, err */
static int l_fork(lua_State *L)
{
    pid_t pid = fork();
    if (pid < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "fork: %s", strerror(errno));
        return 2;
    }
    lua_pushinteger(L, pid);
    return 1;
}

/* wait_pid(pid) -> exit status (128 + n after signal n) | nil, err:
 * waits for that child to end. */
static int l_wait_pid(lua_State *L)
{
    lua_Integer pid = luaL_checkinteger(L, 1);
    luaL_argcheck(L, pid > 0, 1, "a process id (> 0) expected");
    int status;
    pid_t r;
    while ((r = waitpid((pid_t)pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (r < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "wait_pid: %s", strerror(errno));
        return 2;
    }
    lua_pushinteger(L, WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
    return 1;
}

void ws_testing_open_fork(lua_State *L)
{
    lua_pushcfunction(L, l_fork);
    lua_setfield(L, -2, "fork");
    lua_pushcfunction(L, l_wait_pid);
    lua_setfield(L, -2, "wait_pid");
}
