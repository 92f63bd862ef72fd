/* The test stages: null, delay, burn and stdout. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <sluice/stage.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A record with a bit of everything, so that passthrough is checked on
 * more than one type: {"i": i, "s": "x", "f": 0.25, "a": [nil, true],
 * "b": bin(3)}. */
static void s_pack(msgpack_sbuffer *sb, int i)
{
    msgpack_packer pk;

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    msgpack_pack_str_with_body(&pk, "i", 1);
    msgpack_pack_int(&pk, i);
    msgpack_pack_str_with_body(&pk, "s", 1);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_str_with_body(&pk, "f", 1);
    msgpack_pack_double(&pk, 0.25);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_bin_with_body(&pk, "\x00\x01\x02", 3);
}

/* Pushes n records through a transform and checks each comes out
 * byte-identical. Returns the elapsed monotonic ns. */
static uint64_t s_passthrough(sl_harness_t *h, int n)
{
    uint64_t t0 = sl_mono_ns();
    for (int i = 0; i < n; i++) {
        msgpack_sbuffer sb;
        s_pack(&sb, i * 37);
        cr_assert_eq(sl_harness_push_msgpack(h, sb.data, sb.size), 0,
                     "record %d: %s", i, sl_harness_last_error(h));
        msgpack_sbuffer_destroy(&sb);
    }
    uint64_t ns = sl_mono_ns() - t0;
    cr_assert_eq(sl_harness_count(h), (size_t)n);
    cr_assert_eq(sl_harness_errors(h), 0);
    for (int i = 0; i < n; i++) {
        msgpack_sbuffer sb;
        size_t len;
        const void *out = sl_harness_output_msgpack(h, (size_t)i, &len);
        s_pack(&sb, i * 37);
        cr_assert_eq(len, sb.size, "record %d length", i);
        cr_assert_eq(memcmp(out, sb.data, len), 0, "record %d bytes", i);
        msgpack_sbuffer_destroy(&sb);
    }
    return ns;
}

/* ---- null ---- */

Test(null, discards_everything)
{
    sl_harness_t *h = sl_test_harness("null", "", NULL);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(sl_harness_push_json(h, "{\"a\":1}"), 0);
    /* It never decodes, so not even garbage is an error. */
    cr_assert_eq(sl_harness_push_msgpack(h, "\xc1", 1), 0);
    cr_assert_eq(sl_harness_flush(h), 0);
    cr_assert_eq(sl_harness_count(h), 0);
    cr_assert_eq(sl_harness_errors(h), 0);
    sl_harness_destroy(&h);
}

Test(null, takes_no_options)
{
    sl_test_refused("null", "keep: true", NULL, "unknown key 'keep'");
}

/* ---- delay ---- */

Test(delay, holds_each_record_and_passes_it_unchanged)
{
    sl_harness_t *h = sl_test_harness("delay", "ms: 2", NULL);
    uint64_t ns = s_passthrough(h, 25);
    cr_assert_geq(ns, 25 * 2000000u, "25 x 2 ms took %.2f ms", ns / 1e6);
    sl_harness_destroy(&h);
}

Test(delay, fractional_ms)
{
    sl_harness_t *h = sl_test_harness("delay", "ms: 0.5", NULL);
    uint64_t ns = s_passthrough(h, 20);
    cr_assert_geq(ns, 20 * 500000u, "20 x 0.5 ms took %.2f ms", ns / 1e6);
    sl_harness_destroy(&h);
}

Test(delay, jitter_stays_within_bounds)
{
    /* ms 3 +- 1: at least 2 ms per record. */
    sl_harness_t *h = sl_test_harness("delay", "ms: 3\njitter_ms: 1", NULL);
    uint64_t ns = s_passthrough(h, 20);
    cr_assert_geq(ns, 20 * 2000000u, "took %.2f ms", ns / 1e6);
    sl_harness_destroy(&h);
}

Test(delay, config_errors)
{
    sl_test_refused("delay", "", NULL, "'ms' is required");
    sl_test_refused("delay", "ms: -1", NULL,
                    "'ms' must be between 0 and 60000, got -1");
    sl_test_refused("delay", "ms: soon", NULL,
                    "'ms' must be a number, got 'soon'");
    sl_test_refused("delay", "ms: 1\njitter_ms: 99999", NULL,
                    "'jitter_ms' must be between 0 and 60000");
}

/* ---- burn ---- */

Test(burn, spends_time_and_passes_records_unchanged)
{
    sl_harness_t *h = sl_test_harness("burn", "us: 500", NULL);
    uint64_t ns = s_passthrough(h, 20);
    cr_assert_geq(ns, 20 * 500000u, "20 x 500 us took %.2f ms", ns / 1e6);
    sl_harness_destroy(&h);
}

Test(burn, iterations)
{
    sl_harness_t *h = sl_test_harness("burn", "iterations: 100000", NULL);
    s_passthrough(h, 10);
    sl_harness_destroy(&h);
}

Test(burn, config_errors)
{
    sl_test_refused("burn", "", NULL, "one of 'us'");
    sl_test_refused("burn", "us: 1\niterations: 5", NULL,
                    "give either 'us' or 'iterations', not both");
    sl_test_refused("burn", "us: -2", NULL, "'us' must be between 0 and");
    sl_test_refused("burn", "iterations: 1.5", NULL,
                    "'iterations' must be an integer");
    sl_test_refused("burn", "iterations: -1", NULL,
                    "'iterations' must be between 0");
}

/* ---- stdout ---- */

/* Points fd 1 at a file for the rest of this (forked) test. */
static char *s_capture_stdout(void)
{
    char *dir = sl_test_tmpdir();
    static char path[512];
    int fd;

    cr_assert_not_null(dir);
    snprintf(path, sizeof(path), "%s/stdout.txt", dir);
    free(dir);
    fflush(stdout);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    close(fd);
    return path;
}

static char *s_slurp_and_clean(const char *path)
{
    char *text = sl_test_read_file(path, NULL);
    char dir[512];

    cr_assert_not_null(text);
    unlink(path);
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    rmdir(dir);
    return text;
}

Test(stdout, json_lines_buffered_until_flush)
{
    const char *path = s_capture_stdout();
    sl_harness_t *h = sl_test_harness("stdout", "", NULL);
    char *text;

    cr_assert_eq(sl_harness_push_json(h, "{\"a\":1,\"b\":\"x y\"}"), 0);
    cr_assert_eq(sl_harness_push_json(h, "{\"n\":[true,null,{}]}"), 0);
    cr_assert_eq(sl_test_count_lines(path), 0, "nothing written yet");
    cr_assert_eq(sl_harness_flush(h), 0);
    cr_assert_eq(sl_harness_count(h), 0);
    sl_harness_destroy(&h);
    text = s_slurp_and_clean(path);
    cr_assert_str_eq(text, "{\"a\":1,\"b\":\"x y\"}\n"
                           "{\"n\":[true,null,{}]}\n");
    free(text);
}

Test(stdout, pretty)
{
    const char *path = s_capture_stdout();
    sl_harness_t *h = sl_test_harness("stdout", "pretty: true", NULL);
    char *text;

    cr_assert_eq(sl_harness_push_json(h, "{\"a\":1,\"b\":[1,2],\"c\":{},"
                                         "\"d\":\"x,y:{\\\"\"}"),
                 0);
    cr_assert_eq(sl_harness_push_json(h, "{}"), 0);
    sl_harness_destroy(&h); /* fini alone writes what is buffered */
    text = s_slurp_and_clean(path);
    cr_assert_str_eq(text, "{\n"
                           "  \"a\": 1,\n"
                           "  \"b\": [\n"
                           "    1,\n"
                           "    2\n"
                           "  ],\n"
                           "  \"c\": {},\n"
                           "  \"d\": \"x,y:{\\\"\"\n"
                           "}\n"
                           "{}\n");
    free(text);
}

Test(stdout, non_map_record_fails)
{
    const char *path = s_capture_stdout();
    sl_harness_t *h = sl_test_harness("stdout", "", NULL);
    char *text;

    cr_assert_lt(sl_harness_push_msgpack(h, "\x91\x01", 2), 0);
    cr_assert_not_null(strstr(sl_harness_last_error(h),
                              "record is not a msgpack map"));
    cr_assert_eq(sl_harness_push_json(h, "{\"ok\":true}"), 0);
    sl_harness_destroy(&h);
    text = s_slurp_and_clean(path);
    cr_assert_str_eq(text, "{\"ok\":true}\n");
    free(text);
}

Test(stdout, config_errors)
{
    sl_test_refused("stdout", "pretty: maybe", NULL, "pretty");
    sl_test_refused("stdout", "format: csv", NULL, "unknown key 'format'");
}
