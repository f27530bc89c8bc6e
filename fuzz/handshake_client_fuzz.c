/* libFuzzer harness: the client's check of the server's response.
 * A fixed request (key, two offered subprotocols, a deflate offer) is
 * answered by the fuzz input.  Invariants: a status other than 101 always
 * fails with a message naming it; success needs the exact accept value,
 * returns a protocol that was offered and extensions that point inside
 * the head; the error message is NUL-terminated within the buffer. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "handshake.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    static const char *const offers[] = {"chat.v1", "superchat"};
    static const char ext_offer[] = "permessage-deflate; client_max_window_bits, x-test";
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    size_t n = size - 1;
    char *buf = malloc(n ? n : 1);
    if (n)
        memcpy(buf, data + 1, n);
    size_t scanned = 0;
    long end = ws_http_head_end(buf, n, &scanned, 8192);
    if (end < 0) {
        free(buf);
        return 0;
    }
    size_t cap = 1 + ctl % 64;
    ws_http_header *hdrs = malloc(cap * sizeof *hdrs);
    ws_http_head resp;
    memset(&resp, 0, sizeof resp);
    resp.headers = hdrs;
    resp.num_headers = cap;
    if (ws_http_parse_response(buf, (size_t)end, &resp) == WS_OK) {
        char accept[WS_ACCEPT_LEN + 1];
        ws_handshake_accept(key, strlen(key), accept);
        FUZZ_CHECK(strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "accept of the RFC key");
        ws_client_result res;
        char err[200];
        memset(err, 'x', sizeof err);
        size_t nprot = (ctl >> 6) % 3;
        int rc = ws_handshake_check_response(
            &resp, accept, offers, nprot, (ctl & 0x20) ? ext_offer : NULL, &res, err, sizeof err);
        if (rc != 0) {
            FUZZ_CHECK(rc == WS_E_PROTOCOL, "rc %d", rc);
            FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL, "error not terminated");
            FUZZ_CHECK(err[0] != '\0', "empty error");
        } else {
            FUZZ_CHECK(resp.status == 101, "accepted status %d", resp.status);
            const ws_http_header *a = ws_http_find(&resp, "Sec-WebSocket-Accept");
            FUZZ_CHECK(a && a->value_len == WS_ACCEPT_LEN && memcmp(a->value, accept, 28) == 0,
                       "accepted without the right accept");
            if (res.protocol) {
                bool found = false;
                for (size_t i = 0; i < nprot; i++)
                    found |= strlen(offers[i]) == res.protocol_len &&
                             memcmp(offers[i], res.protocol, res.protocol_len) == 0;
                FUZZ_CHECK(found, "protocol not offered");
            }
            if (res.extensions) {
                FUZZ_CHECK(ctl & 0x20, "extensions accepted without an offer");
                FUZZ_CHECK(res.extensions >= buf &&
                               res.extensions + res.extensions_len <= buf + end,
                           "extensions outside the head");
            }
        }
    }
    free(hdrs);
    free(buf);
    return 0;
}
