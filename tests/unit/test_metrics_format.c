/* The Prometheus exposition of a run (metrics.c): label escaping, the
 * shape of the text (HELP, TYPE, then that family's samples, each family
 * once), exact samples of a finished in-process run, and the listen
 * address syntax of metrics_http.c. The HTTP side and a real parser are
 * in tests/integration/test_metrics.c. */
#include <criterion/criterion.h>

#include "metrics.h"
#include "metrics_http.h"
#include "run.h"
#include "testutil.h"
#include "topology.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *s_label(const char *s)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    cr_assert_not_null(f);
    sl__metrics_label(f, s);
    cr_assert_eq(fclose(f), 0);
    return out;
}

Test(metrics_format, label_values_escape_backslash_quote_newline)
{
    char *e = s_label("a\"b\\c\nd\te");
    cr_assert_str_eq(e, "a\\\"b\\\\c\\nd\te");
    free(e);
    e = s_label("");
    cr_assert_str_eq(e, "");
    free(e);
}

/* ---- the whole text ----------------------------------------------------- */

static char *s_render(sl_run_t *run)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    cr_assert_not_null(f);
    cr_assert_eq(sl__metrics_write(run, f), 0);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(strlen(out), len);
    return out;
}

static void s_expect_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
    cr_assert_fail("no line\n  %s\nin:\n%s", line, text);
}

static void s_expect_no(const char *text, const char *frag)
{
    cr_assert_null(strstr(text, frag), "unexpected '%s' in:\n%s", frag, text);
}

static int s_name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == ':' || (!first && c >= '0' && c <= '9');
}

/* Each family: "# HELP n ...", "# TYPE n t", then only its own samples
 * (n, or n_bucket/n_sum/n_count for a histogram), each well formed; no
 * family twice. Returns the number of families. */
static int s_check_shape(const char *text)
{
    char fams[64][64];
    int n_fams = 0;
    char name[64] = "", type[16] = "";
    int state = 0; /* 0: want HELP, 1: want TYPE, 2: samples */
    const char *p = text;
    int lineno = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        cr_assert_not_null(nl, "the text must end with a newline");
        char line[1024];
        size_t len = (size_t)(nl - p);
        cr_assert_lt(len, sizeof(line));
        memcpy(line, p, len);
        line[len] = '\0';
        p = nl + 1;
        lineno++;
        if (strncmp(line, "# HELP ", 7) == 0) {
            cr_assert_neq(state, 1, "line %d: HELP after HELP", lineno);
            cr_assert_eq(sscanf(line + 7, "%63s", name), 1);
            cr_assert_gt(strlen(line), 8 + strlen(name), "line %d: no help",
                         lineno);
            for (int i = 0; i < n_fams; i++)
                cr_assert_str_neq(fams[i], name, "family %s twice", name);
            cr_assert_lt(n_fams, 64);
            strcpy(fams[n_fams++], name);
            state = 1;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char tname[64];
            cr_assert_eq(state, 1, "line %d: TYPE without HELP", lineno);
            cr_assert_eq(sscanf(line + 7, "%63s %15s", tname, type), 2);
            cr_assert_str_eq(tname, name, "line %d", lineno);
            cr_assert(strcmp(type, "counter") == 0 ||
                      strcmp(type, "gauge") == 0 ||
                      strcmp(type, "histogram") == 0, "line %d", lineno);
            if (strcmp(type, "counter") == 0) {
                size_t nl2 = strlen(name);
                cr_assert(nl2 > 6 && strcmp(name + nl2 - 6, "_total") == 0,
                          "counter %s without _total", name);
            }
            state = 2;
            continue;
        }
        cr_assert_eq(state, 2, "line %d: sample before HELP/TYPE: %s",
                     lineno, line);
        /* name, optional {k="v",...}, one space, a number */
        size_t i = 0;
        while (s_name_char(line[i], i == 0))
            i++;
        cr_assert_gt(i, 0, "line %d: %s", lineno, line);
        char sname[64];
        cr_assert_lt(i, sizeof(sname));
        memcpy(sname, line, i);
        sname[i] = '\0';
        int ok = strcmp(sname, name) == 0;
        if (!ok && strcmp(type, "histogram") == 0) {
            size_t b = strlen(name);
            ok = strncmp(sname, name, b) == 0 &&
                 (strcmp(sname + b, "_bucket") == 0 ||
                  strcmp(sname + b, "_sum") == 0 ||
                  strcmp(sname + b, "_count") == 0);
        }
        cr_assert(ok, "line %d: sample %s in family %s", lineno, sname, name);
        if (line[i] == '{') {
            i++;
            for (;;) {
                size_t k = i;
                while (s_name_char(line[i], i == k))
                    i++;
                cr_assert_gt(i, k, "line %d: label name: %s", lineno, line);
                cr_assert_eq(line[i], '=', "line %d: %s", lineno, line);
                cr_assert_eq(line[i + 1], '"', "line %d: %s", lineno, line);
                i += 2;
                while (line[i] && line[i] != '"') {
                    if (line[i] == '\\') {
                        cr_assert(line[i + 1] == '\\' || line[i + 1] == '"' ||
                                  line[i + 1] == 'n', "line %d: escape: %s",
                                  lineno, line);
                        i++;
                    }
                    i++;
                }
                cr_assert_eq(line[i], '"', "line %d: %s", lineno, line);
                i++;
                if (line[i] == ',') {
                    i++;
                    continue;
                }
                cr_assert_eq(line[i], '}', "line %d: %s", lineno, line);
                i++;
                break;
            }
        }
        cr_assert_eq(line[i], ' ', "line %d: %s", lineno, line);
        char *end;
        strtod(line + i + 1, &end);
        cr_assert(end != line + i + 1 && *end == '\0',
                  "line %d: value: %s", lineno, line);
    }
    cr_assert_eq(state, 2, "the last family has no TYPE");
    return n_fams;
}

/* generator (100 records) -> keep (drops country US: seq % 8 == 0, 13 of
 * them) -> out (null sink). The name carries a quote, a backslash and a
 * newline. */
Test(metrics_format, finished_run_exact_samples_and_shape, .timeout = 60)
{
    sl_topology_t *t = sl_test_topology(
        "metrics.yaml", NULL,
        "name: \"say \\\"hi\\\" back\\\\slash\\nnewline\"\n"
        "stages:\n"
        "  - name: gen\n"
        "    plugin: generator\n"
        "    config: {count: 100}\n"
        "  - name: keep\n"
        "    plugin: filter\n"
        "    config: {expr: 'country != \"US\"'}\n"
        "  - name: out\n"
        "    plugin: null\n");
    cr_assert_str_eq(t->name, "say \"hi\" back\\slash\nnewline");
    sl_run_t *run = sl_test_run_to_end(t);
    char *m = s_render(run);

    s_expect_line(m, "sluice_run_info{topology=\"say \\\"hi\\\" "
                     "back\\\\slash\\nnewline\"} 1");
    s_expect_line(m, "# TYPE sluice_run_info gauge");
    s_expect_line(m, "sluice_stage_info{stage=\"gen\",plugin=\"generator\","
                     "kind=\"source\",lane=\"thread\"} 1");
    s_expect_line(m, "sluice_stage_info{stage=\"keep\",plugin=\"filter\","
                     "kind=\"transform\",lane=\"thread\"} 1");
    s_expect_line(m, "sluice_stage_info{stage=\"out\",plugin=\"null\","
                     "kind=\"sink\",lane=\"thread\"} 1");
    s_expect_line(m, "# TYPE sluice_records_read_total counter");
    s_expect_line(m, "sluice_records_read_total{stage=\"gen\"} 100");
    s_expect_no(m, "sluice_records_read_total{stage=\"keep\"}");
    s_expect_no(m, "sluice_records_in_total{stage=\"gen\"}");
    s_expect_line(m, "sluice_records_in_total{stage=\"keep\"} 100");
    s_expect_line(m, "sluice_records_out_total{stage=\"keep\"} 87");
    s_expect_line(m, "sluice_records_filtered_total{stage=\"keep\"} 13");
    s_expect_line(m, "sluice_records_in_total{stage=\"out\"} 87");
    s_expect_line(m, "sluice_records_dead_lettered_total{stage=\"keep\"} 0");
    s_expect_line(m, "sluice_retries_total{stage=\"keep\"} 0");
    s_expect_line(m, "sluice_records_spilled_total{stage=\"keep\"} 0");
    s_expect_line(m, "sluice_records_shed_total{stage=\"gen\"} 0");
    s_expect_line(m, "sluice_worker_restarts_total{stage=\"out\"} 0");
    s_expect_line(m, "sluice_queue_depth{stage=\"keep\"} 0");
    s_expect_line(m, "sluice_queue_capacity{stage=\"keep\"} 1024");
    s_expect_line(m, "sluice_workers{stage=\"keep\"} 1");
    s_expect_line(m, "sluice_workers_busy{stage=\"keep\"} 0");
    s_expect_line(m, "# TYPE sluice_link_credit gauge");
    cr_assert_not_null(strstr(m, "\nsluice_link_credit{from=\"gen\","
                                 "to=\"keep\"} "), "%s", m);
    cr_assert_not_null(strstr(m, "\nsluice_link_credit{from=\"keep\","
                                 "to=\"out\"} "), "%s", m);
    /* Sampled one call in SL_HANDLER_SAMPLE: one worker, 100 calls. */
    char want[128];
    snprintf(want, sizeof(want),
             "sluice_handler_seconds_count{stage=\"keep\"} %d",
             100 / SL_HANDLER_SAMPLE);
    s_expect_line(m, want);
    snprintf(want, sizeof(want),
             "sluice_handler_seconds_bucket{stage=\"keep\",le=\"+Inf\"} %d",
             100 / SL_HANDLER_SAMPLE);
    s_expect_line(m, want);
    s_expect_no(m, "sluice_handler_seconds_count{stage=\"gen\"}");
    s_expect_line(m, "# TYPE sluice_latency_seconds histogram");
    s_expect_line(m, "sluice_latency_seconds_count{stage=\"out\"} 87");
    s_expect_line(m, "sluice_latency_seconds_bucket{stage=\"out\","
                     "le=\"+Inf\"} 87");
    s_expect_no(m, "sluice_latency_seconds_count{stage=\"keep\"}");
    cr_assert_not_null(strstr(m, "\nsluice_latency_seconds_bucket{stage="
                                 "\"out\",le=\"0.00001\"} "), "%s", m);
    cr_assert_not_null(strstr(m, "\nsluice_latency_seconds_bucket{stage="
                                 "\"out\",le=\"10\"} "), "%s", m);

    /* 3 run/stage info families, 18 per-stage ones, link credit, 2
     * histograms. */
    cr_assert_eq(s_check_shape(m), 3 + 18 + 1 + 2);
    free(m);
    sl__run_destroy(&run);
    sl__topology_destroy(&t);
}

/* ---- listen addresses --------------------------------------------------- */

static void s_addr_ok(const char *addr, int family, const char *ip,
                      unsigned port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256] = "";
    cr_assert_eq(sl__metrics_addr_parse(addr, &ss, &len, err, sizeof(err)),
                 0, "%s: %s", addr, err);
    cr_assert_eq(ss.ss_family, family, "%s", addr);
    char text[64];
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
        cr_assert_eq(ntohs(in->sin_port), port, "%s", addr);
        cr_assert_eq(len, sizeof(*in));
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
        cr_assert_eq(ntohs(in6->sin6_port), port, "%s", addr);
        cr_assert_eq(len, sizeof(*in6));
    }
    cr_assert_str_eq(text, ip, "%s", addr);
}

static void s_addr_bad(const char *addr, const char *want)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256] = "";
    cr_assert_eq(sl__metrics_addr_parse(addr, &ss, &len, err, sizeof(err)),
                 -EINVAL, "%s accepted", addr);
    cr_assert_str_eq(err, want);
}

Test(metrics_format, listen_addresses)
{
    s_addr_ok("127.0.0.1:9464", AF_INET, "127.0.0.1", 9464);
    s_addr_ok(":9464", AF_INET, "127.0.0.1", 9464); /* loopback */
    s_addr_ok("9464", AF_INET, "127.0.0.1", 9464);
    s_addr_ok("127.0.0.1:0", AF_INET, "127.0.0.1", 0);
    s_addr_ok("0.0.0.0:65535", AF_INET, "0.0.0.0", 65535);
    s_addr_ok("[::1]:9464", AF_INET6, "::1", 9464);
    s_addr_ok("[::]:1", AF_INET6, "::", 1);

    s_addr_bad("127.0.0.1:65536", "address '127.0.0.1:65536': the port must "
               "be a number 0..65535 (0 picks a free one)");
    s_addr_bad("127.0.0.1:", "address '127.0.0.1:': the port must be a "
               "number 0..65535 (0 picks a free one)");
    s_addr_bad("127.0.0.1:-1", "address '127.0.0.1:-1': the port must be a "
               "number 0..65535 (0 picks a free one)");
    s_addr_bad("::1:80", "address '::1:80': an IPv6 address goes in "
               "brackets, as in [::1]:9464");
    s_addr_bad("[::1]80", "address '[::1]80': expected [IPV6]:PORT");
    s_addr_bad("[]:80", "address '[]:80': empty IPv6 address");
    s_addr_bad("[1.2.3.4]:80", "address '[1.2.3.4]:80': cannot resolve "
               "'1.2.3.4': Address family for hostname not supported");
}
