/* Per-priority split of a received batch: see batch_prio.h. */
#include "batch_prio.h"

#include <errno.h>
#include <string.h>

static unsigned s_level(uint8_t priority)
{
    return priority < SL_PRIO_LEVELS ? priority : SL_PRIO_LEVELS - 1;
}

int sl__batch_split_prio(const void *msg, size_t len,
                         sl_batch_t out[SL_PRIO_LEVELS],
                         uint32_t counts[SL_PRIO_LEVELS], int *single_level)
{
    memset(counts, 0, SL_PRIO_LEVELS * sizeof(counts[0]));
    *single_level = -1;
    sl_batch_iter_t it;
    int rc = sl__batch_iter_init(&it, msg, len, NULL);
    if (rc)
        return rc;
    /* First pass: envelopes only. Most batches are one level (a source
     * emits one priority, or the topology sets none), and those must stay
     * zero-copy; it also validates before anything is appended. */
    sl_envelope_t env;
    const char *payload;
    size_t plen;
    uint32_t mask = 0;
    while ((rc = sl__batch_next(&it, &env, &payload, &plen)) == 1) {
        unsigned l = s_level(env.priority);
        counts[l]++;
        mask |= 1u << l;
    }
    if (rc < 0)
        return rc;
    if (!(mask & (mask - 1))) {
        *single_level = mask ? __builtin_ctz(mask) : 0;
        return 0;
    }
    sl__batch_iter_init(&it, msg, len, NULL);
    while ((rc = sl__batch_next(&it, &env, &payload, &plen)) == 1) {
        rc = sl__batch_append(&out[s_level(env.priority)], &env, payload,
                              plen);
        if (rc)
            return rc;
    }
    return rc;
}
