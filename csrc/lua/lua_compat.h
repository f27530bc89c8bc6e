/* The one place that papers over differences between Lua 5.1, 5.2, 5.3,
 * 5.4 and LuaJIT for the bindings. */
#ifndef WS_LUA_COMPAT_H
#define WS_LUA_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM < 502
#define ws_setfuncs(L, l) luaL_register((L), NULL, (l))
#define ws_rawlen(L, i)   lua_objlen((L), (i))
#define ws_newlib(L, l)   (lua_newtable(L), luaL_register((L), NULL, (l)))
#else
#define ws_setfuncs(L, l) luaL_setfuncs((L), (l), 0)
#define ws_rawlen(L, i)   lua_rawlen((L), (i))
#define ws_newlib(L, l)   luaL_newlib((L), (l))
#endif

/* A userdata's uservalue (a table): the environment on 5.1. */
#if LUA_VERSION_NUM < 502
#define ws_getuservalue(L, i) lua_getfenv((L), (i))
#define ws_setuservalue(L, i) lua_setfenv((L), (i))
#else
#define ws_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#define ws_setuservalue(L, i) lua_setuservalue((L), (i))
#endif

/* Sizes: integers where the Lua has 64-bit integers, else doubles. */
#if LUA_VERSION_NUM >= 503
#define ws_pushsize(L, n) lua_pushinteger((L), (lua_Integer)(n))
#else
#define ws_pushsize(L, n) lua_pushnumber((L), (lua_Number)(n))
#endif

/* luaL_testudata appeared in 5.2. */
static inline void *ws_testudata(lua_State *L, int i, const char *tname)
{
    void *p = lua_touserdata(L, i);
    if (p == NULL || !lua_getmetatable(L, i))
        return NULL;
    luaL_getmetatable(L, tname);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? p : NULL;
}

/* Push C function f, for calls made on every event.  Lua 5.1 and LuaJIT
 * make a new closure object each time (5.2 and later push a light function
 * for free): there the one kept in the registry under `key` is pushed. */
static inline void ws_pushcfunction_kept(lua_State *L, lua_CFunction f, const void *key)
{
#if LUA_VERSION_NUM < 502
    lua_pushlightuserdata(L, (void *)key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushcfunction(L, f);
        lua_pushlightuserdata(L, (void *)key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
#else
    (void)key;
    lua_pushcfunction(L, f);
#endif
}

/* Push a new table whose keys are weak (its entries go with their keys:
 * per-object data kept beside userdata or tables). */
static inline void ws_newweakkeys(lua_State *L)
{
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
}

#endif
