/* Collector steps for large message strings on LuaJIT and Lua 5.1
 * (lua_gc_pace.c). */
#ifndef WS_LUA_GC_PACE_H
#define WS_LUA_GC_PACE_H

#include <stddef.h>

#include "lua_compat.h"

/* After the callback of a message of len bytes (WS_LUA_LARGE_BLOCK or
 * more), in a protected call: the collector steps its bytes pay for, when
 * the heap is past its pause.  Nothing on Lua 5.2 and later.  May run
 * finalizers, and raise what they raise. */
void ws_lua_gc_pace(lua_State *L, size_t len);

#endif
