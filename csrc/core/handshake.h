/* The opening handshake of RFC 6455 section 4, both roles: building the
 * client request, checking the server response, validating a request on
 * the server and building the 101 or error response.  No I/O. */
#ifndef WS_HANDSHAKE_H
#define WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "buf.h"
#include "http.h"

#define WS_KEY_LEN    24 /* base64 of 16 random bytes */
#define WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */

typedef struct ws_kv {
    const char *name;
    const char *value;
} ws_kv;

typedef struct ws_client_request {
    const char *host; /* host name or IP literal (IPv6 without brackets) */
    int port;
    bool secure;                  /* wss: default port 443 instead of 80 */
    const char *resource;         /* path and query, "/" when empty */
    const char *origin;           /* NULL: no Origin header */
    const char *const *protocols; /* offered subprotocols */
    size_t num_protocols;
    const char *extensions; /* Sec-WebSocket-Extensions offer, NULL: none */
    const ws_kv *headers;   /* extra headers */
    size_t num_headers;
    const char *key; /* NULL: fresh random key; tests pass a fixed one */
} ws_client_request;

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), NUL-ended. */
void ws_handshake_accept(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* Append the request to out and write the expected accept value.
 * WS_OK, WS_E_ARG (a bad header name or value, a reserved header, a bad
 * protocol token), WS_E_RANDOM or WS_E_NOMEM; the detail in err. */
int ws_handshake_client_request(ws_buf *out, const ws_client_request *req,
                                char accept[WS_ACCEPT_LEN + 1], char *err, size_t err_len);

typedef struct ws_client_result {
    const char *protocol; /* points into the response head, NULL if none */
    size_t protocol_len;
    const char *extensions; /* accepted extensions value, NULL if none */
    size_t extensions_len;
} ws_client_result;

/* Check a parsed response against the request.  WS_OK, or WS_E_PROTOCOL
 * with the detail in err ("expected status 101, got 403", "Sec-WebSocket-Accept
 * mismatch", "server chose subprotocol 'x' that was not offered", ...). */
int ws_handshake_check_response(const ws_http_head *resp, const char *accept,
                                const char *const *protocols, size_t num_protocols,
                                const char *offered_extensions, ws_client_result *res, char *err,
                                size_t err_len);

typedef struct ws_server_request {
    const char *key; /* Sec-WebSocket-Key, points into the head */
    size_t key_len;
    const char *path; /* request target up to '?' */
    size_t path_len;
    const char *query; /* after '?', NULL if none */
    size_t query_len;
    const ws_http_header *origin;     /* NULL if absent */
    const ws_http_header *protocols;  /* first Sec-WebSocket-Protocol, NULL if absent */
    const ws_http_header *extensions; /* first Sec-WebSocket-Extensions, NULL if absent */
    size_t head_len;                  /* bytes of the request head */
} ws_server_request;

/* Validate a parsed request.  Returns 0, or the HTTP status to answer
 * (400, 405 for a method other than GET, 426 for a wrong version) with a
 * short reason in *reason (a static string). */
int ws_handshake_check_request(const ws_http_head *req, ws_server_request *info,
                               const char **reason);

/* The subprotocol to answer: the first the client offered (across every
 * Sec-WebSocket-Protocol header, in its order) that supported lists;
 * returns that entry of supported, or NULL. */
const char *ws_handshake_choose_protocol(const ws_http_head *req, const char *const *supported,
                                         size_t num_supported);

/* Check extra headers an application wants to send: names must be tokens
 * and not set by the handshake itself (Host, Upgrade, Connection,
 * Sec-WebSocket-*, Content-Length, Transfer-Encoding), values must hold no
 * control characters but HTAB.  WS_OK, or WS_E_ARG with the detail in err. */
int ws_handshake_check_headers(const ws_kv *headers, size_t num_headers, char *err, size_t err_len);

/* Append "101 Switching Protocols" with the accept for key, the chosen
 * protocol and extensions (NULL: none) and extra headers.  WS_OK, WS_E_ARG
 * (a bad header) or WS_E_NOMEM, the detail in err. */
int ws_handshake_server_response(ws_buf *out, const char *key, size_t key_len, const char *protocol,
                                 const char *extensions, const ws_kv *headers, size_t num_headers,
                                 char *err, size_t err_len);

/* Append an error response with the status, the reason as a text/plain
 * body, "Connection: close", and "Sec-WebSocket-Version: 13" for 426.
 * WS_OK or WS_E_NOMEM. */
int ws_handshake_error_response(ws_buf *out, int status, const char *reason, const ws_kv *headers,
                                size_t num_headers);

/* Append a plain HTTP response (for requests that are not upgrades):
 * status line with the standard reason phrase, Content-Length,
 * "Connection: close", a text/plain Content-Type unless headers name one,
 * "Sec-WebSocket-Version: 13" for 426, the headers, then the body.  A 204
 * or 304 has neither Content-Length nor a default Content-Type.
 * WS_OK, WS_E_ARG with err set for a status outside 200..599, a body with
 * 204/304, or a bad header, or WS_E_NOMEM. */
int ws_handshake_http_response(ws_buf *out, int status, const ws_kv *headers, size_t num_headers,
                               const uint8_t *body, size_t body_len, char *err, size_t err_len);

#endif
