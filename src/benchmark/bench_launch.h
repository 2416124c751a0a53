/* bench_launch.h: starting and stopping a `cllm serve` child process for `cllm bench compare`.
 *
 * The child's stdout and stderr go to a log file; it gets SIGTERM if this process dies (Linux
 * PR_SET_PDEATHSIG), so an interrupted benchmark leaves no server behind. It is started with `--port 0` (any free
 * port: no race with other programs), and is ready when its log holds the line
 * "cllm: ready: serving NAME on http://HOST:PORT" (cmd_serve.c prints it once listening) and
 * GET /health answers 200. If it exits first or the timeout passes, start fails with the
 * last line of its log in the message and the child is killed. Stopping sends SIGTERM (the
 * server's graceful shutdown), waits, then SIGKILL. */
#ifndef CLLM_BENCHMARK_BENCH_LAUNCH_H
#define CLLM_BENCHMARK_BENCH_LAUNCH_H

#include <stddef.h>
#include <sys/types.h>

#include "cllm/status.h"

typedef struct bench_launch bench_launch_t;

/* Runs argv (argv[0] the program path; NULL-terminated) with its output in log_path, and
 * waits up to timeout_s for it to be ready. Errors: CLLM_ERR_IO (spawn failed, the child
 * exited, or it was not ready in time), CLLM_ERR_NOMEM. */
status_t bench_launch_start(char *const argv[], const char *log_path, double timeout_s, bench_launch_t **out);
/* The server's base URL ("http://127.0.0.1:PORT"). */
const char *bench_launch_url(const bench_launch_t *l);
pid_t bench_launch_pid(const bench_launch_t *l);
/* SIGTERM, up to grace_s for it to exit, then SIGKILL; frees l (NULL is fine). Returns the
 * child's exit status (0 after a clean shutdown), or -1 if it had to be killed. */
int bench_launch_stop(bench_launch_t *l, double grace_s);

/* Splits a flag string into words, shell-style: blanks separate, '...' and "..." quote,
 * backslash escapes the next character. Appends the words to *argv (a NULL-terminated,
 * malloc'd array of malloc'd strings, *argc entries; both may start as NULL / 0).
 * Errors: CLLM_ERR_INVALID_ARG (an unterminated quote), CLLM_ERR_NOMEM. */
status_t bench_launch_split(const char *flags, char ***argv, int *argc);
/* Appends one word (copied). Errors: CLLM_ERR_NOMEM. */
status_t bench_launch_push(char ***argv, int *argc, const char *word);
void bench_launch_free_argv(char **argv, int argc);

#endif
