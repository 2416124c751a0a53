/* make_corpus.c: writes the seed inputs of the fuzz targets into tests/fuzz/corpus/<target>/
 * (run by tests/fuzz/make_corpus.sh, which also adds `cllm mkmodel` models; not part of the
 * build). Deterministic: the same sources give the same files, byte for byte.
 *
 * The seeds are small valid inputs that reach deep into each parser, so that the fuzzer starts
 * from the interesting paths rather than from the magic bytes: GGUF files with every value type,
 * nested arrays and tensor types (made with the GGUF writer), small SPM and BPE vocabularies,
 * safetensors headers, tokenizer texts, the built-in chat templates and hand-written ones using
 * every construct, and OpenAI request bodies for each endpoint. Each seed is < 64 KiB. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "server/chat_template_builtin.h"

static const char *out_dir;
static int n_written;

static void write_seed(const char *target, const char *name, const void *data, size_t len)
{
    char path[1024];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
    f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "make_corpus: cannot write %s\n", path);
        exit(1);
    }
    n_written++;
}

/* A seed of one flag/selector byte followed by text. */
static void write_prefixed(const char *target, const char *name, uint8_t first, const char *text, size_t len)
{
    char *buf = malloc(len + 1);
    if (!buf) exit(1);
    buf[0] = (char)first;
    memcpy(buf + 1, text, len);
    write_seed(target, name, buf, len + 1);
    free(buf);
}

static void must(status_t st, const char *what)
{
    if (st != CLLM_OK) {
        fprintf(stderr, "make_corpus: %s: %s\n", what, cllm_error_message());
        exit(1);
    }
}

/* Writes w to the corpus through a temporary file. */
static void write_gguf(gguf_writer_t *w, const char *name)
{
    char tmp[1024];
    FILE *f;
    long n;
    char *buf;
    snprintf(tmp, sizeof(tmp), "%s/fuzz_gguf/.tmp", out_dir);
    must(gguf_writer_write(w, tmp), name);
    f = fopen(tmp, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) exit(1);
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) exit(1);
    fclose(f);
    remove(tmp);
    write_seed("fuzz_gguf", name, buf, (size_t)n);
    free(buf);
    gguf_writer_destroy(w);
}

/* ---- GGUF ---- */

static void gguf_all_types(void)
{
    gguf_writer_t *w = gguf_writer_create();
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int32_t i32 = -2000000000;
    int64_t i64 = -5000000000LL;
    double f64 = 3.25;
    uint32_t arr_u32[4] = { 1, 2, 3, 0xFFFFFFFFu };
    float arr_f32[3] = { 0.5f, -1.0f, 1e30f };
    int8_t arr_i8[2] = { -1, 1 };
    gguf_str_t strs[3] = { { "alpha", 5 }, { "", 0 }, { "\xe2\x96\x81gamma", 8 } };
    /* nested: an array of 2 arrays of u16 ([7], [8, 9]), then an array of 1 array of 1 string */
    uint8_t nested[64], nested_s[64];
    size_t o = 0, os = 0;
    uint32_t t_arr = GGUF_TYPE_ARRAY, t_u16 = GGUF_TYPE_UINT16, t_str = GGUF_TYPE_STRING;
    uint64_t n2 = 2, n1 = 1, len5 = 5;
    uint16_t v7 = 7, v89[2] = { 8, 9 };
    float data_f32[6] = { 1, 2, 3, 4, 5, 6 };
    uint16_t data_f16[4] = { 0x3C00, 0x4000, 0xBC00, 0x0000 };
    uint8_t data_q8[34] = { 0x00, 0x3C }; /* one q8_0 block: fp16 scale 1.0, 32 int8 */
    uint8_t data_q4[18] = { 0x00, 0x38 }; /* one q4_0 block: fp16 scale 0.5, 16 nibble pairs */
    int64_t ne_f32[2] = { 3, 2 }, ne_f16[1] = { 4 }, ne_q[1] = { 32 };

    if (!w) exit(1);
    for (int i = 0; i < 32; i++) data_q8[2 + i] = (uint8_t)(i * 7 - 100);
    for (int i = 0; i < 16; i++) data_q4[2 + i] = (uint8_t)(i * 17);
    memcpy(nested + o, &t_u16, 4), o += 4; /* each inner array: element type, count, elements */
    memcpy(nested + o, &n1, 8), o += 8;
    memcpy(nested + o, &v7, 2), o += 2;
    memcpy(nested + o, &t_u16, 4), o += 4;
    memcpy(nested + o, &n2, 8), o += 8;
    memcpy(nested + o, v89, 4), o += 4;
    {
        uint8_t full[80];
        size_t f = 0;
        memcpy(full + f, &t_arr, 4), f += 4;
        memcpy(full + f, &n2, 8), f += 8;
        memcpy(full + f, nested, o), f += o;
        must(gguf_writer_set_raw(w, "test.nested_u16", GGUF_TYPE_ARRAY, full, f), "nested");
    }
    memcpy(nested_s + os, &t_arr, 4), os += 4;
    memcpy(nested_s + os, &n1, 8), os += 8;
    memcpy(nested_s + os, &t_str, 4), os += 4;
    memcpy(nested_s + os, &n1, 8), os += 8;
    memcpy(nested_s + os, &len5, 8), os += 8;
    memcpy(nested_s + os, "hello", 5), os += 5;
    must(gguf_writer_set_raw(w, "test.nested_str", GGUF_TYPE_ARRAY, nested_s, os), "nested strings");

    must(gguf_writer_set_str(w, "general.architecture", "test", 4), "arch");
    must(gguf_writer_set_u32(w, "general.alignment", 64), "alignment");
    must(gguf_writer_set_val(w, "test.u8", GGUF_TYPE_UINT8, &u8), "u8");
    must(gguf_writer_set_val(w, "test.i8", GGUF_TYPE_INT8, &i8), "i8");
    must(gguf_writer_set_val(w, "test.u16", GGUF_TYPE_UINT16, &u16), "u16");
    must(gguf_writer_set_val(w, "test.i16", GGUF_TYPE_INT16, &i16), "i16");
    must(gguf_writer_set_u32(w, "test.u32", 4000000000u), "u32");
    must(gguf_writer_set_i32(w, "test.i32", i32), "i32");
    must(gguf_writer_set_u64(w, "test.u64", 0xFFFFFFFFFFFFFFFFull), "u64");
    must(gguf_writer_set_val(w, "test.i64", GGUF_TYPE_INT64, &i64), "i64");
    must(gguf_writer_set_f32(w, "test.f32", -0.125f), "f32");
    must(gguf_writer_set_val(w, "test.f64", GGUF_TYPE_FLOAT64, &f64), "f64");
    must(gguf_writer_set_bool(w, "test.bool", true), "bool");
    must(gguf_writer_set_str(w, "test.str", "h\xc3\xa9llo\n", 7), "str");
    must(gguf_writer_set_arr(w, "test.arr_u32", GGUF_TYPE_UINT32, arr_u32, 4), "arr u32");
    must(gguf_writer_set_arr(w, "test.arr_f32", GGUF_TYPE_FLOAT32, arr_f32, 3), "arr f32");
    must(gguf_writer_set_arr(w, "test.arr_i8", GGUF_TYPE_INT8, arr_i8, 2), "arr i8");
    must(gguf_writer_set_arr(w, "test.arr_empty", GGUF_TYPE_UINT64, NULL, 0), "arr empty");
    must(gguf_writer_set_arr_str(w, "test.arr_str", strs, 3), "arr str");
    must(gguf_writer_add_tensor(w, "t.f32", 0 /* F32 */, 2, ne_f32, data_f32, sizeof(data_f32)), "t f32");
    must(gguf_writer_add_tensor(w, "t.f16", 1 /* F16 */, 1, ne_f16, data_f16, sizeof(data_f16)), "t f16");
    must(gguf_writer_add_tensor(w, "t.q8_0", 8 /* Q8_0 */, 1, ne_q, data_q8, sizeof(data_q8)), "t q8_0");
    must(gguf_writer_add_tensor(w, "t.q4_0", 2 /* Q4_0 */, 1, ne_q, data_q4, sizeof(data_q4)), "t q4_0");
    write_gguf(w, "all_types.gguf");
}

static void gguf_empty(void)
{
    gguf_writer_t *w = gguf_writer_create();
    if (!w) exit(1);
    write_gguf(w, "empty.gguf");
}

/* A vocabulary only: SentencePiece ("llama") with byte fallback, or byte-level BPE ("gpt2"). */
static void gguf_vocab_spm(void)
{
    static const char *toks[] = { "<unk>", "<s>", "</s>", "<0x0A>", "<0xE2>", "<0x96>", "<0x81>", "<0xFF>",
                                  "\xe2\x96\x81", "\xe2\x96\x81the", "\xe2\x96\x81\x61" /* U+2581 a */, "t", "h",
                                  "e", "a", "he",
                                  "\xe2\x96\x81t", "\xe2\x96\x81th", "\xe2\x96\x81he", "llo", "l", "o", "\xe4\xb8\xad",
                                  "[INST]" };
    enum { N = sizeof(toks) / sizeof(toks[0]) };
    gguf_str_t s[N];
    float scores[N];
    int32_t types[N];
    gguf_writer_t *w = gguf_writer_create();
    if (!w) exit(1);
    for (int i = 0; i < N; i++) {
        s[i].ptr = toks[i];
        s[i].len = strlen(toks[i]);
        scores[i] = -(float)i;
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 8 ? 6 : i == N - 1 ? 4 : 1; /* unknown, control, byte, user, normal */
    }
    must(gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5), "model");
    must(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", s, N), "tokens");
    must(gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, N), "scores");
    must(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, N), "types");
    must(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1), "bos");
    must(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2), "eos");
    must(gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0), "unk");
    must(gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true), "add bos");
    must(gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", true), "space prefix");
    write_gguf(w, "vocab_spm.gguf");
}

static void gguf_vocab_bpe(const char *pre, const char *name)
{
    /* byte-level: 'Ġ' (U+0120) stands for the space byte, 'Ċ' (U+010A) for newline */
    static const char *toks[] = { "!", "a", "b", "c", "h", "e", "l", "o", "\xc4\xa0", "\xc4\x8a", "1", "2",
                                  "he", "ll", "hell", "hello", "\xc4\xa0h", "\xc4\xa0hello", "12",
                                  "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<tool>" };
    static const char *merges[] = { "h e", "l l", "he ll", "hell o", "\xc4\xa0 h", "\xc4\xa0h ello", "1 2" };
    enum { N = sizeof(toks) / sizeof(toks[0]), M = sizeof(merges) / sizeof(merges[0]) };
    gguf_str_t s[N], m[M];
    int32_t types[N];
    gguf_writer_t *w = gguf_writer_create();
    if (!w) exit(1);
    for (int i = 0; i < N; i++) {
        s[i].ptr = toks[i];
        s[i].len = strlen(toks[i]);
        types[i] = i >= N - 4 ? (i == N - 1 ? 4 : 3) : 1;
    }
    for (int i = 0; i < M; i++) {
        m[i].ptr = merges[i];
        m[i].len = strlen(merges[i]);
    }
    must(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4), "model");
    if (pre) must(gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, strlen(pre)), "pre");
    must(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", s, N), "tokens");
    must(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, N), "types");
    must(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", m, M), "merges");
    must(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", N - 4), "bos");
    must(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", N - 3), "eos");
    must(gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", N - 2), "eot");
    must(gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true), "add bos");
    must(gguf_writer_set_str(w, "tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}", 51),
         "template");
    write_gguf(w, name);
}

/* The mkmodel model at path, as another architecture: every "llama." key renamed, and for
 * qwen2 the QKV bias vectors added. */
static void gguf_rearch(const char *path, const char *arch, const char *name)
{
    gguf_t *src = NULL;
    gguf_writer_t *w = gguf_writer_create();
    static float bias[4096];
    if (!w) exit(1);
    must(gguf_open(path, &src), path);
    for (int64_t i = 0; i < gguf_n_kv(src); i++) {
        const char *key = gguf_key_name(src, i);
        const void *raw;
        size_t n;
        char renamed[256];
        if (!strcmp(key, "general.architecture")) {
            must(gguf_writer_set_str(w, key, arch, strlen(arch)), "arch");
            continue;
        }
        if (strncmp(key, "llama.", 6)) {
            must(gguf_writer_copy_kv(w, src, i), key);
            continue;
        }
        snprintf(renamed, sizeof(renamed), "%s.%s", arch, key + 6);
        must(gguf_kv_raw(src, i, &raw, &n), key);
        must(gguf_writer_set_raw(w, renamed, gguf_kv_type(src, i), raw, n), renamed);
    }
    for (int64_t i = 0; i < gguf_n_tensors(src); i++) {
        const gguf_tensor_info_t *t = gguf_tensor(src, i);
        must(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes), t->name);
        if (!strcmp(arch, "qwen2") && strstr(t->name, "attn_") &&
            (strstr(t->name, "_q.weight") || strstr(t->name, "_k.weight") || strstr(t->name, "_v.weight"))) {
            char bname[128];
            int64_t ne = t->ne[1];
            snprintf(bname, sizeof(bname), "%.*s.bias", (int)(strlen(t->name) - 7), t->name);
            if (ne > 4096) exit(1);
            must(gguf_writer_add_tensor(w, bname, 0, 1, &ne, bias, (size_t)ne * sizeof(float)), bname);
        }
    }
    write_gguf(w, name);
    gguf_close(src);
}

/* ---- safetensors ---- */

static void st_seed(const char *name, const char *header, size_t data_len)
{
    size_t hlen = strlen(header);
    uint8_t *buf = calloc(1, 8 + hlen + data_len);
    uint64_t n = hlen;
    if (!buf) exit(1);
    memcpy(buf, &n, 8);
    memcpy(buf + 8, header, hlen);
    for (size_t i = 0; i < data_len; i++) buf[8 + hlen + i] = (uint8_t)(i * 37);
    write_seed("fuzz_safetensors", name, buf, 8 + hlen + data_len);
    free(buf);
}

static void safetensors_seeds(void)
{
    st_seed("empty.safetensors", "{}", 0);
    st_seed("metadata_only.safetensors", "{\"__metadata__\":{\"format\":\"pt\"}}", 0);
    st_seed("two.safetensors",
            "{\"__metadata__\":{\"format\":\"pt\"},"
            "\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
            "\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]}}    ",
            32);
    st_seed("all_dtypes.safetensors",
            "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
            "\"b\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[4,12]},"
            "\"c\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[12,20]},"
            "\"d\":{\"dtype\":\"I32\",\"shape\":[1,1],\"data_offsets\":[20,24]},"
            "\"e\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[24,26]},"
            "\"f\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[26,28]},"
            "\"g\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[28,30]},"
            "\"h\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[30,31]},"
            "\"i\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[31,32]},"
            "\"j\":{\"dtype\":\"F8_E5M2\",\"shape\":[0],\"data_offsets\":[32,32]}}",
            32);
    st_seed("zero_dim.safetensors", "{\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]}}", 0);
}

/* ---- tokenizer texts (byte 0: bit 0 SPM, bit 1 parse_special, bit 2 add_special) ---- */

static void tokenizer_seeds(void)
{
    static const char *texts[] = {
        "Hello world",
        " Hello  world\n\n\tit's 2024! I'm, we've, they'll, she'd, don't",
        "12345678901234567890 3.14159 -0.5e10",
        "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 "
        "\xce\xb3\xce\xb5\xce\xb9\xce\xac \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7",
        "\xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
        "<s>[INST] hi [/INST] yo</s><unk>",
        "\xe2\x96\x81\xe2\x96\x81 spaces \xe2\x96\x81" "and\xc2\xa0nbsp\xe3\x80\x80ideographic",
        "bad \xff\xfe utf8 \xc3 cut \xe2\x82 and \xf0\x9f\x98 end\xed\xa0\x80",
        "   \n\r\n  \t  ",
        "def f(x):\n    return x**2  # comment\n",
        "",
    };
    char name[32];
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        for (uint8_t flags = 0; flags < 8; flags += (i % 2) ? 3 : 1) {
            snprintf(name, sizeof(name), "text%02zu_f%u", i, flags);
            write_prefixed("fuzz_tokenizer", name, flags, texts[i], strlen(texts[i]));
        }
    }
}

/* ---- chat templates (byte 0 even: source follows; odd: built-in (byte 0 >> 1), roles byte, fields) ---- */

static void template_seeds(void)
{
    static const char *sources[] = {
        "{% for m in messages %}{{ m.role | upper }}: {{ m.content | trim }}\n{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT:{% endif %}",
        "{%- set ns = namespace(n=0, s='') -%}{%- for m in messages if m.role != 'system' -%}"
        "{%- set ns.n = ns.n + 1 -%}{{ loop.index0 }}/{{ loop.length }}{{ loop.first }}{{ loop.last }}"
        "{%- if loop.previtem is defined %}{{ loop.previtem.role }}{% endif -%}"
        "{%- else -%}none{%- endfor -%}{{ ns.n }}",
        "{% macro fmt(x, sep=', ') %}{{ x | join(sep) }}{% endmacro %}{{ fmt([1, 2, 3]) }}{{ fmt(['a'], '-') }}"
        "{{ range(5) | list | reverse | first }}{{ [3, 1, 2] | sort | last }}{{ {'b': 1, 'a': 2} | dictsort }}",
        "{{ 'Hello World'[1:8:2] }}{{ 'abc' * 3 }}{{ 7 // 2 }}{{ 7 % 3 }}{{ 2 ** 10 }}{{ -3 | abs }}{{ 3.7 | round }}"
        "{{ '  x  ' | trim ~ '|' }}{{ 'a,b,c'.split(',') | length }}{{ 'x'.startswith('x') }}{{ 'AbC'.lower() }}",
        "{% raw %}{{ not parsed }}{% endraw %}{# comment #}{% if tools is none %}no tools{% elif tools %}"
        "{{ tools | tojson }}{% else %}empty{% endif %}{{ strftime_now('%Y-%m-%d') }}{{ date_string }}",
        "{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.name }}"
        "({{ c.function.arguments | tojson }}){% endfor %}{% elif m.role == 'tool' %}[{{ m.tool_call_id }}]"
        "{{ m.content }}{% endif %}{% endfor %}{{ messages | map(attribute='role') | unique | join(',') }}",
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be user') }}{% endif %}",
        "{% set x %}block {{ 1 + 2 }}{% endset %}{{ x | replace('block', 'B') }}{{ x is string }}"
        "{{ none is none }}{{ 3 is odd }}{{ [1] is iterable }}{{ 'a' in 'cat' }}{{ n is defined and n > 2 }}",
        "{% for i in range(3) %}{% for j in range(i) %}{% if j == 1 %}{% break %}{% endif %}{{ i }}{{ j }}"
        "{% endfor %}{% if i == 0 %}{% continue %}{% endif %}.{% endfor %}"
        "{{ messages | selectattr('content') | list | length }}",
        "{{ {'k': [1, {'n': none}], 'v': 'x\"y'} | tojson(indent=2) }}{{ messages[-1].content[::-1] }}"
        "{{ (messages | first).items() | list | length }}{{ bos_token ~ eos_token }}",
    };
    char name[32];
    size_t nb = chat_template_builtin_count();

    for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
        snprintf(name, sizeof(name), "src%02zu", i);
        write_prefixed("fuzz_chat_template", name, 0, sources[i], strlen(sources[i]));
    }
    for (size_t i = 0; i < nb; i++) {
        const char *src = chat_template_builtin(chat_template_builtin_name(i));
        bool dup = false;
        for (size_t k = 0; k < i; k++) dup |= chat_template_builtin(chat_template_builtin_name(k)) == src;
        if (dup) continue; /* aliases */
        snprintf(name, sizeof(name), "builtin_src_%s", chat_template_builtin_name(i));
        write_prefixed("fuzz_chat_template", name, 0, src, strlen(src));
    }
    for (size_t i = 0; i < nb; i++) {
        /* roles byte, then NUL-separated contents */
        static const char chat[] = "\x41You are helpful.\0Hi there\0Hello! How can I help?\0Tell me a joke";
        static const char tools[] = "\x5b" "Be brief.\0What is 6*7?\0\0" "42";
        snprintf(name, sizeof(name), "builtin_chat_%s", chat_template_builtin_name(i));
        write_prefixed("fuzz_chat_template", name, (uint8_t)(2 * i + 1), chat, sizeof(chat) - 1);
        snprintf(name, sizeof(name), "builtin_tools_%s", chat_template_builtin_name(i));
        write_prefixed("fuzz_chat_template", name, (uint8_t)(2 * i + 1), tools, sizeof(tools) - 1);
    }
}

/* ---- request bodies (byte 0: bits 0-1 endpoint, the rest the built-in template) ---- */

static void request_seeds(void)
{
    static const struct {
        uint8_t kind;
        const char *body;
    } bodies[] = {
        { 0, "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
             "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"1\",\"type\":\"function\","
             "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
             "{\"role\":\"tool\",\"content\":\"42\",\"tool_call_id\":\"1\"}],"
             "\"temperature\":0.7,\"top_p\":0.5,\"top_k\":40,\"min_p\":0.1,\"seed\":-7,\"max_tokens\":9,"
             "\"max_completion_tokens\":12.0,\"stop\":[\"END\",\"\\n\\n\"],\"stop_token_ids\":[5,6],"
             "\"logit_bias\":{\"3\":500,\"4\":-2.5},\"logprobs\":true,\"top_logprobs\":3,"
             "\"frequency_penalty\":0.5,\"presence_penalty\":-0.5,\"repetition_penalty\":1.1,"
             "\"ignore_eos\":true,\"n\":1,\"user\":\"u\",\"cache_salt\":\"s\",\"stream\":true,"
             "\"stream_options\":{\"include_usage\":true,\"continuous_usage_stats\":false},"
             "\"chat_template_kwargs\":{\"date_string\":\"1 Jan 2025\"},\"add_generation_prompt\":true,"
             "\"unknown_field\":{\"x\":1},\"response_format\":null}" },
        { 4, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hel\"}],"
             "\"continue_final_message\":true,\"add_generation_prompt\":false,\"add_special_tokens\":true,"
             "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}],"
             "\"tool_choice\":\"none\"}" },
        { 8, "{\"messages\":[{\"role\":\"user\",\"content\":\"<|eot_id|> x\",\"name\":\"bob\"}],\"model\":null,"
             "\"temperature\":null,\"stream\":false}" },
        { 1, "{\"model\":\"m\",\"prompt\":\"Once upon a time\",\"max_tokens\":16,\"temperature\":0,"
             "\"echo\":true,\"logprobs\":5,\"stop\":\"\\n\",\"seed\":42,\"suffix\":null}" },
        { 1, "{\"prompt\":[128000,9906,1917],\"max_tokens\":1,\"add_special_tokens\":false}" },
        { 1, "{\"prompt\":[\"only one\"],\"n\":1.0,\"best_of\":1}" },
        { 2, "{\"prompt\":\"Hello <|begin_of_text|> world\",\"add_special_tokens\":false,\"return_token_strs\":true}" },
        { 2, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"add_generation_prompt\":true}" },
        { 3, "{\"tokens\":[128000,9906,11,1917,0,128255]}" },
        { 3, "{\"model\":\"m\",\"tokens\":[]}" },
        { 0, "{\"messages\":[]}" },
        { 1, "{\"prompt\":\"x\",\"max_tokens\":0,\"top_p\":2,\"logprobs\":21}" },
    };
    char name[32];
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        snprintf(name, sizeof(name), "body%02zu_kind%u", i, bodies[i].kind & 3);
        write_prefixed("fuzz_request", name, bodies[i].kind, bodies[i].body, strlen(bodies[i].body));
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: make_corpus CORPUS_DIR [MKMODEL_GGUF]\n");
        return 2;
    }
    out_dir = argv[1];
    gguf_all_types();
    gguf_empty();
    gguf_vocab_spm();
    gguf_vocab_bpe("llama-bpe", "vocab_bpe_llama3.gguf");
    gguf_vocab_bpe("qwen2", "vocab_bpe_qwen2.gguf");
    gguf_vocab_bpe(NULL, "vocab_bpe_gpt2.gguf");
    if (argc > 2) {
        gguf_rearch(argv[2], "qwen2", "model_qwen2.gguf");
        gguf_rearch(argv[2], "mistral", "model_mistral.gguf");
    }
    safetensors_seeds();
    tokenizer_seeds();
    template_seeds();
    request_seeds();
    printf("make_corpus: %d seed files written under %s\n", n_written, out_dir);
    return 0;
}
