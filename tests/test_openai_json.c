/* test_openai_json.c: the OpenAI request mapping (server/openai.h), the response builders
 * (server/openai_response.h), the model's sampling defaults (--generation-config auto), errors
 * that never echo the body, and the Prometheus rendering (server/metrics.h), without HTTP and
 * without a model: the Llama 3 vocabulary from the shared data supplies the tokenizer and
 * the built-in llama3 chat template renders chats. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "server/chat_template.h"
#include "server/chat_template_builtin.h"
#include "server/metrics.h"
#include "server/openai.h"
#include "server/openai_response.h"
#include "tokenizer/tokenizer.h"

static int n_fail, n_check;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        n_check++;                                                         \
        if (!(cond)) {                                                     \
            n_fail++;                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)

static const openai_limits_t LIM = { "m", 1000, 4096 };

/* Parses body as kind; expects success. */
static int parse_ok(openai_kind_t kind, const char *body, openai_request_t *r)
{
    openai_error_t err;
    status_t st = openai_request_parse(kind, body, strlen(body), &LIM, r, &err);
    CHECK(st == CLLM_OK, "parse of %s failed: %d %s", body, err.status, err.message);
    return st == CLLM_OK ? 0 : -1;
}

/* Expects a parse error with this status, param ("" for null) and message fragment. */
static void parse_err(openai_kind_t kind, const char *body, int status, const char *param, const char *fragment)
{
    openai_request_t r;
    openai_error_t err;
    status_t st = openai_request_parse(kind, body, strlen(body), &LIM, &r, &err);
    CHECK(st != CLLM_OK, "%s: parsed, expected error %d", body, status);
    if (st == CLLM_OK) {
        openai_request_free(&r);
        return;
    }
    CHECK(err.status == status, "%s: status %d, expected %d (%s)", body, err.status, status, err.message);
    if (param) CHECK(!strcmp(err.param, param), "%s: param '%s', expected '%s'", body, err.param, param);
    if (fragment)
        CHECK(strstr(err.message, fragment) != NULL, "%s: message '%s' lacks '%s'", body, err.message, fragment);
}

static void test_chat_parse(void)
{
    openai_request_t r;
    if (parse_ok(OPENAI_CHAT,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                 "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                 "{\"type\":\"text\",\"text\":\"b\"}]},"
                 "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"1\"}]},"
                 "{\"role\":\"tool\",\"content\":\"42\",\"tool_call_id\":\"1\"}],"
                 "\"temperature\":0,\"top_p\":0.5,\"top_k\":0,\"min_p\":0.1,\"seed\":-7,\"max_tokens\":9,"
                 "\"max_completion_tokens\":12.0,\"stop\":\"END\",\"stop_token_ids\":[5,6],"
                 "\"logit_bias\":{\"3\":500,\"4\":-2.5},\"logprobs\":true,\"top_logprobs\":3,"
                 "\"frequency_penalty\":0.5,\"presence_penalty\":-0.5,\"repetition_penalty\":1.1,"
                 "\"ignore_eos\":true,\"n\":1,\"user\":\"u\",\"cache_salt\":\"s\",\"stream\":true,"
                 "\"stream_options\":{\"include_usage\":true},\"unknown_field\":{\"x\":1},\"response_format\":null}",
                 &r))
        return;
    CHECK(r.n_messages == 4, "n_messages %zu", r.n_messages);
    CHECK(!strcmp(r.messages[0].role, "system") && !strcmp(r.messages[0].content, "be brief"), "system message");
    CHECK(!strcmp(r.messages[1].content, "a\nb"), "text parts joined with newline: '%s'", r.messages[1].content);
    CHECK(r.messages[2].content == NULL && r.messages[2].tool_calls_json &&
              strstr(r.messages[2].tool_calls_json, "\"id\""),
          "assistant tool_calls kept, null content");
    CHECK(r.messages[3].tool_call_id && !strcmp(r.messages[3].tool_call_id, "1"), "tool_call_id");
    CHECK(r.req.temperature == 0.0f && r.req.top_p == 0.5f && r.req.top_k == -1 && fabsf(r.req.min_p - 0.1f) < 1e-6f,
          "sampling fields (top_k 0 means off)");
    CHECK(r.req.has_seed && r.req.seed == (uint64_t)(int64_t)-7, "negative seed accepted");
    CHECK(r.req.max_tokens == 12, "max_completion_tokens (12.0) wins over max_tokens: %d", r.req.max_tokens);
    CHECK(r.req.n_stop == 1 && !strcmp(r.req.stop[0], "END"), "stop string");
    CHECK(r.req.n_stop_token_ids == 2 && r.req.stop_token_ids[1] == 6, "stop_token_ids");
    CHECK(r.req.n_logit_bias == 2, "logit_bias entries");
    for (size_t i = 0; i < r.req.n_logit_bias; i++) {
        if (r.req.logit_bias[i].token == 3) CHECK(r.req.logit_bias[i].bias == 100.0f, "bias clamped to 100");
        if (r.req.logit_bias[i].token == 4) CHECK(r.req.logit_bias[i].bias == -2.5f, "bias -2.5");
    }
    CHECK(r.top_logprobs == 3 && r.req.logprobs == 3, "chat logprobs + top_logprobs");
    CHECK(r.req.frequency_penalty == 0.5f && r.req.presence_penalty == -0.5f &&
              fabsf(r.req.repetition_penalty - 1.1f) < 1e-6f,
          "penalties");
    CHECK(r.req.ignore_eos && r.stream && r.include_usage && !r.continuous_usage, "flags");
    CHECK(r.req.cache_salt && r.req.cache_salt_len == 1, "cache_salt");
    CHECK(r.add_generation_prompt && !r.continue_final_message && r.add_special_tokens == -1, "template defaults");
    openai_request_free(&r);

    /* defaults, and null meaning "not given" */
    if (parse_ok(OPENAI_CHAT,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":null,\"max_tokens\":null,"
                 "\"stop\":null,\"logprobs\":false,\"model\":null}",
                 &r))
        return;
    CHECK(r.req.temperature == 1.0f && r.req.top_p == 1.0f && r.req.top_k == -1 && r.req.max_tokens == 0 &&
              r.req.logprobs == -1 && r.req.n_stop == 0 && !r.req.has_seed && !r.stream && r.model == NULL,
          "defaults");
    openai_request_free(&r);

    if (parse_ok(OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logprobs\":true}", &r)) return;
    CHECK(r.top_logprobs == 0 && r.req.logprobs == 0, "logprobs true alone: the chosen token only");
    openai_request_free(&r);

    if (parse_ok(OPENAI_CHAT,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"Once\"}],"
                 "\"add_generation_prompt\":false,\"continue_final_message\":true,\"add_special_tokens\":true,"
                 "\"chat_template_kwargs\":{\"date_string\":\"x\"}}",
                 &r))
        return;
    CHECK(!r.add_generation_prompt && r.continue_final_message && r.add_special_tokens == 1 && r.template_kwargs_json &&
              strstr(r.template_kwargs_json, "date_string"),
          "template options");
    openai_request_free(&r);
}

/* --generation-config auto: the model's defaults fill only the fields a request left out (absent
 * or null), as vLLM applies generation_config.json. */
static void test_gen_defaults(void)
{
    model_gen_defaults_t d;
    openai_request_t r;

    memset(&d, 0, sizeof(d));
    d.has_temperature = d.has_top_p = d.has_top_k = d.has_min_p = d.has_repetition_penalty = true;
    d.temperature = 0.6f;
    d.top_p = 0.9f;
    d.top_k = 20;
    d.min_p = 0.05f;
    d.repetition_penalty = 1.1f;

    /* nothing given: every default applies */
    if (parse_ok(OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r)) return;
    CHECK(!r.given.temperature && !r.given.top_p && !r.given.top_k && !r.given.min_p && !r.given.repetition_penalty,
          "nothing given");
    openai_request_apply_defaults(&r, &d);
    CHECK(r.req.temperature == 0.6f && r.req.top_p == 0.9f && r.req.top_k == 20 && r.req.min_p == 0.05f &&
              r.req.repetition_penalty == 1.1f,
          "all defaults applied: T %g top_p %g top_k %d min_p %g rep %g", r.req.temperature, r.req.top_p, r.req.top_k,
          r.req.min_p, r.req.repetition_penalty);
    openai_request_free(&r);

    /* given fields win, even when they equal vLLM's own defaults (temperature 1, top_k -1 / 0);
     * null is "not given" */
    if (parse_ok(OPENAI_COMPLETION,
                 "{\"prompt\":\"x\",\"temperature\":1,\"top_k\":0,\"top_p\":null,\"repetition_penalty\":1.0}",
                 &r))
        return;
    CHECK(r.given.temperature && r.given.top_k && !r.given.top_p && !r.given.min_p && r.given.repetition_penalty,
          "given flags");
    openai_request_apply_defaults(&r, &d);
    CHECK(r.req.temperature == 1.0f, "given temperature kept: %g", r.req.temperature);
    CHECK(r.req.top_k == -1, "given top_k 0 (off) kept: %d", r.req.top_k);
    CHECK(r.req.repetition_penalty == 1.0f, "given repetition_penalty kept: %g", r.req.repetition_penalty);
    CHECK(r.req.top_p == 0.9f, "null top_p takes the default: %g", r.req.top_p);
    CHECK(r.req.min_p == 0.05f, "omitted min_p takes the default: %g", r.req.min_p);
    openai_request_free(&r);

    /* a model without defaults (GGUF), or --generation-config vllm (NULL): vLLM's own defaults */
    if (parse_ok(OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_p\":0.5}", &r))
        return;
    openai_request_apply_defaults(&r, NULL);
    CHECK(r.req.temperature == 1.0f && r.req.top_p == 0.5f && r.req.top_k == -1, "NULL defaults change nothing");
    memset(&d, 0, sizeof(d));
    d.temperature = 0.1f; /* has_temperature false: not a default */
    openai_request_apply_defaults(&r, &d);
    CHECK(r.req.temperature == 1.0f, "a default without its has_ flag is ignored");
    /* top_k 0 in a generation config means off, as in a request */
    d.has_top_k = true;
    d.top_k = 0;
    openai_request_apply_defaults(&r, &d);
    CHECK(r.req.top_k == -1, "default top_k 0 is off: %d", r.req.top_k);
    openai_request_free(&r);
}

/* A malformed body's error gives the position, never the text around it (it may be the prompt). */
static void test_error_no_echo(void)
{
    static const char *bodies[] = {
        "{\"prompt\": \"SECRET-MARKER",
        "{\"prompt\": SECRET-MARKER}",
        "{\"prompt\": \"SECRET-MARKER\n\"}",
        "SECRET-MARKER",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"SECRET-MARKER\"}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        openai_request_t r;
        openai_error_t err;
        status_t st = openai_request_parse(OPENAI_COMPLETION, bodies[i], strlen(bodies[i]), &LIM, &r, &err);
        CHECK(st != CLLM_OK && err.status == 400, "body %zu: status %d", i, err.status);
        if (st == CLLM_OK) {
            openai_request_free(&r);
            continue;
        }
        CHECK(strstr(err.message, "not valid JSON") && strstr(err.message, "column"), "body %zu: %s", i, err.message);
        CHECK(!strstr(err.message, "SECRET"), "body %zu: the error echoes the body: %s", i, err.message);
    }
}

static void test_chat_errors(void)
{
    const char *u = "[{\"role\":\"user\",\"content\":\"hi\"}]";
    char b[512];
#define BODY(extra) (snprintf(b, sizeof(b), "{\"messages\":%s%s}", u, extra), b)
    parse_err(OPENAI_CHAT, "{\"messages\": [", 400, "", "not valid JSON");
    parse_err(OPENAI_CHAT, "", 400, "", "not valid JSON");
    parse_err(OPENAI_CHAT, "[1,2]", 400, "", "JSON object");
    parse_err(OPENAI_CHAT, "{}", 400, "messages", "required");
    parse_err(OPENAI_CHAT, "{\"messages\":[]}", 400, "messages", "non-empty");
    parse_err(OPENAI_CHAT, "{\"messages\":\"hi\"}", 400, "messages", NULL);
    parse_err(OPENAI_CHAT, "{\"messages\":[{\"content\":\"hi\"}]}", 400, "messages", "role");
    parse_err(OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400, "messages", "content");
    parse_err(OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", 400,
              "messages", "image_url");
    parse_err(OPENAI_CHAT, BODY(",\"model\":\"other\""), 404, "model", "does not exist");
    parse_err(OPENAI_CHAT, BODY(",\"model\":7"), 400, "model", "string");
    parse_err(OPENAI_CHAT, BODY(",\"n\":2"), 400, "n", "n > 1 is not supported yet");
    parse_err(OPENAI_CHAT, BODY(",\"n\":0"), 400, "n", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"temperature\":-0.5"), 400, "temperature", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"temperature\":\"hot\""), 400, "temperature", "number");
    parse_err(OPENAI_CHAT, BODY(",\"top_p\":0"), 400, "top_p", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"top_p\":1.5"), 400, "top_p", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"top_k\":-2"), 400, "top_k", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"min_p\":2"), 400, "min_p", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"frequency_penalty\":3"), 400, "frequency_penalty", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"presence_penalty\":-3"), 400, "presence_penalty", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"repetition_penalty\":0"), 400, "repetition_penalty", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"max_tokens\":0"), 400, "max_tokens", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"max_tokens\":1.5"), 400, "max_tokens", "integer");
    parse_err(OPENAI_CHAT, BODY(",\"max_tokens\":\"5\""), 400, "max_tokens", "integer");
    parse_err(OPENAI_CHAT, BODY(",\"max_completion_tokens\":-1"), 400, "max_completion_tokens", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"seed\":1.5"), 400, "seed", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"stop\":5"), 400, "stop", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"stop\":[\"a\",3]"), 400, "stop", NULL);
    parse_err(OPENAI_CHAT,
              BODY(",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\","
                   "\"13\",\"14\",\"15\",\"16\",\"17\"]"),
              400, "stop", "at most 16");
    parse_err(OPENAI_CHAT, BODY(",\"stop_token_ids\":[-1]"), 400, "stop_token_ids", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"logit_bias\":{\"5000\":1}"), 400, "logit_bias", "out-of-vocab");
    parse_err(OPENAI_CHAT, BODY(",\"logit_bias\":{\"abc\":1}"), 400, "logit_bias", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"logit_bias\":{\"1\":\"x\"}"), 400, "logit_bias", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"top_logprobs\":2"), 400, "top_logprobs", "logprobs");
    parse_err(OPENAI_CHAT, BODY(",\"logprobs\":true,\"top_logprobs\":21"), 400, "top_logprobs", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"logprobs\":1"), 400, "logprobs", "boolean");
    parse_err(OPENAI_CHAT, BODY(",\"stream\":\"yes\""), 400, "stream", "boolean");
    parse_err(OPENAI_CHAT, BODY(",\"stream_options\":{\"include_usage\":true}"), 400, "stream_options", "stream=True");
    parse_err(OPENAI_CHAT, BODY(",\"cache_salt\":\"\""), 400, "cache_salt", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"continue_final_message\":true"), 400, "continue_final_message", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"tools\":[{\"type\":\"function\"}]"), 400, "tool_choice", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"response_format\":{\"type\":\"json_object\"}"), 400, "response_format", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"min_tokens\":3"), 400, "min_tokens", NULL);
    parse_err(OPENAI_CHAT, BODY(",\"chat_template_kwargs\":[1]"), 400, "chat_template_kwargs", NULL);
#undef BODY
}

static void test_completion_parse(void)
{
    openai_request_t r;
    if (!parse_ok(OPENAI_COMPLETION, "{\"prompt\":\"Hello\",\"logprobs\":2,\"echo\":true}", &r)) {
        CHECK(r.prompt_text && r.prompt_text_len == 5 && !r.prompt_tokens, "string prompt");
        CHECK(r.top_logprobs == 2 && r.req.logprobs == 2 && r.echo, "completions logprobs is an int; echo");
        openai_request_free(&r);
    }
    if (!parse_ok(OPENAI_COMPLETION, "{\"prompt\":[\"Hello\"],\"add_special_tokens\":false}", &r)) {
        CHECK(r.prompt_text && !strcmp(r.prompt_text, "Hello"), "list of one string");
        CHECK(r.add_special_tokens == 0, "completions add_special_tokens false");
        openai_request_free(&r);
    }
    if (!parse_ok(OPENAI_COMPLETION, "{\"prompt\":[1,2,3]}", &r)) {
        CHECK(r.n_prompt_tokens == 3 && r.prompt_tokens[2] == 3 && !r.prompt_text, "token ids");
        openai_request_free(&r);
    }
    if (!parse_ok(OPENAI_COMPLETION, "{\"prompt\":[[7,8]]}", &r)) {
        CHECK(r.n_prompt_tokens == 2 && r.prompt_tokens[0] == 7, "list of one token list");
        openai_request_free(&r);
    }
    parse_err(OPENAI_COMPLETION, "{}", 400, "prompt", "required");
    parse_err(OPENAI_COMPLETION, "{\"prompt\":[]}", 400, "prompt", NULL);
    parse_err(OPENAI_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", 400, "prompt", "batched");
    parse_err(OPENAI_COMPLETION, "{\"prompt\":[[1],[2]]}", 400, "prompt", "batched");
    parse_err(OPENAI_COMPLETION, "{\"prompt\":[1,\"a\"]}", 400, "prompt", NULL);
    parse_err(OPENAI_COMPLETION, "{\"prompt\":[1,1000]}", 400, "prompt", "vocabulary");
    parse_err(OPENAI_COMPLETION, "{\"prompt\":{}}", 400, "prompt", NULL);
    parse_err(OPENAI_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":true}", 400, "logprobs", "integer");
    parse_err(OPENAI_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":21}", 400, "logprobs", NULL);
    parse_err(OPENAI_COMPLETION, "{\"prompt\":\"a\",\"suffix\":\"b\"}", 400, "suffix", NULL);
    parse_err(OPENAI_COMPLETION, "{\"prompt\":\"a\",\"echo\":1}", 400, "echo", NULL);

    if (!parse_ok(OPENAI_TOKENIZE, "{\"prompt\":\"hi\",\"add_special_tokens\":false,\"return_token_strs\":true}", &r)) {
        CHECK(r.prompt_text && r.add_special_tokens == 0 && r.return_token_strs, "tokenize prompt");
        openai_request_free(&r);
    }
    if (!parse_ok(OPENAI_TOKENIZE, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r)) {
        CHECK(r.n_messages == 1 && r.add_generation_prompt, "tokenize messages");
        openai_request_free(&r);
    }
    parse_err(OPENAI_TOKENIZE, "{\"prompt\":[1,2]}", 400, "prompt", NULL);
    if (!parse_ok(OPENAI_DETOKENIZE, "{\"tokens\":[1,2,999]}", &r)) {
        CHECK(r.n_prompt_tokens == 3 && r.prompt_tokens[2] == 999, "detokenize tokens");
        openai_request_free(&r);
    }
    parse_err(OPENAI_DETOKENIZE, "{\"tokens\":[1000]}", 400, "tokens", NULL);
    parse_err(OPENAI_DETOKENIZE, "{}", 400, "tokens", NULL);
}

/* Renders a chat with the built-in llama3 template. */
static void test_chat_render(const tokenizer_t *tok)
{
    chat_template_t *t = NULL;
    const char *src = chat_template_builtin("llama3");
    openai_request_t r;
    openai_error_t err;
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    size_t n = 0;

    CHECK(src != NULL, "built-in llama3 template");
    if (!src || chat_template_create(src, strlen(src), &t) != CLLM_OK) {
        CHECK(0, "llama3 template: %s", cllm_error_message());
        return;
    }
    if (!parse_ok(OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}", &r)) {
        CHECK(openai_chat_render(t, &r, "<|begin_of_text|>", "<|end_of_text|>", &text, &len, &err) == CLLM_OK,
              "render: %s", err.message);
        if (text) {
            CHECK(!strncmp(text, "<|begin_of_text|>", 17), "template writes BOS itself: %s", text);
            {
                const char *hdr = "<|start_header_id|>assistant<|end_header_id|>\n\n";
                CHECK(len >= strlen(hdr) && !strcmp(text + len - strlen(hdr), hdr), "ends with the generation prompt");
            }
            CHECK(!openai_chat_add_special(&r, text, "<|begin_of_text|>"), "no second BOS when the text has one");
            CHECK(openai_chat_add_special(&r, "plain", "<|begin_of_text|>"), "BOS added when the text lacks it");
            if (tokenizer_encode(tok, text, len, false, true, &ids, &n) == CLLM_OK) {
                int bos_count = 0;
                for (size_t i = 0; i < n; i++) bos_count += ids[i] == tokenizer_bos(tok);
                CHECK(n > 5 && ids[0] == tokenizer_bos(tok) && bos_count == 1, "exactly one BOS token, first");
                CHECK(ids[n - 1] == 271, "ends with the assistant header's blank line (271), got %d", ids[n - 1]);
                free(ids);
            }
            free(text);
        }
        openai_request_free(&r);
    }
    if (!parse_ok(OPENAI_CHAT,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},"
                  "{\"role\":\"assistant\",\"content\":\"Once upon \"}],"
                  "\"add_generation_prompt\":false,\"continue_final_message\":true}",
                  &r)) {
        text = NULL;
        CHECK(openai_chat_render(t, &r, "<|begin_of_text|>", "", &text, &len, &err) == CLLM_OK, "render: %s",
              err.message);
        if (text) {
            CHECK(len >= 9 && !strcmp(text + len - 9, "Once upon"), "continue_final_message cuts after the content: %s",
                  text);
            CHECK(strlen(text) == len, "length matches");
            free(text);
        }
        openai_request_free(&r);
    }
    if (!parse_ok(OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &r)) {
        text = NULL;
        CHECK(openai_chat_render(NULL, &r, "", "", &text, &len, &err) != CLLM_OK && err.status == 400 &&
                  strstr(err.message, "--chat-template"),
              "no template: 400 telling how to pass one");
        openai_request_free(&r);
    }
    chat_template_destroy(t);
}

static json_t *roundtrip(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_t *back;
    json_decref(j);
    if (!s) return NULL;
    back = json_loads(s, 0, NULL);
    free(s);
    return back;
}

static void test_responses(const tokenizer_t *tok)
{
    openai_meta_t m = { OPENAI_CHAT, "chatcmpl-x", 123, "served" };
    openai_usage_t u = { 10, 4, 8 };
    openai_error_t e;
    json_t *j, *c;
    char id[64];
    char *ev;
    size_t len;

    openai_response_id(OPENAI_CHAT, id, sizeof(id));
    CHECK(!strncmp(id, "chatcmpl-", 9) && strlen(id) == 9 + 32, "chat id: %s", id);
    openai_response_id(OPENAI_COMPLETION, id, sizeof(id));
    CHECK(!strncmp(id, "cmpl-", 5) && strlen(id) == 5 + 32 && strspn(id + 5, "0123456789abcdef") == 32,
          "completion id: %s", id);

    openai_error_set(&e, 400, "temperature", "bad %s", "value");
    j = roundtrip(openai_error_json(&e));
    CHECK(j && !strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "bad value") &&
              !strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "type")), "BadRequestError") &&
              !strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "param")), "temperature") &&
              json_integer_value(json_object_get(json_object_get(j, "error"), "code")) == 400,
          "error object");
    json_decref(j);
    openai_error_set(&e, 404, NULL, "x\xff\xfe");
    j = roundtrip(openai_error_json(&e));
    CHECK(j && json_is_null(json_object_get(json_object_get(j, "error"), "param")) &&
              !strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                      "x\xef\xbf\xbd\xef\xbf\xbd"),
          "invalid UTF-8 in a message becomes U+FFFD, param null");
    json_decref(j);
    CHECK(!strcmp(openai_error_type(401), "AuthenticationError") &&
              !strcmp(openai_error_type(413), "RequestTooLargeError") &&
              !strcmp(openai_error_type(503), "ServiceUnavailableError") &&
              !strcmp(openai_error_type(405), "MethodNotAllowedError"),
          "error types");

    CHECK(!strcmp(openai_finish_reason(CLLM_FINISH_STOP), "stop") &&
              !strcmp(openai_finish_reason(CLLM_FINISH_LENGTH), "length") && !openai_finish_reason(CLLM_FINISH_ABORT) &&
              !openai_finish_reason(CLLM_FINISH_NONE),
          "finish reasons: abort never shows");

    j = roundtrip(openai_response_json(&m, "Hi!", 3, "stop", json_string("END"), NULL, &u));
    c = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(j && !strcmp(json_string_value(json_object_get(j, "object")), "chat.completion") &&
              !strcmp(json_string_value(json_object_get(j, "id")), "chatcmpl-x") &&
              json_integer_value(json_object_get(j, "created")) == 123 &&
              !strcmp(json_string_value(json_object_get(j, "model")), "served"),
          "chat.completion header");
    CHECK(c && !strcmp(json_string_value(json_object_get(json_object_get(c, "message"), "content")), "Hi!") &&
              !strcmp(json_string_value(json_object_get(json_object_get(c, "message"), "role")), "assistant") &&
              !strcmp(json_string_value(json_object_get(c, "finish_reason")), "stop") &&
              !strcmp(json_string_value(json_object_get(c, "stop_reason")), "END") &&
              json_is_null(json_object_get(c, "logprobs")) && json_integer_value(json_object_get(c, "index")) == 0,
          "chat choice");
    {
        json_t *us = json_object_get(j, "usage");
        CHECK(json_integer_value(json_object_get(us, "prompt_tokens")) == 10 &&
                  json_integer_value(json_object_get(us, "completion_tokens")) == 4 &&
                  json_integer_value(json_object_get(us, "total_tokens")) == 14 &&
                  json_integer_value(json_object_get(json_object_get(us, "prompt_tokens_details"), "cached_tokens")) ==
                      8,
              "usage");
    }
    json_decref(j);

    m.kind = OPENAI_COMPLETION;
    m.id = "cmpl-x";
    j = roundtrip(openai_response_json(&m, "text", 4, "length", NULL, NULL, &u));
    c = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(j && !strcmp(json_string_value(json_object_get(j, "object")), "text_completion") &&
              !strcmp(json_string_value(json_object_get(c, "text")), "text") &&
              !strcmp(json_string_value(json_object_get(c, "finish_reason")), "length") &&
              json_is_null(json_object_get(c, "stop_reason")),
          "text_completion");
    json_decref(j);

    /* chunks */
    m.kind = OPENAI_CHAT;
    m.id = "chatcmpl-x";
    j = roundtrip(openai_chunk_json(&m, true, "", 0, NULL, NULL, NULL, NULL));
    c = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(j && !strcmp(json_string_value(json_object_get(j, "object")), "chat.completion.chunk") &&
              !strcmp(json_string_value(json_object_get(json_object_get(c, "delta"), "role")), "assistant") &&
              json_is_null(json_object_get(c, "finish_reason")) && !json_object_get(j, "usage"),
          "role chunk");
    json_decref(j);
    j = roundtrip(openai_chunk_json(&m, false, "", 0, "stop", json_integer(7), NULL, &u));
    c = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(j && json_object_size(json_object_get(c, "delta")) == 0 &&
              !strcmp(json_string_value(json_object_get(c, "finish_reason")), "stop") &&
              json_integer_value(json_object_get(c, "stop_reason")) == 7 && json_object_get(j, "usage"),
          "final chunk: empty delta, finish reason, continuous usage");
    json_decref(j);
    j = roundtrip(openai_usage_chunk_json(&m, &u));
    CHECK(j && json_array_size(json_object_get(j, "choices")) == 0 &&
              json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")) == 14,
          "usage chunk: empty choices");
    json_decref(j);

    ev = openai_sse_event(json_pack("{s:i}", "a", 1), &len);
    CHECK(ev && !strcmp(ev, "data: {\"a\":1}\n\n") && len == strlen(ev), "SSE event: %s", ev ? ev : "(null)");
    free(ev);

    j = openai_json_text("ok\xc3(\xe2\x82", 6);
    CHECK(j && !strcmp(json_string_value(j), "ok\xef\xbf\xbd(\xef\xbf\xbd"),
          "lossy text: one U+FFFD per maximal bad part");
    json_decref(j);

    /* logprobs: chat and completions dialects */
    {
        int32_t toks[2];
        cllm_logprob_t lps[2];
        int64_t off = 0;
        int32_t *ids = NULL;
        size_t n = 0;
        if (tokenizer_encode(tok, " Hello world", 12, false, false, &ids, &n) == CLLM_OK && n == 2) {
            memset(lps, 0, sizeof(lps));
            for (int i = 0; i < 2; i++) {
                toks[i] = ids[i];
                lps[i].token = ids[i];
                lps[i].logprob = -0.5f * (float)(i + 1);
                lps[i].n_top = 2;
                lps[i].top[0].token = ids[i];
                lps[i].top[0].logprob = lps[i].logprob;
                lps[i].top[1].token = ids[1 - i];
                lps[i].top[1].logprob = -INFINITY;
            }
            j = roundtrip(openai_logprobs_json(OPENAI_CHAT, tok, toks, lps, 2, 1, &off));
            c = json_array_get(json_object_get(j, "content"), 1);
            CHECK(c && !strcmp(json_string_value(json_object_get(c, "token")), " world") &&
                      fabs(json_real_value(json_object_get(c, "logprob")) + 1.0) < 1e-6 &&
                      json_array_size(json_object_get(c, "bytes")) == 6 &&
                      json_integer_value(json_array_get(json_object_get(c, "bytes"), 0)) == ' ' &&
                      json_array_size(json_object_get(c, "top_logprobs")) == 1,
                  "chat logprobs entry");
            json_decref(j);
            j = roundtrip(openai_logprobs_json(OPENAI_COMPLETION, tok, toks, lps, 2, 2, &off));
            CHECK(j && json_integer_value(json_array_get(json_object_get(j, "text_offset"), 1)) == 6 && off == 12 &&
                      !strcmp(json_string_value(json_array_get(json_object_get(j, "tokens"), 0)), " Hello") &&
                      fabs(json_real_value(json_array_get(json_object_get(j, "token_logprobs"), 0)) + 0.5) < 1e-6,
                  "completion logprobs: tokens, offsets");
            c = json_array_get(json_object_get(j, "top_logprobs"), 0);
            CHECK(c && json_object_size(c) == 2 &&
                      fabs(json_real_value(json_object_get(c, " world")) + 9999.0) < 1e-6,
                  "top_logprobs dict; -inf reported as -9999");
            json_decref(j);
        } else {
            CHECK(0, "encode ' Hello world' gave %zu tokens", n);
        }
        free(ids);
    }

    /* stop_reason: stop string, stop token id, EOS */
    {
        openai_request_t r;
        cllm_output_t o;
        memset(&o, 0, sizeof(o));
        if (!parse_ok(OPENAI_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"x\",\"yy\"],\"stop_token_ids\":[42]}", &r)) {
            o.finish = CLLM_FINISH_STOP;
            o.stop_string = 1;
            o.stop_token = -1;
            j = openai_stop_reason_json(&r, &o, tok);
            CHECK(json_is_string(j) && !strcmp(json_string_value(j), "yy"), "stop string reason");
            json_decref(j);
            o.stop_string = -1;
            o.stop_token = 42;
            j = openai_stop_reason_json(&r, &o, tok);
            CHECK(json_integer_value(j) == 42, "stop token reason");
            json_decref(j);
            o.stop_token = tokenizer_eos(tok);
            j = openai_stop_reason_json(&r, &o, tok);
            CHECK(json_is_null(j), "EOS: null stop_reason");
            json_decref(j);
            openai_request_free(&r);
        }
    }

    j = roundtrip(openai_models_json("served", "/m.gguf", 5, 2048));
    c = json_array_get(json_object_get(j, "data"), 0);
    CHECK(j && !strcmp(json_string_value(json_object_get(j, "object")), "list") &&
              !strcmp(json_string_value(json_object_get(c, "id")), "served") &&
              !strcmp(json_string_value(json_object_get(c, "object")), "model") &&
              json_integer_value(json_object_get(c, "max_model_len")) == 2048,
          "models list");
    json_decref(j);
    {
        int32_t ids[2] = { tokenizer_bos(tok), 9906 };
        j = roundtrip(openai_tokenize_json(tok, ids, 2, 100, true));
        CHECK(j && json_integer_value(json_object_get(j, "count")) == 2 &&
                  json_integer_value(json_object_get(j, "max_model_len")) == 100 &&
                  !strcmp(json_string_value(json_array_get(json_object_get(j, "token_strs"), 0)),
                          "<|begin_of_text|>") &&
                  !strcmp(json_string_value(json_array_get(json_object_get(j, "token_strs"), 1)), "Hello"),
              "tokenize answer");
        json_decref(j);
    }
}

static void test_metrics(void)
{
    metrics_t *m = NULL;
    cllm_engine_stats_t st;
    char *text;
    size_t len;
    if (metrics_create("my \"model\"", &m) != CLLM_OK) {
        CHECK(0, "metrics_create");
        return;
    }
    metrics_observe(m, METRICS_TTFT, 0.003);
    metrics_observe(m, METRICS_TTFT, 0.5);
    metrics_observe(m, METRICS_TTFT, 5000.0);
    metrics_observe(m, METRICS_E2E, 1.0);
    metrics_add_prompt_tokens(m, 17);
    memset(&st, 0, sizeof(st));
    st.n_blocks = 100;
    st.n_blocks_used = 25;
    st.block_size = 16;
    st.n_running = 2;
    st.n_waiting = 3;
    st.prefix_cache_queries = 40;
    st.prefix_cache_hits = 30;
    st.n_generation_tokens = 9;
    st.n_finished[CLLM_FINISH_STOP] = 4;
    st.n_finished[CLLM_FINISH_ABORT] = 1;
    text = metrics_render(m, &st, 1, &len);
    CHECK(text && strlen(text) == len, "render");
    if (text) {
        const char *L = "model_name=\"my \\\"model\\\"\"";
        char want[256];
#define HAS(fmt, ...) (snprintf(want, sizeof(want), fmt, __VA_ARGS__), strstr(text, want) != NULL)
        CHECK(HAS("cllm:kv_cache_usage_perc{%s} 0.25\n", L), "usage 0.25, escaped label");
        CHECK(HAS("cllm:num_requests_running{%s} 2\n", L) && HAS("cllm:num_requests_waiting{%s} 3\n", L), "gauges");
        CHECK(HAS("cllm:prefix_cache_queries_total{%s} 40\n", L) && HAS("cllm:prefix_cache_hits_total{%s} 30\n", L),
              "prefix cache counters");
        CHECK(HAS("cllm:prompt_tokens_total{%s} 17\n", L) && HAS("cllm:generation_tokens_total{%s} 9\n", L), "tokens");
        CHECK(HAS("cllm:request_success_total{finished_reason=\"stop\",%s} 4\n", L) &&
                  HAS("cllm:request_success_total{finished_reason=\"length\",%s} 0\n", L) &&
                  HAS("cllm:request_success_total{finished_reason=\"abort\",%s} 1\n", L),
              "request_success_total by reason");
        CHECK(HAS("cllm:time_to_first_token_seconds_bucket{le=\"0.001\",%s} 0\n", L) &&
                  HAS("cllm:time_to_first_token_seconds_bucket{le=\"0.005\",%s} 1\n", L) &&
                  HAS("cllm:time_to_first_token_seconds_bucket{le=\"0.5\",%s} 2\n", L) &&
                  HAS("cllm:time_to_first_token_seconds_bucket{le=\"2560.0\",%s} 2\n", L) &&
                  HAS("cllm:time_to_first_token_seconds_bucket{le=\"+Inf\",%s} 3\n", L) &&
                  HAS("cllm:time_to_first_token_seconds_count{%s} 3\n", L),
              "cumulative TTFT buckets with vLLM's bounds");
        CHECK(HAS("cllm:e2e_request_latency_seconds_bucket{le=\"1.0\",%s} 1\n", L) &&
                  HAS("cllm:e2e_request_latency_seconds_bucket{le=\"0.8\",%s} 0\n", L),
              "e2e bucket edge is inclusive");
        CHECK(HAS("cllm:inter_token_latency_seconds_count{%s} 0\n", L), "empty ITL histogram rendered");
        CHECK(strstr(text, "# TYPE cllm:prefix_cache_hits_total counter\n") &&
                  strstr(text, "# TYPE cllm:e2e_request_latency_seconds histogram\n") &&
                  strstr(text, "# TYPE cllm:kv_cache_usage_perc gauge\n"),
              "TYPE lines");
        CHECK(HAS("num_gpu_blocks=\"100\",%s} 1.0\n", L) && strstr(text, "block_size=\"16\""), "cache_config_info");
#undef HAS
        free(text);
    }
    metrics_destroy(m);
}

int main(void)
{
    gguf_t *g = NULL;
    tokenizer_t *tok = NULL;
    const char *path = CLLM_SHARED_DIR "/reference/tokenizer/ggml-vocab-llama-bpe.gguf";

    test_chat_parse();
    test_gen_defaults();
    test_error_no_echo();
    test_chat_errors();
    test_completion_parse();
    test_metrics();
    if (gguf_open(path, &g) != CLLM_OK || tokenizer_create(g, &tok) != CLLM_OK) {
        fprintf(stderr, "FAIL: cannot load the Llama 3 vocabulary %s: %s\n", path, cllm_error_message());
        n_fail++;
    } else {
        test_chat_render(tok);
        test_responses(tok);
    }
    tokenizer_destroy(tok);
    gguf_close(g);
    printf("test_openai_json: %d checks, %d failed\n", n_check, n_fail);
    return n_fail ? 1 : 0;
}
