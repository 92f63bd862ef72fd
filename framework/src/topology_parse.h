/*
 * The state shared by the two halves of the topology loader: topology.c
 * reads the file as a whole, resolves the graph and checks it, and owns the
 * helpers that report problems; topology_keys.c reads `defaults` and each
 * stage's own keys. Nothing outside those two files includes this header.
 */
#ifndef SL_TOPOLOGY_PARSE_H
#define SL_TOPOLOGY_PARSE_H

#include "topology.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the checks remember about each stage beyond sl_topo_stage_t. */
typedef struct sl_topo_info {
    const sl_config_t *name_node;   /* NULL when the stage has no name */
    const sl_config_t *from_node;   /* NULL: chained to the previous one */
    const sl_config_t *queue_node;  /* NULL: from defaults */
    const sl_config_t *fanout_node;
    const sl_config_t *partition_node;
    const sl_config_t *dl_node;     /* the dead-letter path, if any */
    const sl_config_t *dl_stage_node; /* dead_letter: {stage: NAME} */
    bool dl_stage_own;              /* ...written on the stage itself */
    const sl_config_t *when_full_node;
    const sl_config_t **in_nodes;   /* per input: where it was named */
    sl_stage_kind_t kind;           /* 0 when the plugin did not load */
    char label[80];                 /* "stage 'x'" or "stage #3" */
} sl_topo_info_t;

/* `workers:` as read: a fixed count, `auto`, or {min, max, idle}. */
typedef struct sl_topo_workers {
    unsigned min, max; /* equal for a fixed pool; 0 for auto until resolved */
    uint32_t idle_ms;
    bool is_auto;
    const sl_config_t *max_node; /* where the upper bound was written */
} sl_topo_workers_t;

typedef struct sl_topo_retry {
    uint32_t max_attempts, backoff_ms, max_backoff_ms;
} sl_topo_retry_t;

/* `dead_letter:` as written, resolved per stage ({stage} differs). */
typedef struct sl_topo_dl {
    const sl_config_t *node; /* the path's node; NULL when not configured */
    const sl_config_t *stage_node; /* or the target stage's name */
    int format;              /* an sl_dl_format_t, or -1: by extension */
} sl_topo_dl_t;

/* One topology being loaded: the result so far, where problems go, what
 * the checks remember per stage (info[i] for stages[i]), and the values of
 * `defaults` that stages start from. */
typedef struct sl_topo_parse {
    sl_topology_t *t;
    sl_diag_t *diag;
    sl_topo_info_t *info;
    sl_topo_workers_t d_workers; /* defaults: */
    uint32_t d_queue, d_batch, d_slow_ms;
    sl_lane_t d_lane;
    bool d_lane_bad;
    sl_topo_retry_t d_retry;
    sl_topo_dl_t d_dl;
    bool d_dl_checked; /* its folder has no {stage}: checked once */
    unsigned cpu_budget; /* 0 until first needed */
    bool oom;
} sl_topo_parse_t;

/* ---- topology.c: reporting ---------------------------------------------- */

/* Adds "FILE:LINE:COL: message" about node at to p->diag. */
void sl__topo_err(sl_topo_parse_t *p, const sl_config_t *at, const char *fmt,
                  ...) SL_PRINTF(3, 4);
/* What a wrong value was, for messages ("a map", "string 'x'", "null"),
 * written into buf; returns buf. */
const char *sl__topo_what(const sl_config_t *n, char *buf, size_t len);
/* Whether n is a scalar that reads as text: a string, number or boolean. */
bool sl__topo_is_text(const sl_config_t *n);
/* The text of a scalar used as a name (`plugin: null` names the null
 * sink); NULL if n cannot be a name. */
const char *sl__topo_name_text(const sl_config_t *n);

/* The candidate closest to word within edit distance 2 (and not a total
 * rewrite), for "did you mean" hints; NULL entries of cands are skipped.
 * NULL if none is close. */
const char *sl__topo_suggest(const char *word, const char *const *cands,
                             size_t n);
/* Entries of a NULL-terminated list, and whether word is one of them. */
size_t sl__topo_count(const char *const *list);
bool sl__topo_in(const char *word, const char *const *list);
/* Reports each key of map that is not in known (NULL-terminated), with a
 * hint when one is close; where says where the map is ("in 'defaults'"). */
void sl__topo_check_keys(sl_topo_parse_t *p, const sl_config_t *map,
                         const char *const *known, const char *where);

/* ---- topology_keys.c: the keys of defaults and of each stage ------------ */

/* Starts a parse that reports to diag, with the built-in defaults. */
void sl__topo_parse_init(sl_topo_parse_t *p, sl_diag_t *diag);
/* Reads `defaults` (NULL if absent) over the built-in defaults, and checks
 * a dead-letter folder that is the same for every stage. */
void sl__topo_parse_defaults(sl_topo_parse_t *p, const sl_config_t *defaults);
/* Reads stage i's map st into p->t->stages[i] and p->info[i]: its name,
 * plugin (loaded, its config checked and validated), workers, queue and
 * batch, fanout, partition_by and from (checked, not yet resolved), lane,
 * timeout, retry and dead_letter. Problems go to p->diag; out of memory
 * sets p->oom. */
void sl__topo_parse_stage(sl_topo_parse_t *p, size_t i, const sl_config_t *st);
/* Reports stages that write one dead-letter file in different formats. */
void sl__topo_check_dl_files(sl_topo_parse_t *p);
/* Helpers shared with topology_run.c. */
bool sl__topo_get_duration(sl_topo_parse_t *p, const sl_config_t *n,
                           const char *key, const char *label, uint32_t *out);
/* The folder of a file the run will write must exist (`what` names the
 * key in messages). */
void sl__topo_check_file_dir(sl_topo_parse_t *p, const sl_config_t *at,
                             const char *label, const char *what,
                             const char *path);
/* text with each "{stage}" replaced by stage, absolute against the
 * topology's folder; NULL if out of memory. */
char *sl__topo_path(sl_topo_parse_t *p, const char *text, const char *stage);
sl_dl_format_t sl__topo_dl_format_of(const char *path);
bool sl__topo_valid_field_path(const char *s);

/* ---- topology_run.c: run-wide keys and routing ---------------------------- */

/* resources, grace, spill and state_dir (after `name` is known). */
void sl__topo_parse_run(sl_topo_parse_t *p, const sl_config_t *root);
/* A stage's uses, when_full and priority. */
void sl__topo_parse_stage_routing(sl_topo_parse_t *p, size_t i,
                                  const sl_config_t *st);
/* Resolves dead_letter: {stage: NAME} targets, before inputs are linked:
 * a target that has no `from` is not chained to the stage before it. */
void sl__topo_resolve_dl_stages(sl_topo_parse_t *p);
/* Whether stage i is some stage's dead-letter target (after the above). */
bool sl__topo_is_dl_target(const sl_topo_parse_t *p, size_t i);
/* After outputs are linked: adds each dead-letter link to its target's
 * inputs and checks when_full against what the stage can do. */
void sl__topo_link_dl(sl_topo_parse_t *p);

/* ---- topology_hosts.c: running across nodes ------------------------------ */

/* hosts, keys_dir and insecure. */
void sl__topo_parse_hosts(sl_topo_parse_t *p, const sl_config_t *root);
/* After the graph is linked: each stage's `host:` (default the first
 * host), ports that collide, stages on hosts without a key, dead-letter
 * stages on another node. */
void sl__topo_place_stages(sl_topo_parse_t *p);
void sl__topo_hosts_free(sl_topology_t *t);

#endif
