/* mkmodel.h: writes `llama`-architecture models with random weights, for tests, demos and
 * benchmarks when no real checkpoint is at hand: a GGUF file, or a Hugging Face checkpoint
 * directory (config.json, generation_config.json, safetensors, tokenizer files).
 *
 * Weights are N(0, 0.02) from a seeded PRNG (xoshiro256** seeded through splitmix64, normals by
 * Box-Muller), one independent stream per tensor derived from (seed, GGUF tensor name), so the
 * same parameters and seed give the same file byte for byte. Norm weights are 1.0; in GGUF 1-D
 * tensors are always F32 (as llama.cpp keeps them), in a checkpoint they take the dtype as
 * transformers writes them; 2-D weights and token_embd use the chosen dtype. Keys and tensor
 * names are those llama.cpp expects for arch `llama`, or transformers for LlamaForCausalLM.
 * Both formats hold the same model: the checkpoint's q_proj/k_proj rows are the GGUF's in
 * Hugging Face's rotate_half order (the inverse of llama.cpp's converter permutation), and its
 * RoPE scaling is config.json's rope_scaling instead of rope_freqs.weight. */
#ifndef CLLM_MODEL_MKMODEL_H
#define CLLM_MODEL_MKMODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "cllm/status.h"
#include "core/dtype.h"

typedef enum {
    MKMODEL_FORMAT_GGUF = 0, /* one GGUF file */
    MKMODEL_FORMAT_HF = 1,   /* a Hugging Face checkpoint directory */
} mkmodel_format_t;

typedef struct {
    const char *name;        /* general.name */
    int64_t n_embd;
    int64_t n_layer;
    int64_t n_head;
    int64_t n_head_kv;
    int64_t n_ff;
    int64_t head_dim;        /* 0: n_embd / n_head */
    int64_t n_ctx;           /* llama.context_length */
    float rope_theta;
    float rms_eps;
    bool tied;               /* no output.weight: the output reuses token_embd */
    /* Llama 3.x RoPE scaling: writes rope_freqs.weight (head_dim / 2 frequency divisors) */
    bool rope_llama3;
    float rope_factor;
    float rope_low_freq_factor;
    float rope_high_freq_factor;
    int64_t rope_orig_ctx;   /* original_max_position_embeddings */
    int64_t vocab_size;      /* 0: the vocabulary's own size; larger pads the built-in vocab */
    dtype_t dtype;           /* of the 2-D weights and token_embd */
    const char *vocab_from;  /* a GGUF whose tokenizer.* keys are copied, or NULL: built-in BPE */
    const char *chat_template; /* Jinja text for tokenizer.chat_template, or NULL (keep/none) */
    uint64_t seed;
    mkmodel_format_t format;
    int n_shards;            /* HF: safetensors files (0 or 1: model.safetensors; more: + an index) */
    /* HF: sampling defaults for generation_config.json, "temperature=0.6,top_p=0.9" (keys
     * temperature, top_p, top_k, min_p, repetition_penalty), or NULL: bos/eos ids only */
    const char *gen_defaults;
} mkmodel_params_t;

/* What was written. */
typedef struct {
    int64_t n_params;   /* elements of all tensors */
    int64_t n_tensors;
    int64_t n_vocab;
    uint64_t n_bytes;   /* file size (HF: the safetensors files' sizes) */
} mkmodel_stats_t;

/* The `tiny` shape, f32, seed 1, built-in vocabulary, no chat template, GGUF. */
void mkmodel_params_default(mkmodel_params_t *p);
/* Sets the shape fields of p (and the name) from a named shape: "llama3-1b" (Llama 3.2 1B),
 * "demo" (n_embd 512, 4 layers) or "tiny" (n_embd 64, 2 layers). CLLM_ERR_NOT_FOUND if unknown. */
status_t mkmodel_params_shape(mkmodel_params_t *p, const char *shape);
/* Space-separated names of the shapes, for help texts. */
const char *mkmodel_shape_names(void);
/* Built-in chat template text by family name (llama3, llama2, chatml, mistral, gemma), or NULL. */
const char *mkmodel_chat_template(const char *name);
/* Space-separated names of the built-in chat templates. */
const char *mkmodel_chat_template_names(void);
/* GGML file type number (general.file_type) of a weight dtype: 0 f32, 1 f16, 2 q4_0, 7 q8_0, 32 bf16. */
uint32_t mkmodel_file_type(dtype_t t);
/* Checks the parameters (positive sizes, heads dividing evenly, row lengths a multiple of the
 * dtype's block size, sizes that fit; for HF a float dtype, 1..99999 shards and well-formed
 * gen_defaults); CLLM_ERR_INVALID_ARG with a message naming the field. */
status_t mkmodel_params_check(const mkmodel_params_t *p);
/* Writes the model to path: a file (GGUF) or a directory, created if absent (HF). stats may be
 * NULL. */
status_t mkmodel_write(const mkmodel_params_t *p, const char *path, mkmodel_stats_t *stats);

#endif
