/* The engine of `sluice test`: test files to cases (with FILE:LINE:COL for
 * bad ones), YAML values to msgpack, the matching rules and their failure
 * messages, one-stage and topology cases; and that a case which must fail
 * is reported as failing. */
#include <criterion/criterion.h>

#include "stagetest.h"
#include "stagetest_int.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(stagetest, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

/* ---- helpers ------------------------------------------------------------- */

static sl_stest_file_t *s_parse(const char *text)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_stest_file_t *f =
        sl__stest_parse("t_test.yaml", sl_test_dir(), text, &diag);
    cr_assert_not_null(f, "refused:\n%s", sl_test_diag_text(&diag));
    sl__diag_fini(&diag);
    return f;
}

/* Asserts that text is refused with (at least) the line want. */
static void s_bad(const char *text, const char *want)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_stest_file_t *f =
        sl__stest_parse("t_test.yaml", sl_test_dir(), text, &diag);
    cr_assert_null(f, "accepted, expected: %s", want);
    sl_test_expect_line(&diag, want);
    sl__diag_fini(&diag);
}

/* Runs case 0 of text; the caller finishes res. */
static void s_run(const char *text, sl_stest_result_t *res)
{
    sl_stest_file_t *f = s_parse(text);
    int rc = sl__stest_run_case(f, 0, res);
    cr_assert_eq(rc, 0, "case could not run:\n%s",
                 sl_test_diag_text(&res->reasons));
    sl__stest_destroy(&f);
}

static void s_passes(const char *text)
{
    sl_stest_result_t res;
    s_run(text, &res);
    cr_assert(res.passed, "expected a pass, got:\n%s\nit produced:\n%s",
              sl_test_diag_text(&res.reasons),
              res.outputs ? res.outputs : "");
    sl__stest_result_fini(&res);
}

/* Asserts that case 0 fails with exactly the reasons in want (NULL-ended),
 * in that order. */
static void s_fails(const char *text, const char *const *want)
{
    sl_stest_result_t res;
    s_run(text, &res);
    cr_assert(!res.passed, "expected a failure");
    size_t n = 0;
    while (want[n])
        n++;
    cr_assert_eq(res.reasons.count, n, "expected %zu reasons, got:\n%s", n,
                 sl_test_diag_text(&res.reasons));
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(res.reasons.lines[i], want[i], "reason %zu; all:\n%s",
                         i + 1, sl_test_diag_text(&res.reasons));
    sl__stest_result_fini(&res);
}

#define FAILS(text, ...)                                                       \
    do {                                                                       \
        static const char *const want_[] = {__VA_ARGS__, NULL};                \
        s_fails(text, want_);                                                  \
    } while (0)

/* A case of the fields stage (a pass-through: it only sets `_`, dropped
 * again) fed `input` and expecting `expect`. */
#define PASS_THROUGH                                                           \
    "tests:\n"                                                                 \
    "  - name: c\n"                                                            \
    "    stage: {plugin: fields, config: {drop: [_]}}\n"

/* ---- YAML values to msgpack ---------------------------------------------- */

static void s_expect_pack(const char *yaml, const char *hex)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    char *text = NULL;
    cr_assert(asprintf(&text, "v: %s\n", yaml) > 0);
    sl_config_doc_t *doc =
        sl__config_doc_parse("v.yaml", NULL, text, strlen(text), &diag);
    free(text);
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&diag));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = sl__stest_pack(sl_config_get(sl__config_doc_root(doc), "v"), &pk);
    cr_assert_eq(rc, 0, "%s", yaml);
    char got[256] = "";
    for (size_t i = 0; i < sb.size && i < 100; i++)
        sprintf(got + 2 * i, "%02x", (unsigned char)sb.data[i]);
    cr_expect_str_eq(got, hex, "%s: got %s", yaml, got);
    msgpack_sbuffer_destroy(&sb);
    sl__config_doc_destroy(&doc);
    sl__diag_fini(&diag);
}

Test(stagetest, yaml_values_keep_their_types)
{
    s_expect_pack("1", "01");
    s_expect_pack("\"1\"", "a131");
    s_expect_pack("'1'", "a131");
    s_expect_pack("-2", "fe");
    s_expect_pack("1.0", "cb3ff0000000000000");
    s_expect_pack("18446744073709551615", "cfffffffffffffffff");
    s_expect_pack("true", "c3");
    s_expect_pack("~", "c0");
    s_expect_pack("!!binary AAEC", "c403000102");
    s_expect_pack("\"x\"", "a178");
    s_expect_pack("[1, [a]]", "920191a161");
    s_expect_pack("{a: null}", "81a161c0");
    s_expect_pack("!!str 12", "a23132");
}

/* ---- bad test files ------------------------------------------------------ */

Test(stagetest, bad_files_name_file_line_and_column)
{
    s_bad("tests:\n"
          "  - name: a\n"
          "    stage: {plugin: fields, config: {drop: [x]}}\n"
          "    inptu: []\n",
          "t_test.yaml:4:5: test 'a': unknown key 'inptu' in a test "
          "(accepted: name, stage, topology, inject, files, input, expect, "
          "stop_after, timeout)");
    s_bad("tests:\n"
          "  - stage: {plugin: fields}\n",
          "t_test.yaml:2:5: a test needs 'name'");
    s_bad("tests:\n"
          "  - {name: a, stage: {plugin: fields}}\n"
          "  - {name: a, stage: {plugin: fields}}\n",
          "t_test.yaml:3:12: duplicate test name 'a' (first at 2:12)");
    s_bad("tests:\n"
          "  - name: a\n"
          "    stage: {plugin: fields}\n"
          "    topology: t.yaml\n",
          "t_test.yaml:4:15: test 'a': give 'stage' (one stage) or "
          "'topology', not both");
    s_bad("tests:\n"
          "  - name: a\n",
          "t_test.yaml:2:5: test 'a': needs 'stage' (one stage) or "
          "'topology' (a whole topology)");
    s_bad("tests:\n"
          "  - name: a\n"
          "    stage: {plugin: fields}\n"
          "    input: [{a: 1}, 7]\n",
          "t_test.yaml:4:21: test 'a': input record 2 must be a map (a "
          "record), got an integer");
    s_bad("tests:\n"
          "  - name: a\n"
          "    stage: {plugin: fields}\n"
          "    expect:\n"
          "      where: [{field: x, matches: 'a(b'}]\n",
          "t_test.yaml:5:35: test 'a': 'matches': invalid regular "
          "expression 'a(b': Unmatched ( or \\(");
    s_bad("tests:\n"
          "  - name: a\n"
          "    stage: {plugin: fields}\n"
          "    expect:\n"
          "      where: [{field: x, type: integer}]\n",
          "t_test.yaml:5:32: test 'a': 'type' must be one of int, float, "
          "string, bool, null, map, array, binary; got 'integer'");
    s_bad("tests:\n"
          "  - name: a\n"
          "    stage: {plugin: fields}\n"
          "    expect:\n"
          "      where: [{field: x}]\n",
          "t_test.yaml:5:15: test 'a': a 'where' condition needs one of "
          "equals, type, matches, exists, gt, ge, lt, le");
    s_bad("tests:\n"
          "  - name: a\n"
          "    stage: {plugin: fields}\n"
          "    input: [{b: !!binary 'A*'}]\n",
          "t_test.yaml:4:17: !!binary value is not valid base64");
    s_bad("tests:\n"
          "  - name: a\n"
          "    stage: {plugin: generator, config: {count: 1}}\n"
          "    input: [{a: 1}]\n",
          "t_test.yaml:4:12: test 'a': 'generator' is a source: it is pulled "
          "to its end, so the case takes no 'input'");
    s_bad("tests:\n"
          "  - name: a\n"
          "    stage: {plugin: fields}\n"
          "    files: {../x: hi}\n",
          "t_test.yaml:4:13: test 'a': file '../x' must be a relative path "
          "inside the case's folder (no leading '/', no '..')");
    s_bad("tests:\n"
          "  - name: a\n"
          "    stage: {plugin: fields}\n"
          "    expect: {count: -1, stdout: [x]}\n",
          "t_test.yaml:4:21: test 'a': 'count' must be an integer from 0 up, "
          "got -1");
    s_bad("tests:\n"
          "  - name: a\n"
          "    stage: {plugin: fields}\n"
          "    expect: {count: -1, stdout: [x]}\n",
          "t_test.yaml:4:33: test 'a': the content of file 'stdout' must be "
          "a string, got a sequence");
    s_bad("tests:\n"
          "  - name: a\n"
          "    stage: {plugin: fields}\n"
          "    timeout: soon\n",
          "t_test.yaml:4:14: test 'a': 'timeout' must be a duration such as "
          "500ms, 10s or 2m, got 'soon'");
    s_bad("tests: {}\n", "t_test.yaml:1:8: 'tests' must be a list, got a map");
    s_bad("tests: []\n", "t_test.yaml:1:8: 'tests' is empty");
    s_bad("", "t_test.yaml:1:1: a test file needs a 'tests' list");
    s_bad("tests:\n  - name: [\n", "t_test.yaml:3:1: did not find expected "
          "node content (while parsing a flow node)");
}

Test(stagetest, bad_topology_cases_name_the_stage)
{
    char *topo = NULL;
    cr_assert(asprintf(&topo, "%s/t.yaml", sl_test_dir()) > 0);
    cr_assert_eq(sl_test_write_file(topo,
                                     "stages:\n"
                                     "  - {name: gen, plugin: generator, "
                                     "config: {count: 1}}\n"
                                     "  - {name: a, plugin: fields, "
                                     "config: {drop: [x]}}\n"
                                     "  - {name: b, plugin: \"null\"}\n"
                                     "  - {name: side, plugin: \"null\", "
                                     "from: gen}\n"),
                 0);
    free(topo);
    s_bad("tests:\n"
          "  - name: t\n"
          "    topology: t.yaml\n"
          "    inject: nope\n",
          "t_test.yaml:4:13: test 't': inject: no stage 'nope' in topology "
          "'t' (it has gen, a, b, side)");
    s_bad("tests:\n"
          "  - name: t\n"
          "    topology: t.yaml\n"
          "    inject: a\n"
          "    expect: {side: {count: 0}, zz: {count: 1}}\n",
          "t_test.yaml:5:14: test 't': expect: stage 'side' is not downstream "
          "of 'a': nothing injected reaches it");
    s_bad("tests:\n"
          "  - name: t\n"
          "    topology: t.yaml\n"
          "    inject: a\n"
          "    expect: {side: {count: 0}, zz: {count: 1}}\n",
          "t_test.yaml:5:32: test 't': expect: no stage 'zz' in topology 't' "
          "(it has gen, a, b, side)");
    s_bad("tests:\n"
          "  - name: t\n"
          "    topology: t.yaml\n"
          "    inject: gen\n",
          "t_test.yaml:4:13: test 't': inject: source 'gen' feeds 2 stages; "
          "inject into one of them");
    s_bad("tests:\n"
          "  - name: t\n"
          "    topology: t.yaml\n",
          "t_test.yaml:2:5: test 't': a topology case needs 'inject': the "
          "stage its input enters");
    s_bad("tests:\n"
          "  - name: t\n"
          "    topology: t.yaml\n"
          "    inject: a\n"
          "    expect: {b: {records: [1]}}\n",
          "t_test.yaml:5:28: test 't': expected record 1 must be a map (a "
          "record), got an integer");
}

/* ---- records: exact, type-aware ------------------------------------------ */

Test(stagetest, exact_records_pass)
{
    s_passes(PASS_THROUGH
             "    input:\n"
             "      - {a: 1, b: \"1\", c: 1.0, d: [true, null], e: {f: x}}\n"
             "      - {a: -5}\n"
             "    expect:\n"
             "      records:\n"
             "        - {e: {f: x}, d: [true, null], c: 1.0, b: \"1\", a: 1}\n"
             "        - {a: -5}\n");
}

Test(stagetest, equality_is_type_aware)
{
    FAILS(PASS_THROUGH
          "    input: [{s: \"200\", i: 1, f: 1.0, n: null}]\n"
          "    expect:\n"
          "      records: [{s: 200, i: 1.0, f: 1, n: \"null\"}]\n",
          "record 1: field \"s\": expected 200 (int), got \"200\" (string)",
          "record 1: field \"i\": expected 1.0 (float), got 1 (int)",
          "record 1: field \"f\": expected 1 (int), got 1.0 (float)",
          "record 1: field \"n\": expected \"null\" (string), got null "
          "(null)");
}

Test(stagetest, nested_missing_and_extra_fields)
{
    FAILS(PASS_THROUGH
          "    input: [{u: {name: Ann, tags: [a, b]}, extra: 5}]\n"
          "    expect:\n"
          "      records: [{u: {name: Bob, tags: [a, c], age: 3}}]\n",
          "record 1: field \"u.name\": expected \"Bob\" (string), got "
          "\"Ann\" (string)",
          "record 1: field \"u.tags[1]\": expected \"c\" (string), got "
          "\"b\" (string)",
          "record 1: field \"u.age\": expected 3 (int), got nothing (no such "
          "field)",
          "record 1: unexpected field \"extra\": 5 (int)");
}

Test(stagetest, ordered_by_default_for_one_stage)
{
    FAILS(PASS_THROUGH
          "    input: [{n: 1}, {n: 2}, {n: 3}]\n"
          "    expect:\n"
          "      records: [{n: 2}, {n: 1}]\n",
          "expected 2 records, got 3",
          "record 1: field \"n\": expected 2 (int), got 1 (int)",
          "record 2: field \"n\": expected 1 (int), got 2 (int)",
          "output 3: unexpected record {\"n\":3}");
    FAILS(PASS_THROUGH
          "    input: [{n: 1}]\n"
          "    expect:\n"
          "      records: [{n: 1}, {n: 2}]\n",
          "expected 2 records, got 1", "record 2: missing: expected {\"n\":2}");
}

Test(stagetest, unordered_when_asked)
{
    s_passes(PASS_THROUGH
             "    input: [{n: 1}, {n: 2}, {n: 2}]\n"
             "    expect:\n"
             "      ordered: false\n"
             "      records: [{n: 2}, {n: 1}, {n: 2}]\n");
    FAILS(PASS_THROUGH
          "    input: [{n: 1}, {n: 2}, {n: 3, x: 1}]\n"
          "    expect:\n"
          "      ordered: false\n"
          "      records: [{n: 2}, {n: 3}, {n: 1}]\n",
          "record 2: no output matches {\"n\":3}; closest is output 3: "
          "unexpected field \"x\": 1 (int)");
    FAILS(PASS_THROUGH
          "    input: [{n: 1}, {n: 5}]\n"
          "    expect:\n"
          "      ordered: false\n"
          "      records: [{n: 1}]\n",
          "expected 1 record, got 2", "output 2: unexpected record {\"n\":5}");
}

Test(stagetest, count_and_where_conditions)
{
    s_passes(PASS_THROUGH
             "    input:\n"
             "      - {n: 5, s: /a, f: 2.5, m: {k: 1}, bin: !!binary AAEC}\n"
             "      - {n: 7, s: /b, f: 3.0, m: {k: 1}, bin: !!binary AAEC}\n"
             "    expect:\n"
             "      count: 2\n"
             "      where:\n"
             "        - {field: n, type: int, gt: 4, ge: 5, lt: 8, le: 7}\n"
             "        - {field: s, matches: '^/[a-z]$'}\n"
             "        - {field: f, gt: 2, lt: 3.5, type: float}\n"
             "        - {field: m.k, equals: 1}\n"
             "        - {field: m, equals: {k: 1}, type: map}\n"
             "        - {field: bin, type: binary, equals: !!binary AAEC}\n"
             "        - {field: gone, exists: false}\n"
             "        - {field: n, exists: true}\n");
    FAILS(PASS_THROUGH
          "    input:\n"
          "      - {n: 5, s: x, f: \"3\", gone: 1}\n"
          "    expect:\n"
          "      count: 2\n"
          "      where:\n"
          "        - {field: n, gt: 5}\n"
          "        - {field: n, le: 4.5, equals: 5.0}\n"
          "        - {field: s, matches: '^/', type: binary}\n"
          "        - {field: f, lt: 10}\n"
          "        - {field: gone, exists: false}\n"
          "        - {field: m.k, equals: 1}\n",
          "expected 2 records, got 1",
          "output 1: field \"n\": expected > 5, got 5 (int)",
          "output 1: field \"n\": expected 5.0 (float), got 5 (int)",
          "output 1: field \"n\": expected <= 4.5, got 5 (int)",
          "output 1: field \"s\": expected type binary, got \"x\" (string)",
          "output 1: field \"s\": expected a string matching \"^/\", got "
          "\"x\" (string)",
          "output 1: field \"f\": expected < 10, got \"3\" (string)",
          "output 1: field \"gone\": expected no such field, got 1 (int)",
          "output 1: field \"m.k\": expected it to exist, got nothing (no such "
          "field)");
}

Test(stagetest, big_integers_compare_exactly)
{
    s_passes(PASS_THROUGH
             "    input: [{u: 18446744073709551615, i: -9223372036854775808}]\n"
             "    expect:\n"
             "      records: [{u: 18446744073709551615, "
             "i: -9223372036854775808}]\n"
             "      where:\n"
             "        - {field: u, gt: 18446744073709551614}\n"
             "        - {field: i, lt: -9223372036854775807}\n");
}

/* ---- dead letters -------------------------------------------------------- */

#define CASTS                                                                  \
    "tests:\n"                                                                 \
    "  - name: c\n"                                                            \
    "    stage: {plugin: fields, config: {cast: {n: int}}}\n"                  \
    "    input: [{n: \"1\"}, {n: x}, {n: 2.5}, {n: \"3\"}]\n"

Test(stagetest, dead_letters_pass)
{
    s_passes(CASTS "    expect:\n"
                   "      records: [{n: 1}, {n: 3}]\n"
                   "      dead_letters:\n"
                   "        - {error: 'cast n to int: \"x\"', retry: false,\n"
                   "           record: {n: x}}\n"
                   "        - 'is not an integer'\n");
}

Test(stagetest, unexpected_and_wrong_dead_letters_fail)
{
    FAILS(CASTS "    expect:\n"
                "      records: [{n: 1}, {n: 3}]\n",
          "expected 0 dead letters, got 2",
          "dead letter 1: unexpected: \"cast n to int: \\\"x\\\" is not an "
          "integer\"",
          "dead letter 2: unexpected: \"cast n to int: 2.5 is not an "
          "integer\"");
    FAILS(CASTS "    expect:\n"
                "      records: [{n: 1}, {n: 3}]\n"
                "      dead_letters:\n"
                "        - {error: 'not a number'}\n"
                "        - {retry: true}\n"
                "        - {record: {n: 7}}\n",
          "expected 3 dead letters, got 2",
          "dead letter 1: expected an error containing \"not a number\", got "
          "\"cast n to int: \\\"x\\\" is not an integer\"",
          "dead letter 2: expected a retryable error (retry: true), got a "
          "final one: \"cast n to int: 2.5 is not an integer\"",
          "dead letter 3: missing: expected a dead letter");
    FAILS(CASTS "    expect:\n"
                "      records: [{n: 1}, {n: 3}]\n"
                "      dead_letters: [{record: {n: y}}, {}]\n",
          "dead letter 1: record: field \"n\": expected \"y\" (string), got "
          "\"x\" (string)");
}

#define MISBEHAVE SL_TEST_BINARY_DIR "/tests/plugins/misbehave.so"

Test(stagetest, failed_records_leave_no_output)
{
    /* the stage emits the record and then fails it: what it emitted is
     * dropped, as a run drops it */
    s_passes("tests:\n"
             "  - name: c\n"
             "    stage:\n"
             "      plugin: " MISBEHAVE "\n"
             "      config: {fail_when: bad, emit_before_fail: true}\n"
             "    input: [{bad: true}, {ok: 1}]\n"
             "    expect:\n"
             "      records: [{ok: 1}]\n"
             "      dead_letters: [{error: 'bad is true (attempt 1)', "
             "retry: true, record: {bad: true}}]\n");
    s_passes("tests:\n"
             "  - name: c\n"
             "    stage:\n"
             "      plugin: " MISBEHAVE "\n"
             "      config: {fail_when: bad, fail_final: true}\n"
             "    input: [{bad: true}]\n"
             "    expect:\n"
             "      count: 0\n"
             "      dead_letters: [{error: 'bad is true, for good', "
             "retry: false}]\n");
}

/* ---- sources, files, stdout, start errors -------------------------------- */

Test(stagetest, source_files_and_tmp)
{
    s_passes("tests:\n"
             "  - name: c\n"
             "    files:\n"
             "      sub/in.jsonl: |\n"
             "        {\"a\":1}\n"
             "        oops\n"
             "    stage:\n"
             "      plugin: file_source\n"
             "      config: {path: \"${TMP}/sub/in.jsonl\", "
             "with_position: true}\n"
             "    expect:\n"
             "      records: [{a: 1, file: \"${TMP}/sub/in.jsonl\", "
             "lineno: 1}]\n"
             "      dead_letters: [{error: 'in.jsonl:2: invalid JSON', "
             "retry: false}]\n");
}

Test(stagetest, sink_files_and_stdout)
{
    s_passes("tests:\n"
             "  - name: c\n"
             "    stage: {plugin: file_sink, config: {path: "
             "\"${TMP}/o.jsonl\"}}\n"
             "    input: [{a: 1}, {b: !!binary AAEC}]\n"
             "    expect:\n"
             "      files:\n"
             "        o.jsonl: |\n"
             "          {\"a\":1}\n"
             "          {\"b\":\"AAEC\"}\n");
    FAILS("tests:\n"
          "  - name: c\n"
          "    stage: {plugin: file_sink, config: {path: \"${TMP}/o.jsonl\"}}\n"
          "    input: [{a: 1}, {a: 2}]\n"
          "    expect:\n"
          "      files:\n"
          "        o.jsonl: |\n"
          "          {\"a\":1}\n"
          "          {\"a\":3}\n"
          "        missing.txt: x\n"
          "      stdout: \"\"\n",
          "file \"o.jsonl\": line 2: expected \"{\\\"a\\\":3}\", got "
          "\"{\\\"a\\\":2}\"",
          "file \"missing.txt\": not found (No such file or directory)");
    FAILS("tests:\n"
          "  - name: c\n"
          "    stage: {plugin: stdout}\n"
          "    input: [{a: 1}]\n"
          "    expect: {stdout: \"{\\\"a\\\":1}\"}\n",
          "stdout: expected no final newline");
    s_passes("tests:\n"
             "  - name: c\n"
             "    stage: {plugin: stdout}\n"
             "    input: [{a: 1}]\n"
             "    expect: {stdout: \"{\\\"a\\\":1}\\n\"}\n");
}

Test(stagetest, start_errors)
{
    s_passes("tests:\n"
             "  - name: c\n"
             "    stage: {plugin: fields, config: {cast: {a: integer}}}\n"
             "    expect: {start_error: \"unknown type 'integer'\"}\n");
    FAILS("tests:\n"
          "  - name: c\n"
          "    stage: {plugin: fields, config: {cast: {a: integer}}}\n",
          "the stage did not start: t_test.yaml:3:48: fields: cast: unknown "
          "type 'integer' for 'a' (expected int, float, string or bool)");
    FAILS("tests:\n"
          "  - name: c\n"
          "    stage: {plugin: fields, config: {cast: {a: int}}}\n"
          "    expect: {start_error: nope}\n",
          "expected the stage to refuse to start with an error containing "
          "\"nope\", but it started");
    sl_stest_result_t res;
    s_run("tests:\n"
          "  - name: c\n"
          "    stage: {plugin: no_such_stage}\n",
          &res);
    cr_assert(!res.passed);
    cr_expect_eq(res.reasons.count, 1);
    sl_test_expect_prefix(&res.reasons, "the stage did not start: unknown "
                          "plugin 'no_such_stage': no no_such_stage.so in ");
    sl__stest_result_fini(&res);
}

Test(stagetest, stop_after_ends_an_endless_source)
{
    s_passes("tests:\n"
             "  - name: c\n"
             "    stage: {plugin: generator, config: {count: 1000000000,\n"
             "                                  template: {n: $seq}}}\n"
             "    stop_after: 10\n"
             "    expect:\n"
             "      where: [{field: n, lt: 1000}]\n");
}

/* ---- topologies ---------------------------------------------------------- */

static void s_topology(void)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/topo.yaml", sl_test_dir()) > 0);
    cr_assert_eq(
        sl_test_write_file(path,
                           "name: topo\n"
                           "stages:\n"
                           "  - name: read\n"
                           "    plugin: file_source\n"
                           "    config: {path: in.csv}\n"
                           "  - name: types\n"
                           "    plugin: fields\n"
                           "    workers: 2\n"
                           "    config: {cast: {n: int}}\n"
                           "  - name: keep\n"
                           "    plugin: filter\n"
                           "    config: {expr: 'n > 0'}\n"
                           "  - name: write\n"
                           "    plugin: file_sink\n"
                           "    config: {path: out.jsonl}\n"),
        0);
    free(path);
}

Test(stagetest, topology_captures_and_dead_letters)
{
    s_topology();
    s_passes("tests:\n"
             "  - name: c\n"
             "    topology: topo.yaml\n"
             "    inject: types\n"
             "    input: [{n: \"1\"}, {n: x}, {n: \"-2\"}, {n: \"3\"}]\n"
             "    expect:\n"
             "      write:\n"
             "        records: [{n: 3}, {n: 1}]\n"
             "      dead_letters:\n"
             "        - {stage: types, error: 'cast n to int', retry: false,\n"
             "           record: {n: x}}\n");
    /* the sink was a capture: nothing was written */
    char *out = NULL;
    cr_assert(asprintf(&out, "%s/out.jsonl", sl_test_dir()) > 0);
    cr_expect_eq(sl_test_count_lines(out), -1, "%s was written", out);
    free(out);
}

Test(stagetest, topology_capture_cuts_what_follows)
{
    s_topology();
    /* `keep` is a capture: `write` downstream of it does not run, and the
     * source is replaced: in.csv does not even exist */
    s_passes("tests:\n"
             "  - name: c\n"
             "    topology: topo.yaml\n"
             "    inject: read\n"
             "    input: [{n: \"-1\"}]\n"
             "    expect:\n"
             "      keep: {records: [{n: -1}], ordered: true}\n");
    char *out = NULL;
    cr_assert(asprintf(&out, "%s/out.jsonl", sl_test_dir()) > 0);
    cr_expect_eq(sl_test_count_lines(out), -1, "%s was written", out);
    free(out);
}

Test(stagetest, topology_failures_are_precise)
{
    s_topology();
    FAILS("tests:\n"
          "  - name: c\n"
          "    topology: topo.yaml\n"
          "    inject: types\n"
          "    input: [{n: \"1\"}, {n: x}]\n"
          "    expect:\n"
          "      write:\n"
          "        records: [{n: \"1\"}]\n"
          "      dead_letters: [{stage: keep}]\n",
          "stage 'write': record 1: no output matches {\"n\":\"1\"}; closest "
          "is output 1: field \"n\": expected \"1\" (string), got 1 (int)",
          "dead letter 1: none matches; closest: expected stage 'keep', got "
          "stage 'types': \"cast n to int: \\\"x\\\" is not an integer\"");
    sl_stest_result_t res;
    s_run("tests:\n"
          "  - name: c\n"
          "    topology: gone.yaml\n"
          "    inject: types\n"
          "    input: [{n: \"1\"}]\n",
          &res);
    cr_assert(!res.passed);
    sl_test_expect_line(&res.reasons, "the topology did not load:");
    char *want = NULL;
    cr_assert(asprintf(&want, "  %s/gone.yaml: cannot read: No such file or "
                       "directory", sl_test_dir()) > 0);
    sl_test_expect_line(&res.reasons, want);
    cr_expect_eq(res.reasons.count, 2);
    free(want);
    sl__stest_result_fini(&res);
}

Test(stagetest, topology_retries_and_dead_letter_routes)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/retry.yaml", sl_test_dir()) > 0);
    cr_assert_eq(
        sl_test_write_file(path,
                           "stages:\n"
                           "  - {name: gen, plugin: generator, "
                           "config: {count: 1}}\n"
                           "  - name: flaky\n"
                           "    plugin: " MISBEHAVE "\n"
                           "    config: {fail_when: bad, fail_attempts: 1}\n"
                           "    retry: {max_attempts: 3, backoff_ms: 5000}\n"
                           "  - name: broken\n"
                           "    plugin: " MISBEHAVE "\n"
                           "    config: {fail_when: worse}\n"
                           "    dead_letter: {stage: errors}\n"
                           "  - {name: out, plugin: \"null\"}\n"
                           "  - {name: errors, plugin: \"null\"}\n"),
        0);
    free(path);
    /* a record that fails once gets through on its retry (without the
     * topology's 5 s backoff); one that always fails is dead-lettered
     * after its three attempts */
    s_passes("tests:\n"
             "  - name: c\n"
             "    topology: retry.yaml\n"
             "    inject: flaky\n"
             "    timeout: 4s\n"
             "    input: [{bad: true, n: 1}, {worse: true, n: 2}, {n: 3}]\n"
             "    expect:\n"
             "      out: {records: [{n: 3}, {bad: true, n: 1}]}\n"
             "      dead_letters:\n"
             "        - {stage: broken, error: 'worse is true (attempt 3)',\n"
             "           retry: true, record: {worse: true, n: 2}}\n");
    /* a captured dead-letter stage sees them as records */
    s_passes("tests:\n"
             "  - name: c\n"
             "    topology: retry.yaml\n"
             "    inject: broken\n"
             "    input: [{worse: true}]\n"
             "    expect:\n"
             "      errors:\n"
             "        count: 1\n"
             "        where:\n"
             "          - {field: stage, equals: broken}\n"
             "          - {field: attempts, equals: 3}\n"
             "          - {field: record, equals: {worse: true}}\n"
             "      out: {count: 0}\n");
}

/* ---- the tester tested: output and totals -------------------------------- */

Test(stagetest, a_failing_case_is_reported_as_failing)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/x_test.yaml", sl_test_dir()) > 0);
    cr_assert_eq(sl_test_write_file(path,
                                    "tests:\n"
                                    "  - name: parses a line\n"
                                    "    stage: {plugin: json_parse}\n"
                                    "    input:\n"
                                    "      - {line: '{\"status\":\"200\"}'}\n"
                                    "    expect: {records: [{status: 200}]}\n"
                                    "  - name: passes\n"
                                    "    stage: {plugin: json_parse}\n"
                                    "    input: [{line: '{\"a\":1}'}]\n"
                                    "    expect: {records: [{a: 1}]}\n"
                                    "  - name: other\n"
                                    "    stage: {plugin: json_parse}\n"),
                 0);
    char *out = NULL, *err = NULL;
    size_t out_len = 0, err_len = 0;
    FILE *fo = open_memstream(&out, &out_len);
    FILE *fe = open_memstream(&err, &err_len);
    sl_stest_opts_t o = {.out = fo, .err = fe, .verbose = 1,
                         .filter = "pa"};
    sl_stest_totals_t t = {0};
    sl__stest_run_file(path, &o, &t);
    fclose(fo);
    fclose(fe);
    cr_expect_eq(t.passed, 1);
    cr_expect_eq(t.failed, 1);
    cr_expect_eq(t.skipped, 1);
    cr_expect_eq(t.bad_files, 0);
    cr_expect_str_eq(out,
                     "FAIL parses a line: record 1: field \"status\": "
                     "expected 200 (int), got \"200\" (string)\n"
                     "     what it produced:\n"
                     "       1 output record\n"
                     "         output 1: {\"status\":\"200\"}\n"
                     "       0 dead letters\n"
                     "ok   passes\n");
    cr_expect_str_eq(err, "");
    free(out);
    free(err);
    free(path);
}

Test(stagetest, a_bad_file_is_counted_and_explained)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/bad_test.yaml", sl_test_dir()) > 0);
    cr_assert_eq(sl_test_write_file(path, "tests:\n  - name: x\n"), 0);
    char *out = NULL, *err = NULL;
    size_t out_len = 0, err_len = 0;
    FILE *fo = open_memstream(&out, &out_len);
    FILE *fe = open_memstream(&err, &err_len);
    sl_stest_opts_t o = {.out = fo, .err = fe};
    sl_stest_totals_t t = {0};
    sl__stest_run_file(path, &o, &t);
    fclose(fo);
    fclose(fe);
    cr_expect_eq(t.bad_files, 1);
    cr_expect_eq(t.passed + t.failed, 0);
    cr_expect_str_eq(out, "");
    char *want = NULL;
    cr_assert(asprintf(&want, "%s:2:5: test 'x': needs 'stage' (one stage) "
                       "or 'topology' (a whole topology)\n", path) > 0);
    cr_expect_str_eq(err, want);
    free(want);
    free(out);
    free(err);
    free(path);
}
