#include "rp_value.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int rp_conv_init(rp_conv_t *cv, const char *time_format)
{
    memset(cv, 0, sizeof(*cv));
    cv->time_format = time_format;
    cv->clf_format =
        time_format && !strcmp(time_format, RP_CLF_TIME_FORMAT);
    cv->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    return cv->c_locale ? 0 : -ENOMEM;
}

void rp_conv_fini(rp_conv_t *cv)
{
    if (cv->c_locale)
        freelocale(cv->c_locale);
    cv->c_locale = (locale_t)0;
}

static int s_int(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    uint64_t v = 0, lim;

    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n)
        return -EINVAL;
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return -EINVAL;
        if (v > (lim - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* Decimal notation only: strtod would also take "inf", "nan" and hex. */
static int s_float(rp_conv_t *cv, const char *s, size_t n, double *out)
{
    char buf[64];
    int digits = 0;

    if (n >= sizeof(buf))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digits = 1;
        else if (!strchr("+-.eE", s[i]) || !s[i])
            return -EINVAL;
    }
    if (!digits)
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    double v = strtod_l(buf, &end, cv->c_locale);
    if (end != buf + n || !isfinite(v))
        return -EINVAL;
    *out = v;
    return 0;
}

static int s_bool(const char *s, size_t n, int64_t *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strlen(yes[i]) == n && !strncasecmp(s, yes[i], n)) {
            *out = 1;
            return 0;
        }
        if (strlen(no[i]) == n && !strncasecmp(s, no[i], n)) {
            *out = 0;
            return 0;
        }
    }
    return -EINVAL;
}

static int64_t s_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int s_2digits(const char *p, unsigned max, unsigned *out)
{
    if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
        return 0;
    *out = (unsigned)(p[0] - '0') * 10 + (unsigned)(p[1] - '0');
    return *out <= max;
}

/* The access log's "10/Oct/2000:13:55:36 -0700" in its usual spelling,
 * without strptime (which tries each month name in turn). 1 and *out, or
 * 0 to leave the text to strptime, which gives the same result for
 * everything accepted here and also reads the looser spellings. */
static int s_clf_time(const char *s, size_t n, int64_t *out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    unsigned d, y1, y2, hh, mm, ss, oh, om, mon;

    if (n != 26 || s[2] != '/' || s[6] != '/' || s[11] != ':' ||
        s[14] != ':' || s[17] != ':' || s[20] != ' ' ||
        (s[21] != '+' && s[21] != '-'))
        return 0;
    if (!s_2digits(s, 31, &d) || d == 0 || !s_2digits(s + 7, 99, &y1) ||
        !s_2digits(s + 9, 99, &y2) || !s_2digits(s + 12, 23, &hh) ||
        !s_2digits(s + 15, 59, &mm) || !s_2digits(s + 18, 59, &ss) ||
        !s_2digits(s + 22, 99, &oh) || !s_2digits(s + 24, 59, &om))
        return 0;
    for (mon = 0; mon < 12; mon++)
        if (!memcmp(s + 3, months + 3 * mon, 3))
            break;
    if (mon == 12)
        return 0;
    int64_t off = (int64_t)oh * 3600 + om * 60;
    *out = s_days_from_civil(y1 * 100 + y2, mon + 1, d) * 86400 +
           hh * 3600 + mm * 60 + ss - (s[21] == '-' ? -off : off);
    return 1;
}

/* Seconds since the epoch. The offset from %z is applied; without one the
 * time is UTC. timegm() reads no time zone, so TZ never matters. */
static int s_time(rp_conv_t *cv, const char *s, size_t n, int64_t *out)
{
    char buf[128];
    struct tm tm;

    if (n == cv->last_len && !memcmp(s, cv->last_time, n)) {
        *out = cv->last_epoch;
        return 0;
    }
    if (cv->clf_format && s_clf_time(s, n, out))
        return 0;
    if (n >= sizeof(buf) || memchr(s, '\0', n))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(&tm, 0, sizeof(tm));
    tm.tm_mday = 1; /* a format without the day means the 1st */
    const char *end = strptime_l(buf, cv->time_format, &tm, cv->c_locale);
    if (!end || *end)
        return -EINVAL;
    /* timegm() normalises tm, resetting tm_gmtoff: read it first. */
    int64_t gmtoff = (int64_t)tm.tm_gmtoff;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 && (tm.tm_year != 69 || tm.tm_mon != 11 ||
                            tm.tm_mday != 31))
        return -EINVAL;
    *out = (int64_t)t - gmtoff;
    if (n < sizeof(cv->last_time)) {
        memcpy(cv->last_time, s, n);
        cv->last_len = n;
        cv->last_epoch = *out;
    }
    return 0;
}

int rp_convert(rp_conv_t *cv, rp_type_t type, const char *s, size_t n,
               rp_val_t *out)
{
    int rc = 0;

    if (type == RP_STRING) {
        out->kind = RP_V_STR;
        out->s = s;
        out->n = n;
        return 0;
    }
    if (n == 0 || (n == 1 && s[0] == '-')) {
        out->kind = RP_V_NIL;
        return 0;
    }
    switch (type) {
    case RP_INT:
        out->kind = RP_V_INT;
        rc = s_int(s, n, &out->i);
        break;
    case RP_FLOAT:
        out->kind = RP_V_FLOAT;
        rc = s_float(cv, s, n, &out->f);
        break;
    case RP_BOOL:
        out->kind = RP_V_BOOL;
        rc = s_bool(s, n, &out->i);
        break;
    default:
        out->kind = RP_V_INT;
        rc = s_time(cv, s, n, &out->i);
        break;
    }
    return rc;
}
