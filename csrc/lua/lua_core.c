/* luaopen_ws_core: the C module behind require "ws.core". */
#include "lua_compat.h"
#include "lua_core.h"
#include "lua_optkeys.h"

int luaopen_ws_core(lua_State *L);

/***
 * Entry points of ws.core.
 * @module ws.core
 */

/***
 * The version of lua-ws, `"0.1.0"` (also `ws.version`).
 * @field version
 */

/***
 * The client connection behind `ws.connect` (always callback style).
 * @function connect
 * @tparam string url as for `ws.connect`
 * @tparam[opt] table opts `ws.connect_options`
 * @tparam Loop loop the loop to run on
 * @treturn ws.Connection
 */

/***
 * The server behind `ws.listen`.
 * @function listen
 * @tparam table opts `ws.listen_options`
 * @tparam Loop loop the loop to run on
 * @treturn ws.Server
 */

/***
 * The backplane behind `ws.redis`.
 * @function redis
 * @tparam table opts `ws.redis_options`
 * @tparam Loop loop the loop to run on
 * @treturn ws.Backplane
 */

/***
 * The same as `ws.session`.
 * @function session
 * @tparam table opts `ws.session_options`
 * @treturn ws.Session
 */

/***
 * A new event loop (`ws.loop()` is the default one).
 * @function loop
 * @treturn ws.Loop
 */
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
    ws_lua_open_topics(L);
    ws_lua_open_workers(L);
    ws_lua_open_backplane(L);
    ws_lua_open_alloc(L);
    ws_lua_open_optkeys(L);
    lua_pushliteral(L, "0.1.0");
    lua_setfield(L, -2, "version");
    return 1;
}
