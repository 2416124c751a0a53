/* bench_dataset.c: the benchmark workloads (see bench_dataset.h): the seed's table questions,
 * prefix-repetition, random text and JSONL files.
 *
 * Invariants: a created dataset holds n_warmup + n prompts, each with exactly one of text,
 * messages_json or token_ids set; everything is owned by the dataset and freed by
 * bench_dataset_free. Generation is a pure function of the config (same seed, same prompts). */
#include "benchmark/bench_dataset.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "benchmark/bench_stats.h"

/* ---- a growable string ---- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *p;
        while (cap < b->len + n + 1) cap *= 2;
        if (!(p = realloc(b->p, cap))) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_fmt(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(sbuf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) sb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Returns the string (caller frees) or NULL after an allocation failure. */
static char *sb_take(sbuf_t *b)
{
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    if (!b->p) return strdup("");
    return b->p;
}

/* ---- table-qa ---- */

typedef struct {
    const char *name, *occupation, *country, *email, *phone, *address;
    int age;
} person_t;

/* The seed's 30 rows (send_request.sh), field by field; the layout is made by format_row. */
static const person_t seed_people[30] = {
    { "John Doe", "Engineer", "USA", "john.doe@example.com", "555-1234", "123 Elm St, Springfield, IL", 29 },
    { "Jane Smith", "Doctor", "Canada", "jane.smith@example.com", "555-5678", "456 Oak St, Toronto, ON", 34 },
    { "Alice Johnson", "Teacher", "UK", "alice.j@example.com", "555-8765", "789 Pine St, London, UK", 27 },
    { "Bob Brown", "Artist", "Australia", "bob.b@example.com", "555-4321", "321 Maple St, Sydney, NSW", 45 },
    { "Carol White", "Scientist", "New Zealand", "carol.w@example.com", "555-6789", "654 Birch St, Wellington, NZ", 31 },
    { "Dave Green", "Lawyer", "Ireland", "dave.g@example.com", "555-3456", "987 Cedar St, Dublin, IE", 28 },
    { "Emma Black", "Musician", "USA", "emma.b@example.com", "555-1111", "246 Ash St, New York, NY", 40 },
    { "Frank Blue", "Chef", "Canada", "frank.b@example.com", "555-2222", "135 Spruce St, Vancouver, BC", 37 },
    { "Grace Yellow", "Engineer", "UK", "grace.y@example.com", "555-3333", "864 Fir St, Manchester, UK", 50 },
    { "Henry Violet", "Artist", "Australia", "henry.v@example.com", "555-4444", "753 Willow St, Melbourne, VIC", 32 },
    { "Irene Orange", "Scientist", "New Zealand", "irene.o@example.com", "555-5555", "912 Poplar St, Auckland, NZ", 26 },
    { "Jack Indigo", "Teacher", "Ireland", "jack.i@example.com", "555-6666", "159 Elm St, Cork, IE", 38 },
    { "Karen Red", "Lawyer", "USA", "karen.r@example.com", "555-7777", "357 Cedar St, Boston, MA", 41 },
    { "Leo Brown", "Chef", "Canada", "leo.b@example.com", "555-8888", "246 Oak St, Calgary, AB", 30 },
    { "Mia Green", "Musician", "UK", "mia.g@example.com", "555-9999", "975 Pine St, Edinburgh, UK", 33 },
    { "Noah Yellow", "Doctor", "Australia", "noah.y@example.com", "555-0000", "864 Birch St, Brisbane, QLD", 29 },
    { "Olivia Blue", "Engineer", "New Zealand", "olivia.b@example.com", "555-1212", "753 Maple St, Hamilton, NZ", 35 },
    { "Peter Black", "Artist", "Ireland", "peter.b@example.com", "555-3434", "912 Fir St, Limerick, IE", 42 },
    { "Quinn White", "Scientist", "USA", "quinn.w@example.com", "555-5656", "159 Willow St, Seattle, WA", 28 },
    { "Rachel Red", "Teacher", "Canada", "rachel.r@example.com", "555-7878", "357 Poplar St, Ottawa, ON", 31 },
    { "Steve Green", "Lawyer", "UK", "steve.g@example.com", "555-9090", "753 Elm St, Birmingham, UK", 44 },
    { "Tina Blue", "Musician", "Australia", "tina.b@example.com", "555-1213", "864 Cedar St, Perth, WA", 36 },
    { "Umar Black", "Chef", "New Zealand", "umar.b@example.com", "555-3435", "975 Spruce St, Christchurch, NZ", 39 },
    { "Victor Yellow", "Engineer", "Ireland", "victor.y@example.com", "555-5657", "246 Willow St, Galway, IE", 43 },
    { "Wendy Orange", "Artist", "USA", "wendy.o@example.com", "555-7879", "135 Elm St, Denver, CO", 27 },
    { "Xavier Green", "Scientist", "Canada", "xavier.g@example.com", "555-9091", "357 Oak St, Montreal, QC", 34 },
    { "Yara Red", "Teacher", "UK", "yara.r@example.com", "555-1214", "975 Pine St, Leeds, UK", 41 },
    { "Zack Blue", "Lawyer", "Australia", "zack.b@example.com", "555-3436", "135 Birch St, Adelaide, SA", 30 },
    { "Amy White", "Musician", "New Zealand", "amy.w@example.com", "555-5658", "159 Maple St, Wellington, NZ", 33 },
    { "Ben Black", "Chef", "Ireland", "ben.b@example.com", "555-7870", "246 Fir St, Waterford, IE", 38 },
};

/* The seed's ten questions, in its order; they need its 30 people. */
static const char *const seed_questions[10] = {
    "Question: what is the age of John Doe? Your answer: The age of John Doe is ",
    "Question: what is the age of Zack Blue? Your answer: The age of Zack Blue is ",
    "Question: Which country is Ben Black from? Your answer: The country of Ben Black is ",
    "Question: Who has rachel.r@example.com as their email domain? Your answer: The email domain "
    "rachel.r@example.com belongs to ",
    "Question: What is the phone number for contacting Karen Red? Your answer: The phone number for contacting "
    "Karen Red is ",
    "Question: What is the occupation of Tina Blue? Your answer: The occupation of Tina Blue is ",
    "Question: What is the name of the person with id as 29? Your answer: The name of the person with id as 29 is ",
    "Question: What is the address of Alice Johnson? Your answer: The address of Alice Johnson is ",
    "Question: What is the id of Irene Orange? Your answer: The id of Irene Orange is ",
    "Question: What is the age of Leo Brown? Your answer: The age of Leo Brown is ",
};

static const char table_intro[] =
    "You are a helpful assistant in recognizes the content of tables in markdown format. Here is a table as follows.\n"
    "# Table\n"
    "| ID  | Name          | Age | Occupation    | Country       | Email                  | Phone Number   |"
    " Address                       |\n"
    "|-----|---------------|-----|---------------|---------------|------------------------|----------------|"
    "------------------------------|";

static const char *const gen_first[26] = { "Adam",  "Bella", "Carl",  "Diana",   "Ethan", "Fiona", "George",
                                           "Hanna", "Ivan",  "Julia", "Kevin",   "Laura", "Mark",  "Nina",
                                           "Oscar", "Paula", "Quincy", "Rosa",   "Sam",   "Tara",  "Ulla",
                                           "Vera",  "Walt",  "Xenia", "Yusuf",   "Zoe" };
static const char *const gen_last[12] = { "Stone", "Rivers", "Hill", "Fields", "Brooks", "Woods",
                                          "Lake",  "Marsh",  "Dale", "Banks",  "Ford",   "Glen" };
static const char *const gen_occupation[8] = { "Engineer", "Doctor", "Teacher", "Artist",
                                               "Scientist", "Lawyer", "Musician", "Chef" };
static const char *const gen_country[6] = { "USA", "Canada", "UK", "Australia", "New Zealand", "Ireland" };
static const char *const gen_city[6][3] = {
    { "Austin, TX", "Portland, OR", "Chicago, IL" }, { "Halifax, NS", "Regina, SK", "Victoria, BC" },
    { "Bristol, UK", "York, UK", "Glasgow, UK" },    { "Hobart, TAS", "Darwin, NT", "Cairns, QLD" },
    { "Nelson, NZ", "Napier, NZ", "Dunedin, NZ" },   { "Sligo, IE", "Kilkenny, IE", "Athlone, IE" },
};
static const char *const gen_street[8] = { "Elm", "Oak", "Pine", "Maple", "Birch", "Cedar", "Ash", "Willow" };

/* Person of row r (1-based); rows past 30 are generated into the caller's buffers. */
typedef struct {
    char name[48], email[64], phone[16], address[64];
} person_buf_t;

static person_t person_at(int32_t r, person_buf_t *pb)
{
    person_t p;
    int32_t k = r - 31, c;
    char first_lower[16];
    size_t i;
    if (r >= 1 && r <= 30) return seed_people[r - 1];
    if (k / 312 > 0) snprintf(pb->name, sizeof(pb->name), "%s %s %d", gen_first[k % 26], gen_last[(k / 26) % 12], k / 312 + 1);
    else snprintf(pb->name, sizeof(pb->name), "%s %s", gen_first[k % 26], gen_last[(k / 26) % 12]);
    for (i = 0; gen_first[k % 26][i] && i + 1 < sizeof(first_lower); i++)
        first_lower[i] = (char)tolower((unsigned char)gen_first[k % 26][i]);
    first_lower[i] = '\0';
    snprintf(pb->email, sizeof(pb->email), "%s.%c%d@example.com", first_lower,
             tolower((unsigned char)gen_last[(k / 26) % 12][0]), (int)r);
    snprintf(pb->phone, sizeof(pb->phone), "555-%04d", (int)((r * 7919) % 10000));
    c = r % 6;
    snprintf(pb->address, sizeof(pb->address), "%d %s St, %s", (int)(100 + (r * 113) % 900), gen_street[r % 8],
             gen_city[c][(r / 6) % 3]);
    p.name = pb->name;
    p.email = pb->email;
    p.phone = pb->phone;
    p.address = pb->address;
    p.occupation = gen_occupation[r % 8];
    p.country = gen_country[c];
    p.age = 22 + (int)((r * 37) % 40);
    return p;
}

char *bench_dataset_table_prompt(int32_t rows)
{
    sbuf_t b = { 0 };
    sb_str(&b, table_intro);
    for (int32_t r = 1; r <= rows; r++) {
        person_buf_t pb;
        person_t p = person_at(r, &pb);
        /* the seed's column widths; an address longer than its column runs into the bar */
        sb_fmt(&b, "\n| %-3d | %-13s | %-3d | %-13s | %-13s | %-22s | %-14s | %-29s|", (int)r, p.name, p.age, p.occupation,
               p.country, p.email, p.phone, p.address);
    }
    return sb_take(&b);
}

size_t bench_dataset_table_question(int32_t rows, int32_t q, char *buf, size_t cap)
{
    person_buf_t pb;
    person_t p;
    int32_t r;
    int n;
    if (rows >= 30 && q >= 0 && q < 10) return (size_t)snprintf(buf, cap, "%s", seed_questions[q]);
    if (rows < 1) return (size_t)snprintf(buf, cap, "%s", "");
    r = 1 + (int32_t)(((int64_t)q * 7 + 3) % rows);
    p = person_at(r, &pb);
    switch (q % 8) {
    case 0: n = snprintf(buf, cap, "Question: what is the age of %s? Your answer: The age of %s is ", p.name, p.name); break;
    case 1:
        n = snprintf(buf, cap, "Question: Which country is %s from? Your answer: The country of %s is ", p.name, p.name);
        break;
    case 2:
        n = snprintf(buf, cap, "Question: Who has %s as their email domain? Your answer: The email domain %s belongs to ",
                     p.email, p.email);
        break;
    case 3:
        n = snprintf(buf, cap,
                     "Question: What is the phone number for contacting %s? Your answer: The phone number for "
                     "contacting %s is ",
                     p.name, p.name);
        break;
    case 4:
        n = snprintf(buf, cap, "Question: What is the occupation of %s? Your answer: The occupation of %s is ", p.name,
                     p.name);
        break;
    case 5:
        n = snprintf(buf, cap,
                     "Question: What is the name of the person with id as %d? Your answer: The name of the person "
                     "with id as %d is ",
                     (int)r, (int)r);
        break;
    case 6:
        n = snprintf(buf, cap, "Question: What is the address of %s? Your answer: The address of %s is ", p.name, p.name);
        break;
    default:
        n = snprintf(buf, cap, "Question: What is the id of %s? Your answer: The id of %s is ", p.name, p.name);
        break;
    }
    return n < 0 ? 0 : (size_t)n;
}

static char *table_message(const char *table, int32_t rows, int32_t q)
{
    sbuf_t b = { 0 };
    char question[512];
    bench_dataset_table_question(rows, q, question, sizeof(question));
    sb_str(&b, table);
    sb_str(&b, "\n\nBased on the table above, please answer this question:\n");
    sb_str(&b, question);
    sb_str(&b, "\n"); /* send_request.sh pipes the prompt through `echo` */
    return sb_take(&b);
}

/* ---- random text ---- */

/* Common English words; with a leading space each is one token in Llama-3-style vocabularies. */
static const char *const common_words[] = {
    "the",    "of",     "and",    "to",     "in",     "is",     "was",    "for",    "on",     "that",   "with",
    "as",     "it",     "by",     "at",     "from",   "his",    "her",    "they",   "be",     "this",   "an",
    "are",    "or",     "had",    "not",    "but",    "one",    "were",   "their",  "have",   "which",  "all",
    "new",    "also",   "after",  "two",    "first",  "time",   "year",   "city",   "school", "world",  "state",
    "house",  "water",  "light",  "river",  "music",  "power",  "night",  "field",  "paper",  "story",  "table",
    "market", "letter", "garden", "window", "friend", "family", "animal", "summer", "winter", "number", "people",
    "place",  "point",  "group",  "north",  "south",  "east",   "west",   "small",  "large",  "great",  "early",
    "later",  "young",  "old",    "long",   "short",  "high",   "low",    "good",   "best",   "right",  "left",
    "open",   "close",  "black",  "white",  "green",  "blue",   "red",    "yellow", "brown",  "stone",  "wood",
    "glass",  "metal",  "road",   "bridge", "train",  "ship",   "plane",  "car",    "book",   "film",   "game",
    "team",   "club",   "song",   "voice",  "word",   "name",   "line",   "side",   "part",   "area",   "land",
    "island", "forest", "mountain", "valley", "lake",  "sea",    "coast",  "village", "church", "castle", "tower",
    "office", "police", "army",   "king",   "queen",  "prince", "doctor", "teacher", "student", "mother", "father",
    "brother", "sister", "child",  "woman",  "man",    "money",  "price",  "value",  "energy", "force",  "speed",
    "color",  "shape",  "size",   "level",  "change", "system", "method", "theory", "study",  "result", "report",
    "order",  "rule",   "law",    "court",  "trade",  "union",  "party",  "army",   "battle", "peace",  "dream",
    "plan",   "idea",   "reason", "answer", "question", "problem", "chance", "choice", "moment", "minute", "hour",
    "day",    "week",   "month",  "morning", "evening", "history", "science", "nature", "health", "travel", "food",
    "bread",  "fruit",  "apple",  "coffee", "tea",    "milk",   "sugar",  "salt",   "fire",   "rain",   "snow",
    "wind",   "cloud",  "sun",    "moon",   "star",   "earth",  "sky",    "heart",  "hand",   "head",   "face",
    "eye",    "door",   "floor",  "wall",   "room",   "bed",    "chair",  "horse",  "dog",    "cat",    "bird",
    "fish",   "tree",   "flower", "grass",  "hill",   "rock",   "sand",   "gold",   "silver", "iron",   "paint",
};

typedef struct {
    const char **words; /* (n_words,) usable words */
    size_t n_words;
    const tokenizer_t *tok;
    bool exact;         /* every word is one token with and without its leading space */
} wordgen_t;

static int32_t count_tokens(const tokenizer_t *tok, const char *text, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(tok, text, len, false, false, &ids, &n) != CLLM_OK) return -1;
    free(ids);
    return (int32_t)n;
}

static status_t wordgen_init(wordgen_t *wg, const tokenizer_t *tok)
{
    size_t n_all = sizeof(common_words) / sizeof(common_words[0]);
    memset(wg, 0, sizeof(*wg));
    wg->tok = tok;
    wg->words = malloc(n_all * sizeof(char *));
    if (!wg->words) return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
    if (tok) {
        for (size_t i = 0; i < n_all; i++) {
            char sp[64];
            int n = snprintf(sp, sizeof(sp), " %s", common_words[i]);
            if (count_tokens(tok, common_words[i], strlen(common_words[i])) == 1 && count_tokens(tok, sp, (size_t)n) == 1)
                wg->words[wg->n_words++] = common_words[i];
        }
        wg->exact = wg->n_words >= 64;
    }
    if (!wg->exact) {
        /* not enough whole-word tokens: use every word and trim texts by encoding them */
        wg->n_words = n_all;
        for (size_t i = 0; i < n_all; i++) wg->words[i] = common_words[i];
    }
    return CLLM_OK;
}

static void wordgen_free(wordgen_t *wg)
{
    free(wg->words);
    wg->words = NULL;
}

/* Appends n_words random words to b, each after a space unless b is empty. */
static void add_words(sbuf_t *b, const wordgen_t *wg, bench_rng_t *rng, int32_t n_words)
{
    for (int32_t i = 0; i < n_words; i++) {
        if (b->len) sb_add(b, " ", 1);
        sb_str(b, wg->words[bench_rng_below(rng, wg->n_words)]);
    }
}

/* Random text of about n_tokens tokens, appended to b (after a space when b is not empty).
 * Without a whole-word vocabulary, draws words until the encoded text (appended part
 * included) is long enough, then drops words from the end while it is too long. */
static void add_random_text(sbuf_t *b, const wordgen_t *wg, bench_rng_t *rng, int32_t n_tokens)
{
    size_t start = b->len;
    int32_t have_before, have;
    if (n_tokens <= 0) return;
    if (!wg->tok || wg->exact) {
        add_words(b, wg, rng, n_tokens);
        return;
    }
    have_before = start ? count_tokens(wg->tok, b->p, start) : 0;
    for (;;) {
        if (b->oom) return;
        have = count_tokens(wg->tok, b->p ? b->p : "", b->len) - have_before;
        if (have < 0 || have >= n_tokens) break;
        add_words(b, wg, rng, (n_tokens - have + 1) / 2 + 1);
    }
    while (have > n_tokens && b->len > start) {
        char *sp = memrchr(b->p + start, ' ', b->len - start);
        b->len = sp ? (size_t)(sp - b->p) : start;
        b->p[b->len] = '\0';
        have = count_tokens(wg->tok, b->p, b->len) - have_before;
    }
}

/* ---- the dataset ---- */

void bench_dataset_config_default(bench_dataset_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->kind = BENCH_DATASET_TABLE_QA;
    cfg->rows = 30;
    cfg->questions = 10;
    cfg->num_prefixes = 1;
    cfg->prefix_len = 256;
    cfg->suffix_len = 256;
    cfg->input_len = 1024;
}

static const char *const kind_names[] = { "table-qa", "prefix-repetition", "random", "jsonl" };

status_t bench_dataset_parse_kind(const char *name, bench_dataset_kind_t *out)
{
    for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
        if (!strcmp(name, kind_names[i])) {
            *out = (bench_dataset_kind_t)i;
            return CLLM_OK;
        }
    return cllm_error(CLLM_ERR_INVALID_ARG, "unknown dataset '%s' (table-qa, prefix-repetition, random or jsonl)", name);
}

const char *bench_dataset_kind_name(bench_dataset_kind_t kind)
{
    return (unsigned)kind < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[kind] : "?";
}

void bench_dataset_free(bench_dataset_t *ds)
{
    if (ds->prompts) {
        for (int32_t i = 0; i < ds->n_warmup + ds->n; i++) {
            free(ds->prompts[i].text);
            free(ds->prompts[i].messages_json);
            free(ds->prompts[i].token_ids);
        }
    }
    free(ds->prompts);
    memset(ds, 0, sizeof(*ds));
}

static status_t make_table_qa(const bench_dataset_config_t *cfg, bench_dataset_t *ds, bench_rng_t *rng)
{
    char *table;
    if (cfg->rows < 1 || cfg->rows > 100000 || cfg->questions < 1)
        return cllm_error(CLLM_ERR_INVALID_ARG, "table-qa needs --rows in [1, 100000] and --questions >= 1");
    if (!(table = bench_dataset_table_prompt(cfg->rows))) return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
    for (int32_t i = 0; i < ds->n_warmup + ds->n; i++) {
        /* warmup: a random question, as the script's warm-up; then questions in order */
        int32_t q = i < ds->n_warmup ? (int32_t)bench_rng_below(rng, (uint64_t)cfg->questions)
                                     : (i - ds->n_warmup) % cfg->questions;
        if (!(ds->prompts[i].text = table_message(table, cfg->rows, q))) {
            free(table);
            return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
        }
    }
    free(table);
    return CLLM_OK;
}

/* prefix-repetition and random (prefix_len 0, one prefix). */
static status_t make_prefix_repetition(const bench_dataset_config_t *cfg, int32_t num_prefixes, int32_t prefix_len,
                                       int32_t suffix_len, bench_dataset_t *ds, bench_rng_t *rng)
{
    wordgen_t wg;
    char **prefixes = NULL;
    int32_t *order = NULL, total = ds->n_warmup + ds->n;
    status_t st = CLLM_OK;

    if (num_prefixes < 1 || prefix_len < 0 || suffix_len < 0 || prefix_len + suffix_len < 1 ||
        prefix_len + suffix_len > 10000000)
        return cllm_error(CLLM_ERR_INVALID_ARG, "bench: bad lengths: %d prefix(es) of %d tokens, suffix %d tokens",
                          num_prefixes, prefix_len, suffix_len);
    if (cfg->token_ids && !cfg->tokenizer)
        return cllm_error(CLLM_ERR_INVALID_ARG, "bench: token-id prompts need a tokenizer (--tokenizer)");
    if ((st = wordgen_init(&wg, cfg->tokenizer)) != CLLM_OK) return st;
    prefixes = calloc((size_t)num_prefixes, sizeof(char *));
    order = malloc((size_t)(ds->n > 0 ? ds->n : 1) * sizeof(int32_t));
    if (!prefixes || !order) {
        st = cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
        goto out;
    }
    for (int32_t p = 0; p < num_prefixes; p++) {
        sbuf_t b = { 0 };
        add_random_text(&b, &wg, rng, prefix_len);
        if (!(prefixes[p] = sb_take(&b))) {
            st = cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
            goto out;
        }
    }
    /* measured prompt j uses prefix j % num_prefixes, in a shuffled order */
    for (int32_t j = 0; j < ds->n; j++) order[j] = j % num_prefixes;
    bench_rng_shuffle(rng, order, (size_t)ds->n);
    for (int32_t i = 0; i < total; i++) {
        bench_prompt_t *pr = &ds->prompts[i];
        int32_t p = i < ds->n_warmup ? i % num_prefixes : order[i - ds->n_warmup];
        sbuf_t b = { 0 };
        sb_str(&b, prefixes[p]);
        add_random_text(&b, &wg, rng, suffix_len);
        if (!(pr->text = sb_take(&b))) {
            st = cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
            goto out;
        }
        pr->prompt_len = prefix_len + suffix_len;
        if (cfg->token_ids) {
            size_t n = 0;
            if ((st = tokenizer_encode(cfg->tokenizer, pr->text, strlen(pr->text), true, false, &pr->token_ids, &n)) !=
                CLLM_OK)
                goto out;
            pr->n_token_ids = (int32_t)n;
            pr->prompt_len = (int32_t)n;
            free(pr->text);
            pr->text = NULL;
        }
    }
out:
    if (prefixes)
        for (int32_t p = 0; p < num_prefixes; p++) free(prefixes[p]);
    free(prefixes);
    free(order);
    wordgen_free(&wg);
    return st;
}

/* Parses one jsonl line into pr. */
static status_t jsonl_line(const char *path, long lineno, const char *line, bench_prompt_t *pr)
{
    json_error_t jerr;
    json_t *root = json_loads(line, JSON_DECODE_ANY, &jerr), *v, *mt;
    status_t st = CLLM_OK;
    if (!root) return cllm_error(CLLM_ERR_FORMAT, "bench: %s:%ld: not JSON: %s", path, lineno, jerr.text);
    pr->max_tokens = -1;
    if (json_is_string(root)) {
        pr->text = strdup(json_string_value(root));
    } else if (json_is_object(root) && json_is_string(v = json_object_get(root, "prompt"))) {
        pr->text = strdup(json_string_value(v));
    } else if (json_is_object(root) && json_is_array(v = json_object_get(root, "prompt")) && json_array_size(v) > 0) {
        size_t n = json_array_size(v);
        pr->token_ids = malloc(n * sizeof(int32_t));
        if (!pr->token_ids) goto oom;
        for (size_t k = 0; k < n; k++) {
            json_t *e = json_array_get(v, k);
            if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT32_MAX) {
                st = cllm_error(CLLM_ERR_FORMAT, "bench: %s:%ld: \"prompt\" lists must hold token ids", path, lineno);
                goto out;
            }
            pr->token_ids[k] = (int32_t)json_integer_value(e);
        }
        pr->n_token_ids = (int32_t)n;
        pr->prompt_len = (int32_t)n;
    } else if (json_is_object(root) && json_is_array(v = json_object_get(root, "messages")) && json_array_size(v) > 0) {
        pr->messages_json = json_dumps(v, JSON_COMPACT);
    } else {
        st = cllm_error(CLLM_ERR_FORMAT,
                        "bench: %s:%ld: expected a string or an object with \"prompt\" or \"messages\"", path, lineno);
        goto out;
    }
    if (!pr->text && !pr->messages_json && !pr->token_ids) goto oom;
    if (json_is_object(root) && ((mt = json_object_get(root, "max_tokens")) || (mt = json_object_get(root, "output_len")))) {
        if (!json_is_integer(mt) || json_integer_value(mt) < 0 || json_integer_value(mt) > INT32_MAX) {
            st = cllm_error(CLLM_ERR_FORMAT, "bench: %s:%ld: max_tokens must be a non-negative integer", path, lineno);
            goto out;
        }
        pr->max_tokens = (int32_t)json_integer_value(mt);
    }
    goto out;
oom:
    st = cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
out:
    json_decref(root);
    return st;
}

static status_t copy_prompt(const bench_prompt_t *src, bench_prompt_t *dst)
{
    *dst = *src;
    dst->text = src->text ? strdup(src->text) : NULL;
    dst->messages_json = src->messages_json ? strdup(src->messages_json) : NULL;
    dst->token_ids = NULL;
    if (src->token_ids) {
        dst->token_ids = malloc((size_t)src->n_token_ids * sizeof(int32_t));
        if (dst->token_ids) memcpy(dst->token_ids, src->token_ids, (size_t)src->n_token_ids * sizeof(int32_t));
    }
    if ((src->text && !dst->text) || (src->messages_json && !dst->messages_json) || (src->token_ids && !dst->token_ids))
        return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
    return CLLM_OK;
}

static status_t make_jsonl(const bench_dataset_config_t *cfg, bench_dataset_t *ds)
{
    FILE *f;
    char *line = NULL;
    size_t cap = 0, n_lines = 0, lines_cap = 0;
    bench_prompt_t *lines = NULL;
    ssize_t got;
    long lineno = 0;
    status_t st = CLLM_OK;
    int32_t total;

    if (!cfg->path) return cllm_error(CLLM_ERR_INVALID_ARG, "bench: the jsonl dataset needs a file (--dataset jsonl FILE)");
    if (!(f = fopen(cfg->path, "r"))) return cllm_error(CLLM_ERR_IO, "bench: cannot open '%s': %s", cfg->path, strerror(errno));
    while ((got = getline(&line, &cap, f)) >= 0) {
        const char *s = line;
        lineno++;
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
        if (!*s) continue;
        if (n_lines == lines_cap) {
            bench_prompt_t *p = realloc(lines, (lines_cap = lines_cap ? lines_cap * 2 : 64) * sizeof(*p));
            if (!p) {
                st = cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
                break;
            }
            lines = p;
        }
        memset(&lines[n_lines], 0, sizeof(lines[n_lines]));
        if ((st = jsonl_line(cfg->path, lineno, s, &lines[n_lines])) != CLLM_OK) {
            n_lines++; /* free what it made */
            break;
        }
        n_lines++;
    }
    free(line);
    fclose(f);
    if (st == CLLM_OK && n_lines == 0) st = cllm_error(CLLM_ERR_FORMAT, "bench: %s holds no requests", cfg->path);
    if (st == CLLM_OK) {
        ds->n = cfg->num_prompts > 0 ? cfg->num_prompts : (int32_t)n_lines;
        total = ds->n_warmup + ds->n;
        if (!(ds->prompts = calloc((size_t)total, sizeof(bench_prompt_t)))) {
            st = cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
        } else {
            /* warmup repeats the first lines; measured request j is line j % n_lines */
            for (int32_t i = 0; i < total && st == CLLM_OK; i++) {
                size_t src = i < ds->n_warmup ? (size_t)i % n_lines : (size_t)(i - ds->n_warmup) % n_lines;
                st = copy_prompt(&lines[src], &ds->prompts[i]);
            }
        }
    }
    for (size_t i = 0; i < n_lines; i++) {
        free(lines[i].text);
        free(lines[i].messages_json);
        free(lines[i].token_ids);
    }
    free(lines);
    return st;
}

status_t bench_dataset_create(const bench_dataset_config_t *cfg, bench_dataset_t *out)
{
    bench_rng_t rng;
    status_t st;
    memset(out, 0, sizeof(*out));
    if (cfg->num_warmup < 0 || cfg->num_warmup > 1000000 || cfg->num_prompts < 0 || cfg->num_prompts > 10000000)
        return cllm_error(CLLM_ERR_INVALID_ARG, "bench: bad number of prompts (%d) or warmup requests (%d)",
                          cfg->num_prompts, cfg->num_warmup);
    out->n_warmup = cfg->num_warmup;
    if (cfg->kind == BENCH_DATASET_JSONL) {
        st = make_jsonl(cfg, out);
    } else {
        out->n = cfg->num_prompts > 0 ? cfg->num_prompts : (cfg->kind == BENCH_DATASET_TABLE_QA ? cfg->questions : 100);
        if (out->n < 1) return cllm_error(CLLM_ERR_INVALID_ARG, "bench: --num-prompts must be at least 1");
        if (!(out->prompts = calloc((size_t)(out->n_warmup + out->n), sizeof(bench_prompt_t))))
            return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
        for (int32_t i = 0; i < out->n_warmup + out->n; i++) out->prompts[i].max_tokens = -1;
        bench_rng_seed(&rng, cfg->seed);
        switch (cfg->kind) {
        case BENCH_DATASET_TABLE_QA: st = make_table_qa(cfg, out, &rng); break;
        case BENCH_DATASET_PREFIX_REPETITION:
            st = make_prefix_repetition(cfg, cfg->num_prefixes, cfg->prefix_len, cfg->suffix_len, out, &rng);
            break;
        case BENCH_DATASET_RANDOM: st = make_prefix_repetition(cfg, 1, 0, cfg->input_len, out, &rng); break;
        default: st = cllm_error(CLLM_ERR_INVALID_ARG, "bench: unknown dataset kind %d", (int)cfg->kind); break;
        }
    }
    if (st != CLLM_OK) bench_dataset_free(out);
    return st;
}
