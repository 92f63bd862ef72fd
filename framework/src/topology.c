/*
 * Topology loading: the YAML stage graph, checked as a whole so that one
 * `sluice check` lists every problem with its FILE:LINE:COL, then resolved
 * into the arrays the runtime wires links from. This file reads the top
 * level, resolves `from` into links and checks the graph (inputs, outputs,
 * kinds, cycles); topology_keys.c reads each stage's keys. docs/topology.md
 * is the user-facing description of every key checked.
 */
#include "topology_parse.h"
#include "record_limits.h"
#include "prio_rule.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_top_keys[] = {"name",  "defaults", "stages",
                                         "resources", "grace", "spill",
                                         "state_dir", "hosts", "keys_dir",
                                         "insecure", "peer_timeout", "limits",
                                         NULL};

/* ---- reporting ---------------------------------------------------------- */

void sl__topo_err(sl_topo_parse_t *p, const sl_config_t *at, const char *fmt,
                  ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    sl__diag_add(p->diag, "%s:%u:%u: %s", sl__config_file(at),
                 sl__config_line(at), sl__config_col(at), msg ? msg : fmt);
    free(msg);
}

static const char *s_kind_name(sl_stage_kind_t kind)
{
    switch (kind) {
    case SL_STAGE_SOURCE: return "source";
    case SL_STAGE_TRANSFORM: return "transform";
    case SL_STAGE_SINK: return "sink";
    }
    return "stage";
}

/* "a map", "string 'x'": what a wrong value was. */
const char *sl__topo_what(const sl_config_t *n, char *buf, size_t len)
{
    sl_config_type_t type = sl_config_type(n);
    if (type == SL_CONFIG_SEQ || type == SL_CONFIG_MAP)
        snprintf(buf, len, "a %s", sl__config_type_name(type));
    else if (type == SL_CONFIG_NULL)
        snprintf(buf, len, "null");
    else
        snprintf(buf, len, "%s '%.60s'", sl__config_type_name(type),
                 sl_config_str(n));
    return buf;
}

bool sl__topo_is_text(const sl_config_t *n)
{
    sl_config_type_t type = sl_config_type(n);
    return type == SL_CONFIG_STRING || type == SL_CONFIG_INT ||
           type == SL_CONFIG_FLOAT || type == SL_CONFIG_BOOL;
}

/* The text of a scalar used as a name. `plugin: null` names the null sink,
 * although YAML reads a plain null as a null: only an empty value or ~
 * means "nothing". NULL for anything else. */
const char *sl__topo_name_text(const sl_config_t *n)
{
    if (sl__topo_is_text(n))
        return sl_config_str(n);
    if (sl_config_type(n) != SL_CONFIG_NULL)
        return NULL;
    const char *t = sl_config_str(n);
    return strcmp(t, "") != 0 && strcmp(t, "~") != 0 ? t : NULL;
}

/* ---- "did you mean" ----------------------------------------------------- */

/* Levenshtein distance, or a large number for long strings (no hint). */
static size_t s_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The closest candidate within distance 2 (and not a total rewrite). */
const char *sl__topo_suggest(const char *word, const char *const *cands,
                             size_t n)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        if (!cands[i])
            continue;
        size_t d = s_distance(word, cands[i]);
        if (d < best_d && d < strlen(cands[i])) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

size_t sl__topo_count(const char *const *list)
{
    size_t n = 0;
    while (list[n])
        n++;
    return n;
}

bool sl__topo_in(const char *word, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(word, *list) == 0)
            return true;
    return false;
}

/* Reports each key of map not in known, with a hint when one is close. */
void sl__topo_check_keys(sl_topo_parse_t *p, const sl_config_t *map,
                         const char *const *known, const char *where)
{
    for (size_t i = 0; i < sl_config_len(map); i++) {
        const char *key = sl_config_key_at(map, i);
        if (!key || sl__topo_in(key, known))
            continue;
        const char *hint = sl__topo_suggest(key, known, sl__topo_count(known));
        if (hint)
            sl__topo_err(p, sl__config_key_node_at(map, i),
                         "unknown key '%s' %s; did you mean '%s'?", key, where,
                         hint);
        else
            sl__topo_err(p, sl__config_key_node_at(map, i),
                         "unknown key '%s' %s", key, where);
    }
}

/* ---- the graph ---------------------------------------------------------- */

/* A stage's name for messages; an unnamed one by its position. */
static const char *s_name(const sl_topo_parse_t *p, size_t i)
{
    return p->t->stages[i].name ? p->t->stages[i].name : p->info[i].label;
}

static int s_add_input(sl_topo_stage_t *s, sl_topo_info_t *in, size_t from,
                       const sl_config_t *where)
{
    size_t n = s->n_inputs + 1;
    size_t *inputs = realloc(s->inputs, n * sizeof(*inputs));
    if (!inputs)
        return -ENOMEM;
    s->inputs = inputs;
    const sl_config_t **nodes = realloc(in->in_nodes, n * sizeof(*nodes));
    if (!nodes)
        return -ENOMEM;
    in->in_nodes = nodes;
    s->inputs[s->n_inputs] = from;
    in->in_nodes[s->n_inputs++] = where;
    return 0;
}

/* Finds a named stage among those that got a valid name. */
static long s_find_named(const sl_topo_parse_t *p, const char *name)
{
    for (size_t j = 0; j < p->t->n_stages; j++)
        if (p->t->stages[j].name && strcmp(p->t->stages[j].name, name) == 0)
            return (long)j;
    return -1;
}

static void s_resolve_from_entry(sl_topo_parse_t *p, size_t i,
                                 const sl_config_t *entry)
{
    sl_topology_t *t = p->t;
    const char *name = sl__topo_name_text(entry);
    long j = s_find_named(p, name);
    if (j < 0) {
        const char **names = calloc(t->n_stages, sizeof(*names));
        for (size_t k = 0; names && k < t->n_stages; k++)
            names[k] = t->stages[k].name;
        const char *hint = names ? sl__topo_suggest(name, names,
                                                    t->n_stages) : NULL;
        if (hint)
            sl__topo_err(p, entry, "%s: 'from' names unknown stage '%s'; did "
                         "you mean '%s'?", p->info[i].label, name, hint);
        else
            sl__topo_err(p, entry, "%s: 'from' names unknown stage '%s'",
                         p->info[i].label, name);
        free(names);
        return;
    }
    for (size_t k = 0; k < t->stages[i].n_inputs; k++)
        if (t->stages[i].inputs[k] == (size_t)j) {
            sl__topo_err(p, entry, "%s: '%s' is listed twice in 'from'",
                         p->info[i].label, name);
            return;
        }
    if (s_add_input(&t->stages[i], &p->info[i], (size_t)j, entry) != 0)
        p->oom = true;
}

static void s_resolve_inputs(sl_topo_parse_t *p, size_t i)
{
    sl_topology_t *t = p->t;
    sl_topo_stage_t *s = &t->stages[i];
    sl_topo_info_t *in = &p->info[i];
    const sl_config_t *from = in->from_node;
    if (in->kind == SL_STAGE_SOURCE) {
        if (from)
            sl__topo_err(p, from, "%s is a source (plugin '%s') and takes no "
                         "input; remove 'from'", in->label, s->plugin_name);
        return;
    }
    if (!from) {
        /* A dead-letter target without `from` takes only dead letters. */
        if (sl__topo_is_dl_target(p, i))
            return;
        if (i > 0) {
            if (s_add_input(s, in, i - 1, s->node) != 0)
                p->oom = true;
        } else if (in->kind) {
            sl__topo_err(p, s->node, "%s has no input: it is the first stage "
                         "and plugin '%s' is a %s, not a source; add 'from:' "
                         "or start with a source", in->label, s->plugin_name,
                         s_kind_name(in->kind));
        }
        return;
    }
    if (sl_config_type(from) != SL_CONFIG_SEQ) {
        s_resolve_from_entry(p, i, from);
        return;
    }
    for (size_t k = 0; k < sl_config_len(from); k++)
        s_resolve_from_entry(p, i, sl_config_at(from, k));
}

static int s_add_output(sl_topo_stage_t *s, size_t to)
{
    size_t *outputs =
        realloc(s->outputs, (s->n_outputs + 1) * sizeof(*outputs));
    if (!outputs)
        return -ENOMEM;
    s->outputs = outputs;
    s->outputs[s->n_outputs++] = to;
    return 0;
}

/* Links outputs (in file order of the consumers) and checks each link. */
static void s_link(sl_topo_parse_t *p)
{
    sl_topology_t *t = p->t;
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        for (size_t k = 0; k < s->n_inputs; k++) {
            size_t j = s->inputs[k];
            if (s_add_output(&t->stages[j], i) != 0)
                p->oom = true;
            if (p->info[j].kind != SL_STAGE_SINK)
                continue;
            if (p->info[i].from_node)
                sl__topo_err(p, p->info[i].in_nodes[k], "%s takes input from "
                             "'%s', but '%s' is a sink (plugin '%s') and has "
                             "no output", p->info[i].label, s_name(p, j),
                             s_name(p, j), t->stages[j].plugin_name);
            else
                sl__topo_err(p, s->node, "%s takes input from the previous "
                             "stage '%s', but '%s' is a sink (plugin '%s') "
                             "and has no output; give %s a 'from:'",
                             p->info[i].label, s_name(p, j), s_name(p, j),
                             t->stages[j].plugin_name, p->info[i].label);
        }
    }
}

/* Stage-level checks that need the whole graph. */
static void s_check_ends(sl_topo_parse_t *p)
{
    sl_topology_t *t = p->t;
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        sl_topo_info_t *in = &p->info[i];
        if (!s->node)
            continue;
        if ((in->kind == SL_STAGE_SOURCE || in->kind == SL_STAGE_TRANSFORM) &&
            s->n_outputs == 0)
            sl__topo_err(p, in->name_node ? in->name_node : s->node,
                         "%s output goes nowhere; add a sink", in->label);
        if (in->kind == SL_STAGE_SINK && in->fanout_node)
            sl__topo_err(p, in->fanout_node, "%s is a sink: it has no "
                         "outputs, so 'fanout' does not apply", in->label);
        if (in->partition_node && s->partition_by &&
            s->workers_max > s->workers_min)
            sl__topo_err(p, in->partition_node, "%s: an elastic pool cannot "
                         "keep partition_by (keys would move between "
                         "workers); give 'workers' a fixed number",
                         in->label);
        if (in->kind == SL_STAGE_SOURCE && in->partition_node)
            sl__topo_err(p, in->partition_node, "%s is a source: it has no "
                         "inputs, so 'partition_by' does not apply",
                         in->label);
        if (s->n_inputs > s->queue)
            sl__topo_err(p, in->queue_node ? in->queue_node : s->node,
                         "%s has %zu inputs but 'queue' is %u; each input "
                         "link needs at least one record of credit", in->label,
                         s->n_inputs, s->queue);
    }
}

/* Reports the cycle closed by the edge from stack[d-1] into v. */
static void s_report_cycle(sl_topo_parse_t *p, const size_t *stack, size_t d,
                           size_t v)
{
    sl_topology_t *t = p->t;
    size_t start = 0;
    while (start < d && stack[start] != v)
        start++;
    size_t len = 0;
    for (size_t k = start; k < d; k++)
        len += strlen(s_name(p, stack[k])) + 4;
    len += strlen(s_name(p, v)) + 1;
    char *path = malloc(len);
    if (!path) {
        p->oom = true;
        return;
    }
    size_t off = 0;
    for (size_t k = start; k < d; k++)
        off += (size_t)sprintf(path + off, "%s -> ", s_name(p, stack[k]));
    strcpy(path + off, s_name(p, v));
    /* Point at where v names its predecessor in the cycle. */
    const sl_config_t *at = t->stages[v].node;
    size_t u = stack[d - 1];
    for (size_t k = 0; k < t->stages[v].n_inputs; k++)
        if (t->stages[v].inputs[k] == u)
            at = p->info[v].in_nodes[k];
    sl__topo_err(p, at, "cycle: %s", path);
    free(path);
}

/* Depth-first over outputs with an explicit stack, so a long generated
 * chain cannot overflow the C stack. Each back edge is one cycle. */
static void s_check_cycles(sl_topo_parse_t *p)
{
    sl_topology_t *t = p->t;
    size_t n = t->n_stages;
    unsigned char *color = calloc(n, 1); /* 0 new, 1 on stack, 2 done */
    size_t *stack = calloc(n, sizeof(*stack));
    size_t *next = calloc(n, sizeof(*next));
    if (!color || !stack || !next) {
        p->oom = true;
        goto out;
    }
    for (size_t root = 0; root < n; root++) {
        if (color[root])
            continue;
        size_t d = 0;
        stack[d] = root;
        next[d++] = 0;
        color[root] = 1;
        while (d > 0) {
            size_t u = stack[d - 1];
            const sl_topo_stage_t *su = &t->stages[u];
            /* dead-letter links are edges too */
            size_t n_adj = su->n_outputs + (su->dl_stage >= 0);
            if (next[d - 1] == n_adj) {
                color[u] = 2;
                d--;
                continue;
            }
            size_t e = next[d - 1]++;
            size_t v = e < su->n_outputs ? su->outputs[e]
                                         : (size_t)su->dl_stage;
            if (color[v] == 1) {
                s_report_cycle(p, stack, d, v);
            } else if (color[v] == 0) {
                color[v] = 1;
                stack[d] = v;
                next[d++] = 0;
            }
        }
    }
out:
    free(next);
    free(stack);
    free(color);
}

/* ---- the whole file ----------------------------------------------------- */

static char *s_stem(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    return strndup(base, len);
}

static void s_parse_top(sl_topo_parse_t *p, const sl_config_t *root)
{
    sl_topology_t *t = p->t;
    char buf[96];
    if (sl_config_type(root) != SL_CONFIG_MAP) {
        sl__topo_err(p, root,
                     "a topology must be a map with a 'stages' list, got %s",
                     sl__topo_what(root, buf, sizeof(buf)));
        return;
    }
    sl__topo_check_keys(p, root, s_top_keys, "at the top level");
    const sl_config_t *name = sl_config_get(root, "name");
    if (name && !sl__topo_is_text(name))
        sl__topo_err(p, name, "'name' must be a string, got %s",
                     sl__topo_what(name, buf, sizeof(buf)));
    t->name = name && sl__topo_is_text(name) ? strdup(sl_config_str(name))
                                      : s_stem(t->path);
    if (!t->name)
        p->oom = true;
    sl__topo_parse_run(p, root);
    sl__topo_parse_hosts(p, root);
    sl__limits_default(&t->limits);
    sl__topo_parse_limits(p, sl_config_get(root, "limits"), "", &t->limits);
    sl__topo_parse_defaults(p, sl_config_get(root, "defaults"));

    const sl_config_t *stages = sl_config_get(root, "stages");
    if (!stages) {
        sl__topo_err(p, root, "missing required key 'stages'");
        return;
    }
    if (sl_config_type(stages) != SL_CONFIG_SEQ) {
        sl__topo_err(p, stages, "'stages' must be a list of stages, got %s",
                     sl__topo_what(stages, buf, sizeof(buf)));
        return;
    }
    size_t n = sl_config_len(stages);
    if (n == 0) {
        sl__topo_err(p, stages, "'stages' is empty; a topology needs at least "
                     "a source and a sink");
        return;
    }
    t->stages = calloc(n, sizeof(*t->stages));
    p->info = calloc(n, sizeof(*p->info));
    if (!t->stages || !p->info) {
        p->oom = true;
        return;
    }
    t->n_stages = n;
    for (size_t i = 0; i < n; i++)
        t->stages[i].dl_stage = t->stages[i].host = -1;
    for (size_t i = 0; i < n; i++)
        sl__topo_parse_stage(p, i, sl_config_at(stages, i));
    sl__topo_resolve_dl_stages(p);
    for (size_t i = 0; i < n; i++)
        if (t->stages[i].node)
            s_resolve_inputs(p, i);
    s_link(p);
    sl__topo_limit_batches(p);
    sl__topo_link_dl(p);
    s_check_ends(p);
    sl__topo_check_dl_files(p);
    s_check_cycles(p);
    sl__topo_place_stages(p);

    size_t sources = 0, sinks = 0, unknown = 0;
    for (size_t i = 0; i < n; i++) {
        sources += p->info[i].kind == SL_STAGE_SOURCE;
        sinks += p->info[i].kind == SL_STAGE_SINK;
        unknown += p->info[i].kind == 0;
    }
    /* Only meaningful when every plugin's kind is known. */
    if (!unknown && !sources)
        sl__topo_err(p, stages, "the topology has no source stage");
    if (!unknown && !sinks)
        sl__topo_err(p, stages, "the topology has no sink stage");
}

static sl_topology_t *s_build(const char *path, sl_config_doc_t *doc,
                              sl_diag_t *diag)
{
    sl_diag_t local;
    sl__diag_init(&local);
    sl_topo_parse_t p;
    sl__topo_parse_init(&p, diag ? diag : &local);
    size_t before = p.diag->count;
    sl_topology_t *t = calloc(1, sizeof(*t));
    if (t)
        t->run_node = -1;
    if (!t || !(t->path = strdup(path))) {
        free(t);
        sl__config_doc_destroy(&doc);
        sl__diag_add(p.diag, "%s: out of memory", path);
        t = NULL;
        goto out;
    }
    t->doc = doc;
    p.t = t;
    s_parse_top(&p, sl__config_doc_root(doc));
    if (p.oom)
        sl__diag_add(p.diag, "%s: out of memory", path);
    if (p.info)
        for (size_t i = 0; i < t->n_stages; i++)
            free(p.info[i].in_nodes);
    free(p.info);
    if (p.diag->count > before) {
        sl__diag_sort(p.diag, before, path);
        sl__topology_destroy(&t);
    }
out:
    if (!diag)
        sl__diag_print(&local, stderr);
    sl__diag_fini(&local);
    return t;
}

sl_topology_t *sl__topology_load(const char *path, sl_diag_t *diag)
{
    sl_config_doc_t *doc = sl__config_doc_load(path, diag);
    return doc ? s_build(path, doc, diag) : NULL;
}

sl_topology_t *sl__topology_parse(const char *name, const char *basedir,
                                  const char *text, sl_diag_t *diag)
{
    sl_config_doc_t *doc =
        sl__config_doc_parse(name, basedir, text, strlen(text), diag);
    return doc ? s_build(name, doc, diag) : NULL;
}

void sl__topology_destroy(sl_topology_t **tp)
{
    sl_topology_t *t = tp ? *tp : NULL;
    if (!t)
        return;
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        sl__plugin_release(&s->plugin);
        free(s->name);
        free(s->plugin_name);
        free(s->partition_by);
        free(s->dl_path);
        free(s->uses);
        sl__prio_rule_free(s->priority);
        free(s->inputs);
        free(s->outputs);
    }
    free(t->stages);
    for (size_t k = 0; k < t->n_resources; k++)
        free(t->resources[k].name);
    free(t->resources);
    free(t->spill_path);
    free(t->state_dir);
    sl__topo_hosts_free(t);
    sl__config_doc_destroy(&t->doc);
    free(t->name);
    free(t->path);
    free(t);
    *tp = NULL;
}

long sl__topology_find(const sl_topology_t *topo, const char *name)
{
    for (size_t i = 0; i < topo->n_stages; i++)
        if (topo->stages[i].name && strcmp(topo->stages[i].name, name) == 0)
            return (long)i;
    return -1;
}

int sl__topology_set_workers(sl_topology_t *topo, const char *stage,
                             unsigned n, char *err, size_t errlen)
{
    long i = sl__topology_find(topo, stage);
    if (i < 0) {
        snprintf(err, errlen, "no stage '%s' in %s", stage, topo->path);
        return -ENOENT;
    }
    sl_topo_stage_t *s = &topo->stages[i];
    unsigned max = s->plugin->desc->max_workers;
    if (n < 1 || n > SL_TOPO_MAX_WORKERS || (max && n > max)) {
        snprintf(err, errlen, "stage '%s': %u workers is outside 1..%u "
                 "(plugin '%s')", stage, n,
                 max ? max : SL_TOPO_MAX_WORKERS, s->plugin_name);
        return -EINVAL;
    }
    s->workers = s->workers_min = s->workers_max = n;
    s->workers_auto = 0;
    return 0;
}
