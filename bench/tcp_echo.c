/* Raw TCP echo in C, epoll: the floor for the lua-ws benchmarks.
 *   tcp_echo PORT
 * Each connection's first bytes up to the blank line are taken as an HTTP
 * request and answered with a fake "101 Switching Protocols" (no key check),
 * so the load generator's handshake cycle is comparable; everything after is
 * echoed back unchanged.  Prints "listening on ws://127.0.0.1:PORT/". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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
    char *pend;
    size_t plen, poff;
} cstate;

static cstate *cs;
static int epfd;
static char buf[1 << 16];
static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

static void drop(int fd)
{
    free(cs[fd].pend);
    memset(&cs[fd], 0, sizeof cs[fd]);
    close(fd);
}

/* write, keeping what does not fit; returns -1 if the connection died */
static int out(int fd, const char *p, size_t n)
{
    cstate *c = &cs[fd];
    if (c->plen == 0) {
        while (n) {
            ssize_t w = write(fd, p, n);
            if (w < 0) {
                if (errno == EAGAIN) break;
                if (errno == EINTR) continue;
                return -1;
            }
            p += w;
            n -= (size_t)w;
        }
        if (!n) return 0;
    }
    c->pend = realloc(c->pend, c->plen + n);
    memcpy(c->pend + c->plen, p, n);
    c->plen += n;
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd}; /* stop reading until flushed */
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
    return 0;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
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
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
    epoll_ctl(epfd, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int n = epoll_wait(epfd, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, c, &e);
                }
                continue;
            }
            cstate *c = &cs[fd];
            if (evs[i].events & EPOLLOUT) {
                while (c->poff < c->plen) {
                    ssize_t w = write(fd, c->pend + c->poff, c->plen - c->poff);
                    if (w < 0) break;
                    c->poff += (size_t)w;
                }
                if (c->poff == c->plen) {
                    free(c->pend);
                    c->pend = NULL;
                    c->plen = c->poff = 0;
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
                    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &e);
                } else if (errno != EAGAIN) {
                    drop(fd);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                drop(fd);
                continue;
            }
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
                if (out(fd, resp, sizeof resp - 1) < 0) { drop(fd); continue; }
                p += k;
                len -= k;
            }
            if (len && out(fd, p, len) < 0) drop(fd);
        }
    }
}
