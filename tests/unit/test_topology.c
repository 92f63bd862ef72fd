/* Topologies: one test per kind of error, asserting the exact FILE:LINE:COL
 * and message, and the resolved graph of valid files. Tests marked
 * "plugins" need the bundled generator/null/delay/stdout plugins built into
 * the build's stages folder and are skipped until they are. */
#include <criterion/criterion.h>

#include "cpu.h"
#include "topology.h"
#include "testutil.h"

#include <sluice/json.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static sl_diag_t g_diag;
static sl_topology_t *g_topo;

static void setup(void)
{
    sl__diag_init(&g_diag);
    g_topo = NULL;
}

static void teardown(void)
{
    sl__topology_destroy(&g_topo);
    sl__diag_fini(&g_diag);
}

TestSuite(topology, .init = setup, .fini = teardown);

static bool have_plugins(void)
{
    static const char *const names[] = {"generator", "null", "delay",
                                        "stdout"};
    for (size_t i = 0; i < 4; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/stages/%s.so", SL_TEST_BINARY_DIR,
                 names[i]);
        if (access(path, R_OK) != 0)
            return false;
    }
    return true;
}

#define NEEDS_PLUGINS()                                                   \
    do {                                                                  \
        if (!have_plugins())                                              \
            cr_skip_test("bundled plugins are not built yet");            \
    } while (0)

static sl_topology_t *parse(const char *yaml)
{
    g_topo = sl__topology_parse("topo.yaml", "/base", yaml, &g_diag);
    return g_topo;
}

static void fails(const char *yaml)
{
    cr_assert_null(parse(yaml), "expected the topology to be refused");
    cr_assert_gt(g_diag.count, 0);
}

static void ok(const char *yaml)
{
    cr_assert_not_null(parse(yaml), "refused:\n%s",
                       sl_test_diag_text(&g_diag));
    cr_assert_eq(g_diag.count, 0, "%s", sl_test_diag_text(&g_diag));
}

static void expect_no(const char *fragment)
{
    for (size_t i = 0; i < g_diag.count; i++)
        cr_assert_null(strstr(g_diag.lines[i], fragment),
                       "unexpected diagnostic: %s", g_diag.lines[i]);
}

/* ---- errors that need no plugin ----------------------------------------- */

Test(topology, yaml_errors_come_through)
{
    fails("stages:\n  - name: a\n    name: b\n");
    sl_test_expect_line(&g_diag,
                        "topo.yaml:3:5: duplicate key 'name' (first at 2:5)");
}

Test(topology, root_must_be_a_map)
{
    fails("- a\n- b\n");
    sl_test_expect_line(&g_diag, "topo.yaml:1:1: a topology must be a map "
                        "with a 'stages' list, got a sequence");
}

Test(topology, unknown_keys_at_every_level_with_hints)
{
    fails("stagse: []\n"
          "defaults:\n"
          "  worker: 2\n"
          "nme: x\n"
          "other: 1\n");
    sl_test_expect_line(&g_diag, "topo.yaml:1:1: unknown key 'stagse' at the "
                        "top level; did you mean 'stages'?");
    sl_test_expect_line(&g_diag, "topo.yaml:3:3: unknown key 'worker' in "
                        "'defaults'; did you mean 'workers'?");
    sl_test_expect_line(&g_diag, "topo.yaml:4:1: unknown key 'nme' at the "
                        "top level; did you mean 'name'?");
    sl_test_expect_line(&g_diag,
                        "topo.yaml:5:1: unknown key 'other' at the top level");
    sl_test_expect_line(&g_diag,
                        "topo.yaml:1:1: missing required key 'stages'");

    teardown();
    setup();
    fails("stages:\n"
          "  - name: g\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "    form: x\n"
          "    colour: red\n"
          "  - name: n\n"
          "    plugin: null\n");
    sl_test_expect_line(&g_diag, "topo.yaml:5:5: unknown key 'form' in stage "
                        "'g'; did you mean 'from'?");
    sl_test_expect_line(&g_diag,
                        "topo.yaml:6:5: unknown key 'colour' in stage 'g'");
}

Test(topology, missing_required_keys)
{
    fails("stages:\n"
          "  - plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: n\n");
    sl_test_expect_line(&g_diag, "topo.yaml:2:5: stage #1: missing required "
                        "key 'name'");
    sl_test_expect_line(&g_diag, "topo.yaml:4:5: stage 'n': missing required "
                        "key 'plugin'");
}

Test(topology, wrong_types_and_ranges)
{
    fails("defaults: {queue: 0, workers: 0}\n"
          "stages:\n"
          "  - name: g\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "    workers: many\n"
          "    queue: 16777217\n"
          "    batch: 4097\n"
          "  - name: n\n"
          "    plugin: null\n"
          "    queue: [1]\n"
          "    fanout: broadcats\n"
          "    partition_by: user..id\n"
          "    from: {a: 1}\n"
          "    config: [1]\n"
          "    batch: 0x10\n"
          "  - name: 'a b'\n"
          "    plugin: [x]\n"
          "  - just a string\n");
    sl_test_expect_line(&g_diag, "topo.yaml:1:19: defaults: 'queue' must be "
                        "from 1 to 16777216, got 0");
    sl_test_expect_line(&g_diag, "topo.yaml:1:31: defaults: 'workers' must "
                        "be 'auto' or an integer from 1 to 1024, got integer "
                        "'0'");
    sl_test_expect_line(&g_diag, "topo.yaml:6:14: stage 'g': 'workers' must "
                        "be 'auto' or an integer from 1 to 1024, got string "
                        "'many'");
    sl_test_expect_line(&g_diag, "topo.yaml:7:12: stage 'g': 'queue' must be "
                        "from 1 to 16777216, got 16777217");
    sl_test_expect_line(&g_diag, "topo.yaml:8:12: stage 'g': 'batch' must be "
                        "from 1 to 4096, got 4097");
    sl_test_expect_line(&g_diag, "topo.yaml:11:12: stage 'n': 'queue' must "
                        "be an integer from 1 to 16777216, got a sequence");
    sl_test_expect_line(&g_diag, "topo.yaml:12:13: stage 'n': 'fanout' must "
                        "be 'broadcast' or 'round_robin', got string "
                        "'broadcats'; did you mean 'broadcast'?");
    sl_test_expect_line(&g_diag, "topo.yaml:13:19: stage 'n': 'partition_by' "
                        "must be a dotted field path such as 'user.id', got "
                        "string 'user..id'");
    sl_test_expect_line(&g_diag, "topo.yaml:14:11: stage 'n': 'from' must be "
                        "a stage name or a non-empty list of them, got a map");
    sl_test_expect_line(&g_diag, "topo.yaml:15:13: stage 'n': 'config' must "
                        "be a map, got a sequence");
    sl_test_expect_line(&g_diag, "topo.yaml:17:11: stage name 'a b' may only "
                        "contain letters, digits, '_' and '-'");
    sl_test_expect_line(&g_diag, "topo.yaml:18:13: stage #3: 'plugin' must "
                        "be a string, got a sequence");
    sl_test_expect_line(&g_diag, "topo.yaml:19:5: stage #4: each entry of "
                        "'stages' must be a map, got string 'just a string'");
    /* 0x10 is a valid batch. */
    expect_no("'batch' must be from 1 to 4096, got 16");
}

Test(topology, spelled_out_null_is_a_name_but_tilde_is_nothing)
{
    fails("stages:\n"
          "  - name: null\n"
          "    plugin: ~\n"
          "  - name:\n"
          "    plugin: null\n"
          "    from: null\n");
    sl_test_expect_line(&g_diag, "topo.yaml:3:13: stage 'null': 'plugin' "
                        "must be a string, got null");
    sl_test_expect_line(&g_diag, "topo.yaml:4:10: stage #2: 'name' must be a "
                        "string, got null");
    expect_no("unknown stage");
}

Test(topology, duplicate_stage_names)
{
    fails("stages:\n"
          "  - name: g\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: g\n"
          "    plugin: null\n");
    sl_test_expect_line(&g_diag, "topo.yaml:5:11: duplicate stage name 'g' "
                        "(first at 2:11)");
}

Test(topology, from_unknown_or_repeated_stage)
{
    fails("stages:\n"
          "  - name: gen\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: sink\n"
          "    plugin: null\n"
          "    from: [gen, gne, nothing, gen]\n");
    sl_test_expect_line(&g_diag, "topo.yaml:7:17: stage 'sink': 'from' names "
                        "unknown stage 'gne'; did you mean 'gen'?");
    sl_test_expect_line(&g_diag, "topo.yaml:7:22: stage 'sink': 'from' names "
                        "unknown stage 'nothing'");
    sl_test_expect_line(&g_diag, "topo.yaml:7:31: stage 'sink': 'gen' is "
                        "listed twice in 'from'");
    cr_assert_eq(g_diag.count, 3, "%s", sl_test_diag_text(&g_diag));
}

Test(topology, cycles_name_their_path)
{
    fails("stages:\n"
          "  - name: src\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: a\n"
          "    plugin: delay\n"
          "    config: {ms: 0}\n"
          "    from: [src, b]\n"
          "  - name: b\n"
          "    plugin: delay\n"
          "    config: {ms: 0}\n"
          "  - name: out\n"
          "    plugin: null\n"
          "    from: b\n");
    sl_test_expect_line(&g_diag, "topo.yaml:8:17: cycle: a -> b -> a");
    expect_no("-> src");

    teardown();
    setup();
    fails("stages:\n"
          "  - name: src\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: self\n"
          "    plugin: delay\n"
          "    config: {ms: 0}\n"
          "    from: [src, self]\n"
          "  - name: out\n"
          "    plugin: null\n");
    sl_test_expect_line(&g_diag, "topo.yaml:8:17: cycle: self -> self");
}

Test(topology, queue_must_cover_every_input)
{
    fails("stages:\n"
          "  - name: g1\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: g2\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: sink\n"
          "    plugin: null\n"
          "    from: [g1, g2]\n"
          "    queue: 1\n");
    sl_test_expect_line(&g_diag, "topo.yaml:11:12: stage 'sink' has 2 inputs "
                        "but 'queue' is 1; each input link needs at least "
                        "one record of credit");

    teardown();
    setup();
    /* From the defaults: pointed at the stage. */
    fails("defaults: {queue: 1}\n"
          "stages:\n"
          "  - name: g1\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: g2\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: sink\n"
          "    plugin: null\n"
          "    from: [g1, g2]\n");
    sl_test_expect_line(&g_diag, "topo.yaml:9:5: stage 'sink' has 2 inputs "
                        "but 'queue' is 1; each input link needs at least "
                        "one record of credit");
}

Test(topology, empty_stages)
{
    fails("stages: []\n");
    sl_test_expect_line(&g_diag, "topo.yaml:1:9: 'stages' is empty; a "
                        "topology needs at least a source and a sink");
    teardown();
    setup();
    fails("name: x\nstages: 3\n");
    sl_test_expect_line(&g_diag, "topo.yaml:2:9: 'stages' must be a list of "
                        "stages, got integer '3'");
}

Test(topology, unknown_plugin_names_the_places_searched)
{
    fails("stages:\n"
          "  - name: x\n"
          "    plugin: no_such_plugin\n");
    sl_test_expect_prefix(&g_diag, "topo.yaml:3:13: unknown plugin "
                          "'no_such_plugin': no no_such_plugin.so in ");
    cr_assert(strstr(sl_test_diag_text(&g_diag),
                     SL_TEST_BINARY_DIR "/stages"),
              "%s", sl_test_diag_text(&g_diag));
    /* Its kind is unknown, so no guesses about inputs or outputs. */
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
}

/* ---- errors that need the plugins' kinds ------------------------------ */

Test(topology, source_with_from)
{
    NEEDS_PLUGINS();
    fails("stages:\n"
          "  - name: a\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: b\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "    from: a\n"
          "  - name: out\n"
          "    plugin: null\n"
          "    from: [a, b]\n");
    sl_test_expect_line(&g_diag, "topo.yaml:8:11: stage 'b' is a source "
                        "(plugin 'generator') and takes no input; remove "
                        "'from'");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
}

Test(topology, first_stage_must_be_a_source)
{
    NEEDS_PLUGINS();
    fails("stages:\n"
          "  - name: d\n"
          "    plugin: delay\n"
          "    config: {ms: 1}\n"
          "  - name: out\n"
          "    plugin: null\n");
    sl_test_expect_line(&g_diag, "topo.yaml:2:5: stage 'd' has no input: it "
                        "is the first stage and plugin 'delay' is a "
                        "transform, not a source; add 'from:' or start with "
                        "a source");
    sl_test_expect_line(&g_diag,
                        "topo.yaml:2:3: the topology has no source stage");
}

Test(topology, sinks_have_no_outputs)
{
    NEEDS_PLUGINS();
    fails("stages:\n"
          "  - name: g\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: s1\n"
          "    plugin: null\n"
          "  - name: s2\n"
          "    plugin: null\n"
          "  - name: s3\n"
          "    plugin: null\n"
          "    from: [s1]\n");
    sl_test_expect_line(&g_diag, "topo.yaml:7:5: stage 's2' takes input from "
                        "the previous stage 's1', but 's1' is a sink (plugin "
                        "'null') and has no output; give stage 's2' a "
                        "'from:'");
    sl_test_expect_line(&g_diag, "topo.yaml:11:12: stage 's3' takes input "
                        "from 's1', but 's1' is a sink (plugin 'null') and "
                        "has no output");
    cr_assert_eq(g_diag.count, 2, "%s", sl_test_diag_text(&g_diag));
}

Test(topology, output_going_nowhere)
{
    NEEDS_PLUGINS();
    fails("stages:\n"
          "  - name: g\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: out\n"
          "    plugin: null\n"
          "  - name: g2\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: d\n"
          "    plugin: delay\n"
          "    config: {ms: 0}\n"
          "    from: g\n");
    sl_test_expect_line(&g_diag, "topo.yaml:7:11: stage 'g2' output goes "
                        "nowhere; add a sink");
    sl_test_expect_line(&g_diag, "topo.yaml:10:11: stage 'd' output goes "
                        "nowhere; add a sink");
    cr_assert_eq(g_diag.count, 2, "%s", sl_test_diag_text(&g_diag));
}

Test(topology, no_sink_at_all)
{
    NEEDS_PLUGINS();
    fails("stages:\n"
          "  - name: g\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n");
    sl_test_expect_line(&g_diag, "topo.yaml:2:11: stage 'g' output goes "
                        "nowhere; add a sink");
    sl_test_expect_line(&g_diag,
                        "topo.yaml:2:3: the topology has no sink stage");
}

Test(topology, plugin_config_keys_and_validate)
{
    NEEDS_PLUGINS();
    fails("stages:\n"
          "  - name: g\n"
          "    plugin: generator\n"
          "    config: {count: 1, cuont: 2}\n"
          "  - name: d\n"
          "    plugin: delay\n"
          "    config: {jitter_ms: -1}\n"
          "  - name: d2\n"
          "    plugin: delay\n"
          "  - name: n\n"
          "    plugin: null\n"
          "    config: {x: 1}\n");
    sl_test_expect_line(&g_diag, "topo.yaml:4:24: unknown key 'cuont' for "
                        "plugin 'generator'; did you mean 'count'?");
    sl_test_expect_prefix(&g_diag,
                          "topo.yaml:7:13: stage 'd': 'ms' is required");
    sl_test_expect_prefix(&g_diag, "topo.yaml:7:25: stage 'd': 'jitter_ms' "
                          "must be between 0 and 60000");
    /* No config at all: the plugin's complaint points at the stage. */
    sl_test_expect_prefix(&g_diag,
                          "topo.yaml:8:5: stage 'd2': 'ms' is required");
    sl_test_expect_line(&g_diag, "topo.yaml:12:14: unknown key 'x' for "
                        "plugin 'null' (it takes no config)");
}

Test(topology, max_workers_is_enforced_for_explicit_counts)
{
    NEEDS_PLUGINS();
    fails("stages:\n"
          "  - name: g\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: out\n"
          "    plugin: stdout\n"
          "    workers: 2\n");
    sl_test_expect_line(&g_diag, "topo.yaml:7:14: stage 'out': plugin "
                        "'stdout' allows at most 1 worker, got 2");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
}

Test(topology, fanout_on_sink_and_partition_on_source)
{
    NEEDS_PLUGINS();
    fails("stages:\n"
          "  - name: g\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "    partition_by: id\n"
          "  - name: out\n"
          "    plugin: null\n"
          "    fanout: round_robin\n");
    sl_test_expect_line(&g_diag, "topo.yaml:5:19: stage 'g' is a source: it "
                        "has no inputs, so 'partition_by' does not apply");
    sl_test_expect_line(&g_diag, "topo.yaml:8:13: stage 'out' is a sink: it "
                        "has no outputs, so 'fanout' does not apply");
}

Test(topology, elastic_pool_cannot_partition)
{
    NEEDS_PLUGINS();
    fails("stages:\n"
          "  - name: g\n"
          "    plugin: generator\n"
          "    config: {count: 1}\n"
          "  - name: f\n"
          "    plugin: fields\n"
          "    workers: {min: 1, max: 4}\n"
          "    partition_by: key\n"
          "    config: {set: {a: 1}}\n"
          "  - name: out\n"
          "    plugin: null\n");
    sl_test_expect_line(&g_diag, "topo.yaml:8:19: stage 'f': an elastic pool "
                        "cannot keep partition_by (keys would move between "
                        "workers); give 'workers' a fixed number");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
}

Test(topology, every_problem_in_file_order)
{
    NEEDS_PLUGINS();
    fails("defaults: {queue: 1}\n"
          "stages:\n"
          "  - name: g\n"
          "    plugin: generator\n"
          "    config: {count: 1, rat: 5}\n"
          "  - name: a\n"
          "    plugin: delay\n"
          "    from: [g, b]\n"
          "  - name: b\n"
          "    plugin: delay\n"
          "    config: {ms: 0}\n"
          "    fanout: round-robin\n"
          "  - name: out\n"
          "    plugin: stdout\n"
          "    workers: 3\n"
          "    from: b\n");
    static const char *const want[] = {
        "topo.yaml:5:24: unknown key 'rat' for plugin 'generator'; did you "
        "mean 'rate'?",
        "topo.yaml:6:5: stage 'a': 'ms' is required (milliseconds)",
        "topo.yaml:6:5: stage 'a' has 2 inputs but 'queue' is 1; each input "
        "link needs at least one record of credit",
        "topo.yaml:8:15: cycle: a -> b -> a",
        "topo.yaml:12:13: stage 'b': 'fanout' must be 'broadcast' or "
        "'round_robin', got string 'round-robin'; did you mean "
        "'round_robin'?",
        "topo.yaml:15:14: stage 'out': plugin 'stdout' allows at most 1 "
        "worker, got 3",
    };
    cr_assert_eq(g_diag.count, 6, "%s", sl_test_diag_text(&g_diag));
    for (size_t i = 0; i < 6; i++)
        cr_assert_str_eq(g_diag.lines[i], want[i]);
}

/* ---- resolution --------------------------------------------------------- */

Test(topology, chain_default_and_defaults)
{
    NEEDS_PLUGINS();
    ok("defaults: {workers: 2, queue: 100, batch: 10}\n"
       "stages:\n"
       "  - name: gen\n"
       "    plugin: generator\n"
       "    config: {count: 5}\n"
       "  - name: slow\n"
       "    plugin: delay\n"
       "    config: {ms: 0}\n"
       "    queue: 50\n"
       "  - name: out\n"
       "    plugin: null\n"
       "    batch: 1\n");
    sl_topology_t *t = g_topo;
    cr_assert_str_eq(t->name, "topo");
    cr_assert_str_eq(t->path, "topo.yaml");
    cr_assert_eq(t->n_stages, 3);
    const sl_topo_stage_t *g = &t->stages[0], *s = &t->stages[1],
                          *o = &t->stages[2];
    cr_assert_str_eq(g->name, "gen");
    cr_assert_str_eq(g->plugin_name, "generator");
    cr_assert_eq(g->plugin->desc->kind, SL_STAGE_SOURCE);
    cr_assert_eq(g->workers, 1); /* the defaults yield to max_workers 1 */
    cr_assert_eq(s->workers, 2);
    cr_assert_eq(o->workers, 2);
    cr_assert_eq(g->queue, 100);
    cr_assert_eq(s->queue, 50);
    cr_assert_eq(o->queue, 100);
    cr_assert_eq(g->batch, 10);
    cr_assert_eq(o->batch, 1);
    cr_assert_eq(g->n_inputs, 0);
    cr_assert_eq(g->n_outputs, 1);
    cr_assert_eq(g->outputs[0], 1);
    cr_assert_eq(s->n_inputs, 1);
    cr_assert_eq(s->inputs[0], 0);
    cr_assert_eq(s->n_outputs, 1);
    cr_assert_eq(s->outputs[0], 2);
    cr_assert_eq(o->n_inputs, 1);
    cr_assert_eq(o->inputs[0], 1);
    cr_assert_eq(o->n_outputs, 0);
    cr_assert_eq(g->fanout, SL_FANOUT_BROADCAST);
    cr_assert_null(g->partition_by);
    cr_assert_eq(sl_config_type(o->config), SL_CONFIG_MAP);
    cr_assert_eq(sl_config_len(o->config), 0);
    int64_t count = 0;
    cr_assert_eq(sl_config_get_int(g->config, "count", 0, &count), 0);
    cr_assert_eq(count, 5);
    cr_assert_eq(sl__config_line(s->node), 6);
    cr_assert_eq(sl__topology_find(t, "slow"), 1);
    cr_assert_eq(sl__topology_find(t, "nope"), -1);
}

Test(topology, builtin_defaults)
{
    NEEDS_PLUGINS();
    ok("stages:\n"
       "  - {name: g, plugin: generator, config: {count: 1}}\n"
       "  - {name: n, plugin: null}\n");
    cr_assert_eq(g_topo->stages[1].workers, 1);
    cr_assert_eq(g_topo->stages[1].queue, 1024);
    cr_assert_eq(g_topo->stages[1].batch, 256);
    cr_assert_eq(g_topo->stages[1].workers_auto, 0);
}

Test(topology, fan_out_in_consumer_file_order)
{
    NEEDS_PLUGINS();
    ok("name: fan\n"
       "stages:\n"
       "  - name: gen\n"
       "    plugin: generator\n"
       "    config: {count: 5}\n"
       "    fanout: round_robin\n"
       "  - name: b\n"
       "    plugin: null\n"
       "  - name: a\n"
       "    plugin: null\n"
       "    from: gen\n");
    const sl_topo_stage_t *g = &g_topo->stages[0];
    cr_assert_str_eq(g_topo->name, "fan");
    cr_assert_eq(g->fanout, SL_FANOUT_ROUND_ROBIN);
    cr_assert_eq(g->n_outputs, 2);
    cr_assert_eq(g->outputs[0], 1);
    cr_assert_eq(g->outputs[1], 2);
    cr_assert_eq(g_topo->stages[1].inputs[0], 0);
    cr_assert_eq(g_topo->stages[2].inputs[0], 0);
}

Test(topology, fan_in_keeps_from_order)
{
    NEEDS_PLUGINS();
    ok("stages:\n"
       "  - {name: g1, plugin: generator, config: {count: 1}}\n"
       "  - {name: g2, plugin: generator, config: {count: 1}}\n"
       "  - name: join\n"
       "    plugin: delay\n"
       "    config: {ms: 0}\n"
       "    from: [g2, g1]\n"
       "    queue: 2\n"
       "  - {name: out, plugin: null}\n");
    const sl_topo_stage_t *j = &g_topo->stages[2];
    cr_assert_eq(j->n_inputs, 2);
    cr_assert_eq(j->inputs[0], 1);
    cr_assert_eq(j->inputs[1], 0);
    cr_assert_eq(g_topo->stages[0].n_outputs, 1);
    cr_assert_eq(g_topo->stages[0].outputs[0], 2);
    cr_assert_eq(g_topo->stages[1].outputs[0], 2);
    cr_assert_eq(g_topo->stages[3].inputs[0], 2);
}

Test(topology, partition_by_and_auto_workers)
{
    NEEDS_PLUGINS();
    ok("defaults: {workers: auto}\n"
       "stages:\n"
       "  - {name: g, plugin: generator, config: {count: 1}}\n"
       "  - name: d\n"
       "    plugin: delay\n"
       "    config: {ms: 0}\n"
       "    partition_by: user.id\n"
       "  - {name: out, plugin: null, workers: 3}\n");
    unsigned budget = sl__cpu_budget();
    cr_assert_eq(g_topo->stages[0].workers, 1); /* max_workers 1 */
    cr_assert_eq(g_topo->stages[0].workers_auto, 1);
    cr_assert_eq(g_topo->stages[1].workers, budget);
    cr_assert_eq(g_topo->stages[1].workers_auto, 1);
    cr_assert_str_eq(g_topo->stages[1].partition_by, "user.id");
    cr_assert_eq(g_topo->stages[2].workers, 3);
    cr_assert_eq(g_topo->stages[2].workers_auto, 0);
}

Test(topology, load_from_file_uses_its_stem_and_dir)
{
    NEEDS_PLUGINS();
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char file[600];
    snprintf(file, sizeof(file), "%s/my-pipe.yaml", dir);
    cr_assert_eq(sl_test_write_file(file,
                                    "stages:\n"
                                    "  - {name: g, plugin: generator, "
                                    "config: {count: 1}}\n"
                                    "  - name: out\n"
                                    "    plugin: file_sink\n"
                                    "    config: {path: out.jsonl}\n"),
                 0);
    g_topo = sl__topology_load(file, &g_diag);
    cr_assert_not_null(g_topo, "%s", sl_test_diag_text(&g_diag));
    cr_assert_str_eq(g_topo->name, "my-pipe");
    cr_assert_str_eq(g_topo->path, file);
    char *real = realpath(dir, NULL), *path = NULL, want[1024];
    cr_assert_str_eq(sl__config_doc_dir(g_topo->doc), real);
    cr_assert_eq(sl_config_get_path(g_topo->stages[1].config, "path", NULL,
                                    &path),
                 0);
    snprintf(want, sizeof(want), "%s/out.jsonl", real);
    cr_assert_str_eq(path, want);
    free(path);
    free(real);
    sl_test_rmtree(dir);
}

Test(topology, missing_file)
{
    cr_assert_null(sl__topology_load("/nonexistent/t.yaml", &g_diag));
    sl_test_expect_line(&g_diag, "/nonexistent/t.yaml: cannot read: No such "
                        "file or directory");
}

/* ---- lanes, timeouts, retries, dead letters, elastic pools -------------- */

static size_t count_containing(const char *fragment)
{
    size_t n = 0;
    for (size_t i = 0; i < g_diag.count; i++)
        n += strstr(g_diag.lines[i], fragment) != NULL;
    return n;
}

Test(topology, failure_keys_builtin_defaults)
{
    NEEDS_PLUGINS();
    ok("stages:\n"
       "  - {name: g, plugin: generator, config: {count: 1}}\n"
       "  - {name: n, plugin: null, workers: 3}\n");
    const sl_topo_stage_t *g = &g_topo->stages[0], *n = &g_topo->stages[1];
    cr_assert_eq(g->lane, SL_LANE_THREAD);
    cr_assert_eq(g->timeout_ms, 0);
    cr_assert_eq(g->max_attempts, 3);
    cr_assert_eq(g->backoff_ms, 100);
    cr_assert_eq(g->max_backoff_ms, 10000);
    cr_assert_null(g->dl_path);
    cr_assert_eq(g->workers_min, 1);
    cr_assert_eq(g->workers_max, 1);
    cr_assert_eq(g->idle_shrink_ms, 30000);
    cr_assert_eq(n->workers, 3);
    cr_assert_eq(n->workers_min, 3);
    cr_assert_eq(n->workers_max, 3);
}

Test(topology, lane_and_timeout_values)
{
    NEEDS_PLUGINS();
    ok("defaults: {lane: process}\n"
       "stages:\n"
       "  - {name: g, plugin: generator, config: {count: 1}, timeout: 1500}\n"
       "  - {name: a, plugin: delay, config: {ms: 0}, timeout: 500ms}\n"
       "  - {name: b, plugin: delay, config: {ms: 0}, timeout: 2s}\n"
       "  - {name: c, plugin: delay, config: {ms: 0}, timeout: 1m}\n"
       "  - {name: d, plugin: delay, config: {ms: 0}, timeout: 24h}\n"
       "  - {name: e, plugin: delay, config: {ms: 0}, lane: thread}\n"
       "  - {name: out, plugin: null, from: [a, b, c, d, e], queue: 8}\n");
    static const uint32_t want[] = {1500, 500, 2000, 60000, 86400000, 0, 0};
    for (size_t i = 0; i < 7; i++) {
        cr_assert_eq(g_topo->stages[i].timeout_ms, want[i], "stage %zu", i);
        cr_assert_eq(g_topo->stages[i].lane,
                     i == 5 ? SL_LANE_THREAD : SL_LANE_PROCESS, "stage %zu",
                     i);
    }
}

Test(topology, lane_and_timeout_errors)
{
    fails("defaults: {lane: threads, timeout: 2s}\n"
          "stages:\n"
          "  - name: a\n"
          "    plugin: generator\n"
          "    timeout: 2s\n"
          "  - name: b\n"
          "    plugin: null\n"
          "    lane: proces\n"
          "    timeout: 5 s\n"
          "  - name: c\n"
          "    plugin: null\n"
          "    lane: process\n"
          "    timeout: 0\n"
          "  - {name: d, plugin: null, lane: process, timeout: 86400001}\n"
          "  - {name: e, plugin: null, lane: process, timeout: 25h}\n"
          "  - {name: f, plugin: null, lane: 3, timout: 1.5s}\n"
          "  - {name: h, plugin: null, lane: process, timeout: [1]}\n");
    sl_test_expect_line(&g_diag, "topo.yaml:1:18: defaults: 'lane' must be "
                        "'thread' or 'process', got string 'threads'; did "
                        "you mean 'thread'?");
    sl_test_expect_line(&g_diag,
                        "topo.yaml:1:27: unknown key 'timeout' in 'defaults'");
    /* The default lane is unknown, so no guess about a's timeout. */
    expect_no("stage 'a': timeout");
    sl_test_expect_line(&g_diag, "topo.yaml:8:11: stage 'b': 'lane' must be "
                        "'thread' or 'process', got string 'proces'; did you "
                        "mean 'process'?");
    sl_test_expect_line(&g_diag, "topo.yaml:9:14: stage 'b': 'timeout' must "
                        "be a duration such as 500ms, 2s or 1m (a bare "
                        "number is milliseconds), got string '5 s'");
    sl_test_expect_line(&g_diag, "topo.yaml:13:14: stage 'c': 'timeout' must "
                        "be from 1ms to 24h, got integer '0'");
    sl_test_expect_line(&g_diag, "topo.yaml:14:53: stage 'd': 'timeout' must "
                        "be from 1ms to 24h, got integer '86400001'");
    sl_test_expect_line(&g_diag, "topo.yaml:15:53: stage 'e': 'timeout' must "
                        "be from 1ms to 24h, got string '25h'");
    sl_test_expect_line(&g_diag, "topo.yaml:16:35: stage 'f': 'lane' must be "
                        "'thread' or 'process', got integer '3'");
    sl_test_expect_line(&g_diag, "topo.yaml:16:38: unknown key 'timout' in "
                        "stage 'f'; did you mean 'timeout'?");
    sl_test_expect_line(&g_diag, "topo.yaml:17:53: stage 'h': 'timeout' must "
                        "be a duration such as 500ms, 2s or 1m (a bare "
                        "number is milliseconds), got a sequence");

    teardown();
    setup();
    fails("defaults: {lane: thread}\n"
          "stages:\n"
          "  - {name: g, plugin: generator, timeout: 10s}\n"
          "  - {name: n, plugin: null, lane: process, timeout: 10s}\n"
          "  - {name: m, plugin: null, from: g, lane: thread, timeout: 1}\n");
    sl_test_expect_line(&g_diag, "topo.yaml:3:43: stage 'g': timeout needs "
                        "lane: process (a thread cannot be stopped safely)");
    sl_test_expect_line(&g_diag, "topo.yaml:5:61: stage 'm': timeout needs "
                        "lane: process (a thread cannot be stopped safely)");
    expect_no("stage 'n': timeout");
}

Test(topology, retry_values_merge_with_defaults)
{
    NEEDS_PLUGINS();
    ok("defaults:\n"
       "  retry: {max_attempts: 5, backoff_ms: 50}\n"
       "stages:\n"
       "  - {name: g, plugin: generator, config: {count: 1}}\n"
       "  - name: a\n"
       "    plugin: delay\n"
       "    config: {ms: 0}\n"
       "    retry: {max_backoff_ms: 200}\n"
       "  - name: out\n"
       "    plugin: null\n"
       "    retry: {max_attempts: 1, backoff_ms: 0, max_backoff_ms: 0}\n");
    const sl_topo_stage_t *g = &g_topo->stages[0], *a = &g_topo->stages[1],
                          *o = &g_topo->stages[2];
    cr_assert_eq(g->max_attempts, 5);
    cr_assert_eq(g->backoff_ms, 50);
    cr_assert_eq(g->max_backoff_ms, 10000);
    cr_assert_eq(a->max_attempts, 5);
    cr_assert_eq(a->backoff_ms, 50);
    cr_assert_eq(a->max_backoff_ms, 200);
    cr_assert_eq(o->max_attempts, 1);
    cr_assert_eq(o->backoff_ms, 0);
    cr_assert_eq(o->max_backoff_ms, 0);
}

Test(topology, retry_errors)
{
    fails("defaults:\n"
          "  retry: {backoff_ms: 20000, max_attempt: 2}\n"
          "stages:\n"
          "  - name: a\n"
          "    plugin: generator\n"
          "    retry: {max_attempts: 0, backoff_ms: -1}\n"
          "  - name: b\n"
          "    plugin: null\n"
          "    retry: {max_attempts: 1001, backoff_ms: 500, "
          "max_backoff_ms: 400}\n"
          "  - {name: c, plugin: null, retry: {backoff_ms: 10001}}\n"
          "  - {name: d, plugin: null, retry: 3}\n"
          "  - {name: e, plugin: null, retry: {max_attempts: x}}\n"
          "  - {name: f, plugin: null, retry: {max_backoff_ms: 50, "
          "backoff_ms: 60}}\n");
    sl_test_expect_line(&g_diag, "topo.yaml:2:23: defaults: "
                        "'retry.max_backoff_ms' (10000) must be at least "
                        "'retry.backoff_ms' (20000)");
    sl_test_expect_line(&g_diag, "topo.yaml:2:30: unknown key 'max_attempt' "
                        "in 'defaults.retry'; did you mean 'max_attempts'?");
    sl_test_expect_line(&g_diag, "topo.yaml:6:27: stage 'a': "
                        "'retry.max_attempts' must be from 1 to 1000, got 0");
    sl_test_expect_line(&g_diag, "topo.yaml:6:42: stage 'a': "
                        "'retry.backoff_ms' must be from 0 to 86400000, got "
                        "-1");
    sl_test_expect_line(&g_diag, "topo.yaml:9:27: stage 'b': "
                        "'retry.max_attempts' must be from 1 to 1000, got "
                        "1001");
    /* The max is checked only when the values are valid. */
    expect_no("stage 'b': 'retry.max_backoff_ms'");
    sl_test_expect_line(&g_diag, "topo.yaml:10:49: stage 'c': "
                        "'retry.max_backoff_ms' (10000) must be at least "
                        "'retry.backoff_ms' (10001)");
    sl_test_expect_line(&g_diag, "topo.yaml:11:36: stage 'd': 'retry' must "
                        "be a map such as {max_attempts: 3, backoff_ms: 100},"
                        " got integer '3'");
    sl_test_expect_line(&g_diag, "topo.yaml:12:51: stage 'e': "
                        "'retry.max_attempts' must be an integer from 1 to "
                        "1000, got string 'x'");
    sl_test_expect_line(&g_diag, "topo.yaml:13:53: stage 'f': "
                        "'retry.max_backoff_ms' (50) must be at least "
                        "'retry.backoff_ms' (60)");
}

/* A topology in a real folder (dead-letter folders are checked). */
static char *g_base;

static sl_topology_t *parse_in(const char *yaml)
{
    g_topo = sl__topology_parse("topo.yaml", g_base, yaml, &g_diag);
    return g_topo;
}

static void make_base(void)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    g_base = realpath(dir, NULL);
    free(dir);
    char sub[1024];
    snprintf(sub, sizeof(sub), "%s/dlq", g_base);
    cr_assert_eq(mkdir(sub, 0755), 0);
    snprintf(sub, sizeof(sub), "%s/file", g_base);
    cr_assert_eq(sl_test_write_file(sub, "x"), 0);
}

static void drop_base(void)
{
    sl_test_rmtree(g_base);
}

static const char *in_base(const char *rel)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", g_base, rel);
    return buf[k];
}

Test(topology, dead_letter_values)
{
    NEEDS_PLUGINS();
    make_base();
    char yaml[4096];
    snprintf(yaml, sizeof(yaml),
             "defaults:\n"
             "  dead_letter: dlq/{stage}.jsonl\n"
             "stages:\n"
             "  - {name: g, plugin: generator, config: {count: 1}}\n"
             "  - name: a\n"
             "    plugin: delay\n"
             "    config: {ms: 0}\n"
             "    dead_letter: {path: '{stage}-{stage}.MSGPACK'}\n"
             "  - name: b\n"
             "    plugin: delay\n"
             "    config: {ms: 0}\n"
             "    from: g\n"
             "    dead_letter: {path: %s/dlq/b.mpk, format: jsonl}\n"
             "  - name: out\n"
             "    plugin: null\n"
             "    from: [a, b]\n"
             "    dead_letter: dlq/shared.mpk\n",
             g_base);
    cr_assert_not_null(parse_in(yaml), "%s", sl_test_diag_text(&g_diag));
    cr_assert_eq(g_diag.count, 0, "%s", sl_test_diag_text(&g_diag));
    const sl_topo_stage_t *s = g_topo->stages;
    cr_assert_str_eq(s[0].dl_path, in_base("dlq/g.jsonl"));
    cr_assert_eq(s[0].dl_format, SL_DL_JSONL);
    cr_assert_str_eq(s[1].dl_path, in_base("a-a.MSGPACK"));
    cr_assert_eq(s[1].dl_format, SL_DL_MSGPACK);
    cr_assert_str_eq(s[2].dl_path, in_base("dlq/b.mpk"));
    cr_assert_eq(s[2].dl_format, SL_DL_JSONL); /* explicit beats .mpk */
    cr_assert_str_eq(s[3].dl_path, in_base("dlq/shared.mpk"));
    cr_assert_eq(s[3].dl_format, SL_DL_MSGPACK);
    /* Checking creates nothing. */
    cr_assert_neq(access(in_base("dlq/g.jsonl"), F_OK), 0);
    cr_assert_neq(access(in_base("dlq/shared.mpk"), F_OK), 0);
    drop_base();
}

Test(topology, dead_letter_errors)
{
    fails("defaults:\n"
          "  dead_letter: nodir/{stage}.jsonl\n"
          "stages:\n"
          "  - {name: g, plugin: generator}\n"
          "  - {name: n, plugin: null}\n"
          "  - {name: m, plugin: null, from: g, dead_letter: dl.jsonl}\n");
    /* The default's folder is the same for every stage: reported once. */
    sl_test_expect_line(&g_diag, "topo.yaml:2:16: defaults: dead_letter "
                        "'/base/nodir/{stage}.jsonl': directory "
                        "'/base/nodir' does not exist");
    cr_assert_eq(count_containing("does not exist"), 2, "%s",
                 sl_test_diag_text(&g_diag));
    sl_test_expect_line(&g_diag, "topo.yaml:6:51: stage 'm': dead_letter "
                        "'/base/dl.jsonl': directory '/base' does not exist");

    teardown();
    setup();
    fails("defaults: {dead_letter: 'q/{stage}/dl.jsonl'}\n"
          "stages:\n"
          "  - {name: g, plugin: generator}\n"
          "  - {name: n, plugin: null}\n");
    sl_test_expect_line(&g_diag, "topo.yaml:1:25: stage 'g': dead_letter "
                        "'/base/q/g/dl.jsonl': directory '/base/q/g' does "
                        "not exist");
    sl_test_expect_line(&g_diag, "topo.yaml:1:25: stage 'n': dead_letter "
                        "'/base/q/n/dl.jsonl': directory '/base/q/n' does "
                        "not exist");

    teardown();
    setup();
    fails("stages:\n"
          "  - {name: a, plugin: generator, dead_letter: {format: jsnol}}\n"
          "  - {name: b, plugin: null, dead_letter: {path: [x]}}\n"
          "  - {name: c, plugin: null, dead_letter: [x]}\n"
          "  - {name: d, plugin: null, dead_letter: ''}\n"
          "  - {name: e, plugin: null, dead_letter: {path: /tmp/x.jsonl, "
          "fromat: jsonl}}\n"
          "  - {name: f, plugin: null, dead_letter: {path: /tmp}}\n"
          "  - {name: h, plugin: null, dead_lettre: /tmp/x}\n");
    sl_test_expect_line(&g_diag, "topo.yaml:2:56: stage 'a': "
                        "'dead_letter.format' must be 'jsonl' or 'msgpack', "
                        "got string 'jsnol'; did you mean 'jsonl'?");
    sl_test_expect_line(&g_diag, "topo.yaml:3:49: stage 'b': "
                        "'dead_letter.path' must be a file path, got a "
                        "sequence");
    sl_test_expect_line(&g_diag, "topo.yaml:4:42: stage 'c': 'dead_letter' "
                        "must be a file path or a map {path, format}, got a "
                        "sequence");
    sl_test_expect_line(&g_diag, "topo.yaml:5:42: stage 'd': 'dead_letter' "
                        "must not be empty");
    sl_test_expect_line(&g_diag, "topo.yaml:6:63: unknown key 'fromat' in "
                        "'dead_letter' of stage 'e'; did you mean 'format'?");
    sl_test_expect_line(&g_diag, "topo.yaml:7:49: stage 'f': dead_letter "
                        "'/tmp' is a directory; name a file in it");
    sl_test_expect_line(&g_diag, "topo.yaml:8:29: unknown key 'dead_lettre' "
                        "in stage 'h'; did you mean 'dead_letter'?");
    expect_no("stage 'a': 'dead_letter' needs");
}

Test(topology, dead_letter_folder_and_format_conflicts)
{
    make_base();
    char want[2048];
    /* Relative paths start at the topology's folder: the test's base. */
    const char *yaml =
             "stages:\n"
             "  - {name: g, plugin: generator, dead_letter: {path: file/dl}}\n"
             "  - {name: n, plugin: null, dead_letter: {}}\n"
             "  - {name: m, plugin: null, from: g, dead_letter: dlq/}\n"
             "  - name: x\n"
             "    plugin: null\n"
             "    from: g\n"
             "    dead_letter: {path: dlq/all.log, format: msgpack}\n"
             "  - {name: y, plugin: null, from: g, dead_letter: dlq/all.log}\n";
    cr_assert_null(parse_in(yaml));
    snprintf(want, sizeof(want), "topo.yaml:2:54: stage 'g': dead_letter "
             "'%s': '%s' is not a directory", in_base("file/dl"),
             in_base("file"));
    sl_test_expect_line(&g_diag, want);
    sl_test_expect_line(&g_diag, "topo.yaml:3:42: stage 'n': 'dead_letter' "
                        "needs 'path' (a file) or 'stage' (a stage to "
                        "route dead letters to)");
    snprintf(want, sizeof(want), "topo.yaml:4:51: stage 'm': dead_letter "
             "'%s' is a directory; name a file in it", in_base("dlq/"));
    sl_test_expect_line(&g_diag, want);
    snprintf(want, sizeof(want), "topo.yaml:9:51: stage 'y': dead_letter "
             "'%s' is also written by stage 'x' as msgpack; one file holds "
             "one format", in_base("dlq/all.log"));
    sl_test_expect_line(&g_diag, want);
    expect_no("stage 'x': dead_letter");
    drop_base();
}

Test(topology, elastic_workers_values)
{
    NEEDS_PLUGINS();
    ok("defaults: {workers: {min: 2, max: 8}}\n"
       "stages:\n"
       "  - {name: g, plugin: generator, config: {count: 1}}\n"
       "  - name: a\n"
       "    plugin: delay\n"
       "    config: {ms: 0}\n"
       "    workers: {min: 3, max: 6, idle: 10s}\n"
       "  - name: b\n"
       "    plugin: delay\n"
       "    config: {ms: 0}\n"
       "    workers: {max: 4, idle: 250}\n"
       "  - {name: out, plugin: stdout, from: [a, b]}\n");
    const sl_topo_stage_t *s = g_topo->stages;
    /* The defaults yield to max_workers 1, min included. */
    cr_assert_eq(s[0].workers, 1);
    cr_assert_eq(s[0].workers_min, 1);
    cr_assert_eq(s[0].workers_max, 1);
    cr_assert_eq(s[1].workers, 3);
    cr_assert_eq(s[1].workers_min, 3);
    cr_assert_eq(s[1].workers_max, 6);
    cr_assert_eq(s[1].idle_shrink_ms, 10000);
    cr_assert_eq(s[2].workers, 1);
    cr_assert_eq(s[2].workers_min, 1);
    cr_assert_eq(s[2].workers_max, 4);
    cr_assert_eq(s[2].idle_shrink_ms, 250);
    cr_assert_eq(s[3].workers_min, 1);
    cr_assert_eq(s[3].workers_max, 1);
    cr_assert_eq(s[3].idle_shrink_ms, 30000);
    cr_assert_eq(s[3].workers_auto, 0);
}

Test(topology, elastic_workers_errors)
{
    fails("defaults: {workers: {min: 0, max: 2}}\n"
          "stages:\n"
          "  - {name: g, plugin: generator, workers: {min: 2}}\n"
          "  - {name: a, plugin: null, workers: {min: 4, max: 2}}\n"
          "  - {name: b, plugin: null, workers: {max: 1025, mx: 2}}\n"
          "  - {name: c, plugin: null, workers: {max: 2, idle: soon}}\n");
    sl_test_expect_line(&g_diag, "topo.yaml:1:27: defaults: 'workers.min' "
                        "must be from 1 to 1024, got 0");
    sl_test_expect_line(&g_diag, "topo.yaml:3:43: stage 'g': 'workers' as a "
                        "map needs 'max' (and may have 'min' and 'idle')");
    sl_test_expect_line(&g_diag, "topo.yaml:4:52: stage 'a': 'workers.max' "
                        "(2) must be at least 'workers.min' (4)");
    sl_test_expect_line(&g_diag, "topo.yaml:5:44: stage 'b': 'workers.max' "
                        "must be from 1 to 1024, got 1025");
    sl_test_expect_line(&g_diag, "topo.yaml:5:50: unknown key 'mx' in "
                        "'workers' of stage 'b'; did you mean 'max'?");
    sl_test_expect_line(&g_diag, "topo.yaml:6:53: stage 'c': 'workers.idle' "
                        "must be a duration such as 500ms, 2s or 1m (a bare "
                        "number is milliseconds), got string 'soon'");
}

Test(topology, elastic_max_respects_the_plugin_limit)
{
    NEEDS_PLUGINS();
    fails("stages:\n"
          "  - {name: g, plugin: generator, config: {count: 1}}\n"
          "  - {name: out, plugin: stdout, workers: {min: 1, max: 2}}\n");
    sl_test_expect_line(&g_diag, "topo.yaml:3:56: stage 'out': plugin "
                        "'stdout' allows at most 1 worker, got 2");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
}
