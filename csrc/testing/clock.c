/* A clock the specs drive, injected into a loop (ws_loop_set_clock), so
 * that timers are checked against loop time, not the machine's speed:
 *   clock = fake_clock(loop[, tick_s])  the loop's time is clock's from now
 *       on, starting where it was; every read of it then adds tick_s
 *   clock:advance(s), clock:now() (seconds), clock:restore() (the loop's
 *       own monotonic clock again) */
#include <stdbool.h>
#include <stdint.h>

#include "lua/lua_compat.h"
#include "lua/lua_loop.h"
#include "testing.h"

#define CLOCK_MT "ws.testing.clock"
#define CLOCKS   "ws.testing.clocks" /* registry: loop -> its clock (weak keys) */

typedef struct fake_clock {
    uint64_t now_ns;
    uint64_t tick_ns;
    bool installed; /* until restored */
} fake_clock;

static uint64_t read_clock(void *ud)
{
    fake_clock *c = ud;
    uint64_t t = c->now_ns;
    c->now_ns += c->tick_ns;
    return t;
}

static const ws_lua_loop_hooks *get_hooks(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, WS_LUA_LOOP_HOOKS);
    const ws_lua_loop_hooks *h = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!h)
        luaL_error(L, "ws.testing: require \"ws.core\" first");
    return h;
}

static uint64_t check_seconds(lua_State *L, int arg)
{
    lua_Number s = luaL_optnumber(L, arg, 0);
    luaL_argcheck(L, s >= 0 && s < 1e9, arg, "seconds must be in 0..1e9");
    return (uint64_t)(s * 1e9 + 0.5);
}

static int l_fake_clock(lua_State *L)
{
    const ws_lua_loop_hooks *h = get_hooks(L);
    ws_loop *loop = h->check(L, 1);
    uint64_t tick = check_seconds(L, 2);
    lua_getfield(L, 1, "now");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    lua_Number start = lua_tonumber(L, -1);
    lua_pop(L, 1);
    fake_clock *c = lua_newuserdata(L, sizeof *c);
    c->now_ns = (uint64_t)(start * 1e9);
    c->tick_ns = tick;
    c->installed = true;
    luaL_getmetatable(L, CLOCK_MT);
    lua_setmetatable(L, -2);
    /* Anchored by the loop: the loop reads it as long as either lives. */
    lua_getfield(L, LUA_REGISTRYINDEX, CLOCKS);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    h->set_clock(loop, read_clock, c);
    return 1;
}

static int l_advance(lua_State *L)
{
    fake_clock *c = luaL_checkudata(L, 1, CLOCK_MT);
    c->now_ns += check_seconds(L, 2);
    return 0;
}

static int l_now(lua_State *L)
{
    fake_clock *c = luaL_checkudata(L, 1, CLOCK_MT);
    lua_pushnumber(L, (lua_Number)c->now_ns / 1e9);
    return 1;
}

/* set_monotonic(loop): the loop's own clock again (raises when closed) */
static int set_monotonic(lua_State *L)
{
    const ws_lua_loop_hooks *h = get_hooks(L);
    h->set_clock(h->check(L, 1), NULL, NULL);
    return 0;
}

static int l_restore(lua_State *L)
{
    fake_clock *c = luaL_checkudata(L, 1, CLOCK_MT);
    if (!c->installed)
        return 0;
    c->installed = false;
    /* The loop it was given to, if that is still open. */
    lua_getfield(L, LUA_REGISTRYINDEX, CLOCKS);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_touserdata(L, -1) == c) {
            lua_pushcfunction(L, set_monotonic);
            lua_pushvalue(L, -3);
            lua_pcall(L, 1, 0, 0); /* a closed loop has no clock left to set */
            lua_pop(L, 3);
            return 0;
        }
        lua_pop(L, 1);
    }
    return 0;
}

void ws_testing_open_clock(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"advance", l_advance}, {"now", l_now}, {"restore", l_restore}, {NULL, NULL}};
    if (luaL_newmetatable(L, CLOCK_MT)) {
        lua_newtable(L);
        ws_setfuncs(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, CLOCKS);
    lua_pushcfunction(L, l_fake_clock);
    lua_setfield(L, -2, "fake_clock");
}
