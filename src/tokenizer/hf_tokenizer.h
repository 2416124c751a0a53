/* hf_tokenizer.h: Hugging Face tokenizer files <-> the GGUF tokenizer metadata tokenizer.c reads.
 *
 * There is one tokenizer (tokenizer.h). Loading a checkpoint directory converts its
 * tokenizer.json (+ tokenizer_config.json, generation_config.json) into the GGUF keys
 * tokenizer.ggml.* that llama.cpp's converter would write, builds that GGUF in memory and opens
 * it with tokenizer_create. Writing goes the other way, for `cllm mkmodel --format hf`.
 *
 * tokenizer.json, model.type "BPE" only:
 *   - byte-level (a ByteLevel pre-tokenizer or decoder): tokenizer.ggml.model "gpt2"; the
 *     pre-tokenizer from the Split regex (Llama 3 -> "llama-bpe", Qwen2 -> "qwen2", GPT-2 or a
 *     ByteLevel with use_regex -> "gpt2", anything else -> "llama-bpe" with a warning); merges
 *     in the string ("a b") or the pair (["a", "b"]) form.
 *   - SentencePiece-style (byte_fallback, or a Metaspace / Prepend U+2581 normalizer, Llama 2 and
 *     Mistral): tokenizer.ggml.model "llama", <0xNN> tokens are byte tokens, each token produced
 *     by a merge scores -(rank of its first merge), so the SPM encoder merges in rank order.
 *   - added_tokens: special -> control tokens, the others -> user-defined; ids missing from
 *     both the vocabulary and added_tokens become unused "[PAD<id>]" tokens.
 *   - post_processor TemplateProcessing (also inside a Sequence) starting with a special token:
 *     add_bos (that token is BOS); one after the sequence: add_eos. ByteLevel or none: neither.
 * tokenizer_config.json: bos_token / eos_token / unk_token / pad_token (a string or
 *   {"content": ...}) set those ids; add_bos_token / add_eos_token override the post-processor;
 *   chat_template (a string, or a list of {name, template}: the "default" one). Without one,
 *   chat_template.jinja or chat_template.json in the directory.
 * generation_config.json: eos_token_id (an int or a list) become end-of-generation ids (GGUF key
 *   HF_TOKENIZER_KEY_EOG, read by tokenizer.c), the first one also EOS when tokenizer_config.json
 *   names none; bos_token_id likewise for BOS. config.json's bos_token_id / eos_token_id fill
 *   in what neither file gives.
 *
 * Errors name the file and the field. Nothing here keeps state: the calls are thread-safe. */
#ifndef CLLM_TOKENIZER_HF_TOKENIZER_H
#define CLLM_TOKENIZER_HF_TOKENIZER_H

#include "cllm/status.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

/* A list of extra end-of-generation token ids (i32 array), a cllm key read by tokenizer.c. */
#define HF_TOKENIZER_KEY_EOG "tokenizer.ggml.eog_token_ids"

/* Loads tokenizer.json (+ tokenizer_config.json, generation_config.json when present) from a
 * Hugging Face checkpoint directory. *chat_template: malloc'd template text or NULL (caller frees).
 * Errors name the file and the field: CLLM_ERR_IO, CLLM_ERR_FORMAT, CLLM_ERR_UNSUPPORTED. */
status_t hf_tokenizer_load(const char *dir, tokenizer_t **tok, char **chat_template);

/* Writes DIR/tokenizer.json and DIR/tokenizer_config.json (chat_template included when the GGUF has
 * tokenizer.chat_template, or chat_template != NULL overrides it) from a GGUF's tokenizer metadata. */
status_t hf_tokenizer_write(const gguf_t *vocab, const char *chat_template, const char *dir);

/* --- internal to src/tokenizer/ (hf_tokenizer.c and hf_tokenizer_write.c) --- */

/* The Split regex of the byte-level pre-tokenizer named by tokenizer.ggml.pre ("llama-bpe",
 * "qwen2", "gpt2"), as tokenizer.json spells it; NULL for other names. */
const char *hf_tokenizer_pre_regex(const char *pre);

#endif
