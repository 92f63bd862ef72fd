/*
 * The filter stage's expression language: a hand-written recursive-descent
 * parser that compiles an expression once (at init) into a tree, and an
 * evaluator that tests that tree against one record without allocating.
 * docs/stages/filter.md is the language reference; keep the two in step.
 *
 * Module-local to the filter plugin (hidden visibility), hence no sl_
 * prefix.
 */
#ifndef FILTER_EXPR_H
#define FILTER_EXPR_H

#include <msgpack.h>
#include <stddef.h>

/* Longest expression accepted, in bytes, and deepest nesting of '(' and
 * '!'/'not'. Both bound the parser's memory and recursion. */
#define EXPR_MAX_LEN 65536
#define EXPR_MAX_DEPTH 64

typedef struct expr expr_t;

/* Compiles text (NUL-terminated) into *out. On a syntax error returns
 * -EINVAL and writes "column N: ..." into err (N counts characters from
 * 1); on allocation failure returns -ENOMEM. Nothing is allocated on
 * failure. With out == NULL the expression is only checked. */
int expr_compile(const char *text, expr_t **out, char *err, size_t errlen);

/* Frees an expression and sets *e to NULL; NULL and *e == NULL are fine. */
void expr_destroy(expr_t **e);

/* 1 if the record (a msgpack map) satisfies the expression, else 0.
 * Never allocates and never fails; safe to call from several threads on
 * the same expression. */
int expr_eval(const expr_t *e, const msgpack_object *map);

#endif
