/* status.h: the return codes of every cllm call, and the per-thread error message.
 *
 * Library code never exits: a failing call returns a status_t and, for errors, leaves one
 * clear human-readable line in the calling thread's error buffer (cllm_error_message()).
 * CLLM_NO_SPACE is a status, not an error: the caller (the scheduler) handles it. */
#ifndef CLLM_STATUS_H
#define CLLM_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CLLM_OK = 0,
    CLLM_NO_SPACE,            /* out of KV blocks or buffer room: retry later, not an error */
    CLLM_ERR_INVALID_ARG,     /* a caller passed a bad value */
    CLLM_ERR_IO,              /* open/read/write/mmap failed */
    CLLM_ERR_FORMAT,          /* a malformed or truncated file */
    CLLM_ERR_UNSUPPORTED,     /* well-formed, but a type/architecture we do not handle */
    CLLM_ERR_NOMEM,           /* allocation failed */
    CLLM_ERR_NOT_FOUND,       /* a key, tensor or file that must exist does not */
    CLLM_ERR_RANGE,           /* a value out of its allowed range (too long, too many) */
    CLLM_ERR_INTERNAL,        /* a broken invariant: a bug */
} status_t;

/* Short constant name of a status ("ok", "format error", ...). */
const char *cllm_status_str(status_t st);

/* The message of the last error set on this thread ("" if none). Valid until the next error. */
const char *cllm_error_message(void);

/* Sets this thread's error message (printf-style) and returns st, so callers can write
 * `return cllm_error(CLLM_ERR_FORMAT, "gguf: %s: bad magic", path);`. */
status_t cllm_error(status_t st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears this thread's error message. */
void cllm_error_clear(void);

#ifdef __cplusplus
}
#endif
#endif
