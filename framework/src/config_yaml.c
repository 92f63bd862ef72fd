/*
 * YAML to config tree. libyaml's event API feeds a small builder that makes
 * an immutable tree of config_node.h nodes; every node keeps its position
 * so that any later complaint about any value can point at it.
 *
 * Aliases share the anchored node instead of copying it, so the tree is a
 * DAG; the builder still counts how many nodes the aliases would expand to
 * and rejects a document past SL_CONFIG_ALIAS_BUDGET, because whoever walks
 * the tree (a plugin) pays the expanded size ("billion laughs").
 */
#include "config_node.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/* Nodes that aliases may add to a document; real configs use a handful. */
#define SL_CONFIG_ALIAS_BUDGET 100000u
/* Nesting deeper than this is certainly a mistake, and it keeps recursive
 * walkers in plugins safe. */
#define SL_CONFIG_MAX_DEPTH 256u
/* Values (scalars and collections) in one document. A value costs some
 * 150 bytes for as little as two bytes of text ("x,"), so this bounds what
 * a big file can cost at about 150 MB; topologies have hundreds, test
 * files with many records tens of thousands. */
#define SL_CONFIG_MAX_NODES 1000000u
/* A config file larger than this is refused before it is parsed. */
#define SL_CONFIG_MAX_FILE (16u << 20)

/* ---- building nodes ----------------------------------------------------- */

static int s_node_push(sl_config_t *coll, sl_config_t *key, sl_config_t *val)
{
    if (coll->len == coll->cap) {
        size_t cap = coll->cap ? coll->cap * 2 : 4;
        sl_config_t **items = realloc(coll->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        coll->items = items;
        if (coll->type == SL_CONFIG_MAP) {
            sl_config_t **keys = realloc(coll->keys, cap * sizeof(*keys));
            if (!keys)
                return -ENOMEM;
            coll->keys = keys;
        }
        coll->cap = cap;
    }
    if (coll->type == SL_CONFIG_MAP)
        coll->keys[coll->len] = key;
    coll->items[coll->len++] = val;
    return 0;
}

static size_t s_add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* ---- plain scalar resolution (YAML 1.2 core schema) --------------------- */

static bool s_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

static bool s_digits(const char *s, int base)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        int c = (unsigned char)*s, v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            return false;
        if (v >= base)
            return false;
    }
    return true;
}

/* The base of an integer literal and where its digits start, or 0. */
int sl__config_int_syntax(const char *s, bool *neg, const char **digits)
{
    *neg = false;
    if (*s == '-' || *s == '+')
        *neg = *s++ == '-';
    int base = 10;
    if (s[0] == '0' && s[1] == 'x') {
        base = 16;
        s += 2;
    } else if (s[0] == '0' && s[1] == 'o') {
        base = 8;
        s += 2;
    }
    *digits = s;
    return s_digits(s, base) ? base : 0;
}

static bool s_is_float(const char *s)
{
    static const char *const inf[] = {".inf", ".Inf", ".INF", NULL};
    static const char *const nan[] = {".nan", ".NaN", ".NAN", NULL};
    if (s_one_of(s, nan))
        return true;
    if (*s == '-' || *s == '+')
        s++;
    if (s_one_of(s, inf))
        return true;
    size_t whole = strspn(s, "0123456789");
    s += whole;
    size_t frac = 0;
    if (*s == '.') {
        s++;
        frac = strspn(s, "0123456789");
        s += frac;
    }
    if (whole == 0 && frac == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        size_t exp = strspn(s, "0123456789");
        if (exp == 0)
            return false;
        s += exp;
    }
    return *s == '\0';
}

static sl_config_type_t s_resolve_plain(const char *s)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const bools[] = {"true",  "True",  "TRUE", "false",
                                        "False", "FALSE", NULL};
    bool neg;
    const char *digits;
    if (s_one_of(s, nulls))
        return SL_CONFIG_NULL;
    if (s_one_of(s, bools))
        return SL_CONFIG_BOOL;
    if (sl__config_int_syntax(s, &neg, &digits))
        return SL_CONFIG_INT;
    if (s_is_float(s))
        return SL_CONFIG_FLOAT;
    return SL_CONFIG_STRING;
}

/* ---- the builder -------------------------------------------------------- */

typedef struct s_frame {
    sl_config_t *node;
    sl_config_t *key; /* a map's key waiting for its value */
} s_frame_t;

typedef struct s_anchor {
    char *name; /* NULL: a free slot */
    sl_config_t *node;
} s_anchor_t;

typedef struct s_builder {
    sl_config_doc_t *doc;
    sl_diag_t *diag;
    const char *text;
    size_t text_len;
    s_frame_t stack[SL_CONFIG_MAX_DEPTH];
    size_t depth;
    s_anchor_t *anchors; /* open addressing, cap_anchors a power of 2 */
    size_t n_anchors, cap_anchors;
    size_t alias_nodes; /* nodes added through aliases so far */
    bool alias_reported;
    bool deep_reported;
    bool big_reported;
    unsigned errors;
} s_builder_t;

static void s_err(s_builder_t *b, unsigned line, unsigned col,
                  const char *fmt, ...) SL_PRINTF(4, 5);

static void s_err(s_builder_t *b, unsigned line, unsigned col,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl__config_vreport(b->diag, b->doc->name, line, col, NULL, fmt, ap);
    va_end(ap);
    b->errors++;
}

#define S_LINE(mark) ((unsigned)(mark).line + 1)
#define S_COL(mark) ((unsigned)(mark).column + 1)

static void s_syntax_error(s_builder_t *b, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR) {
        s_err(b, 1, 1, "out of memory while parsing");
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark; columns count
         * characters, as in marks, so continuation bytes do not count. */
        unsigned line = 1, col = 1;
        for (size_t i = 0; i < p->problem_offset && i < b->text_len; i++) {
            unsigned char c = (unsigned char)b->text[i];
            if (c == '\n') {
                line++;
                col = 1;
            } else if ((c & 0xc0) != 0x80) {
                col++;
            }
        }
        /* The value is the bad byte for the "octet" problems, else the
         * character decoded (a surrogate, a C1 control). */
        if (p->problem_value == -1)
            s_err(b, line, col, "%s", p->problem);
        else if (strstr(p->problem, "octet"))
            s_err(b, line, col, "%s (byte 0x%02x)", p->problem,
                  (unsigned)p->problem_value & 0xffu);
        else
            s_err(b, line, col, "%s (U+%04X)", p->problem,
                  (unsigned)p->problem_value);
        return;
    }
    const yaml_mark_t *pm = &p->problem_mark, *cm = &p->context_mark;
    const char *problem = p->problem ? p->problem : "syntax error";
    const char *hint = "";
    if (pm->index < b->text_len && b->text[pm->index] == '\t')
        hint = p->context && strstr(p->context, "block scalar")
                   ? "; tabs are not allowed for indentation, use spaces "
                     "(a block scalar whose first line starts with a tab "
                     "needs an indentation indicator, such as '|2')"
                   : "; tabs are not allowed for indentation, use spaces";
    if (p->context && (cm->line != pm->line || cm->column != pm->column))
        s_err(b, S_LINE(*pm), S_COL(*pm), "%s (%s at %u:%u)%s", problem,
              p->context, S_LINE(*cm), S_COL(*cm), hint);
    else if (p->context)
        s_err(b, S_LINE(*pm), S_COL(*pm), "%s (%s)%s", problem, p->context,
              hint);
    else
        s_err(b, S_LINE(*pm), S_COL(*pm), "%s%s", problem, hint);
}

/* Anchors live in a hash table: a file with many anchors and aliases
 * would otherwise cost anchors x aliases string compares (minutes for a
 * 2 MB file). */
static size_t s_anchor_hash(const char *name)
{
    size_t h = 14695981039346656037u; /* FNV-1a */
    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 1099511628211u;
    return h;
}

static s_anchor_t *s_anchor_slot(s_anchor_t *tab, size_t cap,
                                 const char *name)
{
    size_t i = s_anchor_hash(name) & (cap - 1);
    while (tab[i].name && strcmp(tab[i].name, name) != 0)
        i = (i + 1) & (cap - 1);
    return &tab[i];
}

static int s_anchor_grow(s_builder_t *b)
{
    size_t cap = b->cap_anchors ? b->cap_anchors * 2 : 16;
    s_anchor_t *tab = calloc(cap, sizeof(*tab));
    if (!tab)
        return -ENOMEM;
    for (size_t i = 0; i < b->cap_anchors; i++)
        if (b->anchors[i].name)
            *s_anchor_slot(tab, cap, b->anchors[i].name) = b->anchors[i];
    free(b->anchors);
    b->anchors = tab;
    b->cap_anchors = cap;
    return 0;
}

static int s_anchor_add(s_builder_t *b, const char *name, sl_config_t *node)
{
    if (!name)
        return 0;
    /* At most half full, so that probes stay short. */
    if ((b->n_anchors + 1) * 2 > b->cap_anchors && s_anchor_grow(b) != 0)
        return -ENOMEM;
    s_anchor_t *slot = s_anchor_slot(b->anchors, b->cap_anchors, name);
    if (slot->name) { /* YAML lets a later anchor reuse a name */
        slot->node = node;
        return 0;
    }
    if (!(slot->name = strdup(name)))
        return -ENOMEM;
    slot->node = node;
    b->n_anchors++;
    return 0;
}

static sl_config_t *s_anchor_find(const s_builder_t *b, const char *name)
{
    if (!b->cap_anchors)
        return NULL;
    return s_anchor_slot(b->anchors, b->cap_anchors, name)->node;
}

#define S_TAG "tag:yaml.org,2002:"

/* Applies an explicit tag to a scalar; reports what it cannot honour. */
static void s_scalar_tag(s_builder_t *b, sl_config_t *n, const char *tag)
{
    static const struct {
        const char *tag;
        sl_config_type_t type;
    } known[] = {
        {S_TAG "null", SL_CONFIG_NULL},  {S_TAG "bool", SL_CONFIG_BOOL},
        {S_TAG "int", SL_CONFIG_INT},    {S_TAG "float", SL_CONFIG_FLOAT},
        {S_TAG "str", SL_CONFIG_STRING},
    };
    if (strcmp(tag, "!") == 0) {
        n->type = SL_CONFIG_STRING;
        return;
    }
    /* Kept as its base64 text, so that a plugin reading it as a string
     * sees what was written; test files turn it into bytes. */
    if (strcmp(tag, S_TAG "binary") == 0) {
        n->type = SL_CONFIG_STRING;
        n->binary = true;
        return;
    }
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(tag, known[i].tag) != 0)
            continue;
        sl_config_type_t want = known[i].type;
        sl_config_type_t got = s_resolve_plain(n->text);
        if (want == SL_CONFIG_FLOAT && got == SL_CONFIG_INT)
            got = SL_CONFIG_FLOAT;
        if (want != SL_CONFIG_STRING && got != want)
            s_err(b, n->line, n->col, "'%s' is not a valid %s", n->text,
                  sl__config_type_name(want));
        n->type = want;
        return;
    }
    s_err(b, n->line, n->col, "unsupported tag '%s'", tag);
}

static void s_collection_tag(s_builder_t *b, const sl_config_t *n,
                             const char *tag)
{
    if (!tag || strcmp(tag, "!") == 0)
        return;
    const char *want = n->type == SL_CONFIG_MAP ? S_TAG "map" : S_TAG "seq";
    if (strcmp(tag, want) != 0)
        s_err(b, n->line, n->col, "unsupported tag '%s'", tag);
}

/* Adds a finished subtree's expanded size to its parent. */
static void s_weigh_parent(s_builder_t *b, const sl_config_t *n)
{
    if (b->depth > 0) {
        sl_config_t *p = b->stack[b->depth - 1].node;
        p->weight = s_add_sat(p->weight, n->weight);
    }
}

/* Places a node in its parent (or makes it the root). */
static int s_attach(s_builder_t *b, sl_config_t *n)
{
    if (b->depth == 0) {
        if (b->doc->root) {
            s_err(b, n->line, n->col, "more than one YAML document");
            return 0;
        }
        b->doc->root = n;
        return 0;
    }
    s_frame_t *f = &b->stack[b->depth - 1];
    if (f->node->type == SL_CONFIG_SEQ)
        return s_node_push(f->node, NULL, n);
    if (!f->key) {
        if (n->type == SL_CONFIG_SEQ || n->type == SL_CONFIG_MAP)
            s_err(b, n->line, n->col, "map keys must be scalars, not a %s",
                  sl__config_type_name(n->type));
        else if (n->plain && strcmp(n->text, "<<") == 0)
            s_err(b, n->line, n->col,
                  "merge keys ('<<') are not supported; repeat the keys");
        f->key = n;
        return 0;
    }
    sl_config_t *key = f->key;
    f->key = NULL;
    return s_node_push(f->node, key, n);
}

static int s_cmp_key(const void *a, const void *b)
{
    const sl_config_t *const *ka = a, *const *kb = b;
    int c = strcmp((*ka)->text, (*kb)->text);
    if (c)
        return c;
    /* Ties in document order, so the first occurrence leads its run. */
    if ((*ka)->line != (*kb)->line)
        return (*ka)->line < (*kb)->line ? -1 : 1;
    return (*ka)->col < (*kb)->col ? -1 : (*ka)->col > (*kb)->col;
}

/* Sorting a copy keeps the check O(n log n) for big maps. */
static int s_check_duplicates(s_builder_t *b, const sl_config_t *map)
{
    if (map->len < 2)
        return 0;
    sl_config_t **keys = malloc(map->len * sizeof(*keys));
    if (!keys)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < map->len; i++)
        if (map->keys[i]->text)
            keys[n++] = map->keys[i];
    qsort(keys, n, sizeof(*keys), s_cmp_key);
    for (size_t i = 1, first = 0; i < n; i++) {
        if (strcmp(keys[i]->text, keys[first]->text) != 0) {
            first = i;
            continue;
        }
        /* An alias used as a key twice is the same node: still a dup. */
        s_err(b, keys[i]->line, keys[i]->col,
              "duplicate key '%s' (first at %u:%u)", keys[i]->text,
              keys[first]->line, keys[first]->col);
    }
    free(keys);
    return 0;
}

/* A new node at m, or NULL with *rc set: -E2BIG (reported here) past
 * SL_CONFIG_MAX_NODES, which ends the parse, or -ENOMEM. */
static sl_config_t *s_node(s_builder_t *b, sl_config_type_t type,
                           const yaml_mark_t *m, int *rc)
{
    if (b->doc->n_nodes >= SL_CONFIG_MAX_NODES) {
        if (!b->big_reported)
            s_err(b, S_LINE(*m), S_COL(*m),
                  "more than %u values in one document; a config this "
                  "large is refused",
                  SL_CONFIG_MAX_NODES);
        b->big_reported = true;
        *rc = -E2BIG;
        return NULL;
    }
    sl_config_t *n = sl__config_node_new(b->doc, type, S_LINE(*m), S_COL(*m));
    *rc = n ? 0 : -ENOMEM;
    return n;
}

static int s_on_scalar(s_builder_t *b, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    int rc;
    sl_config_t *n = s_node(b, SL_CONFIG_STRING, m, &rc);
    if (!n)
        return rc;
    size_t len = ev->data.scalar.length;
    n->text = malloc(len + 1);
    if (!n->text)
        return -ENOMEM;
    memcpy(n->text, ev->data.scalar.value, len);
    n->text[len] = '\0';
    if (strlen(n->text) != len)
        s_err(b, n->line, n->col, "strings containing NUL are not supported");
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (tag)
        s_scalar_tag(b, n, tag);
    else if (n->plain)
        n->type = s_resolve_plain(n->text);
    if (s_anchor_add(b, (const char *)ev->data.scalar.anchor, n) != 0)
        return -ENOMEM;
    s_weigh_parent(b, n);
    return s_attach(b, n);
}

static int s_on_start(s_builder_t *b, const yaml_event_t *ev,
                      sl_config_type_t type)
{
    const yaml_mark_t *m = &ev->start_mark;
    if (b->depth == SL_CONFIG_MAX_DEPTH) {
        if (!b->deep_reported)
            s_err(b, S_LINE(*m), S_COL(*m),
                  "nesting deeper than %u levels", SL_CONFIG_MAX_DEPTH);
        b->deep_reported = true;
        return -ELOOP;
    }
    int rc;
    sl_config_t *n = s_node(b, type, m, &rc);
    if (!n)
        return rc;
    n->open = true;
    const char *anchor, *tag;
    if (type == SL_CONFIG_MAP) {
        anchor = (const char *)ev->data.mapping_start.anchor;
        tag = (const char *)ev->data.mapping_start.tag;
    } else {
        anchor = (const char *)ev->data.sequence_start.anchor;
        tag = (const char *)ev->data.sequence_start.tag;
    }
    s_collection_tag(b, n, tag);
    if (s_anchor_add(b, anchor, n) != 0)
        return -ENOMEM;
    rc = s_attach(b, n);
    if (rc != 0)
        return rc;
    b->stack[b->depth].node = n;
    b->stack[b->depth++].key = NULL;
    return 0;
}

static int s_on_end(s_builder_t *b)
{
    sl_config_t *n = b->stack[--b->depth].node;
    n->open = false;
    s_weigh_parent(b, n);
    return n->type == SL_CONFIG_MAP ? s_check_duplicates(b, n) : 0;
}

/* Stands in for an alias that was refused, so that the keys and values of
 * the map around it stay paired and no second, made-up error follows. */
static int s_attach_placeholder(s_builder_t *b, const yaml_mark_t *m)
{
    int rc;
    sl_config_t *n = s_node(b, SL_CONFIG_NULL, m, &rc);
    return n ? s_attach(b, n) : rc;
}

static int s_on_alias(s_builder_t *b, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    const char *name = (const char *)ev->data.alias.anchor;
    sl_config_t *target = s_anchor_find(b, name);
    if (!target) {
        s_err(b, S_LINE(*m), S_COL(*m), "unknown alias '*%s'", name);
        return s_attach_placeholder(b, m);
    }
    if (target->open) {
        s_err(b, S_LINE(*m), S_COL(*m),
              "alias '*%s' refers to a node that contains it", name);
        return s_attach_placeholder(b, m);
    }
    b->alias_nodes = s_add_sat(b->alias_nodes, target->weight);
    if (b->alias_nodes > SL_CONFIG_ALIAS_BUDGET) {
        if (!b->alias_reported)
            s_err(b, S_LINE(*m), S_COL(*m),
                  "alias '*%s' expands the document past %u nodes; "
                  "aliases nested this way are refused",
                  name, SL_CONFIG_ALIAS_BUDGET);
        b->alias_reported = true;
        return s_attach_placeholder(b, m);
    }
    s_weigh_parent(b, target);
    /* An alias used as a map key gets a node of its own, so that a
     * duplicate key points at where the alias is, not at its anchor in
     * some other map. Keys are scalars: a cheap copy. */
    if (b->depth > 0 && b->stack[b->depth - 1].node->type == SL_CONFIG_MAP &&
        !b->stack[b->depth - 1].key && target->text) {
        int rc;
        sl_config_t *key = s_node(b, target->type, m, &rc);
        if (!key)
            return rc;
        if (!(key->text = strdup(target->text)))
            return -ENOMEM;
        key->plain = target->plain;
        key->binary = target->binary;
        return s_attach(b, key);
    }
    return s_attach(b, target);
}

/* Runs the parser over the whole text; errors go to b->diag. */
static int s_build(s_builder_t *b)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)b->text,
                                 b->text_len);
    int rc = 0;
    bool done = false;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            s_syntax_error(b, &parser);
            break;
        }
        switch (ev.type) {
        case YAML_SCALAR_EVENT: rc = s_on_scalar(b, &ev); break;
        case YAML_SEQUENCE_START_EVENT:
            rc = s_on_start(b, &ev, SL_CONFIG_SEQ);
            break;
        case YAML_MAPPING_START_EVENT:
            rc = s_on_start(b, &ev, SL_CONFIG_MAP);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: rc = s_on_end(b); break;
        case YAML_ALIAS_EVENT: rc = s_on_alias(b, &ev); break;
        case YAML_STREAM_END_EVENT: done = true; break;
        default: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (rc == -ENOMEM)
        s_err(b, 1, 1, "out of memory while loading");
    return rc;
}

/* ---- documents ---------------------------------------------------------- */

static void s_diag_out(sl_diag_t *diag, const char *fmt, ...) SL_PRINTF(2, 3);

static void s_diag_out(sl_diag_t *diag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (diag)
        sl__diag_add(diag, "%s", msg ? msg : fmt);
    else
        fprintf(stderr, "%s\n", msg ? msg : fmt);
    free(msg);
}

sl_config_doc_t *sl__config_doc_parse(const char *name, const char *basedir,
                                      const char *text, size_t len,
                                      sl_diag_t *diag)
{
    sl_config_doc_t *doc = sl__config_doc_new(name, basedir);
    if (!doc) {
        s_diag_out(diag, "%s: out of memory", name);
        return NULL;
    }
    s_builder_t *b = calloc(1, sizeof(*b));
    if (!b) {
        s_diag_out(diag, "%s: out of memory", name);
        goto fail;
    }
    b->doc = doc;
    b->diag = diag;
    b->text = text;
    b->text_len = len;
    size_t before = diag ? diag->count : 0;
    int rc = s_build(b);
    /* Duplicate keys are found when their map ends, after later lines. */
    if (diag)
        sl__diag_sort(diag, before, name);
    unsigned errors = b->errors;
    for (size_t i = 0; i < b->cap_anchors; i++)
        free(b->anchors[i].name);
    free(b->anchors);
    free(b);
    if (rc != 0 || errors > 0)
        goto fail;
    doc->source = malloc(len + 1);
    if (!doc->source) {
        s_diag_out(diag, "%s: out of memory", name);
        goto fail;
    }
    memcpy(doc->source, text, len);
    doc->source[len] = '\0';
    doc->source_len = len;
    /* Nothing but comments, or a bare "---": treat as an empty map. */
    if (!doc->root || (doc->root->type == SL_CONFIG_NULL && doc->root->plain &&
                       doc->root->text[0] == '\0')) {
        doc->root = sl__config_node_new(doc, SL_CONFIG_MAP, 1, 1);
        if (!doc->root) {
            s_diag_out(diag, "%s: out of memory", name);
            goto fail;
        }
    }
    return doc;
fail:
    sl__config_doc_destroy(&doc);
    return NULL;
}

/* The whole file, or NULL with *err: an errno, EISDIR for a directory
 * (which fopen opens), EFBIG past SL_CONFIG_MAX_FILE (also for a pipe or a
 * device such as /dev/zero that never ends). */
static char *s_read_file(const char *path, size_t *len, int *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = errno;
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        *err = EISDIR;
        return NULL;
    }
    size_t cap = 8192, n = 0, got;
    char *buf = malloc(cap);
    *err = buf ? 0 : ENOMEM;
    errno = 0; /* what a failed fread leaves is the reason */
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n > SL_CONFIG_MAX_FILE) {
            *err = EFBIG;
            break;
        }
        if (n < cap)
            continue;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            *err = ENOMEM;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (!*err && ferror(f))
        *err = errno ? errno : EIO;
    fclose(f);
    if (*err) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

sl_config_doc_t *sl__config_doc_load(const char *path, sl_diag_t *diag)
{
    size_t len = 0;
    int err = 0;
    char *text = s_read_file(path, &len, &err);
    if (!text && err == EFBIG) {
        s_diag_out(diag, "%s: larger than %u MiB; a config file this large "
                   "is refused", path, SL_CONFIG_MAX_FILE >> 20);
        return NULL;
    }
    if (!text) {
        s_diag_out(diag, "%s: cannot read: %s", path, strerror(err));
        return NULL;
    }
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    if (dir && !*dir) { /* "/x.yaml" */
        free(dir);
        dir = strdup("/");
    }
    sl_config_doc_t *doc = NULL;
    if (dir)
        doc = sl__config_doc_parse(path, dir, text, len, diag);
    else
        s_diag_out(diag, "%s: out of memory", path);
    free(dir);
    free(text);
    return doc;
}
