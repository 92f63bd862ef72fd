/* `sluice dlq inspect FILE` and `sluice dlq replay FILE --topology T`. */
#include "cmd_dlq.h"

#include "cli.h"
#include "cmd_run.h"
#include "deadletter.h"
#include "replay.h"

#include <sluice/json.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_TOP_ERRORS 20

/* ---- printing one entry ------------------------------------------------- */

/* ns since the epoch as ISO-8601 UTC; frac digits 3 or 9. 0 is unknown. */
static void s_time(char *out, size_t len, uint64_t ns, int frac)
{
    if (!ns) {
        snprintf(out, len, "-");
        return;
    }
    time_t sec = (time_t)(ns / 1000000000ull);
    unsigned long sub = (unsigned long)(ns % 1000000000ull);
    struct tm tm;
    gmtime_r(&sec, &tm);
    if (frac == 3)
        snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03luZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, sub / 1000000ul);
    else
        snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%09luZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, sub);
}

/* Text on one line: control characters escaped, so that an error message
 * with a line break cannot pass for another entry. */
static void s_text(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p == '\r')
            fputs("\\r", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

/* The record as compact JSON into b: 0, 1 if it is not one map (nothing
 * written), -ENOMEM. */
static int s_put_record(msgpack_sbuffer *b, const sl_deadletter_entry_t *e)
{
    if (!sl__deadletter_record_is_map(e->record, e->record_len))
        return 1;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = 1;
    /* The walk above bounded every count, so unpacking is safe; only
     * nesting deeper than msgpack-c goes fails here. */
    if (msgpack_unpack_next(&u, e->record, e->record_len, &off) ==
        MSGPACK_UNPACK_SUCCESS)
        rc = sl_json_encode(&u.data, b);
    msgpack_unpacked_destroy(&u);
    return rc;
}

static int s_entry_text(FILE *f, unsigned long n, const sl_deadletter_entry_t *e,
                        msgpack_sbuffer *b)
{
    char ts[64], first[64], last[64];
    s_time(ts, sizeof(ts), e->ts_ns, 3);
    s_time(first, sizeof(first), e->first_failure_ns, 3);
    s_time(last, sizeof(last), e->last_failure_ns, 3);
    fprintf(f, "entry %lu: id %llu, stage '", n, (unsigned long long)e->id);
    s_text(f, e->stage);
    fprintf(f, "', attempts %u, priority %u\n", e->attempts, e->priority);
    fprintf(f, "  ts:            %s\n", ts);
    fprintf(f, "  first failure: %s\n", first);
    fprintf(f, "  last failure:  %s\n", last);
    fputs("  error:         ", f);
    s_text(f, e->error ? e->error : "(none)");
    fputs("\n  record:        ", f);
    if (!e->record) {
        fputs("(no record: input error)\n", f);
        return 0;
    }
    b->size = 0;
    int rc = s_put_record(b, e);
    if (rc < 0)
        return rc;
    if (rc == 1)
        fprintf(f, "(not a msgpack map: %zu raw bytes)\n", e->record_len);
    else
        fprintf(f, "%.*s\n", (int)b->size, b->data);
    return 0;
}

/* ---- the summary -------------------------------------------------------- */

/* Counts by text, in order of first appearance; a small open-addressing
 * hash, since error texts often differ per record. */
typedef struct s_tally {
    char **key;
    uint64_t *count;
    size_t *order; /* slot of the i-th distinct key */
    size_t n, cap;
} s_tally_t;

static uint64_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int s_tally_grow(s_tally_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    char **key = calloc(cap, sizeof(*key));
    uint64_t *count = calloc(cap, sizeof(*count));
    size_t *order = malloc(cap * sizeof(*order));
    if (!key || !count || !order) {
        free(key);
        free(count);
        free(order);
        return -ENOMEM;
    }
    for (size_t i = 0; i < t->n; i++) {
        size_t old = t->order[i];
        size_t j = s_hash(t->key[old]) & (cap - 1);
        while (key[j])
            j = (j + 1) & (cap - 1);
        key[j] = t->key[old];
        count[j] = t->count[old];
        order[i] = j;
    }
    free(t->key);
    free(t->count);
    free(t->order);
    t->key = key;
    t->count = count;
    t->order = order;
    t->cap = cap;
    return 0;
}

static int s_tally_add(s_tally_t *t, const char *s)
{
    if (2 * (t->n + 1) > t->cap && s_tally_grow(t) != 0)
        return -ENOMEM;
    size_t j = s_hash(s) & (t->cap - 1);
    while (t->key[j] && strcmp(t->key[j], s) != 0)
        j = (j + 1) & (t->cap - 1);
    if (!t->key[j]) {
        if (!(t->key[j] = strdup(s)))
            return -ENOMEM;
        t->order[t->n++] = j;
    }
    t->count[j]++;
    return 0;
}

static void s_tally_fini(s_tally_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->key[t->order[i]]);
    free(t->key);
    free(t->count);
    free(t->order);
}

/* Most frequent first; ties in order of first appearance. */
static int s_by_count(const void *a, const void *b, void *arg)
{
    const s_tally_t *t = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    uint64_t cx = t->count[t->order[x]], cy = t->count[t->order[y]];
    if (cx != cy)
        return cx > cy ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void s_tally_print(FILE *f, const s_tally_t *t, size_t top)
{
    size_t *idx = malloc((t->n ? t->n : 1) * sizeof(*idx));
    if (!idx)
        return;
    for (size_t i = 0; i < t->n; i++)
        idx[i] = i;
    qsort_r(idx, t->n, sizeof(*idx), s_by_count, (void *)t);
    for (size_t i = 0; i < t->n && i < top; i++) {
        size_t j = t->order[idx[i]];
        fprintf(f, "  %8llu  ", (unsigned long long)t->count[j]);
        s_text(f, t->key[j]);
        fputc('\n', f);
    }
    if (t->n > top)
        fprintf(f, "  (%zu more distinct errors)\n", t->n - top);
    free(idx);
}

/* ---- inspect ------------------------------------------------------------ */

typedef struct s_inspect {
    const char *file;
    int json;
    long long limit; /* -1: all */
} s_inspect_t;

static int s_inspect_usage(void)
{
    fprintf(stderr, "usage: sluice dlq inspect FILE [--json] [--limit N]\n");
    return SL_EXIT_USAGE;
}

static int s_inspect_args(int argc, char **argv, s_inspect_t *o)
{
    *o = (s_inspect_t){.limit = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (strcmp(a, "--limit") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            long long v = strtoll(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || v < 0) {
                fprintf(stderr, "sluice dlq inspect: --limit wants a number "
                        ">= 0, not '%s'\n", argv[i]);
                return -EINVAL;
            }
            o->limit = v;
        } else if (a[0] != '-' && !o->file) {
            o->file = a;
        } else {
            fprintf(stderr, "sluice dlq inspect: unexpected argument '%s'\n",
                    a);
            return -EINVAL;
        }
    }
    return o->file ? 0 : -EINVAL;
}

static int s_inspect(int argc, char **argv)
{
    s_inspect_t o;
    if (s_inspect_args(argc, argv, &o) != 0)
        return s_inspect_usage();
    char err[1024];
    sl_deadletter_reader_t *rd;
    int rc = sl__deadletter_reader_open(o.file, UINT64_MAX, &rd, err,
                                        sizeof(err));
    if (rc) {
        fprintf(stderr, "sluice dlq inspect: %s\n", err);
        return SL_EXIT_USAGE;
    }
    s_tally_t stages = {0}, errors = {0};
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    unsigned long n = 0, shown = 0;
    uint64_t no_record = 0;
    const sl_deadletter_entry_t *e;
    for (;;) {
        /* --json has no summary: it can stop at the limit. */
        if (o.json && o.limit >= 0 && (long long)n >= o.limit) {
            rc = 0;
            break;
        }
        if ((rc = sl__deadletter_reader_next(rd, &e, err, sizeof(err))) != 1)
            break;
        n++;
        if (o.json) {
            b.size = 0;
            /* the keys and forms of a JSONL dead-letter file's line */
            if ((rc = sl__deadletter_entry_jsonl(&b, e)) != 0)
                break;
            fwrite(b.data, 1, b.size, stdout);
            continue;
        }
        if (o.limit < 0 || (long long)n <= o.limit) {
            if ((rc = s_entry_text(stdout, n, e, &b)) != 0)
                break;
            shown++;
        }
        no_record += !e->record;
        if ((rc = s_tally_add(&stages, e->stage)) != 0 ||
            (rc = s_tally_add(&errors, e->error ? e->error
                                                : "(no error text)")) != 0)
            break;
    }
    if (rc == -ENOMEM)
        snprintf(err, sizeof(err), "%s: out of memory", o.file);
    if (!o.json) {
        if (shown < n)
            printf("(%lu more entries not shown: --limit %lld)\n", n - shown,
                   o.limit);
        printf("%s%lu entr%s, %llu without a record (input errors)\n",
               shown ? "\n" : "", n, n == 1 ? "y" : "ies",
               (unsigned long long)no_record);
        if (n) {
            printf("by stage:\n");
            s_tally_print(stdout, &stages, (size_t)-1);
            printf("by error (most frequent first, top %d):\n",
                   S_TOP_ERRORS);
            s_tally_print(stdout, &errors, S_TOP_ERRORS);
        }
    }
    fflush(stdout);
    if (rc < 0)
        fprintf(stderr, "sluice dlq inspect: %s\n", err);
    s_tally_fini(&stages);
    s_tally_fini(&errors);
    msgpack_sbuffer_destroy(&b);
    sl__deadletter_reader_close(&rd);
    return rc < 0 ? SL_EXIT_FAILED : SL_EXIT_OK;
}

/* ---- replay ------------------------------------------------------------- */

typedef struct s_replay {
    const char *file;
    const char *topology;
    const char *stage;
    sl_cli_run_t run;
} s_replay_t;

static int s_replay_usage(void)
{
    fprintf(stderr, "usage: sluice dlq replay FILE --topology T [--stage S] "
                    "[--report OUT.json] [--quiet]\n"
                    "                         [--log-level LEVEL] "
                    "[--log-format logfmt|json]\n");
    return SL_EXIT_USAGE;
}

static int s_replay_args(int argc, char **argv, s_replay_t *o)
{
    memset(o, 0, sizeof(*o));
    o->run.cmd = "sluice dlq replay";
    o->run.grace_ms = -1; /* the topology's */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        int rc;
        if (strcmp(a, "--topology") == 0 && next) {
            o->topology = argv[++i];
        } else if (strcmp(a, "--stage") == 0 && next) {
            o->stage = argv[++i];
        } else if (strcmp(a, "--report") == 0 && next) {
            o->run.report = argv[++i];
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->run.quiet = 1;
        } else if ((rc = sl_cli_log_option(o->run.cmd, a, next)) != 0) {
            if (rc < 0)
                return rc;
            i++;
        } else if (a[0] != '-' && !o->file) {
            o->file = a;
        } else {
            fprintf(stderr, "sluice dlq replay: unexpected argument '%s'\n",
                    a);
            return -EINVAL;
        }
    }
    return o->file && o->topology ? 0 : -EINVAL;
}

/* "3 entries skipped: 2 without a record (input errors), 1 for other
 * stages" */
static void s_skipped(FILE *f, const sl_replay_info_t *in)
{
    uint64_t all = in->no_record + in->other_stage + in->not_map;
    fprintf(f, "%llu entr%s skipped", (unsigned long long)all,
            all == 1 ? "y" : "ies");
    const char *sep = ": ";
    if (in->no_record) {
        fprintf(f, "%s%llu without a record (input errors)", sep,
                (unsigned long long)in->no_record);
        sep = ", ";
    }
    if (in->other_stage) {
        fprintf(f, "%s%llu for other stages", sep,
                (unsigned long long)in->other_stage);
        sep = ", ";
    }
    if (in->not_map)
        fprintf(f, "%s%llu whose record is not a msgpack map", sep,
                (unsigned long long)in->not_map);
}

static void s_replay_after(sl_run_t *run, int quiet, void *arg)
{
    const sl_replay_info_t *in = arg;
    if (quiet)
        return;
    sl_stage_stats_t st;
    sl__run_stats(run, 0, &st);
    fprintf(stderr, "sluice dlq replay: %llu of %llu records replayed into "
            "stage '%s'; ", (unsigned long long)st.out,
            (unsigned long long)in->replayed, in->stage);
    s_skipped(stderr, in);
    fputc('\n', stderr);
}

static int s_replay(int argc, char **argv)
{
    s_replay_t o;
    if (s_replay_args(argc, argv, &o) != 0)
        return s_replay_usage();

    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *topo = sl__topology_load(o.topology, &diag);
    sl__diag_print(&diag, stderr); /* errors, or warnings */
    sl__diag_fini(&diag);
    if (!topo)
        return SL_EXIT_USAGE;

    int code;
    char err[2048];
    sl_replay_info_t info;
    int rc = sl__topology_replay_into(topo, o.stage, o.file, &info, err,
                                      sizeof(err));
    if (rc == -ENODATA) {
        fprintf(stderr, "sluice dlq replay: %s; ", err);
        s_skipped(stderr, &info);
        fputc('\n', stderr);
        code = SL_EXIT_OK;
    } else if (rc) {
        fprintf(stderr, "sluice dlq replay: %s\n", err);
        code = rc == -EBADMSG || rc == -ENOMEM ? SL_EXIT_FAILED
                                                : SL_EXIT_USAGE;
    } else {
        o.run.after = s_replay_after;
        o.run.arg = &info;
        code = sl_cli_run_topology(topo, &o.run);
    }
    sl__replay_info_fini(&info);
    sl__topology_destroy(&topo);
    return code;
}

int sl_cmd_dlq(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    if (strcmp(sub, "inspect") == 0)
        return s_inspect(argc - 1, argv + 1);
    if (strcmp(sub, "replay") == 0)
        return s_replay(argc - 1, argv + 1);
    fprintf(stderr, "%s%s%s"
            "usage: sluice dlq inspect FILE [--json] [--limit N]\n"
            "       sluice dlq replay FILE --topology T [--stage S] "
            "[--report OUT.json] [--quiet]\n",
            *sub ? "sluice dlq: unknown subcommand '" : "", sub,
            *sub ? "'\n" : "");
    return SL_EXIT_USAGE;
}
