/* `sluice record` and `sluice trace info` through the CLI: a source
 * recorded with event-time offsets, byte for byte what the stage emits; a
 * tap on a fake run that speaks the tap protocol (drops, the run ending,
 * malformed entries, a refusal); a tap on a real `sluice run`; and the
 * exact text of `trace info` on a known trace, whole and damaged. */
#include "harness.h"
#include "testutil.h"
#include "trace.h"

#include <criterion/criterion.h>
#include <microhttpd.h>
#include <msgpack.h>
#include <zmq.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(record, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 60);

static char *s_path(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

/* Runs the CLI with args; stdout into *out, stderr into *err (either may
 * be NULL). Returns the exit code. */
static int s_cli(const char *args, char **out, char **err)
{
    char *errpath = s_path("stderr.txt"), *cmd = NULL;
    cr_assert_gt(asprintf(&cmd, "cd '%s' && '%s' %s 2>'%s'", sl_test_dir(),
                          sl_test_cli(), args, errpath), 0);
    char *o = NULL;
    int code = sl_test_run(cmd, &o);
    cr_assert_not_null(o);
    if (out)
        *out = o;
    else
        free(o);
    if (err) {
        *err = sl_test_read_file(errpath, NULL);
        cr_assert_not_null(*err);
    }
    free(cmd);
    free(errpath);
    return code;
}

typedef struct s_entry {
    uint64_t off;
    char *rec;
    size_t len;
} s_entry_t;

/* Every entry of a trace (asserting it reads to its clean end). */
static size_t s_read_trace(const char *path, s_entry_t **out, char *origin,
                           size_t olen)
{
    char err[1024];
    sl_trace_reader_t *r = sl_trace_reader_open(path, err, sizeof(err));
    cr_assert(r, "%s", err);
    if (origin)
        snprintf(origin, olen, "%s", sl_trace_reader_header(r)->origin);
    size_t n = 0, cap = 16;
    s_entry_t *e = malloc(cap * sizeof(*e));
    uint64_t off;
    const void *rec;
    size_t len;
    int rc;
    while ((rc = sl_trace_next(r, &off, &rec, &len)) == 0) {
        if (n == cap)
            e = realloc(e, (cap *= 2) * sizeof(*e));
        e[n].off = off;
        e[n].rec = malloc(len);
        memcpy(e[n].rec, rec, len);
        e[n].len = len;
        n++;
    }
    cr_assert_eq(rc, 1, "%s", sl_trace_reader_error(r));
    sl_trace_reader_close(&r);
    *out = e;
    return n;
}

static void s_free_entries(s_entry_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].rec);
    free(e);
}

/* ---- recording a source ------------------------------------------------- */

static const char s_events[] =
    "{\"id\":1,\"t\":1000}\n"
    "{\"id\":2,\"t\":1500}\n"
    "{\"id\":3,\"t\":1200}\n"
    "not json\n"
    "{\"id\":4}\n"
    "{\"id\":5,\"t\":\"3000\"}\n"
    "{\"id\":6,\"t\":2.5e3}\n"
    "{\"id\":7,\"t\":\"1970-01-01T00:00:04.5Z\"}\n";

Test(record, source_with_event_time_is_byte_exact)
{
    char *in = s_path("in.jsonl"), *topo = s_path("t.yaml");
    cr_assert_eq(sl_test_write_file(in, s_events), 0);
    cr_assert_eq(sl_test_write_file(topo,
                                    "stages:\n"
                                    "  - name: src\n"
                                    "    plugin: file_source\n"
                                    "    config: {path: in.jsonl}\n"
                                    "  - name: out\n"
                                    "    plugin: \"null\"\n"
                                    "    from: [src]\n"),
                 0);
    char *out, *err;
    int code = s_cli("record t.yaml --stage src -o src.trace --time-field t "
                     "--time-unit ms", &out, &err);
    cr_assert_eq(code, 0, "%s%s", out, err);
    cr_assert_str_eq(out,
                     "recorded 7 records into src.trace (3.500 s of "
                     "traffic); stopped by the end of the input\n"
                     "  offsets raised to keep them in order: 2\n"
                     "  records without a usable 't': 1 (kept at the "
                     "previous offset)\n"
                     "  input errors in the source: 1\n");
    cr_assert(strstr(err, "in.jsonl:4: invalid JSON"), "%s", err);

    /* The same source in the harness: what it emits, byte for byte. */
    char *dir = s_path("");
    char errbuf[1024];
    sl_harness_t *h = sl_harness_new("file_source", "{path: in.jsonl}", dir,
                                     errbuf, sizeof(errbuf));
    cr_assert(h, "%s", errbuf);
    cr_assert_eq(sl_harness_pull_all(h, 256, 1000), 0);
    s_entry_t *e;
    char origin[256];
    char *trace = s_path("src.trace");
    size_t n = s_read_trace(trace, &e, origin, sizeof(origin));
    cr_assert_str_eq(origin, "stage src of t.yaml");
    cr_assert_eq(n, 7);
    cr_assert_eq(sl_harness_count(h), 7);
    /* t: 1000, 1500, 1200 (raised), none (held), "3000", 2500 (raised),
     * 4.5 s as RFC 3339 */
    static const uint64_t want[] = {0, 500, 500, 500, 2000, 2000, 3500};
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const void *rec = sl_harness_output_msgpack(h, i, &len);
        cr_assert_eq(e[i].off, want[i] * 1000000ull, "entry %zu", i);
        cr_assert_eq(e[i].len, len, "entry %zu", i);
        cr_assert_eq(memcmp(e[i].rec, rec, len), 0, "entry %zu", i);
    }
    s_free_entries(e, n);
    sl_harness_destroy(&h);
    free(trace);
    free(dir);
    free(out);
    free(err);
    free(in);
    free(topo);
}

/* The stage's limits apply as in a run: a record over them is an input
 * error with the reason, and stays out of the trace. */
Test(record, source_records_over_the_limits_are_input_errors)
{
    char *in = s_path("in.jsonl"), *topo = s_path("t.yaml");
    char big[400];
    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    char *text = NULL;
    cr_assert_gt(asprintf(&text, "{\"id\":1}\n{\"id\":2,\"s\":\"%s\"}\n"
                                 "{\"id\":3}\n",
                          big),
                 0);
    cr_assert_eq(sl_test_write_file(in, text), 0);
    cr_assert_eq(sl_test_write_file(topo,
                                    "stages:\n"
                                    "  - name: src\n"
                                    "    plugin: file_source\n"
                                    "    limits: {max_record_bytes: 256}\n"
                                    "    config: {path: in.jsonl}\n"
                                    "  - name: out\n"
                                    "    plugin: \"null\"\n"),
                 0);
    char *out, *err;
    int code = s_cli("record t.yaml --stage src -o src.trace", &out, &err);
    cr_assert_eq(code, 0, "%s%s", out, err);
    cr_assert(strstr(out, "recorded 2 records into src.trace"), "%s", out);
    cr_assert(strstr(out, "input errors in the source: 1\n"), "%s", out);
    cr_assert(strstr(err, "sluice record: stage 'src': record of 409 bytes "
                          "is over limits.max_record_bytes (256)\n"),
              "%s", err);
    char *trace = s_path("src.trace");
    s_entry_t *e;
    char origin[256];
    cr_assert_eq(s_read_trace(trace, &e, origin, sizeof(origin)), 2);
    s_free_entries(e, 2);
    free(trace);
    free(out);
    free(err);
    free(text);
    free(in);
    free(topo);
}

Test(record, source_by_emission_time_with_count)
{
    char *topo = s_path("g.yaml");
    cr_assert_eq(sl_test_write_file(topo,
                                    "stages:\n"
                                    "  - name: gen\n"
                                    "    plugin: generator\n"
                                    "    config: {count: 5000, template: "
                                    "{id: $seq, k: x}}\n"
                                    "  - name: out\n"
                                    "    plugin: \"null\"\n"
                                    "    from: [gen]\n"),
                 0);
    char *out, *err;
    cr_assert_eq(s_cli("record g.yaml --stage gen -o g.trace --count 300",
                       &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "recorded 300 records into g.trace ("), "%s", out);
    cr_assert(strstr(out, "stopped by count\n"), "%s", out);
    char *trace = s_path("g.trace");
    s_entry_t *e;
    size_t n = s_read_trace(trace, &e, NULL, 0);
    cr_assert_eq(n, 300);
    cr_assert_eq(e[0].off, 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (size_t i = 0; i < n; i++) {
        /* {"id": i, "k": "x"} */
        msgpack_packer pk;
        sb.size = 0;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "id", 2);
        msgpack_pack_uint64(&pk, i);
        msgpack_pack_str_with_body(&pk, "k", 1);
        msgpack_pack_str_with_body(&pk, "x", 1);
        cr_assert_eq(e[i].len, sb.size, "entry %zu", i);
        cr_assert_eq(memcmp(e[i].rec, sb.data, sb.size), 0, "entry %zu", i);
        if (i)
            cr_assert_geq(e[i].off, e[i - 1].off);
    }
    msgpack_sbuffer_destroy(&sb);
    s_free_entries(e, n);
    free(trace);
    free(out);
    free(err);

    /* Not a source; no such stage; bad usage. */
    cr_assert_eq(s_cli("record g.yaml --stage out -o x.trace", NULL, &err),
                 2);
    cr_assert(strstr(err, "g.yaml: not a source stage: 'out'; its sources: "
                          "gen"), "%s", err);
    free(err);
    cr_assert_eq(s_cli("record g.yaml --stage nope -o x.trace", NULL, &err),
                 2);
    cr_assert(strstr(err, "g.yaml: no stage 'nope'; its sources: gen"), "%s",
              err);
    free(err);
    cr_assert_eq(s_cli("record g.yaml -o x.trace", NULL, &err), 2);
    cr_assert(strstr(err, "TOPOLOGY.yaml needs --stage SOURCE"), "%s", err);
    free(err);
    cr_assert_eq(s_cli("record --from :1 -o x.trace", NULL, &err), 2);
    cr_assert(strstr(err, "--from needs --link FROM>TO"), "%s", err);
    free(err);
    free(topo);
}

/* ---- a fake run that speaks the tap protocol ---------------------------- */

typedef enum {
    FAKE_NORMAL,    /* data on POST, end (dropped N) on DELETE */
    FAKE_RUN_ENDS,  /* data and the end message on POST */
    FAKE_MALFORMED, /* a message with a bad entry in the middle */
    FAKE_REFUSE     /* 404 */
} s_fake_mode_t;

typedef struct s_fake {
    struct MHD_Daemon *d;
    unsigned port;
    void *zctx, *push;
    s_fake_mode_t mode;
    unsigned records;   /* sent on POST */
    uint64_t dropped;   /* reported at the end */
    int posts, deletes;
    char link[64], endpoint[256], deleted[64];
    msgpack_sbuffer sent[64]; /* each record as sent */
} s_fake_t;

static s_fake_t s_fk;

static void s_rec_bytes(msgpack_sbuffer *sb, unsigned i)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "n", 1);
    msgpack_pack_uint32(&pk, i);
    msgpack_pack_str_with_body(&pk, "s", 1);
    msgpack_pack_str_with_body(&pk, "tapped", 6);
}

static void s_send_map(s_fake_t *f, int end)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (end) {
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "end", 3);
        msgpack_pack_true(&pk);
        msgpack_pack_str_with_body(&pk, "dropped", 7);
        msgpack_pack_uint64(&pk, f->dropped);
    } else {
        msgpack_pack_map(&pk, 3);
        msgpack_pack_str_with_body(&pk, "tap", 3);
        msgpack_pack_uint32(&pk, 7);
        msgpack_pack_str_with_body(&pk, "link", 4);
        msgpack_pack_str_with_body(&pk, f->link, strlen(f->link));
        msgpack_pack_str_with_body(&pk, "topology", 8);
        msgpack_pack_str_with_body(&pk, "faketopo", 8);
    }
    zmq_send(f->push, sb.data, sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* Records in messages of 3, record i at wall 5e9 + i ms. */
static void s_send_data(s_fake_t *f)
{
    msgpack_sbuffer msg;
    msgpack_sbuffer_init(&msg);
    for (unsigned i = 0; i < f->records; i++) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &msg, msgpack_sbuffer_write);
        if (f->mode == FAKE_MALFORMED && i == 4) {
            /* [1, 2, 3]: not an entry; the rest of its message is lost */
            msgpack_pack_array(&pk, 3);
            for (int k = 1; k <= 3; k++)
                msgpack_pack_int(&pk, k);
        }
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint64(&pk, 5000000000ull + i * 1000000ull);
        msgpack_sbuffer_write(&msg, f->sent[i].data, f->sent[i].size);
        if (i % 3 == 2 || i + 1 == f->records) {
            zmq_send(f->push, msg.data, msg.size, 0);
            msg.size = 0;
        }
    }
    msgpack_sbuffer_destroy(&msg);
}

static enum MHD_Result s_reply(struct MHD_Connection *c, unsigned status,
                               const char *text)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *c,
                                const char *url, const char *method,
                                const char *version, const char *upload,
                                size_t *upload_len, void **req_cls)
{
    (void)version;
    (void)upload;
    s_fake_t *f = cls;
    static int seen;
    if (!*req_cls) {
        *req_cls = &seen;
        return MHD_YES;
    }
    if (*upload_len) {
        *upload_len = 0;
        return MHD_YES;
    }
    if (!strcmp(method, "GET"))
        return s_reply(c, 200, "fake run\n");
    if (!strcmp(method, "POST") && !strcmp(url, "/tap")) {
        const char *link = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                       "link");
        const char *ep = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                     "endpoint");
        f->posts++;
        snprintf(f->link, sizeof(f->link), "%s", link ? link : "");
        snprintf(f->endpoint, sizeof(f->endpoint), "%s", ep ? ep : "");
        if (f->mode == FAKE_REFUSE)
            return s_reply(c, 404, "link 'a>c': no such link\n");
        f->push = zmq_socket(f->zctx, ZMQ_PUSH);
        int linger = 2000;
        zmq_setsockopt(f->push, ZMQ_LINGER, &linger, sizeof(linger));
        if (zmq_connect(f->push, f->endpoint) != 0)
            return s_reply(c, 400, "bad endpoint\n");
        s_send_map(f, 0);
        s_send_data(f);
        if (f->mode == FAKE_RUN_ENDS)
            s_send_map(f, 1);
        return s_reply(c, 201, "7\n");
    }
    if (!strcmp(method, "DELETE") && !strncmp(url, "/tap/", 5)) {
        f->deletes++;
        snprintf(f->deleted, sizeof(f->deleted), "%s", url + 5);
        if (f->mode == FAKE_RUN_ENDS)
            return s_reply(c, 404, "no such tap\n");
        s_send_map(f, 1);
        return s_reply(c, 200, "tap ended\n");
    }
    return s_reply(c, 405, "no\n");
}

static void s_fake_start(s_fake_mode_t mode, unsigned records,
                         uint64_t dropped)
{
    memset(&s_fk, 0, sizeof(s_fk));
    s_fk.mode = mode;
    s_fk.records = records;
    s_fk.dropped = dropped;
    for (unsigned i = 0; i < records; i++)
        s_rec_bytes(&s_fk.sent[i], i);
    s_fk.zctx = zmq_ctx_new();
    cr_assert(s_fk.zctx);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s_fk.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                              s_handle, &s_fk, MHD_OPTION_SOCK_ADDR, &a,
                              MHD_OPTION_END);
    cr_assert(s_fk.d);
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(s_fk.d, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert(info && info->port);
    s_fk.port = info->port;
}

static void s_fake_stop(void)
{
    MHD_stop_daemon(s_fk.d);
    if (s_fk.push)
        zmq_close(s_fk.push);
    zmq_ctx_term(s_fk.zctx);
}

/* The records it sent, kept past the stop for comparing. */
static void s_fake_free(void)
{
    for (unsigned i = 0; i < s_fk.records; i++)
        msgpack_sbuffer_destroy(&s_fk.sent[i]);
}

static int s_record_fake(const char *extra, char **out, char **err)
{
    char args[512];
    snprintf(args, sizeof(args), "record --from 127.0.0.1:%u --link 'a>b' "
             "-o t.trace %s", s_fk.port, extra);
    return s_cli(args, out, err);
}

Test(record, fake_tap_count_is_byte_exact)
{
    s_fake_start(FAKE_NORMAL, 15, 0);
    char *out, *err;
    int code = s_record_fake("--count 10", &out, &err);
    s_fake_stop();
    cr_assert_eq(code, 0, "%s%s", out, err);
    cr_assert_str_eq(out, "recorded 10 records into t.trace (0.009 s of "
                          "traffic); stopped by count\n"
                          "  the run dropped no records on the tap\n");
    cr_assert_str_eq(err, "");
    cr_assert_eq(s_fk.posts, 1);
    cr_assert_str_eq(s_fk.link, "a>b");
    cr_assert(!strncmp(s_fk.endpoint, "tcp://127.0.0.1:", 16), "%s",
              s_fk.endpoint);
    cr_assert_eq(s_fk.deletes, 1);
    cr_assert_str_eq(s_fk.deleted, "7");
    char *trace = s_path("t.trace"), origin[256], want[256];
    s_entry_t *e;
    size_t n = s_read_trace(trace, &e, origin, sizeof(origin));
    snprintf(want, sizeof(want), "link a>b of faketopo at "
             "http://127.0.0.1:%u", s_fk.port);
    cr_assert_str_eq(origin, want);
    cr_assert_eq(n, 10);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(e[i].off, i * 1000000ull);
        cr_assert_eq(e[i].len, s_fk.sent[i].size);
        cr_assert_eq(memcmp(e[i].rec, s_fk.sent[i].data, e[i].len), 0);
    }
    s_free_entries(e, n);
    s_fake_free();
    free(trace);
    free(out);
    free(err);
}

Test(record, fake_tap_drops_fail_loudly)
{
    s_fake_start(FAKE_NORMAL, 4, 3);
    char *out, *err;
    int code = s_record_fake("--count 4", &out, &err);
    s_fake_stop();
    s_fake_free();
    cr_assert_eq(code, 1, "%s%s", out, err);
    cr_assert_str_eq(out, "recorded 4 records into t.trace (0.003 s of "
                          "traffic); stopped by count\n");
    cr_assert_str_eq(err, "sluice record: WARNING: the run DROPPED 3 records "
                          "on the tap (the recorder did not keep up): the "
                          "trace is missing them\n"
                          "sluice record: failing for it (--allow-drops "
                          "keeps the trace and exits 0)\n");
    free(out);
    free(err);

    s_fake_start(FAKE_NORMAL, 4, 1);
    code = s_record_fake("--count 4 --allow-drops", &out, &err);
    s_fake_stop();
    s_fake_free();
    cr_assert_eq(code, 0, "%s%s", out, err);
    cr_assert(strstr(err, "the run DROPPED 1 record on the tap"), "%s", err);
    free(out);
    free(err);
}

Test(record, fake_tap_run_ends)
{
    s_fake_start(FAKE_RUN_ENDS, 5, 0);
    char *out, *err;
    int code = s_record_fake("", &out, &err);
    s_fake_stop();
    s_fake_free();
    cr_assert_eq(code, 0, "%s%s", out, err);
    cr_assert_str_eq(out, "recorded 5 records into t.trace (0.004 s of "
                          "traffic); stopped by the end of the run\n"
                          "  the run dropped no records on the tap\n");
    cr_assert_eq(s_fk.deletes, 0, "no DELETE for a tap the run ended");
    free(out);
    free(err);
}

Test(record, fake_tap_malformed_entries_are_skipped)
{
    s_fake_start(FAKE_MALFORMED, 9, 0);
    char *out, *err;
    int code = s_record_fake("--duration 1s", &out, &err);
    s_fake_stop();
    cr_assert_eq(code, 0, "%s%s", out, err);
    /* Records 3..5 share a message; the bad entry before record 4 takes
     * it and what follows in that message. */
    cr_assert_str_eq(out, "recorded 7 records into t.trace (0.008 s of "
                          "traffic); stopped by duration\n"
                          "  entries skipped as malformed: 1\n"
                          "  the run dropped no records on the tap\n");
    char *trace = s_path("t.trace");
    s_entry_t *e;
    size_t n = s_read_trace(trace, &e, NULL, 0);
    cr_assert_eq(n, 7);
    static const unsigned kept[] = {0, 1, 2, 3, 6, 7, 8};
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(e[i].off, kept[i] * 1000000ull);
        cr_assert_eq(memcmp(e[i].rec, s_fk.sent[kept[i]].data, e[i].len), 0);
    }
    s_free_entries(e, n);
    s_fake_free();
    free(trace);
    free(out);
    free(err);
}

Test(record, fake_tap_refused)
{
    s_fake_start(FAKE_REFUSE, 0, 0);
    char *err;
    char args[256];
    snprintf(args, sizeof(args), "record --from 127.0.0.1:%u --link 'a>c' -o "
             "t.trace", s_fk.port);
    int code = s_cli(args, NULL, &err);
    s_fake_stop();
    cr_assert_eq(code, 1);
    char want[256];
    snprintf(want, sizeof(want), "sluice record: http://127.0.0.1:%u refused "
             "the tap on 'a>c' (HTTP 404): link 'a>c': no such link\n",
             s_fk.port);
    cr_assert(!strncmp(err, want, strlen(want)), "%s", err);
    free(err);
}

/* ---- a real run ---------------------------------------------------------- */

Test(record, tap_on_a_real_run)
{
    char *topo = s_path("live.yaml"), *log = s_path("run.log");
    cr_assert_eq(sl_test_write_file(topo,
                                    "name: live\n"
                                    "stages:\n"
                                    "  - name: gen\n"
                                    "    plugin: generator\n"
                                    "    config: {count: 1000000, rate: "
                                    "2000}\n"
                                    "  - name: sink\n"
                                    "    plugin: \"null\"\n"
                                    "    from: [gen]\n"),
                 0);
    const char *argv[] = {"run", topo, "--metrics", "127.0.0.1:0", NULL};
    pid_t pid = sl_test_spawn_cli(log, argv);
    char *text = sl_test_wait_log(log, "metrics on http://", 20);
    unsigned port = sl_test_metrics_port(text, "127.0.0.1");
    free(text);
    char args[256], *out, *err;
    snprintf(args, sizeof(args), "record --from 127.0.0.1:%u --link 'gen>sink' "
             "-o live.trace --count 500", port);
    int code = s_cli(args, &out, &err);
    kill(pid, SIGKILL);
    cr_assert_eq(sl_test_wait_exit(pid, 10), 128 + SIGKILL);
    cr_assert_eq(code, 0, "%s%s", out, err);
    cr_assert(strstr(out, "recorded 500 records into live.trace ("), "%s",
              out);
    cr_assert(strstr(out, "  the run dropped no records on the tap\n"), "%s",
              out);
    char *trace = s_path("live.trace"), origin[256];
    s_entry_t *e;
    size_t n = s_read_trace(trace, &e, origin, sizeof(origin));
    cr_assert_eq(n, 500);
    snprintf(args, sizeof(args), "link gen>sink of live at "
             "http://127.0.0.1:%u", port);
    cr_assert_str_eq(origin, args);
    /* The generator's records in order: "seq" counts up by one. At 2000/s,
     * 500 records span about 0.25 s. */
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    uint64_t first = 0;
    for (size_t i = 0; i < n; i++) {
        msgpack_object o;
        size_t pos = 0;
        cr_assert_eq(msgpack_unpack(e[i].rec, e[i].len, &pos, &zone, &o),
                     MSGPACK_UNPACK_SUCCESS);
        cr_assert(o.type == MSGPACK_OBJECT_MAP && o.via.map.size >= 1);
        const msgpack_object_kv *kv = &o.via.map.ptr[0];
        cr_assert(kv->key.via.str.size == 3 &&
                  !memcmp(kv->key.via.str.ptr, "seq", 3));
        if (!i)
            first = kv->val.via.u64;
        cr_assert_eq(kv->val.via.u64, first + i);
        msgpack_zone_clear(&zone);
    }
    cr_assert(e[n - 1].off > 150000000ull && e[n - 1].off < 1000000000ull,
              "500 records over %llu ns", (unsigned long long)e[n - 1].off);
    msgpack_zone_destroy(&zone);
    s_free_entries(e, n);
    free(trace);
    free(out);
    free(err);
    free(topo);
    free(log);
}

/* ---- trace info ------------------------------------------------------------ */

/* A trace with a fixed header: 12 records {"a": i, "b"?: "xy" / nil} at
 * offsets 0, 0.25, ... 2.75 s, and some with a third field. */
static void s_known_trace(const char *path)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "sluice_trace", 12);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_str_with_body(&pk, "created_ns", 10);
    msgpack_pack_uint64(&pk, 1714564800123000000ull);
    msgpack_pack_str_with_body(&pk, "origin", 6);
    msgpack_pack_str_with_body(&pk, "handmade", 8);
    /* 4 records in the first second, 6 in the second, 2 in the third */
    static const uint64_t offs_ms[] = {0,    250,  500,  750,  1000, 1100,
                                       1200, 1300, 1400, 1500, 2000, 2750};
    for (unsigned i = 0; i < 12; i++) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint64(&pk, offs_ms[i] * 1000000ull);
        msgpack_pack_map(&pk, i % 3 ? 2 : 3);
        msgpack_pack_str_with_body(&pk, "a", 1);
        msgpack_pack_uint32(&pk, i);
        msgpack_pack_str_with_body(&pk, "b", 1);
        if (i % 4)
            msgpack_pack_str_with_body(&pk, "xy", 2);
        else
            msgpack_pack_nil(&pk);
        if (i % 3 == 0) {
            msgpack_pack_str_with_body(&pk, "odd\tkey", 7);
            msgpack_pack_double(&pk, 0.5);
        }
    }
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fwrite(sb.data, 1, sb.size, f);
    fclose(f);
    msgpack_sbuffer_destroy(&sb);
}

static const char s_known_info[] =
    "trace     k.trace\n"
    "origin    handmade\n"
    "created   2024-05-01T12:00:00.123Z\n"
    "records   12\n"
    "duration  2.750 s\n"
    "rate      4.0/s mean; per second: min 2, p50 4, max 6\n"
    "size      min 7 B, mean 14.2 B, max 26 B\n"
    "\n"
    "rate over time (records per second):\n"
    "  0s-1s                 4 ####################\n"
    "  1s-2s                 6 ##############################\n"
    "  2s-3s                 2 ##########\n"
    "\n"
    "fields:\n"
    "  NAME                        RECORDS      %  TYPES\n"
    "  a                                12  100.0  int\n"
    "  b                                12  100.0  nil 3, str 9\n"
    "  odd\\x09key                        4   33.3  float64\n";

Test(record, trace_info_exact_text)
{
    char *path = s_path("k.trace");
    s_known_trace(path);
    char *out, *err;
    int code = s_cli("trace info k.trace", &out, &err);
    cr_assert_eq(code, 0, "%s", err);
    cr_assert_str_eq(out, s_known_info);
    cr_assert_str_eq(err, "");
    free(out);
    free(err);

    /* JSON: the same numbers. */
    cr_assert_eq(s_cli("trace info k.trace --json", &out, NULL), 0);
    cr_assert(strstr(out, "\"records\": 12,"), "%s", out);
    cr_assert(strstr(out, "\"duration_ns\": 2750000000,"), "%s", out);
    cr_assert(strstr(out, "\"error\": null"), "%s", out);
    free(out);

    /* Damaged: 5 garbage bytes after the last entry. What came before is
     * printed as it was, the error names the entry and its byte. */
    size_t len;
    char *bytes = sl_test_read_file(path, &len);
    FILE *f = fopen(path, "ab");
    fwrite("\x92\x00\xc1\xc1\xc1", 1, 5, f);
    fclose(f);
    code = s_cli("trace info k.trace", &out, &err);
    cr_assert_eq(code, 1);
    cr_assert_str_eq(out, s_known_info);
    char want[256];
    snprintf(want, sizeof(want), "sluice trace: k.trace: entry 13 at byte "
             "%zu: offset 0 ns is below the previous one, 2750000000 (the "
             "numbers above are for the 12 entries before it)\n", len);
    cr_assert_str_eq(err, want);
    free(out);
    free(err);
    free(bytes);

    cr_assert_eq(s_cli("trace info missing.trace", NULL, &err), 1);
    cr_assert_str_eq(err, "sluice trace: missing.trace: cannot open: No such "
                          "file or directory\n");
    free(err);
    free(path);
}

Test(record, trace_synth_writes_a_template)
{
    char *tpl = s_path("s.yaml");
    cr_assert_eq(sl_test_write_file(tpl, "seed: 5\nrate: {constant: {rate: "
                                         "100/s, duration: 2s}}\nfields:\n"
                                         "  id: {seq: {}}\n"),
                 0);
    char *out, *err;
    cr_assert_eq(s_cli("trace synth s.yaml -o s.trace", &out, &err), 0, "%s",
                 err);
    cr_assert_str_eq(out, "wrote 200 records into s.trace (1.990 s of "
                          "traffic)\n");
    free(out);
    free(err);
    cr_assert_eq(sl_test_write_file(tpl, "rate: 1/s\nfields: {a: {seq: "
                                         "{}}}\n"),
                 0);
    cr_assert_eq(s_cli("trace synth s.yaml -o s.trace", NULL, &err), 2);
    cr_assert_str_eq(err, "s.yaml:1:7: the traffic never ends: give 'count' "
                          "or 'duration' (here or in the shape)\n");
    free(err);
    free(tpl);
}
