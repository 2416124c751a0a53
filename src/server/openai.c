/* openai.c: parsing and validation of OpenAI / vLLM request bodies (openai.h).
 *
 * Owns the openai_request_t contents: the parsed JSON tree (strings point into it) and the
 * arrays built from it (messages, stop strings, token ids, logit bias). Every field is checked
 * for type and range here, with the field named in the error, so that the engine only ever
 * sees valid values. A failed parse frees everything it built. */
#include "server/openai.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/stop.h"

/* ---- errors ---- */

const char *openai_error_type(int status)
{
    switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowedError";
    case 413: return "RequestTooLargeError";
    case 503: return "ServiceUnavailableError";
    default: return "InternalServerError";
    }
}

void openai_error_set(openai_error_t *e, int status, const char *param, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

/* ---- typed field access: absent and null are "not given" (return 0, *given false) ---- */

static json_t *field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int get_bool(json_t *obj, const char *key, bool *out, openai_error_t *err)
{
    json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) {
        openai_error_set(err, 400, key, "'%s' must be a boolean", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* A number in [lo, hi] (bounds inclusive unless lo_open). */
static int get_number(json_t *obj, const char *key, double lo, double hi, bool lo_open, float *out, bool *given,
                      openai_error_t *err)
{
    json_t *v = field(obj, key);
    double d;
    if (given) *given = false;
    if (!v) return 0;
    if (!json_is_number(v)) {
        openai_error_set(err, 400, key, "'%s' must be a number", key);
        return -1;
    }
    d = json_number_value(v);
    if (!isfinite(d) || d > hi || (lo_open ? d <= lo : d < lo)) {
        if (isinf(hi))
            openai_error_set(err, 400, key, "'%s' must be %s %g, got %g", key, lo_open ? ">" : ">=", lo, d);
        else
            openai_error_set(err, 400, key, "'%s' must be in %s%g, %g], got %g", key, lo_open ? "(" : "[", lo, hi, d);
        return -1;
    }
    *out = (float)d;
    if (given) *given = true;
    return 0;
}

/* An integer (integral reals accepted) in [lo, hi]. */
static int json_to_int(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (isfinite(d) && d == floor(d) && fabs(d) < 9.0e18) {
            *out = (int64_t)d;
            return 0;
        }
    }
    return -1;
}

static int get_int(json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out, bool *given,
                   openai_error_t *err)
{
    json_t *v = field(obj, key);
    int64_t x;
    if (given) *given = false;
    if (!v) return 0;
    if (json_to_int(v, &x)) {
        openai_error_set(err, 400, key, "'%s' must be an integer", key);
        return -1;
    }
    if (x < lo || x > hi) {
        openai_error_set(err, 400, key, "'%s' must be in [%lld, %lld], got %lld", key, (long long)lo, (long long)hi,
                         (long long)x);
        return -1;
    }
    *out = x;
    if (given) *given = true;
    return 0;
}

static int get_string(json_t *obj, const char *key, const char **out, size_t *len, openai_error_t *err)
{
    json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_string(v)) {
        openai_error_set(err, 400, key, "'%s' must be a string", key);
        return -1;
    }
    *out = json_string_value(v);
    if (len) *len = json_string_length(v);
    return 0;
}

/* An array of token ids in [0, n_vocab) into a malloc'd array (an empty array gives a
 * non-NULL zero-length one). */
static int parse_token_list(json_t *arr, const char *param, int32_t n_vocab, int32_t **out, size_t *n,
                            openai_error_t *err)
{
    size_t cnt = json_array_size(arr);
    int32_t *ids = malloc((cnt ? cnt : 1) * sizeof(int32_t));
    if (!ids) {
        openai_error_set(err, 500, NULL, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cnt; i++) {
        int64_t x;
        if (json_to_int(json_array_get(arr, i), &x)) {
            openai_error_set(err, 400, param, "'%s' must be a list of integer token ids (item %zu is not)", param, i);
            free(ids);
            return -1;
        }
        if (x < 0 || x >= n_vocab) {
            openai_error_set(err, 400, param, "'%s' holds token id %lld at index %zu, outside the vocabulary [0, %d)",
                             param, (long long)x, i, n_vocab);
            free(ids);
            return -1;
        }
        ids[i] = (int32_t)x;
    }
    *out = ids;
    *n = cnt;
    return 0;
}

/* True when every element of a non-empty array is an integer-valued number. */
static bool is_token_list(json_t *arr)
{
    int64_t x;
    if (!json_is_array(arr) || json_array_size(arr) == 0) return false;
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (json_to_int(json_array_get(arr, i), &x)) return false;
    return true;
}

/* ---- pieces shared by the kinds ---- */

static int parse_model(json_t *root, const openai_limits_t *lim, openai_request_t *r, openai_error_t *err)
{
    if (get_string(root, "model", &r->model, NULL, err)) return -1;
    if (r->model && lim->served_model_name && strcmp(r->model, lim->served_model_name) != 0) {
        openai_error_set(err, 404, "model", "The model `%s` does not exist.", r->model);
        return -1;
    }
    return 0;
}

/* "prompt" of /v1/completions and /tokenize: a string, a list of one string, a list of token
 * ids or a list of one list of token ids. */
static int parse_prompt(json_t *root, const openai_limits_t *lim, openai_request_t *r, openai_error_t *err)
{
    json_t *p = field(root, "prompt");
    if (!p) {
        openai_error_set(err, 400, "prompt", "'prompt' is required");
        return -1;
    }
    if (json_is_string(p)) {
        r->prompt_text = json_string_value(p);
        r->prompt_text_len = json_string_length(p);
        return 0;
    }
    if (!json_is_array(p)) {
        openai_error_set(err, 400, "prompt",
                         "'prompt' must be a string, a list of token ids, or a list of one of those");
        return -1;
    }
    if (json_array_size(p) == 0) {
        openai_error_set(err, 400, "prompt", "'prompt' must not be an empty list");
        return -1;
    }
    if (is_token_list(p))
        return parse_token_list(p, "prompt", lim->n_vocab, &r->prompt_tokens, &r->n_prompt_tokens, err);
    if (json_array_size(p) > 1) {
        openai_error_set(err, 400, "prompt", "batched prompts (a list of %zu prompts) are not supported yet: send one "
                         "prompt per request", json_array_size(p));
        return -1;
    }
    p = json_array_get(p, 0);
    if (json_is_string(p)) {
        r->prompt_text = json_string_value(p);
        r->prompt_text_len = json_string_length(p);
        return 0;
    }
    if (is_token_list(p))
        return parse_token_list(p, "prompt", lim->n_vocab, &r->prompt_tokens, &r->n_prompt_tokens, err);
    openai_error_set(err, 400, "prompt",
                     "'prompt' must be a string, a list of token ids, or a list of one of those");
    return -1;
}

/* A message's content: a string, null, or a list of text parts joined with "\n". *out is
 * malloc'd (NULL for null content). */
static int flatten_content(json_t *content, size_t idx, char **out, openai_error_t *err)
{
    size_t total = 0, pos = 0;
    char *s;
    *out = NULL;
    if (!content || json_is_null(content)) return 0;
    if (json_is_string(content)) {
        s = malloc(json_string_length(content) + 1);
        if (!s) goto nomem;
        memcpy(s, json_string_value(content), json_string_length(content) + 1);
        *out = s;
        return 0;
    }
    if (!json_is_array(content)) {
        openai_error_set(err, 400, "messages", "messages[%zu].content must be a string or a list of content parts",
                         idx);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(content); i++) {
        json_t *part = json_array_get(content, i), *type, *text;
        if (!json_is_object(part)) {
            openai_error_set(err, 400, "messages", "messages[%zu].content[%zu] must be an object", idx, i);
            return -1;
        }
        type = json_object_get(part, "type");
        text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0) {
            bool named = json_is_string(type);
            openai_error_set(err, 400, "messages",
                             "messages[%zu].content[%zu]: only content parts of type \"text\" are supported, "
                             "got %s%s%s",
                             idx, i, named ? "\"" : "", named ? json_string_value(type) : "no type", named ? "\"" : "");
            return -1;
        }
        if (!json_is_string(text)) {
            openai_error_set(err, 400, "messages", "messages[%zu].content[%zu].text must be a string", idx, i);
            return -1;
        }
        total += json_string_length(text) + 1;
    }
    s = malloc(total + 1);
    if (!s) goto nomem;
    for (size_t i = 0; i < json_array_size(content); i++) {
        json_t *text = json_object_get(json_array_get(content, i), "text");
        if (i > 0) s[pos++] = '\n';
        memcpy(s + pos, json_string_value(text), json_string_length(text));
        pos += json_string_length(text);
    }
    s[pos] = '\0';
    *out = s;
    return 0;
nomem:
    openai_error_set(err, 500, NULL, "out of memory");
    return -1;
}

static int parse_messages(json_t *root, openai_request_t *r, openai_error_t *err)
{
    json_t *msgs = field(root, "messages");
    size_t n;
    if (!msgs) {
        openai_error_set(err, 400, "messages", "'messages' is required");
        return -1;
    }
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        openai_error_set(err, 400, "messages", "'messages' must be a non-empty list of messages");
        return -1;
    }
    n = json_array_size(msgs);
    r->messages = calloc(n, sizeof(*r->messages));
    r->message_text = calloc(n, sizeof(char *));
    r->message_tool_calls = calloc(n, sizeof(char *));
    if (!r->messages || !r->message_text || !r->message_tool_calls) {
        openai_error_set(err, 500, NULL, "out of memory");
        return -1;
    }
    r->n_messages = n;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i), *role, *tc, *v;
        chat_message_t *cm = &r->messages[i];
        if (!json_is_object(m)) {
            openai_error_set(err, 400, "messages", "messages[%zu] must be an object", i);
            return -1;
        }
        role = json_object_get(m, "role");
        if (!json_is_string(role) || json_string_length(role) == 0) {
            openai_error_set(err, 400, "messages", "messages[%zu].role must be a non-empty string", i);
            return -1;
        }
        cm->role = json_string_value(role);
        if (flatten_content(json_object_get(m, "content"), i, &r->message_text[i], err)) return -1;
        cm->content = r->message_text[i];
        tc = field(m, "tool_calls");
        if (tc) {
            if (!json_is_array(tc)) {
                openai_error_set(err, 400, "messages", "messages[%zu].tool_calls must be a list", i);
                return -1;
            }
            r->message_tool_calls[i] = json_dumps(tc, JSON_COMPACT);
            if (!r->message_tool_calls[i]) {
                openai_error_set(err, 500, NULL, "out of memory");
                return -1;
            }
            cm->tool_calls_json = r->message_tool_calls[i];
        }
        if ((v = field(m, "tool_call_id"))) {
            if (!json_is_string(v)) {
                openai_error_set(err, 400, "messages", "messages[%zu].tool_call_id must be a string", i);
                return -1;
            }
            cm->tool_call_id = json_string_value(v);
        }
        if ((v = field(m, "name"))) {
            if (!json_is_string(v)) {
                openai_error_set(err, 400, "messages", "messages[%zu].name must be a string", i);
                return -1;
            }
            cm->name = json_string_value(v);
        }
    }
    return 0;
}

/* add_generation_prompt, continue_final_message, add_special_tokens, chat_template_kwargs,
 * tools: what the chat template needs. */
static int parse_template_options(json_t *root, openai_request_t *r, openai_error_t *err)
{
    json_t *v;
    bool b, agp_given;
    r->add_generation_prompt = true;
    agp_given = field(root, "add_generation_prompt") != NULL;
    if (get_bool(root, "add_generation_prompt", &r->add_generation_prompt, err)) return -1;
    if (get_bool(root, "continue_final_message", &r->continue_final_message, err)) return -1;
    if (r->continue_final_message && r->add_generation_prompt) {
        openai_error_set(err, 400, "continue_final_message", "Cannot set both `continue_final_message` and "
                         "`add_generation_prompt` to True%s.",
                         agp_given ? "" : " (add_generation_prompt defaults to true: set it to false)");
        return -1;
    }
    if (field(root, "add_special_tokens")) {
        b = false;
        if (get_bool(root, "add_special_tokens", &b, err)) return -1;
        r->add_special_tokens = b;
    }
    if ((v = field(root, "chat_template_kwargs"))) {
        if (!json_is_object(v)) {
            openai_error_set(err, 400, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
            return -1;
        }
        r->template_kwargs_json = json_dumps(v, JSON_COMPACT);
        if (!r->template_kwargs_json) {
            openai_error_set(err, 500, NULL, "out of memory");
            return -1;
        }
    }
    if (field(root, "chat_template")) {
        openai_error_set(err, 400, "chat_template", "a chat template in the request is not accepted: start the server "
                         "with --chat-template instead");
        return -1;
    }
    return 0;
}

static int parse_tools(json_t *root, openai_request_t *r, openai_error_t *err)
{
    json_t *tools = field(root, "tools"), *choice = field(root, "tool_choice");
    if (!tools) return 0;
    if (!json_is_array(tools)) {
        openai_error_set(err, 400, "tools", "'tools' must be a list");
        return -1;
    }
    if (json_array_size(tools) == 0) return 0;
    if (!choice || !json_is_string(choice) || strcmp(json_string_value(choice), "none") != 0) {
        openai_error_set(err, 400, "tool_choice", "\"auto\", \"required\" and named tool choice are not supported by "
                         "this server (no tool-call parser): send tool_choice \"none\" or no tools");
        return -1;
    }
    r->tools_json = json_dumps(tools, JSON_COMPACT);
    if (!r->tools_json) {
        openai_error_set(err, 500, NULL, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_stop(json_t *root, openai_request_t *r, openai_error_t *err)
{
    json_t *stop = field(root, "stop"), *ids = field(root, "stop_token_ids");
    if (stop) {
        size_t n = json_is_string(stop) ? 1 : json_array_size(stop);
        if (!json_is_string(stop) && !json_is_array(stop)) {
            openai_error_set(err, 400, "stop", "'stop' must be a string or a list of strings");
            return -1;
        }
        r->stop = calloc(n ? n : 1, sizeof(char *));
        if (!r->stop) {
            openai_error_set(err, 500, NULL, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *s = json_is_string(stop) ? stop : json_array_get(stop, i);
            if (!json_is_string(s)) {
                openai_error_set(err, 400, "stop", "'stop' must be a string or a list of strings (item %zu is not)", i);
                return -1;
            }
            if (json_string_length(s) == 0) continue; /* an empty stop string can never match: ignore it */
            if (json_string_length(s) > STOP_MAX_STRING_LEN || strlen(json_string_value(s)) != json_string_length(s)) {
                openai_error_set(err, 400, "stop", "stop strings must be at most %d bytes (without NUL)",
                                 STOP_MAX_STRING_LEN);
                return -1;
            }
            if (r->req.n_stop >= STOP_MAX_STRINGS) {
                openai_error_set(err, 400, "stop", "at most %d stop strings are supported, got %zu", STOP_MAX_STRINGS,
                                 n);
                return -1;
            }
            r->stop[r->req.n_stop++] = json_string_value(s);
        }
        r->req.stop = r->stop;
    }
    if (ids) {
        if (!json_is_array(ids)) {
            openai_error_set(err, 400, "stop_token_ids", "'stop_token_ids' must be a list of token ids");
            return -1;
        }
        if (json_array_size(ids) > STOP_MAX_TOKEN_IDS) {
            openai_error_set(err, 400, "stop_token_ids", "at most %d stop_token_ids are supported, got %zu",
                             STOP_MAX_TOKEN_IDS, json_array_size(ids));
            return -1;
        }
        if (parse_token_list(ids, "stop_token_ids", INT32_MAX, &r->stop_token_ids, &r->req.n_stop_token_ids, err))
            return -1;
        r->req.stop_token_ids = r->stop_token_ids;
    }
    return 0;
}

static int parse_logit_bias(json_t *root, const openai_limits_t *lim, openai_request_t *r, openai_error_t *err)
{
    json_t *lb = field(root, "logit_bias"), *v;
    const char *key;
    size_t i = 0;
    if (!lb) return 0;
    if (!json_is_object(lb)) {
        openai_error_set(err, 400, "logit_bias", "'logit_bias' must be an object mapping token ids to biases");
        return -1;
    }
    r->logit_bias = calloc(json_object_size(lb) + 1, sizeof(*r->logit_bias));
    if (!r->logit_bias) {
        openai_error_set(err, 500, NULL, "out of memory");
        return -1;
    }
    json_object_foreach(lb, key, v) {
        char *end;
        long long id = strtoll(key, &end, 10);
        double bias;
        if (end == key || *end || !isdigit((unsigned char)key[0])) {
            openai_error_set(err, 400, "logit_bias", "logit_bias keys must be token ids, got \"%.64s\"", key);
            return -1;
        }
        if (id < 0 || id >= lim->n_vocab) {
            openai_error_set(err, 400, "logit_bias", "token_id(s) [%lld] in logit_bias contain out-of-vocab token ids "
                             "(vocabulary size %d)", id, lim->n_vocab);
            return -1;
        }
        if (!json_is_number(v)) {
            openai_error_set(err, 400, "logit_bias", "logit_bias values must be numbers (token %lld)", id);
            return -1;
        }
        bias = json_number_value(v);
        if (bias > 100.0) bias = 100.0;
        if (bias < -100.0) bias = -100.0;
        r->logit_bias[i].token = (int32_t)id;
        r->logit_bias[i].bias = (float)bias;
        i++;
    }
    r->req.logit_bias = r->logit_bias;
    r->req.n_logit_bias = i;
    return 0;
}

static int parse_logprobs(json_t *root, openai_request_t *r, openai_error_t *err)
{
    int64_t x;
    bool given;
    r->top_logprobs = -1;
    if (r->kind == OPENAI_CHAT) {
        bool lp = false;
        if (get_bool(root, "logprobs", &lp, err)) return -1;
        if (get_int(root, "top_logprobs", 0, OPENAI_MAX_LOGPROBS, &x, &given, err)) return -1;
        if (given && !lp) {
            openai_error_set(err, 400, "top_logprobs", "when using `top_logprobs`, `logprobs` must be set to true");
            return -1;
        }
        if (lp) r->top_logprobs = given ? (int32_t)x : 0;
    } else {
        if (get_int(root, "logprobs", 0, OPENAI_MAX_LOGPROBS, &x, &given, err)) return -1;
        if (given) r->top_logprobs = (int32_t)x;
    }
    r->req.logprobs = r->top_logprobs;
    return 0;
}

/* Sampling, stopping and streaming fields of chat and completions. */
static int parse_generation(json_t *root, const openai_limits_t *lim, openai_request_t *r, openai_error_t *err)
{
    cllm_request_t *q = &r->req;
    int64_t x, mt = 0;
    bool given, mt_given = false, b;
    json_t *so, *rf;

    if (get_int(root, "n", 1, INT32_MAX, &x, &given, err)) return -1;
    if (given && x > 1) {
        openai_error_set(err, 400, "n", "n > 1 is not supported yet");
        return -1;
    }
    if (get_int(root, "best_of", 1, INT32_MAX, &x, &given, err)) return -1;
    if (given && x > 1) {
        openai_error_set(err, 400, "best_of", "best_of > 1 is not supported yet");
        return -1;
    }
    if (get_int(root, "max_tokens", 1, INT32_MAX, &mt, &mt_given, err)) return -1;
    if (get_int(root, "max_completion_tokens", 1, INT32_MAX, &x, &given, err)) return -1;
    if (given) {
        mt = x;
        mt_given = true;
    }
    q->max_tokens = mt_given ? (int32_t)mt : 0;
    if (get_number(root, "temperature", 0.0, INFINITY, false, &q->temperature, &r->given.temperature, err)) return -1;
    if (get_number(root, "top_p", 0.0, 1.0, true, &q->top_p, &r->given.top_p, err)) return -1;
    if (get_int(root, "top_k", -1, INT32_MAX, &x, &r->given.top_k, err)) return -1;
    if (r->given.top_k) q->top_k = x == 0 ? -1 : (int32_t)x;
    if (get_number(root, "min_p", 0.0, 1.0, false, &q->min_p, &r->given.min_p, err)) return -1;
    if (get_number(root, "frequency_penalty", -2.0, 2.0, false, &q->frequency_penalty, NULL, err)) return -1;
    if (get_number(root, "presence_penalty", -2.0, 2.0, false, &q->presence_penalty, NULL, err)) return -1;
    if (get_number(root, "repetition_penalty", 0.0, INFINITY, true, &q->repetition_penalty,
                   &r->given.repetition_penalty, err))
        return -1;
    if (get_int(root, "seed", INT64_MIN, INT64_MAX, &x, &given, err)) return -1;
    if (given) {
        q->seed = (uint64_t)x;
        q->has_seed = true;
    }
    if (get_bool(root, "ignore_eos", &q->ignore_eos, err)) return -1;
    if (get_int(root, "min_tokens", 0, INT32_MAX, &x, &given, err)) return -1;
    if (given && x > 0) {
        openai_error_set(err, 400, "min_tokens", "min_tokens is not supported yet");
        return -1;
    }
    b = false;
    if (get_bool(root, "include_stop_str_in_output", &b, err)) return -1;
    if (b) {
        openai_error_set(err, 400, "include_stop_str_in_output", "include_stop_str_in_output is not supported yet");
        return -1;
    }
    if ((rf = field(root, "response_format"))) {
        json_t *t = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
        if (!json_is_string(t) || strcmp(json_string_value(t), "text") != 0) {
            openai_error_set(err, 400, "response_format", "only response_format {\"type\": \"text\"} is supported "
                             "(no structured output)");
            return -1;
        }
    }
    if (get_string(root, "cache_salt", &q->cache_salt, &q->cache_salt_len, err)) return -1;
    if (q->cache_salt && q->cache_salt_len == 0) {
        openai_error_set(err, 400, "cache_salt", "Parameter 'cache_salt' must be a non-empty string if provided.");
        return -1;
    }
    {
        const char *user = NULL;
        if (get_string(root, "user", &user, NULL, err)) return -1;
    }
    if (parse_stop(root, r, err) || parse_logit_bias(root, lim, r, err) || parse_logprobs(root, r, err)) return -1;

    if (get_bool(root, "stream", &r->stream, err)) return -1;
    if ((so = field(root, "stream_options"))) {
        if (!json_is_object(so)) {
            openai_error_set(err, 400, "stream_options", "'stream_options' must be an object");
            return -1;
        }
        if (!r->stream) {
            openai_error_set(err, 400, "stream_options", "Stream options can only be defined when `stream=True`.");
            return -1;
        }
        if (get_bool(so, "include_usage", &r->include_usage, err) ||
            get_bool(so, "continuous_usage_stats", &r->continuous_usage, err))
            return -1;
    }
    return 0;
}

/* ---- entry points ---- */

void openai_request_free(openai_request_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_messages; i++) {
        free(r->message_text[i]);
        free(r->message_tool_calls[i]);
    }
    free(r->message_text);
    free(r->message_tool_calls);
    free(r->messages);
    free(r->template_kwargs_json);
    free(r->tools_json);
    free(r->prompt_tokens);
    free(r->stop);
    free(r->stop_token_ids);
    free(r->logit_bias);
    json_decref(r->root);
    memset(r, 0, sizeof(*r));
}

status_t openai_request_parse(openai_kind_t kind, const char *body, size_t len, const openai_limits_t *lim,
                              openai_request_t *r, openai_error_t *err)
{
    json_error_t jerr;
    json_t *root;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    memset(err, 0, sizeof(*err));
    r->kind = kind;
    r->add_special_tokens = -1;
    r->top_logprobs = -1;
    cllm_request_init(&r->req);
    root = json_loadb(body ? body : "", len, 0, &jerr);
    if (!root) {
        /* jansson ends its text with "near '<the token it read>'": that may be prompt text, which
         * an error must not echo (issue 7), so only the position is kept */
        char *near = strstr(jerr.text, " near ");
        if (near) *near = '\0';
        openai_error_set(err, 400, NULL, "the request body is not valid JSON: %s (line %d, column %d)", jerr.text,
                         jerr.line, jerr.column);
        return CLLM_ERR_INVALID_ARG;
    }
    r->root = root;
    if (!json_is_object(root)) {
        openai_error_set(err, 400, NULL, "the request body must be a JSON object");
        goto fail;
    }
    if (parse_model(root, lim, r, err)) goto fail;

    switch (kind) {
    case OPENAI_CHAT:
        rc = parse_messages(root, r, err) || parse_template_options(root, r, err) || parse_tools(root, r, err) ||
             parse_generation(root, lim, r, err);
        break;
    case OPENAI_COMPLETION:
        rc = parse_prompt(root, lim, r, err) || get_bool(root, "echo", &r->echo, err) ||
             parse_generation(root, lim, r, err);
        if (!rc && field(root, "add_special_tokens")) {
            bool b = true;
            rc = get_bool(root, "add_special_tokens", &b, err);
            r->add_special_tokens = b;
        }
        if (!rc && field(root, "suffix")) {
            openai_error_set(err, 400, "suffix", "suffix is not currently supported");
            rc = -1;
        }
        break;
    case OPENAI_TOKENIZE:
        if (field(root, "messages")) {
            rc = parse_messages(root, r, err) || parse_template_options(root, r, err) || parse_tools(root, r, err);
        } else {
            rc = parse_prompt(root, lim, r, err);
            if (!rc && !r->prompt_text) {
                openai_error_set(err, 400, "prompt", "'prompt' must be a string");
                rc = -1;
            }
            if (!rc && field(root, "add_special_tokens")) {
                bool b = true;
                rc = get_bool(root, "add_special_tokens", &b, err);
                r->add_special_tokens = b;
            }
        }
        if (!rc) rc = get_bool(root, "return_token_strs", &r->return_token_strs, err);
        break;
    case OPENAI_DETOKENIZE: {
        json_t *t = field(root, "tokens");
        if (!t || !json_is_array(t)) {
            openai_error_set(err, 400, "tokens", "'tokens' must be a list of token ids");
            rc = -1;
        } else {
            rc = parse_token_list(t, "tokens", lim->n_vocab, &r->prompt_tokens, &r->n_prompt_tokens, err);
        }
        break;
    }
    default:
        openai_error_set(err, 500, NULL, "unknown request kind");
        rc = -1;
    }
    if (rc) goto fail;
    return CLLM_OK;

fail:
    openai_request_free(r);
    return CLLM_ERR_INVALID_ARG;
}

void openai_request_apply_defaults(openai_request_t *r, const model_gen_defaults_t *d)
{
    cllm_request_t *q = &r->req;
    if (!d) return;
    if (d->has_temperature && !r->given.temperature) q->temperature = d->temperature;
    if (d->has_top_p && !r->given.top_p) q->top_p = d->top_p;
    if (d->has_top_k && !r->given.top_k) q->top_k = d->top_k <= 0 ? -1 : d->top_k;
    if (d->has_min_p && !r->given.min_p) q->min_p = d->min_p;
    if (d->has_repetition_penalty && !r->given.repetition_penalty) q->repetition_penalty = d->repetition_penalty;
}

/* ---- chat prompt ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The last occurrence of needle (nlen bytes) in hay (hlen bytes), or NULL. */
static const char *find_last(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 0 || nlen > hlen) return NULL;
    for (size_t i = hlen - nlen + 1; i-- > 0;)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0) return hay + i;
    return NULL;
}

status_t openai_chat_render(const chat_template_t *t, const openai_request_t *r, const char *bos, const char *eos,
                            char **out, size_t *out_len, openai_error_t *err)
{
    chat_template_vars_t vars;
    char *text = NULL;
    size_t len = 0;
    status_t st;

    *out = NULL;
    *out_len = 0;
    if (!t) {
        openai_error_set(err, 400, "messages", "this model has no chat template, so chat requests cannot be served: "
                         "start the server with --chat-template NAME|FILE, or use /v1/completions");
        return CLLM_ERR_INVALID_ARG;
    }
    memset(&vars, 0, sizeof(vars));
    vars.bos_token = bos;
    vars.eos_token = eos;
    vars.add_generation_prompt = r->add_generation_prompt && !r->continue_final_message;
    vars.tools_json = r->tools_json;
    vars.extra_json = r->template_kwargs_json;
    st = chat_template_render(t, r->messages, r->n_messages, &vars, &text, &len);
    if (st != CLLM_OK) {
        openai_error_set(err, st == CLLM_ERR_NOMEM ? 500 : 400, "messages",
                         "the chat template failed on these messages: %s", cllm_error_message());
        return CLLM_ERR_INVALID_ARG;
    }
    if (r->continue_final_message && r->n_messages > 0) {
        /* cut after the final message's (whitespace-trimmed) content so the reply continues it */
        const char *c = r->messages[r->n_messages - 1].content;
        size_t clen = c ? strlen(c) : 0;
        while (clen > 0 && is_space(c[0])) {
            c++;
            clen--;
        }
        while (clen > 0 && is_space(c[clen - 1])) clen--;
        if (clen > 0) {
            const char *at = find_last(text, len, c, clen);
            if (!at) {
                free(text);
                openai_error_set(err, 400, "continue_final_message", "continue_final_message: the final message's "
                                 "content does not appear in the rendered chat template");
                return CLLM_ERR_INVALID_ARG;
            }
            len = (size_t)(at - text) + clen;
            text[len] = '\0';
        }
    }
    *out = text;
    *out_len = len;
    return CLLM_OK;
}

bool openai_chat_add_special(const openai_request_t *r, const char *rendered, const char *bos)
{
    if (r->add_special_tokens >= 0) return r->add_special_tokens != 0;
    if (bos && *bos && rendered && strncmp(rendered, bos, strlen(bos)) == 0) return false;
    return true;
}
