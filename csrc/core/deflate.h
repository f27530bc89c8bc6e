/* permessage-deflate (RFC 7692): negotiation of the four parameters in
 * both roles, and the per-connection compressor/decompressor on zlib (raw
 * deflate).  No I/O.  zlib state is allocated only when a message is first
 * compressed or decompressed, and released after each message when the
 * side's context is not taken over. */
#ifndef WS_DEFLATE_H
#define WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "utf8.h"

#define WS_PMD_NAME "permessage-deflate"

/* What an application asks for (option `compress`).  Window bits are
 * 8..15, 0 = not set. */
typedef struct ws_deflate_config {
    bool enabled;
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    bool client_max_window_bits_offer; /* client: offer client_max_window_bits without a value */
    uint8_t server_max_window_bits;
    uint8_t client_max_window_bits;
    uint8_t window_bits; /* ceiling of our own compression window, 9..15 (0: 15) */
    int8_t level;        /* zlib level 0..9, -1: default (6) */
    uint8_t mem_level;   /* zlib memLevel 1..9 (0: 8) */
    size_t threshold;    /* messages shorter than this are sent uncompressed */
} ws_deflate_config;

void ws_deflate_config_init(ws_deflate_config *cfg);

/* Parameters of one permessage-deflate element (offer or response).
 * Window bits: 0 absent, 8..15 given, WS_PMD_BITS_NOVALUE present without a
 * value (client_max_window_bits in an offer). */
#define WS_PMD_BITS_NOVALUE 255
typedef struct ws_pmd_params {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits;
    uint8_t client_max_window_bits;
} ws_pmd_params;

/* Parse one extension element "permessage-deflate; p; q=v".  Returns WS_OK
 * with *is_pmd true and p set for a valid permessage-deflate element, WS_OK
 * with *is_pmd false when it names another extension, or WS_E_PROTOCOL when
 * it is permessage-deflate with an unknown, repeated or invalid parameter
 * (a reason in *why, static). */
ws_err ws_pmd_parse(const char *elem, size_t len, bool *is_pmd, ws_pmd_params *p, const char **why);

/* The agreed values for one connection. */
typedef struct ws_pmd_agreed {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits; /* 8..15 */
    uint8_t client_max_window_bits; /* 8..15 */
} ws_pmd_agreed;

/* Write params as an element "permessage-deflate; ..." into out (NUL-ended,
 * at most WS_PMD_STR_MAX bytes). */
#define WS_PMD_STR_MAX 192
void ws_pmd_format(const ws_pmd_params *p, char *out);

/* Client: the offer made for cfg. */
void ws_pmd_client_offer(const ws_deflate_config *cfg, ws_pmd_params *offer);

/* Client: check the server's accepted element against the offer.  WS_OK
 * with *agreed set, or WS_E_PROTOCOL with a message in err. */
ws_err ws_pmd_client_accept(const ws_pmd_params *offer, const ws_pmd_params *resp,
                            ws_pmd_agreed *agreed, char *err, size_t err_len);

/* Server: answer one offer.  Returns true with the response params and the
 * agreed values, or false when the offer is declined. */
bool ws_pmd_server_accept(const ws_deflate_config *cfg, const ws_pmd_params *offer,
                          ws_pmd_params *resp, ws_pmd_agreed *agreed);

/* Agreed values taken as they are (sessions without a handshake). */
void ws_pmd_agreed_from_params(const ws_pmd_params *p, ws_pmd_agreed *agreed);

/* ---- compression ---------------------------------------------------- */

typedef struct ws_deflate ws_deflate;

/* role: true when this side is the server.  NULL when out of memory.
 * Nothing of zlib is allocated yet. */
ws_deflate *ws_deflate_new(const ws_deflate_config *cfg, const ws_pmd_agreed *agreed, bool server);
void ws_deflate_free(ws_deflate *d);
/* Release the zlib streams (the connection is closing or failed). */
void ws_deflate_release(ws_deflate *d);

/* True when a message of n bytes should be sent compressed. */
bool ws_deflate_wants(const ws_deflate *d, size_t n);
/* False when this side cannot compress at all (a window of 8 bits was
 * imposed: zlib's raw deflate cannot honour it). */
bool ws_deflate_can_send(const ws_deflate *d);

/* Compress the next part of a message and append the bytes to out; on fin
 * the 00 00 ff ff tail is stripped and the context reset or released as
 * agreed.  WS_OK, or WS_E_NOMEM when zlib cannot get memory. */
ws_err ws_deflate_compress(ws_deflate *d, const uint8_t *p, size_t n, bool fin, ws_buf *out);

/* Compressed messages of this side depend on no earlier message (no
 * context takeover here): the window bits it compresses with, which a
 * frame compressed once for many such receivers must not exceed; 0 when
 * its messages depend on the ones before, or it cannot compress. */
int ws_deflate_shared_bits(const ws_deflate *d);
/* Compress a whole message with a fresh compressor set up as like's
 * (level, memory, window) and append it to out, the 00 00 ff ff tail
 * stripped; like is not touched.  WS_OK or WS_E_NOMEM. */
ws_err ws_deflate_once(const ws_deflate *like, const uint8_t *p, size_t n, ws_buf *out);

/* Decompress the next wire bytes of a message, appending to out in bounded
 * chunks.  *total counts the message's inflated bytes so far; inflation
 * stops with WS_E_TOO_BIG as soon as it would exceed limit.  Each chunk is
 * fed to utf8 (NULL for binary) as it is produced.  On fin the 00 00 ff ff
 * tail is fed and the context reset or released as agreed.  Returns WS_OK,
 * WS_E_TOO_BIG, WS_E_DATA (corrupt deflate data), WS_E_UTF8 (the inflated
 * text is not valid UTF-8), WS_E_PROTOCOL (message bytes after a final
 * deflate block) or WS_E_NOMEM.  After an error the message is abandoned
 * (the connection fails). */
ws_err ws_inflate_feed(ws_deflate *d, const uint8_t *p, size_t n, bool fin, ws_buf *out,
                       uint64_t *total, uint64_t limit, ws_utf8 *utf8);

/* Bytes of zlib state currently allocated (for specs and the README). */
size_t ws_deflate_memory(const ws_deflate *d);

#endif
