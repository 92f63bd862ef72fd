/*
 * Synthetic traffic: records made up from a YAML template (field
 * generators, a rate shape, a seed), for `sluice trace synth` and
 * `sluice replay --synth`. docs/replay.md ("Synthetic traces") documents
 * the template. The same template and seed give the same records at the
 * same offsets, byte for byte (a timestamp field that starts at `now`
 * aside).
 */
#ifndef SL_SYNTH_H
#define SL_SYNTH_H

#include <msgpack.h>

#include <stddef.h>
#include <stdint.h>

typedef struct sl_synth sl_synth_t;

/* Loads and checks a template. On failure returns NULL and writes every
 * problem into err, one "FILE:LINE:COL: message" per line (cut to fit). */
sl_synth_t *sl_synth_load(const char *path, char *err, size_t errlen);
/* Same from text; name stands in for the file name in messages. */
sl_synth_t *sl_synth_parse(const char *name, const char *text, size_t len,
                           char *err, size_t errlen);
void sl_synth_destroy(sl_synth_t **s);

/* The next record: resets rec and packs one map into it, with its offset
 * in ns from the first record (0 for the first; never decreasing).
 * Returns 0, 1 at the end (nothing packed), or -ENOMEM. */
int sl_synth_next(sl_synth_t *s, uint64_t *offset_ns, msgpack_sbuffer *rec);
/* Back to the first record: the same sequence again. */
void sl_synth_rewind(sl_synth_t *s);
/* Records made so far since the start or the last rewind. */
uint64_t sl_synth_made(const sl_synth_t *s);
/* What to call the result ("synth FILE seed N"), for a trace's origin. */
const char *sl_synth_origin(const sl_synth_t *s);

#endif
