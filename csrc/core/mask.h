/* Payload masking (RFC 6455 section 5.3), word at a time. */
#ifndef WS_MASK_H
#define WS_MASK_H

#include <stddef.h>
#include <stdint.h>

/* XOR n bytes at p in place with key; offset is the position of p[0] within
 * the payload, so a payload can be masked in several chunks. */
void ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset);

/* Same, copying from src to dst (they must not overlap). */
void ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4],
                  uint64_t offset);

#endif
