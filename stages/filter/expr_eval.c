/*
 * Evaluation of a compiled filter expression against one record. Nothing
 * here allocates: operands are looked up in the decoded record, literals
 * were built at compile time.
 */
#include "expr.h"
#include "expr_tree.h"

#include <sluice/stage.h>

#include <math.h>
#include <regex.h>
#include <stdint.h>
#include <string.h>

static const msgpack_object *resolve(const operand_t *op,
                                     const msgpack_object *map)
{
    if (!op->nseg)
        return &op->lit;
    const msgpack_object *cur = map;
    for (size_t i = 0; i < op->nseg; i++) {
        if (cur->type != MSGPACK_OBJECT_MAP)
            return NULL;
        cur = sl_map_getn(cur, op->segs[i].ptr, op->segs[i].len);
        if (!cur)
            return NULL;
    }
    return cur;
}

/* Outcomes of comparing two present values. Ordered values give LT/EQ/GT;
 * values that can only be equal or not (booleans, null against anything)
 * give SAME/DIFF; incomparable ones (type mismatch, NaN) give NONE, which
 * makes every operator false. */
typedef enum ord { ORD_LT, ORD_EQ, ORD_GT, ORD_SAME, ORD_DIFF, ORD_NONE } ord_t;

static int is_num(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return 1;
    default: return 0;
    }
}

static int is_float(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_FLOAT32 ||
           o->type == MSGPACK_OBJECT_FLOAT64;
}

static int is_bytes(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN;
}

static void bytes(const msgpack_object *o, const char **ptr, uint32_t *size)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        *ptr = o->via.str.ptr;
        *size = o->via.str.size;
    } else {
        *ptr = o->via.bin.ptr;
        *size = o->via.bin.size;
    }
}

#define ORD(a, b) ((a) < (b) ? ORD_LT : (a) > (b) ? ORD_GT : ORD_EQ)

/* Exact comparison of an integer with a double: the double's integral part
 * is compared as an integer (it is exactly representable once range-
 * checked), then its fraction breaks the tie. Converting the integer to
 * double instead would call 2^53+1 equal to 2^53. */
static ord_t cmp_u64_f(uint64_t u, double d)
{
    if (isnan(d))
        return ORD_NONE;
    if (d < 0)
        return ORD_GT;
    if (d >= 18446744073709551616.0)
        return ORD_LT;
    double t = trunc(d);
    uint64_t tu = (uint64_t)t;
    if (u != tu)
        return ORD(u, tu);
    return d > t ? ORD_LT : ORD_EQ;
}

static ord_t cmp_i64_f(int64_t i, double d)
{
    if (isnan(d))
        return ORD_NONE;
    if (d >= 9223372036854775808.0)
        return ORD_LT;
    if (d < -9223372036854775808.0)
        return ORD_GT;
    double t = trunc(d);
    int64_t ti = (int64_t)t;
    if (i != ti)
        return ORD(i, ti);
    return d > t ? ORD_LT : d < t ? ORD_GT : ORD_EQ;
}

static ord_t flip(ord_t o)
{
    return o == ORD_LT ? ORD_GT : o == ORD_GT ? ORD_LT : o;
}

/* Integers arrive as POSITIVE (u64) or NEGATIVE (i64); a NEGATIVE holding
 * a non-negative value is tolerated (other encoders may produce it). */
static ord_t cmp_int_f(const msgpack_object *a, double d)
{
    return a->type == MSGPACK_OBJECT_POSITIVE_INTEGER
               ? cmp_u64_f(a->via.u64, d)
               : cmp_i64_f(a->via.i64, d);
}

static ord_t cmp_num(const msgpack_object *a, const msgpack_object *b)
{
    if (is_float(a) && is_float(b)) {
        double x = a->via.f64, y = b->via.f64;
        if (isnan(x) || isnan(y))
            return ORD_NONE;
        return ORD(x, y);
    }
    if (is_float(b))
        return cmp_int_f(a, b->via.f64);
    if (is_float(a))
        return flip(cmp_int_f(b, a->via.f64));
    int an = a->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && a->via.i64 < 0;
    int bn = b->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && b->via.i64 < 0;
    if (an && bn)
        return ORD(a->via.i64, b->via.i64);
    if (an != bn)
        return an ? ORD_LT : ORD_GT;
    /* both non-negative: the u64 and i64 views agree */
    return ORD(a->via.u64, b->via.u64);
}

static ord_t compare(const msgpack_object *a, const msgpack_object *b)
{
    if (a->type == MSGPACK_OBJECT_NIL || b->type == MSGPACK_OBJECT_NIL)
        return a->type == b->type ? ORD_SAME : ORD_DIFF;
    if (is_num(a) && is_num(b))
        return cmp_num(a, b);
    if (is_bytes(a) && is_bytes(b)) {
        const char *x, *y;
        uint32_t xn, yn;
        bytes(a, &x, &xn);
        bytes(b, &y, &yn);
        int c = xn && yn ? memcmp(x, y, xn < yn ? xn : yn) : 0;
        if (c)
            return c < 0 ? ORD_LT : ORD_GT;
        return ORD(xn, yn);
    }
    if (a->type == MSGPACK_OBJECT_BOOLEAN && b->type == MSGPACK_OBJECT_BOOLEAN)
        return a->via.boolean == b->via.boolean ? ORD_SAME : ORD_DIFF;
    return ORD_NONE;
}

static int apply(cmp_op_t op, ord_t o)
{
    switch (op) {
    case OP_EQ: return o == ORD_EQ || o == ORD_SAME;
    case OP_NE: return o == ORD_LT || o == ORD_GT || o == ORD_DIFF;
    case OP_LT: return o == ORD_LT;
    case OP_LE: return o == ORD_LT || o == ORD_EQ;
    case OP_GT: return o == ORD_GT;
    case OP_GE: return o == ORD_GT || o == ORD_EQ;
    default: return 0;
    }
}

/* A missing operand makes every comparison false, except that a missing
 * field equals null. */
static int eval_cmp(cmp_op_t op, const msgpack_object *a,
                    const msgpack_object *b)
{
    if (!a || !b) {
        const msgpack_object *other = a ? a : b;
        return op == OP_EQ && other && other->type == MSGPACK_OBJECT_NIL;
    }
    if (op < OP_CONTAINS)
        return apply(op, compare(a, b));
    if (!is_bytes(a) || !is_bytes(b))
        return 0;
    const char *h, *n;
    uint32_t hn, nn;
    bytes(a, &h, &hn);
    bytes(b, &n, &nn);
    if (nn > hn)
        return 0;
    if (!nn)
        return 1;
    switch (op) {
    case OP_CONTAINS: return memmem(h, hn, n, nn) != NULL;
    case OP_STARTS: return !memcmp(h, n, nn);
    case OP_ENDS: return !memcmp(h + hn - nn, n, nn);
    default: return 0;
    }
}

static int eval(const node_t *n, const msgpack_object *map)
{
    switch (n->kind) {
    case N_OR:
        for (size_t i = 0; i < n->nkids; i++)
            if (eval(n->kids[i], map))
                return 1;
        return 0;
    case N_AND:
        for (size_t i = 0; i < n->nkids; i++)
            if (!eval(n->kids[i], map))
                return 0;
        return 1;
    case N_NOT: return !eval(n->kids[0], map);
    case N_CMP:
        return eval_cmp(n->op, resolve(&n->l, map), resolve(&n->r, map));
    case N_IN: {
        const msgpack_object *v = resolve(&n->l, map);
        for (size_t i = 0; i < n->nitems; i++)
            if (eval_cmp(OP_EQ, v, &n->items[i]))
                return 1;
        return 0;
    }
    case N_MATCH: {
        const msgpack_object *v = resolve(&n->l, map);
        if (!v || v->type != MSGPACK_OBJECT_STR)
            return 0;
        /* REG_STARTEND: record strings are not NUL-terminated, and copying
         * them to terminate would cost a copy per record. */
        regmatch_t m = {.rm_so = 0, .rm_eo = (regoff_t)v->via.str.size};
        const char *s = v->via.str.size ? v->via.str.ptr : "";
        return regexec(n->re, s, 1, &m, REG_STARTEND) == 0;
    }
    case N_EXISTS: return resolve(&n->l, map) != NULL;
    case N_TRUTH: {
        const msgpack_object *v = resolve(&n->l, map);
        return v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
    }
    }
    return 0;
}

int expr_eval(const expr_t *e, const msgpack_object *map)
{
    return eval(e->root, map);
}
