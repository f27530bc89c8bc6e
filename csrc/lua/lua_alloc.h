/* The large-block cache in front of the Lua state's allocator
 * (lua_alloc.c): what message delivery tells it. */
#ifndef WS_LUA_ALLOC_H
#define WS_LUA_ALLOC_H

#include <stddef.h>

#include "core/buf.h"
#include "lua_compat.h"
#include "lua_loop.h"

/* LuaJIT maps blocks from this size on with mmap of their own. */
#define WS_LUA_LARGE_BLOCK ((size_t)128 * 1024)

/* A message of WS_LUA_LARGE_BLOCK bytes or more is about to become a Lua
 * string, in a turn of loop ll.  Unless the application chose with
 * ws.keep_large_blocks, this turns the cache on and keeps it on while such
 * messages keep coming. */
void ws_lua_large_message(lua_State *L, ws_lua_loop *ll);

/* A loop's ws_payload_store: blocks of the state's allocator a large
 * message's payload is received into.  running points at the loop's
 * running thread (NULL outside step and run: no block then). */
void ws_lua_payload_store_init(ws_payload_store *st, lua_State *const *running);

/* Push a message whose payload sits in a block of that store as a string:
 * 1 when the block became the string (the session must forget it,
 * ws_session_take_block), 0 when the string is a copy (the block stays
 * the session's), -1 when the block went to another allocation (the
 * session must forget it, and the payload is lost: raise).  May raise
 * (out of memory; the block is still the session's then). */
int ws_lua_push_block(lua_State *L, const unsigned char *payload, size_t len, void *block);

#endif
