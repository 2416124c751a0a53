/* jinja_filters.h: the filters (`x | trim`) and tests (`x is defined`) chat templates use.
 *
 * Filters: abs, capitalize, count, d/default, dictsort, e/escape, first, float, int, items,
 * join, last, length, list, lower, map, max, min, reject, rejectattr, replace, reverse,
 * round, safe, select, selectattr, sort, string, sum, title, tojson (Hugging Face's version:
 * json.dumps with ensure_ascii=False, no HTML escaping; indent, separators, sort_keys), trim,
 * unique, upper.
 * Tests: defined, undefined, none, boolean, true, false, integer, float, number, string,
 * mapping, iterable, sequence, callable, odd, even, divisibleby, eq/equalto/==, ne/!=,
 * lt/lessthan/<, le/<=, gt/greaterthan/>, ge/>=, in, lower, upper, sameas.
 * Names are checked when the template is parsed (as Jinja does), so an unknown filter fails
 * chat_template_create, not the first render. Filters never modify their input. */
#ifndef CLLM_SERVER_JINJA_FILTERS_H
#define CLLM_SERVER_JINJA_FILTERS_H

#include <stdbool.h>

#include "cllm/status.h"
#include "server/jinja_value.h"

bool jinja_filter_exists(jinja_str_t name);
bool jinja_test_exists(jinja_str_t name);

/* v | name(args). */
status_t jinja_filter_apply(jinja_rt_t *rt, int line, jinja_str_t name, jinja_value_t v, const jinja_args_t *args,
                            jinja_value_t *out);
/* v is name(args). */
status_t jinja_test_apply(jinja_rt_t *rt, int line, jinja_str_t name, jinja_value_t v, const jinja_args_t *args,
                          bool *out);

#endif
