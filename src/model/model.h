/* model.h: a Llama-family model loaded from GGUF or a Hugging Face checkpoint directory:
 * hyper-parameters and weight views.
 *
 * Owns the mmap'd GGUF or safetensors files (weights are pointers into them, never copies; only
 * the tiny 1-D norm and bias vectors are converted to f32 at load) and the tokenizer built from
 * the GGUF's metadata or the checkpoint's tokenizer files. One exception to "never copies": a
 * Hugging Face Llama/Mistral checkpoint stores wq/wk rows in rotate_half order, which load
 * permutes once into owned_qk (the size of all wq + wk; logged) so that the engine's Llama RoPE,
 * and the logits, are bitwise those of the same weights as GGUF (see model/hf_model.h).
 * Architectures: "llama" (Llama 2/3.x, Mistral as converted by llama.cpp), "mistral" (same
 * graph), "qwen2" (QKV biases, NeoX RoPE). Immutable after load: many threads may read it. */
#ifndef CLLM_MODEL_MODEL_H
#define CLLM_MODEL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "cllm/status.h"
#include "core/dtype.h"
#include "model/gguf.h"
#include "model/safetensors.h"
#include "tokenizer/tokenizer.h"

typedef enum { MODEL_ARCH_LLAMA = 0, MODEL_ARCH_QWEN2 = 1 } model_arch_t;

/* A 2-D weight matrix in GGML layout: rows of ne0 elements, ne1 rows. */
typedef struct {
    dtype_t type;
    int64_t ne0;      /* row length (input features) */
    int64_t ne1;      /* rows (output features) */
    const void *data; /* into the mapping, (ne1, ne0) of type */
} model_matrix_t;

typedef struct {
    float *attn_norm;     /* (n_embd) */
    model_matrix_t wq;    /* (n_head * head_dim, n_embd) */
    model_matrix_t wk;    /* (n_head_kv * head_dim, n_embd) */
    model_matrix_t wv;    /* (n_head_kv * head_dim, n_embd) */
    model_matrix_t wo;    /* (n_embd, n_head * head_dim) */
    float *bq, *bk, *bv;  /* qwen2 only: (n_head*head_dim), (n_head_kv*head_dim) x2; else NULL */
    float *ffn_norm;      /* (n_embd) */
    model_matrix_t w_gate; /* (n_ff, n_embd) */
    model_matrix_t w_up;   /* (n_ff, n_embd) */
    model_matrix_t w_down; /* (n_embd, n_ff) */
} model_layer_t;

typedef struct {
    model_arch_t arch;
    char arch_name[32];
    int32_t n_vocab;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t n_ff;
    int32_t n_ctx_train;
    float rms_eps;
    float rope_theta;
    int32_t rope_dim;     /* rotated dims per head (<= head_dim) */
    bool rope_neox;       /* pairs (i, i + rope_dim/2) instead of (2i, 2i+1) */
    bool tied_output;     /* output projection shares token_embd */
} model_hparams_t;

/* Sampling defaults a checkpoint ships (Hugging Face generation_config.json). vLLM applies them to
 * every request field the client leaves out; GGUF models have none (all has_* false). */
typedef struct {
    bool has_temperature, has_top_p, has_top_k, has_min_p, has_repetition_penalty;
    float temperature;
    float top_p;
    int32_t top_k;
    float min_p;
    float repetition_penalty;
} model_gen_defaults_t;

typedef struct model {
    gguf_t *gguf;             /* the GGUF file, or NULL for a Hugging Face checkpoint */
    safetensors_dir_t *st;    /* the checkpoint's weights, or NULL for GGUF */
    void *owned_qk;           /* HF Llama/Mistral: every layer's wq then wk, rows permuted; else NULL */
    tokenizer_t *tok;
    model_hparams_t hp;
    float *rope_inv_freq;     /* (rope_dim / 2) angular frequencies, scaling applied */
    model_matrix_t token_embd; /* (n_vocab, n_embd) */
    float *output_norm;       /* (n_embd) */
    model_matrix_t output;    /* (n_vocab, n_embd); == token_embd when tied */
    model_layer_t *layers;    /* (n_layer) */
    dtype_t weight_type;      /* type of most matrices (for "auto" choices and reports) */
    uint64_t n_params;
    uint64_t weight_bytes;
    char *chat_template;      /* tokenizer.chat_template or NULL */
    model_gen_defaults_t gen_defaults;
} model_t;

/* Loads path: a GGUF file, or a Hugging Face checkpoint (a directory, or its config.json).
 * Errors: CLLM_ERR_IO, CLLM_ERR_FORMAT (malformed, missing or mis-shaped tensor or field: the
 * message names it), CLLM_ERR_UNSUPPORTED (architecture or tensor type). */
status_t model_load(const char *path, model_t **out);
void model_destroy(model_t *m);

/* Sets m->rope_inv_freq from m->hp: theta^(-2i/rope_dim) (a running f32 product, as ggml forms
 * it) times linear, divided by factors[i] when factors (rope_dim / 2 of them, Llama 3.x
 * scaling) is not NULL. Both loaders use it, so the same model gives the same bits either way. */
status_t model_rope_init(model_t *m, const float *factors, float linear);

/* One line describing the model (arch, sizes, type) for logs. */
void model_describe(const model_t *m, char *buf, size_t cap);

#endif
