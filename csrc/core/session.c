#include "session.h"

#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "frame.h"
#include "mask.h"
#include "utf8.h"

/* Handshake state: lives only while CONNECTING (and, after a failed
 * handshake, until the session is freed so the error event stays valid). */
typedef struct ws_hs {
    ws_http_head head;
    ws_server_request req;
    size_t scanned;  /* how far the head end was searched */
    size_t head_len; /* server: request head length, dropped on accept */
    bool requested;  /* server: WS_EV_REQUEST delivered, awaiting accept */
    bool http;       /* server: the request is plain HTTP (WS_EV_HTTP) */
    char accept[WS_ACCEPT_LEN + 1];
    char **protocols; /* client offers, for checking the response */
    size_t num_protocols;
    char *extensions;
    ws_pmd_params pmd_offer; /* client: the permessage-deflate offer made */
    bool pmd_offered;
    char err[200];
    ws_http_header *headers; /* sized to the head once it is complete */
    size_t headers_cap;
    ws_deflate_config dcfg; /* what permessage-deflate we offer or accept */
    size_t max_head;
    uint16_t max_headers;
    bool started; /* client: the request is queued */
} ws_hs;

enum { PENDING_NONE, PENDING_OPEN, PENDING_CLOSE };

/* Unsent output above which automatic pongs replace each other. */
#define WS_PONG_COALESCE_AT 65536

/* What a session needs only while bytes are in flight: input partly
 * parsed, output queued, the handshake running, a message being received
 * or sent in fragments, an event pending.  Taken when one of those starts
 * (from the loop's pool: ws_session_config.out_pool) and given back once
 * none is left, so an idle connection holds only struct ws_session
 * (bench/PROFILE.md, idle memory). */
typedef struct ws_part {
    ws_buf out;  /* bytes to send; first (ws_session_output_size) */
    ws_buf in;   /* received bytes; the current frame's payload sits at the front */
    ws_buf *msg; /* reassembly of a fragmented or compressed message; NULL when none */
    /* The storage of the last large frame read straight into `in`, kept for
     * the next one while large frames keep coming (no malloc, no fresh
     * pages per message); freed at the first frame that is not large.  Its
     * capacity is kept in its first bytes (spare_cap), not in every session. */
    uint8_t *spare;
    /* A block of the pool's store holding `in`: the payload of one large
     * whole message and nothing else (use_block); NULL when none. */
    void *block;
    void (*block_put)(void *block);
    ws_hs *hs;
    const char *close_reason; /* for a pending close event */
    ws_frame_header fh;
    uint64_t done;    /* payload bytes of the current frame already unmasked */
    uint64_t msg_len; /* bytes of the current message so far */
    size_t discard;   /* bytes of `in` to drop at the next call */
    uint16_t close_code;
    uint8_t pending;
    uint8_t msg_opcode; /* opcode of the message being received, 0 if none */
    bool have_header;   /* fh holds the current frame's header */
    bool msg_done;      /* msg holds a delivered message: clear it */
    bool free_hs;       /* drop hs at the next call */
    bool close_clean;
    bool msg_compressed; /* the message being received has RSV1 */
    /* the last bytes of `out` are an unsent automatic pong of this size (a
     * control frame: at most 131 bytes) */
    uint8_t pong_len;
    ws_utf8 in_utf8;
    ws_utf8 out_utf8;
} ws_part;

/* An idle session's part: nothing in flight.  Read freely; never written
 * (const: a write would fault), a session takes a part of its own first. */
static const ws_part idle_part;
#define IDLE_PART ((ws_part *)(uintptr_t)&idle_part)

struct ws_session {
    /* The part (ws_part), reached through its output buffer, its first
     * member: ws_session_output_size reads it inline. */
    ws_buf *part;
    /* Limits and policies, shared with the server's other sessions rather
     * than copied into each (bench/PROFILE.md, idle memory). */
    const ws_session_config *cfg;
    /* The agreed subprotocol and extensions in one string each way:
     * "protocol\0extensions\0" (has_protocol / has_extensions say which
     * exist; a missing protocol is ""); NULL when neither. */
    char *agreed;
    ws_deflate *dfl; /* permessage-deflate agreed: NULL otherwise */
    uint8_t role;
    uint8_t state;
    bool close_sent;
    bool eof;
    bool sending_fragments; /* a fragmented message is being sent */
    bool send_compressed;   /* the fragmented message being sent is compressed */
    bool has_protocol : 1;
    bool has_extensions : 1;
    bool pool_off : 1; /* ws_session_set_output_pool(s, NULL) */
};

/* ws_session_output_size reads the output buffer at the part's start. */
typedef char ws_part_out_first[offsetof(ws_part, out) == 0 ? 1 : -1];

static inline ws_part *part(const ws_session *s)
{
    return (ws_part *)(void *)s->part;
}

static void free_input(ws_part *a);

/* The loop's pool this session takes from and gives back to, or NULL. */
static inline ws_buf_pool *pool_of(const ws_session *s)
{
    return s->pool_off ? NULL : s->cfg->out_pool;
}

/* Output storage up to this size stays with a part whose output was all
 * written, in the pool too: the next message is queued without taking a
 * buffer and giving it back.  What a pool of WS_BUF_POOL_PARTS keeps is
 * bounded by it (at most ~44 KiB). */
#define WS_PART_OUT_KEEP 512u

/* ws_buf_pool.free_parts: pooled parts and the storage they keep. */
static void free_parts(void *list)
{
    while (list) {
        ws_part *a = list;
        memcpy(&list, &a->in.data, sizeof list);
        ws_buf_free(&a->out);
        free(a);
    }
}

/* The session's own part, taken now if it is idle (a pooled one when the
 * pool keeps one); NULL when out of memory. */
static ws_part *take_part(ws_session *s)
{
    ws_part *a = part(s);
    if (a != IDLE_PART)
        return a;
    ws_buf_pool *pool = pool_of(s);
    if (pool && pool->parts) {
        /* Pooled parts are idle ones: only the list link to clear. */
        a = pool->parts;
        memcpy(&pool->parts, &a->in.data, sizeof pool->parts);
        pool->nparts--;
        a->in.data = NULL;
    } else if (!(a = calloc(1, sizeof *a))) {
        return NULL;
    }
    s->part = &a->out;
    return a;
}

/* Give the part back: to the pool while it keeps fewer than
 * WS_BUF_POOL_PARTS, else to the C heap. */
static void give_part(ws_session *s, ws_part *a)
{
    s->part = &IDLE_PART->out;
    ws_buf_pool *pool = pool_of(s);
    if (pool && pool->nparts < WS_BUF_POOL_PARTS) {
        a->pong_len = 0; /* the rest is as an idle part has it */
        /* Linked through `in` (empty); `out` keeps its small storage. */
        memcpy(&a->in.data, &pool->parts, sizeof pool->parts);
        pool->parts = a;
        pool->nparts++;
    } else {
        ws_buf_free(&a->out);
        free(a);
    }
}

/* Give the part back once nothing is in flight: no bytes held either way
 * (a frame delivered last is in `in` until dropped), no handshake, no
 * message being received or sent, no event due.  A message delivered from
 * `msg`, and a handshake state to drop, hold msg and hs. */
static inline void settle(ws_session *s)
{
    ws_part *a = part(s);
    if (!a->out.len && !a->in.data && !a->have_header && !a->msg_opcode && !a->pending && !a->msg &&
        !a->hs && !a->spare && !s->sending_fragments && a != IDLE_PART)
        give_part(s, a);
}

/* An entry point's result: a part taken for output that failed goes back. */
static int settled(ws_session *s, int r)
{
    if (r != WS_OK)
        settle(s);
    return r;
}

const char *ws_state_name(int state)
{
    static const char *const names[] = {"CONNECTING", "OPEN", "CLOSING", "CLOSED"};
    return state >= WS_CONNECTING && state <= WS_CLOSED ? names[state] : "CLOSED";
}

bool ws_close_code_valid(int code)
{
    if (code >= 1000 && code <= 1003)
        return true;
    /* 1004-1006 and 1015 are reserved and never sent; 1012-1014 are
     * registered with IANA (restart, try again later, bad gateway). */
    if (code >= 1007 && code <= 1014)
        return true;
    return code >= 3000 && code <= 4999;
}

void ws_session_config_init(ws_session_config *cfg, int role)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->role = role;
    cfg->handshake = true;
    cfg->max_message = 16u << 20;
    cfg->max_frame = 16u << 20;
    cfg->max_head = 8192;
    cfg->max_headers = 64;
    ws_deflate_config_init(&cfg->compress);
}

static void default_random(void *ud, uint8_t *buf, size_t n)
{
    (void)ud;
    if (RAND_bytes(buf, (int)n) != 1) {
        /* RAND_bytes only fails when the system RNG is unusable; a
         * predictable mask would defeat its purpose, so stop here. */
        abort();
    }
}

static ws_hs *hs_new(const ws_session_config *cfg)
{
    ws_hs *hs = calloc(1, sizeof(ws_hs));
    if (hs) {
        hs->dcfg = cfg->compress;
        hs->max_head = cfg->max_head;
        hs->max_headers = (uint16_t)(cfg->max_headers > 65535 ? 65535 : cfg->max_headers);
    }
    return hs;
}

/* Room for the header lines of the complete head buf[0..end): one per line
 * at most, and never more than max_headers (the parser reports the rest as
 * too many).  Sized to the head so a handshake holds only what it uses. */
static bool hs_reserve_headers(ws_hs *hs, const char *buf, size_t end)
{
    size_t lines = 0;
    for (const char *p = buf; (p = memchr(p, '\n', end - (size_t)(p - buf))) != NULL; p++)
        lines++;
    size_t n = lines < hs->max_headers ? lines : hs->max_headers;
    if (n > hs->headers_cap) {
        ws_http_header *h = realloc(hs->headers, (n ? n : 1) * sizeof *h);
        if (!h)
            return false;
        hs->headers = h;
        hs->headers_cap = n;
    }
    hs->head.headers = hs->headers;
    hs->head.num_headers = n;
    return true;
}

static void hs_free(ws_hs *hs)
{
    if (!hs)
        return;
    free(hs->headers);
    for (size_t i = 0; i < hs->num_protocols; i++)
        free(hs->protocols[i]);
    free(hs->protocols);
    free(hs->extensions);
    free(hs);
}

/* The reassembly buffer exists only while a message needs one. */
static ws_buf *msg_buf(ws_session *s)
{
    ws_part *a = part(s);
    if (!a->msg && (a->msg = malloc(sizeof *a->msg)) != NULL)
        ws_buf_init(a->msg);
    return a->msg;
}

static void msg_free(ws_session *s)
{
    ws_part *a = part(s);
    if (a->msg) {
        ws_buf_free(a->msg);
        free(a->msg);
        a->msg = NULL;
    }
}

struct ws_session_settings {
    ws_session_config cfg;
    unsigned refs;
};

ws_session_settings *ws_session_settings_new(const ws_session_config *cfg)
{
    ws_session_settings *st = malloc(sizeof *st);
    if (st) {
        st->cfg = *cfg;
        if (!st->cfg.random)
            st->cfg.random = default_random;
        st->refs = 1;
    }
    return st;
}

void ws_session_settings_unref(ws_session_settings *st)
{
    if (st && --st->refs == 0)
        free(st);
}

ws_session *ws_session_new(const ws_session_config *cfg)
{
    ws_session_settings *st = ws_session_settings_new(cfg);
    ws_session *s = st ? calloc(1, sizeof *s) : NULL;
    if (s && ws_session_init(s, st) != 0) {
        free(s);
        s = NULL;
    }
    ws_session_settings_unref(st); /* the session holds its own reference */
    return s;
}

size_t ws_session_size(void)
{
    return sizeof(ws_session);
}

static int set_agreed(ws_session *s, const char *protocol, size_t pl, const char *extensions,
                      size_t el);

int ws_session_init(ws_session *s, ws_session_settings *st)
{
    const ws_session_config *cfg = &st->cfg;
    st->refs++;
    s->cfg = cfg;
    s->part = &IDLE_PART->out;
    if (cfg->out_pool)
        cfg->out_pool->free_parts = free_parts; /* (the parts it will keep) */
    s->role = (uint8_t)cfg->role;
    s->state = cfg->handshake ? WS_CONNECTING : WS_OPEN;
    if (!cfg->handshake && cfg->compress.enabled) {
        /* The host negotiated: the parameters are the agreed values. */
        ws_pmd_params p;
        memset(&p, 0, sizeof p);
        p.server_no_context_takeover = cfg->compress.server_no_context_takeover;
        p.client_no_context_takeover = cfg->compress.client_no_context_takeover;
        p.server_max_window_bits = cfg->compress.server_max_window_bits;
        p.client_max_window_bits = cfg->compress.client_max_window_bits;
        ws_pmd_agreed agreed;
        ws_pmd_agreed_from_params(&p, &agreed);
        char str[WS_PMD_STR_MAX];
        ws_pmd_format(&p, str);
        s->dfl = ws_deflate_new(&cfg->compress, &agreed, cfg->role == WS_SERVER);
        if (!s->dfl || set_agreed(s, NULL, 0, str, strlen(str)) != 0) {
            ws_session_fini(s);
            return -1;
        }
    }
    ws_part *a = cfg->handshake ? take_part(s) : NULL;
    if (cfg->handshake && (!a || !(a->hs = hs_new(cfg)))) {
        ws_session_fini(s);
        return -1;
    }
    return 0;
}

void ws_session_free(ws_session *s)
{
    if (s) {
        ws_session_fini(s);
        free(s);
    }
}

void ws_session_fini(ws_session *s)
{
    ws_part *a = part(s);
    if (a != IDLE_PART) {
        /* Not to the pool: the loop that owns it may be gone by now. */
        free_input(a);
        ws_buf_free(&a->out);
        free(a->spare);
        msg_free(s);
        hs_free(a->hs);
        free(a);
        s->part = &IDLE_PART->out;
    }
    ws_deflate_free(s->dfl);
    free(s->agreed);
    /* The record s->cfg points into (its first member). */
    ws_session_settings_unref((ws_session_settings *)(void *)s->cfg);
}

/* The agreed protocol and extensions (each NULL when none): 0, or -1 when
 * out of memory. */
static int set_agreed(ws_session *s, const char *protocol, size_t pl, const char *extensions,
                      size_t el)
{
    if (!protocol && !extensions)
        return 0;
    char *a = malloc(pl + el + 2);
    if (!a)
        return -1;
    if (protocol)
        memcpy(a, protocol, pl);
    a[pl] = '\0';
    if (extensions)
        memcpy(a + pl + 1, extensions, el);
    a[pl + 1 + el] = '\0';
    free(s->agreed);
    s->agreed = a;
    s->has_protocol = protocol != NULL;
    s->has_extensions = extensions != NULL;
    return 0;
}

static char *dup_span(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- sending ---------------------------------------------------------- */

/* Empty kept output storage too small for n bytes goes: the pool's, or a
 * new buffer, takes its place (not grown: no copy of nothing). */
static void fit_kept_output(ws_buf *b, size_t n)
{
    if (b->data && !b->len && b->cap < n)
        ws_buf_free(b);
}

/* Most frames a server sends: unmasked, up to 125 bytes, a 2-byte header
 * written here into room the buffer (or the pool's) already has.  False
 * when there is no such room. */
static inline bool put_small(const ws_session *s, ws_buf *b, unsigned byte0, const uint8_t *p,
                             size_t n)
{
    ws_buf_pool *pool = pool_of(s);
    if (!b->data && pool)
        ws_buf_from_pool(b, pool, 2 + n);
    if (!b->data || !b->cap || b->cap - b->len < 2 + n) /* (cap 0: lent memory) */
        return false;
    uint8_t *w = b->data + b->len;
    w[0] = (uint8_t)byte0;
    w[1] = (uint8_t)n;
    if (n)
        memcpy(w + 2, p, n);
    b->len += 2 + n;
    return true;
}

static int queue_frame_rsv(ws_session *s, unsigned opcode, bool fin, unsigned rsv, const uint8_t *p,
                           size_t n)
{
    ws_part *a = take_part(s);
    if (!a)
        return WS_E_NOMEM;
    a->pong_len = 0; /* whatever is queued now follows the automatic pong */
    ws_buf *b = &a->out;
    if (s->role == WS_SERVER && n <= 125 &&
        put_small(s, b, (unsigned)((fin ? 0x80 : 0) | (rsv & 0x70) | (opcode & 0x0f)), p, n))
        return WS_OK;
    ws_frame_header h;
    memset(&h, 0, sizeof h);
    h.fin = fin;
    h.rsv = (uint8_t)rsv;
    h.opcode = (uint8_t)opcode;
    h.len = n;
    h.masked = s->role == WS_CLIENT;
    if (h.masked)
        s->cfg->random(s->cfg->random_ud, h.mask, 4);
    ws_buf_pool *pool = pool_of(s);
    if (pool) {
        fit_kept_output(b, WS_FRAME_HEADER_MAX + n);
        ws_buf_from_pool(b, pool, WS_FRAME_HEADER_MAX + n);
    }
    uint8_t *w =
        n <= (size_t)-1 - WS_FRAME_HEADER_MAX ? ws_buf_reserve(b, WS_FRAME_HEADER_MAX + n) : NULL;
    if (!w)
        return WS_E_NOMEM; /* (the caller settles: it may be parsing) */
    size_t hl = ws_frame_encode(w, &h);
    if (h.masked)
        ws_mask_copy(w + hl, p, n, h.mask, 0);
    else if (n)
        memcpy(w + hl, p, n);
    ws_buf_commit(b, hl + n);
    return WS_OK;
}

static int queue_frame(ws_session *s, unsigned opcode, bool fin, const uint8_t *p, size_t n)
{
    return queue_frame_rsv(s, opcode, fin, 0, p, n);
}

/* A data frame, compressed when asked (RSV1 on the first frame only). */
static int queue_data(ws_session *s, unsigned opcode, bool fin, const uint8_t *p, size_t n,
                      bool compress)
{
    if (!compress)
        return queue_frame(s, opcode, fin, p, n);
    ws_buf z; /* the compressed bytes, on their way to `out` */
    ws_buf_init(&z);
    int r = WS_E_NOMEM;
    if (ws_deflate_compress(s->dfl, p, n, fin, &z) == 0)
        r = queue_frame_rsv(s, opcode, fin, opcode == WS_OP_CONT ? 0 : WS_RSV1, ws_buf_begin(&z),
                            ws_buf_size(&z));
    ws_buf_free(&z);
    return r;
}

static int queue_close(ws_session *s, int code, const uint8_t *reason, size_t n)
{
    uint8_t payload[WS_CONTROL_MAX];
    size_t len = 0;
    if (code) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        if (n > WS_CONTROL_MAX - 2)
            n = WS_CONTROL_MAX - 2;
        if (n)
            memcpy(payload + 2, reason, n);
        len = 2 + n;
    }
    s->close_sent = true;
    return queue_frame(s, WS_OP_CLOSE, true, payload, len);
}

int ws_session_send(ws_session *s, bool binary, const uint8_t *p, size_t n)
{
    return ws_session_send_ex(s, binary, p, n, WS_SEND_AUTO);
}

int ws_session_send_ex(ws_session *s, bool binary, const uint8_t *p, size_t n, int compress)
{
    if (s->state != WS_OPEN)
        return WS_E_STATE;
    if (s->sending_fragments)
        return WS_E_BUSY;
    if (!binary && !ws_utf8_valid(p, n))
        return WS_E_ARG;
    if (s->role == WS_SERVER && n <= 125 && !s->dfl) {
        /* Most messages a server sends: one small uncompressed frame. */
        ws_part *a = take_part(s);
        if (!a)
            return WS_E_NOMEM;
        a->pong_len = 0; /* whatever is queued now follows the automatic pong */
        if (put_small(s, &a->out, binary ? 0x80u | WS_OP_BINARY : 0x80u | WS_OP_TEXT, p, n))
            return WS_OK;
    }
    bool z = false;
    if (s->dfl)
        z = compress == WS_SEND_AUTO ? ws_deflate_wants(s->dfl, n)
                                     : compress == WS_SEND_COMPRESS && ws_deflate_can_send(s->dfl);
    return settled(s, queue_data(s, binary ? WS_OP_BINARY : WS_OP_TEXT, true, p, n, z));
}

int ws_session_send_fragment(ws_session *s, bool binary, const uint8_t *p, size_t n, bool fin)
{
    if (s->state != WS_OPEN)
        return WS_E_STATE;
    /* The part holds the validator state between fragments. */
    ws_part *a = take_part(s);
    if (!a)
        return WS_E_NOMEM;
    unsigned opcode = WS_OP_CONT;
    ws_utf8 u = a->out_utf8;
    if (!s->sending_fragments) {
        opcode = binary ? WS_OP_BINARY : WS_OP_TEXT;
        ws_utf8_init(&u);
        u.need = binary ? 0xff : 0; /* 0xff marks a binary message */
    }
    int r = WS_OK;
    if (u.need != 0xff) {
        r = ws_utf8_feed(&u, p, n);
        r = r == WS_UTF8_INVALID || (fin && r != WS_UTF8_OK) ? WS_E_ARG : WS_OK;
    }
    if (r == WS_OK) {
        bool z = s->sending_fragments ? s->send_compressed : s->dfl && ws_deflate_can_send(s->dfl);
        r = queue_data(s, opcode, fin, p, n, z);
        if (r == WS_OK) {
            a->out_utf8 = u;
            s->send_compressed = z;
            s->sending_fragments = !fin;
        }
    }
    return settled(s, r); /* (held while fragments are being sent or bytes wait) */
}

int ws_session_ping(ws_session *s, const uint8_t *p, size_t n)
{
    if (s->state != WS_OPEN)
        return WS_E_STATE;
    if (n > WS_CONTROL_MAX)
        return WS_E_ARG;
    return settled(s, queue_frame(s, WS_OP_PING, true, p, n));
}

int ws_session_pong(ws_session *s, const uint8_t *p, size_t n)
{
    if (s->state != WS_OPEN)
        return WS_E_STATE;
    if (n > WS_CONTROL_MAX)
        return WS_E_ARG;
    return settled(s, queue_frame(s, WS_OP_PONG, true, p, n));
}

int ws_session_close(ws_session *s, int code, const uint8_t *reason, size_t n)
{
    if (s->state != WS_OPEN)
        return WS_E_STATE;
    if (code == 0 ? n > 0 : !ws_close_code_valid(code))
        return WS_E_ARG;
    if (n > WS_CONTROL_MAX - 2 || !ws_utf8_valid(reason, n))
        return WS_E_ARG;
    int r = queue_close(s, code, reason, n);
    if (r != WS_OK)
        return settled(s, r);
    s->state = WS_CLOSING;
    return WS_OK;
}

int ws_session_frame_direct(ws_session *s, bool binary, const uint8_t *p, size_t n, uint8_t *hdr)
{
    ws_part *a = part(s);
    if (s->state != WS_OPEN)
        return WS_E_STATE;
    if (s->sending_fragments)
        return WS_E_BUSY;
    if (s->role != WS_SERVER || ws_buf_size(&a->out) != 0 ||
        (s->dfl && ws_deflate_wants(s->dfl, n)))
        return 0;
    if (!binary && !ws_utf8_valid(p, n))
        return WS_E_ARG;
    if (a->pong_len) /* (an idle part's is 0: never written) */
        a->pong_len = 0;
    ws_frame_header h;
    memset(&h, 0, sizeof h);
    h.fin = true;
    h.opcode = binary ? WS_OP_BINARY : WS_OP_TEXT;
    h.len = n;
    return (int)ws_frame_encode(hdr, &h);
}

int ws_session_send_raw(ws_session *s, const uint8_t *frame, size_t n)
{
    if (s->state != WS_OPEN)
        return WS_E_STATE;
    if (s->sending_fragments)
        return WS_E_BUSY;
    ws_part *a = take_part(s);
    if (!a)
        return WS_E_NOMEM;
    a->pong_len = 0;
    ws_buf_pool *pool = pool_of(s);
    if (pool) {
        fit_kept_output(&a->out, n);
        ws_buf_from_pool(&a->out, pool, n);
    }
    return settled(s, ws_buf_append(&a->out, frame, n) == 0 ? WS_OK : WS_E_NOMEM);
}

const ws_deflate *ws_session_deflate(const ws_session *s)
{
    return s->dfl;
}

int ws_session_send_external(ws_session *s)
{
    if (s->state != WS_OPEN)
        return WS_E_STATE;
    if (s->sending_fragments)
        return WS_E_BUSY;
    if (part(s)->pong_len) /* the output's end is a position the host keeps */
        part(s)->pong_len = 0;
    return WS_OK;
}

const uint8_t *ws_session_output(const ws_session *s, size_t *n)
{
    ws_part *a = part(s);
    *n = ws_buf_size(&a->out);
    return ws_buf_begin(&a->out);
}

void ws_session_output_consume(ws_session *s, size_t n)
{
    ws_part *a = part(s);
    if (a == IDLE_PART) /* (nothing to consume) */
        return;
    ws_buf *b = &a->out;
    ws_buf_pool *pool;
    if (b->start + n >= b->len && b->cap <= WS_PART_OUT_KEEP)
        b->start = b->len = 0; /* (the storage stays with the part) */
    else if ((pool = pool_of(s)) != NULL)
        ws_buf_consume_to_pool(b, n, pool);
    else
        ws_buf_consume(b, n);
    if (!b->len)
        settle(s);
}

void ws_session_output_written(ws_session *s)
{
    ws_part *a = part(s);
    ws_buf *b = &a->out;
    /* (Never called idle: there is output.)  Larger storage goes to the
     * pool as ws_session_output_consume gives it. */
    if (b->cap > WS_PART_OUT_KEEP) {
        ws_session_output_consume(s, ws_buf_size(b));
        return;
    }
    b->start = b->len = 0; /* (the storage stays with the part) */
    settle(s);
}

void ws_session_set_output_pool(ws_session *s, ws_buf_pool *pool)
{
    /* NULL: this session stops using it (its loop may go first), while
     * settings other sessions share keep naming it for them. */
    s->pool_off = pool == NULL;
    if (pool) { /* its own settings (ws_session_new): nobody else sees it */
        ((ws_session_config *)(void *)s->cfg)->out_pool = pool;
        pool->free_parts = free_parts;
    }
}

int ws_session_state(const ws_session *s)
{
    return s->state;
}
int ws_session_role(const ws_session *s)
{
    return s->role;
}
const char *ws_session_protocol(const ws_session *s)
{
    return s->has_protocol ? s->agreed : NULL;
}
const char *ws_session_extensions(const ws_session *s)
{
    return s->has_extensions ? s->agreed + strlen(s->agreed) + 1 : NULL;
}

/* The capacity of the spare input storage (kept in its first bytes), or 0. */
static size_t spare_cap(const ws_session *s)
{
    ws_part *a = part(s);
    size_t cap = 0;
    if (a->spare)
        memcpy(&cap, a->spare, sizeof cap);
    return cap;
}

size_t ws_session_memory(const ws_session *s, size_t *zlib)
{
    *zlib = ws_deflate_memory(s->dfl);
    const ws_part *a = part(s);
    if (a == IDLE_PART)
        return 0;
    size_t n = sizeof *a + a->in.cap + a->out.cap + spare_cap(s) + (a->msg ? a->msg->cap : 0);
    if (a->hs)
        n += sizeof *a->hs + a->hs->headers_cap * sizeof(ws_http_header);
    return n;
}

/* Drop zlib state once nothing more is compressed or decompressed. */
static void release_deflate(ws_session *s)
{
    if (s->dfl)
        ws_deflate_release(s->dfl);
}

/* ---- input ------------------------------------------------------------ */

/* Frames this large are read straight into the input buffer, which is
 * grown for the rest of the frame at once up to this much. */
#define WS_DIRECT_MIN     (16u << 10)
#define WS_DIRECT_RESERVE (4u << 20)

/* `in` empty, its storage gone: the store's block back, or freed. */
static void free_input(ws_part *a)
{
    if (a->block) {
        a->block_put(a->block);
        a->block = NULL;
        ws_buf_init(&a->in);
    } else {
        ws_buf_free(&a->in);
    }
}

/* `in` in storage of its own again, out of the store's block (input that
 * does not fit in it). */
static int leave_block(ws_part *a)
{
    ws_buf own;
    ws_buf_init(&own);
    if (ws_buf_append(&own, ws_buf_begin(&a->in), ws_buf_size(&a->in)) != WS_OK)
        return WS_E_NOMEM;
    free_input(a);
    a->in = own;
    return WS_OK;
}

static void drop_spare(ws_session *s)
{
    ws_part *a = part(s);
    free(a->spare);
    a->spare = NULL;
}

/* Consume `n` bytes of `in`; when they were a large frame's payload and
 * this empties a buffer of our own, it is kept as the spare, not freed. */
static void consume_input(ws_session *s, size_t n)
{
    ws_part *a = part(s);
    ws_buf *b = &a->in;
    if (a->block && b->start + n >= b->len) { /* the store's block, not taken */
        free_input(a);
        return;
    }
    if (b->start + n >= b->len && !b->cap) { /* lent bytes all read: forget them */
        ws_buf_init(b);
        return;
    }
    if (n >= WS_DIRECT_MIN && !ws_buf_lent(b) && b->start + n >= b->len) {
        drop_spare(s);
        a->spare = b->data;
        memcpy(a->spare, &b->cap, sizeof b->cap); /* cap >= WS_DIRECT_MIN */
        ws_buf_init(b);
        return;
    }
    ws_buf_consume(b, n);
}

/* Make the spare the input buffer when it holds what is there plus `want`
 * (what is there may be lent: it is copied into the spare then). */
static void adopt_spare(ws_session *s, size_t want)
{
    ws_part *a = part(s);
    ws_buf *b = &a->in;
    size_t have = ws_buf_size(b);
    size_t cap = spare_cap(s);
    bool lent = ws_buf_lent(b);
    if (!a->spare || (!lent && b->cap - b->len >= want) || cap < have + want)
        return;
    if (have)
        memcpy(a->spare, ws_buf_begin(b), have);
    if (!lent)
        free(b->data);
    b->data = a->spare;
    b->start = 0;
    b->len = have;
    b->cap = cap;
    a->spare = NULL;
}

/* Drop the payload of the frame delivered last (ws_session_next does it at
 * its start; a host that skipped that call per ws_session_drained has it
 * done before more input comes or the lent input is copied). */
static void drop_discard(ws_session *s)
{
    consume_input(s, part(s)->discard);
    part(s)->discard = 0;
}

static inline void drop_delivered(ws_session *s)
{
    if (part(s)->discard)
        drop_discard(s);
}

bool ws_session_drained(const ws_session *s)
{
    ws_part *a = part(s);
    return (s->state == WS_OPEN || s->state == WS_CLOSING) && a->pending == PENDING_NONE &&
           !s->eof && !a->have_header && !a->msg_done && !a->free_hs &&
           ws_buf_size(&a->in) == a->discard;
}

int ws_session_feed(ws_session *s, const uint8_t *p, size_t n)
{
    drop_delivered(s);
    if (s->state == WS_CLOSED || s->eof)
        return WS_OK;
    ws_part *a = take_part(s);
    if (!a)
        return WS_E_NOMEM;
    if (a->block && a->in.cap - a->in.len < n && leave_block(a) != WS_OK)
        return settled(s, WS_E_NOMEM);
    adopt_spare(s, n);
    return settled(s, ws_buf_append(&a->in, p, n) == 0 ? WS_OK : WS_E_NOMEM);
}

int ws_session_feed_lent(ws_session *s, uint8_t *p, size_t n)
{
    drop_delivered(s);
    /* While the handshake runs the parsed head points into `in` across
     * calls: lend only once OPEN, and only to an empty buffer. */
    if (s->state != WS_OPEN || s->eof || ws_buf_size(&part(s)->in) != 0 || part(s)->block)
        return ws_session_feed(s, p, n);
    ws_part *a = take_part(s);
    if (!a)
        return WS_E_NOMEM;
    ws_buf *b = &a->in; /* (empty: ws_buf_lend, inline) */
    b->data = n ? p : NULL;
    b->start = 0;
    b->len = n;
    b->cap = 0;
    return WS_OK;
}

/* What the next read of a large frame's payload wants room for (the rest
 * of the frame, up to WS_DIRECT_RESERVE), or 0 when it is not read
 * straight into the input buffer. */
static size_t direct_want(const ws_session *s)
{
    ws_part *a = part(s);
    if (s->state == WS_CLOSED || s->eof || !a->have_header || ws_opcode_is_control(a->fh.opcode))
        return 0;
    size_t have = ws_buf_size(&a->in);
    if (a->block) /* to its end, however little: reads never go past it */
        return a->fh.len > have ? (size_t)(a->fh.len - have) : 0;
    if (a->fh.len <= have || a->fh.len - have < WS_DIRECT_MIN)
        return 0;
    uint64_t rest = a->fh.len - have;
    return rest < WS_DIRECT_RESERVE ? (size_t)rest : WS_DIRECT_RESERVE;
}

/* The payload of a large whole message (one FIN text or binary frame, not
 * compressed, not streamed) is read into a block of the pool's store, so
 * the host can keep it where it arrived (ws_session_take_block).  Called
 * while its payload is still arriving (direct_want): `in` holds its start
 * and nothing else.  Without a store, or when it has no block, `in` stays
 * as it is. */
static void use_block(ws_session *s)
{
    ws_part *a = part(s);
    const ws_buf_pool *pool = pool_of(s);
    const ws_payload_store *st = pool ? pool->store : NULL;
    const ws_frame_header *h = &a->fh;
    if (!st || a->block || a->discard || !h->fin || h->rsv || s->cfg->stream ||
        (h->opcode != WS_OP_TEXT && h->opcode != WS_OP_BINARY) || h->len < st->min)
        return; /* (h->len is at most max_frame, a size_t) */
    unsigned char *payload;
    void *block = st->get(st->ud, (size_t)h->len, &payload);
    if (!block)
        return;
    size_t have = ws_buf_size(&a->in);
    if (have)
        memcpy(payload, ws_buf_begin(&a->in), have);
    ws_buf_free(&a->in);
    a->in.data = payload;
    a->in.len = have;
    a->in.cap = (size_t)h->len;
    a->block = block;
    a->block_put = st->put;
}

size_t ws_session_payload_rest(const ws_session *s)
{
    const ws_part *a = part(s);
    /* Not when pieces go out as they come (streamed), nor for a compressed
     * message, whose bytes leave `in` as they are inflated. */
    if (s->cfg->stream || a->msg_compressed || !direct_want(s))
        return 0;
    uint64_t rest = a->fh.len - ws_buf_size(&a->in);
    return rest > SIZE_MAX ? SIZE_MAX : (size_t)rest;
}

void ws_session_take_block(ws_session *s)
{
    ws_part *a = part(s);
    a->block = NULL;
    ws_buf_init(&a->in);
    a->discard = 0;
}

int ws_session_keep_input(ws_session *s)
{
    ws_part *a = part(s);
    ws_buf *b = &a->in;
    if (ws_buf_lent(b) && b->start + a->discard >= b->len) {
        /* Most reads: the lent input was all delivered; forget it. */
        b->data = NULL;
        b->start = b->len = 0;
        a->discard = 0;
        settle(s);
        return WS_OK;
    }
    drop_delivered(s);
    /* The start of a large frame's payload in lent memory goes straight
     * into the store's block or the spare the rest is read into: no fresh
     * storage for it, and no second copy at the next read. */
    if (ws_buf_lent(&part(s)->in) && direct_want(s))
        use_block(s);
    size_t want = part(s)->spare && ws_buf_lent(&part(s)->in) ? direct_want(s) : 0;
    if (want)
        adopt_spare(s, want);
    if (ws_buf_own(&part(s)->in) != 0)
        return WS_E_NOMEM;
    settle(s); /* the read is over: idle unless something is in flight */
    return direct_want(s) ? 1 : WS_OK;
}

uint8_t *ws_session_feed_space(ws_session *s, size_t *n)
{
    ws_part *a = part(s);
    *n = 0;
    size_t want = a->have_header ? direct_want(s) : 0; /* (most reads: no frame begun) */
    if (!want)
        return NULL;
    use_block(s);
    adopt_spare(s, want);
    uint8_t *p = ws_buf_reserve(&a->in, want);
    if (!p)
        return NULL;
    *n = a->in.cap - a->in.len;
    return p;
}

void ws_session_feed_commit(ws_session *s, size_t n)
{
    ws_buf_commit(&part(s)->in, n);
}

void ws_session_eof(ws_session *s)
{
    s->eof = true;
}

static void set_pending_close(ws_session *s, int code, const char *reason, bool clean)
{
    ws_part *a = part(s);
    a->pending = PENDING_CLOSE;
    a->close_code = (uint16_t)code;
    a->close_reason = reason;
    a->close_clean = clean;
}

/* Nothing more is read: the input and any message under way go. */
static void drop_input(ws_session *s)
{
    ws_part *a = part(s);
    if (a == IDLE_PART)
        return;
    free_input(a);
    drop_spare(s);
    msg_free(s);
    a->discard = 0;
    a->have_header = false;
    a->msg_opcode = 0;
    a->msg_compressed = false;
}

/* Fail the connection (RFC 6455 7.1.7): send a close frame with the code
 * unless one was sent, stop reading, report the error then the close. */
static int fail(ws_session *s, ws_event *ev, int code, const char *reason)
{
    if (!s->close_sent)
        queue_close(s, code, (const uint8_t *)reason, strlen(reason));
    s->state = WS_CLOSED;
    drop_input(s);
    release_deflate(s);
    ev->type = WS_EV_ERROR;
    ev->data = (const uint8_t *)reason;
    ev->len = strlen(reason);
    ev->code = code;
    set_pending_close(s, code, reason, false);
    return 1;
}

/* ---- handshake -------------------------------------------------------- */

int ws_session_start_client(ws_session *s, const ws_client_request *req,
                            const char *const *protocols, size_t num_protocols,
                            const char *extensions, char *err, size_t err_len)
{
    ws_part *a = part(s);
    if (s->role != WS_CLIENT || s->state != WS_CONNECTING || !a->hs || a->hs->started) {
        snprintf(err, err_len, "session is not a client waiting to connect");
        return WS_E_STATE;
    }
    ws_hs *hs = a->hs;
    hs->started = true;
    if (num_protocols) {
        hs->protocols = calloc(num_protocols, sizeof(char *));
        if (!hs->protocols)
            goto nomem;
        for (size_t i = 0; i < num_protocols; i++) {
            hs->protocols[i] = dup_span(protocols[i], strlen(protocols[i]));
            if (!hs->protocols[i])
                goto nomem;
            hs->num_protocols = i + 1;
        }
    }
    ws_client_request r = *req;
    if (a->hs->dcfg.enabled) {
        /* Our permessage-deflate offer first, then the host's own offers. */
        char offer[WS_PMD_STR_MAX];
        ws_pmd_client_offer(&a->hs->dcfg, &hs->pmd_offer);
        hs->pmd_offered = true;
        ws_pmd_format(&hs->pmd_offer, offer);
        size_t ol = strlen(offer), el = extensions ? strlen(extensions) : 0;
        if (!(hs->extensions = malloc(ol + el + 3)))
            goto nomem;
        memcpy(hs->extensions, offer, ol + 1);
        if (el) {
            memcpy(hs->extensions + ol, ", ", 2);
            memcpy(hs->extensions + ol + 2, extensions, el + 1);
        }
        r.extensions = hs->extensions;
    } else if (extensions && !(hs->extensions = dup_span(extensions, strlen(extensions)))) {
        goto nomem;
    }
    return ws_handshake_client_request(&a->out, &r, hs->accept, err, err_len);
nomem:
    snprintf(err, err_len, "out of memory");
    return WS_E_NOMEM;
}

/* Client: permessage-deflate in the accepted extensions.  0, or -1 with
 * hs->err set. */
static int client_negotiate(ws_session *s, const ws_client_result *res)
{
    ws_part *a = part(s);
    ws_hs *hs = a->hs;
    size_t pos = 0, elen;
    const char *e;
    ws_pmd_params resp;
    bool found = false;
    while (res->extensions &&
           ws_http_next_element(res->extensions, res->extensions_len, &pos, &e, &elen)) {
        ws_pmd_params p;
        const char *why = NULL;
        bool is_pmd;
        ws_err r = ws_pmd_parse(e, elen, &is_pmd, &p, &why);
        if (r == WS_OK && !is_pmd)
            continue;
        if (r != WS_OK) {
            snprintf(hs->err, sizeof hs->err, "invalid permessage-deflate response '%.*s': %s",
                     (int)(elen > 100 ? 100 : elen), e, why);
            return -1;
        }
        if (found) {
            snprintf(hs->err, sizeof hs->err, "server accepted permessage-deflate twice");
            return -1;
        }
        found = true;
        resp = p;
    }
    if (!found)
        return 0;
    ws_deflate_config cfg = a->hs->dcfg;
    if (!hs->pmd_offered) {
        /* Offered by hand in the extensions string: take that offer. */
        ws_deflate_config_init(&cfg);
        memset(&hs->pmd_offer, 0, sizeof hs->pmd_offer);
        pos = 0;
        while (hs->extensions &&
               ws_http_next_element(hs->extensions, strlen(hs->extensions), &pos, &e, &elen)) {
            const char *why;
            bool is_pmd;
            if (ws_pmd_parse(e, elen, &is_pmd, &hs->pmd_offer, &why) == WS_OK && is_pmd)
                break;
            memset(&hs->pmd_offer, 0, sizeof hs->pmd_offer);
        }
        cfg.client_no_context_takeover = hs->pmd_offer.client_no_context_takeover;
    }
    ws_pmd_agreed agreed;
    if (ws_pmd_client_accept(&hs->pmd_offer, &resp, &agreed, hs->err, sizeof hs->err) != 0)
        return -1;
    if (!(s->dfl = ws_deflate_new(&cfg, &agreed, false))) {
        snprintf(hs->err, sizeof hs->err, "out of memory");
        return -1;
    }
    return 0;
}

static int client_handshake_step(ws_session *s, ws_event *ev)
{
    ws_part *a = part(s);
    ws_hs *hs = a->hs;
    if (!hs || !hs->started)
        return 0; /* request not queued yet */
    char *buf = (char *)ws_buf_begin(&a->in);
    long end = ws_http_head_end(buf, ws_buf_size(&a->in), &hs->scanned, hs->max_head);
    const char *why = NULL;
    if (end == WS_E_NEED_MORE)
        return 0;
    if (end < 0) {
        why = "response head too large";
    } else if (!hs_reserve_headers(hs, buf, (size_t)end)) {
        why = "out of memory";
    } else {
        ws_err r = ws_http_parse_response(buf, (size_t)end, &hs->head);
        if (r == WS_E_TOO_MANY)
            why = "too many headers in the response";
        else if (r != WS_OK)
            why = "malformed HTTP response";
    }
    if (why) {
        snprintf(hs->err, sizeof hs->err, "%s", why);
    } else {
        ws_client_result res;
        if (ws_handshake_check_response(&hs->head, hs->accept, (const char *const *)hs->protocols,
                                        hs->num_protocols, hs->extensions, &res, hs->err,
                                        sizeof hs->err) == 0 &&
            client_negotiate(s, &res) == 0) {
            if (set_agreed(s, res.protocol, res.protocol_len, res.extensions, res.extensions_len) !=
                0) {
                snprintf(hs->err, sizeof hs->err, "out of memory");
            } else {
                s->state = WS_OPEN;
                a->discard = (size_t)end;
                a->free_hs = true;
                ev->type = WS_EV_OPEN;
                ev->head = &hs->head;
                return 1;
            }
        }
    }
    /* Handshake failed: nothing is sent, the host drops the transport. */
    s->state = WS_CLOSED;
    ev->type = WS_EV_ERROR;
    ev->data = (const uint8_t *)hs->err;
    ev->len = strlen(hs->err);
    ev->code = end > 0 && hs->head.status > 0 ? hs->head.status : 0;
    ev->head = end > 0 && hs->head.status > 0 ? &hs->head : NULL;
    if (ev->head) {
        /* Whatever of the error body came with the head. */
        ev->body = ws_buf_begin(&a->in) + end;
        ev->body_len = ws_buf_size(&a->in) - (size_t)end;
        const ws_http_header *cl = ws_http_find(&hs->head, "Content-Length");
        if (cl) {
            size_t want = 0;
            for (size_t i = 0; i < cl->value_len && cl->value[i] >= '0' && cl->value[i] <= '9'; i++)
                want = want * 10 + (size_t)(cl->value[i] - '0');
            if (want < ev->body_len)
                ev->body_len = want;
        }
    }
    a->discard = ws_buf_size(&a->in);
    set_pending_close(s, WS_CLOSE_ABNORMAL, "", false);
    return 1;
}

static int server_fail(ws_session *s, ws_event *ev, int status, const char *reason)
{
    ws_handshake_error_response(&part(s)->out, status, reason, NULL, 0);
    s->state = WS_CLOSED;
    drop_input(s);
    ev->type = WS_EV_ERROR;
    ev->data = (const uint8_t *)reason;
    ev->len = strlen(reason);
    ev->code = status;
    set_pending_close(s, WS_CLOSE_ABNORMAL, "", false);
    return 1;
}

static int server_handshake_step(ws_session *s, ws_event *ev)
{
    ws_part *a = part(s);
    ws_hs *hs = a->hs;
    if (!hs || hs->requested)
        return 0;
    char *buf = (char *)ws_buf_begin(&a->in);
    long end = ws_http_head_end(buf, ws_buf_size(&a->in), &hs->scanned, hs->max_head);
    if (end == WS_E_NEED_MORE && !ws_http_request_prefix_ok(buf, ws_buf_size(&a->in)))
        return server_fail(s, ev, 400, "malformed HTTP request");
    if (end == WS_E_NEED_MORE)
        return 0;
    if (end < 0) {
        size_t seen = ws_buf_size(&a->in);
        int status = ws_http_oversized_request(buf, seen < hs->max_head ? seen : hs->max_head);
        return server_fail(s, ev, status,
                           status == 431   ? "request head too large"
                           : status == 414 ? "request target too long"
                                           : "malformed HTTP request");
    }
    if (!hs_reserve_headers(hs, buf, (size_t)end))
        return server_fail(s, ev, 500, "out of memory");
    ws_err r = ws_http_parse_request(buf, (size_t)end, &hs->head);
    if (r == WS_E_TOO_MANY)
        return server_fail(s, ev, 431, "too many headers");
    if (r == WS_E_VERSION)
        return server_fail(s, ev, 400, "HTTP/1.1 required");
    if (r != WS_OK)
        return server_fail(s, ev, 400, "malformed HTTP request");
    if (s->cfg->allow_http && !ws_http_has_token(&hs->head, "Upgrade", "websocket")) {
        hs->head_len = (size_t)end;
        hs->requested = true;
        hs->http = true;
        ev->type = WS_EV_HTTP;
        ev->head = &hs->head;
        return 1;
    }
    const char *reason = NULL;
    int status = ws_handshake_check_request(&hs->head, &hs->req, &reason);
    if (status != 0)
        return server_fail(s, ev, status, reason ? reason : "bad handshake");
    hs->head_len = (size_t)end;
    hs->req.head_len = hs->head_len;
    hs->requested = true;
    ev->type = WS_EV_REQUEST;
    ev->head = &hs->head;
    ev->request = &hs->req;
    return 1;
}

static bool awaiting_accept(const ws_session *s)
{
    ws_part *a = part(s);
    return s->role == WS_SERVER && s->state == WS_CONNECTING && a->hs && a->hs->requested &&
           !a->hs->http;
}

const ws_http_head *ws_session_request_head(const ws_session *s)
{
    return awaiting_accept(s) ? &part(s)->hs->head : NULL;
}

int ws_session_respond(ws_session *s, int status, const ws_kv *headers, size_t num_headers,
                       const uint8_t *body, size_t body_len, char *err, size_t err_len)
{
    ws_part *a = part(s);
    if (s->role != WS_SERVER || s->state != WS_CONNECTING || !a->hs || !a->hs->http) {
        snprintf(err, err_len, "no plain HTTP request is waiting");
        return WS_E_STATE;
    }
    int rc = ws_handshake_http_response(&a->out, status, headers, num_headers, body, body_len, err,
                                        err_len);
    if (rc != WS_OK)
        return rc;
    s->state = WS_CLOSED;
    drop_input(s);
    set_pending_close(s, WS_CLOSE_ABNORMAL, "", false);
    return WS_OK;
}

static int accept_with(ws_session *s, const char *protocol, const char *extensions,
                       const ws_kv *headers, size_t num_headers, char *err, size_t err_len);

/* Server: the first acceptable permessage-deflate offer across every
 * Sec-WebSocket-Extensions header.  Offers with unknown, repeated or
 * invalid parameters are declined.  Returns true with the response. */
static bool server_negotiate(ws_session *s, char *resp_str, ws_pmd_agreed *agreed)
{
    ws_part *a = part(s);
    const ws_http_head *h = &a->hs->head;
    for (size_t i = 0; i < h->num_headers; i++) {
        const ws_http_header *hd = &h->headers[i];
        if (!ws_http_ieq(hd->name, hd->name_len, "Sec-WebSocket-Extensions", 24))
            continue;
        size_t pos = 0, elen;
        const char *e;
        while (ws_http_next_element(hd->value, hd->value_len, &pos, &e, &elen)) {
            ws_pmd_params offer, resp;
            const char *why;
            bool is_pmd;
            if (ws_pmd_parse(e, elen, &is_pmd, &offer, &why) != WS_OK || !is_pmd)
                continue;
            if (ws_pmd_server_accept(&a->hs->dcfg, &offer, &resp, agreed)) {
                ws_pmd_format(&resp, resp_str);
                return true;
            }
        }
    }
    return false;
}

int ws_session_accept(ws_session *s, const char *protocol, const char *extensions,
                      const ws_kv *headers, size_t num_headers, char *err, size_t err_len)
{
    ws_part *a = part(s);
    if (!awaiting_accept(s)) {
        snprintf(err, err_len, "no handshake request is waiting");
        return WS_E_STATE;
    }
    char *joined = NULL;
    ws_pmd_agreed agreed;
    char pmd[WS_PMD_STR_MAX];
    bool compress = a->hs->dcfg.enabled && server_negotiate(s, pmd, &agreed);
    if (compress) {
        size_t pl = strlen(pmd), el = extensions ? strlen(extensions) : 0;
        if (!(joined = malloc(pl + el + 3)) ||
            !(s->dfl = ws_deflate_new(&a->hs->dcfg, &agreed, true))) {
            free(joined);
            snprintf(err, err_len, "out of memory");
            return WS_E_NOMEM;
        }
        memcpy(joined, pmd, pl + 1);
        if (el) {
            memcpy(joined + pl, ", ", 2);
            memcpy(joined + pl + 2, extensions, el + 1);
        }
        extensions = joined;
    }
    int r = accept_with(s, protocol, extensions, headers, num_headers, err, err_len);
    free(joined);
    if (r != WS_OK) {
        ws_deflate_free(s->dfl);
        s->dfl = NULL;
    }
    return r;
}

static int accept_with(ws_session *s, const char *protocol, const char *extensions,
                       const ws_kv *headers, size_t num_headers, char *err, size_t err_len)
{
    ws_part *a = part(s);
    ws_hs *hs = a->hs;
    int rc = ws_handshake_server_response(&a->out, hs->req.key, hs->req.key_len, protocol,
                                          extensions, headers, num_headers, err, err_len);
    if (rc != WS_OK)
        return rc;
    if (set_agreed(s, protocol, protocol ? strlen(protocol) : 0, extensions,
                   extensions ? strlen(extensions) : 0) != 0) {
        snprintf(err, err_len, "out of memory");
        return WS_E_NOMEM;
    }
    ws_buf_consume(&a->in, hs->head_len);
    hs_free(hs);
    a->hs = NULL;
    s->state = WS_OPEN;
    a->pending = PENDING_OPEN;
    return WS_OK;
}

int ws_session_reject(ws_session *s, int status, const char *reason, const ws_kv *headers,
                      size_t num_headers)
{
    if (!awaiting_accept(s))
        return WS_E_STATE;
    char err[128];
    int rc = ws_handshake_check_headers(headers, num_headers, err, sizeof err);
    if (rc == WS_OK)
        rc = ws_handshake_error_response(&part(s)->out, status, reason, headers, num_headers);
    if (rc != WS_OK)
        return rc;
    s->state = WS_CLOSED;
    drop_input(s);
    set_pending_close(s, WS_CLOSE_ABNORMAL, "", false);
    return WS_OK;
}

/* ---- frames ----------------------------------------------------------- */

/* Check a header just decoded; returns NULL or the failure reason with
 * *code set. */
static const char *check_header(ws_session *s, int *code)
{
    ws_part *a = part(s);
    const ws_frame_header *h = &a->fh;
    *code = WS_CLOSE_PROTOCOL;
    if ((h->rsv & (WS_RSV2 | WS_RSV3)) || ((h->rsv & WS_RSV1) && !s->dfl))
        return "reserved bits set without a negotiated extension";
    if (h->rsv & WS_RSV1) {
        /* permessage-deflate: RSV1 marks the first frame of a compressed
         * message (RFC 7692 6). */
        if (ws_opcode_is_control(h->opcode))
            return "RSV1 set on a control frame";
        if (h->opcode == WS_OP_CONT)
            return "RSV1 set on a continuation frame";
    }
    if ((h->opcode >= 3 && h->opcode <= 7) || h->opcode >= 11)
        return "reserved opcode";
    if (ws_opcode_is_control(h->opcode)) {
        if (!h->fin)
            return "fragmented control frame";
        if (h->len > WS_CONTROL_MAX)
            return "control frame payload over 125 bytes";
    }
    if (s->role == WS_SERVER && !h->masked)
        return "unmasked frame from the client";
    if (s->role == WS_CLIENT && h->masked)
        return "masked frame from the server";
    if (ws_opcode_is_control(h->opcode))
        return NULL;
    if (h->opcode == WS_OP_CONT && !a->msg_opcode)
        return "continuation frame without a message to continue";
    if (h->opcode != WS_OP_CONT && a->msg_opcode)
        return "new message started inside a fragmented message";
    *code = WS_CLOSE_TOO_BIG;
    if (h->len > s->cfg->max_frame)
        return "frame too big";
    bool compressed = h->opcode == WS_OP_CONT ? a->msg_compressed : (h->rsv & WS_RSV1) != 0;
    if (!compressed) {
        /* A compressed message is measured as it is inflated. */
        uint64_t before = h->opcode == WS_OP_CONT ? a->msg_len : 0;
        if (h->len > s->cfg->max_message || before > s->cfg->max_message - h->len)
            return "message too big";
    }
    if (h->opcode != WS_OP_CONT) {
        a->msg_opcode = h->opcode;
        a->msg_compressed = compressed;
        a->msg_len = 0;
        ws_utf8_init(&a->in_utf8);
    }
    if (!compressed)
        a->msg_len += h->len;
    return NULL;
}

static int on_close_frame(ws_session *s, ws_event *ev, const uint8_t *p, size_t n)
{
    ws_part *a = part(s);
    int code = WS_CLOSE_NO_STATUS;
    const uint8_t *reason = p;
    size_t reason_len = 0;
    if (n == 1)
        return fail(s, ev, WS_CLOSE_PROTOCOL, "close frame with a 1-byte payload");
    if (n >= 2) {
        code = (p[0] << 8) | p[1];
        if (!ws_close_code_valid(code))
            return fail(s, ev, WS_CLOSE_PROTOCOL, "invalid close code");
        reason = p + 2;
        reason_len = n - 2;
        if (!ws_utf8_valid(reason, reason_len))
            return fail(s, ev, WS_CLOSE_INVALID_DATA, "close reason is not valid UTF-8");
    }
    if (!s->close_sent)
        queue_close(s, code == WS_CLOSE_NO_STATUS ? 0 : code, reason, reason_len);
    s->state = WS_CLOSED;
    release_deflate(s);
    /* Nothing after the close frame is read; the reason stays valid until
     * the next call. */
    a->discard = ws_buf_size(&a->in);
    ev->type = WS_EV_CLOSE;
    ev->code = code;
    ev->data = reason;
    ev->len = reason_len;
    ev->was_clean = true;
    return 1;
}

/* The payload of a frame of a compressed message: unmasked and inflated as
 * it arrives, so the inflated size and UTF-8 are checked before the frame
 * is complete.  Returns 1 with an event, 0 when more bytes are needed, -1
 * when a non-final frame ended (reassembly continues). */
static int compressed_step(ws_session *s, ws_event *ev)
{
    ws_part *a = part(s);
    ws_frame_header *h = &a->fh;
    uint64_t take = h->len - a->done;
    if (take > ws_buf_size(&a->in))
        take = ws_buf_size(&a->in);
    uint64_t step = s->cfg->inflate_step;
    bool limited = step && take > step;
    if (limited)
        take = step;
    bool last = a->done + take == h->len;
    uint64_t before = a->msg_len;
    if (take || last) {
        ws_buf *m = msg_buf(s);
        if (!m)
            return fail(s, ev, WS_CLOSE_INTERNAL_ERROR, "out of memory");
        uint8_t *p = ws_buf_begin(&a->in);
        if (h->masked)
            ws_mask(p, (size_t)take, h->mask, a->done);
        bool text = a->msg_opcode == WS_OP_TEXT;
        ws_err r = ws_inflate_feed(s->dfl, p, (size_t)take, last && h->fin, m, &a->msg_len,
                                   s->cfg->max_message, text ? &a->in_utf8 : NULL);
        ws_buf_consume(&a->in, (size_t)take);
        a->done += take;
        switch (r) {
        case WS_OK: break;
        case WS_E_TOO_BIG: return fail(s, ev, WS_CLOSE_TOO_BIG, "message too big");
        case WS_E_UTF8:
            return fail(s, ev, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in a text message");
        case WS_E_DATA: return fail(s, ev, WS_CLOSE_INVALID_DATA, "invalid compressed data");
        case WS_E_PROTOCOL:
            return fail(s, ev, WS_CLOSE_INVALID_DATA, "data after the final deflate block");
        default: return fail(s, ev, WS_CLOSE_INTERNAL_ERROR, "out of memory");
        }
    }
    if (!last) {
        if (!limited)
            return 0;
        ev->type = WS_EV_PROGRESS;
        ev->len = (size_t)(a->msg_len - before);
        return 1;
    }
    a->have_header = false;
    bool binary = a->msg_opcode == WS_OP_BINARY;
    if (h->fin && !binary && a->in_utf8.need)
        return fail(s, ev, WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence");
    if (!h->fin && !s->cfg->stream)
        return -1;
    a->msg_done = true;
    ev->type = s->cfg->stream ? WS_EV_FRAGMENT : WS_EV_MESSAGE;
    ev->data = ws_buf_size(a->msg) ? ws_buf_begin(a->msg) : (const uint8_t *)"";
    ev->len = ws_buf_size(a->msg);
    ev->binary = binary;
    ev->fin = h->fin;
    if (h->fin) {
        a->msg_opcode = 0;
        a->msg_compressed = false;
    }
    return 1;
}

static int frame_step(ws_session *s, ws_event *ev)
{
    ws_part *a = part(s);
    for (;;) {
        if (!a->have_header) {
            int hl = ws_frame_decode(ws_buf_begin(&a->in), ws_buf_size(&a->in), &a->fh);
            if (hl == WS_E_NEED_MORE)
                return 0;
            if (hl < 0)
                return fail(s, ev, WS_CLOSE_PROTOCOL, "frame length over 2^63");
            if (a->in.start + (size_t)hl < a->in.len) /* (the payload follows: inline) */
                a->in.start += (size_t)hl;
            else
                ws_buf_consume(&a->in, (size_t)hl);
            a->have_header = true;
            if (a->spare && (ws_opcode_is_control(a->fh.opcode) || a->fh.len < WS_DIRECT_MIN))
                drop_spare(s); /* large frames stopped coming */
            a->done = 0;
            int code;
            const char *why = check_header(s, &code);
            if (why)
                return fail(s, ev, code, why);
        }

        ws_frame_header *h = &a->fh;
        if (a->msg_compressed && !ws_opcode_is_control(h->opcode)) {
            int r = compressed_step(s, ev);
            if (r < 0)
                continue; /* a non-final frame was inflated: next frame */
            return r;
        }
        uint64_t avail = ws_buf_size(&a->in) - a->done;
        uint64_t take = h->len - a->done;
        if (take > avail)
            take = avail;
        if (take) {
            uint8_t *p = ws_buf_begin(&a->in) + a->done;
            if (h->masked)
                ws_mask(p, (size_t)take, h->mask, a->done);
            a->done += take;
            if (!ws_opcode_is_control(h->opcode) && a->msg_opcode == WS_OP_TEXT &&
                ws_utf8_feed(&a->in_utf8, p, (size_t)take) == WS_UTF8_INVALID)
                return fail(s, ev, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in a text message");
        }
        if (a->done < h->len)
            return 0;

        /* The whole frame is here: its payload is at the front of `in`. */
        a->have_header = false;
        uint8_t *payload = ws_buf_begin(&a->in);
        size_t len = (size_t)h->len;
        switch (h->opcode) {
        case WS_OP_PING:
            if (s->state == WS_OPEN) {
                /* A ping flood from a peer that does not read must not grow
                 * the output without bound: once output piles up, while the
                 * previous automatic pong is still wholly unsent at the end
                 * of the output, replace it (RFC 6455 5.5.3 allows answering
                 * only the most recent ping). */
                size_t queued = ws_buf_size(&a->out);
                if (a->pong_len && queued >= a->pong_len && queued >= WS_PONG_COALESCE_AT)
                    a->out.len -= a->pong_len;
                size_t before = ws_buf_size(&a->out);
                if (queue_frame(s, WS_OP_PONG, true, payload, len) != WS_OK)
                    return fail(s, ev, WS_CLOSE_INTERNAL_ERROR, "out of memory");
                a->pong_len = (uint8_t)(ws_buf_size(&a->out) - before);
            }
            /* fallthrough */
        case WS_OP_PONG:
            a->discard = len;
            ev->type = h->opcode == WS_OP_PING ? WS_EV_PING : WS_EV_PONG;
            ev->data = payload;
            ev->len = len;
            return 1;
        case WS_OP_CLOSE: return on_close_frame(s, ev, payload, len);
        default: break;
        }

        bool binary = a->msg_opcode == WS_OP_BINARY;
        if (h->fin && !binary && a->in_utf8.need)
            return fail(s, ev, WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence");
        if (s->cfg->stream || (h->fin && h->opcode != WS_OP_CONT)) {
            /* Delivered straight from the input buffer. */
            a->discard = len;
            ev->type = s->cfg->stream ? WS_EV_FRAGMENT : WS_EV_MESSAGE;
            ev->data = payload;
            ev->len = len;
            if (a->block && payload == a->in.data && len == a->in.cap)
                ev->block = a->block;
        } else {
            ws_buf *m = msg_buf(s);
            if (!m || ws_buf_append(m, payload, len) != 0)
                return fail(s, ev, WS_CLOSE_INTERNAL_ERROR, "out of memory");
            ws_buf_consume(&a->in, len);
            if (!h->fin)
                continue;
            a->msg_done = true;
            ev->type = WS_EV_MESSAGE;
            ev->data = ws_buf_begin(a->msg);
            ev->len = ws_buf_size(a->msg);
        }
        ev->binary = binary;
        ev->fin = h->fin;
        if (h->fin)
            a->msg_opcode = 0;
        return 1;
    }
}

/* Most calls on an open connection: the next input, past the payload
 * delivered last, starts with a whole unfragmented text or binary frame of
 * 1..125 bytes, no RSV bit, masked as the peer's role requires.  Decoded,
 * unmasked, checked and delivered here, with the previous payload dropped
 * on the way; anything else (and every failure but bad UTF-8) is left to
 * frame_step.  Returns 1 with an event (2: the input ends with it, see
 * ws_session_next), 0 when the frame is not such. */
static int next_small(ws_session *s, ws_part *a, ws_event *ev)
{
    ws_buf *b = &a->in;
    size_t at = b->start + a->discard;
    if (b->len < at + 3)
        return 0;
    const uint8_t *p = b->data + at;
    unsigned mask = s->role == WS_SERVER ? 0x80u : 0u;
    unsigned len = p[1] ^ mask; /* the mask bit as required: 1..125 */
    size_t hl = mask ? 6 : 2;
    if ((p[0] != 0x81 && p[0] != 0x82) || len - 1 >= 125 || b->len - at < hl + len ||
        len > s->cfg->max_frame || len > s->cfg->max_message)
        return 0;
    uint8_t *payload = b->data + at + hl;
    if (mask) { /* eight bytes a turn: the key repeats every four */
        uint32_t k;
        memcpy(&k, p + 2, 4);
        uint64_t k8 = (uint64_t)k << 32 | k;
        unsigned i = 0;
        for (; i + 8 <= len; i += 8) {
            uint64_t v;
            memcpy(&v, payload + i, 8);
            v ^= k8;
            memcpy(payload + i, &v, 8);
        }
        for (; i < len; i++)
            payload[i] ^= p[2 + (i & 3)];
    }
    bool binary = p[0] == 0x82;
    b->start = at + hl; /* (payload follows: the buffer stays) */
    if (!binary) {
        ws_utf8 u;
        ws_utf8_init(&u);
        if (ws_utf8_feed(&u, payload, len) == WS_UTF8_INVALID)
            return fail(s, ev, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in a text message");
        if (u.need)
            return fail(s, ev, WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence");
    }
    a->discard = len;
    ev->type = s->cfg->stream ? WS_EV_FRAGMENT : WS_EV_MESSAGE;
    ev->data = payload;
    ev->len = len;
    ev->binary = binary;
    ev->fin = true;
    return b->len == at + hl + len && !s->eof ? 2 : 1; /* 2: drained */
}

int ws_session_next(ws_session *s, ws_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ws_part *a = part(s); /* (an idle part is only read here) */
    if (s->state == WS_OPEN && !a->have_header && !a->msg_opcode && !a->pending && !a->msg_done &&
        !a->free_hs && !a->spare) {
        int r = next_small(s, a, ev);
        if (r)
            return r;
    }
    drop_delivered(s);
    if (a->msg_done) {
        msg_free(s);
        a->msg_done = false;
    }
    if (a->free_hs) {
        hs_free(a->hs);
        a->hs = NULL;
        a->free_hs = false;
    }
    if (a->pending == PENDING_OPEN) {
        a->pending = PENDING_NONE;
        ev->type = WS_EV_OPEN;
        return 1;
    }
    if (a->pending == PENDING_CLOSE) {
        a->pending = PENDING_NONE;
        ev->type = WS_EV_CLOSE;
        ev->code = a->close_code;
        ev->data = (const uint8_t *)a->close_reason; /* (a string constant) */
        ev->len = strlen(a->close_reason);
        ev->was_clean = a->close_clean;
        return 1;
    }
    int r = 0;
    switch (s->state) {
    case WS_CLOSED: drop_input(s); break; /* (a message under way is dead) */
    case WS_CONNECTING:
        r = s->role == WS_CLIENT ? client_handshake_step(s, ev) : server_handshake_step(s, ev);
        break;
    default: r = frame_step(s, ev); break;
    }
    if (r)
        return r;
    if (s->eof && s->state != WS_CLOSED) {
        /* The transport ended before the close handshake finished. */
        s->state = WS_CLOSED;
        drop_input(s);
        ev->type = WS_EV_CLOSE;
        ev->code = WS_CLOSE_ABNORMAL;
        ev->data = (const uint8_t *)"";
        ev->was_clean = false;
        r = 1;
    }
    settle(s); /* nothing left to deliver: idle unless bytes wait */
    return r;
}
