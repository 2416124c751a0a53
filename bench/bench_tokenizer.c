/* bench_tokenizer.c: single-thread encode and decode throughput of the tokenizers.
 *
 * usage: bench_tokenizer [TEXT_FILE] [SECONDS]
 * Without a file the text is an English prose paragraph (written for this bench) repeated to
 * 2 MiB. For the Llama 3 BPE vocabulary of ../shared/reference/tokenizer (as is, and with the
 * Qwen2 split, which merges every word pair by pair) and the Llama 2 SPM one, it prints MB/s of
 * encoding the whole text in one call, in 1 KiB prompt-sized calls, and with special-token
 * parsing on, and tokens/s of decoding. Nothing is asserted: numbers only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/gguf.h"
#include "tokenizer/tokenizer.h"
#include "core/clock.h"

static const char prose[] =
    "The lighthouse keeper had kept a logbook for thirty-one years, and in all that time he had never "
    "missed a single evening. Each entry began the same way: the hour, the wind, the state of the sea. "
    "Then came whatever the day had brought - a fishing boat that limped home with a broken mast, a "
    "flock of geese that circled the tower twice before heading south, a letter from his sister in the "
    "city asking, again, whether he would ever come back. He always answered that he might, one day, "
    "when the new automatic lamp was installed and the harbour office no longer needed him. Everyone "
    "knew the lamp would never come; the budget had been cut in 1987, restored in 1994, and cut again "
    "the following spring. So he stayed, and he wrote. On stormy nights he would climb the 142 steps "
    "to the lantern room, wipe the salt from the glass, and watch the beam sweep across the water. "
    "\"It isn't the light that matters,\" he told a visiting student once. \"It's that someone is "
    "there to see it turn.\" The student wrote that down, and years later she used it to open a book "
    "about coastal towns, which is how most people came to hear of him at all.\n\n"
    "In the village below, life moved at the pace of the tides. The baker opened at five, the school "
    "bell rang at half past eight, and the ferry left at noon if the weather allowed it. Children "
    "learned to read the clouds before they learned to read books; they could tell you whether it "
    "would rain by the colour of the sky over the northern cliffs. Visitors found it charming for a "
    "week and unbearable after a month. The few who stayed longer usually stayed forever.\n\n";

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf) *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

/* Encodes text in calls of chunk bytes (0: one call) until min_s has passed; returns MB/s. */
static double bench_encode(const tokenizer_t *tok, const char *text, size_t len, size_t chunk, bool parse_special,
                           double min_s, size_t *n_tokens)
{
    double t0 = clock_now_s(), t;
    size_t bytes = 0;
    int rounds = 0;

    *n_tokens = 0;
    do {
        size_t total = 0;
        for (size_t off = 0; off < len;) {
            size_t n = chunk && len - off > chunk ? chunk : len - off;
            int32_t *ids;
            size_t m;
            if (tokenizer_encode(tok, text + off, n, false, parse_special, &ids, &m) != CLLM_OK) {
                fprintf(stderr, "encode failed: %s\n", cllm_error_message());
                return 0.0;
            }
            free(ids);
            total += m;
            off += n;
        }
        *n_tokens = total;
        bytes += len;
        rounds++;
        t = clock_now_s() - t0;
    } while (t < min_s || rounds < 2);
    return (double)bytes / t / 1e6;
}

/* Writes a copy of the GGUF at src whose tokenizer.ggml.pre is pre, to dst. */
static int copy_with_pre(const char *src, const char *dst, const char *pre)
{
    gguf_t *g = NULL;
    gguf_writer_t *w = gguf_writer_create();
    int ok = w && gguf_open(src, &g) == CLLM_OK;

    for (int64_t i = 0; ok && i < gguf_n_kv(g); i++)
        if (strcmp(gguf_key_name(g, i), "tokenizer.ggml.pre")) ok = gguf_writer_copy_kv(w, g, i) == CLLM_OK;
    ok = ok && gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, strlen(pre)) == CLLM_OK &&
         gguf_writer_write(w, dst) == CLLM_OK;
    if (!ok) fprintf(stderr, "bench_tokenizer: cannot write %s: %s\n", dst, cllm_error_message());
    gguf_writer_destroy(w);
    gguf_close(g);
    return ok;
}

/* name: a file of ../shared/reference/tokenizer, or an absolute path. */
static void bench_vocab(const char *name, const char *label, const char *text, size_t len, double min_s)
{
    char path[1024];
    gguf_t *g = NULL;
    tokenizer_t *tok = NULL;
    int32_t *ids = NULL;
    size_t n_tok, n_chunk, n_special;
    double mb, mb_chunk, mb_special, t0, t_dec;
    int rounds = 0;

    if (name[0] == '/')
        snprintf(path, sizeof(path), "%s", name);
    else
        snprintf(path, sizeof(path), "%s/reference/tokenizer/%s", CLLM_SHARED_DIR, name);
    t0 = clock_now_s();
    if (gguf_open(path, &g) != CLLM_OK || tokenizer_create(g, &tok) != CLLM_OK) {
        fprintf(stderr, "%s: %s\n", name, cllm_error_message());
        goto out;
    }
    printf("%s: load %.0f ms, %d tokens\n", label, (clock_now_s() - t0) * 1e3, tokenizer_n_vocab(tok));
    mb = bench_encode(tok, text, len, 0, false, min_s, &n_tok);
    mb_chunk = bench_encode(tok, text, len, 1024, false, min_s, &n_chunk);
    mb_special = bench_encode(tok, text, len, 0, true, min_s, &n_special);
    printf("  encode, one call:          %7.1f MB/s  (%zu tokens, %.2f bytes/token)\n", mb, n_tok,
           (double)len / (double)n_tok);
    printf("  encode, 1 KiB calls:       %7.1f MB/s\n", mb_chunk);
    printf("  encode, parse_special on:  %7.1f MB/s\n", mb_special);

    if (tokenizer_encode(tok, text, len, false, false, &ids, &n_tok) != CLLM_OK) goto out;
    t0 = clock_now_s();
    do {
        char *s;
        size_t slen;
        if (tokenizer_decode(tok, ids, n_tok, false, &s, &slen) != CLLM_OK) goto out;
        free(s);
        rounds++;
        t_dec = clock_now_s() - t0;
    } while (t_dec < min_s || rounds < 2);
    printf("  decode:                    %7.1f M tokens/s\n", (double)n_tok * rounds / t_dec / 1e6);
out:
    free(ids);
    tokenizer_destroy(tok);
    gguf_close(g);
}

int main(int argc, char **argv)
{
    size_t len = 0;
    char *text, tmp[256], src[1024];
    double min_s = argc > 2 ? atof(argv[2]) : 1.0;

    if (argc > 1) {
        text = read_file(argv[1], &len);
        if (!text) {
            fprintf(stderr, "bench_tokenizer: cannot read %s\n", argv[1]);
            return 1;
        }
        printf("text: %s, %zu bytes\n", argv[1], len);
    } else {
        const size_t target = 2u << 20, plen = sizeof(prose) - 1;
        text = malloc(target + plen);
        if (!text) return 1;
        while (len < target) {
            memcpy(text + len, prose, plen);
            len += plen;
        }
        printf("text: English prose, %zu bytes\n", len);
    }
    if (min_s <= 0) min_s = 1.0;
    bench_vocab("ggml-vocab-llama-bpe.gguf", "Llama 3 BPE (llama-bpe split, whole-word lookup)", text, len, min_s);
    /* the same vocabulary with the Qwen2 split, which has no whole-word shortcut: every word is
       merged pair by pair, as for GPT-2 and Qwen2 vocabularies */
    snprintf(tmp, sizeof(tmp), "/tmp/bench_tokenizer_%d.gguf", (int)getpid());
    snprintf(src, sizeof(src), "%s/reference/tokenizer/ggml-vocab-llama-bpe.gguf", CLLM_SHARED_DIR);
    if (copy_with_pre(src, tmp, "qwen2"))
        bench_vocab(tmp, "Llama 3 BPE vocabulary, qwen2 split (merges for every word)", text, len, min_s);
    unlink(tmp);
    bench_vocab("ggml-vocab-llama-spm.gguf", "Llama 2 SPM", text, len, min_s);
    free(text);
    return 0;
}
