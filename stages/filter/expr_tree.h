/*
 * The compiled form of a filter expression, shared by the compiler
 * (expr.c) and the evaluator (expr_eval.c). Private to the filter plugin.
 *
 * And/or chains are n-ary nodes, so the tree is at most a few levels deeper
 * than the nesting limit and evaluation recursion stays bounded.
 */
#ifndef FILTER_EXPR_TREE_H
#define FILTER_EXPR_TREE_H

#include <msgpack.h>
#include <regex.h>
#include <stddef.h>

typedef struct seg {
    const char *ptr;
    size_t len;
} seg_t;

/* A field path, or a literal when nseg == 0. */
typedef struct operand {
    size_t nseg;
    seg_t *segs;
    msgpack_object lit;
} operand_t;

typedef enum node_kind {
    N_OR,
    N_AND,
    N_NOT,
    N_CMP,    /* l op r */
    N_IN,     /* l in [items] */
    N_MATCH,  /* l matches /re/ */
    N_EXISTS, /* exists(path) */
    N_TRUTH,  /* a bare value: true iff it is the boolean true */
} node_kind_t;

typedef enum cmp_op {
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_CONTAINS,
    OP_STARTS,
    OP_ENDS,
} cmp_op_t;

typedef struct node node_t;
struct node {
    node_kind_t kind;
    cmp_op_t op;
    operand_t l, r;
    node_t **kids; /* N_OR, N_AND: nkids; N_NOT: one */
    size_t nkids;
    msgpack_object *items; /* N_IN */
    size_t nitems;
    regex_t *re;     /* N_MATCH */
    node_t *next_re; /* chain of N_MATCH nodes, for regfree */
};

struct expr {
    msgpack_zone *zone;
    node_t *root;
    node_t *regexes;
};

#endif
