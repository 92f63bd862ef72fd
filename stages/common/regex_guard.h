/*
 * A check before regcomp(3) on patterns from a topology. glibc compiles a
 * repetition by copying the repeated sub-expression, so repetitions that
 * stack ("a++++", "((a{50}){50}){50}") grow the compiled form
 * exponentially: a 40-byte pattern can take minutes and gigabytes. This
 * refuses stacked repetition operators and patterns whose expanded size
 * passes a bound, before glibc tries.
 */
#ifndef SL_REGEX_GUARD_H
#define SL_REGEX_GUARD_H

#include <stddef.h>

/* The expanded size (atoms, counting each copy a repetition makes) a
 * pattern may reach. */
#define REGEX_GUARD_MAX_SIZE 100000u

/* 0, or -EINVAL with the reason (naming the 1-based character where it
 * was found) in why. pat is a POSIX extended regular expression. */
int regex_guard(const char *pat, char *why, size_t whylen);

#endif
