/* Converting captured text to the configured types (regex_parse). */
#ifndef RP_VALUE_H
#define RP_VALUE_H

#include "rp_conf.h"

#include <locale.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rp_kind {
    RP_V_NIL = 0,
    RP_V_STR,
    RP_V_INT,
    RP_V_FLOAT,
    RP_V_BOOL,
} rp_kind_t;

typedef struct rp_val {
    rp_kind_t kind;
    const char *s; /* RP_V_STR: into the record */
    size_t n;
    int64_t i; /* RP_V_INT, RP_V_BOOL */
    double f;
} rp_val_t;

/* Per worker: the "C" locale (month names and decimal points must not
 * depend on the process's locale) and the last time parsed, since log
 * lines in a row mostly share their second. */
typedef struct rp_conv {
    locale_t c_locale;
    const char *time_format;
    int clf_format; /* time_format is RP_CLF_TIME_FORMAT: a fast path */
    char last_time[64];
    size_t last_len; /* 0: nothing cached */
    int64_t last_epoch;
} rp_conv_t;

/* 0 or -ENOMEM. */
int rp_conv_init(rp_conv_t *cv, const char *time_format);
void rp_conv_fini(rp_conv_t *cv);

/* Converts text [s, s+n) to type. "-" (the access log's "no value") and
 * "" become null for every type but string. 0, -EINVAL if the text is not
 * of the type, -ERANGE for an integer beyond int64. */
int rp_convert(rp_conv_t *cv, rp_type_t type, const char *s, size_t n,
               rp_val_t *out);

#endif
