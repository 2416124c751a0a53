/* status.c: status names and the per-thread error buffer (see include/cllm/status.h). */
#include "cllm/status.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char error_buf[1024];

const char *cllm_status_str(status_t st)
{
    switch (st) {
    case CLLM_OK: return "ok";
    case CLLM_NO_SPACE: return "no space";
    case CLLM_ERR_INVALID_ARG: return "invalid argument";
    case CLLM_ERR_IO: return "i/o error";
    case CLLM_ERR_FORMAT: return "format error";
    case CLLM_ERR_UNSUPPORTED: return "unsupported";
    case CLLM_ERR_NOMEM: return "out of memory";
    case CLLM_ERR_NOT_FOUND: return "not found";
    case CLLM_ERR_RANGE: return "out of range";
    case CLLM_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *cllm_error_message(void)
{
    return error_buf;
}

status_t cllm_error(status_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_buf, sizeof(error_buf), fmt, ap);
    va_end(ap);
    return st;
}

void cllm_error_clear(void)
{
    error_buf[0] = '\0';
}
