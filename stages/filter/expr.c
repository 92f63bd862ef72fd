/*
 * Recursive-descent compiler for filter expressions (grammar in
 * docs/stages/filter.md).
 *
 * All compile-time memory (nodes, paths, literal strings, regexes) comes
 * from one msgpack zone owned by the expression, so that an error anywhere
 * in the parser needs no per-object cleanup: the zone is dropped whole.
 * The only resources outside the zone are compiled regexes, chained so
 * that destroy can regfree() them.
 */
#include "expr.h"
#include "regex_guard.h"
#include "expr_lex.h"
#include "expr_tree.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    lexer_t lx;
    unsigned depth;
    expr_t *e;
} parser_t;

static void *zalloc(parser_t *p, size_t n)
{
    void *m = msgpack_zone_malloc(p->e->zone, n ? n : 1);
    if (!m) {
        lex_nomem(&p->lx);
        return NULL;
    }
    memset(m, 0, n);
    return m;
}

static int decode_string(parser_t *p, const char **out, uint32_t *outlen)
{
    char *buf = zalloc(p, p->lx.tok.end - p->lx.tok.off);
    if (!buf)
        return -1;
    *outlen = (uint32_t)lex_string_value(&p->lx, buf);
    *out = buf;
    return 0;
}

static int decode_path(parser_t *p, operand_t *op)
{
    op->nseg = lex_path_count(&p->lx);
    op->segs = zalloc(p, op->nseg * sizeof *op->segs);
    char *buf = zalloc(p, p->lx.tok.end - p->lx.tok.off + 1);
    if (!op->segs || !buf)
        return -1;
    lex_path_value(&p->lx, buf, op->segs);
    return 0;
}

/* Turns the current literal token into a msgpack object; 1 if the token
 * was a literal, 0 if not, -1 on error. */
static int literal(parser_t *p, msgpack_object *o)
{
    const tok_t *t = &p->lx.tok;
    memset(o, 0, sizeof *o);
    switch (t->type) {
    case T_INT: {
        const char *s = p->lx.src + t->off;
        errno = 0;
        if (*s == '-') {
            long long v = strtoll(s, NULL, 10);
            o->type = v < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER
                            : MSGPACK_OBJECT_POSITIVE_INTEGER;
            if (v < 0)
                o->via.i64 = v;
            else
                o->via.u64 = 0; /* "-0" */
        } else {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = strtoull(s, NULL, 10);
        }
        if (errno == ERANGE) {
            lex_fail(&p->lx, t->off, "integer out of range");
            return -1;
        }
        return 1;
    }
    case T_FLOAT: {
        o->type = MSGPACK_OBJECT_FLOAT64;
        o->via.f64 = strtod(p->lx.src + t->off, NULL);
        if (isinf(o->via.f64)) {
            lex_fail(&p->lx, t->off, "number out of range");
            return -1;
        }
        return 1;
    }
    case T_STRING:
        o->type = MSGPACK_OBJECT_STR;
        return decode_string(p, &o->via.str.ptr, &o->via.str.size) < 0 ? -1 : 1;
    case T_KW:
        if (t->kw == KW_TRUE || t->kw == KW_FALSE) {
            o->type = MSGPACK_OBJECT_BOOLEAN;
            o->via.boolean = t->kw == KW_TRUE;
            return 1;
        }
        if (t->kw == KW_NULL) {
            o->type = MSGPACK_OBJECT_NIL;
            return 1;
        }
        return 0;
    default: return 0;
    }
}

/* A field path or a literal; `what` names the expectation on error. */
static int parse_operand(parser_t *p, operand_t *op, const char *what)
{
    memset(op, 0, sizeof *op);
    if (p->lx.tok.type == T_PATH) {
        if (decode_path(p, op) < 0)
            return -1;
    } else {
        int rc = literal(p, &op->lit);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            lex_expected(&p->lx, what);
            return -1;
        }
    }
    lex_next(&p->lx);
    return p->lx.rc ? -1 : 0;
}

static node_t *new_node(parser_t *p, node_kind_t kind)
{
    node_t *n = zalloc(p, sizeof *n);
    if (n)
        n->kind = kind;
    return n;
}

static int enter(parser_t *p)
{
    if (++p->depth > EXPR_MAX_DEPTH) {
        lex_fail(&p->lx, p->lx.tok.off,
                 "expression nested too deeply (limit %d)", EXPR_MAX_DEPTH);
        return -1;
    }
    return 0;
}

static node_t *parse_or(parser_t *p);

static int is_cmp_tok(const tok_t *t, cmp_op_t *op)
{
    static const cmp_op_t by_tok[] = {
        [T_EQ] = OP_EQ, [T_NE] = OP_NE, [T_LT] = OP_LT,
        [T_LE] = OP_LE, [T_GT] = OP_GT, [T_GE] = OP_GE};
    if (t->type >= T_EQ && t->type <= T_GE) {
        *op = by_tok[t->type];
        return 1;
    }
    if (t->type != T_KW)
        return 0;
    switch (t->kw) {
    case KW_CONTAINS: *op = OP_CONTAINS; return 1;
    case KW_STARTSWITH: *op = OP_STARTS; return 1;
    case KW_ENDSWITH: *op = OP_ENDS; return 1;
    default: return 0;
    }
}

static int is_any_cmp(const tok_t *t)
{
    cmp_op_t op;
    return is_cmp_tok(t, &op) ||
           (t->type == T_KW && (t->kw == KW_IN || t->kw == KW_MATCHES));
}

static node_t *parse_in(parser_t *p, node_t *n)
{
    n->kind = N_IN;
    lex_next(&p->lx);
    if (p->lx.rc)
        return NULL;
    if (p->lx.tok.type != T_LBRACK) {
        lex_expected(&p->lx, "'[' after 'in'");
        return NULL;
    }
    /* A list is bounded by the text; count the commas up front so that
     * the items array is allocated once. */
    size_t cap = 1;
    for (size_t i = p->lx.pos; i < p->lx.len; i++)
        cap += p->lx.src[i] == ',';
    n->items = zalloc(p, cap * sizeof *n->items);
    if (!n->items)
        return NULL;
    lex_next(&p->lx);
    if (p->lx.rc)
        return NULL;
    if (p->lx.tok.type == T_RBRACK) {
        lex_next(&p->lx);
        return p->lx.rc ? NULL : n;
    }
    for (;;) {
        int rc = literal(p, &n->items[n->nitems]);
        if (rc < 0)
            return NULL;
        if (rc == 0) {
            lex_expected(&p->lx, "a literal value in the list");
            return NULL;
        }
        n->nitems++;
        lex_next(&p->lx);
        if (p->lx.rc)
            return NULL;
        if (p->lx.tok.type == T_RBRACK)
            break;
        if (p->lx.tok.type != T_COMMA) {
            lex_expected(&p->lx, "',' or ']'");
            return NULL;
        }
        lex_next(&p->lx);
        if (p->lx.rc)
            return NULL;
    }
    lex_next(&p->lx);
    return p->lx.rc ? NULL : n;
}

static node_t *parse_match(parser_t *p, node_t *n)
{
    n->kind = N_MATCH;
    lex_next(&p->lx);
    if (p->lx.rc)
        return NULL;
    if (p->lx.tok.type != T_STRING) {
        lex_expected(&p->lx, "a regex string after 'matches'");
        return NULL;
    }
    const char *pat;
    uint32_t patlen;
    size_t at = p->lx.tok.off;
    if (decode_string(p, &pat, &patlen) < 0)
        return NULL;
    if (strlen(pat) != patlen) {
        lex_fail(&p->lx, at, "regex contains a NUL character");
        return NULL;
    }
    char why[160];
    if (regex_guard(pat, why, sizeof why) != 0) {
        lex_fail(&p->lx, at, "regex refused: %s", why);
        return NULL;
    }
    n->re = zalloc(p, sizeof *n->re);
    if (!n->re)
        return NULL;
    int rc = regcomp(n->re, pat, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[128];
        regerror(rc, n->re, msg, sizeof msg);
        regfree(n->re);
        n->re = NULL;
        lex_fail(&p->lx, at, "invalid regex: %s", msg);
        return NULL;
    }
    n->next_re = p->e->regexes;
    p->e->regexes = n;
    lex_next(&p->lx);
    return p->lx.rc ? NULL : n;
}

/* predicate := '(' or ')' | exists '(' path ')'
 *            | operand [ cmp operand | in list | matches string ] */
static node_t *parse_pred(parser_t *p)
{
    if (p->lx.tok.type == T_LPAREN) {
        if (enter(p) < 0)
            return NULL;
        lex_next(&p->lx);
        node_t *n = parse_or(p);
        if (!n)
            return NULL;
        if (p->lx.tok.type != T_RPAREN) {
            lex_expected(&p->lx, "')', '&&' or '||'");
            return NULL;
        }
        p->depth--;
        lex_next(&p->lx);
        return p->lx.rc ? NULL : n;
    }
    node_t *n = new_node(p, N_TRUTH);
    if (!n)
        return NULL;
    if (p->lx.tok.type == T_KW && p->lx.tok.kw == KW_EXISTS) {
        n->kind = N_EXISTS;
        lex_next(&p->lx);
        if (p->lx.rc)
            return NULL;
        if (p->lx.tok.type != T_LPAREN) {
            lex_expected(&p->lx, "'(' after 'exists'");
            return NULL;
        }
        lex_next(&p->lx);
        if (p->lx.rc)
            return NULL;
        if (p->lx.tok.type != T_PATH) {
            lex_expected(&p->lx, "a field path");
            return NULL;
        }
        if (decode_path(p, &n->l) < 0)
            return NULL;
        lex_next(&p->lx);
        if (p->lx.rc)
            return NULL;
        if (p->lx.tok.type != T_RPAREN) {
            lex_expected(&p->lx, "')'");
            return NULL;
        }
        lex_next(&p->lx);
        return p->lx.rc ? NULL : n;
    }
    if (parse_operand(p, &n->l, "an expression") < 0)
        return NULL;
    cmp_op_t op;
    if (is_cmp_tok(&p->lx.tok, &op)) {
        n->kind = N_CMP;
        n->op = op;
        lex_next(&p->lx);
        if (p->lx.rc || parse_operand(p, &n->r, "a value") < 0)
            return NULL;
    } else if (p->lx.tok.type == T_KW && p->lx.tok.kw == KW_IN) {
        if (!parse_in(p, n))
            return NULL;
    } else if (p->lx.tok.type == T_KW && p->lx.tok.kw == KW_MATCHES) {
        if (!parse_match(p, n))
            return NULL;
    } else {
        return n; /* bare value */
    }
    if (is_any_cmp(&p->lx.tok)) {
        lex_expected(&p->lx, "'&&' or '||' between comparisons");
        return NULL;
    }
    return n;
}

static int is_not(const tok_t *t)
{
    return t->type == T_BANG || (t->type == T_KW && t->kw == KW_NOT);
}

static node_t *parse_not(parser_t *p)
{
    if (!is_not(&p->lx.tok))
        return parse_pred(p);
    if (enter(p) < 0)
        return NULL;
    lex_next(&p->lx);
    if (p->lx.rc)
        return NULL;
    node_t *n = new_node(p, N_NOT);
    if (!n)
        return NULL;
    n->kids = zalloc(p, sizeof *n->kids);
    if (!n->kids)
        return NULL;
    n->nkids = 1;
    n->kids[0] = parse_not(p);
    if (!n->kids[0])
        return NULL;
    p->depth--;
    return n;
}

static int is_and(const tok_t *t)
{
    return t->type == T_ANDAND || (t->type == T_KW && t->kw == KW_AND);
}

static int is_or(const tok_t *t)
{
    return t->type == T_OROR || (t->type == T_KW && t->kw == KW_OR);
}

/* One level of an n-ary chain (and/or). Operands are collected in a
 * growing zone array; the zone keeps abandoned smaller copies, which is
 * harmless for the handful of terms an expression has. */
static node_t *parse_chain(parser_t *p, node_kind_t kind,
                           node_t *(*sub)(parser_t *),
                           int (*is_op)(const tok_t *))
{
    node_t *first = sub(p);
    if (!first || !is_op(&p->lx.tok))
        return first;
    node_t *n = new_node(p, kind);
    size_t cap = 4;
    node_t **kids = zalloc(p, cap * sizeof *kids);
    if (!n || !kids)
        return NULL;
    kids[n->nkids++] = first;
    while (is_op(&p->lx.tok)) {
        lex_next(&p->lx);
        if (p->lx.rc)
            return NULL;
        node_t *k = sub(p);
        if (!k)
            return NULL;
        if (n->nkids == cap) {
            node_t **bigger = zalloc(p, 2 * cap * sizeof *kids);
            if (!bigger)
                return NULL;
            memcpy(bigger, kids, cap * sizeof *kids);
            kids = bigger;
            cap *= 2;
        }
        kids[n->nkids++] = k;
    }
    n->kids = kids;
    return n;
}

static node_t *parse_and(parser_t *p)
{
    return parse_chain(p, N_AND, parse_not, is_and);
}

static node_t *parse_or(parser_t *p)
{
    return parse_chain(p, N_OR, parse_and, is_or);
}

void expr_destroy(expr_t **ep)
{
    if (!ep || !*ep)
        return;
    expr_t *e = *ep;
    for (node_t *n = e->regexes; n; n = n->next_re)
        regfree(n->re);
    msgpack_zone_free(e->zone);
    free(e);
    *ep = NULL;
}

int expr_compile(const char *text, expr_t **out, char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (errlen)
        err[0] = '\0';
    size_t len = strlen(text);
    if (len > EXPR_MAX_LEN) {
        if (errlen)
            snprintf(err, errlen, "expression is %zu bytes long (limit %d)",
                     len, EXPR_MAX_LEN);
        return -EINVAL;
    }
    expr_t *e = calloc(1, sizeof *e);
    if (!e || !(e->zone = msgpack_zone_new(len * 4 + 1024))) {
        free(e);
        if (errlen)
            snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    parser_t p = {.e = e};
    lex_init(&p.lx, text, len, err, errlen);
    if (!p.lx.rc)
        e->root = parse_or(&p);
    if (!p.lx.rc && p.lx.tok.type != T_EOF)
        lex_expected(&p.lx, "'&&', '||' or the end");
    int rc = p.lx.rc;
    if (rc || !out)
        expr_destroy(&e);
    else
        *out = e;
    return rc;
}
