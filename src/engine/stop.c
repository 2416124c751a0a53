/* stop.c: stop conditions and held-back text of one request (see stop.h).
 *
 * Owns: copies of the stop strings and stop token ids, and one text buffer.
 *
 * Invariants:
 * - buf[held_off .. held_off + held_len) is the held-back text: the longest suffix of the text
 *   so far that is a proper prefix of some stop string (so held_len < longest stop string).
 *   It never contains a whole stop string, so a match in later text starts inside it or after.
 * - buf[0 .. held_off) is the text returned by the last call; it stays valid until the next
 *   call, which first moves the held text to the front.
 * - Once finished, the checker refuses pushes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "engine/stop.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* First buffer size; grows (rarely) when one token's text is longer than what is left. */
#define STOP_BUF_INITIAL 1024

struct stop_checker {
    char *strings[STOP_MAX_STRINGS];       /* (n_strings) NUL-terminated copies */
    size_t string_len[STOP_MAX_STRINGS];   /* (n_strings) */
    size_t n_strings;
    int32_t token_ids[STOP_MAX_TOKEN_IDS]; /* (n_token_ids) */
    size_t n_token_ids;
    bool ignore_eos;
    int32_t max_tokens;

    char *buf;      /* (cap) emitted text of the last call, then the held text */
    size_t cap;
    size_t held_off;
    size_t held_len;
    int64_t n_tokens; /* tokens pushed */
    bool finished;
};

const char *stop_reason_str(stop_reason_t reason)
{
    switch (reason) {
    case STOP_REASON_STOP: return "stop";
    case STOP_REASON_LENGTH: return "length";
    case STOP_REASON_NONE: break;
    }
    return NULL;
}

status_t stop_checker_create(const stop_params_t *p, stop_checker_t **out)
{
    if (!p || !out)
        return cllm_error(CLLM_ERR_INVALID_ARG, "stop: NULL argument");
    *out = NULL;
    if (p->n_strings > STOP_MAX_STRINGS)
        return cllm_error(CLLM_ERR_RANGE, "stop: %zu stop strings, at most %d allowed", p->n_strings,
                          STOP_MAX_STRINGS);
    if (p->n_strings > 0 && !p->strings)
        return cllm_error(CLLM_ERR_INVALID_ARG, "stop: strings is NULL but n_strings is %zu", p->n_strings);
    for (size_t i = 0; i < p->n_strings; i++) {
        if (!p->strings[i] || p->strings[i][0] == '\0')
            return cllm_error(CLLM_ERR_INVALID_ARG, "stop: stop string %zu is empty", i);
        size_t len = strlen(p->strings[i]);
        if (len > STOP_MAX_STRING_LEN)
            return cllm_error(CLLM_ERR_RANGE, "stop: stop string %zu is %zu bytes, at most %d allowed", i, len,
                              STOP_MAX_STRING_LEN);
    }
    if (p->n_token_ids > STOP_MAX_TOKEN_IDS)
        return cllm_error(CLLM_ERR_RANGE, "stop: %zu stop token ids, at most %d allowed", p->n_token_ids,
                          STOP_MAX_TOKEN_IDS);
    if (p->n_token_ids > 0 && !p->token_ids)
        return cllm_error(CLLM_ERR_INVALID_ARG, "stop: token_ids is NULL but n_token_ids is %zu",
                          p->n_token_ids);
    for (size_t i = 0; i < p->n_token_ids; i++)
        if (p->token_ids[i] < 0)
            return cllm_error(CLLM_ERR_INVALID_ARG, "stop: stop token id %zu is %d, must be >= 0", i,
                              p->token_ids[i]);

    stop_checker_t *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return cllm_error(CLLM_ERR_NOMEM, "stop: out of memory");
    sc->cap = STOP_BUF_INITIAL;
    sc->buf = malloc(sc->cap);
    if (!sc->buf)
        goto out_nomem;
    for (size_t i = 0; i < p->n_strings; i++) {
        sc->string_len[i] = strlen(p->strings[i]);
        sc->strings[i] = malloc(sc->string_len[i] + 1);
        if (!sc->strings[i])
            goto out_nomem;
        memcpy(sc->strings[i], p->strings[i], sc->string_len[i] + 1);
        sc->n_strings = i + 1;
    }
    if (p->n_token_ids > 0)
        memcpy(sc->token_ids, p->token_ids, p->n_token_ids * sizeof(*sc->token_ids));
    sc->n_token_ids = p->n_token_ids;
    sc->ignore_eos = p->ignore_eos;
    sc->max_tokens = p->max_tokens;
    *out = sc;
    return CLLM_OK;

out_nomem:
    stop_checker_destroy(sc);
    return cllm_error(CLLM_ERR_NOMEM, "stop: out of memory");
}

void stop_checker_destroy(stop_checker_t *sc)
{
    if (!sc)
        return;
    for (size_t i = 0; i < sc->n_strings; i++)
        free(sc->strings[i]);
    free(sc->buf);
    free(sc);
}

int64_t stop_check_n_tokens(const stop_checker_t *sc)
{
    return sc ? sc->n_tokens : 0;
}

static bool stop_is_stop_token(const stop_checker_t *sc, int32_t token)
{
    for (size_t i = 0; i < sc->n_token_ids; i++)
        if (sc->token_ids[i] == token)
            return true;
    return false;
}

/* Earliest stop string in t (n); at the same start the shortest. Returns its index or -1. */
static int32_t stop_find_string(const stop_checker_t *sc, const char *t, size_t n, size_t *pos)
{
    int32_t best = -1;
    size_t best_pos = 0;
    for (size_t i = 0; i < sc->n_strings; i++) {
        /* Only a match starting before best_pos (or at it, if shorter) can win. */
        size_t limit = best < 0 ? n : best_pos + sc->string_len[i];
        if (limit > n)
            limit = n;
        const char *hit = memmem(t, limit, sc->strings[i], sc->string_len[i]);
        if (!hit)
            continue;
        size_t at = (size_t)(hit - t);
        if (best < 0 || at < best_pos || (at == best_pos && sc->string_len[i] < sc->string_len[best])) {
            best = (int32_t)i;
            best_pos = at;
        }
    }
    *pos = best_pos;
    return best;
}

/* Length of the longest suffix of t (n) that is a proper prefix of some stop string. */
static size_t stop_partial_suffix(const stop_checker_t *sc, const char *t, size_t n)
{
    size_t best = 0;
    for (size_t i = 0; i < sc->n_strings; i++) {
        size_t h = sc->string_len[i] - 1;
        if (h > n)
            h = n;
        for (; h > best; h--) {
            if (t[n - h] == sc->strings[i][0] && memcmp(t + n - h, sc->strings[i], h) == 0) {
                best = h;
                break;
            }
        }
    }
    return best;
}

static void stop_result_set(stop_result_t *res, const char *text, size_t len, stop_reason_t reason,
                            int32_t stop_string, int32_t stop_token)
{
    res->text = text;
    res->len = len;
    res->reason = reason;
    res->stop_string = stop_string;
    res->stop_token = stop_token;
}

status_t stop_check_push(stop_checker_t *sc, int32_t token, bool is_eog, const char *text, size_t len,
                         stop_result_t *res)
{
    if (!sc || !res || (len > 0 && !text))
        return cllm_error(CLLM_ERR_INVALID_ARG, "stop: push: NULL argument");
    if (sc->finished)
        return cllm_error(CLLM_ERR_INVALID_ARG, "stop: push after generation finished");
    if (len > SIZE_MAX / 2 - sc->held_len)
        return cllm_error(CLLM_ERR_RANGE, "stop: token text of %zu bytes is too long", len);

    /* Room for the held text and this token's text; the old emitted text is no longer needed. */
    if (sc->held_len + len > sc->cap) {
        size_t need = sc->held_len + len;
        size_t cap = sc->cap * 2 > need ? sc->cap * 2 : need;
        char *nb = malloc(cap);
        if (!nb)
            return cllm_error(CLLM_ERR_NOMEM, "stop: out of memory for %zu bytes of text", need);
        memcpy(nb, sc->buf + sc->held_off, sc->held_len);
        free(sc->buf);
        sc->buf = nb;
        sc->cap = cap;
    } else {
        memmove(sc->buf, sc->buf + sc->held_off, sc->held_len);
    }
    sc->held_off = 0;
    sc->n_tokens++;

    /* A stopping token: its text is dropped, what was held is released. */
    if ((is_eog && !sc->ignore_eos) || stop_is_stop_token(sc, token)) {
        sc->finished = true;
        stop_result_set(res, sc->buf, sc->held_len, STOP_REASON_STOP, -1, token);
        sc->held_len = 0;
        return CLLM_OK;
    }

    if (len > 0)
        memcpy(sc->buf + sc->held_len, text, len);
    size_t n = sc->held_len + len;
    size_t pos;
    int32_t which = stop_find_string(sc, sc->buf, n, &pos);
    if (which >= 0) {
        sc->finished = true;
        stop_result_set(res, sc->buf, pos, STOP_REASON_STOP, which, -1);
        sc->held_len = 0;
        return CLLM_OK;
    }
    if (sc->max_tokens > 0 && sc->n_tokens >= sc->max_tokens) {
        sc->finished = true;
        stop_result_set(res, sc->buf, n, STOP_REASON_LENGTH, -1, -1);
        sc->held_len = 0;
        return CLLM_OK;
    }
    size_t hold = stop_partial_suffix(sc, sc->buf, n);
    sc->held_off = n - hold;
    sc->held_len = hold;
    stop_result_set(res, sc->buf, n - hold, STOP_REASON_NONE, -1, -1);
    return CLLM_OK;
}

void stop_check_finish(stop_checker_t *sc, stop_result_t *res)
{
    if (!res)
        return;
    if (!sc) {
        stop_result_set(res, "", 0, STOP_REASON_NONE, -1, -1);
        return;
    }
    /* The held text sits at buf + held_off; returning it in place keeps it valid. */
    stop_result_set(res, sc->buf + sc->held_off, sc->held_len, STOP_REASON_NONE, -1, -1);
    sc->held_off += sc->held_len;
    sc->held_len = 0;
    sc->finished = true;
}
