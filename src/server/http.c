/* http.c: libmicrohttpd response helpers and client-gone detection (http.h).
 *
 * Every response is created, queued and released here, so handlers never hold a response
 * reference. A client is "gone" when its socket reports hang-up or an orderly shutdown (a
 * zero-byte peek); pending pipelined bytes mean it is still there. */
#include "server/http.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/openai_response.h"

/* Queues body with the headers every response of this status gets; close: "Connection: close". */
static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *content_type, const char *body,
                               size_t len, bool close)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;
    if (!r) return MHD_NO;
    if (content_type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (close) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, POST");
    if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result http_respond_text(struct MHD_Connection *c, unsigned status, const char *content_type,
                                  const char *body, size_t len)
{
    return respond(c, status, content_type, body, len, false);
}

enum MHD_Result http_respond_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    enum MHD_Result ret;
    json_decref(j);
    if (!body) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"InternalServerError\","
                                  "\"param\":null,\"code\":500}}";
        return http_respond_text(c, 500, "application/json", oom, sizeof(oom) - 1);
    }
    ret = http_respond_text(c, status, "application/json", body, strlen(body));
    free(body);
    return ret;
}

enum MHD_Result http_respond_error(struct MHD_Connection *c, const openai_error_t *e)
{
    return http_respond_json(c, (unsigned)(e->status ? e->status : 500), openai_error_json(e));
}

enum MHD_Result http_respond_status(struct MHD_Connection *c, unsigned status, const char *message)
{
    openai_error_t e;
    openai_error_set(&e, (int)status, NULL, "%s", message);
    return http_respond_error(c, &e);
}

enum MHD_Result http_respond_status_close(struct MHD_Connection *c, unsigned status, const char *message)
{
    openai_error_t e;
    json_t *j;
    char *body;
    enum MHD_Result ret;
    openai_error_set(&e, (int)status, NULL, "%s", message);
    j = openai_error_json(&e);
    body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body) return MHD_NO;
    ret = respond(c, status, "application/json", body, strlen(body), true);
    free(body);
    return ret;
}

int http_connection_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? (int)ci->connect_fd : -1;
}

bool http_client_gone(int fd)
{
    struct pollfd p;
    char ch;
    ssize_t n;
    if (fd < 0) return false;
    p.fd = fd;
    p.events = POLLIN | POLLRDHUP;
    p.revents = 0;
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL | POLLRDHUP)) return true;
    if (!(p.revents & POLLIN)) return false;
    n = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}
