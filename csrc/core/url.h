/* ws:// and wss:// URL parsing (RFC 6455 section 3). */
#ifndef WS_URL_H
#define WS_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct ws_url {
    bool secure;
    char host[256]; /* IPv6 literals without brackets */
    bool host_is_ipv6;
    int port; /* explicit or default (80 / 443) */
    bool port_explicit;
    char resource[4096]; /* path + query, "/" when the URL has no path */
    char userinfo[256];  /* "user:password" (percent-decoded), "" if none */
} ws_url;

/* Returns WS_OK, or WS_E_ARG with the problem in err ("unsupported scheme 'http'",
 * "missing host", "invalid port '99999'", "fragment not allowed", ...). */
ws_err ws_url_parse(const char *url, ws_url *out, char *err, size_t err_len);

#endif
