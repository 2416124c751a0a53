/* test_chat_template.c: the Jinja chat-template interpreter and the built-in templates.
 *
 * Checks: each built-in template renders system + user + assistant + user (generation prompt
 * on) to the exact prompt its model family expects (written out by hand below); the tool
 * parts of Llama 3.1 and Qwen2.5 render tools, tool calls and tool results; Llama 2 (and the
 * other alternation-checking templates) fail through raise_exception with its message; a table
 * of expressions, filters, tests, loops, namespace, slicing and macros, and a table of
 * whitespace-control cases (trim_blocks + lstrip_blocks, as Hugging Face renders), whose
 * expected outputs are what Python's Jinja2 3.1 renders with HF's settings; syntax and runtime
 * errors carry the template line; hostile templates (unterminated tags, deep nesting, huge or
 * nested loops, runaway recursion, exponential strings) fail cleanly and quickly; thousands of
 * random and mutated templates never crash; concurrent renders of one template agree. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/chat_template.h"
#include "server/chat_template_builtin.h"
#include "check.h"


#define NOW_FIXED 1725541445 /* 2024-09-05 13:04:05 UTC */

/* The small context of the expression tables: two messages and one extra variable. */
static const chat_message_t k_small_chat[] = {
    { "user", "hi", NULL, NULL, NULL },
    { "assistant", "yo", NULL, NULL, NULL },
};

static chat_template_vars_t small_vars(void)
{
    chat_template_vars_t v = { "<s>", "</s>", true, NULL, "{\"extra_flag\": 7}", NOW_FIXED };
    return v;
}

/* Parses and renders src; *out is NULL unless the result is CLLM_OK. */
static status_t render(const char *src, const chat_message_t *msgs, size_t n, const chat_template_vars_t *vars,
                       char **out)
{
    chat_template_t *t = NULL;
    size_t len = 0;
    status_t st = chat_template_create(src, strlen(src), &t);

    *out = NULL;
    if (st != CLLM_OK) return st;
    st = chat_template_render(t, msgs, n, vars, out, &len);
    if (st == CLLM_OK && len != strlen(*out)) {
        fprintf(stderr, "FAIL: reported length %zu, string length %zu\n", len, strlen(*out));
        check_failures++;
    }
    chat_template_destroy(t);
    return st;
}

static void expect_output(int line, const char *src, const chat_message_t *msgs, size_t n,
                          const chat_template_vars_t *vars, const char *want)
{
    char *out = NULL;
    status_t st = render(src, msgs, n, vars, &out);

    if (st != CLLM_OK) {
        fprintf(stderr, "FAIL line %d: %.80s\n  error: %s\n", line, src, cllm_error_message());
        check_failures++;
    } else if (strcmp(out, want) != 0) {
        fprintf(stderr, "FAIL line %d: %.80s\n  want: \"%s\"\n  got:  \"%s\"\n", line, src, want, out);
        check_failures++;
    }
    free(out);
}

/* Expects status want_st and, when substr is given, that text in the error message. */
static void expect_error(int line, const char *src, status_t want_st, const char *substr)
{
    chat_template_vars_t v = small_vars();
    char *out = NULL;
    status_t st = render(src, k_small_chat, 2, &v, &out);

    if (st == CLLM_OK) {
        fprintf(stderr, "FAIL line %d: %.80s rendered \"%.80s\", want an error\n", line, src, out);
        check_failures++;
    } else if ((want_st != CLLM_OK && st != want_st) || (substr && !strstr(cllm_error_message(), substr))) {
        fprintf(stderr, "FAIL line %d: %.80s\n  got %s: %s\n  want %s containing \"%s\"\n", line, src,
                cllm_status_str(st), cllm_error_message(), cllm_status_str(want_st), substr ? substr : "");
        check_failures++;
    }
    free(out);
}

/* ---- built-in templates ---- */

static const chat_message_t k_chat[] = {
    { "system", "You are a bot.", NULL, NULL, NULL },
    { "user", "Hello", NULL, NULL, NULL },
    { "assistant", " Hi there ", NULL, NULL, NULL },
    { "user", "How are you?", NULL, NULL, NULL },
};

static void test_builtin(const char *name, const char *bos, const char *eos, size_t first, const char *want)
{
    const char *src = chat_template_builtin(name);
    chat_template_vars_t v = { bos, eos, true, NULL, NULL, NOW_FIXED };

    CHECK(src != NULL, "no built-in template '%s'", name);
    if (!src) return;
    expect_output(__LINE__, src, k_chat + first, 4 - first, &v, want);
}

static void test_builtins(void)
{
    const char *llama3_turns =
        "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n";
    const char *chatml_turns =
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n Hi there <|im_end|>\n"
        "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n";
    char want[1024];

    snprintf(want, sizeof(want), "%s%s",
             "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a bot.<|eot_id|>", llama3_turns);
    test_builtin("llama3", "<|begin_of_text|>", "<|eot_id|>", 0, want);
    snprintf(want, sizeof(want), "%s%s",
             "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
             "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a bot.<|eot_id|>",
             llama3_turns);
    test_builtin("llama3.1", "<|begin_of_text|>", "<|eot_id|>", 0, want);
    test_builtin("llama3.3", "<|begin_of_text|>", "<|eot_id|>", 0, want);
    /* 3.2 takes the date from strftime_now("%d %b %Y"): NOW_FIXED in UTC */
    snprintf(want, sizeof(want), "%s%s",
             "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
             "Cutting Knowledge Date: December 2023\nToday Date: 05 Sep 2024\n\nYou are a bot.<|eot_id|>",
             llama3_turns);
    test_builtin("llama3.2", "<|begin_of_text|>", "<|eot_id|>", 0, want);
    test_builtin("llama2", "<s>", "</s>", 0,
                 "<s>[INST] <<SYS>>\nYou are a bot.\n<</SYS>>\n\nHello [/INST] Hi there </s>"
                 "<s>[INST] How are you? [/INST]");
    snprintf(want, sizeof(want), "<|im_start|>system\nYou are a bot.<|im_end|>\n%s", chatml_turns);
    test_builtin("chatml", "", "", 0, want);
    test_builtin("qwen2", "", "<|im_end|>", 0, want);
    test_builtin("qwen2.5", "", "<|im_end|>", 0, want);
    snprintf(want, sizeof(want), "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n%s", chatml_turns);
    test_builtin("qwen2", "", "<|im_end|>", 1, want);
    snprintf(want, sizeof(want),
             "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n%s",
             chatml_turns);
    test_builtin("qwen2.5", "", "<|im_end|>", 1, want);
    test_builtin("mistral", "<s>", "</s>", 0,
                 "<s>[INST] Hello[/INST] Hi there</s>[INST] You are a bot.\n\nHow are you?[/INST]");
    test_builtin("mistral-v1", "<s>", "</s>", 1, "<s>[INST] Hello [/INST] Hi there </s>[INST] How are you? [/INST]");
    test_builtin("mistral-v7", "<s>", "</s>", 0,
                 "<s>[SYSTEM_PROMPT] You are a bot.[/SYSTEM_PROMPT][INST] Hello[/INST]  Hi there </s>"
                 "[INST] How are you?[/INST]");
    test_builtin("gemma", "<bos>", "<eos>", 1,
                 "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n"
                 "<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n");
    test_builtin("gemma3", "<bos>", "<eos>", 0,
                 "<bos><start_of_turn>user\nYou are a bot.\n\nHello<end_of_turn>\n<start_of_turn>model\nHi there"
                 "<end_of_turn>\n<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n");
    test_builtin("phi3", "<s>", "<|endoftext|>", 0,
                 "<|system|>\nYou are a bot.<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\n Hi there <|end|>\n"
                 "<|user|>\nHow are you?<|end|>\n<|assistant|>\n");
    test_builtin("deepseek-r1", "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                 "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", 0,
                 "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>You are a bot."
                 "<\xef\xbd\x9cUser\xef\xbd\x9c>Hello<\xef\xbd\x9c" "Assistant\xef\xbd\x9c> Hi there "
                 "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
                 "<\xef\xbd\x9cUser\xef\xbd\x9c>How are you?<\xef\xbd\x9c" "Assistant\xef\xbd\x9c><think>\n");

    /* every name resolves, parses and renders a plain user turn */
    CHECK(chat_template_builtin("no-such-template") == NULL, "unknown name resolved");
    CHECK(chat_template_builtin_name(chat_template_builtin_count()) == NULL, "name past the end");
    for (size_t i = 0; i < chat_template_builtin_count(); i++) {
        const char *name = chat_template_builtin_name(i);
        chat_template_vars_t v = { "<s>", "</s>", true, NULL, NULL, NOW_FIXED };
        char *out = NULL;
        status_t st = render(chat_template_builtin(name), k_chat + 1, 1, &v, &out);
        CHECK(st == CLLM_OK && strstr(out, "Hello"), "built-in %s: %s", name, cllm_error_message());
        free(out);
    }
}

/* Role alternation and unsupported roles fail with the template's own message. */
static void test_raise_exception(void)
{
    static const chat_message_t two_users[] = { { "user", "a", NULL, NULL, NULL }, { "user", "b", NULL, NULL, NULL } };
    const char *names[] = { "llama2", "mistral-v1", "gemma", "gemma3" };
    chat_template_vars_t v = { "<s>", "</s>", true, NULL, NULL, NOW_FIXED };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *out = NULL;
        status_t st = render(chat_template_builtin(names[i]), two_users, 2, &v, &out);
        CHECK(st == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "Conversation roles must alternate"),
              "%s: got %s: %s", names[i], cllm_status_str(st), cllm_error_message());
        CHECK(out == NULL, "%s: output on error", names[i]);
        free(out);
    }
    {
        char *out = NULL;
        status_t st = render(chat_template_builtin("gemma"), k_chat, 4, &v, &out);
        CHECK(st == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "System role not supported"),
              "gemma system: %s", cllm_error_message());
        free(out);
    }
    expect_error(__LINE__, "x\n{{ raise_exception('boom ' ~ 42) }}", CLLM_ERR_INVALID_ARG,
                 "line 2: raise_exception: boom 42");
}

/* Tools, tool calls and tool results of the tool-capable templates. */
static void test_tools(void)
{
    static const chat_message_t msgs[] = {
        { "system", "SYS", NULL, NULL, NULL },
        { "user", "Weather in Paris?", NULL, NULL, NULL },
        { "assistant", NULL,
          "[{\"id\": \"call00001\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
          "\"arguments\": {\"city\": \"Paris\"}}}]",
          NULL, NULL },
        { "tool", "{\"temp\": 20}", NULL, "call00001", NULL },
    };
    chat_template_vars_t v = { "<s>", "</s>", true,
                               "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": "
                               "\"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": "
                               "{\"type\": \"string\"}}, \"required\": [\"city\"]}}}]",
                               NULL, NOW_FIXED };

    expect_output(__LINE__, chat_template_builtin("llama3.1"), msgs, 4, &v,
                  "<s><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n"
                  "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nSYS<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a "
                  "JSON for a function call with its proper arguments that best answers the given prompt.\n\n"
                  "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its "
                  "value}.Do not use variables.\n\n"
                  "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n"
                  "        \"description\": \"Get the weather\",\n        \"parameters\": {\n"
                  "            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n"
                  "                    \"type\": \"string\"\n                }\n            },\n"
                  "            \"required\": [\n                \"city\"\n            ]\n        }\n    }\n}\n\n"
                  "Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                  "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>"
                  "<|start_header_id|>ipython<|end_header_id|>\n\n\"{\\\"temp\\\": 20}\"<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
    expect_output(__LINE__, chat_template_builtin("qwen2.5"), msgs, 4, &v,
                  "<|im_start|>system\nSYS\n\n# Tools\n\nYou may call one or more functions to assist with the user "
                  "query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
                  "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the "
                  "weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": "
                  "\"string\"}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json "
                  "object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
                  "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
                  "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n"
                  "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
                  "<|im_start|>user\n<tool_response>\n{\"temp\": 20}\n</tool_response><|im_end|>\n"
                  "<|im_start|>assistant\n");
    expect_output(__LINE__, chat_template_builtin("mistral"), msgs, 4, &v,
                  "<s>[AVAILABLE_TOOLS] [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
                  "\"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": "
                  "{\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}][/AVAILABLE_TOOLS]"
                  "[INST] Weather in Paris?[/INST][TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": "
                  "{\"city\": \"Paris\"}, \"id\": \"call00001\"}]</s>[TOOL_RESULTS] {\"content\": {\"temp\": 20}, "
                  "\"call_id\": \"call00001\"}[/TOOL_RESULTS]");
    v.tools_json = "[1, 2"; /* malformed JSON is the caller's error */
    {
        char *out = NULL;
        status_t st = render(chat_template_builtin("qwen2.5"), msgs, 2, &v, &out);
        CHECK(st == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "tools_json"), "bad tools JSON: %s",
              cllm_error_message());
        free(out);
    }
}

/* ---- the interpreter ---- */

typedef struct {
    const char *src, *want;
} render_case_t;

/* Expected outputs are Jinja2 3.1's with trim_blocks, lstrip_blocks and HF's tojson. */
static const render_case_t k_expr_cases[] = {
    { "{{ 'a' }}{{ \"b\" }}{{ 1 }}{{ -2 }}{{ 1.5 }}{{ true }}{{ false }}{{ none }}{{ [1, 'a', none] }}{{ {'k': 'v'} }}",
      "ab1-21.5TrueFalseNone[1, 'a', None]{'k': 'v'}" },
    { "{{ 1.0 }}|{{ 1e20 }}|{{ 1e-5 }}|{{ 0.1 + 0.2 }}|{{ 1e16 }}|{{ 123456789.123 }}|{{ 0.0001 }}"
      "|{{ -0.0 }}|{{ 1/3 }}",
      "1.0|1e+20|1e-05|0.30000000000000004|1e+16|123456789.123|0.0001|-0.0|0.3333333333333333" },
    { "{{ (1, 2) }}{{ (1,) }}{{ () }}{{ {'a': \"b'c\"} }}",
      "(1, 2)(1,)(){'a': \"b'c\"}" },
    { "{{ 'a\\nb\\x41\\u00e9\\t|' }}{{ \"it's\" }}{{ 'x' 'y' }}",
      "a\nbAé\t|it'sxy" },
    { "{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 2 ** 10 }}"
      " {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }}",
      "7 3 -4 2 3.5 2.0 1024 64 4" },
    { "{{ 10.5 // 2 }} {{ -10.5 % 3 }} {{ 2 ** -1 }} {{ 2.0 ** 2 }} {{ 1 + 1.5 }} {{ true + 1 }}",
      "5.0 1.5 0.5 4.0 2.5 2" },
    { "{{ 'ab' * 3 }}{{ [0] * 2 }}{{ 'a' ~ 1 ~ none ~ undefined_var }}{{ [1] + [2] }}{{ 'a' + 'b' }}",
      "ababab[0, 0]a1None[1, 2]ab" },
    { "{{ 'a' ~ 2 * 3 }}|{{ 1 ~ 2 + 'x' }}|{{ not 1 == 2 }}",
      "a6|12x|True" },
    { "{{ 1 == 1.0 }}{{ [1, 2] == [1, 2] }}{{ {'a': 1} == {'a': 1} }}{{ 'a' < 'b' }}{{ 1 < 2 < 3 }}"
      "{{ 3 > 2 > 2 }}{{ 2 != 2 }}",
      "TrueTrueTrueTrueTrueFalseFalse" },
    { "{{ x == none }}{{ x == x }}{{ none == false }}{{ 0 == false }}{{ 1 == true }}",
      "FalseTrueFalseTrueTrue" },
    { "{{ true and 'x' }}|{{ false or 'y' }}|{{ 0 or none }}|{{ '' and 1 }}|{{ 1 and 2 or 3 }}"
      "|{{ not none }}|{{ not [] }}",
      "x|y|None||2|True|True" },
    { "{{ 'x' in 'axb' }}{{ 1 in [1, 2] }}{{ 'a' in {'a': 1} }}{{ 'z' not in 'abc' }}{{ 3 in [] }}",
      "TrueTrueTrueTrueFalse" },
    { "{{ 'a' if true else 'b' }}{{ 'a' if false else 'b' if true else 'c' }}[{{ 1 if false }}]",
      "ab[]" },
    { "{{ messages[0].role }}{{ messages[0]['content'] }}{{ messages[-1].content }}|{{ messages[5] }}"
      "|{{ messages[0].missing }}",
      "userhiyo||" },
    { "{{ 'abc'[1:] }}{{ 'héllo'|length }}{{ 'héllo'[1] }}{{ [1, 2, 3][-1] }}{{ [1, 2, 3][::-1] }}"
      "{{ 'héllo'[::-1] }}{{ 'héllo'[1:3] }}",
      "bc5é3[3, 2, 1]olléhél" },
    { "{{ [1, 2][1:5] }}{{ 'hello'[::2] }}{{ 'hello'[-3:] }}{{ messages[1:]|length }}"
      "{{ [1, 2, 3, 4][1:-1] }}{{ 'abc'[:0] }}",
      "[2]hlollo1[2, 3]" },
    { "{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 'a' is string }}{{ 1 is number }}"
      "{{ true is number }}{{ 1.5 is integer }}{{ 1 is integer }}{{ 1.0 is float }}",
      "FalseTrueTrueTrueTrueTrueFalseTrueTrue" },
    { "{{ 'a' is iterable }}{{ {} is mapping }}{{ [1] is mapping }}{{ 'a' is sequence }}{{ x is iterable }}"
      "{{ true is boolean }}{{ none is boolean }}",
      "TrueTrueFalseTrueTrueTrueFalse" },
    { "{{ 5 is divisibleby 5 }}{{ 3 is odd }}{{ 4 is even }}{{ 'ab' is lower }}{{ 'AB' is upper }}"
      "{{ 1 is eq 1 }}{{ 1 is ne 1 }}{{ 'a' is in 'abc' }}{{ 2 is gt 1 }}",
      "TrueTrueTrueTrueTrueTrueFalseTrueTrue" },
    { "{{ range is callable }}{{ 'a' is callable }}{{ x is not defined }}{{ messages is not none }}"
      "{{ 1 is sameas 1 }}{{ 1 is sameas true }}",
      "TrueFalseTrueTrueTrueFalse" },
    { "{{ ' a b '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'abc'|upper }}|{{ 'ABC'|lower }}"
      "|{{ 'hELLO wORLD'|capitalize }}|{{ \"they're bob's x-y\"|title }}",
      "a b|a|ABC|abc|Hello world|They're Bob's X-Y" },
    { "{{ [1, 2, 3]|length }}{{ {'a': 1}|length }}{{ 'abc'|count }}{{ x|length }}",
      "3130" },
    { "{{ [1, 2, 3]|join }}|{{ ['a', 1]|join('-') }}"
      "|{{ [{'n': 'a'}, {'n': 'b'}]|join(',', attribute='n') }}|{{ x|join(',') }}",
      "123|a-1|a,b|" },
    { "{{ x|default('d') }}|{{ ''|default('d') }}|{{ ''|default('d', true) }}|{{ none|default('d') }}"
      "|{{ x|d('e') }}|{{ 0|default(5, boolean=true) }}",
      "d||d|None|e|5" },
    { "{{ 3.7|int }}{{ '42'|int }}{{ 'x'|int }}{{ ' 12 '|int }}{{ '3.9'|int }}{{ 'x'|int(7) }}"
      "|{{ '3.5'|float }}{{ 3|float }}{{ 'y'|float }}",
      "34201237|3.53.00.0" },
    { "{{ 42|string + 'a' }}{{ none|string }}{{ [1, 'x']|string }}{{ 1.0|string }}",
      "42aNone[1, 'x']1.0" },
    { "{{ [3, 1, 2]|sort }}{{ ['b', 'A', 'a']|sort }}{{ [3, 1, 2]|sort(reverse=true) }}"
      "{{ [{'n': 2}, {'n': 1}]|sort(attribute='n') }}",
      "[1, 2, 3]['A', 'a', 'b'][3, 2, 1][{'n': 1}, {'n': 2}]" },
    { "{{ [1, 2, 3]|reverse|list }}{{ 'abc'|reverse }}{{ [1, 2, 2, 'A', 'a']|unique|list }}"
      "{{ [1, 5, 3]|max }}{{ [4, 2, 8]|min }}{{ [1, 2]|sum }}{{ [1, 2.5]|sum }}",
      "[3, 2, 1]cba[1, 2, 'A']5233.5" },
    { "{{ {'a': 1}|items|list }}{{ {'b': 1, 'a': 2}|dictsort }}{{ {'a': 1, 'b': 2}.keys()|list }}"
      "{{ {'a': 1}.values()|list }}",
      "[('a', 1)][('a', 2), ('b', 1)]['a', 'b'][1]" },
    { "{{ 'ab'|list }}{{ {'a': 1}|list }}{{ 'abc'|first }}{{ 'abc'|last }}{{ [7, 8]|first }}"
      "{{ [7, 8]|last }}{{ []|first }}",
      "['a', 'b']['a']ac78" },
    { "{{ 'x-x'|replace('x', 'y') }}{{ 1|replace('1', '2') }}{{ 'aaa'|replace('a', 'b', 2) }}{{ -3|abs }}"
      "{{ 2.5|round }}{{ 3.14159|round(2) }}{{ 2.7|round(method='floor') }}",
      "y-y2bba32.03.142.0" },
    { "{{ [1, none, 0, 2]|select|list }}{{ [1, 2, 3, 4]|select('odd')|list }}"
      "{{ [1, 2, 3]|reject('even')|list }}{{ [1, 2, 3]|select('gt', 1)|list }}",
      "[1, 2][1, 3][1, 3][2, 3]" },
    { "{{ messages|selectattr('role', 'equalto', 'user')|list }}"
      "{{ messages|rejectattr('role', 'equalto', 'user')|map(attribute='content')|first }}",
      "[{'role': 'user', 'content': 'hi'}]yo" },
    { "{{ [{'a': 1}, {'b': 2}]|selectattr('a')|list }}"
      "{{ [{'a': 1}, {'b': 2}]|rejectattr('a', 'defined')|list }}"
      "{{ messages|map(attribute='role')|join(',') }}{{ ['a', 'b']|map('upper')|list }}",
      "[{'a': 1}][{'b': 2}]user,assistant['A', 'B']" },
    { "{{ {'a': 1, 'b': [1, 'x', 2.5, none, true]}|tojson }}|{{ '<é>\"\\\\'|tojson }}"
      "|{{ 'a\\u0001\\t\\n'|tojson }}|{{ x|default(none)|tojson }}",
      "{\"a\": 1, \"b\": [1, \"x\", 2.5, null, true]}|\"<é>\\\"\\\\\"|\"a\\u0001\\t\\n\"|null" },
    { "{{ {'a': 1, 'b': [1, {}], 'c': []}|tojson(indent=2) }}",
      "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    {}\n  ],\n  \"c\": []\n}" },
    { "{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}{{ {'b': [1, 2]}|tojson(separators=(',', ':')) }}"
      "{{ 1.5|tojson }}{{ 1e16|tojson }}",
      "{\"a\": 2, \"b\": 1}{\"b\":[1,2]}1.51e+16" },
    { "{{ '<a href=\"x\">&\\'</a>'|e }}{{ 'x'|safe }}",
      "&lt;a href=&#34;x&#34;&gt;&amp;&#39;&lt;/a&gt;x" },
    { "{{ '  a  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a  '.lstrip() }}|{{ '  a  '.rstrip() }}"
      "|{{ 'hello world'.title() }}|{{ \"they're\".title() }}|{{ 'aB'.upper() }}{{ 'aB'.lower() }}"
      "{{ 'aB'.capitalize() }}",
      "a|a|a  |  a|Hello World|They'Re|ABabAb" },
    { "{{ ' a b '.split() }}{{ 'a,b,,c'.split(',') }}{{ 'a b c'.split(' ', 1) }}"
      "{{ '  a  b  '.split(None, 1) }}{{ ''.split(',') }}{{ 'a.b.c'.split('.')[-1] }}",
      "['a', 'b']['a', 'b', '', 'c']['a', 'b c']['a', 'b  ']['']c" },
    { "{{ 'abc'.startswith('ab') }}{{ 'abc'.startswith(('x', 'a')) }}{{ 'abc'.endswith('bc') }}"
      "{{ 'abc'.endswith('b') }}",
      "TrueTrueTrueFalse" },
    { "{{ 'abc'.replace('b', 'X') }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'ab'.replace('', '-') }}"
      "|{{ 'abc'.find('c') }}{{ 'abc'.find('z') }}{{ 'aaa'.count('a') }}|{{ ', '.join(['a', 'b']) }}",
      "aXc|bba|-a-b-|2-13|a, b" },
    { "{{ {'x': 1}.get('x') }}{{ {'x': 1}.get('y', 'd') }}{{ {'x': 1}.get('y') }}"
      "{% for k, v in {'x': 1, 'y': 2}.items() %}{{ k }}={{ v }};{% endfor %}",
      "1dNonex=1;y=2;" },
    { "{% if x %}a{% elif messages %}b{% else %}c{% endif %}{% if 0 %}d{% elif false %}e{% else %}f{% endif %}",
      "bf" },
    { "{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
      "{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}{{ m.role }};{% endfor %}",
      "10TrueFalse221user;21FalseTrue210assistant;" },
    { "{% for i in 'ab' %}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle('x', 'y') }}{% endfor %}{{ loop }}",
      "bxay" },
    { "{% for i in range(10) if i is odd %}{{ i }}{{ loop.length }}{% if loop.last %}L{% endif %}{% endfor %}",
      "1535557595L" },
    { "{% for i in [] %}x{% else %}empty{% endfor %}{% for i in range(10) %}{% if i == 3 %}{% break %}"
      "{% endif %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}",
      "empty02" },
    { "{% for a in [1, 2] %}{% for b in [3, 4] %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}"
      "{{ loop.index }}|{% endfor %}",
      "113 214 1|123 224 2|" },
    { "{{ range(5)|list }}{{ range(1, 10, 3)|list }}{{ range(5, 0, -2)|list }}{{ range(0)|list }}"
      "{{ range(3, 1)|list }}",
      "[0, 1, 2, 3, 4][1, 4, 7][5, 3, 1][][]" },
    { "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = 9 %}{{ x }}{% endfor %}{{ x }}",
      "19191" },
    { "{% for i in [1, 2, 3] %}{% if i == 1 %}{% set y = 5 %}{% endif %}[{{ y }}]{% endfor %}",
      "[5][][]" },
    { "{% set ns = namespace(a=1, b='x') %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% endfor %}"
      "{{ ns.a }}{{ ns.b }}{{ ns.c }}",
      "4x" },
    { "{% set ns = namespace() %}{% set ns.items = [] %}{% for m in messages %}"
      "{% set ns.items = ns.items + [m.role] %}{% endfor %}{{ ns.items }}",
      "['user', 'assistant']" },
    { "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 1, 2 %}{{ c }}{% set d %}inner {{ a }}{% endset %}[{{ d }}]",
      "12(1, 2)[inner 1]" },
    { "{% macro m(a, b='B') %}<{{ a }}{{ b }}>{% endmacro %}{{ m(1) }}{{ m(1, b=2) }}{{ m(a=3) }}{{ m('x', 'y') }}",
      "<1B><12><3B><xy>" },
    { "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}",
      "321" },
    { "{{ messages[0].role }}{% set messages = messages[1:] %}{{ messages[0].role }}",
      "userassistant" },
    { "{{ dict(a=1, b=2) }}{{ namespace(a=1).a }}{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M') }}",
      "{'a': 1, 'b': 2}105 Sep 2024 2024-09-05 13:04" },
    { "{% raw %}{{ not rendered }}{% endraw %}|{# comment #}|",
      "{{ not rendered }}||" },
    { "{{ bos_token }}{{ eos_token }}{{ add_generation_prompt }}{{ tools }}{{ extra_flag }}",
      "<s></s>TrueNone7" },
};

static const render_case_t k_ws_cases[] = {
    { "a\n  {# c #}\nb\n{# c #}   x",
      "a\nb\n   x" },
    { "  {% if true %}\n  y\n  {% endif %}\n",
      "  y\n" },
    { "{{ 'a' }}  {% if true %}x{% endif %}",
      "a  x" },
    { "{% if true %}\n\nx{% endif %}\n\n",
      "\nx" },
    { "{%- for m in messages -%}\n  {{ m.role }}\n{%- endfor %}\n",
      "userassistant" },
    { "{% macro f(x) -%}\n [{{ x }}]\n{%- endmacro %}\n{{ f(1) }}{{ f(2) }}\n",
      "[1][2]" },
    { "{{ 'a' }}\n{{ 'b' }}\n",
      "a\nb" },
    { "x {%+ if true %}y{% endif +%}\nz",
      "x y\nz" },
    { "{% if true -%}   \n  a  {%- endif %}",
      "a" },
    { "{%- set y = 3 -%} {{ y }} {%- if y > 2 -%} big {%- endif -%} .",
      "3big." },
    { "line1\n    {% for m in messages %}\n    - {{ m.content }}\n    {% endfor %}\nend",
      "line1\n    - hi\n    - yo\nend" },
    { "\t{%- if true %} t{% endif %}\r\nwin\r\n",
      " twin" },
    { "  {% raw %}a{% endraw %}  \nb",
      "a  \nb" },
    { "{% raw -%}  a  {%- endraw %}|",
      "a|" },
    { "{{- ' x ' -}}  \n  {{- 'y' }}",
      " x y" },
    { "{% for i in [1, 2] %}\n{{ i }}\n{% endfor %}\n",
      "1\n2\n" },
};

static void test_tables(void)
{
    chat_template_vars_t v = small_vars();

    for (size_t i = 0; i < sizeof(k_expr_cases) / sizeof(k_expr_cases[0]); i++)
        expect_output(__LINE__, k_expr_cases[i].src, k_small_chat, 2, &v, k_expr_cases[i].want);
    for (size_t i = 0; i < sizeof(k_ws_cases) / sizeof(k_ws_cases[0]); i++)
        expect_output(__LINE__, k_ws_cases[i].src, k_small_chat, 2, &v, k_ws_cases[i].want);
    /* beyond Hugging Face's environment: {% do %}, {% generation %}, NULL vars and content */
    expect_output(__LINE__, "{% do messages|length %}{% generation %}gen{% endgeneration %}", k_small_chat, 2, &v,
                  "gen");
    {
        static const chat_message_t no_content[] = { { "assistant", NULL, NULL, NULL, "fn" } };
        expect_output(__LINE__, "{{ messages[0].content is none }}{{ messages[0].name }}{{ bos_token }}|",
                      no_content, 1, NULL, "Truefn|");
    }
    {
        /* invalid UTF-8 passes through; stray continuation bytes stay with the character before them */
        static const chat_message_t bad_utf8[] = { { "user", "\x80\x80" "ab\xc3\xa9", NULL, NULL, NULL } };
        expect_output(__LINE__,
                      "{{ messages[0].content|length }}|{{ messages[0].content|reverse }}|{{ messages[0].content[1:] }}",
                      bad_utf8, 1, NULL, "4|\xc3\xa9" "ba\x80\x80|ab\xc3\xa9");
    }
}

static void test_errors(void)
{
    /* syntax errors name the line */
    expect_error(__LINE__, "a\nb\n{% if x %}\n", CLLM_ERR_INVALID_ARG, "line 3");
    expect_error(__LINE__, "{% for x in y %}{% endif %}", CLLM_ERR_INVALID_ARG, "line 1");
    expect_error(__LINE__, "\n\n{{ 1 + }}", CLLM_ERR_INVALID_ARG, "line 3");
    expect_error(__LINE__, "{{ x", CLLM_ERR_INVALID_ARG, "unterminated");
    expect_error(__LINE__, "{% if x", CLLM_ERR_INVALID_ARG, "unterminated");
    expect_error(__LINE__, "\n{# no end", CLLM_ERR_INVALID_ARG, "line 2: unterminated comment");
    expect_error(__LINE__, "{{ 'abc }}", CLLM_ERR_INVALID_ARG, "unterminated string");
    expect_error(__LINE__, "{% raw %}abc", CLLM_ERR_INVALID_ARG, "raw");
    expect_error(__LINE__, "{{ x | nosuchfilter }}", CLLM_ERR_INVALID_ARG, "unknown filter 'nosuchfilter'");
    expect_error(__LINE__, "{{ x is nosuchtest }}", CLLM_ERR_INVALID_ARG, "unknown test");
    expect_error(__LINE__, "{% include 'x' %}", CLLM_ERR_INVALID_ARG, "unknown or unexpected tag 'include'");
    expect_error(__LINE__, "{% endfor %}", CLLM_ERR_INVALID_ARG, "endfor");
    expect_error(__LINE__, "{% break %}", CLLM_ERR_INVALID_ARG, "outside a for-loop");
    expect_error(__LINE__, "{{ 1 $ 2 }}", CLLM_ERR_INVALID_ARG, "unexpected character");
    expect_error(__LINE__, "{{ [1, 2 }}", CLLM_ERR_INVALID_ARG, NULL);
    expect_error(__LINE__, "{% set %}", CLLM_ERR_INVALID_ARG, NULL);
    /* runtime errors name the line */
    expect_error(__LINE__, "\n{{ 1 // 0 }}", CLLM_ERR_INVALID_ARG, "line 2");
    expect_error(__LINE__, "{{ 'a' + 1 }}", CLLM_ERR_INVALID_ARG, "unsupported operand");
    expect_error(__LINE__, "{{ undefined_name.attr }}", CLLM_ERR_INVALID_ARG, "'undefined_name' is undefined");
    expect_error(__LINE__, "{{ messages[0].nope.deeper }}", CLLM_ERR_INVALID_ARG, "undefined");
    expect_error(__LINE__, "{{ nofunc() }}", CLLM_ERR_INVALID_ARG, "'nofunc' is undefined");
    expect_error(__LINE__, "{{ 'a'.nomethod() }}", CLLM_ERR_INVALID_ARG, "no method");
    expect_error(__LINE__, "{{ [1].append(2) }}", CLLM_ERR_INVALID_ARG, "no method");
    expect_error(__LINE__, "{{ x + 1 }}", CLLM_ERR_INVALID_ARG, "undefined");
    expect_error(__LINE__, "{{ 9223372036854775807 + 1 }}", CLLM_ERR_RANGE, "overflow");
    expect_error(__LINE__, "{{ none|tojson }}{{ x|tojson }}", CLLM_ERR_INVALID_ARG, "JSON");
    expect_error(__LINE__, "{% set a, b = [1] %}", CLLM_ERR_INVALID_ARG, "unpack");
    expect_error(__LINE__, "{% set x = 1 %}{% set x.y = 2 %}", CLLM_ERR_INVALID_ARG, "namespace");
    expect_error(__LINE__, "{% for i in 5 %}{% endfor %}", CLLM_ERR_INVALID_ARG, "not iterable");
    expect_error(__LINE__, "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", CLLM_ERR_INVALID_ARG, "takes 1");
    expect_error(__LINE__, "{{ 1 < 'a' }}", CLLM_ERR_INVALID_ARG, "cannot order");

    /* API misuse */
    {
        chat_template_t *t = NULL;
        char *out = NULL;
        size_t len = 0;
        static const chat_message_t no_role[] = { { NULL, "x", NULL, NULL, NULL } };
        CHECK(chat_template_create(NULL, 3, &t) == CLLM_ERR_INVALID_ARG, "NULL source accepted");
        CHECK(chat_template_create("x", 1, NULL) == CLLM_ERR_INVALID_ARG, "NULL out accepted");
        CHECK(chat_template_create("", 0, &t) == CLLM_OK, "empty template: %s", cllm_error_message());
        CHECK(chat_template_render(t, NULL, 0, NULL, &out, &len) == CLLM_OK && out && out[0] == '\0' && len == 0,
              "empty render");
        free(out);
        CHECK(chat_template_render(t, no_role, 1, NULL, &out, &len) == CLLM_ERR_INVALID_ARG, "message without role");
        CHECK(chat_template_render(NULL, NULL, 0, NULL, &out, &len) == CLLM_ERR_INVALID_ARG, "NULL template");
        chat_template_destroy(t);
        chat_template_destroy(NULL);
    }
}

/* Builds "prefix" + rep * n + "suffix" (malloc'd). */
static char *repeat_str(const char *prefix, const char *rep, size_t n, const char *suffix)
{
    size_t lp = strlen(prefix), lr = strlen(rep), ls = strlen(suffix);
    char *s = malloc(lp + lr * n + ls + 1), *p = s;

    if (!s) return NULL;
    memcpy(p, prefix, lp);
    p += lp;
    for (size_t i = 0; i < n; i++, p += lr) memcpy(p, rep, lr);
    memcpy(p, suffix, ls + 1);
    return s;
}

static void test_hostile(void)
{
    char *s;
    clock_t t0 = clock();

    /* nesting past the limits fails at parse time, not with a stack overflow */
    s = repeat_str("{{ ", "(", 100000, "1");
    if (s) {
        char *t = repeat_str(s, ")", 100000, " }}");
        expect_error(__LINE__, t, CLLM_ERR_RANGE, "nested");
        free(t);
    }
    free(s);
    s = repeat_str("", "{% if true %}", 5000, "x");
    expect_error(__LINE__, s, CLLM_ERR_RANGE, "nested");
    free(s);
    s = repeat_str("{{ ", "not ", 100000, "1 }}");
    expect_error(__LINE__, s, CLLM_ERR_RANGE, NULL);
    free(s);
    s = repeat_str("{{ ", "-", 100000, "1 }}");
    expect_error(__LINE__, s, CLLM_ERR_RANGE, NULL);
    free(s);
    s = repeat_str("{{ ", "[", 100000, "");
    expect_error(__LINE__, s, CLLM_OK, NULL);
    free(s);
    /* a long flat chain parses but is too deep to evaluate recursively */
    s = repeat_str("{{ 1", " + 1", 100000, " }}");
    expect_error(__LINE__, s, CLLM_ERR_RANGE, "nested");
    free(s);
    s = repeat_str("{{ x", "|trim", 100000, " }}");
    expect_error(__LINE__, s, CLLM_ERR_RANGE, "nested");
    free(s);

    /* unbounded work hits a budget */
    expect_error(__LINE__, "{% for i in range(1000000000) %}{% endfor %}", CLLM_ERR_RANGE, "range");
    expect_error(__LINE__,
                 "{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}"
                 "{% endfor %}{% endfor %}{% endfor %}",
                 CLLM_ERR_RANGE, NULL);
    expect_error(__LINE__, "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", CLLM_ERR_RANGE, NULL);
    expect_error(__LINE__, "{% macro f(n) %}{{ f(n + 1) }}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", CLLM_ERR_RANGE,
                 NULL);
    expect_error(__LINE__, "{{ 'a' * 100000000000 }}", CLLM_ERR_RANGE, NULL);
    expect_output(__LINE__, "{{ '' * 10 ** 15 }}{{ [] * 10 ** 15 }}", k_small_chat, 2, NULL, "[]");
    expect_error(__LINE__,
                 "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                 CLLM_ERR_RANGE, NULL);
    expect_error(__LINE__, "{% for i in range(100) %}{{ 'x' * 1000000 }}{% endfor %}", CLLM_ERR_RANGE, "MiB");
    expect_error(__LINE__,
                 "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
                 CLLM_ERR_RANGE, NULL);
    expect_error(__LINE__, "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|tojson }}", CLLM_ERR_INVALID_ARG, NULL);
    expect_error(__LINE__, "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", CLLM_ERR_RANGE, NULL);
    expect_error(__LINE__, "{{ range(100000)|unique|list|length }}", CLLM_ERR_RANGE, NULL);
    /* scanning a long string is work too: these would otherwise run for hours */
    expect_error(__LINE__, "{% set s = 'x' * 10000000 %}{% for i in range(1000000) %}{{ s[-1] }}{% endfor %}",
                 CLLM_ERR_RANGE, "steps");
    expect_error(__LINE__,
                 "{% set s = 'x' * 10000000 %}{% for i in range(1000000) %}{% if s == s ~ '' %}{% endif %}{% endfor %}",
                 CLLM_ERR_RANGE, NULL);
    expect_error(__LINE__, "{% set s = 'x' * 10000000 %}{% for i in range(1000000) %}{{ s|length }}{% endfor %}",
                 CLLM_ERR_RANGE, "steps");
    CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 20.0, "hostile templates took %.1f s",
          (double)(clock() - t0) / CLOCKS_PER_SEC);
}

/* ---- fuzz ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

/* Parses and renders buf; any status is fine, a crash or leak is not. */
static void fuzz_one(const char *buf, size_t n)
{
    chat_template_t *t = NULL;
    chat_template_vars_t v = { "<s>", "</s>", true, NULL, NULL, NOW_FIXED };
    char *out = NULL;
    size_t len;

    if (chat_template_create(buf, n, &t) != CLLM_OK) return;
    if (chat_template_render(t, k_chat, 4, &v, &out, &len) == CLLM_OK) {
        CHECK(out && strlen(out) <= len, "fuzz: bad output length");
        free(out);
    }
    chat_template_destroy(t);
}

static void test_fuzz(void)
{
    static const char *const pieces[] = { "{{", "}}", "{%", "%}", "{#", "#}", "-", "+", "(", ")", "[", "]", "{", "}",
                                          "'", "\"", "\\", "|", ".", ",", ":", "=", "~", "*", " if ", " for ",
                                          " in ", " not ", " is ", " set ", " endfor ", " endif ", "\n", "loop",
                                          "messages", "x", "0", "9999999999", "ns.a", "range(", " raw ", "\xff" };
    char buf[600];
    size_t count = chat_template_builtin_count();

    /* random bytes, mostly printable, with tag openers sprinkled in */
    for (int it = 0; it < 3000; it++) {
        size_t n = rng() % sizeof(buf);
        for (size_t i = 0; i < n; i++) {
            uint32_t r = rng() % 100;
            buf[i] = r < 80 ? (char)(32 + rng() % 95) : r < 90 ? "{}%#-'\"\n"[rng() % 8] : (char)(rng() & 0xff);
        }
        fuzz_one(buf, n);
    }
    /* token soup */
    for (int it = 0; it < 2000; it++) {
        size_t n = 0, k = 1 + rng() % 40;
        for (size_t i = 0; i < k; i++) {
            const char *p = pieces[rng() % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t l = strlen(p);
            if (n + l >= sizeof(buf)) break;
            memcpy(buf + n, p, l);
            n += l;
        }
        fuzz_one(buf, n);
    }
    /* mutated built-in templates: real structure, a few broken bytes */
    for (int it = 0; it < 1500; it++) {
        const char *src = chat_template_builtin(chat_template_builtin_name(rng() % count));
        size_t n = strlen(src);
        char *m = malloc(n + 8);
        int edits = 1 + (int)(rng() % 4);
        if (!m) continue;
        memcpy(m, src, n + 1);
        for (int e = 0; e < edits && n > 0; e++) {
            size_t at = rng() % n;
            uint32_t kind = rng() % 3;
            if (kind == 0) m[at] = "{}%#-'\"()[]|.x \n"[rng() % 16];
            else if (kind == 1) memmove(m + at, m + at + 1, n - at), n--;
            else if (n + 1 < n + 8) {
                memmove(m + at + 1, m + at, n - at + 1);
                m[at] = "{}%-'\""[rng() % 6];
                n++;
            }
        }
        fuzz_one(m, n);
        free(m);
    }
}

/* ---- threads ---- */

typedef struct {
    const chat_template_t *t;
    char *out;
    status_t st;
} thread_arg_t;

static void *render_thread(void *p)
{
    thread_arg_t *a = p;
    chat_template_vars_t v = { "<s>", "</s>", true, NULL, NULL, NOW_FIXED };
    size_t len;

    for (int i = 0; i < 200 && a->st == CLLM_OK; i++) {
        free(a->out);
        a->out = NULL;
        a->st = chat_template_render(a->t, k_chat, 4, &v, &a->out, &len);
    }
    return NULL;
}

static void test_threads(void)
{
    chat_template_t *t = NULL;
    const char *src = chat_template_builtin("llama3.2");
    thread_arg_t args[4];
    pthread_t th[4];

    if (chat_template_create(src, strlen(src), &t) != CLLM_OK) {
        CHECK(0, "create: %s", cllm_error_message());
        return;
    }
    for (int i = 0; i < 4; i++) {
        args[i].t = t;
        args[i].out = NULL;
        args[i].st = CLLM_OK;
        CHECK(pthread_create(&th[i], NULL, render_thread, &args[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++)
        CHECK(args[i].st == CLLM_OK && args[i].out && strcmp(args[i].out, args[0].out ? args[0].out : "") == 0,
              "thread %d rendered differently", i);
    for (int i = 0; i < 4; i++) free(args[i].out);
    chat_template_destroy(t);
}

int main(void)
{
    setenv("TZ", "UTC", 1); /* strftime_now() uses local time, as Python's datetime.now() */
    tzset();
    test_builtins();
    test_raise_exception();
    test_tools();
    test_tables();
    test_errors();
    test_hostile();
    test_fuzz();
    test_threads();
    if (check_failures) {
        fprintf(stderr, "test_chat_template: %d failure(s)\n", check_failures);
        return 1;
    }
    printf("test_chat_template: all passed\n");
    return 0;
}
