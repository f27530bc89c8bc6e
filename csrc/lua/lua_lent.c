/* Registry anchors of strings lent to connections (lua_lent.h). */
#include "lua_lent.h"

#include <stdint.h>
#include <stdlib.h>

static void give_back(void *ud, uintptr_t token)
{
    ws_lua_lent *lt = ud;
    lt->refs[lt->n++] = (int)token; /* (room: n <= held <= cap) */
    if (lt->given_back)
        lt->given_back(lt);
}

void ws_lua_lent_release(lua_State *L, ws_lua_lent *lt)
{
    for (unsigned i = 0; i < lt->n; i++)
        luaL_unref(L, LUA_REGISTRYINDEX, lt->refs[i]);
    lt->held -= lt->n;
    lt->n = 0;
}

bool ws_lua_lent_anchor(lua_State *L, ws_lua_lent *lt, int idx, ws_lend *lend)
{
    ws_lua_lent_release(L, lt);
    if (lt->held == lt->cap) {
        unsigned cap = lt->cap ? lt->cap * 2 : 8;
        int *refs = realloc(lt->refs, cap * sizeof *refs);
        if (!refs)
            return false;
        lt->refs = refs;
        lt->cap = cap;
    }
    lua_pushvalue(L, idx);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX); /* (raises before anything is sent) */
    lend->release = give_back;
    lend->ud = lt;
    lend->token = (uintptr_t)ref;
    lend->kept = false;
    return true;
}

void ws_lua_lent_settle(lua_State *L, ws_lua_lent *lt, const ws_lend *lend)
{
    if (lend->kept)
        lt->held++;
    else
        luaL_unref(L, LUA_REGISTRYINDEX, (int)lend->token);
}

void ws_lua_lent_free(ws_lua_lent *lt)
{
    free(lt->refs);
    lt->refs = NULL;
    lt->n = lt->cap = lt->held = 0;
}
