/* docs/plugins.md's example plugin, end to end: the listing in the doc is
 * the file, the documented cc command builds it warning-free, and
 * `sluice run` loads it through SLUICE_PLUGIN_PATH and uppercases. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOC SL_TEST_SOURCE_DIR "/docs/plugins.md"
#define EXAMPLE SL_TEST_SOURCE_DIR "/docs/examples/upper.c"
#define DOC_CC "cc -shared -fPIC -O2 -I framework/include " \
               "-o /tmp/plugins/upper.so docs/examples/upper.c"

TestSuite(plugin_example, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

/* Runs the documented build command from the source root, with warnings
 * as errors and the output in the test's folder. */
static void s_build(void)
{
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && cc -shared -fPIC -O2 -Werror -Wall -Wextra "
             "-I framework/include -o '%s/upper.so' docs/examples/upper.c 2>&1",
             SL_TEST_SOURCE_DIR, sl_test_dir());
    int rc = sl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s\n%s", cmd, out ? out : "");
    cr_assert_str_eq(out ? out : "", "", "the build printed something");
    free(out);
}

/* Writes t.yaml: generator (count records) -> upper (config) -> file_sink
 * into out.jsonl; returns its path. The layout matches docs/plugins.md,
 * so the upper config value sits at line 8, column 21. */
static const char *s_topology(unsigned count, const char *upper_config)
{
    static char path[1024];
    char text[1024];
    snprintf(path, sizeof(path), "%s/t.yaml", sl_test_dir());
    snprintf(text, sizeof(text),
             "name: shout\n"
             "stages:\n"
             "  - name: gen\n"
             "    plugin: generator\n"
             "    config: {count: %u}\n"
             "  - name: upper\n"
             "    plugin: upper\n"
             "    config: %s\n"
             "  - name: out\n"
             "    plugin: file_sink\n"
             "    config: {path: out.jsonl}\n",
             count, upper_config);
    cr_assert_eq(sl_test_write_file(path, text), 0);
    return path;
}

static int s_sluice(const char *args, char **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "SLUICE_PLUGIN_PATH='%s' '%s' %s 2>&1",
             sl_test_dir(), sl_test_cli(), args);
    return sl_test_run(cmd, out);
}

static char *s_output(size_t want_lines)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/out.jsonl", sl_test_dir());
    cr_assert_eq(sl_test_count_lines(path), (long)want_lines);
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text);
    return text;
}

Test(plugin_example, doc_shows_the_file_and_the_command)
{
    char *doc = sl_test_read_file(DOC, NULL);
    char *src = sl_test_read_file(EXAMPLE, NULL);
    cr_assert_not_null(doc);
    cr_assert_not_null(src);
    cr_assert_not_null(strstr(doc, DOC_CC), "docs/plugins.md lacks: %s",
                       DOC_CC);
    cr_assert_not_null(strstr(doc, "SLUICE_PLUGIN_PATH=/tmp/plugins"));

    const char *open_tag = "<!-- upper.c begin -->\n```c\n";
    const char *close_tag = "```\n<!-- upper.c end -->";
    char *begin = strstr(doc, open_tag);
    cr_assert_not_null(begin, "no listing marker in docs/plugins.md");
    begin += strlen(open_tag);
    char *end = strstr(begin, close_tag);
    cr_assert_not_null(end);
    *end = '\0';
    cr_assert_str_eq(begin, src,
                     "the listing in docs/plugins.md differs from "
                     "docs/examples/upper.c");
    free(doc);
    free(src);
}

Test(plugin_example, builds_and_uppercases_the_field)
{
    s_build();
    char args[2048], *out = NULL;
    snprintf(args, sizeof(args), "run --quiet '%s'",
             s_topology(1500, "{field: user}"));
    int rc = s_sluice(args, &out);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);

    char *text = s_output(1500);
    const char *line = text;
    for (unsigned n = 0; n < 1500; n++) {
        const char *nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        char seq[32], user[48];
        snprintf(seq, sizeof(seq), "{\"seq\":%u,", n);
        snprintf(user, sizeof(user), ",\"user\":\"USER-%u\",", n % 1000);
        cr_assert_eq(strncmp(line, seq, strlen(seq)), 0, "line %u: %.*s", n,
                     (int)(nl - line), line);
        const char *u = strstr(line, user);
        cr_assert(u && u < nl, "line %u: %.*s", n, (int)(nl - line), line);
        /* Only the configured field changes. */
        const char *msg = strstr(line, ",\"msg\":\"the quick brown fox "
                                       "jumps over\"}");
        cr_assert(msg && msg < nl, "line %u: %.*s", n, (int)(nl - line), line);
        line = nl + 1;
    }
    cr_assert_null(strstr(text, "user-"), "a lowercase user is left");
    free(text);
}

Test(plugin_example, default_field_missing_passes_records_unchanged)
{
    s_build();
    /* The default field is "name", which generator records do not have. */
    char args[2048], *out = NULL;
    snprintf(args, sizeof(args), "run --quiet '%s'", s_topology(20, "{}"));
    int rc = s_sluice(args, &out);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    char *text = s_output(20);
    cr_assert_not_null(strstr(text, "\"user\":\"user-0\","));
    cr_assert_not_null(strstr(text, "\"user\":\"user-19\","));
    cr_assert_null(strstr(text, "USER"));
    free(text);
}

Test(plugin_example, non_string_field_fails_each_record)
{
    s_build();
    char args[2048], *out = NULL;
    snprintf(args, sizeof(args), "run '%s'", s_topology(7, "{field: seq}"));
    int rc = s_sluice(args, &out);
    cr_assert_eq(rc, 0, "failed records do not fail the run: %s", out);
    cr_assert_not_null(
        strstr(out, "failed: field 'seq' is an integer, not a string"), "%s",
        out);
    /* The summary row of the stage: workers, in, out, filtered, errors. */
    const char *row = strstr(out, "\nupper ");
    cr_assert_not_null(row, "%s", out);
    unsigned workers, in, outn, filtered, errors;
    cr_assert_eq(sscanf(row + 1, "upper upper %u %u %u %u %u", &workers, &in,
                        &outn, &filtered, &errors),
                 5, "%s", out);
    cr_assert_eq(in, 7);
    cr_assert_eq(outn, 0);
    cr_assert_eq(filtered, 0);
    cr_assert_eq(errors, 7);
    free(out);
    char *text = s_output(0);
    free(text);
}

Test(plugin_example, config_errors_point_at_the_value)
{
    s_build();
    char args[2048], *out = NULL;
    snprintf(args, sizeof(args), "check '%s'", s_topology(1, "{field: 5}"));
    int rc = s_sluice(args, &out);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert_not_null(strstr(out, "t.yaml:8:21: stage 'upper': 'field' must "
                                   "be a string (a field name), not 5"),
                       "%s", out);
    free(out);

    snprintf(args, sizeof(args), "check '%s'",
             s_topology(1, "{field: user, colour: red}"));
    rc = s_sluice(args, &out);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert_not_null(strstr(out, "unknown key 'colour'"), "%s", out);
    free(out);
}

Test(plugin_example, listed_by_sluice_plugins)
{
    s_build();
    char *out = NULL;
    int rc = s_sluice("plugins", &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_not_null(
        strstr(out, "upper          transform uppercases the string value of "
                    "one field"),
        "%s", out);
    char path[1100];
    snprintf(path, sizeof(path), "%s/upper.so", sl_test_dir());
    cr_assert_not_null(strstr(out, path), "%s", out);
    free(out);
}
