/* The valid keys of every options table, and the check that rejects the
 * others with a suggestion:
 *   unknown option 'on_mesage' (did you mean 'on_message'?)
 * The lists live in lua_optkeys.c; a new option is added there. */
#ifndef WS_LUA_OPTKEYS_H
#define WS_LUA_OPTKEYS_H

#include "lua_compat.h"

/* Raise an argument error on argument arg unless every key of the table
 * at index t is valid for the options table named kind ("connect",
 * "listen", "tls", "compress", "session", ...).  prefix goes before the
 * key in the message ("tls." for a nested table).  Unknown kinds raise. */
void ws_lua_check_keys(lua_State *L, int t, int arg, const char *kind, const char *prefix);

/* Push nil, or the message for the first invalid key of the table at t
 * (without "bad argument"); used by the Lua layer. */
void ws_lua_push_key_error(lua_State *L, int t, const char *kind, const char *prefix);

/* ws.core.check_options(kind, tbl[, prefix]) and ws.core.option_keys(kind). */
void ws_lua_open_optkeys(lua_State *L);

#endif
