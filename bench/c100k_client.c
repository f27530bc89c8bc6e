/* bench/c100k: one load-generator process holding many idle WebSocket
 * client connections from one source address, then timing the fan-out
 * messages the server sends to all of them.
 *
 *   c100k_client --port P -n N [--src 127.0.0.2] [--host 127.0.0.1]
 *                [--inflight 200] [--out PREFIX]
 *
 * Opens N connections (at most --inflight handshakes at a time; the source
 * address is bound with IP_BIND_ADDRESS_NO_PORT so ports are picked per
 * 4-tuple), prints "OPEN <n> <seconds>", then waits for messages.  Each
 * message's payload starts "t0=<ns>;r=<round>;" (t0: CLOCK_MONOTONIC of the
 * request to publish, comparable across processes of one machine).  Once
 * every connection has the message of round r it prints
 * "ROUND <r> <n> <first_us> <last_us>" and writes the n latencies (uint32
 * microseconds, now - t0) to PREFIX.<r>.  Runs until killed.
 * The file descriptor limit is raised to the hard limit first.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { S_CONNECTING, S_UPGRADING, S_OPEN };

typedef struct conn {
    int fd;
    uint8_t state;
    uint8_t carry_len;
    uint16_t head_len;
    int round;      /* the last round received */
    uint8_t *carry; /* a partial frame, or the handshake answer so far */
} conn;

#define CARRY_CAP 512

static const char *host = "127.0.0.1", *src = NULL, *out_prefix = "c100k";
static int port, nconns = 1000, inflight_max = 200;
static conn *conns;
static int epfd, started, opened, inflight;
static uint32_t *lat;
static int round_cur = -1, round_got;
static uint64_t round_first, round_last;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    printf("FAIL %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static const char REQUEST_FMT[] = "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Key: "
                                  "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
static char request[256];
static int request_len;

static void start_one(void)
{
    conn *c = &conns[started];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src) {
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &a.sin_addr);
        if (bind(c->fd, (struct sockaddr *)&a, sizeof a) < 0)
            die("bind");
    }
    struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &d.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&d, sizeof d) < 0 && errno != EINPROGRESS)
        die("connect");
    c->state = S_CONNECTING;
    c->round = -1;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)started};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
    started++;
    inflight++;
}

static void fill(void)
{
    while (inflight < inflight_max && started < nconns)
        start_one();
}

static void finish_round(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s.%d", out_prefix, round_cur);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(lat, sizeof *lat, (size_t)round_got, f) != (size_t)round_got)
        die("write latencies");
    fclose(f);
    printf("ROUND %d %d %.0f %.0f\n", round_cur, round_got, round_first / 1e3, round_last / 1e3);
    fflush(stdout);
}

static void on_message(conn *c, const uint8_t *p, size_t n)
{
    uint64_t t = now_ns();
    unsigned long long t0 = 0;
    int r = -1;
    char tmp[64];
    size_t k = n < sizeof tmp - 1 ? n : sizeof tmp - 1;
    memcpy(tmp, p, k);
    tmp[k] = 0;
    if (sscanf(tmp, "t0=%llu;r=%d;", &t0, &r) != 2 || r < 0)
        return;
    if (r != round_cur) {
        round_cur = r;
        round_got = 0;
        round_first = UINT64_MAX;
        round_last = 0;
    }
    if (c->round == r)
        return; /* a duplicate would be a server bug; count once */
    c->round = r;
    uint64_t d = t > t0 ? t - t0 : 0;
    lat[round_got++] = (uint32_t)(d / 1000);
    if (d < round_first)
        round_first = d;
    if (d > round_last)
        round_last = d;
    if (round_got == opened)
        finish_round();
}

/* Frames from the server (never masked). */
static void parse(conn *c, const uint8_t *p, size_t n)
{
    uint8_t *buf = c->carry;
    size_t have = c->carry_len;
    const uint8_t *q = p;
    size_t left = n;
    uint8_t joined[CARRY_CAP + 65536];
    if (have) {
        size_t take = left < sizeof joined - have ? left : sizeof joined - have;
        memcpy(joined, buf, have);
        memcpy(joined + have, p, take);
        q = joined;
        left = have + take;
    }
    while (left >= 2) {
        size_t hl = 2;
        uint64_t len = q[1] & 0x7f;
        if (len == 126) {
            if (left < 4)
                break;
            len = ((uint64_t)q[2] << 8) | q[3];
            hl = 4;
        } else if (len == 127) {
            if (left < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | q[2 + i];
            hl = 10;
        }
        if (left < hl + len)
            break;
        if ((q[0] & 0x0f) == 1 || (q[0] & 0x0f) == 2)
            on_message(c, q + hl, (size_t)len);
        q += hl + len;
        left -= hl + len;
    }
    if (left > CARRY_CAP) {
        errno = EMSGSIZE;
        die("frame too large for the carry buffer");
    }
    if (left && !c->carry && !(c->carry = malloc(CARRY_CAP)))
        die("malloc");
    if (left)
        memmove(c->carry, q, left);
    c->carry_len = (uint8_t)(left > 255 ? 255 : left);
    if (left > 255) {
        errno = EMSGSIZE;
        die("partial frame over 255 bytes");
    }
    if (!left && c->carry) {
        free(c->carry);
        c->carry = NULL;
    }
}

static void on_event(conn *c, uint32_t events)
{
    static uint8_t rbuf[65536];
    if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            errno = err;
            die("connect");
        }
        if (write(c->fd, request, (size_t)request_len) != request_len)
            die("write request");
        c->state = S_UPGRADING;
        c->carry = malloc(CARRY_CAP);
        c->head_len = 0;
        if (!c->carry)
            die("malloc");
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - conns)};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    (void)events;
    for (;;) {
        ssize_t r = read(c->fd, rbuf, sizeof rbuf);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (r <= 0) {
            if (r == 0)
                errno = ECONNRESET;
            die("connection lost");
        }
        size_t n = (size_t)r;
        if (c->state == S_UPGRADING) {
            size_t take = n < CARRY_CAP - 1u - c->head_len ? n : CARRY_CAP - 1u - c->head_len;
            memcpy(c->carry + c->head_len, rbuf, take);
            c->head_len = (uint16_t)(c->head_len + take);
            c->carry[c->head_len] = 0;
            char *end = strstr((char *)c->carry, "\r\n\r\n");
            if (!end) {
                if (c->head_len >= CARRY_CAP - 1) {
                    errno = EMSGSIZE;
                    die("handshake answer too long");
                }
                continue;
            }
            if (strncmp((char *)c->carry, "HTTP/1.1 101", 12) != 0) {
                errno = EPROTO;
                die("handshake refused");
            }
            size_t head = (size_t)(end + 4 - (char *)c->carry);
            size_t rest = c->head_len - head;
            uint8_t extra[CARRY_CAP];
            memcpy(extra, c->carry + head, rest);
            free(c->carry);
            c->carry = NULL;
            c->carry_len = 0;
            c->state = S_OPEN;
            opened++;
            inflight--;
            if (rest)
                parse(c, extra, rest);
            if (take < n)
                parse(c, rbuf + take, n - take);
            continue;
        }
        parse(c, rbuf, n);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            break;
        if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "-n"))
            nconns = atoi(v);
        else if (!strcmp(a, "--src"))
            src = v;
        else if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--inflight"))
            inflight_max = atoi(v);
        else if (!strcmp(a, "--out"))
            out_prefix = v;
        else
            continue;
        i++;
    }
    if (!port || nconns < 1) {
        fprintf(stderr, "usage: c100k_client --port P -n N [--src A] [--host H] [--inflight K] "
                        "[--out PREFIX]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    request_len = snprintf(request, sizeof request, REQUEST_FMT, host, port);
    conns = calloc((size_t)nconns, sizeof *conns);
    lat = calloc((size_t)nconns, sizeof *lat);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || !lat || epfd < 0)
        die("setup");
    uint64_t t0 = now_ns();
    int reported = 0;
    struct epoll_event evs[1024];
    for (;;) {
        fill();
        int n = epoll_wait(epfd, evs, 1024, 200);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++)
            on_event(&conns[evs[i].data.u32], evs[i].events);
        if (!reported && opened == nconns) {
            printf("OPEN %d %.3f\n", opened, (now_ns() - t0) / 1e9);
            fflush(stdout);
            reported = 1;
        }
    }
}
