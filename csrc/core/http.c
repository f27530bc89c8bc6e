/* HTTP/1.1 head parser for the opening handshake (RFC 7230 section 3).
 * Nothing is copied: names and values point into the caller's buffer. */
#include "http.h"

#include <string.h>

/* tchar of RFC 7230 3.2.6, as a predicate on one byte. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

bool ws_http_ieq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

bool ws_http_is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

long ws_http_head_end(const char *buf, size_t len, size_t *scanned, size_t max_head)
{
    size_t limit = len < max_head ? len : max_head;
    size_t i = *scanned;
    for (; i < limit; i++) {
        if (buf[i] != '\n')
            continue;
        /* A blank line is "\n\n" or "\n\r\n" (the first "\n" ends the
         * previous line, with or without its "\r"). */
        if (i + 1 >= len)
            break;
        size_t end;
        if (buf[i + 1] == '\n') {
            end = i + 2;
        } else if (buf[i + 1] == '\r') {
            if (i + 2 >= len)
                break;
            if (buf[i + 2] != '\n')
                continue;
            end = i + 3;
        } else {
            continue;
        }
        if (end > max_head)
            return WS_E_TOO_BIG;
        *scanned = i;
        return (long)end;
    }
    /* Resume at the "\n" whose follower has not arrived yet. */
    *scanned = i;
    if (len >= max_head)
        return WS_E_TOO_BIG;
    return WS_E_NEED_MORE;
}

/* One line of the head: [*pos, end of line) without its "\r\n" or "\n".
 * A "\r" anywhere else in the head is malformed. */
static ws_err next_line(const char *buf, size_t len, size_t *pos, const char **line,
                        size_t *line_len)
{
    size_t start = *pos;
    const char *nl = memchr(buf + start, '\n', len - start);
    if (nl == NULL)
        return WS_E_PROTOCOL;
    size_t end = (size_t)(nl - buf);
    *pos = end + 1;
    if (end > start && buf[end - 1] == '\r')
        end--;
    if (memchr(buf + start, '\r', end - start) != NULL)
        return WS_E_PROTOCOL;
    *line = buf + start;
    *line_len = end - start;
    return WS_OK;
}

/* "HTTP/" DIGIT "." DIGIT; sets *minor.  Other majors are a version error,
 * anything that is not shaped like a version is a syntax error. */
static ws_err parse_version(const char *s, size_t n, int *minor)
{
    if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.')
        return WS_E_PROTOCOL;
    if (s[5] < '0' || s[5] > '9' || s[7] < '0' || s[7] > '9')
        return WS_E_PROTOCOL;
    if (s[5] != '1')
        return WS_E_VERSION;
    *minor = s[7] - '0';
    return WS_OK;
}

static bool is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static ws_err parse_headers(char *buf, size_t len, size_t pos, ws_http_head *head)
{
    size_t cap = head->num_headers;
    size_t n = 0;
    head->num_headers = 0;
    for (;;) {
        const char *line;
        size_t line_len;
        size_t line_start = pos;
        ws_err rc = next_line(buf, len, &pos, &line, &line_len);
        if (rc != WS_OK)
            return rc;
        if (line_len == 0)
            break; /* the blank line ends the head */
        for (size_t i = 0; i < line_len; i++)
            if (!is_field_char((unsigned char)line[i]))
                return WS_E_PROTOCOL;
        if (is_ows((unsigned char)line[0])) {
            /* obs-fold: continue the previous value.  Blanking the line
             * break keeps that value one span of the buffer. */
            if (n == 0)
                return WS_E_PROTOCOL;
            ws_http_header *h = &head->headers[n - 1];
            size_t b = 0, e = line_len;
            while (b < e && is_ows((unsigned char)line[b]))
                b++;
            while (e > b && is_ows((unsigned char)line[e - 1]))
                e--;
            for (size_t i = line_start - 2; i < line_start; i++)
                if (buf[i] == '\r' || buf[i] == '\n')
                    buf[i] = ' ';
            if (e > b) {
                if (h->value_len == 0)
                    h->value = line + b;
                h->value_len = (size_t)(line + e - h->value);
            }
            continue;
        }
        const char *colon = memchr(line, ':', line_len);
        if (colon == NULL)
            return WS_E_PROTOCOL;
        size_t name_len = (size_t)(colon - line);
        /* Also rejects whitespace before the colon (RFC 7230 3.2.4). */
        if (!ws_http_is_token(line, name_len))
            return WS_E_PROTOCOL;
        if (n == cap)
            return WS_E_TOO_MANY;
        size_t b = name_len + 1, e = line_len;
        while (b < e && is_ows((unsigned char)line[b]))
            b++;
        while (e > b && is_ows((unsigned char)line[e - 1]))
            e--;
        ws_http_header *h = &head->headers[n++];
        h->name = line;
        h->name_len = name_len;
        h->value = line + b;
        h->value_len = e - b;
    }
    if (pos != len)
        return WS_E_PROTOCOL; /* bytes after the blank line */
    head->num_headers = n;
    return WS_OK;
}

static void reset(ws_http_head *head)
{
    head->method = head->target = head->reason = NULL;
    head->method_len = head->target_len = head->reason_len = 0;
    head->status = 0;
    head->version_minor = 0;
}

/* method SP request-target SP HTTP-version, single spaces only. */
static ws_err parse_request_line(const char *line, size_t n, ws_http_head *head)
{
    const char *sp1 = memchr(line, ' ', n);
    if (sp1 == NULL || !ws_http_is_token(line, (size_t)(sp1 - line)))
        return WS_E_PROTOCOL;
    const char *target = sp1 + 1;
    const char *end = line + n;
    const char *sp2 = memchr(target, ' ', (size_t)(end - target));
    if (sp2 == NULL || sp2 == target)
        return WS_E_PROTOCOL;
    for (const char *p = target; p < sp2; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return WS_E_PROTOCOL;
    int minor;
    ws_err rc = parse_version(sp2 + 1, (size_t)(end - sp2 - 1), &minor);
    if (rc != 0)
        return rc;
    if (minor < 1)
        return WS_E_VERSION; /* RFC 6455 4.1: HTTP/1.1 or higher */
    head->method = line;
    head->method_len = (size_t)(sp1 - line);
    head->target = target;
    head->target_len = (size_t)(sp2 - target);
    head->version_minor = minor;
    return WS_OK;
}

ws_err ws_http_parse_request(char *buf, size_t head_len, ws_http_head *head)
{
    size_t cap = head->num_headers;
    size_t pos = 0;
    const char *line;
    size_t n;
    reset(head);
    head->num_headers = 0;
    ws_err rc = next_line(buf, head_len, &pos, &line, &n);
    if (rc == WS_OK)
        rc = parse_request_line(line, n, head);
    if (rc != WS_OK)
        return rc;
    head->num_headers = cap;
    return parse_headers(buf, head_len, pos, head);
}

int ws_http_oversized_request(const char *buf, size_t len)
{
    if (len == 0)
        return 400;
    const char *nl = memchr(buf, '\n', len);
    if (nl == NULL) {
        /* Still in the request line: a request target being sent (RFC
         * 7230 3.1.1), or garbage. */
        const char *sp = memchr(buf, ' ', len);
        return sp != NULL && ws_http_request_prefix_ok(buf, len) ? 414 : 400;
    }
    size_t n = (size_t)(nl - buf);
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    ws_http_head head;
    memset(&head, 0, sizeof head);
    if (memchr(buf, '\r', n) != NULL || parse_request_line(buf, n, &head) != WS_OK)
        return 400;
    return 431;
}

ws_err ws_http_parse_response(char *buf, size_t head_len, ws_http_head *head)
{
    size_t cap = head->num_headers;
    size_t pos = 0;
    const char *line;
    size_t n;
    reset(head);
    head->num_headers = 0;
    ws_err rc = next_line(buf, head_len, &pos, &line, &n);
    if (rc != WS_OK)
        return rc;
    /* HTTP-version SP 3DIGIT SP reason-phrase; a missing SP before an empty
     * reason is tolerated because real servers send "HTTP/1.1 101". */
    if (n < 12 || line[8] != ' ')
        return WS_E_PROTOCOL;
    int minor;
    rc = parse_version(line, 8, &minor);
    if (rc != WS_OK)
        return rc;
    int status = 0;
    for (size_t i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9')
            return WS_E_PROTOCOL;
        status = status * 10 + (line[i] - '0');
    }
    if (n > 12 && line[12] != ' ')
        return WS_E_PROTOCOL;
    const char *reason = n > 12 ? line + 13 : line + n;
    size_t reason_len = (size_t)(line + n - reason);
    for (size_t i = 0; i < reason_len; i++)
        if (!is_field_char((unsigned char)reason[i]))
            return WS_E_PROTOCOL;
    head->status = status;
    head->reason = reason;
    head->reason_len = reason_len;
    head->version_minor = minor;
    head->num_headers = cap;
    return parse_headers(buf, head_len, pos, head);
}

const ws_http_header *ws_http_find(const ws_http_head *head, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < head->num_headers; i++)
        if (ws_http_ieq(head->headers[i].name, head->headers[i].name_len, name, len))
            return &head->headers[i];
    return NULL;
}

size_t ws_http_count(const ws_http_head *head, const char *name)
{
    size_t len = strlen(name), count = 0;
    for (size_t i = 0; i < head->num_headers; i++)
        if (ws_http_ieq(head->headers[i].name, head->headers[i].name_len, name, len))
            count++;
    return count;
}

bool ws_http_next_element(const char *value, size_t value_len, size_t *pos, const char **elem,
                          size_t *elem_len)
{
    size_t i = *pos;
    while (i < value_len) {
        size_t start = i;
        bool quoted = false;
        /* Commas inside a quoted-string (an extension parameter) do not
         * split elements. */
        for (; i < value_len; i++) {
            char c = value[i];
            if (quoted && c == '\\' && i + 1 < value_len)
                i++;
            else if (c == '"')
                quoted = !quoted;
            else if (c == ',' && !quoted)
                break;
        }
        size_t b = start, e = i;
        if (i < value_len)
            i++; /* past the comma */
        while (b < e && is_ows((unsigned char)value[b]))
            b++;
        while (e > b && is_ows((unsigned char)value[e - 1]))
            e--;
        if (e > b) {
            *pos = i;
            *elem = value + b;
            *elem_len = e - b;
            return true;
        }
    }
    *pos = i;
    return false;
}

bool ws_http_has_token(const ws_http_head *head, const char *name, const char *token)
{
    size_t name_len = strlen(name), token_len = strlen(token);
    for (size_t i = 0; i < head->num_headers; i++) {
        const ws_http_header *h = &head->headers[i];
        if (!ws_http_ieq(h->name, h->name_len, name, name_len))
            continue;
        size_t pos = 0;
        const char *elem;
        size_t elem_len;
        while (ws_http_next_element(h->value, h->value_len, &pos, &elem, &elem_len))
            if (ws_http_ieq(elem, elem_len, token, token_len))
                return true;
    }
    return false;
}

bool ws_http_request_prefix_ok(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && buf[i] != ' ') {
        if (!ws_http_is_token(buf + i, 1))
            return false;
        i++;
    }
    for (; i < len && buf[i] != '\r' && buf[i] != '\n'; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}
