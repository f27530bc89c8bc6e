/* ws.core.read_input(fd[, max]): one read(2) of up to max bytes (default
 * 4096) from a descriptor the loop said is readable (loop:watch), so a
 * script can take input from stdin or a pipe without blocking the loop or
 * changing the descriptor's flags (O_NONBLOCK would be shared with every
 * process using the same terminal).  Returns the bytes, "" at end of
 * input, or nil, err, errno. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "lua_compat.h"
#include "lua_core.h"

/***
 * Read once from a descriptor that `loop:watch(fd, "r", fn)` said is
 * readable (standard input, a pipe), without changing its flags.
 * @module ws.core
 */

/***
 * One read(2) of up to max bytes.
 * @function read_input
 * @tparam integer fd the descriptor
 * @tparam[opt=4096] integer max at most this many bytes (1..65536)
 * @treturn string the bytes, or "" at the end of input
 * @return nil, err, errno when the read fails
 */
static int l_read_input(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 1);
    if (fd < 0 || fd > 1 << 24)
        return luaL_argerror(L, 1, "fd must be a non-negative integer");
    lua_Integer max = luaL_optinteger(L, 2, 4096);
    if (max < 1 || max > 65536)
        return luaL_argerror(L, 2, "size must be 1..65536");
    char buf[65536];
    ssize_t r;
    do
        r = read((int)fd, buf, (size_t)max);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        int e = errno;
        lua_pushnil(L);
        lua_pushfstring(L, "read_input: %s", strerror(e));
        lua_pushinteger(L, e);
        return 3;
    }
    lua_pushlstring(L, buf, (size_t)r);
    return 1;
}

void ws_lua_open_input(lua_State *L)
{
    lua_pushcfunction(L, l_read_input);
    lua_setfield(L, -2, "read_input");
}
