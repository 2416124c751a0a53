/* vectors.h: llama.cpp's tokenizer test vectors (test-tokenizer-0's .inp/.out files), parsed.
 *
 * .inp: the test strings, each followed by a line "__ggml_vocab_test__" (so they are separated
 * by "\n__ggml_vocab_test__\n"; a string may be empty or hold newlines). .out: one line of
 * space-separated token ids (without BOS) per string, in the same order.
 * Header-only (each test is one translation unit). vectors_t owns both files' bytes; the case
 * texts point into them. */
#ifndef CLLM_TESTS_VECTORS_H
#define CLLM_TESTS_VECTORS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"

#define VECTORS_MAX_IDS 1024

typedef struct {
    const char *text; /* (len) not NUL-terminated */
    size_t len;
    int32_t *ids; /* (n_ids) the expected token ids */
    size_t n_ids;
} vector_case_t;

typedef struct {
    char *inp, *out;       /* the files' bytes */
    vector_case_t *cases;  /* (n) */
    int32_t *ids;          /* (n * VECTORS_MAX_IDS) storage of every case's ids */
    size_t n;
} vectors_t;

static void vectors_free(vectors_t *v)
{
    free(v->inp);
    free(v->out);
    free(v->cases);
    free(v->ids);
    memset(v, 0, sizeof(*v));
}

/* Reads the test strings from inp_path and their ids from out_path; 0 and a message on stderr
 * on failure (a test fails then). */
static int vectors_load(const char *inp_path, const char *out_path, vectors_t *v)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof(sep) - 1;
    size_t inp_len = 0, out_len = 0, cap = 0;
    char *p, *line;

    memset(v, 0, sizeof(*v));
    v->inp = file_read_all(inp_path, (size_t)1 << 26, &inp_len);
    v->out = file_read_all(out_path, (size_t)1 << 26, &out_len);
    if (!v->inp || !v->out) {
        fprintf(stderr, "vectors: cannot read %s or %s\n", inp_path, out_path);
        vectors_free(v);
        return 0;
    }
    for (p = v->inp; (p = strstr(p, sep)) != NULL; p += sep_len) cap++;
    if (inp_len >= sep_len - 1 && memcmp(v->inp + inp_len - (sep_len - 1), sep + 1, sep_len - 1)) cap++;
    v->cases = calloc(cap ? cap : 1, sizeof(*v->cases));
    v->ids = malloc((cap ? cap : 1) * VECTORS_MAX_IDS * sizeof(int32_t));
    if (!v->cases || !v->ids) {
        vectors_free(v);
        return 0;
    }
    p = v->inp;
    line = v->out;
    while (p < v->inp + inp_len && v->n < cap) {
        char *next = strstr(p, sep), *eol, *q, *end;
        vector_case_t *c = &v->cases[v->n];
        c->text = p;
        c->len = next ? (size_t)(next - p) : strlen(p);
        c->ids = v->ids + v->n * VECTORS_MAX_IDS;
        eol = strchr(line, '\n');
        if (eol) *eol = '\0';
        for (q = line; *q; q = end) {
            long id = strtol(q, &end, 10);
            if (end == q) break;
            if (c->n_ids < VECTORS_MAX_IDS) c->ids[c->n_ids++] = (int32_t)id;
        }
        line = eol ? eol + 1 : line + strlen(line);
        v->n++;
        if (!next) break;
        p = next + sep_len;
    }
    return 1;
}

#endif
