/* The large-block cache in front of the Lua state's allocator
 * (lua_alloc.c): what message delivery tells it. */
#ifndef WS_LUA_ALLOC_H
#define WS_LUA_ALLOC_H

#include <stddef.h>

#include "lua_compat.h"
#include "lua_loop.h"

/* LuaJIT maps blocks from this size on with mmap of their own. */
#define WS_LUA_LARGE_BLOCK ((size_t)128 * 1024)

/* A message of WS_LUA_LARGE_BLOCK bytes or more is about to become a Lua
 * string, in a turn of loop ll.  Unless the application chose with
 * ws.keep_large_blocks, this turns the cache on and keeps it on while such
 * messages keep coming. */
void ws_lua_large_message(lua_State *L, ws_lua_loop *ll);

#endif
