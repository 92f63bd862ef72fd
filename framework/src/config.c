/*
 * Config documents and their nodes: the life of a document, positions for
 * messages, and the accessors and sl_config_get_* readers that plugins use
 * (see config.h and <sluice/stage.h>). config_yaml.c builds the documents.
 */
#include "config_node.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- reporting ---------------------------------------------------------- */

void sl__config_vreport(sl_diag_t *diag, const char *file, unsigned line,
                        unsigned col, const char *context, const char *fmt,
                        va_list ap)
{
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    const char *m = msg ? msg : fmt;
    const char *sep = context ? ": " : "";
    context = context ? context : "";
    if (diag)
        sl__diag_add(diag, "%s:%u:%u: %s%s%s", file, line, col, context, sep,
                     m);
    else
        fprintf(stderr, "%s:%u:%u: %s%s%s\n", file, line, col, context, sep,
                m);
    free(msg);
}

int sl_config_error(const sl_config_t *node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!node) {
        /* Nothing to point at: still say it rather than drop it. */
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    } else {
        const sl_config_doc_t *doc = node->doc;
        sl__config_vreport(doc->diag, doc->name, node->line, node->col,
                           doc->context, fmt, ap);
    }
    va_end(ap);
    return -EINVAL;
}

/* ---- nodes -------------------------------------------------------------- */

sl_config_t *sl__config_node_new(sl_config_doc_t *doc, sl_config_type_t type,
                                 unsigned line, unsigned col)
{
    if (doc->n_nodes == doc->cap_nodes) {
        size_t cap = doc->cap_nodes ? doc->cap_nodes * 2 : 64;
        sl_config_t **nodes = realloc(doc->nodes, cap * sizeof(*nodes));
        if (!nodes)
            return NULL;
        doc->nodes = nodes;
        doc->cap_nodes = cap;
    }
    sl_config_t *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->type = type;
    n->line = line;
    n->col = col;
    n->doc = doc;
    n->weight = 1;
    doc->nodes[doc->n_nodes++] = n;
    return n;
}

const char *sl__config_type_name(sl_config_type_t type)
{
    switch (type) {
    case SL_CONFIG_NULL: return "null";
    case SL_CONFIG_BOOL: return "boolean";
    case SL_CONFIG_INT: return "integer";
    case SL_CONFIG_FLOAT: return "number";
    case SL_CONFIG_STRING: return "string";
    case SL_CONFIG_SEQ: return "sequence";
    case SL_CONFIG_MAP: return "map";
    }
    return "?";
}

/* ---- documents ---------------------------------------------------------- */

static char *s_join(const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    const char *sep = dl && dir[dl - 1] == '/' ? "" : "/";
    char *out = NULL;
    return asprintf(&out, "%s%s%s", dir, sep, name) < 0 ? NULL : out;
}

/* An absolute form of dir; made absolute by hand if it does not exist. */
static char *s_absdir(const char *dir)
{
    char *real = realpath(dir, NULL);
    if (real)
        return real;
    if (dir[0] == '/')
        return strdup(dir);
    char *cwd = getcwd(NULL, 0);
    if (!cwd)
        return NULL;
    char *out = strcmp(dir, ".") == 0 ? strdup(cwd) : s_join(cwd, dir);
    free(cwd);
    return out;
}

sl_config_doc_t *sl__config_doc_new(const char *name, const char *dir)
{
    sl_config_doc_t *doc = calloc(1, sizeof(*doc));
    if (!doc)
        return NULL;
    doc->name = strdup(name);
    doc->dir = s_absdir(dir ? dir : ".");
    if (!doc->name || !doc->dir)
        sl__config_doc_destroy(&doc);
    return doc;
}

void sl__config_doc_destroy(sl_config_doc_t **docp)
{
    sl_config_doc_t *doc = docp ? *docp : NULL;
    if (!doc)
        return;
    for (size_t i = 0; i < doc->n_nodes; i++) {
        free(doc->nodes[i]->text);
        free(doc->nodes[i]->keys);
        free(doc->nodes[i]->items);
        free(doc->nodes[i]);
    }
    free(doc->nodes);
    free(doc->context);
    free(doc->source);
    free(doc->dir);
    free(doc->name);
    free(doc);
    *docp = NULL;
}

const sl_config_t *sl__config_empty_map(sl_config_doc_t *doc,
                                        const sl_config_t *at)
{
    return sl__config_node_new(doc, SL_CONFIG_MAP, at ? at->line : 1,
                               at ? at->col : 1);
}

const sl_config_t *sl__config_doc_root(const sl_config_doc_t *doc)
{
    return doc->root;
}

const char *sl__config_doc_dir(const sl_config_doc_t *doc)
{
    return doc->dir;
}

void sl__config_doc_set_diag(sl_config_doc_t *doc, sl_diag_t *diag,
                             const char *context)
{
    free(doc->context);
    doc->context = context ? strdup(context) : NULL;
    doc->diag = diag;
}

unsigned sl__config_line(const sl_config_t *node)
{
    return node ? node->line : 0;
}

unsigned sl__config_col(const sl_config_t *node)
{
    return node ? node->col : 0;
}

const char *sl__config_file(const sl_config_t *node)
{
    return node ? node->doc->name : "";
}

int sl__config_is_binary(const sl_config_t *node)
{
    return node && node->binary;
}

const sl_config_t *sl__config_key_node_at(const sl_config_t *map, size_t i)
{
    if (!map || map->type != SL_CONFIG_MAP || i >= map->len)
        return NULL;
    return map->keys[i];
}

/* ---- the plugin-facing accessors ---------------------------------------- */

sl_config_type_t sl_config_type(const sl_config_t *node)
{
    return node ? node->type : SL_CONFIG_NULL;
}

const char *sl_config_str(const sl_config_t *node)
{
    return node ? node->text : NULL;
}

/* Strict: the whole text must be one integer literal that fits. */
static int s_parse_int(const char *text, int64_t *out)
{
    bool neg;
    const char *d;
    int base = sl__config_int_syntax(text, &neg, &d);
    if (!base)
        return -EINVAL;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX;
    for (; *d; d++) {
        unsigned c = (unsigned char)*d;
        unsigned digit = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
        if (v > (limit - digit) / (uint64_t)base)
            return -ERANGE;
        v = v * (uint64_t)base + digit;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int sl_config_int(const sl_config_t *node, int64_t *out)
{
    if (!node || node->type != SL_CONFIG_INT)
        return -EINVAL;
    return s_parse_int(node->text, out);
}

int sl_config_double(const sl_config_t *node, double *out)
{
    if (!node)
        return -EINVAL;
    if (node->type == SL_CONFIG_INT) {
        int64_t v;
        int rc = s_parse_int(node->text, &v);
        if (rc == 0)
            *out = (double)v;
        return rc;
    }
    if (node->type != SL_CONFIG_FLOAT)
        return -EINVAL;
    const char *s = node->text;
    bool neg = *s == '-';
    const char *body = *s == '-' || *s == '+' ? s + 1 : s;
    if (strcasecmp(body, ".inf") == 0) {
        *out = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (strcasecmp(s, ".nan") == 0) {
        *out = NAN;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE && isinf(v))
        return -ERANGE;
    *out = v;
    return 0;
}

int sl_config_bool(const sl_config_t *node, int *out)
{
    if (!node || node->type != SL_CONFIG_BOOL)
        return -EINVAL;
    *out = node->text[0] == 't' || node->text[0] == 'T';
    return 0;
}

size_t sl_config_len(const sl_config_t *node)
{
    if (!node || (node->type != SL_CONFIG_SEQ && node->type != SL_CONFIG_MAP))
        return 0;
    return node->len;
}

const sl_config_t *sl_config_at(const sl_config_t *seq, size_t i)
{
    if (!seq || seq->type != SL_CONFIG_SEQ || i >= seq->len)
        return NULL;
    return seq->items[i];
}

const char *sl_config_key_at(const sl_config_t *map, size_t i)
{
    const sl_config_t *key = sl__config_key_node_at(map, i);
    return key ? key->text : NULL;
}

const sl_config_t *sl_config_value_at(const sl_config_t *map, size_t i)
{
    if (!map || map->type != SL_CONFIG_MAP || i >= map->len)
        return NULL;
    return map->items[i];
}

const sl_config_t *sl_config_get(const sl_config_t *map, const char *key)
{
    if (!map || map->type != SL_CONFIG_MAP || !key)
        return NULL;
    for (size_t i = 0; i < map->len; i++)
        if (map->keys[i]->text && strcmp(map->keys[i]->text, key) == 0)
            return map->items[i];
    return NULL;
}

/* ---- convenience readers ------------------------------------------------ */

/* "a map", "string 'abc'": what a wrong value was, for messages. */
static void s_describe(const sl_config_t *n, char *buf, size_t len)
{
    switch (n->type) {
    case SL_CONFIG_SEQ: snprintf(buf, len, "a sequence"); break;
    case SL_CONFIG_MAP: snprintf(buf, len, "a map"); break;
    case SL_CONFIG_NULL: snprintf(buf, len, "null"); break;
    default:
        snprintf(buf, len, "%s '%.60s%s'", sl__config_type_name(n->type),
                 n->text, strlen(n->text) > 60 ? "..." : "");
        break;
    }
}

/* Finds key for a reader: 1 if present, 0 if absent, <0 if map is bad. */
static int s_lookup(const sl_config_t *map, const char *key,
                    const sl_config_t **val)
{
    *val = NULL;
    if (!map)
        return 0;
    if (map->type != SL_CONFIG_MAP)
        return sl_config_error(map, "expected a map, got %s",
                               sl__config_type_name(map->type));
    *val = sl_config_get(map, key);
    return *val != NULL;
}

static int s_wrong(const sl_config_t *val, const char *key, const char *want)
{
    char got[96];
    s_describe(val, got, sizeof(got));
    return sl_config_error(val, "'%s' must be %s, got %s", key, want, got);
}

static bool s_is_text(const sl_config_t *v)
{
    return v->type == SL_CONFIG_STRING || v->type == SL_CONFIG_INT ||
           v->type == SL_CONFIG_FLOAT || v->type == SL_CONFIG_BOOL;
}

int sl_config_get_str(const sl_config_t *map, const char *key,
                      const char *dflt, const char **out)
{
    const sl_config_t *v;
    int rc = s_lookup(map, key, &v);
    if (rc <= 0) {
        *out = dflt;
        return rc;
    }
    if (!s_is_text(v))
        return s_wrong(v, key, "a string");
    *out = v->text;
    return 0;
}

int sl_config_get_int(const sl_config_t *map, const char *key, int64_t dflt,
                      int64_t *out)
{
    const sl_config_t *v;
    int rc = s_lookup(map, key, &v);
    if (rc <= 0) {
        *out = dflt;
        return rc;
    }
    rc = sl_config_int(v, out);
    if (rc == -ERANGE)
        return sl_config_error(v, "'%s': integer %s is out of range", key,
                               v->text);
    return rc ? s_wrong(v, key, "an integer") : 0;
}

int sl_config_get_double(const sl_config_t *map, const char *key,
                         double dflt, double *out)
{
    const sl_config_t *v;
    int rc = s_lookup(map, key, &v);
    if (rc <= 0) {
        *out = dflt;
        return rc;
    }
    rc = sl_config_double(v, out);
    if (rc == -ERANGE)
        return sl_config_error(v, "'%s': number %s is out of range", key,
                               v->text);
    return rc ? s_wrong(v, key, "a number") : 0;
}

int sl_config_get_bool(const sl_config_t *map, const char *key, int dflt,
                       int *out)
{
    const sl_config_t *v;
    int rc = s_lookup(map, key, &v);
    if (rc <= 0) {
        *out = dflt;
        return rc;
    }
    return sl_config_bool(v, out) ? s_wrong(v, key, "true or false") : 0;
}

int sl_config_get_path(const sl_config_t *map, const char *key,
                       const char *dflt, char **out)
{
    const sl_config_t *v;
    *out = NULL;
    int rc = s_lookup(map, key, &v);
    if (rc < 0)
        return rc;
    const char *p = dflt;
    if (rc > 0) {
        if (!s_is_text(v))
            return s_wrong(v, key, "a path string");
        if (!v->text[0])
            return sl_config_error(v, "'%s' must not be empty", key);
        p = v->text;
    }
    if (!p)
        return 0;
    if (p[0] == '/' || !map)
        *out = strdup(p);
    else
        *out = s_join(map->doc->dir, p);
    return *out ? 0 : -ENOMEM;
}

const char *sl__config_doc_source(const sl_config_doc_t *doc, size_t *len)
{
    if (len)
        *len = doc->source_len;
    return doc->source;
}

const char *sl__config_doc_name(const sl_config_doc_t *doc)
{
    return doc->name;
}
