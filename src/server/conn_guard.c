/* conn_guard.c: connection admission and the request-deadline watchdog (conn_guard.h).
 *
 * Owns the entries (a doubly linked list under one mutex) and the watchdog thread, which wakes
 * every WATCH_PERIOD_MS (or when told to stop), shuts down the sockets whose deadline passed and
 * marks them so that each is shut down once. Shutting a socket down (not closing it) makes the
 * connection's own libmicrohttpd thread see end of input and close it the ordinary way, with the
 * usual completion callbacks. */
#include "server/conn_guard.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"

#define WATCH_PERIOD_MS 100

struct conn_guard_entry {
    conn_guard_entry_t *prev, *next;
    int fd;
    bool admitted;
    bool armed;      /* a deadline applies */
    bool dropped;    /* already shut down */
    double deadline; /* clock_now_s() time */
};

struct conn_guard {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t thread;
    bool thread_started;
    bool stop;
    int max_connections;
    unsigned timeout_s;
    int n_open;
    int n_admitted; /* of n_open, the ones within max_connections */
    uint64_t n_dropped;
    conn_guard_entry_t *head;
};

static void *watch_main(void *arg)
{
    conn_guard_t *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        struct timespec ts;
        double now;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WATCH_PERIOD_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->wake, &g->mu, &ts);
        if (g->stop) break;
        now = clock_now_s();
        for (conn_guard_entry_t *e = g->head; e; e = e->next) {
            if (!e->armed || e->dropped || now < e->deadline) continue;
            e->dropped = true;
            g->n_dropped++;
            shutdown(e->fd, SHUT_RDWR);
            log_info("http: closed a connection that did not deliver a whole request within %u s", g->timeout_s);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

status_t conn_guard_create(int max_connections, unsigned timeout_s, conn_guard_t **out)
{
    conn_guard_t *g;
    pthread_condattr_t ca;
    *out = NULL;
    if (max_connections < 1) return cllm_error(CLLM_ERR_INVALID_ARG, "server: max_connections must be at least 1");
    g = calloc(1, sizeof(*g));
    if (!g) return cllm_error(CLLM_ERR_NOMEM, "server: out of memory");
    g->max_connections = max_connections;
    g->timeout_s = timeout_s;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (timeout_s > 0) {
        if (pthread_create(&g->thread, NULL, watch_main, g) != 0) {
            conn_guard_destroy(g);
            return cllm_error(CLLM_ERR_INTERNAL, "server: cannot start the connection watchdog thread");
        }
        g->thread_started = true;
    }
    *out = g;
    return CLLM_OK;
}

void conn_guard_destroy(conn_guard_t *g)
{
    if (!g) return;
    if (g->thread_started) {
        pthread_mutex_lock(&g->mu);
        g->stop = true;
        pthread_cond_signal(&g->wake);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->thread, NULL);
    }
    /* entries left behind (the daemon was never stopped): not ours to close, only to free */
    while (g->head) {
        conn_guard_entry_t *e = g->head;
        g->head = e->next;
        free(e);
    }
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

bool conn_guard_can_accept(conn_guard_t *g)
{
    bool ok;
    pthread_mutex_lock(&g->mu);
    ok = g->n_open < g->max_connections + CONN_GUARD_OVERFLOW;
    pthread_mutex_unlock(&g->mu);
    return ok;
}

conn_guard_entry_t *conn_guard_open(conn_guard_t *g, int fd, bool *admitted)
{
    conn_guard_entry_t *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    e->fd = fd;
    pthread_mutex_lock(&g->mu);
    g->n_open++;
    e->admitted = g->n_admitted < g->max_connections;
    if (e->admitted) g->n_admitted++;
    e->armed = g->timeout_s > 0;
    e->deadline = clock_now_s() + (double)g->timeout_s;
    e->next = g->head;
    if (g->head) g->head->prev = e;
    g->head = e;
    pthread_mutex_unlock(&g->mu);
    if (admitted) *admitted = e->admitted;
    return e;
}

bool conn_guard_admitted(const conn_guard_entry_t *e)
{
    return e && e->admitted;
}

void conn_guard_close(conn_guard_t *g, conn_guard_entry_t *e)
{
    if (!e) return;
    pthread_mutex_lock(&g->mu);
    if (e->prev) e->prev->next = e->next;
    else g->head = e->next;
    if (e->next) e->next->prev = e->prev;
    g->n_open--;
    if (e->admitted) g->n_admitted--;
    pthread_mutex_unlock(&g->mu);
    free(e);
}

void conn_guard_serving(conn_guard_t *g, conn_guard_entry_t *e)
{
    if (!e) return;
    pthread_mutex_lock(&g->mu);
    e->armed = false;
    pthread_mutex_unlock(&g->mu);
}

void conn_guard_waiting(conn_guard_t *g, conn_guard_entry_t *e)
{
    if (!e) return;
    pthread_mutex_lock(&g->mu);
    e->armed = g->timeout_s > 0;
    e->deadline = clock_now_s() + (double)g->timeout_s;
    pthread_mutex_unlock(&g->mu);
}

int conn_guard_open_count(conn_guard_t *g)
{
    int n;
    pthread_mutex_lock(&g->mu);
    n = g->n_open;
    pthread_mutex_unlock(&g->mu);
    return n;
}

uint64_t conn_guard_dropped_count(conn_guard_t *g)
{
    uint64_t n;
    pthread_mutex_lock(&g->mu);
    n = g->n_dropped;
    pthread_mutex_unlock(&g->mu);
    return n;
}
