package = "lua-ws"
version = "scm-1"
source = {
  url = "git+https://github.com/lua-ws/lua-ws.git",
}
description = {
  summary = "WebSocket (RFC 6455) client and server for Lua with a C core",
  detailed = [[
lua-ws is a WebSocket library for Lua: a sans-I/O protocol engine in C
(handshake, framing, masking, UTF-8 validation, close handshake) exposed
through the Lua C API, with a thin Lua layer on top.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  OPENSSL = { header = "openssl/ssl.h" },
  ZLIB = { header = "zlib.h" },
}
build = {
  type = "builtin",
  modules = {
    ["ws"] = "lua/ws/init.lua",
    ["ws.reconnect"] = "lua/ws/reconnect.lua",
    ["ws.core"] = {
      sources = {
        "csrc/buf.c",
        "csrc/conn.c",
        "csrc/deflate.c",
        "csrc/frame.c",
        "csrc/handshake.c",
        "csrc/http.c",
        "csrc/loop.c",
        "csrc/lua_codec.c",
        "csrc/lua_conn.c",
        "csrc/lua_core.c",
        "csrc/lua_handshake.c",
        "csrc/lua_loop.c",
        "csrc/lua_opts.c",
        "csrc/lua_server.c",
        "csrc/lua_session.c",
        "csrc/lua_testing.c",
        "csrc/lua_tls_cache.c",
        "csrc/mask.c",
        "csrc/net.c",
        "csrc/session.c",
        "csrc/tcp_transport.c",
        "csrc/tls.c",
        "csrc/url.c",
        "csrc/utf8.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "$(OPENSSL_INCDIR)", "$(ZLIB_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)", "$(ZLIB_LIBDIR)" },
      libraries = { "ssl", "crypto", "z", "pthread" },
    },
  },
}
