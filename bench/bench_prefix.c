/* bench_prefix.c: the seed's workload in process — a markdown table of people as a shared
 * prefix (~1,600 tokens for 30 rows with the Llama 3 vocabulary) and short questions about it —
 * measuring time to first token (max_tokens 1) through the engine, side by side in one run:
 *
 *   alone      each question with no table (the floor a cached prefix should approach)
 *   off        table + question, prefix caching off (every prompt computed in full)
 *   on         table + question, prefix caching on (the first warms the cache, the rest hit)
 *   on-0%      prefix caching on, but every request has its own cache salt: 0% hits, the
 *              overhead control (must be within noise of "off")
 *
 * usage: bench_prefix -m MODEL [-t THREADS] [--rows N] [--questions N] [--reps N]
 * Prints per-mode median / mean TTFT and the ratios the issue tracks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cllm/engine.h"
#include "core/clock.h"

static const char *first_names[] = { "John", "Jane", "Alice", "Bob", "Carol", "Dave", "Emma", "Frank", "Grace", "Henry",
                                     "Irene", "Jack", "Karen", "Leo", "Mia", "Noah", "Olivia", "Peter", "Quinn", "Rachel",
                                     "Steve", "Tina", "Umar", "Victor", "Wendy", "Xavier", "Yara", "Zack", "Amy", "Ben" };
static const char *last_names[] = { "Doe", "Smith", "Johnson", "Brown", "White", "Green", "Black", "Blue", "Yellow",
                                    "Violet", "Orange", "Indigo", "Red" };
static const char *jobs[] = { "Engineer", "Doctor", "Teacher", "Artist", "Scientist", "Lawyer", "Musician", "Chef" };
static const char *countries[] = { "USA", "Canada", "UK", "Australia", "New Zealand", "Ireland" };
static const char *cities[] = { "Springfield, IL", "Toronto, ON", "London, UK", "Sydney, NSW", "Wellington, NZ",
                                "Dublin, IE", "New York, NY", "Vancouver, BC", "Manchester, UK", "Melbourne, VIC" };
static const char *streets[] = { "Elm", "Oak", "Pine", "Maple", "Birch", "Cedar", "Ash", "Spruce", "Fir", "Willow" };

/* The seed's table (same columns and layout), rows generated deterministically. */
static void make_table(char *buf, size_t cap, int rows)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n,
                          "You are a helpful assistant in recognizes the content of tables in markdown format. Here is a "
                          "table as follows.\n# Table\n"
                          "| ID  | Name          | Age | Occupation    | Country       | Email                  | Phone "
                          "Number   | Address                       |\n"
                          "|-----|---------------|-----|---------------|---------------|------------------------|-------"
                          "---------|------------------------------|\n");
    for (int i = 0; i < rows && n < cap; i++) {
        const char *fn = first_names[i % 30], *ln = last_names[(i * 7) % 13];
        char name[64], email[64];
        snprintf(name, sizeof(name), "%s %s", fn, ln);
        snprintf(email, sizeof(email), "%c%s.%c@example.com", fn[0] + 32, fn + 1, ln[0] + 32);
        n += (size_t)snprintf(buf + n, cap - n, "| %-3d | %-13s | %-3d | %-13s | %-13s | %-22s | 555-%04d       | %d %s St, %-14s|\n",
                              i + 1, name, 25 + (i * 7) % 26, jobs[i % 8], countries[i % 6], email, (i * 1237) % 10000,
                              100 + (i * 97) % 900, streets[i % 10], cities[i % 10]);
    }
}

static const char *questions[] = {
    "Question: what is the age of John Doe? Your answer: The age of John Doe is ",
    "Question: what is the age of Zack Blue? Your answer: The age of Zack Blue is ",
    "Question: Which country is Ben Black from? Your answer: The country of Ben Black is ",
    "Question: Who has rachel.r@example.com as their email domain? Your answer: The email domain belongs to ",
    "Question: What is the phone number for contacting Karen Red? Your answer: The phone number is ",
    "Question: What is the occupation of Tina Blue? Your answer: The occupation of Tina Blue is ",
    "Question: What is the name of the person with id as 29? Your answer: The name of the person is ",
    "Question: What is the address of Alice Johnson? Your answer: The address of Alice Johnson is ",
    "Question: What is the id of Irene Orange? Your answer: The id of Irene Orange is ",
    "Question: What is the age of Leo Brown? Your answer: The age of Leo Brown is ",
};

typedef struct {
    double ttft;
    int n_prompt, n_cached;
} result_t;

/* Runs one request to its first token; returns its TTFT. */
static int run_one(cllm_engine_t *e, const char *prompt, const char *salt, result_t *res)
{
    cllm_request_t q;
    cllm_output_t *o = NULL;
    uint64_t id;
    double t0;
    cllm_request_init(&q);
    q.prompt = prompt;
    q.prompt_len = strlen(prompt);
    q.max_tokens = 1;
    q.temperature = 0.0f;
    q.ignore_eos = true;
    q.cache_salt = salt;
    q.cache_salt_len = salt ? strlen(salt) : 0;
    t0 = clock_now_s();
    if (cllm_engine_submit(e, &q, &id) != CLLM_OK) return -1;
    for (;;) {
        int32_t n;
        if (cllm_engine_step(e, &n) != CLLM_OK) return -1;
        if (cllm_engine_poll(e, id, 0, &o) != CLLM_OK) return -1;
        if (o && o->finish) break;
        cllm_output_free(o);
        o = NULL;
    }
    res->ttft = clock_now_s() - t0;
    res->n_prompt = o->n_prompt_tokens;
    res->n_cached = o->n_cached_tokens;
    cllm_output_free(o);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    int threads = 2, rows = 30, nq = 10, reps = 1;
    static char table[65536], prompt[70000];
    enum { ALONE, OFF, ON, ON0, N_MODES };
    static const char *names[N_MODES] = { "alone", "off", "on", "on-0%" };
    double ttft[N_MODES][64], med[N_MODES];
    int n_meas[N_MODES] = { 0 }, n_prompt = 0, n_cached_on = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--questions") && i + 1 < argc) nq = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_prefix -m MODEL [-t THREADS] [--rows N] [--questions N<=10] [--reps N]\n");
            return 2;
        }
    }
    if (!model || nq < 2 || nq > 10 || reps < 1 || reps * nq > 64) {
        fprintf(stderr, "bench_prefix: -m MODEL is required; --questions 2..10; reps x questions <= 64\n");
        return 2;
    }
    make_table(table, sizeof(table), rows);

    /* the four modes interleaved per question, so drift in machine load hits them alike */
    {
        cllm_engine_config_t cfg;
        cllm_engine_t *e_on, *e_off;
        cllm_engine_config_default(&cfg);
        cfg.model_path = model;
        cfg.n_threads = threads;
        cfg.max_model_len = 4096;
        cfg.max_num_seqs = 4;
        if (cllm_engine_create(&cfg, &e_on) != CLLM_OK) {
            fprintf(stderr, "bench_prefix: %s\n", cllm_error_message());
            return 1;
        }
        cfg.enable_prefix_caching = false;
        if (cllm_engine_create(&cfg, &e_off) != CLLM_OK) {
            fprintf(stderr, "bench_prefix: %s\n", cllm_error_message());
            return 1;
        }
        for (int r = 0; r < reps; r++) {
            char salt[32];
            result_t res;
            /* warm the cache with the first question (not measured) */
            snprintf(prompt, sizeof(prompt), "%s\nBased on the table above, please answer this question:\n%s", table,
                     questions[0]);
            snprintf(salt, sizeof(salt), "rep%d", r);
            if (run_one(e_on, prompt, salt, &res)) goto fail;
            for (int qi = 1; qi < nq; qi++) {
                snprintf(prompt, sizeof(prompt), "%s\nBased on the table above, please answer this question:\n%s", table,
                         questions[qi]);
                if (run_one(e_on, questions[qi], salt, &res)) goto fail;
                ttft[ALONE][n_meas[ALONE]++] = res.ttft;
                if (run_one(e_off, prompt, NULL, &res)) goto fail;
                ttft[OFF][n_meas[OFF]++] = res.ttft;
                n_prompt = res.n_prompt;
                if (run_one(e_on, prompt, salt, &res)) goto fail;
                ttft[ON][n_meas[ON]++] = res.ttft;
                n_cached_on = res.n_cached;
                {
                    char own[48];
                    snprintf(own, sizeof(own), "control-%d-%d", r, qi);
                    if (run_one(e_on, prompt, own, &res)) goto fail;
                    ttft[ON0][n_meas[ON0]++] = res.ttft;
                    if (res.n_cached != 0) fprintf(stderr, "bench_prefix: the control had a hit\n");
                }
                fprintf(stderr, "\rquestion %d/%d", qi + r * (nq - 1), reps * (nq - 1));
            }
        }
        fprintf(stderr, "\n");
        cllm_engine_destroy(e_on);
        cllm_engine_destroy(e_off);
    }
    printf("model %s, %d threads, %d-row table: %d prompt tokens, %d cached with prefix caching on\n", model, threads, rows,
           n_prompt, n_cached_on);
    printf("%-8s %10s %10s\n", "mode", "median ms", "mean ms");
    for (int m = 0; m < N_MODES; m++) {
        double sum = 0;
        for (int i = 0; i < n_meas[m]; i++) sum += ttft[m][i];
        med[m] = median(ttft[m], n_meas[m]);
        printf("%-8s %10.1f %10.1f\n", names[m], med[m] * 1e3, sum / n_meas[m] * 1e3);
    }
    printf("TTFT off / on (cached prefix):   %.2fx faster\n", med[OFF] / med[ON]);
    printf("TTFT on (cached) / alone:        %.3f (target <= 1.2)\n", med[ON] / med[ALONE]);
    printf("TTFT on at 0%% hits / off:        %.3f (target within 2%%)\n", med[ON0] / med[OFF]);
    return 0;

fail:
    fprintf(stderr, "bench_prefix: %s\n", cllm_error_message());
    return 1;
}
