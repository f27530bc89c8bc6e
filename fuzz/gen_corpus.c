/* Seed corpus generator for the harnesses: valid (and a few almost valid)
 * streams built with the library's own encoders.
 *   gen_corpus OUTDIR   writes OUTDIR/<harness>/seed-NNN */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "frame.h"
#include "handshake.h"
#include "mask.h"

static const char *outdir;
static int counter;

static void put(const char *harness, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", outdir, harness);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/seed-%03d", outdir, harness, counter++);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* Append one frame; masked frames use a fixed key.  rsv1 marks a
 * compressed message's first frame. */
static void frame_rsv(ws_buf *b, unsigned op, bool fin, bool rsv1, bool masked, const void *p,
                      size_t n)
{
    ws_frame_header h;
    memset(&h, 0, sizeof h);
    h.fin = fin;
    h.rsv = rsv1 ? WS_RSV1 : 0;
    h.opcode = (uint8_t)op;
    h.len = n;
    h.masked = masked;
    memcpy(h.mask, "\x37\xfa\x21\x3d", 4);
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    size_t hl = ws_frame_encode(hdr, &h);
    ws_buf_append(b, hdr, hl);
    uint8_t *w = ws_buf_reserve(b, n ? n : 1);
    if (masked)
        ws_mask_copy(w, p, n, h.mask, 0);
    else if (n)
        memcpy(w, p, n);
    ws_buf_commit(b, n);
}

static void frame(ws_buf *b, unsigned op, bool fin, bool masked, const void *p, size_t n)
{
    frame_rsv(b, op, fin, false, masked, p, n);
}

static const char REQUEST[] = "GET /chat?room=1 HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "Origin: http://example.com\r\n"
                              "Sec-WebSocket-Protocol: chat, superchat\r\n"
                              "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                              "\r\n";
static const char RESPONSE[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "\r\n";
static const char RESPONSE_PMD[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                   "Upgrade: websocket\r\n"
                                   "Connection: Upgrade\r\n"
                                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                   "Sec-WebSocket-Extensions: permessage-deflate; "
                                   "client_max_window_bits=12\r\n"
                                   "\r\n";
static const char RESPONSE_PROTO[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                     "Upgrade: websocket\r\n"
                                     "Connection: Upgrade\r\n"
                                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                     "Sec-WebSocket-Protocol: chat\r\n"
                                     "\r\n";

/* Frames a peer of `client_peer` sends (masked when the peer is a client). */
static void frames(ws_buf *b, bool masked, int variant)
{
    static const char text[] = "Hello, \xe2\x82\xac world \xf0\x9f\x98\x80";
    uint8_t big[300];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)i;
    switch (variant) {
    case 0:
        frame(b, WS_OP_TEXT, true, masked, text, sizeof text - 1);
        frame(b, WS_OP_BINARY, true, masked, big, sizeof big);
        frame(b, WS_OP_CLOSE, true, masked, "\x03\xe8" "bye", 5);
        break;
    case 1: /* fragmented text, a ping in the middle, UTF-8 split */
        frame(b, WS_OP_TEXT, false, masked, text, 8);
        frame(b, WS_OP_PING, true, masked, "ping", 4);
        frame(b, WS_OP_CONT, false, masked, text + 8, 1);
        frame(b, WS_OP_CONT, true, masked, text + 9, sizeof text - 10);
        frame(b, WS_OP_PONG, true, masked, "", 0);
        frame(b, WS_OP_CLOSE, true, masked, "", 0);
        break;
    case 2: /* many pings, then a close with a reason */
        for (int i = 0; i < 8; i++)
            frame(b, WS_OP_PING, true, masked, "abcdefgh", (size_t)i);
        frame(b, WS_OP_CLOSE, true, masked, "\x0f\xa0" "app", 5);
        break;
    case 3: /* a 64-bit length, then invalid UTF-8 */
        frame(b, WS_OP_BINARY, true, masked, big, sizeof big);
        frame(b, WS_OP_TEXT, true, masked, "\xc3\x28", 2);
        break;
    case 4: { /* a large message: 70000 bytes (64-bit length) */
        uint8_t *m = calloc(1, 70000);
        frame(b, WS_OP_BINARY, true, masked, m, 70000);
        free(m);
        break;
    }
    default: /* binary fragments and a close without code */
        frame(b, WS_OP_BINARY, false, masked, big, 10);
        frame(b, WS_OP_CONT, false, masked, big, 0);
        frame(b, WS_OP_CONT, true, masked, big, 20);
        frame(b, WS_OP_CLOSE, true, masked, "\x03\xe9", 2);
        break;
    }
}

static void session_seeds(void)
{
    for (int variant = 0; variant < 6; variant++) {
        for (int mode = 0; mode < 6; mode++) {
            ws_buf b;
            ws_buf_init(&b);
            /* flags: role, no-handshake, stream, allow_http, offer, echo, may_close, reject */
            uint8_t flags;
            switch (mode) {
            case 0: flags = 0x20; break;        /* server, handshake, echo */
            case 1: flags = 0x21 | 0x10; break; /* client, handshake, offer, echo */
            case 2: flags = 0x02 | 0x04; break; /* server, no handshake, streaming */
            case 3: flags = 0x03 | 0x40; break; /* client, no handshake, may close */
            case 4: flags = 0x08 | 0x20; break; /* server, allow_http, echo */
            default: flags = 0x05; break;       /* client, handshake, streaming */
            }
            uint8_t ctl[8] = {flags, (uint8_t)(variant == 4 ? 0x80 : 0x01), 0x00, 0,
                              (uint8_t)(0x3f | 0xc0), (uint8_t)(17 * variant + mode), 0, 0};
            ws_buf_append(&b, ctl, sizeof ctl);
            bool client = flags & 1;
            if (!(flags & 2))
                ws_buf_puts(&b, client ? ((flags & 0x10) ? RESPONSE_PROTO : RESPONSE) : REQUEST);
            frames(&b, !client, variant);
            put("session", ws_buf_begin(&b), ws_buf_size(&b));
            ws_buf_free(&b);
        }
    }
    /* A plain HTTP request for allow_http, a rejected upgrade, garbage. */
    static const char plain[] =
        "\x08\x80\x00\x00\xff\x01\x00\x00GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    put("session", plain, sizeof plain - 1);
    static const char rej[] = "\x80\x80\x00\x00\xff\x02\x00\x00";
    ws_buf b;
    ws_buf_init(&b);
    ws_buf_append(&b, rej, 8);
    ws_buf_puts(&b, REQUEST);
    put("session", ws_buf_begin(&b), ws_buf_size(&b));
    ws_buf_free(&b);
    static const char bad_resp[] = "\x01\x80\x00\x00\xff\x03\x00\x00HTTP/1.1 403 Forbidden\r\n"
                                   "Content-Length: 5\r\n\r\nnope!";
    put("session", bad_resp, sizeof bad_resp - 1);
}

static void frame_seeds(void)
{
    static const uint64_t lens[] = {0, 1, 125, 126, 127, 0xffff, 0x10000, 0x7fffffffffffffffull};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int m = 0; m < 2; m++) {
            ws_frame_header h;
            memset(&h, 0, sizeof h);
            h.fin = (i & 1) == 0;
            h.opcode = (uint8_t)(i % 3);
            h.len = lens[i];
            h.masked = m;
            memcpy(h.mask, "\x01\x02\x03\x04", 4);
            uint8_t out[WS_FRAME_HEADER_MAX + 4];
            size_t n = ws_frame_encode(out, &h);
            memcpy(out + n, "abcd", 4);
            put("frame", out, n + (i == 0 ? 4 : 0));
        }
    }
    static const uint8_t over[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
    put("frame", over, sizeof over);
    static const uint8_t nonmin[] = {0x81, 0x7e, 0x00, 0x05};
    put("frame", nonmin, sizeof nonmin);
    static const uint8_t ping[] = {0x89, 0x80, 1, 2, 3, 4};
    put("frame", ping, sizeof ping);
}

static void http_seeds(void)
{
    static const char *const requests[] = {
        REQUEST,
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET ws://example.com/path?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Folded: a\r\n  b\r\n\r\n",
        "POST /x HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\nHost: bare-lf\n\n",
    };
    static const char *const responses[] = {
        RESPONSE,
        RESPONSE_PROTO,
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno!",
        "HTTP/1.1 101\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n\r\n",
        "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n",
    };
    for (size_t i = 0; i < 5; i++) {
        for (int resp = 0; resp < 2; resp++) {
            const char *s = resp ? responses[i] : requests[i];
            ws_buf b;
            ws_buf_init(&b);
            uint8_t ctl[3] = {(uint8_t)(resp | (64 << 1)), 0xff, (uint8_t)(i * 31 + 7)};
            ws_buf_append(&b, ctl, 3);
            ws_buf_puts(&b, s);
            put("http", ws_buf_begin(&b), ws_buf_size(&b));
            ws_buf_free(&b);
        }
    }
}

static void handshake_seeds(void)
{
    static const char *const requests[] = {
        REQUEST,
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 8\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "GET ws://h/p?q HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: a.b\r\n\r\n",
    };
    for (size_t i = 0; i < 5; i++) {
        ws_buf b;
        ws_buf_init(&b);
        uint8_t ctl = (uint8_t)(i | 1);
        ws_buf_append(&b, &ctl, 1);
        ws_buf_puts(&b, requests[i]);
        put("handshake_server", ws_buf_begin(&b), ws_buf_size(&b));
        ws_buf_free(&b);
    }
    static const char *const responses[] = {
        RESPONSE,
        RESPONSE_PROTO,
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n\r\n",
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: wrongwrongwrongwrongwrong===\r\n\r\n",
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno",
    };
    for (size_t i = 0; i < 5; i++) {
        ws_buf b;
        ws_buf_init(&b);
        uint8_t ctl = (uint8_t)(0x40 | 0x20 | 63);
        if (i == 1)
            ctl = 0x80 | 63;
        ws_buf_append(&b, &ctl, 1);
        ws_buf_puts(&b, responses[i]);
        put("handshake_client", ws_buf_begin(&b), ws_buf_size(&b));
        ws_buf_free(&b);
    }
}

/* utf8: 3 control bytes (chunk seed, split point), then text. */
static void utf8_seeds(void)
{
    static const char *const texts[] = {
        "hello \xc3\xa9t\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80 w\xc3\xb6rld",
        "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf",
        "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\xf0\x9f\x98\x80",
        "ok \xed\xa0\x80",
        "ok \xf4\x90\x80\x80",
        "ok \xe0\x9f\xbf",
        "ok \xf0\x8f\xbf\xbf",
        "ok \xc0\x80 \xf5\xff",
        "ok \xe2\x82",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        ws_buf b;
        ws_buf_init(&b);
        uint8_t ctl[3] = {(uint8_t)(i * 37 + 1), 0, (uint8_t)(i * 5 + 3)};
        ws_buf_append(&b, ctl, 3);
        /* repeated so the 64-byte blocks of the vector code see it too */
        for (int r = 0; r < (i == 0 ? 9 : 1); r++)
            ws_buf_puts(&b, texts[i]);
        if (i > 0) {
            for (int r = 0; r < 70; r++)
                ws_buf_puts(&b, "a");
            ws_buf_puts(&b, texts[i]);
        }
        put("utf8", ws_buf_begin(&b), ws_buf_size(&b));
        ws_buf_free(&b);
    }
}

#ifdef WS_FUZZ_HAVE_DEFLATE
#include "deflate.h"
static void inflate_seeds(void)
{
    static const char *const texts[] = {"", "hello hello hello hello", "caf\xc3\xa9 \xe2\x82\xac"};
    for (int i = 0; i < 3; i++) {
        ws_deflate_config cfg;
        ws_deflate_config_init(&cfg);
        cfg.enabled = true;
        ws_pmd_agreed ag;
        memset(&ag, 0, sizeof ag);
        ag.client_max_window_bits = ag.server_max_window_bits = 15;
        ws_deflate *d = ws_deflate_new(&cfg, &ag, false);
        ws_buf b;
        ws_buf_init(&b);
        uint8_t ctl[5] = {(uint8_t)(1 | (i == 1 ? 4 : 0)), 6, 0x10, 0, (uint8_t)i};
        ws_buf_append(&b, ctl, 5);
        ws_deflate_compress(d, (const uint8_t *)texts[i], strlen(texts[i]), true, &b);
        put("inflate", ws_buf_begin(&b), ws_buf_size(&b));
        ws_buf_free(&b);
        ws_deflate_free(d);
    }
}

/* One compressed message from a peer whose deflater is d, in one frame or
 * split in two. */
static void compressed(ws_buf *b, ws_deflate *d, unsigned op, bool masked, const char *text,
                       bool split)
{
    ws_buf z;
    ws_buf_init(&z);
    ws_deflate_compress(d, (const uint8_t *)text, strlen(text), true, &z);
    size_t n = ws_buf_size(&z), k = split ? n / 2 : n;
    frame_rsv(b, op, k == n, true, masked, ws_buf_begin(&z), k);
    if (k < n)
        frame(b, WS_OP_CONT, true, masked, ws_buf_begin(&z) + k, n - k);
    ws_buf_free(&z);
}

/* Sessions with permessage-deflate agreed: context takeover across
 * messages, a fragmented compressed message with a ping inside, an
 * uncompressed message among compressed ones, the RFC 7692 7.2.3.4
 * BFINAL form, bytes after a final block, corrupt data, RSV1 on a control
 * frame. */
static void compressed_session_seeds(void)
{
    static const char hello[] = "Hello Hello Hello, caf\xc3\xa9 \xe2\x82\xac Hello Hello";
    static const uint8_t bfinal[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    static const uint8_t trailing[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x01};
    static const uint8_t corrupt[] = {0xff, 0xff, 0xff, 0x00};
    for (int mode = 0; mode < 4; mode++) {
        for (int variant = 0; variant < 4; variant++) {
            /* mode: 0 server + handshake, 1 client + handshake, 2 server
             * without one, 3 client without one; all echo. */
            bool client = mode & 1, handshake = mode < 2;
            uint8_t flags = (uint8_t)(0x20 | (client ? 1 : 0) | (handshake ? 0 : 2));
            uint8_t zflags = (uint8_t)(1 | 8 | (variant == 2 ? 4 : 0) | (variant == 3 ? 64 : 0));
            uint8_t zbits = variant == 1 ? 0xcb : 0x00; /* client 12, server 11 bits */
            uint8_t ctl[8] = {flags, 0x80, 0x00, 0, 0xff, (uint8_t)(mode * 5 + variant), zflags,
                              zbits};
            ws_buf b;
            ws_buf_init(&b);
            ws_buf_append(&b, ctl, sizeof ctl);
            if (handshake)
                ws_buf_puts(&b, client ? RESPONSE_PMD : REQUEST);
            /* The peer's deflater: a client peer for a server and back. */
            ws_deflate_config cfg;
            ws_deflate_config_init(&cfg);
            cfg.enabled = true;
            ws_pmd_agreed ag;
            memset(&ag, 0, sizeof ag);
            ag.client_max_window_bits = ag.server_max_window_bits = 9;
            ws_deflate *d = ws_deflate_new(&cfg, &ag, client);
            bool masked = !client;
            switch (variant) {
            case 0:
                compressed(&b, d, WS_OP_TEXT, masked, hello, false);
                compressed(&b, d, WS_OP_TEXT, masked, hello, false); /* uses the context */
                frame(&b, WS_OP_TEXT, true, masked, "plain", 5);
                compressed(&b, d, WS_OP_BINARY, masked, hello, true);
                break;
            case 1:
                frame_rsv(&b, WS_OP_TEXT, true, true, masked, bfinal, sizeof bfinal);
                compressed(&b, d, WS_OP_TEXT, masked, hello, true);
                frame(&b, WS_OP_PING, true, masked, "p", 1);
                break;
            case 2:
                compressed(&b, d, WS_OP_TEXT, masked, hello, false);
                frame_rsv(&b, WS_OP_TEXT, true, true, masked, trailing, sizeof trailing);
                break;
            default:
                compressed(&b, d, WS_OP_TEXT, masked, "a", false);
                frame_rsv(&b, WS_OP_BINARY, true, true, masked, corrupt, sizeof corrupt);
                frame_rsv(&b, WS_OP_PING, true, true, masked, "x", 1);
                break;
            }
            frame(&b, WS_OP_CLOSE, true, masked, "\x03\xe8", 2);
            put("session", ws_buf_begin(&b), ws_buf_size(&b));
            ws_buf_free(&b);
            ws_deflate_free(d);
        }
    }
}
#endif

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
        perror(outdir);
        return 1;
    }
    frame_seeds();
    http_seeds();
    handshake_seeds();
    session_seeds();
    utf8_seeds();
#ifdef WS_FUZZ_HAVE_DEFLATE
    inflate_seeds();
    compressed_session_seeds();
#endif
    return 0;
}
