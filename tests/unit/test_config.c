/* Config documents: scalar typing, positions, rejected constructs, the
 * sl_config_get_* readers and path resolution. */
#include <criterion/criterion.h>

#include "config.h"
#include "testutil.h"

#include <errno.h>
#include <math.h>
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

TestSuite(config, .init = setup, .fini = teardown);

static sl_config_doc_t *parse(const char *text)
{
    return sl__config_doc_parse("t.yaml", "/base", text, strlen(text),
                                &g_diag);
}

/* Parses text that must fail. */
static void parse_fails(const char *text)
{
    sl_config_doc_t *doc = parse(text);
    cr_assert_null(doc, "expected a parse failure for:\n%s", text);
    cr_assert_gt(g_diag.count, 0);
}

Test(config, plain_scalars_resolve_like_yaml_core)
{
    static const struct {
        const char *text;
        sl_config_type_t type;
    } cases[] = {
        {"~", SL_CONFIG_NULL},      {"null", SL_CONFIG_NULL},
        {"NULL", SL_CONFIG_NULL},   {"", SL_CONFIG_NULL},
        {"true", SL_CONFIG_BOOL},   {"False", SL_CONFIG_BOOL},
        {"TRUE", SL_CONFIG_BOOL},   {"yes", SL_CONFIG_STRING},
        {"on", SL_CONFIG_STRING},   {"12", SL_CONFIG_INT},
        {"-12", SL_CONFIG_INT},     {"+7", SL_CONFIG_INT},
        {"0x1F", SL_CONFIG_INT},    {"-0x10", SL_CONFIG_INT},
        {"0o17", SL_CONFIG_INT},    {"0o8", SL_CONFIG_STRING},
        {"0x", SL_CONFIG_STRING},   {"1_000", SL_CONFIG_STRING},
        {"1.5", SL_CONFIG_FLOAT},   {"-.5", SL_CONFIG_FLOAT},
        {"1.", SL_CONFIG_FLOAT},    {"1e3", SL_CONFIG_FLOAT},
        {"2.5E-3", SL_CONFIG_FLOAT}, {"1e", SL_CONFIG_STRING},
        {".inf", SL_CONFIG_FLOAT},  {"-.Inf", SL_CONFIG_FLOAT},
        {".NaN", SL_CONFIG_FLOAT},  {".", SL_CONFIG_STRING},
        {"abc", SL_CONFIG_STRING},  {"12abc", SL_CONFIG_STRING},
        {"'12'", SL_CONFIG_STRING}, {"\"true\"", SL_CONFIG_STRING},
        {"'~'", SL_CONFIG_STRING},  {"!!str 12", SL_CONFIG_STRING},
        {"!!float 3", SL_CONFIG_FLOAT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[64];
        snprintf(text, sizeof(text), "v: %s\n", cases[i].text);
        sl_config_doc_t *doc = parse(text);
        cr_assert_not_null(doc, "%s: %s", text, sl_test_diag_text(&g_diag));
        const sl_config_t *v = sl_config_get(sl__config_doc_root(doc), "v");
        cr_assert_eq(sl_config_type(v), cases[i].type,
                     "'%s' resolved as %s, expected %s", cases[i].text,
                     sl__config_type_name(sl_config_type(v)),
                     sl__config_type_name(cases[i].type));
        sl__config_doc_destroy(&doc);
        cr_assert_null(doc);
    }
}

Test(config, scalar_text_is_kept_as_written)
{
    sl_config_doc_t *doc = parse("a: 0x1F\nb: 'it''s'\nc: \"tab\\there\"\n"
                                 "d: ~\ne: [1]\n");
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    const sl_config_t *root = sl__config_doc_root(doc);
    cr_assert_str_eq(sl_config_str(sl_config_get(root, "a")), "0x1F");
    cr_assert_str_eq(sl_config_str(sl_config_get(root, "b")), "it's");
    cr_assert_str_eq(sl_config_str(sl_config_get(root, "c")), "tab\there");
    cr_assert_str_eq(sl_config_str(sl_config_get(root, "d")), "~");
    cr_assert_null(sl_config_str(sl_config_get(root, "e")));
    cr_assert_null(sl_config_get(root, "missing"));
    sl__config_doc_destroy(&doc);
}

Test(config, typed_readers)
{
    sl_config_doc_t *doc = parse(
        "hex: 0x1F\noct: -0o17\nmax: 9223372036854775807\n"
        "min: -9223372036854775808\nover: 9223372036854775808\n"
        "under: -9223372036854775809\nq: '12'\nf: 1.5\nninf: -.inf\n"
        "nan: .nan\nt: true\nF: FALSE\ni: 3\nbig: 1e999\n");
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    const sl_config_t *r = sl__config_doc_root(doc);
    int64_t v = 0;
    cr_assert_eq(sl_config_int(sl_config_get(r, "hex"), &v), 0);
    cr_assert_eq(v, 31);
    cr_assert_eq(sl_config_int(sl_config_get(r, "oct"), &v), 0);
    cr_assert_eq(v, -15);
    cr_assert_eq(sl_config_int(sl_config_get(r, "max"), &v), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(sl_config_int(sl_config_get(r, "min"), &v), 0);
    cr_assert_eq(v, INT64_MIN);
    cr_assert_eq(sl_config_int(sl_config_get(r, "over"), &v), -ERANGE);
    cr_assert_eq(sl_config_int(sl_config_get(r, "under"), &v), -ERANGE);
    cr_assert_eq(sl_config_int(sl_config_get(r, "q"), &v), -EINVAL);
    cr_assert_eq(sl_config_int(sl_config_get(r, "f"), &v), -EINVAL);
    cr_assert_eq(sl_config_int(NULL, &v), -EINVAL);

    double d = 0;
    cr_assert_eq(sl_config_double(sl_config_get(r, "f"), &d), 0);
    cr_assert_eq(d, 1.5);
    cr_assert_eq(sl_config_double(sl_config_get(r, "i"), &d), 0);
    cr_assert_eq(d, 3.0);
    cr_assert_eq(sl_config_double(sl_config_get(r, "ninf"), &d), 0);
    cr_assert(isinf(d) && d < 0);
    cr_assert_eq(sl_config_double(sl_config_get(r, "nan"), &d), 0);
    cr_assert(isnan(d));
    cr_assert_eq(sl_config_double(sl_config_get(r, "q"), &d), -EINVAL);
    cr_assert_eq(sl_config_double(sl_config_get(r, "big"), &d), -ERANGE);

    int b = -1;
    cr_assert_eq(sl_config_bool(sl_config_get(r, "t"), &b), 0);
    cr_assert_eq(b, 1);
    cr_assert_eq(sl_config_bool(sl_config_get(r, "F"), &b), 0);
    cr_assert_eq(b, 0);
    cr_assert_eq(sl_config_bool(sl_config_get(r, "i"), &b), -EINVAL);
    sl__config_doc_destroy(&doc);
}

Test(config, positions_are_exact)
{
    const char *text = "# comment\n"
                       "top:\n"
                       "  key: value\n"
                       "  list:\n"
                       "    - a\n"
                       "    -   {x: 1, y: [2, 3]}\n"
                       "other: \"quoted\"\n";
    sl_config_doc_t *doc = parse(text);
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    const sl_config_t *root = sl__config_doc_root(doc);
    cr_assert_eq(sl_config_type(root), SL_CONFIG_MAP);
    cr_assert_eq(sl_config_len(root), 2);
    cr_assert_str_eq(sl__config_file(root), "t.yaml");

    const sl_config_t *k0 = sl__config_key_node_at(root, 0);
    cr_assert_str_eq(sl_config_str(k0), "top");
    cr_assert_eq(sl__config_line(k0), 2);
    cr_assert_eq(sl__config_col(k0), 1);

    const sl_config_t *top = sl_config_get(root, "top");
    const sl_config_t *val = sl_config_get(top, "key");
    cr_assert_eq(sl__config_line(val), 3);
    cr_assert_eq(sl__config_col(val), 8);
    const sl_config_t *k1 = sl__config_key_node_at(top, 1);
    cr_assert_str_eq(sl_config_key_at(top, 1), "list");
    cr_assert_eq(sl__config_line(k1), 4);
    cr_assert_eq(sl__config_col(k1), 3);

    const sl_config_t *list = sl_config_get(top, "list");
    cr_assert_eq(sl_config_type(list), SL_CONFIG_SEQ);
    cr_assert_eq(sl_config_len(list), 2);
    const sl_config_t *flow = sl_config_at(list, 1);
    cr_assert_eq(sl__config_line(flow), 6);
    cr_assert_eq(sl__config_col(flow), 9);
    const sl_config_t *y = sl_config_get(flow, "y");
    cr_assert_eq(sl__config_col(y), 19);
    cr_assert_eq(sl__config_col(sl_config_at(y, 1)), 23);
    cr_assert_null(sl_config_at(y, 2));
    cr_assert_str_eq(sl_config_str(sl_config_value_at(flow, 0)), "1");

    const sl_config_t *q = sl_config_get(root, "other");
    cr_assert_eq(sl__config_line(q), 7);
    cr_assert_eq(sl__config_col(q), 8);
    sl__config_doc_destroy(&doc);
}

Test(config, duplicate_keys_name_both_positions)
{
    parse_fails("a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\na: 4\n");
    sl_test_expect_line(&g_diag,
                        "t.yaml:5:3: duplicate key 'x' (first at 3:3)");
    sl_test_expect_line(&g_diag,
                        "t.yaml:6:1: duplicate key 'a' (first at 1:1)");
    cr_assert_eq(g_diag.count, 2, "%s", sl_test_diag_text(&g_diag));
}

Test(config, errors_come_in_file_order)
{
    /* The duplicate is found when the map ends, after line 3's error. */
    parse_fails("a: 1\na: 2\nb: !!int x\n");
    cr_assert_eq(g_diag.count, 2, "%s", sl_test_diag_text(&g_diag));
    cr_assert_str_eq(g_diag.lines[0],
                     "t.yaml:2:1: duplicate key 'a' (first at 1:1)");
    cr_assert_str_eq(g_diag.lines[1],
                     "t.yaml:3:4: 'x' is not a valid integer");
}

Test(config, quoted_and_plain_keys_are_the_same_key)
{
    parse_fails("a: 1\n'a': 2\n");
    sl_test_expect_line(&g_diag,
                        "t.yaml:2:1: duplicate key 'a' (first at 1:1)");
}

Test(config, merge_keys_are_refused)
{
    parse_fails("base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n");
    sl_test_expect_line(&g_diag, "t.yaml:3:3: merge keys ('<<') are not "
                        "supported; repeat the keys");
}

Test(config, quoted_merge_key_is_a_plain_string)
{
    sl_config_doc_t *doc = parse("'<<': 1\n");
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    cr_assert_str_eq(sl_config_key_at(sl__config_doc_root(doc), 0), "<<");
    sl__config_doc_destroy(&doc);
}

Test(config, aliases_share_the_anchored_node)
{
    sl_config_doc_t *doc = parse("a: &x [1, 2]\nb: *x\nc: &s hi\nd: *s\n");
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    const sl_config_t *r = sl__config_doc_root(doc);
    const sl_config_t *b = sl_config_get(r, "b");
    cr_assert_eq(sl_config_type(b), SL_CONFIG_SEQ);
    cr_assert_eq(sl_config_len(b), 2);
    cr_assert_eq(b, sl_config_get(r, "a"));
    cr_assert_str_eq(sl_config_str(sl_config_get(r, "d")), "hi");
    sl__config_doc_destroy(&doc);
}

Test(config, alias_bomb_is_refused)
{
    const char *bomb =
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
        "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
        "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
        "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
    parse_fails(bomb);
    /* Aliases up to line 5 add 74718 nodes; the first *e adds 66430 more
     * and crosses the budget of 100000. Reported once. */
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
    sl_test_expect_prefix(&g_diag, "t.yaml:6:8: alias '*e' expands the "
                          "document past 100000 nodes");
}

Test(config, recursive_and_unknown_aliases)
{
    parse_fails("a: &x [1, *x]\n");
    sl_test_expect_line(&g_diag, "t.yaml:1:11: alias '*x' refers to a node "
                        "that contains it");
    teardown();
    setup();
    parse_fails("a: 1\nb: *nope\n");
    sl_test_expect_line(&g_diag, "t.yaml:2:4: unknown alias '*nope'");
}

Test(config, collection_keys_are_refused)
{
    parse_fails("? [a, b]\n: 1\n{x: 1}: 2\n");
    sl_test_expect_line(&g_diag, "t.yaml:1:3: map keys must be scalars, not "
                        "a sequence");
    sl_test_expect_line(&g_diag,
                        "t.yaml:3:1: map keys must be scalars, not a map");
}

Test(config, syntax_error_names_position_and_problem)
{
    parse_fails("a: 1\nb: [1, 2\nc: 3\n");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
    sl_test_expect_line(&g_diag, "t.yaml:3:2: did not find expected ',' or "
                        "']' (while parsing a flow sequence at 2:4)");
}

Test(config, tab_indentation_gets_a_hint)
{
    parse_fails("a:\n\tb: 1\n");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
    sl_test_expect_prefix(&g_diag, "t.yaml:2:1: found character that cannot "
                          "start any token");
    cr_assert(strstr(g_diag.lines[0], "tabs are not allowed for "
                                      "indentation"),
              "%s", sl_test_diag_text(&g_diag));
}

Test(config, invalid_utf8_is_reported_with_its_line)
{
    parse_fails("a: 1\nb: \xff\n");
    sl_test_expect_prefix(&g_diag, "t.yaml:2:4: invalid leading UTF-8 octet "
                          "(byte 0xff)");
}

Test(config, bad_tags_and_nul)
{
    parse_fails("a: !!int abc\nb: !custom x\nc: \"x\\0y\"\n");
    sl_test_expect_line(&g_diag, "t.yaml:1:4: 'abc' is not a valid integer");
    sl_test_expect_line(&g_diag, "t.yaml:2:4: unsupported tag '!custom'");
    sl_test_expect_line(&g_diag, "t.yaml:3:4: strings containing NUL are not "
                        "supported");
}

Test(config, deep_nesting_is_refused)
{
    char text[700] = "a: ";
    memset(text + 3, '[', 300);
    memset(text + 303, ']', 300);
    text[603] = '\0';
    parse_fails(text);
    /* The root map is level 1, so the 256th '[' (column 259) is one too
     * many. */
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
    sl_test_expect_line(&g_diag,
                        "t.yaml:1:259: nesting deeper than 256 levels");
}

Test(config, several_documents_are_refused)
{
    parse_fails("a: 1\n---\nb: 2\n");
    sl_test_expect_line(&g_diag, "t.yaml:3:1: more than one YAML document");
}

Test(config, empty_documents_are_empty_maps)
{
    const char *texts[] = {"", "# only a comment\n", "---\n"};
    for (size_t i = 0; i < 3; i++) {
        sl_config_doc_t *doc = parse(texts[i]);
        cr_assert_not_null(doc, "'%s': %s", texts[i],
                           sl_test_diag_text(&g_diag));
        const sl_config_t *r = sl__config_doc_root(doc);
        cr_assert_eq(sl_config_type(r), SL_CONFIG_MAP);
        cr_assert_eq(sl_config_len(r), 0);
        sl__config_doc_destroy(&doc);
    }
}

Test(config, get_helpers_defaults_and_values)
{
    sl_config_doc_t *doc = parse("s: hello\nn: 42\nd: 2.5\nb: true\n"
                                 "num_as_str: 8080\n");
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    const sl_config_t *r = sl__config_doc_root(doc);
    const char *s = NULL;
    int64_t n = 0;
    double d = 0;
    int b = 0;
    cr_assert_eq(sl_config_get_str(r, "s", "x", &s), 0);
    cr_assert_str_eq(s, "hello");
    cr_assert_eq(sl_config_get_str(r, "absent", "dflt", &s), 0);
    cr_assert_str_eq(s, "dflt");
    cr_assert_eq(sl_config_get_str(r, "num_as_str", NULL, &s), 0);
    cr_assert_str_eq(s, "8080");
    cr_assert_eq(sl_config_get_int(r, "n", 0, &n), 0);
    cr_assert_eq(n, 42);
    cr_assert_eq(sl_config_get_int(r, "absent", -3, &n), 0);
    cr_assert_eq(n, -3);
    cr_assert_eq(sl_config_get_double(r, "d", 0, &d), 0);
    cr_assert_eq(d, 2.5);
    cr_assert_eq(sl_config_get_double(r, "n", 0, &d), 0);
    cr_assert_eq(d, 42.0);
    cr_assert_eq(sl_config_get_double(r, "absent", 0.25, &d), 0);
    cr_assert_eq(d, 0.25);
    cr_assert_eq(sl_config_get_bool(r, "b", 0, &b), 0);
    cr_assert_eq(b, 1);
    cr_assert_eq(sl_config_get_bool(r, "absent", 1, &b), 0);
    cr_assert_eq(b, 1);
    cr_assert_eq(sl_config_get_int(NULL, "n", 9, &n), 0);
    cr_assert_eq(n, 9);
    cr_assert_eq(g_diag.count, 0);
    sl__config_doc_destroy(&doc);
}

Test(config, get_helpers_report_wrong_types_with_context)
{
    sl_config_doc_t *doc = parse("n: abc\nb: 1\ns: [1]\n"
                                 "big: 99999999999999999999\nnul: ~\n"
                                 "d: yes\n");
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    const sl_config_t *r = sl__config_doc_root(doc);
    sl__config_doc_set_diag(doc, &g_diag, "stage 'parse'");
    int64_t n;
    int b;
    double d;
    const char *s;
    cr_assert_eq(sl_config_get_int(r, "n", 0, &n), -EINVAL);
    cr_assert_eq(sl_config_get_bool(r, "b", 0, &b), -EINVAL);
    cr_assert_eq(sl_config_get_str(r, "s", NULL, &s), -EINVAL);
    cr_assert_eq(sl_config_get_int(r, "big", 0, &n), -EINVAL);
    cr_assert_eq(sl_config_get_str(r, "nul", "x", &s), -EINVAL);
    cr_assert_eq(sl_config_get_double(r, "d", 0, &d), -EINVAL);
    cr_assert_eq(sl_config_get_int(sl_config_get(r, "s"), "k", 0, &n),
                 -EINVAL);
    sl_test_expect_line(&g_diag, "t.yaml:1:4: stage 'parse': 'n' must be an "
                        "integer, got string 'abc'");
    sl_test_expect_line(&g_diag, "t.yaml:2:4: stage 'parse': 'b' must be "
                        "true or false, got integer '1'");
    sl_test_expect_line(&g_diag, "t.yaml:3:4: stage 'parse': 's' must be a "
                        "string, got a sequence");
    sl_test_expect_line(&g_diag, "t.yaml:4:6: stage 'parse': 'big': integer "
                        "99999999999999999999 is out of range");
    sl_test_expect_line(&g_diag, "t.yaml:5:6: stage 'parse': 'nul' must be a "
                        "string, got null");
    sl_test_expect_line(&g_diag, "t.yaml:6:4: stage 'parse': 'd' must be a "
                        "number, got string 'yes'");
    sl_test_expect_line(&g_diag, "t.yaml:3:4: stage 'parse': expected a map, "
                        "got sequence");
    cr_assert_eq(g_diag.count, 7, "%s", sl_test_diag_text(&g_diag));

    /* Without a context the message follows the position directly. */
    sl__config_doc_set_diag(doc, &g_diag, NULL);
    cr_assert_eq(sl_config_error(sl_config_get(r, "b"), "bad %d", 7),
                 -EINVAL);
    sl_test_expect_line(&g_diag, "t.yaml:2:4: bad 7");
    sl__config_doc_destroy(&doc);
}

Test(config, paths_resolve_against_the_document_dir)
{
    sl_config_doc_t *doc = parse("rel: data/in.csv\nabs: /etc/hosts\n"
                                 "empty: ''\n");
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    sl__config_doc_set_diag(doc, &g_diag, NULL);
    const sl_config_t *r = sl__config_doc_root(doc);
    cr_assert_str_eq(sl__config_doc_dir(doc), "/base");
    char *p = NULL;
    cr_assert_eq(sl_config_get_path(r, "rel", NULL, &p), 0);
    cr_assert_str_eq(p, "/base/data/in.csv");
    free(p);
    cr_assert_eq(sl_config_get_path(r, "abs", NULL, &p), 0);
    cr_assert_str_eq(p, "/etc/hosts");
    free(p);
    cr_assert_eq(sl_config_get_path(r, "absent", "out.txt", &p), 0);
    cr_assert_str_eq(p, "/base/out.txt");
    free(p);
    p = (char *)"sentinel";
    cr_assert_eq(sl_config_get_path(r, "absent", NULL, &p), 0);
    cr_assert_null(p);
    cr_assert_eq(sl_config_get_path(r, "empty", NULL, &p), -EINVAL);
    cr_assert_null(p);
    sl_test_expect_line(&g_diag, "t.yaml:3:8: 'empty' must not be empty");
    sl__config_doc_destroy(&doc);
}

Test(config, loaded_file_resolves_against_its_absolute_dir)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char sub[512], file[600], cwd[4096];
    snprintf(sub, sizeof(sub), "%s/conf", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    snprintf(file, sizeof(file), "%s/t.yaml", sub);
    cr_assert_eq(sl_test_write_file(file, "path: in/x.csv\n"), 0);
    cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
    cr_assert_eq(chdir(dir), 0);

    /* Given relatively, still resolved to an absolute directory. */
    sl_config_doc_t *doc = sl__config_doc_load("conf/t.yaml", &g_diag);
    cr_assert_eq(chdir(cwd), 0);
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    char *real = realpath(sub, NULL);
    cr_assert_str_eq(sl__config_doc_dir(doc), real);
    char *p = NULL, want[4200];
    cr_assert_eq(sl_config_get_path(sl__config_doc_root(doc), "path", NULL,
                                    &p),
                 0);
    snprintf(want, sizeof(want), "%s/in/x.csv", real);
    cr_assert_str_eq(p, want);
    cr_assert_str_eq(sl__config_file(sl__config_doc_root(doc)),
                     "conf/t.yaml");
    free(p);
    free(real);
    sl__config_doc_destroy(&doc);
    sl_test_rmtree(dir);
}

Test(config, missing_file_is_reported)
{
    sl_config_doc_t *doc = sl__config_doc_load("/nonexistent/x.yaml", &g_diag);
    cr_assert_null(doc);
    sl_test_expect_line(&g_diag, "/nonexistent/x.yaml: cannot read: No such "
                        "file or directory");
}

Test(config, empty_map_placeholder_takes_a_position)
{
    sl_config_doc_t *doc = parse("a:\n  b: 1\n");
    cr_assert_not_null(doc, "%s", sl_test_diag_text(&g_diag));
    const sl_config_t *a = sl_config_get(sl__config_doc_root(doc), "a");
    const sl_config_t *b = sl_config_get(a, "b");
    const sl_config_t *m = sl__config_empty_map(doc, b);
    cr_assert_eq(sl_config_type(m), SL_CONFIG_MAP);
    cr_assert_eq(sl_config_len(m), 0);
    cr_assert_eq(sl__config_line(m), 2);
    cr_assert_eq(sl__config_col(m), 6);
    sl__config_doc_destroy(&doc);
}
