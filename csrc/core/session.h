/* The sans-I/O WebSocket engine for both roles: bytes in, events out,
 * bytes to send.  No sockets, no timers, no Lua.  The host feeds received
 * bytes, pulls events one at a time (so a handler may send or close while
 * events are being delivered), and writes whatever the output holds. */
#ifndef WS_SESSION_H
#define WS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "deflate.h"
#include "handshake.h"
#include "http.h"

typedef struct ws_session ws_session;

enum ws_role { WS_CLIENT, WS_SERVER };
enum ws_state { WS_CONNECTING, WS_OPEN, WS_CLOSING, WS_CLOSED };

enum ws_event_type {
    WS_EV_NONE,
    WS_EV_OPEN,     /* handshake done; client: head = the response */
    WS_EV_REQUEST,  /* server: a valid request arrived; head + request set */
    WS_EV_MESSAGE,  /* data/len, binary */
    WS_EV_FRAGMENT, /* data/len, binary, fin (streaming mode) */
    WS_EV_PING,     /* data/len; the pong is already queued */
    WS_EV_PONG,     /* data/len */
    WS_EV_ERROR,    /* data/len = message; code = close code or HTTP status */
    WS_EV_CLOSE,    /* code, data/len = reason, was_clean */
    WS_EV_HTTP,     /* server with allow_http: a plain request; head set */
    WS_EV_PROGRESS  /* with inflate_step: part of a compressed message was
                       inflated (len = bytes it gave); nothing to deliver */
};

typedef struct ws_event {
    int type;
    const uint8_t *data; /* valid until the next call into the session */
    size_t len;
    int code;
    bool binary;
    bool fin;
    bool was_clean;
    const ws_http_head *head;         /* OPEN (client), REQUEST, handshake ERROR */
    const ws_server_request *request; /* REQUEST */
    const uint8_t *body;              /* client handshake ERROR: the body bytes received so far */
    size_t body_len;
    /* MESSAGE: the payload fills a block of the pool's store (ws_payload_store), which the host may
     * make its own with ws_session_take_block; NULL otherwise. */
    void *block;
} ws_event;

/* Close codes used by the engine (RFC 6455 section 7.4.1). */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_NO_STATUS = 1005,
    WS_CLOSE_ABNORMAL = 1006,
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL_ERROR = 1011,
    WS_CLOSE_TRY_AGAIN_LATER = 1013
};

typedef void (*ws_random_fn)(void *ud, uint8_t *buf, size_t n);

typedef struct ws_session_config {
    int role;
    bool handshake;  /* false: start OPEN, the host did the handshake */
    bool stream;     /* deliver data frames as WS_EV_FRAGMENT */
    bool allow_http; /* server: report requests without Upgrade as WS_EV_HTTP */
    uint64_t max_message;
    uint64_t max_frame;
    size_t max_head;    /* handshake head size limit */
    size_t max_headers; /* handshake header count limit */
    /* 0: inflate all compressed input at hand in one call.  N: at most N
     * compressed bytes per call, with WS_EV_PROGRESS in between, so a host
     * can bound the work one peer gets before serving others. */
    size_t inflate_step;
    ws_random_fn random; /* masking keys; NULL: OpenSSL RAND_bytes */
    void *random_ud;
    /* Output storage and in-flight parts passed from one session to the
     * next (a loop's, see ws_loop_output_pool); NULL: malloc and free. */
    ws_buf_pool *out_pool;
    /* permessage-deflate.  With a handshake: the client offers it, the
     * server accepts the first acceptable offer.  Without one (handshake =
     * false) the four negotiation parameters are the agreed values. */
    ws_deflate_config compress;
} ws_session_config;

/* Defaults: 16 MiB messages and frames, 8 KiB heads, 64 headers. */
void ws_session_config_init(ws_session_config *cfg, int role);

/* A configuration many sessions share (a server's): each session holds a
 * reference, so it lives as long as the last of them. */
typedef struct ws_session_settings ws_session_settings;
/* A shared copy of cfg holding one reference; NULL when out of memory. */
ws_session_settings *ws_session_settings_new(const ws_session_config *cfg);
/* Drop a reference (NULL: nothing). */
void ws_session_settings_unref(ws_session_settings *st);

/* A session with its own copy of cfg; NULL when out of memory. */
ws_session *ws_session_new(const ws_session_config *cfg);
void ws_session_free(ws_session *s);

/* A session in storage the host provides (ws_session_size() zeroed bytes,
 * aligned for any object), e.g. inside its own record: one allocation
 * fewer.  0, or -1 when out of memory (nothing is held then).  Release it
 * with ws_session_fini, which leaves the storage alone. */
size_t ws_session_size(void);
int ws_session_init(ws_session *s, ws_session_settings *st);
void ws_session_fini(ws_session *s);

/* Client with handshake: queue the request.  A ws_err (detail in err). */
int ws_session_start_client(ws_session *s, const ws_client_request *req,
                            const char *const *protocols, size_t num_protocols,
                            const char *extensions, char *err, size_t err_len);

/* Server after WS_EV_REQUEST: answer 101 (protocol/extensions may be NULL)
 * or an error status.  A ws_err (detail in err). */
int ws_session_accept(ws_session *s, const char *protocol, const char *extensions,
                      const ws_kv *headers, size_t num_headers, char *err, size_t err_len);
int ws_session_reject(ws_session *s, int status, const char *reason, const ws_kv *headers,
                      size_t num_headers);
/* Server: the request of a WS_EV_REQUEST not answered yet, else NULL. */
const ws_http_head *ws_session_request_head(const ws_session *s);

/* Server after WS_EV_HTTP: answer the plain request and close. */
int ws_session_respond(ws_session *s, int status, const ws_kv *headers, size_t num_headers,
                       const uint8_t *body, size_t body_len, char *err, size_t err_len);

/* Input.  Returns 0 or WS_E_NOMEM. Bytes fed after CLOSED are dropped. */
int ws_session_feed(ws_session *s, const uint8_t *p, size_t n);

/* Input lent instead of copied: p must stay valid, and the session may
 * write in it (it unmasks in place), until ws_session_keep_input, which
 * the host calls once it has taken the events and before it reuses p
 * (what is left unread is copied then).  Bytes that arrive while earlier
 * ones are still held, or during the handshake, are copied at once.
 * Returns 0 or WS_E_NOMEM. */
int ws_session_feed_lent(ws_session *s, uint8_t *p, size_t n);
/* Returns 0, 1 when a large frame's payload is still arriving (see
 * ws_session_payload_rest), or WS_E_NOMEM. */
int ws_session_keep_input(ws_session *s);

/* True when ws_session_next would deliver nothing now: no event pending,
 * no half-done message, and every byte received belongs to the events
 * delivered.  A host that has just taken an event checks this instead of
 * a call to ws_session_next that would find nothing (what it would have
 * tidied is tidied by the next call, feed or ws_session_keep_input). */
bool ws_session_drained(const ws_session *s);

/* Input without a copy, for large frames: while the payload of a large
 * frame is still arriving, the room at the end of the input buffer where
 * the host may read the next bytes itself (n set to its size), then report
 * how many arrived with ws_session_feed_commit.  NULL (n = 0) otherwise:
 * use ws_session_feed. */
uint8_t *ws_session_feed_space(ws_session *s, size_t *n);
void ws_session_feed_commit(ws_session *s, size_t n);
/* How many bytes of a large frame's payload are still to arrive: nothing
 * else can be taken from the input before them.  0 when none is arriving,
 * when the session streams payloads as they come, and for a compressed
 * message. */
size_t ws_session_payload_rest(const ws_session *s);
/* The block of the message just delivered (ws_event.block) is the host's
 * now: the session forgets it without giving it back. */
void ws_session_take_block(ws_session *s);
/* The transport ended (EOF, reset) or the host gave up (close timeout). */
void ws_session_eof(ws_session *s);

/* Next event: 1 with *ev filled, 0 when none is ready; 2 with *ev filled
 * when nothing else was received after it (ws_session_drained is true
 * until the host feeds more input or closes the session). */
int ws_session_next(ws_session *s, ws_event *ev);

/* Sending.  Text must be valid UTF-8 (checked, WS_E_ARG otherwise). */
int ws_session_send(ws_session *s, bool binary, const uint8_t *p, size_t n);
/* As ws_session_send, with a per-message compression choice: AUTO (the
 * threshold decides), COMPRESS (whatever the size, when permessage-deflate
 * was agreed) or NO_COMPRESS (data that is compressed already). */
enum { WS_SEND_AUTO, WS_SEND_COMPRESS, WS_SEND_NO_COMPRESS };
int ws_session_send_ex(ws_session *s, bool binary, const uint8_t *p, size_t n, int compress);
int ws_session_send_fragment(ws_session *s, bool binary, const uint8_t *p, size_t n, bool fin);
int ws_session_ping(ws_session *s, const uint8_t *p, size_t n);
int ws_session_pong(ws_session *s, const uint8_t *p, size_t n);
/* code 0 sends a close frame without a status code. */
int ws_session_close(ws_session *s, int code, const uint8_t *reason, size_t n);

/* A whole message the host writes itself, so a large payload is not
 * copied: when nothing is queued and the frame needs neither masking
 * (server role) nor compression, writes its header into hdr
 * (WS_FRAME_HEADER_MAX bytes) and returns the header length; the host
 * then sends the header and p, queuing whatever the transport does not
 * take with ws_session_send_raw.  Returns 0 when the message must go
 * through ws_session_send instead, or a WS_E_* error as it would. */
int ws_session_frame_direct(ws_session *s, bool binary, const uint8_t *p, size_t n, uint8_t *hdr);

/* Queue a frame built elsewhere (a broadcast frames once for every
 * client): WS_E_STATE unless OPEN, WS_E_BUSY while a fragmented message is
 * being sent. */
int ws_session_send_raw(ws_session *s, const uint8_t *frame, size_t n);

/* permessage-deflate as agreed (ws_deflate_wants and co.), or NULL. */
const ws_deflate *ws_session_deflate(const ws_session *s);

/* The host queues a frame of its own (one shared by many connections)
 * right after the output queued now, and writes it once these bytes are
 * written: WS_E_STATE unless OPEN, WS_E_BUSY while a fragmented message
 * is being sent.  Later output never replaces bytes queued before. */
int ws_session_send_external(ws_session *s);

/* Output: bytes waiting to be written, and how many were written. */
const uint8_t *ws_session_output(const ws_session *s, size_t *n);
void ws_session_output_consume(ws_session *s, size_t n);
/* All the output was written (ws_session_output_consume of all of it, on
 * the path most replies take: one write took them whole); only while
 * there is output. */
void ws_session_output_written(ws_session *s);
/* How many bytes wait, read inline: hosts ask this several times per
 * message.  A session's first member points at the output buffer (that of
 * its part for bytes in flight, or an empty one while idle). */
static inline size_t ws_session_output_size(const ws_session *s)
{
    return ws_buf_size(*(ws_buf *const *)(const void *)s);
}

/* Take output storage, and the part a session holds while bytes are in
 * flight, from `pool` and give them back once written / idle (NULL:
 * malloc and free).  The pool outlives the session's use of it; one
 * thread uses it.  For a session made by ws_session_new (a shared
 * configuration names its pool in ws_session_config.out_pool).  NULL also
 * detaches a session of a shared configuration, the others keep theirs. */
void ws_session_set_output_pool(ws_session *s, ws_buf_pool *pool);

int ws_session_state(const ws_session *s);
/* "CONNECTING", "OPEN", "CLOSING" or "CLOSED" (the ready_state names). */
const char *ws_state_name(int state);
int ws_session_role(const ws_session *s);
const char *ws_session_protocol(const ws_session *s); /* NULL if none */
/* Server: the request head waiting for ws_session_accept/reject, or NULL. */
const ws_http_head *ws_session_request_head(const ws_session *s);
const char *ws_session_extensions(const ws_session *s); /* NULL if none */

/* Memory the session holds beyond ws_session_size(): while bytes are in
 * flight its part and buffers (capacity); and zlib state. */
size_t ws_session_memory(const ws_session *s, size_t *zlib);

/* Close code validity, for codes received and codes the application sends. */
bool ws_close_code_valid(int code);

#endif
