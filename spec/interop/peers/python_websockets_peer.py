# Python `websockets` (Debian python3-websockets, asyncio API of 10.x) peer for
# spec/interop (conventions in spec/interop/scenarios.lua).
#   /usr/bin/python3 python_websockets_peer.py server [CERT KEY]
#   /usr/bin/python3 python_websockets_peer.py client WS_BASE WSS_BASE CAFILE SCENARIO...
import asyncio
import http
import re
import ssl
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def payload(n, kind):
    if kind == "text":
        return "".join(chr(33 + (i % 94)) for i in range(94)) * (n // 94) + \
            "".join(chr(33 + (i % 94)) for i in range(n % 94))
    unit = bytes(((i * 7) + 3) % 256 for i in range(256))
    return (unit * (n // 256 + 1))[:n]


UTF8 = "a\u00e9\u2603\U0001D11E" * 1000
OPTS = dict(max_size=None, max_queue=None, compression=None)
# The server accepts permessage-deflate when offered (websockets' default
# settings: server_max_window_bits=12, client_max_window_bits=12 when offered).
SERVER_OPTS = dict(max_size=None, max_queue=None, compression="deflate")


def json_payload(n):
    parts, length, i = ["["], 1, 0
    while length < n:
        i += 1
        r = '{"id":%d,"name":"user-%d","active":%s,"score":%d},' % (
            i, i, "true" if i % 2 == 0 else "false", (i * 37) % 100)
        parts.append(r)
        length += len(r)
    return "".join(parts)[:n]


def window_payload():
    b, x = bytearray(3000), 1
    for i in range(3000):
        x = (x * 75 + 74) % 65537
        b[i] = x & 255
    return bytes(b) * 20


def counting(base):
    """A protocol class that counts the bytes read and written on the wire."""
    class Counting(base):
        bytes_in = 0
        bytes_out = 0

        def connection_made(self, transport):
            write = transport.write

            def counted(data):
                self.bytes_out += len(data)
                write(data)
            try:
                transport.write = counted
            except AttributeError:
                pass
            super().connection_made(transport)

        def data_received(self, data):
            self.bytes_in += len(data)
            super().data_received(data)
    return Counting


def negotiated(ws):
    return ws.response_headers.get("Sec-WebSocket-Extensions", "")


async def handler(ws, path=None):
    path = ws.path
    try:
        async for data in ws:
            if isinstance(data, str):
                m = re.match(r"^close:(\d+):(.*)$", data, re.S)
                if m:
                    await ws.close(int(m.group(1)), m.group(2))
                    break
                m = re.match(r"^frag:(\w+):(\d+):(\d+)$", data)
                if m:
                    p = payload(int(m.group(2)), m.group(1))
                    parts = int(m.group(3))
                    step = -(-len(p) // parts)
                    await ws.send([p[i * step:(i + 1) * step] for i in range(parts)])
                    continue
                m = re.match(r"^ping:(.*)$", data, re.S)
                if m:
                    waiter = await ws.ping(m.group(1))
                    await waiter
                    await ws.send("pong:" + m.group(1))
                    continue
                m = re.match(r"^header:(.*)$", data, re.S)
                if m:
                    await ws.send(ws.request_headers.get(m.group(1), ""))
                    continue
                if data == "ext:":
                    await ws.send(negotiated(ws))
                    continue
                if data == "stats:":
                    await ws.send("in=%d out=%d" % (ws.bytes_in, ws.bytes_out))
                    continue
            await ws.send(data)
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    out("CLOSE %s %s %s" % (path, ws.close_code, ws.close_reason))


async def reject(path, headers):
    if path == "/reject":
        return http.HTTPStatus.FORBIDDEN, [], b"rejected\n"
    return None


async def server(cert=None, key=None):
    proto = counting(websockets.WebSocketServerProtocol)
    s = await websockets.serve(handler, "127.0.0.1", 0, subprotocols=["chat.v1"], process_request=reject,
                               create_protocol=proto, **SERVER_OPTS)
    out("PORT %d" % s.sockets[0].getsockname()[1])
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        t = await websockets.serve(handler, "127.0.0.1", 0, subprotocols=["chat.v1"], process_request=reject,
                                   ssl=ctx, create_protocol=proto, **SERVER_OPTS)
        out("TLSPORT %d" % t.sockets[0].getsockname()[1])
    await asyncio.Future()


def eq(got, want, what="message"):
    if got != want:
        raise AssertionError("%s differs (%r... / %r...)" % (what, got[:20], want[:20]))


async def close_ok(ws):
    await ws.close(1000, "done")
    if ws.close_code != 1000:
        raise AssertionError("close code %s" % ws.close_code)


def has(ext, what):
    return re.search(r"(^|[ ;,])%s($|[ ;,=])" % re.escape(what), ext) is not None


async def run_deflate(name, base):
    """The compressed column: permessage-deflate offered, checked on this side."""
    import os
    url = os.environ.get("INTEROP_BASE_" + name, base) + "/" + name
    params = {}
    if name == "deflate_no_context_takeover":
        params = dict(server_no_context_takeover=True, client_no_context_takeover=True)
    elif name == "deflate_window_bits_10":
        params = dict(server_max_window_bits=10)
    factory = ClientPerMessageDeflateFactory(client_max_window_bits=True, **params)
    kw = dict(OPTS, extensions=[factory], create_protocol=counting(websockets.WebSocketClientProtocol))
    async with websockets.connect(url, **kw) as ws:
        ext = negotiated(ws)
        out("EXT %s %s" % (name, ext))
        if not has(ext, "permessage-deflate") or not ws.extensions:
            raise AssertionError("not negotiated: %r" % ext)

        async def echo(data):
            await ws.send(data)
            got = await ws.recv()
            eq(type(got), type(data), "kind")
            eq(got, data)

        m = re.match(r"^deflate_(text|binary)_(\d+|8MiB)$", name)
        if m:
            await echo(payload(8 * 1024 * 1024 if m.group(2) == "8MiB" else int(m.group(2)), m.group(1)))
        elif name == "deflate_utf8":
            await echo(UTF8)
        elif name == "deflate_json_1MiB":
            i0, o0 = ws.bytes_in, ws.bytes_out
            await echo(json_payload(1024 * 1024))
            i, o = ws.bytes_in - i0, ws.bytes_out - o0
            if not 0 < i <= 262144 or not 0 < o <= 262144:
                raise AssertionError("not compressed on the wire: read %d wrote %d" % (i, o))
        elif name == "deflate_fragments_from_lua":
            await ws.send("frag:binary:300:3")
            eq(await ws.recv(), payload(300, "binary"))
            await ws.send("frag:text:65536:4")
            eq(await ws.recv(), payload(65536, "text"))
        elif name == "deflate_fragments_from_peer":
            p = payload(300, "text")
            await ws.send([p[0:100], p[100:200], p[200:]])
            eq(await ws.recv(), p)
        elif name == "deflate_burst":
            for i in range(1, 1001):
                await ws.send("burst %d" % i)
            for i in range(1, 1001):
                eq(await ws.recv(), "burst %d" % i)
        elif name == "deflate_close_from_lua":
            await ws.send("close:4002:bye from lua")
            await ws.wait_closed()
            eq((ws.close_code, ws.close_reason), (4002, "bye from lua"), "close")
            return
        elif name == "deflate_close_from_peer":
            await echo(payload(1000, "text"))
            await ws.close(4001, "bye from peer")
            eq((ws.close_code, ws.close_reason), (4001, "bye from peer"), "close")
            return
        elif name == "deflate_no_context_takeover":
            if not has(ext, "server_no_context_takeover") or not has(ext, "client_no_context_takeover"):
                raise AssertionError("extensions %r" % ext)
            for _ in range(3):
                await echo(payload(20000, "text"))
        elif name == "deflate_window_bits_10":
            if not has(ext, "server_max_window_bits=10") or not has(ext, "client_max_window_bits=10"):
                raise AssertionError("extensions %r" % ext)
            await echo(window_payload())
            await echo(json_payload(100000))
        else:
            raise NotImplementedError("unknown scenario")
        await close_ok(ws)


async def run(name, base, wss_base, cafile):
    if name.startswith("deflate_"):
        return await run_deflate(name, base)
    url = base + "/" + name
    m = re.match(r"^(text|binary)_(\w+)$", name)
    if m:
        n = 8 * 1024 * 1024 if m.group(2) == "8MiB" else int(m.group(2))
        async with websockets.connect(url, **OPTS) as ws:
            want = payload(n, m.group(1))
            await ws.send(want)
            got = await ws.recv()
            eq(type(got), type(want), "kind")
            eq(got, want)
            await close_ok(ws)
        return
    if name == "reject":
        try:
            async with websockets.connect(url, **OPTS):
                pass
        except websockets.InvalidStatusCode as e:
            eq(e.status_code, 403, "status")
            return
        raise AssertionError("the handshake was accepted")
    if name == "wss":
        ctx = ssl.create_default_context(cafile=cafile)
        async with websockets.connect(wss_base + "/wss", ssl=ctx, **OPTS) as ws:
            await ws.send("hello tls")
            eq(await ws.recv(), "hello tls")
            await close_ok(ws)
        return
    kw = dict(OPTS)
    if name == "subprotocol":
        kw["subprotocols"] = ["x.unknown", "chat.v1"]
    if name == "headers":
        kw["extra_headers"] = {"X-Interop": "interop-value-42"}
    async with websockets.connect(url, **kw) as ws:
        if name == "utf8":
            await ws.send(UTF8)
            eq(await ws.recv(), UTF8)
            await close_ok(ws)
        elif name == "fragments_from_lua":
            await ws.send("frag:binary:300:3")
            eq(await ws.recv(), payload(300, "binary"))
            await close_ok(ws)
        elif name == "fragments_from_peer":
            p = payload(300, "text")
            await ws.send([p[0:100], p[100:200], p[200:]])
            eq(await ws.recv(), p)
            await close_ok(ws)
        elif name == "ping":
            waiter = await ws.ping("ping-from-peer")
            await asyncio.wait_for(waiter, 10)  # resolves only for a pong with this payload
            await ws.send("ping:ping-from-lua")
            eq(await ws.recv(), "pong:ping-from-lua")
            await close_ok(ws)
        elif name == "close_from_lua":
            await ws.send("close:4002:bye from lua")
            await ws.wait_closed()
            eq((ws.close_code, ws.close_reason), (4002, "bye from lua"), "close")
        elif name == "close_from_peer":
            await ws.close(4001, "bye from peer")
            eq((ws.close_code, ws.close_reason), (4001, "bye from peer"), "close")
        elif name == "subprotocol":
            eq(ws.subprotocol, "chat.v1", "subprotocol")
            await close_ok(ws)
        elif name == "headers":
            await ws.send("header:x-interop")
            eq(await ws.recv(), "interop-value-42")
            await close_ok(ws)
        elif name == "burst":
            for i in range(1, 1001):
                await ws.send("burst %d" % i)
            for i in range(1, 1001):
                eq(await ws.recv(), "burst %d" % i)
            await close_ok(ws)
        else:
            raise NotImplementedError("unknown scenario")


async def client(base, wss_base, cafile, names):
    for name in names:
        try:
            await asyncio.wait_for(run(name, base, wss_base, cafile), 60)
            out("RESULT %s ok" % name)
        except NotImplementedError as e:
            out("RESULT %s na %s" % (name, e))
        except Exception as e:  # noqa: BLE001 - reported to the spec
            out("RESULT %s fail %s: %s" % (name, type(e).__name__, str(e).replace("\n", " ")))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server(*sys.argv[2:4]))
    else:
        asyncio.run(client(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]))
