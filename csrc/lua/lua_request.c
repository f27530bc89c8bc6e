/* ws_lua_push_request: see lua_request.h. */
#include "lua_request.h"

#include <string.h>

#include "lua_opts.h"

static void set_lstring(lua_State *L, const char *field, const char *s, size_t n)
{
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, field);
}

/* Every element of every header called name, as a list. */
static void push_elements(lua_State *L, const ws_http_head *h, const char *name)
{
    size_t name_len = strlen(name);
    int n = 0;
    lua_newtable(L);
    for (size_t i = 0; i < h->num_headers; i++) {
        const ws_http_header *hd = &h->headers[i];
        if (!ws_http_ieq(hd->name, hd->name_len, name, name_len))
            continue;
        size_t pos = 0, el;
        const char *e;
        while (ws_http_next_element(hd->value, hd->value_len, &pos, &e, &el)) {
            lua_pushlstring(L, e, el);
            lua_rawseti(L, -2, ++n);
        }
    }
}

/* Every non-empty value of the headers called name joined with ", ", or
 * nil. */
static void push_joined(lua_State *L, const ws_http_head *h, const char *name)
{
    size_t name_len = strlen(name);
    luaL_Buffer b;
    bool any = false;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < h->num_headers; i++) {
        const ws_http_header *hd = &h->headers[i];
        if (!ws_http_ieq(hd->name, hd->name_len, name, name_len) || hd->value_len == 0)
            continue;
        if (any)
            luaL_addlstring(&b, ", ", 2);
        luaL_addlstring(&b, hd->value, hd->value_len);
        any = true;
    }
    luaL_pushresult(&b);
    if (!any) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

void ws_lua_push_request(lua_State *L, const ws_http_head *h, const ws_server_request *r)
{
    luaL_checkstack(L, 8, "ws: request");
    lua_createtable(L, 0, 12);
    set_lstring(L, "method", h->method, h->method_len);
    if (r) {
        set_lstring(L, "path", r->path, r->path_len);
        if (r->query)
            set_lstring(L, "query", r->query, r->query_len);
        set_lstring(L, "key", r->key, r->key_len);
        lua_pushinteger(L, (lua_Integer)r->head_len);
        lua_setfield(L, -2, "head_length");
    } else {
        const char *q = memchr(h->target, '?', h->target_len);
        size_t plen = q ? (size_t)(q - h->target) : h->target_len;
        set_lstring(L, "path", h->target, plen);
        if (q)
            set_lstring(L, "query", q + 1, h->target_len - plen - 1);
    }
    ws_lua_push_headers(L, h);
    lua_getfield(L, -1, "origin");
    lua_setfield(L, -3, "origin");
    lua_setfield(L, -2, "headers");
    push_elements(L, h, "Sec-WebSocket-Protocol");
    lua_setfield(L, -2, "protocols");
    push_joined(L, h, "Sec-WebSocket-Extensions");
    lua_setfield(L, -2, "extensions");
}
