/* lua: a record holding a value the script cannot be given fails on its
 * first attempt (dead-lettered, never retried); an error the script raises
 * itself is retried. The stage's other behaviour is tested in
 * test_lua.c. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <msgpack.h>
#include <stdio.h>
#include <string.h>

Test(lua_failures, unconvertible_input_is_dead_lettered_at_once)
{
    sl_harness_t *h = sl_test_harness(
        "lua",
        "code: |\n"
        "  function process(r)\n"
        "    if r.boom then error('boom') end\n"
        "    return r\n"
        "  end\n",
        NULL);
    sl_test_fail_log_t f = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;

    sl_harness_on_fail(h, sl_test_on_fail, &f);
    cr_assert_lt(sl_harness_push_json(h, "{\"u\":18446744073709551615}"), 0);
    cr_assert_eq(f.n, 1);
    cr_assert_str_eq(f.msg, "lua: integer 18446744073709551615 is above the "
                            "Lua integer range (2^63-1)");
    cr_assert_eq(f.final, 1, "retried");

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "e", 1);
    msgpack_pack_ext_with_body(&pk, "ab", 2, 5);
    cr_assert_lt(sl_harness_push_msgpack(h, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
    cr_assert_eq(f.n, 2);
    cr_assert_str_eq(f.msg, "lua: msgpack ext values are not supported "
                            "(type 5)");
    cr_assert_eq(f.final, 1, "retried");

    cr_assert_lt(sl_harness_push_msgpack(h, "\x81\xa1k\xc1", 4), 0);
    cr_assert_eq(f.n, 3);
    cr_assert_str_eq(f.msg, "record is not a msgpack map");
    cr_assert_eq(f.final, 1, "retried");

    /* The script's own error: it may depend on more than the record. */
    cr_assert_lt(sl_harness_push_json(h, "{\"boom\":true}"), 0);
    cr_assert_eq(f.n, 4);
    cr_assert_not_null(strstr(f.msg, "boom"), "%s", f.msg);
    cr_assert_eq(f.final, 0, "a script error is retried");

    cr_assert_eq(sl_harness_push_json(h, "{\"ok\":1}"), 0, "goes on");
    cr_assert_eq(sl_harness_count(h), 1);
    cr_assert_str_eq(sl_harness_output(h, 0), "{\"ok\":1}");
    sl_harness_destroy(&h);
}
