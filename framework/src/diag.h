/*
 * Diagnostics: a list of "FILE:LINE:COL: message" lines collected while
 * loading and checking a topology, printed together so that one run of
 * `sluice check` shows every problem, not just the first.
 */
#ifndef SL_DIAG_H
#define SL_DIAG_H

#include <stddef.h>
#include <stdio.h>

typedef struct sl_diag {
    char **lines;
    size_t count;
    size_t cap;
} sl_diag_t;

void sl__diag_init(sl_diag_t *d);
void sl__diag_fini(sl_diag_t *d);
/* Appends a formatted line (a trailing newline is not expected). */
void sl__diag_add(sl_diag_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Puts lines [from, count) that start with "FILE:LINE:COL:" for the given
 * file in position order (stable); other lines follow in their order.
 * Checks run in phases, but a reader wants the problems in file order.
 * Leaves the list as it is if memory is short. */
void sl__diag_sort(sl_diag_t *d, size_t from, const char *file);
/* Writes every line to f, one per line. */
void sl__diag_print(const sl_diag_t *d, FILE *f);

#endif
