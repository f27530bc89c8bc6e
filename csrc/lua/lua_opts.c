#include "lua_opts.h"
#include "lua_optkeys.h"

#include <stdio.h>

#include <stdarg.h>
#include <string.h>

#include "core/session.h"

/* Registry key of {[options table] = {[string] = string}} with weak keys:
 * strings an options table does not hold itself live as long as it. */
static const char anchors_key = 'a';

int ws_lua_opts_table(lua_State *L, int i)
{
    if (lua_isnoneornil(L, i))
        return 0;
    luaL_checktype(L, i, LUA_TTABLE);
    return i < 0 ? lua_gettop(L) + i + 1 : i;
}

int ws_lua_opt_error(lua_State *L, int t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *msg = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return luaL_argerror(L, t, msg);
}

bool ws_lua_is_count(lua_Number n, lua_Number min, lua_Number max)
{
    /* The range is checked before the cast, which would be undefined for
     * NaN or huge values. */
    return n >= min && n <= max && n == (lua_Number)(long long)n;
}

/* Push t[field]; returns its type. */
static int get_opt(lua_State *L, int t, const char *field)
{
    lua_getfield(L, t, field);
    return lua_type(L, -1);
}

/* The string at the top, read as t[field]: returns a pointer that stays
 * valid while t is alive, and pops it. */
static const char *keep_string(lua_State *L, int t, const char *field)
{
    const char *s = lua_tostring(L, -1);
    lua_pushstring(L, field);
    lua_rawget(L, t);
    bool held = lua_type(L, -1) == LUA_TSTRING && lua_tostring(L, -1) == s;
    lua_pop(L, 1);
    if (held) {
        lua_pop(L, 1);
        return s;
    }
    /* Made by __index: anchor one string per distinct value to t. */
    lua_pushlightuserdata(L, (void *)&anchors_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        ws_newweakkeys(L);
        lua_pushlightuserdata(L, (void *)&anchors_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    lua_pushvalue(L, t);
    lua_rawget(L, -2);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, t);
        lua_pushvalue(L, -2);
        lua_rawset(L, -4);
    }
    /* stack: s, registry table, set */
    lua_pushvalue(L, -3);
    lua_rawget(L, -2);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -1);
        lua_rawset(L, -3);
        lua_pushvalue(L, -3);
    }
    s = lua_tostring(L, -1); /* the anchored copy */
    lua_pop(L, 4);
    return s;
}

const char *ws_lua_opt_lstring(lua_State *L, int t, const char *field, const char *def, size_t *len)
{
    if (len)
        *len = def ? strlen(def) : 0;
    if (!t)
        return def;
    int type = get_opt(L, t, field);
    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    if (type != LUA_TSTRING)
        ws_lua_opt_error(L, t, "'%s' must be a string, got %s", field, luaL_typename(L, -1));
    if (len)
        lua_tolstring(L, -1, len);
    return keep_string(L, t, field);
}

const char *ws_lua_opt_string(lua_State *L, int t, const char *field, const char *def)
{
    return ws_lua_opt_lstring(L, t, field, def, NULL);
}

const char *ws_lua_opt_text(lua_State *L, int t, const char *field, const char *def)
{
    size_t len;
    const char *s = ws_lua_opt_lstring(L, t, field, def, &len);
    if (s && s != def && strlen(s) != len)
        ws_lua_opt_error(L, t, "'%s' contains a NUL byte", field);
    return s;
}

bool ws_lua_opt_bool(lua_State *L, int t, const char *field, bool def)
{
    if (!t)
        return def;
    int type = get_opt(L, t, field);
    bool v = def;
    if (type != LUA_TNIL) {
        if (type != LUA_TBOOLEAN)
            ws_lua_opt_error(L, t, "'%s' must be a boolean, got %s", field, luaL_typename(L, -1));
        v = lua_toboolean(L, -1) != 0;
    }
    lua_pop(L, 1);
    return v;
}

/* lua_pushfstring has no precision flags, so format the bounds here. */
static void range_error(lua_State *L, int t, const char *field, const char *what, lua_Number min,
                        lua_Number max)
{
    char msg[160];
    snprintf(msg, sizeof msg, "'%s' must be %s between %.17g and %.17g", field, what, min, max);
    ws_lua_opt_error(L, t, "%s", msg);
}

lua_Number ws_lua_opt_number(lua_State *L, int t, const char *field, lua_Number def, lua_Number min,
                             lua_Number max)
{
    if (!t)
        return def;
    int type = get_opt(L, t, field);
    lua_Number v = def;
    if (type != LUA_TNIL) {
        if (type != LUA_TNUMBER)
            ws_lua_opt_error(L, t, "'%s' must be a number, got %s", field, luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
        if (!(v >= min && v <= max))
            range_error(L, t, field, "a number", min, max);
    }
    lua_pop(L, 1);
    return v;
}

size_t ws_lua_opt_size(lua_State *L, int t, const char *field, size_t def, size_t min, size_t max)
{
    if (!t)
        return def;
    int type = get_opt(L, t, field);
    size_t v = def;
    if (type != LUA_TNIL) {
        lua_Number n = lua_tonumber(L, -1);
        if (type != LUA_TNUMBER || !ws_lua_is_count(n, (lua_Number)min, (lua_Number)max))
            range_error(L, t, field, "an integer", (lua_Number)min, (lua_Number)max);
        v = (size_t)n;
    }
    lua_pop(L, 1);
    return v;
}

/* Push a userdata of size bytes and, above it, the table that is its
 * uservalue; returns the userdata's memory. */
static void *new_anchored_array(lua_State *L, size_t size)
{
    void *p = lua_newuserdata(L, size ? size : 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    ws_setuservalue(L, -3);
    return p;
}

/* Append the value at the top to the anchor table at index anchors and pop
 * it; returns it as a string (numbers are converted first). */
static const char *anchor(lua_State *L, int anchors)
{
    const char *s = lua_tostring(L, -1);
    lua_rawseti(L, anchors, (int)ws_rawlen(L, anchors) + 1);
    return s;
}

/* The value at the top as a NUL-free string, anchored and popped. */
static const char *list_string(lua_State *L, int t, int anchors, const char *field)
{
    size_t len;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (s == NULL || strlen(s) != len)
        ws_lua_opt_error(L, t, "'%s' must be a string or a list of strings without NUL bytes",
                         field);
    return anchor(L, anchors);
}

const char **ws_lua_opt_strings(lua_State *L, int t, const char *field, size_t *n)
{
    *n = 0;
    int type = t ? get_opt(L, t, field) : (lua_pushnil(L), LUA_TNIL);
    if (type == LUA_TNIL)
        return NULL; /* the nil stays as the value pushed: no garbage per handshake */
    if (type != LUA_TSTRING && type != LUA_TTABLE)
        ws_lua_opt_error(L, t, "'%s' must be a string or a list of strings, got %s", field,
                         luaL_typename(L, -1));
    int v = lua_gettop(L);
    size_t len = type == LUA_TSTRING ? 1 : ws_rawlen(L, v);
    const char **arr = new_anchored_array(L, len * sizeof *arr);
    int anchors = lua_gettop(L);
    for (size_t i = 0; i < len; i++) {
        if (type == LUA_TSTRING)
            lua_pushvalue(L, v); /* a single string is a one-element list */
        else
            lua_rawgeti(L, v, (int)i + 1);
        arr[i] = list_string(L, t, anchors, field);
    }
    lua_pop(L, 1);
    lua_remove(L, v);
    *n = len;
    return arr;
}

/* A header name or value at the top of the stack (strings, and numbers
 * for values), anchored and popped. */
static const char *header_part(lua_State *L, int t, int anchors, const char *field, bool is_value)
{
    int type = lua_type(L, -1);
    if (type != LUA_TSTRING && !(is_value && type == LUA_TNUMBER))
        ws_lua_opt_error(L, t, "'%s': header %s, got %s", field,
                         is_value ? "values must be strings or numbers" : "names must be strings",
                         luaL_typename(L, -1));
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (strlen(s) != len)
        ws_lua_opt_error(L, t, "'%s': header %s contains a NUL byte", field,
                         is_value ? "value" : "name");
    return anchor(L, anchors);
}

ws_kv *ws_lua_opt_headers(lua_State *L, int t, const char *field, size_t *n)
{
    *n = 0;
    int type = t ? get_opt(L, t, field) : (lua_pushnil(L), LUA_TNIL);
    if (type != LUA_TNIL && type != LUA_TTABLE)
        ws_lua_opt_error(L, t, "'%s' must be a table, got %s", field, luaL_typename(L, -1));
    int tbl = lua_gettop(L);
    size_t len = 0, cap = 0;
    if (type == LUA_TTABLE) {
        len = ws_rawlen(L, tbl);
        lua_pushnil(L);
        while (lua_next(L, tbl)) {
            cap++;
            lua_pop(L, 1);
        }
    }
    ws_kv *kv = new_anchored_array(L, cap * sizeof *kv);
    int anchors = lua_gettop(L);
    size_t i = 0;
    /* The list part first, in order... */
    for (size_t k = 1; k <= len; k++) {
        lua_rawgeti(L, tbl, (int)k);
        if (lua_type(L, -1) != LUA_TTABLE)
            ws_lua_opt_error(L, t, "'%s' list entries must be {name, value} pairs, got %s", field,
                             luaL_typename(L, -1));
        lua_rawgeti(L, -1, 1);
        kv[i].name = header_part(L, t, anchors, field, false);
        lua_rawgeti(L, -1, 2);
        kv[i].value = header_part(L, t, anchors, field, true);
        i++;
        lua_pop(L, 1);
    }
    /* ...then the name = value entries. */
    if (type == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, tbl)) {
            if (lua_type(L, -2) == LUA_TNUMBER &&
                ws_lua_is_count(lua_tonumber(L, -2), 1, (lua_Number)len)) {
                lua_pop(L, 1);
                continue; /* a pair, done above */
            }
            if (lua_type(L, -2) != LUA_TSTRING || i >= cap)
                ws_lua_opt_error(L, t, "'%s' must map names to values or list {name, value} pairs",
                                 field);
            kv[i].value = header_part(L, t, anchors, field, true);
            lua_pushvalue(L, -1); /* the key stays for lua_next */
            kv[i].name = header_part(L, t, anchors, field, false);
            i++;
        }
    }
    lua_pop(L, 1);
    lua_remove(L, tbl);
    *n = i;
    return kv;
}

/* __index of header tables: names are stored lowercased, any case finds
 * them (req.headers.Authorization). */
static int headers_index(lua_State *L)
{
    size_t n;
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &n) : NULL;
    if (!k)
        return 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i++)
        luaL_addchar(&b, k[i] >= 'A' && k[i] <= 'Z' ? (char)(k[i] + 32) : k[i]);
    luaL_pushresult(&b);
    lua_rawget(L, 1);
    return 1;
}

static const char headers_mt_key = 'h';

static void set_headers_mt(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&headers_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, headers_index);
        lua_setfield(L, -2, "__index");
        lua_pushlightuserdata(L, (void *)&headers_mt_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    lua_setmetatable(L, -2);
}

void ws_lua_push_headers(lua_State *L, const ws_http_head *head)
{
    lua_createtable(L, 0, (int)head->num_headers);
    int tbl = lua_gettop(L);
    for (size_t i = 0; i < head->num_headers; i++) {
        const ws_http_header *h = &head->headers[i];
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t k = 0; k < h->name_len; k++) {
            char c = h->name[k];
            luaL_addchar(&b, c >= 'A' && c <= 'Z' ? (char)(c + 32) : c);
        }
        luaL_pushresult(&b);
        lua_pushvalue(L, -1);
        lua_rawget(L, tbl);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, h->value, h->value_len);
        } else {
            /* Repeated headers join with ", " (RFC 9110 5.3); cookies with
             * "; ", the separator of the Cookie header (RFC 6265 5.4). */
            bool cookie = ws_http_ieq(h->name, h->name_len, "Cookie", 6);
            if (cookie)
                lua_pushliteral(L, "; ");
            else
                lua_pushliteral(L, ", ");
            lua_pushlstring(L, h->value, h->value_len);
            lua_concat(L, 3);
        }
        lua_rawset(L, tbl);
    }
    set_headers_mt(L);
}

/* ---- compress ------------------------------------------------------------ */

/* A whole number in [min, max] from the compress table at c; true (when
 * allow_true) gives WS_PMD_BITS_NOVALUE. */
static lua_Number compress_number(lua_State *L, int t, int c, const char *field, lua_Number def,
                                  lua_Number min, lua_Number max, bool allow_true)
{
    lua_getfield(L, c, field);
    lua_Number v = def;
    if (allow_true && lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
        v = WS_PMD_BITS_NOVALUE;
    } else if (!lua_isnil(L, -1)) {
        lua_Number n = lua_tonumber(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER || !ws_lua_is_count(n, min, max)) {
            char msg[160];
            snprintf(msg, sizeof msg, "'compress.%s' must be an integer between %.17g and %.17g%s",
                     field, min, max, allow_true ? " or true" : "");
            ws_lua_opt_error(L, t, "%s", msg);
        }
        v = n;
    }
    lua_pop(L, 1);
    return v;
}

static bool compress_bool(lua_State *L, int t, int c, const char *field)
{
    lua_getfield(L, c, field);
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
        ws_lua_opt_error(L, t, "'compress.%s' must be a boolean, got %s", field,
                         luaL_typename(L, -1));
    bool v = lua_toboolean(L, -1) != 0;
    lua_pop(L, 1);
    return v;
}

void ws_lua_opt_compress(lua_State *L, int t, bool server, bool negotiated, ws_deflate_config *cfg)
{
    ws_deflate_config_init(cfg);
    if (!t)
        return;
    lua_getfield(L, t, "compress");
    int c = lua_gettop(L);
    if (lua_isnil(L, c) || (lua_isboolean(L, c) && !lua_toboolean(L, c))) {
        lua_pop(L, 1);
        return;
    }
    cfg->enabled = true;
    if (lua_isboolean(L, c)) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, c))
        ws_lua_opt_error(L, t, "'compress' must be a boolean or a table, got %s",
                         luaL_typename(L, c));
    ws_lua_check_keys(L, c, t, "compress", "compress.");
    const lua_Number size_max = (lua_Number)((size_t)1 << 53);
    cfg->threshold = (size_t)compress_number(L, t, c, "threshold", 64, 0, size_max, false);
    cfg->level = (int8_t)compress_number(L, t, c, "level", -1, -1, 9, false);
    cfg->mem_level = (uint8_t)compress_number(L, t, c, "mem_level", 8, 1, 9, false);
    cfg->window_bits = (uint8_t)compress_number(L, t, c, "window_bits", 15, 9, 15, false);
    cfg->server_no_context_takeover = compress_bool(L, t, c, "server_no_context_takeover");
    cfg->client_no_context_takeover = compress_bool(L, t, c, "client_no_context_takeover");
    if (compress_bool(L, t, c, "no_context_takeover")) {
        if (server)
            cfg->server_no_context_takeover = true;
        else
            cfg->client_no_context_takeover = true;
    }
    /* Our own side's window must be one zlib can compress with (9..15);
     * the peer's may be 8.  Already negotiated values may be anything. */
    lua_Number own_min = negotiated ? 8 : 9;
    lua_Number smin = server ? own_min : 8, cmin = server ? 8 : own_min;
    cfg->server_max_window_bits =
        (uint8_t)compress_number(L, t, c, "server_max_window_bits", 0, smin, 15, false);
    lua_Number cm =
        compress_number(L, t, c, "client_max_window_bits", 0, cmin, 15, !server && !negotiated);
    if (cm == WS_PMD_BITS_NOVALUE)
        cfg->client_max_window_bits_offer = true;
    else
        cfg->client_max_window_bits = (uint8_t)cm;
    lua_pop(L, 1);
}

bool ws_lua_check_kind(lua_State *L, int i)
{
    /* Checked on every send: compare the string itself before falling back
     * to luaL_checkoption, which also words the error. */
    size_t n;
    int t = lua_type(L, i);
    if (t == LUA_TNONE || t == LUA_TNIL)
        return false;
    const char *k = t == LUA_TSTRING ? lua_tolstring(L, i, &n) : NULL;
    if (k && n == 6 && memcmp(k, "binary", 6) == 0)
        return true;
    if (k && n == 4 && memcmp(k, "text", 4) == 0)
        return false;
    if (!k) /* every Lua's luaL_checkoption would not refuse a boolean */
        luaL_argerror(
            L, i,
            lua_pushfstring(L, "\"text\" or \"binary\" expected, got %s", luaL_typename(L, i)));
    static const char *const kinds[] = {"text", "binary", NULL};
    return luaL_checkoption(L, i, "text", kinds) == 1;
}

void ws_lua_read_head_limits(lua_State *L, int t, size_t *max_head, size_t *max_headers)
{
    *max_head = ws_lua_opt_size(L, t, "max_head", *max_head, 1, WS_LUA_MAX_HEAD_MAX);
    *max_headers = ws_lua_opt_size(L, t, "max_headers", *max_headers, 1, WS_LUA_MAX_HEADERS_MAX);
}

void ws_lua_read_limits(lua_State *L, int t, ws_session_config *scfg)
{
    const size_t size_max = (size_t)1 << 53;
    scfg->max_message =
        ws_lua_opt_size(L, t, "max_message", (size_t)scfg->max_message, 1, size_max);
    scfg->max_frame = ws_lua_opt_size(L, t, "max_frame", (size_t)scfg->max_message, 1, size_max);
    size_t max_head = scfg->max_head, max_headers = scfg->max_headers;
    ws_lua_read_head_limits(L, t, &max_head, &max_headers);
    scfg->max_head = max_head;
    scfg->max_headers = (uint16_t)max_headers;
}

int ws_lua_send_compress(lua_State *L, int i)
{
    if (lua_isnoneornil(L, i))
        return WS_SEND_AUTO;
    if (!lua_istable(L, i))
        luaL_argerror(L, i, lua_pushfstring(L, "table expected, got %s", luaL_typename(L, i)));
    ws_lua_check_keys(L, i, i, "send", "");
    lua_getfield(L, i, "compress");
    int r = WS_SEND_AUTO;
    if (lua_isboolean(L, -1))
        r = lua_toboolean(L, -1) ? WS_SEND_COMPRESS : WS_SEND_NO_COMPRESS;
    else if (!lua_isnil(L, -1))
        luaL_argerror(L, i, "'compress' must be a boolean");
    lua_pop(L, 1);
    return r;
}
