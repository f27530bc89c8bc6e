/* How the bindings turn a core error code into a Lua error, the same way
 * in every binding: out of memory is "<what>: out of memory"; a core
 * WS_E_ARG blames the caller's argument; anything else is "<what>: detail". */
#ifndef WS_LUA_ERROR_H
#define WS_LUA_ERROR_H

#include "core/error.h"
#include "lua_compat.h"

/* Raise for code (not WS_OK); detail is the core's text (NULL: the code's
 * own); arg is the argument a WS_E_ARG blames (0: none, raise as others). */
int ws_lua_raise(lua_State *L, const char *what, int code, const char *detail, int arg);

/* Raise "<what>: out of memory". */
int ws_lua_nomem(lua_State *L, const char *what);

#endif
