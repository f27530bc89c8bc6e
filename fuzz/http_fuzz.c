/* libFuzzer harness: the HTTP head parser.
 * Input: byte 0 picks request/response and the header capacity, byte 1 the
 * head size limit, byte 2 a seed for chunk sizes; the rest is the stream.
 * Invariants: ws_http_head_end fed the stream in chunks (resuming with the
 * same `scanned`) gives the same answer as one call on the whole stream;
 * the end is within the limit and ends with a blank line; a parsed head's
 * method, target, reason, header names and values all point inside the
 * head, names are tokens, values are trimmed and hold no CR/LF, the count
 * never exceeds the capacity; parsing is deterministic. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_span(const char *base, size_t n, const char *p, size_t len, const char *what)
{
    if (len == 0 && p == NULL)
        return;
    FUZZ_CHECK(p >= base && p + len <= base + n, "%s outside the head", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader r = {data, size};
    uint8_t mode = fuzz_byte(&r);
    uint8_t lim = fuzz_byte(&r);
    uint8_t seed = fuzz_byte(&r);
    bool response = mode & 1;
    size_t cap = (size_t)(mode >> 1) % 70; /* 0..69 headers */
    size_t max_head = 16 + (size_t)lim * 16;
    size_t n = r.n;
    /* An exact-size heap copy so ASan sees any read past the end. */
    char *buf = malloc(n ? n : 1);
    if (n)
        memcpy(buf, r.p, n);

    size_t scanned = 0;
    long whole = ws_http_head_end(buf, n, &scanned, max_head);
    FUZZ_CHECK(whole > 0 || whole == WS_E_NEED_MORE || whole == WS_E_TOO_BIG, "head_end %ld",
               whole);
    if (whole > 0) {
        FUZZ_CHECK((size_t)whole <= n && (size_t)whole <= max_head, "end %ld", whole);
        FUZZ_CHECK(buf[whole - 1] == '\n', "end not after a line feed");
    }
    if (whole == WS_E_NEED_MORE)
        FUZZ_CHECK(n < max_head, "incomplete with %zu >= %zu bytes", n, max_head);

    /* The same stream in chunks. */
    scanned = 0;
    size_t len = 0;
    long chunked = WS_E_NEED_MORE;
    unsigned x = seed;
    while (len < n) {
        x = x * 1103515245u + 12345u;
        size_t step = 1 + (x >> 16) % 7;
        if ((x >> 8) & 1)
            step = 1 + (x >> 12) % 97;
        len = len + step > n ? n : len + step;
        chunked = ws_http_head_end(buf, len, &scanned, max_head);
        FUZZ_CHECK(scanned <= len, "scanned %zu past %zu", scanned, len);
        if (chunked != WS_E_NEED_MORE)
            break;
    }
    if (n == 0)
        chunked = ws_http_head_end(buf, 0, &scanned, max_head);
    FUZZ_CHECK(chunked == whole, "chunked %ld, whole %ld (len %zu)", chunked, whole, len);

    if (whole > 0) {
        size_t hl = (size_t)whole;
        char *head = malloc(hl);
        memcpy(head, buf, hl);
        ws_http_header *hdrs = malloc((cap ? cap : 1) * sizeof *hdrs);
        ws_http_head h;
        memset(&h, 0, sizeof h);
        h.headers = hdrs;
        h.num_headers = cap;
        ws_err rc =
            response ? ws_http_parse_response(head, hl, &h) : ws_http_parse_request(head, hl, &h);
        FUZZ_CHECK(rc == WS_OK || rc == WS_E_PROTOCOL || rc == WS_E_TOO_MANY || rc == WS_E_VERSION,
                   "rc %d", rc);
        FUZZ_CHECK(h.num_headers <= cap, "%zu headers, capacity %zu", h.num_headers, cap);
        if (rc == 0) {
            if (response) {
                FUZZ_CHECK(h.status >= 0 && h.status <= 999, "status %d", h.status);
                check_span(head, hl, h.reason, h.reason_len, "reason");
            } else {
                FUZZ_CHECK(h.method_len > 0 && ws_http_is_token(h.method, h.method_len), "method");
                check_span(head, hl, h.method, h.method_len, "method");
                check_span(head, hl, h.target, h.target_len, "target");
                FUZZ_CHECK(h.target_len > 0, "empty target");
                FUZZ_CHECK(h.version_minor >= 1, "request version");
            }
            for (size_t i = 0; i < h.num_headers; i++) {
                const ws_http_header *e = &h.headers[i];
                check_span(head, hl, e->name, e->name_len, "name");
                check_span(head, hl, e->value, e->value_len, "value");
                FUZZ_CHECK(ws_http_is_token(e->name, e->name_len), "name not a token");
                FUZZ_CHECK(memchr(e->value, '\r', e->value_len) == NULL &&
                               memchr(e->value, '\n', e->value_len) == NULL,
                           "CR/LF in a value");
                if (e->value_len) {
                    FUZZ_CHECK(e->value[0] != ' ' && e->value[0] != '\t', "value not trimmed");
                    FUZZ_CHECK(e->value[e->value_len - 1] != ' ' &&
                                   e->value[e->value_len - 1] != '\t',
                               "value not trimmed at the end");
                }
                /* Element iteration stays inside the value. */
                size_t pos = 0, el;
                const char *elem;
                int guard = 0;
                while (ws_http_next_element(e->value, e->value_len, &pos, &elem, &el)) {
                    check_span(e->value, e->value_len, elem, el, "element");
                    FUZZ_CHECK(el > 0 && ++guard <= (int)e->value_len + 1, "element loop");
                }
                FUZZ_CHECK(ws_http_find(&h, "x") == NULL || h.num_headers > 0, "find");
            }
            (void)ws_http_has_token(&h, "Connection", "upgrade");
            (void)ws_http_count(&h, "Upgrade");
        }
        /* Parsing twice (the first pass may have blanked obs-folds) gives the
         * same result code. */
        ws_http_head h2;
        memset(&h2, 0, sizeof h2);
        h2.headers = hdrs;
        h2.num_headers = cap;
        int rc2 =
            response ? ws_http_parse_response(head, hl, &h2) : ws_http_parse_request(head, hl, &h2);
        FUZZ_CHECK(rc2 == rc, "reparse %d then %d", rc, rc2);
        free(hdrs);
        free(head);
    }
    if (!response) {
        (void)ws_http_request_prefix_ok(buf, n);
        /* Any prefix may be judged as an oversized head: only these. */
        int st = ws_http_oversized_request(buf, n);
        FUZZ_CHECK(st == 400 || st == 414 || st == 431, "oversized status %d", st);
        if (st == 431)
            FUZZ_CHECK(memchr(buf, '\n', n) != NULL, "431 without a request line");
    }
    free(buf);
    return 0;
}
