/* hf_model.h: a Hugging Face checkpoint directory (config.json, safetensors weights, tokenizer
 * files, generation_config.json) loaded into a model_t, with no conversion step.
 *
 * Architectures: LlamaForCausalLM and MistralForCausalLM (the Llama graph), Qwen2ForCausalLM
 * (QKV biases, NeoX RoPE). Safetensors F32 / F16 / BF16 weights are used in place: a PyTorch
 * Linear weight [out, in], row-major, is exactly a GGML matrix with ne0 = in, ne1 = out.
 * The one exception is Llama/Mistral's wq and wk: Hugging Face stores each head's rows in the
 * "rotate_half" order (first the x of every rotated pair, then every y), while the engine's Llama
 * RoPE (and GGUF, as llama.cpp's converter writes it) pairs adjacent rows (2i, 2i+1). Those rows
 * are permuted once at load into a buffer the model owns (model_t.owned_qk), so the same weights
 * as GGUF and as a checkpoint give bitwise the same logits. Qwen2's RoPE is NeoX, which is the
 * rotate_half order already: nothing is permuted. */
#ifndef CLLM_MODEL_HF_MODEL_H
#define CLLM_MODEL_HF_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"
#include "model/model.h"

/* True when path names a checkpoint: a directory, or a file named config.json (its directory is
 * the checkpoint). */
bool hf_model_is_checkpoint(const char *path);

/* Only the tokenizer of the checkpoint at path (for `cllm tokenize`, the bench client). */
status_t hf_model_load_tokenizer(const char *path, tokenizer_t **tok);

/* Loads the checkpoint at path into m, which must be zeroed (model_load's fresh model). On
 * error m holds what was loaded so far and the caller destroys it with model_destroy. Errors
 * name the file and the field or tensor: CLLM_ERR_IO (unreadable file), CLLM_ERR_FORMAT (a field
 * missing or of the wrong type, a tensor missing or mis-shaped), CLLM_ERR_UNSUPPORTED (an
 * architecture, activation, RoPE scaling or dtype cllm does not handle). */
status_t hf_model_load(model_t *m, const char *path);

/* Reorders the rows of a Q or K projection (n_rows = heads * head_dim rows of row_bytes bytes),
 * head by head. to_hf: from the interleaved-pair order (GGUF row 2j + i of a head) to Hugging
 * Face's rotate_half order (row i * head_dim/2 + j); else the reverse. dst and src must not
 * overlap. */
void hf_model_permute_qk(void *dst, const void *src, int64_t n_rows, int64_t head_dim, size_t row_bytes, bool to_hf);

/* Llama 3.x RoPE frequency divisors (head_dim / 2 of them): 1 for short wavelengths, factor
 * for long ones, a smooth blend between, computed in f32 the way llama.cpp's converter writes
 * rope_freqs.weight. The GGUF writer (mkmodel) and this loader share it, so both give the same
 * bits. */
void hf_model_rope_llama3_factors(float theta, int64_t head_dim, float factor, float low_freq_factor,
                                  float high_freq_factor, float orig_ctx, float *out);

#endif
