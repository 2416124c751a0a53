/* fuzz_hf_config.c: libFuzzer target for the Hugging Face checkpoint readers: config.json and
 * generation_config.json (model/hf_model.h), tokenizer.json and tokenizer_config.json
 * (tokenizer/hf_tokenizer.h), and the sharded safetensors index (safetensors_dir_open).
 *
 * Those readers take a directory, so LLVMFuzzerInitialize writes one small valid checkpoint
 * (mkmodel: tiny Llama, built-in BPE vocabulary, Llama 3 chat template and RoPE scaling,
 * sampling defaults, two shards) into a fresh temporary directory, removed at exit. Input: byte 0
 * picks the file the rest replaces (config.json, tokenizer.json, tokenizer_config.json,
 * generation_config.json, model.safetensors.index.json); model_load then reads the directory,
 * and the file gets its valid contents back. Checked on every input: the load succeeds or fails
 * with a message, never a crash or a leak; a loaded model's tokenizer encodes and decodes, its
 * chat template (if it compiles) renders, and its shapes are the ones its tensors back. */
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "model/mkmodel.h"
#include "model/model.h"
#include "server/chat_template.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const k_files[] = { "config.json", "tokenizer.json", "tokenizer_config.json",
                                       "generation_config.json", "model.safetensors.index.json" };
#define N_FILES (sizeof(k_files) / sizeof(k_files[0]))

static char dir[] = "/tmp/cllm-fuzz-hf.XXXXXX";
static char *base[N_FILES];  /* the valid contents of each file */
static size_t base_len[N_FILES];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_dir(void)
{
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int write_file(const char *name, const void *p, size_t n)
{
    char path[256];
    FILE *f;
    int ok;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f) return 0;
    ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static char *read_file(const char *name, size_t *n)
{
    char path[256];
    FILE *f;
    char *buf = NULL;
    long len;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)len + 1)) != NULL && fread(buf, 1, (size_t)len, f) == (size_t)len) {
        *n = (size_t)len;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    mkmodel_params_t p;
    (void)argc;
    (void)argv;
    if (!mkdtemp(dir)) {
        perror("fuzz_hf_config: mkdtemp");
        abort();
    }
    atexit(remove_dir);
    mkmodel_params_default(&p);
    p.n_embd = 8;
    p.n_ff = 16;
    p.n_head = 2;
    p.n_head_kv = 1;
    p.n_layer = 1;
    p.tied = false;
    p.rope_llama3 = true;
    p.rope_factor = 8.0f;
    p.rope_low_freq_factor = 1.0f;
    p.rope_high_freq_factor = 4.0f;
    p.rope_orig_ctx = 8192;
    p.chat_template = mkmodel_chat_template("llama3");
    p.format = MKMODEL_FORMAT_HF;
    p.n_shards = 2;
    p.gen_defaults = "temperature=0.6,top_p=0.9,top_k=40";
    if (mkmodel_write(&p, dir, NULL) != CLLM_OK) {
        fprintf(stderr, "fuzz_hf_config: mkmodel: %s\n", cllm_error_message());
        abort();
    }
    for (size_t i = 0; i < N_FILES; i++) {
        base[i] = read_file(k_files[i], &base_len[i]);
        if (!base[i]) {
            fprintf(stderr, "fuzz_hf_config: mkmodel wrote no %s\n", k_files[i]);
            abort();
        }
    }
    return 0;
}

static void check_model(const model_t *m)
{
    const model_hparams_t *hp = &m->hp;
    int32_t *ids = NULL;
    size_t n = 0;
    char *text = NULL;
    const char *sample = "Hello world <|begin_of_text|> \xe4\xbd\xa0\xe5\xa5\xbd \xff";

    FUZZ_REQUIRE(hp->n_embd > 0 && hp->n_layer > 0 && hp->n_head > 0 && hp->n_head_kv > 0 && hp->head_dim > 0,
                 "loaded a model with shape %d/%d/%d/%d/%d", hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv,
                 hp->head_dim);
    FUZZ_REQUIRE(m->tok && tokenizer_n_vocab(m->tok) <= hp->n_vocab, "tokenizer larger than the vocabulary");
    FUZZ_REQUIRE(m->token_embd.data && m->token_embd.ne0 == hp->n_embd && m->token_embd.ne1 == hp->n_vocab,
                 "token_embd does not match the shape");
    if (tokenizer_encode(m->tok, sample, strlen(sample), true, true, &ids, &n) == CLLM_OK) {
        for (size_t i = 0; i < n; i++)
            FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < tokenizer_n_vocab(m->tok), "encode gave id %d", ids[i]);
        if (tokenizer_decode(m->tok, ids, n, true, &text, NULL) == CLLM_OK) free(text);
        free(ids);
    }
    if (m->chat_template) {
        chat_template_t *t = NULL;
        chat_message_t msgs[2] = { { "system", "be brief", NULL, NULL, NULL }, { "user", "hi", NULL, NULL, NULL } };
        chat_template_vars_t vars = { "<s>", "</s>", true, NULL, NULL, 1725541445 };
        char *out = NULL;
        size_t len = 0;
        if (chat_template_create(m->chat_template, strlen(m->chat_template), &t) == CLLM_OK) {
            if (chat_template_render(t, msgs, 2, &vars, &out, &len) == CLLM_OK) free(out);
            chat_template_destroy(t);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t which;
    model_t *m = NULL;

    if (size < 1) return 0;
    which = data[0] % N_FILES;
    FUZZ_REQUIRE(write_file(k_files[which], data + 1, size - 1), "cannot write %s", k_files[which]);
    cllm_error_clear();
    if (model_load(dir, &m) == CLLM_OK) {
        check_model(m);
        model_destroy(m);
    } else {
        FUZZ_REQUIRE(m == NULL, "failed load left a model");
        FUZZ_REQUIRE(cllm_error_message()[0] != '\0', "load failed without a message");
    }
    FUZZ_REQUIRE(write_file(k_files[which], base[which], base_len[which]), "cannot restore %s", k_files[which]);
    return 0;
}
