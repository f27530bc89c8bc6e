/* libFuzzer harness: the server side of the opening handshake.
 * The input (after one control byte) is a request stream; a complete head
 * is parsed, checked with ws_handshake_check_request, and when accepted
 * answered with ws_handshake_server_response (choosing the first offered
 * subprotocol that is a token).  Invariants: the status is 0 or a 4xx with
 * a reason; the request info points inside the head; the key is 24 bytes;
 * the 101 response parses and passes the client's own check
 * (ws_handshake_check_response with the accept computed from the key), and
 * the subprotocol comes back; an error response parses with that status. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_util.h"
#include "handshake.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const char *base, size_t n, const char *p, size_t len, const char *what)
{
    FUZZ_CHECK(p >= base && p + len <= base + n, "%s outside the head", what);
}

static void parse_own_response(ws_buf *out, int want_status, ws_http_head *resp,
                               ws_http_header *hdrs, size_t cap)
{
    size_t scanned = 0;
    char *p = (char *)ws_buf_begin(out);
    size_t n = ws_buf_size(out);
    long end = ws_http_head_end(p, n, &scanned, 1 << 20);
    FUZZ_CHECK(end > 0, "own response has no head end (%ld)", end);
    memset(resp, 0, sizeof *resp);
    resp->headers = hdrs;
    resp->num_headers = cap;
    ws_err rc = ws_http_parse_response(p, (size_t)end, resp);
    FUZZ_CHECK(rc == WS_OK, "own response does not parse (%d): %.*s", rc, (int)n, p);
    FUZZ_CHECK(resp->status == want_status, "status %d, wanted %d", resp->status, want_status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
    ws_http_header hdrs[64];
    ws_http_head req;
    memset(&req, 0, sizeof req);
    req.headers = hdrs;
    req.num_headers = 64;
    if (ws_http_parse_request(buf, (size_t)end, &req) != WS_OK) {
        free(buf);
        return 0;
    }
    ws_server_request info;
    memset(&info, 0, sizeof info);
    const char *reason = NULL;
    int status = ws_handshake_check_request(&req, &info, &reason);
    ws_buf out;
    ws_buf_init(&out);
    ws_http_header rh[64];
    ws_http_head resp;
    char err[256];
    if (status != 0) {
        FUZZ_CHECK(status >= 400 && status <= 499, "status %d", status);
        FUZZ_CHECK(reason != NULL && reason[0], "no reason for %d", status);
        FUZZ_CHECK(ws_handshake_error_response(&out, status, reason, NULL, 0) == 0, "error resp");
        parse_own_response(&out, status, &resp, rh, 64);
        if (status == 426)
            FUZZ_CHECK(ws_http_find(&resp, "Sec-WebSocket-Version") != NULL, "426 without version");
        ws_buf_free(&out);
        free(buf);
        return 0;
    }
    inside(buf, (size_t)end, info.key, info.key_len, "key");
    FUZZ_CHECK(info.key_len == WS_KEY_LEN, "key length %zu", info.key_len);
    if (info.path != NULL && !(info.path_len == 1 && info.path[0] == '/'))
        inside(buf, (size_t)end, info.path, info.path_len, "path");
    if (info.query)
        inside(buf, (size_t)end, info.query, info.query_len, "query");
    if (info.origin)
        inside(buf, (size_t)end, info.origin->value, info.origin->value_len, "origin");

    /* Choose the first offered subprotocol that is a token (as the Lua
     * layer does with a matching server list). */
    char proto[128] = {0};
    const char *protocol = NULL;
    if (info.protocols && (ctl & 1)) {
        size_t pos = 0, el;
        const char *elem;
        if (ws_http_next_element(info.protocols->value, info.protocols->value_len, &pos, &elem,
                                 &el) &&
            el < sizeof proto && ws_http_is_token(elem, el)) {
            memcpy(proto, elem, el);
            protocol = proto;
        }
    }
    int rc = ws_handshake_server_response(&out, info.key, info.key_len, protocol, NULL, NULL, 0,
                                          err, sizeof err);
    FUZZ_CHECK(rc == 0, "server response failed: %s", err);
    parse_own_response(&out, 101, &resp, rh, 64);
    char accept[WS_ACCEPT_LEN + 1];
    ws_handshake_accept(info.key, info.key_len, accept);
    const char *offers[1] = {proto};
    ws_client_result res;
    rc = ws_handshake_check_response(&resp, accept, offers, protocol ? 1 : 0, NULL, &res, err,
                                     sizeof err);
    FUZZ_CHECK(rc == 0, "the client rejects our 101: %s", err);
    if (protocol)
        FUZZ_CHECK(res.protocol && res.protocol_len == strlen(proto) &&
                       memcmp(res.protocol, proto, res.protocol_len) == 0,
                   "protocol lost");
    else
        FUZZ_CHECK(res.protocol == NULL, "protocol appeared");
    ws_buf_free(&out);
    free(buf);
    return 0;
}
