/* check.h: the assertions every C test uses. A failed check prints "FAIL file:line: condition"
 * and, when given, a printf-style explanation; it never stops the test, so one run shows every
 * failure. A test's main ends with `return check_summary();`: non-zero if any check failed (a
 * test that cannot fail is a bug). Header-only: each test is one translation unit. */
#ifndef CLLM_TESTS_CHECK_H
#define CLLM_TESTS_CHECK_H

#include <stdarg.h>
#include <stdio.h>

#include "cllm/status.h"

static int check_failures;

static void check_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: %s", file, line, cond);
    if (fmt[0]) {
        fputs(": ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    check_failures++;
}

/* CHECK(cond) or CHECK(cond, "format", args...). (No printf-format attribute on check_fail: the
 * bare form passes an empty format, which gcc's format checking refuses.) */
#define CHECK(cond, ...) ((cond) ? (void)0 : check_fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__))

/* CHECK_OK(expr): expr returns CLLM_OK; otherwise the status and the error message are printed. */
#define CHECK_OK(expr)                                                                                        \
    do {                                                                                                      \
        status_t check_st_ = (expr);                                                                          \
        if (check_st_ != CLLM_OK)                                                                             \
            check_fail(__FILE__, __LINE__, #expr, "%s: %s", cllm_status_str(check_st_), cllm_error_message()); \
    } while (0)

/* Prints the verdict; the test's exit code. */
static inline int check_summary(void)
{
    if (check_failures) {
        fprintf(stderr, "%d failed checks\n", check_failures);
        return 1;
    }
    fprintf(stderr, "ok\n");
    return 0;
}

#endif
