/* Resource limits on records: see record_limits.h and docs/topology.md. */
#include "record_limits.h"

#include "batch.h"
#include "mpscan.h"
#include "topology_parse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

static const char *const s_limit_keys[] = {"max_record_bytes", "max_depth",
                                           "max_batch_records", NULL};

void sl__limits_default(sl_limits_t *l)
{
    l->max_record_bytes = SL_LIMITS_DEFAULT_RECORD_BYTES;
    l->max_depth = SL_LIMITS_DEFAULT_DEPTH;
    l->max_batch_records = SL_LIMITS_DEFAULT_BATCH_RECORDS;
}

int sl__limits_check(const sl_limits_t *l, const void *p, size_t len,
                     char *msg, size_t msglen)
{
    if (len > l->max_record_bytes) {
        snprintf(msg, msglen, "of %zu bytes is over limits.max_record_bytes "
                 "(%" PRIu32 ")", len, l->max_record_bytes);
        return -EMSGSIZE;
    }
    /* Nesting needs container headers, one byte each at least: most
     * records show too few header-like bytes to be deep, and only the
     * others are walked. */
    size_t used;
    if (len > l->max_depth &&
        sl__mpscan_max_containers(p, len) > l->max_depth &&
        sl__mpscan_object(p, len, l->max_depth, &used) == -ELOOP) {
        snprintf(msg, msglen, "nested deeper than limits.max_depth (%" PRIu32
                 ")", l->max_depth);
        return -ELOOP;
    }
    return 0;
}

uint64_t sl__limits_max_message(const sl_limits_t *l)
{
    return SL_BATCH_HDR + (uint64_t)l->max_batch_records *
                              (SL_ENV_SIZE + (uint64_t)l->max_record_bytes);
}

/* ---- topology keys -------------------------------------------------------- */

/* One key of `limits:` as an integer in [lo, hi]; why explains the upper
 * bound when it is not obvious. false (reported) when it is not. */
static bool s_get(sl_topo_parse_t *p, const sl_config_t *map, const char *key,
                  const char *where, uint32_t lo, uint32_t hi,
                  const char *why, uint32_t *out)
{
    const sl_config_t *n = sl_config_get(map, key);
    if (!n)
        return true;
    char prefix[112], buf[96];
    snprintf(prefix, sizeof(prefix), "%s%s", where, *where ? ": " : "");
    int64_t v;
    if (sl_config_int(n, &v) != 0) {
        sl__topo_err(p, n, "%s'limits.%s' must be an integer from %" PRIu32
                     " to %" PRIu32 ", got %s", prefix, key, lo, hi,
                     sl__topo_what(n, buf, sizeof(buf)));
        return false;
    }
    if (v < lo || v > hi) {
        sl__topo_err(p, n, "%s'limits.%s' must be from %" PRIu32 " to %"
                     PRIu32 "%s, got %lld", prefix, key, lo, hi, why,
                     (long long)v);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

void sl__topo_parse_limits(sl_topo_parse_t *p, const sl_config_t *n,
                           const char *where, sl_limits_t *l)
{
    char buf[96], in[128];
    if (!n)
        return;
    if (sl_config_type(n) != SL_CONFIG_MAP) {
        sl__topo_err(p, n, "%s%s'limits' must be a map such as "
                     "{max_record_bytes: 1048576, max_depth: 32}, got %s",
                     where, *where ? ": " : "",
                     sl__topo_what(n, buf, sizeof(buf)));
        return;
    }
    if (*where)
        snprintf(in, sizeof(in), "in 'limits' of %s", where);
    else
        snprintf(in, sizeof(in), "in 'limits'");
    sl__topo_check_keys(p, n, s_limit_keys, in);
    sl_limits_t v = *l;
    s_get(p, n, "max_record_bytes", where, SL_LIMITS_MIN_RECORD_BYTES,
          SL_LIMITS_MAX_RECORD_BYTES, "", &v.max_record_bytes);
    s_get(p, n, "max_depth", where, 1, SL_LIMITS_MAX_DEPTH,
          " (msgpack-c decodes at most 32 levels)", &v.max_depth);
    s_get(p, n, "max_batch_records", where, 1, SL_LIMITS_MAX_BATCH_RECORDS,
          " (the largest 'batch')", &v.max_batch_records);
    *l = v;
}

void sl__topo_limit_batches(sl_topo_parse_t *p)
{
    sl_topology_t *t = p->t;
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        for (size_t o = 0; o < s->n_outputs; o++) {
            uint32_t max = t->stages[s->outputs[o]].limits.max_batch_records;
            if (max && s->batch > max)
                s->batch = max;
        }
    }
}
