/* ws.keep_large_blocks: an opt-in cache of freed large blocks in
 * front of the Lua state's allocator.
 *
 * LuaJIT's allocator maps every block of 128 KiB or more with mmap and
 * unmaps it when freed, so each large message string is fresh pages that
 * fault in as the payload is copied into them (~256 faults per MiB).  The
 * cache keeps a few such blocks when Lua frees them and hands one back for
 * the next large allocation it can hold.  Every block still comes from and
 * goes back to the state's own allocator (which reads its own block header
 * on free and realloc), so nothing is mixed; the cache only delays frees. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lua_compat.h"
#include "lua_core.h"

#define CACHE_SLOTS 16

typedef struct block_cache {
    lua_Alloc f; /* the allocator underneath, which does all the work */
    void *ud;
    size_t min;   /* blocks at least this large are kept when freed */
    size_t limit; /* at most this many bytes kept */
    size_t kept;
    bool installed; /* somewhere in the state's allocator chain */
    struct {
        void *p;
        size_t size; /* what Lua last asked for: the block holds at least this */
    } slot[CACHE_SLOTS];
} block_cache;

static const char cache_key = 'k'; /* registry: the userdata owning the cache */

/* The kept block that best fits n bytes (at most twice n), or -1. */
static int find_fit(const block_cache *c, size_t n)
{
    int best = -1;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        size_t s = c->slot[i].size;
        if (c->slot[i].p && s >= n && s / 2 <= n && (best < 0 || s < c->slot[best].size))
            best = i;
    }
    return best;
}

static bool keep(block_cache *c, void *p, size_t size)
{
    if (c->kept + size > c->limit)
        return false;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (!c->slot[i].p) {
            c->slot[i].p = p;
            c->slot[i].size = size;
            c->kept += size;
            return true;
        }
    }
    return false;
}

static void drop_all(block_cache *c)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (c->slot[i].p)
            c->f(c->ud, c->slot[i].p, c->slot[i].size, 0);
        c->slot[i].p = NULL;
    }
    c->kept = 0;
}

static void *cached_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    block_cache *c = ud;
    if (!ptr && nsize >= c->min) { /* osize is a type tag here (5.4) */
        int i = find_fit(c, nsize);
        if (i >= 0) {
            void *p = c->slot[i].p;
            c->kept -= c->slot[i].size;
            c->slot[i].p = NULL;
            return p;
        }
    } else if (ptr && nsize == 0 && osize >= c->min && keep(c, ptr, osize)) {
        return NULL;
    }
    void *p = c->f(c->ud, ptr, osize, nsize);
    if (!p && nsize && c->kept) { /* out of memory: what is kept goes first */
        drop_all(c);
        p = c->f(c->ud, ptr, osize, nsize);
    }
    return p;
}

/* Put the allocator underneath back when ours is still the state's: one
 * installed later on top of ours cannot be unwound, so then the cache stays
 * in the chain, empty, passing everything through. */
static void uninstall(lua_State *L, block_cache *c)
{
    void *cur_ud;
    drop_all(c);
    c->limit = 0;
    if (c->installed && lua_getallocf(L, &cur_ud) == cached_alloc && cur_ud == c) {
        lua_setallocf(L, c->f, c->ud);
        c->installed = false;
    }
}

/* The userdata holds a pointer: the cache itself is malloc'd, so that if
 * it cannot leave the chain it outlives the state's collection of it. */
static int cache_gc(lua_State *L)
{
    block_cache **cp = lua_touserdata(L, 1);
    if (*cp) {
        uninstall(L, *cp);
        if (!(*cp)->installed)
            free(*cp);
        *cp = NULL;
    }
    return 0;
}

/***
 * Entry points of ws.core.
 * @module ws.core
 */

/***
 * The same as `ws.keep_large_blocks`.
 * @function keep_large_blocks
 * @tparam integer|false bytes how much freed memory may be kept
 * @tparam[opt=131072] integer min the smallest block kept
 * @treturn integer the bytes of freed blocks held now
 */
static int l_keep_large_blocks(lua_State *L)
{
    size_t limit = 0;
    if (lua_type(L, 1) == LUA_TBOOLEAN) {
        luaL_argcheck(L, !lua_toboolean(L, 1), 1, "a byte count or false expected");
    } else {
        lua_Number n = luaL_checknumber(L, 1);
        luaL_argcheck(L, n >= 0 && n <= (lua_Number)((size_t)1 << 40), 1, "bytes out of range");
        limit = (size_t)n;
    }
    lua_Number m = luaL_optnumber(L, 2, 131072);
    luaL_argcheck(L, m >= 4096 && m <= (lua_Number)((size_t)1 << 40), 2,
                  "min out of range (4096 or more)");
    lua_pushlightuserdata(L, (void *)&cache_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    block_cache **cp = lua_touserdata(L, -1);
    if (limit == 0) {
        if (cp && *cp)
            uninstall(L, *cp);
        ws_pushsize(L, 0);
        return 1;
    }
    if (!cp) {
        cp = lua_newuserdata(L, sizeof *cp);
        *cp = NULL;
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, cache_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_pushlightuserdata(L, (void *)&cache_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    if (!*cp && !(*cp = calloc(1, sizeof **cp)))
        return luaL_error(L, "ws.keep_large_blocks: out of memory");
    block_cache *c = *cp;
    if (!c->installed) {
        c->f = lua_getallocf(L, &c->ud);
        lua_setallocf(L, cached_alloc, c);
        c->installed = true;
    }
    c->min = (size_t)m;
    c->limit = limit;
    if (c->kept > limit)
        drop_all(c);
    ws_pushsize(L, c->kept);
    return 1;
}

void ws_lua_open_alloc(lua_State *L)
{
    lua_pushcfunction(L, l_keep_large_blocks);
    lua_setfield(L, -2, "keep_large_blocks");
}
