/* luaopen_ws_core: the C module behind require "ws.core". */
#include "lua_compat.h"
#include "lua_core.h"

int luaopen_ws_core(lua_State *L);

int luaopen_ws_core(lua_State *L)
{
    lua_newtable(L);
    ws_lua_open_codec(L);
    ws_lua_open_session(L);
    ws_lua_open_handshake(L);
    ws_lua_open_loop(L);
    ws_lua_open_conn(L);
    ws_lua_open_server(L);
    ws_lua_open_input(L);
    lua_pushliteral(L, "0.1.0");
    lua_setfield(L, -2, "version");
    return 1;
}
