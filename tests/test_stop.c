/* test_stop.c: stop conditions and held-back text.
 *
 * Scripted cases (a stop string inside one token, across three tokens, false starts, several
 * stop strings, stop token ids, EOG with and without ignore_eos, max_tokens, release at
 * finish, validation), then a randomized comparison with a direct reference: for random texts
 * cut into random tokens, the concatenated output must be the text up to the earliest stop
 * string, and nothing may be emitted that a later stop would have to take back.
 * Exits non-zero on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/stop.h"
#include "check.h"


/* A checker plus the text it has emitted so far. */
typedef struct {
    stop_checker_t *sc;
    char out[8192];
    size_t out_len;
    stop_result_t last;
} run_t;

static void run_init(run_t *r, const char *const *strings, size_t n_strings, const int32_t *ids, size_t n_ids,
                     bool ignore_eos, int32_t max_tokens)
{
    stop_params_t p = { strings, n_strings, ids, n_ids, ignore_eos, max_tokens };
    memset(r, 0, sizeof(*r));
    if (stop_checker_create(&p, &r->sc) != CLLM_OK) {
        fprintf(stderr, "FATAL: stop_checker_create: %s\n", cllm_error_message());
        exit(1);
    }
}

static void run_append(run_t *r, const stop_result_t *res)
{
    if (r->out_len + res->len < sizeof(r->out)) {
        memcpy(r->out + r->out_len, res->text, res->len);
        r->out_len += res->len;
    }
    r->out[r->out_len] = '\0';
}

/* Pushes one token; returns the text emitted for it as a NUL-terminated static string. */
static const char *run_push(run_t *r, int32_t token, bool is_eog, const char *text)
{
    static char emitted[8192];
    status_t st = stop_check_push(r->sc, token, is_eog, text, strlen(text), &r->last);
    CHECK(st == CLLM_OK, "push '%s': %s", text, cllm_error_message());
    if (st != CLLM_OK) {
        emitted[0] = '\0';
        return emitted;
    }
    size_t n = r->last.len < sizeof(emitted) - 1 ? r->last.len : sizeof(emitted) - 1;
    memcpy(emitted, r->last.text, n);
    emitted[n] = '\0';
    run_append(r, &r->last);
    return emitted;
}

static void run_finish(run_t *r)
{
    stop_check_finish(r->sc, &r->last);
    run_append(r, &r->last);
}

static void run_free(run_t *r)
{
    stop_checker_destroy(r->sc);
    r->sc = NULL;
}

#define EXPECT_STR(got, want) CHECK(strcmp((got), (want)) == 0, "got '%s', want '%s'", (got), (want))

static void test_inside_one_token(void)
{
    const char *stops[] = { "END" };
    run_t r;
    run_init(&r, stops, 1, NULL, 0, false, 0);
    EXPECT_STR(run_push(&r, 10, false, "Hi "), "Hi ");
    EXPECT_STR(run_push(&r, 11, false, "abcENDxyz"), "abc");
    CHECK(r.last.reason == STOP_REASON_STOP && r.last.stop_string == 0 && r.last.stop_token == -1,
          "reason %d string %d token %d", r.last.reason, r.last.stop_string, r.last.stop_token);
    EXPECT_STR(r.out, "Hi abc");
    /* Finished: a further push is refused, finish gives nothing more. */
    stop_result_t res;
    CHECK(stop_check_push(r.sc, 12, false, "x", 1, &res) == CLLM_ERR_INVALID_ARG, "push after stop");
    run_finish(&r);
    CHECK(r.last.len == 0, "finish after stop released %zu bytes", r.last.len);
    CHECK(stop_check_n_tokens(r.sc) == 2, "n_tokens %lld", (long long)stop_check_n_tokens(r.sc));
    run_free(&r);
}

static void test_across_three_tokens(void)
{
    const char *stops[] = { "END" };
    run_t r;
    run_init(&r, stops, 1, NULL, 0, false, 0);
    EXPECT_STR(run_push(&r, 1, false, "Hello E"), "Hello ");
    CHECK(r.last.reason == STOP_REASON_NONE, "no stop yet");
    EXPECT_STR(run_push(&r, 2, false, "N"), "");
    EXPECT_STR(run_push(&r, 3, false, "D more"), "");
    CHECK(r.last.reason == STOP_REASON_STOP && r.last.stop_string == 0, "stop across tokens");
    EXPECT_STR(r.out, "Hello ");
    run_free(&r);
}

static void test_false_start(void)
{
    const char *stops[] = { "END" };
    run_t r;
    run_init(&r, stops, 1, NULL, 0, false, 0);
    EXPECT_STR(run_push(&r, 1, false, "xE"), "x");
    EXPECT_STR(run_push(&r, 2, false, "N"), "");
    EXPECT_STR(run_push(&r, 3, false, "d"), "ENd"); /* case matters: not a stop */
    EXPECT_STR(run_push(&r, 4, false, "EEN"), "E");  /* a second E restarts the match */
    EXPECT_STR(run_push(&r, 5, false, "!"), "EN!");
    CHECK(r.last.reason == STOP_REASON_NONE, "no stop");
    EXPECT_STR(r.out, "xENdEEN!");

    /* Overlapping prefix: "aab" in "a","a","a","b" starts at the second a. */
    const char *stops2[] = { "aab" };
    run_t r2;
    run_init(&r2, stops2, 1, NULL, 0, false, 0);
    EXPECT_STR(run_push(&r2, 1, false, "a"), "");
    EXPECT_STR(run_push(&r2, 1, false, "a"), "");
    EXPECT_STR(run_push(&r2, 1, false, "a"), "a");
    EXPECT_STR(run_push(&r2, 2, false, "b"), "");
    CHECK(r2.last.reason == STOP_REASON_STOP, "aab found");
    EXPECT_STR(r2.out, "a");
    run_free(&r);
    run_free(&r2);
}

static void test_several_strings(void)
{
    /* "lo w" starts before "world" even though "world" is listed first. */
    const char *stops[] = { "world", "lo w" };
    run_t r;
    run_init(&r, stops, 2, NULL, 0, false, 0);
    EXPECT_STR(run_push(&r, 1, false, "hel"), "he"); /* "l" may begin "lo w" */
    EXPECT_STR(run_push(&r, 2, false, "lo world"), "l");
    CHECK(r.last.reason == STOP_REASON_STOP && r.last.stop_string == 1, "earliest wins: got %d",
          r.last.stop_string);
    EXPECT_STR(r.out, "hel");
    run_free(&r);

    /* Same start: the shorter one. */
    const char *stops2[] = { "abc", "ab" };
    run_init(&r, stops2, 2, NULL, 0, false, 0);
    EXPECT_STR(run_push(&r, 1, false, "xabcd"), "x");
    CHECK(r.last.stop_string == 1, "shortest at the same start: got %d", r.last.stop_string);
    run_free(&r);

    /* The hold keeps the longest possible prefix over all strings. */
    const char *stops3[] = { "xyz", "zzzq" };
    run_init(&r, stops3, 2, NULL, 0, false, 0);
    EXPECT_STR(run_push(&r, 1, false, "azz"), "a");
    EXPECT_STR(run_push(&r, 1, false, "z"), "");
    EXPECT_STR(run_push(&r, 1, false, "z"), "z");
    EXPECT_STR(run_push(&r, 1, false, "q!"), "");
    CHECK(r.last.stop_string == 1, "zzzq: got %d", r.last.stop_string);
    EXPECT_STR(r.out, "az");
    run_free(&r);
}

static void test_stop_token(void)
{
    const char *stops[] = { "END" };
    const int32_t ids[] = { 7, 9 };
    run_t r;
    run_init(&r, stops, 1, ids, 2, false, 0);
    EXPECT_STR(run_push(&r, 1, false, "xE"), "x");
    /* The stop token's text is dropped, the held "E" is released. */
    EXPECT_STR(run_push(&r, 9, false, "zzz"), "E");
    CHECK(r.last.reason == STOP_REASON_STOP && r.last.stop_token == 9 && r.last.stop_string == -1,
          "stop token: reason %d token %d", r.last.reason, r.last.stop_token);
    EXPECT_STR(r.out, "xE");
    run_free(&r);

    /* Stop token ids stop even with ignore_eos. */
    run_init(&r, NULL, 0, ids, 2, true, 0);
    run_push(&r, 1, false, "a");
    run_push(&r, 7, false, "b");
    CHECK(r.last.reason == STOP_REASON_STOP && r.last.stop_token == 7, "stop id under ignore_eos");
    run_free(&r);
}

static void test_eog(void)
{
    const char *stops[] = { "END" };
    run_t r;
    run_init(&r, stops, 1, NULL, 0, false, 0);
    EXPECT_STR(run_push(&r, 1, false, "The EN"), "The ");
    EXPECT_STR(run_push(&r, 2, true, "</s>"), "EN");
    CHECK(r.last.reason == STOP_REASON_STOP && r.last.stop_token == 2, "EOG stops");
    EXPECT_STR(r.out, "The EN");
    run_free(&r);

    /* ignore_eos: EOG is plain text. */
    run_init(&r, stops, 1, NULL, 0, true, 0);
    EXPECT_STR(run_push(&r, 2, true, "</s>"), "</s>");
    CHECK(r.last.reason == STOP_REASON_NONE, "EOG ignored");
    EXPECT_STR(run_push(&r, 3, false, "more"), "more");
    run_free(&r);
}

static void test_max_tokens(void)
{
    const char *stops[] = { "END" };
    run_t r;
    run_init(&r, stops, 1, NULL, 0, false, 3);
    EXPECT_STR(run_push(&r, 1, false, "a"), "a");
    EXPECT_STR(run_push(&r, 2, false, "b"), "b");
    CHECK(r.last.reason == STOP_REASON_NONE, "not yet");
    /* The last token's held-back "E" is released with the length stop. */
    EXPECT_STR(run_push(&r, 3, false, "cE"), "cE");
    CHECK(r.last.reason == STOP_REASON_LENGTH, "length: reason %d", r.last.reason);
    CHECK(strcmp(stop_reason_str(r.last.reason), "length") == 0, "reason string");
    run_free(&r);

    /* A stop on the last allowed token wins over length. */
    run_init(&r, stops, 1, NULL, 0, false, 2);
    run_push(&r, 1, false, "a");
    EXPECT_STR(run_push(&r, 2, false, "bEND"), "b");
    CHECK(r.last.reason == STOP_REASON_STOP, "stop wins over length");
    CHECK(strcmp(stop_reason_str(r.last.reason), "stop") == 0, "reason string");
    CHECK(stop_reason_str(STOP_REASON_NONE) == NULL, "none is NULL");
    run_free(&r);

    /* max_tokens 1: the first token ends it. */
    run_init(&r, NULL, 0, NULL, 0, false, 1);
    EXPECT_STR(run_push(&r, 1, false, "only"), "only");
    CHECK(r.last.reason == STOP_REASON_LENGTH, "max_tokens 1");
    run_free(&r);
}

static void test_finish_releases(void)
{
    const char *stops[] = { "</answer>" };
    run_t r;
    run_init(&r, stops, 1, NULL, 0, false, 0);
    EXPECT_STR(run_push(&r, 1, false, "42 </ans"), "42 ");
    run_finish(&r);
    CHECK(r.last.reason == STOP_REASON_NONE && r.last.len == 5, "finish releases '</ans': %zu", r.last.len);
    EXPECT_STR(r.out, "42 </ans");
    stop_result_t res;
    CHECK(stop_check_push(r.sc, 1, false, "x", 1, &res) == CLLM_ERR_INVALID_ARG, "push after finish");
    run_free(&r);
}

static void test_long_text(void)
{
    /* A token text far longer than the initial buffer, stop string near its end. */
    static char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big + 4900, "STOP", 4);
    const char *stops[] = { "STOP" };
    run_t r;
    run_init(&r, stops, 1, NULL, 0, false, 0);
    EXPECT_STR(run_push(&r, 1, false, "ST"), "");
    const char *got = run_push(&r, 2, false, big);
    CHECK(strlen(got) == 4902 && memcmp(got, "ST", 2) == 0, "emitted %zu bytes", strlen(got));
    CHECK(r.last.reason == STOP_REASON_STOP, "stop in a long text");
    run_free(&r);
}

static void test_validation(void)
{
    stop_checker_t *sc = NULL;
    const char *empty[] = { "" };
    const char *null_str[] = { NULL };
    stop_params_t p = { empty, 1, NULL, 0, false, 0 };
    CHECK(stop_checker_create(&p, &sc) == CLLM_ERR_INVALID_ARG && !sc, "empty stop string");
    p.strings = null_str;
    CHECK(stop_checker_create(&p, &sc) == CLLM_ERR_INVALID_ARG && !sc, "NULL stop string");
    p.strings = NULL;
    CHECK(stop_checker_create(&p, &sc) == CLLM_ERR_INVALID_ARG && !sc, "NULL strings array");

    const char *many[STOP_MAX_STRINGS + 1];
    for (int i = 0; i <= STOP_MAX_STRINGS; i++)
        many[i] = "s";
    p.strings = many;
    p.n_strings = STOP_MAX_STRINGS + 1;
    CHECK(stop_checker_create(&p, &sc) == CLLM_ERR_RANGE && !sc, "too many stop strings");
    p.n_strings = STOP_MAX_STRINGS;
    CHECK(stop_checker_create(&p, &sc) == CLLM_OK && sc, "16 stop strings are fine");
    stop_checker_destroy(sc);
    sc = NULL;

    static char too_long[STOP_MAX_STRING_LEN + 2];
    memset(too_long, 'a', STOP_MAX_STRING_LEN + 1);
    const char *long_one[] = { too_long };
    p.strings = long_one;
    p.n_strings = 1;
    CHECK(stop_checker_create(&p, &sc) == CLLM_ERR_RANGE && !sc, "stop string too long");
    too_long[STOP_MAX_STRING_LEN] = '\0';
    CHECK(stop_checker_create(&p, &sc) == CLLM_OK && sc, "256 bytes is fine");
    stop_checker_destroy(sc);
    sc = NULL;

    const int32_t bad_ids[] = { 3, -1 };
    stop_params_t q = { NULL, 0, bad_ids, 2, false, 0 };
    CHECK(stop_checker_create(&q, &sc) == CLLM_ERR_INVALID_ARG && !sc, "negative stop token id");
    q.n_token_ids = STOP_MAX_TOKEN_IDS + 1;
    CHECK(stop_checker_create(&q, &sc) == CLLM_ERR_RANGE && !sc, "too many stop token ids");
    CHECK(stop_checker_create(NULL, &sc) == CLLM_ERR_INVALID_ARG, "NULL params");
}

/* ---- randomized against a reference ----------------------------------------------------- */

static uint64_t g_lcg = 99;
static uint32_t test_rand(uint32_t n)
{
    g_lcg = g_lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_lcg >> 33) % n;
}

/* The earliest stop string in t (n), shortest at equal start: its start, or n if none. */
static size_t ref_first_stop(const char *t, size_t n, const char *const *stops, size_t n_stops)
{
    for (size_t at = 0; at < n; at++)
        for (size_t len = 1; at + len <= n; len++)
            for (size_t k = 0; k < n_stops; k++)
                if (strlen(stops[k]) == len && memcmp(t + at, stops[k], len) == 0)
                    return at;
    return n;
}

/* The longest suffix of t (n) that is a proper prefix of a stop string: what must be held. */
static size_t ref_hold(const char *t, size_t n, const char *const *stops, size_t n_stops)
{
    size_t best = 0;
    for (size_t k = 0; k < n_stops; k++)
        for (size_t h = 1; h < strlen(stops[k]) && h <= n; h++)
            if (memcmp(t + n - h, stops[k], h) == 0 && h > best)
                best = h;
    return best;
}

static void test_random(void)
{
    const char *const sets[][3] = { { "ab", NULL, NULL }, { "aab", "ba", NULL }, { "abab", "bbb", "aaab" } };
    const size_t set_n[] = { 1, 2, 3 };
    for (int trial = 0; trial < 3000; trial++) {
        const int si = trial % 3;
        const char *const *stops = sets[si];
        char text[64];
        const size_t n = 1 + test_rand(40);
        for (size_t i = 0; i < n; i++)
            text[i] = "abc"[test_rand(trial % 2 ? 2 : 3)];
        text[n] = '\0';
        const size_t want = ref_first_stop(text, n, stops, set_n[si]);

        run_t r;
        run_init(&r, (const char **)stops, set_n[si], NULL, 0, false, 0);
        size_t pos = 0;
        stop_result_t res = { 0 };
        while (pos < n) {
            size_t len = test_rand(5); /* empty tokens too */
            if (len > n - pos)
                len = n - pos;
            if (stop_check_push(r.sc, 1, false, text + pos, len, &res) != CLLM_OK)
                break;
            pos += len;
            run_append(&r, &res);
            /* Never emit past the earliest stop. */
            if (r.out_len > want)
                break;
            if (res.reason != STOP_REASON_NONE)
                break;
            /* Hold back no more than a possible stop string start. */
            const size_t hold = ref_hold(text, pos, stops, set_n[si]);
            CHECK(r.out_len == pos - hold, "text '%s' after %zu bytes: emitted %zu, expected %zu", text, pos,
                  r.out_len, pos - hold);
        }
        if (res.reason == STOP_REASON_NONE)
            run_finish(&r);
        const bool ok = r.out_len == want && memcmp(r.out, text, want) == 0 &&
                        (want < n) == (res.reason == STOP_REASON_STOP);
        CHECK(ok, "text '%s' stops at %zu: got '%s' (reason %d)", text, want, r.out, res.reason);
        run_free(&r);
        if (!ok)
            break;
    }
}

int main(void)
{
    test_inside_one_token();
    test_across_three_tokens();
    test_false_start();
    test_several_strings();
    test_stop_token();
    test_eog();
    test_max_tokens();
    test_finish_releases();
    test_long_text();
    test_validation();
    test_random();
    if (check_failures) {
        fprintf(stderr, "test_stop: %d failure(s)\n", check_failures);
        return 1;
    }
    printf("test_stop: all passed\n");
    return 0;
}
