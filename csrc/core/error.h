/* The one error convention of the core: every call that can fail returns a
 * ws_err (WS_OK is 0), and where there is more to say it writes the detail
 * into a buffer the caller passes (err, err_len).  Callers decide by the
 * code, never by the text. */
#ifndef WS_ERROR_H
#define WS_ERROR_H

typedef enum ws_err {
    WS_OK = 0,
    WS_E_STATE = -1,    /* not OPEN (or the handshake is not at that step) */
    WS_E_NOMEM = -2,    /* out of memory */
    WS_E_BUSY = -3,     /* a fragmented message is being sent */
    WS_E_ARG = -4,      /* the caller's argument is invalid (detail names it) */
    WS_E_RANDOM = -5,   /* the random number generator failed */
    WS_E_PROTOCOL = -6, /* the peer broke the protocol (detail says how) */
    WS_E_FULL = -7      /* more output is buffered than the limit allows */
} ws_err;

/* A short text for code. */
const char *ws_strerror(int code);

#endif
