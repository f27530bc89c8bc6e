/* macOS hides SO_NOSIGPIPE under _POSIX_C_SOURCE. */
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#define _DARWIN_C_SOURCE
#endif
/* glibc declares SO_REUSEPORT only outside strict POSIX. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif
#include "net.h"
#include "pin.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    int fdf = fcntl(fd, F_GETFD);
    if (fdf < 0 || fcntl(fd, F_SETFD, fdf | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

/* SO_REUSEPORT when asked: -1 with errno set when the system lacks it,
 * so reuseport = true never silently means one process per port. */
static int set_reuseport(int fd, bool reuseport)
{
    if (!reuseport)
        return 0;
#ifdef SO_REUSEPORT
    int one = 1;
    return setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
#else
    (void)fd;
    errno = ENOPROTOOPT;
    return -1;
#endif
}

void ws_net_set_rcvlowat(int fd, int bytes)
{
#ifdef SO_RCVLOWAT
    setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof bytes);
#else
    (void)fd;
    (void)bytes;
#endif
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Without MSG_NOSIGNAL (see WS_NET_SEND_FLAGS) the socket itself must not
 * raise SIGPIPE. */
static void set_nosigpipe(int fd)
{
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
    (void)fd;
#endif
}

/* A listening socket of family af bound to the wildcard address; for
 * AF_INET6 with IPV6_V6ONLY off, so IPv4 clients come in as mapped
 * addresses.  -1 with errno set on failure. */
static int listen_any(int af, int port, bool reuseport, int backlog)
{
    int fd = socket(af, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    int ok;
    if (af == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_any;
        a6->sin6_port = htons((uint16_t)port);
        len = sizeof *a6;
        ok = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) == 0;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
        a4->sin_port = htons((uint16_t)port);
        len = sizeof *a4;
        ok = true;
    }
    if (ok && set_reuseport(fd, reuseport) == 0 && set_nonblock_cloexec(fd) == 0 &&
        bind(fd, (struct sockaddr *)&ss, len) == 0 && listen(fd, backlog > 0 ? backlog : 511) == 0)
        return fd;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int ws_net_listen(const char *host, int port, bool reuseport, int backlog, char *err,
                  size_t err_len)
{
    if (host && strcmp(host, "*") == 0) {
        /* Every address: one dual-stack IPv6 socket, or IPv4 alone where
         * IPv6 is missing or cannot carry IPv4. */
        int fd = listen_any(AF_INET6, port, reuseport, backlog);
        if (fd < 0 && errno != EADDRINUSE && errno != EACCES)
            fd = listen_any(AF_INET, port, reuseport, backlog);
        if (fd < 0)
            snprintf(err, err_len, "cannot listen on * port %d: %s", port, strerror(errno));
        return fd;
    }

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "cannot resolve '%s': %s", host ? host : "*", gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (set_reuseport(fd, reuseport) == 0 && set_nonblock_cloexec(fd) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, backlog > 0 ? backlog : 511) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, err_len, "cannot listen on %s port %d: %s", host ? host : "*", port,
                 strerror(saved));
    return fd;
}

static int unix_address(const char *path, struct sockaddr_un *sa, char *err, size_t err_len)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof sa->sun_path) {
        snprintf(err, err_len, "Unix socket path must be 1 to %d bytes",
                 (int)sizeof sa->sun_path - 1);
        return -1;
    }
    memcpy(sa->sun_path, path, n);
    return 0;
}

/* A socket file at path: remove it when nobody listens there any more. */
static int clear_stale(const char *path, const struct sockaddr_un *sa, char *err, size_t err_len)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, err_len, "cannot listen on %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, err_len, "cannot listen on %s: the file exists and is not a socket", path);
        return -1;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM, 0);
    if (probe < 0) {
        snprintf(err, err_len, "cannot listen on %s: socket: %s", path, strerror(errno));
        return -1;
    }
    int r = connect(probe, (const struct sockaddr *)sa, sizeof *sa);
    int e = errno;
    close(probe);
    if (r == 0 || (e != ECONNREFUSED && e != ENOENT)) {
        snprintf(err, err_len, "cannot listen on %s: %s", path,
                 r == 0 ? "something is listening there" : strerror(e));
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, err_len, "cannot remove the stale socket %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int ws_net_listen_unix(const char *path, int mode, int backlog, unsigned long *dev,
                       unsigned long *ino, char *err, size_t err_len)
{
    struct sockaddr_un sa;
    if (unix_address(path, &sa, err, err_len) != 0 || clear_stale(path, &sa, err, err_len) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        snprintf(err, err_len, "cannot listen on %s: socket: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    const char *what = "bind";
    bool bound = false;
    if (set_nonblock_cloexec(fd) == 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        bound = true;
        what = "chmod";
        if (mode < 0 || chmod(path, (mode_t)mode) == 0) {
            what = "listen";
            if (listen(fd, backlog > 0 ? backlog : 511) == 0 && stat(path, &st) == 0) {
                *dev = (unsigned long)st.st_dev;
                *ino = (unsigned long)st.st_ino;
                return fd;
            }
        }
    }
    int e = errno;
    if (bound)
        unlink(path);
    close(fd);
    snprintf(err, err_len, "cannot listen on %s: %s: %s", path, what, strerror(e));
    return -1;
}

void ws_net_unlink_unix(const char *path, unsigned long dev, unsigned long ino)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (unsigned long)st.st_dev == dev &&
        (unsigned long)st.st_ino == ino)
        unlink(path);
}

int ws_net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    int port = -1;
    char tmp[64];
    ws_net_addr_string((struct sockaddr *)&ss, tmp, sizeof tmp, &port);
    return port;
}

int ws_net_accept(int listen_fd, struct sockaddr_storage *peer, socklen_t *peer_len)
{
    *peer_len = sizeof *peer;
    int fd = accept(listen_fd, (struct sockaddr *)peer, peer_len);
    if (fd < 0)
        return -1;
    if (set_nonblock_cloexec(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    set_nodelay(fd);
    set_nosigpipe(fd);
    return fd;
}

int ws_net_connect(const struct sockaddr *addr, socklen_t len, char *err, size_t err_len)
{
    int fd = socket(addr->sa_family, SOCK_STREAM, 0);
    if (fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return -1;
    }
    if (set_nonblock_cloexec(fd) != 0) {
        snprintf(err, err_len, "fcntl: %s", strerror(errno));
        close(fd);
        return -1;
    }
    set_nodelay(fd);
    set_nosigpipe(fd);
    if (connect(fd, addr, len) != 0 && errno != EINPROGRESS) {
        snprintf(err, err_len, "connect: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int ws_net_connect_error(int fd)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
        return errno;
    return e;
}

void ws_net_addr_string(const struct sockaddr *addr, char *out, size_t out_len, int *port)
{
    out[0] = '\0';
    *port = -1;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)out_len);
        *port = ntohs(in->sin_port);
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        /* An IPv4 client of a dual-stack listener reads as IPv4. */
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], out, (socklen_t)out_len);
        else
            inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)out_len);
        *port = ntohs(in6->sin6_port);
    }
}

/* ---- resolution --------------------------------------------------------- */

/* A lookup runs getaddrinfo on a detached thread and reports through a
 * pipe the loop watches.  The request is shared by the two sides; the
 * last one done with it frees it. */
struct ws_resolve {
    ws_io io; /* first: the watcher's callback finds the request from it */
    ws_loop *loop;
    ws_resolve_cb cb;
    void *ud;
    int pipe_rd, pipe_wr;
    pthread_mutex_t lock;
    int refs; /* thread + loop side */
    bool cancelled;
    int gai_err;
    struct addrinfo *res;
    char port[16];
    char host[];
};

static void resolve_unref(ws_resolve *r)
{
    pthread_mutex_lock(&r->lock);
    int left = --r->refs;
    pthread_mutex_unlock(&r->lock);
    if (left)
        return;
    if (r->res)
        freeaddrinfo(r->res);
    close(r->pipe_rd);
    close(r->pipe_wr);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static void *resolve_thread(void *arg)
{
    ws_resolve *r = arg;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(r->host, r->port, &hints, &res);
    pthread_mutex_lock(&r->lock);
    r->gai_err = rc;
    r->res = rc == 0 ? res : NULL;
    pthread_mutex_unlock(&r->lock);
    char one = 1;
    ssize_t w;
    do
        w = write(r->pipe_wr, &one, 1);
    while (w < 0 && errno == EINTR);
    resolve_unref(r);
    return NULL;
}

static void resolve_ready(ws_loop *loop, ws_io *io, unsigned events)
{
    (void)events;
    ws_resolve *r = (ws_resolve *)(void *)io; /* io is its first member */
    ws_io_stop(loop, &r->io);
    pthread_mutex_lock(&r->lock);
    struct addrinfo *res = r->res;
    int rc = r->gai_err;
    r->res = NULL;
    pthread_mutex_unlock(&r->lock);
    char msg[300];
    if (!res)
        snprintf(msg, sizeof msg, "cannot resolve '%s': %s", r->host, gai_strerror(rc));
    ws_resolve_cb cb = r->cb;
    void *cbud = r->ud;
    resolve_unref(r);
    cb(loop, res, res ? NULL : msg, cbud);
}

ws_resolve *ws_resolve_start(ws_loop *loop, const char *host, int port, ws_resolve_cb cb, void *ud,
                             char *err, size_t err_len)
{
    /* The thread runs our code after it reported, maybe after unloading. */
    ws_pin_module();
    size_t hl = strlen(host);
    ws_resolve *r = calloc(1, sizeof *r + hl + 1);
    if (!r) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    memcpy(r->host, host, hl + 1);
    snprintf(r->port, sizeof r->port, "%d", port);
    r->loop = loop;
    r->cb = cb;
    r->ud = ud;
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(err, err_len, "cannot resolve '%s': pipe: %s", host, strerror(errno));
        free(r);
        return NULL;
    }
    r->pipe_rd = fds[0];
    r->pipe_wr = fds[1];
    set_nonblock_cloexec(fds[0]);
    set_nonblock_cloexec(fds[1]);
    pthread_mutex_init(&r->lock, NULL);
    r->refs = 2;
    ws_io_init(&r->io, r->pipe_rd);
    if (ws_io_start(loop, &r->io, resolve_ready, WS_IO_READ) != 0) {
        snprintf(err, err_len, "cannot watch the resolver pipe");
        r->refs = 1;
        resolve_unref(r);
        return NULL;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int rc = pthread_create(&th, &attr, resolve_thread, r);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        snprintf(err, err_len, "cannot start a resolver thread: %s", strerror(rc));
        ws_io_stop(loop, &r->io);
        r->refs = 1;
        resolve_unref(r);
        return NULL;
    }
    return r;
}

void ws_resolve_cancel(ws_resolve *r)
{
    if (!r)
        return;
    ws_io_stop(r->loop, &r->io);
    resolve_unref(r); /* the thread frees it when it finishes */
}
