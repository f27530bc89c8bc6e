/* libFuzzer harness: ws_frame_decode / ws_frame_encode.
 * Invariants: the header length is 0 (need more), -1 (2^63 length) or
 * 2..14 and never more than the bytes given; a shorter input never decodes
 * a longer header; the decoded fields match the wire; an encoding of the
 * decoded header decodes to the same header, and for minimal length forms
 * it reproduces the input bytes exactly. */
#include <string.h>

#include "frame.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ws_frame_header h;
    memset(&h, 0xa5, sizeof h);
    int hl = ws_frame_decode(data, size, &h);
    FUZZ_CHECK(hl <= WS_FRAME_HEADER_MAX, "hl=%d", hl);
    FUZZ_CHECK(hl == WS_E_NEED_MORE || hl == WS_E_PROTOCOL || hl >= 2, "hl=%d", hl);
    FUZZ_CHECK(hl <= (int)size || hl < 0, "hl=%d size=%zu", hl, size);
    if (size < 2)
        FUZZ_CHECK(hl == WS_E_NEED_MORE, "decoded from %zu bytes", size);
    if (hl < 0) {
        if (hl == WS_E_PROTOCOL)
            FUZZ_CHECK(size >= 10 && (data[1] & 0x7f) == 127 && (data[2] & 0x80),
                       "bad WS_E_PROTOCOL");
        return 0;
    }

    /* Every prefix shorter than the header needs more bytes. */
    for (int k = 0; k < hl; k++) {
        ws_frame_header t;
        FUZZ_CHECK(ws_frame_decode(data, (size_t)k, &t) == WS_E_NEED_MORE,
                   "prefix %d of %d decoded", k, hl);
    }

    unsigned len7 = data[1] & 0x7f;
    int expect = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((data[1] & 0x80) ? 4 : 0);
    FUZZ_CHECK(hl == expect, "hl=%d expected %d", hl, expect);
    FUZZ_CHECK(h.fin == ((data[0] & 0x80) != 0), "fin");
    FUZZ_CHECK(h.rsv == (data[0] & 0x70), "rsv");
    FUZZ_CHECK(h.opcode == (data[0] & 0x0f), "opcode");
    FUZZ_CHECK(h.masked == ((data[1] & 0x80) != 0), "masked");
    FUZZ_CHECK(h.len < ((uint64_t)1 << 63), "len %llu", (unsigned long long)h.len);
    if (len7 < 126)
        FUZZ_CHECK(h.len == len7, "len7");
    if (h.masked)
        FUZZ_CHECK(memcmp(h.mask, data + hl - 4, 4) == 0, "mask bytes");

    uint8_t out[WS_FRAME_HEADER_MAX];
    size_t ol = ws_frame_encode(out, &h);
    FUZZ_CHECK(ol >= 2 && ol <= WS_FRAME_HEADER_MAX, "encoded %zu", ol);
    ws_frame_header h2;
    int hl2 = ws_frame_decode(out, ol, &h2);
    FUZZ_CHECK(hl2 == (int)ol, "re-decode %d of %zu", hl2, ol);
    FUZZ_CHECK(h2.fin == h.fin && h2.rsv == h.rsv && h2.opcode == h.opcode &&
                   h2.masked == h.masked && h2.len == h.len && memcmp(h2.mask, h.mask, 4) == 0,
               "round trip differs");
    bool minimal = len7 < 126 || (len7 == 126 && h.len > 125) || (len7 == 127 && h.len > 0xffff);
    if (minimal)
        FUZZ_CHECK(ol == (size_t)hl && memcmp(out, data, ol) == 0, "minimal encoding differs");
    else
        FUZZ_CHECK(ol < (size_t)hl, "non-minimal input must encode shorter");
    return 0;
}
