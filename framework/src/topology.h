/*
 * Topologies: the YAML graph of stages, validated and resolved into the
 * structure the runtime builds from. See docs/topology.md for the format.
 */
#ifndef SL_TOPOLOGY_H
#define SL_TOPOLOGY_H

#include "config.h"
#include "deadletter.h"
#include "diag.h"
#include "record_limits.h"
#include "plugin.h"
#include <stdint.h>

typedef enum sl_fanout {
    SL_FANOUT_BROADCAST = 0,  /* every output record to every consumer */
    SL_FANOUT_ROUND_ROBIN = 1 /* each batch to one consumer with credit */
} sl_fanout_t;

typedef enum sl_lane {
    SL_LANE_THREAD = 0, /* workers are threads of the sluice process */
    SL_LANE_PROCESS = 1 /* workers are child processes, joined over ipc */
} sl_lane_t;

/* What a producer does with a batch for this stage when the stage has no
 * room (no credit on the link): wait (the default, backpressure), or keep
 * its other outputs moving by writing the batch to the spill file or to
 * this stage's dead-letter target instead. */
typedef enum sl_when_full {
    SL_WHEN_FULL_BLOCK = 0,
    SL_WHEN_FULL_SPILL = 1,
    SL_WHEN_FULL_DEAD_LETTER = 2
} sl_when_full_t;

/* `priority:` on a stage: how the priority of each record it emits is
 * set, from a field. With `values` the field's text (or integer) is looked
 * up there; without, the field must hold an integer. Anything else (the
 * field missing, an unknown value) gets `dflt`. Levels are clamped to
 * SL_PRIO_LEVELS - 1. */
#define SL_PRIO_LEVELS 8
typedef struct sl_prio_rule {
    char *field;       /* dotted path */
    char **keys;       /* values: text of each key */
    uint8_t *levels;   /* its level */
    size_t n_values;
    uint8_t dflt;
} sl_prio_rule_t;

/* A named limit shared by stages (`resources: {db: 20}`). */
typedef struct sl_topo_resource {
    char *name;
    uint32_t limit;
} sl_topo_resource_t;

#define SL_TOPO_MAX_WORKERS 1024u

/* `hosts:` entries: the nodes one topology runs across (docs/deploy.md,
 * "Running across hosts"). A stage's input links from other nodes arrive
 * on port + the stage's index, at address. */
#define SL_TOPO_DEFAULT_PORT 7700u
typedef struct sl_topo_host {
    char *name;
    char *address;   /* host name or IP the node binds and is reached at */
    uint32_t port;   /* base port */
    char key[41];    /* its CURVE public key (Z85), "" when none given */
    const sl_config_t *node;      /* its entry, for messages */
    const sl_config_t *port_node; /* `port:`, or the entry */
    const sl_config_t *key_node;  /* `key:`/`key_file:`, NULL if neither */
} sl_topo_host_t;

typedef struct sl_topo_stage {
    char *name;
    char *plugin_name;
    sl_plugin_t *plugin;        /* loaded and checked */
    const sl_config_t *node;    /* the stage's own map, for positions */
    const sl_config_t *config;  /* its `config:` (an empty map if absent) */
    unsigned workers;           /* starting size, = workers_min (auto ->
                                   CPU budget, >= 1) */
    int workers_auto;
    unsigned workers_min;       /* the pool's bounds: equal for a fixed */
    unsigned workers_max;       /* pool, 1 <= min <= max */
    uint32_t idle_shrink_ms;    /* an elastic pool's idle time before it
                                   shrinks (default 30000) */
    uint32_t queue;             /* capacity in records, >= 1 */
    uint32_t batch;             /* max records per link message, >= 1 */
    uint32_t slow_ms;           /* a handler call longer than this is
                                   logged; 0: never (default 50) */
    sl_fanout_t fanout;
    char *partition_by;         /* dotted field path, or NULL */
    sl_lane_t lane;
    uint32_t timeout_ms;        /* per record, process lanes only; 0 = none */
    uint32_t max_attempts;      /* tries per record, the first included;
                                   1..1000, default 3 */
    uint32_t backoff_ms;        /* before the first retry (default 100) */
    uint32_t max_backoff_ms;    /* cap on the delay, >= backoff_ms
                                   (default 10000) */
    char *dl_path;              /* absolute dead-letter file, `{stage}`
                                   replaced; NULL when not configured */
    sl_dl_format_t dl_format;   /* meaningful when dl_path is set */
    long dl_stage;              /* dead_letter: {stage: NAME}: its index,
                                   or -1 */
    sl_when_full_t when_full;   /* for the links into this stage */
    sl_prio_rule_t *priority;   /* for records this stage emits, or NULL */
    size_t *uses;               /* indices into topology resources */
    size_t n_uses;
    size_t *inputs;             /* indices of upstream stages */
    size_t n_inputs;
    size_t *outputs;            /* indices of downstream stages */
    size_t n_outputs;
    long host;                  /* index into the topology's hosts, or -1
                                   when it has none */
    sl_limits_t limits;         /* `limits:`: the topology's, with the
                                   stage's own keys over them */
} sl_topo_stage_t;

typedef struct sl_topology {
    char *path;           /* as given */
    char *name;           /* `name:` or the file stem */
    sl_config_doc_t *doc; /* owns every node referenced above */
    sl_topo_stage_t *stages; /* in file order; sources first not assumed */
    size_t n_stages;
    sl_topo_resource_t *resources; /* `resources:` */
    size_t n_resources;
    uint32_t grace_ms;    /* `grace:`, default 30 s: drain before spilling */
    char *spill_path;     /* `spill:` (absolute), default
                             "<topology dir>/<name>.spill.jsonl" */
    sl_dl_format_t spill_format;
    char *state_dir;      /* `state_dir:` (absolute), or NULL: positions
                             are neither committed nor resumed */
    sl_topo_host_t *hosts;  /* `hosts:`, in file order; none: one process */
    size_t n_hosts;
    char *keys_dir;         /* `keys_dir:` (absolute), default the
                               topology's folder: where NODE.key is read */
    int insecure;           /* `insecure: true`: plain tcp between nodes */
    uint32_t peer_timeout_ms; /* `peer_timeout:`, default 10 s: a node
                                 silent this long counts as lost */
#define SL_TOPO_PEER_TIMEOUT_MS 10000
#define SL_TOPO_PEER_TIMEOUT_MIN_MS 200
    sl_limits_t limits;     /* `limits:` at the top level, over the
                               defaults of record_limits.h */
    long run_node;          /* the node this process runs (`--node`), an
                               index into hosts, or -1: every stage */
} sl_topology_t;

/* Loads and fully validates a topology: YAML syntax, unknown keys, bad
 * values, unknown stage names in `from`, cycles, sources with inputs,
 * sinks with outputs, non-sources without inputs, plugins that cannot be
 * loaded, plugin config keys and the plugin's own validate(), and that the
 * folder of each dead-letter file exists (nothing is created). Every problem
 * goes to diag as "FILE:LINE:COL: message"; NULL is returned if there was
 * any. */
sl_topology_t *sl__topology_load(const char *path, sl_diag_t *diag);
/* Same from YAML text (tests); `name` stands in for the file name. */
sl_topology_t *sl__topology_parse(const char *name, const char *basedir,
                                  const char *text, sl_diag_t *diag);
void sl__topology_destroy(sl_topology_t **topo);

/* Makes this process run only the stages of node `name` (`sluice run
 * --node`). -ENOENT for a node not under hosts: (or a topology without
 * hosts:), with the nodes there are in err. */
int sl__topology_set_node(sl_topology_t *topo, const char *name, char *err,
                          size_t errlen);

/* Index of a host by name, or -1. */
long sl__topology_find_host(const sl_topology_t *topo, const char *name);

/* Index of a stage by name, or -1. */
long sl__topology_find(const sl_topology_t *topo, const char *name);

/* Overrides a stage's pool with a fixed size (`sluice run --workers`,
 * `sluice tune`). -ENOENT for an unknown stage, -EINVAL for a size outside
 * 1..the plugin's max_workers (or SL_TOPO_MAX_WORKERS); the reason goes
 * into err. */
int sl__topology_set_workers(sl_topology_t *topo, const char *stage,
                             unsigned n, char *err, size_t errlen);

#endif
