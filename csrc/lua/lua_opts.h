/* Reading option tables and pushing parsed heads, shared by the bindings.
 *
 * t is the absolute stack index of an options table, or 0 for "no
 * options" (every reader then returns its default).  A bad value raises an
 * argument error on t that names the option, e.g.
 *   bad argument #2 to 'client_handshake' ('origin' must be a string, got number)
 *
 * Options are read with lua_getfield, so __index defaults work.  Returned
 * strings stay valid while t is alive: a value the table does not hold
 * itself (one made by an __index function) is anchored to t. */
#ifndef WS_LUA_OPTS_H
#define WS_LUA_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/deflate.h"
#include "core/handshake.h"
#include "core/http.h"
#include "core/session.h"
#include "lua_compat.h"

/* Check that the value at index i is a table or nil/none; returns its
 * absolute index, or 0 when nil/none. */
int ws_lua_opts_table(lua_State *L, int i);

/* Raise "bad argument #t to 'f' (<formatted message>)".  Messages start
 * with the quoted option name: "'%s' must be ...". */
int ws_lua_opt_error(lua_State *L, int t, const char *fmt, ...);

/* A whole number in [min, max] (false for NaN and fractions). */
bool ws_lua_is_count(lua_Number n, lua_Number min, lua_Number max);

/* The message kind argument i: "text" (the default) or "binary"; true for
 * binary.  Raises naming the argument otherwise. */
bool ws_lua_check_kind(lua_State *L, int i);

/* The options argument i of send ({compress = false|true} or none) as
 * WS_SEND_AUTO / WS_SEND_NO_COMPRESS / WS_SEND_COMPRESS (session.h).
 * Raises naming the argument. */
int ws_lua_send_compress(lua_State *L, int i);

/* Any string, NUL bytes included (binary keys); *len is set when len is
 * not NULL (strlen(def) for the default, 0 for NULL). */
const char *ws_lua_opt_lstring(lua_State *L, int t, const char *field, const char *def,
                               size_t *len);
const char *ws_lua_opt_string(lua_State *L, int t, const char *field, const char *def);
/* A string without NUL bytes, for text that C code reads up to the NUL
 * (URLs, header values). */
const char *ws_lua_opt_text(lua_State *L, int t, const char *field, const char *def);
bool ws_lua_opt_bool(lua_State *L, int t, const char *field, bool def);
/* A number in [min, max]. */
lua_Number ws_lua_opt_number(lua_State *L, int t, const char *field, lua_Number def, lua_Number min,
                             lua_Number max);
/* A whole number in [min, max]. */
size_t ws_lua_opt_size(lua_State *L, int t, const char *field, size_t def, size_t min, size_t max);

/* The size limits, read the same way (same ranges) by every binding:
 * max_head 1..1048576 bytes and max_headers 1..1024 into *max_head and
 * *max_headers (their defaults on entry); ws_lua_read_limits also reads
 * max_message and max_frame (1..2^53, exact in a Lua 5.1 double; max_frame
 * defaults to max_message) into a session configuration. */
#define WS_LUA_MAX_HEAD_MAX    ((size_t)1 << 20)
#define WS_LUA_MAX_HEADERS_MAX 1024
void ws_lua_read_head_limits(lua_State *L, int t, size_t *max_head, size_t *max_headers);
void ws_lua_read_limits(lua_State *L, int t, ws_session_config *scfg);

/* One string or a list of strings (without NUL bytes) as a C array.
 * Always pushes one value, a userdata that holds the array and keeps the
 * strings alive: keep that slot until the array is used.  Returns NULL
 * with *n = 0 (and pushes nil) when the option is absent. */
const char **ws_lua_opt_strings(lua_State *L, int t, const char *field, size_t *n);

/* Headers given as {{name, value}, ...} (kept in that order), then
 * {name = value} entries; values may be numbers.  Same storage rule as
 * ws_lua_opt_strings; never returns NULL. */
ws_kv *ws_lua_opt_headers(lua_State *L, int t, const char *field, size_t *n);

/* Push {lowercase name = value}; repeated names are joined with ", ". */
void ws_lua_push_headers(lua_State *L, const ws_http_head *head);

/* Option `compress` of t: nil/false (off), true (defaults) or a table of
 * threshold, level, mem_level, window_bits, no_context_takeover (our own
 * side), server_/client_no_context_takeover, server_/client_max_window_bits.
 * negotiated: the values were agreed already (sessions without handshake). */
void ws_lua_opt_compress(lua_State *L, int t, bool server, bool negotiated, ws_deflate_config *cfg);

/* The client's opening request (defined in lua_handshake.c): the URL is
 * the string at stack index url, or option "url" of t when url is 0;
 * options origin, extensions, key, protocols and headers come from t.
 * URL credentials become "Authorization: Basic ..." unless the headers
 * set Authorization.  Bad input raises an argument error naming the URL or
 * the option.  Pushes one value that keeps everything the request points
 * to alive: keep it until the request is used. */
ws_client_request *ws_lua_client_request(lua_State *L, int url, int t);

#endif
