/* topologies/http_events.yaml through `sluice run`: events posted with the
 * curl command line tool (NDJSON, a JSON array, msgpack, and a bad body
 * that must leave nothing behind) go through the Lua script into JSON
 * lines; the run is stopped with SIGTERM once everything is answered and
 * taken in, and the output lines, the dead letter and the report's
 * ledger are checked. Also: a stop while accepted records still wait
 * loses none of them silently, and new requests then get 503; and a
 * pipeline behind a slow stage answers 503 with Retry-After instead of
 * growing memory.
 *
 * Process lifetime: each `sluice run` child sets PR_SET_PDEATHSIG, so it
 * dies with the test process however that ends, and every test kills and
 * reaps its child before returning; curl children all have --max-time. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <fcntl.h>
#include <jansson.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(http_etl, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 60);

static char *s_path(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

/* The test's `sluice run` child, killed and reaped by s_reap. */
static pid_t s_child = -1;

/* `sluice run TOPO args...` in the test's folder, output to log. */
static pid_t s_spawn(const char *log, const char *const *args,
                     const char *asan_extra)
{
    const char *argv[16] = {"sluice", "run"};
    size_t n = 2;
    for (; args[n - 2]; n++) {
        cr_assert_lt(n, 15);
        argv[n] = args[n - 2];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || chdir(sl_test_dir()) != 0)
            _exit(126);
        if (asan_extra) {
            const char *old = getenv("ASAN_OPTIONS");
            char *opts = NULL;
            if (asprintf(&opts, "%s%s%s", old ? old : "", old ? ":" : "",
                         asan_extra) < 0)
                _exit(126);
            setenv("ASAN_OPTIONS", opts, 1);
        }
        dup2(fd, 1);
        dup2(fd, 2);
        execv(sl_test_cli(), (char *const *)argv);
        _exit(127);
    }
    s_child = pid;
    return pid;
}

static void s_reap(void)
{
    if (s_child > 0) {
        kill(s_child, SIGKILL);
        waitpid(s_child, NULL, 0);
        s_child = -1;
    }
}

static int s_wait_exit(pid_t pid, double timeout_s)
{
    int code = sl_test_wait_exit(pid, timeout_s);
    s_child = -1; /* reaped, or killed and reaped */
    return code;
}

/* Waits at most timeout_s for log to contain what; returns the log then. */
static char *s_wait_log(const char *log, const char *what, double timeout_s)
{
    const struct timespec tick = {0, 5 * 1000 * 1000};
    double end = sl_test_now() + timeout_s;
    for (;;) {
        char *text = sl_test_read_file(log, NULL);
        if (text && strstr(text, what))
            return text;
        if (sl_test_now() > end) {
            s_reap();
            cr_assert_fail("no '%s' in the log after %.0f s:\n%s", what,
                           timeout_s, text ? text : "(no log)");
        }
        free(text);
        nanosleep(&tick, NULL);
    }
}

/* The port in "PREFIX<port>" of a log. */
static unsigned s_port_after(const char *text, const char *prefix)
{
    const char *p = strstr(text, prefix);
    unsigned port = 0;
    cr_assert_not_null(p, "no '%s' in:\n%s", prefix, text);
    cr_assert_eq(sscanf(p + strlen(prefix), "%u", &port), 1);
    cr_assert(port > 0 && port < 65536);
    return port;
}

/* Starts `sluice run topo args` and waits until it serves: returns the
 * ingest port (and the metrics port, if asked for with --metrics). */
static unsigned s_start(const char *log, const char *const *args,
                        const char *asan_extra, unsigned *metrics_port)
{
    s_spawn(log, args, asan_extra);
    char *text = s_wait_log(log, "listening on http://127.0.0.1:", 30);
    unsigned port = s_port_after(text, "listening on http://127.0.0.1:");
    free(text);
    if (metrics_port) {
        text = s_wait_log(log, "metrics on http://127.0.0.1:", 30);
        *metrics_port = s_port_after(text, "metrics on http://127.0.0.1:");
        free(text);
    }
    return port;
}

/* POSTs the file at path to port/events; returns the status and puts the
 * answer's body (malloc'd) in *body when asked. */
static int s_post(unsigned port, const char *ct, const char *path,
                  char **body)
{
    char *cmd = NULL, *out = NULL;
    int status = 0;
    cr_assert_gt(asprintf(&cmd, "curl -sS --max-time 20 -H 'Content-Type: "
                          "%s' --data-binary @%s -w '\\n%%{http_code}' "
                          "http://127.0.0.1:%u/events",
                          ct, path, port),
                 0);
    int code = sl_test_run(cmd, &out);
    cr_assert_eq(code, 0, "%s: exit %d\n%s", cmd, code, out);
    char *nl = strrchr(out, '\n');
    cr_assert_not_null(nl, "%s", out);
    status = atoi(nl + 1);
    *nl = '\0'; /* then the body's own final newline */
    if (nl > out && nl[-1] == '\n')
        nl[-1] = '\0';
    if (body)
        *body = strdup(out);
    free(out);
    free(cmd);
    return status;
}

static char *s_write(const char *name, const void *data, size_t len)
{
    char *p = s_path(name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    return p;
}

/* The value of metric `name{stage="stage"}` at metrics port, or -1. */
static long long s_metric(unsigned port, const char *name, const char *stage)
{
    char *cmd = NULL, *out = NULL, want[160];
    long long v = -1;
    cr_assert_gt(asprintf(&cmd, "curl -sS --max-time 10 "
                          "http://127.0.0.1:%u/metrics", port),
                 0);
    if (sl_test_run(cmd, &out) == 0 && out) {
        snprintf(want, sizeof(want), "\n%s{stage=\"%s\"} ", name, stage);
        const char *p = strstr(out, want);
        if (p)
            v = atoll(p + strlen(want));
    }
    free(out);
    free(cmd);
    return v;
}

static void s_wait_metric(unsigned port, const char *name, const char *stage,
                          long long want)
{
    const struct timespec tick = {0, 10 * 1000 * 1000};
    double end = sl_test_now() + 20;
    long long v;
    while ((v = s_metric(port, name, stage)) != want) {
        if (sl_test_now() > end) {
            s_reap();
            cr_assert_fail("%s{stage=\"%s\"} is %lld, not %lld", name, stage,
                           v, want);
        }
        nanosleep(&tick, NULL);
    }
}

/* A copy of topologies/http_events.yaml in the test's folder, listening on
 * a free port; the script comes along, and out/ is made. */
static char *s_copy_topology(void)
{
    char *yaml = sl_test_read_file(SL_TEST_SOURCE_DIR
                                   "/topologies/http_events.yaml", NULL);
    char *lua = sl_test_read_file(SL_TEST_SOURCE_DIR
                                  "/topologies/scripts/enrich_events.lua",
                                  NULL);
    cr_assert_not_null(yaml);
    cr_assert_not_null(lua);
    char *at = strstr(yaml, "listen: \":8080\"");
    cr_assert_not_null(at, "the topology no longer listens on \":8080\"");
    char *copy = NULL;
    cr_assert_gt(asprintf(&copy, "%.*slisten: \"127.0.0.1:0\"%s",
                          (int)(at - yaml), yaml,
                          at + strlen("listen: \":8080\"")),
                 0);
    char *dir = s_path("scripts"), *out = s_path("out");
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(mkdir(out, 0755), 0);
    free(s_write("scripts/enrich_events.lua", lua, strlen(lua)));
    char *path = s_write("http_events.yaml", copy, strlen(copy));
    free(dir);
    free(out);
    free(copy);
    free(lua);
    free(yaml);
    return path;
}

/* Each line of the file as JSON with sorted keys: the Lua stage writes the
 * keys a script adds in Lua's table order, which changes from run to run
 * (Lua seeds its string hashes), so lines are compared by content and
 * types, in order. */
static char *s_sorted_lines(const char *path)
{
    char *text = sl_test_read_file(path, NULL), *buf = NULL;
    size_t len = 0;
    cr_assert_not_null(text, "%s", path);
    FILE *f = open_memstream(&buf, &len);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        cr_assert_not_null(j, "not JSON: %s (%s)", line, jerr.text);
        char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(f, "%s\n", s);
        free(s);
        json_decref(j);
    }
    fclose(f);
    free(text);
    return buf;
}

static json_t *s_stage(json_t *report, const char *name)
{
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(report, "stages"), i, st)
        if (strcmp(json_string_value(json_object_get(st, "name")), name) == 0)
            return st;
    cr_assert_fail("no stage '%s' in the report", name);
    return NULL;
}

static long long s_num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_integer(v), "no integer '%s'", key);
    return json_integer_value(v);
}

/* ---- the example topology ------------------------------------------------- */

static const char s_ndjson[] =
    "{\"event\":\" Page View \",\"user\":\" Ann@Example.COM \","
    "\"ts\":1714557600,\"props\":{\"path\":\"/home\"}}\n"
    "{\"event\":\"heartbeat\",\"ts\":1714557601}\n"
    "{\"event\":\"Sign-Up\",\"user\":\"Bob@Mail.Example.org\","
    "\"ts\":1714643999,\"plan\":\"free\"}\n"
    "{\"user\":\"nobody@example.com\",\"ts\":1714557602}\n"
    "{\"event\":\"Purchase\",\"user\":\"ann@example.com\",\"ts\":1714557700,"
    "\"amount\":\"12.50\"}\n";

static const char s_array[] =
    "[{\"event\":\"ORDER\",\"order\":\"o-17\",\"user\":\"Cy@Example.com\","
    "\"ts\":1714600000,\"items\":[{\"sku\":\"A1\",\"qty\":2},{\"sku\":\"B2\"}]},"
    " {\"event\":\"purchase\",\"user\":\"dee@example.com\",\"ts\":1714557800,"
    "\"amount\":\"lots\"},"
    " {\"event\":\"page view\",\"ts\":1714557900,\"score\":0.5,\"ok\":true,"
    "\"tags\":[]}]";

/* The same, keys sorted (see s_sorted_lines). */
static const char s_want[] =
    "{\"day\":\"2024-05-01\",\"domain\":\"example.com\",\"event\":\"page_view\","
    "\"props\":{\"path\":\"/home\"},\"ts\":1714557600,"
    "\"user\":\"ann@example.com\"}\n"
    "{\"day\":\"2024-05-02\",\"domain\":\"mail.example.org\","
    "\"event\":\"sign_up\",\"plan\":\"free\",\"ts\":1714643999,"
    "\"user\":\"bob@mail.example.org\"}\n"
    "{\"amount\":12.5,\"day\":\"2024-05-01\",\"domain\":\"example.com\","
    "\"event\":\"purchase\",\"ts\":1714557700,\"user\":\"ann@example.com\"}\n"
    "{\"day\":\"2024-05-01\",\"event\":\"order_item\",\"n\":1,"
    "\"order\":\"o-17\",\"qty\":2,\"sku\":\"A1\",\"user\":\"cy@example.com\"}\n"
    "{\"day\":\"2024-05-01\",\"event\":\"order_item\",\"n\":2,"
    "\"order\":\"o-17\",\"qty\":1,\"sku\":\"B2\",\"user\":\"cy@example.com\"}\n"
    "{\"day\":\"2024-05-01\",\"event\":\"page_view\",\"ok\":true,"
    "\"score\":0.5,\"tags\":[],\"ts\":1714557900}\n"
    "{\"day\":\"2024-05-01\",\"domain\":\"example.com\",\"event\":\"click\","
    "\"n\":3,\"ratio\":1.0,\"ts\":1714557600,\"user\":\"eve@example.com\"}\n";

/* {"event":"Click","user":"eve@example.com","ts":1714557600,"n":3,
 *  "ratio":1.0} as msgpack: an int and a float that JSON could confuse. */
static char *s_msgpack_body(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    msgpack_pack_str_with_body(&pk, "event", 5);
    msgpack_pack_str_with_body(&pk, "Click", 5);
    msgpack_pack_str_with_body(&pk, "user", 4);
    msgpack_pack_str_with_body(&pk, "eve@example.com", 15);
    msgpack_pack_str_with_body(&pk, "ts", 2);
    msgpack_pack_int64(&pk, 1714557600);
    msgpack_pack_str_with_body(&pk, "n", 1);
    msgpack_pack_int(&pk, 3);
    msgpack_pack_str_with_body(&pk, "ratio", 5);
    msgpack_pack_double(&pk, 1.0);
    char *p = s_write("c.mpk", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return p;
}

Test(http_etl, events_through_lua_into_json_lines)
{
    char *topo = s_copy_topology(), *log = s_path("run.log");
    char *report = s_path("report.json");
    const char *args[] = {topo, "--report", report, "--metrics",
                          "127.0.0.1:0", NULL};
    unsigned mport;
    unsigned port = s_start(log, args, NULL, &mport);

    char *a = s_write("a.ndjson", s_ndjson, sizeof(s_ndjson) - 1);
    char *b = s_write("b.json", s_array, sizeof(s_array) - 1);
    char *c = s_msgpack_body();
    const char bad_text[] = "{\"event\":\"x\"}\n{\"event\":}\n";
    char *bad = s_write("bad.ndjson", bad_text, sizeof(bad_text) - 1);
    char *body = NULL;
    cr_expect_eq(s_post(port, "application/x-ndjson", a, &body), 202);
    cr_expect_str_eq(body, "{\"accepted\":5}");
    free(body);
    cr_expect_eq(s_post(port, "application/x-ndjson", bad, &body), 400);
    cr_expect_str_eq(body, "{\"error\":\"line 2 column 10: parse error: "
                           "unallowed token at this point in JSON text\"}");
    free(body);
    cr_expect_eq(s_post(port, "application/json", b, NULL), 202);
    cr_expect_eq(s_post(port, "application/msgpack", c, NULL), 202);

    /* Every answered record is in the pipeline before the stop. */
    s_wait_metric(mport, "sluice_records_read_total", "ingest", 9);
    cr_assert_eq(kill(s_child, SIGTERM), 0);
    int code = s_wait_exit(s_child, 30);
    char *text = sl_test_read_file(log, NULL);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, text);
    cr_expect_not_null(strstr(text, "requests answered: 202: 3 (9 records), "
                                    "400: 1"),
                       "%s", text);
    cr_expect_null(strstr(text, "never emitted"), "%s", text);

    char *out = s_path("out/http_events.jsonl");
    char *lines = s_sorted_lines(out);
    cr_expect_str_eq(lines, s_want);

    char *dead_path = s_path("out/http_events.dead.jsonl");
    char *dead = sl_test_read_file(dead_path, NULL);
    cr_assert_not_null(dead);
    cr_expect_eq(sl_test_count_lines(dead_path), 1);
    cr_expect_not_null(strstr(dead, "amount 'lots' is not a number"), "%s",
                       dead);
    cr_expect_not_null(strstr(dead, "\"user\":\"dee@example.com\""), "%s",
                       dead);

    json_error_t jerr;
    json_t *rep = json_load_file(report, 0, &jerr);
    cr_assert_not_null(rep, "%s: %s", report, jerr.text);
    cr_expect(json_is_true(json_object_get(rep, "ledger_ok")));
    json_t *ingest = s_stage(rep, "ingest"), *enrich = s_stage(rep, "enrich"),
           *store = s_stage(rep, "store");
    cr_expect_eq(s_num(ingest, "read"), 9, "the bad body is not read");
    cr_expect_eq(s_num(ingest, "errors"), 0);
    cr_expect_eq(s_num(enrich, "in"), 9);
    cr_expect_eq(s_num(enrich, "filtered"), 2, "heartbeat, no name");
    cr_expect_eq(s_num(enrich, "dead_lettered"), 1, "amount 'lots'");
    cr_expect_eq(s_num(enrich, "out"), 7, "an order of two items");
    cr_expect_eq(s_num(store, "in"), 7);
    cr_expect_eq(s_num(store, "delivered"), 7);
    json_decref(rep);

    free(dead);
    free(dead_path);
    free(lines);
    free(out);
    free(text);
    free(bad);
    free(c);
    free(b);
    free(a);
    free(report);
    free(log);
    free(topo);
}

/* ---- stopping ------------------------------------------------------------- */

static const char s_slow_topo[] =
    "defaults: {queue: 256, batch: 32}\n"
    "stages:\n"
    "  - name: ingest\n"
    "    plugin: http_source\n"
    "    config: {listen: \"127.0.0.1:0\", path: /events, queue: 5000}\n"
    "  - name: slow\n"
    "    plugin: delay\n"
    "    config: {ms: 2}\n"
    "  - name: store\n"
    "    plugin: file_sink\n"
    "    config: {path: out.jsonl}\n";

/* n NDJSON records {"seq": first..first+n-1} in a file. */
static char *s_seq_file(const char *name, int first, int n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    for (int i = 0; i < n; i++)
        fprintf(f, "{\"seq\":%d}\n", first + i);
    fclose(f);
    char *p = s_write(name, text, len);
    free(text);
    return p;
}

/* The count in the stage's "N records of accepted (202) requests were
 * never emitted" error, or 0. */
static long long s_never_emitted(const char *log)
{
    const char *p = strstr(log, " records of accepted (202) requests were "
                                "never emitted");
    if (!p)
        return 0;
    while (p > log && p[-1] >= '0' && p[-1] <= '9')
        p--;
    return atoll(p);
}

/* SIGTERM while accepted records still wait in the stage (the delay stage
 * is behind): new requests get 503 with Retry-After, and every accepted
 * record is still emitted and written (a 202 is a promise). */
Test(http_etl, a_stop_refuses_new_bodies_and_accounts_for_accepted_ones)
{
    char *topo = s_write("slow.yaml", s_slow_topo, sizeof(s_slow_topo) - 1);
    char *log = s_path("run.log"), *report = s_path("report.json");
    const char *args[] = {topo, "--report", report, NULL};
    unsigned port = s_start(log, args, NULL, NULL);
    char *b1 = s_seq_file("b1.ndjson", 0, 1000);
    char *b2 = s_seq_file("b2.ndjson", 1000, 1000);
    cr_assert_eq(s_post(port, "application/x-ndjson", b1, NULL), 202);
    cr_assert_eq(s_post(port, "application/x-ndjson", b2, NULL), 202);
    cr_assert_eq(kill(s_child, SIGTERM), 0);
    free(s_wait_log(log, "SIGTERM", 10));

    /* The pipeline still drains (2 ms a record): the server answers. */
    char *body = NULL;
    cr_expect_eq(s_post(port, "application/x-ndjson", b1, &body), 503);
    cr_expect_str_eq(body, "{\"error\":\"stopping: not accepting records\"}");
    free(body);

    int code = s_wait_exit(s_child, 40);
    char *text = sl_test_read_file(log, NULL);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, text);
    char *out = s_path("out.jsonl");
    long lines = sl_test_count_lines(out);
    long long lost = s_never_emitted(text);
    free(out);
    cr_expect_eq(lines, 2000, "%ld written:\n%s", lines, text);
    cr_expect_eq(lost, 0, "%lld reported as never emitted:\n%s", lost, text);
    cr_expect_not_null(strstr(text, "requests answered: 202: 2 (2000 "
                                    "records), 503: 1"),
                       "%s", text);

    json_error_t jerr;
    json_t *rep = json_load_file(report, 0, &jerr);
    cr_assert_not_null(rep, "%s", jerr.text);
    cr_expect(json_is_true(json_object_get(rep, "ledger_ok")));
    cr_expect_eq(s_num(s_stage(rep, "ingest"), "read"), lines);
    json_decref(rep);
    free(text);
    free(b2);
    free(b1);
    free(report);
    free(log);
    free(topo);
}

/* ---- backpressure ------------------------------------------------------- */

static const char s_overload_topo[] =
    "grace: 1s\n"
    "defaults: {queue: 256, batch: 64}\n"
    "stages:\n"
    "  - name: ingest\n"
    "    plugin: http_source\n"
    "    config: {listen: \"127.0.0.1:0\", path: /events, queue: 2000}\n"
    "  - name: slow\n"
    "    plugin: delay\n"
    "    config: {ms: 1}\n"
    "  - name: sink\n"
    "    plugin: null\n";

static long s_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

typedef struct s_sampler {
    pid_t pid;
    atomic_int done;
    long max_kb;
} s_sampler_t;

static void *s_sample_main(void *arg)
{
    s_sampler_t *s = arg;
    const struct timespec tick = {0, 20 * 1000 * 1000};
    while (!atomic_load(&s->done)) {
        long kb = s_rss_kb(s->pid);
        if (kb > s->max_kb)
            s->max_kb = kb;
        nanosleep(&tick, NULL);
    }
    return NULL;
}

/* Four clients post 2000-record bodies (about 130 KiB each) as fast as
 * they can at a pipeline that takes 1000 records a second: most bodies
 * get 503 with Retry-After, and the run's memory stays flat although
 * ~100 MiB are posted. */
Test(http_etl, a_slow_pipeline_answers_503_and_memory_stays_bounded,
     .timeout = 90)
{
    enum { POSTS = 800 };
    char *topo = s_write("overload.yaml", s_overload_topo,
                         sizeof(s_overload_topo) - 1);
    char *log = s_path("run.log"), *report = s_path("report.json");
    const char *args[] = {topo, "--report", report, NULL};
    /* ASan keeps freed blocks in a quarantine (256 MiB by default), which
     * would count as resident memory; the bound is about live memory. */
    unsigned port = s_start(log, args, "quarantine_size_mb=8", NULL);

    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    for (int i = 0; i < 2000; i++)
        fprintf(f, "{\"seq\":%d,\"user\":\"user-%d@example.com\","
                   "\"pad\":\"%030d\"}\n", i, i % 97, i);
    fclose(f);
    char *body = s_write("body.ndjson", text, tlen);
    free(text);

    s_sampler_t smp = {.pid = s_child, .max_kb = 0};
    long base_kb = s_rss_kb(s_child);
    cr_assert_gt(base_kb, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_sample_main, &smp), 0);
    char *cmd = NULL, *out = NULL;
    cr_assert_gt(asprintf(&cmd, "curl -sS --no-progress-meter --max-time 60 --parallel "
                          "--parallel-max 4 -o /dev/null -H 'Content-Type: "
                          "application/x-ndjson' --data-binary @%s -w "
                          "'%%{http_code} %%header{retry-after}\\n' "
                          "'http://127.0.0.1:%u/events?[1-%d]'",
                          body, port, POSTS),
                 0);
    double t0 = sl_test_now();
    int code = sl_test_run(cmd, &out);
    double took = sl_test_now() - t0;
    atomic_store(&smp.done, 1);
    pthread_join(th, NULL);
    cr_assert_eq(code, 0, "curl exit %d:\n%s", code, out);

    int ok = 0, busy = 0, other = 0;
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
        if (strcmp(l, "202 ") == 0)
            ok++;
        else if (strcmp(l, "503 1") == 0)
            busy++;
        else if (other++ < 5)
            cr_log_error("unexpected answer '%s'", l);
    }
    cr_expect_eq(ok + busy, POSTS, "%d other answers", other);
    cr_expect_geq(ok, 1);
    cr_expect_geq(busy, POSTS / 2, "only %d of %d refused", busy, POSTS);
    long grown_kb = smp.max_kb - base_kb;
    cr_log_info("%d posts in %.1f s: %d accepted, %d refused; RSS %ld kB at "
                "start, at most %ld kB (+%ld kB)", POSTS, took, ok, busy,
                base_kb, smp.max_kb, grown_kb);
    /* ~130 KiB a body: were the refused ones kept, that would be 50+ MiB */
    cr_expect_lt(grown_kb, 32 * 1024, "RSS grew by %ld kB", grown_kb);

    cr_assert_eq(kill(s_child, SIGTERM), 0);
    code = s_wait_exit(s_child, 30);
    cr_expect(code == 0 || code == 4, "exit %d", code);
    free(out);
    free(cmd);
    free(body);
    free(report);
    free(log);
    free(topo);
}
