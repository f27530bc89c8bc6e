#!/usr/bin/env python3
"""A misbehaving HTTP CONNECT proxy for spec/net_proxy_failures_spec.lua.

    bad_proxy.py [CERT KEY]

Listens on a free port of 127.0.0.1 (TLS with CERT and KEY: an https://
proxy) and prints "listening PORT".  For every connection it reads the
CONNECT request head, then acts by the MODE named in the first label of
the target host ("CONNECT garbage.invalid:80"):

    close     closes without answering
    reset     resets the connection (RST) without answering
    garbage   answers a head that is not HTTP
    huge      answers 9000 bytes without the end of a head
    partial   answers half a status line, then closes
    status    answers "HTTP/1.1 100 Continue" (not 2xx)
    split     answers "200" in three pieces (a pause between them), then
              closes once the client's next bytes arrive

It serves one connection at a time until killed.
"""
import socket
import ssl
import struct
import sys
import time


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data


def serve(conn):
    head = read_head(conn)
    if head is None:
        return
    target = head.split(b" ")[1] if head.count(b" ") >= 2 else b""
    mode = target.split(b".")[0].decode("ascii", "replace")
    if mode == "close":
        return
    if mode == "reset":
        sock = conn.unwrap() if isinstance(conn, ssl.SSLSocket) else conn
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return
    if mode == "garbage":
        conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
    elif mode == "huge":
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * 9000)
    elif mode == "partial":
        conn.sendall(b"HTTP/1.1 20")
        return
    elif mode == "status":
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    elif mode == "split":
        for piece in (b"HTTP/1.1 200 Conn", b"ection established\r\n", b"\r\n"):
            conn.sendall(piece)
            time.sleep(0.05)
    conn.recv(4096)  # what the client sends next (or its close)


def main():
    ctx = None
    if len(sys.argv) > 2:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print("listening %d" % srv.getsockname()[1], flush=True)
    while True:
        conn, _ = srv.accept()
        try:
            if ctx is not None:
                conn = ctx.wrap_socket(conn, server_side=True)
            serve(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    main()
