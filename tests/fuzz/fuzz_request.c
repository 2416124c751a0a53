/* fuzz_request.c: libFuzzer target for the OpenAI request-body decoding (server/openai.h) and
 * what the server does next with a decoded body: render the chat with a template, tokenize the
 * prompt, decode prompt ids, build the /tokenize answer, or the error object.
 *
 * Input: byte 0 picks the endpoint (bits 0-1: chat, completions, tokenize, detokenize) and the
 * built-in chat template (byte 0 >> 2); the rest is the JSON body. The Llama 3 BPE vocabulary
 * (CLLM_SHARED_DIR/reference/tokenizer/ggml-vocab-llama-bpe.gguf) and every built-in template are
 * loaded once in LLVMFuzzerInitialize and never changed.
 * Checked on every input: a refused body has an HTTP status, a message and a JSON error object;
 * an accepted one holds only values the engine accepts (the sampler's and the stop checker's own
 * validation pass: openai.h promises the engine can only fail on what needs the tokenizer),
 * token ids within the vocabulary, and every pointer it holds readable; rendering, tokenizing
 * and detokenizing it succeed or fail with a status, never a crash. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "fuzz_util.h"
#include "model/gguf.h"
#include "server/chat_template.h"
#include "server/chat_template_builtin.h"
#include "server/openai.h"
#include "server/openai_response.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TEMPLATES 64
#define MAX_MODEL_LEN 8192

static tokenizer_t *tok;
static chat_template_t *templates[MAX_TEMPLATES]; /* (n_templates) the built-ins, compiled */
static size_t n_templates;
static char bos_text[64], eos_text[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *path = CLLM_SHARED_DIR "/reference/tokenizer/ggml-vocab-llama-bpe.gguf";
    gguf_t *g = NULL;
    size_t n;

    (void)argc;
    (void)argv;
    if (gguf_open(path, &g) != CLLM_OK || tokenizer_create(g, &tok) != CLLM_OK) {
        fprintf(stderr, "fuzz_request: cannot load %s: %s\n", path, cllm_error_message());
        abort();
    }
    gguf_close(g);
    n = tokenizer_token_to_bytes(tok, tokenizer_bos(tok), true, bos_text, sizeof(bos_text) - 1);
    bos_text[n < sizeof(bos_text) ? n : 0] = '\0';
    n = tokenizer_token_to_bytes(tok, tokenizer_eos(tok), true, eos_text, sizeof(eos_text) - 1);
    eos_text[n < sizeof(eos_text) ? n : 0] = '\0';
    for (size_t i = 0; i < chat_template_builtin_count() && n_templates < MAX_TEMPLATES; i++) {
        const char *src = chat_template_builtin(chat_template_builtin_name(i));
        if (!src || chat_template_create(src, strlen(src), &templates[n_templates]) != CLLM_OK) {
            fprintf(stderr, "fuzz_request: built-in template %zu: %s\n", i, cllm_error_message());
            abort();
        }
        n_templates++;
    }
    return 0;
}

/* The error object the server would send: it must exist and serialize. */
static void check_error(const openai_error_t *err)
{
    json_t *j;
    char *s;
    FUZZ_REQUIRE(err->status >= 400 && err->status < 600, "error status %d", err->status);
    FUZZ_REQUIRE(err->message[0] != '\0', "error without a message (status %d)", err->status);
    FUZZ_REQUIRE(openai_error_type(err->status) != NULL, "no type for status %d", err->status);
    j = openai_error_json(err);
    FUZZ_REQUIRE(j != NULL, "no error object for '%s'", err->message);
    s = json_dumps(j, JSON_COMPACT);
    FUZZ_REQUIRE(s != NULL, "error object does not serialize");
    free(s);
    json_decref(j);
}

/* What cllm_engine_submit checks, minus the prompt: the parse must have ruled out the rest. */
static void check_engine_accepts(const openai_request_t *r)
{
    const cllm_request_t *q = &r->req;
    sampler_params_t sp;
    stop_params_t pp;
    stop_checker_t *sc = NULL;

    FUZZ_REQUIRE(q->logprobs <= SAMPLER_MAX_TOP_LOGPROBS, "logprobs %d", q->logprobs);
    FUZZ_REQUIRE(r->top_logprobs <= OPENAI_MAX_LOGPROBS, "top_logprobs %d", r->top_logprobs);
    engine_request_sampler_params(q, &sp);
    FUZZ_REQUIRE(sampler_params_validate(&sp, tokenizer_n_vocab(tok)) == CLLM_OK, "the sampler refuses a parsed body");
    engine_request_stop_params(q, q->max_tokens, &pp);
    FUZZ_REQUIRE(stop_checker_create(&pp, &sc) == CLLM_OK, "the stop checker refuses a parsed body");
    stop_checker_destroy(sc);
}

static volatile uint64_t sink;

static void touch_str(const char *s)
{
    if (s) sink += fuzz_touch(s, strlen(s) + 1);
}

static void check_fields(const openai_request_t *r)
{
    const cllm_request_t *q = &r->req;
    touch_str(r->model);
    if (r->prompt_text) sink += fuzz_touch(r->prompt_text, r->prompt_text_len);
    for (size_t i = 0; i < r->n_prompt_tokens; i++)
        FUZZ_REQUIRE(r->prompt_tokens[i] >= 0 && r->prompt_tokens[i] < tokenizer_n_vocab(tok), "prompt id %d",
                     r->prompt_tokens[i]);
    for (size_t i = 0; i < r->n_messages; i++) {
        FUZZ_REQUIRE(r->messages[i].role != NULL, "message %zu without a role", i);
        touch_str(r->messages[i].role);
        touch_str(r->messages[i].content);
        touch_str(r->messages[i].tool_calls_json);
        touch_str(r->messages[i].tool_call_id);
        touch_str(r->messages[i].name);
    }
    touch_str(r->template_kwargs_json);
    touch_str(r->tools_json);
    for (size_t i = 0; i < q->n_stop; i++) touch_str(q->stop[i]);
    for (size_t i = 0; i < q->n_logit_bias; i++)
        FUZZ_REQUIRE(q->logit_bias[i].token >= 0 && q->logit_bias[i].token < tokenizer_n_vocab(tok),
                     "logit_bias token %d", q->logit_bias[i].token);
    if (q->cache_salt) sink += fuzz_touch(q->cache_salt, q->cache_salt_len);
}

/* Tokenizes text as the server would, and for /tokenize builds the answer. */
static void tokenize(const openai_request_t *r, const char *text, size_t len, bool add_special)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(tok, text, len, add_special, true, &ids, &n) != CLLM_OK) return;
    if (r->kind == OPENAI_TOKENIZE) {
        json_t *j = openai_tokenize_json(tok, ids, n, MAX_MODEL_LEN, r->return_token_strs);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        FUZZ_REQUIRE(s != NULL, "/tokenize answer does not serialize");
        free(s);
        json_decref(j);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    openai_kind_t kind;
    const chat_template_t *t;
    openai_limits_t lim = { "m", 0, MAX_MODEL_LEN };
    openai_request_t r;
    openai_error_t err;

    if (size < 1) return 0;
    kind = (openai_kind_t)(data[0] & 3);
    t = templates[(size_t)(data[0] >> 2) % n_templates];
    lim.n_vocab = tokenizer_n_vocab(tok);
    memset(&err, 0, sizeof(err));
    if (openai_request_parse(kind, (const char *)data + 1, size - 1, &lim, &r, &err) != CLLM_OK) {
        check_error(&err);
        return 0;
    }
    FUZZ_REQUIRE(r.kind == kind, "parsed kind %d, asked %d", (int)r.kind, (int)kind);
    check_fields(&r);
    if (kind == OPENAI_CHAT || kind == OPENAI_COMPLETION) check_engine_accepts(&r);

    if (r.n_messages > 0) {
        char *text = NULL;
        size_t len = 0;
        memset(&err, 0, sizeof(err));
        if (openai_chat_render(t, &r, bos_text, eos_text, &text, &len, &err) == CLLM_OK) {
            FUZZ_REQUIRE(text != NULL, "render gave no text");
            tokenize(&r, text, len, openai_chat_add_special(&r, text, bos_text));
            free(text);
        } else {
            check_error(&err);
        }
    } else if (r.prompt_text) {
        tokenize(&r, r.prompt_text, r.prompt_text_len, r.add_special_tokens != 0);
    } else if (r.n_prompt_tokens > 0 || kind == OPENAI_DETOKENIZE) {
        char *text = NULL;
        size_t len = 0;
        bool render = kind == OPENAI_DETOKENIZE;
        if (tokenizer_decode(tok, r.prompt_tokens, r.n_prompt_tokens, render, &text, &len) == CLLM_OK) {
            json_t *j = openai_json_text(text, len);
            FUZZ_REQUIRE(j != NULL, "decoded prompt is not a JSON string");
            json_decref(j);
            free(text);
        }
    }
    openai_request_free(&r);
    return 0;
}
