#include "regex_guard.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_DEPTH 64

/* Skips a bracket expression starting at p[0] == '['; returns the index
 * after its closing ']' (or the end: regcomp reports that itself). */
static size_t s_skip_bracket(const char *p, size_t i)
{
    i++;
    if (p[i] == '^')
        i++;
    if (p[i] == ']')
        i++;
    while (p[i] && p[i] != ']') {
        if (p[i] == '[' && (p[i + 1] == ':' || p[i + 1] == '.' ||
                            p[i + 1] == '=')) {
            char end = p[i + 1];
            i += 2;
            while (p[i] && !(p[i] == end && p[i + 1] == ']'))
                i++;
            if (p[i])
                i += 2;
            continue;
        }
        i++;
    }
    return p[i] ? i + 1 : i;
}

/* An interval "{n}", "{n,}" or "{n,m}" at p[i] == '{': its largest count
 * (n + 1 for "{n,}"), and the index after it; 0 if it is not one (a
 * literal brace, which regcomp judges). */
static size_t s_interval(const char *p, size_t i, uint64_t *count)
{
    size_t j = i + 1;
    uint64_t n = 0, m = 0;
    int has_m = 0, comma = 0;
    if (!isdigit((unsigned char)p[j]))
        return 0;
    while (isdigit((unsigned char)p[j]) && n < 100000)
        n = n * 10 + (uint64_t)(p[j++] - '0');
    if (p[j] == ',') {
        comma = 1;
        j++;
        while (isdigit((unsigned char)p[j]) && m < 100000) {
            m = m * 10 + (uint64_t)(p[j++] - '0');
            has_m = 1;
        }
    }
    if (p[j] != '}')
        return 0;
    *count = has_m ? (m > n ? m : n) : comma ? n + 1 : n;
    if (*count == 0)
        *count = 1;
    return j + 1;
}

int regex_guard(const char *pat, char *why, size_t whylen)
{
    uint64_t size[MAX_DEPTH + 1] = {0};
    size_t depth = 0;
    uint64_t last = 0; /* size of the atom a repetition would apply to */
    int after_rep = 0;
    for (size_t i = 0; pat[i];) {
        char c = pat[i];
        uint64_t factor = 0;
        size_t next = i + 1;
        if (c == '*' || c == '?')
            factor = 1;
        else if (c == '+')
            factor = 2;
        else if (c == '{' && (next = s_interval(pat, i, &factor)) == 0) {
            next = i + 1;
            factor = 0;
        }
        if (factor) {
            if (after_rep) {
                snprintf(why, whylen, "repetition operators follow one "
                         "another at character %zu (each copies what it "
                         "repeats)", i + 1);
                return -EINVAL;
            }
            size[depth] += last * (factor - 1);
            last *= factor;
            after_rep = 1;
            i = next;
        } else {
            after_rep = 0;
            if (c == '(') {
                if (depth == MAX_DEPTH) {
                    snprintf(why, whylen, "groups nest deeper than %d at "
                             "character %zu", MAX_DEPTH, i + 1);
                    return -EINVAL;
                }
                size[++depth] = 0;
                last = 0;
                i++;
                continue;
            }
            if (c == ')' && depth > 0) {
                last = size[depth--];
                size[depth] += last;
                i++;
            } else if (c == '[') {
                last = 1;
                size[depth] += 1;
                i = s_skip_bracket(pat, i);
            } else {
                last = 1;
                size[depth] += 1;
                i += c == '\\' && pat[i + 1] ? 2 : 1;
            }
        }
        if (size[depth] > REGEX_GUARD_MAX_SIZE) {
            snprintf(why, whylen, "its repetitions expand to more than %u "
                     "elements by character %zu", REGEX_GUARD_MAX_SIZE,
                     i);
            return -EINVAL;
        }
    }
    return 0;
}
