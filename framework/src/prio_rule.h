/*
 * The `priority:` rule of a stage (sl_prio_rule_t, topology.h), applied to
 * the records it emits.
 */
#ifndef SL_PRIO_RULE_H
#define SL_PRIO_RULE_H

#include "topology.h"

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

/* The level of one record given as msgpack bytes (one map). The dotted
 * field is looked up (first matching key at each step, as sl_map_get).
 * With rule->n_values, a string value, an integer's decimal text ("-3",
 * "42") or a boolean's text ("true", "false") is looked up among
 * rule->keys; without, a non-negative integer is the level itself.
 * Anything else (field missing, another type, no such key, bytes that are
 * not msgpack) gives rule->dflt. Results are clamped to SL_PRIO_LEVELS - 1.
 *
 * The bytes are untrusted: they are walked in place, never past len, and
 * only as far as the field, with no allocation (msgpack_unpack would
 * allocate what a container header claims, up to ~100 GB for a 5-byte
 * array32 header). zone is not used and may be NULL; it stays in the
 * signature for callers written against the first sketch. */
uint8_t sl__prio_rule_eval(const sl_prio_rule_t *rule, const char *payload,
                           size_t len, msgpack_zone *zone);

/* Same rule on a record already decoded (map must be a MAP, else dflt). */
uint8_t sl__prio_rule_eval_obj(const sl_prio_rule_t *rule,
                               const msgpack_object *map);

/* Frees the rule's strings and arrays and the rule itself (it is heap
 * allocated, as topology.h's stage spec holds it). NULL is a no-op. */
void sl__prio_rule_free(sl_prio_rule_t *r);

#endif
