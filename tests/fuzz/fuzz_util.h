/* fuzz_util.h: helpers shared by the libFuzzer targets in tests/fuzz/ (header-only: each
 * target is one translation unit, built only with -DCLLM_FUZZ=ON).
 *
 * FUZZ_REQUIRE(cond, ...) is the targets' assertion: when an invariant the code promises does
 * not hold it prints what failed and abort()s, which libFuzzer reports as a crash and saves the
 * input. fuzz_touch() reads every byte of a range so that ASan checks the range lies inside
 * live memory. fuzz_memfd_*() hand bytes to code that only takes a path (a memfd named by
 * /proc/self/fd/N: nothing is written to disk). */
#ifndef CLLM_TESTS_FUZZ_UTIL_H
#define CLLM_TESTS_FUZZ_UTIL_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cllm/status.h"

#define FUZZ_REQUIRE(cond, ...)                                                      \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "FUZZ INVARIANT %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fprintf(stderr, " (last error: %s)\n", cllm_error_message());           \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* Reads n bytes at p (NULL with n == 0 is fine); the sum keeps the reads from being elided. */
static inline uint64_t fuzz_touch(const void *p, size_t n)
{
    const volatile uint8_t *b = (const volatile uint8_t *)p;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += b[i];
    return sum;
}

/* A memfd for path-only APIs: created once per process (the fuzzer calls targets in one
 * process, so the descriptor is reused rather than leaked). Returns -1 if unavailable. */
static inline int fuzz_memfd(void)
{
    static int fd = -2;
    if (fd == -2) fd = memfd_create("cllm-fuzz", 0);
    return fd;
}

/* Replaces the memfd's contents with data (size bytes) and writes its path into path (cap
 * bytes). Returns 0 on success, -1 when the memfd cannot be written. */
static inline int fuzz_memfd_set(const void *data, size_t size, char *path, size_t cap)
{
    int fd = fuzz_memfd();
    size_t off = 0;
    if (fd < 0 || ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0) return -1;
    while (off < size) {
        ssize_t w = write(fd, (const char *)data + off, size - off);
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return 0;
}

/* Reads the memfd's whole contents into a malloc'd buffer (*size bytes); NULL on failure. */
static inline void *fuzz_memfd_get(size_t *size)
{
    int fd = fuzz_memfd();
    off_t end;
    char *buf;
    size_t off = 0;
    if (fd < 0 || (end = lseek(fd, 0, SEEK_END)) < 0 || lseek(fd, 0, SEEK_SET) != 0) return NULL;
    buf = malloc((size_t)end + 1);
    if (!buf) return NULL;
    while (off < (size_t)end) {
        ssize_t r = read(fd, buf + off, (size_t)end - off);
        if (r <= 0) {
            free(buf);
            return NULL;
        }
        off += (size_t)r;
    }
    *size = off;
    return buf;
}

#endif
