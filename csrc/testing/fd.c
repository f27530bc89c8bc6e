/* Raw file descriptors for the loop specs: pipe, write_fd, read_fd,
 * close_fd (closes any fd) and poll_fd.  Part of ws.testing only. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "lua/lua_compat.h"
#include "testing.h"

static int push_errno(lua_State *L, const char *what, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, strerror(err));
    lua_pushinteger(L, err);
    return 3;
}

static int check_fd(lua_State *L, int arg)
{
    lua_Integer fd = luaL_checkinteger(L, arg);
    if (fd < 0 || fd > INT_MAX)
        luaL_argerror(L, arg, "fd must be a non-negative integer");
    return (int)fd;
}

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    int fdfl = fcntl(fd, F_GETFD);
    if (fl < 0 || fdfl < 0)
        return -1;
    if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

/* pipe() -> read_fd, write_fd: non-blocking, close-on-exec. */
static int l_pipe(lua_State *L)
{
    int fds[2];
    if (pipe(fds) < 0)
        return push_errno(L, "pipe", errno);
    if (set_flags(fds[0]) < 0 || set_flags(fds[1]) < 0) {
        int err = errno;
        close(fds[0]);
        close(fds[1]);
        return push_errno(L, "pipe", err);
    }
    lua_pushinteger(L, fds[0]);
    lua_pushinteger(L, fds[1]);
    return 2;
}

/* write_fd(fd, s) -> bytes written | nil, err, errno */
static int l_write_fd(lua_State *L)
{
    int fd = check_fd(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    ssize_t w = write(fd, s, n);
    if (w < 0)
        return push_errno(L, "write_fd", errno);
    lua_pushinteger(L, (lua_Integer)w);
    return 1;
}

/* read_fd(fd, n) -> string ("" at EOF) | nil, err, errno (EAGAIN: no data) */
static int l_read_fd(lua_State *L)
{
    int fd = check_fd(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    if (n < 1 || n > 65536)
        luaL_argerror(L, 2, "size must be 1..65536");
    char buf[65536];
    ssize_t r = read(fd, buf, (size_t)n);
    if (r < 0)
        return push_errno(L, "read_fd", errno);
    lua_pushlstring(L, buf, (size_t)r);
    return 1;
}

static int l_close_fd(lua_State *L)
{
    if (close(check_fd(L, 1)) < 0)
        return push_errno(L, "close_fd", errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* Seconds, 0..3600, as poll's milliseconds (rounded up). */
static int timeout_ms(lua_State *L, int arg)
{
    lua_Number s = luaL_checknumber(L, arg);
    luaL_argcheck(L, s >= 0 && s <= 3600, arg, "timeout must be 0..3600 seconds");
    return (int)ceil(s * 1000.0);
}

static short poll_events(lua_State *L, int arg)
{
    const char *m = luaL_optstring(L, arg, "r");
    if (strcmp(m, "r") == 0)
        return POLLIN;
    if (strcmp(m, "w") == 0)
        return POLLOUT;
    if (strcmp(m, "rw") == 0 || strcmp(m, "wr") == 0)
        return POLLIN | POLLOUT;
    return (short)luaL_argerror(L, arg, "mode must be \"r\", \"w\" or \"rw\"");
}

/* poll_fd(fd, timeout_s[, "r"|"w"|"rw"]) -> true (ready) | false (timed
 * out) | nil, "invalid fd" (the fd is not open) */
static int l_poll_fd(lua_State *L)
{
    struct pollfd p;
    p.fd = check_fd(L, 1);
    int timeout = timeout_ms(L, 2);
    p.events = poll_events(L, 3);
    p.revents = 0;
    int r;
    do
        r = poll(&p, 1, timeout);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return push_errno(L, "poll_fd", errno);
    if (p.revents & POLLNVAL) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid fd");
        return 2;
    }
    lua_pushboolean(L, r > 0);
    return 1;
}

static const luaL_Reg fd_funcs[] = {{"pipe", l_pipe},       {"write_fd", l_write_fd},
                                    {"read_fd", l_read_fd}, {"close_fd", l_close_fd},
                                    {"poll_fd", l_poll_fd}, {NULL, NULL}};

void ws_testing_open_fd(lua_State *L)
{
    ws_setfuncs(L, fd_funcs);
}
