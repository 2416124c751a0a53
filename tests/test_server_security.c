/* test_server_security.c: the server's API keys, tenants and cache salts (server/auth.h) and its
 * connection admission and request deadlines (server/conn_guard.h), without HTTP: key parsing
 * and checking, key files and their errors, which requests share a salt and which never do, the
 * connection limit and its overflow band, and the watchdog shutting down a socket that missed
 * its deadline (a socketpair stands in for a client). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "core/clock.h"
#include "server/auth.h"
#include "server/conn_guard.h"

/* Writes text to a new temporary file; its path in path (cap bytes). */
static void write_temp(const char *text, char *path, size_t cap)
{
    int fd;
    snprintf(path, cap, "%s/cllm-auth-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp %s", path);
    if (fd < 0) return;
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

/* Salt of key k with client salt cs (NULL: none); false when there is none. */
static bool salt(const auth_t *a, int k, const char *cs, uint8_t out[AUTH_SALT_BYTES])
{
    return auth_cache_salt(a, k, cs, cs ? strlen(cs) : 0, out);
}

static bool same(const uint8_t *x, const uint8_t *y)
{
    return memcmp(x, y, AUTH_SALT_BYTES) == 0;
}

static void test_keys(void)
{
    auth_t *a = NULL;
    char path[256], name[32];
    int ka, kb, kc, kd, ke;

    CHECK_OK(auth_create(&a));
    if (!a) return;
    CHECK(auth_key_count(a) == 0 && auth_check(a, "Bearer x") == -1, "no keys: nothing authenticates");
    CHECK_OK(auth_add_key(a, "key-a", NULL));
    CHECK_OK(auth_add_key(a, "key-b", NULL));
    write_temp("# tenant t1 has two keys\nkey-c t1\n\n  key-d\tt1  \r\n   key-e\n#key-f t9\n", path, sizeof(path));
    CHECK_OK(auth_load_key_file(a, path));
    unlink(path);
    CHECK(auth_key_count(a) == 5 && auth_tenant_count(a) == 4, "%zu keys, %zu tenants", auth_key_count(a),
          auth_tenant_count(a));

    ka = auth_check(a, "Bearer key-a");
    kb = auth_check(a, "Bearer key-b");
    kc = auth_check(a, "Bearer key-c");
    kd = auth_check(a, "Bearer key-d");
    ke = auth_check(a, "Bearer key-e");
    CHECK(ka == 0 && kb == 1 && kc == 2 && kd == 3 && ke == 4, "key indices %d %d %d %d %d", ka, kb, kc, kd, ke);
    CHECK(auth_check(a, "bearer key-a") == 0 && auth_check(a, "BEARER  key-a ") == 0, "scheme in any case, spaces");
    CHECK(auth_check(a, "Bearer key-f") == -1, "a commented-out key is no key");
    CHECK(auth_check(a, NULL) == -1 && auth_check(a, "") == -1 && auth_check(a, "Bearer ") == -1 &&
          auth_check(a, "Bearer") == -1 && auth_check(a, "Bearerkey-a") == -1 && auth_check(a, "key-a") == -1 &&
          auth_check(a, "Basic key-a") == -1,
          "malformed headers");
    CHECK(auth_check(a, "Bearer key-a2") == -1 && auth_check(a, "Bearer key-") == -1 &&
          auth_check(a, "Bearer KEY-A") == -1 && auth_check(a, "Bearer key-a key-b") == -1,
          "near misses");

    CHECK(!strcmp(auth_tenant_name(a, ka, name, sizeof(name)), "key-1"), "unnamed tenant: %s",
          auth_tenant_name(a, ka, name, sizeof(name)));
    CHECK(!strcmp(auth_tenant_name(a, kd, name, sizeof(name)), "t1"));
    CHECK(!strcmp(auth_tenant_name(a, -1, name, sizeof(name)), "-"));

    /* errors, none of which quotes the key */
    CHECK(auth_add_key(a, "", NULL) == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "empty"));
    CHECK(auth_add_key(a, "has space", NULL) == CLLM_ERR_INVALID_ARG && !strstr(cllm_error_message(), "has space"));
    CHECK(auth_add_key(a, "caf\xc3\xa9", NULL) == CLLM_ERR_INVALID_ARG);
    CHECK(auth_add_key(a, "key-a", NULL) == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "twice") &&
          !strstr(cllm_error_message(), "key-a"));
    CHECK(auth_add_key(a, "key-z", "bad/name") == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "tenant"));
    {
        char big[AUTH_KEY_MAX + 2];
        memset(big, 'k', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        CHECK(auth_add_key(a, big, NULL) == CLLM_ERR_INVALID_ARG, "a key over AUTH_KEY_MAX");
        big[AUTH_KEY_MAX] = '\0';
        CHECK_OK(auth_add_key(a, big, NULL));
    }
    CHECK(auth_key_count(a) == 6, "failed adds add nothing: %zu", auth_key_count(a));
    auth_destroy(a);
    auth_destroy(NULL);
}

static void test_key_file_errors(void)
{
    static const struct {
        const char *text, *fragment;
    } cases[] = {
        { "k1\nk2 t1 extra\n", "line 2: expected KEY or KEY TENANT" },
        { "# nothing\n\n   \n", "holds no key" },
        { "", "holds no key" },
        { "k1\nk1 t\n", "line 2: the same API key is given twice" },
        { "k1 t/1\n", "line 1: a tenant name may only hold" },
        { "k\x01 t\n", "line 1: an API key may only hold printable ASCII" },
    };
    char path[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        auth_t *a = NULL;
        status_t st;
        CHECK_OK(auth_create(&a));
        write_temp(cases[i].text, path, sizeof(path));
        st = auth_load_key_file(a, path);
        CHECK(st == CLLM_ERR_FORMAT && strstr(cllm_error_message(), cases[i].fragment) &&
                  strstr(cllm_error_message(), path),
              "case %zu: %s: %s", i, cllm_status_str(st), cllm_error_message());
        unlink(path);
        auth_destroy(a);
    }
    {
        auth_t *a = NULL;
        CHECK_OK(auth_create(&a));
        CHECK(auth_load_key_file(a, "/nonexistent/keys.txt") == CLLM_ERR_IO &&
              strstr(cllm_error_message(), "cannot read the API key file '/nonexistent/keys.txt'"),
              "%s", cllm_error_message());
        auth_destroy(a);
    }
}

static void test_salts(void)
{
    auth_t *a = NULL, *a2 = NULL, *none = NULL;
    uint8_t s[16][AUTH_SALT_BYTES];
    char path[256], *longsalt;
    int ka, kb, kc, kd;

    CHECK_OK(auth_create(&a));
    CHECK_OK(auth_create(&a2));
    CHECK_OK(auth_create(&none));
    if (!a || !a2 || !none) goto out;
    CHECK_OK(auth_add_key(a, "key-a", NULL));
    CHECK_OK(auth_add_key(a, "key-b", NULL));
    write_temp("key-c team\nkey-d team\n", path, sizeof(path));
    CHECK_OK(auth_load_key_file(a, path));
    unlink(path);
    CHECK_OK(auth_add_key(a2, "key-a", NULL));
    ka = auth_check(a, "Bearer key-a");
    kb = auth_check(a, "Bearer key-b");
    kc = auth_check(a, "Bearer key-c");
    kd = auth_check(a, "Bearer key-d");

    /* no keys and no client salt: no salt (the shared cache of a server without keys) */
    CHECK(!salt(none, -1, NULL, s[0]) && !salt(a, -1, NULL, s[0]) && !salt(a, -1, "", s[0]));
    /* a key always gets its tenant's salt */
    CHECK(salt(a, ka, NULL, s[0]) && salt(a, ka, NULL, s[1]) && same(s[0], s[1]), "one key: one salt");
    CHECK(salt(a, kb, NULL, s[2]) && !same(s[0], s[2]), "two keys of their own: two tenants");
    CHECK(salt(a, kc, NULL, s[3]) && salt(a, kd, NULL, s[4]) && same(s[3], s[4]), "two keys of one tenant: one salt");
    CHECK(!same(s[3], s[0]) && !same(s[3], s[2]), "the named tenant differs from the others");
    /* client salts split a tenant ... */
    CHECK(salt(a, ka, "x", s[5]) && salt(a, ka, "x", s[6]) && same(s[5], s[6]), "same key, same client salt");
    CHECK(salt(a, ka, "y", s[7]) && !same(s[5], s[7]) && !same(s[5], s[0]), "client salts split a tenant");
    CHECK(salt(a, kc, "x", s[8]) && salt(a, kd, "x", s[9]) && same(s[8], s[9]), "tenant keys share per client salt");
    /* ... but never join two */
    CHECK(salt(a, kb, "x", s[10]) && !same(s[5], s[10]) && !same(s[8], s[10]), "one client salt, two tenants");
    CHECK(salt(a, -1, "x", s[11]) && !same(s[11], s[5]) && !same(s[11], s[10]), "no key vs a key");
    CHECK(salt(none, -1, "x", s[12]) && salt(none, -1, "x", s[13]) && same(s[12], s[13]) &&
              salt(none, -1, "y", s[14]) && !same(s[12], s[14]),
          "no keys: the client salt alone decides");
    /* a client salt that equals a key's text reaches nothing of that key's tenant */
    CHECK(salt(a, kb, "key-a", s[14]) && !same(s[14], s[0]));
    /* the secret is per process (per object): the same key salts differently elsewhere */
    CHECK(salt(a2, 0, NULL, s[15]) && !same(s[15], s[0]), "random secrets differ");
    /* a client salt of any length */
    longsalt = malloc(100001);
    if (longsalt) {
        memset(longsalt, 's', 100000);
        longsalt[100000] = '\0';
        CHECK(salt(a, ka, longsalt, s[1]) && salt(a, ka, longsalt, s[2]) && same(s[1], s[2]));
        longsalt[99999] = 't';
        CHECK(salt(a, ka, longsalt, s[3]) && !same(s[1], s[3]), "the last byte of a long salt counts");
        free(longsalt);
    }
out:
    auth_destroy(a);
    auth_destroy(a2);
    auth_destroy(none);
}

static void test_conn_guard(void)
{
    conn_guard_t *g = NULL;
    conn_guard_entry_t *e[3];
    bool adm[3];
    int sv[2];
    char ch;
    double t0;

    /* admission: within max served, then the overflow band, then refusal */
    CHECK_OK(conn_guard_create(2, 0, &g));
    if (!g) return;
    for (int i = 0; i < 3; i++) e[i] = conn_guard_open(g, -1, &adm[i]);
    CHECK(e[0] && e[1] && e[2] && adm[0] && adm[1] && !adm[2], "2 admitted, the 3rd not");
    CHECK(conn_guard_admitted(e[0]) && !conn_guard_admitted(e[2]) && conn_guard_open_count(g) == 3);
    {
        conn_guard_entry_t *band[CONN_GUARD_OVERFLOW];
        int n = 0;
        while (conn_guard_can_accept(g) && n < CONN_GUARD_OVERFLOW) band[n++] = conn_guard_open(g, -1, NULL);
        CHECK(n == CONN_GUARD_OVERFLOW - 1 && !conn_guard_can_accept(g), "accepts up to max + overflow: %d", n);
        while (n > 0) conn_guard_close(g, band[--n]);
    }
    conn_guard_close(g, e[0]);
    CHECK(conn_guard_open_count(g) == 2 && conn_guard_can_accept(g));
    e[0] = conn_guard_open(g, -1, &adm[0]);
    CHECK(adm[0], "a served connection's slot goes to the next one, whatever waits in the overflow band");
    e[1] = (conn_guard_close(g, e[1]), conn_guard_open(g, -1, &adm[1]));
    CHECK(adm[1]);
    conn_guard_close(g, e[2]);
    e[2] = conn_guard_open(g, -1, &adm[2]);
    CHECK(!adm[2], "an overflow connection's close frees no served slot");
    for (int i = 0; i < 3; i++) conn_guard_close(g, e[i]);
    CHECK(conn_guard_open_count(g) == 0);
    conn_guard_destroy(g);

    /* the watchdog: a socket past its deadline is shut down, one being served is not */
    g = NULL;
    CHECK_OK(conn_guard_create(8, 1, &g));
    if (!g) return;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        CHECK(0, "socketpair");
        conn_guard_destroy(g);
        return;
    }
    e[0] = conn_guard_open(g, sv[0], NULL);
    conn_guard_serving(g, e[0]);
    usleep(1400000);
    CHECK(conn_guard_dropped_count(g) == 0, "no deadline while serving");
    t0 = clock_now_s();
    conn_guard_waiting(g, e[0]);
    /* the peer sees end of input once the server's side is shut down */
    CHECK(read(sv[1], &ch, 1) == 0, "the watchdog shut the socket down");
    CHECK(clock_now_s() - t0 >= 0.9 && clock_now_s() - t0 < 3.0, "after about 1 s: %.2f s", clock_now_s() - t0);
    CHECK(conn_guard_dropped_count(g) == 1);
    conn_guard_close(g, e[0]);
    close(sv[0]);
    close(sv[1]);
    conn_guard_destroy(g);
}

int main(void)
{
    test_keys();
    test_key_file_errors();
    test_salts();
    test_conn_guard();
    return check_summary();
}
