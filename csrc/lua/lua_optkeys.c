/* The valid keys of every options table, in one place, and the check that
 * names an unknown key together with the closest valid one.
 *
 * To add an option: add its name to the list of each table that takes it
 * (CONN_COMMON holds what clients and server connections share). */
#include "lua_optkeys.h"

#include <stdbool.h>
#include <string.h>

#define CALLBACKS "on_open", "on_message", "on_close", "on_error", "on_drain", "on_ping", "on_pong"

/* Per-connection settings taken by ws.connect and ws.listen alike. */
#define CONN_COMMON                                                                                \
    "close_timeout", "ping_interval", "ping_timeout", "idle_timeout", "max_message", "max_frame",  \
        "max_head", "max_headers", "max_buffered", "buffer_policy", "compress", "tls",             \
        "max_queue", "max_queue_bytes", "low_water_mark", CALLBACKS

static const char *const connect_keys[] = {
    CONN_COMMON, "protocols", "headers", "origin",      "extensions",       "key",
    "timeout",   "wait",      "proxy",   "unix_socket", "follow_redirects", "redirect_insecure",
    "proxy_tls", NULL};

static const char *const listen_keys[] = {
    CONN_COMMON,       "host",      "port",       "reuseport",  "backlog",
    "keep_request",    "protocols", "on_upgrade", "on_request", "handshake_timeout",
    "on_accept_error", "unix",      "mode",       "backplane",  NULL};

static const char *const redis_keys[] = {
    "host",          "port",        "unix",    "username", "password", "prefix", "connect_timeout",
    "ping_interval", "max_pending", "backoff", "on_error", NULL};
static const char *const redis_backoff_keys[] = {"initial", "max", NULL};

static const char *const reconnecting_keys[] = {
    "backoff",          "queue",        "retry_on_4xx", "reconnect_on_normal_close",
    "should_reconnect", "on_reconnect", "on_give_up",   NULL};

static const char *const workers_keys[] = {
    "restart", "restart_delay", "restart_max_delay", "stable_after",
    "grace",   "on_start",      "on_exit",           NULL};

static const char *const tls_keys[] = {"verify", "cafile",  "capath", "cert",
                                       "key",    "ciphers", "alpn",   NULL};

static const char *const compress_keys[] = {"threshold",
                                            "level",
                                            "mem_level",
                                            "window_bits",
                                            "no_context_takeover",
                                            "server_no_context_takeover",
                                            "client_no_context_takeover",
                                            "server_max_window_bits",
                                            "client_max_window_bits",
                                            NULL};

static const char *const session_keys[] = {"role",        "handshake", "stream",   "compress",
                                           "max_message", "max_frame", "max_head", "max_headers",
                                           "mask_key",    "protocols", "url",      "origin",
                                           "extensions",  "headers",   "key",      NULL};

static const char *const backoff_keys[] = {"initial",     "max",    "factor", "max_retries",
                                           "reset_after", "random", NULL};

static const char *const queue_keys[] = {"max_messages", "max_bytes", "flush", NULL};

/* ws.core.client_handshake, check_response and accept. */
static const char *const client_handshake_keys[] = {"url",       "origin",  "extensions", "key",
                                                    "protocols", "headers", NULL};
/* check_response takes the table given to client_handshake, too. */
static const char *const check_response_keys[] = {"max_head", "max_headers", NULL};
static const char *const accept_keys[] = {"max_head",   "max_headers", "protocols",
                                          "extensions", "headers",     NULL};

/* The options of c:send / s:send (per message). */
static const char *const send_keys[] = {"compress", NULL};

/* s:accept{...} and the table on_upgrade may return. */
static const char *const session_accept_keys[] = {"protocol", "extensions", "headers", NULL};
static const char *const upgrade_answer_keys[] = {"protocol", "headers", NULL};

typedef struct keyset {
    const char *kind;
    const char *const *lists[2];
} keyset;

static const keyset keysets[] = {
    {"connect", {connect_keys, NULL}},
    {"listen", {listen_keys, NULL}},
    {"reconnecting", {connect_keys, reconnecting_keys}},
    {"tls", {tls_keys, NULL}},
    {"compress", {compress_keys, NULL}},
    {"session", {session_keys, NULL}},
    {"backoff", {backoff_keys, NULL}},
    {"queue", {queue_keys, NULL}},
    {"client_handshake", {client_handshake_keys, NULL}},
    {"check_response", {client_handshake_keys, check_response_keys}},
    {"accept", {accept_keys, NULL}},
    {"session_accept", {session_accept_keys, NULL}},
    {"upgrade_answer", {upgrade_answer_keys, NULL}},
    {"send", {send_keys, NULL}},
    {"workers", {workers_keys, NULL}},
    {"redis", {redis_keys, NULL}},
    {"redis_backoff", {redis_backoff_keys, NULL}},
};

static const keyset *find_keyset(lua_State *L, const char *kind)
{
    for (size_t i = 0; i < sizeof keysets / sizeof keysets[0]; i++)
        if (strcmp(keysets[i].kind, kind) == 0)
            return &keysets[i];
    luaL_error(L, "no options table named '%s'", kind);
    return NULL;
}

static bool is_valid(const keyset *ks, const char *key)
{
    for (int l = 0; l < 2 && ks->lists[l]; l++)
        for (const char *const *k = ks->lists[l]; *k; k++)
            if (strcmp(*k, key) == 0)
                return true;
    return false;
}

#define DIST_MAX 64

/* Edit distance with transpositions (optimal string alignment); names
 * longer than DIST_MAX count as far apart. */
static size_t distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n >= DIST_MAX || m >= DIST_MAX)
        return (size_t)-1;
    size_t d[DIST_MAX + 1][DIST_MAX + 1];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[n][m];
}

/* Push the message for an unknown key: the closest valid name when it is
 * near enough to be a typo, otherwise every valid name. */
static void push_unknown(lua_State *L, const keyset *ks, const char *key, const char *prefix)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (int l = 0; l < 2 && ks->lists[l]; l++)
        for (const char *const *k = ks->lists[l]; *k; k++) {
            size_t dd = distance(key, *k);
            if (dd < best_d) {
                best_d = dd;
                best = *k;
            }
        }
    size_t len = strlen(key);
    size_t near = len / 3 > 2 ? len / 3 : 2;
    if (best && best_d <= near) {
        lua_pushfstring(L, "unknown option '%s%s' (did you mean '%s%s'?)", prefix, key, prefix,
                        best);
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_pushfstring(L, "unknown option '%s%s' (valid: ", prefix, key);
    luaL_addvalue(&b);
    bool first = true;
    for (int l = 0; l < 2 && ks->lists[l]; l++)
        for (const char *const *k = ks->lists[l]; *k; k++) {
            if (!first)
                luaL_addstring(&b, ", ");
            luaL_addstring(&b, *k);
            first = false;
        }
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
}

void ws_lua_push_key_error(lua_State *L, int t, const char *kind, const char *prefix)
{
    const keyset *ks = find_keyset(L, kind);
    if (t < 0)
        t = lua_gettop(L) + t + 1;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            const char *type = luaL_typename(L, -1);
            lua_pop(L, 1);
            size_t pl = strlen(prefix);
            if (pl > 1) { /* "compress." names the table 'compress' */
                lua_pushlstring(L, prefix, pl - 1);
                lua_pushfstring(L, "'%s' keys must be option names, got a %s", lua_tostring(L, -1),
                                type);
                lua_remove(L, -2);
            } else {
                lua_pushfstring(L, "keys must be option names, got a %s", type);
            }
            return;
        }
        const char *key = lua_tostring(L, -1);
        if (!is_valid(ks, key)) {
            push_unknown(L, ks, key, prefix);
            lua_remove(L, -2);
            return;
        }
    }
    lua_pushnil(L);
}

void ws_lua_check_keys(lua_State *L, int t, int arg, const char *kind, const char *prefix)
{
    if (!t)
        return;
    ws_lua_push_key_error(L, t, kind, prefix);
    if (!lua_isnil(L, -1))
        luaL_argerror(L, arg, lua_tostring(L, -1));
    lua_pop(L, 1);
}

/***
 * Options tables of ws.core.
 * @module ws.core
 */

/***
 * Check a table against the valid keys of an options table.
 * @function check_options
 * @tparam string kind `"connect"`, `"listen"`, `"reconnecting"`, `"tls"`, `"compress"`,
 *  `"session"`, `"backoff"`, `"queue"`, `"send"`, `"client_handshake"`, `"check_response"`,
 *  `"accept"`, `"session_accept"`, `"upgrade_answer"`, `"workers"`, `"redis"` or
 *  `"redis_backoff"`
 * @tparam table tbl the options
 * @tparam[opt=""] string prefix written before the key in the message (`"tls."`)
 * @return nil when every key is valid, else the message naming the first unknown key and
 *  the closest valid one
 * @raise on an unknown kind
 */
static int l_check_options(lua_State *L)
{
    const char *kind = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *prefix = luaL_optstring(L, 3, "");
    ws_lua_push_key_error(L, 2, kind, prefix);
    return 1;
}

/***
 * The valid keys of an options table.
 * @function option_keys
 * @tparam string kind as for `check_options`
 * @treturn {string,...} the keys
 * @raise on an unknown kind
 */
static int l_option_keys(lua_State *L)
{
    const keyset *ks = find_keyset(L, luaL_checkstring(L, 1));
    lua_newtable(L);
    int n = 0;
    for (int l = 0; l < 2 && ks->lists[l]; l++)
        for (const char *const *k = ks->lists[l]; *k; k++) {
            lua_pushstring(L, *k);
            lua_rawseti(L, -2, ++n);
        }
    return 1;
}

void ws_lua_open_optkeys(lua_State *L)
{
    lua_pushcfunction(L, l_check_options);
    lua_setfield(L, -2, "check_options");
    lua_pushcfunction(L, l_option_keys);
    lua_setfield(L, -2, "option_keys");
}
