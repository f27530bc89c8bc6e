/* follow_redirects: a client whose upgrade request is answered 301, 302,
 * 303, 307 or 308 with a Location starts over at that URL on the same
 * connection object, up to a limit.  wss:// never becomes ws:// unless
 * redirect_insecure is set; a hop to another origin drops the
 * Authorization and Cookie headers. */
#ifndef WS_LUA_REDIRECT_H
#define WS_LUA_REDIRECT_H

#include "lua_conn.h"

/* Option follow_redirects of opts: a count (0..100), true (10), or
 * nil/false (0). */
int ws_lua_opt_redirects(lua_State *L, int opts);

/* Make lc (userdata at idx) follow up to limit redirects, with the
 * request options ropts and the configuration of its first connection.
 * -1 when out of memory. */
int ws_lua_redirect_init(lua_State *L, lconn *lc, int idx, int ropts, const ws_session_config *scfg,
                         const ws_conn_config *ccfg, int limit);

enum { WS_LUA_NO_REDIRECT, WS_LUA_REDIRECTED, WS_LUA_REDIRECT_FAILED };

/* A client's handshake failed with ev (which carries the answer's head).
 * Returns WS_LUA_NO_REDIRECT (not a redirect: report it as usual),
 * WS_LUA_REDIRECTED (lc now dials the new URL; the old connection ends
 * without callbacks) or WS_LUA_REDIRECT_FAILED with the reason pushed. */
int ws_lua_redirect(lua_State *L, lconn *lc, int idx, const ws_event *ev);

/* From __gc. */
void ws_lua_redirect_free(lconn *lc);

#endif
