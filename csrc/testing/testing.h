/* Registration hooks of the test module's files: each adds its functions
 * to the ws.testing table at the top of the stack. */
#ifndef WS_TESTING_H
#define WS_TESTING_H

#include <lua.h>

void ws_testing_open_tcp(lua_State *L);
void ws_testing_open_fd(lua_State *L);
void ws_testing_open_clock(lua_State *L);
void ws_testing_open_fork(lua_State *L);

#endif
