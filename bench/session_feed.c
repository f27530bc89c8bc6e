/* Micro-benchmark of a whole server session (csrc/core/session.c, sans I/O) fed
 * 32-byte masked binary frames, as a server reading a socket would be.
 *   session_feed [FRAMES]      (default 131072 frames, about 5 MB)
 * Built by scripts/bench.sh against the C core (csrc/core and csrc/io, without the
 * bindings: session.c pulls buf, frame, mask, utf8, handshake, http, deflate).
 *
 * Each round makes a server session, feeds it a client's upgrade request,
 * accepts it and drains the OPEN event and the 101 answer; then it feeds the
 * prepared stream of FRAMES masked frames (2-byte header, 4-byte key,
 * 32-byte payload) in 64 KiB chunks, pulling every event after each chunk,
 * again and again for about 0.2 s.  Two ways:
 *   feed   ws_session_feed + ws_session_next until no event (every message
 *          is checked: binary, 32 bytes, the expected sequence number)
 *   echo   the same, and each message is sent back with ws_session_send;
 *          after each chunk the output is taken with ws_session_output /
 *          ws_session_output_consume, as a server writing its socket
 * Prints key=value lines: frames/s and ns/frame, best of 5 rounds each. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session.h"

#define PAYLOAD 32
#define FRAME   (2 + 4 + PAYLOAD)
#define CHUNK   65536

static const char REQUEST[] = "GET /bench HTTP/1.1\r\n"
                              "Host: 127.0.0.1:8080\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what)
{
    fprintf(stderr, "session_feed: FAIL: %s\n", what);
    exit(1);
}

/* A server session that has completed its handshake. */
static ws_session *open_session(void)
{
    ws_session_config cfg;
    ws_session_config_init(&cfg, WS_SERVER);
    ws_session *s = ws_session_new(&cfg);
    if (!s) fail("ws_session_new");
    if (ws_session_feed(s, (const uint8_t *)REQUEST, sizeof REQUEST - 1) != 0) fail("feed request");
    ws_event ev;
    if (!ws_session_next(s, &ev) || ev.type != WS_EV_REQUEST) fail("no WS_EV_REQUEST");
    char err[256];
    if (ws_session_accept(s, NULL, NULL, NULL, 0, err, sizeof err) != 0) fail(err);
    while (ws_session_next(s, &ev))
        if (ev.type != WS_EV_OPEN) fail("unexpected event after accept");
    if (ws_session_state(s) != WS_OPEN) fail("session is not OPEN after the handshake");
    size_t n;
    const uint8_t *out = ws_session_output(s, &n);
    if (n < 12 || memcmp(out, "HTTP/1.1 101", 12) != 0) fail("no 101 response");
    ws_session_output_consume(s, n);
    return s;
}

static uint32_t rng = 0x12345678u;
static uint32_t xrand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* nframes masked binary frames; the payload's first 8 bytes are a sequence
 * number (from 0), the rest a fixed pattern */
static uint8_t *make_stream(size_t nframes)
{
    uint8_t *buf = malloc(nframes * FRAME);
    if (!buf) fail("out of memory");
    for (size_t i = 0; i < nframes; i++) {
        uint8_t *f = buf + i * FRAME, *p = f + 6;
        f[0] = 0x82; /* FIN, binary */
        f[1] = 0x80 | PAYLOAD;
        uint32_t k = xrand();
        memcpy(f + 2, &k, 4);
        uint64_t seq = i;
        memcpy(p, &seq, 8);
        for (int j = 8; j < PAYLOAD; j++) p[j] = (uint8_t)('a' + j);
        for (int j = 0; j < PAYLOAD; j++) p[j] ^= f[2 + (j & 3)];
    }
    return buf;
}

/* Feed the stream once; returns the number of messages. */
static size_t feed_stream(ws_session *s, const uint8_t *stream, size_t len, int echo)
{
    size_t msgs = 0;
    ws_event ev;
    uint8_t copy[PAYLOAD];
    for (size_t off = 0; off < len; off += CHUNK) {
        size_t n = len - off < CHUNK ? len - off : CHUNK, before = msgs;
        if (ws_session_feed(s, stream + off, n) != 0) fail("ws_session_feed");
        while (ws_session_next(s, &ev)) {
            if (ev.type != WS_EV_MESSAGE || !ev.binary || ev.len != PAYLOAD) fail("unexpected event");
            uint64_t seq;
            memcpy(&seq, ev.data, 8);
            if (seq != msgs) fail("sequence");
            msgs++;
            if (echo) {
                /* the event's data is valid until the next call into the session */
                memcpy(copy, ev.data, PAYLOAD);
                if (ws_session_send(s, true, copy, PAYLOAD) != WS_OK) fail("ws_session_send");
            }
        }
        if (echo) {
            size_t out;
            ws_session_output(s, &out);
            if (out != (msgs - before) * (2 + PAYLOAD)) fail("echo output size");
            ws_session_output_consume(s, out);
        }
    }
    return msgs;
}

/* Best frames/s over 5 rounds of about 0.2 s, a fresh session per round. */
static double bench(const uint8_t *stream, size_t nframes, int echo)
{
    double best = 0;
    size_t len = nframes * FRAME;
    for (int r = 0; r < 5; r++) {
        ws_session *s = open_session();
        size_t msgs = 0, per = 0;
        double t0 = now(), t;
        do {
            per = feed_stream(s, stream, len, echo);
            if (per != nframes) fail("lost frames");
            msgs += per;
        } while ((t = now()) - t0 < 0.2);
        double rate = (double)msgs / (t - t0);
        if (rate > best) best = rate;
        ws_session_free(s);
    }
    return best;
}

int main(int argc, char **argv)
{
    size_t nframes = argc > 1 ? (size_t)atol(argv[1]) : (size_t)1 << 17;
    if (nframes == 0) fail("FRAMES must be positive");
    uint8_t *stream = make_stream(nframes);
    double feed = bench(stream, nframes, 0);
    double echo = bench(stream, nframes, 1);
    printf("session_frames=%zu\n", nframes);
    printf("session_chunk_bytes=%d\n", CHUNK);
    printf("session_feed_fps=%.0f\n", feed);
    printf("session_feed_ns=%.2f\n", 1e9 / feed);
    printf("session_echo_fps=%.0f\n", echo);
    printf("session_echo_ns=%.2f\n", 1e9 / echo);
    free(stream);
    return 0;
}
