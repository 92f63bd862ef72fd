/*
 * Test files to cases. The file is read by the config loader, so every
 * complaint names FILE:LINE:COL of the offending value; values that stand
 * for records are packed to msgpack here, once, so that running a case
 * never looks at YAML again.
 */
#include "stagetest_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl__stest_perr(sl_stest_parse_t *p, const sl_config_t *node,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (p->label[0])
        sl_config_error(node, "%s: %s", p->label, msg ? msg : fmt);
    else
        sl_config_error(node, "%s", msg ? msg : fmt);
    free(msg);
    p->errors++;
}

const char *sl__stest_a(sl_config_type_t t)
{
    switch (t) {
    case SL_CONFIG_NULL: return "null";
    case SL_CONFIG_BOOL: return "a boolean";
    case SL_CONFIG_INT: return "an integer";
    case SL_CONFIG_FLOAT: return "a number";
    case SL_CONFIG_STRING: return "a string";
    case SL_CONFIG_SEQ: return "a sequence";
    case SL_CONFIG_MAP: return "a map";
    }
    return "?";
}

bool sl__stest_is_scalar(const sl_config_t *n)
{
    sl_config_type_t t = sl_config_type(n);
    return t != SL_CONFIG_SEQ && t != SL_CONFIG_MAP && t != SL_CONFIG_NULL;
}

/* Rejects keys of map not in allowed (NULL-terminated). */
void sl__stest_keys(sl_stest_parse_t *p, const sl_config_t *map,
                    const char *const *allowed, const char *where)
{
    for (size_t i = 0; i < sl_config_len(map); i++) {
        const char *key = sl_config_key_at(map, i);
        bool ok = false;
        for (const char *const *k = allowed; *k && !ok; k++)
            ok = strcmp(*k, key) == 0;
        if (ok)
            continue;
        char list[512];
        size_t used = 0;
        list[0] = '\0';
        for (const char *const *k = allowed; *k && used < sizeof(list); k++)
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                     k == allowed ? "" : ", ", *k);
        sl__stest_perr(p, sl__config_key_node_at(map, i),
                       "unknown key '%s' in %s (accepted: %s)", key, where,
                       list);
    }
}

int sl__stest_map(sl_stest_parse_t *p, const sl_config_t *n, const char *what)
{
    if (sl_config_type(n) == SL_CONFIG_MAP)
        return 0;
    sl__stest_perr(p, n, "'%s' must be a map, got %s", what,
                   sl__stest_a(sl_config_type(n)));
    return -EINVAL;
}

int sl__stest_seq(sl_stest_parse_t *p, const sl_config_t *n, const char *what)
{
    if (sl_config_type(n) == SL_CONFIG_SEQ)
        return 0;
    sl__stest_perr(p, n, "'%s' must be a list, got %s", what,
                   sl__stest_a(sl_config_type(n)));
    return -EINVAL;
}

/* A scalar's text, copied. */
int sl__stest_str(sl_stest_parse_t *p, const sl_config_t *n, const char *what,
                  char **out)
{
    if (!sl__stest_is_scalar(n)) {
        sl__stest_perr(p, n, "'%s' must be a string, got %s", what,
                       sl__stest_a(sl_config_type(n)));
        return -EINVAL;
    }
    free(*out);
    *out = strdup(sl_config_str(n));
    return *out ? 0 : -ENOMEM;
}

int sl__stest_bool(sl_stest_parse_t *p, const sl_config_t *n, const char *what,
                   bool *out)
{
    int v;
    if (sl_config_bool(n, &v) != 0) {
        sl__stest_perr(p, n, "'%s' must be true or false, got %s", what,
                       sl__stest_a(sl_config_type(n)));
        return -EINVAL;
    }
    *out = v != 0;
    return 0;
}

int sl__stest_uint(sl_stest_parse_t *p, const sl_config_t *n, const char *what,
                   uint64_t min, uint64_t *out)
{
    int64_t v;
    int rc = sl_config_int(n, &v);
    if (rc == 0 && v >= 0 && (uint64_t)v >= min) {
        *out = (uint64_t)v;
        return 0;
    }
    if (rc == 0 || rc == -ERANGE)
        sl__stest_perr(p, n, "'%s' must be an integer from %llu up, got %s",
                       what, (unsigned long long)min, sl_config_str(n));
    else
        sl__stest_perr(p, n, "'%s' must be an integer, got %s", what,
                       sl__stest_a(sl_config_type(n)));
    return -EINVAL;
}

/* "500ms", "10s", "2m", or a number of seconds. */
static int s_duration(sl_stest_parse_t *p, const sl_config_t *n, uint64_t *ms)
{
    const char *t = sl_config_str(n);
    char *end = NULL;
    double v = t && sl__stest_is_scalar(n) ? strtod(t, &end) : -1;
    double scale = 0;
    if (end && end != t) {
        if (strcmp(end, "ms") == 0)
            scale = 1;
        else if (strcmp(end, "s") == 0 || *end == '\0')
            scale = 1000;
        else if (strcmp(end, "m") == 0)
            scale = 60000;
    }
    if (scale == 0 || !(v > 0) || v * scale > 86400000.0) {
        sl__stest_perr(p, n,
                       "'timeout' must be a duration such as 500ms, 10s or 2m, "
                       "got '%s'",
                       t ? t : "");
        return -EINVAL;
    }
    *ms = (uint64_t)ceil(v * scale);
    return 0;
}

/* Any value as a blob of msgpack. */
int sl__stest_value(sl_stest_parse_t *p, const sl_config_t *n,
                    sl_stest_blob_t *out)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = sl__stest_pack(n, &pk);
    if (rc) {
        msgpack_sbuffer_destroy(&sb);
        p->errors++;
        return rc;
    }
    free(out->data);
    out->data = sb.data; /* the blob takes the buffer */
    out->len = sb.size;
    return 0;
}

/* A record: a map; or, where raw is allowed, `!!binary` bytes that are
 * handed to the stage as they are (data that is not a msgpack map). */
int sl__stest_record(sl_stest_parse_t *p, const sl_config_t *n,
                     const char *what, size_t i, bool raw, sl_stest_blob_t *out)
{
    if (raw && sl__config_is_binary(n)) {
        unsigned char *bin;
        int rc = sl__stest_binary(n, &bin, &out->len);
        if (rc)
            p->errors++;
        out->data = rc ? NULL : (char *)bin;
        return rc;
    }
    if (sl_config_type(n) != SL_CONFIG_MAP) {
        sl__stest_perr(p, n, "%s %zu must be a map (a record), got %s", what,
                       i + 1, sl__stest_a(sl_config_type(n)));
        return -EINVAL;
    }
    return sl__stest_value(p, n, out);
}

int sl__stest_records(sl_stest_parse_t *p, const sl_config_t *n,
                      const char *key, const char *what, bool raw,
                      sl_stest_blob_t **out, size_t *len)
{
    if (sl__stest_seq(p, n, key))
        return -EINVAL;
    size_t cnt = sl_config_len(n);
    *out = calloc(cnt ? cnt : 1, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    *len = cnt;
    int rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        int r =
            sl__stest_record(p, sl_config_at(n, i), what, i, raw, &(*out)[i]);
        rc = rc ? rc : r;
    }
    return rc;
}

/* ---- files ------------------------------------------------------------- */

static bool s_safe_path(const char *path)
{
    if (!*path || path[0] == '/')
        return false;
    const char *s = path;
    while (*s) {
        size_t seg = strcspn(s, "/");
        if (seg == 0 || (seg == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        s += seg;
        if (*s == '/')
            s++;
    }
    return path[strlen(path) - 1] != '/';
}

int sl__stest_content(sl_stest_parse_t *p, const sl_config_t *n,
                      const char *path, sl_stest_blob_t *out)
{
    sl_config_type_t t = sl_config_type(n);
    if (t == SL_CONFIG_NULL) {
        out->data = calloc(1, 1);
        out->len = 0;
        return out->data ? 0 : -ENOMEM;
    }
    if (!sl__stest_is_scalar(n)) {
        sl__stest_perr(p, n,
                       "the content of file '%s' must be a string, got %s",
                       path, sl__stest_a(t));
        return -EINVAL;
    }
    if (sl__config_is_binary(n)) {
        unsigned char *bin;
        int rc = sl__stest_binary(n, &bin, &out->len);
        if (rc)
            p->errors++;
        out->data = rc ? NULL : (char *)bin;
        return rc;
    }
    out->data = strdup(sl_config_str(n));
    out->len = out->data ? strlen(out->data) : 0;
    return out->data ? 0 : -ENOMEM;
}

int sl__stest_files(sl_stest_parse_t *p, const sl_config_t *n,
                    sl_stest_fdata_t **out, size_t *len)
{
    if (sl__stest_map(p, n, "files"))
        return -EINVAL;
    size_t cnt = sl_config_len(n);
    *out = calloc(cnt ? cnt : 1, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    *len = cnt;
    int rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        const char *path = sl_config_key_at(n, i);
        if (!s_safe_path(path)) {
            sl__stest_perr(
                p, sl__config_key_node_at(n, i),
                "file '%s' must be a relative path inside the case's "
                "folder (no leading '/', no '..')",
                path);
            rc = -EINVAL;
        }
        if (!((*out)[i].path = strdup(path)))
            return -ENOMEM;
        int r = sl__stest_content(p, sl_config_value_at(n, i), path,
                                  &(*out)[i].content);
        rc = rc ? rc : r;
    }
    return rc;
}

/* ---- one case ---------------------------------------------------------- */

static int s_stage(sl_stest_parse_t *p, const sl_config_t *n,
                   sl_stest_case_t *c)
{
    static const char *const keys[] = {"plugin", "config", NULL};
    if (sl__stest_map(p, n, "stage"))
        return -EINVAL;
    sl__stest_keys(p, n, keys, "'stage'");
    c->stage_node = n;
    int rc = 0;
    const sl_config_t *v = sl_config_get(n, "plugin");
    if (!v) {
        sl__stest_perr(p, n, "'stage' needs 'plugin'");
        rc = -EINVAL;
    } else if (sl__stest_str(p, v, "plugin", &c->plugin)) {
        rc = -EINVAL;
    }
    if ((v = sl_config_get(n, "config"))) {
        if (sl__stest_map(p, v, "config"))
            rc = -EINVAL;
        c->config = v;
    }
    return rc;
}

static char *s_join(const char *dir, const char *path)
{
    char *out = NULL;
    if (path[0] == '/')
        return strdup(path);
    return asprintf(&out, "%s/%s", dir, path) < 0 ? NULL : out;
}

static const char *const s_case_keys[] = {
    "name",  "stage",  "topology",   "inject",  "files",
    "input", "expect", "stop_after", "timeout", NULL};

/* The checks that need the plugin: a source takes no input. */
static void s_check_plugin(sl_stest_parse_t *p, const sl_config_t *n,
                           sl_stest_case_t *c)
{
    int kind = c->plugin ? sl__stest_plugin_kind(c->plugin) : 0;
    const sl_config_t *v;
    if (kind == SL_STAGE_SOURCE && (v = sl_config_get(n, "input")))
        sl__stest_perr(p, v,
                       "'%s' is a source: it is pulled to its end, so the "
                       "case takes no 'input'",
                       c->plugin);
    if (kind && kind != SL_STAGE_SOURCE && (v = sl_config_get(n, "stop_after")))
        sl__stest_perr(p, v, "'stop_after' is for sources; '%s' is not one",
                       c->plugin);
}

static int s_case(sl_stest_parse_t *p, const sl_config_t *n, sl_stest_case_t *c)
{
    const sl_config_t *v, *stage, *topo;
    c->node = n;
    c->timeout_ms = SL_STEST_TIMEOUT_MS;
    if (sl_config_type(n) != SL_CONFIG_MAP) {
        sl__stest_perr(p, n, "each test must be a map with 'name', got %s",
                       sl__stest_a(sl_config_type(n)));
        return -EINVAL;
    }
    if (!(v = sl_config_get(n, "name"))) {
        sl__stest_perr(p, n, "a test needs 'name'");
    } else if (sl__stest_str(p, v, "name", &c->name) == 0) {
        snprintf(p->label, sizeof(p->label), "test '%.120s'", c->name);
    }
    sl__stest_keys(p, n, s_case_keys, "a test");
    stage = sl_config_get(n, "stage");
    topo = sl_config_get(n, "topology");
    if (stage && topo)
        sl__stest_perr(p, topo,
                       "give 'stage' (one stage) or 'topology', not both");
    else if (!stage && !topo)
        sl__stest_perr(p, n,
                       "needs 'stage' (one stage) or 'topology' (a whole "
                       "topology)");
    c->kind = topo && !stage ? SL_STEST_TOPOLOGY : SL_STEST_STAGE;
    if (stage && !topo)
        s_stage(p, stage, c);
    if (topo && !stage &&
        sl__stest_str(p, topo, "topology", &c->topology) == 0) {
        char *full = s_join(sl__config_doc_dir(p->doc), c->topology);
        free(c->topology);
        c->topology = full;
    }
    v = sl_config_get(n, "inject");
    if (v && c->kind == SL_STEST_STAGE && !topo)
        sl__stest_perr(p, v, "'inject' is for topology cases");
    else if (v)
        sl__stest_str(p, v, "inject", &c->inject);
    else if (topo && !stage)
        sl__stest_perr(p, n,
                       "a topology case needs 'inject': the stage its input "
                       "enters");
    c->inject_node = v;
    if ((v = sl_config_get(n, "files")))
        sl__stest_files(p, v, &c->files, &c->n_files);
    if ((v = sl_config_get(n, "input"))) {
        c->has_input = true;
        sl__stest_records(p, v, "input", "input record",
                          c->kind == SL_STEST_STAGE, &c->input, &c->n_input);
    }
    if ((v = sl_config_get(n, "stop_after"))) {
        if (c->kind == SL_STEST_TOPOLOGY)
            sl__stest_perr(p, v,
                           "'stop_after' is for one-stage cases of a source");
        else
            sl__stest_uint(p, v, "stop_after", 1, &c->stop_after);
    }
    if ((v = sl_config_get(n, "timeout")))
        s_duration(p, v, &c->timeout_ms);
    if ((v = sl_config_get(n, "expect")) &&
        sl__stest_map(p, v, "expect") == 0) {
        sl__stest_parse_expect(p, v, c);
    } else if (!v && c->kind == SL_STEST_STAGE) {
        c->out.ordered = true;
    }
    if (c->kind == SL_STEST_STAGE && stage && !topo)
        s_check_plugin(p, n, c);
    return 0;
}

int sl__stest_parse_cases(const sl_config_doc_t *doc, sl_stest_case_t **cases,
                          size_t *n)
{
    sl_stest_parse_t p = {.doc = doc};
    const sl_config_t *root = sl__config_doc_root(doc), *tests;
    static const char *const keys[] = {"tests", NULL};
    *cases = NULL;
    *n = 0;
    if (sl_config_type(root) != SL_CONFIG_MAP) {
        sl__stest_perr(&p, root,
                       "a test file is a map with a 'tests' list, got %s",
                       sl__stest_a(sl_config_type(root)));
        return -EINVAL;
    }
    sl__stest_keys(&p, root, keys, "a test file");
    if (!(tests = sl_config_get(root, "tests"))) {
        sl__stest_perr(&p, root, "a test file needs a 'tests' list");
        return -EINVAL;
    }
    if (sl__stest_seq(&p, tests, "tests"))
        return -EINVAL;
    size_t cnt = sl_config_len(tests);
    if (cnt == 0) {
        sl__stest_perr(&p, tests, "'tests' is empty");
        return -EINVAL;
    }
    sl_stest_case_t *cs = calloc(cnt, sizeof(*cs));
    if (!cs)
        return -ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        p.label[0] = '\0';
        const sl_config_t *cn = sl_config_at(tests, i);
        s_case(&p, cn, &cs[i]);
        if (!cs[i].name)
            continue;
        for (size_t k = 0; k < i; k++) {
            if (!cs[k].name || strcmp(cs[k].name, cs[i].name) != 0)
                continue;
            p.label[0] = '\0';
            const sl_config_t *first = sl_config_get(cs[k].node, "name");
            sl__stest_perr(&p, sl_config_get(cn, "name"),
                           "duplicate test name '%s' (first at %u:%u)",
                           cs[i].name, sl__config_line(first),
                           sl__config_col(first));
            break;
        }
    }
    if (p.errors == 0) {
        for (size_t i = 0; i < cnt; i++)
            if (cs[i].kind == SL_STEST_TOPOLOGY &&
                sl__stest_check_topology(&cs[i]) != 0)
                p.errors++;
    }
    if (p.errors) {
        sl__stest_cases_free(cs, cnt);
        return -EINVAL;
    }
    *cases = cs;
    *n = cnt;
    return 0;
}

/* ---- freeing ------------------------------------------------------------ */

static void s_files_free(sl_stest_fdata_t *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++) {
        free(f[i].path);
        free(f[i].content.data);
    }
    free(f);
}

void sl__stest_cases_free(sl_stest_case_t *cases, size_t n)
{
    for (size_t i = 0; cases && i < n; i++) {
        sl_stest_case_t *c = &cases[i];
        free(c->name);
        free(c->plugin);
        free(c->topology);
        free(c->inject);
        s_files_free(c->files, c->n_files);
        for (size_t k = 0; k < c->n_input; k++)
            free(c->input[k].data);
        free(c->input);
        sl__stest_expect_fini(&c->out);
        for (size_t k = 0; k < c->n_targets; k++) {
            free(c->targets[k].stage);
            sl__stest_expect_fini(&c->targets[k].want);
        }
        free(c->targets);
        for (size_t k = 0; k < c->n_dls; k++) {
            free(c->dls[k].error);
            free(c->dls[k].stage);
            free(c->dls[k].record.data);
        }
        free(c->dls);
        s_files_free(c->want_files, c->n_want_files);
        free(c->want_stdout.data);
        free(c->start_error);
    }
    free(cases);
}
