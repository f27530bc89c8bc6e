-- The module and source lists between "generated" markers are written by
-- scripts/gen_rockspec.sh from lua/ws/, csrc/ and bin/; the versioned
-- rockspecs beside this one are derived from it by the same script.
package = "lua-ws"
version = "0.1.0-1"
source = {
  url = "git+https://github.com/lua-ws/lua-ws.git",
  tag = "v0.1.0",
}
description = {
  summary = "WebSocket (RFC 6455) client and server for Lua with a C core",
  detailed = [[
lua-ws is a WebSocket library for Lua: a sans-I/O protocol engine in C
(handshake, framing, masking, UTF-8 validation, close handshake,
permessage-deflate) exposed through the Lua C API, an event loop with
non-blocking TCP and TLS through OpenSSL, and a thin Lua layer with
callback, straight-line and coroutine APIs and a reconnecting client.
]],
  homepage = "https://github.com/lua-ws/lua-ws",
  maintainer = "the lua-ws authors",
  license = "MIT",
}
supported_platforms = { "linux", "macosx", "bsd" }
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
  ZLIB = { header = "zlib.h", library = "z" },
  HIREDIS = { header = "hiredis/async.h", library = "hiredis" },
}
build = {
  type = "builtin",
  modules = {
    -- begin generated: lua modules
    ["ws.copas"] = "lua/ws/copas.lua",
    ["ws.cqueues"] = "lua/ws/cqueues.lua",
    ["ws"] = "lua/ws/init.lua",
    ["ws.luv"] = "lua/ws/luv.lua",
    ["ws.reconnect"] = "lua/ws/reconnect.lua",
    ["ws.resty"] = "lua/ws/resty.lua",
    ["ws.workers"] = "lua/ws/workers.lua",
    -- end generated: lua modules
    ["ws.core"] = {
      sources = {
        -- begin generated: c sources
        "csrc/core/buf.c",
        "csrc/core/deflate.c",
        "csrc/core/error.c",
        "csrc/core/frame.c",
        "csrc/core/handshake.c",
        "csrc/core/http.c",
        "csrc/core/mask.c",
        "csrc/core/session.c",
        "csrc/core/url.c",
        "csrc/core/utf8.c",
        "csrc/io/backplane.c",
        "csrc/io/conn.c",
        "csrc/io/fanout.c",
        "csrc/io/loop.c",
        "csrc/io/net.c",
        "csrc/io/pin.c",
        "csrc/io/proc.c",
        "csrc/io/redis_loop.c",
        "csrc/io/shared_frame.c",
        "csrc/io/tcp_transport.c",
        "csrc/io/tls.c",
        "csrc/io/topic.c",
        "csrc/lua/lua_alloc.c",
        "csrc/lua/lua_backplane.c",
        "csrc/lua/lua_codec.c",
        "csrc/lua/lua_conn.c",
        "csrc/lua/lua_core.c",
        "csrc/lua/lua_error.c",
        "csrc/lua/lua_gc_pace.c",
        "csrc/lua/lua_handshake.c",
        "csrc/lua/lua_input.c",
        "csrc/lua/lua_lent.c",
        "csrc/lua/lua_loop.c",
        "csrc/lua/lua_optkeys.c",
        "csrc/lua/lua_opts.c",
        "csrc/lua/lua_redirect.c",
        "csrc/lua/lua_request.c",
        "csrc/lua/lua_route.c",
        "csrc/lua/lua_server.c",
        "csrc/lua/lua_session.c",
        "csrc/lua/lua_tls_cache.c",
        "csrc/lua/lua_topic.c",
        "csrc/lua/lua_workers.c",
        -- end generated: c sources
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "csrc", "$(OPENSSL_INCDIR)", "$(ZLIB_INCDIR)", "$(HIREDIS_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)", "$(ZLIB_LIBDIR)", "$(HIREDIS_LIBDIR)" },
      libraries = { "hiredis", "ssl", "crypto", "z", "pthread" },
    },
  },
  -- begin generated: bin scripts
  install = {
    bin = {
      ["lua-ws"] = "bin/lua-ws",
    },
  },
  -- end generated: bin scripts
}
