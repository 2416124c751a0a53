/* bench_launch.c: a `cllm serve` child for comparisons (see bench_launch.h).
 *
 * Invariants: a bench_launch_t exists only for a child that was spawned and not yet reaped;
 * bench_launch_stop always reaps it (no zombies, no orphans left running). */
#include "benchmark/bench_launch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchmark/bench_client.h"
#include "core/clock.h"

struct bench_launch {
    pid_t pid;
    char url[128];
};

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Reads the log; finds the ready line's URL (into url) and the last non-empty line (into
 * last). Returns true when the ready line is there. */
static bool scan_log(const char *path, char *url, size_t url_cap, char *last, size_t last_cap)
{
    static const char ready[] = "cllm: ready: serving ";
    FILE *f = fopen(path, "r");
    char line[1024];
    bool found = false;
    if (!f) return false;
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n) snprintf(last, last_cap, "%s", line);
        if (!strncmp(line, ready, sizeof(ready) - 1)) {
            const char *at = strstr(line, " on http://");
            if (at) {
                const char *hostport = at + strlen(" on http://");
                /* a wildcard listen address is reached through the loopback */
                if (!strncmp(hostport, "0.0.0.0:", 8)) snprintf(url, url_cap, "http://127.0.0.1%s", hostport + 7);
                else if (!strncmp(hostport, "[::]:", 5)) snprintf(url, url_cap, "http://[::1]%s", hostport + 4);
                else snprintf(url, url_cap, "http://%s", hostport);
                found = true;
            }
        }
    }
    fclose(f);
    return found;
}

static void kill_and_reap(pid_t pid)
{
    int status;
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

status_t bench_launch_start(char *const argv[], const char *log_path, double timeout_s, bench_launch_t **out)
{
    bench_launch_t *l;
    pid_t parent;
    char last[512] = "";
    double t0 = clock_now_s();
    int status;
    bool ready = false;

    *out = NULL;
    if (!(l = calloc(1, sizeof(*l)))) return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
    parent = getpid();
    l->pid = fork();
    if (l->pid < 0) {
        int e = errno;
        free(l);
        return cllm_error(CLLM_ERR_IO, "bench: cannot start %s: %s", argv[0], strerror(e));
    }
    if (l->pid == 0) {
        /* the child: only async-signal-safe calls until exec. It gets SIGTERM if this
         * process dies, so an interrupted benchmark never leaves a server running. */
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), nul = open("/dev/null", O_RDONLY);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent || fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    /* wait for the ready line, then for /health */
    while (clock_now_s() - t0 < timeout_s) {
        pid_t w = waitpid(l->pid, &status, WNOHANG);
        if (w == l->pid) {
            scan_log(log_path, l->url, sizeof(l->url), last, sizeof(last));
            free(l);
            return cllm_error(CLLM_ERR_IO, "bench: the server exited (%s %d) before it was ready; its log %s ends: %s",
                              WIFEXITED(status) ? "status" : "signal",
                              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), log_path, last);
        }
        if (!ready) ready = scan_log(log_path, l->url, sizeof(l->url), last, sizeof(last));
        if (ready) {
            char health[192];
            long code = 0;
            snprintf(health, sizeof(health), "%s/health", l->url);
            if (bench_client_get(health, 2.0, &code) == CLLM_OK && code == 200) {
                *out = l;
                return CLLM_OK;
            }
        }
        sleep_ms(100);
    }
    scan_log(log_path, l->url, sizeof(l->url), last, sizeof(last));
    kill_and_reap(l->pid);
    free(l);
    return cllm_error(CLLM_ERR_IO, "bench: the server was not ready after %.0f s; its log %s ends: %s", timeout_s,
                      log_path, last);
}

const char *bench_launch_url(const bench_launch_t *l)
{
    return l->url;
}

pid_t bench_launch_pid(const bench_launch_t *l)
{
    return l->pid;
}

int bench_launch_stop(bench_launch_t *l, double grace_s)
{
    double t0 = clock_now_s();
    int status = 0, result = -1;
    if (!l) return 0;
    kill(l->pid, SIGTERM);
    for (;;) {
        pid_t w = waitpid(l->pid, &status, WNOHANG);
        if (w == l->pid) {
            result = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            break;
        }
        if (w < 0 && errno != EINTR) break; /* already reaped elsewhere */
        if (clock_now_s() - t0 > grace_s) {
            kill_and_reap(l->pid);
            break;
        }
        sleep_ms(50);
    }
    free(l);
    return result;
}

status_t bench_launch_push(char ***argv, int *argc, const char *word)
{
    char **a = realloc(*argv, (size_t)(*argc + 2) * sizeof(char *));
    if (!a) return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
    *argv = a;
    if (!(a[*argc] = strdup(word))) {
        a[*argc] = NULL;
        return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
    }
    a[++*argc] = NULL;
    return CLLM_OK;
}

status_t bench_launch_split(const char *flags, char ***argv, int *argc)
{
    size_t n = flags ? strlen(flags) : 0, len = 0;
    char *word = malloc(n + 1);
    bool in_word = false;
    char quote = 0;
    status_t st = CLLM_OK;
    if (!word) return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
    for (size_t i = 0; i <= n && st == CLLM_OK; i++) {
        char c = i < n ? flags[i] : '\0';
        if (quote) {
            if (c == '\0') {
                st = cllm_error(CLLM_ERR_INVALID_ARG, "bench: unterminated %c quote in '%s'", quote, flags);
            } else if (c == quote) {
                quote = 0;
            } else if (c == '\\' && quote == '"' && i + 1 < n && (flags[i + 1] == '"' || flags[i + 1] == '\\')) {
                word[len++] = flags[++i];
            } else {
                word[len++] = c;
            }
        } else if (c == '\0' || c == ' ' || c == '\t' || c == '\n') {
            if (in_word) {
                word[len] = '\0';
                st = bench_launch_push(argv, argc, word);
                len = 0;
                in_word = false;
            }
        } else if (c == '\'' || c == '"') {
            quote = c;
            in_word = true;
        } else if (c == '\\' && i + 1 < n) {
            word[len++] = flags[++i];
            in_word = true;
        } else {
            word[len++] = c;
            in_word = true;
        }
    }
    free(word);
    return st;
}

void bench_launch_free_argv(char **argv, int argc)
{
    if (!argv) return;
    for (int i = 0; i < argc; i++) free(argv[i]);
    free(argv);
}
