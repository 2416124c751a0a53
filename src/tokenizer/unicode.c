/* unicode.c: code point classes, UTF-8 decoding/encoding and validation (see unicode.h).
 *
 * The classes follow llama.cpp's unicode tables: \p{L} and \p{N} are the general categories
 * L* and N*, \s is the White_Space property. ASCII is answered without a table search. */
#include "tokenizer/unicode.h"

static uint8_t unicode_space_flags(uint32_t cpt)
{
    /* White_Space (PropList.txt) above ASCII; none of these is a letter or a number. */
    if (cpt == 0x85 || cpt == 0xA0 || cpt == 0x1680 || (cpt >= 0x2000 && cpt <= 0x200A) || cpt == 0x2028 ||
        cpt == 0x2029 || cpt == 0x202F || cpt == 0x205F || cpt == 0x3000)
        return UNICODE_SPACE;
    return 0;
}

uint8_t unicode_cpt_flags(uint32_t cpt)
{
    size_t lo, hi;

    if (cpt < 0x80) {
        if ((cpt | 0x20) - 'a' < 26u) return UNICODE_LETTER;
        if (cpt - '0' < 10u) return UNICODE_NUMBER;
        if (cpt == ' ' || cpt - 9u < 5u) return UNICODE_SPACE; /* \t \n \v \f \r */
        return 0;
    }
    if (cpt > 0x10FFFF) return 0;
    /* binary search for the last range with first <= cpt */
    lo = 0;
    hi = unicode_n_ranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (unicode_ranges[mid].first <= cpt)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0 && cpt <= unicode_ranges[lo - 1].last) return unicode_ranges[lo - 1].flags;
    return unicode_space_flags(cpt);
}

size_t unicode_cpt_decode(const uint8_t *s, size_t n, uint32_t *cpt)
{
    const uint8_t b = s[0];

    if (!(b & 0x80)) {
        *cpt = b;
        return 1;
    }
    if (!(b & 0x40)) goto bad; /* a stray continuation byte */
    if (!(b & 0x20)) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) goto bad;
        *cpt = ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (!(b & 0x10)) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) goto bad;
        *cpt = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (!(b & 0x08)) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) goto bad;
        *cpt = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
               (s[3] & 0x3F);
        return 4;
    }
bad:
    *cpt = UNICODE_REPLACEMENT;
    return 1;
}

size_t unicode_cpt_encode(uint32_t cpt, uint8_t out[4])
{
    if (cpt > 0x10FFFF) cpt = UNICODE_REPLACEMENT;
    if (cpt < 0x80) {
        out[0] = (uint8_t)cpt;
        return 1;
    }
    if (cpt < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cpt >> 6));
        out[1] = (uint8_t)(0x80 | (cpt & 0x3F));
        return 2;
    }
    if (cpt < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cpt >> 12));
        out[1] = (uint8_t)(0x80 | ((cpt >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cpt & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cpt >> 18));
    out[1] = (uint8_t)(0x80 | ((cpt >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cpt >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cpt & 0x3F));
    return 4;
}

utf8_check_t unicode_utf8_check(const uint8_t *s, size_t n, size_t *len)
{
    const uint8_t b = s[0];
    size_t need, i;
    uint8_t lo2 = 0x80, hi2 = 0xBF; /* allowed range of the second byte */

    if (b < 0x80) {
        *len = 1;
        return UTF8_VALID;
    }
    if (b >= 0xC2 && b <= 0xDF) {
        need = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 3;
        if (b == 0xE0) lo2 = 0xA0; /* no overlongs */
        if (b == 0xED) hi2 = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 4;
        if (b == 0xF0) lo2 = 0x90; /* no overlongs */
        if (b == 0xF4) hi2 = 0x8F; /* nothing past U+10FFFF */
    } else {
        *len = 1; /* 80..C1, F5..FF never start a sequence */
        return UTF8_INVALID;
    }
    for (i = 1; i < need; i++) {
        uint8_t lo = i == 1 ? lo2 : 0x80, hi = i == 1 ? hi2 : 0xBF;
        if (i >= n) {
            *len = i;
            return UTF8_INCOMPLETE;
        }
        if (s[i] < lo || s[i] > hi) {
            *len = i;
            return UTF8_INVALID;
        }
    }
    *len = need;
    return UTF8_VALID;
}
