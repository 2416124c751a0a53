/* conn_guard.h: admission and request deadlines of the server's HTTP connections.
 *
 * Counts the open connections (libmicrohttpd's connection started / closed notifications) and
 * decides at accept time what a new one gets: while fewer than max_connections are being served
 * it is served too (admitted, for its whole life); otherwise, while fewer than
 * max_connections + CONN_GUARD_OVERFLOW are open, its first request is answered 503 and the
 * connection closed; past that it is closed at once, unread.
 *
 * Request timeout: a connection must deliver each whole request (headers and body) within
 * timeout_s of the moment the server starts waiting for it (accept, or the end of the previous
 * response). libmicrohttpd's own timeout only counts silence, so a client trickling one byte a
 * second would hold its connection forever; a watchdog thread shuts down the socket of any
 * connection past its deadline. The deadline is off while a request is being served (a long
 * generation is not a slow client). A request reaches the engine only once its body is whole,
 * so a dropped slow client never held engine resources.
 *
 * Invariants: an entry lives from its connection's start notification to its close
 * notification; the watchdog touches a socket only under the lock and only while its entry
 * exists, and libmicrohttpd notifies the close before it closes the socket, so a shut-down fd is
 * never one the system has already reused. Thread-safe. */
#ifndef CLLM_SERVER_CONN_GUARD_H
#define CLLM_SERVER_CONN_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "cllm/status.h"

/* Connections above max_connections that are still read, to be told 503. */
#define CONN_GUARD_OVERFLOW 64

typedef struct conn_guard conn_guard_t;
typedef struct conn_guard_entry conn_guard_entry_t;

/* max_connections >= 1; timeout_s 0: no request deadline (no watchdog thread). */
status_t conn_guard_create(int max_connections, unsigned timeout_s, conn_guard_t **out);
/* Stops the watchdog; every entry must have been closed. */
void conn_guard_destroy(conn_guard_t *g);

/* Whether a new connection may be accepted at all (fewer than max + overflow open). */
bool conn_guard_can_accept(conn_guard_t *g);
/* Registers a new connection on socket fd, waiting for its first request; NULL without memory.
 * *admitted: whether it is served (fewer than max_connections others are). */
conn_guard_entry_t *conn_guard_open(conn_guard_t *g, int fd, bool *admitted);
/* Whether the connection was within max_connections when it was accepted. */
bool conn_guard_admitted(const conn_guard_entry_t *e);
/* Forgets a connection (before its socket is closed). */
void conn_guard_close(conn_guard_t *g, conn_guard_entry_t *e);
/* Its request is whole and being served: no deadline until conn_guard_waiting. */
void conn_guard_serving(conn_guard_t *g, conn_guard_entry_t *e);
/* It waits for (or is reading) a request: the deadline is timeout_s from now. */
void conn_guard_waiting(conn_guard_t *g, conn_guard_entry_t *e);

/* Connections open now. */
int conn_guard_open_count(conn_guard_t *g);
/* Connections dropped so far for missing their deadline. */
uint64_t conn_guard_dropped_count(conn_guard_t *g);

#endif
