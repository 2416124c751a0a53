/* log.c: leveled logging to stderr, one line per call, safe from several threads (one fprintf). */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static log_level_t log_level = LOG_LEVEL_INFO;
static int log_level_from_env_done;

static void log_level_from_env(void)
{
    const char *s = getenv("CLLM_LOG");
    log_level_from_env_done = 1;
    if (!s) return;
    if (!strcmp(s, "debug")) log_level = LOG_LEVEL_DEBUG;
    else if (!strcmp(s, "info")) log_level = LOG_LEVEL_INFO;
    else if (!strcmp(s, "warn")) log_level = LOG_LEVEL_WARN;
    else if (!strcmp(s, "error")) log_level = LOG_LEVEL_ERROR;
    else if (!strcmp(s, "off")) log_level = LOG_LEVEL_OFF;
}

void log_set_level(log_level_t level)
{
    log_level_from_env_done = 1;
    log_level = level;
}

log_level_t log_get_level(void)
{
    if (!log_level_from_env_done) log_level_from_env();
    return log_level;
}

void log_write(log_level_t level, const char *fmt, ...)
{
    static const char *names[] = { "debug", "info", "warn", "error" };
    char line[2048];
    va_list ap;
    int n;

    if (level < log_get_level() || level >= LOG_LEVEL_OFF) return;
    n = snprintf(line, sizeof(line), "cllm %s: ", names[level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
