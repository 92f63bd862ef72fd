/*
 * Topology YAML, text in, diagnostics out: sl__topology_parse with every
 * bundled plugin available, so stage configs reach each plugin's own
 * validate() as in `sluice check`.
 *
 * Checks: a topology comes back exactly when there is no diagnostic, and
 * every diagnostic is "fuzz.yaml:LINE:COL: ..."; an accepted topology is
 * a graph the runtime can build: indices in range, inputs and outputs
 * mirror each other, no cycle, sources without inputs, sinks without
 * outputs, sane pool bounds and sizes, stage names found by lookup.
 */
#include "fuzz.h"

#include "plugin.h"
#include "topology.h"

#include <errno.h>
#include <unistd.h>

/* Relative paths in a topology resolve against the folder the target runs
 * in (smoke.sh gives each target its own); loading creates nothing. */
static char s_basedir[4096];

static void s_keep(const sl_plugin_t *p, void *arg)
{
    (void)arg;
    char err[512];
    /* An extra reference for the whole run: parsing then finds each plugin
     * loaded instead of opening and closing it for every input. */
    if (!sl__plugin_load(p->desc->name, err, sizeof(err)))
        fprintf(stderr, "fuzz_topology: %s\n", err);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!getcwd(s_basedir, sizeof(s_basedir))) {
        perror("fuzz_topology: getcwd");
        abort();
    }
    sl__plugin_foreach(s_keep, NULL);
    return 0;
}

static void s_check_graph(const sl_topology_t *t)
{
    size_t n = t->n_stages;
    size_t *stack = calloc(n ? n : 1, sizeof(*stack));
    size_t *indeg = calloc(n ? n : 1, sizeof(*indeg));
    FUZZ_CHECK(stack && indeg, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const sl_topo_stage_t *s = &t->stages[i];
        FUZZ_CHECK(s->name && s->plugin && s->plugin_name, "stage %zu", i);
        FUZZ_CHECK(sl__topology_find(t, s->name) == (long)i,
                   "stage '%s' is found at %ld, not %zu", s->name,
                   sl__topology_find(t, s->name), i);
        FUZZ_CHECK(s->workers_min >= 1 && s->workers_min <= s->workers_max &&
                       s->workers_max <= SL_TOPO_MAX_WORKERS,
                   "stage '%s': workers %u..%u", s->name, s->workers_min,
                   s->workers_max);
        FUZZ_CHECK(s->workers == s->workers_min, "stage '%s': workers %u, "
                   "min %u", s->name, s->workers, s->workers_min);
        FUZZ_CHECK(s->queue >= 1 && s->batch >= 1, "stage '%s': queue %u, "
                   "batch %u", s->name, s->queue, s->batch);
        FUZZ_CHECK(s->max_attempts >= 1 && s->max_attempts <= 1000,
                   "stage '%s': max_attempts %u", s->name, s->max_attempts);
        FUZZ_CHECK(s->backoff_ms <= s->max_backoff_ms,
                   "stage '%s': backoff %u > max %u", s->name, s->backoff_ms,
                   s->max_backoff_ms);
        FUZZ_CHECK(s->dl_stage < (long)n, "stage '%s': dead-letter stage %ld",
                   s->name, s->dl_stage);
        sl_stage_kind_t kind = s->plugin->desc->kind;
        FUZZ_CHECK(kind != SL_STAGE_SOURCE || s->n_inputs == 0,
                   "source '%s' has inputs", s->name);
        FUZZ_CHECK(kind != SL_STAGE_SINK || s->n_outputs == 0,
                   "sink '%s' has outputs", s->name);
        for (size_t k = 0; k < s->n_uses; k++)
            FUZZ_CHECK(s->uses[k] < t->n_resources, "stage '%s' uses %zu",
                       s->name, s->uses[k]);
        for (size_t k = 0; k < s->n_outputs; k++) {
            size_t o = s->outputs[k];
            FUZZ_CHECK(o < n, "stage '%s': output %zu", s->name, o);
            const sl_topo_stage_t *d = &t->stages[o];
            size_t back = 0;
            for (size_t j = 0; j < d->n_inputs; j++)
                back += d->inputs[j] == i;
            FUZZ_CHECK(back >= 1, "'%s' -> '%s' has no matching input",
                       s->name, d->name);
            indeg[o]++;
        }
        for (size_t k = 0; k < s->n_inputs; k++)
            FUZZ_CHECK(s->inputs[k] < n, "stage '%s': input %zu", s->name,
                       s->inputs[k]);
    }
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(indeg[i] == t->stages[i].n_inputs,
                   "stage '%s': %zu links in, %zu inputs", t->stages[i].name,
                   indeg[i], t->stages[i].n_inputs);
    /* Kahn's algorithm: every stage is reached when there is no cycle. */
    size_t top = 0, seen = 0;
    for (size_t i = 0; i < n; i++)
        if (indeg[i] == 0)
            stack[top++] = i;
    while (top) {
        size_t i = stack[--top];
        seen++;
        for (size_t k = 0; k < t->stages[i].n_outputs; k++)
            if (--indeg[t->stages[i].outputs[k]] == 0)
                stack[top++] = t->stages[i].outputs[k];
    }
    FUZZ_CHECK(seen == n, "a cycle through %zu stages was accepted",
               n - seen);
    free(indeg);
    free(stack);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *t = sl__topology_parse("fuzz.yaml", s_basedir, text, &diag);
    FUZZ_CHECK((t == NULL) == (diag.count > 0),
               "topology %p with %zu diagnostics", (void *)t, diag.count);
    for (size_t i = 0; i < diag.count; i++)
        FUZZ_CHECK(strncmp(diag.lines[i], "fuzz.yaml:", 10) == 0,
                   "diagnostic without a position: %s", diag.lines[i]);
    if (t)
        s_check_graph(t);
    sl__topology_destroy(&t);
    sl__diag_fini(&diag);
    free(text);
    return 0;
}
