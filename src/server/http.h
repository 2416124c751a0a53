/* http.h: small libmicrohttpd helpers shared by the server's handlers: JSON / text / error
 * responses with the right headers, and noticing a client that went away.
 *
 * Owns nothing: each call creates a response, queues it on the connection and drops its own
 * reference (libmicrohttpd frees it after sending). JSON arguments are stolen. */
#ifndef CLLM_SERVER_HTTP_H
#define CLLM_SERVER_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/openai.h"

/* Queues status with j serialized (compact) as application/json; steals j (NULL: 500). */
enum MHD_Result http_respond_json(struct MHD_Connection *c, unsigned status, json_t *j);
/* Queues e as {"error": {...}} with status e->status. */
enum MHD_Result http_respond_error(struct MHD_Connection *c, const openai_error_t *e);
/* Shorthand: an error of this status and message (param none). */
enum MHD_Result http_respond_status(struct MHD_Connection *c, unsigned status, const char *message);
/* http_respond_status, and the connection is closed once the answer is sent ("Connection:
 * close"): for a client that is not to be served further (over the connection limit). */
enum MHD_Result http_respond_status_close(struct MHD_Connection *c, unsigned status, const char *message);
/* Queues a body (len bytes, copied) with the given Content-Type. */
enum MHD_Result http_respond_text(struct MHD_Connection *c, unsigned status, const char *content_type,
                                  const char *body, size_t len);

/* The connection's socket, or -1. */
int http_connection_fd(struct MHD_Connection *c);
/* True when the peer has closed its side of the socket (or it failed). Never blocks. */
bool http_client_gone(int fd);

#endif
