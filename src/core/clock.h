/* clock.h: monotonic time in seconds, for latencies and timing lines (not wall-clock dates). */
#ifndef CLLM_CORE_CLOCK_H
#define CLLM_CORE_CLOCK_H

#include <time.h>

static inline double clock_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
