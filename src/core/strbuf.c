/* strbuf.c: see strbuf.h. */
#include "core/strbuf.h"

#include <stdlib.h>
#include <string.h>

bool strbuf_append(strbuf_t *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *q;
        while (cap < b->len + n + 1) cap *= 2;
        if (!(q = realloc(b->p, cap))) return false;
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}
