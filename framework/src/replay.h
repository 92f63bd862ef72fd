/*
 * Replaying dead letters (`sluice dlq replay`, docs/running.md): a loaded
 * topology is cut down to one stage and everything downstream of it, and
 * that stage is fed by a built-in source that reads a dead-letter (or
 * spill) file and emits each record with its original id, timestamp and
 * priority, attempts reset to 0.
 */
#ifndef SL_REPLAY_H
#define SL_REPLAY_H

#include "topology.h"

#include <stddef.h>
#include <stdint.h>

/* The stage of the built-in source (a suffix is added if the topology
 * already has a stage of that name). */
#define SL_REPLAY_SOURCE "dlq_replay"

/* Replayable entries naming one stage. */
typedef struct sl_replay_count {
    char *stage;
    uint64_t n;
} sl_replay_count_t;

/* What a replay found in the file. */
typedef struct sl_replay_info {
    char *stage;          /* the stage replayed into, once chosen */
    uint64_t bytes;       /* the part of the file that is read */
    uint64_t entries;     /* every entry in it */
    uint64_t replayed;    /* entries for `stage` that will be emitted */
    uint64_t no_record;   /* entries without a record: input errors */
    uint64_t not_map;     /* a record that is not one msgpack map */
    uint64_t other_stage; /* records for stages other than `stage` */
    sl_replay_count_t *by_stage; /* replayable records by stage, in the
                                    order first seen */
    size_t n_by_stage;
} sl_replay_info_t;

void sl__replay_info_fini(sl_replay_info_t *info);

/* Reads dl_file (up to its size now) and rewrites t in place to replay it
 * into `stage`, or, when stage is NULL, into the one stage that every
 * replayable entry names. Stages not reachable from it through outputs are
 * removed (a kept stage loses its inputs from removed ones, a dead-letter
 * route to a removed stage is dropped); stage 0 becomes the built-in
 * source; process lanes become thread lanes (a process-lane worker
 * rebuilds the topology as written, by index), with a warning; state_dir
 * is dropped so that a replay neither resumes nor moves the positions of
 * the topology's own sources. info (zeroed by the call) says what was
 * found. Returns 0, or with a message in err:
 *  -EINVAL  an unknown stage (the message lists the stages), a source, or
 *           no --stage while entries name several stages (listed with
 *           their counts), or none for the stage given;
 *  -ENODATA the file has nothing to replay (t is left unchanged);
 *  -EBADMSG a corrupt or truncated entry ("FILE: entry N: reason");
 *  -errno   the file cannot be read; -ENOMEM.
 * On any failure t is unchanged. */
int sl__topology_replay_into(sl_topology_t *t, const char *stage,
                             const char *dl_file, sl_replay_info_t *info,
                             char *err, size_t errlen);

#endif
