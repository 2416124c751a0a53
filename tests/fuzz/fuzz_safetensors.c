/* fuzz_safetensors.c: libFuzzer target for the safetensors reader (model/safetensors.h).
 *
 * Each input is one safetensors file. When safetensors_open_memory accepts it, what the reader
 * promises is checked: every tensor's bytes lie inside the buffer (ASan sees each byte read) and
 * equal shape x dtype size, names are unique, sorted and found again by name, tensors do not
 * overlap. A refused file must come with an error message. Nothing is kept between inputs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    safetensors_t *st = NULL;
    volatile uint64_t sink = 0;
    size_t n;

    cllm_error_clear();
    if (safetensors_open_memory(data, size, "fuzz.safetensors", &st) != CLLM_OK) {
        FUZZ_REQUIRE(st == NULL, "failed open left a context");
        FUZZ_REQUIRE(cllm_error_message()[0] != '\0', "refused without a message");
        return 0;
    }
    n = safetensors_n_tensors(st);
    for (size_t i = 0; i < n; i++) {
        const st_tensor_t *t = safetensors_tensor(st, i);
        const uint8_t *d;
        uint64_t elems = 1;

        FUZZ_REQUIRE(t && t->name, "tensor %zu missing", i);
        FUZZ_REQUIRE(safetensors_find(st, t->name) == t, "tensor '%s' not found by name", t->name);
        FUZZ_REQUIRE(t->dtype < ST_DTYPE_COUNT && st_dtype_name(t->dtype) != NULL, "tensor '%s': dtype %d", t->name,
                     (int)t->dtype);
        FUZZ_REQUIRE(t->n_dims <= SAFETENSORS_MAX_DIMS, "tensor '%s': %u dims", t->name, t->n_dims);
        for (uint32_t k = 0; k < t->n_dims; k++) {
            FUZZ_REQUIRE(t->shape[k] >= 0, "tensor '%s': negative dim", t->name);
            elems *= (uint64_t)t->shape[k]; /* cannot wrap: the product fits in the buffer, or a dim is 0 */
        }
        FUZZ_REQUIRE(elems * st_dtype_size(t->dtype) == t->nbytes, "tensor '%s': %zu bytes for %llu elements",
                     t->name, t->nbytes, (unsigned long long)elems);
        d = t->data;
        FUZZ_REQUIRE(t->nbytes == 0 || (d >= data && d + t->nbytes <= data + size), "tensor '%s' outside the buffer",
                     t->name);
        sink += fuzz_touch(d, t->nbytes);
        if (i > 0) {
            const st_tensor_t *p = safetensors_tensor(st, i - 1);
            FUZZ_REQUIRE(strcmp(p->name, t->name) < 0, "names not sorted and unique: '%s', '%s'", p->name, t->name);
        }
        for (size_t k = 0; k < i && k < 4096; k++) {
            const st_tensor_t *o = safetensors_tensor(st, k);
            const uint8_t *od = o->data;
            if (!o->nbytes || !t->nbytes) continue;
            FUZZ_REQUIRE(d + t->nbytes <= od || od + o->nbytes <= d, "tensors '%s' and '%s' overlap", t->name, o->name);
        }
    }
    FUZZ_REQUIRE(safetensors_tensor(st, n) == NULL, "tensor past the end");
    FUZZ_REQUIRE(safetensors_find(st, "cllm.fuzz.absent name") == NULL, "absent tensor found");
    safetensors_close(st);
    (void)sink;
    return 0;
}
