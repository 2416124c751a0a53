/* weights_repack.c: builds the kern_matrix_t views of a model's matrices and packs them (see
 * weights_repack.h).
 *
 * Invariant: every kern_matrix_t here points into the model's own data (data) and, when packed,
 * owns its copy (packed); destroy releases the copies only. A failed pack leaves nothing
 * allocated. */
#include "model/weights_repack.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

static void view(kern_matrix_t *km, const model_matrix_t *mm)
{
    kern_matrix_init(km, mm->data, mm->type, (int)mm->ne1, (int)mm->ne0);
}

/* Every matrix of w, in a fixed order (n_out: how many). */
static int all_matrices(weights_repack_t *w, kern_matrix_t **out)
{
    int n = 0;
    for (int l = 0; l < w->n_layer; l++) {
        weights_layer_t *L = &w->layers[l];
        out[n++] = &L->wq;
        out[n++] = &L->wk;
        out[n++] = &L->wv;
        out[n++] = &L->wo;
        out[n++] = &L->w_gate;
        out[n++] = &L->w_up;
        out[n++] = &L->w_down;
    }
    out[n++] = &w->output;
    return n;
}

void weights_repack_destroy(weights_repack_t *w)
{
    if (!w) return;
    if (w->layers) {
        for (int l = 0; l < w->n_layer; l++) {
            weights_layer_t *L = &w->layers[l];
            kern_matrix_release(&L->wq);
            kern_matrix_release(&L->wk);
            kern_matrix_release(&L->wv);
            kern_matrix_release(&L->wo);
            kern_matrix_release(&L->w_gate);
            kern_matrix_release(&L->w_up);
            kern_matrix_release(&L->w_down);
        }
        free(w->layers);
    }
    kern_matrix_release(&w->output);
    free(w);
}

status_t weights_repack_create(const model_t *m, threadpool_t *pool, weights_repack_t **out)
{
    weights_repack_t *w;
    kern_matrix_t **mats;
    const char *env = getenv("CLLM_REPACK");
    double t0 = clock_now_s();
    int n;

    *out = NULL;
    w = calloc(1, sizeof(*w));
    if (!w) return cllm_error(CLLM_ERR_NOMEM, "weights: out of memory");
    w->n_layer = m->hp.n_layer;
    w->layers = calloc((size_t)m->hp.n_layer, sizeof(*w->layers));
    mats = malloc(sizeof(*mats) * ((size_t)m->hp.n_layer * 7 + 1));
    if (!w->layers || !mats) {
        free(mats);
        weights_repack_destroy(w);
        return cllm_error(CLLM_ERR_NOMEM, "weights: out of memory");
    }
    for (int l = 0; l < m->hp.n_layer; l++) {
        const model_layer_t *ML = &m->layers[l];
        weights_layer_t *L = &w->layers[l];
        view(&L->wq, &ML->wq);
        view(&L->wk, &ML->wk);
        view(&L->wv, &ML->wv);
        view(&L->wo, &ML->wo);
        view(&L->w_gate, &ML->w_gate);
        view(&L->w_up, &ML->w_up);
        view(&L->w_down, &ML->w_down);
    }
    view(&w->output, &m->output);
    n = all_matrices(w, mats);
    if (!(env && !strcmp(env, "0"))) {
        for (int i = 0; i < n; i++) {
            status_t st = kern_matrix_pack(pool, mats[i]);
            if (st != CLLM_OK) {
                free(mats);
                weights_repack_destroy(w);
                return st;
            }
            if (mats[i]->packed) {
                w->n_packed++;
                w->packed_bytes += mats[i]->packed_bytes;
            }
        }
    }
    free(mats);
    w->pack_seconds = clock_now_s() - t0;
    if (w->n_packed)
        log_info("weights: %d matrices copied for the %s kernels (%s, huge pages): %.1f MiB, %.2f s", w->n_packed,
                 kern_level_name(kern_level()),
                 m->weight_type == DTYPE_Q8_0 || m->weight_type == DTYPE_Q4_0 ? "x16 layout" : "as stored",
                 (double)w->packed_bytes / 1048576.0, w->pack_seconds);
    *out = w;
    return CLLM_OK;
}
