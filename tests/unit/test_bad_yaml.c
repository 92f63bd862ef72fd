/* Bad YAML and bad config files: each is refused with one exact message
 * naming the file, line and column (never a second, made-up one), and
 * none costs more than its size deserves: alias bombs, many anchors, huge
 * or endless files, directories. */
#include <criterion/criterion.h>

#include "config.h"
#include "testutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static sl_diag_t g_diag;

static void setup(void)
{
    sl__diag_init(&g_diag);
}

static void teardown(void)
{
    sl__diag_fini(&g_diag);
}

TestSuite(bad_yaml, .init = setup, .fini = teardown);

static sl_config_doc_t *parse_n(const char *text, size_t len)
{
    return sl__config_doc_parse("t.yaml", "/base", text, len, &g_diag);
}

static sl_config_doc_t *parse(const char *text)
{
    return parse_n(text, strlen(text));
}

/* Parses text that must be refused with exactly the lines want (in file
 * order), NULL-terminated. */
static void refused(const char *text, const char *const *want)
{
    sl_config_doc_t *doc = parse(text);
    cr_assert_null(doc, "expected a failure for:\n%s", text);
    size_t n = 0;
    for (; want[n]; n++) {
        cr_assert_lt(n, g_diag.count, "missing '%s'; got:\n%s", want[n],
                     sl_test_diag_text(&g_diag));
        cr_assert_str_eq(g_diag.lines[n], want[n], "all lines:\n%s",
                         sl_test_diag_text(&g_diag));
    }
    cr_assert_eq(g_diag.count, n, "extra lines:\n%s",
                 sl_test_diag_text(&g_diag));
}

#define REFUSED(text, ...)                                                  \
    do {                                                                    \
        static const char *const want_[] = {__VA_ARGS__, NULL};             \
        refused(text, want_);                                               \
    } while (0)

static double now_s(void)
{
    return sl_test_now();
}

/* ---- duplicate keys ------------------------------------------------------ */

/* No map silently keeps the last (or the first) of two equal keys. */
Test(bad_yaml, duplicate_keys_in_every_kind_of_map)
{
    REFUSED("stages:\n"
            "  - name: a\n"
            "    config: {path: x, path: y}\n",
            "t.yaml:3:23: duplicate key 'path' (first at 3:14)");
    teardown();
    setup();
    REFUSED("k: &k name\n"
            "m:\n"
            "  name: 1\n"
            "  *k : 2\n",
            "t.yaml:4:3: duplicate key 'name' (first at 3:3)");
    teardown();
    setup();
    /* Three times: each repeat named, each pointing at the first. */
    REFUSED("a: 1\n\"a\": 2\n? a\n: 3\n",
            "t.yaml:2:1: duplicate key 'a' (first at 1:1)",
            "t.yaml:3:3: duplicate key 'a' (first at 1:1)");
}

/* ---- aliases ------------------------------------------------------------- */

/* A refused alias stands as one value: the map around it stays paired, so
 * nothing after it is misread as a key. */
Test(bad_yaml, unknown_alias_is_one_error)
{
    REFUSED("a: *nope\nb: [1]\nc: {x: 1}\n",
            "t.yaml:1:4: unknown alias '*nope'");
}

Test(bad_yaml, recursive_alias_is_one_error)
{
    REFUSED("a: &x [1, *x, {k: v}]\nb: [2]\nc: {d: 3}\n",
            "t.yaml:1:11: alias '*x' refers to a node that contains it");
}

/* The classic "billion laughs": nine levels of nine aliases would expand
 * to 387 million nodes. It is refused once, at the alias that crosses the
 * budget, and the keys after it are still read as keys. */
Test(bad_yaml, alias_bomb_in_a_map_is_one_error)
{
    const char *bomb =
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e {k1: *d, k2: *d, k3: *d, k4: *d, k5: *d, k6: *d, k7: *d,\n"
        "       k8: *d, k9: *d, k10: *d, k11: *d, k12: *d, k13: *d,\n"
        "       k14: *d, k15: *d, k16: *d, k17: [1], k18: {x: 1}}\n"
        "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    double t0 = now_s();
    /* The aliases of lines 2-4 add 8289 nodes and each *d 7381 more, so
     * the 13th *d (k13) is the one past 100000. */
    REFUSED(bomb, "t.yaml:6:56: alias '*d' expands the document past 100000 "
                  "nodes; aliases nested this way are refused");
    cr_assert_lt(now_s() - t0, 2.0, "a refused bomb must be cheap");
}

/* The budget counts expanded nodes exactly: 100000 pass, 100001 do not. */
Test(bad_yaml, alias_budget_is_exact)
{
    /* 1 sequence + 9999 scalars = 10000 nodes, aliased 10 times. */
    size_t cap = 64 * 1024;
    char *text = malloc(cap), *w = text;
    w += sprintf(w, "s: &s one\na: &a [");
    for (int i = 0; i < 9999; i++)
        w += sprintf(w, "%sx", i ? "," : "");
    w += sprintf(w, "]\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n");
    sl_config_doc_t *doc = parse(text);
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    const sl_config_t *b = sl_config_get(sl__config_doc_root(doc), "b");
    cr_assert_eq(sl_config_len(sl_config_at(b, 9)), 9999);
    sl__config_doc_destroy(&doc);

    w += sprintf(w, "c: *s\n"); /* one node more */
    doc = parse(text);
    cr_assert_null(doc);
    sl_test_expect_line(&g_diag, "t.yaml:4:4: alias '*s' expands the "
                        "document past 100000 nodes; aliases nested this way "
                        "are refused");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
    free(text);
}

/* Many anchors and many aliases cost time in proportion to the file, not
 * anchors x aliases (minutes for a 1.6 MB file of 100000 of each), and a
 * reused anchor name means its newest node. */
Test(bad_yaml, many_anchors_and_aliases_stay_fast)
{
    enum { N = 60000 };
    size_t cap = (size_t)N * 24 + 64;
    char *text = malloc(cap), *w = text;
    w += sprintf(w, "a: [");
    for (int i = 0; i < N; i++)
        w += sprintf(w, "%s&a%d v%d", i ? ", " : "", i, i);
    w += sprintf(w, "]\nb: [");
    for (int i = 0; i < N; i++)
        w += sprintf(w, "%s*a0", i ? ", " : "");
    w += sprintf(w, "]\nr: &a0 newest\nc: *a0\n");
    double t0 = now_s();
    sl_config_doc_t *doc = parse(text);
    double took = now_s() - t0;
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    cr_assert_lt(took, 5.0, "took %.2f s", took);
    const sl_config_t *r = sl__config_doc_root(doc);
    const sl_config_t *b = sl_config_get(r, "b");
    cr_assert_eq(sl_config_len(b), N);
    cr_assert_str_eq(sl_config_str(sl_config_at(b, N - 1)), "v0");
    cr_assert_str_eq(sl_config_str(sl_config_get(r, "c")), "newest");
    sl__config_doc_destroy(&doc);
    free(text);
}

/* ---- size ---------------------------------------------------------------- */

/* A million values is the most one document may hold (at some 150 bytes
 * each); one more is refused where it starts, and nothing after it is
 * read. */
Test(bad_yaml, more_than_a_million_values_are_refused, .timeout = 60)
{
    enum { N = 1000000 };
    size_t cap = (size_t)N * 2 + 64;
    char *text = malloc(cap), *w = text;
    w += sprintf(w, "a: [");
    for (int i = 0; i < N; i++) {
        if (i)
            *w++ = ',';
        *w++ = 'x';
    }
    w += sprintf(w, "]\n");
    sl_config_doc_t *doc = parse_n(text, (size_t)(w - text));
    cr_assert_null(doc);
    /* The root map, "a", the sequence and 999997 scalars make a million;
     * the next value is the 999998th 'x', at column 5 + 2 * 999997. */
    sl_test_expect_line(&g_diag, "t.yaml:1:1999999: more than 1000000 values "
                        "in one document; a config this large is refused");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
    free(text);
}

static char *tmpfile_path(const char *dir, const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

Test(bad_yaml, files_that_are_not_configs)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);

    /* A directory opens fine with fopen(); it must not read as "I/O
     * error". */
    sl_config_doc_t *doc = sl__config_doc_load(dir, &g_diag);
    cr_assert_null(doc);
    char want[4200];
    snprintf(want, sizeof(want), "%s: cannot read: Is a directory", dir);
    sl_test_expect_line(&g_diag, want);

    /* A device that never ends stops at the size limit. */
    teardown();
    setup();
    double t0 = now_s();
    cr_assert_null(sl__config_doc_load("/dev/zero", &g_diag));
    cr_assert_lt(now_s() - t0, 10.0);
    sl_test_expect_line(&g_diag, "/dev/zero: larger than 16 MiB; a config "
                        "file this large is refused");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));

    /* A regular file one byte over the limit, read or not. */
    teardown();
    setup();
    char *big = tmpfile_path(dir, "big.yaml");
    FILE *f = fopen(big, "wb");
    cr_assert_not_null(f);
    cr_assert_geq(fputs("a: x\n", f), 0);
    cr_assert_eq(ftruncate(fileno(f), (16 << 20) + 1), 0);
    cr_assert_eq(fclose(f), 0);
    cr_assert_null(sl__config_doc_load(big, &g_diag));
    snprintf(want, sizeof(want), "%s: larger than 16 MiB; a config file "
             "this large is refused", big);
    sl_test_expect_line(&g_diag, want);

    /* A binary file: the first byte YAML cannot hold is named. */
    teardown();
    setup();
    char *bin = tmpfile_path(dir, "bin.yaml");
    static const unsigned char elf[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
    f = fopen(bin, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(elf, 1, sizeof(elf), f), sizeof(elf));
    cr_assert_eq(fclose(f), 0);
    cr_assert_null(sl__config_doc_load(bin, &g_diag));
    snprintf(want, sizeof(want), "%s:1:1: control characters are not "
             "allowed (U+007F)", bin);
    sl_test_expect_line(&g_diag, want);
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));

    /* An empty file is an empty map (what is missing from it is for the
     * topology to say). */
    teardown();
    setup();
    char *empty = tmpfile_path(dir, "empty.yaml");
    cr_assert_eq(sl_test_write_file(empty, ""), 0);
    doc = sl__config_doc_load(empty, &g_diag);
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    cr_assert_eq(sl_config_type(sl__config_doc_root(doc)), SL_CONFIG_MAP);
    cr_assert_eq(sl_config_len(sl__config_doc_root(doc)), 0);
    sl__config_doc_destroy(&doc);

    free(empty);
    free(bin);
    free(big);
    sl_test_rmtree(dir);
}

/* ---- characters ---------------------------------------------------------- */

/* Tabs are refused where they would indent, with a hint; inside values and
 * between tokens on a line they are fine. */
Test(bad_yaml, tabs_where_they_indent_and_where_they_do_not)
{
    REFUSED("stages:\n\t- name: x\n",
            "t.yaml:2:1: found character that cannot start any token (while "
            "scanning for the next token); tabs are not allowed for "
            "indentation, use spaces");
    teardown();
    setup();
    REFUSED("a:\n  b: 1\n\tc: 2\n",
            "t.yaml:3:1: found a tab character that violates indentation "
            "(while scanning a plain scalar at 2:6); tabs are not allowed "
            "for indentation, use spaces");
    teardown();
    setup();
    REFUSED("script: |\n  \tx = 1\n",
            "t.yaml:2:3: found a tab character where an indentation space is "
            "expected (while scanning a block scalar at 1:9); tabs are not "
            "allowed for indentation, use spaces (a block scalar whose first "
            "line starts with a tab needs an indentation indicator, such as "
            "'|2')");
    teardown();
    setup();
    sl_config_doc_t *doc = parse("a:\t1\nb: \"x\ty\"\nc: x\ty\n"
                                 "d: [1,\t2]\t# c\ne: |2\n  \tx\n  \ty\n");
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    const sl_config_t *r = sl__config_doc_root(doc);
    int64_t v;
    cr_assert_eq(sl_config_int(sl_config_get(r, "a"), &v), 0);
    cr_assert_eq(v, 1);
    cr_assert_str_eq(sl_config_str(sl_config_get(r, "b")), "x\ty");
    cr_assert_str_eq(sl_config_str(sl_config_get(r, "c")), "x\ty");
    cr_assert_eq(sl_config_len(sl_config_get(r, "d")), 2);
    cr_assert_str_eq(sl_config_str(sl_config_get(r, "e")), "\tx\n\ty\n");
    sl__config_doc_destroy(&doc);
}

/* Bytes that are not UTF-8, and characters YAML does not allow, are named
 * with their line and column (in characters). */
Test(bad_yaml, invalid_utf8_and_control_characters)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"a: ok\n\xc3\xa9\xc3\xa9: \xff\n",
         "t.yaml:2:5: invalid leading UTF-8 octet (byte 0xff)"},
        {"a: \"\xe2\x82\"\n",
         "t.yaml:1:6: invalid trailing UTF-8 octet (byte 0x22)"},
        {"a: \xed\xa0\x80\n", "t.yaml:1:4: invalid Unicode character "
                              "(U+D800)"},
        {"a: \xc2\x86\n", "t.yaml:1:4: control characters are not allowed "
                          "(U+0086)"},
        {"a: \x1b[31m\n", "t.yaml:1:4: control characters are not allowed "
                          "(U+001B)"},
        {"a: \"x\\0y\"\n", "t.yaml:1:4: strings containing NUL are not "
                           "supported"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        teardown();
        setup();
        sl_config_doc_t *doc = parse(cases[i].text);
        cr_assert_null(doc, "case %zu accepted", i);
        cr_assert_eq(g_diag.count, 1, "case %zu:\n%s", i,
                     sl_test_diag_text(&g_diag));
        cr_assert_str_eq(g_diag.lines[0], cases[i].want, "case %zu", i);
    }
    /* A raw NUL byte is a control character too, and the text after it is
     * not silently dropped. */
    teardown();
    setup();
    cr_assert_null(parse_n("a: x\0y\n", 7));
    sl_test_expect_line(&g_diag, "t.yaml:1:5: control characters are not "
                        "allowed (U+0000)");
}

/* ---- numbers ------------------------------------------------------------- */

/* Integers at and past the 64-bit edges, in every base, and numbers that
 * are not integers, through the readers plugins use. */
Test(bad_yaml, numbers_at_and_past_the_edges)
{
    sl_config_doc_t *doc = parse(
        "min: -0x8000000000000000\nunder: -0x8000000000000001\n"
        "max: 0o777777777777777777777\nover: 0o1000000000000000000000\n"
        "neg: -5\nfloat: 1.5\nnan: .nan\nhuge: 1e400\ntiny: -1e400\n"
        "sub: 1e-400\n");
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    sl__config_doc_set_diag(doc, &g_diag, "stage 's'");
    const sl_config_t *r = sl__config_doc_root(doc);
    int64_t v;
    double d;
    cr_assert_eq(sl_config_get_int(r, "min", 0, &v), 0);
    cr_assert_eq(v, INT64_MIN);
    cr_assert_eq(sl_config_get_int(r, "max", 0, &v), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(sl_config_get_int(r, "neg", 0, &v), 0);
    cr_assert_eq(v, -5);
    cr_assert_eq(g_diag.count, 0, "%s", sl_test_diag_text(&g_diag));
    cr_assert_eq(sl_config_get_int(r, "under", 0, &v), -EINVAL);
    cr_assert_eq(sl_config_get_int(r, "over", 0, &v), -EINVAL);
    cr_assert_eq(sl_config_get_int(r, "float", 0, &v), -EINVAL);
    cr_assert_eq(sl_config_get_int(r, "nan", 0, &v), -EINVAL);
    cr_assert_eq(sl_config_get_double(r, "huge", 0, &d), -EINVAL);
    cr_assert_eq(sl_config_get_double(r, "tiny", 0, &d), -EINVAL);
    static const char *const want[] = {
        "t.yaml:2:8: stage 's': 'under': integer -0x8000000000000001 is out "
        "of range",
        "t.yaml:4:7: stage 's': 'over': integer 0o1000000000000000000000 is "
        "out of range",
        "t.yaml:6:8: stage 's': 'float' must be an integer, got number '1.5'",
        "t.yaml:7:6: stage 's': 'nan' must be an integer, got number '.nan'",
        "t.yaml:8:7: stage 's': 'huge': number 1e400 is out of range",
        "t.yaml:9:7: stage 's': 'tiny': number -1e400 is out of range",
    };
    cr_assert_eq(g_diag.count, 6, "%s", sl_test_diag_text(&g_diag));
    for (size_t i = 0; i < 6; i++)
        cr_assert_str_eq(g_diag.lines[i], want[i]);
    /* Underflow is not an error: it reads as (nearly) zero. */
    cr_assert_eq(sl_config_get_double(r, "sub", 1, &d), 0);
    cr_assert_lt(d, 1e-300);
    sl__config_doc_destroy(&doc);
}
