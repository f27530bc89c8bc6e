#include "lua_opts.h"

#include <ctype.h>
#include <string.h>

int ws_lua_opts_table(lua_State *L, int i)
{
    if (lua_isnoneornil(L, i))
        return 0;
    luaL_checktype(L, i, LUA_TTABLE);
    return i < 0 ? lua_gettop(L) + i + 1 : i;
}

static int bad_option(lua_State *L, const char *field, const char *expected)
{
    return luaL_error(L, "bad option '%s' (%s expected, got %s)", field, expected,
                      luaL_typename(L, -1));
}

const char *ws_lua_opt_string(lua_State *L, int t, const char *field, const char *def)
{
    if (!t)
        return def;
    lua_getfield(L, t, field);
    const char *v = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            bad_option(L, field, "string");
        v = lua_tostring(L, -1);
    }
    /* The string stays referenced by the options table, so it outlives the
     * pop for as long as the caller uses it. */
    lua_pop(L, 1);
    return v;
}

bool ws_lua_opt_bool(lua_State *L, int t, const char *field, bool def)
{
    if (!t)
        return def;
    lua_getfield(L, t, field);
    bool v = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            bad_option(L, field, "boolean");
        v = lua_toboolean(L, -1) != 0;
    }
    lua_pop(L, 1);
    return v;
}

lua_Number ws_lua_opt_number(lua_State *L, int t, const char *field, lua_Number def,
                             lua_Number min, lua_Number max)
{
    if (!t)
        return def;
    lua_getfield(L, t, field);
    lua_Number v = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            bad_option(L, field, "number");
        v = lua_tonumber(L, -1);
        if (!(v >= min && v <= max))
            luaL_error(L, "bad option '%s' (must be between %.0f and %.0f)", field, min, max);
    }
    lua_pop(L, 1);
    return v;
}

const char **ws_lua_opt_strings(lua_State *L, int t, const char *field, size_t *n)
{
    *n = 0;
    if (t)
        lua_getfield(L, t, field);
    else
        lua_pushnil(L);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newuserdata(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        /* A single string is a one-element list. */
        const char **arr = lua_newuserdata(L, sizeof(char *));
        arr[0] = lua_tostring(L, -2);
        lua_remove(L, -2); /* t[field] keeps the string alive */
        *n = 1;
        return arr;
    }
    if (lua_type(L, -1) != LUA_TTABLE)
        bad_option(L, field, "string or list of strings");
    size_t len = ws_rawlen(L, -1);
    const char **arr = lua_newuserdata(L, (len ? len : 1) * sizeof(char *));
    for (size_t i = 0; i < len; i++) {
        lua_rawgeti(L, -2, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "bad option '%s' (element %d is not a string)", field, (int)i + 1);
        arr[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    lua_remove(L, -2);
    *n = len;
    return arr;
}

ws_kv *ws_lua_opt_headers(lua_State *L, int t, const char *field, size_t *n)
{
    *n = 0;
    if (t)
        lua_getfield(L, t, field);
    else
        lua_pushnil(L);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newuserdata(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TTABLE)
        bad_option(L, field, "table");
    int tbl = lua_gettop(L);
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, tbl)) {
        count++;
        lua_pop(L, 1);
    }
    ws_kv *arr = lua_newuserdata(L, (count ? count : 1) * sizeof(ws_kv));
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, tbl)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
            arr[i].name = lua_tostring(L, -2);
            arr[i].value = lua_tostring(L, -1);
        } else if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TTABLE) {
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "bad option '%s' (pairs must be {name, value} strings)", field);
            /* The pair table, held by the headers table, keeps both alive. */
            arr[i].name = lua_tostring(L, -2);
            arr[i].value = lua_tostring(L, -1);
            lua_pop(L, 2);
        } else {
            luaL_error(L, "bad option '%s' (expected name = value strings or {name, value} pairs)",
                       field);
        }
        i++;
        lua_pop(L, 1);
    }
    lua_remove(L, tbl);
    *n = count;
    return arr;
}

void ws_lua_push_headers(lua_State *L, const ws_http_head *head)
{
    lua_createtable(L, 0, (int)head->num_headers);
    int tbl = lua_gettop(L);
    for (size_t i = 0; i < head->num_headers; i++) {
        const ws_http_header *h = &head->headers[i];
        char name[256];
        size_t n = h->name_len < sizeof name ? h->name_len : sizeof name;
        for (size_t k = 0; k < n; k++)
            name[k] = (char)tolower((unsigned char)h->name[k]);
        lua_pushlstring(L, name, n);
        lua_pushvalue(L, -1);
        lua_rawget(L, tbl);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, h->value, h->value_len);
        } else {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, h->value, h->value_len);
            lua_concat(L, 3);
        }
        lua_rawset(L, tbl);
    }
}
