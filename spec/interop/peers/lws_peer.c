/* libwebsockets peer for spec/interop (conventions in spec/interop/scenarios.lua).
 *   lws_peer server [CERT KEY]
 *   lws_peer client WS_BASE WSS_BASE CAFILE SCENARIO...
 * Built by scripts/interop_deps.sh into build/interop-lws/lws_peer against the
 * Debian libwebsockets (4.1):
 *   gcc -std=gnu99 -O1 -Wall lws_peer.c $(pkg-config --cflags --libs libwebsockets)
 * One connection state (struct conn) per websocket: the reassembled message
 * being received and a queue of frames to write, one lws_write() per
 * WRITEABLE callback as lws wants. */
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CLOSE_FRAME (-1) /* a queued frame that closes with code/reason */
#define HEADER "x-interop"

struct frame {
  struct frame *next;
  int flags; /* lws_write flags, or CLOSE_FRAME (code in len) */
  size_t len;
  unsigned char buf[]; /* LWS_PRE + len */
};

struct conn {
  char path[128], header[256], ping[126];
  unsigned char *rx;
  size_t rxlen, rxcap;
  struct frame *head, *tail;
  int peer_code; /* close code the other side sent (0: none) */
  char peer_reason[126];
};

static void out(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

static unsigned char *payload(size_t n, int binary) {
  unsigned char *p = malloc(n + 1);
  for (size_t i = 0; i < n; i++) p[i] = binary ? (unsigned char)(((i % 256) * 7 + 3) % 256) : (unsigned char)(33 + i % 94);
  p[n] = 0;
  return p;
}

static char *utf8(void) { /* "aé☃𝄞" x 1000 */
  static const char unit[] = "a\xc3\xa9\xe2\x98\x83\xf0\x9d\x84\x9e";
  char *s = malloc(1000 * (sizeof unit - 1) + 1);
  s[0] = 0;
  for (int i = 0; i < 1000; i++) strcat(s + i * (sizeof unit - 1), unit);
  return s;
}

static void push(struct lws *wsi, struct conn *c, int flags, const void *data, size_t len) {
  struct frame *f = malloc(sizeof *f + LWS_PRE + len);
  f->next = NULL;
  f->flags = flags;
  f->len = len;
  if (len) memcpy(f->buf + LWS_PRE, data, len);
  if (c->tail) c->tail->next = f; else c->head = f;
  c->tail = f;
  lws_callback_on_writable(wsi);
}
static void push_msg(struct lws *wsi, struct conn *c, int binary, const void *data, size_t len) {
  push(wsi, c, binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT, data, len);
}
static void push_close(struct lws *wsi, struct conn *c, int code, const char *reason) {
  push(wsi, c, CLOSE_FRAME, reason, strlen(reason));
  c->tail->len = strlen(reason) | (size_t)code << 16;
}
static void push_frags(struct lws *wsi, struct conn *c, int binary, const unsigned char *p, size_t n, int parts) {
  size_t step = (n + parts - 1) / parts;
  for (int i = 0; i < parts; i++) {
    size_t off = i * step < n ? i * step : n, len = off + step <= n ? step : n - off;
    push(wsi, c, lws_write_ws_flags(binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT, i == 0, i == parts - 1), p + off, len);
  }
}

/* Writes the next queued frame: returns -1 to close the connection. */
static int write_next(struct lws *wsi, struct conn *c) {
  struct frame *f = c->head;
  if (!f) return 0;
  if (!(c->head = f->next)) c->tail = NULL;
  int rc = 0;
  if (f->flags == CLOSE_FRAME) {
    if (!c->peer_code) { /* lws does not report the code of the close reply: print ours */
      c->peer_code = (int)(f->len >> 16);
      snprintf(c->peer_reason, sizeof c->peer_reason, "%.*s", (int)(f->len & 0xffff), (char *)f->buf + LWS_PRE);
    }
    lws_close_reason(wsi, (enum lws_close_status)(f->len >> 16), f->buf + LWS_PRE, f->len & 0xffff);
    rc = -1;
  } else if (lws_write(wsi, f->buf + LWS_PRE, f->len, (enum lws_write_protocol)f->flags) < (int)f->len) {
    rc = -1;
  }
  free(f);
  if (rc == 0 && c->head) lws_callback_on_writable(wsi);
  return rc;
}

static void conn_free(struct conn *c) {
  while (c->head) {
    struct frame *f = c->head;
    c->head = f->next;
    free(f);
  }
  c->tail = NULL;
  free(c->rx);
  c->rx = NULL;
  c->rxlen = c->rxcap = 0;
}

/* Appends a received chunk: returns 1 once the message is complete. */
static int rx_add(struct lws *wsi, struct conn *c, const void *in, size_t len) {
  if (c->rxlen + len + 1 > c->rxcap) {
    while (c->rxlen + len + 1 > c->rxcap) c->rxcap = c->rxcap ? c->rxcap * 2 : 4096;
    c->rx = realloc(c->rx, c->rxcap);
  }
  if (len) memcpy(c->rx + c->rxlen, in, len);
  c->rxlen += len;
  c->rx[c->rxlen] = 0;
  return lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
}

static void peer_close(struct conn *c, const unsigned char *in, size_t len) {
  c->peer_code = len >= 2 ? in[0] << 8 | in[1] : 1005;
  snprintf(c->peer_reason, sizeof c->peer_reason, "%.*s", len > 2 ? (int)(len - 2) : 0, (const char *)in + 2);
}

/* ---- server */

static void serve_message(struct lws *wsi, struct conn *c, int binary) {
  const char *s = (const char *)c->rx;
  char kind[16], reason[126];
  int code, size, parts, n = 0;
  if (!binary && sscanf(s, "close:%d:%n", &code, &n) == 1 && n) {
    snprintf(reason, sizeof reason, "%s", s + n);
    push_close(wsi, c, code, reason);
  } else if (!binary && sscanf(s, "frag:%15[a-z]:%d:%d%n", kind, &size, &parts, &n) == 3 && !s[n]) {
    int bin = !strcmp(kind, "binary");
    unsigned char *p = payload(size, bin);
    push_frags(wsi, c, bin, p, size, parts);
    free(p);
  } else if (!binary && !strncmp(s, "ping:", 5)) {
    snprintf(c->ping, sizeof c->ping, "%s", s + 5);
    push(wsi, c, LWS_WRITE_PING, c->ping, strlen(c->ping));
  } else if (!binary && !strncmp(s, "header:", 7)) {
    /* lws drops the request headers once the connection is established: only
     * the header the specs ask for is kept (any other name answers ""). */
    const char *v = !strcasecmp(s + 7, HEADER) ? c->header : "";
    push_msg(wsi, c, 0, v, strlen(v));
  } else {
    push_msg(wsi, c, binary, c->rx, c->rxlen);
  }
}

static int server_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  struct conn *c = user;
  char uri[128];
  switch (reason) {
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) > 0 && !strcmp(uri, "/reject")) {
      lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, "rejected");
      return 1;
    }
    return 0;
  case LWS_CALLBACK_ESTABLISHED:
    lws_hdr_copy(wsi, c->path, sizeof c->path, WSI_TOKEN_GET_URI);
    lws_hdr_custom_copy(wsi, c->header, sizeof c->header, HEADER ":", (int)strlen(HEADER ":"));
    return 0;
  case LWS_CALLBACK_RECEIVE:
    if (rx_add(wsi, c, in, len)) {
      serve_message(wsi, c, lws_frame_is_binary(wsi));
      c->rxlen = 0;
    }
    return 0;
  case LWS_CALLBACK_RECEIVE_PONG:
    if (c->ping[0] && len == strlen(c->ping) && !memcmp(in, c->ping, len)) {
      char msg[140];
      snprintf(msg, sizeof msg, "pong:%s", c->ping);
      c->ping[0] = 0;
      push_msg(wsi, c, 0, msg, strlen(msg));
    }
    return 0;
  case LWS_CALLBACK_SERVER_WRITEABLE:
    return write_next(wsi, c);
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    peer_close(c, in, len);
    return 0;
  case LWS_CALLBACK_CLOSED:
    out("CLOSE %s %d %s", c->path, c->peer_code ? c->peer_code : 1006, c->peer_reason);
    conn_free(c);
    return 0;
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

/* ---- client: one scenario at a time, state in `cli` */

static struct {
  const char *name;
  struct lws *wsi;
  struct conn conn;
  unsigned char *want;
  size_t wantlen;
  int wantbin, count, closing, done, hangup;
  char protocol[64]; /* the server's choice (lws keeps the wsi on protocols[0]) */
} cli;
static char *UTF8;

static void result(const char *status, const char *why) {
  if (cli.done) return;
  cli.done = 1;
  out("RESULT %s %s%s%s", cli.name, status, why ? " " : "", why ? why : "");
}
static void fail(struct lws *wsi, const char *why) {
  result("fail", why);
  if (wsi) { /* hang up from the next WRITEABLE callback */
    cli.hangup = 1;
    lws_callback_on_writable(wsi);
  }
}
static int is(const char *name) { return !strcmp(cli.name, name); }

static void want(unsigned char *p, size_t n, int binary) {
  cli.want = p;
  cli.wantlen = n;
  cli.wantbin = binary;
}

static void client_open(struct lws *wsi, struct conn *c) {
  char kind[8], label[8];
  if (is("reject")) return fail(wsi, "the handshake was accepted");
  if (sscanf(cli.name, "%7[a-z]_%7s", kind, label) == 2 && (!strcmp(kind, "text") || !strcmp(kind, "binary"))) {
    int bin = !strcmp(kind, "binary");
    size_t n = !strcmp(label, "8MiB") ? 8 << 20 : (size_t)atoi(label);
    want(payload(n, bin), n, bin);
    push_msg(wsi, c, bin, cli.want, n);
  } else if (is("utf8")) {
    want((unsigned char *)strdup(UTF8), strlen(UTF8), 0);
    push_msg(wsi, c, 0, cli.want, cli.wantlen);
  } else if (is("fragments_from_lua")) {
    want(payload(300, 1), 300, 1);
    push_msg(wsi, c, 0, "frag:binary:300:3", 17);
  } else if (is("fragments_from_peer")) {
    want(payload(300, 0), 300, 0);
    push_frags(wsi, c, 0, cli.want, 300, 3);
  } else if (is("ping")) {
    want((unsigned char *)strdup("pong:ping-from-lua"), 18, 0);
    push(wsi, c, LWS_WRITE_PING, "ping-from-peer", 14);
  } else if (is("close_from_lua")) {
    push_msg(wsi, c, 0, "close:4002:bye from lua", 23);
  } else if (is("close_from_peer")) {
    cli.closing = 1;
    push_close(wsi, c, 4001, "bye from peer");
  } else if (is("subprotocol")) {
    if (strcmp(cli.protocol, "chat.v1")) return fail(wsi, "protocol is not chat.v1");
    cli.closing = 1;
    push_close(wsi, c, 1000, "done");
  } else if (is("headers")) {
    want((unsigned char *)strdup("interop-value-42"), 16, 0);
    push_msg(wsi, c, 0, "header:x-interop", 16);
  } else if (is("wss")) {
    want((unsigned char *)strdup("hello tls"), 9, 0);
    push_msg(wsi, c, 0, cli.want, cli.wantlen);
  } else if (is("burst")) {
    char m[32];
    for (int i = 1; i <= 1000; i++) push_msg(wsi, c, 0, m, snprintf(m, sizeof m, "burst %d", i));
  } else {
    result("na", "unknown scenario");
    fail(wsi, NULL);
  }
}

static void client_message(struct lws *wsi, struct conn *c, int binary) {
  if (is("burst")) {
    char m[32];
    snprintf(m, sizeof m, "burst %d", ++cli.count);
    if (strcmp((char *)c->rx, m)) return fail(wsi, "burst message out of order");
    if (cli.count < 1000) return;
  } else if (!cli.want || binary != cli.wantbin || c->rxlen != cli.wantlen || memcmp(c->rx, cli.want, cli.wantlen)) {
    char why[64];
    snprintf(why, sizeof why, "message differs (%zu/%zu bytes, %s)", c->rxlen, cli.wantlen, binary ? "binary" : "text");
    return fail(wsi, why);
  }
  cli.closing = 1;
  push_close(wsi, c, 1000, "done");
}

static int client_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  struct conn *c = &cli.conn;
  char why[160];
  switch (reason) {
  case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
    if (is("headers")) {
      unsigned char **p = in, *end = *p + len;
      if (lws_add_http_header_by_name(wsi, (const unsigned char *)"X-Interop:",
                                      (const unsigned char *)"interop-value-42", 16, p, end))
        return -1;
    }
    return 0;
  case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH: /* the response headers are still there */
    lws_hdr_copy(wsi, cli.protocol, sizeof cli.protocol, WSI_TOKEN_PROTOCOL);
    return 0;
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    client_open(wsi, c);
    return 0;
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    if (is("reject") && lws_http_client_http_response(wsi) == 403) {
      result("ok", NULL);
    } else {
      snprintf(why, sizeof why, "connection error: %s (status %u)", in ? (char *)in : "?",
               lws_http_client_http_response(wsi));
      fail(NULL, why);
    }
    cli.wsi = NULL;
    return 0;
  case LWS_CALLBACK_CLIENT_RECEIVE:
    if (rx_add(wsi, c, in, len)) {
      client_message(wsi, c, lws_frame_is_binary(wsi));
      c->rxlen = 0;
    }
    return 0;
  case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
    if (!is("ping") || len != 14 || memcmp(in, "ping-from-peer", 14)) fail(wsi, "unexpected pong");
    else push_msg(wsi, c, 0, "ping:ping-from-lua", 18);
    return 0;
  case LWS_CALLBACK_CLIENT_WRITEABLE:
    return cli.hangup ? -1 : write_next(wsi, c);
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    peer_close(c, in, len);
    return 0;
  case LWS_CALLBACK_CLIENT_CLOSED:
    if (is("close_from_lua")) {
      if (c->peer_code == 4002 && !strcmp(c->peer_reason, "bye from lua")) result("ok", NULL);
      snprintf(why, sizeof why, "close %d %s", c->peer_code, c->peer_reason);
      result("fail", why); /* no-op after "ok" */
    } else if (cli.closing) {
      result("ok", NULL);
    } else {
      snprintf(why, sizeof why, "closed early: %d %s", c->peer_code, c->peer_reason);
      result("fail", why);
    }
    conn_free(c);
    cli.wsi = NULL;
    return 0;
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

/* ---- main */

static struct lws_protocols protocols[3] = {
  { "default", NULL, sizeof(struct conn), 65536, 0, NULL, 0 },
  { "chat.v1", NULL, sizeof(struct conn), 65536, 0, NULL, 0 },
  { NULL, NULL, 0, 0, 0, NULL, 0 },
};

static int client(struct lws_context *ctx, char **argv, int argc) {
  char host[2][64];
  int port[2];
  for (int i = 0; i < 2; i++)
    if (sscanf(argv[i], "%*[a-z]://%63[^:]:%d", host[i], &port[i]) != 2) return 2;
  UTF8 = utf8();
  for (int k = 3; k < argc; k++) {
    memset(&cli, 0, sizeof cli);
    cli.name = argv[k];
    int tls = is("wss");
    char path[128];
    snprintf(path, sizeof path, "/%s", cli.name);
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = ctx;
    i.address = "127.0.0.1"; /* the lua-ws servers listen on 127.0.0.1 only */
    i.host = i.origin = host[tls]; /* the certificate is checked against the Host */
    i.port = port[tls];
    i.path = path;
    i.ssl_connection = tls ? LCCSCF_USE_SSL : 0;
    i.protocol = is("subprotocol") ? "x.unknown, chat.v1" : NULL;
    i.pwsi = &cli.wsi;
    time_t deadline = time(NULL) + 30;
    if (!lws_client_connect_via_info(&i)) fail(NULL, "lws_client_connect_via_info failed");
    while (!cli.done && time(NULL) < deadline) lws_service(ctx, 100);
    if (!cli.done) fail(cli.wsi, "timeout");
    for (deadline = time(NULL) + 5; cli.wsi && time(NULL) < deadline;) lws_service(ctx, 100); /* let it close */
    free(cli.want);
  }
  return 0;
}

int main(int argc, char **argv) {
  int is_server = argc >= 2 && !strcmp(argv[1], "server");
  if (!is_server && !(argc >= 5 && !strcmp(argv[1], "client"))) {
    fprintf(stderr, "usage: lws_peer server [CERT KEY] | client WS_BASE WSS_BASE CAFILE SCENARIO...\n");
    return 2;
  }
  lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
  protocols[0].callback = protocols[1].callback = is_server ? server_cb : client_cb;

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  info.protocols = protocols;
  info.port = CONTEXT_PORT_NO_LISTEN;
  struct lws_context *ctx = lws_create_context(&info);
  if (!ctx) return 1;

  int rc = 0;
  if (is_server) {
    info.iface = "127.0.0.1";
    info.port = 0;
    info.vhost_name = "plain";
    struct lws_vhost *plain = lws_create_vhost(ctx, &info);
    if (!plain) return 1;
    out("PORT %d", lws_get_vhost_listen_port(plain));
    if (argc >= 4) {
      info.vhost_name = "tls";
      info.ssl_cert_filepath = argv[2];
      info.ssl_private_key_filepath = argv[3];
      struct lws_vhost *tls = lws_create_vhost(ctx, &info);
      if (!tls) return 1;
      out("TLSPORT %d", lws_get_vhost_listen_port(tls));
    }
    while (lws_service(ctx, 1000) >= 0) {}
  } else {
    info.vhost_name = "client";
    info.client_ssl_ca_filepath = argv[4];
    if (!lws_create_vhost(ctx, &info)) return 1;
    rc = client(ctx, argv + 2, argc - 2);
  }
  lws_context_destroy(ctx);
  return rc;
}
