/* bench/c100k: the floor for a fan-out, a plain C server over raw TCP.
 * It answers the WebSocket upgrade (the minimum: Sec-WebSocket-Accept) and
 * then holds the sockets; a request to the control port
 *   GET /pub?t0=<ns>&r=<round> HTTP/1.1
 * frames one message once and write()s the same bytes to every socket, in
 * a loop, then answers with the number of sockets written to.
 *
 *   c100k_raw PORT CTL_PORT
 *
 * Single-threaded epoll; the fd limit is raised to the hard limit. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_CAP 1024

typedef struct peer {
    int fd;
    int upgraded;
    size_t len;
    char *head; /* while upgrading */
} peer;

static peer **peers; /* by fd */
static int *open_fds;
static size_t n_open;
static int epfd, lfd, cfd;

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 65535) < 0) {
        perror("listen");
        exit(1);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    return fd;
}

static void drop(int fd)
{
    peer *p = peers[fd];
    if (p) {
        if (p->upgraded)
            for (size_t i = 0; i < n_open; i++)
                if (open_fds[i] == fd) {
                    open_fds[i] = open_fds[--n_open];
                    break;
                }
        free(p->head);
        free(p);
        peers[fd] = NULL;
    }
    close(fd);
}

static void upgrade(peer *p)
{
    char *k = strcasestr(p->head, "Sec-WebSocket-Key:");
    if (!k) {
        drop(p->fd);
        return;
    }
    k += 18;
    while (*k == ' ')
        k++;
    char key[128];
    size_t kl = strcspn(k, "\r\n ");
    if (kl > 60) {
        drop(p->fd);
        return;
    }
    memcpy(key, k, kl);
    memcpy(key + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1((unsigned char *)key, kl + 36, sha);
    char acc[64];
    EVP_EncodeBlock((unsigned char *)acc, sha, sizeof sha);
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    if (write(p->fd, resp, (size_t)n) != n) {
        drop(p->fd);
        return;
    }
    free(p->head);
    p->head = NULL;
    p->upgraded = 1;
    open_fds[n_open++] = p->fd;
}

/* The fan-out: one frame, written to every socket. */
static size_t publish(unsigned long long t0, int r)
{
    uint8_t frame[2 + 125];
    char payload[64];
    int pl = snprintf(payload, sizeof payload, "t0=%llu;r=%d;", t0, r);
    memset(payload + pl, '.', sizeof payload - (size_t)pl);
    frame[0] = 0x82;
    frame[1] = (uint8_t)sizeof payload;
    memcpy(frame + 2, payload, sizeof payload);
    size_t sent = 0;
    for (size_t i = 0; i < n_open; i++)
        if (write(open_fds[i], frame, 2 + sizeof payload) == (ssize_t)(2 + sizeof payload))
            sent++;
    return sent;
}

static void control(void)
{
    int fd = accept4(cfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    char req[1024];
    size_t len = 0;
    while (len < sizeof req - 1) { /* blocking: the driver sends it at once */
        ssize_t r = read(fd, req + len, sizeof req - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        req[len] = 0;
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[len] = 0;
    unsigned long long t0 = 0;
    int round = 0;
    size_t sent = 0;
    if (sscanf(req, "GET /pub?t0=%llu&r=%d", &t0, &round) == 2)
        sent = publish(t0, round);
    char body[32], resp[128];
    int bl = snprintf(body, sizeof body, "%zu", sent);
    int n =
        snprintf(resp, sizeof resp,
                 "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", bl, body);
    ssize_t w = write(fd, resp, (size_t)n);
    (void)w;
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: c100k_raw PORT CTL_PORT\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    peers = calloc(rl.rlim_cur + 1, sizeof *peers);
    open_fds = calloc(rl.rlim_cur + 1, sizeof *open_fds);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    lfd = listen_on(atoi(argv[1]));
    cfd = listen_on(atoi(argv[2]));
    printf("listening on ws://127.0.0.1:%s/\n", argv[1]);
    fflush(stdout);
    struct epoll_event evs[1024];
    for (;;) {
        int n = epoll_wait(epfd, evs, 1024, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == cfd) {
                control();
            } else if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    peer *p = calloc(1, sizeof *p);
                    p->fd = c;
                    peers[c] = p;
                    struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, c, &ev);
                }
            } else {
                peer *p = peers[fd];
                char buf[4096];
                ssize_t r = read(fd, buf, sizeof buf);
                if (r <= 0) {
                    if (r < 0 && errno == EAGAIN)
                        continue;
                    drop(fd);
                    continue;
                }
                if (p && !p->upgraded) {
                    if (!p->head)
                        p->head = malloc(HEAD_CAP);
                    size_t take =
                        (size_t)r < HEAD_CAP - 1 - p->len ? (size_t)r : HEAD_CAP - 1 - p->len;
                    memcpy(p->head + p->len, buf, take);
                    p->len += take;
                    p->head[p->len] = 0;
                    if (strstr(p->head, "\r\n\r\n"))
                        upgrade(p);
                    else if (p->len >= HEAD_CAP - 1)
                        drop(fd);
                }
            }
        }
    }
}
