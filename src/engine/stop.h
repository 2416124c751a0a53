/* stop.h: when a request's generation ends, and which of its text may be streamed out.
 *
 * A stop checker belongs to one request. The caller pushes every generated token with its
 * decoded text (whole UTF-8, e.g. from tokenizer_stream_push) and whether the tokenizer calls
 * it end-of-generation; the checker says which bytes are safe to send now and whether to stop.
 * It knows nothing of the tokenizer.
 *
 * Semantics (OpenAI / vLLM):
 * - "stop": an EOG token (unless ignore_eos), a token in stop_token_ids, or a stop string in the
 *   text. A stop string and everything after it are never emitted; a stopping token's own text
 *   is not emitted either. When several stop strings occur, the one starting earliest wins
 *   (at the same start, the shortest). stop_token_ids apply even with ignore_eos.
 * - "length": max_tokens tokens were pushed. A stop on the same token wins over length.
 * - Text that could be the beginning of a stop string is held back until the following text
 *   rules it in or out; when generation finishes for any other reason the held text is
 *   released. Stop strings may span any number of tokens, or sit inside one token's text.
 *
 * Not supported: vLLM's include_stop_str_in_output (the stop string is always cut).
 *
 * Invariants: bytes held back never contain a whole stop string and are shorter than the
 * longest stop string; emitted text is never taken back. Matching is on bytes; when the
 * pushed text and the stop strings are whole UTF-8, so is every emitted piece (a held or cut
 * part starts where a stop string starts, at a character's first byte). */
#ifndef CLLM_ENGINE_STOP_H
#define CLLM_ENGINE_STOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"

#define STOP_MAX_STRINGS 16     /* stop strings per request */
#define STOP_MAX_STRING_LEN 256 /* bytes per stop string */
#define STOP_MAX_TOKEN_IDS 256  /* stop token ids per request */

typedef enum {
    STOP_REASON_NONE = 0, /* keep generating */
    STOP_REASON_STOP,     /* OpenAI finish_reason "stop" */
    STOP_REASON_LENGTH,   /* OpenAI finish_reason "length" */
} stop_reason_t;

typedef struct {
    const char *const *strings; /* (n_strings) NUL-terminated, non-empty, copied by create */
    size_t n_strings;           /* <= STOP_MAX_STRINGS */
    const int32_t *token_ids;   /* (n_token_ids) ids >= 0, copied by create */
    size_t n_token_ids;         /* <= STOP_MAX_TOKEN_IDS */
    bool ignore_eos;            /* EOG tokens do not stop (stop_token_ids still do) */
    int32_t max_tokens;         /* generated tokens at most; <= 0: no limit */
} stop_params_t;

typedef struct {
    const char *text;     /* (len) bytes safe to emit now, not NUL-terminated; valid until
                             the next call on the checker */
    size_t len;
    stop_reason_t reason; /* NONE: keep going; otherwise generation is over */
    int32_t stop_string;  /* index of the stop string that matched, or -1 */
    int32_t stop_token;   /* the EOG or stop_token_ids token that stopped, or -1 */
} stop_result_t;

typedef struct stop_checker stop_checker_t;

/* "stop", "length", or NULL for STOP_REASON_NONE (OpenAI's null finish_reason). */
const char *stop_reason_str(stop_reason_t reason);

/* CLLM_ERR_INVALID_ARG (NULL or empty string, negative token id), CLLM_ERR_RANGE (too many
 * strings or ids, a string longer than STOP_MAX_STRING_LEN), CLLM_ERR_NOMEM. */
status_t stop_checker_create(const stop_params_t *p, stop_checker_t **out);
void stop_checker_destroy(stop_checker_t *sc);

/* Pushes one generated token and its text (len bytes; text may be NULL when len is 0).
 * Fills res. CLLM_ERR_INVALID_ARG after the checker has finished; CLLM_ERR_NOMEM or
 * CLLM_ERR_RANGE if a very long text does not fit the buffer (the checker is unchanged then). */
status_t stop_check_push(stop_checker_t *sc, int32_t token, bool is_eog, const char *text, size_t len,
                         stop_result_t *res);

/* Ends generation for a reason of the caller's (client gone, context full): releases the held
 * text in res (reason NONE). After a stop or length result there is nothing left: len 0. */
void stop_check_finish(stop_checker_t *sc, stop_result_t *res);

/* Tokens pushed so far. */
int64_t stop_check_n_tokens(const stop_checker_t *sc);

#endif
