#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* The self-pipe of the current role (supervisor or worker), -1 when none. */
static int pipe_r = -1, pipe_w = -1;
/* The stop signal that arrived (SIGTERM/SIGINT), 0 before. */
static volatile sig_atomic_t stop_sig;
static bool supervising;
static struct sigaction old_term, old_int, old_chld;
/* Forks seen by the atfork handler: only ever written in a child right
 * after fork, when it has one thread. */
static unsigned long generation;

static void close_pipe(void)
{
    if (pipe_r >= 0)
        close(pipe_r);
    if (pipe_w >= 0)
        close(pipe_w);
    pipe_r = pipe_w = -1;
}

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    int fdf = fcntl(fd, F_GETFD);
    if (fl < 0 || fdf < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, fdf | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

static int open_pipe(void)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    if (set_flags(fds[0]) < 0 || set_flags(fds[1]) < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        errno = e;
        return -1;
    }
    pipe_r = fds[0];
    pipe_w = fds[1];
    return 0;
}

/* Async-signal-safe: a store and a write (a full pipe already says it). */
static void on_signal(int sig)
{
    int saved = errno;
    if (sig != SIGCHLD && stop_sig == 0)
        stop_sig = sig;
    if (pipe_w >= 0) {
        char b = 1;
        ssize_t r = write(pipe_w, &b, 1);
        (void)r;
    }
    errno = saved;
}

static int handle(int sig, void (*fn)(int), struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
    return sigaction(sig, &sa, old);
}

static void drain(void)
{
    char buf[64];
    while (pipe_r >= 0 && read(pipe_r, buf, sizeof buf) > 0) {
    }
}

/* ---- the supervisor ------------------------------------------------------ */

int ws_proc_supervise_begin(void)
{
    if (supervising || pipe_r >= 0) {
        errno = EBUSY;
        return -1;
    }
    if (open_pipe() < 0)
        return -1;
    stop_sig = 0;
    if (handle(SIGCHLD, on_signal, &old_chld) < 0 || handle(SIGTERM, on_signal, &old_term) < 0 ||
        handle(SIGINT, on_signal, &old_int) < 0) {
        int e = errno;
        sigaction(SIGCHLD, &old_chld, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        close_pipe();
        errno = e;
        return -1;
    }
    supervising = true;
    return 0;
}

void ws_proc_supervise_end(void)
{
    if (!supervising)
        return;
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGCHLD, &old_chld, NULL);
    supervising = false;
    close_pipe();
    stop_sig = 0;
}

int ws_proc_wait(int timeout_ms)
{
    if (!supervising) {
        errno = EINVAL;
        return -1;
    }
    struct pollfd p = {.fd = pipe_r, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, timeout_ms < 0 ? -1 : timeout_ms) < 0 && errno != EINTR)
        return -1;
    drain();
    int sig = stop_sig;
    stop_sig = 0;
    return sig;
}

int ws_proc_reap(pid_t *pid, int *status)
{
    for (;;) {
        pid_t p = waitpid(-1, status, WNOHANG);
        if (p > 0) {
            *pid = p;
            return 1;
        }
        if (p == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* ---- the child ----------------------------------------------------------- */

static int setup_worker(pid_t parent)
{
    /* The supervisor's pipe and handlers are not the worker's. */
    sigaction(SIGCHLD, &old_chld, NULL);
    supervising = false;
    close_pipe();
    stop_sig = 0;
    if (open_pipe() < 0 || handle(SIGTERM, on_signal, NULL) < 0 ||
        handle(SIGINT, on_signal, NULL) < 0)
        return -1;
    /* OpenSSL 1.1.1+ and 3 reseed their generators when they see a new
     * pid; a fresh seed from the system costs little and does not rely
     * on that. */
    RAND_poll();
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    if (parent > 1 && getppid() != parent)
        raise(SIGTERM); /* the supervisor died before prctl */
    return 0;
}

pid_t ws_proc_fork(void)
{
    pid_t parent = getpid();
    fflush(NULL); /* buffered output would be written twice */
    pid_t pid = fork();
    if (pid == 0 && setup_worker(parent) < 0) {
        perror("lua-ws worker setup");
        _exit(70);
    }
    return pid;
}

static void count_fork(void)
{
    generation++;
}

static void watch_forks(void)
{
    /* Fails only with ENOMEM; then a loop used after a fork is not
     * recognised, as without this check. */
    (void)pthread_atfork(NULL, NULL, count_fork);
}

unsigned long ws_proc_generation(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, watch_forks);
    return generation;
}

/* ---- a worker ------------------------------------------------------------ */

bool ws_proc_stop_requested(void)
{
    return !supervising && stop_sig != 0;
}

int ws_proc_stop_signal(void)
{
    return supervising ? 0 : stop_sig;
}

int ws_proc_stop_fd(void)
{
    return supervising ? -1 : pipe_r;
}

void ws_proc_stop_drain(void)
{
    if (!supervising)
        drain();
}
