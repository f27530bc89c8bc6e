/* Raw TCP clients for the specs (hostile and half-broken peers, plain HTTP
 * clients).  Part of ws.testing only. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/net.h"
#include "lua/lua_compat.h"
#include "testing.h"

static int push_error(lua_State *L, int e)
{
    lua_pushnil(L);
    lua_pushstring(L, e == ECONNREFUSED ? "connection refused"
                      : e == ECONNRESET ? "connection reset by peer"
                                        : strerror(e));
    return 2;
}

/* tcp_connect(host, port) -> fd (non-blocking once connected) */
static int l_tcp_connect(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    char ports[16];
    snprintf(ports, sizeof ports, "%d", (int)port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, ports, &hints, &res);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, gai_strerror(rc));
        return 2;
    }
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC); /* child processes must not inherit it */
    int e = 0;
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0)
        e = errno;
    freeaddrinfo(res);
    if (e) {
        if (fd >= 0)
            close(fd);
        return push_error(L, e);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    lua_pushinteger(L, fd);
    return 1;
}

/* tcp_send(fd, data) -> bytes sent (0 when the socket is full) */
static int l_tcp_send(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    ssize_t w = send(fd, p, n, WS_NET_SEND_FLAGS);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        w = 0;
    if (w < 0)
        return push_error(L, errno);
    lua_pushinteger(L, (lua_Integer)w);
    return 1;
}

/* tcp_recv(fd[, max]) -> data; "" at end of stream; nil, "again" when
 * nothing is waiting; nil, err on failure */
static int l_tcp_recv(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, 65536);
    if (max < 1 || max > 1 << 20)
        return luaL_argerror(L, 2, "size must be 1..1048576");
    char *p = lua_newuserdata(L, (size_t)max); /* scratch, collected later */
    ssize_t r = recv(fd, p, (size_t)max, 0);
    if (r < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK) {
            lua_pushnil(L);
            lua_pushliteral(L, "again");
            return 2;
        }
        return push_error(L, e);
    }
    lua_pushlstring(L, p, (size_t)r);
    return 1;
}

/* tcp_shutdown(fd) — half-close our direction */
static int l_tcp_shutdown(lua_State *L)
{
    shutdown((int)luaL_checkinteger(L, 1), SHUT_WR);
    return 0;
}

/* tcp_close(fd[, reset]) — reset: RST instead of FIN */
static int l_tcp_close(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    if (lua_toboolean(L, 2)) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    return 0;
}

static const luaL_Reg tcp_funcs[] = {
    {"tcp_connect", l_tcp_connect},   {"tcp_send", l_tcp_send},   {"tcp_recv", l_tcp_recv},
    {"tcp_shutdown", l_tcp_shutdown}, {"tcp_close", l_tcp_close}, {NULL, NULL}};

void ws_testing_open_tcp(lua_State *L)
{
    ws_setfuncs(L, tcp_funcs);
}
