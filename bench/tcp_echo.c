/* Raw TCP echo in C, epoll: the floor for the lua-ws benchmarks.
 *   tcp_echo PORT
 * Each connection's first bytes up to the blank line are taken as an HTTP
 * request and answered with a fake "101 Switching Protocols" (no key check),
 * so the load generator's handshake cycle is comparable; everything after is
 * echoed back unchanged.  Prints "listening on ws://127.0.0.1:PORT/".
 *
 * Kept as lean as an echo can be, so the ratios against it are honest: one
 * read buffer for the whole process, each connection registered once
 * (edge-triggered, in and out) so no epoll_ctl per message, and what the
 * socket does not take kept in a per-connection buffer that grows once and
 * is reused until the connection closes (no allocation per message). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    unsigned char hs_done, hs_match;
    char *pend;               /* unsent bytes; kept (capacity pcap) until close */
    size_t plen, poff, pcap;
} cstate;

static cstate *cs;
static char buf[1 << 18];
static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

static void drop(int fd)
{
    free(cs[fd].pend);
    memset(&cs[fd], 0, sizeof cs[fd]);
    close(fd);
}

/* write what the socket takes; 1 = all written, 0 = socket full, -1 = dead */
static int wr(int fd, const char **p, size_t *n)
{
    while (*n) {
        ssize_t w = write(fd, *p, *n);
        if (w < 0) {
            if (errno == EAGAIN) return 0;
            if (errno == EINTR) continue;
            return -1;
        }
        *p += w;
        *n -= (size_t)w;
    }
    return 1;
}

/* echo bytes: written now or appended to the pending buffer; -1 = dead */
static int out(int fd, const char *p, size_t n)
{
    cstate *c = &cs[fd];
    if (c->plen == c->poff) {
        c->plen = c->poff = 0;
        int r = wr(fd, &p, &n);
        if (r != 0) return r < 0 ? -1 : 0;
    }
    if (c->plen + n > c->pcap) {
        size_t cap = c->pcap ? c->pcap : 1 << 16;
        while (cap < c->plen + n) cap *= 2;
        char *np = realloc(c->pend, cap);
        if (!np) return -1;
        c->pend = np;
        c->pcap = cap;
    }
    memcpy(c->pend + c->plen, p, n);
    c->plen += n;
    return 0;
}

/* read until the socket is empty or output backs up; -1 = dead */
static int in(int fd)
{
    cstate *c = &cs[fd];
    while (c->plen == c->poff) { /* stop reading while output is pending */
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 0 : -1;
        }
        if (r == 0) return -1;
        char *p = buf;
        size_t len = (size_t)r;
        if (!c->hs_done) {
            /* find the end of the request, possibly split across reads */
            static const char end[] = "\r\n\r\n";
            size_t k = 0;
            while (k < len && c->hs_match < 4) {
                c->hs_match = p[k] == end[c->hs_match] ? c->hs_match + 1 : (p[k] == '\r' ? 1 : 0);
                k++;
            }
            if (c->hs_match < 4) continue;
            c->hs_done = 1;
            if (out(fd, resp, sizeof resp - 1) < 0) return -1;
            p += k;
            len -= k;
        }
        if (len && out(fd, p, len) < 0) return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    signal(SIGPIPE, SIG_IGN); /* a peer gone mid-echo is dropped, not fatal */
    cs = calloc(1 << 20, sizeof *cs);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 511)) { perror("listen"); return 1; }
    socklen_t al = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &al);
    printf("listening on ws://127.0.0.1:%d/\n", ntohs(a.sin_port));
    fflush(stdout);
    int epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
    epoll_ctl(epfd, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int n = epoll_wait(epfd, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= 1 << 20) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.fd = c};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, c, &e);
                }
                continue;
            }
            cstate *c = &cs[fd];
            if (c->poff < c->plen) { /* flush what is pending, then read again */
                const char *p = c->pend + c->poff;
                size_t left = c->plen - c->poff;
                int r = wr(fd, &p, &left);
                if (r < 0) { drop(fd); continue; }
                c->poff = c->plen - left;
                if (r == 0) continue;
            }
            if (in(fd) < 0) drop(fd);
        }
    }
}
