/* RFC 3339 times: see timefmt.h. Dates convert with the proleptic
 * Gregorian day count (days from 1970-01-01). */
#include "timefmt.h"

#include <errno.h>
#include <stdio.h>

static int64_t s_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void s_civil_from_days(int64_t z, int64_t *y, unsigned *m,
                              unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* n digits at s[*i] into *v; false if any is not a digit. */
static int s_digits(const char *s, size_t len, size_t *i, unsigned n,
                    unsigned *v)
{
    *v = 0;
    for (unsigned k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return 0;
        *v = *v * 10 + (unsigned)(s[*i] - '0');
    }
    return 1;
}

static int s_at(const char *s, size_t len, size_t i, const char *any)
{
    if (i >= len)
        return 0;
    for (; *any; any++)
        if (s[i] == *any)
            return 1;
    return 0;
}

int sl__time_parse_rfc3339(const char *s, size_t len, int64_t *ns)
{
    unsigned y, mo, d, h, mi, se;
    size_t i = 0;
    if (!s_digits(s, len, &i, 4, &y) || !s_at(s, len, i++, "-") ||
        !s_digits(s, len, &i, 2, &mo) || !s_at(s, len, i++, "-") ||
        !s_digits(s, len, &i, 2, &d) || !s_at(s, len, i++, "Tt ") ||
        !s_digits(s, len, &i, 2, &h) || !s_at(s, len, i++, ":") ||
        !s_digits(s, len, &i, 2, &mi) || !s_at(s, len, i++, ":") ||
        !s_digits(s, len, &i, 2, &se))
        return -EINVAL;
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30,
                                     31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
        mi > 59 || se > 60)
        return -EINVAL;
    if (mo == 2 && d == 29 && (y % 4 || (y % 100 == 0 && y % 400)))
        return -EINVAL;
    int64_t frac = 0;
    if (s_at(s, len, i, ".")) {
        i++;
        unsigned n = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (n < 9) {
                frac = frac * 10 + (s[i] - '0');
                n++;
            }
            i++;
        }
        if (n == 0)
            return -EINVAL;
        for (; n < 9; n++)
            frac *= 10;
    }
    int64_t off = 0;
    if (s_at(s, len, i, "Zz")) {
        i++;
    } else if (s_at(s, len, i, "+-")) {
        int neg = s[i++] == '-';
        unsigned oh, om;
        if (!s_digits(s, len, &i, 2, &oh) || !s_at(s, len, i++, ":") ||
            !s_digits(s, len, &i, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        off = ((int64_t)oh * 60 + om) * 60;
        if (neg)
            off = -off;
    } else {
        return -EINVAL;
    }
    if (i != len)
        return -EINVAL;
    int64_t secs = s_days_from_civil(y, mo, d) * 86400 +
                   (int64_t)h * 3600 + (int64_t)mi * 60 + se - off;
    /* Years 0..9999 stay far inside int64 nanoseconds? Not all: refuse
     * what does not fit (about 1677..2262). */
    if (secs > INT64_MAX / 1000000000 - 1 || secs < INT64_MIN / 1000000000 + 1)
        return -EINVAL;
    *ns = secs * 1000000000 + frac;
    return 0;
}

size_t sl__time_format_rfc3339(int64_t ns, unsigned digits, char *buf,
                               size_t len)
{
    int64_t secs = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        secs--;
    }
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    unsigned m, d;
    s_civil_from_days(days, &y, &m, &d);
    char tmp[64];
    int n = snprintf(tmp, sizeof(tmp), "%04lld-%02u-%02uT%02u:%02u:%02u",
                     (long long)y, m, d, (unsigned)(rem / 3600),
                     (unsigned)(rem / 60 % 60), (unsigned)(rem % 60));
    if (digits == 3 || digits == 6 || digits == 9) {
        int64_t div = digits == 3 ? 1000000 : digits == 6 ? 1000 : 1;
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, ".%0*lld",
                      (int)digits, (long long)(frac / div));
    }
    snprintf(tmp + n, sizeof(tmp) - (size_t)n, "Z");
    n = snprintf(buf, len, "%s", tmp);
    return len && (size_t)n >= len ? len - 1 : (size_t)n;
}
