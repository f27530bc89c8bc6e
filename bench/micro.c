/* Micro-benchmarks of the lua-ws core (csrc/core/mask.c, utf8.c, frame.c).
 *   micro [BUFFER_BYTES]      (default 1 MiB)
 * Prints key=value lines: memcpy, masking and UTF-8 validation (ASCII and
 * mixed multi-byte text) in GB/s on the same buffer, and frame header
 * decode/encode in ns per frame.  Each figure is the best of 5 rounds. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frame.h"
#include "mask.h"
#include "utf8.h"

static volatile unsigned sink;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* run fn until ~0.2 s elapsed, 5 rounds; return best bytes/s */
#define BEST_RATE(units, body)                                                                     \
    ({                                                                                             \
        double best = 0;                                                                           \
        for (int r = 0; r < 5; r++) {                                                              \
            long it = 0;                                                                           \
            double t0 = now(), t;                                                                  \
            do {                                                                                   \
                for (int k = 0; k < 16; k++) { body; }                                             \
                it += 16;                                                                          \
            } while ((t = now()) - t0 < 0.2);                                                      \
            double rate = (double)(units) * (double)it / (t - t0);                                 \
            if (rate > best) best = rate;                                                          \
        }                                                                                          \
        best;                                                                                      \
    })

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : (size_t)1 << 20;
    unsigned char *a = malloc(n), *b = malloc(n), *mixed = malloc(n);
    for (size_t i = 0; i < n; i++) a[i] = (unsigned char)(' ' + i % 95);
    /* mixed text: ASCII words with 2-, 3- and 4-byte sequences ("é", "€", "😀") */
    static const char *pieces[] = {"hello ", "\xc3\xa9t\xc3\xa9 ", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "w\xc3\xb6rld "};
    size_t m = 0, pi = 0;
    while (m < n) {
        const char *s = pieces[pi++ % 5];
        size_t l = strlen(s);
        if (m + l > n) break;
        memcpy(mixed + m, s, l);
        m += l;
    }
    while (m < n) mixed[m++] = ' ';
    if (!ws_utf8_valid(a, n) || !ws_utf8_valid(mixed, n)) {
        fprintf(stderr, "micro: test text is not valid UTF-8?\n");
        return 1;
    }
    const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    double memcpy_bw = BEST_RATE(n, memcpy(b, a, n); sink += b[n / 2]);
    double mask_bw = BEST_RATE(n, ws_mask(b, n, key, 0); sink += b[n / 2]);
    double mask_copy_bw = BEST_RATE(n, ws_mask_copy(b, a, n, key, 0); sink += b[n / 2]);
    double utf8_ascii = BEST_RATE(n, sink += ws_utf8_valid(a, n));
    double utf8_mixed = BEST_RATE(n, sink += ws_utf8_valid(mixed, n));
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    ws_frame_header h = {.len = 32, .opcode = WS_OP_BINARY, .fin = true, .masked = true,
                         .mask = {1, 2, 3, 4}};
    size_t hl = ws_frame_encode(hdr, &h);
    ws_frame_header d;
    double dec = BEST_RATE(1, sink += (unsigned)ws_frame_decode(hdr, hl, &d); hdr[2] ^= (uint8_t)d.len);
    double enc = BEST_RATE(1, h.len ^= 1; sink += (unsigned)ws_frame_encode(hdr, &h));
    printf("buffer_bytes=%zu\n", n);
    printf("memcpy_GBps=%.2f\n", memcpy_bw / 1e9);
    printf("mask_inplace_GBps=%.2f\n", mask_bw / 1e9);
    printf("mask_copy_GBps=%.2f\n", mask_copy_bw / 1e9);
    printf("utf8_ascii_GBps=%.2f\n", utf8_ascii / 1e9);
    printf("utf8_mixed_GBps=%.2f\n", utf8_mixed / 1e9);
    printf("frame_decode_ns=%.2f\n", 1e9 / dec);
    printf("frame_encode_ns=%.2f\n", 1e9 / enc);
    return 0;
}
