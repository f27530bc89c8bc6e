/* Frame, mask and UTF-8 helpers for hosts that do their own framing, and
 * for tests that need to build frames the session would never send. */
#include <stdlib.h>
#include <string.h>

#include "core/frame.h"
#include "lua_compat.h"
#include "lua_error.h"
#include "lua_core.h"
#include "lua_opts.h"
#include "core/mask.h"
#include "core/utf8.h"

#define VALIDATOR_MT "ws.core.utf8_validator"

/***
 * ws.core: the C module under ws. Its session, loop, connections and servers
 * are documented in module ws; here are the entry points ws wraps, the
 * handshake helpers and the codecs, for hosts that do their own I/O.
 * @module ws.core
 */

/***
 * One frame's bytes (any opcode, reserved bits, masking), for hosts that do
 * their own framing and for tests.
 * @function build_frame
 * @tparam table frame `{opcode = 1, payload = "", fin = true, rsv1, rsv2, rsv3, mask = 4-byte
 *  key}`
 * @treturn string the frame
 */
static int l_build_frame(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    ws_frame_header h;
    memset(&h, 0, sizeof h);
    h.opcode = (uint8_t)ws_lua_opt_number(L, 1, "opcode", 1, 0, 15);
    h.fin = ws_lua_opt_bool(L, 1, "fin", true);
    h.rsv = (uint8_t)((ws_lua_opt_bool(L, 1, "rsv1", false) ? WS_RSV1 : 0) |
                      (ws_lua_opt_bool(L, 1, "rsv2", false) ? WS_RSV2 : 0) |
                      (ws_lua_opt_bool(L, 1, "rsv3", false) ? WS_RSV3 : 0));
    const char *key = ws_lua_opt_string(L, 1, "mask", NULL);
    lua_getfield(L, 1, "payload");
    size_t n = 0;
    const char *payload = "";
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "bad option 'payload' (string expected, got %s)",
                              luaL_typename(L, -1));
        payload = lua_tolstring(L, -1, &n);
    }
    if (key) {
        lua_getfield(L, 1, "mask");
        size_t kn = ws_rawlen(L, -1);
        lua_pop(L, 1);
        if (kn != 4)
            return luaL_error(L, "bad option 'mask' (4 bytes expected)");
        h.masked = true;
        memcpy(h.mask, key, 4);
    }
    h.len = n;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    size_t hl = ws_frame_encode(hdr, &h);
    luaL_addlstring(&b, (const char *)hdr, hl);
    if (h.masked) {
        uint8_t *tmp = malloc(n ? n : 1);
        if (!tmp)
            return ws_lua_nomem(L, "frame");
        ws_mask_copy(tmp, (const uint8_t *)payload, n, h.mask, 0);
        luaL_addlstring(&b, (const char *)tmp, n);
        free(tmp);
    } else {
        luaL_addlstring(&b, payload, n);
    }
    luaL_pushresult(&b);
    return 1;
}

static void set_bool(lua_State *L, const char *k, bool v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/***
 * Parse a frame header.
 * @function parse_frame_header
 * @tparam string bytes the start of a frame
 * @treturn table `{fin, rsv1, rsv2, rsv3, opcode, masked, mask, length, header_len}`, or nil
 *  when incomplete
 */
static int l_parse_frame_header(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    ws_frame_header h;
    int r = ws_frame_decode((const uint8_t *)p, n, &h);
    if (r == WS_E_NEED_MORE) {
        lua_pushnil(L);
        return 1;
    }
    if (r < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "frame length has the most significant bit set");
        return 2;
    }
    lua_createtable(L, 0, 9);
    set_bool(L, "fin", h.fin);
    set_bool(L, "rsv1", (h.rsv & WS_RSV1) != 0);
    set_bool(L, "rsv2", (h.rsv & WS_RSV2) != 0);
    set_bool(L, "rsv3", (h.rsv & WS_RSV3) != 0);
    set_bool(L, "masked", h.masked);
    lua_pushinteger(L, h.opcode);
    lua_setfield(L, -2, "opcode");
    if (h.masked) {
        lua_pushlstring(L, (const char *)h.mask, 4);
        lua_setfield(L, -2, "mask");
    }
    ws_pushsize(L, h.len);
    lua_setfield(L, -2, "length");
    lua_pushinteger(L, r);
    lua_setfield(L, -2, "header_len");
    return 1;
}

/***
 * XOR masking (RFC 6455 section 5.3).
 * @function mask
 * @tparam string data the bytes
 * @tparam string key 4-byte masking key
 * @tparam[opt=0] integer offset position of `data` in the payload
 * @treturn string the masked (or unmasked) bytes
 */
static int l_mask(lua_State *L)
{
    size_t n, kn;
    const char *p = luaL_checklstring(L, 1, &n);
    const char *key = luaL_checklstring(L, 2, &kn);
    if (kn != 4)
        return luaL_argerror(L, 2, "4-byte key expected");
    lua_Number off = luaL_optnumber(L, 3, 0);
    if (off < 0)
        return luaL_argerror(L, 3, "offset must not be negative");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    uint8_t *tmp = malloc(n ? n : 1);
    if (!tmp)
        return ws_lua_nomem(L, "mask");
    ws_mask_copy(tmp, (const uint8_t *)p, n, (const uint8_t *)key, (uint64_t)off);
    luaL_addlstring(&b, (const char *)tmp, n);
    free(tmp);
    luaL_pushresult(&b);
    return 1;
}

/***
 * Whether a string is valid UTF-8.
 * @function utf8_valid
 * @tparam string s
 * @treturn bool
 */
static int l_utf8_valid(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    lua_pushboolean(L, ws_utf8_valid((const uint8_t *)p, n));
    return 1;
}

typedef struct validator {
    ws_utf8 u;
    bool failed;
} validator;

/***
 * An incremental UTF-8 validator, for text arriving in parts.
 * @function utf8_validator
 * @treturn Validator
 */
static int l_utf8_validator(lua_State *L)
{
    validator *v = lua_newuserdata(L, sizeof *v);
    ws_utf8_init(&v->u);
    v->failed = false;
    luaL_getmetatable(L, VALIDATOR_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/***
 * An incremental UTF-8 validator from `utf8_validator`.
 * @type Validator
 */

/***
 * Check the next part.
 * @function Validator:feed
 * @tparam string part
 * @treturn bool false as soon as the text cannot be valid UTF-8
 */
static int l_validator_feed(lua_State *L)
{
    validator *v = luaL_checkudata(L, 1, VALIDATOR_MT);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    if (!v->failed && ws_utf8_feed(&v->u, (const uint8_t *)p, n) == WS_UTF8_INVALID)
        v->failed = true;
    lua_pushboolean(L, !v->failed);
    return 1;
}

/***
 * Whether the text ends on a whole character and was valid.
 * @function Validator:finish
 * @treturn bool
 */
static int l_validator_finish(lua_State *L)
{
    validator *v = luaL_checkudata(L, 1, VALIDATOR_MT);
    lua_pushboolean(L, !v->failed && v->u.need == 0);
    return 1;
}

static const luaL_Reg validator_methods[] = {
    {"feed", l_validator_feed}, {"finish", l_validator_finish}, {NULL, NULL}};

static const luaL_Reg codec_funcs[] = {
    {"build_frame", l_build_frame}, {"parse_frame_header", l_parse_frame_header}, {"mask", l_mask},
    {"utf8_valid", l_utf8_valid},   {"utf8_validator", l_utf8_validator},         {NULL, NULL}};

void ws_lua_open_codec(lua_State *L)
{
    if (luaL_newmetatable(L, VALIDATOR_MT)) {
        lua_newtable(L);
        ws_setfuncs(L, validator_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    ws_setfuncs(L, codec_funcs);
}
