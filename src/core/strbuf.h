/* strbuf.h: a growable byte buffer kept NUL-terminated (response bodies, streamed text). */
#ifndef CLLM_CORE_STRBUF_H
#define CLLM_CORE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *p;    /* (cap) bytes, p[len] == '\0'; NULL while empty */
    size_t len;
    size_t cap;
} strbuf_t;

/* Appends n bytes of s (capacity doubles, starting at 64). false if memory runs out; the buffer
 * is then unchanged. */
bool strbuf_append(strbuf_t *b, const void *s, size_t n);

#endif
