/* The lua stage, driven through the single-stage harness. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A harness whose config is `code:` holding lua (indented as a YAML
 * block scalar) plus the extra YAML lines in more. */
static sl_harness_t *s_code(const char *lua, const char *more)
{
    char yaml[4096];
    int n = snprintf(yaml, sizeof yaml, "%scode: |\n", more ? more : "");
    for (const char *p = lua; *p; p++) {
        if (p == lua || p[-1] == '\n')
            n += snprintf(yaml + n, sizeof yaml - (size_t)n, "  ");
        yaml[n++] = *p;
    }
    yaml[n] = '\0';
    return sl_test_harness("lua", yaml, NULL);
}

static void s_write(const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", sl_test_dir(), name);
    cr_assert_eq(sl_test_write_file(path, text), 0);
}

TestSuite(lua_script, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

/* ---- types ------------------------------------------------------------- */

Test(lua_types, identity_round_trips_every_type_byte_for_byte)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 17);
#define KEY(s) msgpack_pack_str_with_body(&pk, s, strlen(s))
    KEY("nil"), msgpack_pack_nil(&pk);
    KEY("t"), msgpack_pack_true(&pk);
    KEY("f"), msgpack_pack_false(&pk);
    KEY("small"), msgpack_pack_int64(&pk, 7);
    KEY("max"), msgpack_pack_int64(&pk, INT64_MAX);
    KEY("min"), msgpack_pack_int64(&pk, INT64_MIN);
    KEY("neg"), msgpack_pack_int64(&pk, -300);
    KEY("float"), msgpack_pack_double(&pk, 0.1);
    KEY("whole"), msgpack_pack_double(&pk, 3.0);
    KEY("str"), KEY("h\xc3\xa9llo");
    KEY("empty"), KEY("");
    KEY("bin"), msgpack_pack_bin_with_body(&pk, "a\0b", 3);
    KEY("arr"), msgpack_pack_array(&pk, 4), msgpack_pack_int64(&pk, 1),
        KEY("x"), msgpack_pack_nil(&pk), msgpack_pack_array(&pk, 0);
    KEY("earr"), msgpack_pack_array(&pk, 0);
    KEY("emap"), msgpack_pack_map(&pk, 0);
    /* keys 1..n must stay a map, not become an array */
    KEY("intkeys"), msgpack_pack_map(&pk, 2), msgpack_pack_int64(&pk, 1),
        KEY("a"), msgpack_pack_int64(&pk, 2), KEY("b");
    /* non-string keys at the top */
    msgpack_pack_int64(&pk, -5), msgpack_pack_map(&pk, 3), KEY("deep"),
        msgpack_pack_map(&pk, 1), msgpack_pack_true(&pk), KEY("yes"),
        msgpack_pack_double(&pk, 2.5), KEY("f"), msgpack_pack_nil(&pk),
        KEY("nilkey");
#undef KEY
    sl_harness_t *h = s_code("function process(r, m) return r end\n", NULL);
    int rc = sl_harness_push_msgpack(h, sb.data, sb.size);
    cr_assert_eq(rc, 0, "%s", sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), 1);
    size_t len;
    const void *out = sl_harness_output_msgpack(h, 0, &len);
    cr_assert_eq(len, sb.size, "got %s", sl_harness_output(h, 0));
    cr_assert(!memcmp(out, sb.data, len), "got %s", sl_harness_output(h, 0));
    sl_harness_destroy(&h);
    msgpack_sbuffer_destroy(&sb);
}

Test(lua_types, lua_sees_the_documented_types)
{
    sl_harness_t *h = s_code(
        "function process(r)\n"
        "  return {{i = math.type(r.i)}, {f = math.type(r.f)},\n"
        "          {s = type(r.s)}, {n = r.n == sluice.null},\n"
        "          {a = #r.a}, {m = r.m.k}}\n"
        "end\n",
        NULL);
    cr_assert_eq(sl_harness_push_json(h, "{\"i\":3,\"f\":3.5,\"s\":\"x\","
                                         "\"n\":null,\"a\":[1,2],"
                                         "\"m\":{\"k\":\"v\"}}"),
                 0, "%s", sl_harness_last_error(h));
    const char *want[] = {"{\"i\":\"integer\"}", "{\"f\":\"float\"}",
                          "{\"s\":\"string\"}", "{\"n\":true}", "{\"a\":2}",
                          "{\"m\":\"v\"}"};
    cr_assert_eq(sl_harness_count(h), 6);
    for (size_t i = 0; i < 6; i++)
        cr_expect_str_eq(sl_harness_output(h, i), want[i]);
    sl_harness_destroy(&h);
}

Test(lua_types, helpers_make_bin_null_and_empty_arrays)
{
    sl_harness_t *h = s_code(
        "function process(r)\n"
        "  local b = sluice.bin('hi')\n"
        "  return {{b = b}, {len = #b, s = tostring(b)}, {a = sluice.array()},\n"
        "          {m = {}}, {n = sluice.null}, {l = {3, 'x'}}}\n"
        "end\n",
        NULL);
    cr_assert_eq(sl_harness_push_json(h, "{}"), 0, "%s",
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), 6);
    cr_expect_str_eq(sl_harness_output(h, 0), "{\"b\":\"aGk=\"}");
    const char *o1 = sl_harness_output(h, 1);
    cr_expect(!strcmp(o1, "{\"len\":2,\"s\":\"hi\"}") ||
                  !strcmp(o1, "{\"s\":\"hi\",\"len\":2}"),
              "got %s", o1);
    cr_expect_str_eq(sl_harness_output(h, 2), "{\"a\":[]}");
    cr_expect_str_eq(sl_harness_output(h, 3), "{\"m\":{}}");
    cr_expect_str_eq(sl_harness_output(h, 4), "{\"n\":null}");
    cr_expect_str_eq(sl_harness_output(h, 5), "{\"l\":[3,\"x\"]}");
    sl_harness_destroy(&h);
}

Test(lua_types, fields_keep_their_order_through_edits)
{
    sl_harness_t *h = s_code("function process(r)\n"
                             "  r.a = nil; r.m = r.m * 10; r.new = true\n"
                             "  return r\n"
                             "end\n",
                             NULL);
    sl_test_push_ok(h, "{\"z\":1,\"a\":2,\"m\":3,\"q\":{\"y\":1,\"b\":2}}",
                    "{\"z\":1,\"m\":30,\"q\":{\"y\":1,\"b\":2},\"new\":true}");
    sl_harness_destroy(&h);
}

Test(lua_types, documented_lossy_and_refused_values)
{
    sl_harness_t *h = s_code("function process(r) return r end\n", NULL);
    /* float32 comes back as the same value in float64 */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "f", 1);
    msgpack_pack_float(&pk, 1.5f);
    cr_assert_eq(sl_harness_push_msgpack(h, sb.data, sb.size), 0);
    size_t len;
    const unsigned char *out = sl_harness_output_msgpack(h, 0, &len);
    cr_assert_eq(len, 12);
    cr_expect_eq(out[3], 0xcb);
    cr_expect_str_eq(sl_harness_output(h, 0), "{\"f\":1.5}");
    /* above INT64_MAX fails the record */
    sl_test_push_fails(h, "{\"u\":18446744073709551615}",
                       "lua: integer 18446744073709551615 is above the Lua "
                       "integer range (2^63-1)");
    /* ext fails the record */
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "e", 1);
    msgpack_pack_ext_with_body(&pk, "ab", 2, 5);
    cr_assert_lt(sl_harness_push_msgpack(h, sb.data, sb.size), 0);
    cr_expect_str_eq(sl_harness_last_error(h),
                     "lua: msgpack ext values are not supported (type 5)");
    cr_expect_eq(sl_harness_count(h), 1);
    msgpack_sbuffer_destroy(&sb);
    sl_harness_destroy(&h);
}

/* ---- returns ------------------------------------------------------------- */

Test(lua_returns, nil_drops_the_record)
{
    sl_harness_t *h = s_code("function process(r)\n"
                             "  if r.keep then return r end\n"
                             "end\n",
                             NULL);
    cr_assert_eq(sl_harness_push_json(h, "{\"keep\":false}"), 0);
    cr_expect_eq(sl_harness_count(h), 0);
    cr_expect_eq(sl_harness_errors(h), 0);
    sl_test_push_ok(h, "{\"keep\":true}", "{\"keep\":true}");
    sl_harness_destroy(&h);
}

Test(lua_returns, a_list_fans_out_in_order)
{
    sl_harness_t *h = s_code("function process(r)\n"
                             "  local out = {}\n"
                             "  for i = 1, r.n do out[i] = {i = i} end\n"
                             "  return out\n"
                             "end\n",
                             NULL);
    cr_assert_eq(sl_harness_push_json(h, "{\"n\":3}"), 0, "%s",
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), 3);
    cr_expect_str_eq(sl_harness_output(h, 0), "{\"i\":1}");
    cr_expect_str_eq(sl_harness_output(h, 1), "{\"i\":2}");
    cr_expect_str_eq(sl_harness_output(h, 2), "{\"i\":3}");
    /* an empty list made with sluice.array() emits nothing */
    sl_harness_t *e = s_code("function process(r) return sluice.array() end\n",
                             NULL);
    cr_assert_eq(sl_harness_push_json(e, "{\"n\":3}"), 0);
    cr_expect_eq(sl_harness_count(e), 0);
    cr_expect_eq(sl_harness_errors(e), 0);
    sl_harness_destroy(&e);
    sl_harness_destroy(&h);
}

Test(lua_returns, wrong_types_are_named)
{
    sl_harness_t *h = s_code("function process(r)\n"
                             "  if r.k == 1 then return 42 end\n"
                             "  if r.k == 2 then return 'x' end\n"
                             "  if r.k == 3 then return {{a = 1}, 5} end\n"
                             "  if r.k == 4 then return {{a = 1}, {1, 2}} end\n"
                             "  return {{a = 1}, {f = print}}\n"
                             "end\n",
                             NULL);
    const char *pre =
        "lua: process must return nil, a table or a list of tables, got ";
    char want[256];
    snprintf(want, sizeof want, "%snumber", pre);
    sl_test_push_fails(h, "{\"k\":1}", want);
    snprintf(want, sizeof want, "%sstring", pre);
    sl_test_push_fails(h, "{\"k\":2}", want);
    snprintf(want, sizeof want, "%sa list with a number at index 2", pre);
    sl_test_push_fails(h, "{\"k\":3}", want);
    snprintf(want, sizeof want, "%sa list whose item 2 is an array", pre);
    sl_test_push_fails(h, "{\"k\":4}", want);
    /* checked before the first item goes out: nothing is emitted */
    sl_test_push_fails(h, "{\"k\":5}",
                       "lua: cannot convert a function value to msgpack");
    sl_harness_destroy(&h);
}

Test(lua_returns, meta_describes_the_record)
{
    sl_harness_t *h = s_code(
        "function process(r, m)\n"
        "  return {a = m.attempts, p = m.priority,\n"
        "          ok = math.type(m.id) == 'integer' and m.ts > 0}\n"
        "end\n",
        NULL);
    cr_assert_eq(sl_harness_push_json(h, "{}"), 0, "%s",
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), 1);
    const char *o = sl_harness_output(h, 0);
    cr_expect(strstr(o, "\"a\":0") && strstr(o, "\"p\":") &&
                  strstr(o, "\"ok\":true"),
              "got %s", o);
    sl_harness_destroy(&h);
}

/* ---- failures -------------------------------------------------------------- */

Test(lua_script, runtime_error_names_the_line)
{
    s_write("t.lua", "function process(r)\n"
                     "  if r.boom then error('boom') end\n"
                     "  return {v = r.a.b}\n"
                     "end\n");
    sl_harness_t *h = sl_test_harness("lua", "script: t.lua\n", sl_test_dir());
    sl_test_push_fails(h, "{\"boom\":true}", "lua: t.lua:2: boom");
    sl_test_push_fails(h, "{}", "lua: t.lua:3: attempt to index a nil value "
                                "(field 'a')");
    /* the state is still good after errors */
    sl_test_push_ok(h, "{\"a\":{\"b\":1}}", "{\"v\":1}");
    sl_harness_destroy(&h);
}

Test(lua_script, compile_error_names_file_and_line)
{
    s_write("bad.lua", "function process(r)\n"
                       "  return r +\n"
                       "end\n");
    sl_test_refused("lua", "script: bad.lua\n", sl_test_dir(),
                    "bad.lua:3: unexpected symbol near 'end'");
    sl_test_refused("lua", "code: 'function process(r) return r end end'\n",
                    NULL, "code:1: <eof> expected near 'end'");
    sl_test_refused("lua", "script: missing.lua\n", sl_test_dir(),
                    "cannot read script");
}

Test(lua_config, bad_configs_are_refused)
{
    sl_test_refused("lua", "code: 'x = 1'\nscript: a.lua\n", NULL,
                    "give either 'script' or 'code', not both");
    sl_test_refused("lua", "function: f\n", NULL,
                    "one of 'script' (a Lua file) or 'code'");
    sl_test_refused("lua", "code: 'x = 1'\n", NULL,
                    "the script defines no function 'process' (got nil)");
    sl_test_refused("lua", "code: 'function f() end'\nfunction: g\n", NULL,
                    "the script defines no function 'g'");
    sl_test_refused("lua", "code: 'error(\"top\")'\n", NULL,
                    "running the script: code:1: top");
    sl_test_refused("lua", "code: 'function process() end'\nargs: {a: 1}\n",
                    NULL, "'args' is given to the 'init' function");
    sl_test_refused("lua",
                    "code: 'function process() end'\nmax_instructions: 0\n",
                    NULL, "'max_instructions' must be between 1 and");
    sl_test_refused("lua", "code: 'function process() end'\nbogus: 1\n", NULL,
                    "bogus");
}

Test(lua_limits, instruction_limit)
{
    sl_harness_t *h = s_code(
        "function process(r)\n"
        "  if r.spin then while true do end end\n"
        "  if r.sneaky then\n"
        "    while true do pcall(function() while true do end end) end\n"
        "  end\n"
        "  return r\n"
        "end\n",
        "max_instructions: 100000\n");
    sl_test_push_fails(h, "{\"spin\":true}",
                       "lua: instruction limit (100000) exceeded at code:2");
    sl_test_push_fails(h, "{\"sneaky\":true}",
                       "lua: instruction limit (100000) exceeded");
    sl_test_push_ok(h, "{\"ok\":1}", "{\"ok\":1}");
    sl_harness_destroy(&h);
}

Test(lua_limits, memory_limit)
{
    sl_harness_t *h = s_code("function process(r)\n"
                             "  if r.big then return {s = string.rep('x', 1e8)} end\n"
                             "  if r.many then local t = {}\n"
                             "    for i = 1, 1e7 do t[i] = {i} end end\n"
                             "  return r\n"
                             "end\n",
                             "max_memory_mb: 4\n");
    sl_test_push_fails(h, "{\"big\":true}", "lua: memory limit (4 MB) exceeded");
    sl_test_push_fails(h, "{\"many\":true}",
                       "lua: memory limit (4 MB) exceeded");
    sl_test_push_ok(h, "{\"ok\":1}", "{\"ok\":1}");
    sl_harness_destroy(&h);
}

/* {"a":{"a":...{"a":1}}} with levels maps in all, as msgpack. */
static void s_nested(msgpack_sbuffer *sb, int levels)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    for (int i = 0; i < levels; i++) {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "a", 1);
    }
    msgpack_pack_int64(&pk, 1);
}

static void s_count_final(void *arg, const char *msg, int final,
                          const void *record, size_t len)
{
    (void)msg;
    (void)record;
    (void)len;
    *(int *)arg += final != 0;
}

/* The host's msgpack reader stops at limits.max_depth (at most 32
 * levels), so deeper input never reaches the stage, and output is held to
 * the same limit when it is emitted: a deeper result fails its record for
 * good with the host's reason. Past 64 levels (or with a cycle) the
 * stage's own conversion gives up before the host sees anything. */
Test(lua_limits, deep_nesting)
{
    sl_harness_t *h = s_code(
        "function process(r)\n"
        "  if r.cycle then local t = {} t.t = t return t end\n"
        "  if r.n then local t = {v = 1}\n"
        "    for i = 2, r.n do t = {a = t} end return t end\n"
        "  return r\n"
        "end\n",
        NULL);
    int finals = 0;
    sl_harness_on_fail(h, s_count_final, &finals);
    msgpack_sbuffer in;
    s_nested(&in, 32);
    cr_assert_eq(sl_harness_push_msgpack(h, in.data, in.size), 0, "%s",
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), 1);
    size_t len;
    const void *out = sl_harness_output_msgpack(h, 0, &len);
    cr_expect(len == in.size && !memcmp(out, in.data, len));
    msgpack_sbuffer_destroy(&in);

    cr_assert_eq(sl_harness_push_json(h, "{\"n\":32}"), 0, "%s",
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), 2);
    out = sl_harness_output_msgpack(h, 1, &len);
    cr_expect_eq(len, 31 * 3 + 4); /* 31 x {"a": ...} around {"v":1} */
    const char *too_deep = "stage 'lua': output record nested deeper than "
                           "limits.max_depth (32)";
    sl_test_push_fails(h, "{\"n\":33}", too_deep);
    sl_test_push_fails(h, "{\"n\":64}", too_deep);
    cr_expect_eq(finals, 2, "over the limit: no retry");
    sl_test_push_fails(h, "{\"n\":65}",
                       "lua: value nested deeper than 64 levels");
    sl_test_push_fails(h, "{\"cycle\":1}",
                       "lua: value nested deeper than 64 levels");
    cr_expect_eq(sl_harness_count(h), 2);
    sl_harness_destroy(&h);
}

Test(lua_script, init_gets_args)
{
    s_write("i.lua", "local tag\n"
                     "function setup(args)\n"
                     "  tag = args.prefix .. ':' .. math.type(args.n) .. ':'\n"
                     "        .. #args.list .. ':' .. tostring(args.none == sluice.null)\n"
                     "end\n"
                     "function tagit(r) r.tag = tag return r end\n");
    sl_harness_t *h = sl_test_harness(
        "lua",
        "script: i.lua\nfunction: tagit\ninit: setup\n"
        "args: {prefix: p, n: 3, list: [1, 2], none: null}\n",
        sl_test_dir());
    cr_assert_eq(sl_harness_push_json(h, "{\"x\":1}"), 0, "%s",
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), 1);
    cr_expect_str_eq(sl_harness_output(h, 0),
                     "{\"x\":1,\"tag\":\"p:integer:2:true\"}");
    sl_harness_destroy(&h);
    sl_test_refused("lua", "script: i.lua\nfunction: tagit\ninit: setup\n",
                    sl_test_dir(),
                    "calling init: i.lua:4: attempt to get length of a nil "
                    "value (field 'list')");
    sl_test_refused("lua", "script: i.lua\nfunction: tagit\ninit: nope\n",
                    sl_test_dir(), "the script defines no function 'nope'");
}

Test(lua_script, sandbox_keeps_files_and_bytecode_out)
{
    sl_harness_t *h = s_code(
        "function process(r)\n"
        "  local f, err = load(string.dump(function() end))\n"
        "  return {io = type(io), exit = type(os.exit), time = type(os.time),\n"
        "          df = type(dofile), bc = f == nil and err ~= nil}\n"
        "end\n",
        NULL);
    cr_assert_eq(sl_harness_push_json(h, "{}"), 0, "%s",
                 sl_harness_last_error(h));
    const char *o = sl_harness_output(h, 0);
    cr_expect(strstr(o, "\"io\":\"nil\"") && strstr(o, "\"exit\":\"nil\"") &&
                  strstr(o, "\"time\":\"function\"") &&
                  strstr(o, "\"df\":\"nil\"") && strstr(o, "\"bc\":true"),
              "got %s", o);
    sl_harness_destroy(&h);
}

Test(lua_script, inline_code_keeps_state_across_records)
{
    sl_harness_t *h = s_code("local n = 0\n"
                             "function process(r) n = n + 1 r.n = n return r end\n",
                             NULL);
    sl_test_push_ok(h, "{}", "{\"n\":1}");
    sl_test_push_ok(h, "{}", "{\"n\":2}");
    sl_harness_destroy(&h);
}
