/* Byte-paced collector steps for large message strings (LuaJIT).
 *
 * LuaJIT's collector (like Lua 5.1's) takes one step (about 2 KiB of
 * work at the default step multiplier) each time an allocation finds the
 * heap past its threshold, however large that allocation is.  A 1 MiB
 * message string moves a cycle along no more than a 30-byte string does,
 * so with large messages the cycle falls behind and the heap grows far
 * past what the pause setting allows: an echo server holding 190 MB of
 * tables reached 1.2-1.8 GB on 1 MiB messages, and every block past the
 * large-block cache was fresh pages.  Lua 5.2 and later count debt in
 * bytes and pay it all at the next step; nothing to do there.
 *
 * So after a large message's callback, while the heap is past the pause
 * threshold (the heap after the last cycle these steps finished, times
 * the pause setting), lua-ws runs the steps its bytes pay for under byte
 * pacing: lua_gc(LUA_GCSTEP, KiB), whose work the step multiplier
 * scales.  (The call also pays the collector's own debt, which may
 * already count the string: up to twice its bytes.)  Below the
 * threshold nothing is done: on this collector any step starts a cycle,
 * which a resting collector must not be pushed into.  (The collector's
 * own threshold cannot be read; the heap kept here is set at the first
 * large message, refreshed each time these steps finish a cycle and
 * lowered whenever the heap is smaller.)  Nor while the application
 * stopped the collector: a step would restart it.  PUC Lua 5.1 has the
 * same pacing but no way to ask whether the collector was stopped
 * (LUA_GCISRUNNING is LuaJIT 2.1's and 5.2's), so nothing is added
 * there, nor on LuaJIT 2.0. */
#include <limits.h>
#include <stdint.h>

#include "lua_gc_pace.h"

#if LUA_VERSION_NUM == 501 && defined(LUA_GCISRUNNING) /* LuaJIT */

static const char pace_key = 'g'; /* registry: a userdata, the heap (KiB) after the last cycle */

void ws_lua_gc_pace(lua_State *L, size_t len)
{
    if (!lua_gc(L, LUA_GCISRUNNING, 0))
        return; /* stopped by the application: a step would restart it */
    lua_pushlightuserdata(L, (void *)&pace_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    size_t *live = lua_touserdata(L, -1);
    lua_pop(L, 1);
    size_t heap = (size_t)lua_gc(L, LUA_GCCOUNT, 0);
    if (!live) { /* the heap now stands for what the last cycle kept */
        live = lua_newuserdata(L, sizeof *live);
        *live = heap;
        lua_pushlightuserdata(L, (void *)&pace_key);
        lua_insert(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    if (heap < *live)
        *live = heap; /* cycles of the collector's own freed more */
    /* The pause is read by setting it back as it was: 5.1 has no getter.
     * (LuaJIT's is unsigned: one read back below 0 is huge.) */
    int pause = lua_gc(L, LUA_GCSETPAUSE, 200);
    lua_gc(L, LUA_GCSETPAUSE, pause);
    size_t per = *live / 100;
    if (pause < 0 || (pause > 0 && (per > SIZE_MAX / (size_t)pause || heap < per * (size_t)pause)))
        return; /* resting */
    size_t kb = len >> 10;
    if (lua_gc(L, LUA_GCSTEP, kb > INT_MAX ? INT_MAX : (int)kb))
        *live = (size_t)lua_gc(L, LUA_GCCOUNT, 0); /* a cycle ended */
}

#else

void ws_lua_gc_pace(lua_State *L, size_t len)
{
    (void)L;
    (void)len;
}

#endif
