"""An https:// proxy that is also the ws:// origin behind it, for
spec/net_paced_reads_spec.lua: over TLS it answers CONNECT with 200 and the
upgrade with 101, sends WARM messages of 4 MiB of zeros (the client's receive
buffer grows with them), then one binary message of 600 KiB whose bytes are
(i * 7 + 3) % 256, cut inside a TLS record about 100 KiB in, with a pause of
PAUSE seconds between the halves: a reader that waits for more bytes than
the socket will get stalls there.

    python3 split_tls_origin.py CERT KEY WARM PAUSE
Prints "listening PORT", serves one connection, then waits to be killed.
"""
import base64
import hashlib
import socket
import ssl
import sys
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def main():
    cert, key, warm, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    print("listening", ls.getsockname()[1], flush=True)
    s, _ = ls.accept()
    # TLS over memory buffers, so the bytes sent can be cut anywhere.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_side=True)

    def flush():
        b = outgoing.read()
        if b:
            s.sendall(b)

    def receive():
        flush()
        b = s.recv(65536)
        if not b:
            sys.exit("the client went away")
        incoming.write(b)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            receive()
    flush()

    def read_head():
        head = b""
        while b"\r\n\r\n" not in head:
            try:
                head += tls.read(65536)
            except ssl.SSLWantReadError:
                receive()
        return head.decode("latin-1")

    read_head()  # CONNECT
    tls.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    flush()
    request = read_head()
    key_line = [l for l in request.split("\r\n") if l.lower().startswith("sec-websocket-key:")][0]
    accept = base64.b64encode(hashlib.sha1((key_line.split(":", 1)[1].strip() + GUID).encode()).digest())
    tls.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    flush()
    for _ in range(warm):
        n = 4 << 20
        tls.write(b"\x82\x7f" + n.to_bytes(8, "big") + bytes(n))
        flush()
    time.sleep(0.3)
    n = 600 * 1024
    tls.write(b"\x82\x7f" + n.to_bytes(8, "big") + bytes((i * 7 + 3) % 256 for i in range(n)))
    wire = outgoing.read()
    at = 0  # the first record that starts 100 KiB in (a record: 5-byte header + length)
    while at < 100 * 1024:
        at += 5 + int.from_bytes(wire[at + 3:at + 5], "big")
    cut = at + 15000
    s.sendall(wire[:cut])
    time.sleep(pause)
    s.sendall(wire[cut:])
    print("sent", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
