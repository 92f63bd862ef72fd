/* Event times: reading them from a record field, and writing them back in
 * the configured unit. Times are int64 ns since the epoch inside the
 * stage (1677..2262), so window arithmetic is exact. */
#ifndef WINDOW_TIME_H
#define WINDOW_TIME_H

#include "window_conf.h"

#include <locale.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

/* Why a time could not be read (returned negated). */
enum {
    WN_TIME_TYPE = 1, /* not a number or a string */
    WN_TIME_RANGE,    /* outside the int64 ns range */
    WN_TIME_NOFORMAT, /* a string, and no time_format */
    WN_TIME_NOMATCH,  /* a string that time_format does not match */
};

/* Reads o as an event time: a number in c->unit_ns units, or a string
 * parsed with c->time_format in the locale loc ("C": month names must not
 * depend on the process's locale). A %z offset is applied; without one
 * the time is UTC; TZ is never consulted. 0 or -WN_TIME_*. */
int wn_time_read(const wn_conf_t *c, locale_t loc, const msgpack_object *o,
                 int64_t *ns);

/* Writes ns as a number of unit_ns units ("1700000000", "12.5"). */
void wn_time_format(char *buf, size_t len, int64_t ns, int64_t unit_ns);

/* a / b rounded towards minus infinity (b > 0). */
static inline int64_t wn_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b < 0) ? q - 1 : q;
}

#endif
