/* tokenizer.h: text <-> token ids from a GGUF's tokenizer metadata.
 *
 * Models: tokenizer.ggml.model = "llama" (SentencePiece-style: scores, byte fallback <0xNN>,
 * leading space) and "gpt2" (byte-level BPE with merge ranks; pre-tokenizers by
 * tokenizer.ggml.pre: "llama-bpe"/"llama3"/"llama-v3" (Llama 3 split, whole words looked up
 * first), "qwen2", "default"/"gpt2"/absent (GPT-2 split), anything else: the Llama 3 split with a
 * warning). Other models: CLLM_ERR_UNSUPPORTED.
 * The tokenizer is immutable after creation: encode/decode are safe from many threads at once.
 * The GGUF context must outlive the tokenizer only during create (strings are copied).
 *
 * Behaviour follows llama.cpp (llama-vocab.cpp) so that token ids match its reference data:
 * BOS/EOS/UNK default to 1/2/0 for SPM; tokenizer.ggml.add_bos_token defaults to true for SPM
 * and for the Llama 3 pre-tokenizer; invalid UTF-8 reads as U+FFFD in BPE text (SPM keeps the
 * bytes through byte fallback); user-defined tokens are always split out of the text, control
 * and unknown ones only with parse_special. Decoding does not "clean up" spaces. */
#ifndef CLLM_TOKENIZER_TOKENIZER_H
#define CLLM_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"
#include "model/gguf.h"

typedef struct tokenizer tokenizer_t;

typedef enum { TOKENIZER_SPM = 0, TOKENIZER_BPE = 1 } tokenizer_kind_t;

status_t tokenizer_create(const gguf_t *g, tokenizer_t **out);
void tokenizer_destroy(tokenizer_t *tok);

tokenizer_kind_t tokenizer_kind(const tokenizer_t *tok);
int32_t tokenizer_n_vocab(const tokenizer_t *tok);
int32_t tokenizer_bos(const tokenizer_t *tok); /* -1 if none */
int32_t tokenizer_eos(const tokenizer_t *tok); /* -1 if none */
bool tokenizer_add_bos(const tokenizer_t *tok);
/* End of generation: EOS, EOT (<|eot_id|>, <|im_end|>, <end_of_turn>, ...), EOM. */
bool tokenizer_is_eog(const tokenizer_t *tok, int32_t id);
/* Control/special token (rendered as nothing by decode unless asked). */
bool tokenizer_is_special(const tokenizer_t *tok, int32_t id);
/* Id of a token given by its exact text, or -1. */
int32_t tokenizer_find(const tokenizer_t *tok, const char *text, size_t len);

/* Encodes len bytes of text (any bytes; invalid UTF-8 is handled, never a crash).
 * add_special: prepend BOS (append EOS) when the vocabulary says so (tokenizer.ggml.add_bos_token
 * / add_eos_token; add_bos defaults to true for SPM, as llama.cpp). parse_special: the texts of
 * control tokens in the input (e.g. "<|eot_id|>") become their ids; otherwise they are plain
 * text. *tokens is malloc'd (never NULL on success; caller frees), *n_tokens its length.
 * Errors: CLLM_ERR_INVALID_ARG, CLLM_ERR_NOMEM, CLLM_ERR_RANGE (a text of 256 MiB or more). */
status_t tokenizer_encode(const tokenizer_t *tok, const char *text, size_t len, bool add_special, bool parse_special,
                          int32_t **tokens, size_t *n_tokens);

/* The bytes one token stands for (SPM: U+2581 -> ' ', <0xNN> -> byte; BPE: byte-level
 * unmapping). Special tokens give their text only if render_special. Writes at most cap
 * bytes, returns the full length (like snprintf, no NUL). An id outside the vocabulary, an
 * unused token and a BPE byte-type token give nothing. */
size_t tokenizer_token_to_bytes(const tokenizer_t *tok, int32_t id, bool render_special, char *buf, size_t cap);
/* The longest token_to_bytes result of any token (special texts included). */
size_t tokenizer_max_piece_len(const tokenizer_t *tok);

/* Streaming decoder: feed tokens one at a time, get text that is always whole, valid UTF-8
 * (an incomplete sequence is held back until it completes; ill-formed bytes become U+FFFD).
 * SPM with a space prefix: the leading space of the very first token pushed is dropped, as
 * llama.cpp's detokenize does (so after a leading BOS nothing is dropped). To decode text that
 * continues a sequence (a completion after its prompt), set started = true after init. */
typedef struct {
    char pending[8];
    int n_pending;
    bool started;
    bool render_special;
} tokenizer_stream_t;

void tokenizer_stream_init(tokenizer_stream_t *s, bool render_special);
/* Appends the new complete text to out (cap bytes); returns the number of bytes written.
 * Valid UTF-8 never grows, so cap >= tokenizer_max_piece_len() + 8 is enough for it; ill-formed
 * bytes can triple (each may become U+FFFD): cap >= 3 * tokenizer_max_piece_len() + 16 is
 * always enough. A sequence that does not fit in cap is dropped. */
size_t tokenizer_stream_push(const tokenizer_t *tok, tokenizer_stream_t *s, int32_t id, char *out, size_t cap);
/* Flushes held-back bytes at the end (invalid remainder becomes U+FFFD). */
size_t tokenizer_stream_flush(const tokenizer_t *tok, tokenizer_stream_t *s, char *out, size_t cap);

/* Decodes a whole sequence into a malloc'd NUL-terminated string (*len without the NUL; len
 * may be NULL). The bytes are the tokens' bytes exactly (not checked for UTF-8), with the same
 * first-space rule as the streaming decoder. */
status_t tokenizer_decode(const tokenizer_t *tok, const int32_t *tokens, size_t n, bool render_special, char **out,
                          size_t *len);

#endif
