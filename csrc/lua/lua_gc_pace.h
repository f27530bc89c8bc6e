/* Collector steps for large message strings on LuaJIT (lua_gc_pace.c). */
#ifndef WS_LUA_GC_PACE_H
#define WS_LUA_GC_PACE_H

#include <stddef.h>

#include "lua_compat.h"

/* After large strings of len bytes in all were made (messages of
 * WS_LUA_LARGE_BLOCK bytes or more, a session's output): the collector
 * steps their bytes pay for, when the heap is past its pause and the
 * collector runs.  Nothing on PUC Lua.  May run finalizers, and raise
 * what they raise: call it where a raise loses nothing (after a message's
 * callback, in its protected call; before a session's next event is
 * taken). */
void ws_lua_gc_pace(lua_State *L, size_t len);

#endif
