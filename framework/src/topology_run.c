/*
 * The keys that shape a run rather than one stage's work: shared limits
 * (`resources:`, `uses:`), shutdown (`grace:`, `spill:`), committed source
 * positions (`state_dir:`), and where records go when something refuses
 * them (`dead_letter: {stage}`, `when_full:`, `priority:`). docs/topology.md
 * and docs/reliability.md describe them.
 */
#include "topology_parse.h"

#include "prio_rule.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SL_TOPO_DEFAULT_GRACE_MS 30000u
#define SL_TOPO_MAX_RESOURCE 1000000

static const char *const s_spill_keys[] = {"path", "format", NULL};
static const char *const s_prio_keys[] = {"field", "values", "default", NULL};
static const char *const s_when_full[] = {"block", "spill", "dead_letter",
                                          NULL};

static bool s_level(sl_topo_parse_t *p, const sl_config_t *n,
                    const char *label, const char *key, uint8_t *out)
{
    int64_t v;
    char buf[96];
    if (sl_config_int(n, &v) != 0 || v < 0 || v >= SL_PRIO_LEVELS) {
        sl__topo_err(p, n, "%s: '%s' must be a priority from 0 (highest) to "
                     "%d, got %s", label, key, SL_PRIO_LEVELS - 1,
                     sl__topo_what(n, buf, sizeof(buf)));
        return false;
    }
    *out = (uint8_t)v;
    return true;
}

static void s_parse_resources(sl_topo_parse_t *p, const sl_config_t *n)
{
    sl_topology_t *t = p->t;
    char buf[96];
    if (sl_config_type(n) != SL_CONFIG_MAP) {
        sl__topo_err(p, n, "'resources' must be a map of names to limits such "
                     "as {db: 20}, got %s", sl__topo_what(n, buf, sizeof(buf)));
        return;
    }
    size_t len = sl_config_len(n);
    if (!len)
        return;
    t->resources = calloc(len, sizeof(*t->resources));
    if (!t->resources) {
        p->oom = true;
        return;
    }
    for (size_t k = 0; k < len; k++) {
        const char *name = sl_config_key_at(n, k);
        const sl_config_t *v = sl_config_value_at(n, k);
        int64_t limit;
        if (sl_config_int(v, &limit) != 0 || limit < 1 ||
            limit > SL_TOPO_MAX_RESOURCE) {
            sl__topo_err(p, v, "resource '%s': the limit must be an integer "
                         "from 1 to %d (handler calls at once), got %s", name,
                         SL_TOPO_MAX_RESOURCE,
                         sl__topo_what(v, buf, sizeof(buf)));
            continue;
        }
        sl_topo_resource_t *r = &t->resources[t->n_resources];
        if (!(r->name = strdup(name))) {
            p->oom = true;
            return;
        }
        r->limit = (uint32_t)limit;
        t->n_resources++;
    }
}

/* A file the run may write, given as PATH or {path, format}. */
static void s_parse_spill(sl_topo_parse_t *p, const sl_config_t *n)
{
    sl_topology_t *t = p->t;
    char buf[96];
    const sl_config_t *path = n, *fmt = NULL;
    if (sl_config_type(n) == SL_CONFIG_MAP) {
        sl__topo_check_keys(p, n, s_spill_keys, "in 'spill'");
        path = sl_config_get(n, "path");
        fmt = sl_config_get(n, "format");
        if (!path) {
            sl__topo_err(p, n, "'spill' needs 'path'");
            return;
        }
    }
    if (!sl__topo_is_text(path) || !sl_config_str(path)[0]) {
        sl__topo_err(p, path, "'spill' must be a file path or a map {path, "
                     "format}, got %s", sl__topo_what(path, buf, sizeof(buf)));
        return;
    }
    free(t->spill_path);
    if (!(t->spill_path = sl__topo_path(p, sl_config_str(path), ""))) {
        p->oom = true;
        return;
    }
    t->spill_format = sl__topo_dl_format_of(t->spill_path);
    if (fmt) {
        const char *f = sl_config_type(fmt) == SL_CONFIG_STRING
                            ? sl_config_str(fmt) : "";
        if (strcmp(f, "jsonl") == 0)
            t->spill_format = SL_DL_JSONL;
        else if (strcmp(f, "msgpack") == 0)
            t->spill_format = SL_DL_MSGPACK;
        else
            sl__topo_err(p, fmt, "'spill.format' must be 'jsonl' or "
                         "'msgpack', got %s",
                         sl__topo_what(fmt, buf, sizeof(buf)));
    }
    sl__topo_check_file_dir(p, path, "top level", "spill", t->spill_path);
}

/* state_dir is created by the run if missing; its parent must exist. */
static void s_parse_state_dir(sl_topo_parse_t *p, const sl_config_t *n)
{
    char buf[96];
    if (!sl__topo_is_text(n) || !sl_config_str(n)[0]) {
        sl__topo_err(p, n, "'state_dir' must be a directory path, got %s",
                     sl__topo_what(n, buf, sizeof(buf)));
        return;
    }
    char *dir = sl__topo_path(p, sl_config_str(n), "");
    if (!dir) {
        p->oom = true;
        return;
    }
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        dir[--len] = '\0';
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            sl__topo_err(p, n, "'state_dir' '%s' is not a directory", dir);
    } else {
        /* checks the parent folder: "x/state" needs "x/" */
        sl__topo_check_file_dir(p, n, "top level", "state_dir", dir);
    }
    p->t->state_dir = dir;
}

void sl__topo_parse_run(sl_topo_parse_t *p, const sl_config_t *root)
{
    sl_topology_t *t = p->t;
    const sl_config_t *n;
    t->grace_ms = SL_TOPO_DEFAULT_GRACE_MS;
    if ((n = sl_config_get(root, "resources")))
        s_parse_resources(p, n);
    if ((n = sl_config_get(root, "grace")))
        sl__topo_get_duration(p, n, "grace", "top level", &t->grace_ms);
    if ((n = sl_config_get(root, "spill"))) {
        s_parse_spill(p, n);
    } else if (t->name) {
        char file[300];
        snprintf(file, sizeof(file), "%s.spill.jsonl", t->name);
        if (!(t->spill_path = sl__topo_path(p, file, "")))
            p->oom = true;
        t->spill_format = SL_DL_JSONL;
    }
    if ((n = sl_config_get(root, "state_dir")))
        s_parse_state_dir(p, n);
}

/* ---- per stage ------------------------------------------------------------ */

static long s_resource(const sl_topology_t *t, const char *name)
{
    for (size_t k = 0; k < t->n_resources; k++)
        if (strcmp(t->resources[k].name, name) == 0)
            return (long)k;
    return -1;
}

static void s_use(sl_topo_parse_t *p, size_t i, const sl_config_t *n)
{
    sl_topology_t *t = p->t;
    sl_topo_stage_t *s = &t->stages[i];
    const char *label = p->info[i].label;
    char buf[96];
    const char *name = sl_config_type(n) == SL_CONFIG_STRING
                           ? sl_config_str(n) : NULL;
    if (!name) {
        sl__topo_err(p, n, "%s: 'uses' names resources declared under "
                     "'resources', got %s", label,
                     sl__topo_what(n, buf, sizeof(buf)));
        return;
    }
    long k = s_resource(t, name);
    if (k < 0) {
        const char **names = calloc(t->n_resources + 1, sizeof(*names));
        for (size_t j = 0; names && j < t->n_resources; j++)
            names[j] = t->resources[j].name;
        const char *hint = names ? sl__topo_suggest(name, names,
                                                    t->n_resources) : NULL;
        sl__topo_err(p, n, "%s: 'uses' names unknown resource '%s'%s%s%s%s",
                     label, name, hint ? "; did you mean '" : "",
                     hint ? hint : "", hint ? "'?" : "",
                     t->n_resources ? "" : " (the topology declares none: "
                     "add 'resources: {NAME: LIMIT}' at the top level)");
        free(names);
        return;
    }
    for (size_t j = 0; j < s->n_uses; j++)
        if (s->uses[j] == (size_t)k) {
            sl__topo_err(p, n, "%s: resource '%s' is listed twice in 'uses'",
                         label, name);
            return;
        }
    size_t *uses = realloc(s->uses, (s->n_uses + 1) * sizeof(*uses));
    if (!uses) {
        p->oom = true;
        return;
    }
    s->uses = uses;
    s->uses[s->n_uses++] = (size_t)k;
}

static void s_parse_priority(sl_topo_parse_t *p, size_t i,
                             const sl_config_t *n)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    const char *label = p->info[i].label;
    char buf[96], where[128];
    sl_prio_rule_t *rule = calloc(1, sizeof(*rule));
    if (!rule) {
        p->oom = true;
        return;
    }
    rule->dflt = SL_PRIO_LEVELS - 1;
    if (sl_config_type(n) != SL_CONFIG_MAP) {
        /* a constant: every record the stage emits */
        if (!s_level(p, n, label, "priority", &rule->dflt))
            goto fail;
        s->priority = rule;
        return;
    }
    snprintf(where, sizeof(where), "in 'priority' of %s", label);
    sl__topo_check_keys(p, n, s_prio_keys, where);
    const sl_config_t *f = sl_config_get(n, "field");
    const sl_config_t *v = sl_config_get(n, "values");
    const sl_config_t *d = sl_config_get(n, "default");
    if (!f || sl_config_type(f) != SL_CONFIG_STRING ||
        !sl__topo_valid_field_path(sl_config_str(f))) {
        sl__topo_err(p, f ? f : n, "%s: 'priority.field' must be a dotted "
                     "field path such as 'level', got %s", label,
                     f ? sl__topo_what(f, buf, sizeof(buf)) : "nothing");
        goto fail;
    }
    if (!(rule->field = strdup(sl_config_str(f))))
        goto oom;
    if (d && !s_level(p, d, label, "priority.default", &rule->dflt))
        goto fail;
    if (v) {
        if (sl_config_type(v) != SL_CONFIG_MAP || !sl_config_len(v)) {
            sl__topo_err(p, v, "%s: 'priority.values' must map field values "
                         "to priorities, such as {error: 0, info: 2}, got %s",
                         label, sl__topo_what(v, buf, sizeof(buf)));
            goto fail;
        }
        size_t len = sl_config_len(v);
        rule->keys = calloc(len, sizeof(*rule->keys));
        rule->levels = calloc(len, sizeof(*rule->levels));
        if (!rule->keys || !rule->levels)
            goto oom;
        for (size_t k = 0; k < len; k++) {
            if (!s_level(p, sl_config_value_at(v, k), label, "priority.values",
                         &rule->levels[k]))
                goto fail;
            if (!(rule->keys[k] = strdup(sl_config_key_at(v, k))))
                goto oom;
            rule->n_values++;
        }
    }
    s->priority = rule;
    return;
oom:
    p->oom = true;
fail:
    sl__prio_rule_free(rule);
}

void sl__topo_parse_stage_routing(sl_topo_parse_t *p, size_t i,
                                  const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    sl_topo_info_t *in = &p->info[i];
    char buf[96];
    const sl_config_t *n;
    s->dl_stage = -1;
    if ((n = sl_config_get(st, "uses"))) {
        if (sl_config_type(n) == SL_CONFIG_SEQ)
            for (size_t k = 0; k < sl_config_len(n); k++)
                s_use(p, i, sl_config_at(n, k));
        else
            s_use(p, i, n);
    }
    if ((n = sl_config_get(st, "when_full"))) {
        in->when_full_node = n;
        const char *v = sl_config_type(n) == SL_CONFIG_STRING
                            ? sl_config_str(n) : NULL;
        int k = 0;
        while (v && s_when_full[k] && strcmp(v, s_when_full[k]) != 0)
            k++;
        if (v && s_when_full[k]) {
            s->when_full = (sl_when_full_t)k;
        } else {
            const char *hint = v ? sl__topo_suggest(v, s_when_full, 3) : NULL;
            sl__topo_err(p, n, "%s: 'when_full' must be 'block', 'spill' or "
                         "'dead_letter', got %s%s%s%s", in->label,
                         sl__topo_what(n, buf, sizeof(buf)),
                         hint ? "; did you mean '" : "", hint ? hint : "",
                         hint ? "'?" : "");
        }
    }
    if ((n = sl_config_get(st, "priority")))
        s_parse_priority(p, i, n);
}

/* ---- dead-letter routing -------------------------------------------------- */

void sl__topo_resolve_dl_stages(sl_topo_parse_t *p)
{
    sl_topology_t *t = p->t;
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_info_t *in = &p->info[i];
        const sl_config_t *n = in->dl_stage_node;
        if (!n || !t->stages[i].node)
            continue;
        const char *name = sl__topo_name_text(n);
        long j = sl__topology_find(t, name);
        if (j < 0) {
            /* a default names it once: report it once */
            if (in->dl_stage_own || i == 0 || !p->info[i - 1].dl_stage_node ||
                p->info[i - 1].dl_stage_own)
                sl__topo_err(p, n, "%s: 'dead_letter.stage' names unknown "
                             "stage '%s'", in->dl_stage_own ? in->label
                             : "defaults", name);
            in->dl_stage_node = NULL;
            continue;
        }
        if ((size_t)j == i) {
            if (in->dl_stage_own)
                sl__topo_err(p, n, "%s: a stage cannot be its own "
                             "dead-letter target", in->label);
            in->dl_stage_node = NULL; /* the target itself keeps none */
            continue;
        }
        if (p->info[j].kind == SL_STAGE_SOURCE) {
            sl__topo_err(p, n, "%s: dead-letter target '%s' is a source and "
                         "takes no input", in->label, name);
            in->dl_stage_node = NULL;
            continue;
        }
        t->stages[i].dl_stage = j;
    }
}

bool sl__topo_is_dl_target(const sl_topo_parse_t *p, size_t i)
{
    for (size_t k = 0; k < p->t->n_stages; k++)
        if (p->t->stages[k].dl_stage == (long)i)
            return true;
    return false;
}

/* Whether `to` can be reached from `from` over outputs and dead-letter
 * links (the graph is checked for cycles afterwards). */
static bool s_reaches(const sl_topology_t *t, size_t from, size_t to,
                      unsigned char *seen)
{
    if (from == to)
        return true;
    if (seen[from])
        return false;
    seen[from] = 1;
    const sl_topo_stage_t *s = &t->stages[from];
    for (size_t k = 0; k < s->n_outputs; k++)
        if (s_reaches(t, s->outputs[k], to, seen))
            return true;
    return s->dl_stage >= 0 && s_reaches(t, (size_t)s->dl_stage, to, seen);
}

void sl__topo_link_dl(sl_topo_parse_t *p)
{
    sl_topology_t *t = p->t;
    unsigned char *seen = calloc(t->n_stages ? t->n_stages : 1, 1);
    if (!seen) {
        p->oom = true;
        return;
    }
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        sl_topo_info_t *in = &p->info[i];
        if (s->dl_stage < 0)
            continue;
        size_t j = (size_t)s->dl_stage;
        /* A default target downstream of this stage would close a loop:
         * such stages keep no target (their failures are logged). */
        memset(seen, 0, t->n_stages);
        if (!in->dl_stage_own && s_reaches(t, j, i, seen)) {
            s->dl_stage = -1;
            continue;
        }
        for (size_t k = 0; k < s->n_outputs; k++)
            if (s->outputs[k] == j) {
                sl__topo_err(p, in->dl_stage_node, "%s: '%s' is already an "
                             "output of this stage; route dead letters to a "
                             "stage of their own", in->label,
                             t->stages[j].name);
                s->dl_stage = -1;
                break;
            }
        if (s->dl_stage < 0)
            continue;
        sl_topo_stage_t *c = &t->stages[j];
        size_t *inputs = realloc(c->inputs, (c->n_inputs + 1) * sizeof(*inputs));
        const sl_config_t **nodes = realloc(
            p->info[j].in_nodes, (c->n_inputs + 1) * sizeof(*nodes));
        if (inputs)
            c->inputs = inputs;
        if (nodes)
            p->info[j].in_nodes = nodes;
        if (!inputs || !nodes) {
            p->oom = true;
            break;
        }
        c->inputs[c->n_inputs] = i;
        p->info[j].in_nodes[c->n_inputs] = in->dl_stage_node;
        c->n_inputs++;
    }
    free(seen);
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        sl_topo_info_t *in = &p->info[i];
        if (!in->when_full_node || s->when_full == SL_WHEN_FULL_BLOCK)
            continue;
        if (in->kind == SL_STAGE_SOURCE)
            sl__topo_err(p, in->when_full_node, "%s is a source: it has no "
                         "inputs, so 'when_full' does not apply", in->label);
        else if (s->when_full == SL_WHEN_FULL_DEAD_LETTER && !s->dl_path)
            sl__topo_err(p, in->when_full_node, "%s: 'when_full: "
                         "dead_letter' needs a dead-letter file on this stage "
                         "('dead_letter: PATH')", in->label);
    }
}
