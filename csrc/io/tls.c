/* TLS transport on OpenSSL 3: see tls.h for the contract. */
#include "tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "loop.h"

/* Largest plaintext of one TLS record: the coalescing buffer of writev and
 * the most handed to one SSL_write (OpenSSL writes one record per call in
 * partial-write mode anyway; capping keeps a pending record within what
 * any retry passes again). */
#define TLS_RECORD 16384

#define TLS_ERR_MAX 384

#ifdef MSG_NOSIGNAL
#define TLS_SEND_FLAGS MSG_NOSIGNAL
#else
#define TLS_SEND_FLAGS 0
#endif

struct ws_tls_ctx {
    SSL_CTX *ssl;
    BIO_METHOD *bio_method; /* send/recv on the fd, without SIGPIPE */
    int refs;
    unsigned alpn_len; /* ALPN list in wire format (length-prefixed) */
    unsigned char alpn[];
};

typedef struct ws_tls {
    ws_transport base; /* first: the ops receive &base */
    SSL *ssl;
    ws_tls_ctx *ctx;
    /* TLS inside TLS: the transport the records travel over (owned), or
     * NULL when they go straight to the fd. */
    ws_transport *lower;
    unsigned lower_wants; /* what lower's last WS_T_AGAIN waits for */
    bool lower_failed;    /* lower reported WS_T_ERROR */
    unsigned wants;       /* WS_IO_* the last WS_T_AGAIN waits for */
    int sys_errno;        /* errno of the last failed send/recv, else 0 */
    bool bio_eof;         /* recv returned 0 */
    bool eof;             /* read reported end of stream */
    bool failed;          /* WS_T_ERROR reported: err holds why */
    bool fatal;           /* OpenSSL saw a fatal error: no SSL_shutdown */
    bool shut;            /* shutdown done */
    /* Handshake done (SSL_is_init_finished is not stable: a TLS 1.3 client
     * is "in init" again while it reads session tickets). */
    bool established;
    char err[TLS_ERR_MAX];
    char host[]; /* client: the name checked (for messages), else "" */
} ws_tls;

static const ws_transport_ops tls_ops;

/* ---- messages ---------------------------------------------------------- */

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || err_len == 0)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* strerror, starting lower case ("connection reset by peer"). */
static void errno_string(int e, char *out, size_t len)
{
    if (strerror_r(e, out, len) != 0)
        (void)snprintf(out, len, "error %d", e);
    if (out[0] != '\0' && islower((unsigned char)out[1]))
        out[0] = (char)tolower((unsigned char)out[0]);
}

/* The oldest error of OpenSSL's queue (the root cause) as text; the queue
 * is cleared. */
static void queue_reason(char *out, size_t len)
{
    const char *data = NULL;
    int flags = 0;
    unsigned long e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
    const char *reason;

    ERR_clear_error();
    if (e == 0) {
        (void)snprintf(out, len, "unknown error");
        return;
    }
    if (ERR_SYSTEM_ERROR(e)) {
        errno_string(ERR_GET_REASON(e), out, len);
        return;
    }
    reason = ERR_reason_error_string(e);
    if (reason == NULL) {
        ERR_error_string_n(e, out, len);
        return;
    }
    /* The data of SSL errors is noise ("SSL alert number 116"). */
    if (ERR_GET_LIB(e) != ERR_LIB_SSL && (flags & ERR_TXT_STRING) && data != NULL &&
        data[0] != '\0')
        (void)snprintf(out, len, "%s (%s)", reason, data);
    else
        (void)snprintf(out, len, "%s", reason);
}

/* "PREFIX: REASON" with the reason taken from the error queue. */
static void set_queue_err(char *err, size_t err_len, const char *prefix)
{
    char reason[256];
    queue_reason(reason, sizeof reason);
    set_err(err, err_len, "%s: %s", prefix, reason);
}

/* ---- a socket BIO that never raises SIGPIPE ---------------------------- */

/* The lower transport's ops start by clearing OpenSSL's error queue (one
 * queue per thread): the inner SSL's entries, say a verification failure
 * it is about to send an alert for, are taken out around the call and put
 * back after it. */
#define SAVED_ERRORS 8
typedef struct saved_errors {
    int n;
    struct {
        unsigned long code;
        int line;
        bool has_data;
        char file[96], func[64], data[128]; /* copies: the queue owns its strings */
    } e[SAVED_ERRORS];
} saved_errors;

static void errors_save(saved_errors *s)
{
    const char *file = NULL, *func = NULL, *data = NULL;
    int line = 0, flags = 0;
    unsigned long code;
    s->n = 0;
    while ((code = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
        if (s->n == SAVED_ERRORS)
            continue; /* the oldest ones (the root cause) are kept */
        s->e[s->n].code = code;
        (void)snprintf(s->e[s->n].file, sizeof s->e[s->n].file, "%s", file ? file : "");
        (void)snprintf(s->e[s->n].func, sizeof s->e[s->n].func, "%s", func ? func : "");
        s->e[s->n].line = line;
        s->e[s->n].has_data = (flags & ERR_TXT_STRING) && data != NULL;
        if (s->e[s->n].has_data)
            (void)snprintf(s->e[s->n].data, sizeof s->e[s->n].data, "%s", data);
        s->n++;
    }
}

static void errors_restore(const saved_errors *s)
{
    ERR_clear_error();
    for (int i = 0; i < s->n; i++) {
        ERR_new();
        ERR_set_debug(s->e[i].file, s->e[i].line, s->e[i].func);
        if (s->e[i].has_data)
            ERR_set_error(ERR_GET_LIB(s->e[i].code), ERR_GET_REASON(s->e[i].code), "%s",
                          s->e[i].data);
        else
            ERR_set_error(ERR_GET_LIB(s->e[i].code), ERR_GET_REASON(s->e[i].code), NULL);
    }
}

/* Records over the lower transport (TLS inside TLS).  OpenSSL retries a
 * blocked record write with the same remaining bytes, which is what the
 * lower TLS transport's writev asks for (tls.h). */
static int bio_lower_write(BIO *b, ws_tls *t, const char *data, int len)
{
    struct iovec iov = {(void *)data, (size_t)len};
    saved_errors saved;
    errors_save(&saved);
    ssize_t r = t->lower->ops->writev(t->lower, &iov, 1);
    errors_restore(&saved);
    if (r == WS_T_AGAIN) {
        t->lower_wants = t->lower->ops->wants(t->lower);
        BIO_set_retry_write(b);
        return -1;
    }
    if (r < 0) {
        t->lower_failed = true;
        return -1;
    }
    return (int)r;
}

static int bio_lower_read(BIO *b, ws_tls *t, char *out, int len)
{
    saved_errors saved;
    errors_save(&saved);
    ssize_t r = t->lower->ops->read(t->lower, (uint8_t *)out, (size_t)len);
    errors_restore(&saved);
    if (r == WS_T_AGAIN) {
        t->lower_wants = t->lower->ops->wants(t->lower);
        BIO_set_retry_read(b);
        return -1;
    }
    if (r < 0) {
        t->lower_failed = true;
        return -1;
    }
    if (r == 0)
        t->bio_eof = true;
    return (int)r;
}

static int bio_sock_write(BIO *b, const char *data, int len)
{
    ws_tls *t = BIO_get_data(b);
    ssize_t r;

    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (t->lower)
        return bio_lower_write(b, t, data, len);
    do
        r = send(t->base.fd, data, (size_t)len, TLS_SEND_FLAGS);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_write(b);
        else
            t->sys_errno = errno;
        return -1;
    }
    return (int)r;
}

static int bio_sock_read(BIO *b, char *out, int len)
{
    ws_tls *t = BIO_get_data(b);
    ssize_t r;

    BIO_clear_retry_flags(b);
    if (out == NULL || len <= 0)
        return 0;
    if (t->lower)
        return bio_lower_read(b, t, out, len);
    do
        r = recv(t->base.fd, out, (size_t)len, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_read(b);
        else
            t->sys_errno = errno;
        return -1;
    }
    if (r == 0)
        t->bio_eof = true;
    return (int)r;
}

static long bio_sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    const ws_tls *t = BIO_get_data(b);
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_EOF: return t != NULL && t->bio_eof;
    default: return 0;
    }
}

static int bio_sock_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_sock_destroy(BIO *b)
{
    (void)b; /* the transport owns and closes the fd */
    return 1;
}

static BIO_METHOD *bio_method_new(void)
{
    int index = BIO_get_new_index();
    BIO_METHOD *m;
    if (index == -1)
        return NULL;
    m = BIO_meth_new(index | BIO_TYPE_SOURCE_SINK, "lua-ws socket");
    if (m == NULL)
        return NULL;
    if (!BIO_meth_set_write(m, bio_sock_write) || !BIO_meth_set_read(m, bio_sock_read) ||
        !BIO_meth_set_ctrl(m, bio_sock_ctrl) || !BIO_meth_set_create(m, bio_sock_create) ||
        !BIO_meth_set_destroy(m, bio_sock_destroy)) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

/* ---- contexts ---------------------------------------------------------- */

void ws_tls_options_init(ws_tls_options *o)
{
    memset(o, 0, sizeof *o);
    o->verify = true;
}

/* "a,b" -> "\1a\1b"; out has room for strlen(list) + 1 bytes.  -1 when a
 * name is empty or longer than 255 bytes. */
static int alpn_wire(const char *list, unsigned char *out, unsigned *out_len)
{
    size_t n = 0;
    const char *p = list;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        const char *name = p;
        p += len;
        if (*p == ',')
            p++;
        while (len > 0 && name[0] == ' ') {
            name++;
            len--;
        }
        while (len > 0 && name[len - 1] == ' ')
            len--;
        if (len == 0 || len > 255)
            return -1;
        out[n++] = (unsigned char)len;
        memcpy(out + n, name, len);
        n += len;
    }
    if (n == 0 || n > UINT_MAX)
        return -1;
    *out_len = (unsigned)n;
    return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    const ws_tls_ctx *c = arg;
    unsigned char *chosen = NULL;
    (void)ssl;
    if (SSL_select_next_proto(&chosen, outlen, c->alpn, c->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

static void ctx_free(ws_tls_ctx *c)
{
    SSL_CTX_free(c->ssl);
    BIO_meth_free(c->bio_method);
    free(c);
}

/* Trust store: the given file/directory, else the system's. */
static int load_trust(SSL_CTX *ssl, const ws_tls_options *o, char *err, size_t err_len)
{
    char prefix[PATH_MAX + 64];
    if (o->cafile != NULL || o->capath != NULL) {
        if (SSL_CTX_load_verify_locations(ssl, o->cafile, o->capath) != 1) {
            (void)snprintf(prefix, sizeof prefix, "TLS: cannot load CA %s '%s'",
                           o->cafile != NULL ? "file" : "directory",
                           o->cafile != NULL ? o->cafile : o->capath);
            set_queue_err(err, err_len, prefix);
            return -1;
        }
    } else if (SSL_CTX_set_default_verify_paths(ssl) != 1) {
        set_queue_err(err, err_len, "TLS: cannot load the system CA store");
        return -1;
    }
    return 0;
}

/* Certificate (with chain) and key; the key must match. */
static int load_cert(SSL_CTX *ssl, const ws_tls_options *o, char *err, size_t err_len)
{
    char prefix[PATH_MAX + 64];
    const char *key = o->key != NULL ? o->key : o->cert;
    if (SSL_CTX_use_certificate_chain_file(ssl, o->cert) != 1) {
        (void)snprintf(prefix, sizeof prefix, "TLS: cannot load certificate '%s'", o->cert);
        set_queue_err(err, err_len, prefix);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            set_err(err, err_len, "TLS: private key '%s' does not match certificate '%s'", key,
                    o->cert);
            return -1;
        }
        (void)snprintf(prefix, sizeof prefix, "TLS: cannot load private key '%s'", key);
        set_queue_err(err, err_len, prefix);
        return -1;
    }
    if (SSL_CTX_check_private_key(ssl) != 1) {
        ERR_clear_error();
        set_err(err, err_len, "TLS: private key '%s' does not match certificate '%s'", key,
                o->cert);
        return -1;
    }
    return 0;
}

static int configure(ws_tls_ctx *c, const ws_tls_options *o, bool server, char *err, size_t err_len)
{
    SSL_CTX *ssl = c->ssl;
    uint64_t options = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;

    if (server)
        options |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    SSL_CTX_set_options(ssl, options);
    SSL_CTX_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION) != 1) {
        set_queue_err(err, err_len, "TLS: cannot set the minimum version");
        return -1;
    }
    if (o->ciphers != NULL && SSL_CTX_set_cipher_list(ssl, o->ciphers) != 1) {
        ERR_clear_error();
        set_err(err, err_len, "TLS: no usable cipher in '%s'", o->ciphers);
        return -1;
    }
    if (o->alpn != NULL && o->alpn[0] != '\0') {
        if (alpn_wire(o->alpn, c->alpn, &c->alpn_len) != 0) {
            set_err(err, err_len, "TLS: bad ALPN protocol list '%s'", o->alpn);
            return -1;
        }
        if (server)
            SSL_CTX_set_alpn_select_cb(ssl, alpn_select, c);
        else if (SSL_CTX_set_alpn_protos(ssl, c->alpn, c->alpn_len) != 0) {
            set_queue_err(err, err_len, "TLS: cannot set ALPN");
            return -1;
        }
    }

    if (server) {
        if (o->cert == NULL) {
            set_err(err, err_len, "TLS: a server needs a certificate (cert) and key");
            return -1;
        }
        if (load_cert(ssl, o, err, err_len) != 0)
            return -1;
        /* Sessions resumed across contexts must not skip client checks. */
        (void)SSL_CTX_set_session_id_context(ssl, (const unsigned char *)"lua-ws", 6);
        if (o->verify_client) {
            if (load_trust(ssl, o, err, err_len) != 0)
                return -1;
            if (o->cafile != NULL) {
                /* Tell clients which CAs we accept (a hint only). */
                STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->cafile);
                if (names != NULL)
                    SSL_CTX_set_client_CA_list(ssl, names);
                ERR_clear_error();
            }
            SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        } else {
            SSL_CTX_set_verify(ssl, SSL_VERIFY_NONE, NULL);
        }
    } else {
        if (o->key != NULL && o->cert == NULL) {
            set_err(err, err_len, "TLS: a key needs its certificate (cert)");
            return -1;
        }
        if (o->cert != NULL && load_cert(ssl, o, err, err_len) != 0)
            return -1;
        if (o->verify) {
            if (load_trust(ssl, o, err, err_len) != 0)
                return -1;
            SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        } else {
            SSL_CTX_set_verify(ssl, SSL_VERIFY_NONE, NULL);
        }
    }
    return 0;
}

static ws_tls_ctx *ctx_new(const ws_tls_options *o, bool server, char *err, size_t err_len)
{
    ws_tls_options defaults;
    ws_tls_ctx *c;
    size_t alpn_len;

    if (o == NULL) {
        ws_tls_options_init(&defaults);
        o = &defaults;
    }
    alpn_len = o->alpn != NULL ? strlen(o->alpn) : 0;
    c = calloc(1, sizeof *c + alpn_len + 1);
    if (c == NULL) {
        set_err(err, err_len, "TLS: out of memory");
        return NULL;
    }
    c->refs = 1;
    ERR_clear_error();
    c->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    c->bio_method = bio_method_new();
    if (c->ssl == NULL || c->bio_method == NULL) {
        set_queue_err(err, err_len, "TLS: cannot create a context");
        ctx_free(c);
        return NULL;
    }
    if (configure(c, o, server, err, err_len) != 0) {
        ERR_clear_error();
        ctx_free(c);
        return NULL;
    }
    return c;
}

ws_tls_ctx *ws_tls_client_ctx_new(const ws_tls_options *o, char *err, size_t err_len)
{
    return ctx_new(o, false, err, err_len);
}

ws_tls_ctx *ws_tls_server_ctx_new(const ws_tls_options *o, char *err, size_t err_len)
{
    return ctx_new(o, true, err, err_len);
}

void ws_tls_ctx_ref(ws_tls_ctx *c)
{
    c->refs++;
}

void ws_tls_ctx_unref(ws_tls_ctx *c)
{
    if (c != NULL && --c->refs == 0)
        ctx_free(c);
}

/* ---- the one mapping of OpenSSL results -------------------------------- */

enum tls_op { OP_HANDSHAKE, OP_READ, OP_WRITE };

/* Map the failed OpenSSL call's result (ret as that call returned it, 0
 * for the _ex functions) to the transport's: WS_T_AGAIN with wants set,
 * 0 for end of stream (reads after the handshake only), or WS_T_ERROR with
 * the message in t->err.  The error queue is left empty. */
static ssize_t tls_result(ws_tls *t, int ret, enum tls_op op)
{
    int code = SSL_get_error(t->ssl, ret);
    bool handshaking = !t->established;
    const char *prefix = handshaking ? "TLS handshake failed" : "TLS error";
    unsigned long e;
    char reason[256];

    switch (code) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        /* Over a lower transport, the fd events are the ones it waits for. */
        if (t->lower && t->lower_wants)
            t->wants = t->lower_wants;
        else
            t->wants = code == SSL_ERROR_WANT_READ ? WS_IO_READ : WS_IO_WRITE;
        return WS_T_AGAIN;
    case SSL_ERROR_ZERO_RETURN: goto eof; /* close_notify */
    case SSL_ERROR_SYSCALL:
        t->fatal = true;
        if (t->lower_failed) {
            ERR_clear_error();
            if (handshaking)
                (void)snprintf(t->err, sizeof t->err, "%s: %s", prefix,
                               t->lower->ops->error(t->lower));
            else
                (void)snprintf(t->err, sizeof t->err, "%s", t->lower->ops->error(t->lower));
            goto failed;
        }
        if (t->sys_errno != 0) {
            errno_string(t->sys_errno, reason, sizeof reason);
            ERR_clear_error();
            if (handshaking)
                (void)snprintf(t->err, sizeof t->err, "%s: %s", prefix, reason);
            else
                (void)snprintf(t->err, sizeof t->err, "%s", reason);
            goto failed;
        }
        if (ERR_peek_error() == 0)
            goto eof; /* EOF in the middle of nothing */
        break;
    case SSL_ERROR_SSL: t->fatal = true; break;
    default: break;
    }

    e = ERR_peek_error();
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        goto eof;
    if (handshaking && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) &&
        SSL_get_verify_result(t->ssl) != X509_V_OK) {
        const char *why = X509_verify_cert_error_string(SSL_get_verify_result(t->ssl));
        ERR_clear_error();
        if (t->host[0] != '\0')
            (void)snprintf(t->err, sizeof t->err, "TLS certificate verify failed for %s: %s",
                           t->host, why);
        else
            (void)snprintf(t->err, sizeof t->err, "TLS certificate verify failed: %s", why);
        goto failed;
    }
    queue_reason(reason, sizeof reason);
    (void)snprintf(t->err, sizeof t->err, "%s: %s", prefix, reason);
    goto failed;

eof:
    ERR_clear_error();
    if (op == OP_READ && !handshaking) {
        t->eof = true;
        t->wants = 0;
        return 0;
    }
    if (handshaking)
        (void)snprintf(t->err, sizeof t->err, "%s: connection closed by peer", prefix);
    else
        (void)snprintf(t->err, sizeof t->err, "connection closed by peer");
failed:
    t->failed = true;
    t->wants = 0;
    return WS_T_ERROR;
}

/* Before each OpenSSL call: stale errors would confuse SSL_get_error. */
static void tls_begin(ws_tls *t)
{
    ERR_clear_error();
    t->sys_errno = 0;
    t->lower_wants = 0;
}

/* ---- transport ops ----------------------------------------------------- */

static int tls_handshake(ws_transport *tp)
{
    ws_tls *t = (ws_tls *)tp;
    int r;
    if (t->failed)
        return WS_T_ERROR;
    if (t->established)
        return 0;
    tls_begin(t);
    r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->established = true;
        t->wants = 0;
        return 0;
    }
    return (int)tls_result(t, r, OP_HANDSHAKE);
}

/* Fills buf with as many records as are there, so one call usually
 * drains the socket; an error or EOF met after some data is reported by
 * the next call. */
static ssize_t tls_read(ws_transport *tp, uint8_t *buf, size_t n)
{
    ws_tls *t = (ws_tls *)tp;
    size_t got = 0;

    if (t->failed)
        return WS_T_ERROR;
    if (t->eof)
        return 0;
    if (n > SSIZE_MAX)
        n = SSIZE_MAX;
    while (got < n) {
        size_t k = 0;
        ssize_t r;
        tls_begin(t);
        if (SSL_read_ex(t->ssl, buf + got, n - got, &k) == 1) {
            t->established = true; /* SSL_read completes a handshake too */
            got += k;
            continue;
        }
        r = tls_result(t, 0, OP_READ);
        return got > 0 ? (ssize_t)got : r;
    }
    return (ssize_t)got;
}

static ssize_t tls_writev(ws_transport *tp, const struct iovec *iov, int iovcnt)
{
    ws_tls *t = (ws_tls *)tp;
    unsigned char coalesced[TLS_RECORD];
    size_t total = 0;
    size_t off = 0; /* into iov[i] */
    int i = 0;

    if (t->failed)
        return WS_T_ERROR;
    for (;;) {
        const unsigned char *p;
        size_t len, written = 0;

        while (i < iovcnt && off >= iov[i].iov_len) {
            i++;
            off = 0;
        }
        if (i >= iovcnt || total > (size_t)SSIZE_MAX - TLS_RECORD)
            return (ssize_t)total;
        if (iov[i].iov_len - off >= TLS_RECORD) {
            /* A whole record from one iovec: no copy. */
            p = (const unsigned char *)iov[i].iov_base + off;
            len = TLS_RECORD;
        } else {
            /* Small pieces: gather up to one record. */
            size_t o = off;
            int j = i;
            len = 0;
            while (j < iovcnt && len < TLS_RECORD) {
                size_t take = iov[j].iov_len - o;
                if (take > TLS_RECORD - len)
                    take = TLS_RECORD - len;
                if (take > 0)
                    memcpy(coalesced + len, (const unsigned char *)iov[j].iov_base + o, take);
                len += take;
                o += take;
                if (o >= iov[j].iov_len) {
                    j++;
                    o = 0;
                }
            }
            p = coalesced;
        }
        tls_begin(t);
        if (SSL_write_ex(t->ssl, p, len, &written) != 1) {
            ssize_t r = tls_result(t, 0, OP_WRITE);
            /* The bytes of a pending record are not counted: the retry
             * passes them again (see tls.h). */
            return r == WS_T_AGAIN && total > 0 ? (ssize_t)total : r;
        }
        t->established = true;
        total += written;
        off += written;
        while (i < iovcnt && off >= iov[i].iov_len && off > 0) {
            off -= iov[i].iov_len;
            i++;
        }
    }
}

static unsigned tls_wants(const ws_transport *tp)
{
    return ((const ws_tls *)tp)->wants;
}

static void tls_shutdown(ws_transport *tp)
{
    ws_tls *t = (ws_tls *)tp;
    int r;
    if (t->shut)
        return;
    t->shut = true;
    if (t->fatal || t->failed || !t->established)
        return;
    tls_begin(t);
    r = SSL_shutdown(t->ssl); /* close_notify, once; a blocked one is dropped */
    ERR_clear_error();
    if (r >= 0 && t->lower)
        t->lower->ops->shutdown(t->lower);
    else if (r >= 0)
        (void)shutdown(t->base.fd, SHUT_WR);
}

static void tls_destroy(ws_transport *tp)
{
    ws_tls *t = (ws_tls *)tp;
    SSL_free(t->ssl); /* frees the BIO */
    ERR_clear_error();
    if (t->lower)
        t->lower->ops->destroy(t->lower); /* closes the fd */
    else if (t->base.fd >= 0)
        (void)close(t->base.fd);
    ws_tls_ctx_unref(t->ctx);
    free(t);
}

static const char *tls_error(const ws_transport *tp)
{
    const ws_tls *t = (const ws_tls *)tp;
    return t->err[0] != '\0' ? t->err : "TLS error";
}

static const ws_transport_ops tls_ops = {
    .handshake = tls_handshake,
    .read = tls_read,
    .writev = tls_writev,
    .wants = tls_wants,
    .shutdown = tls_shutdown,
    .destroy = tls_destroy,
    .error = tls_error,
    .idle = NULL, /* SSL_MODE_RELEASE_BUFFERS already frees the buffers */
};

/* ---- transports -------------------------------------------------------- */

/* Close what a transport under construction was given. */
static void drop_stream(int fd, ws_transport *lower)
{
    if (lower)
        lower->ops->destroy(lower);
    else
        (void)close(fd);
}

/* The SSL and its BIO for fd (or over lower); NULL (fd closed or lower
 * destroyed, err set) on failure. */
static ws_tls *tls_new(ws_tls_ctx *ctx, int fd, ws_transport *lower, const char *host,
                       size_t host_len, char *err, size_t err_len)
{
    ws_tls *t = calloc(1, sizeof *t + host_len + 1);
    BIO *bio;

    ERR_clear_error();
    if (t == NULL) {
        set_err(err, err_len, "TLS: out of memory");
        drop_stream(fd, lower);
        return NULL;
    }
    t->base.ops = &tls_ops;
    t->base.fd = lower ? lower->fd : fd;
    t->lower = lower;
    if (host_len > 0)
        memcpy(t->host, host, host_len);
    t->ssl = SSL_new(ctx->ssl);
    bio = t->ssl != NULL ? BIO_new(ctx->bio_method) : NULL;
    if (bio == NULL) {
        set_queue_err(err, err_len, "TLS: cannot create a connection");
        SSL_free(t->ssl);
        drop_stream(fd, lower);
        free(t);
        return NULL;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio);
    t->ctx = ctx;
    ws_tls_ctx_ref(ctx);
    return t;
}

static void tls_abort(ws_tls *t, char *err, size_t err_len, const char *what)
{
    set_queue_err(err, err_len, what);
    tls_destroy(&t->base);
}

static ws_transport *client_new(ws_tls_ctx *ctx, int fd, ws_transport *lower, const char *host,
                                char *err, size_t err_len)
{
    size_t host_len = host != NULL ? strlen(host) : 0;
    unsigned char addr[16];
    ws_tls *t;

    /* "[::1]" -> "::1" */
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    t = tls_new(ctx, fd, lower, host, host_len, err, err_len);
    if (t == NULL)
        return NULL;
    SSL_set_connect_state(t->ssl);
    if (host_len == 0)
        return &t->base;
    if (inet_pton(AF_INET, t->host, addr) == 1 || inet_pton(AF_INET6, t->host, addr) == 1) {
        /* An address: checked against the certificate's IP entries, and
         * no SNI (RFC 6066 section 3). */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), t->host) != 1) {
            tls_abort(t, err, err_len, "TLS: cannot set the address to check");
            return NULL;
        }
        return &t->base;
    }
    if (SSL_set_tlsext_host_name(t->ssl, t->host) != 1) {
        tls_abort(t, err, err_len, "TLS: bad server name");
        return NULL;
    }
    SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(t->ssl, t->host) != 1) {
        tls_abort(t, err, err_len, "TLS: cannot set the host name to check");
        return NULL;
    }
    return &t->base;
}

ws_transport *ws_tls_client_new(ws_tls_ctx *ctx, int fd, const char *host, char *err,
                                size_t err_len)
{
    return client_new(ctx, fd, NULL, host, err, err_len);
}

ws_transport *ws_tls_client_over(ws_tls_ctx *ctx, ws_transport *lower, const char *host, char *err,
                                 size_t err_len)
{
    return client_new(ctx, -1, lower, host, err, err_len);
}

ws_transport *ws_tls_server_new(ws_tls_ctx *ctx, int fd, char *err, size_t err_len)
{
    ws_tls *t = tls_new(ctx, fd, NULL, NULL, 0, err, err_len);
    if (t == NULL)
        return NULL;
    SSL_set_accept_state(t->ssl);
    return &t->base;
}

const char *ws_tls_server_name(const ws_transport *tp)
{
    if (tp == NULL || tp->ops != &tls_ops)
        return NULL;
    return SSL_get_servername(((const ws_tls *)tp)->ssl, TLSEXT_NAMETYPE_host_name);
}
