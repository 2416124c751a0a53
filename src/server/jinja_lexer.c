/* jinja_lexer.c: template source -> tokens, with Hugging Face's whitespace rules (see
 * jinja_lexer.h for what is trimmed where).
 *
 * Invariants: the normalised source (only "\n" newlines, one trailing newline dropped) lives in
 * the arena, and text tokens point into it; `}}` closes an expression tag only when its (, [
 * and { are balanced, as in Jinja; every error names the line where the offending tag,
 * comment or literal starts. */
#include "server/jinja_lexer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s; /* (n,) normalised source */
    size_t n;
    size_t line_pos; /* line number of line_pos is line */
    int line;
    jinja_arena_t *arena;
    jinja_token_t *toks; /* (cap,) malloc'd while lexing */
    size_t n_toks, cap;
} lexer_t;

static int line_at(lexer_t *lx, size_t pos)
{
    if (pos < lx->line_pos) {
        lx->line_pos = 0;
        lx->line = 1;
    }
    for (; lx->line_pos < pos && lx->line_pos < lx->n; lx->line_pos++)
        if (lx->s[lx->line_pos] == '\n') lx->line++;
    return lx->line;
}

static jinja_token_t *push(lexer_t *lx, jinja_token_type_t type, size_t pos)
{
    jinja_token_t *t;

    if (lx->n_toks == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 256;
        jinja_token_t *toks = realloc(lx->toks, cap * sizeof(*toks));
        if (!toks) return NULL;
        lx->toks = toks;
        lx->cap = cap;
    }
    t = &lx->toks[lx->n_toks++];
    memset(t, 0, sizeof(*t));
    t->type = type;
    t->line = line_at(lx, pos);
    return t;
}

static status_t nomem(void)
{
    (void)cllm_error(CLLM_ERR_NOMEM, "chat_template: out of memory");
    return CLLM_ERR_NOMEM;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool starts(const lexer_t *lx, size_t p, const char *lit)
{
    size_t k = strlen(lit);
    return p + k <= lx->n && memcmp(lx->s + p, lit, k) == 0;
}

/* Emits text [a, b) unless empty. */
static status_t emit_text(lexer_t *lx, size_t a, size_t b)
{
    jinja_token_t *t;

    if (b <= a) return CLLM_OK;
    if (!(t = push(lx, JT_TEXT, a))) return nomem();
    t->s.p = lx->s + a;
    t->s.n = b - a;
    return CLLM_OK;
}

/* lstrip_blocks: drops the spaces/tabs between the start of the line and a block tag. */
static size_t lstrip_end(const lexer_t *lx, size_t a, size_t b)
{
    size_t l = b;

    while (l > a && lx->s[l - 1] != '\n') l--;
    if (l == a && !(a == 0 || lx->s[a - 1] == '\n')) return b; /* the line started before a: a tag */
    for (size_t i = l; i < b; i++)
        if (!is_space(lx->s[i])) return b;
    return l;
}

static void utf8_put(char *out, size_t *k, uint32_t cp)
{
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    if (cp < 0x80) out[(*k)++] = (char)cp;
    else if (cp < 0x800) {
        out[(*k)++] = (char)(0xC0 | (cp >> 6));
        out[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*k)++] = (char)(0xE0 | (cp >> 12));
        out[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*k)++] = (char)(0xF0 | (cp >> 18));
        out[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*k)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes the body of a string literal [a, b) with Python's escapes. */
static status_t decode_string(lexer_t *lx, size_t a, size_t b, int line, jinja_str_t *out)
{
    char *o = jinja_arena_alloc(lx->arena, b - a + 1); /* decoding never lengthens */
    size_t k = 0;

    if (!o) return nomem();
    for (size_t i = a; i < b; i++) {
        char c = lx->s[i];
        if (c != '\\' || i + 1 >= b) {
            o[k++] = c;
            continue;
        }
        c = lx->s[++i];
        switch (c) {
        case '\n': break; /* line continuation */
        case '\\': o[k++] = '\\'; break;
        case '\'': o[k++] = '\''; break;
        case '"': o[k++] = '"'; break;
        case 'a': o[k++] = '\a'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'v': o[k++] = '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
            int nd = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            uint32_t cp = 0;
            if (i + (size_t)nd >= b) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "truncated \\%c escape", c);
            for (int d = 1; d <= nd; d++) {
                int h = hex_val(lx->s[i + (size_t)d]);
                if (h < 0) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "truncated \\%c escape", c);
                cp = cp * 16 + (uint32_t)h;
            }
            i += (size_t)nd;
            utf8_put(o, &k, cp); /* at most 4 bytes for >= 4 source bytes */
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                uint32_t cp = (uint32_t)(c - '0');
                for (int d = 0; d < 2 && i + 1 < b && lx->s[i + 1] >= '0' && lx->s[i + 1] <= '7'; d++)
                    cp = cp * 8 + (uint32_t)(lx->s[++i] - '0');
                if (cp < 0x80) o[k++] = (char)cp;
                else utf8_put(o, &k, cp); /* \200..\377: 2 bytes for 4 source bytes */
            } else {
                o[k++] = '\\'; /* unknown escapes stay as written */
                o[k++] = c;
            }
        }
    }
    o[k] = '\0';
    out->p = o;
    out->n = k;
    return CLLM_OK;
}

/* Lexes one token inside a tag at *p. */
static status_t lex_token(lexer_t *lx, size_t *p, int *bracket_depth)
{
    const char *s = lx->s;
    size_t i = *p;
    int line = line_at(lx, i);
    jinja_token_t *t;
    static const char *const two[] = { "==", "!=", "<=", ">=", "//", "**" };

    if (is_name_start(s[i])) {
        size_t j = i + 1;
        while (j < lx->n && (is_name_start(s[j]) || is_digit(s[j]))) j++;
        if (!(t = push(lx, JT_NAME, i))) return nomem();
        t->s.p = s + i;
        t->s.n = j - i;
        *p = j;
        return CLLM_OK;
    }
    if (is_digit(s[i])) {
        char num[64];
        size_t j = i, k = 0;
        bool is_float = false;
        /* digits with '_' separators, then a fraction (not right after a '.': foo.0.1), exponent */
        while (j < lx->n && (is_digit(s[j]) || (s[j] == '_' && j + 1 < lx->n && is_digit(s[j + 1])))) {
            if (s[j] != '_' && k < sizeof(num) - 1) num[k++] = s[j];
            j++;
        }
        if (j + 1 < lx->n && s[j] == '.' && is_digit(s[j + 1]) && !(i > 0 && s[i - 1] == '.')) {
            is_float = true;
            if (k < sizeof(num) - 1) num[k++] = '.';
            j++;
            while (j < lx->n && (is_digit(s[j]) || (s[j] == '_' && j + 1 < lx->n && is_digit(s[j + 1])))) {
                if (s[j] != '_' && k < sizeof(num) - 1) num[k++] = s[j];
                j++;
            }
        }
        if (j < lx->n && (s[j] == 'e' || s[j] == 'E')) {
            size_t e = j + 1;
            if (e < lx->n && (s[e] == '+' || s[e] == '-')) e++;
            if (e < lx->n && is_digit(s[e])) {
                is_float = true;
                for (size_t q = j; q < e; q++)
                    if (k < sizeof(num) - 1) num[k++] = s[q];
                j = e;
                while (j < lx->n && is_digit(s[j])) {
                    if (k < sizeof(num) - 1) num[k++] = s[j];
                    j++;
                }
            }
        }
        if (k >= sizeof(num) - 1) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "number literal too long");
        num[k] = '\0';
        if (!(t = push(lx, is_float ? JT_FLOAT : JT_INT, i))) return nomem();
        errno = 0;
        if (is_float) t->f = strtod(num, NULL);
        else t->i = strtoll(num, NULL, 10);
        if (errno == ERANGE && !is_float) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "integer literal too large");
        *p = j;
        return CLLM_OK;
    }
    if (s[i] == '\'' || s[i] == '"') {
        char q = s[i];
        size_t j = i + 1;
        status_t st;
        while (j < lx->n && s[j] != q) j += s[j] == '\\' ? 2 : 1;
        if (j >= lx->n) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "unterminated string literal");
        if (!(t = push(lx, JT_STRING, i))) return nomem();
        st = decode_string(lx, i + 1, j, line, &t->s);
        if (st != CLLM_OK) return st;
        *p = j + 1;
        return CLLM_OK;
    }
    for (size_t k = 0; k < sizeof(two) / sizeof(two[0]); k++) {
        if (starts(lx, i, two[k])) {
            if (!(t = push(lx, JT_OP, i))) return nomem();
            t->s.p = s + i;
            t->s.n = 2;
            *p = i + 2;
            return CLLM_OK;
        }
    }
    if (strchr("+-*/%~()[]{},.:|=<>", s[i]) && s[i] != '\0') {
        if (s[i] == '(' || s[i] == '[' || s[i] == '{') ++*bracket_depth;
        if ((s[i] == ')' || s[i] == ']' || s[i] == '}') && *bracket_depth > 0) --*bracket_depth;
        if (!(t = push(lx, JT_OP, i))) return nomem();
        t->s.p = s + i;
        t->s.n = 1;
        *p = i + 1;
        return CLLM_OK;
    }
    if ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f)
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "unexpected character '%c' in tag", s[i]);
    return jinja_fail(line, CLLM_ERR_INVALID_ARG, "unexpected byte 0x%02x in tag", (unsigned char)s[i]);
}

/* After a tag ends at p: `-` drops all following whitespace, trim_blocks one newline. */
static size_t after_tag(const lexer_t *lx, size_t p, bool strip, bool trim_newline)
{
    if (strip) {
        while (p < lx->n && is_space(lx->s[p])) p++;
    } else if (trim_newline && p < lx->n && lx->s[p] == '\n') {
        p++;
    }
    return p;
}

/* At "{%" at t: is this `{% raw %}`? Then sets *body (after the tag) and *strip. */
static bool match_raw_begin(const lexer_t *lx, size_t t, size_t *body, bool *strip)
{
    size_t p = t + 2;
    if (p < lx->n && (lx->s[p] == '-' || lx->s[p] == '+')) p++;
    while (p < lx->n && is_space(lx->s[p])) p++;
    if (!starts(lx, p, "raw")) return false;
    p += 3;
    while (p < lx->n && is_space(lx->s[p])) p++;
    *strip = starts(lx, p, "-%}");
    if (*strip) p++;
    if (!starts(lx, p, "%}")) return false;
    *body = p + 2;
    return true;
}

/* Finds `{% endraw %}` from p: sets *start (of the tag), *lstrip (`{%-`), *end (after it),
 * *rstrip (`-%}`) and *plus (`+%}`). */
static bool match_raw_end(const lexer_t *lx, size_t p, size_t *start, bool *lstrip, size_t *end, bool *rstrip,
                          bool *plus)
{
    for (; p + 1 < lx->n; p++) {
        size_t q = p + 2;
        if (lx->s[p] != '{' || lx->s[p + 1] != '%') continue;
        *lstrip = q < lx->n && lx->s[q] == '-';
        if (q < lx->n && (lx->s[q] == '-' || lx->s[q] == '+')) q++;
        while (q < lx->n && is_space(lx->s[q])) q++;
        if (!starts(lx, q, "endraw")) continue;
        q += 6;
        while (q < lx->n && is_space(lx->s[q])) q++;
        *rstrip = starts(lx, q, "-%}");
        *plus = starts(lx, q, "+%}");
        if (*rstrip || *plus) q++;
        if (!starts(lx, q, "%}")) continue;
        *start = p;
        *end = q + 2;
        return true;
    }
    return false;
}

/* Lexes a comment, raw block or tag starting at t; text [text_a, t) precedes it. */
static status_t lex_tag(lexer_t *lx, size_t text_a, size_t t, size_t *pos)
{
    char kind = lx->s[t + 1];
    size_t p = t + 2, text_b = t;
    char sign = 0;
    int line = line_at(lx, t), depth = 0;
    bool strip = false, plus = false, raw_strip;
    size_t raw_body;
    status_t st;

    if (p < lx->n && (lx->s[p] == '-' || (lx->s[p] == '+' && kind != '{'))) sign = lx->s[p++];
    if (sign == '-') {
        while (text_b > text_a && is_space(lx->s[text_b - 1])) text_b--;
    } else if (kind != '{' && sign != '+') {
        text_b = lstrip_end(lx, text_a, text_b);
    }
    if ((st = emit_text(lx, text_a, text_b)) != CLLM_OK) return st;

    if (kind == '#') {
        const char *end = NULL;
        for (size_t q = p; q + 1 < lx->n; q++)
            if (lx->s[q] == '#' && lx->s[q + 1] == '}') {
                end = lx->s + q;
                break;
            }
        if (!end) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "unterminated comment");
        p = (size_t)(end - lx->s);
        strip = p > t + 2 && lx->s[p - 1] == '-';
        plus = p > t + 2 && lx->s[p - 1] == '+';
        *pos = after_tag(lx, p + 2, strip, !plus);
        return CLLM_OK;
    }
    if (kind == '%' && match_raw_begin(lx, t, &raw_body, &raw_strip)) {
        size_t e_start, e_end, body_a = raw_body, body_b;
        bool e_lstrip, e_rstrip, e_plus;
        if (!match_raw_end(lx, raw_body, &e_start, &e_lstrip, &e_end, &e_rstrip, &e_plus))
            return jinja_fail(line, CLLM_ERR_INVALID_ARG, "unterminated {%% raw %%} block");
        if (raw_strip)
            while (body_a < e_start && is_space(lx->s[body_a])) body_a++;
        body_b = e_start;
        if (e_lstrip)
            while (body_b > body_a && is_space(lx->s[body_b - 1])) body_b--;
        if ((st = emit_text(lx, body_a, body_b)) != CLLM_OK) return st;
        *pos = after_tag(lx, e_end, e_rstrip, !e_plus);
        return CLLM_OK;
    }

    if (!push(lx, kind == '%' ? JT_BLOCK_BEGIN : JT_VAR_BEGIN, t)) return nomem();
    for (;;) {
        while (p < lx->n && is_space(lx->s[p])) p++;
        if (p >= lx->n)
            return jinja_fail(line, CLLM_ERR_INVALID_ARG, "unterminated %s tag", kind == '%' ? "{%" : "{{");
        if (kind == '%') {
            if (starts(lx, p, "-%}") || starts(lx, p, "+%}")) {
                strip = lx->s[p] == '-';
                plus = lx->s[p] == '+';
                p += 3;
                break;
            }
            if (starts(lx, p, "%}")) {
                p += 2;
                break;
            }
        } else if (depth == 0) {
            if (starts(lx, p, "-}}")) {
                strip = true;
                p += 3;
                break;
            }
            if (starts(lx, p, "}}")) {
                p += 2;
                break;
            }
        }
        if ((st = lex_token(lx, &p, &depth)) != CLLM_OK) return st;
    }
    if (!push(lx, kind == '%' ? JT_BLOCK_END : JT_VAR_END, p - 2)) return nomem();
    *pos = after_tag(lx, p, strip, kind == '%' && !plus);
    return CLLM_OK;
}

status_t jinja_lex(const char *src, size_t len, jinja_arena_t *arena, jinja_token_t **toks, size_t *n_toks)
{
    lexer_t lx;
    char *norm;
    size_t k = 0, pos = 0;
    status_t st = CLLM_OK;

    *toks = NULL;
    *n_toks = 0;
    if (len > JINJA_MAX_SOURCE)
        return cllm_error(CLLM_ERR_RANGE, "chat_template: template larger than %u MiB", JINJA_MAX_SOURCE >> 20);
    if (!(norm = jinja_arena_alloc(arena, len + 1))) return nomem();
    for (size_t i = 0; i < len; i++) { /* \r\n and \r become \n, as Jinja's newline_sequence */
        if (src[i] == '\r') {
            norm[k++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            norm[k++] = src[i];
        }
    }
    if (k > 0 && norm[k - 1] == '\n') k--; /* keep_trailing_newline=False */
    norm[k] = '\0';

    memset(&lx, 0, sizeof(lx));
    lx.s = norm;
    lx.n = k;
    lx.line = 1;
    lx.arena = arena;
    while (pos < lx.n) {
        size_t t = pos;
        while (t + 1 < lx.n && !(lx.s[t] == '{' && (lx.s[t + 1] == '{' || lx.s[t + 1] == '%' || lx.s[t + 1] == '#')))
            t++;
        if (t + 1 >= lx.n) {
            st = emit_text(&lx, pos, lx.n);
            break;
        }
        if ((st = lex_tag(&lx, pos, t, &pos)) != CLLM_OK) break;
    }
    if (st == CLLM_OK && !push(&lx, JT_EOF, lx.n)) st = nomem();
    if (st == CLLM_OK && lx.toks) {
        jinja_token_t *out = jinja_arena_alloc(arena, lx.n_toks * sizeof(*out));
        if (!out) st = nomem();
        else {
            memcpy(out, lx.toks, lx.n_toks * sizeof(*out));
            *toks = out;
            *n_toks = lx.n_toks;
        }
    }
    free(lx.toks);
    return st;
}
