/* `sluice tune` through the CLI: a real zmq_source -> delay -> zmq_sink
 * topology measured at 1 and 2 workers (rows, recommendation, CPU budget),
 * and the topologies it refuses. */
#include "testutil.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tune, .init = sl_test_tmpdir_setup, .fini = sl_test_tmpdir_teardown,
          .timeout = 120);

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int s_cli(const char *args, char **out, char **err)
{
    char *cmd = NULL, *errpath = NULL;
    cr_assert_gt(asprintf(&errpath, "%s/stderr.txt", sl_test_dir()), 0);
    cr_assert_gt(asprintf(&cmd, "cd '%s' && '%s' %s 2>'%s'", sl_test_dir(),
                          sl_test_cli(), args, errpath), 0);
    int code = sl_test_run(cmd, out);
    cr_assert_not_null(*out);
    *err = sl_test_read_file(errpath, NULL);
    cr_assert_not_null(*err);
    free(cmd);
    free(errpath);
    return code;
}

static void s_write(const char *name, const char *text)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    cr_assert_eq(sl_test_write_file(p, text), 0);
    free(p);
}

Test(tune, measures_each_size_and_recommends)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "name: tunable\n"
             "stages:\n"
             "  - name: in\n"
             "    plugin: zmq_source\n"
             "    config: {endpoint: \"tcp://127.0.0.1:%d\"}\n"
             "  - name: slow\n"
             "    plugin: delay\n"
             "    from: [in]\n"
             "    config: {ms: 2}\n"
             "  - name: out\n"
             "    plugin: zmq_sink\n"
             "    from: [slow]\n"
             "    config: {endpoint: \"tcp://127.0.0.1:%d\"}\n",
             s_free_port(), s_free_port());
    s_write("t.yaml", yaml);
    s_write("s.yaml", "rate: {constant: {rate: 300/s, duration: 1s}}\n"
                      "fields: {id: {seq: {}}}\n");
    char *out, *err;
    cr_assert_eq(s_cli("trace synth s.yaml -o s.trace", &out, &err), 0, "%s",
                 err);
    free(out);
    free(err);
    int code = s_cli("tune t.yaml --stage slow --trace s.trace "
                     "--max-workers 2", &out, &err);
    cr_assert_eq(code, 0, "%s\n%s", out, err);
    cr_assert(!strncmp(out, "tuning stage 'slow' of t.yaml with s.trace, 1 "
                            "to 2 workers\n\n"
                            "WORKERS   THROUGHPUT/s        P99     GAIN\n"
                            "      1 ", 100), "%s", out);
    const char *row2 = strstr(out, "\n      2 ");
    cr_assert(row2, "%s", out);
    /* Each row has a throughput: the 300 records over about a second. */
    double tp1 = strtod(out + strlen("tuning stage 'slow' of t.yaml with "
                                     "s.trace, 1 to 2 workers\n\nWORKERS   "
                                     "THROUGHPUT/s        P99     GAIN\n"
                                     "      1 "),
                        NULL);
    double tp2 = strtod(row2 + 9, NULL);
    cr_assert(tp1 > 100 && tp1 < 400, "%s", out);
    cr_assert(tp2 > 100 && tp2 < 400, "%s", out);
    cr_assert(strstr(out, "\nrecommended: "), "%s", out);
    cr_assert(strstr(out, " for stage 'slow' (the smallest within 5% of the "
                          "best, "), "%s", out);
    cr_assert(strstr(out, "\nCPU budget: "), "%s", out);
    free(out);
    free(err);
}

Test(tune, refuses_what_it_cannot_drive)
{
    s_write("plain.yaml", "stages:\n"
                          "  - name: gen\n"
                          "    plugin: generator\n"
                          "    config: {count: 10}\n"
                          "  - name: out\n"
                          "    plugin: \"null\"\n"
                          "    from: [gen]\n");
    s_write("x.trace", "");
    char *out, *err;
    cr_assert_eq(s_cli("tune plain.yaml --stage out --trace x.trace", &out,
                       &err), 2);
    cr_assert(strstr(err, "plain.yaml has no zmq_source stage with an "
                          "endpoint"), "%s", err);
    free(out);
    free(err);
    cr_assert_eq(s_cli("tune plain.yaml --stage nope --trace x.trace", &out,
                       &err), 2);
    cr_assert(strstr(err, "sluice tune: plain.yaml has no stage 'nope'"),
              "%s", err);
    free(out);
    free(err);
    cr_assert_eq(s_cli("tune plain.yaml --trace x.trace", &out, &err), 2);
    cr_assert(strstr(err, "give TOPOLOGY.yaml, --stage S and --trace TRACE"),
              "%s", err);
    free(out);
    free(err);
}
