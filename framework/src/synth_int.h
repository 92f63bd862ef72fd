/*
 * The parts of the synth module (synth.h): synth.c reads the template's
 * top level and runs the generation, synth_rate.c turns the rate shape
 * into arrival offsets, synth_field.c makes field values, synth_pattern.c
 * the strings of `string` fields. Nothing outside them includes this.
 */
#ifndef SL_SYNTH_INT_H
#define SL_SYNTH_INT_H

#include "config.h"
#include "synth.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- randomness: xoshiro256**, one stream per field and one for the
 * arrivals, so that adding a field leaves the others' values alone ---- */

typedef struct sl_synth_rng {
    uint64_t s[4];
} sl_synth_rng_t;

/* Seeds from the template's seed and a stream name. */
void sl__synth_rng_seed(sl_synth_rng_t *r, uint64_t seed, const char *name);
uint64_t sl__synth_rng_next(sl_synth_rng_t *r);
/* Uniform in [0, 1). */
double sl__synth_rng_unit(sl_synth_rng_t *r);
/* Uniform in [0, n] (inclusive; n may be UINT64_MAX), without bias. */
uint64_t sl__synth_rng_upto(sl_synth_rng_t *r, uint64_t n);

/* ---- durations and rates as templates write them ---- */

/* "10s", "500ms", "1.5s", "2m", "1h", "250us", "100ns", or an integer of
 * milliseconds (as in topologies). Reports at n with `what` naming the key
 * and returns false. */
bool sl__synth_duration(const sl_config_t *n, const char *what,
                        uint64_t *ns);
/* "100/s", "6000/m", "3600/h", "2.5/s", "10/ms", or a number (per
 * second); from 0 up to 1e9 per second. Result in records per second. */
bool sl__synth_rate(const sl_config_t *n, const char *what, double *per_s);

/* ---- the rate shape ---- */

/* A piece of the rate curve: from t0 for len ns (the last one has no end),
 * the rate going linearly from r0 to r1 (per second); lam0 is how many
 * records the curve holds before t0. */
typedef struct sl_synth_seg {
    double t0, len;
    double r0, r1;
    double lam0;
} sl_synth_seg_t;

typedef struct sl_synth_sched {
    sl_synth_seg_t *segs;
    size_t n_segs;
    uint64_t own_end_ns; /* the shape's own length, 0 if it has none */
    bool poisson;
    /* position */
    size_t seg;
    double target;       /* the curve's count the next record sits at */
    sl_synth_rng_t rng;
} sl_synth_sched_t;

/* Reads `rate:` (n may be NULL: absent). Problems reported; false then. */
bool sl__synth_sched_parse(sl_synth_sched_t *s, const sl_config_t *n);
void sl__synth_sched_reset(sl_synth_sched_t *s, uint64_t seed);
/* The next arrival in ns from the start, or false if the curve never
 * reaches another record (it ends at rate 0). */
bool sl__synth_sched_next(sl_synth_sched_t *s, double *t_ns);
void sl__synth_sched_fini(sl_synth_sched_t *s);

/* ---- string patterns ---- */

typedef struct sl_synth_pattern sl_synth_pattern_t;

/* Compiles text; NULL with why filled (naming the character) if invalid,
 * or on lack of memory. */
sl_synth_pattern_t *sl__synth_pattern_new(const char *text, char *why,
                                          size_t whylen);
void sl__synth_pattern_free(sl_synth_pattern_t *p);
/* Whether the pattern has a %d (a number to fill in). */
bool sl__synth_pattern_has_number(const sl_synth_pattern_t *p);
/* Writes one string into buf (NUL-terminated, cut at len - 1); returns
 * its length. num fills the %d placeholders. */
size_t sl__synth_pattern_make(const sl_synth_pattern_t *p, sl_synth_rng_t *r,
                              int64_t num, char *buf, size_t len);
/* The longest string it can make. */
size_t sl__synth_pattern_max(const sl_synth_pattern_t *p);

/* ---- fields ---- */

typedef struct sl_synth_field sl_synth_field_t;

/* Reads one entry of `fields:`; now_ns stands for `now`. NULL (reported)
 * if invalid. */
sl_synth_field_t *sl__synth_field_parse(const char *name,
                                        const sl_config_t *n,
                                        uint64_t now_ns);
void sl__synth_field_free(sl_synth_field_t *f);
void sl__synth_field_reset(sl_synth_field_t *f, uint64_t seed);
/* Whether the field is in record k (its `missing` draw). */
bool sl__synth_field_present(sl_synth_field_t *f);
/* Packs the key and value for record k at offset_ns. 0 or -ENOMEM. */
int sl__synth_field_pack(sl_synth_field_t *f, msgpack_packer *pk,
                         uint64_t k, uint64_t offset_ns);

/* Packs a config node as msgpack: scalars typed as the YAML loader
 * resolved them, sequences as arrays, maps as maps. */
int sl__synth_pack_node(msgpack_packer *pk, const sl_config_t *n);

#endif
