/* See window_time.h. */
#include "window_time.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The longest time string tried: longer ones cannot be a timestamp. */
#define MAX_TIME_TEXT 128

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar, so
 * no time zone database is involved (timegm would work too, but is not
 * in C11 or POSIX). Eras of 400 years make it valid for any year. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int from_string(const wn_conf_t *c, locale_t loc, const char *p,
                       size_t n, int64_t *ns)
{
    if (!c->time_format)
        return -WN_TIME_NOFORMAT;
    char buf[MAX_TIME_TEXT];
    if (n >= sizeof(buf) || memchr(p, '\0', n))
        return -WN_TIME_NOMATCH;
    memcpy(buf, p, n);
    buf[n] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_mday = 1;
    const char *end = strptime_l(buf, c->time_format, &tm, loc);
    if (!end || *end)
        return -WN_TIME_NOMATCH;
    int64_t days = days_from_civil((int64_t)tm.tm_year + 1900,
                                   (int64_t)tm.tm_mon + 1, tm.tm_mday);
    int64_t secs = days * 86400 + (int64_t)tm.tm_hour * 3600 +
                   (int64_t)tm.tm_min * 60 + tm.tm_sec - tm.tm_gmtoff;
    if (secs > INT64_MAX / 1000000000 || secs < INT64_MIN / 1000000000)
        return -WN_TIME_RANGE;
    *ns = secs * 1000000000;
    return 0;
}

int wn_time_read(const wn_conf_t *c, locale_t loc, const msgpack_object *o,
                 int64_t *ns)
{
    int64_t unit = c->unit_ns;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)(INT64_MAX / unit))
            return -WN_TIME_RANGE;
        *ns = (int64_t)o->via.u64 * unit;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        if (o->via.i64 < INT64_MIN / unit)
            return -WN_TIME_RANGE;
        *ns = o->via.i64 * unit;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        double r = o->via.f64 * (double)unit;
        /* NaN fails both comparisons. */
        if (!(r > -9.2e18 && r < 9.2e18))
            return -WN_TIME_RANGE;
        *ns = (int64_t)(r >= 0 ? r + 0.5 : r - 0.5); /* nearest ns */
        return 0;
    }
    case MSGPACK_OBJECT_STR:
        return from_string(c, loc, o->via.str.ptr, o->via.str.size, ns);
    default:
        return -WN_TIME_TYPE;
    }
}

void wn_time_format(char *buf, size_t len, int64_t ns, int64_t unit_ns)
{
    int64_t q = ns / unit_ns, r = ns % unit_ns;
    if (!r) {
        snprintf(buf, len, "%" PRId64, q);
        return;
    }
    int digits = 0;
    for (int64_t u = unit_ns; u > 1; u /= 10)
        digits++;
    int64_t frac = r < 0 ? -r : r;
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    snprintf(buf, len, "%s%" PRId64 ".%0*" PRId64, (ns < 0 && q == 0) ? "-" : "",
             q, digits, frac);
}
