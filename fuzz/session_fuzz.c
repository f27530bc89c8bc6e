/* libFuzzer harness: the sans-I/O session in both roles.
 *
 * Input layout: 8 control bytes, then the byte stream from the peer.
 *   [0] bit0 role (1 = client), bit1 skip the handshake (start OPEN),
 *       bit2 streaming mode, bit3 allow_http, bit4 offer/choose "chat",
 *       bit5 the harness echoes messages, bit6 it may close on its own,
 *       bit7 reject the upgrade instead of accepting it
 *   [1..2] max_message (bit15 set: the 16 MiB default; else 0..32767)
 *   [3] max_frame: 0 = same as max_message, else max_message scaled down
 *   [4] max_headers (1..64) and max_head (256..8192)
 *   [5] seed for the split sizes, the output consumption and actions
 *   [6] permessage-deflate: bit0 enable (client: offer, server: accept an
 *       offer; without a handshake: agreed), bit1 server_no_context_takeover,
 *       bit2 client_no_context_takeover, bit3 offer client_max_window_bits,
 *       bits4-5 threshold (0, 16, 64, 1024), bit6 level 1, bit7 memLevel 1
 *   [7] window bits: low nibble server_max_window_bits, high nibble
 *       client_max_window_bits (8..15; below 8: not set)
 *
 * The stream is fed in chunks of pseudo-random sizes, copied or lent
 * (ws_session_feed_lent); after every chunk every event is taken.  At the end the transport "ends"
 * (eof) and the remaining events are taken.  Invariants checked:
 *   - no message/streamed message larger than max_message;
 *   - text is valid UTF-8 (independent validator in fuzz_util.h);
 *   - OPEN at most once and before any data; no data before OPEN;
 *   - exactly one CLOSE by the end, nothing at all after it, even when
 *     more bytes are fed; state CLOSED after it; ERROR is followed by it;
 *   - ping/pong payloads at most 125 bytes;
 *   - everything the session writes is, after the HTTP head, a sequence of
 *     valid frames for our role: masked iff client, no RSV2/RSV3, RSV1
 *     only on the first frame of a data message once permessage-deflate
 *     is agreed, known opcodes, control frames unfragmented and <= 125
 *     bytes, close codes valid, text valid UTF-8 (compressed messages are
 *     inflated by an independent peer inflater first, which must accept
 *     them), nothing after our close frame. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "deflate.h"
#include "frame.h"
#include "fuzz_util.h"
#include "http.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";

typedef struct harness {
    ws_session *s;
    bool client;
    bool stream;
    bool echo;
    bool may_close;
    bool reject;
    bool offer;
    uint64_t max_message;
    unsigned rng;
    /* events */
    int opens, closes, errors;
    bool closed;
    uint64_t stream_len; /* streamed message so far */
    bool stream_active;
    bool stream_binary;
    ws_buf stream_text;
    /* output checking */
    bool out_http_done; /* the HTTP head of our side has been seen */
    bool out_http_only; /* our side answered with an error: no frames */
    bool out_closed;    /* we sent a close frame */
    bool out_frag;      /* inside a fragmented message we send */
    ws_buf out;         /* output not yet parsed */
    /* permessage-deflate */
    bool pmd;             /* agreed: our data frames may be compressed */
    ws_deflate *peer_inf; /* the peer's inflater for what we send */
    bool out_compressed;  /* the message we are sending is compressed */
    bool out_text;        /* ... and is text */
    ws_buf out_msg;       /* its inflated bytes so far */
    uint64_t out_total;
} harness;

/* The peer's view of what we compress: a 15-bit window (enough for any
 * window we may use) that keeps its context, which is right whether or
 * not we reset ours. */
static void start_peer_inflater(harness *h)
{
    if (h->peer_inf)
        return;
    ws_deflate_config cfg;
    ws_deflate_config_init(&cfg);
    cfg.enabled = true;
    ws_pmd_agreed ag;
    memset(&ag, 0, sizeof ag);
    ag.server_max_window_bits = ag.client_max_window_bits = 15;
    h->peer_inf = ws_deflate_new(&cfg, &ag, h->client);
    FUZZ_CHECK(h->peer_inf != NULL, "oom");
}

static void check_agreed(harness *h)
{
    const char *ext = ws_session_extensions(h->s);
    if (ext && strstr(ext, WS_PMD_NAME)) {
        h->pmd = true;
        start_peer_inflater(h);
    }
}

/* A data frame we sent: inflate it when compressed, check text. */
static void check_data(harness *h, const ws_frame_header *fh, const uint8_t *pl, size_t len)
{
    bool first = fh->opcode != WS_OP_CONT;
    bool rsv1 = (fh->rsv & WS_RSV1) != 0;
    FUZZ_CHECK(!rsv1 || (h->pmd && first), "RSV1 on a frame that cannot carry it");
    if (first) {
        h->out_compressed = rsv1;
        h->out_text = fh->opcode == WS_OP_TEXT;
        h->out_total = 0;
        ws_buf_clear(&h->out_msg);
    }
    if (!h->out_compressed) {
        if (fh->opcode == WS_OP_TEXT && fh->fin)
            FUZZ_CHECK(fuzz_utf8_valid(pl, len), "we sent invalid UTF-8");
        return;
    }
    int r = ws_inflate_feed(h->peer_inf, pl, len, fh->fin, &h->out_msg, &h->out_total, UINT64_MAX,
                            NULL);
    FUZZ_CHECK(r == WS_OK, "the peer cannot inflate what we sent: %d", r);
    if (fh->fin && h->out_text)
        FUZZ_CHECK(fuzz_utf8_valid(ws_buf_begin(&h->out_msg), ws_buf_size(&h->out_msg)),
                   "we sent compressed invalid UTF-8");
}

static unsigned next_rand(harness *h)
{
    h->rng = h->rng * 1103515245u + 12345u;
    return h->rng >> 8;
}

static void fuzz_random(void *ud, uint8_t *buf, size_t n)
{
    harness *h = ud;
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)next_rand(h);
}

/* Parse whatever complete units the output holds. */
static void check_output(harness *h)
{
    for (;;) {
        uint8_t *p = ws_buf_begin(&h->out);
        size_t n = ws_buf_size(&h->out);
        if (n == 0)
            return;
        if (!h->out_http_done) {
            size_t scanned = 0;
            long end = ws_http_head_end((char *)p, n, &scanned, 1 << 20);
            if (end == WS_E_NEED_MORE)
                return;
            FUZZ_CHECK(end > 0, "our HTTP head is malformed");
            ws_http_header hdrs[32];
            ws_http_head head;
            memset(&head, 0, sizeof head);
            head.headers = hdrs;
            head.num_headers = 32;
            char *copy = malloc((size_t)end);
            memcpy(copy, p, (size_t)end);
            ws_err rc = h->client ? ws_http_parse_request(copy, (size_t)end, &head)
                                  : ws_http_parse_response(copy, (size_t)end, &head);
            free(copy);
            FUZZ_CHECK(rc == WS_OK, "our HTTP head does not parse (%d)", rc);
            if (!h->client && head.status != 101) {
                h->out_http_only = true;
                /* An error answer may carry a body: nothing is a frame. */
                ws_buf_clear(&h->out);
                return;
            }
            h->out_http_done = true;
            ws_buf_consume(&h->out, (size_t)end);
            continue;
        }
        FUZZ_CHECK(!h->out_http_only, "frames after an HTTP error answer");
        ws_frame_header fh;
        int hl = ws_frame_decode(p, n, &fh);
        if (hl == WS_E_NEED_MORE)
            return;
        FUZZ_CHECK(hl > 0, "our frame has a length over 2^63");
        if (n - (size_t)hl < fh.len)
            return;
        FUZZ_CHECK(!h->out_closed, "a frame after our close frame");
        FUZZ_CHECK(fh.masked == h->client, "masked=%d for client=%d", fh.masked, h->client);
        FUZZ_CHECK((fh.rsv & (WS_RSV2 | WS_RSV3)) == 0, "RSV2/RSV3 in our frame");
        uint8_t op = fh.opcode;
        FUZZ_CHECK(op <= 2 || (op >= 8 && op <= 10), "opcode %u", op);
        uint8_t *pl = p + hl;
        size_t len = (size_t)fh.len;
        if (fh.masked)
            for (size_t i = 0; i < len; i++)
                pl[i] ^= fh.mask[i & 3];
        if (op >= 8) {
            FUZZ_CHECK(fh.fin && len <= 125 && fh.rsv == 0, "bad control frame");
            if (op == WS_OP_CLOSE) {
                FUZZ_CHECK(len != 1, "1-byte close payload");
                if (len >= 2) {
                    int code = (pl[0] << 8) | pl[1];
                    FUZZ_CHECK(ws_close_code_valid(code), "we sent close code %d", code);
                    FUZZ_CHECK(fuzz_utf8_valid(pl + 2, len - 2), "close reason not UTF-8");
                }
                h->out_closed = true;
            }
        } else {
            FUZZ_CHECK((op == WS_OP_CONT) == h->out_frag, "continuation mismatch");
            h->out_frag = !fh.fin;
            check_data(h, &fh, pl, len);
        }
        ws_buf_consume(&h->out, (size_t)hl + len);
    }
}

/* Take some or all of the session's output, as a transport would. */
static void take_output(harness *h, bool all)
{
    size_t n;
    const uint8_t *p = ws_session_output(h->s, &n);
    if (n == 0)
        return;
    size_t k = all ? n : next_rand(h) % (n + 1);
    if (k == 0)
        return;
    FUZZ_CHECK(ws_buf_append(&h->out, p, k) == 0, "oom");
    ws_session_output_consume(h->s, k);
    check_output(h);
}

static void on_data(harness *h, const ws_event *ev)
{
    FUZZ_CHECK(h->opens == 1, "data before OPEN");
    if (ev->type == WS_EV_MESSAGE) {
        FUZZ_CHECK(ev->len <= h->max_message, "message of %zu > max %llu", ev->len,
                   (unsigned long long)h->max_message);
        if (!ev->binary)
            FUZZ_CHECK(fuzz_utf8_valid(ev->data, ev->len), "invalid UTF-8 delivered");
        if (h->echo && (next_rand(h) & 3) != 0) {
            int r = ws_session_send(h->s, ev->binary, ev->data, ev->len);
            FUZZ_CHECK(r == WS_OK || r == WS_E_STATE || r == WS_E_BUSY, "echo failed: %d", r);
        }
        return;
    }
    /* WS_EV_FRAGMENT */
    FUZZ_CHECK(h->stream, "fragment event without streaming mode");
    if (!h->stream_active) {
        h->stream_active = true;
        h->stream_binary = ev->binary;
        h->stream_len = 0;
        ws_buf_clear(&h->stream_text);
    }
    FUZZ_CHECK(ev->binary == h->stream_binary, "kind changed inside a message");
    h->stream_len += ev->len;
    FUZZ_CHECK(h->stream_len <= h->max_message, "streamed message of %llu > max %llu",
               (unsigned long long)h->stream_len, (unsigned long long)h->max_message);
    if (!ev->binary && ev->len)
        FUZZ_CHECK(ws_buf_append(&h->stream_text, ev->data, ev->len) == 0, "oom");
    if (ev->fin) {
        if (!ev->binary)
            FUZZ_CHECK(fuzz_utf8_valid(ws_buf_begin(&h->stream_text), ws_buf_size(&h->stream_text)),
                       "invalid UTF-8 streamed");
        ws_buf_clear(&h->stream_text);
        h->stream_active = false;
    }
}

static void drain_events(harness *h)
{
    ws_event ev;
    int guard = 0;
    for (;;) {
        /* Drained means no event now; a host may stop asking then (and
         * sometimes does here, so the delivered bytes go at the next feed
         * or ws_session_keep_input instead). */
        bool drained = ws_session_drained(h->s);
        if (drained && (next_rand(h) & 1))
            break;
        if (!ws_session_next(h->s, &ev))
            break;
        FUZZ_CHECK(!drained, "event %d after ws_session_drained", ev.type);
        FUZZ_CHECK(++guard < 1000000, "endless events");
        FUZZ_CHECK(!h->closed, "event %d after CLOSE", ev.type);
        switch (ev.type) {
        case WS_EV_OPEN:
            FUZZ_CHECK(++h->opens == 1, "second OPEN");
            check_agreed(h);
            break;
        case WS_EV_REQUEST: {
            FUZZ_CHECK(!h->client && h->opens == 0, "REQUEST");
            FUZZ_CHECK(ev.request && ev.request->key_len == 24, "request without a key");
            char err[128];
            if (h->reject) {
                FUZZ_CHECK(ws_session_reject(h->s, 403, "no", NULL, 0) == WS_OK, "reject");
            } else {
                const char *proto = h->offer ? "chat" : NULL;
                FUZZ_CHECK(ws_session_accept(h->s, proto, NULL, NULL, 0, err, sizeof err) == WS_OK,
                           "accept: %s", err);
                check_agreed(h); /* frames may follow before OPEN is taken */
            }
            take_output(h, true); /* the HTTP answer alone */
            break;
        }
        case WS_EV_HTTP: {
            char err[128];
            FUZZ_CHECK(!h->client, "HTTP event on a client");
            FUZZ_CHECK(ws_session_respond(h->s, 200, NULL, 0, (const uint8_t *)"ok", 2, err,
                                          sizeof err) == WS_OK,
                       "respond: %s", err);
            break;
        }
        case WS_EV_MESSAGE:
        case WS_EV_FRAGMENT: on_data(h, &ev); break;
        case WS_EV_PING:
        case WS_EV_PONG:
            FUZZ_CHECK(h->opens == 1, "ping/pong before OPEN");
            FUZZ_CHECK(ev.len <= 125, "control payload %zu", ev.len);
            break;
        case WS_EV_ERROR:
            h->errors++;
            FUZZ_CHECK(ev.data != NULL, "error without a message");
            break;
        case WS_EV_CLOSE:
            FUZZ_CHECK(++h->closes == 1, "second CLOSE");
            h->closed = true;
            FUZZ_CHECK(ws_session_state(h->s) == WS_CLOSED, "CLOSE but state %d",
                       ws_session_state(h->s));
            FUZZ_CHECK(ev.code == 1005 || ev.code == 1006 || ws_close_code_valid(ev.code),
                       "close code %d", ev.code);
            FUZZ_CHECK(fuzz_utf8_valid(ev.data, ev.len), "close reason not UTF-8");
            break;
        default: FUZZ_CHECK(0, "unknown event %d", ev.type);
        }
        if (h->may_close && ws_session_state(h->s) == WS_OPEN && (next_rand(h) % 16) == 0)
            FUZZ_CHECK(ws_session_close(h->s, 1000, (const uint8_t *)"bye", 3) == WS_OK, "close");
        if (ws_session_state(h->s) == WS_OPEN && (next_rand(h) % 32) == 0) {
            static const uint8_t frag[] = "fr\xc3\xa9";
            int r = ws_session_send_fragment(h->s, false, frag, 4, (next_rand(h) & 1) != 0);
            FUZZ_CHECK(r == WS_OK, "send_fragment %d", r);
        }
        take_output(h, false);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    harness h;
    memset(&h, 0, sizeof h);
    uint8_t flags = data[0];
    uint16_t mm = (uint16_t)((data[1] << 8) | data[2]);
    uint8_t mf = data[3];
    uint8_t lim = data[4];
    h.rng = data[5] | 0x100u;
    h.client = flags & 1;
    h.stream = (flags & 4) != 0;
    h.offer = (flags & 16) != 0;
    h.echo = (flags & 32) != 0;
    h.may_close = (flags & 64) != 0;
    h.reject = (flags & 128) != 0;
    bool handshake = !(flags & 2);

    ws_session_config cfg;
    ws_session_config_init(&cfg, h.client ? WS_CLIENT : WS_SERVER);
    cfg.handshake = handshake;
    cfg.stream = h.stream;
    cfg.allow_http = (flags & 8) != 0;
    if (!(mm & 0x8000))
        cfg.max_message = mm;
    cfg.max_frame = mf == 0 ? cfg.max_message : cfg.max_message * mf / 255;
    cfg.max_headers = 1 + (lim & 63);
    cfg.max_head = 256 + (size_t)(lim >> 6) * 2644;
    cfg.random = fuzz_random;
    cfg.random_ud = &h;
    uint8_t zf = data[6], zb = data[7];
    static const size_t thresholds[4] = {0, 16, 64, 1024};
    cfg.compress.enabled = (zf & 1) != 0;
    cfg.compress.server_no_context_takeover = (zf & 2) != 0;
    cfg.compress.client_no_context_takeover = (zf & 4) != 0;
    cfg.compress.client_max_window_bits_offer = (zf & 8) != 0;
    cfg.compress.threshold = thresholds[(zf >> 4) & 3];
    cfg.compress.level = (zf & 64) ? 1 : -1;
    cfg.compress.mem_level = (zf & 128) ? 1 : 0;
    cfg.compress.server_max_window_bits = (zb & 15) >= 8 ? (zb & 15) : 0;
    cfg.compress.client_max_window_bits = (zb >> 4) >= 8 ? (zb >> 4) : 0;
    h.max_message = cfg.max_message;
    h.s = ws_session_new(&cfg);
    FUZZ_CHECK(h.s != NULL, "session_new");
    if (!handshake) {
        h.out_http_done = true;
        h.opens = 1; /* starts OPEN without an event */
        if (cfg.compress.enabled) {
            h.pmd = true;
            start_peer_inflater(&h);
        }
    } else if (h.client) {
        static const char *const protos[] = {"chat"};
        ws_client_request req;
        memset(&req, 0, sizeof req);
        req.host = "example.com";
        req.port = 80;
        req.resource = "/chat";
        req.key = KEY;
        req.protocols = protos;
        req.num_protocols = h.offer ? 1 : 0;
        char err[128];
        FUZZ_CHECK(ws_session_start_client(h.s, &req, protos, req.num_protocols, NULL, err,
                                           sizeof err) == 0,
                   "start_client: %s", err);
        take_output(&h, true);
        FUZZ_CHECK(h.out_http_done, "the request is not one HTTP head");
    }

    const uint8_t *p = data + 8;
    size_t n = size - 8;
    while (n) {
        unsigned x = next_rand(&h);
        size_t k = (x & 1) ? 1 + (x >> 1) % 8 : 1 + (x >> 1) % 300;
        if (k > n)
            k = n;
        if (x & 0x200) {
            /* Lent input: a buffer of its own, taken back (scribbled on and
             * freed, so a pointer kept into it trips ASan) after the events
             * and ws_session_keep_input. */
            uint8_t *lent = malloc(k);
            FUZZ_CHECK(lent != NULL, "malloc");
            memcpy(lent, p, k);
            int r = ws_session_feed_lent(h.s, lent, k);
            FUZZ_CHECK(r == WS_OK, "feed_lent %d", r);
            drain_events(&h);
            /* 1 reports a large frame's payload still arriving. */
            r = ws_session_keep_input(h.s);
            FUZZ_CHECK(r == WS_OK || r == 1, "keep_input %d", r);
            memset(lent, 0xAA, k);
            free(lent);
        } else {
            int r = ws_session_feed(h.s, p, k);
            FUZZ_CHECK(r == WS_OK, "feed %d", r);
            drain_events(&h);
        }
        p += k;
        n -= k;
    }
    ws_session_eof(h.s);
    drain_events(&h);
    take_output(&h, true);
    FUZZ_CHECK(h.closes == 1, "%d CLOSE events at the end", h.closes);
    FUZZ_CHECK(h.errors <= 1, "%d errors", h.errors);
    /* Nothing after the close, whatever arrives. */
    FUZZ_CHECK(ws_session_feed(h.s, (const uint8_t *)"\x81\x80xxxx", 6) == WS_OK, "feed after");
    ws_session_eof(h.s);
    ws_event ev;
    FUZZ_CHECK(ws_session_next(h.s, &ev) == 0, "event %d after the end", ev.type);
    ws_session_free(h.s);
    ws_deflate_free(h.peer_inf);
    ws_buf_free(&h.out);
    ws_buf_free(&h.out_msg);
    ws_buf_free(&h.stream_text);
    return 0;
}
