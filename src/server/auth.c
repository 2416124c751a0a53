/* auth.c: API keys, tenants and cache salts (auth.h).
 *
 * Owns the keys (copies), the tenants and two 192-byte random secrets: one keys the digests that
 * keys are compared by, the other every salt. All hashing is XXH3-128 with a secret (xxhash is
 * already the prefix cache's hash); each derived value hashes a one-byte tag first, so values of
 * different kinds never come from the same input:
 *   tenant salt   = H('K' || key)  for a key of its own tenant,  H('T' || name) for a named tenant
 *   request salt  = tenant salt                                  (a key, no client salt)
 *                 = H('M' || tenant salt || c)   (a key and a client salt)
 *                 = H('N' || c)                  (no keys, a client salt)
 *   where c       = H('C' || H(client salt))
 *
 * Invariants: see auth.h; keys[i].tenant indexes tenants; a named tenant appears once. */
#include "server/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/file.h"
#include "core/log.h"

#define AUTH_SECRET_BYTES 192 /* over XXH3_SECRET_SIZE_MIN (136) */

typedef struct {
    char *key;
    size_t len;
    uint8_t digest[AUTH_SALT_BYTES]; /* H_auth(key) */
    int tenant;
} auth_key_t;

typedef struct {
    char *name; /* NULL: the tenant of one unnamed key */
    uint8_t salt[AUTH_SALT_BYTES];
} auth_tenant_t;

struct auth {
    uint8_t secret_auth[AUTH_SECRET_BYTES];
    uint8_t secret_salt[AUTH_SECRET_BYTES];
    auth_key_t *keys; /* (n_keys) */
    size_t n_keys, cap_keys;
    auth_tenant_t *tenants; /* (n_tenants) */
    size_t n_tenants, cap_tenants;
};

/* ---- hashing ---- */

static void hash_to(const uint8_t *secret, const void *data, size_t len, uint8_t out[AUTH_SALT_BYTES])
{
    XXH128_hash_t h = XXH3_128bits_withSecret(data, len, secret, AUTH_SECRET_BYTES);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(out, c.digest, AUTH_SALT_BYTES);
}

/* H(tag || a || b) for short a and b (at most AUTH_KEY_MAX bytes together). */
static void hash_tagged(const uint8_t *secret, char tag, const void *a, size_t alen, const void *b, size_t blen,
                        uint8_t out[AUTH_SALT_BYTES])
{
    uint8_t buf[1 + AUTH_KEY_MAX];
    buf[0] = (uint8_t)tag;
    if (alen) memcpy(buf + 1, a, alen);
    if (blen) memcpy(buf + 1 + alen, b, blen);
    hash_to(secret, buf, 1 + alen + blen, out);
}

/* H('C' || H(client salt)): a client salt of any length in two fixed-size steps. */
static void hash_client_salt(const uint8_t *secret, const char *s, size_t len, uint8_t out[AUTH_SALT_BYTES])
{
    uint8_t inner[AUTH_SALT_BYTES];
    hash_to(secret, s, len, inner);
    hash_tagged(secret, 'C', inner, sizeof(inner), NULL, 0, out);
}

/* Equal without a data-dependent branch or early exit. */
static bool digest_equal(const uint8_t *a, const uint8_t *b)
{
    unsigned d = 0;
    for (size_t i = 0; i < AUTH_SALT_BYTES; i++) d |= (unsigned)(a[i] ^ b[i]);
    return d == 0;
}

static int fill_random(uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        got += (size_t)r;
    }
    if (got < n) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0) return -1;
        while (got < n) {
            ssize_t r = read(fd, buf + got, n - got);
            if (r <= 0) {
                if (r < 0 && errno == EINTR) continue;
                close(fd);
                return -1;
            }
            got += (size_t)r;
        }
        close(fd);
    }
    return 0;
}

/* ---- set-up ---- */

status_t auth_create(auth_t **out)
{
    auth_t *a;
    *out = NULL;
    a = calloc(1, sizeof(*a));
    if (!a) return cllm_error(CLLM_ERR_NOMEM, "auth: out of memory");
    if (fill_random(a->secret_auth, sizeof(a->secret_auth)) || fill_random(a->secret_salt, sizeof(a->secret_salt))) {
        free(a);
        return cllm_error(CLLM_ERR_IO, "auth: no random bytes for the key and salt secrets (getrandom and "
                          "/dev/urandom failed)");
    }
    *out = a;
    return CLLM_OK;
}

void auth_destroy(auth_t *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n_keys; i++) {
        /* the keys are secrets: do not leave them in freed memory */
        memset(a->keys[i].key, 0, a->keys[i].len);
        free(a->keys[i].key);
    }
    for (size_t i = 0; i < a->n_tenants; i++) free(a->tenants[i].name);
    free(a->keys);
    free(a->tenants);
    memset(a, 0, sizeof(*a));
    free(a);
}

size_t auth_key_count(const auth_t *a)
{
    return a ? a->n_keys : 0;
}

size_t auth_tenant_count(const auth_t *a)
{
    return a ? a->n_tenants : 0;
}

/* Why key (len bytes) is not acceptable, or NULL. */
static const char *key_problem(const char *key, size_t len)
{
    if (len == 0) return "an API key must not be empty";
    if (len > AUTH_KEY_MAX) return "an API key is longer than 512 bytes";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] <= 0x20 || (unsigned char)key[i] >= 0x7f)
            return "an API key may only hold printable ASCII characters without spaces";
    return NULL;
}

static const char *tenant_problem(const char *name, size_t len)
{
    if (len == 0 || len > AUTH_TENANT_MAX) return "a tenant name must have 1 to 64 characters";
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '@' || c == ':' || c == '-';
        if (!ok) return "a tenant name may only hold letters, digits and . _ @ : -";
    }
    return NULL;
}

/* The tenant index of a named tenant (created if new), or of a new unnamed one; -1 without memory. */
static int tenant_for(auth_t *a, const char *name, size_t name_len, const char *key, size_t key_len)
{
    auth_tenant_t *t;
    if (name) {
        for (size_t i = 0; i < a->n_tenants; i++)
            if (a->tenants[i].name && strlen(a->tenants[i].name) == name_len &&
                !memcmp(a->tenants[i].name, name, name_len))
                return (int)i;
    }
    if (a->n_tenants == a->cap_tenants) {
        size_t c = a->cap_tenants ? 2 * a->cap_tenants : 4;
        auth_tenant_t *nt = realloc(a->tenants, c * sizeof(*nt));
        if (!nt) return -1;
        a->tenants = nt;
        a->cap_tenants = c;
    }
    t = &a->tenants[a->n_tenants];
    memset(t, 0, sizeof(*t));
    if (name) {
        t->name = strndup(name, name_len);
        if (!t->name) return -1;
        hash_tagged(a->secret_salt, 'T', name, name_len, NULL, 0, t->salt);
    } else {
        hash_tagged(a->secret_salt, 'K', key, key_len, NULL, 0, t->salt);
    }
    return (int)a->n_tenants++;
}

/* auth_add_key on (key, key_len) and (tenant, tenant_len); *why gets the problem's text. */
static status_t add_key(auth_t *a, const char *key, size_t key_len, const char *tenant, size_t tenant_len,
                        const char **why)
{
    auth_key_t *k;
    uint8_t digest[AUTH_SALT_BYTES];
    int t;

    if ((*why = key_problem(key, key_len)) != NULL) return CLLM_ERR_INVALID_ARG;
    if (tenant && (*why = tenant_problem(tenant, tenant_len)) != NULL) return CLLM_ERR_INVALID_ARG;
    hash_to(a->secret_auth, key, key_len, digest);
    for (size_t i = 0; i < a->n_keys; i++)
        if (a->keys[i].len == key_len && !memcmp(a->keys[i].key, key, key_len)) {
            *why = "the same API key is given twice";
            return CLLM_ERR_INVALID_ARG;
        }
    if (a->n_keys == a->cap_keys) {
        size_t c = a->cap_keys ? 2 * a->cap_keys : 4;
        auth_key_t *nk = realloc(a->keys, c * sizeof(*nk));
        if (!nk) goto nomem;
        a->keys = nk;
        a->cap_keys = c;
    }
    k = &a->keys[a->n_keys];
    k->key = malloc(key_len + 1);
    if (!k->key) goto nomem;
    memcpy(k->key, key, key_len);
    k->key[key_len] = '\0';
    k->len = key_len;
    memcpy(k->digest, digest, sizeof(digest));
    t = tenant_for(a, tenant, tenant_len, key, key_len);
    if (t < 0) {
        free(k->key);
        goto nomem;
    }
    k->tenant = t;
    a->n_keys++;
    return CLLM_OK;
nomem:
    *why = "out of memory";
    return CLLM_ERR_NOMEM;
}

status_t auth_add_key(auth_t *a, const char *key, const char *tenant)
{
    const char *why = NULL;
    status_t st;
    if (!a || !key) return cllm_error(CLLM_ERR_INVALID_ARG, "auth: NULL argument");
    st = add_key(a, key, strlen(key), tenant, tenant ? strlen(tenant) : 0, &why);
    if (st != CLLM_OK) return cllm_error(st, "%s", why);
    return CLLM_OK;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

status_t auth_load_key_file(auth_t *a, const char *path)
{
    char *text;
    size_t len, pos = 0, n_added = 0;
    int line = 0;
    struct stat stt;
    status_t st = CLLM_OK;

    if (!a || !path) return cllm_error(CLLM_ERR_INVALID_ARG, "auth: NULL argument");
    errno = 0;
    text = file_read_all(path, AUTH_KEY_FILE_MAX, &len);
    if (!text) {
        if (errno == EFBIG)
            return cllm_error(CLLM_ERR_IO, "API key file '%s' is over %u bytes", path, AUTH_KEY_FILE_MAX);
        return cllm_error(CLLM_ERR_IO, "cannot read the API key file '%s': %s", path,
                          errno ? strerror(errno) : "read error");
    }
    if (stat(path, &stt) == 0 && (stt.st_mode & 0077))
        log_warn("auth: the API key file '%s' can be read by other users (chmod 600 it)", path);
    while (pos < len && st == CLLM_OK) {
        const char *p = text + pos, *end = memchr(p, '\n', len - pos), *f[3];
        size_t flen[3], nf = 0, n;
        const char *why = NULL;
        n = end ? (size_t)(end - p) : len - pos;
        pos += n + 1;
        line++;
        /* split into at most 3 whitespace-separated fields */
        for (size_t i = 0; i < n;) {
            while (i < n && is_blank(p[i])) i++;
            if (i >= n) break;
            if (nf == 0 && p[i] == '#') break; /* a comment line */
            if (nf == 3) {
                nf = 4;
                break;
            }
            f[nf] = p + i;
            while (i < n && !is_blank(p[i])) i++;
            flen[nf] = (size_t)(p + i - f[nf]);
            nf++;
        }
        if (nf == 0) continue;
        if (nf > 2) {
            st = cllm_error(CLLM_ERR_FORMAT, "API key file '%s' line %d: expected KEY or KEY TENANT, found %s fields",
                            path, line, nf > 3 ? "more than 3" : "3");
            break;
        }
        st = add_key(a, f[0], flen[0], nf == 2 ? f[1] : NULL, nf == 2 ? flen[1] : 0, &why);
        if (st != CLLM_OK) {
            st = cllm_error(st == CLLM_ERR_NOMEM ? CLLM_ERR_NOMEM : CLLM_ERR_FORMAT, "API key file '%s' line %d: %s",
                            path, line, why);
            break;
        }
        n_added++;
    }
    memset(text, 0, len);
    free(text);
    if (st == CLLM_OK && n_added == 0)
        st = cllm_error(CLLM_ERR_FORMAT, "API key file '%s' holds no key (lines: KEY or KEY TENANT)", path);
    return st;
}

/* ---- per request ---- */

int auth_check(const auth_t *a, const char *authorization)
{
    const char *tok;
    size_t len;
    uint8_t digest[AUTH_SALT_BYTES];
    int found = -1;
    unsigned diff;

    if (!a || !authorization || a->n_keys == 0) return -1;
    if (strncasecmp(authorization, "Bearer", 6) != 0 || !is_blank(authorization[6])) return -1;
    tok = authorization + 7;
    while (is_blank(*tok)) tok++;
    len = strlen(tok);
    while (len > 0 && is_blank(tok[len - 1])) len--;
    if (len == 0 || len > AUTH_KEY_MAX) return -1;
    hash_to(a->secret_auth, tok, len, digest);
    /* every key is compared, whatever matched before */
    for (size_t i = 0; i < a->n_keys; i++) {
        bool eq = digest_equal(digest, a->keys[i].digest);
        found = eq ? (int)i : found;
    }
    if (found < 0) return -1;
    /* the digests matched: confirm the bytes (equal digests of different keys are not trusted) */
    if (a->keys[found].len != len) return -1;
    diff = 0;
    for (size_t i = 0; i < len; i++) diff |= (unsigned)((unsigned char)a->keys[found].key[i] ^ (unsigned char)tok[i]);
    return diff == 0 ? found : -1;
}

const char *auth_tenant_name(const auth_t *a, int k, char *buf, size_t cap)
{
    if (!a || k < 0 || (size_t)k >= a->n_keys) return "-";
    if (a->tenants[a->keys[k].tenant].name) return a->tenants[a->keys[k].tenant].name;
    snprintf(buf, cap, "key-%d", k + 1);
    return buf;
}

bool auth_cache_salt(const auth_t *a, int k, const char *client_salt, size_t client_len,
                     uint8_t out[AUTH_SALT_BYTES])
{
    bool has_client = client_salt && client_len > 0;
    uint8_t cs[AUTH_SALT_BYTES];
    const uint8_t *tenant_salt = NULL;

    if (!a) return false;
    if (k >= 0 && (size_t)k < a->n_keys) tenant_salt = a->tenants[a->keys[k].tenant].salt;
    if (!tenant_salt && !has_client) return false;
    if (!has_client) {
        memcpy(out, tenant_salt, AUTH_SALT_BYTES);
        return true;
    }
    hash_client_salt(a->secret_salt, client_salt, client_len, cs);
    if (tenant_salt) hash_tagged(a->secret_salt, 'M', tenant_salt, AUTH_SALT_BYTES, cs, sizeof(cs), out);
    else hash_tagged(a->secret_salt, 'N', cs, sizeof(cs), NULL, 0, out);
    return true;
}
