/*
 * RFC 3339 times in UTC nanoseconds, without the C library's time zone
 * machinery (TZ never matters): for synthetic timestamps and for event
 * times read from records.
 */
#ifndef SL_TIMEFMT_H
#define SL_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" (a space or
 * lower-case t/z accepted too; up to 9 fraction digits are kept) in
 * s[0..len) into ns since the epoch (negative before 1970). 0, or -EINVAL
 * if s is not such a time. */
int sl__time_parse_rfc3339(const char *s, size_t len, int64_t *ns);

/* Writes ns as "YYYY-MM-DDTHH:MM:SS[.fraction]Z" with `digits` fraction
 * digits (0, 3, 6 or 9) into buf; returns the length (cut at len - 1). */
size_t sl__time_format_rfc3339(int64_t ns, unsigned digits, char *buf,
                               size_t len);

#endif
