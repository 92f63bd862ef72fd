/*
 * The access log presets without the regex engine. glibc's regexec spends
 * tens of microseconds on the combined format's groups; every token of
 * that format ends at a byte it cannot contain, so one left-to-right scan
 * finds the same groups as the preset's pattern (rp_conf.c), which stays
 * the definition: the test suite checks that both agree.
 */
#ifndef RP_FAST_H
#define RP_FAST_H

#include <regex.h>
#include <stddef.h>

/* Matches s[0..n) against the combined (or, if !combined, the common)
 * format and fills m[1..] as regexec would for the preset's pattern
 * (groups the preset does not name are left at -1). 1 if it matches, 0
 * if not. m holds 13 entries for combined, 9 for common. */
int rp_fast_access_log(int combined, const char *s, size_t n, regmatch_t *m);

#endif
