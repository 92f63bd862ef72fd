/* `sluice record`: traffic into a trace file (docs/replay.md, "Recording
 * traffic"), either from a link of a running run through its tap
 * (record_tap.c) or from a source stage driven in-process
 * (record_source.c). cmd_record.c reads the options and prints the
 * summary both share. */
#ifndef SL_CMD_RECORD_H
#define SL_CMD_RECORD_H

#include <signal.h>
#include <stdint.h>

/* argv[0] is "record". Returns the exit code (cli.h): 1 when recording
 * failed or the run dropped records on the tap (without --allow-drops),
 * 2 on bad usage. */
int sl_cmd_record(int argc, char **argv);

typedef struct sl_rec_opts {
    const char *from;       /* --from ADDR: a run's metrics address */
    const char *link;       /* --link FROM>TO */
    const char *topology;   /* TOPOLOGY.yaml (with --stage) */
    const char *stage;      /* --stage SOURCE */
    const char *out;        /* -o TRACE */
    uint64_t count;         /* --count N, 0: no limit */
    uint64_t duration_ns;   /* --duration D, 0: no limit */
    const char *time_field; /* --time-field F, or NULL */
    int64_t time_unit_ns;   /* --time-unit (ms by default) */
    int allow_drops;
} sl_rec_opts_t;

/* Set by SIGINT/SIGTERM: stop at the next entry. */
extern volatile sig_atomic_t sl__rec_stop;

/* What a recording did, for the summary. */
typedef struct sl_rec_result {
    uint64_t written;
    uint64_t span_ns;       /* the last entry's offset */
    uint64_t clamped;       /* offsets raised to keep them in order */
    uint64_t untimed;       /* --time-field missing or unreadable */
    uint64_t input_errors;  /* source mode */
    uint64_t malformed;     /* tap mode: entries that were not [ns, map] */
    uint64_t dropped;       /* tap mode: what the run said it dropped */
    int drops_known;        /* the run's end message came */
    const char *stopped_by; /* "count", "duration", "interrupted", ... */
} sl_rec_result_t;

/* Each returns 0, or an exit code after printing why. */
int sl__record_tap(const sl_rec_opts_t *o, sl_rec_result_t *res);
int sl__record_source(const sl_rec_opts_t *o, sl_rec_result_t *res);

#endif
