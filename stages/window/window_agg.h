/* One aggregate's running value for one (window, key) group. */
#ifndef WINDOW_AGG_H
#define WINDOW_AGG_H

#include "window_conf.h"

#include <msgpack.h>
#include <stdint.h>

typedef struct wn_acc {
    uint64_t n;    /* values taken (count without a field: records) */
    int64_t i;     /* sum, avg: the exact integer sum; min, max: an int */
    double f;      /* sum, avg: the float sum; min, max: a float */
    uint32_t kind; /* sum, avg: flags; min, max: which of i, f is set */
} wn_acc_t;

/* 1 if v is a number an aggregate takes, 0 if it is null (skipped),
 * -1 if it is anything else, -2 for NaN. */
int wn_value_kind(const msgpack_object *v);
/* Adds v (a number, or NULL for a count of records) to a. */
void wn_acc_add(wn_acc_t *a, wn_op_t op, const msgpack_object *v);
/* Packs a's result: count an int; sum an int while every value was an
 * int and the sum fits int64, else a float; avg a float; min and max the
 * value as it came (int or float); null for no values. */
int wn_acc_pack(msgpack_packer *pk, const wn_acc_t *a, wn_op_t op);

#endif
