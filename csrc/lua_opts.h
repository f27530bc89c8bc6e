/* Reading option tables and pushing parsed heads, shared by the bindings.
 * Every reader raises an error that names the option when its value has
 * the wrong type or range. */
#ifndef WS_LUA_OPTS_H
#define WS_LUA_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#include "handshake.h"
#include "http.h"
#include "lua_compat.h"

/* t is an absolute index of an options table, or 0 for "no options". */
const char *ws_lua_opt_string(lua_State *L, int t, const char *field, const char *def);
bool ws_lua_opt_bool(lua_State *L, int t, const char *field, bool def);
lua_Number ws_lua_opt_number(lua_State *L, int t, const char *field, lua_Number def,
                             lua_Number min, lua_Number max);

/* A list of strings; the array lives in a userdata pushed on the stack, so
 * keep that slot until the strings are used. Always pushes one value. */
const char **ws_lua_opt_strings(lua_State *L, int t, const char *field, size_t *n);

/* Headers given as {name = value} or {{name, value}, ...}; same storage rule. */
ws_kv *ws_lua_opt_headers(lua_State *L, int t, const char *field, size_t *n);

/* Push {lowercase name = value}; repeated names are joined with ", ". */
void ws_lua_push_headers(lua_State *L, const ws_http_head *head);

/* Check that the value at index i is a table or nil; returns the absolute
 * index or 0 when nil/none. */
int ws_lua_opts_table(lua_State *L, int i);

#endif
