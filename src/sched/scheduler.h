/* scheduler.h: continuous batching as a pure state machine (no threads, no I/O, no model).
 *
 * The scheduler owns two queues of requests — waiting (FCFS order, preempted requests go back
 * to the front) and running (admission order) — and decides, one step at a time, which tokens of
 * which requests the model computes next, under a token budget (max_num_batched_tokens) and a
 * sequence limit (max_num_seqs). It calls the KV manager for blocks; it never touches K/V data.
 *
 * A step (sched_schedule):
 *   1. running requests first, in admission order: each gets n_new = tokens not yet computed
 *      (1 for a decode; the rest of the prompt, capped by the remaining budget, for a prefill
 *      chunk: chunked prefill, so a long prompt never stalls running decodes). When the KV
 *      manager has no block for it, the most recently admitted running request is preempted
 *      (blocks freed, its full blocks stay in the prefix cache; back to the front of waiting with
 *      n_computed = 0), possibly the request itself; never a failure, never a deadlock (every
 *      request fits the pool alone: checked at submit);
 *   2. then, if nothing was preempted this step, waiting requests are admitted while budget and
 *      seats remain: prefix hit first (kvm_find_cached_prefix), then a first chunk.
 *      With cache-aware admission (the default): among the waiting, the request with the longest
 *      cached prefix goes first (SGLang's longest-prefix-match), a request whose next uncached
 *      block is being computed right now by a running request is held until that block is cached
 *      (a shared prefix is computed once), and no request waits more than max_wait_steps steps
 *      held or behind others (then strict FCFS for it); with more than fcfs_queue_len waiting,
 *      FCFS. Admission stops at the first request the pool has no room for (no skipping).
 *      An admission whose prefix hit ends with a partial block (kv_manager.h) adds a copy to
 *      the batch: the engine performs the batch's copies before running the model.
 * The engine runs the model on the step's items, then calls sched_commit, appends sampled tokens
 * with sched_append_token, and finishes requests (stop, length, cancel) with sched_finish.
 * A warm scheduler allocates nothing per step (its arrays grow geometrically and are reused).
 *
 * Invariants (checked by sched_check_invariants, and after every step when built with
 * -DCLLM_SCHED_DEBUG): every request is in exactly one of waiting / running / finished;
 * waiting requests hold no blocks; running <= max_num_seqs; a step's tokens <=
 * max_num_batched_tokens; n_computed <= n_tokens; the KV manager's invariants hold. */
#ifndef CLLM_SCHED_SCHEDULER_H
#define CLLM_SCHED_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "cllm/status.h"
#include "kv/kv_manager.h"

typedef enum {
    SCHED_WAITING = 0,
    SCHED_RUNNING = 1,
    SCHED_FINISHED = 2,
} sched_state_t;

/* One request as the scheduler sees it. The caller (the engine) allocates it, fills the public
 * fields before sched_add, and keeps it alive until it is finished and removed. */
typedef struct sched_req {
    uint64_t id;
    int32_t *tokens;      /* (cap_tokens): prompt, then generated tokens; owned by the caller */
    int32_t n_tokens;     /* prompt + generated so far */
    int32_t n_prompt;
    int32_t cap_tokens;   /* = n_prompt + max_new_tokens <= max_model_len */
    const char *salt;     /* cache salt (may be NULL) */
    size_t salt_len;

    /* owned by the scheduler */
    sched_state_t state;
    kvm_seq_t kv;             /* block table; kv.n_computed = tokens whose K/V are cached */
    int32_t n_cached_prompt;  /* prefix-cache hit (tokens) at the first admission */
    int32_t n_preemptions;
    uint64_t arrival;         /* submit order */
    uint64_t admitted;        /* admission order (for "most recently admitted") */
    int32_t wait_steps;       /* steps it waited held, or while one behind it was admitted */
    struct sched_req *prev, *next; /* queue links */

    /* cache-aware admission's view of a waiting request, refreshed once per step */
    int32_t peek_hit;          /* cached prefix (tokens) it would hit now */
    bool peek_has_next;        /* the hit stopped (before the cap) at a full uncached block ... */
    block_key_t peek_next_key; /* ... with this key: held while a running request computes it */
    uint64_t passed_step;      /* the last step in which it was held or passed over */
} sched_req_t;

typedef struct {
    int32_t max_num_seqs;           /* >= 1 */
    int32_t max_num_batched_tokens; /* >= 1 */
    int32_t max_model_len;          /* >= 1 */
    bool cache_aware;               /* longest-prefix-first + shared-prefix dedupe (default on;
                                       FCFS when the KV manager does no prefix caching) */
    int32_t max_wait_steps;         /* starvation bound for cache-aware admission (default 16) */
    int32_t fcfs_queue_len;         /* above this many waiting: FCFS (default 128) */
} sched_config_t;

/* One unit of work of a step: compute tokens [start, start + n_new) of req. */
typedef struct {
    sched_req_t *req;
    int32_t start;
    int32_t n_new;
    bool sample; /* start + n_new == n_tokens: the last token's logits give the next token */
} sched_item_t;

/* A partial-block prefix reuse: slots [0, n_slots) of block src_block (K and V, every layer)
 * must be copied into block dst_block before the step's forward pass writes anything. */
typedef struct {
    int32_t src_block;
    int32_t dst_block;
    int32_t n_slots;
} sched_copy_t;

typedef struct {
    sched_copy_t *copies;      /* (n_copies): perform in this order, before the forward pass; a
                                  src block may have been reallocated in this same step (its
                                  content is intact until the forward pass writes) */
    int32_t n_copies;
    sched_item_t *items;       /* (n_items), running order */
    int32_t n_items;
    int32_t n_tokens;          /* sum of n_new */
    sched_req_t **preempted;   /* (n_preempted) requests preempted in this step */
    int32_t n_preempted;
} sched_batch_t;

typedef struct sched sched_t;

typedef struct {
    int32_t n_waiting;
    int32_t n_running;
    uint64_t n_preemptions;
    uint64_t n_steps;
} sched_stats_t;

/* max_num_seqs 256, max_num_batched_tokens 2048, max_model_len 4096, cache_aware on,
 * max_wait_steps 16, fcfs_queue_len 128. */
void sched_config_default(sched_config_t *cfg);
/* kvm is borrowed (owned by the engine). CLLM_ERR_INVALID_ARG, CLLM_ERR_NOMEM. */
status_t sched_create(const sched_config_t *cfg, kvm_t *kvm, sched_t **out);
/* Releases the blocks of every request still waiting or running (state FINISHED; the caller
 * still owns the request objects) and the scheduler. */
void sched_destroy(sched_t *s);

/* Queues a new request (state WAITING). CLLM_ERR_RANGE with the numbers when it can never run:
 * n_prompt < 1, n_prompt > max_model_len, cap_tokens > max_model_len, or more blocks than the
 * whole pool. Inits req->kv. */
status_t sched_add(sched_t *s, sched_req_t *req);

/* Plans the next step into *batch (its arrays are owned by the scheduler, valid until the next
 * call). n_items == 0 means nothing to do. */
status_t sched_schedule(sched_t *s, sched_batch_t *batch);

/* After the model ran the batch: n_computed of every item advances by n_new and its full blocks
 * enter the prefix cache. batch must be the one the last sched_schedule returned, committed once
 * (else CLLM_ERR_INVALID_ARG, nothing changed). Items of requests finished since are skipped, so
 * commit before freeing a finished request's object. */
status_t sched_commit(sched_t *s, const sched_batch_t *batch);

/* Appends a sampled token to a running request whose tokens are all computed (n_computed ==
 * n_tokens; n_tokens + 1 <= cap_tokens). CLLM_ERR_INVALID_ARG, CLLM_ERR_RANGE (at cap_tokens). */
status_t sched_append_token(sched_t *s, sched_req_t *req, int32_t token);

/* Finishes a request in any state (done, stopped or cancelled): leaves its queue, frees its
 * blocks (tail first; full blocks stay cached), state FINISHED. The caller may then free req. */
void sched_finish(sched_t *s, sched_req_t *req);

void sched_get_stats(const sched_t *s, sched_stats_t *stats);
/* CLLM_OK or CLLM_ERR_INTERNAL naming the broken invariant (queues, counts, and the KV manager's). */
status_t sched_check_invariants(const sched_t *s);

#endif
