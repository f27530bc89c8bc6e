/* ws:// and wss:// URLs (RFC 6455 section 3, RFC 3986 for the parts). */
#include "url.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>

#include "http.h"

/* How much of an offending piece of input an error message quotes. */
#define QUOTE_MAX 64

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static ws_err fail(char *err, size_t err_len, const char *msg)
{
    if (err_len > 0)
        snprintf(err, err_len, "%s", msg);
    return WS_E_ARG;
}

static ws_err fail_quoted(char *err, size_t err_len, const char *what, const char *s, size_t n)
{
    if (err_len > 0)
        snprintf(err, err_len, "%s '%.*s'", what, (int)(n > QUOTE_MAX ? QUOTE_MAX : n), s);
    return WS_E_ARG;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static ws_err parse_userinfo(const char *s, size_t n, ws_url *out, char *err, size_t err_len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return fail(err, err_len, "invalid percent-encoding in userinfo");
            c = (unsigned char)(hi * 16 + lo);
            if (c == 0)
                return fail(err, err_len, "userinfo contains a NUL byte");
            i += 2;
        }
        if (o + 1 >= sizeof out->userinfo)
            return fail(err, err_len, "userinfo too long");
        out->userinfo[o++] = (char)c;
    }
    out->userinfo[o] = '\0';
    return WS_OK;
}

static ws_err parse_port(const char *s, size_t n, ws_url *out, char *err, size_t err_len)
{
    if (n == 0)
        return WS_OK; /* "host:" means the default port (RFC 3986 3.2.3) */
    long port = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return fail_quoted(err, err_len, "invalid port", s, n);
        port = port * 10 + (s[i] - '0');
        if (port > 65535)
            return fail_quoted(err, err_len, "invalid port", s, n);
    }
    if (port == 0)
        return fail_quoted(err, err_len, "invalid port", s, n);
    out->port = (int)port;
    out->port_explicit = true;
    return WS_OK;
}

static ws_err parse_host(const char *s, size_t n, ws_url *out, char *err, size_t err_len)
{
    const char *port = NULL;
    size_t port_len = 0;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return fail(err, err_len, "missing ']' after IPv6 address");
        size_t hn = (size_t)(close - s - 1);
        const char *rest = close + 1;
        size_t rest_len = n - hn - 2;
        if (rest_len > 0) {
            if (rest[0] != ':')
                return fail_quoted(err, err_len, "unexpected characters after IPv6 address", rest,
                                   rest_len);
            port = rest + 1;
            port_len = rest_len - 1;
        }
        /* inet_pton wants a NUL-terminated string; also rejects zone ids. */
        char tmp[INET6_ADDRSTRLEN + 1];
        unsigned char addr[16];
        if (hn == 0 || hn >= sizeof tmp)
            return fail_quoted(err, err_len, "invalid IPv6 address", s + 1, hn);
        memcpy(tmp, s + 1, hn);
        tmp[hn] = '\0';
        if (inet_pton(AF_INET6, tmp, addr) != 1)
            return fail_quoted(err, err_len, "invalid IPv6 address", s + 1, hn);
        for (size_t i = 0; i < hn; i++)
            out->host[i] = (char)lower((unsigned char)tmp[i]);
        out->host[hn] = '\0';
        out->host_is_ipv6 = true;
    } else {
        const char *colon = memchr(s, ':', n);
        size_t hn = colon ? (size_t)(colon - s) : n;
        if (colon) {
            port = colon + 1;
            port_len = n - hn - 1;
            char tmp[INET6_ADDRSTRLEN + 1];
            unsigned char addr[16];
            if (memchr(port, ':', port_len) != NULL && n < sizeof tmp) {
                memcpy(tmp, s, n);
                tmp[n] = '\0';
                if (inet_pton(AF_INET6, tmp, addr) == 1)
                    return fail(err, err_len, "IPv6 address must be in brackets");
            }
        }
        if (hn == 0)
            return fail(err, err_len, "missing host");
        if (hn >= sizeof out->host)
            return fail(err, err_len, "host too long");
        bool numeric = true;
        for (size_t i = 0; i < hn; i++) {
            unsigned char c = (unsigned char)s[i];
            /* DNS names, IPv4 and '_' (seen in service names); other reg-name
             * characters never name a reachable host. */
            if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_')
                return fail_quoted(err, err_len, "invalid character in host", s, hn);
            if (!is_digit(c) && c != '.')
                numeric = false;
            out->host[i] = (char)lower(c);
        }
        out->host[hn] = '\0';
        unsigned char addr[4];
        if (numeric && inet_pton(AF_INET, out->host, addr) != 1)
            return fail_quoted(err, err_len, "invalid IPv4 address", s, hn);
    }
    return parse_port(port, port_len, out, err, err_len);
}

ws_err ws_url_parse(const char *url, ws_url *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(url);
    if (len == 0)
        return fail(err, err_len, "empty URL");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c == ' ')
            return fail(err, err_len, "URL contains a space");
        if (c < 0x20 || c == 0x7f)
            return fail(err, err_len, "URL contains a control character");
        if (c >= 0x80)
            return fail(err, err_len, "URL contains a non-ASCII byte (percent-encode it)");
    }
    /* RFC 6455 3: fragment identifiers are meaningless here and must be
     * escaped as %23. */
    if (strchr(url, '#') != NULL)
        return fail(err, err_len, "fragment not allowed");

    size_t i = 0;
    while (i < len && (is_alpha((unsigned char)url[i]) ||
                       (i > 0 && (is_digit((unsigned char)url[i]) || strchr("+-.", url[i])))))
        i++;
    if (i == 0 || i >= len || url[i] != ':')
        return fail(err, err_len, "missing scheme (expected ws:// or wss://)");
    if (ws_http_ieq(url, i, "wss", strlen("wss")))
        out->secure = true;
    else if (!ws_http_ieq(url, i, "ws", strlen("ws")))
        return fail_quoted(err, err_len, "unsupported scheme", url, i);
    if (strncmp(url + i, "://", 3) != 0)
        return fail(err, err_len, "expected '//' after the scheme");
    out->port = out->secure ? 443 : 80;

    const char *auth = url + i + 3;
    size_t auth_len = strcspn(auth, "/?");
    const char *at = NULL;
    /* The last '@' ends the userinfo, as browsers do for passwords with '@'. */
    for (size_t k = 0; k < auth_len; k++)
        if (auth[k] == '@')
            at = auth + k;
    const char *host = auth;
    size_t host_len = auth_len;
    if (at != NULL) {
        ws_err rc = parse_userinfo(auth, (size_t)(at - auth), out, err, err_len);
        if (rc != WS_OK)
            return rc;
        host = at + 1;
        host_len = auth_len - (size_t)(host - auth);
    }
    ws_err rc = parse_host(host, host_len, out, err, err_len);
    if (rc != WS_OK)
        return rc;

    const char *res = auth + auth_len;
    size_t res_len = strlen(res);
    size_t o = 0;
    if (res_len == 0 || res[0] == '?')
        out->resource[o++] = '/';
    if (o + res_len >= sizeof out->resource)
        return fail(err, err_len, "path too long");
    memcpy(out->resource + o, res, res_len);
    out->resource[o + res_len] = '\0';
    return WS_OK;
}
