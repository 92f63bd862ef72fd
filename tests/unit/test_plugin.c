/* The plugin loader (every refusal names the file and the problem; the
 * search path; shared handles; enumeration) and the test-only
 * checksum_sink that the integration tests rely on.
 *
 * Needs the `test_plugins` target built (tests/plugins). Criterion runs
 * each test in its own process, so setenv() here does not leak. */
#include <criterion/criterion.h>

#include "harness.h"
#include "plugin.h"
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_PLUGINS SL_TEST_BINARY_DIR "/tests/plugins"
#define BUILD_STAGES SL_TEST_BINARY_DIR "/stages"

/* ---- refusals ------------------------------------------------------------ */

/* Loads by path and expects a refusal naming the file and containing want. */
static void s_refused(const char *file, const char *want)
{
    char path[1024], err[1024] = "";
    snprintf(path, sizeof(path), "%s/%s", TEST_PLUGINS, file);
    sl_plugin_t *p = sl__plugin_load(path, err, sizeof(err));
    cr_assert_null(p, "%s was accepted", file);
    cr_assert_not_null(strstr(err, path), "error does not name the file: %s",
                       err);
    cr_assert_not_null(strstr(err, want), "error '%s' lacks '%s'", err, want);
}

Test(plugin, refuses_other_abi_revision)
{
    s_refused("bad_abi.so", "ABI revision 99");
    s_refused("bad_abi.so", "rebuild the plugin");
}

Test(plugin, refuses_wrong_descriptor_size)
{
    char want[64];
    snprintf(want, sizeof(want), "descriptor size %zu, expected %zu",
             sizeof(sl_stage_desc_t) - 8, sizeof(sl_stage_desc_t));
    s_refused("wrong_size.so", want);
}

Test(plugin, refuses_missing_symbol)
{
    s_refused("no_symbol.so", "symbol 'sl_stage' not found");
}

Test(plugin, refuses_garbage_magic)
{
    s_refused("garbage_magic.so", "not a sluice stage descriptor");
}

Test(plugin, refuses_transform_without_process)
{
    s_refused("no_process.so", "has no process callback");
    s_refused("no_process.so", "'no_process'");
}

Test(plugin, refuses_a_file_that_is_not_a_shared_object)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char path[1024], err[1024] = "";
    snprintf(path, sizeof(path), "%s/text.so", dir);
    cr_assert_eq(sl_test_write_file(path, "not an ELF file\n"), 0);
    cr_assert_null(sl__plugin_load(path, err, sizeof(err)));
    cr_assert_not_null(strstr(err, path), "%s", err);
    cr_assert_not_null(strstr(err, "cannot load plugin"), "%s", err);
    sl_test_rmtree(dir);
}

Test(plugin, refuses_name_mismatch_when_found_by_name)
{
    cr_assert_eq(setenv("SLUICE_PLUGIN_PATH", TEST_PLUGINS, 1), 0);
    char err[1024] = "";
    cr_assert_null(sl__plugin_load("name_mismatch", err, sizeof(err)));
    cr_assert_not_null(strstr(err, TEST_PLUGINS "/name_mismatch.so"), "%s",
                       err);
    cr_assert_not_null(
        strstr(err, "file is named 'name_mismatch' but its stage is 'other'"),
        "%s", err);
}

static int s_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    (void)cfg;
    *state = NULL;
    return 0;
}

Test(plugin, check_desc_reports_each_missing_piece)
{
    char err[512];
    sl_stage_desc_t d = {.abi = SL_STAGE_ABI,
                         .size = sizeof(sl_stage_desc_t),
                         .name = "src",
                         .kind = SL_STAGE_SOURCE};
    cr_assert_eq(sl__plugin_check_desc(&d, "x.so", err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "x.so: stage 'src' has no init callback"),
                       "%s", err);

    d.init = s_init;
    cr_assert_eq(sl__plugin_check_desc(&d, "x.so", err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "source 'src' has no pull callback"), "%s",
                       err);

    d.kind = (sl_stage_kind_t)9;
    cr_assert_eq(sl__plugin_check_desc(&d, "x.so", err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "unknown kind 9"), "%s", err);

    d.name = "";
    cr_assert_eq(sl__plugin_check_desc(&d, "x.so", err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "descriptor has no name"), "%s", err);

    d.abi = SL_STAGE_ABI_MAGIC | (SL_STAGE_ABI_REV + 1);
    cr_assert_eq(sl__plugin_check_desc(&d, "x.so", err, sizeof(err)), -EPROTO);
    cr_assert_not_null(strstr(err, "ABI revision 3"), "%s", err);
}

/* ---- search path ------------------------------------------------------- */

Test(plugin, unknown_name_lists_searched_folders)
{
    cr_assert_eq(unsetenv("SLUICE_PLUGIN_PATH"), 0);
    char err[2048] = "";
    cr_assert_null(sl__plugin_load("no_such_stage", err, sizeof(err)));
    cr_assert_not_null(strstr(err, "unknown plugin 'no_such_stage'"), "%s",
                       err);
    cr_assert_not_null(strstr(err, "no_such_stage.so"), "%s", err);
    cr_assert_not_null(strstr(err, BUILD_STAGES), "%s", err);
    cr_assert_not_null(strstr(err, "SLUICE_PLUGIN_PATH"), "%s", err);

    cr_assert_eq(setenv("SLUICE_PLUGIN_PATH", "/nonexistent/one:/nonexistent/two",
                        1), 0);
    cr_assert_null(sl__plugin_load("no_such_stage", err, sizeof(err)));
    cr_assert_not_null(
        strstr(err, "/nonexistent/one, /nonexistent/two, " BUILD_STAGES), "%s",
        err);
}

Test(plugin, plugin_path_makes_a_plugin_findable)
{
    char err[2048] = "";
    cr_assert_eq(unsetenv("SLUICE_PLUGIN_PATH"), 0);
    cr_assert_null(sl__plugin_load("checksum_sink", err, sizeof(err)),
                   "test plugins must not be on the default path");

    /* Empty entries and missing folders are skipped. */
    cr_assert_eq(setenv("SLUICE_PLUGIN_PATH",
                        "::/nonexistent:" TEST_PLUGINS ":", 1), 0);
    sl_plugin_t *p = sl__plugin_load("checksum_sink", err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    cr_assert_str_eq(p->path, TEST_PLUGINS "/checksum_sink.so");
    cr_assert_str_eq(p->desc->name, "checksum_sink");
    cr_assert_eq(p->desc->kind, SL_STAGE_SINK);
    sl__plugin_release(&p);
    cr_assert_null(p);
}

Test(plugin, plugin_path_comes_before_the_build_folder)
{
    /* A folder with its own null.so (a copy of checksum_sink renamed would
     * fail the name check, so use a symlink to the real null.so). */
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char link[1024];
    snprintf(link, sizeof(link), "%s/null.so", dir);
    cr_assert_eq(symlink(BUILD_STAGES "/null.so", link), 0);
    cr_assert_eq(setenv("SLUICE_PLUGIN_PATH", dir, 1), 0);
    char err[1024] = "";
    sl_plugin_t *p = sl__plugin_load("null", err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    cr_assert_str_eq(p->path, link);
    sl__plugin_release(&p);
    sl_test_rmtree(dir);
}

Test(plugin, loading_twice_shares_the_handle)
{
    char err[1024] = "";
    sl_plugin_t *a = sl__plugin_load("null", err, sizeof(err));
    cr_assert_not_null(a, "%s", err);
    sl_plugin_t *b = sl__plugin_load("null", err, sizeof(err));
    cr_assert_not_null(b, "%s", err);
    cr_assert_eq(a, b);
    cr_assert_eq(a->desc, b->desc);
    cr_assert_str_eq(a->path, BUILD_STAGES "/null.so");
    sl__plugin_release(&a);
    cr_assert_null(a);
    /* b still holds a reference: the descriptor stays usable. */
    cr_assert_str_eq(b->desc->name, "null");
    sl__plugin_release(&b);
    sl__plugin_release(&b); /* NULL: a no-op */

    sl_plugin_t *c = sl__plugin_load("null", err, sizeof(err));
    cr_assert_not_null(c, "reload after the last release: %s", err);
    cr_assert_str_eq(c->desc->name, "null");
    sl__plugin_release(&c);
}

typedef struct s_seen {
    char names[64][64];
    size_t n;
} s_seen_t;

static void s_visit(const sl_plugin_t *p, void *arg)
{
    s_seen_t *seen = arg;
    cr_assert_lt(seen->n, 64);
    snprintf(seen->names[seen->n++], sizeof(seen->names[0]), "%s",
             p->desc->name);
}

static int s_has(const s_seen_t *seen, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < seen->n; i++)
        n += strcmp(seen->names[i], name) == 0;
    return n;
}

Test(plugin, foreach_visits_bundled_plugins_once)
{
    cr_assert_eq(unsetenv("SLUICE_PLUGIN_PATH"), 0);
    s_seen_t seen = {.n = 0};
    sl__plugin_foreach(s_visit, &seen);
    cr_assert_eq(s_has(&seen, "generator"), 1);
    cr_assert_eq(s_has(&seen, "null"), 1);
    cr_assert_eq(s_has(&seen, "checksum_sink"), 0);

    /* With the test folder first: its good plugin is listed, the broken
     * ones are skipped, and a name in two folders is listed once. */
    cr_assert_eq(setenv("SLUICE_PLUGIN_PATH",
                        TEST_PLUGINS ":" BUILD_STAGES, 1), 0);
    memset(&seen, 0, sizeof(seen));
    sl__plugin_foreach(s_visit, &seen);
    cr_assert_eq(s_has(&seen, "checksum_sink"), 1);
    cr_assert_eq(s_has(&seen, "generator"), 1);
    cr_assert_eq(s_has(&seen, "null"), 1);
    cr_assert_eq(s_has(&seen, "bad_abi"), 0);
    cr_assert_eq(s_has(&seen, "other"), 0);
    cr_assert_eq(s_has(&seen, "no_process"), 0);
}

/* ---- checksum_sink ------------------------------------------------------ */

TestSuite(checksum_sink, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

#define CHECKSUM TEST_PLUGINS "/checksum_sink.so"

static void s_push(sl_harness_t *h, const char *json)
{
    cr_assert_eq(sl_harness_push_json(h, json), 0, "%s: %s", json,
                 sl_harness_last_error(h));
}

static char *s_result(void)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/sum.txt", sl_test_dir());
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text, "no %s", path);
    return text;
}

Test(checksum_sink, counts_ids_and_appends_one_line_per_worker)
{
    /* The harness numbers records 1, 2, 3, ... */
    sl_harness_t *h = sl_test_harness(CHECKSUM, "path: sum.txt",
                                      sl_test_dir());
    uint64_t x = 0;
    for (uint64_t id = 1; id <= 10; id++) {
        s_push(h, "{\"a\":1}");
        x ^= id;
    }
    cr_assert_eq(sl_harness_count(h), 0, "a sink emits nothing");
    sl_harness_destroy(&h);
    char want[256];
    snprintf(want, sizeof(want),
             "count=10 sum=55 xor=%" PRIu64 " violations=0 keys=0\n", x);
    char *text = s_result();
    cr_assert_str_eq(text, want);
    free(text);

    /* A second worker appends; an empty one still reports. */
    h = sl_test_harness(CHECKSUM, "path: sum.txt", sl_test_dir());
    sl_harness_destroy(&h);
    text = s_result();
    cr_assert_str_eq(text + strlen(want),
                     "count=0 sum=0 xor=0 violations=0 keys=0\n");
    free(text);
}

Test(checksum_sink, order_violations_per_key)
{
    sl_harness_t *h = sl_test_harness(CHECKSUM, "path: sum.txt\n"
                                      "order_by: [user]\nseq_field: seq",
                                      sl_test_dir());
    s_push(h, "{\"user\":\"a\",\"seq\":1}");
    s_push(h, "{\"user\":\"b\",\"seq\":1}");  /* another key: fine */
    s_push(h, "{\"user\":\"a\",\"seq\":2}");
    s_push(h, "{\"user\":\"b\",\"seq\":0}");  /* violation */
    s_push(h, "{\"user\":\"a\",\"seq\":2}");  /* equal: violation */
    s_push(h, "{\"user\":\"a\",\"seq\":3}");  /* after the last: fine */
    s_push(h, "{\"user\":\"c\",\"seq\":-5}");
    s_push(h, "{\"user\":\"c\",\"seq\":-3}");
    s_push(h, "{\"user\":\"c\",\"seq\":18446744073709551615}");
    s_push(h, "{\"user\":\"c\",\"seq\":-1}"); /* violation */
    s_push(h, "{\"user\":\"a\"}");            /* no seq: violation */
    s_push(h, "{\"user\":\"a\",\"seq\":\"4\"}"); /* not an int: violation */
    s_push(h, "{\"user\":\"a\",\"seq\":4}");
    s_push(h, "{\"seq\":1}"); /* missing key field: its own key (nil) */
    s_push(h, "{\"user\":null,\"seq\":2}"); /* the same nil key */
    sl_harness_destroy(&h);
    char *text = s_result();
    cr_assert_str_eq(text, "count=15 sum=120 xor=0 violations=5 keys=4\n");
    free(text);
}

Test(checksum_sink, composite_and_nested_keys)
{
    sl_harness_t *h =
        sl_test_harness(CHECKSUM,
                        "path: sum.txt\norder_by: [a, u.id]\nseq_field: s",
                        sl_test_dir());
    s_push(h, "{\"a\":1,\"u\":{\"id\":1},\"s\":5}");
    s_push(h, "{\"a\":1,\"u\":{\"id\":2},\"s\":1}"); /* other key */
    s_push(h, "{\"a\":\"1\",\"u\":{\"id\":1},\"s\":1}"); /* "1" is not 1 */
    s_push(h, "{\"u\":{\"id\":1},\"a\":1,\"s\":4}");  /* same key: violation */
    sl_harness_destroy(&h);
    char *text = s_result();
    cr_assert_str_eq(text, "count=4 sum=10 xor=4 violations=1 keys=3\n");
    free(text);
}

Test(checksum_sink, seq_field_alone_is_one_key)
{
    sl_harness_t *h = sl_test_harness(CHECKSUM, "path: sum.txt\nseq_field: n",
                                      sl_test_dir());
    s_push(h, "{\"n\":1,\"k\":\"x\"}");
    s_push(h, "{\"n\":2,\"k\":\"y\"}");
    s_push(h, "{\"n\":2,\"k\":\"z\"}");
    sl_harness_destroy(&h);
    char *text = s_result();
    cr_assert_str_eq(text, "count=3 sum=6 xor=0 violations=1 keys=1\n");
    free(text);
}

Test(checksum_sink, table_grows_with_many_keys)
{
    sl_harness_t *h = sl_test_harness(CHECKSUM, "path: sum.txt\n"
                                      "order_by: [k]\nseq_field: s",
                                      sl_test_dir());
    char rec[96];
    uint64_t n = 0, sum = 0, x = 0;
    for (int round = 1; round <= 3; round++)
        for (int k = 0; k < 5000; k++) {
            snprintf(rec, sizeof(rec), "{\"k\":\"key-%d\",\"s\":%d}", k, round);
            s_push(h, rec);
            n++;
            sum += n;
            x ^= n;
        }
    /* One more pass going backwards: one violation per key. */
    for (int k = 0; k < 5000; k++) {
        snprintf(rec, sizeof(rec), "{\"k\":\"key-%d\",\"s\":0}", k);
        s_push(h, rec);
        n++;
        sum += n;
        x ^= n;
    }
    sl_harness_destroy(&h);
    char want[256];
    snprintf(want, sizeof(want),
             "count=%" PRIu64 " sum=%" PRIu64 " xor=%" PRIu64
             " violations=5000 keys=5000\n", n, sum, x);
    char *text = s_result();
    cr_assert_str_eq(text, want);
    free(text);
}

Test(checksum_sink, config_errors)
{
    sl_test_refused(CHECKSUM, "", sl_test_dir(), "'path' is required");
    sl_test_refused(CHECKSUM, "path: [a]", sl_test_dir(),
                    "'path' must be a path string");
    /* The position is the offending value's. */
    sl_test_refused(CHECKSUM, "path: s.txt\norder_by: user\nseq_field: s",
                    sl_test_dir(), "config:2:11: ");
    sl_test_refused(CHECKSUM, "path: s.txt\norder_by: user\nseq_field: s",
                    sl_test_dir(), "'order_by' must be a list of field names");
    sl_test_refused(CHECKSUM, "path: s.txt\norder_by: [user, 3]\nseq_field: s",
                    sl_test_dir(), "config:2:18: ");
    sl_test_refused(CHECKSUM,
                    "path: s.txt\norder_by: [user, 3, '']\nseq_field: s",
                    sl_test_dir(), "order_by[1] must be a field name");
    sl_test_refused(CHECKSUM,
                    "path: s.txt\norder_by: [user, 3, '']\nseq_field: s",
                    sl_test_dir(), "order_by[2] must be a field name");
    sl_test_refused(CHECKSUM, "path: s.txt\norder_by: [user]", sl_test_dir(),
                    "'order_by' needs 'seq_field'");
    sl_test_refused(CHECKSUM, "path: s.txt\nseq_field: ''", sl_test_dir(),
                    "'seq_field' must be a field");
    sl_test_refused(CHECKSUM, "path: s.txt\nbogus: 1", sl_test_dir(),
                    "unknown key 'bogus'");
    sl_test_refused(CHECKSUM, "path: no/such/dir/s.txt", sl_test_dir(),
                    "cannot open '");
    sl_test_refused(CHECKSUM, "path: no/such/dir/s.txt", sl_test_dir(),
                    "No such file or directory");
}

Test(checksum_sink, runs_in_the_real_runtime_with_two_workers)
{
    char topo[1024], path[1024];
    snprintf(topo, sizeof(topo), "%s/t.yaml", sl_test_dir());
    cr_assert_eq(sl_test_write_file(topo,
                                    "name: checksum\n"
                                    "stages:\n"
                                    "  - name: gen\n"
                                    "    plugin: generator\n"
                                    "    config: {count: 3000}\n"
                                    "  - name: sum\n"
                                    "    plugin: checksum_sink\n"
                                    "    workers: 2\n"
                                    "    partition_by: user\n"
                                    "    config:\n"
                                    "      path: sum.txt\n"
                                    "      order_by: [user]\n"
                                    "      seq_field: seq\n"),
                 0);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "SLUICE_PLUGIN_PATH='%s' '%s' run --quiet '%s' 2>&1",
             TEST_PLUGINS, sl_test_cli(), topo);
    char *out = NULL;
    int rc = sl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s\n%s", cmd, out ? out : "");
    free(out);

    snprintf(path, sizeof(path), "%s/sum.txt", sl_test_dir());
    cr_assert_eq(sl_test_count_lines(path), 2, "one line per worker");
    char *text = s_result();
    uint64_t count = 0, keys = 0, violations = 0;
    const char *line = text;
    for (int i = 0; i < 2; i++) {
        uint64_t c, s, x, v, k;
        cr_assert_eq(sscanf(line,
                            "count=%" SCNu64 " sum=%" SCNu64 " xor=%" SCNu64
                            " violations=%" SCNu64 " keys=%" SCNu64,
                            &c, &s, &x, &v, &k),
                     5, "line %d of: %s", i, text);
        count += c;
        violations += v;
        keys += k;
        line = strchr(line, '\n') + 1;
    }
    cr_assert_eq(count, 3000);
    cr_assert_eq(violations, 0, "generator seqs rise per user");
    cr_assert_eq(keys, 1000, "partitioned: each user on one worker");
    free(text);
}
