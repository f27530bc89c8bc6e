/* Strings a connection writes from (io/conn.h, ws_lend): the unsent part
 * of a large message stays in the Lua string instead of being copied, so
 * the string is anchored in the registry until the connection has written
 * it.  The C side gives it back without a Lua state at hand; the reference
 * is released at the next chance that has one (the end of the loop turn,
 * the next large send, the loop closing). */
#ifndef WS_LUA_LENT_H
#define WS_LUA_LENT_H

#include <stdbool.h>

#include "io/conn.h"
#include "lua_compat.h"

/* One per loop.  held: references taken and not yet released; refs[0..n)
 * were given back.  cap >= held always, so giving back never allocates.
 * given_back (the owner's) arranges a release soon: a loop running for
 * good (ws.run) must not keep what was written until it returns. */
typedef struct ws_lua_lent {
    int *refs;
    unsigned n, cap, held;
    void (*given_back)(struct ws_lua_lent *lt);
} ws_lua_lent;

/* Before ws_conn_send_lent: anchor the string at idx and fill *lend.
 * False (nothing anchored: send without lending) when out of memory. */
bool ws_lua_lent_anchor(lua_State *L, ws_lua_lent *lt, int idx, ws_lend *lend);
/* After it: keep the anchor when the connection kept the string. */
void ws_lua_lent_settle(lua_State *L, ws_lua_lent *lt, const ws_lend *lend);
/* Release what was given back. */
void ws_lua_lent_release(lua_State *L, ws_lua_lent *lt);
/* The loop's context goes away (the state is closing, or the references
 * were released). */
void ws_lua_lent_free(ws_lua_lent *lt);

#endif
