#!/usr/bin/env python3
"""A TLS terminator for the proxy specs: it accepts TLS on a free port of
127.0.0.1 with the given certificate and forwards the plaintext to an
upstream TCP port (tinyproxy), which makes tinyproxy an https:// proxy.

    tls_terminator.py CERT KEY UPSTREAM_PORT

Prints "listening PORT" once it accepts connections, "sni NAME" (or
"sni -" without SNI) for every TLS handshake and "handshake failed" when
one fails.  SIGKILL drops every tunnel at once (a proxy that dies).
"""
import asyncio
import ssl
import sys


def say(line):
    print(line, flush=True)


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        writer.close()


async def main():
    cert, key, upstream = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.sni_callback = lambda sock, name, c: say("sni %s" % (name or "-"))

    async def handle(reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    loop = asyncio.get_running_loop()
    default = loop.get_exception_handler()

    def on_error(lp, context):
        # A client that rejected our certificate: the specs look for this.
        if isinstance(context.get("exception"), (ssl.SSLError, OSError)):
            say("handshake failed")
            return
        if default:
            default(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(on_error)
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    say("listening %d" % server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
