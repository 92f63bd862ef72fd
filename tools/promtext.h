/* A parser for the Prometheus text exposition format (version 0.0.4), as
 * served by `sluice run --metrics` and read by `sluice top`.
 *
 * The text comes from the network, so the parser never trusts it: a line
 * that is not well formed is skipped and reported (line number and what is
 * wrong), the rest of the document is still parsed. A last line without a
 * line feed is reported as truncated and dropped, because a body cut short
 * can end inside a number ("12" of "1234") and still look valid. */
#ifndef SL_PROMTEXT_H
#define SL_PROMTEXT_H

#include <stddef.h>

typedef enum sl_prom_type {
    SL_PROM_UNTYPED = 0,
    SL_PROM_COUNTER,
    SL_PROM_GAUGE,
    SL_PROM_HISTOGRAM,
    SL_PROM_SUMMARY
} sl_prom_type_t;

typedef struct sl_prom_label {
    const char *name;
    const char *value; /* escapes decoded */
} sl_prom_label_t;

typedef struct sl_prom_sample {
    const char *name; /* as written: "x_bucket" for a histogram's bucket */
    const sl_prom_label_t *labels;
    size_t n_labels;
    double value;     /* +Inf, -Inf and NaN included */
    long long ts_ms;  /* the optional timestamp, or 0 */
    int has_ts;
    size_t family;    /* index into the document's families */
    size_t line;      /* 1-based */
} sl_prom_sample_t;

typedef struct sl_prom_family {
    const char *name;
    const char *help; /* escapes decoded; NULL when there is no HELP */
    sl_prom_type_t type;
} sl_prom_family_t;

typedef struct sl_prom_error {
    size_t line; /* 1-based */
    char msg[96];
} sl_prom_error_t;

/* At most this many errors are kept; n_errors counts all of them. */
#define SL_PROM_MAX_ERRORS 16

typedef struct sl_prom_doc sl_prom_doc_t;

/* Parses len bytes of text (need not be NUL-terminated). On success *out is
 * a new document, which owns copies of everything it points to; malformed
 * lines do not fail the parse, they are in sl_prom_errors(). Returns 0, or
 * -ENOMEM (then *out is NULL). */
int sl_prom_parse(const char *text, size_t len, sl_prom_doc_t **out);
/* Frees *doc and sets it to NULL; NULL is ignored. */
void sl_prom_doc_destroy(sl_prom_doc_t **doc);

const sl_prom_sample_t *sl_prom_samples(const sl_prom_doc_t *doc, size_t *n);
const sl_prom_family_t *sl_prom_families(const sl_prom_doc_t *doc, size_t *n);
/* The kept errors (at most SL_PROM_MAX_ERRORS); *total counts every one. */
const sl_prom_error_t *sl_prom_errors(const sl_prom_doc_t *doc, size_t *n,
                                      size_t *total);

/* The value of label name on s, or NULL. */
const char *sl_prom_label(const sl_prom_sample_t *s, const char *name);
const char *sl_prom_type_name(sl_prom_type_t t);

#endif
