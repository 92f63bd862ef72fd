/* `sluice run --metrics`: the endpoint of a real run, scraped over HTTP by
 * a minimal client, parsed by a real Prometheus parser (python3's
 * prometheus_client; promtool too when installed) and checked against the
 * run's own report: counters per stage, sampled handler histograms, sink
 * latency, bucket order. Also: 404/405, the loopback default, a live
 * scrape while records flow, and bad addresses. */
#include "testutil.h"

#include "run.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PLUGINS SL_TEST_BINARY_DIR "/tests/plugins/"

static char *s_path(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

/* `sluice run` with args (NULL-terminated), stdout and stderr to log. */
static pid_t s_spawn(const char *log, const char *const *args)
{
    const char *argv[24] = {"run"};
    size_t n = 1;
    for (; args[n - 1]; n++) {
        cr_assert_lt(n, 23);
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    return sl_test_spawn_cli(log, argv);
}

/* ---- the real parser ---------------------------------------------------- */

static const char s_parse_py[] =
    "import sys\n"
    "from prometheus_client.parser import text_string_to_metric_families\n"
    "text = open(sys.argv[1]).read()\n"
    "for fam in text_string_to_metric_families(text):\n"
    "    print('F\\t%s\\t%s' % (fam.name, fam.type))\n"
    "    for s in fam.samples:\n"
    "        labels = ','.join('%s=%s' % (k, s.labels[k])\n"
    "                          for k in sorted(s.labels))\n"
    "        print('S\\t%s\\t%s\\t%r' % (s.name, labels or '-',\n"
    "                                  float(s.value)))\n";

/* A python3 that has prometheus_client (scripts/deps.sh installs Debian's
 * python3-prometheus-client for /usr/bin/python3). */
static const char *s_python(void)
{
    static const char *const tries[] = {"/usr/bin/python3", "python3"};
    for (size_t i = 0; i < 2; i++) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "%s -c 'import prometheus_client' "
                 ">/dev/null 2>&1", tries[i]);
        if (system(cmd) == 0)
            return tries[i];
    }
    cr_assert_fail("no python3 with prometheus_client: install "
                   "python3-prometheus-client (scripts/deps.sh)");
    return NULL;
}

/* Parses text with prometheus_client; returns its listing, one line per
 * family ("F\tname\ttype") and sample ("S\tname\tk=v,...\tvalue"). */
static char *s_parse(const char *text)
{
    char *mfile = s_path("scrape.txt"), *py = s_path("parse.py");
    cr_assert_eq(sl_test_write_file(mfile, text), 0);
    cr_assert_eq(sl_test_write_file(py, s_parse_py), 0);
    char *cmd = NULL, *out = NULL;
    cr_assert_gt(asprintf(&cmd, "%s %s %s", s_python(), py, mfile), 0);
    int rc = sl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "prometheus_client refused the text:\n%s\n---\n%s",
                 out, text);
    free(cmd);
    free(py);
    free(mfile);
    return out;
}

/* The value of sample name{labels} (labels sorted, "k=v,k=v", "-" for
 * none) in a listing; asserts that it is there exactly once. */
static double s_val(const char *listing, const char *name, const char *labels)
{
    char key[256];
    snprintf(key, sizeof(key), "\nS\t%s\t%s\t", name, labels);
    const char *p = strstr(listing, key);
    cr_assert_not_null(p, "no sample %s{%s} in:\n%s", name, labels, listing);
    cr_assert_null(strstr(p + 1, key), "%s{%s} twice", name, labels);
    return strtod(p + strlen(key), NULL);
}

static void s_family(const char *listing, const char *name, const char *type)
{
    char key[128];
    snprintf(key, sizeof(key), "F\t%s\t%s\n", name, type);
    cr_assert_not_null(strstr(listing, key), "no %s family %s in:\n%s", type,
                       name, listing);
}

/* Buckets of one histogram series in document order: `le` ascending,
 * counts never decreasing, +Inf last and equal to _count. Returns the
 * number of buckets. */
static int s_check_buckets(const char *listing, const char *name,
                           const char *stage)
{
    char key[160], count_name[128];
    snprintf(key, sizeof(key), "\nS\t%s_bucket\tle=", name);
    snprintf(count_name, sizeof(count_name), "%s_count", name);
    char stage_label[96];
    snprintf(stage_label, sizeof(stage_label), "stage=%s", stage);
    double last_le = -1, last_count = -1;
    int n = 0, saw_inf = 0;
    for (const char *p = listing; (p = strstr(p, key)) != NULL; p++) {
        const char *le = p + strlen(key);
        const char *comma = strchr(le, ',');
        cr_assert_not_null(comma);
        if (strncmp(comma + 1, stage_label, strlen(stage_label)) != 0 ||
            comma[1 + strlen(stage_label)] != '\t')
            continue;
        cr_assert(!saw_inf, "%s{%s}: a bucket after +Inf", name, stage);
        double b = strtod(le, NULL);
        double c = strtod(comma + 2 + strlen(stage_label), NULL);
        cr_assert_gt(b, last_le, "%s{%s}: le out of order", name, stage);
        cr_assert_geq(c, last_count, "%s{%s}: bucket le=%g has %g < %g",
                      name, stage, b, c, last_count);
        last_le = b;
        last_count = c;
        saw_inf = strncmp(le, "inf,", 4) == 0 || strncmp(le, "+Inf,", 5) == 0;
        n++;
    }
    cr_assert(saw_inf, "%s{%s}: no +Inf bucket", name, stage);
    cr_assert_eq(last_count, s_val(listing, count_name, stage_label));
    return n;
}

/* ---- the pipeline ------------------------------------------------------- */

/* gen (2000 records, 250 with country US) and gen_bad (30 with bad: true)
 * -> keep (drops US) -> check (fails bad ones: two attempts, then the
 * dead-letter file) -> sums. */
static char *s_write_topology(const char *gen_config)
{
    char *yaml = NULL, *path = s_path("t.yaml");
    cr_assert_gt(asprintf(&yaml,
        "name: metrics\n"
        "defaults: {batch: 16}\n"
        "stages:\n"
        "  - name: gen\n"
        "    plugin: generator\n"
        "    config: %s\n"
        "  - name: gen_bad\n"
        "    plugin: generator\n"
        "    config: {count: 30, template: {seq: $seq, country: DE, "
        "bad: true}}\n"
        "  - name: keep\n"
        "    plugin: filter\n"
        "    from: [gen, gen_bad]\n"
        "    config: {expr: 'country != \"US\"'}\n"
        "  - name: check\n"
        "    plugin: " PLUGINS "misbehave.so\n"
        "    retry: {max_attempts: 2, backoff_ms: 1, max_backoff_ms: 2}\n"
        "    dead_letter: dlq.jsonl\n"
        "    config: {fail_when: bad}\n"
        "  - name: sums\n"
        "    plugin: " PLUGINS "checksum_sink.so\n"
        "    config: {path: sums.txt}\n", gen_config), 0);
    cr_assert_eq(sl_test_write_file(path, yaml), 0);
    free(yaml);
    return path;
}

static json_t *s_stage(json_t *report, const char *name)
{
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(report, "stages"), i, st)
        if (strcmp(json_string_value(json_object_get(st, "name")), name) == 0)
            return st;
    cr_assert_fail("no stage %s in the report", name);
    return NULL;
}

static double s_num(json_t *st, const char *key)
{
    json_t *v = json_object_get(st, key);
    cr_assert(json_is_integer(v), "report: no integer %s", key);
    return (double)json_integer_value(v);
}

Test(metrics, final_scrape_matches_the_report, .timeout = 120,
     .init = sl_test_tmpdir_setup, .fini = sl_test_tmpdir_teardown)
{
    char *topo = s_write_topology("{count: 2000}");
    char *log = s_path("run.log"), *report = s_path("report.json");
    const char *args[] = {topo, "--metrics", "127.0.0.1:0",
                          "--metrics-linger", "60", "--report", report, NULL};
    double t0 = sl_test_now();
    pid_t pid = s_spawn(log, args);
    char *text = sl_test_wait_log(log, "metrics on http://", 30);
    unsigned port = sl_test_metrics_port(text, "127.0.0.1");
    free(text);
    /* The summary's last line, then the linger notice: the run is over,
     * the numbers are final. */
    text = sl_test_wait_log(log, "metrics stay on http://", 60);
    cr_assert_not_null(strstr(text, "records: 2030 read, 1750 delivered, "
                                    "250 filtered, 30 dead-lettered"), "%s",
                       text);
    free(text);

    sl_test_http_t r = sl_test_http(port, "GET", "/metrics");
    cr_assert_eq(r.status, 200, "%s", r.head);
    cr_assert_not_null(strstr(r.head, "\r\nContent-Type: text/plain; "
                                      "version=0.0.4; charset=utf-8"),
                       "%s", r.head);
    char *metrics = r.body;
    r.body = NULL;
    sl_test_http_free(&r);

    r = sl_test_http(port, "GET", "/nope");
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(r.body, "not found: try /metrics\n");
    sl_test_http_free(&r);
    r = sl_test_http(port, "POST", "/metrics");
    cr_assert_eq(r.status, 405);
    cr_assert_not_null(strstr(r.head, "\r\nAllow: GET, HEAD"), "%s", r.head);
    sl_test_http_free(&r);
    r = sl_test_http(port, "GET", "/");
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.head, "\r\nContent-Type: text/html"));
    cr_assert_not_null(strstr(r.body, "<a href=\"/metrics\">"), "%s", r.body);
    sl_test_http_free(&r);
    r = sl_test_http(port, "HEAD", "/metrics");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "");
    sl_test_http_free(&r);

    /* A signal ends the linger at once. */
    cr_assert_eq(kill(pid, SIGTERM), 0);
    cr_assert_eq(sl_test_wait_exit(pid, 20), 0);
    cr_assert_lt(sl_test_now() - t0, 50, "the linger did not end early");

    char *listing = s_parse(metrics);
    json_error_t jerr;
    json_t *rep = json_load_file(report, 0, &jerr);
    cr_assert_not_null(rep, "report: %s", jerr.text);

    s_family(listing, "sluice_run_info", "gauge");
    cr_assert_eq(s_val(listing, "sluice_run_info", "topology=metrics"), 1);
    cr_assert_eq(s_val(listing, "sluice_stage_info",
                       "kind=transform,lane=thread,plugin=" PLUGINS
                       "misbehave.so,stage=check"), 1);
    s_family(listing, "sluice_records_in", "counter");
    s_family(listing, "sluice_records_read", "counter");
    s_family(listing, "sluice_queue_depth", "gauge");
    s_family(listing, "sluice_link_credit", "gauge");
    s_family(listing, "sluice_handler_seconds", "histogram");
    s_family(listing, "sluice_latency_seconds", "histogram");

    static const char *const names[] = {"gen", "gen_bad", "keep", "check",
                                        "sums"};
    for (size_t i = 0; i < 5; i++) {
        json_t *st = s_stage(rep, names[i]);
        char lab[64];
        snprintf(lab, sizeof(lab), "stage=%s", names[i]);
        int source = i < 2;
        if (source)
            cr_assert_eq(s_val(listing, "sluice_records_read_total", lab),
                         s_num(st, "read"), "%s", lab);
        else
            cr_assert_eq(s_val(listing, "sluice_records_in_total", lab),
                         s_num(st, "in"), "%s", lab);
        cr_assert_eq(s_val(listing, "sluice_records_out_total", lab),
                     s_num(st, "out"), "%s", lab);
        cr_assert_eq(s_val(listing, "sluice_records_filtered_total", lab),
                     s_num(st, "filtered"), "%s", lab);
        cr_assert_eq(s_val(listing, "sluice_records_dead_lettered_total", lab),
                     s_num(st, "dead_lettered"), "%s", lab);
        cr_assert_eq(s_val(listing, "sluice_retries_total", lab),
                     s_num(st, "retried"), "%s", lab);
        cr_assert_eq(s_val(listing, "sluice_records_spilled_total", lab), 0);
        cr_assert_eq(s_val(listing, "sluice_queue_max", lab),
                     s_num(st, "max_queue"), "%s", lab);
        cr_assert_eq(s_val(listing, "sluice_queue_capacity", lab),
                     s_num(st, "queue"), "%s", lab);
        cr_assert_eq(s_val(listing, "sluice_queue_depth", lab), 0);
        cr_assert_eq(s_val(listing, "sluice_workers", lab), 1);
        cr_assert_eq(s_val(listing, "sluice_workers_busy", lab), 0);
        if (!source) {
            /* One worker: one call in SL_HANDLER_SAMPLE was timed, a
             * retry being a call of its own. */
            double calls = s_num(st, "in") + s_num(st, "retried");
            cr_assert_eq(s_val(listing, "sluice_handler_seconds_count", lab),
                         (double)((uint64_t)calls / SL_HANDLER_SAMPLE),
                         "%s", lab);
            cr_assert_eq(s_check_buckets(listing, "sluice_handler_seconds",
                                         names[i]), 20);
        }
    }
    /* The numbers themselves, not only their agreement. */
    cr_assert_eq(s_val(listing, "sluice_records_filtered_total", "stage=keep"),
                 250);
    cr_assert_eq(s_val(listing, "sluice_records_dead_lettered_total",
                       "stage=check"), 30);
    cr_assert_eq(s_val(listing, "sluice_retries_total", "stage=check"), 30);
    cr_assert_eq(s_val(listing, "sluice_records_in_total", "stage=sums"),
                 1750);
    cr_assert_eq(s_val(listing, "sluice_handler_seconds_count",
                       "stage=check"), (1780 + 30) / SL_HANDLER_SAMPLE);
    /* Sink latency: every record written, once. */
    cr_assert_eq(s_val(listing, "sluice_latency_seconds_count", "stage=sums"),
                 1750);
    cr_assert_eq(s_num(json_object_get(s_stage(rep, "sums"), "latency_ns"),
                       "count"), 1750);
    cr_assert_eq(s_check_buckets(listing, "sluice_latency_seconds", "sums"),
                 20);
    cr_assert_gt(s_val(listing, "sluice_latency_seconds_sum", "stage=sums"),
                 0);
    cr_assert_null(strstr(listing, "\tsluice_latency_seconds_count\t"
                                   "stage=keep\t"));
    /* Links, by name. */
    s_val(listing, "sluice_link_credit", "from=gen,to=keep");
    s_val(listing, "sluice_link_credit", "from=gen_bad,to=keep");
    s_val(listing, "sluice_link_credit", "from=keep,to=check");
    s_val(listing, "sluice_link_credit", "from=check,to=sums");
    cr_assert_geq(s_val(listing, "sluice_run_elapsed_seconds", "-"), 0);

    /* promtool's own linter, where it is installed (not a dependency). */
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        char *mfile = s_path("scrape.txt"), *cmd = NULL, *out = NULL;
        cr_assert_gt(asprintf(&cmd, "promtool check metrics < %s", mfile), 0);
        cr_assert_eq(sl_test_run(cmd, &out), 0, "promtool:\n%s", out);
        free(out);
        free(cmd);
        free(mfile);
    } else {
        cr_log_info("promtool not installed: its check skipped");
    }

    json_decref(rep);
    free(listing);
    free(metrics);
    free(log);
    free(report);
    free(topo);
}

/* While records flow, a scrape shows them going: the sources' read count
 * grows between two scrapes, and the run is not over. */
Test(metrics, live_scrape_while_running, .timeout = 120,
     .init = sl_test_tmpdir_setup, .fini = sl_test_tmpdir_teardown)
{
    char *topo = s_write_topology("{count: 1000000, rate: 2000}");
    char *log = s_path("run.log");
    const char *args[] = {topo, "--metrics", "127.0.0.1:0", NULL};
    pid_t pid = s_spawn(log, args);
    char *text = sl_test_wait_log(log, "metrics on http://", 30);
    unsigned port = sl_test_metrics_port(text, "127.0.0.1");
    free(text);

    double first = -1, end = sl_test_now() + 30;
    const struct timespec tick = {0, 20 * 1000 * 1000};
    for (;;) {
        sl_test_http_t r = sl_test_http(port, "GET", "/metrics");
        cr_assert_eq(r.status, 200);
        char *listing = s_parse(r.body);
        double read = s_val(listing, "sluice_records_read_total", "stage=gen");
        cr_assert_lt(read, 1000000);
        cr_assert_gt(s_val(listing, "sluice_run_elapsed_seconds", "-"), 0);
        free(listing);
        sl_test_http_free(&r);
        if (first < 0 && read > 0)
            first = read;
        else if (first >= 0 && read > first)
            break;
        cr_assert_lt(sl_test_now(), end, "read stayed at %g", first);
        nanosleep(&tick, NULL);
    }
    cr_assert_eq(kill(pid, SIGTERM), 0); /* drains: exit 0 */
    cr_assert_eq(sl_test_wait_exit(pid, 30), 0);
    free(log);
    free(topo);
}

/* `--metrics :PORT` means loopback: the socket listens on 127.0.0.1 and
 * nowhere else (the kernel's own table says so). */
static int s_listening(const char *table, unsigned port, char *addr,
                       size_t addrlen)
{
    FILE *f = fopen(table, "r");
    if (!f)
        return 0;
    char line[512];
    int found = 0;
    while (fgets(line, sizeof(line), f)) {
        char local[64];
        unsigned st;
        if (sscanf(line, " %*d: %63s %*s %x", local, &st) != 2)
            continue;
        char *colon = strrchr(local, ':');
        if (!colon || strtoul(colon + 1, NULL, 16) != port || st != 0x0A)
            continue;
        *colon = '\0';
        snprintf(addr, addrlen, "%s", local);
        found++;
    }
    fclose(f);
    return found;
}

Test(metrics, empty_host_listens_on_loopback_only, .timeout = 60,
     .init = sl_test_tmpdir_setup, .fini = sl_test_tmpdir_teardown)
{
    char *topo = s_write_topology("{count: 10}");
    char *log = s_path("run.log");
    const char *args[] = {topo, "--metrics", ":0", "--metrics-linger", "60",
                          "--quiet", NULL};
    pid_t pid = s_spawn(log, args);
    char *text = sl_test_wait_log(log, "metrics stay on http://", 30);
    unsigned port = sl_test_metrics_port(text, "127.0.0.1");
    free(text);
    char addr[64] = "";
    cr_assert_eq(s_listening("/proc/net/tcp", port, addr, sizeof(addr)), 1);
    cr_assert_str_eq(addr, "0100007F"); /* 127.0.0.1, little-endian hex */
    cr_assert_eq(s_listening("/proc/net/tcp6", port, addr, sizeof(addr)), 0,
                 "also on IPv6 %s", addr);
    sl_test_http_t r = sl_test_http(port, "GET", "/metrics");
    cr_assert_eq(r.status, 200);
    /* 10 records, 2 of them (seq 0, 8) from the US */
    cr_assert_not_null(strstr(r.body, "\nsluice_records_in_total{stage="
                                      "\"sums\"} 8\n"), "%s", r.body);
    sl_test_http_free(&r);
    cr_assert_eq(kill(pid, SIGINT), 0);
    cr_assert_eq(sl_test_wait_exit(pid, 20), 0);
    free(log);
    free(topo);
}

Test(metrics, bad_addresses_and_options, .timeout = 60,
     .init = sl_test_tmpdir_setup, .fini = sl_test_tmpdir_teardown)
{
    char *topo = s_write_topology("{count: 10}");
    char *log = s_path("run.log");

    const char *bad_port[] = {topo, "--metrics", "127.0.0.1:99999", NULL};
    cr_assert_eq(sl_test_wait_exit(s_spawn(log, bad_port), 30), 2);
    char *text = sl_test_read_file(log, NULL);
    cr_assert_str_eq(text, "sluice run: --metrics: address '127.0.0.1:99999':"
                           " the port must be a number 0..65535 (0 picks a "
                           "free one)\n");
    free(text);

    const char *bad_linger[] = {topo, "--metrics", ":0", "--metrics-linger",
                                "soon", NULL};
    cr_assert_eq(sl_test_wait_exit(s_spawn(log, bad_linger), 30), 2);
    text = sl_test_read_file(log, NULL);
    cr_assert_str_eq(text, "sluice run: --metrics-linger must be seconds such "
                           "as 5 or 0.5 (or 500ms, 2m), got 'soon'\n");
    free(text);

    /* A port someone already listens on: the run does not start. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
    const char *busy[] = {topo, "--metrics", addr, NULL};
    cr_assert_eq(sl_test_wait_exit(s_spawn(log, busy), 30), 1);
    text = sl_test_read_file(log, NULL);
    char want[128];
    snprintf(want, sizeof(want), "sluice run: --metrics: cannot serve metrics "
             "on %s: ", addr);
    cr_assert_not_null(strstr(text, want), "%s", text);
    cr_assert_not_null(strstr(text, "Address already in use"), "%s", text);
    cr_assert_null(strstr(text, "records:"), "the run started:\n%s", text);
    free(text);
    close(fd);
    free(log);
    free(topo);
}
