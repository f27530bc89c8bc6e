/* Core error codes as Lua errors (see lua_error.h). */
#include "lua_error.h"

int ws_lua_raise(lua_State *L, const char *what, int code, const char *detail, int arg)
{
    if (code == WS_E_NOMEM)
        return ws_lua_nomem(L, what);
    if (!detail || !detail[0])
        detail = ws_strerror(code);
    if (code == WS_E_ARG && arg > 0)
        return luaL_argerror(L, arg, detail);
    return luaL_error(L, "%s: %s", what, detail);
}

int ws_lua_nomem(lua_State *L, const char *what)
{
    return luaL_error(L, "%s: out of memory", what);
}
