/* delay and burn pass records on as they are, without decoding them; a
 * record the host refuses as not a map fails on its first attempt (dead-
 * lettered, never retried) and the stage goes on. Their other behaviour is
 * tested in test_test_stages.c. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <stdio.h>
#include <string.h>

static void s_non_map_fails_at_once(const char *plugin, const char *yaml)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
    } bad[] = {
        {"array [1]", "\x91\x01", 2},
        {"a string", "\xa1x", 2},
        {"a lone 0xc1", "\xc1", 1},
        {"no bytes", "", 0},
    };
    const size_t nbad = sizeof(bad) / sizeof(bad[0]);
    sl_harness_t *h = sl_test_harness(plugin, yaml, NULL);
    sl_test_fail_log_t f = {0};

    sl_harness_on_fail(h, sl_test_on_fail, &f);
    for (size_t i = 0; i < nbad; i++) {
        cr_assert_lt(sl_harness_push_msgpack(h, bad[i].bytes, bad[i].len), 0,
                     "%s: %s accepted", plugin, bad[i].what);
        cr_assert_eq(f.n, (int)i + 1, "%s: %s", plugin, bad[i].what);
        cr_assert_str_eq(f.msg, "record is not a msgpack map", "%s: %s",
                         plugin, bad[i].what);
        cr_assert_eq(f.final, 1, "%s: %s would be retried", plugin,
                     bad[i].what);
        cr_assert_eq(sl_harness_count(h), 0, "%s: %s emitted", plugin,
                     bad[i].what);
    }
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":1}"), 0, "goes on");
    cr_assert_eq(sl_harness_count(h), 1);
    cr_assert_str_eq(sl_harness_output(h, 0), "{\"a\":1}");
    cr_assert_eq(sl_harness_errors(h), nbad);
    sl_harness_destroy(&h);
}

Test(delay, non_map_record_is_dead_lettered_at_once)
{
    s_non_map_fails_at_once("delay", "ms: 0");
}

Test(burn, non_map_record_is_dead_lettered_at_once)
{
    s_non_map_fails_at_once("burn", "iterations: 10");
}
