/* file_sink: exact file contents for each format, modes, errors; sync()
 * puts everything handled on disk. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(file_sink, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

static char *s_path(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/%s", sl_test_dir(), name);
    return buf;
}

static char *s_read(const char *name, size_t *len)
{
    char *text = sl_test_read_file(s_path(name), len);
    cr_assert_not_null(text, "cannot read %s", name);
    return text;
}

/* Pushes JSON records, flushes, destroys, and returns the file. */
static char *s_write(const char *yaml, const char *const *recs, size_t n,
                     const char *name)
{
    sl_harness_t *h = sl_test_harness("file_sink", yaml, sl_test_dir());
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(sl_harness_push_json(h, recs[i]), 0, "record %zu: %s",
                     i, sl_harness_last_error(h));
    cr_assert_eq(sl_harness_flush(h), 0);
    cr_assert_eq(sl_harness_count(h), 0, "a sink emits nothing");
    sl_harness_destroy(&h);
    return s_read(name, NULL);
}

Test(file_sink, jsonl_exact_lines)
{
    const char *recs[] = {
        "{\"a\":1,\"b\":\"x\"}",
        "{\"n\":null,\"t\":true,\"f\":1.5,\"arr\":[1,\"two\",{\"k\":-3}]}",
        "{\"s\":\"q\\\" b\\\\ n\\n\"}",
    };
    char *text = s_write("path: out.jsonl", recs, 3, "out.jsonl");
    cr_assert_str_eq(text,
                     "{\"a\":1,\"b\":\"x\"}\n"
                     "{\"n\":null,\"t\":true,\"f\":1.5,\"arr\":[1,\"two\","
                     "{\"k\":-3}]}\n"
                     "{\"s\":\"q\\\" b\\\\ n\\n\"}\n");
    free(text);
}

Test(file_sink, jsonl_fields_project_in_order)
{
    const char *recs[] = {"{\"a\":1,\"b\":2,\"c\":3}",
                          "{\"c\":3,\"u\":{\"id\":7}}"};
    char *text = s_write("path: p.jsonl\nfields: [b, a, u.id, zz]", recs, 2,
                         "p.jsonl");
    cr_assert_str_eq(text, "{\"b\":2,\"a\":1}\n{\"u.id\":7}\n");
    free(text);
}

Test(file_sink, csv_exact_with_quoting)
{
    const char *recs[] = {
        "{\"id\":1,\"name\":\"plain\",\"score\":2.5,\"ok\":true,"
        "\"tags\":[\"a\",\"b\"],\"meta\":{\"k\":\"v\"},"
        "\"user\":{\"city\":\"Oslo\"}}",
        "{\"id\":-2,\"name\":\"comma, here\",\"score\":1.0,\"ok\":false,"
        "\"tags\":[],\"meta\":null}",
        "{\"id\":3,\"name\":\"say \\\"hi\\\"\",\"score\":1e300}",
        "{\"id\":4,\"name\":\"line\\nbreak\\r\",\"extra\":9}",
    };
    char *text = s_write("path: t.csv\n"
                         "fields: [id, name, score, ok, tags, meta, "
                         "missing, user.city]",
                         recs, 4, "t.csv");
    cr_assert_str_eq(text,
                     "id,name,score,ok,tags,meta,missing,user.city\n"
                     "1,plain,2.5,true,\"[\"\"a\"\",\"\"b\"\"]\","
                     "\"{\"\"k\"\":\"\"v\"\"}\",,Oslo\n"
                     "-2,\"comma, here\",1.0,false,[],,,\n"
                     "3,\"say \"\"hi\"\"\",1e+300,,,,,\n"
                     "4,\"line\nbreak\r\",,,,,,\n");
    free(text);
}

Test(file_sink, csv_header_quoted)
{
    const char *recs[] = {"{\"x,y\":\"v\",\"q\\\"\":1}"};
    char *text = s_write("path: h.csv\nfields: ['x,y', 'q\"']", recs, 1,
                         "h.csv");
    cr_assert_str_eq(text, "\"x,y\",\"q\"\"\"\nv,1\n");
    free(text);
}

Test(file_sink, csv_append_writes_header_once)
{
    const char *r1[] = {"{\"a\":1,\"b\":\"x\"}"};
    const char *r2[] = {"{\"a\":2,\"b\":\"y\"}"};
    char *text = s_write("path: a.csv\nfields: [a, b]\nmode: append", r1, 1,
                         "a.csv");
    cr_assert_str_eq(text, "a,b\n1,x\n", "new file gets the header");
    free(text);
    text = s_write("path: a.csv\nfields: [a, b]\nmode: append", r2, 1,
                   "a.csv");
    cr_assert_str_eq(text, "a,b\n1,x\n2,y\n");
    free(text);
    text = s_write("path: a.csv\nfields: [a, b]", r2, 1, "a.csv");
    cr_assert_str_eq(text, "a,b\n2,y\n", "truncate starts over");
    free(text);
    cr_assert_eq(sl_test_write_file(s_path("empty.csv"), ""), 0);
    text = s_write("path: empty.csv\nfields: [a, b]\nmode: append", r1, 1,
                   "empty.csv");
    cr_assert_str_eq(text, "a,b\n1,x\n", "empty file gets the header");
    free(text);
}

Test(file_sink, jsonl_append_and_truncate)
{
    const char *recs[] = {"{\"a\":1}"};
    char *text;

    cr_assert_eq(sl_test_write_file(s_path("m.jsonl"), "old\n"), 0);
    text = s_write("path: m.jsonl\nmode: append", recs, 1, "m.jsonl");
    cr_assert_str_eq(text, "old\n{\"a\":1}\n");
    free(text);
    text = s_write("path: m.jsonl", recs, 1, "m.jsonl");
    cr_assert_str_eq(text, "{\"a\":1}\n");
    free(text);
}

/* Builds msgpack {"k": i, "s": "v<i>"} into sb. */
static void s_pack(msgpack_sbuffer *sb, int i)
{
    msgpack_packer pk;
    char s[16];
    int n = snprintf(s, sizeof(s), "v%d", i);

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_int(&pk, i);
    msgpack_pack_str_with_body(&pk, "s", 1);
    msgpack_pack_str_with_body(&pk, s, (size_t)n);
}

Test(file_sink, msgpack_bytes_exact_and_ext_detection)
{
    const char *cfgs[] = {"path: r.mpk", "path: r.msgpack",
                          "path: r.bin\nformat: msgpack"};
    const char *names[] = {"r.mpk", "r.msgpack", "r.bin"};

    for (size_t c = 0; c < 3; c++) {
        msgpack_sbuffer all;
        msgpack_sbuffer_init(&all);
        sl_harness_t *h = sl_test_harness("file_sink", cfgs[c], sl_test_dir());
        for (int i = 0; i < 5; i++) {
            msgpack_sbuffer one;
            msgpack_sbuffer_init(&one);
            s_pack(&one, i * 1000);
            cr_assert_eq(sl_harness_push_msgpack(h, one.data, one.size), 0);
            msgpack_sbuffer_write(&all, one.data, one.size);
            msgpack_sbuffer_destroy(&one);
        }
        cr_assert_eq(sl_harness_flush(h), 0);
        sl_harness_destroy(&h);
        size_t len;
        char *got = s_read(names[c], &len);
        cr_assert_eq(len, all.size, "%s: %zu bytes, want %zu", names[c],
                     len, all.size);
        cr_assert_eq(memcmp(got, all.data, len), 0, "%s differs", names[c]);
        free(got);
        msgpack_sbuffer_destroy(&all);
    }
}

Test(file_sink, msgpack_fields_projection)
{
    const char *recs[] = {"{\"a\":1,\"b\":\"x\",\"c\":true}"};
    sl_harness_t *h = sl_test_harness("file_sink",
                                      "path: p.mpk\nfields: [c, a]",
                                      sl_test_dir());
    size_t len;
    char *got;

    cr_assert_eq(sl_harness_push_json(h, recs[0]), 0);
    sl_harness_destroy(&h); /* fini alone must write the buffer out */
    got = s_read("p.mpk", &len);
    /* {"c": true, "a": 1} */
    const char want[] = "\x82\xa1" "c" "\xc3\xa1" "a" "\x01";
    cr_assert_eq(len, sizeof(want) - 1);
    cr_assert_eq(memcmp(got, want, len), 0);
    free(got);
}

Test(file_sink, ndjson_extension_is_jsonl)
{
    const char *recs[] = {"{\"a\":[]}"};
    char *text = s_write("path: x.ndjson", recs, 1, "x.ndjson");
    cr_assert_str_eq(text, "{\"a\":[]}\n");
    free(text);
}

Test(file_sink, buffer_larger_than_one_write)
{
    /* ~2.5 MB through a 256 KiB buffer: several full writes plus a tail. */
    sl_harness_t *h = sl_test_harness("file_sink", "path: big.jsonl",
                                      sl_test_dir());
    char rec[256];
    const int n = 20000;
    char *text;

    for (int i = 0; i < n; i++) {
        snprintf(rec, sizeof(rec),
                 "{\"i\":%d,\"pad\":\"0123456789012345678901234567890123456"
                 "789012345678901234567890123456789012345678901234567\"}",
                 i);
        cr_assert_eq(sl_harness_push_json(h, rec), 0);
    }
    cr_assert_eq(sl_harness_flush(h), 0);
    sl_harness_destroy(&h);
    cr_assert_eq(sl_test_count_lines(s_path("big.jsonl")), n);
    text = s_read("big.jsonl", NULL);
    cr_assert_eq(strncmp(text, "{\"i\":0,\"pad\":\"0123", 18), 0);
    cr_assert_not_null(strstr(text, "\n{\"i\":19999,\"pad\":\"0123"));
    cr_assert_not_null(strstr(text, "\n{\"i\":10000,\"pad\":\"0123"));
    free(text);
}

Test(file_sink, flush_every_writes_early)
{
    sl_harness_t *h = sl_test_harness("file_sink",
                                      "path: fe.jsonl\nflush_every: 2",
                                      sl_test_dir());
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":1}"), 0);
    cr_assert_eq(sl_test_count_lines(s_path("fe.jsonl")), 0,
                 "one record stays buffered");
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":2}"), 0);
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":3}"), 0);
    cr_assert_eq(sl_test_count_lines(s_path("fe.jsonl")), 2);
    cr_assert_eq(sl_harness_flush(h), 0);
    cr_assert_eq(sl_test_count_lines(s_path("fe.jsonl")), 3);
    sl_harness_destroy(&h);
}

Test(file_sink, fsync_option_writes_at_flush)
{
    sl_harness_t *h = sl_test_harness("file_sink",
                                      "path: s.jsonl\nfsync: true",
                                      sl_test_dir());
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":1}"), 0);
    cr_assert_eq(sl_test_count_lines(s_path("s.jsonl")), 0);
    cr_assert_eq(sl_harness_flush(h), 0);
    cr_assert_eq(sl_test_count_lines(s_path("s.jsonl")), 1);
    sl_harness_destroy(&h);
}

Test(file_sink, missing_directory_is_named)
{
    char want[4200];
    snprintf(want, sizeof(want), "directory '%s/nope/sub' does not exist",
             sl_test_dir());
    sl_test_refused("file_sink", "path: nope/sub/out.jsonl", sl_test_dir(),
                    want);
    sl_test_refused("file_sink", "path: nope/sub/out.jsonl", sl_test_dir(),
                    "cannot open '");
}

Test(file_sink, write_error_fails_the_record)
{
    char err[1024];
    sl_harness_t *h = sl_harness_new("file_sink",
                                     "path: /dev/full\nflush_every: 1",
                                     NULL, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
    sl_test_fail_log_t f = {0};
    sl_harness_on_fail(h, sl_test_on_fail, &f);
    cr_assert_lt(sl_harness_push_json(h, "{\"a\":1}"), 0);
    cr_assert_eq(sl_harness_errors(h), 1);
    cr_assert_not_null(strstr(sl_harness_last_error(h),
                              "cannot write '/dev/full': No space left on "
                              "device"),
                       "%s", sl_harness_last_error(h));
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.final, 0, "a full disk may pass: the record is retried");
    sl_harness_destroy(&h);
}

Test(file_sink, non_map_record_fails_at_once_in_every_format)
{
    static const struct {
        const char *cfg, *file, *want;
    } cases[] = {
        {"path: nm.jsonl", "nm.jsonl", "{\"ok\":1}\n"},
        {"path: nm.csv\nfields: [ok]", "nm.csv", "ok\n1\n"},
        {"path: nm.mpk\nfields: [ok]", "nm.mpk", "\x81\xa2ok\x01"},
        {"path: nm2.mpk", "nm2.mpk", "\x81\xa2ok\x01"},
    };
    const char arr[] = "\x91\x01"; /* [1] */

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        sl_harness_t *h = sl_test_harness("file_sink", cases[c].cfg,
                                          sl_test_dir());
        sl_test_fail_log_t f = {0};
        sl_harness_on_fail(h, sl_test_on_fail, &f);
        cr_assert_lt(sl_harness_push_msgpack(h, arr, 2), 0, "%s",
                     cases[c].cfg);
        cr_assert_eq(f.n, 1);
        cr_assert_str_eq(f.msg, "record is not a msgpack map", "%s",
                         cases[c].cfg);
        cr_assert_eq(f.final, 1, "%s: retried", cases[c].cfg);
        cr_assert_eq(sl_harness_push_json(h, "{\"ok\":1}"), 0, "goes on");
        cr_assert_eq(sl_harness_errors(h), 1);
        sl_harness_destroy(&h);
        size_t len;
        char *got = s_read(cases[c].file, &len);
        cr_assert_eq(len, strlen(cases[c].want), "%s: %zu bytes",
                     cases[c].cfg, len);
        cr_assert_eq(memcmp(got, cases[c].want, len), 0, "%s: %s",
                     cases[c].cfg, got);
        free(got);
    }
}

/* Raw msgpack output is the records' own bytes: one that is not exactly
 * one well-formed map (what a buggy upstream plugin can emit: the host
 * checks only its first byte) would make every reader of the file stop or
 * resynchronise there. Each is dead-lettered on its first attempt with its
 * bytes, and the file holds exactly the good records. */
Test(file_sink, msgpack_malformed_records_dead_lettered_not_written)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
    } bad[] = {
        {"map then the unused byte 0xc1", "\x81\xa1k\xc1", 4},
        {"map of 2 pairs holding 1", "\x82\xa1" "a\x01", 4},
        {"two maps", "\x81\xa1" "a\x01\x81\xa1" "b\x02", 8},
        {"map then a cut string", "\x81\xa1k\xa5" "ab", 6},
        {"map32 header claiming 2^32-1 pairs", "\xdf\xff\xff\xff\xff", 5},
        {"array [1]", "\x91\x01", 2},
        {"a lone 0xc1", "\xc1", 1},
        {"no bytes", "", 0},
    };
    const size_t nbad = sizeof(bad) / sizeof(bad[0]);
    sl_harness_t *h = sl_test_harness("file_sink", "path: g.mpk",
                                      sl_test_dir());
    sl_test_fail_log_t f = {0};
    msgpack_sbuffer good;

    msgpack_sbuffer_init(&good);
    sl_harness_on_fail(h, sl_test_on_fail, &f);
    for (size_t i = 0; i <= nbad; i++) {
        msgpack_sbuffer one;
        msgpack_sbuffer_init(&one);
        s_pack(&one, (int)i);
        cr_assert_eq(sl_harness_push_msgpack(h, one.data, one.size), 0,
                     "good record %zu: %s", i, sl_harness_last_error(h));
        msgpack_sbuffer_write(&good, one.data, one.size);
        msgpack_sbuffer_destroy(&one);
        if (i == nbad)
            break;
        cr_assert_lt(sl_harness_push_msgpack(h, bad[i].bytes, bad[i].len), 0,
                     "%s: accepted", bad[i].what);
        cr_assert_eq(f.n, (int)i + 1, "%s", bad[i].what);
        cr_assert_str_eq(f.msg, "record is not a msgpack map", "%s",
                         bad[i].what);
        cr_assert_eq(f.final, 1, "%s: would be retried", bad[i].what);
        cr_assert_eq(f.rec_len, bad[i].len, "%s: record kept", bad[i].what);
        cr_assert_eq(memcmp(f.rec, bad[i].bytes, bad[i].len), 0, "%s",
                     bad[i].what);
    }
    cr_assert_eq(sl_harness_errors(h), nbad);
    cr_assert_eq(sl_harness_flush(h), 0);
    sl_harness_destroy(&h);

    size_t len;
    char *got = s_read("g.mpk", &len);
    cr_assert_eq(len, good.size, "%zu bytes, want %zu", len, good.size);
    cr_assert_eq(memcmp(got, good.data, len), 0, "g.mpk differs");
    free(got);
    msgpack_sbuffer_destroy(&good);
}

/* Nesting past limits.max_depth fails for good, with the limit as the
 * reason, and nothing of the record is written. */
Test(file_sink, msgpack_record_deeper_than_the_limit_not_written)
{
    sl_harness_t *h = sl_test_harness("file_sink", "path: d.mpk",
                                      sl_test_dir());
    sl_test_fail_log_t f = {0};

    sl_harness_on_fail(h, sl_test_on_fail, &f);
    sl_harness_set_limits(h, 0, 3);
    /* {"a":{"b":{"c":{}}}}: 4 maps deep */
    cr_assert_lt(sl_harness_push_msgpack(h, "\x81\xa1" "a\x81\xa1" "b\x81"
                                            "\xa1" "c\x80", 10),
                 0);
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.final, 1);
    cr_assert_not_null(strstr(f.msg, "record nested deeper than "
                                     "limits.max_depth (3)"),
                       "%s", f.msg);
    /* {"a":{}} */
    cr_assert_eq(sl_harness_push_msgpack(h, "\x81\xa1" "a\x80", 4), 0);
    sl_harness_destroy(&h);
    size_t len;
    char *got = s_read("d.mpk", &len);
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(got, "\x81\xa1" "a\x80", 4), 0);
    free(got);
}

/* The same through a real run: a plugin upstream emits bytes that are not
 * one map; the sink dead-letters each on its first attempt although its
 * retry policy allows three, and a later run reads every good record back
 * from the file (none hides behind bad bytes). */
Test(file_sink, run_dead_letters_malformed_records_without_retry,
     .timeout = 60)
{
    cr_assert_eq(sl_test_write_file(s_path("in.jsonl"),
                                    "{\"i\":1}\n"
                                    "{\"i\":2,\"do\":\"bad_byte\"}\n"
                                    "{\"i\":3,\"do\":\"truncated\"}\n"
                                    "{\"i\":4,\"do\":\"two_maps\"}\n"
                                    "{\"i\":5}\n"),
                 0);
    /* garbage (a test plugin) emits the bytes named by `do`. */
    cr_assert_eq(sl_test_write_file(s_path("w.yaml"),
                                    "stages:\n"
                                    "  - name: src\n"
                                    "    plugin: file_source\n"
                                    "    config: {path: in.jsonl}\n"
                                    "  - name: gb\n"
                                    "    plugin: garbage\n"
                                    "    config: {report: false}\n"
                                    "  - name: out\n"
                                    "    plugin: file_sink\n"
                                    "    config: {path: out.mpk}\n"
                                    "    retry: {max_attempts: 3, "
                                    "backoff_ms: 1}\n"
                                    "    dead_letter: out.dl.jsonl\n"),
                 0);
    cr_assert_eq(sl_test_write_file(s_path("r.yaml"),
                                    "stages:\n"
                                    "  - name: src\n"
                                    "    plugin: file_source\n"
                                    "    config: {path: out.mpk}\n"
                                    "  - name: out\n"
                                    "    plugin: file_sink\n"
                                    "    config: {path: back.jsonl}\n"),
                 0);
    char cmd[8192];
    char *log = NULL;
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && SLUICE_PLUGIN_PATH='%s/tests/plugins' '%s' run "
             "w.yaml 2>&1",
             sl_test_dir(), SL_TEST_BINARY_DIR, sl_test_cli());
    int code = sl_test_run(cmd, &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    cr_assert_not_null(strstr(log, "records: 5 read, 2 delivered, 0 "
                                   "filtered, 3 dead-lettered"),
                       "%s", log);
    cr_assert_not_null(strstr(log, "(0 retries)"), "%s", log);
    free(log);

    /* Each entry: attempts 1, the reason, and the bytes as they came. */
    static const char *const b64[] = {"gaFrwQ==", "gqFhAQ==",
                                      "gaFhAYGhYgI="};
    char *dl = s_read("out.dl.jsonl", NULL);
    cr_assert_eq(sl_test_count_lines(s_path("out.dl.jsonl")), 3, "%s", dl);
    for (size_t i = 0; i < 3; i++) {
        char want[256];
        snprintf(want, sizeof(want),
                 "\"error\":\"record is not a msgpack map\","
                 "\"record_msgpack_b64\":\"%s\"}\n", b64[i]);
        const char *at = strstr(dl, want);
        cr_assert_not_null(at, "no entry for %s in:\n%s", b64[i], dl);
        const char *line = at;
        while (line > dl && line[-1] != '\n')
            line--;
        const char *att = strstr(line, "\"attempts\":");
        cr_assert(att && att < at, "%s", dl);
        cr_assert_eq(strncmp(att, "\"attempts\":1,", 13), 0, "%s", dl);
    }
    free(dl);

    size_t len;
    char *got = s_read("out.mpk", &len);
    cr_assert_eq(len, 8);
    cr_assert_eq(memcmp(got, "\x81\xa1i\x01\x81\xa1i\x05", 8), 0);
    free(got);

    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' run r.yaml 2>&1",
             sl_test_dir(), sl_test_cli());
    code = sl_test_run(cmd, &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    free(log);
    char *back = s_read("back.jsonl", NULL);
    cr_assert_str_eq(back, "{\"i\":1}\n{\"i\":5}\n");
    free(back);
}

Test(file_sink, config_errors)
{
    sl_test_refused("file_sink", "format: jsonl", sl_test_dir(),
                    "'path' is required");
    sl_test_refused("file_sink", "path: ''", sl_test_dir(),
                    "'path' must not be empty");
    sl_test_refused("file_sink", "path: o.txt\nformat: xml", sl_test_dir(),
                    "'format' must be jsonl, csv or msgpack, got 'xml'");
    sl_test_refused("file_sink", "path: o.txt\nmode: overwrite", sl_test_dir(),
                    "'mode' must be truncate or append, got 'overwrite'");
    sl_test_refused("file_sink", "path: o.csv", sl_test_dir(),
                    "format csv needs 'fields'");
    sl_test_refused("file_sink", "path: o.txt\nformat: csv", sl_test_dir(),
                    "format csv needs 'fields'");
    sl_test_refused("file_sink", "path: o.txt\nfields: a", sl_test_dir(),
                    "'fields' must be a list");
    sl_test_refused("file_sink", "path: o.txt\nfields: []", sl_test_dir(),
                    "'fields' must name at least one");
    sl_test_refused("file_sink", "path: o.txt\nfields: [a, [b]]",
                    sl_test_dir(), "'fields' entry 2 must be");
    sl_test_refused("file_sink", "path: o.txt\nflush_every: -1", sl_test_dir(),
                    "'flush_every' must be >= 0");
    sl_test_refused("file_sink", "path: o.txt\ncolour: red", sl_test_dir(),
                    "unknown key 'colour'");
}

/* ---- sync ----------------------------------------------------------------- */

/* The file as the kernel has it, read with open/read while the sink still
 * holds it open. The caller frees. */
static char *s_read_raw(const char *name)
{
    int fd = open(s_path(name), O_RDONLY);
    cr_assert_geq(fd, 0);
    size_t len = 0, cap = 4096;
    char *text = malloc(cap);
    for (;;) {
        if (cap - len < 1024)
            text = realloc(text, cap *= 2);
        ssize_t n = read(fd, text + len, cap - len - 1);
        cr_assert_geq(n, 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    text[len] = '\0';
    return text;
}

static void s_expect_raw(const char *name, const char *want)
{
    char *text = s_read_raw(name);
    cr_assert_str_eq(text, want);
    free(text);
}

Test(file_sink, sync_puts_every_record_in_the_file)
{
    sl_harness_t *h = sl_test_harness("file_sink", "path: y.jsonl",
                                      sl_test_dir());
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":1}"), 0);
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":2}"), 0);
    s_expect_raw("y.jsonl", ""); /* buffered: no write per record */
    cr_assert_eq(sl_harness_sync(h), 0);
    s_expect_raw("y.jsonl", "{\"a\":1}\n{\"a\":2}\n");
    cr_assert_eq(sl_harness_sync(h), 0, "nothing new: still fine");
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":3}"), 0);
    cr_assert_eq(sl_harness_sync(h), 0);
    s_expect_raw("y.jsonl", "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
    sl_harness_destroy(&h);
    s_expect_raw("y.jsonl", "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
}

Test(file_sink, sync_csv_with_header_and_fsync)
{
    sl_harness_t *h = sl_test_harness(
        "file_sink", "path: y.csv\nfields: [a, b]\nfsync: true",
        sl_test_dir());
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":1,\"b\":\"x,y\"}"), 0);
    s_expect_raw("y.csv", "");
    cr_assert_eq(sl_harness_sync(h), 0);
    s_expect_raw("y.csv", "a,b\n1,\"x,y\"\n");
    sl_harness_destroy(&h);
}

Test(file_sink, sync_write_error_fails)
{
    sl_harness_t *h = sl_test_harness("file_sink", "path: /dev/full",
                                      sl_test_dir());
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":1}"), 0, "buffered");
    cr_assert_eq(sl_harness_sync(h), -ENOSPC);
    sl_harness_destroy(&h);
}

/* A child writes n records, syncs if asked, and is killed with SIGKILL:
 * what reached the file is what survives. */
static void s_killed_after(int sync, const char *want)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sl_harness_t *h = sl_test_harness("file_sink", "path: k.jsonl",
                                          sl_test_dir());
        for (int i = 0; i < 3; i++) {
            char rec[32];
            snprintf(rec, sizeof(rec), "{\"i\":%d}", i);
            if (sl_harness_push_json(h, rec) != 0)
                _exit(2);
        }
        if (sync && sl_harness_sync(h) != 0)
            _exit(3);
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    cr_assert_eq(sl_test_wait_exit(pid, 30), 128 + SIGKILL);
    s_expect_raw("k.jsonl", want);
}

Test(file_sink, synced_records_survive_sigkill)
{
    s_killed_after(1, "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n");
}

Test(file_sink, unsynced_records_die_with_the_process)
{
    /* The control for the test above: without sync nothing was written. */
    s_killed_after(0, "");
}
