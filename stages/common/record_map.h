/*
 * The record as a map, for the bundled stages that read fields. A record
 * that is not a msgpack map (or breaks the stage's limits) can never
 * succeed and is dead-lettered at once; running out of memory while
 * decoding it may pass, so that record is retried like any error that may
 * pass. Returns 0, or the code a handler returns for the record.
 */
#ifndef SL_STAGE_RECORD_MAP_H
#define SL_STAGE_RECORD_MAP_H

#include <errno.h>
#include <sluice/stage.h>

static inline int stage_record_map(sl_ctx_t *ctx, sl_record_t *rec,
                                   const msgpack_object **map)
{
    int rc = sl_record_map(rec, map);
    if (rc == -ENOMEM)
        return sl_ctx_error(ctx, "out of memory decoding the record");
    if (rc < 0)
        return sl_ctx_fail(ctx, "record is not a msgpack map");
    return 0;
}

#endif
