/* The Prometheus text parser `sluice top` reads /metrics with, and the
 * quantile estimate it draws p95 from (tools/, library sluice_view). */
#include "promtext.h"
#include "top_view.h"

#include <criterion/criterion.h>

#include <math.h>
#include <string.h>

static sl_prom_doc_t *parse(const char *text)
{
    sl_prom_doc_t *d = NULL;
    cr_assert_eq(sl_prom_parse(text, strlen(text), &d), 0);
    cr_assert_not_null(d);
    return d;
}

static size_t n_errors(const sl_prom_doc_t *d)
{
    size_t n, total;
    sl_prom_errors(d, &n, &total);
    return total;
}

/* Asserts that d has exactly one error, on line, containing want. */
static void expect_error(const sl_prom_doc_t *d, size_t line,
                         const char *want)
{
    size_t n, total;
    const sl_prom_error_t *e = sl_prom_errors(d, &n, &total);
    cr_assert_eq(total, 1, "want one error, got %zu (first: %s)", total,
                 n ? e[0].msg : "-");
    cr_assert_eq(e[0].line, line, "error on line %zu, want %zu: %s",
                 e[0].line, line, e[0].msg);
    cr_assert(strstr(e[0].msg, want), "error '%s' lacks '%s'", e[0].msg,
              want);
}

Test(promtext, families_types_and_help)
{
    sl_prom_doc_t *d = parse(
        "# HELP sluice_records_in_total Records in.\\nSecond \\\\ line.\n"
        "# TYPE sluice_records_in_total counter\n"
        "sluice_records_in_total{stage=\"a\"} 12\n"
        "sluice_records_in_total{stage=\"b\"} 3e2\n"
        "# TYPE q gauge\n"
        "q 0.5\n"
        "# TYPE h histogram\n"
        "h_bucket{le=\"0.1\"} 1\n"
        "h_bucket{le=\"+Inf\"} 2\n"
        "h_sum 0.3\n"
        "h_count 2\n"
        "loose 7\n");
    cr_assert_eq(n_errors(d), 0);
    size_t nf, ns;
    const sl_prom_family_t *f = sl_prom_families(d, &nf);
    const sl_prom_sample_t *s = sl_prom_samples(d, &ns);
    cr_assert_eq(nf, 4);
    cr_assert_eq(ns, 8);
    cr_assert_str_eq(f[0].name, "sluice_records_in_total");
    cr_assert_eq(f[0].type, SL_PROM_COUNTER);
    cr_assert_str_eq(f[0].help, "Records in.\nSecond \\ line.");
    cr_assert_eq(f[1].type, SL_PROM_GAUGE);
    cr_assert_null(f[1].help);
    cr_assert_str_eq(f[2].name, "h");
    cr_assert_eq(f[2].type, SL_PROM_HISTOGRAM);
    cr_assert_str_eq(f[3].name, "loose");
    cr_assert_eq(f[3].type, SL_PROM_UNTYPED);
    cr_assert_str_eq(sl_prom_label(&s[1], "stage"), "b");
    cr_assert_eq(s[1].value, 300.0);
    cr_assert_eq(s[1].line, 4);
    /* The histogram's suffixed samples belong to its family. */
    for (size_t i = 3; i < 7; i++)
        cr_assert_eq(s[i].family, 2, "sample %s", s[i].name);
    cr_assert_str_eq(s[4].name, "h_bucket");
    cr_assert(isinf(s[4].value) == 0 && s[4].value == 2.0);
    cr_assert_str_eq(sl_prom_label(&s[4], "le"), "+Inf");
    cr_assert_eq(s[7].family, 3);
    sl_prom_doc_destroy(&d);
    cr_assert_null(d);
}

Test(promtext, label_escapes_and_spacing)
{
    sl_prom_doc_t *d = parse(
        "m{a=\"x\\\"y\",b=\"back\\\\slash\", c = \"two\\nlines\",} 1\n"
        "  m{} 2 1700000000000\n"
        "m\t3\n"
        "m{d=\"{},=\"} -4.5\r\n");
    cr_assert_eq(n_errors(d), 0);
    size_t n;
    const sl_prom_sample_t *s = sl_prom_samples(d, &n);
    cr_assert_eq(n, 4);
    cr_assert_eq(s[0].n_labels, 3);
    cr_assert_str_eq(sl_prom_label(&s[0], "a"), "x\"y");
    cr_assert_str_eq(sl_prom_label(&s[0], "b"), "back\\slash");
    cr_assert_str_eq(sl_prom_label(&s[0], "c"), "two\nlines");
    cr_assert_null(sl_prom_label(&s[0], "z"));
    cr_assert_eq(s[1].n_labels, 0);
    cr_assert_eq(s[1].value, 2.0);
    cr_assert(s[1].has_ts);
    cr_assert_eq(s[1].ts_ms, 1700000000000LL);
    cr_assert_eq(s[2].value, 3.0);
    cr_assert_not(s[2].has_ts);
    cr_assert_str_eq(sl_prom_label(&s[3], "d"), "{},=");
    cr_assert_eq(s[3].value, -4.5);
    sl_prom_doc_destroy(&d);
}

Test(promtext, special_values)
{
    sl_prom_doc_t *d = parse("a +Inf\nb -Inf\nc NaN\nd inf\ne 1.5e-3\n"
                             "f -0\n");
    cr_assert_eq(n_errors(d), 0);
    size_t n;
    const sl_prom_sample_t *s = sl_prom_samples(d, &n);
    cr_assert_eq(n, 6);
    cr_assert(isinf(s[0].value) && s[0].value > 0);
    cr_assert(isinf(s[1].value) && s[1].value < 0);
    cr_assert(isnan(s[2].value));
    cr_assert(isinf(s[3].value) && s[3].value > 0);
    cr_assert_float_eq(s[4].value, 0.0015, 1e-12);
    cr_assert_eq(s[5].value, 0.0);
    sl_prom_doc_destroy(&d);
}

Test(promtext, comments_and_blank_lines)
{
    sl_prom_doc_t *d = parse("# just a comment\n\n   \n#\n# HELPER x\n"
                             "# TYPE x gauge\nx 1\n");
    cr_assert_eq(n_errors(d), 0);
    size_t n, nf;
    sl_prom_samples(d, &n);
    const sl_prom_family_t *f = sl_prom_families(d, &nf);
    cr_assert_eq(n, 1);
    cr_assert_eq(nf, 1);
    cr_assert_str_eq(f[0].name, "x");
    sl_prom_doc_destroy(&d);
}

/* Each malformed line is reported with its number and skipped; the lines
 * around it still count. */
static void expect_malformed(const char *line, const char *want)
{
    char text[512];
    snprintf(text, sizeof(text), "good 1\n%s\nafter 2\n", line);
    sl_prom_doc_t *d = parse(text);
    expect_error(d, 2, want);
    size_t n;
    const sl_prom_sample_t *s = sl_prom_samples(d, &n);
    cr_assert_eq(n, 2, "for '%s': %zu samples", line, n);
    cr_assert_str_eq(s[0].name, "good");
    cr_assert_str_eq(s[1].name, "after");
    cr_assert_eq(s[1].line, 3);
    sl_prom_doc_destroy(&d);
}

Test(promtext, malformed_lines)
{
    expect_malformed("m{a=\"x\" 1", "expected ',' or '}' after label 'a'");
    expect_malformed("m{a=\"x", "unterminated value of label 'a'");
    expect_malformed("m{a=x} 1", "value of label 'a' is not quoted");
    expect_malformed("m{a=\"\\t\"} 1", "bad escape '\\t' in label 'a'");
    expect_malformed("m{a=\"1\",a=\"2\"} 1", "label 'a' given twice");
    expect_malformed("m{1a=\"1\"} 1", "bad character '1' in label name");
    expect_malformed("m{a \"1\"} 1", "expected '=' after label 'a'");
    expect_malformed("m{", "unterminated label set");
    expect_malformed("m", "metric 'm' has no value");
    expect_malformed("m{a=\"1\"}", "metric 'm' has no value");
    expect_malformed("m twelve", "bad value 'twelve' for 'm'");
    expect_malformed("m 0x10", "bad value '0x10' for 'm'");
    expect_malformed("m 1 soon", "bad timestamp 'soon' for 'm'");
    expect_malformed("m 1 2 3", "unexpected text after the sample of 'm'");
    expect_malformed("9m 1", "bad character '9' at the start of a line");
    expect_malformed("m-x 1", "bad character '-' in metric name");
    expect_malformed("# TYPE m colour", "unknown type 'colour' for 'm'");
    expect_malformed("# TYPE", "TYPE without a metric name");
    expect_malformed("# TYPE good gauge", "TYPE for 'good' after its "
                                          "samples");
}

Test(promtext, second_type_is_reported)
{
    sl_prom_doc_t *d = parse("# TYPE m gauge\n# TYPE m counter\nm 1\n");
    expect_error(d, 2, "second TYPE for 'm'");
    size_t nf;
    const sl_prom_family_t *f = sl_prom_families(d, &nf);
    cr_assert_eq(f[0].type, SL_PROM_GAUGE);
    sl_prom_doc_destroy(&d);
}

Test(promtext, nul_byte_in_a_line)
{
    static const char text[] = "a 1\nb\0 2\nc 3\n";
    sl_prom_doc_t *d = NULL;
    cr_assert_eq(sl_prom_parse(text, sizeof(text) - 1, &d), 0);
    expect_error(d, 2, "NUL byte");
    size_t n;
    sl_prom_samples(d, &n);
    cr_assert_eq(n, 2);
    sl_prom_doc_destroy(&d);
}

/* A body cut short may end inside a number: its last line is dropped,
 * whatever it looks like. */
Test(promtext, truncated_input)
{
    const char *full = "# TYPE m counter\nm{stage=\"a\"} 1234\n"
                       "m{stage=\"b\"} 5678\n";
    size_t len = strlen(full);
    for (size_t cut = 0; cut < len; cut++) {
        sl_prom_doc_t *d = NULL;
        cr_assert_eq(sl_prom_parse(full, cut, &d), 0);
        size_t n;
        const sl_prom_sample_t *s = sl_prom_samples(d, &n);
        size_t want = cut < 35 ? 0 : cut < len ? 1 : 2;
        cr_assert_eq(n, want, "cut at %zu: %zu samples", cut, n);
        if (n)
            cr_assert_eq(s[0].value, 1234.0);
        int at_line_end = cut == 0 || full[cut - 1] == '\n';
        cr_assert_eq(n_errors(d), at_line_end ? 0 : 1, "cut at %zu", cut);
        if (!at_line_end) {
            size_t ne;
            const sl_prom_error_t *e = sl_prom_errors(d, &ne, NULL);
            cr_assert(strstr(e[0].msg, "truncated"), "%s", e[0].msg);
        }
        sl_prom_doc_destroy(&d);
    }
}

Test(promtext, errors_are_capped_but_counted)
{
    char text[4096] = "";
    for (int i = 0; i < 40; i++)
        strcat(text, "bad{\n");
    strcat(text, "ok 1\n");
    sl_prom_doc_t *d = parse(text);
    size_t n, total;
    const sl_prom_error_t *e = sl_prom_errors(d, &n, &total);
    cr_assert_eq(n, SL_PROM_MAX_ERRORS);
    cr_assert_eq(total, 40);
    cr_assert_eq(e[SL_PROM_MAX_ERRORS - 1].line, SL_PROM_MAX_ERRORS);
    size_t ns;
    sl_prom_samples(d, &ns);
    cr_assert_eq(ns, 1);
    sl_prom_doc_destroy(&d);
}

/* ---- histogram_quantile ----------------------------------------------- */

Test(top_quantile, interpolates_within_the_bucket)
{
    double le[] = {0.001, 0.0025, 0.005, INFINITY};
    double cnt[] = {0, 0, 100, 100};
    /* rank 95 of 100, all in (0.0025, 0.005]. */
    cr_assert_float_eq(sl_top_quantile(0.95, le, cnt, 4), 0.004875, 1e-12);
    double cnt2[] = {50, 90, 100, 100};
    /* rank 50 ends the first bucket, which starts at 0. */
    cr_assert_float_eq(sl_top_quantile(0.5, le, cnt2, 4), 0.001, 1e-12);
    cr_assert_float_eq(sl_top_quantile(0.25, le, cnt2, 4), 0.0005, 1e-12);
    /* rank 95: 5 of the 10 in (0.0025, 0.005]. */
    cr_assert_float_eq(sl_top_quantile(0.95, le, cnt2, 4), 0.00375, 1e-12);
}

Test(top_quantile, edges)
{
    double le[] = {0.1, 1, INFINITY};
    double in_inf[] = {0, 10, 20};
    /* In the +Inf bucket: the last finite bound. */
    cr_assert_eq(sl_top_quantile(0.95, le, in_inf, 3), 1.0);
    double none[] = {0, 0, 0};
    cr_assert(isnan(sl_top_quantile(0.95, le, none, 3)));
    double le_no_inf[] = {0.1, 1};
    double cnt[] = {1, 2};
    cr_assert(isnan(sl_top_quantile(0.95, le_no_inf, cnt, 2)));
    /* A count that goes down (a racy scrape) is taken as flat. */
    double le4[] = {0.1, 1, 2, INFINITY};
    double dip[] = {4, 2, 10, 10};
    cr_assert_float_eq(sl_top_quantile(0.5, le4, dip, 4), 1 + 1.0 / 6, 1e-12);
}
