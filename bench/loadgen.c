/* lua-ws benchmark load generator: single-threaded epoll WebSocket client.
 *
 *   loadgen MODE --port P [--server-pid PID] [-c CONNS] [-s SIZE] [-d SECONDS]
 *           [-w WINDOW] [-n IDLE_CONNS] [--raw] [--tls] [--json] [--deflate]
 *
 * MODE: echo        C connections, closed-loop echo of S-byte binary messages
 *       throughput  one connection (or C), large messages, window W in flight
 *       idle        hold N connections open; server memory (anonymous RSS: heap
 *                   and stacks) delta per connection
 *       handshake   connect + upgrade + close cycles, C at a time
 *
 * Every message carries a sequence number (first and last 8 bytes), checked
 * on the echo: loss, duplication, reordering or truncation make it fail; the
 * bytes between must equal what was sent, so a server that corrupts the
 * middle of a large message fails too.  Binary messages are masked with one
 * fixed key, so the body is masked once at start: per message the load
 * generator copies it out and compares the echo, one pass each.
 * --raw accepts masked frames from the server (the raw TCP echo floor sends
 * our own masked bytes back; they are compared as they were sent).
 * --tls speaks wss:// (OpenSSL, no certificate verification, a full
 * handshake for every connection: no session reuse).
 * --json (echo) sends text messages cut from 64 different JSON documents, the
 * sequence number in hex at both ends, and checks every echoed byte.
 * --deflate (echo; implies --json) offers permessage-deflate (RFC 7692, both
 * sides keep their context), compresses every message (zlib, default level)
 * and inflates what comes back; the server must accept the offer.  The
 * report adds the payload bytes the server sent per message (compressed
 * size) and how many of its messages were compressed.
 * Output: one line of key=value pairs.
 * The server's CPU time comes from /proc/PID/stat (utime + stime, all threads).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

enum { M_ECHO, M_THROUGHPUT, M_IDLE, M_HANDSHAKE };
enum { S_CONNECTING, S_TLS, S_UPGRADING, S_OPEN, S_CLOSING, S_DONE };

typedef struct conn {
    int fd, state, closed;
    SSL *ssl;     /* --tls */
    int ssl_out;  /* the last SSL call wants the socket writable */
    uint8_t *rb, *wb;
    size_t rlen, rcap, wlen, woff, wcap;
    uint64_t next_send, next_recv;
    int out_events;
    z_stream *zd, *zi; /* --deflate: our compressor, and the inflater of echoes */
} conn;

static int mode, port = 0, nconns = 100, window = 1, raw = 0, use_tls = 0, json = 0, deflate_on = 0;
static SSL_CTX *ssl_ctx;
static char tls_desc[128] = ""; /* " tls=VERSION/CIPHER" of the first connection */
static long server_pid = 0;
static size_t msize = 32;
static double seconds = 5.0;
static int epfd;
static conn *conns;
static uint8_t *tmpl, *mtmpl; /* binary body: plain, and masked with bin_key */
static const uint8_t bin_key[4] = {0x9e, 0x37, 0x79, 0xb9}; /* no zero byte: nothing to skip */
static uint32_t rng = 0x9e3779b9u;
static int running = 0, n_open = 0, stop_all = 0;
static uint64_t msgs = 0, bytes = 0, cycles = 0, n_echoed = 0, src_ix = 0;
static uint64_t wire_in = 0, compressed_in = 0; /* timed window: payload bytes, RSV1 messages */
#define JSON_DOCS 64
static uint8_t *docs[JSON_DOCS]; /* --json: message bodies, msize bytes each */
static uint8_t *plain, *packed;  /* --json: the message being built (or inflated), compressed */
static uint8_t *expect;          /* --json: the message an echo must equal */
static size_t packed_cap;
static double t0, t_end, cpu0;

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "loadgen: FAIL: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double server_cpu(void)
{
    char path[64], buf[1024];
    if (!server_pid) return 0;
    snprintf(path, sizeof path, "/proc/%ld/stat", server_pid);
    FILE *f = fopen(path, "r");
    if (!f) die("cannot read %s", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    unsigned long long ut = 0, st = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A field of /proc/PID/status in kB: "VmRSS:" (everything resident) or
 * "RssAnon:" (heap and stacks, without the code pages the first
 * connections fault in, which are no per-connection memory). */
static long server_status_kb(const char *field)
{
    char path[64], line[256];
    long kb = -1;
    size_t fl = strlen(field);
    if (!server_pid) return -1;
    snprintf(path, sizeof path, "/proc/%ld/status", server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl)) kb = strtol(line + fl, NULL, 10);
    fclose(f);
    return kb;
}

static uint32_t xrand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void set_events(conn *c, int out)
{
    out = out || c->ssl_out;
    if (c->out_events == out) return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_events = out;
}

static uint8_t *wreserve(conn *c, size_t n)
{
    if (c->woff && c->woff == c->wlen) c->woff = c->wlen = 0;
    if (c->wlen + n > c->wcap) {
        if (c->woff) {
            memmove(c->wb, c->wb + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        if (c->wlen + n > c->wcap) {
            c->wcap = (c->wlen + n) * 2;
            c->wb = realloc(c->wb, c->wcap);
            if (!c->wb) die("%s", "out of memory");
        }
    }
    uint8_t *p = c->wb + c->wlen;
    c->wlen += n;
    return p;
}

static void conn_close(conn *c);

/* An SSL result as a read()/write() result: -1 with errno EAGAIN when the
 * call has to wait for the socket (ssl_out says which way), 0 at a clean
 * end of stream. */
static ssize_t ssl_result(conn *c, int r)
{
    if (r > 0) return r;
    int e = SSL_get_error(c->ssl, r);
    c->ssl_out = e == SSL_ERROR_WANT_WRITE;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    int sys = errno;
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && sys == 0)) return 0;
    errno = e == SSL_ERROR_SYSCALL && sys ? sys : ECONNRESET;
    return -1;
}

static ssize_t io_read(conn *c, void *p, size_t n)
{
    if (!c->ssl) return read(c->fd, p, n);
    c->ssl_out = 0;
    return ssl_result(c, SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n));
}

static ssize_t io_write(conn *c, const void *p, size_t n)
{
    if (!c->ssl) return write(c->fd, p, n);
    c->ssl_out = 0;
    ssize_t r = ssl_result(c, SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n));
    if (r == 0) { /* the peer ended the TLS stream */
        errno = EPIPE;
        r = -1;
    }
    return r;
}

static void flush(conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t r = io_write(c, c->wb + c->woff, c->wlen - c->woff);
        if (r < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            if (mode == M_HANDSHAKE && c->state == S_CLOSING) { conn_close(c); return; }
            die("write: %s", strerror(errno));
        }
        c->woff += (size_t)r;
    }
    if (c->woff == c->wlen) c->woff = c->wlen = 0;
    set_events(c, c->wlen > 0);
}

static void new_key(uint8_t key[4])
{
    uint32_t k = xrand();
    memcpy(key, &k, 4);
}

/* Queue one frame masked with key (opcode may carry RSV bits, 0x40 = RSV1);
 * the caller fills and masks the payload at the pointer returned. */
static uint8_t *frame(conn *c, int opcode, size_t len, const uint8_t key[4])
{
    size_t hl = len < 126 ? 2 : len < 65536 ? 4 : 10;
    uint8_t *h = wreserve(c, hl + 4 + len);
    h[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        h[1] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        h[1] = 0x80 | 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(h + hl, key, 4);
    return h + hl + 4;
}

static void mask(uint8_t *p, size_t n, const uint8_t key[4])
{
    uint32_t k;
    memcpy(&k, key, 4);
    uint64_t k8 = ((uint64_t)k << 32) | k;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= k8;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++) p[i] ^= key[i & 3];
}

/* Message body d, msize bytes of JSON-like text: chat-like records that
 * differ in ids, names and numbers, as a feed sends, cut to size; it starts
 * with '["' and ends with '"]', each beside 16 bytes the sequence number
 * replaces. */
static uint8_t *json_doc(int d)
{
    uint8_t *b = malloc(msize + 256);
    if (!b) die("%s", "out of memory");
    size_t n = (size_t)sprintf((char *)b, "[\"0000000000000000\"");
    for (int i = 0; n < msize; i++) {
        uint32_t r = xrand();
        n += (size_t)snprintf((char *)b + n, 256, ",{\"id\":%d,\"user\":\"user%u\",\"room\":\"%s\",\"text\":\"message %u of the feed\","
                                               "\"ts\":%u,\"ok\":%s}",
                              d * 1000 + i, r % 97, (r >> 8) % 3 ? "lobby" : "random", r >> 12,
                              1700000000u + (r & 0xffff), r & 1 ? "true" : "false");
    }
    /* cut to size, keeping a '"' before the closing 16 + 2 bytes */
    memcpy(b + msize - 19, "\"0000000000000000\"]", 19);
    return b;
}

/* The JSON message with sequence number seq, into out (msize bytes). */
static void json_msg(uint8_t *out, uint64_t seq)
{
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)seq);
    memcpy(out, docs[seq % JSON_DOCS], msize);
    memcpy(out + 2, hex, 16); /* after the opening '["' */
    memcpy(out + msize - 18, hex, 16);
}

/* Compress plain into packed as one permessage-deflate message: deflate
 * with a sync flush, less the 00 00 ff ff tail (RFC 7692, 7.2.1). */
static size_t deflate_msg(conn *c)
{
    z_stream *z = c->zd;
    z->next_in = plain;
    z->avail_in = (uInt)msize;
    z->next_out = packed;
    z->avail_out = (uInt)packed_cap;
    if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in || !z->avail_out) die("%s", "deflate failed");
    size_t n = packed_cap - z->avail_out;
    if (n < 4 || memcmp(packed + n - 4, "\0\0\xff\xff", 4)) die("%s", "deflate: no sync flush tail");
    return n - 4;
}

static void send_msg(conn *c)
{
    uint8_t key[4];
    if (json) {
        json_msg(plain, c->next_send++);
        const uint8_t *src = plain;
        size_t n = msize;
        if (deflate_on) {
            n = deflate_msg(c);
            src = packed;
        }
        new_key(key);
        uint8_t *p = frame(c, deflate_on ? 0x40 | 1 : 1, n, key); /* RSV1: compressed */
        memcpy(p, src, n);
        mask(p, n, key);
        return;
    }
    uint8_t *p = frame(c, 2, msize, bin_key);
    memcpy(p, mtmpl, msize);
    uint64_t seq = c->next_send++;
    uint8_t s[8];
    memcpy(s, &seq, 8);
    for (size_t i = 0; i < 8; i++) p[i] = s[i] ^ bin_key[i & 3];
    if (msize >= 16)
        for (size_t i = msize - 8; i < msize; i++) p[i] = s[i - (msize - 8)] ^ bin_key[i & 3];
}

static void send_close(conn *c)
{
    uint8_t key[4];
    new_key(key);
    uint8_t *p = frame(c, 8, 2, key);
    p[0] = 1000 >> 8;
    p[1] = 1000 & 0xff;
    mask(p, 2, key);
    c->state = S_CLOSING;
}

static void conn_start(conn *c)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* spread source addresses over 127.0.0.0/8 so handshake cycles and many
     * idle connections never run out of ephemeral ports */
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(src_ix++ % 250));
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind: %s", strerror(errno));
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    dst.sin_addr.s_addr = htonl(0x7f000001u);
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS)
        die("connect: %s", strerror(errno));
    c->rcap = msize + 14 + 16384;
    c->rb = malloc(c->rcap);
    if (!c->rb) die("%s", "out of memory");
    c->state = S_CONNECTING;
    if (deflate_on) {
        c->zd = calloc(1, sizeof *c->zd);
        c->zi = calloc(1, sizeof *c->zi);
        if (!c->zd || !c->zi || deflateInit2(c->zd, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK ||
            inflateInit2(c->zi, -15) != Z_OK)
            die("%s", "zlib initialisation failed");
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->out_events = 1;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

static void conn_close(conn *c)
{
    if (c->closed) return;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl) {
        if (c->state >= S_UPGRADING) SSL_shutdown(c->ssl); /* one close_notify, not waited for */
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    close(c->fd);
    free(c->rb);
    free(c->wb);
    if (c->zd) {
        deflateEnd(c->zd);
        inflateEnd(c->zi);
        free(c->zd);
        free(c->zi);
        c->zd = c->zi = NULL;
    }
    c->rb = c->wb = NULL;
    c->closed = 1;
    c->state = S_DONE;
}

static void start_measuring(void)
{
    running = 1;
    t0 = now();
    t_end = t0 + seconds;
    for (int i = 0; i < nconns; i++) {
        for (int j = 0; j < window; j++) send_msg(&conns[i]);
        flush(&conns[i]);
    }
}

static void on_open(conn *c)
{
    n_open++;
    if (c->ssl && !tls_desc[0])
        snprintf(tls_desc, sizeof tls_desc, " tls=%s/%s", SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
    if (mode == M_ECHO || mode == M_THROUGHPUT) {
        if (n_open == nconns) {
            /* measurement starts once every connection is open */
            cpu0 = server_cpu();
            start_measuring();
        }
    } else if (mode == M_IDLE) {
        send_msg(c);
    } else {
        send_close(c);
    }
}

/* Inflate a compressed echo into plain: its length, or dies. */
static size_t inflate_msg(conn *c, uint8_t *p, size_t len)
{
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    z_stream *z = c->zi;
    z->next_out = plain;
    z->avail_out = (uInt)msize + 1; /* one spare byte catches a message too long */
    for (int part = 0; part < 2; part++) {
        z->next_in = part ? (uint8_t *)tail : p;
        z->avail_in = part ? 4 : (uInt)len;
        int r = inflate(z, Z_SYNC_FLUSH);
        if (r == Z_STREAM_END) { /* a final block (BFINAL) ends the peer's stream: the next starts afresh */
            inflateReset(z);
            break;
        }
        if (r != Z_OK && !(r == Z_BUF_ERROR && !z->avail_in)) die("inflate: %s", z->msg ? z->msg : "failed");
        if (z->avail_in) die("%s", "inflated echo is longer than the message sent");
    }
    return msize + 1 - z->avail_out;
}

static void on_json_message(conn *c, uint8_t *p, size_t len, int compressed)
{
    if (running) {
        wire_in += len;
        compressed_in += compressed != 0;
    }
    if (compressed) {
        len = inflate_msg(c, p, len);
        p = plain;
    }
    if (len != msize) {
        fprintf(stderr, "loadgen: FAIL: echo of message %llu has %zu bytes, not %zu\n",
                (unsigned long long)c->next_recv, len, msize);
        exit(1);
    }
    uint64_t seq = c->next_recv;
    json_msg(expect, seq);
    if (memcmp(p, expect, msize)) {
        fprintf(stderr, "loadgen: FAIL: echo of message %llu differs from what was sent\n", (unsigned long long)seq);
        exit(1);
    }
    c->next_recv++;
    if (running) {
        msgs++;
        bytes += msize;
        send_msg(c);
    }
}

/* 1 when the bytes of an echo between its sequence numbers are those sent;
 * masked: the echo still carries the mask (--raw). */
static int body_intact(const uint8_t *p, int masked)
{
    size_t end = msize >= 16 ? msize - 8 : msize;
    return end <= 8 || !memcmp(p + 8, (masked ? mtmpl : tmpl) + 8, end - 8);
}

static void on_message(conn *c, uint8_t *p, size_t len, int masked)
{
    uint64_t a, b;
    if (len != msize) die("%s", "echoed message has the wrong length");
    memcpy(&a, p, 8);
    b = a;
    if (msize >= 16) memcpy(&b, p + msize - 8, 8);
    if (a != c->next_recv || b != a) {
        fprintf(stderr, "loadgen: FAIL: sequence: expected %llu, got %llu/%llu\n",
                (unsigned long long)c->next_recv, (unsigned long long)a, (unsigned long long)b);
        exit(1);
    }
    if (!body_intact(p, masked)) {
        fprintf(stderr, "loadgen: FAIL: echo of message %llu differs from what was sent\n", (unsigned long long)a);
        exit(1);
    }
    c->next_recv++;
    if (mode == M_IDLE) {
        n_echoed++;
        return;
    }
    if (running) {
        msgs++;
        bytes += len;
        send_msg(c);
    }
}

static void process(conn *c)
{
    size_t off = 0;
    if (c->state == S_UPGRADING) {
        uint8_t *e = memmem(c->rb, c->rlen, "\r\n\r\n", 4);
        if (!e) {
            if (c->rlen == c->rcap) die("%s", "handshake response too long");
            return;
        }
        if (c->rlen < 12 || memcmp(c->rb, "HTTP/1.1 101", 12)) die("%s", "no 101 answer to the upgrade");
        if (deflate_on && !memmem(c->rb, (size_t)(e - c->rb), "permessage-deflate", 18))
            die("%s", "the server did not accept permessage-deflate");
        off = (size_t)(e - c->rb) + 4;
        c->state = S_OPEN;
        on_open(c);
    }
    while (c->state >= S_OPEN && c->state < S_DONE) {
        uint8_t *h = c->rb + off;
        size_t avail = c->rlen - off;
        if (avail < 2) break;
        int fin = h[0] & 0x80, op = h[0] & 0x0f, masked = h[1] & 0x80, rsv1 = h[0] & 0x40;
        uint64_t len = h[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = ((uint64_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
            hl = 10;
        }
        if (masked && !raw) die("%s", "the server sent a masked frame");
        if (masked) hl += 4;
        if (hl + len > c->rcap) die("%s", "frame larger than the read buffer");
        if (avail < hl + len) break;
        uint8_t *p = h + hl;
        if (masked) {
            /* raw TCP echo: unmask just the sequence numbers; the bytes
             * between are compared masked (body_intact) */
            const uint8_t *k = h + hl - 4;
            for (size_t i = 0; i < 8 && i < len; i++) p[i] ^= k[i & 3];
            for (size_t i = len >= 16 ? (size_t)len - 8 : len; i < len; i++) p[i] ^= k[i & 3];
        }
        off += hl + (size_t)len;
        if (!fin || op == 0) die("%s", "fragmented message (not supported by the load generator)");
        if (op == 8) {
            if (mode == M_HANDSHAKE && c->state == S_CLOSING) {
                conn_close(c);
                cycles++;
                if (running) conn_start(c);
                return;
            }
            die("%s", "the server closed the connection");
        } else if (op == 9 || op == 10) {
            continue;
        } else if (rsv1 && !deflate_on) {
            die("%s", "compressed message without permessage-deflate");
        } else if (json) {
            if (op != 1) die("%s", "the echo of a text message is not text");
            on_json_message(c, p, (size_t)len, rsv1);
        } else {
            on_message(c, p, (size_t)len, masked);
        }
    }
    if (off) {
        memmove(c->rb, c->rb + off, c->rlen - off);
        c->rlen -= off;
    }
    if (!c->closed) flush(c);
}

static void send_upgrade(conn *c)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     port, deflate_on ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
    memcpy(wreserve(c, (size_t)n), req, (size_t)n);
    c->state = S_UPGRADING;
    flush(c);
}

/* Read what the socket (and TLS) holds, up to the buffer's end: -1 when the
 * connection is gone (closed here), 0 otherwise. */
static int read_some(conn *c)
{
    for (;;) {
        if (c->rlen == c->rcap) break;
        ssize_t r = io_read(c, c->rb + c->rlen, c->rcap - c->rlen);
        if (r < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            if (mode == M_HANDSHAKE && c->state == S_CLOSING) r = 0;
            else die("read: %s", strerror(errno));
        }
        if (r == 0) {
            if (mode == M_HANDSHAKE && c->state == S_CLOSING) {
                /* server closed right after (or instead of) its close frame */
                process(c);
                if (!c->closed) {
                    conn_close(c);
                    cycles++;
                    if (running) conn_start(c);
                }
                return -1;
            }
            die("%s", "the server closed the TCP connection");
        }
        c->rlen += (size_t)r;
        /* a short plain read drained the socket; TLS reads return one
         * record at a time, so they go on until EAGAIN */
        if (!c->ssl && (size_t)r < 4096) break;
    }
    return 0;
}

/* 1 once the TLS handshake is done; 0 while it waits for the socket */
static int tls_step(conn *c)
{
    c->ssl_out = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) return 1;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->ssl_out = e == SSL_ERROR_WANT_WRITE;
        set_events(c, 0);
        return 0;
    }
    unsigned long code = ERR_get_error();
    char msg[256];
    if (code) ERR_error_string_n(code, msg, sizeof msg);
    else snprintf(msg, sizeof msg, "%s", e == SSL_ERROR_SYSCALL ? strerror(errno) : "connection closed");
    die("TLS handshake: %s", msg);
    return 0;
}

static void on_event(conn *c, uint32_t ev)
{
    if (c->closed) return;
    if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) die("connect: %s", strerror(err));
        if (!(ev & (EPOLLOUT | EPOLLIN))) return;
        if (use_tls) {
            c->ssl = SSL_new(ssl_ctx);
            if (!c->ssl) die("%s", "SSL_new failed");
            SSL_set_fd(c->ssl, c->fd);
            SSL_set_connect_state(c->ssl);
            SSL_set_tlsext_host_name(c->ssl, "localhost");
            c->state = S_TLS;
        } else {
            send_upgrade(c);
            return;
        }
    }
    if (c->state == S_TLS) {
        if (tls_step(c)) send_upgrade(c);
        return;
    }
    if (ev & EPOLLOUT) flush(c);
    if (c->closed) return;
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        do {
            if (read_some(c) < 0) return;
            process(c);
        } while (!c->closed && c->ssl && SSL_pending(c->ssl) > 0 && c->rlen < c->rcap);
    }
}

static void loop_until(int (*done)(void), double deadline)
{
    struct epoll_event evs[256];
    for (;;) {
        if (done && done()) return;
        double t = now();
        if (deadline > 0 && t >= deadline) return;
        int n = epoll_wait(epfd, evs, 256, 20);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
    }
}

static int all_open(void) { return n_open >= nconns; }
static int all_echoed(void) { return n_echoed >= (uint64_t)nconns; }

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: loadgen echo|throughput|idle|handshake --port P [--server-pid PID] "
                        "[-c CONNS] [-s SIZE] [-d SECONDS] [-w WINDOW] [-n IDLE_CONNS] [--raw] [--tls]\n");
        return 2;
    }
    const char *m = argv[1];
    mode = !strcmp(m, "echo") ? M_ECHO : !strcmp(m, "throughput") ? M_THROUGHPUT
         : !strcmp(m, "idle") ? M_IDLE : !strcmp(m, "handshake") ? M_HANDSHAKE : -1;
    if (mode < 0) die("unknown mode %s", m);
    if (mode == M_THROUGHPUT) { nconns = 1; msize = 65536; window = 2; }
    if (mode == M_HANDSHAKE) nconns = 10;
    if (mode == M_IDLE) nconns = 10000;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--raw")) { raw = 1; continue; }
        if (!strcmp(a, "--tls")) { use_tls = 1; continue; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--deflate")) { json = deflate_on = 1; continue; }
        if (!v) die("missing value for %s", a);
        i++;
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--server-pid")) server_pid = atol(v);
        else if (!strcmp(a, "-c") || !strcmp(a, "-n")) nconns = atoi(v);
        else if (!strcmp(a, "-s")) msize = (size_t)atol(v);
        else if (!strcmp(a, "-d")) seconds = atof(v);
        else if (!strcmp(a, "-w")) window = atoi(v);
        else die("unknown option %s", a);
    }
    if (!port) die("%s", "--port is required");
    if (msize < 8) die("%s", "-s must be at least 8 (sequence number)");
    if (mode == M_IDLE) msize = 32;
    tmpl = malloc(msize);
    mtmpl = malloc(msize);
    if (!tmpl || !mtmpl) die("%s", "out of memory");
    for (size_t i = 0; i < msize; i++) tmpl[i] = (uint8_t)('a' + i % 26);
    memcpy(mtmpl, tmpl, msize);
    mask(mtmpl, msize, bin_key);
    if (json) {
        if (mode != M_ECHO) die("%s", "--json and --deflate go with echo");
        if (msize < 64) die("%s", "-s must be at least 64 with --json");
        for (int d = 0; d < JSON_DOCS; d++) docs[d] = json_doc(d);
        plain = malloc(msize + 1);
        expect = malloc(msize);
        packed_cap = deflateBound(NULL, (uLong)msize) + 64;
        packed = malloc(packed_cap);
        if (!plain || !expect || !packed) die("%s", "out of memory");
    }
    signal(SIGPIPE, SIG_IGN);
    if (use_tls) {
        ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (!ssl_ctx) die("%s", "SSL_CTX_new failed");
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)nconns, sizeof *conns);

    if (mode == M_ECHO || mode == M_THROUGHPUT) {
        for (int i = 0; i < nconns; i++) conn_start(&conns[i]);
        loop_until(all_open, now() + 30);
        if (!running) die("%s", "connections did not all open within 30 s");
        loop_until(NULL, t_end);
        double el = now() - t0, cpu = server_cpu() - cpu0;
        printf("mode=%s conns=%d size=%zu window=%d seconds=%.3f msgs=%llu msgs_per_s=%.0f "
               "MB_per_s=%.2f server_cpu_s=%.3f server_cpu_us_per_msg=%.3f%s",
               m, nconns, msize, window, el, (unsigned long long)msgs, msgs / el, bytes / el / 1e6, cpu,
               msgs ? cpu * 1e6 / (double)msgs : 0.0, tls_desc);
        if (json)
            printf(" json=1 deflate=%d wire_bytes_per_msg=%.1f compressed_frac=%.3f", deflate_on,
                   msgs ? (double)wire_in / (double)msgs : 0.0, msgs ? (double)compressed_in / (double)msgs : 0.0);
        printf("\n");
        if (!msgs) die("%s", "no message came back in the timed window");
    } else if (mode == M_IDLE) {
        double ti = now();
        long rss0 = server_status_kb("VmRSS:"), anon0 = server_status_kb("RssAnon:");
        /* open in batches of 200 concurrent handshakes */
        int started = 0;
        while (started < nconns) {
            int batch = nconns - started < 200 ? nconns - started : 200;
            for (int i = 0; i < batch; i++) conn_start(&conns[started + i]);
            started += batch;
            int want = started;
            double dl = now() + 30;
            while (n_open < want && now() < dl) loop_until(all_open, now() + 0.05);
            if (n_open < want) die("%s", "idle connections did not open");
        }
        loop_until(all_echoed, now() + 30);
        if (!all_echoed()) die("%s", "idle connections did not all echo");
        loop_until(NULL, now() + 1.0); /* let the server settle */
        long rss1 = server_status_kb("VmRSS:"), anon1 = server_status_kb("RssAnon:");
        printf("mode=idle conns=%d server_rss_before_kb=%ld server_rss_after_kb=%ld "
               "server_anon_before_kb=%ld server_anon_after_kb=%ld bytes_per_conn=%.0f "
               "rss_bytes_per_conn=%.0f seconds=%.1f%s\n",
               nconns, rss0, rss1, anon0, anon1, (anon1 - anon0) * 1024.0 / nconns,
               (rss1 - rss0) * 1024.0 / nconns, now() - ti, tls_desc);
    } else {
        running = 1;
        double c0 = server_cpu();
        t0 = now();
        for (int i = 0; i < nconns; i++) conn_start(&conns[i]);
        loop_until(NULL, t0 + seconds);
        running = 0;
        double el = now() - t0, cpu = server_cpu() - c0;
        printf("mode=handshake conns=%d seconds=%.3f cycles=%llu cycles_per_s=%.0f server_cpu_s=%.3f "
               "server_cpu_us_per_cycle=%.3f%s\n",
               nconns, el, (unsigned long long)cycles, cycles / el, cpu,
               cycles ? cpu * 1e6 / (double)cycles : 0.0, tls_desc);
        if (!cycles) die("%s", "no handshake cycle completed in the timed window");
    }
    (void)stop_all;
    return 0;
}
