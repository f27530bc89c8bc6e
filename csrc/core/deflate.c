#include "deflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "http.h"

#define INFLATE_CHUNK 16384

void ws_deflate_config_init(ws_deflate_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->client_max_window_bits_offer = true;
    cfg->level = -1;
    cfg->threshold = 64;
}

/* ---- negotiation -------------------------------------------------------- */

static const char *trim(const char *p, const char *end, const char **tend)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *tend = end;
    return p;
}

/* A window-bits value: 8..15, digits only, no leading zero, optionally
 * quoted (RFC 7692 7.1: the value may be a quoted-string). */
static int window_value(const char *v, size_t n)
{
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (n == 1 && v[0] >= '8' && v[0] <= '9')
        return v[0] - '0';
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + (v[1] - '0');
    return -1;
}

ws_err ws_pmd_parse(const char *elem, size_t len, bool *is_pmd, ws_pmd_params *p, const char **why)
{
    memset(p, 0, sizeof *p);
    const char *end = elem + len;
    const char *semi = memchr(elem, ';', len);
    const char *tend;
    const char *name = trim(elem, semi ? semi : end, &tend);
    *is_pmd = ws_http_ieq(name, (size_t)(tend - name), WS_PMD_NAME, sizeof WS_PMD_NAME - 1);
    if (!*is_pmd)
        return WS_OK;
    const char *q = semi;
    while (q && q < end) {
        const char *start = q + 1;
        const char *next = memchr(start, ';', (size_t)(end - start));
        const char *pend;
        const char *pn = trim(start, next ? next : end, &pend);
        const char *eq = memchr(pn, '=', (size_t)(pend - pn));
        const char *nend;
        pn = trim(pn, eq ? eq : pend, &nend);
        size_t nl = (size_t)(nend - pn);
        const char *val = NULL;
        size_t vl = 0;
        if (eq) {
            const char *vend;
            val = trim(eq + 1, pend, &vend);
            vl = (size_t)(vend - val);
        }
        if (ws_http_ieq(pn, nl, "server_no_context_takeover", 26) ||
            ws_http_ieq(pn, nl, "client_no_context_takeover", 26)) {
            bool *flag = (pn[0] | 0x20) == 's' ? &p->server_no_context_takeover
                                               : &p->client_no_context_takeover;
            if (*flag) {
                *why = "repeated parameter";
                return WS_E_PROTOCOL;
            }
            if (eq) {
                *why = "no_context_takeover parameters take no value";
                return WS_E_PROTOCOL;
            }
            *flag = true;
        } else if (ws_http_ieq(pn, nl, "server_max_window_bits", 22) ||
                   ws_http_ieq(pn, nl, "client_max_window_bits", 22)) {
            uint8_t *bits =
                (pn[0] | 0x20) == 's' ? &p->server_max_window_bits : &p->client_max_window_bits;
            if (*bits) {
                *why = "repeated parameter";
                return WS_E_PROTOCOL;
            }
            if (!eq) {
                if (bits == &p->server_max_window_bits) {
                    *why = "server_max_window_bits needs a value";
                    return WS_E_PROTOCOL;
                }
                *bits = WS_PMD_BITS_NOVALUE;
            } else {
                int v = window_value(val, vl);
                if (v < 0) {
                    *why = "window bits must be 8 to 15";
                    return WS_E_PROTOCOL;
                }
                *bits = (uint8_t)v;
            }
        } else {
            *why = nl ? "unknown parameter" : "empty parameter";
            return WS_E_PROTOCOL;
        }
        q = next;
    }
    return WS_OK;
}

void ws_pmd_format(const ws_pmd_params *p, char *out)
{
    int n = snprintf(out, WS_PMD_STR_MAX, "%s", WS_PMD_NAME);
    if (p->server_no_context_takeover)
        n += snprintf(out + n, (size_t)(WS_PMD_STR_MAX - n), "; server_no_context_takeover");
    if (p->client_no_context_takeover)
        n += snprintf(out + n, (size_t)(WS_PMD_STR_MAX - n), "; client_no_context_takeover");
    if (p->server_max_window_bits)
        n += snprintf(out + n, (size_t)(WS_PMD_STR_MAX - n), "; server_max_window_bits=%d",
                      p->server_max_window_bits);
    if (p->client_max_window_bits == WS_PMD_BITS_NOVALUE)
        snprintf(out + n, (size_t)(WS_PMD_STR_MAX - n), "; client_max_window_bits");
    else if (p->client_max_window_bits)
        snprintf(out + n, (size_t)(WS_PMD_STR_MAX - n), "; client_max_window_bits=%d",
                 p->client_max_window_bits);
}

void ws_pmd_client_offer(const ws_deflate_config *cfg, ws_pmd_params *offer)
{
    memset(offer, 0, sizeof *offer);
    offer->server_no_context_takeover = cfg->server_no_context_takeover;
    offer->client_no_context_takeover = cfg->client_no_context_takeover;
    offer->server_max_window_bits = cfg->server_max_window_bits;
    if (cfg->client_max_window_bits)
        offer->client_max_window_bits = cfg->client_max_window_bits;
    else if (cfg->client_max_window_bits_offer)
        offer->client_max_window_bits = WS_PMD_BITS_NOVALUE;
}

static uint8_t bits_or_15(uint8_t b)
{
    return b && b != WS_PMD_BITS_NOVALUE ? b : 15;
}

static uint8_t min_bits(uint8_t a, uint8_t b)
{
    return a < b ? a : b;
}

ws_err ws_pmd_client_accept(const ws_pmd_params *offer, const ws_pmd_params *resp,
                            ws_pmd_agreed *agreed, char *err, size_t err_len)
{
    const char *pre = "invalid permessage-deflate response";
    if (resp->client_max_window_bits == WS_PMD_BITS_NOVALUE) {
        snprintf(err, err_len, "%s: client_max_window_bits without a value", pre);
        return WS_E_PROTOCOL;
    }
    if (resp->client_max_window_bits && !offer->client_max_window_bits) {
        snprintf(err, err_len, "%s: client_max_window_bits was not offered", pre);
        return WS_E_PROTOCOL;
    }
    if (offer->server_max_window_bits && !resp->server_max_window_bits) {
        snprintf(err, err_len, "%s: server_max_window_bits=%d was offered but not answered", pre,
                 offer->server_max_window_bits);
        return WS_E_PROTOCOL;
    }
    if (offer->server_max_window_bits &&
        resp->server_max_window_bits > offer->server_max_window_bits) {
        snprintf(err, err_len, "%s: server_max_window_bits=%d is over the %d offered", pre,
                 resp->server_max_window_bits, offer->server_max_window_bits);
        return WS_E_PROTOCOL;
    }
    if (offer->server_no_context_takeover && !resp->server_no_context_takeover) {
        snprintf(err, err_len, "%s: server_no_context_takeover was offered but not answered", pre);
        return WS_E_PROTOCOL;
    }
    agreed->server_no_context_takeover = resp->server_no_context_takeover;
    agreed->client_no_context_takeover =
        resp->client_no_context_takeover || offer->client_no_context_takeover;
    agreed->server_max_window_bits = bits_or_15(resp->server_max_window_bits);
    agreed->client_max_window_bits = min_bits(bits_or_15(resp->client_max_window_bits),
                                              bits_or_15(offer->client_max_window_bits));
    return WS_OK;
}

bool ws_pmd_server_accept(const ws_deflate_config *cfg, const ws_pmd_params *offer,
                          ws_pmd_params *resp, ws_pmd_agreed *agreed)
{
    memset(resp, 0, sizeof *resp);
    /* Our own window: the configured ceiling, lowered to the client's. */
    uint8_t own = bits_or_15(cfg->server_max_window_bits);
    if (cfg->window_bits)
        own = min_bits(own, cfg->window_bits);
    if (offer->server_max_window_bits) {
        own = min_bits(own, offer->server_max_window_bits);
        /* zlib's raw deflate cannot use a 256-byte window. */
        if (own < 9)
            return false;
        resp->server_max_window_bits = own;
    }
    uint8_t peer = 15;
    if (offer->client_max_window_bits) {
        peer = bits_or_15(offer->client_max_window_bits);
        if (cfg->client_max_window_bits) {
            peer = min_bits(peer, cfg->client_max_window_bits);
            resp->client_max_window_bits = peer;
        }
    }
    resp->server_no_context_takeover =
        offer->server_no_context_takeover || cfg->server_no_context_takeover;
    /* A client_no_context_takeover offer is echoed: the client may keep its
     * context unless the answer names it (RFC 7692 7.1.1.2), and our
     * inflater resets only when it does. */
    resp->client_no_context_takeover =
        offer->client_no_context_takeover || cfg->client_no_context_takeover;
    agreed->server_no_context_takeover = resp->server_no_context_takeover;
    agreed->client_no_context_takeover = resp->client_no_context_takeover;
    agreed->server_max_window_bits = own;
    agreed->client_max_window_bits = peer;
    return true;
}

void ws_pmd_agreed_from_params(const ws_pmd_params *p, ws_pmd_agreed *agreed)
{
    agreed->server_no_context_takeover = p->server_no_context_takeover;
    agreed->client_no_context_takeover = p->client_no_context_takeover;
    agreed->server_max_window_bits = bits_or_15(p->server_max_window_bits);
    agreed->client_max_window_bits = bits_or_15(p->client_max_window_bits);
}

/* ---- compression -------------------------------------------------------- */

struct ws_deflate {
    z_stream *def; /* NULL until a message is compressed */
    z_stream *inf; /* NULL until a message is decompressed */
    size_t mem;    /* bytes zlib holds */
    size_t threshold;
    int level;
    int mem_level;
    uint8_t def_bits; /* 8: cannot compress */
    uint8_t inf_bits;
    bool def_reset; /* no context takeover on our side */
    bool inf_reset; /* no context takeover on the peer's side */
    bool inf_ended; /* the peer ended its deflate stream inside the message */
    bool inf_trail; /* the one 0x00 octet allowed after that end was seen */
};

/* zlib allocations are counted so the cost per connection can be seen. */
typedef union alloc_head {
    size_t size;
    long double ld; /* C99 has no max_align_t */
    long long ll;
    void *p;
} alloc_head;

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    ws_deflate *d = opaque;
    size_t n = (size_t)items * size;
    alloc_head *h = malloc(sizeof *h + n);
    if (!h)
        return Z_NULL;
    h->size = n;
    d->mem += n;
    return h + 1;
}

static void z_free(voidpf opaque, voidpf p)
{
    ws_deflate *d = opaque;
    if (!p)
        return;
    alloc_head *h = (alloc_head *)p - 1;
    d->mem -= h->size;
    free(h);
}

ws_deflate *ws_deflate_new(const ws_deflate_config *cfg, const ws_pmd_agreed *agreed, bool server)
{
    ws_deflate *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    uint8_t own = server ? agreed->server_max_window_bits : agreed->client_max_window_bits;
    uint8_t peer = server ? agreed->client_max_window_bits : agreed->server_max_window_bits;
    if (cfg->window_bits && cfg->window_bits < own)
        own = cfg->window_bits;
    d->def_bits = own;
    /* A peer held to 8 bits may still use 9 (zlib turns 8 into 9): the
     * inflater accepts 9, which costs 256 bytes more. */
    d->inf_bits = peer < 9 ? 9 : peer;
    d->def_reset = server ? agreed->server_no_context_takeover : agreed->client_no_context_takeover;
    d->inf_reset = server ? agreed->client_no_context_takeover : agreed->server_no_context_takeover;
    d->level = cfg->level;
    d->mem_level = cfg->mem_level ? cfg->mem_level : 8;
    d->threshold = cfg->threshold;
    return d;
}

static void end_deflater(ws_deflate *d)
{
    if (d->def) {
        deflateEnd(d->def);
        free(d->def);
        d->def = NULL;
    }
}

static void end_inflater(ws_deflate *d)
{
    if (d->inf) {
        inflateEnd(d->inf);
        free(d->inf);
        d->inf = NULL;
    }
    d->inf_ended = false;
    d->inf_trail = false;
}

void ws_deflate_release(ws_deflate *d)
{
    end_deflater(d);
    end_inflater(d);
}

void ws_deflate_free(ws_deflate *d)
{
    if (!d)
        return;
    end_deflater(d);
    end_inflater(d);
    free(d);
}

bool ws_deflate_can_send(const ws_deflate *d)
{
    return d->def_bits >= 9;
}

bool ws_deflate_wants(const ws_deflate *d, size_t n)
{
    return ws_deflate_can_send(d) && n >= d->threshold;
}

size_t ws_deflate_memory(const ws_deflate *d)
{
    return d ? d->mem : 0;
}

static z_stream *new_stream(ws_deflate *d)
{
    z_stream *z = calloc(1, sizeof *z);
    if (z) {
        z->zalloc = z_alloc;
        z->zfree = z_free;
        z->opaque = d;
    }
    return z;
}

ws_err ws_deflate_compress(ws_deflate *d, const uint8_t *p, size_t n, bool fin, ws_buf *out)
{
    if (!d->def) {
        z_stream *z = new_stream(d);
        if (!z)
            return WS_E_NOMEM;
        if (deflateInit2(z, d->level, Z_DEFLATED, -(int)d->def_bits, d->mem_level,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            free(z);
            return WS_E_NOMEM;
        }
        d->def = z;
    }
    z_stream *z = d->def;
    size_t start = ws_buf_size(out);
    z->next_in = (Bytef *)(uintptr_t)p;
    do {
        /* zlib counts in uInt: feed huge inputs in slices. */
        uInt in = n > (1u << 30) ? 1u << 30 : (uInt)n;
        z->avail_in = in;
        n -= in;
        size_t room = (size_t)in + in / 8 + 64;
        do {
            uint8_t *w = ws_buf_reserve(out, room);
            if (!w)
                return WS_E_NOMEM;
            z->next_out = w;
            z->avail_out = (uInt)room;
            int r = deflate(z, n ? Z_NO_FLUSH : Z_SYNC_FLUSH);
            if (r != Z_OK && r != Z_BUF_ERROR)
                return WS_E_NOMEM;
            ws_buf_commit(out, room - z->avail_out);
        } while (z->avail_out == 0 || z->avail_in > 0);
    } while (n);
    if (fin) {
        /* A sync flush ends with an empty stored block 00 00 ff ff: drop it
         * (RFC 7692 7.2.1). */
        if (ws_buf_size(out) - start >= 4) {
            out->len -= 4;
        } else {
            /* Nothing was pending (an empty message after a flush): send an
             * empty stored block's first byte, which the receiver's
             * appended tail completes. */
            static const uint8_t empty = 0x00;
            if (ws_buf_append(out, &empty, 1) != WS_OK)
                return WS_E_NOMEM;
        }
        if (d->def_reset)
            end_deflater(d);
    }
    return WS_OK;
}

int ws_deflate_shared_bits(const ws_deflate *d)
{
    return d->def_reset && ws_deflate_can_send(d) ? d->def_bits : 0;
}

ws_err ws_deflate_once(const ws_deflate *like, const uint8_t *p, size_t n, ws_buf *out)
{
    /* A fresh compressor with like's settings, gone after the message. */
    ws_deflate d = *like;
    d.def = d.inf = NULL;
    d.mem = 0;
    d.def_reset = true;
    ws_err r = ws_deflate_compress(&d, p, n, true, out);
    end_deflater(&d);
    return r;
}

/* Message bytes after a final block (BFINAL = 1).  RFC 7692 7.2.3.4 lets
 * a sender end a message that way and follow it with one 0x00 octet (an
 * empty stored block's header, which the appended 00 00 ff ff completes),
 * so the payload inflates like any other.  Anything else there is data
 * that would be silently lost: the message is invalid. */
static ws_err after_final_block(ws_deflate *d, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0x00 || d->inf_trail)
            return WS_E_PROTOCOL;
        d->inf_trail = true;
    }
    return WS_OK;
}

/* wire: p is the message's own bytes (false for the appended tail, which
 * may follow a final block). */
static ws_err inflate_some(ws_deflate *d, const uint8_t *p, size_t n, bool wire, ws_buf *out,
                           uint64_t *total, uint64_t limit, ws_utf8 *utf8)
{
    z_stream *z = d->inf;
    if (d->inf_ended)
        return wire ? after_final_block(d, p, n) : WS_OK;
    z->next_in = (Bytef *)(uintptr_t)p;
    for (;;) {
        uInt in = n > (1u << 30) ? 1u << 30 : (uInt)n;
        z->avail_in = in;
        n -= in;
        size_t room = INFLATE_CHUNK;
        uint64_t left = limit > *total ? limit - *total : 0;
        if (left < room)
            room = (size_t)left + 1; /* one byte over tells the limit is passed */
        uint8_t *w = ws_buf_reserve(out, room);
        if (!w)
            return WS_E_NOMEM;
        z->next_out = w;
        z->avail_out = (uInt)room;
        int r = inflate(z, Z_SYNC_FLUSH);
        size_t got = room - z->avail_out;
        n += z->avail_in;
        ws_buf_commit(out, got);
        *total += got;
        if (*total > limit)
            return WS_E_TOO_BIG;
        if (utf8 && got && ws_utf8_feed(utf8, w, got) == WS_UTF8_INVALID)
            return WS_E_UTF8;
        if (r == Z_STREAM_END) {
            d->inf_ended = true;
            /* z->next_in is where the unread rest of p begins. */
            return wire ? after_final_block(d, z->next_in, n) : WS_OK;
        }
        if (r == Z_MEM_ERROR)
            return WS_E_NOMEM;
        if (r != Z_OK && r != Z_BUF_ERROR)
            return WS_E_DATA;
        if (n == 0 && z->avail_out > 0)
            break;
        if (r == Z_BUF_ERROR && n == 0)
            break;
    }
    return WS_OK;
}

ws_err ws_inflate_feed(ws_deflate *d, const uint8_t *p, size_t n, bool fin, ws_buf *out,
                       uint64_t *total, uint64_t limit, ws_utf8 *utf8)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    if (!d->inf) {
        z_stream *z = new_stream(d);
        if (!z)
            return WS_E_NOMEM;
        if (inflateInit2(z, -(int)d->inf_bits) != Z_OK) {
            free(z);
            return WS_E_NOMEM;
        }
        d->inf = z;
    }
    ws_err r = WS_OK;
    if (n)
        r = inflate_some(d, p, n, true, out, total, limit, utf8);
    if (r == WS_OK && fin)
        r = inflate_some(d, tail, sizeof tail, false, out, total, limit, utf8);
    if (r != WS_OK) {
        end_inflater(d);
        return r;
    }
    if (fin) {
        if (d->inf_reset) {
            end_inflater(d);
        } else if (d->inf_ended) {
            inflateReset(d->inf);
            d->inf_ended = false;
            d->inf_trail = false;
        }
    }
    return WS_OK;
}
