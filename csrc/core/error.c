/* Texts of the core's error codes. */
#include "error.h"

const char *ws_strerror(int code)
{
    switch (code) {
    case WS_OK: return "ok";
    case WS_E_STATE: return "connection is not open";
    case WS_E_NOMEM: return "out of memory";
    case WS_E_BUSY: return "a fragmented message is being sent";
    case WS_E_ARG: return "invalid argument";
    case WS_E_RANDOM: return "random number generator failed";
    case WS_E_PROTOCOL: return "protocol error";
    case WS_E_FULL: return "send buffer full";
    case WS_E_NEED_MORE: return "more input needed";
    case WS_E_TOO_BIG: return "input too large";
    case WS_E_TOO_MANY: return "too many header fields";
    case WS_E_VERSION: return "unsupported HTTP version";
    case WS_E_DATA: return "invalid compressed data";
    case WS_E_UTF8: return "invalid UTF-8";
    default: return "unknown error";
    }
}
