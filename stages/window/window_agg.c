/* See window_agg.h. */
#include "window_agg.h"

#include <math.h>

/* sum, avg: the integer sum is not the result (a float came, a value
 * did not fit int64, or the sum overflowed). */
#define INEXACT 1u

/* min, max: what the value is. */
enum { K_NONE = 0, K_INT, K_UINT, K_FLOAT };

int wn_value_kind(const msgpack_object *v)
{
    switch (v->type) {
    case MSGPACK_OBJECT_NIL:
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return 1;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return isnan(v->via.f64) ? -2 : 1;
    default:
        return -1;
    }
}

static void as_number(const msgpack_object *v, uint32_t *kind, int64_t *i,
                      double *f)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *kind = v->via.u64 > INT64_MAX ? K_UINT : K_INT;
        *i = (int64_t)v->via.u64; /* UINT keeps the bits */
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *kind = K_INT;
        *i = v->via.i64;
    } else {
        *kind = K_FLOAT;
        *f = v->via.f64;
    }
}

/* <0, 0, >0 as a is below, equal to or above b; exact for two integers,
 * and long double holds any int64 exactly on the platforms we build for. */
static int cmp(uint32_t ka, int64_t ia, double fa, uint32_t kb, int64_t ib,
               double fb)
{
    if (ka != K_FLOAT && kb != K_FLOAT) {
        if (ka != kb) /* a UINT is above every INT */
            return ka == K_UINT ? 1 : -1;
        if (ka == K_UINT)
            return (uint64_t)ia < (uint64_t)ib ? -1 : (uint64_t)ia > (uint64_t)ib;
        return ia < ib ? -1 : ia > ib;
    }
    long double a = ka == K_FLOAT ? (long double)fa
                    : ka == K_UINT ? (long double)(uint64_t)ia
                                   : (long double)ia;
    long double b = kb == K_FLOAT ? (long double)fb
                    : kb == K_UINT ? (long double)(uint64_t)ib
                                   : (long double)ib;
    return a < b ? -1 : a > b;
}

static void add_sum(wn_acc_t *a, const msgpack_object *v)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        a->f += (double)v->via.u64;
        if (v->via.u64 > INT64_MAX ||
            __builtin_add_overflow(a->i, (int64_t)v->via.u64, &a->i))
            a->kind |= INEXACT;
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        a->f += (double)v->via.i64;
        if (__builtin_add_overflow(a->i, v->via.i64, &a->i))
            a->kind |= INEXACT;
    } else {
        a->f += v->via.f64;
        a->kind |= INEXACT;
    }
}

void wn_acc_add(wn_acc_t *a, wn_op_t op, const msgpack_object *v)
{
    a->n++;
    if (op == WN_COUNT)
        return;
    if (op == WN_SUM || op == WN_AVG) {
        add_sum(a, v);
        return;
    }
    uint32_t k;
    int64_t i = 0;
    double f = 0;
    as_number(v, &k, &i, &f);
    /* Ties keep the earlier value, and with it its type. */
    int c = a->kind == K_NONE ? 0 : cmp(k, i, f, a->kind, a->i, a->f);
    if (a->kind == K_NONE || (op == WN_MIN ? c < 0 : c > 0)) {
        a->kind = k;
        a->i = i;
        a->f = f;
    }
}

int wn_acc_pack(msgpack_packer *pk, const wn_acc_t *a, wn_op_t op)
{
    if (op == WN_COUNT)
        return msgpack_pack_uint64(pk, a->n);
    if (a->n == 0)
        return msgpack_pack_nil(pk);
    switch (op) {
    case WN_SUM:
        if (a->kind & INEXACT)
            return msgpack_pack_double(pk, a->f);
        return msgpack_pack_int64(pk, a->i);
    case WN_AVG:
        return msgpack_pack_double(pk, ((a->kind & INEXACT) ? a->f
                                                             : (double)a->i) /
                                           (double)a->n);
    default:
        if (a->kind == K_FLOAT)
            return msgpack_pack_double(pk, a->f);
        if (a->kind == K_UINT)
            return msgpack_pack_uint64(pk, (uint64_t)a->i);
        return msgpack_pack_int64(pk, a->i);
    }
}
