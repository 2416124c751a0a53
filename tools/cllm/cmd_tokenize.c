/* cmd_tokenize.c: `cllm tokenize`: print the tokens of a text under a model's tokenizer.
 * Only the tokenizer is read (a GGUF's metadata or a checkpoint's tokenizer files; never the
 * tensors). stdout carries the tokens,
 * one `id<TAB>'piece'` per line, or with --ids one list `[1, 403, ...]`; errors are one line
 * on stderr with a non-zero exit code. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "model/gguf.h"
#include "model/hf_model.h"
#include "tokenizer/tokenizer.h"

static void tokenize_usage(FILE *f)
{
    fprintf(f, "usage: cllm tokenize -m MODEL [--ids] [--no-bos] [--parse-special] TEXT\n"
               "  -m, --model PATH     GGUF file or Hugging Face checkpoint directory (only the tokenizer is read)\n"
               "  -p, --prompt TEXT    the text (or give it as the last argument)\n"
               "      --ids            print only the ids, as one list: [1, 403, ...]\n"
               "      --no-bos         do not add the BOS (or EOS) token the vocabulary asks for\n"
               "      --parse-special  special-token texts such as <|eot_id|> become their ids\n"
               "  -h, --help           this help\n"
               "Each token is printed as id<TAB>'piece', the piece being the token's bytes.\n");
}

typedef struct {
    const char *model_path;
    const char *text;
    bool ids_only;
    bool no_bos;
    bool parse_special;
} tokenize_args_t;

/* Returns 0 to run, 1 to exit 0 (help), 2 on a bad command line. */
static int tokenize_parse(int argc, char **argv, tokenize_args_t *a)
{
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            tokenize_usage(stdout);
            return 1;
        } else if (!strcmp(arg, "-m") || !strcmp(arg, "--model") || !strcmp(arg, "-p") || !strcmp(arg, "--prompt")) {
            const bool is_model = !strcmp(arg, "-m") || !strcmp(arg, "--model");
            if (i + 1 >= argc) {
                fprintf(stderr, "cllm tokenize: %s needs a value\n", arg);
                return 2;
            }
            if (is_model)
                a->model_path = argv[++i];
            else
                a->text = argv[++i];
        } else if (!strcmp(arg, "--ids")) {
            a->ids_only = true;
        } else if (!strcmp(arg, "--no-bos")) {
            a->no_bos = true;
        } else if (!strcmp(arg, "--parse-special")) {
            a->parse_special = true;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            fprintf(stderr, "cllm tokenize: unknown option '%s' (try: cllm tokenize --help)\n", arg);
            return 2;
        } else if (a->text) {
            fprintf(stderr, "cllm tokenize: one text only (quote it), got another: '%s'\n", arg);
            return 2;
        } else {
            a->text = arg;
        }
    }
    if (!a->model_path) {
        fprintf(stderr, "cllm tokenize: no model (-m MODEL)\n");
        return 2;
    }
    if (!a->text) {
        fprintf(stderr, "cllm tokenize: no text to tokenize\n");
        return 2;
    }
    return 0;
}

static void print_tokens(const tokenizer_t *tok, const int32_t *ids, size_t n, bool ids_only)
{
    size_t cap = tokenizer_max_piece_len(tok) + 1;
    char *piece = malloc(cap);

    if (ids_only || !piece) {
        fputc('[', stdout);
        for (size_t i = 0; i < n; i++) fprintf(stdout, "%s%d", i ? ", " : "", ids[i]);
        fputs("]\n", stdout);
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t len = tokenizer_token_to_bytes(tok, ids[i], true, piece, cap);
            fprintf(stdout, "%d\t'", ids[i]);
            fwrite(piece, 1, len < cap ? len : cap, stdout);
            fputs("'\n", stdout);
        }
    }
    free(piece);
}

int cmd_tokenize(int argc, char **argv)
{
    tokenize_args_t a;
    gguf_t *g = NULL;
    tokenizer_t *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 1, pr;
    status_t st;

    pr = tokenize_parse(argc, argv, &a);
    if (pr) return pr == 1 ? 0 : 2;
    if (hf_model_is_checkpoint(a.model_path)) st = hf_model_load_tokenizer(a.model_path, &tok);
    else if ((st = gguf_open(a.model_path, &g)) == CLLM_OK) st = tokenizer_create(g, &tok);
    if (st == CLLM_OK) st = tokenizer_encode(tok, a.text, strlen(a.text), !a.no_bos, a.parse_special, &ids, &n);
    if (st != CLLM_OK) {
        fprintf(stderr, "cllm tokenize: %s\n", cllm_error_message());
        goto out;
    }
    print_tokens(tok, ids, n, a.ids_only);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    free(ids);
    tokenizer_destroy(tok);
    gguf_close(g);
    return rc;
}
