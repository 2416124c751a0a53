/* auth.h: the server's API keys, the tenants they belong to, and the prefix-cache salt of each
 * request.
 *
 * Keys come from --api-key (each key its own tenant) and --api-key-file (lines "KEY [TENANT]":
 * keys that name the same tenant share it, for key rotation). A request presents its key as
 * "Authorization: Bearer KEY"; the check compares keyed digests of every configured key, without
 * an early exit, so its time says nothing about how much of a guess matched.
 *
 * Tenant isolation (vLLM CVE-2025-46570): with prefix caching a request whose prompt shares a
 * prefix with an earlier one gets its first token sooner, which its sender can time to learn
 * what others asked. The engine never shares KV blocks between different cache salts, so every
 * request of a tenant carries a salt derived here from its tenant, keyed with a per-process
 * random secret, and mixed with the client's own cache_salt: a client salt can split a tenant's
 * cache further but never reach into another tenant's (the server derives the salt; a salt the
 * client chooses alone is no isolation, as vLLM PR #53347 notes).
 *
 * Invariants: keys are unique, 1..AUTH_KEY_MAX printable ASCII bytes without spaces; tenant
 * names are 1..AUTH_TENANT_MAX bytes of [A-Za-z0-9._@:-]; the secrets never leave the object;
 * every salt is AUTH_SALT_BYTES bytes. After setup (add / load) the object is read-only, so
 * auth_check and auth_cache_salt are safe from any thread. */
#ifndef CLLM_SERVER_AUTH_H
#define CLLM_SERVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"

#define AUTH_SALT_BYTES 16
#define AUTH_KEY_MAX 512
#define AUTH_TENANT_MAX 64
#define AUTH_KEY_FILE_MAX (4u << 20) /* bytes of a key file at most */

typedef struct auth auth_t;

/* An object with no keys and fresh random secrets (getrandom, else /dev/urandom: CLLM_ERR_IO
 * when neither gives any). */
status_t auth_create(auth_t **out);
void auth_destroy(auth_t *a);

/* Adds a key. tenant NULL: the key is a tenant of its own. CLLM_ERR_INVALID_ARG for a bad or
 * repeated key or tenant name (the message does not quote the key). */
status_t auth_add_key(auth_t *a, const char *key, const char *tenant);
/* Adds the keys of a file: one "KEY" or "KEY TENANT" per line, blank lines and lines starting
 * with '#' ignored. Errors name the file and the line: CLLM_ERR_IO (unreadable, too big),
 * CLLM_ERR_FORMAT (a bad line, a repeated key, no key at all). */
status_t auth_load_key_file(auth_t *a, const char *path);

size_t auth_key_count(const auth_t *a);
size_t auth_tenant_count(const auth_t *a);

/* The index of the key an Authorization header value presents ("Bearer KEY"; the scheme is
 * case-insensitive), or -1 (NULL header, another scheme, no such key). */
int auth_check(const auth_t *a, const char *authorization);
/* The tenant's name of key index k for logs: its configured name, else "key-N" (N = k + 1);
 * "-" for k < 0. */
const char *auth_tenant_name(const auth_t *a, int k, char *buf, size_t cap);

/* The engine cache salt of a request authenticated with key index k (-1: no keys configured)
 * that sent client_salt (client_len bytes; NULL or 0: none): writes AUTH_SALT_BYTES bytes to out
 * and returns true, or returns false when the request gets no salt (k < 0 and no client salt:
 * the shared cache of an unauthenticated server). Requests of one tenant with the same client
 * salt get the same bytes; different tenants, or different client salts, never do. */
bool auth_cache_salt(const auth_t *a, int k, const char *client_salt, size_t client_len,
                     uint8_t out[AUTH_SALT_BYTES]);

#endif
