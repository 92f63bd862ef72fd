/* `sluice replay` against real topologies (zmq_source -> ... -> zmq_sink)
 * run by the CLI: the latency it measures through a known delay, its
 * pacing, its verdict on a target slower than the requested rate, a byte
 * exact round trip, its report files (--json, --hdr), --compare's exit
 * codes, its accounting of duplicated and unmatched records, --synth and
 * its usage errors; the floor a round trip puts under every latency, the
 * schedule's edges (--rate counts, --loop over a trace that does not
 * start at 0 or has no span), and, against a target in this process that
 * answers everything at one instant, latencies known to the nanosecond
 * and the --hdr rows HdrHistogram would write for them. */
#include <criterion/criterion.h>

#include "hist.h"
#include "testutil.h"
#include "trace.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <jansson.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

TestSuite(replay, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 150);

/* ---- helpers -------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static char *path_in(const char *name)
{
    char *p;
    cr_assert_geq(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

/* A topology zmq_source -> MIDDLE -> zmq_sink on two free ports, written
 * as name.yaml in the test's folder; middle is YAML for the stages in
 * between (each with `- name:` at four spaces), or "". */
static char *topology(const char *name, const char *middle, int *in_port,
                      int *out_port)
{
    *in_port = free_port();
    *out_port = free_port();
    char *yaml;
    cr_assert_geq(asprintf(&yaml,
                           "name: %s\n"
                           "stages:\n"
                           "  - name: in\n"
                           "    plugin: zmq_source\n"
                           "    config: {endpoint: \"tcp://127.0.0.1:%d\"}\n"
                           "%s"
                           "  - name: out\n"
                           "    plugin: zmq_sink\n"
                           "    config: {endpoint: \"tcp://127.0.0.1:%d\"}\n",
                           name, *in_port, middle, *out_port),
                  0);
    char file[128];
    snprintf(file, sizeof(file), "%s.yaml", name);
    char *path = path_in(file);
    cr_assert_eq(sl_test_write_file(path, yaml), 0);
    free(yaml);
    return path;
}

/* Record i of the test traces: shapes that exercise the seq field's
 * append (a 15-entry map becomes a 16-entry one: the header grows from 1
 * to 3 bytes), nested values, every scalar type, long strings. */
static void pack_record(msgpack_packer *pk, uint64_t i)
{
    switch (i % 5) {
    case 0:
        msgpack_pack_map(pk, 3);
        msgpack_pack_str_with_body(pk, "id", 2);
        msgpack_pack_uint64(pk, i);
        msgpack_pack_str_with_body(pk, "user", 4);
        msgpack_pack_str_with_body(pk, "alice", 5);
        msgpack_pack_str_with_body(pk, "amount", 6);
        msgpack_pack_double(pk, (double)i * 1.25);
        break;
    case 1: /* 15 entries */
        msgpack_pack_map(pk, 15);
        for (int k = 0; k < 15; k++) {
            char key[8];
            int n = snprintf(key, sizeof(key), "k%d", k);
            msgpack_pack_str_with_body(pk, key, (size_t)n);
            msgpack_pack_int64(pk, -(int64_t)(i * 15 + (uint64_t)k));
        }
        break;
    case 2: /* nested */
        msgpack_pack_map(pk, 2);
        msgpack_pack_str_with_body(pk, "id", 2);
        msgpack_pack_uint64(pk, i);
        msgpack_pack_str_with_body(pk, "doc", 3);
        msgpack_pack_map(pk, 3);
        msgpack_pack_str_with_body(pk, "tags", 4);
        msgpack_pack_array(pk, 3);
        msgpack_pack_nil(pk);
        msgpack_pack_true(pk);
        msgpack_pack_float(pk, 0.5f);
        msgpack_pack_str_with_body(pk, "bin", 3);
        msgpack_pack_bin_with_body(pk, "\0\1\2\3", 4);
        msgpack_pack_str_with_body(pk, "deep", 4);
        msgpack_pack_map(pk, 1);
        msgpack_pack_str_with_body(pk, "x", 1);
        msgpack_pack_array(pk, 0);
        break;
    case 3: { /* a long string */
        char text[3000];
        memset(text, 'a' + (int)(i % 26), sizeof(text));
        msgpack_pack_map(pk, 2);
        msgpack_pack_str_with_body(pk, "id", 2);
        msgpack_pack_uint64(pk, i);
        msgpack_pack_str_with_body(pk, "text", 4);
        msgpack_pack_str_with_body(pk, text, sizeof(text));
        break;
    }
    default: /* 20 entries: the header is map16 already */
        msgpack_pack_map(pk, 20);
        for (int k = 0; k < 20; k++) {
            char key[8];
            int n = snprintf(key, sizeof(key), "f%02d", k);
            msgpack_pack_str_with_body(pk, key, (size_t)n);
            msgpack_pack_uint32(pk, (uint32_t)(i + (uint64_t)k * 1000));
        }
        break;
    }
}

/* Writes n records to name in the test's folder, the first at start_ns
 * and the others gap_ns apart. */
static char *make_trace_from(const char *name, uint64_t n, uint64_t start_ns,
                             uint64_t gap_ns)
{
    char *path = path_in(name);
    char err[256];
    sl_trace_writer_t *w = sl_trace_writer_new(path, "test_replay", err,
                                               sizeof(err));
    cr_assert_not_null(w, "%s", err);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (uint64_t i = 0; i < n; i++) {
        msgpack_sbuffer_clear(&sb);
        pack_record(&pk, i);
        cr_assert_eq(sl_trace_write(w, start_ns + i * gap_ns, sb.data,
                                    sb.size),
                     0);
    }
    msgpack_sbuffer_destroy(&sb);
    cr_assert_eq(sl_trace_writer_close(&w), 0);
    return path;
}

/* Writes n records gap_ns apart, the first at 0. */
static char *make_trace(const char *name, uint64_t n, uint64_t gap_ns)
{
    return make_trace_from(name, n, 0, gap_ns);
}

/* Runs `sluice replay ARGS`; the exit code, the output in *out. A replay
 * that has not ended after two minutes is stopped (exit code 124): a
 * schedule that never ends must fail the test, not hang it. */
static int replay(char **out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int replay(char **out, const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    char *cmd;
    cr_assert_geq(asprintf(&cmd, "timeout -k 5 120 %s replay %s 2>&1",
                           sl_test_cli(), args),
                  0);
    int rc = sl_test_run(cmd, out);
    free(cmd);
    return rc;
}

static json_t *load_json(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    cr_assert_not_null(j, "%s:%d: %s", path, e.line, e.text);
    return j;
}

static double num(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_number(v), "'%s' is not a number in the report", key);
    return json_number_value(v);
}

static double lat(const json_t *report, const char *key)
{
    return num(json_object_get(report, "latency_ns"), key);
}

/* ---- 1: latency through a known delay -------------------------------------- */

/* The p50 of one replay of trace through topo (800 measured records). */
static double p50_of(const char *trace, const char *topo, const char *json)
{
    char *out;
    int rc = replay(&out, "%s --topology %s --warmup 200ms --json %s --quiet",
                    trace, topo, json);
    cr_assert_eq(rc, 0, "%s", out);
    json_t *j = load_json(json);
    cr_assert_eq(num(j, "sent"), 800, "%s", out);
    cr_assert_eq(num(j, "completed"), 800, "%s", out);
    cr_assert_eq(num(j, "timeouts") + num(j, "errors") + num(j, "unmatched") +
                     num(j, "duplicates"),
                 0, "%s", out);
    double p50 = lat(j, "p50");
    json_decref(j);
    free(out);
    return p50;
}

/* Each record is held exactly 2 ms, at 1000/s, far below what the stage's
 * 8 workers take: the median the replayer reports must be the delay,
 * within 10%. It can never be less (a record cannot come back sooner;
 * 1/128 is the histogram's resolution). What it adds to the 2 ms is the
 * target's own path: the zmq hops and the handoffs between the stages'
 * threads, a few hundred microseconds on a busy 2-core machine, which
 * alone can exceed the 10%. So each attempt also replays the same
 * pipeline with a 0 ms delay (the same stages and threads) right before,
 * and the part of the p50 that the delay adds must be within 10% of 2 ms
 * when the whole p50 is not. Up to four attempts: load only ever adds. */
Test(replay, p50_through_a_2ms_delay)
{
    int pin, pout;
    char *slow = topology("delay2", "  - name: hold\n"
                                    "    plugin: delay\n"
                                    "    workers: 8\n"
                                    "    config: {ms: 2}\n",
                          &pin, &pout);
    char *base = topology("delay0", "  - name: hold\n"
                                    "    plugin: delay\n"
                                    "    workers: 8\n"
                                    "    config: {ms: 0}\n",
                          &pin, &pout);
    char *trace = make_trace("d.trace", 1000, 1000000); /* 1000/s */
    char *json = path_in("d.json");
    double best_p50 = 1e18, best_added = 1e18;
    char seen[640] = "";
    size_t sl = 0;
    for (int attempt = 0; attempt < 4; attempt++) {
        double p0 = p50_of(trace, base, json);
        double p2 = p50_of(trace, slow, json);
        cr_assert_geq(p2, 2e6 * (1 - 1.0 / 128), "p50 %.0f ns", p2);
        int n = snprintf(seen + sl, sizeof(seen) - sl,
                         " [p50 %.0f ns, with 0 ms %.0f ns]", p2, p0);
        if (n > 0 && (size_t)n < sizeof(seen) - sl)
            sl += (size_t)n;
        if (p2 < best_p50)
            best_p50 = p2;
        if (fabs(p2 - p0 - 2e6) < fabs(best_added - 2e6))
            best_added = p2 - p0;
        if (best_p50 <= 2.2e6 || fabs(best_added - 2e6) <= 0.2e6)
            break;
    }
    cr_log_info("p50s:%s", seen);
    cr_assert(best_p50 <= 2.2e6 || fabs(best_added - 2e6) <= 0.2e6,
              "the p50 is not within 10%% of 2 ms, neither whole nor what "
              "the delay adds to the 0 ms pipeline's:%s", seen);
    free(json);
    free(trace);
    free(base);
    free(slow);
}

/* ---- 2: pacing ------------------------------------------------------------ */

Test(replay, paces_20000_per_second_for_5s)
{
    int pin, pout;
    char *topo = topology("fast", "", &pin, &pout);
    char *trace = make_trace("p.trace", 1000, 1000000);
    char *json = path_in("p.json");
    char *out;
    int rc = replay(&out, "%s --topology %s --rate 20000/s --duration 5s "
                          "--loop --json %s --quiet",
                    trace, topo, json);
    cr_assert_eq(rc, 0, "%s", out);
    json_t *j = load_json(json);
    /* intended times i/20000 s below 5 s: exactly 100000 records */
    cr_assert_eq(num(j, "sent"), 100000, "%s", out);
    cr_assert_eq(num(j, "requested_rate"), 20000, "%s", out);
    double achieved = num(j, "achieved_rate");
    cr_assert(achieved > 20000 * 0.99 && achieved < 20000 * 1.01,
              "achieved %.1f/s\n%s", achieved, out);
    cr_assert_eq(num(j, "completed"), 100000, "%s", out);
    cr_assert_eq(num(j, "errors") + num(j, "unmatched") +
                     num(j, "duplicates") + num(j, "timeouts"),
                 0, "%s", out);
    cr_assert_not_null(strstr(out, "schedule     rate 20000/s, for 5 s, "
                                   "looping"),
                       "%s", out);
    json_decref(j);
    free(out);
    free(json);
    free(trace);
    free(topo);
}

/* ---- 3: a target that cannot keep up ------------------------------------- */

/* One worker holding each record 2 ms takes at most 500/s; 1000/s are
 * asked for 2 s. The backlog grows all along, and so does the latency
 * measured from the intended send times: record i waits about i ms, so
 * the last fifth's median is about nine times the first's (a CPU-starved
 * target only makes the capacity, not the ratio, smaller). */
Test(replay, a_slower_target_falls_behind)
{
    int pin, pout;
    char *topo = topology("slow", "  - name: hold\n"
                                  "    plugin: delay\n"
                                  "    workers: 1\n"
                                  "    config: {ms: 2}\n",
                          &pin, &pout);
    char *trace = make_trace("s.trace", 2000, 1000000);
    char *json = path_in("s.json");
    char *out;
    int rc = replay(&out, "%s --topology %s --rate 1000/s --timeout 30s "
                          "--json %s --quiet",
                    trace, topo, json);
    cr_assert_eq(rc, 0, "%s", out);
    json_t *j = load_json(json);
    cr_assert_eq(num(j, "sent"), 2000, "%s", out);
    cr_assert_eq(num(j, "completed"), 2000, "%s", out);
    double first = lat(j, "p50_first_fifth"), last = lat(j, "p50_last_fifth");
    cr_assert_gt(last, 4 * first, "p50 first fifth %.0f ns, last %.0f ns\n%s",
                 first, last, out);
    cr_assert(json_is_true(json_object_get(j, "fell_behind")), "%s", out);
    cr_assert_lt(num(j, "completion_rate"), 0.7 * 1000, "%s", out);
    cr_assert_not_null(strstr(out, "verdict      TARGET FELL BEHIND: "
                                   "completions "),
                       "%s", out);
    cr_assert_not_null(strstr(out, "latency grew over the run"), "%s", out);
    json_decref(j);
    free(out);
    free(json);
    free(trace);
    free(topo);
}

/* ---- 4: byte-exact round trip --------------------------------------------- */

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* A returned record without its seq field: the field must be the last
 * entry (`_replay_seq`: u64), and the map header goes back to its
 * shortest form. Returns the seq. */
static uint64_t strip_seq(const uint8_t *rec, size_t len, uint8_t *out,
                          size_t *out_len)
{
    static const char key[] = "_replay_seq";
    const size_t tail = 1 + 11 + 9;
    cr_assert_gt(len, tail);
    const uint8_t *t = rec + len - tail;
    cr_assert(t[0] == (0xa0 | 11) && !memcmp(t + 1, key, 11) && t[12] == 0xcf,
              "a returned record does not end with the seq field");
    size_t hdr;
    uint32_t count;
    if ((rec[0] & 0xf0) == 0x80) {
        count = rec[0] & 0x0f;
        hdr = 1;
    } else if (rec[0] == 0xde) {
        count = (uint32_t)(rec[1] << 8 | rec[2]);
        hdr = 3;
    } else {
        cr_assert_eq(rec[0], 0xdf);
        count = (uint32_t)rec[1] << 24 | (uint32_t)rec[2] << 16 |
                (uint32_t)rec[3] << 8 | rec[4];
        hdr = 5;
    }
    count--;
    uint8_t *o = out;
    if (count <= 15) {
        *o++ = (uint8_t)(0x80 | count);
    } else {
        *o++ = 0xde;
        *o++ = (uint8_t)(count >> 8);
        *o++ = (uint8_t)count;
    }
    memcpy(o, rec + hdr, len - tail - hdr);
    *out_len = (size_t)(o - out) + len - tail - hdr;
    return be64(t + 13);
}

/* Replays trace (n records) through topo and checks that what came back,
 * each record without its seq field, is the trace, byte for byte and in
 * order. */
static void round_trip(const char *trace, const char *topo, uint64_t n,
                       const char *cap)
{
    char *out;
    int rc = replay(&out, "%s --topology %s --capture %s --quiet", trace,
                    topo, cap);
    cr_assert_eq(rc, 0, "%s", out);
    char want_line[160];
    snprintf(want_line, sizeof(want_line),
             "sent %llu  completed %llu  errors 0  timeouts 0  unmatched 0  "
             "duplicates 0", (unsigned long long)n, (unsigned long long)n);
    cr_assert_not_null(strstr(out, want_line), "%s", out);
    char err[256];
    sl_trace_reader_t *want = sl_trace_reader_open(trace, err, sizeof(err));
    cr_assert_not_null(want, "%s", err);
    sl_trace_reader_t *got = sl_trace_reader_open(cap, err, sizeof(err));
    cr_assert_not_null(got, "%s", err);
    uint8_t *buf = malloc(1 << 16);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off_w, off_g;
        const void *rw, *rg;
        size_t lw, lg, ls;
        cr_assert_eq(sl_trace_next(want, &off_w, &rw, &lw), 0);
        cr_assert_eq(sl_trace_next(got, &off_g, &rg, &lg), 0,
                     "record %llu did not come back",
                     (unsigned long long)i);
        cr_assert_leq(lg, 1 << 16);
        uint64_t seq = strip_seq(rg, lg, buf, &ls);
        cr_assert_eq(seq, i, "record %llu came back as the %lluth",
                     (unsigned long long)seq, (unsigned long long)i);
        cr_assert_eq(ls, lw, "record %llu: %zu bytes back, %zu sent",
                     (unsigned long long)i, ls, lw);
        cr_assert_arr_eq(buf, rw, lw, "record %llu differs",
                         (unsigned long long)i);
    }
    uint64_t off;
    const void *r;
    size_t l;
    cr_assert_eq(sl_trace_next(got, &off, &r, &l), 1, "more came back");
    free(buf);
    sl_trace_reader_close(&want);
    sl_trace_reader_close(&got);
    free(out);
}

/* Traffic recorded with `sluice record` (a generator's records: 6 fields,
 * 8 more and a pad, 15 entries, so that the seq field makes the map
 * header grow from 1 to 3 bytes), and a written trace of every msgpack shape, each replayed
 * through zmq_source -> zmq_sink with one worker. */
Test(replay, record_then_replay_round_trip)
{
    char *gen = path_in("gen.yaml");
    cr_assert_eq(sl_test_write_file(gen,
                                    "name: gen\n"
                                    "stages:\n"
                                    "  - name: src\n"
                                    "    plugin: generator\n"
                                    "    config: {count: 800, rate: 4000, "
                                    "fields: 8, size: 200}\n"
                                    "  - name: sink\n"
                                    "    plugin: \"null\"\n"),
                 0);
    char *recorded = path_in("rec.trace");
    char *cmd, *out;
    cr_assert_geq(asprintf(&cmd, "%s record %s --stage src -o %s 2>&1",
                           sl_test_cli(), gen, recorded),
                  0);
    cr_assert_eq(sl_test_run(cmd, &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "recorded 800 records"), "%s", out);
    free(out);
    free(cmd);

    int pin, pout;
    char *topo = topology("rt", "", &pin, &pout);
    char *cap = path_in("back.trace");
    round_trip(recorded, topo, 800, cap);
    char *shapes = make_trace("shapes.trace", 1000, 200000); /* 5000/s */
    round_trip(shapes, topo, 1000, cap);
    free(shapes);
    free(cap);
    free(topo);
    free(recorded);
    free(gen);
}

/* ---- 5: report files and --compare ----------------------------------------- */

static const char *const s_keys[] = {
    "requested_rate", "achieved_rate", "sent", "completed", "errors",
    "timeouts", "unmatched", "duplicates", "duration_s", NULL};
static const char *const s_lat_keys[] = {"p50", "p90", "p99", "p999",
                                         "p9999", "max", "mean", NULL};

/* An --hdr file, read back: its rows and its footer. */
typedef struct hdr_row {
    double v, p, c, inv; /* inv: INFINITY where the file says "inf" */
} hdr_row_t;

typedef struct hdr_file {
    hdr_row_t rows[1024];
    int n;
    double mean, sd, max;
    unsigned long long count;
    int buckets, sub;
} hdr_file_t;

/* Reads path, asserting the layout of HdrHistogram's percentile text: a
 * header, a blank line, rows of four columns, the three footer lines and
 * nothing after them. */
static hdr_file_t *read_hdr(const char *path)
{
    hdr_file_t *h = calloc(1, sizeof(*h));
    cr_assert_not_null(h);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[256];
    cr_assert_not_null(fgets(line, sizeof(line), f));
    cr_assert_str_eq(line, "       Value   Percentile   TotalCount "
                           "1/(1-Percentile)\n");
    cr_assert_not_null(fgets(line, sizeof(line), f));
    cr_assert_str_eq(line, "\n");
    while (fgets(line, sizeof(line), f) && line[0] != '#') {
        cr_assert_lt(h->n, 1024, "too many rows");
        hdr_row_t *r = &h->rows[h->n++];
        char inv[32];
        cr_assert_eq(sscanf(line, "%lf %lf %lf %31s", &r->v, &r->p, &r->c,
                            inv),
                     4, "row '%s'", line);
        r->inv = strcmp(inv, "inf") ? strtod(inv, NULL) : INFINITY;
    }
    cr_assert_eq(sscanf(line, "#[Mean    = %lf, StdDeviation   = %lf]",
                        &h->mean, &h->sd),
                 2, "'%s'", line);
    cr_assert_not_null(fgets(line, sizeof(line), f));
    cr_assert_eq(sscanf(line, "#[Max     = %lf, Total count    = %llu]",
                        &h->max, &h->count),
                 2, "'%s'", line);
    cr_assert_not_null(fgets(line, sizeof(line), f));
    cr_assert_eq(sscanf(line, "#[Buckets = %d, SubBuckets     = %d]",
                        &h->buckets, &h->sub),
                 2, "'%s'", line);
    cr_assert_null(fgets(line, sizeof(line), f), "after the footer: '%s'",
                   line);
    fclose(f);
    return h;
}

/* The HdrHistogram percentile text of total records whose max is max_ms:
 * value, percentile and count non-decreasing, the inverse column agreeing
 * with the percentile; the bucket that holds the max gives one row below
 * percentile 1 with every record counted (HdrHistogram's iterator does,
 * and its plotters draw the top of the curve from it), and the last row
 * is the max at percentile 1. */
static void check_hdr(const char *path, uint64_t total, double max_ms)
{
    hdr_file_t *h = read_hdr(path);
    cr_assert_gt(h->n, 10);
    int full = 0;
    for (int i = 0; i < h->n; i++) {
        const hdr_row_t *r = &h->rows[i];
        if (i) {
            const hdr_row_t *q = &h->rows[i - 1];
            cr_assert_geq(r->v, q->v, "values go down at row %d", i);
            cr_assert_geq(r->p, q->p, "percentiles go down at row %d", i);
            cr_assert_geq(r->c, q->c, "counts go down at row %d", i);
        }
        cr_assert_leq(r->c, (double)total, "row %d", i);
        if (i < h->n - 1) {
            cr_assert_lt(r->p, 1.0, "row %d", i);
            /* from the exact level, which the printed one rounds */
            cr_assert_float_eq(r->inv, 1 / (1 - r->p),
                               0.006 + 2e-6 / ((1 - r->p) * (1 - r->p)),
                               "row %d", i);
            if (r->c == (double)total) {
                full++;
                cr_assert_eq(i, h->n - 2, "row %d counts every record but "
                                          "is not the last below 1", i);
                cr_assert_float_eq(r->v, max_ms, 0.0015);
            }
        }
    }
    cr_assert_eq(full, 1, "rows below percentile 1 that count every "
                          "record: %d", full);
    const hdr_row_t *last = &h->rows[h->n - 1];
    cr_assert_eq(last->p, 1.0);
    cr_assert(isinf(last->inv));
    cr_assert_eq(last->c, (double)total);
    cr_assert_float_eq(last->v, max_ms, 0.0015);
    cr_assert_eq(h->count, total);
    cr_assert_float_eq(h->max, max_ms, 0.0015);
    cr_assert_eq(h->buckets, 57);
    cr_assert_eq(h->sub, 256);
    free(h);
}

/* Writes old.json: report with latency_ns.p99 and achieved_rate set. */
static char *old_report(const json_t *report, const char *name, double p99,
                        double rate)
{
    json_t *c = json_deep_copy(report);
    json_object_set_new(json_object_get(c, "latency_ns"), "p99",
                        json_integer((json_int_t)p99));
    json_object_set_new(c, "achieved_rate", json_real(rate));
    char *path = path_in(name);
    cr_assert_eq(json_dump_file(c, path, 0), 0);
    json_decref(c);
    return path;
}

Test(replay, json_hdr_and_compare)
{
    int pin, pout;
    char *topo = topology("rep", "", &pin, &pout);
    char *trace = make_trace("r.trace", 600, 1000000);
    char *json = path_in("r.json"), *hdr = path_in("r.hdr");
    char *out;
    int rc = replay(&out, "%s --topology %s --speed 2x --json %s --hdr %s "
                          "--quiet",
                    trace, topo, json, hdr);
    cr_assert_eq(rc, 0, "%s", out);
    json_t *j = load_json(json);
    for (int i = 0; s_keys[i]; i++)
        num(j, s_keys[i]);
    for (int i = 0; s_lat_keys[i]; i++)
        lat(j, s_lat_keys[i]);
    cr_assert(json_is_boolean(json_object_get(j, "fell_behind")));
    cr_assert_eq(num(j, "sent"), 600);
    cr_assert_eq(num(j, "completed"), 600);
    /* 600 records 1 ms apart at 2x: 2000/s */
    cr_assert_float_eq(num(j, "requested_rate"), 2000, 0.01);
    cr_assert(lat(j, "p50") <= lat(j, "p90") && lat(j, "p90") <= lat(j, "p99") &&
              lat(j, "p99") <= lat(j, "p999") &&
              lat(j, "p999") <= lat(j, "p9999") &&
              lat(j, "p9999") <= lat(j, "max"));
    /* --topology scrapes the target's metrics: one row per stage */
    json_t *stages = json_object_get(j, "per_stage");
    cr_assert(json_is_array(stages));
    cr_assert_eq(json_array_size(stages), 2, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(stages, 0), "stage")),
                     "in");
    json_t *sink = json_array_get(stages, 1);
    cr_assert_str_eq(json_string_value(json_object_get(sink, "stage")), "out");
    cr_assert_float_eq(num(sink, "records"), 600, 0.5);
    cr_assert_gt(num(sink, "handler_mean_ns"), 0);
    /* and the child's own report */
    json_t *target = json_object_get(j, "target");
    cr_assert_eq(num(json_object_get(target, "totals"), "delivered"), 600);
    cr_assert_not_null(strstr(out, "per stage"), "%s", out);

    check_hdr(hdr, 600, lat(j, "max") / 1e6);

    /* --compare: better than an old run (exit 0), a p99 or a rate worse by
     * more than the threshold (exit 1, named), an unreadable report (2) */
    char *good = old_report(j, "good.json", 1e12, 1);
    char *slow = old_report(j, "slowp99.json", 1, 1);
    char *fast = old_report(j, "rate.json", 1e12, 1e9);
    char *bad = path_in("bad.json");
    cr_assert_eq(sl_test_write_file(bad, "{\"sent\": 3}\n"), 0);
    free(out);
    rc = replay(&out, "%s --topology %s --speed 2x --compare %s --quiet",
                trace, topo, good);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_not_null(strstr(out, "result: within 10.0% of "), "%s", out);
    free(out);
    rc = replay(&out, "%s --topology %s --speed 2x --compare %s "
                      "--threshold 25%% --quiet",
                trace, topo, slow);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert_not_null(strstr(out, "result: WORSE than "), "%s", out);
    cr_assert_not_null(strstr(out, ": p99 +"), "%s", out);
    cr_assert_not_null(strstr(out, "(threshold 25.0%)"), "%s", out);
    free(out);
    rc = replay(&out, "%s --topology %s --speed 2x --compare %s --quiet",
                trace, topo, fast);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert_not_null(strstr(out, ": achieved rate -100.0%"), "%s", out);
    free(out);
    rc = replay(&out, "%s --topology %s --speed 2x --compare %s --quiet",
                trace, topo, bad);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert_not_null(strstr(out, "has no number 'achieved_rate'"), "%s",
                       out);
    free(out);
    json_decref(j);
    free(good);
    free(slow);
    free(fast);
    free(bad);
    free(json);
    free(hdr);
    free(trace);
    free(topo);
}

/* ---- 6: duplicates and unmatched, --to/--ack ------------------------------- */

static pid_t start_run(const char *topo)
{
    char *log = path_in("run.log");
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(sl_test_cli(), sl_test_cli(), "run", topo, "--quiet",
              (char *)NULL);
        _exit(127);
    }
    free(log);
    return pid;
}

/* Every record goes to three sinks that all send to the replayer: one as
 * it is, one a second time (duplicates), one without the seq field
 * (unmatched). */
Test(replay, duplicates_and_unmatched)
{
    int pin = free_port(), pout = free_port();
    char *yaml;
    cr_assert_geq(asprintf(&yaml,
        "name: dup\n"
        "stages:\n"
        "  - name: in\n"
        "    plugin: zmq_source\n"
        "    config: {endpoint: \"tcp://127.0.0.1:%d\"}\n"
        "  - name: out\n"
        "    plugin: zmq_sink\n"
        "    from: in\n"
        "    config: {endpoint: \"tcp://127.0.0.1:%d\"}\n"
        "  - name: again\n"
        "    plugin: zmq_sink\n"
        "    from: in\n"
        "    config: {endpoint: \"tcp://127.0.0.1:%d\"}\n"
        "  - name: strip\n"
        "    plugin: fields\n"
        "    from: in\n"
        "    config: {drop: [_replay_seq]}\n"
        "  - name: anon\n"
        "    plugin: zmq_sink\n"
        "    from: strip\n"
        "    config: {endpoint: \"tcp://127.0.0.1:%d\"}\n",
        pin, pout, pout, pout), 0);
    char *topo = path_in("dup.yaml");
    cr_assert_eq(sl_test_write_file(topo, yaml), 0);
    free(yaml);
    char *trace = make_trace("u.trace", 300, 1000000);
    char *json = path_in("u.json");
    pid_t pid = start_run(topo);
    char *out;
    int rc = replay(&out, "%s --to tcp://127.0.0.1:%d --ack tcp://127.0.0.1:%d "
                          "--speed 4x --timeout 5s --drain 3s --json %s --quiet",
                    trace, pin, pout, json);
    kill(pid, SIGTERM);
    int code = sl_test_wait_exit(pid, 30);
    char *logp = path_in("run.log");
    char *log = sl_test_read_file(logp, NULL);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_eq(code, 0, "the target's exit code; its output:\n%s",
                 log ? log : "");
    free(log);
    free(logp);
    json_t *j = load_json(json);
    cr_assert_eq(num(j, "sent"), 300, "%s", out);
    cr_assert_eq(num(j, "completed"), 300, "%s", out);
    cr_assert_eq(num(j, "duplicates"), 300, "%s", out);
    cr_assert_eq(num(j, "unmatched"), 300, "%s", out);
    cr_assert_eq(num(j, "timeouts"), 0, "%s", out);
    /* no metrics URL: an empty breakdown, the key still there */
    cr_assert_eq(json_array_size(json_object_get(j, "per_stage")), 0);
    json_decref(j);
    free(out);
    free(json);
    free(trace);
    free(topo);
}

/* ---- 7: --synth ------------------------------------------------------------ */

/* Records made by a synth template: 400 at an even 2000/s, all back. A
 * template with mistakes is refused with their positions. */
Test(replay, synth_template)
{
    char *tmpl = path_in("orders.yaml");
    cr_assert_eq(sl_test_write_file(tmpl,
                                    "seed: 7\n"
                                    "count: 400\n"
                                    "rate: 2000/s\n"
                                    "fields:\n"
                                    "  id: {seq: {start: 1}}\n"
                                    "  user: {string: \"user-%04d\"}\n"),
                 0);
    int pin, pout;
    char *topo = topology("syn", "", &pin, &pout);
    char *json = path_in("syn.json");
    char *out;
    int rc = replay(&out, "--synth %s --topology %s --json %s --quiet", tmpl,
                    topo, json);
    cr_assert_eq(rc, 0, "%s", out);
    json_t *j = load_json(json);
    cr_assert_eq(num(j, "sent"), 400, "%s", out);
    cr_assert_eq(num(j, "completed"), 400, "%s", out);
    cr_assert_float_eq(num(j, "requested_rate"), 2000, 0.5, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "mode")),
                     "speed 1x");
    json_decref(j);
    free(out);

    char *bad = path_in("bad.yaml");
    cr_assert_eq(sl_test_write_file(bad, "count: 10\nrate: fast\n"
                                         "fields: {id: {seq: }}\n"),
                 0);
    rc = replay(&out, "--synth %s --topology %s --quiet", bad, topo);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert_not_null(strstr(out, "bad.yaml:2:7: "), "%s", out);
    free(out);
    free(bad);
    free(json);
    free(topo);
    free(tmpl);
}

/* ---- 8: usage ------------------------------------------------------------- */

Test(replay, usage_errors)
{
    char *out;
    cr_assert_eq(replay(&out, "x.trace"), 2);
    cr_assert_not_null(strstr(out, "give --to and --ack"), "%s", out);
    free(out);
    cr_assert_eq(replay(&out, "x.trace --to tcp://a:1 --ack tcp://b:2 "
                              "--speed 2x --rate 10/s"),
                 2);
    cr_assert_not_null(strstr(out, "--speed and --rate exclude each other"),
                       "%s", out);
    free(out);
    cr_assert_eq(replay(&out, "x.trace --to tcp://a:1 --ack tcp://b:2 "
                              "--rate fast"),
                 2);
    cr_assert_not_null(strstr(out, "--rate must be records per second such "
                                   "as 20000/s or 20k/s, got 'fast'"),
                       "%s", out);
    free(out);
    cr_assert_eq(replay(&out, "--to tcp://a:1 --ack tcp://b:2"), 2);
    cr_assert_not_null(strstr(out, "give a TRACE file or --synth"), "%s", out);
    free(out);
    char *missing = path_in("missing.trace");
    cr_assert_eq(replay(&out, "%s --to tcp://127.0.0.1:1 --ack "
                              "tcp://127.0.0.1:2", missing),
                 2);
    cr_assert_not_null(strstr(out, missing), "%s", out);
    free(out);
    free(missing);
}

/* ---- 9: a round trip is the floor of every latency ------------------------- */

/* No latency can be shorter than what the target holds a record, nor, with
 * no stage at all, than two ZeroMQ hops and the handoffs between a run's
 * threads (far more than 10 us): the minimum says whether any record was
 * measured from the wrong moment. The sender used to send the record due
 * at 0 up to 2 ms before the clocks' origin, and its answer, back before
 * that origin too, was measured as 0 ns (through a 5 ms hold, as about
 * 3 ms). Looping, so that later passes are covered too; and no record may
 * come back "before it was due" (`clamped`). */
Test(replay, every_latency_is_a_round_trip)
{
    int pin, pout;
    char *hold = topology("hold5", "  - name: hold\n"
                                   "    plugin: delay\n"
                                   "    workers: 8\n"
                                   "    config: {ms: 5}\n",
                          &pin, &pout);
    char *bare = topology("bare", "", &pin, &pout);
    char *trace = make_trace("f.trace", 300, 1000000);
    char *json = path_in("f.json"), *hdr = path_in("f.hdr");
    const struct {
        const char *topo, *rate;
        double n, floor_ns;
    } runs[] = {{hold, "1000/s", 1000, 5e6}, {bare, "2000/s", 2000, 10e3}};
    for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
        char *out;
        int rc = replay(&out, "%s --topology %s --rate %s --loop "
                              "--duration 1s --json %s --hdr %s --quiet",
                        trace, runs[k].topo, runs[k].rate, json, hdr);
        cr_assert_eq(rc, 0, "%s", out);
        json_t *j = load_json(json);
        cr_assert_eq(num(j, "sent"), runs[k].n, "%s", out);
        cr_assert_eq(num(j, "completed"), runs[k].n, "%s", out);
        cr_assert_eq(num(j, "clamped"), 0, "%s", out);
        double min = lat(j, "min");
        cr_assert_geq(min, runs[k].floor_ns, "min %.0f ns, below %.0f ns\n%s",
                      min, runs[k].floor_ns, out);
        /* the --hdr file starts at the minimum's bucket */
        hdr_file_t *h = read_hdr(hdr);
        cr_assert_eq(h->count, (unsigned long long)runs[k].n);
        cr_assert_eq(h->rows[0].p, 0);
        cr_assert_geq(h->rows[0].v, runs[k].floor_ns / 1e6, "first row %.3f ms",
                      h->rows[0].v);
        free(h);
        json_decref(j);
        free(out);
    }
    free(hdr);
    free(json);
    free(trace);
    free(bare);
    free(hold);
}

/* ---- 10: the schedule's edges ----------------------------------------------- */

static void expect_sent(const char *args, const char *json, double n)
{
    char *out;
    int rc = replay(&out, "%s --json %s --quiet", args, json);
    cr_assert_eq(rc, 0, "%s: %s", args, out);
    json_t *j = load_json(json);
    cr_assert_eq(num(j, "sent"), n, "%s: %s", args, out);
    cr_assert_eq(num(j, "completed"), n, "%s: %s", args, out);
    json_decref(j);
    free(out);
}

/* --duration D sends the records due before D, exactly: at 58/s for
 * 500 ms they are i/58 s for i = 0..28 (i * (1e9 / 58) in doubles put a
 * 30th at 499999999 ns). --loop goes on one mean gap after a pass's last
 * record, also for a trace whose first record is not at 0 (ten records
 * 5 ms apart from 250 ms: passes at 250, 300, ..., 450 ms in 500 ms,
 * where the first offset used to be counted into the gap and only one
 * pass fitted), and a trace with no span (a burst at one offset) repeats
 * once a second, as a one-record trace does, instead of forever at 0. */
Test(replay, schedule_edges)
{
    int pin, pout;
    char *topo = topology("edges", "", &pin, &pout);
    char *json = path_in("e.json");
    char *even = make_trace("even.trace", 100, 1000000);
    char *late = make_trace_from("late.trace", 10, 250000000, 5000000);
    char *burst = make_trace("burst.trace", 5, 0);
    char args[1024];
    snprintf(args, sizeof(args),
             "%s --topology %s --rate 58/s --duration 500ms", even, topo);
    expect_sent(args, json, 29);
    snprintf(args, sizeof(args), "%s --topology %s --loop --duration 500ms",
             late, topo);
    expect_sent(args, json, 50);
    json_t *j = load_json(json);
    /* 50 records from 250 ms to 495 ms */
    cr_assert_float_eq(num(j, "requested_rate"), 200, 0.01);
    json_decref(j);
    snprintf(args, sizeof(args), "%s --topology %s --loop --duration 1100ms",
             burst, topo);
    expect_sent(args, json, 10);
    free(burst);
    free(late);
    free(even);
    free(json);
    free(topo);
}

/* ---- 11: latencies known to the nanosecond ---------------------------------- */

/* A target in this process: takes want records from the replayer on
 * in_port, then sends them all back in one message to out_port. The
 * replayer reads one arrival time for all of them, so their latencies
 * differ exactly by their intended times: every value is known once the
 * largest is. */
typedef struct echo {
    int in_port, out_port;
    uint64_t want;
    atomic_int stop; /* the replay has ended */
    uint64_t got;    /* records taken */
    int answered;
    pthread_t thread;
} echo_t;

static uint64_t count_maps(const char *p, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    uint64_t n = 0;
    while (off < len && msgpack_unpack_next(&u, p, len, &off) ==
                            MSGPACK_UNPACK_SUCCESS)
        n++;
    msgpack_unpacked_destroy(&u);
    return n;
}

static void *echo_main(void *arg)
{
    echo_t *e = arg;
    void *ctx = zmq_ctx_new();
    void *pull = zmq_socket(ctx, ZMQ_PULL), *push = zmq_socket(ctx, ZMQ_PUSH);
    int zero = 0, linger = 5000, timeo = 10000;
    zmq_setsockopt(pull, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(push, ZMQ_SNDTIMEO, &timeo, sizeof(timeo));
    char ep[64];
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", e->in_port);
    int ok = zmq_bind(pull, ep) == 0;
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", e->out_port);
    ok = ok && zmq_connect(push, ep) == 0;
    char *buf = NULL;
    size_t len = 0;
    while (ok && e->got < e->want && !atomic_load(&e->stop)) {
        zmq_pollitem_t it = {.socket = pull, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, pull, 0) >= 0) {
            size_t n = zmq_msg_size(&m);
            char *nb = realloc(buf, len + n);
            ok = nb != NULL;
            if (ok) {
                buf = nb;
                memcpy(buf + len, zmq_msg_data(&m), n);
                e->got += count_maps(buf + len, n);
                len += n;
            }
        }
        zmq_msg_close(&m);
    }
    if (ok && e->got == e->want)
        e->answered = zmq_send(push, buf, len, 0) == (int)len;
    free(buf);
    zmq_close(pull);
    zmq_close(push);
    zmq_ctx_term(ctx);
    return NULL;
}

/* Replays trace (n records) into an echo target; the report in json and
 * hdr. */
static void replay_into_echo(const char *trace, uint64_t n, const char *json,
                             const char *hdr)
{
    echo_t e = {.in_port = free_port(), .out_port = free_port(), .want = n};
    cr_assert_eq(pthread_create(&e.thread, NULL, echo_main, &e), 0);
    char *out;
    int rc = replay(&out, "%s --to tcp://127.0.0.1:%d --ack "
                          "tcp://127.0.0.1:%d --drain 100ms --json %s "
                          "--hdr %s --quiet",
                    trace, e.in_port, e.out_port, json, hdr);
    atomic_store(&e.stop, 1);
    pthread_join(e.thread, NULL);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_eq(e.got, n, "the target took %llu records",
                 (unsigned long long)e.got);
    cr_assert(e.answered, "the target could not answer");
    json_t *j = load_json(json);
    cr_assert_eq(num(j, "completed"), (double)n, "%s", out);
    cr_assert_eq(num(j, "clamped"), 0, "%s", out);
    json_decref(j);
    free(out);
}

/* Every record due at 0 and all back at one instant: one latency, n
 * times. Every percentile is it, and HdrHistogram's text has two rows,
 * both at it (percentile 0 with every record counted, then 1), a mean of
 * it and a standard deviation of 0 (from bucket upper edges it was up to
 * 1/128 of the value). */
Test(replay, hdr_of_one_latency)
{
    char *trace = make_trace("same.trace", 200, 0);
    char *json = path_in("same.json"), *hdr = path_in("same.hdr");
    replay_into_echo(trace, 200, json, hdr);
    json_t *j = load_json(json);
    double max = lat(j, "max");
    cr_assert_gt(max, 0);
    static const char *const keys[] = {"min", "p50", "p90", "p99", "p999",
                                       "p9999", "mean", NULL};
    for (int i = 0; keys[i]; i++)
        cr_assert_eq(lat(j, keys[i]), max, "%s %.0f, max %.0f", keys[i],
                     lat(j, keys[i]), max);
    hdr_file_t *h = read_hdr(hdr);
    cr_assert_eq(h->n, 2, "%d rows", h->n);
    cr_assert_float_eq(h->rows[0].v, max / 1e6, 0.0005);
    cr_assert_eq(h->rows[0].p, 0);
    cr_assert_eq(h->rows[0].c, 200);
    cr_assert_eq(h->rows[0].inv, 1);
    cr_assert_float_eq(h->rows[1].v, max / 1e6, 0.0005);
    cr_assert_eq(h->rows[1].p, 1);
    cr_assert_eq(h->rows[1].c, 200);
    cr_assert(isinf(h->rows[1].inv));
    cr_assert_float_eq(h->mean, max / 1e6, 0.0005);
    cr_assert_eq(h->sd, 0, "StdDeviation %.3f", h->sd);
    cr_assert_eq(h->count, 200);
    free(h);
    json_decref(j);
    free(hdr);
    free(json);
    free(trace);
}

/* The rows HdrHistogram's outputPercentileDistribution writes for the
 * values in h (5 ticks per half distance), by its definition: level L
 * (from 0, stepping by 100 / (5 * 2^(floor(log2(100 / (100 - L))) + 1)))
 * is reported at the bucket that holds the ceil(L% of count)th value (the
 * first for L = 0), with the count of values up to that bucket's end; the
 * walk ends after the row of the bucket that holds the last value, and a
 * row at 100% follows. Values: the bucket's upper edge, capped at the max
 * (this histogram knows its max exactly), in ms. */
static int reference_rows(const sl_hist_t *h, hdr_row_t *rows, int cap)
{
    int n = 0;
    double level = 0;
    for (;;) {
        cr_assert_lt(n, cap - 1);
        double want = ceil(level / 100 * (double)h->count);
        uint64_t rank = want < 1 ? 1 : (uint64_t)want, cum = 0;
        uint32_t i = 0;
        while (cum + h->buckets[i] < rank)
            cum += h->buckets[i++];
        cum += h->buckets[i];
        uint64_t v = sl__hist_upper(i) < h->max ? sl__hist_upper(i) : h->max;
        rows[n++] = (hdr_row_t){(double)v / 1e6, level / 100, (double)cum,
                                1 / (1 - level / 100)};
        if (cum == h->count)
            break;
        level += 100 / (5 * pow(2, floor(log2(100 / (100 - level))) + 1));
    }
    rows[n++] = (hdr_row_t){(double)h->max / 1e6, 1, (double)h->count,
                            INFINITY};
    return n;
}

/* 1000 records 10 us apart, all back at one instant T: record i's
 * latency is T - i * 10 us exactly, in ns, so the report's numbers are
 * those of a histogram of these values (the minimum is the maximum less
 * 9.99 ms, to the nanosecond), and the --hdr file is, row for row, what
 * HdrHistogram writes for them. */
Test(replay, latencies_to_the_nanosecond)
{
    enum { N = 1000, GAP = 10000 };
    char *trace = make_trace("spread.trace", N, GAP);
    char *json = path_in("spread.json"), *hdr = path_in("spread.hdr");
    replay_into_echo(trace, N, json, hdr);
    json_t *j = load_json(json);
    uint64_t max = (uint64_t)lat(j, "max");
    cr_assert_gt(max, (uint64_t)(N - 1) * GAP);
    cr_assert_eq(lat(j, "min"), (double)(max - (uint64_t)(N - 1) * GAP));
    sl_hist_t *ref = malloc(sizeof(*ref));
    cr_assert_not_null(ref);
    sl__hist_init(ref);
    for (uint64_t i = 0; i < N; i++)
        sl__hist_record(ref, max - i * GAP);
    static const struct {
        const char *key;
        double q;
    } qs[] = {{"p50", 0.5},   {"p90", 0.9},     {"p99", 0.99},
              {"p999", 0.999}, {"p9999", 0.9999}};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
        cr_assert_eq(lat(j, qs[i].key), (double)sl__hist_quantile(ref, qs[i].q),
                     "%s", qs[i].key);
    cr_assert_float_eq(lat(j, "mean"), (double)ref->sum / N, 0.5);

    hdr_row_t *want = malloc(sizeof(hdr_row_t) * 1024);
    cr_assert_not_null(want);
    int n = reference_rows(ref, want, 1024);
    hdr_file_t *h = read_hdr(hdr);
    cr_assert_eq(h->n, n, "%d rows, HdrHistogram writes %d", h->n, n);
    for (int i = 0; i < n; i++) {
        const hdr_row_t *g = &h->rows[i], *w = &want[i];
        cr_assert_float_eq(g->v, w->v, 0.0005 + 1e-9, "row %d: value", i);
        cr_assert_float_eq(g->p, w->p, 5e-7 + 1e-12, "row %d: percentile", i);
        cr_assert_eq(g->c, w->c, "row %d: count", i);
        if (isinf(w->inv))
            cr_assert(isinf(g->inv), "row %d", i);
        else
            cr_assert_float_eq(g->inv, w->inv, 0.005 + 1e-9, "row %d", i);
    }
    /* HdrHistogram's deviation: each value taken at its bucket's middle
     * (here kept within the min and max), around the mean */
    double mean = (double)ref->sum / N, var = 0;
    for (uint64_t i = 0; i < N; i++) {
        uint64_t v = max - i * GAP;
        uint32_t b = sl__hist_index(v);
        uint64_t lo = b ? sl__hist_upper(b - 1) + 1 : 0;
        uint64_t mid = lo + (sl__hist_upper(b) - lo + 1) / 2;
        mid = mid < ref->min ? ref->min : mid > ref->max ? ref->max : mid;
        var += ((double)mid - mean) * ((double)mid - mean);
    }
    double sd_ms = sqrt(var / N) / 1e6;
    cr_assert_float_eq(h->sd, sd_ms, 0.0005 + 1e-9,
                       "StdDeviation %.3f, want %.3f", h->sd, sd_ms);
    /* and within half a bucket (1/256 of the max) of the values' own:
     * 10 us * sqrt((N^2 - 1) / 12) */
    double exact_ms = GAP * sqrt(((double)N * N - 1) / 12) / 1e6;
    cr_assert_float_eq(h->sd, exact_ms, (double)max / 256 / 1e6 + 0.0005,
                       "StdDeviation %.3f, the values' %.3f", h->sd,
                       exact_ms);
    cr_assert_float_eq(h->mean, (double)ref->sum / N / 1e6, 0.0005);
    free(h);
    free(want);
    free(ref);
    json_decref(j);
    free(hdr);
    free(json);
    free(trace);
}
