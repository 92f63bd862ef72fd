/*
 * Resource limits on records: how big a record may be, how deeply it may
 * nest, and how many records one link message may carry. The topology's
 * `limits:` map sets them for every stage, a stage's own `limits:`
 * overrides keys one by one (docs/topology.md, "Limits"). A record over a
 * limit is dead-lettered with the reason; it never stops the run.
 *
 * Where they are checked: a stage's emit (size, then depth: ctx.c), its
 * decoding of a record (depth, with sl__mpscan_decode) and the producers
 * feeding it (a batch never holds more than the consumer's
 * max_batch_records; topology.c).
 */
#ifndef SL_RECORD_LIMITS_H
#define SL_RECORD_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/* 1 MiB: thousands of times a typical record (a log line, an order, a
 * row: 100 bytes to a few KiB), and as large as http_source's max_body by
 * default, so a body accepted there fits in one record. A stage holds up
 * to `queue` records, so this also bounds its memory: 1024 x 1 MiB. */
#define SL_LIMITS_DEFAULT_RECORD_BYTES (1u << 20)
#define SL_LIMITS_MIN_RECORD_BYTES 16u
#define SL_LIMITS_MAX_RECORD_BYTES (1u << 30)
/* msgpack-c (and so every stage) decodes at most 32 nested containers,
 * the record map included: the default is all that can be decoded, and a
 * topology may only lower it. */
#define SL_LIMITS_MAX_DEPTH 32u
#define SL_LIMITS_DEFAULT_DEPTH SL_LIMITS_MAX_DEPTH
/* The largest `batch` a producer may have, so by default every batch a
 * sluice producer sends is accepted. */
#define SL_LIMITS_MAX_BATCH_RECORDS 4096u
#define SL_LIMITS_DEFAULT_BATCH_RECORDS SL_LIMITS_MAX_BATCH_RECORDS

typedef struct sl_limits {
    uint32_t max_record_bytes;  /* msgpack bytes of one record */
    uint32_t max_depth;         /* containers, the record map included */
    uint32_t max_batch_records; /* records in one link message into the
                                   stage */
} sl_limits_t;

/* The defaults above. */
void sl__limits_default(sl_limits_t *l);

/* Whether a record of len msgpack bytes at p is within l: 0, or
 * -EMSGSIZE (too big) or -ELOOP (too deep) with what is wrong in msg,
 * worded to follow "record " ("of 2100000 bytes is over
 * limits.max_record_bytes (1048576)"). Only the limits are judged: bytes
 * that are not msgpack pass (a decoder refuses them later). The size costs
 * a compare; the depth a scan of the bytes for ones that could be
 * container headers (sl__mpscan_max_containers), and a walk over the
 * record's items (sl__mpscan_object) only when there are more than
 * max_depth of them. */
int sl__limits_check(const sl_limits_t *l, const void *p, size_t len,
                     char *msg, size_t msglen);

/* The largest link message a stage with limits l can be sent: its batch
 * header and max_batch_records records of max_record_bytes. */
uint64_t sl__limits_max_message(const sl_limits_t *l);

/* ---- topology keys (record_limits.c, called by the topology loader) ---- */

struct sl_topo_parse;
typedef struct sl_config sl_config_t;

/* Reads a `limits:` map n over *l (keys left out keep their value):
 * where is "" at the top level or a stage's label ("stage 'x'"). Each
 * problem goes to the parse's diagnostics with FILE:LINE:COL; *l is only
 * changed by values that are valid. */
void sl__topo_parse_limits(struct sl_topo_parse *p, const sl_config_t *n,
                           const char *where, sl_limits_t *l);
/* After the graph is linked: each producer's `batch` is capped by its
 * consumers' max_batch_records, as it is by their queue share. */
void sl__topo_limit_batches(struct sl_topo_parse *p);

#endif
