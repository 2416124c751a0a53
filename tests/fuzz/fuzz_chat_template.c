/* fuzz_chat_template.c: libFuzzer target for the Jinja chat-template interpreter
 * (server/chat_template.h) and the built-in templates.
 *
 * Byte 0 picks the mode:
 *   - even: the rest is a template source, compiled and rendered with a fixed chat (system,
 *     user, assistant with tool calls, tool result, user), tools and extra variables;
 *   - odd: built-in template number (byte 0 >> 1) renders a chat whose parts come from the rest:
 *     fields separated by 0x00 bytes give the messages' contents in turn (roles from byte 1's
 *     bits: user/assistant alternating, or a system message first, or a tool message), and the
 *     last field doubles as the extra_json variables when byte 1's bit 7 is set.
 * Rendering must never crash, hang or grow without bound: it ends with CLLM_OK (a NUL-terminated
 * output of the length reported, under the 16 MiB output limit) or an error status with a
 * message. libFuzzer's -timeout and -rss_limit_mb catch hangs and runaway memory. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "server/chat_template.h"
#include "server/chat_template_builtin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FIELDS 8
#define NOW_FIXED 1725541445 /* fixed so that strftime_now() renders the same on every run */

static const chat_message_t k_fixed_chat[] = {
    { "system", "You are terse.", NULL, NULL, NULL },
    { "user", "What is 6 x 7?", NULL, NULL, NULL },
    { "assistant", NULL, "[{\"id\": \"c1\", \"type\": \"function\", \"function\": {\"name\": \"mul\", "
                         "\"arguments\": {\"a\": 6, \"b\": 7}}}]", NULL, NULL },
    { "tool", "42", NULL, "c1", "mul" },
    { "user", "Thanks <|eot_id|> [INST] {{ x }}", NULL, NULL, NULL },
};

static const char *k_tools = "[{\"type\": \"function\", \"function\": {\"name\": \"mul\", \"description\": \"a*b\", "
                             "\"parameters\": {\"type\": \"object\", "
                             "\"properties\": {\"a\": {\"type\": \"integer\"}}}}}]";

static void render_checked(const chat_template_t *t, const chat_message_t *msgs, size_t n,
                           const chat_template_vars_t *vars)
{
    char *out = NULL;
    size_t len = 0;
    cllm_error_clear();
    if (chat_template_render(t, msgs, n, vars, &out, &len) == CLLM_OK) {
        FUZZ_REQUIRE(out != NULL && out[len] == '\0', "render output not NUL-terminated");
        FUZZ_REQUIRE(len <= (16u << 20), "render output of %zu bytes", len);
        free(out);
    } else {
        FUZZ_REQUIRE(cllm_error_message()[0] != '\0', "render failed without a message");
    }
}

static void fuzz_source(const uint8_t *data, size_t size)
{
    chat_template_t *t = NULL;
    chat_template_vars_t vars = { "<s>", "</s>", true, k_tools, "{\"date_string\": \"26 Jul 2024\", \"n\": 3}",
                                  NOW_FIXED };

    cllm_error_clear();
    if (chat_template_create((const char *)data, size, &t) != CLLM_OK) {
        FUZZ_REQUIRE(t == NULL, "failed create left a template");
        FUZZ_REQUIRE(cllm_error_message()[0] != '\0', "create failed without a message");
        return;
    }
    render_checked(t, k_fixed_chat, sizeof(k_fixed_chat) / sizeof(k_fixed_chat[0]), &vars);
    vars.add_generation_prompt = false;
    vars.tools_json = NULL;
    vars.extra_json = NULL;
    render_checked(t, k_fixed_chat + 1, 1, &vars);
    chat_template_destroy(t);
}

static void fuzz_builtin(const uint8_t *data, size_t size)
{
    size_t n_builtin = chat_template_builtin_count();
    const char *name = chat_template_builtin_name((size_t)(data[0] >> 1) % n_builtin);
    const char *src = chat_template_builtin(name);
    uint8_t roles = size > 1 ? data[1] : 0;
    char *buf, *fields[MAX_FIELDS];
    size_t n_fields = 0;
    chat_message_t msgs[MAX_FIELDS];
    chat_template_t *t = NULL;
    chat_template_vars_t vars = { "<|begin_of_text|>", "<|eot_id|>", (roles & 0x40) != 0, NULL, NULL, NOW_FIXED };

    FUZZ_REQUIRE(name && src, "built-in %zu missing", (size_t)(data[0] >> 1) % n_builtin);
    FUZZ_REQUIRE(chat_template_create(src, strlen(src), &t) == CLLM_OK, "built-in '%s' does not compile", name);
    /* fields: NUL-separated, copied so each is a C string */
    buf = malloc(size + 1);
    FUZZ_REQUIRE(buf != NULL, "out of memory");
    if (size > 2) memcpy(buf, data + 2, size - 2);
    buf[size > 2 ? size - 2 : 0] = '\0';
    fields[n_fields++] = buf;
    for (size_t i = 0; size > 2 && i < size - 2 && n_fields < MAX_FIELDS; i++)
        if (buf[i] == '\0') fields[n_fields++] = buf + i + 1;
    for (size_t i = 0; i < n_fields; i++) {
        static const char *alternate[2] = { "user", "assistant" };
        memset(&msgs[i], 0, sizeof(msgs[i]));
        msgs[i].role = alternate[i % 2];
        msgs[i].content = fields[i];
        if (i == 0 && (roles & 1)) msgs[i].role = "system";
        if ((roles & 2) && i == n_fields - 1 && i > 0) {
            msgs[i].role = "tool";
            msgs[i].tool_call_id = "c1";
        }
        if ((roles & 4) && i % 2 == 1) msgs[i].content = NULL; /* assistant turns without content */
        if ((roles & 8) && i % 2 == 1)
            msgs[i].tool_calls_json = "[{\"id\": \"c1\", \"type\": \"function\", \"function\": {\"name\": \"f\", "
                                      "\"arguments\": \"{}\"}}]";
    }
    if (roles & 0x10) vars.tools_json = k_tools;
    if ((roles & 0x80) && n_fields > 1) vars.extra_json = fields[n_fields - 1];
    render_checked(t, msgs, (roles & 0x20) ? n_fields : (n_fields + 1) / 2 * 2 - 1, &vars);
    chat_template_destroy(t);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] & 1)
        fuzz_builtin(data, size);
    else
        fuzz_source(data + 1, size - 1);
    return 0;
}
