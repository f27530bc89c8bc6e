/* The opening handshake of RFC 6455 section 4.  SHA-1, base64 and the key's
 * randomness come from OpenSSL. */
#include "handshake.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* Headers the handshake itself writes, or that would change how the bytes
 * after the head are read: an application may not set them. */
static const char *const reserved_headers[] = {
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Content-Length",
    "Transfer-Encoding",
};

/* code, with the detail fmt (one "%.*s" for s) in err */
static int fail(int code, char *err, size_t err_len, const char *fmt, const char *s, size_t n)
{
    if (err_len > 0)
        snprintf(err, err_len, fmt, (int)(n > 64 ? 64 : n), s);
    return code;
}

static int failmsg(int code, char *err, size_t err_len, const char *msg)
{
    if (err_len > 0)
        snprintf(err, err_len, "%s", msg);
    return code;
}

void ws_handshake_accept(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int ok = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx != NULL) {
        ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) && EVP_DigestUpdate(ctx, key, key_len) &&
             EVP_DigestUpdate(ctx, ws_guid, sizeof ws_guid - 1) &&
             EVP_DigestFinal_ex(ctx, md, &md_len);
        EVP_MD_CTX_free(ctx);
    }
    if (!ok || md_len != 20) {
        /* An empty accept never matches, so the handshake fails safely. */
        out[0] = '\0';
        return;
    }
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    out[WS_ACCEPT_LEN] = '\0';
}

/* A field value we are willing to send: VCHAR, SP, HTAB, obs-text. */
static bool is_safe_value(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static bool is_reserved(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof reserved_headers / sizeof reserved_headers[0]; i++)
        if (ws_http_ieq(name, n, reserved_headers[i], strlen(reserved_headers[i])))
            return true;
    return false;
}

int ws_handshake_check_headers(const ws_kv *headers, size_t num, char *err, size_t err_len)
{
    for (size_t i = 0; i < num; i++) {
        const char *name = headers[i].name, *value = headers[i].value;
        if (name == NULL || !ws_http_is_token(name, strlen(name)))
            return fail(WS_E_ARG, err, err_len, "invalid header name '%.*s'", name ? name : "",
                        name ? strlen(name) : 0);
        if (is_reserved(name))
            return fail(WS_E_ARG, err, err_len,
                        "header '%.*s' is set by the handshake and may not be given", name,
                        strlen(name));
        if (value == NULL || !is_safe_value(value))
            return fail(WS_E_ARG, err, err_len,
                        "invalid value for header '%.*s' (control characters)", name, strlen(name));
    }
    return WS_OK;
}

static int put_header(ws_buf *out, const char *name, const char *value)
{
    return ws_buf_puts(out, name) || ws_buf_append(out, ": ", 2) || ws_buf_puts(out, value) ||
           ws_buf_append(out, "\r\n", 2);
}

static int put_extra_headers(ws_buf *out, const ws_kv *headers, size_t num)
{
    for (size_t i = 0; i < num; i++)
        if (put_header(out, headers[i].name, headers[i].value))
            return -1;
    return 0;
}

/* Request-target and host must not break the request line or header. */
static bool is_visible(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return false;
    return true;
}

static int client_request(ws_buf *out, const ws_client_request *req, char accept[WS_ACCEPT_LEN + 1],
                          char *err, size_t err_len)
{
    const char *resource = req->resource && req->resource[0] ? req->resource : "/";
    if (req->host == NULL || req->host[0] == '\0' || !is_visible(req->host))
        return fail(WS_E_ARG, err, err_len, "invalid host '%.*s'", req->host ? req->host : "",
                    req->host ? strlen(req->host) : 0);
    if (!is_visible(resource))
        return fail(WS_E_ARG, err, err_len, "invalid resource '%.*s'", resource, strlen(resource));
    if (req->port < 1 || req->port > 65535)
        return failmsg(WS_E_ARG, err, err_len, "invalid port");

    char key[WS_KEY_LEN + 1];
    const char *use_key = req->key;
    if (use_key == NULL) {
        unsigned char nonce[16];
        if (RAND_bytes(nonce, sizeof nonce) != 1)
            return failmsg(WS_E_RANDOM, err, err_len, "random number generator failed");
        EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);
        key[WS_KEY_LEN] = '\0';
        use_key = key;
    } else if (use_key[0] == '\0' || !is_visible(use_key)) {
        return fail(WS_E_ARG, err, err_len, "invalid key '%.*s'", use_key, strlen(use_key));
    }
    if (req->origin != NULL && !is_safe_value(req->origin))
        return fail(WS_E_ARG, err, err_len, "invalid origin '%.*s'", req->origin,
                    strlen(req->origin));
    for (size_t i = 0; i < req->num_protocols; i++) {
        const char *p = req->protocols[i];
        if (p == NULL || !ws_http_is_token(p, strlen(p)))
            return fail(WS_E_ARG, err, err_len, "invalid subprotocol '%.*s' (must be a token)",
                        p ? p : "", p ? strlen(p) : 0);
        for (size_t j = 0; j < i; j++)
            if (strcmp(req->protocols[j], p) == 0) /* RFC 6455 4.1: unique */
                return fail(WS_E_ARG, err, err_len, "duplicate subprotocol '%.*s'", p, strlen(p));
    }
    if (req->extensions != NULL && !is_safe_value(req->extensions))
        return fail(WS_E_ARG, err, err_len, "invalid extensions offer '%.*s'", req->extensions,
                    strlen(req->extensions));
    int rc = ws_handshake_check_headers(req->headers, req->num_headers, err, err_len);
    if (rc != WS_OK)
        return rc;

    char port[16];
    snprintf(port, sizeof port, ":%d", req->port);
    bool ipv6 = strchr(req->host, ':') != NULL;
    bool default_port = req->port == (req->secure ? 443 : 80);
    if (ws_buf_puts(out, "GET ") || ws_buf_puts(out, resource) ||
        ws_buf_puts(out, " HTTP/1.1\r\nHost: ") || (ipv6 && ws_buf_puts(out, "[")) ||
        ws_buf_puts(out, req->host) || (ipv6 && ws_buf_puts(out, "]")) ||
        (!default_port && ws_buf_puts(out, port)) ||
        ws_buf_puts(out, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n") ||
        put_header(out, "Sec-WebSocket-Key", use_key) ||
        ws_buf_puts(out, "Sec-WebSocket-Version: 13\r\n") ||
        (req->origin && put_header(out, "Origin", req->origin)))
        goto nomem;
    if (req->num_protocols > 0) {
        if (ws_buf_puts(out, "Sec-WebSocket-Protocol: "))
            goto nomem;
        for (size_t i = 0; i < req->num_protocols; i++)
            if ((i > 0 && ws_buf_puts(out, ", ")) || ws_buf_puts(out, req->protocols[i]))
                goto nomem;
        if (ws_buf_puts(out, "\r\n"))
            goto nomem;
    }
    if ((req->extensions && req->extensions[0] &&
         put_header(out, "Sec-WebSocket-Extensions", req->extensions)) ||
        put_extra_headers(out, req->headers, req->num_headers) || ws_buf_puts(out, "\r\n"))
        goto nomem;
    ws_handshake_accept(use_key, strlen(use_key), accept);
    return WS_OK;
nomem:
    return failmsg(WS_E_NOMEM, err, err_len, "out of memory");
}

int ws_handshake_client_request(ws_buf *out, const ws_client_request *req,
                                char accept[WS_ACCEPT_LEN + 1], char *err, size_t err_len)
{
    size_t mark = out->len;
    int rc = client_request(out, req, accept, err, err_len);
    if (rc != 0 && out->data != NULL)
        out->len = mark; /* leave no half-written request behind */
    return rc;
}

/* The extension name of an element "name; param=value". */
static void extension_name(const char *elem, size_t len, const char **name, size_t *name_len)
{
    const char *semi = memchr(elem, ';', len);
    size_t n = semi ? (size_t)(semi - elem) : len;
    while (n > 0 && (elem[n - 1] == ' ' || elem[n - 1] == '\t'))
        n--;
    *name = elem;
    *name_len = n;
}

static bool offered_extension(const char *offer, const char *name, size_t name_len)
{
    if (offer == NULL)
        return false;
    size_t pos = 0;
    const char *elem, *n;
    size_t elem_len, n_len;
    while (ws_http_next_element(offer, strlen(offer), &pos, &elem, &elem_len)) {
        extension_name(elem, elem_len, &n, &n_len);
        if (n_len == name_len && strncmp(n, name, name_len) == 0)
            return true;
    }
    return false;
}

int ws_handshake_check_response(const ws_http_head *resp, const char *accept,
                                const char *const *protocols, size_t num_protocols,
                                const char *offered_extensions, ws_client_result *res, char *err,
                                size_t err_len)
{
    memset(res, 0, sizeof *res);
    if (resp->status != 101) {
        if (err_len > 0)
            snprintf(err, err_len, "expected status 101, got %d", resp->status);
        return WS_E_PROTOCOL;
    }
    /* Upgrade exists from HTTP/1.1 on (RFC 7230 6.7): a 101 that claims
     * HTTP/1.0 comes from something that does not speak the protocol. */
    if (resp->version_minor < 1)
        return failmsg(WS_E_PROTOCOL, err, err_len,
                       "a 101 response must be HTTP/1.1, got HTTP/1.0");
    if (ws_http_count(resp, "Upgrade") == 0)
        return failmsg(WS_E_PROTOCOL, err, err_len, "missing Upgrade header");
    if (!ws_http_has_token(resp, "Upgrade", "websocket"))
        return fail(WS_E_PROTOCOL, err, err_len, "Upgrade header is '%.*s', expected 'websocket'",
                    ws_http_find(resp, "Upgrade")->value, ws_http_find(resp, "Upgrade")->value_len);
    if (ws_http_count(resp, "Connection") == 0)
        return failmsg(WS_E_PROTOCOL, err, err_len, "missing Connection header");
    if (!ws_http_has_token(resp, "Connection", "upgrade"))
        return fail(WS_E_PROTOCOL, err, err_len, "Connection header is '%.*s', expected 'Upgrade'",
                    ws_http_find(resp, "Connection")->value,
                    ws_http_find(resp, "Connection")->value_len);

    size_t n = ws_http_count(resp, "Sec-WebSocket-Accept");
    if (n == 0)
        return failmsg(WS_E_PROTOCOL, err, err_len, "missing Sec-WebSocket-Accept header");
    if (n > 1)
        return failmsg(WS_E_PROTOCOL, err, err_len, "duplicate Sec-WebSocket-Accept header");
    const ws_http_header *h = ws_http_find(resp, "Sec-WebSocket-Accept");
    if (h->value_len != strlen(accept) || memcmp(h->value, accept, h->value_len) != 0)
        return fail(WS_E_PROTOCOL, err, err_len, "Sec-WebSocket-Accept mismatch (got '%.*s')",
                    h->value, h->value_len);

    n = ws_http_count(resp, "Sec-WebSocket-Protocol");
    if (n > 1)
        return failmsg(WS_E_PROTOCOL, err, err_len, "duplicate Sec-WebSocket-Protocol header");
    h = ws_http_find(resp, "Sec-WebSocket-Protocol");
    if (h != NULL && h->value_len > 0) {
        size_t i = 0;
        /* Subprotocol names compare exactly (RFC 6455 4.1 step 6). */
        while (i < num_protocols && (strlen(protocols[i]) != h->value_len ||
                                     memcmp(protocols[i], h->value, h->value_len) != 0))
            i++;
        if (i == num_protocols)
            return fail(WS_E_PROTOCOL, err, err_len,
                        "server chose subprotocol '%.*s' that was not offered", h->value,
                        h->value_len);
        res->protocol = h->value;
        res->protocol_len = h->value_len;
    }

    n = ws_http_count(resp, "Sec-WebSocket-Extensions");
    /* The result holds one span; joining several headers would need a copy,
     * and silently using only one would misconfigure the session. */
    if (n > 1)
        return failmsg(WS_E_PROTOCOL, err, err_len, "multiple Sec-WebSocket-Extensions headers");
    h = ws_http_find(resp, "Sec-WebSocket-Extensions");
    if (h != NULL && h->value_len > 0) {
        size_t pos = 0;
        const char *elem, *name;
        size_t elem_len, name_len;
        while (ws_http_next_element(h->value, h->value_len, &pos, &elem, &elem_len)) {
            extension_name(elem, elem_len, &name, &name_len);
            if (!ws_http_is_token(name, name_len))
                return fail(WS_E_PROTOCOL, err, err_len,
                            "invalid Sec-WebSocket-Extensions element '%.*s'", elem, elem_len);
            if (!offered_extension(offered_extensions, name, name_len))
                return fail(WS_E_PROTOCOL, err, err_len,
                            "server accepted extension '%.*s' that was not offered", name,
                            name_len);
        }
        res->extensions = h->value;
        res->extensions_len = h->value_len;
    }
    return WS_OK;
}

static int base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* 16 bytes in base64 are 22 alphabet characters and "==".  The 22nd
 * character carries 2 bits of the last byte and 4 padding bits, which
 * must be zero (RFC 4648 3.5): an encoding with them set is not the
 * base64 of any 16 bytes. */
static bool is_valid_key(const char *s, size_t n)
{
    if (n != WS_KEY_LEN || s[22] != '=' || s[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (base64_value((unsigned char)s[i]) < 0)
            return false;
    return (base64_value((unsigned char)s[21]) & 0x0f) == 0;
}

/* Split the request target into path and query.  The absolute form
 * ("ws://host/path", RFC 7230 5.3.2) is accepted for its path. */
static int split_target(const ws_http_head *req, ws_server_request *info)
{
    const char *t = req->target;
    size_t n = req->target_len;
    if (n == 0)
        return -1;
    if (t[0] != '/') {
        /* The target is not NUL-terminated: search "://" within it. */
        size_t skip = 0;
        while (skip + 3 <= n && memcmp(t + skip, "://", 3) != 0)
            skip++;
        if (skip == 0 || skip + 3 > n)
            return -1;
        skip += 3;
        while (skip < n && t[skip] != '/' && t[skip] != '?')
            skip++;
        t += skip;
        n -= skip;
    }
    const char *q = memchr(t, '?', n);
    if (n == 0 || t[0] == '?') {
        info->path = "/";
        info->path_len = 1;
    } else {
        info->path = t;
        info->path_len = q ? (size_t)(q - t) : n;
    }
    if (q != NULL) {
        info->query = q + 1;
        info->query_len = n - (size_t)(q - t) - 1;
    }
    return 0;
}

int ws_handshake_check_request(const ws_http_head *req, ws_server_request *info,
                               const char **reason)
{
    memset(info, 0, sizeof *info);
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0) {
        *reason = "method not allowed (a WebSocket handshake uses GET)";
        return 405;
    }
    if (req->version_minor < 1) {
        *reason = "HTTP/1.1 or later required";
        return 400;
    }
    if (split_target(req, info) != 0) {
        *reason = "invalid request target";
        return 400;
    }
    size_t n = ws_http_count(req, "Host");
    if (n != 1 || ws_http_find(req, "Host")->value_len == 0) {
        *reason = n > 1 ? "duplicate Host header" : n ? "empty Host header" : "missing Host header";
        return 400;
    }
    if (!ws_http_has_token(req, "Upgrade", "websocket")) {
        *reason = ws_http_count(req, "Upgrade") ? "Upgrade header must contain 'websocket'"
                                                : "missing Upgrade header";
        return 400;
    }
    if (!ws_http_has_token(req, "Connection", "upgrade")) {
        *reason = ws_http_count(req, "Connection") ? "Connection header must contain 'Upgrade'"
                                                   : "missing Connection header";
        return 400;
    }
    n = ws_http_count(req, "Sec-WebSocket-Version");
    const ws_http_header *h = ws_http_find(req, "Sec-WebSocket-Version");
    if (n != 1 || h->value_len != 2 || memcmp(h->value, "13", 2) != 0) {
        *reason = n == 0 ? "missing Sec-WebSocket-Version header"
                         : "unsupported Sec-WebSocket-Version (only 13 is supported)";
        return 426;
    }
    n = ws_http_count(req, "Sec-WebSocket-Key");
    h = ws_http_find(req, "Sec-WebSocket-Key");
    if (n != 1) {
        *reason = n ? "duplicate Sec-WebSocket-Key header" : "missing Sec-WebSocket-Key header";
        return 400;
    }
    if (!is_valid_key(h->value, h->value_len)) {
        *reason = "invalid Sec-WebSocket-Key (must be base64 of 16 bytes)";
        return 400;
    }
    info->key = h->value;
    info->key_len = h->value_len;
    for (size_t i = 0; i < req->num_headers; i++) {
        const ws_http_header *p = &req->headers[i];
        if (!ws_http_ieq(p->name, p->name_len, "Sec-WebSocket-Protocol",
                         strlen("Sec-WebSocket-Protocol")))
            continue;
        size_t pos = 0;
        const char *elem;
        size_t elem_len;
        while (ws_http_next_element(p->value, p->value_len, &pos, &elem, &elem_len)) {
            if (!ws_http_is_token(elem, elem_len)) {
                *reason = "invalid Sec-WebSocket-Protocol (elements must be tokens)";
                return 400;
            }
        }
    }
    info->origin = ws_http_find(req, "Origin");
    info->protocols = ws_http_find(req, "Sec-WebSocket-Protocol");
    info->extensions = ws_http_find(req, "Sec-WebSocket-Extensions");
    *reason = NULL;
    return 0;
}

const char *ws_handshake_choose_protocol(const ws_http_head *req, const char *const *supported,
                                         size_t num_supported)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const ws_http_header *h = &req->headers[i];
        if (!ws_http_ieq(h->name, h->name_len, "Sec-WebSocket-Protocol", 22))
            continue;
        size_t pos = 0, len;
        const char *e;
        while (ws_http_next_element(h->value, h->value_len, &pos, &e, &len))
            for (size_t k = 0; k < num_supported; k++)
                if (supported[k] && strlen(supported[k]) == len &&
                    memcmp(supported[k], e, len) == 0)
                    return supported[k];
    }
    return NULL;
}

int ws_handshake_server_response(ws_buf *out, const char *key, size_t key_len, const char *protocol,
                                 const char *extensions, const ws_kv *headers, size_t num_headers,
                                 char *err, size_t err_len)
{
    if (protocol != NULL && !ws_http_is_token(protocol, strlen(protocol)))
        return fail(WS_E_ARG, err, err_len, "invalid subprotocol '%.*s' (must be a token)",
                    protocol, strlen(protocol));
    if (extensions != NULL && !is_safe_value(extensions))
        return fail(WS_E_ARG, err, err_len, "invalid extensions value '%.*s'", extensions,
                    strlen(extensions));
    int rc = ws_handshake_check_headers(headers, num_headers, err, err_len);
    if (rc != WS_OK)
        return rc;
    char accept[WS_ACCEPT_LEN + 1];
    ws_handshake_accept(key, key_len, accept);
    size_t mark = out->len;
    if (ws_buf_puts(out, "HTTP/1.1 101 Switching Protocols\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n") ||
        put_header(out, "Sec-WebSocket-Accept", accept) ||
        (protocol && put_header(out, "Sec-WebSocket-Protocol", protocol)) ||
        (extensions && extensions[0] && put_header(out, "Sec-WebSocket-Extensions", extensions)) ||
        put_extra_headers(out, headers, num_headers) || ws_buf_puts(out, "\r\n")) {
        if (out->data != NULL)
            out->len = mark;
        return failmsg(WS_E_NOMEM, err, err_len, "out of memory");
    }
    return WS_OK;
}

/* The reason phrases of the IANA status code registry (RFC 9110 section
 * 15 and the RFCs it lists).  Unregistered codes get their class's name. */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 511: return "Network Authentication Required";
    default: break;
    }
    switch (status / 100) {
    case 1: return "Informational";
    case 2: return "Success";
    case 3: return "Redirection";
    case 4: return "Client Error";
    default: return "Server Error";
    }
}

int ws_handshake_error_response(ws_buf *out, int status, const char *reason, const ws_kv *headers,
                                size_t num_headers)
{
    if (status < 100 || status > 999)
        status = 500;
    if (reason == NULL)
        reason = reason_phrase(status);
    char line[160];
    snprintf(line, sizeof line,
             "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n",
             status, reason_phrase(status), strlen(reason) + 1);
    size_t mark = out->len;
    int rc = ws_buf_puts(out, line);
    if (rc == 0 && status == 426)
        rc = ws_buf_puts(out, "Sec-WebSocket-Version: 13\r\n");
    /* The error must still go out, so unusable extra headers are skipped
     * rather than failing the whole response. */
    for (size_t i = 0; rc == 0 && i < num_headers; i++)
        if (ws_handshake_check_headers(&headers[i], 1, NULL, 0) == 0)
            rc = put_header(out, headers[i].name, headers[i].value);
    if (rc == 0)
        rc = ws_buf_puts(out, "\r\n") || ws_buf_puts(out, reason) || ws_buf_puts(out, "\n");
    if (rc != 0 && out->data != NULL)
        out->len = mark;
    return rc ? WS_E_NOMEM : WS_OK;
}

int ws_handshake_http_response(ws_buf *out, int status, const ws_kv *headers, size_t num_headers,
                               const uint8_t *body, size_t body_len, char *err, size_t err_len)
{
    /* Only a final status: the connection closes after this answer, and a
     * 1xx would leave the client waiting for one. */
    if (status < 200 || status > 599) {
        snprintf(err, err_len, "invalid HTTP status %d (200 to 599)", status);
        return WS_E_ARG;
    }
    /* RFC 9110 6.4.1: 204 and 304 never carry content; 8.6: no
     * Content-Length in a 204 (and none is owed in a 304). */
    bool no_content = status == 204 || status == 304;
    if (no_content && body_len > 0) {
        snprintf(err, err_len, "a %d response has no body", status);
        return WS_E_ARG;
    }
    int checked = ws_handshake_check_headers(headers, num_headers, err, err_len);
    if (checked != WS_OK)
        return checked;
    bool has_type = no_content;
    for (size_t i = 0; i < num_headers; i++)
        if (ws_http_ieq(headers[i].name, strlen(headers[i].name), "Content-Type", 12))
            has_type = true;
    char length[48] = "";
    if (!no_content)
        snprintf(length, sizeof length, "Content-Length: %zu\r\n", body_len);
    char line[200];
    snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n%sConnection: close\r\n%s", status,
             reason_phrase(status), length,
             has_type ? "" : "Content-Type: text/plain; charset=utf-8\r\n");
    size_t mark = out->len;
    int rc = ws_buf_puts(out, line);
    if (rc == 0 && status == 426)
        rc = ws_buf_puts(out, "Sec-WebSocket-Version: 13\r\n");
    for (size_t i = 0; rc == 0 && i < num_headers; i++)
        rc = put_header(out, headers[i].name, headers[i].value);
    if (rc == 0)
        rc = ws_buf_puts(out, "\r\n") || ws_buf_append(out, body, body_len);
    if (rc != 0) {
        if (out->data != NULL)
            out->len = mark;
        snprintf(err, err_len, "out of memory");
        return WS_E_NOMEM;
    }
    return WS_OK;
}
