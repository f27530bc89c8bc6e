/* Registration hooks of the binding files: each adds its functions to the
 * ws.core table at the top of the stack. */
#ifndef WS_LUA_CORE_H
#define WS_LUA_CORE_H

#include <lua.h>

void ws_lua_open_session(lua_State *L);
void ws_lua_open_handshake(lua_State *L);
void ws_lua_open_codec(lua_State *L);
void ws_lua_open_loop(lua_State *L);
void ws_lua_open_conn(lua_State *L);
void ws_lua_open_server(lua_State *L);
void ws_lua_open_input(lua_State *L);
void ws_lua_open_topics(lua_State *L);
void ws_lua_open_workers(lua_State *L);
void ws_lua_open_backplane(lua_State *L);
void ws_lua_open_alloc(lua_State *L);

#endif
