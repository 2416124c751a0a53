/* log.h: leveled logging to stderr. stdout belongs to the program's output (generated text). */
#ifndef CLLM_CORE_LOG_H
#define CLLM_CORE_LOG_H

typedef enum { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR, LOG_LEVEL_OFF } log_level_t;

/* Messages below this level are dropped. Default INFO; CLLM_LOG=debug|info|warn|error|off overrides. */
void log_set_level(log_level_t level);
log_level_t log_get_level(void);

void log_write(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
