/* Worker processes: fork, the supervisor's wait for signals and dead
 * children, and the stop request a worker receives (SIGTERM/SIGINT).
 *
 * Signals and forks are process-wide, so this file keeps the only global
 * state of the library: the self-pipe its handlers write to, the signal
 * that arrived and the count of forks.  Handlers only store a sig_atomic_t and write(2) one byte
 * (async-signal-safe); everything else happens when the supervisor's wait
 * or the worker's loop notices the byte. */
#ifndef WS_PROC_H
#define WS_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* ---- the supervisor ------------------------------------------------------ */

/* Install handlers for SIGTERM, SIGINT and SIGCHLD (the previous ones are
 * kept for ws_proc_supervise_end).  0, or -1 with errno set (EBUSY when
 * already supervising). */
int ws_proc_supervise_begin(void);
/* Restore the previous handlers; idempotent. */
void ws_proc_supervise_end(void);

/* Wait at most timeout_ms (negative: without limit) until a signal came,
 * and drain the pipe.  Returns the stop signal (SIGTERM or SIGINT) that
 * arrived since the last call, 0 when none did (a child may have died:
 * call ws_proc_reap), -1 with errno set on failure. */
int ws_proc_wait(int timeout_ms);

/* One dead child without waiting: 1 and *pid, *status (as waitpid's) when
 * one was reaped, 0 when none is dead yet, -1 with errno (ECHILD: no child
 * left). */
int ws_proc_reap(pid_t *pid, int *status);

/* fork(2) after flushing stdio.  In the child: the supervisor's handlers
 * are reset, OpenSSL's random generator is reseeded (it also detects the
 * fork itself), the process asks the kernel for SIGTERM when the
 * supervisor dies (Linux), and SIGTERM/SIGINT become stop requests (see
 * below).  Returns as fork(2); -1 with errno when fork or the child's
 * setup fails (a child whose setup fails exits with status 70). */
pid_t ws_proc_fork(void);

/* The fork generation of this process: 0 until a fork, one more in the
 * child of each fork(2) made after the first call, whoever calls fork
 * (ws_proc_fork or the application).  The first call registers the
 * pthread_atfork handler that counts; a thing made with generation g
 * belongs to another process when the generation is no longer g.  Cheap:
 * one load, no system call. */
unsigned long ws_proc_generation(void);

/* ---- a worker ------------------------------------------------------------ */

/* True once SIGTERM or SIGINT reached this worker. */
bool ws_proc_stop_requested(void);
/* The signal that asked to stop (0 before). */
int ws_proc_stop_signal(void);
/* The read end of the worker's self-pipe (readable once a stop was
 * requested; loops watch it to wake up), -1 outside workers. */
int ws_proc_stop_fd(void);
/* Empty the self-pipe (the request itself stays). */
void ws_proc_stop_drain(void);

#endif
