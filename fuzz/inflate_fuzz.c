/* libFuzzer harness: permessage-deflate decompression (csrc/core/deflate.c).
 * Input: [0] flags (bit0 text, bit1 no context takeover, bit2 round trip),
 * [1] window bits, [2..3] output limit, [4] split seed; then the bytes.
 * Invariants: inflating arbitrary bytes never produces more than the limit
 * (one byte more, with WS_E_TOO_BIG; total and the output agree), never crashes; text that inflates
 * OK is valid UTF-8 (independent validator); deflate then inflate of the input gives the input
 * back. */
#include <string.h>

#include "buf.h"
#include "deflate.h"
#include "fuzz_util.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    uint8_t flags = data[0];
    ws_deflate_config cfg;
    ws_deflate_config_init(&cfg);
    cfg.enabled = true;
    ws_pmd_agreed ag;
    memset(&ag, 0, sizeof ag);
    ag.client_no_context_takeover = (flags & 2) != 0;
    ag.server_no_context_takeover = (flags & 2) != 0;
    ag.client_max_window_bits = (uint8_t)(9 + data[1] % 7);
    ag.server_max_window_bits = (uint8_t)(9 + data[1] % 7);
    uint64_t limit = ((unsigned)data[2] << 8 | data[3]) * 16u;
    unsigned rng = data[4] | 0x100u;
    const uint8_t *p = data + 5;
    size_t n = size - 5;

    ws_deflate *srv = ws_deflate_new(&cfg, &ag, true);
    FUZZ_CHECK(srv != NULL, "new");
    ws_buf out;
    ws_buf_init(&out);
    uint64_t total = 0;
    ws_utf8 u;
    ws_utf8_init(&u);
    bool text = flags & 1;
    size_t pos = 0;
    ws_err r = WS_OK;
    while (r == WS_OK) {
        rng = rng * 1103515245u + 12345u;
        size_t k = 1 + (rng >> 8) % 512;
        if (k > n - pos)
            k = n - pos;
        bool fin = pos + k == n;
        r = ws_inflate_feed(srv, p + pos, k, fin, &out, &total, limit, text ? &u : NULL);
        pos += k;
        /* One byte past the limit is how the limit is detected. */
        FUZZ_CHECK(total <= limit || (r == WS_E_TOO_BIG && total == limit + 1),
                   "inflated %llu, limit %llu, r %d", (unsigned long long)total,
                   (unsigned long long)limit, r);
        FUZZ_CHECK(ws_buf_size(&out) == total, "total %llu, output %zu", (unsigned long long)total,
                   ws_buf_size(&out));
        if (fin)
            break;
    }
    /* An open sequence at the end is the caller's check (the session fails
     * with 1007 when utf8.need is set at FIN). */
    if (r == WS_OK && text && u.need == 0)
        FUZZ_CHECK(fuzz_utf8_valid(ws_buf_begin(&out), ws_buf_size(&out)), "inflated bad UTF-8");
    ws_buf_free(&out);
    ws_deflate_free(srv);

    if (flags & 4) {
        /* Round trip: the client compresses the bytes, the server inflates. */
        ws_deflate *cli = ws_deflate_new(&cfg, &ag, false);
        ws_deflate *s2 = ws_deflate_new(&cfg, &ag, true);
        FUZZ_CHECK(cli && s2, "new");
        ws_buf z, back;
        ws_buf_init(&z);
        ws_buf_init(&back);
        FUZZ_CHECK(ws_deflate_compress(cli, p, n, true, &z) == WS_OK, "compress");
        uint64_t t2 = 0;
        r = ws_inflate_feed(s2, ws_buf_begin(&z), ws_buf_size(&z), true, &back, &t2,
                            (uint64_t)n + 1, NULL);
        FUZZ_CHECK(r == WS_OK, "inflate of our deflate: %d", r);
        FUZZ_CHECK(ws_buf_size(&back) == n && (n == 0 || memcmp(ws_buf_begin(&back), p, n) == 0),
                   "round trip differs");
        ws_buf_free(&z);
        ws_buf_free(&back);
        ws_deflate_free(cli);
        ws_deflate_free(s2);
    }
    return 0;
}
