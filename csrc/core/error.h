/* The one error convention of the core: every call that can fail returns a
 * ws_err (WS_OK is 0), and where there is more to say it writes the detail
 * into a buffer the caller passes (err, err_len).  Callers decide by the
 * code, never by the text.  Calls that return a count or a length on
 * success return it > 0, or a negative ws_err. */
#ifndef WS_ERROR_H
#define WS_ERROR_H

typedef enum ws_err {
    WS_OK = 0,
    WS_E_STATE = -1,     /* not OPEN (or the handshake is not at that step) */
    WS_E_NOMEM = -2,     /* out of memory */
    WS_E_BUSY = -3,      /* a fragmented message is being sent */
    WS_E_ARG = -4,       /* the caller's argument is invalid (detail names it) */
    WS_E_RANDOM = -5,    /* the random number generator failed */
    WS_E_PROTOCOL = -6,  /* the peer broke the protocol (detail says how) */
    WS_E_FULL = -7,      /* more output is buffered than the limit allows */
    WS_E_NEED_MORE = -8, /* the input ends early: call again with more bytes */
    WS_E_TOO_BIG = -9,   /* input passes a size limit (HTTP head, inflated message) */
    WS_E_TOO_MANY = -10, /* more HTTP header fields than the caller's array holds */
    WS_E_VERSION = -11,  /* an HTTP version the handshake does not accept */
    WS_E_DATA = -12,     /* corrupt compressed data */
    WS_E_UTF8 = -13      /* a text message is not valid UTF-8 */
} ws_err;

/* A short text for code. */
const char *ws_strerror(int code);

#endif
