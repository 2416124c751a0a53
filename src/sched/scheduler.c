/* scheduler.c: continuous batching as a pure state machine (see scheduler.h).
 *
 * Owns the two request queues (intrusive doubly linked lists through sched_req_t.prev/next:
 * waiting in FCFS order with preempted requests at the front, running in admission order, so
 * the most recently admitted is always the running tail), the step's batch arrays (items,
 * partial-block copies: at most one per admission, in admission order), and the
 * in-flight key set of cache-aware admission. Keeps: a live request is in exactly one queue and
 * its state says which; waiting requests hold no KV blocks; n_waiting / n_running count the
 * lists; n_running <= max_num_seqs; the last batch's tokens <= max_num_batched_tokens. Every
 * array is grown before a step changes any state (a step fails with CLLM_ERR_NOMEM, or not at
 * all), geometrically, and reused: a warm scheduler does not allocate per step. */
#include "sched/scheduler.h"

#include <stdlib.h>
#include <string.h>

struct sched {
    sched_config_t cfg;
    kvm_t *kvm;            /* borrowed */
    int32_t block_size;    /* tokens per KV block */
    int32_t n_pool_blocks; /* blocks in the whole pool */
    bool caching;          /* the KV manager does prefix caching (keys exist) */

    sched_req_t *wait_head, *wait_tail;
    int32_t n_waiting;
    sched_req_t *run_head, *run_tail;
    int32_t n_running;

    uint64_t n_arrivals;   /* sched_add calls: the next arrival stamp */
    uint64_t n_admissions; /* admissions: the next admission stamp */
    uint64_t n_preemptions;
    uint64_t n_steps;

    /* the step's batch, valid until the next sched_schedule */
    sched_item_t *items;      /* (cap_items) */
    int32_t cap_items;
    int32_t n_items;
    int32_t n_batch_tokens;   /* sum of the items' n_new */
    sched_copy_t *copies;     /* (cap_copies): at most one per admission */
    int32_t cap_copies;
    int32_t n_copies;
    sched_req_t **preempted;  /* (cap_preempted) */
    int32_t cap_preempted;
    int32_t n_preempted;
    bool committed;           /* the batch went through sched_commit */

    /* keys of full blocks that running requests have still to compute: an open-addressing set
     * cleared in O(1) by bumping flight_epoch (a slot is live when its stamp equals it) */
    block_key_t *flight_keys; /* (flight_cap) */
    uint64_t *flight_stamps;  /* (flight_cap) */
    uint32_t flight_cap;      /* 0 or a power of two */
    int32_t flight_n;
    uint64_t flight_epoch;

    /* scratch of sched_check_invariants: the live requests' sequences */
    const kvm_seq_t **seqs; /* (cap_seqs) */
    int32_t cap_seqs;
};

/* Grows arr (elements of elem bytes, capacity *cap) to hold at least need, doubling: *out is
 * the array to use from now on (arr itself when it is big enough; arr stays valid on failure). */
static status_t grow_array(void *arr, int32_t *cap, int32_t need, size_t elem, void **out)
{
    int64_t n;
    *out = arr;
    if (need <= *cap) return CLLM_OK;
    n = *cap > 0 ? *cap : 16;
    while (n < need) n *= 2;
    if (n > INT32_MAX) n = INT32_MAX;
    {
        void *grown = realloc(arr, (size_t)n * elem);
        if (!grown) return cllm_error(CLLM_ERR_NOMEM, "scheduler: out of memory for %d entries", need);
        *out = grown;
    }
    *cap = (int32_t)n;
    return CLLM_OK;
}

/* ---- queues ---- */

static void list_unlink(sched_req_t **head, sched_req_t **tail, sched_req_t *r)
{
    if (r->prev) r->prev->next = r->next;
    else *head = r->next;
    if (r->next) r->next->prev = r->prev;
    else *tail = r->prev;
    r->prev = r->next = NULL;
}

static void list_push_back(sched_req_t **head, sched_req_t **tail, sched_req_t *r)
{
    r->next = NULL;
    r->prev = *tail;
    if (*tail) (*tail)->next = r;
    else *head = r;
    *tail = r;
}

static void list_push_front(sched_req_t **head, sched_req_t **tail, sched_req_t *r)
{
    r->prev = NULL;
    r->next = *head;
    if (*head) (*head)->prev = r;
    else *tail = r;
    *head = r;
}

/* ---- the in-flight key set ---- */

static uint32_t flight_slot(const sched_t *s, block_key_t key)
{
    uint64_t h = (key.lo ^ (key.hi * 0x9e3779b97f4a7c15ull)) * 0xd6e8feb86659fd93ull;
    return (uint32_t)(h >> 32) & (s->flight_cap - 1);
}

static void flight_clear(sched_t *s)
{
    s->flight_epoch++;
    s->flight_n = 0;
}

static bool flight_contains(const sched_t *s, block_key_t key)
{
    if (s->flight_n == 0) return false;
    for (uint32_t i = flight_slot(s, key);; i = (i + 1) & (s->flight_cap - 1)) {
        if (s->flight_stamps[i] != s->flight_epoch) return false;
        if (block_key_equal(s->flight_keys[i], key)) return true;
    }
}

/* Inserts key (load <= 1/2). When the set cannot grow the key is dropped: a missed hold only
 * costs a duplicate computation of that block, so admission goes on. */
static void flight_insert(sched_t *s, block_key_t key)
{
    uint32_t i;
    if ((uint64_t)(s->flight_n + 1) * 2 > s->flight_cap) {
        uint32_t cap = s->flight_cap ? s->flight_cap * 2 : 256;
        block_key_t *old_keys = s->flight_keys;
        uint64_t *old_stamps = s->flight_stamps;
        uint32_t old_cap = s->flight_cap;
        block_key_t *keys = cap <= (1u << 30) ? malloc((size_t)cap * sizeof(*keys)) : NULL;
        uint64_t *stamps = keys ? calloc(cap, sizeof(*stamps)) : NULL;
        if (!keys || !stamps) {
            free(keys);
            free(stamps);
            return;
        }
        /* stamps start at 0 and epochs at 1: the new table is empty */
        s->flight_keys = keys;
        s->flight_stamps = stamps;
        s->flight_cap = cap;
        s->flight_n = 0;
        for (uint32_t j = 0; j < old_cap; j++)
            if (old_stamps[j] == s->flight_epoch) flight_insert(s, old_keys[j]);
        free(old_keys);
        free(old_stamps);
    }
    for (i = flight_slot(s, key); s->flight_stamps[i] == s->flight_epoch; i = (i + 1) & (s->flight_cap - 1))
        if (block_key_equal(s->flight_keys[i], key)) return;
    s->flight_keys[i] = key;
    s->flight_stamps[i] = s->flight_epoch;
    s->flight_n++;
}

/* Adds the keys of r's full blocks not computed yet: blocks [n_computed / bs, n_tokens / bs),
 * which r computes in its coming steps (a decode's last block once it fills). */
static void flight_add_request(sched_t *s, sched_req_t *r)
{
    int32_t bs = s->block_size;
    for (int32_t b = r->kv.n_computed / bs; b < r->n_tokens / bs; b++) {
        block_key_t key;
        if (kvm_seq_block_key(s->kvm, &r->kv, r->tokens, r->n_tokens, b, &key) != CLLM_OK) return;
        flight_insert(s, key);
    }
}

/* ---- create / destroy / add ---- */

void sched_config_default(sched_config_t *cfg)
{
    cfg->max_num_seqs = 256;
    cfg->max_num_batched_tokens = 2048;
    cfg->max_model_len = 4096;
    cfg->cache_aware = true;
    cfg->max_wait_steps = 16;
    cfg->fcfs_queue_len = 128;
}

/* Whether kvm keys blocks (prefix caching on): asks for the key of a probe sequence's block. */
static bool kvm_has_caching(kvm_t *kvm, int32_t block_size)
{
    int32_t zeros[BLOCK_HASH_MAX_TOKENS] = {0};
    kvm_seq_t probe;
    block_key_t key;
    bool on = false;
    if (kvm_init_seq(kvm, &probe, block_size, NULL, 0) == CLLM_OK)
        on = kvm_seq_block_key(kvm, &probe, zeros, block_size, 0, &key) == CLLM_OK;
    kvm_deinit_seq(kvm, &probe);
    cllm_error_clear();
    return on;
}

status_t sched_create(const sched_config_t *cfg, kvm_t *kvm, sched_t **out)
{
    sched_t *s;
    const block_pool_t *pool;

    *out = NULL;
    if (!cfg || !kvm) return cllm_error(CLLM_ERR_INVALID_ARG, "scheduler: NULL config or KV manager");
    if (cfg->max_num_seqs < 1 || cfg->max_num_batched_tokens < 1 || cfg->max_model_len < 1)
        return cllm_error(CLLM_ERR_INVALID_ARG,
                          "scheduler: max_num_seqs %d, max_num_batched_tokens %d, max_model_len %d must be >= 1",
                          cfg->max_num_seqs, cfg->max_num_batched_tokens, cfg->max_model_len);
    if (cfg->max_wait_steps < 0 || cfg->fcfs_queue_len < 0)
        return cllm_error(CLLM_ERR_INVALID_ARG, "scheduler: max_wait_steps %d, fcfs_queue_len %d must be >= 0",
                          cfg->max_wait_steps, cfg->fcfs_queue_len);
    s = calloc(1, sizeof(*s));
    if (!s) return cllm_error(CLLM_ERR_NOMEM, "scheduler: out of memory");
    s->cfg = *cfg;
    s->kvm = kvm;
    pool = kvm_block_pool(kvm);
    s->block_size = block_pool_block_size(pool);
    s->n_pool_blocks = block_pool_n_blocks(pool);
    s->caching = kvm_has_caching(kvm, s->block_size);
    s->flight_epoch = 1;
    s->committed = true;
    *out = s;
    return CLLM_OK;
}

void sched_destroy(sched_t *s)
{
    if (!s) return;
    while (s->run_head) sched_finish(s, s->run_head);
    while (s->wait_head) sched_finish(s, s->wait_head);
    free(s->items);
    free(s->copies);
    free(s->preempted);
    free(s->flight_keys);
    free(s->flight_stamps);
    free(s->seqs);
    free(s);
}

status_t sched_add(sched_t *s, sched_req_t *req)
{
    int64_t n_need;
    void *p;
    status_t st;

    if (!req) return cllm_error(CLLM_ERR_INVALID_ARG, "scheduler: NULL request");
    /* a refused request is FINISHED and in no queue: sched_finish on it does nothing */
    req->state = SCHED_FINISHED;
    req->prev = req->next = NULL;
    if (!req->tokens) return cllm_error(CLLM_ERR_INVALID_ARG, "scheduler: request %llu without tokens",
                                        (unsigned long long)req->id);
    if (req->n_prompt < 1)
        return cllm_error(CLLM_ERR_RANGE, "scheduler: request %llu: prompt of %d tokens, at least 1 is needed",
                          (unsigned long long)req->id, req->n_prompt);
    if (req->n_prompt > s->cfg.max_model_len)
        return cllm_error(CLLM_ERR_RANGE, "scheduler: request %llu: prompt of %d tokens exceeds max_model_len %d",
                          (unsigned long long)req->id, req->n_prompt, s->cfg.max_model_len);
    if (req->cap_tokens > s->cfg.max_model_len)
        return cllm_error(CLLM_ERR_RANGE,
                          "scheduler: request %llu: %d prompt + %d new tokens = %d exceed max_model_len %d",
                          (unsigned long long)req->id, req->n_prompt, req->cap_tokens - req->n_prompt,
                          req->cap_tokens, s->cfg.max_model_len);
    if (req->cap_tokens < req->n_prompt || req->n_tokens < req->n_prompt || req->n_tokens > req->cap_tokens)
        return cllm_error(CLLM_ERR_INVALID_ARG,
                          "scheduler: request %llu: n_prompt %d, n_tokens %d, cap_tokens %d out of order",
                          (unsigned long long)req->id, req->n_prompt, req->n_tokens, req->cap_tokens);
    n_need = ((int64_t)req->cap_tokens + s->block_size - 1) / s->block_size;
    if (n_need > s->n_pool_blocks)
        return cllm_error(CLLM_ERR_RANGE,
                          "scheduler: request %llu: %d tokens need %lld blocks of %d tokens, the KV pool has %d",
                          (unsigned long long)req->id, req->cap_tokens, (long long)n_need, s->block_size,
                          s->n_pool_blocks);
    /* the invariant check's scratch covers every live request */
    st = grow_array(s->seqs, &s->cap_seqs, s->n_waiting + s->n_running + 1, sizeof(*s->seqs), &p);
    s->seqs = p;
    if (st != CLLM_OK) return st;
    st = kvm_init_seq(s->kvm, &req->kv, req->cap_tokens, req->salt, req->salt_len);
    if (st != CLLM_OK) return st;

    req->state = SCHED_WAITING;
    req->n_cached_prompt = 0;
    req->n_preemptions = 0;
    req->arrival = ++s->n_arrivals;
    req->admitted = 0;
    req->wait_steps = 0;
    req->peek_hit = 0;
    req->peek_has_next = false;
    req->passed_step = 0;
    list_push_back(&s->wait_head, &s->wait_tail, req);
    s->n_waiting++;
    return CLLM_OK;
}

/* ---- a step ---- */

static void batch_add_item(sched_t *s, sched_req_t *r, int32_t start, int32_t n_new)
{
    sched_item_t *it = &s->items[s->n_items++];
    it->req = r;
    it->start = start;
    it->n_new = n_new;
    it->sample = start + n_new == r->n_tokens;
    s->n_batch_tokens += n_new;
}

/* Preempts the running tail (the most recently admitted): drops its item of this step if it has
 * one (giving its tokens back to *budget), frees its blocks (full ones stay cached) and puts it
 * at the front of waiting. Returns it. */
static sched_req_t *preempt_tail(sched_t *s, int32_t *budget)
{
    sched_req_t *v = s->run_tail;
    for (int32_t i = s->n_items - 1; i >= 0; i--) {
        if (s->items[i].req != v) continue;
        *budget += s->items[i].n_new;
        s->n_batch_tokens -= s->items[i].n_new;
        memmove(&s->items[i], &s->items[i + 1], (size_t)(s->n_items - i - 1) * sizeof(*s->items));
        s->n_items--;
        break;
    }
    list_unlink(&s->run_head, &s->run_tail, v);
    s->n_running--;
    kvm_free(s->kvm, &v->kv);
    v->state = SCHED_WAITING;
    v->n_preemptions++;
    s->n_preemptions++;
    list_push_front(&s->wait_head, &s->wait_tail, v);
    s->n_waiting++;
    s->preempted[s->n_preempted++] = v;
    return v;
}

/* Phase 1: the running requests, in admission order. */
static status_t schedule_running(sched_t *s, int32_t *budget)
{
    sched_req_t *r = s->run_head;
    while (r && *budget > 0) {
        int32_t n_new = r->n_tokens - r->kv.n_computed;
        bool self_preempted = false;
        if (n_new > *budget) n_new = *budget;
        if (n_new <= 0) {
            r = r->next;
            continue;
        }
        for (;;) {
            status_t st = kvm_allocate(s->kvm, &r->kv, n_new);
            if (st == CLLM_OK) break;
            if (st != CLLM_NO_SPACE) return st;
            /* r itself fits the pool alone (checked at submit), so this ends */
            if (preempt_tail(s, budget) == r) {
                self_preempted = true;
                break;
            }
        }
        if (self_preempted) break; /* r was the tail: nothing runs after it */
        batch_add_item(s, r, r->kv.n_computed, n_new);
        *budget -= n_new;
        r = r->next;
    }
    return CLLM_OK;
}

/* Cache-aware admission's view of this step: every waiting request's cached prefix and the key
 * of the block its hit stopped at, and the keys running requests are about to compute. */
static status_t prepare_cache_aware(sched_t *s)
{
    int32_t bs = s->block_size;
    flight_clear(s);
    for (sched_req_t *r = s->run_head; r; r = r->next) flight_add_request(s, r);
    for (sched_req_t *r = s->wait_head; r; r = r->next) {
        int32_t max_hit = (r->n_tokens - 1) / bs; /* blocks: the lookup's cap */
        status_t st = kvm_peek_cached_prefix(s->kvm, &r->kv, r->tokens, r->n_tokens, &r->peek_hit);
        if (st != CLLM_OK) return st;
        r->peek_has_next = r->peek_hit / bs < max_hit &&
                           kvm_seq_block_key(s->kvm, &r->kv, r->tokens, r->n_tokens, r->peek_hit / bs,
                                             &r->peek_next_key) == CLLM_OK;
    }
    return CLLM_OK;
}

/* The waiting request cache-aware admission takes next, or NULL when every one is held: the
 * first (queue order) that waited max_wait_steps; else, among those not held, the longest
 * cached prefix, ties in queue order. Held requests are stamped as passed over this step. */
static sched_req_t *pick_cache_aware(sched_t *s)
{
    sched_req_t *best = NULL;
    for (sched_req_t *r = s->wait_head; r; r = r->next) {
        if (r->wait_steps >= s->cfg.max_wait_steps) return r;
        if (r->peek_has_next && flight_contains(s, r->peek_next_key)) {
            r->passed_step = s->n_steps;
            continue;
        }
        if (!best || r->peek_hit > best->peek_hit) best = r;
    }
    return best;
}

/* Tries to admit r (waiting): its prefix hit, then a first chunk under *budget. *admitted false
 * (r left waiting, holding nothing) when the pool has no room for the chunk. */
static status_t admit(sched_t *s, sched_req_t *r, int32_t *budget, bool *admitted)
{
    int32_t hit, n_new;
    status_t st;

    *admitted = false;
    st = kvm_find_cached_prefix(s->kvm, &r->kv, r->tokens, r->n_tokens, &hit);
    if (st != CLLM_OK) return st;
    n_new = r->n_tokens - hit; /* >= 1: the lookup leaves the last token to compute */
    if (n_new > *budget) n_new = *budget;
    st = kvm_allocate(s->kvm, &r->kv, n_new);
    if (st != CLLM_OK) {
        kvm_free(s->kvm, &r->kv); /* the hit goes back, still cached */
        return st == CLLM_NO_SPACE ? CLLM_OK : st;
    }
    list_unlink(&s->wait_head, &s->wait_tail, r);
    s->n_waiting--;
    list_push_back(&s->run_head, &s->run_tail, r);
    s->n_running++;
    r->state = SCHED_RUNNING;
    if (r->admitted == 0) r->n_cached_prompt = hit;
    {
        sched_copy_t *c = &s->copies[s->n_copies]; /* reserved: one per admission at most */
        if (kvm_take_pending_copy(&r->kv, &c->src_block, &c->dst_block, &c->n_slots)) s->n_copies++;
    }
    r->admitted = ++s->n_admissions;
    batch_add_item(s, r, hit, n_new);
    *budget -= n_new;
    *admitted = true;
    return CLLM_OK;
}

/* Phase 2: admissions from the waiting queue while budget and seats remain. */
static status_t schedule_waiting(sched_t *s, int32_t *budget)
{
    bool cache_aware = s->cfg.cache_aware && s->caching && s->n_waiting <= s->cfg.fcfs_queue_len;
    bool prepared = false;
    status_t st = CLLM_OK;

    while (*budget > 0 && s->n_running < s->cfg.max_num_seqs && s->wait_head) {
        sched_req_t *r = s->wait_head, *ahead;
        bool admitted;
        if (cache_aware) {
            if (!prepared) {
                st = prepare_cache_aware(s);
                if (st != CLLM_OK) return st;
                prepared = true;
            }
            r = pick_cache_aware(s);
            if (!r) break;
        }
        ahead = r->prev; /* the last request ahead of r: it stays waiting */
        st = admit(s, r, budget, &admitted);
        if (st != CLLM_OK || !admitted) break;
        if (cache_aware) {
            /* r got in: the requests ahead of it were passed over; its blocks are now in flight */
            for (sched_req_t *q = ahead ? s->wait_head : NULL; q; q = q == ahead ? NULL : q->next)
                q->passed_step = s->n_steps;
            flight_add_request(s, r);
        }
    }
    if (prepared)
        for (sched_req_t *q = s->wait_head; q; q = q->next)
            if (q->passed_step == s->n_steps) q->wait_steps++;
    return st;
}

/* Grows the batch arrays for the worst case of this step before any state changes. */
static status_t reserve_step(sched_t *s)
{
    int64_t live = (int64_t)s->n_running + s->n_waiting;
    int32_t n_items = (int32_t)(live < s->cfg.max_num_seqs ? live : s->cfg.max_num_seqs);
    void *p;
    status_t st = grow_array(s->items, &s->cap_items, n_items, sizeof(*s->items), &p);
    s->items = p;
    if (st != CLLM_OK) return st;
    st = grow_array(s->copies, &s->cap_copies, n_items, sizeof(*s->copies), &p);
    s->copies = p;
    if (st != CLLM_OK) return st;
    st = grow_array(s->preempted, &s->cap_preempted, s->n_running, sizeof(*s->preempted), &p);
    s->preempted = p;
    return st;
}

status_t sched_schedule(sched_t *s, sched_batch_t *batch)
{
    int32_t budget = s->cfg.max_num_batched_tokens;
    status_t st;

    memset(batch, 0, sizeof(*batch));
    s->n_items = 0;
    s->n_batch_tokens = 0;
    s->n_copies = 0;
    s->n_preempted = 0;
    s->committed = true;
    st = reserve_step(s);
    if (st != CLLM_OK) return st;
    s->n_steps++;

    st = schedule_running(s, &budget);
    if (st == CLLM_OK && s->n_preempted == 0) st = schedule_waiting(s, &budget);
    if (st != CLLM_OK) return st;

    s->committed = s->n_items == 0;
    batch->copies = s->copies;
    batch->n_copies = s->n_copies;
    batch->items = s->items;
    batch->n_items = s->n_items;
    batch->n_tokens = s->n_batch_tokens;
    batch->preempted = s->preempted;
    batch->n_preempted = s->n_preempted;
#ifdef CLLM_SCHED_DEBUG
    st = sched_check_invariants(s);
#endif
    return st;
}

status_t sched_commit(sched_t *s, const sched_batch_t *batch)
{
    if (batch->items != s->items || batch->n_items != s->n_items)
        return cllm_error(CLLM_ERR_INVALID_ARG, "scheduler: commit of a batch that is not the last step's");
    if (s->committed && s->n_items > 0)
        return cllm_error(CLLM_ERR_INVALID_ARG, "scheduler: the step's batch was already committed");
    for (int32_t i = 0; i < s->n_items; i++) {
        const sched_item_t *it = &s->items[i];
        if (it->req->state == SCHED_RUNNING && it->req->kv.n_computed != it->start)
            return cllm_error(CLLM_ERR_INVALID_ARG,
                              "scheduler: request %llu has %d tokens computed, its item starts at %d",
                              (unsigned long long)it->req->id, it->req->kv.n_computed, it->start);
    }
    for (int32_t i = 0; i < s->n_items; i++) {
        const sched_item_t *it = &s->items[i];
        status_t st;
        if (it->req->state != SCHED_RUNNING) continue; /* finished since the step */
        st = kvm_commit(s->kvm, &it->req->kv, it->req->tokens, it->start + it->n_new);
        if (st != CLLM_OK) return st;
    }
    s->committed = true;
    return CLLM_OK;
}

status_t sched_append_token(sched_t *s, sched_req_t *req, int32_t token)
{
    (void)s;
    if (req->state != SCHED_RUNNING)
        return cllm_error(CLLM_ERR_INVALID_ARG, "scheduler: token appended to request %llu, which is not running",
                          (unsigned long long)req->id);
    if (req->kv.n_computed != req->n_tokens)
        return cllm_error(CLLM_ERR_INVALID_ARG,
                          "scheduler: token appended to request %llu with %d of its %d tokens computed",
                          (unsigned long long)req->id, req->kv.n_computed, req->n_tokens);
    if (req->n_tokens >= req->cap_tokens)
        return cllm_error(CLLM_ERR_RANGE, "scheduler: request %llu is at its cap of %d tokens",
                          (unsigned long long)req->id, req->cap_tokens);
    req->tokens[req->n_tokens++] = token;
    return CLLM_OK;
}

/* Whether r is linked into the queue that starts at head (O(1): its neighbour points back). */
static bool list_holds(const sched_req_t *head, const sched_req_t *r)
{
    return r->prev ? r->prev->next == r : head == r;
}

void sched_finish(sched_t *s, sched_req_t *req)
{
    if (req->state == SCHED_WAITING && list_holds(s->wait_head, req)) {
        list_unlink(&s->wait_head, &s->wait_tail, req);
        s->n_waiting--;
    } else if (req->state == SCHED_RUNNING && list_holds(s->run_head, req)) {
        list_unlink(&s->run_head, &s->run_tail, req);
        s->n_running--;
    } else {
        return;
    }
    kvm_deinit_seq(s->kvm, &req->kv); /* tail first; full blocks stay cached */
    req->state = SCHED_FINISHED;
}

void sched_get_stats(const sched_t *s, sched_stats_t *stats)
{
    stats->n_waiting = s->n_waiting;
    stats->n_running = s->n_running;
    stats->n_preemptions = s->n_preemptions;
    stats->n_steps = s->n_steps;
}

/* ---- invariants ---- */

/* Walks one queue: links, states, per-request counters, count; appends its sequences to seqs. */
static status_t check_queue(const sched_t *s, const char *name, const sched_req_t *head, const sched_req_t *tail,
                            int32_t n, sched_state_t state, int32_t *n_seqs)
{
    const sched_req_t *prev = NULL;
    int32_t count = 0;
    for (const sched_req_t *r = head; r; prev = r, r = r->next) {
        if (++count > n)
            return cllm_error(CLLM_ERR_INTERNAL, "scheduler: %s queue holds more than its count %d", name, n);
        if (r->prev != prev)
            return cllm_error(CLLM_ERR_INTERNAL, "scheduler: %s queue: broken link at request %llu", name,
                              (unsigned long long)r->id);
        if (r->state != state)
            return cllm_error(CLLM_ERR_INTERNAL, "scheduler: request %llu in the %s queue has state %d",
                              (unsigned long long)r->id, name, (int)r->state);
        if (r->n_prompt < 1 || r->n_tokens < r->n_prompt || r->n_tokens > r->cap_tokens ||
            r->kv.n_computed < 0 || r->kv.n_computed > r->n_tokens)
            return cllm_error(CLLM_ERR_INTERNAL,
                              "scheduler: request %llu: n_prompt %d, n_tokens %d, cap_tokens %d, n_computed %d",
                              (unsigned long long)r->id, r->n_prompt, r->n_tokens, r->cap_tokens, r->kv.n_computed);
        if (state == SCHED_WAITING && r->kv.n_blocks != 0)
            return cllm_error(CLLM_ERR_INTERNAL, "scheduler: waiting request %llu holds %d blocks",
                              (unsigned long long)r->id, r->kv.n_blocks);
        if (state == SCHED_RUNNING && prev && prev->admitted >= r->admitted)
            return cllm_error(CLLM_ERR_INTERNAL, "scheduler: running queue out of admission order at request %llu",
                              (unsigned long long)r->id);
        s->seqs[(*n_seqs)++] = &r->kv;
    }
    if (count != n || prev != tail)
        return cllm_error(CLLM_ERR_INTERNAL, "scheduler: %s queue holds %d requests, its count says %d", name, count,
                          n);
    return CLLM_OK;
}

status_t sched_check_invariants(const sched_t *s)
{
    int32_t n_seqs = 0, sum = 0;
    status_t st;

    if (s->n_waiting < 0 || s->n_running < 0 || s->n_running > s->cfg.max_num_seqs ||
        s->n_waiting + s->n_running > s->cap_seqs)
        return cllm_error(CLLM_ERR_INTERNAL, "scheduler: %d waiting, %d running (max_num_seqs %d, %d live slots)",
                          s->n_waiting, s->n_running, s->cfg.max_num_seqs, s->cap_seqs);
    st = check_queue(s, "waiting", s->wait_head, s->wait_tail, s->n_waiting, SCHED_WAITING, &n_seqs);
    if (st == CLLM_OK) st = check_queue(s, "running", s->run_head, s->run_tail, s->n_running, SCHED_RUNNING, &n_seqs);
    if (st != CLLM_OK) return st;

    /* the last step's batch (its requests may be finished and freed since: not dereferenced) */
    for (int32_t i = 0; i < s->n_items; i++) {
        if (s->items[i].n_new < 1 || s->items[i].start < 0)
            return cllm_error(CLLM_ERR_INTERNAL, "scheduler: item %d: start %d, n_new %d", i, s->items[i].start,
                              s->items[i].n_new);
        sum += s->items[i].n_new;
    }
    if (sum != s->n_batch_tokens || sum > s->cfg.max_num_batched_tokens || s->n_items > s->cfg.max_num_seqs)
        return cllm_error(CLLM_ERR_INTERNAL,
                          "scheduler: last step: %d items of %d tokens (counted %d), limits %d seqs, %d tokens",
                          s->n_items, sum, s->n_batch_tokens, s->cfg.max_num_seqs, s->cfg.max_num_batched_tokens);
    return kvm_check_invariants(s->kvm, s->seqs, n_seqs);
}
