/* file_source: exact records for every format, budgets, bad input counted
 * with FILE:LINE messages while good input still comes out. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(file_source, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

static const char *s_path(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/%s", sl_test_dir(), name);
    return buf;
}

static void s_write_bin(const char *name, const void *data, size_t len)
{
    FILE *f = fopen(s_path(name), "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void s_write(const char *name, const char *text)
{
    s_write_bin(name, text, strlen(text));
}

/* All outputs, one per line. The caller frees. */
static char *s_outputs(const sl_harness_t *h)
{
    size_t total = 1;
    for (size_t i = 0; i < sl_harness_count(h); i++)
        total += strlen(sl_harness_output(h, i)) + 1;
    char *s = malloc(total), *w = s;
    for (size_t i = 0; i < sl_harness_count(h); i++)
        w += sprintf(w, "%s\n", sl_harness_output(h, i));
    *w = '\0';
    return s;
}

/* Runs a source over its whole file and checks output and error count. */
static sl_harness_t *s_run(const char *yaml, const char *want,
                           size_t errors)
{
    sl_harness_t *h = sl_test_harness("file_source", yaml, sl_test_dir());
    cr_assert_eq(sl_harness_pull_all(h, 64, 100000), 0, "pull: %s",
                 sl_harness_last_error(h));
    char *got = s_outputs(h);
    cr_expect_str_eq(got, want, "got:\n%s\nwant:\n%s", got, want);
    free(got);
    cr_expect_eq(sl_harness_errors(h), errors, "errors %zu, last: %s",
                 sl_harness_errors(h), sl_harness_last_error(h));
    return h;
}

static void s_expect_last_error(sl_harness_t *h, const char *want)
{
    const char *e = sl_harness_last_error(h);
    cr_expect_not_null(strstr(e, want), "error '%s' lacks '%s'", e, want);
}

/* ---- lines --------------------------------------------------------------- */

Test(file_source, lines_crlf_blank_and_no_final_newline)
{
    s_write("in.txt", "alpha\r\nbeta\n\n  spaced \t\nlast");
    sl_harness_t *h = s_run("path: in.txt",
                            "{\"line\":\"alpha\"}\n"
                            "{\"line\":\"beta\"}\n"
                            "{\"line\":\"\"}\n"
                            "{\"line\":\"  spaced \\t\"}\n"
                            "{\"line\":\"last\"}\n",
                            0);
    cr_expect_eq(sl_harness_read(h), 5);
    sl_harness_destroy(&h);
}

Test(file_source, lines_with_position)
{
    s_write("pos.log", "one\ntwo\n");
    char want[8192];
    int n = snprintf(want, sizeof(want),
             "{\"line\":\"one\",\"file\":\"%s\",\"lineno\":1}\n"
             "{\"line\":\"two\",\"file\":\"%s\",\"lineno\":2}\n",
             s_path("pos.log"), s_path("pos.log"));
    /* Using the length is also what tells gcc -O2 truncation is handled. */
    cr_assert(n > 0 && (size_t)n < sizeof(want), "expected text truncated");
    sl_harness_t *h = s_run("path: pos.log\nwith_position: true", want, 0);
    sl_harness_destroy(&h);
}

Test(file_source, empty_files_give_nothing)
{
    const char *names[] = {"e.txt", "e.jsonl", "e.csv", "e.msgpack"};
    for (size_t i = 0; i < 4; i++) {
        char yaml[128];
        s_write(names[i], "");
        snprintf(yaml, sizeof(yaml), "path: %s", names[i]);
        sl_harness_t *h = s_run(yaml, "", 0);
        cr_expect_eq(sl_harness_read(h), 0, "%s", names[i]);
        sl_harness_destroy(&h);
    }
}

Test(file_source, budget_is_respected_and_position_kept)
{
    s_write("b.txt", "1\n2\n3\n4\n5\n");
    sl_harness_t *h = sl_test_harness("file_source", "path: b.txt",
                                      sl_test_dir());
    /* One call with budget 2: exactly two records, not at the end yet. */
    cr_assert_eq(sl_harness_pull_all(h, 2, 1), -ETIMEDOUT);
    cr_assert_eq(sl_harness_count(h), 2);
    /* Budget 1: one record per call, reading on where it stopped. */
    cr_assert_eq(sl_harness_pull_all(h, 1, 2), -ETIMEDOUT);
    cr_assert_eq(sl_harness_count(h), 4);
    cr_assert_str_eq(sl_harness_output(h, 2), "{\"line\":\"3\"}");
    cr_assert_str_eq(sl_harness_output(h, 3), "{\"line\":\"4\"}");
    cr_assert_eq(sl_harness_pull_all(h, 1, 3), 0);
    cr_assert_eq(sl_harness_count(h), 5);
    cr_assert_str_eq(sl_harness_output(h, 4), "{\"line\":\"5\"}");
    /* After the end, pulling again stays at the end. */
    cr_assert_eq(sl_harness_pull_all(h, 10, 1), 0);
    cr_assert_eq(sl_harness_count(h), 5);
    sl_harness_destroy(&h);
}

Test(file_source, budget_one_for_every_format)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < 3; i++) {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "i", 1);
        msgpack_pack_int(&pk, i);
    }
    s_write_bin("b.mpk", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    s_write("b.jsonl", "{\"i\":0}\n\n{\"i\":1}\n{\"i\":2}\n");
    s_write("b.csv", "i\n0\n1\n\n2\n");

    const char *yamls[] = {"path: b.mpk", "path: b.jsonl", "path: b.csv"};
    for (size_t f = 0; f < 3; f++) {
        sl_harness_t *h = sl_test_harness("file_source", yamls[f],
                                          sl_test_dir());
        for (size_t i = 1; i <= 3; i++) {
            cr_assert_eq(sl_harness_pull_all(h, 1, 1), -ETIMEDOUT, "%s",
                         yamls[f]);
            cr_assert_eq(sl_harness_count(h), i, "%s", yamls[f]);
        }
        cr_assert_eq(sl_harness_pull_all(h, 1, 1), 0, "%s", yamls[f]);
        char *got = s_outputs(h);
        cr_expect_str_eq(got,
                         f == 2 ? "{\"i\":\"0\"}\n{\"i\":\"1\"}\n{\"i\":\"2\"}\n"
                                : "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n",
                         "%s: %s", yamls[f], got);
        free(got);
        sl_harness_destroy(&h);
    }
}

Test(file_source, long_lines_over_max_line_are_input_errors)
{
    s_write("long.txt", "ok1\n0123456789X\n0123456789\nok2");
    sl_harness_t *h = s_run("path: long.txt\nmax_line: 10",
                            "{\"line\":\"ok1\"}\n"
                            "{\"line\":\"0123456789\"}\n"
                            "{\"line\":\"ok2\"}\n",
                            1);
    s_expect_last_error(h, "long.txt:2: line longer than max_line (10 bytes)");
    cr_expect_eq(sl_harness_read(h), 4);
    sl_harness_destroy(&h);
}

Test(file_source, lines_longer_than_the_read_buffer)
{
    /* 300 KB fits max_line (the buffer grows past its 256 KiB start);
     * 700 KB does not and is skipped without being held in memory. */
    size_t big = 300 * 1000, huge = 700 * 1000;
    size_t len = 4 + big + 1 + huge + 1 + 4;
    char *text = malloc(len + 1), *w = text;
    w += sprintf(w, "ok1\n");
    memset(w, 'b', big);
    w += big;
    *w++ = '\n';
    memset(w, 'h', huge);
    w += huge;
    *w++ = '\n';
    w += sprintf(w, "ok2\n");
    s_write_bin("big.txt", text, (size_t)(w - text));
    free(text);

    sl_harness_t *h = sl_test_harness("file_source",
                                      "path: big.txt\nmax_line: 500000",
                                      sl_test_dir());
    cr_assert_eq(sl_harness_pull_all(h, 64, 100), 0);
    cr_assert_eq(sl_harness_count(h), 3);
    cr_expect_str_eq(sl_harness_output(h, 0), "{\"line\":\"ok1\"}");
    const char *b = sl_harness_output(h, 1);
    cr_expect_eq(strlen(b), big + strlen("{\"line\":\"\"}"));
    cr_expect_eq(strspn(b + 9, "b"), big);
    cr_expect_str_eq(sl_harness_output(h, 2), "{\"line\":\"ok2\"}");
    cr_expect_eq(sl_harness_errors(h), 1);
    s_expect_last_error(h, "big.txt:3: line longer than max_line (500000 "
                           "bytes)");
    sl_harness_destroy(&h);
}

/* ---- jsonl --------------------------------------------------------------- */

Test(file_source, jsonl_good_lines_and_errors_naming_file_and_line)
{
    s_write("d.jsonl", "{\"a\":1,\"b\":\"x\"}\r\n"
                       "\n"
                       "   \n"
                       "[1,2]\n"
                       "{\"z\":1.5,\"a\":[null,true]}\n"
                       "{\"a\": tru}\n"
                       "{\"last\":\"no newline\"}");
    sl_harness_t *h = s_run("path: d.jsonl",
                            "{\"a\":1,\"b\":\"x\"}\n"
                            "{\"z\":1.5,\"a\":[null,true]}\n"
                            "{\"last\":\"no newline\"}\n",
                            2);
    s_expect_last_error(h, "d.jsonl:6: invalid JSON: column 9: ");
    /* Blank lines are skipped, not counted as input. */
    cr_expect_eq(sl_harness_read(h), 5);
    sl_harness_destroy(&h);

    s_write("n.ndjson", "{\"ok\":1}\n\"just a string\"\n");
    h = s_run("path: n.ndjson", "{\"ok\":1}\n", 1);
    s_expect_last_error(h, "n.ndjson:2: expected a JSON object, got a string");
    sl_harness_destroy(&h);
}

Test(file_source, jsonl_with_position_appends_fields)
{
    s_write("p.json", "{\"a\":1}\n\n{}\n");
    char want[8192];
    int n = snprintf(want, sizeof(want),
             "{\"a\":1,\"file\":\"%s\",\"lineno\":1}\n"
             "{\"file\":\"%s\",\"lineno\":3}\n",
             s_path("p.json"), s_path("p.json"));
    cr_assert(n > 0 && (size_t)n < sizeof(want), "expected text truncated");
    sl_harness_t *h = s_run("path: p.json\nwith_position: true", want, 0);
    sl_harness_destroy(&h);
}

Test(file_source, format_option_overrides_extension)
{
    s_write("data.txt", "{\"a\":1}\n");
    sl_harness_t *h = s_run("path: data.txt\nformat: jsonl", "{\"a\":1}\n",
                            0);
    sl_harness_destroy(&h);
    h = s_run("path: data.txt", "{\"line\":\"{\\\"a\\\":1}\"}\n", 0);
    sl_harness_destroy(&h);
}

/* ---- csv ----------------------------------------------------------------- */

Test(file_source, csv_header_quotes_multiline_and_crlf)
{
    s_write("t.csv", "id,name,note\r\n"
                     "1,plain,\"a, b\"\r\n"
                     "\r\n"
                     "2,\"say \"\"hi\"\"\",\"two\r\nlines\"\r\n"
                     "3,short\r\n"
                     " 4 , padded ,\"\"\r\n"
                     "5,last,x");
    sl_harness_t *h = s_run("path: t.csv",
                            "{\"id\":\"1\",\"name\":\"plain\",\"note\":\"a, b\"}\n"
                            "{\"id\":\"2\",\"name\":\"say \\\"hi\\\"\","
                            "\"note\":\"two\\r\\nlines\"}\n"
                            "{\"id\":\"4\",\"name\":\"padded\",\"note\":\"\"}\n"
                            "{\"id\":\"5\",\"name\":\"last\",\"note\":\"x\"}\n",
                            1);
    s_expect_last_error(h, "t.csv:6: expected 3 fields, got 2");
    sl_harness_destroy(&h);
}

Test(file_source, csv_row_errors_name_the_row_start_line)
{
    s_write("m.csv", "a,b\n"
                     "1,\"multi\nline\",extra\n"
                     "2,3\n"
                     "x\"y,4\n"
                     "5,6\n");
    sl_harness_t *h = s_run("path: m.csv",
                            "{\"a\":\"2\",\"b\":\"3\"}\n"
                            "{\"a\":\"5\",\"b\":\"6\"}\n",
                            2);
    s_expect_last_error(h, "m.csv:5: invalid CSV: misplaced quote character");
    sl_harness_destroy(&h);

    s_write("w.csv", "a,b\n1,\"multi\nline\",extra\n");
    h = s_run("path: w.csv", "", 1);
    s_expect_last_error(h, "w.csv:2: expected 2 fields, got 3");
    sl_harness_destroy(&h);

    s_write("u.csv", "a,b\n1,2\n3,\"open\nnever closed\n");
    h = s_run("path: u.csv", "{\"a\":\"1\",\"b\":\"2\"}\n", 1);
    s_expect_last_error(h, "u.csv:3: unterminated quoted field");
    sl_harness_destroy(&h);
}

Test(file_source, csv_configured_header_delimiter_quote_position)
{
    s_write("s.txt", "1;'a;b'\n2;'it''s'\n");
    char want[8192];
    int n = snprintf(want, sizeof(want),
             "{\"n\":\"1\",\"s\":\"a;b\",\"file\":\"%s\",\"lineno\":1}\n"
             "{\"n\":\"2\",\"s\":\"it's\",\"file\":\"%s\",\"lineno\":2}\n",
             s_path("s.txt"), s_path("s.txt"));
    cr_assert(n > 0 && (size_t)n < sizeof(want), "expected text truncated");
    sl_harness_t *h = s_run("path: s.txt\nformat: csv\nheader: [n, s]\n"
                            "delimiter: ';'\nquote: \"'\"\n"
                            "with_position: true",
                            want, 0);
    sl_harness_destroy(&h);
}

Test(file_source, csv_from_the_data_dir_relative_path)
{
    char err[2048];
    sl_harness_t *h = sl_harness_new("file_source",
                                     "path: file_source_sample.csv",
                                     SL_TEST_DATA_DIR, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
    cr_assert_eq(sl_harness_pull_all(h, 64, 100), 0);
    char *got = s_outputs(h);
    cr_expect_str_eq(got,
                     "{\"city\":\"Oslo\",\"country\":\"Norway\","
                     "\"population\":\"709037\"}\n"
                     "{\"city\":\"Washington, D.C.\",\"country\":\"USA\","
                     "\"population\":\"689545\"}\n"
                     "{\"city\":\"Quote \\\"Town\\\"\",\"country\":\"Nowhere\","
                     "\"population\":\"0\"}\n",
                     "%s", got);
    free(got);
    cr_expect_eq(sl_harness_errors(h), 1);
    s_expect_last_error(h, "file_source_sample.csv:5: expected 3 fields, got 2");
    sl_harness_destroy(&h);
}

/* ---- msgpack ------------------------------------------------------------- */

static void s_pack_map(msgpack_packer *pk, const char *k, int v)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_int(pk, v);
}

Test(file_source, msgpack_maps_non_maps_and_truncation)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    s_pack_map(&pk, "a", 1);             /* bytes 0..3 */
    msgpack_pack_array(&pk, 1);          /* byte 4: not a map */
    msgpack_pack_int(&pk, 7);
    size_t before = sb.size;             /* 6 */
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "s", 1);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_str_with_body(&pk, "f", 1);
    msgpack_pack_double(&pk, 2.5);
    size_t trunc_at = sb.size;
    s_pack_map(&pk, "cut", 300);
    cr_assert_eq(before, 6);
    /* Drop the last two bytes: the final map is truncated. */
    s_write_bin("r.msgpack", sb.data, sb.size - 2);
    msgpack_sbuffer_destroy(&sb);

    sl_harness_t *h = s_run("path: r.msgpack",
                            "{\"a\":1}\n{\"s\":\"x\",\"f\":2.5}\n", 2);
    char want[128];
    snprintf(want, sizeof(want),
             "r.msgpack: byte %zu: truncated msgpack value at end of file",
             trunc_at);
    s_expect_last_error(h, want);
    sl_harness_destroy(&h);
}

Test(file_source, msgpack_non_map_message_and_invalid_byte)
{
    const unsigned char data[] = {0x81, 0xa1, 'k', 0x01, /* {"k":1} */
                                  0x92, 0x01, 0x02,      /* [1,2] */
                                  0x81, 0xa1, 'k', 0xc1, /* 0xc1 at 10 */
                                  0x81, 0xa1, 'k', 0x02};
    s_write_bin("x.mpk", data, 4 + 3);
    sl_harness_t *h = s_run("path: x.mpk", "{\"k\":1}\n", 1);
    s_expect_last_error(h, "x.mpk: byte 4: expected a msgpack map, got an "
                           "array");
    sl_harness_destroy(&h);

    s_write_bin("y.mpk", data, sizeof(data));
    h = s_run("path: y.mpk", "{\"k\":1}\n", 2);
    s_expect_last_error(h, "y.mpk: byte 10: invalid msgpack data (byte "
                           "0xc1); rest of file skipped");
    sl_harness_destroy(&h);
}

Test(file_source, msgpack_too_deep_is_refused)
{
    unsigned char data[64];
    size_t n = 0;
    data[n++] = 0x81; /* {"d": [[[...]]]} : 1 map + 32 arrays = 33 */
    data[n++] = 0xa1;
    data[n++] = 'd';
    for (int i = 0; i < 32; i++)
        data[n++] = 0x91;
    data[n++] = 0x01;
    s_write_bin("deep.mpk", data, n);
    sl_harness_t *h = s_run("path: deep.mpk", "", 1);
    s_expect_last_error(h, "deep.mpk: byte 34: msgpack value nested deeper "
                           "than 32 levels");
    sl_harness_destroy(&h);
}

/* ---- config and open errors ---------------------------------------------- */

Test(file_source, missing_file_fails_init_naming_path)
{
    char want[4200];
    snprintf(want, sizeof(want), "cannot open '%s': No such file or "
                                 "directory", s_path("nope.txt"));
    sl_test_refused("file_source", "path: nope.txt", sl_test_dir(), want);
    sl_test_refused("file_source", "path: .", sl_test_dir(), "Is a directory");
}

Test(file_source, config_errors)
{
    sl_test_refused("file_source", "format: lines", sl_test_dir(),
                    "'path' is required");
    sl_test_refused("file_source", "path: a.txt\nformat: xml", sl_test_dir(),
                    "'format' must be lines, jsonl, csv or msgpack, got "
                    "'xml'");
    sl_test_refused("file_source", "path: a.txt\nheader: [a]", sl_test_dir(),
                    "'header' applies to format csv only (the format here is "
                    "lines)");
    sl_test_refused("file_source", "path: a.csv\ndelimiter: ';;'",
                    sl_test_dir(), "'delimiter' must be a single character");
    sl_test_refused("file_source", "path: a.csv\ndelimiter: '\"'",
                    sl_test_dir(), "'quote' and 'delimiter' must differ");
    sl_test_refused("file_source", "path: a.csv\nheader: []", sl_test_dir(),
                    "'header' must be a non-empty list");
    sl_test_refused("file_source", "path: a.txt\nmax_line: 0", sl_test_dir(),
                    "'max_line' must be between 1");
    sl_test_refused("file_source", "path: a.mpk\nwith_position: true",
                    sl_test_dir(),
                    "'with_position' is not available for format msgpack");
    sl_test_refused("file_source", "path: a.txt\nbogus: 1", sl_test_dir(),
                    "bogus");
}
