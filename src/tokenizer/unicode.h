/* unicode.h: the little Unicode the tokenizers need: UTF-8 decoding and encoding with
 * llama.cpp's rules, the \p{L} / \p{N} / \s classes of a code point, and UTF-8 validation for
 * the streaming decoder.
 *
 * Invariants: every function is pure (no state, thread-safe) and accepts any input bytes;
 * the category ranges (unicode_data.c, generated) are sorted and disjoint. */
#ifndef CLLM_TOKENIZER_UNICODE_H
#define CLLM_TOKENIZER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

#define UNICODE_LETTER 0x01 /* general category L*: \p{L} */
#define UNICODE_NUMBER 0x02 /* general category N*: \p{N} */
#define UNICODE_SPACE 0x04  /* White_Space property: \s */

#define UNICODE_REPLACEMENT 0xFFFDu

typedef struct {
    uint32_t first, last; /* inclusive */
    uint8_t flags;        /* UNICODE_LETTER or UNICODE_NUMBER */
} unicode_range_t;

/* Generated tables (unicode_data.c). */
extern const unicode_range_t unicode_ranges[];
extern const size_t unicode_n_ranges;

/* UNICODE_* flags of a code point (0 for anything else, including values past U+10FFFF). */
uint8_t unicode_cpt_flags(uint32_t cpt);

/* Length of the UTF-8 sequence a lead byte announces, by its high nibble, as llama.cpp's
 * unicode_len_utf8: 1 for ASCII and for stray continuation bytes, 2, 3 or 4 otherwise. */
static inline size_t unicode_len_utf8(uint8_t lead)
{
    static const uint8_t len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    return len[lead >> 4];
}

/* Decodes one code point from s (n >= 1 bytes) as llama.cpp's unicode_cpts_from_utf8: the lead
 * byte and the continuation bits are checked (overlong forms and surrogates are accepted);
 * anything else decodes as U+FFFD and consumes one byte. Returns the bytes consumed (1..4). */
size_t unicode_cpt_decode(const uint8_t *s, size_t n, uint32_t *cpt);

/* Encodes cpt as UTF-8 into out (4 bytes); a value past U+10FFFF becomes U+FFFD. Returns the
 * length (1..4). */
size_t unicode_cpt_encode(uint32_t cpt, uint8_t out[4]);

typedef enum {
    UTF8_VALID = 0,  /* a whole well-formed sequence */
    UTF8_INCOMPLETE, /* a well-formed prefix cut short by the end of the input */
    UTF8_INVALID,    /* ill-formed: the maximal bad subpart (>= 1 byte) is to be replaced */
} utf8_check_t;

/* Checks the sequence at the start of s (n >= 1 bytes) against the Unicode table of
 * well-formed UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF). *len gets the
 * sequence length (VALID), the bytes present (INCOMPLETE) or the maximal subpart (INVALID). */
utf8_check_t unicode_utf8_check(const uint8_t *s, size_t n, size_t *len);

#endif
