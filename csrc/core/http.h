/* Bounded, zero-copy HTTP/1.1 head parser for the opening handshake.
 * Header names and values point into the caller's buffer.  The buffer is
 * mutable: obsolete line folding (RFC 7230 3.2.4) is replaced in place by
 * spaces so a folded value stays one contiguous span. */
#ifndef WS_HTTP_H
#define WS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct ws_http_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading/trailing whitespace trimmed */
    size_t value_len;
} ws_http_header;

typedef struct ws_http_head {
    /* request line */
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    /* status line */
    int status;
    const char *reason;
    size_t reason_len;
    int version_minor;       /* HTTP/1.x */
    ws_http_header *headers; /* caller's array */
    size_t num_headers;      /* in: capacity, out: count */
} ws_http_head;

/* Find the end of a head ("\r\n\r\n", bare "\n\n" tolerated).  *scanned
 * holds how far a previous call looked so a slow sender is not rescanned;
 * start it at 0.  Returns the head length including the blank line (> 0),
 * or a negative ws_err: WS_E_NEED_MORE when incomplete, WS_E_TOO_BIG when
 * max_head bytes hold no end. */
long ws_http_head_end(const char *buf, size_t len, size_t *scanned, size_t max_head);

/* Parse a complete head of head_len bytes (as found by ws_http_head_end).
 * Returns WS_OK, WS_E_PROTOCOL (malformed head), WS_E_TOO_MANY (more
 * headers than head->num_headers holds) or WS_E_VERSION (a request not
 * HTTP/1.1, a response not HTTP/1.x). */
ws_err ws_http_parse_request(char *buf, size_t head_len, ws_http_head *head);
ws_err ws_http_parse_response(char *buf, size_t head_len, ws_http_head *head);

/* First header with this name (case-insensitive), or NULL. */
const ws_http_header *ws_http_find(const ws_http_head *head, const char *name);
/* Number of headers with this name. */
size_t ws_http_count(const ws_http_head *head, const char *name);

/* True when any header called name holds token in its comma-separated list
 * (case-insensitive, whitespace around elements ignored). */
bool ws_http_has_token(const ws_http_head *head, const char *name, const char *token);

/* Iterate the comma-separated elements of a value: returns false at the end.
 * *pos starts at 0; *elem and *elem_len get the trimmed element (empty elements
 * are skipped). */
bool ws_http_next_element(const char *value, size_t value_len, size_t *pos, const char **elem,
                          size_t *elem_len);

/* False when the first len bytes of a request cannot begin a valid request
 * line (a method token, then a target without control characters): lets a
 * server answer garbage at once instead of waiting for a line end. */
bool ws_http_request_prefix_ok(const char *buf, size_t len);

/* The status for a request whose head passed the size limit: 431 when it
 * starts with a valid request line (its header fields are too large), 414
 * when the request line itself is still arriving (a target that long),
 * 400 when it is not HTTP at all. */
int ws_http_oversized_request(const char *buf, size_t len);

/* Case-insensitive (ASCII) comparison of two spans. */
bool ws_http_ieq(const char *a, size_t an, const char *b, size_t bn);

/* RFC 7230 token check. */
bool ws_http_is_token(const char *s, size_t n);

#endif
