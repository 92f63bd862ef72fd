/* Splitting a received batch by record priority: per-level batches keep
 * the records' order, envelopes and bytes; a one-level batch is left
 * alone; out-of-range priorities land at the lowest level; a malformed
 * batch is refused before anything is copied. Messages handed to the
 * splitter are exact-size heap copies so ASan sees any over-read. */
#include <criterion/criterion.h>

#include "batch_prio.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A payload that names its record: fixmap {"n": r} (r < 128). */
static void s_payload(unsigned char p[4], unsigned r)
{
    p[0] = 0x81;
    p[1] = 0xa1;
    p[2] = 'n';
    p[3] = (unsigned char)r;
}

/* A batch of n records with the given priorities, as an exact-size heap
 * copy (*len gets its size). */
static char *s_make(const uint8_t *prio, unsigned n, size_t *len)
{
    sl_batch_t b;
    sl__batch_init(&b);
    for (unsigned r = 0; r < n; r++) {
        sl_envelope_t env = {.id = 1000 + r, .ts_ns = 5000 + r,
                             .attempts = r % 3, .priority = prio[r],
                             .flags = (uint8_t)(r & 1)};
        unsigned char p[4];
        s_payload(p, r);
        cr_assert_eq(sl__batch_append(&b, &env, p, sizeof(p)), 0);
    }
    size_t l;
    char *data = sl__batch_release(&b, &l);
    cr_assert_not_null(data);
    char *exact = malloc(l);
    cr_assert_not_null(exact);
    memcpy(exact, data, l);
    free(data);
    *len = l;
    return exact;
}

static void s_init_out(sl_batch_t out[SL_PRIO_LEVELS])
{
    for (int l = 0; l < SL_PRIO_LEVELS; l++)
        sl__batch_init(&out[l]);
}

static void s_fini_out(sl_batch_t out[SL_PRIO_LEVELS])
{
    for (int l = 0; l < SL_PRIO_LEVELS; l++)
        sl__batch_fini(&out[l]);
}

Test(batch_prio, mixed_batch_splits_by_level_in_order)
{
    uint8_t prio[] = {3, 0, 3, 7, 0, 0, 5, 3, 7, 1};
    unsigned n = sizeof(prio);
    size_t len;
    char *msg = s_make(prio, n, &len);
    sl_batch_t out[SL_PRIO_LEVELS];
    uint32_t counts[SL_PRIO_LEVELS];
    int single = 42;
    s_init_out(out);
    cr_assert_eq(sl__batch_split_prio(msg, len, out, counts, &single), 0);
    cr_assert_eq(single, -1);
    uint32_t want_counts[SL_PRIO_LEVELS] = {3, 1, 0, 3, 0, 1, 0, 2};
    for (unsigned l = 0; l < SL_PRIO_LEVELS; l++) {
        cr_assert_eq(counts[l], want_counts[l], "level %u", l);
        cr_assert_eq(out[l].count, want_counts[l], "level %u", l);
        if (!out[l].count)
            continue;
        size_t blen;
        char *buf = sl__batch_release(&out[l], &blen);
        cr_assert_not_null(buf);
        /* Records of level l, in batch order, each intact. */
        sl_batch_iter_t it;
        uint32_t cnt;
        cr_assert_eq(sl__batch_iter_init(&it, buf, blen, &cnt), 0);
        cr_assert_eq(cnt, want_counts[l]);
        unsigned r = 0;
        sl_envelope_t env;
        const char *payload;
        size_t plen;
        uint32_t got = 0;
        while (sl__batch_next(&it, &env, &payload, &plen) == 1) {
            while (prio[r] != l)
                r++;
            cr_assert_eq(env.id, 1000 + r);
            cr_assert_eq(env.ts_ns, 5000 + r);
            cr_assert_eq(env.attempts, r % 3);
            cr_assert_eq(env.priority, prio[r]);
            cr_assert_eq(env.flags, r & 1);
            unsigned char p[4];
            s_payload(p, r);
            cr_assert_eq(plen, 4);
            cr_assert_eq(memcmp(payload, p, 4), 0, "record %u", r);
            r++;
            got++;
        }
        cr_assert_eq(got, want_counts[l]);
        cr_assert_eq(sl__batch_validate(buf, blen, NULL), 0);
        free(buf);
    }
    s_fini_out(out);
    free(msg);
}

Test(batch_prio, single_level_batch_copies_nothing)
{
    uint8_t prio[40];
    memset(prio, 4, sizeof(prio));
    size_t len;
    char *msg = s_make(prio, 40, &len);
    sl_batch_t out[SL_PRIO_LEVELS];
    uint32_t counts[SL_PRIO_LEVELS];
    int single = -5;
    s_init_out(out);
    cr_assert_eq(sl__batch_split_prio(msg, len, out, counts, &single), 0);
    cr_assert_eq(single, 4);
    for (unsigned l = 0; l < SL_PRIO_LEVELS; l++) {
        cr_assert_eq(counts[l], l == 4 ? 40u : 0u, "level %u", l);
        cr_assert_eq(out[l].count, 0);
        cr_assert_eq(out[l].len, 0, "nothing appended at level %u", l);
    }
    s_fini_out(out);
    free(msg);

    /* An empty batch is one level too (0), with nothing to count. */
    msg = s_make(prio, 0, &len);
    s_init_out(out);
    cr_assert_eq(sl__batch_split_prio(msg, len, out, counts, &single), 0);
    cr_assert_eq(single, 0);
    for (unsigned l = 0; l < SL_PRIO_LEVELS; l++)
        cr_assert_eq(counts[l], 0);
    s_fini_out(out);
    free(msg);
}

Test(batch_prio, priority_above_seven_goes_to_seven)
{
    /* 7, 8 and 255 are all the lowest level: one level, no copy. */
    uint8_t same[] = {7, 8, 255, 200};
    size_t len;
    char *msg = s_make(same, 4, &len);
    sl_batch_t out[SL_PRIO_LEVELS];
    uint32_t counts[SL_PRIO_LEVELS];
    int single = -1;
    s_init_out(out);
    cr_assert_eq(sl__batch_split_prio(msg, len, out, counts, &single), 0);
    cr_assert_eq(single, 7);
    cr_assert_eq(counts[7], 4);
    s_fini_out(out);
    free(msg);

    /* Mixed with level 0: out[7] keeps the original priority bytes. */
    uint8_t mixed[] = {9, 0, 255};
    msg = s_make(mixed, 3, &len);
    s_init_out(out);
    cr_assert_eq(sl__batch_split_prio(msg, len, out, counts, &single), 0);
    cr_assert_eq(single, -1);
    cr_assert_eq(counts[0], 1);
    cr_assert_eq(counts[7], 2);
    cr_assert_eq(out[7].count, 2);
    size_t blen;
    char *buf = sl__batch_release(&out[7], &blen);
    sl_batch_iter_t it;
    cr_assert_eq(sl__batch_iter_init(&it, buf, blen, NULL), 0);
    sl_envelope_t env;
    const char *payload;
    size_t plen;
    cr_assert_eq(sl__batch_next(&it, &env, &payload, &plen), 1);
    cr_assert_eq(env.priority, 9);
    cr_assert_eq(env.id, 1000);
    cr_assert_eq(sl__batch_next(&it, &env, &payload, &plen), 1);
    cr_assert_eq(env.priority, 255);
    cr_assert_eq(env.id, 1002);
    cr_assert_eq(sl__batch_next(&it, &env, &payload, &plen), 0);
    free(buf);
    s_fini_out(out);
    free(msg);
}

/* Runs the splitter on an exact-size copy of the first len bytes. */
static int s_split_copy(const char *src, size_t len, sl_batch_t *out,
                        uint32_t *counts, int *single)
{
    char *m = malloc(len ? len : 1);
    cr_assert_not_null(m);
    memcpy(m, src, len);
    int rc = sl__batch_split_prio(m, len, out, counts, single);
    free(m);
    return rc;
}

Test(batch_prio, corrupt_batch_is_refused_untouched)
{
    uint8_t prio[] = {0, 1, 2, 3, 4};
    size_t len;
    char *msg = s_make(prio, 5, &len);
    sl_batch_t out[SL_PRIO_LEVELS];
    uint32_t counts[SL_PRIO_LEVELS];
    int single;
    s_init_out(out);
    /* Every truncation, including one cutting the last record. */
    for (size_t cut = 0; cut < len; cut++) {
        cr_assert_eq(s_split_copy(msg, cut, out, counts, &single), -EBADMSG,
                     "cut at %zu", cut);
        for (unsigned l = 0; l < SL_PRIO_LEVELS; l++)
            cr_assert_eq(out[l].count, 0, "cut %zu level %u", cut, l);
    }
    /* A record length running past the end. */
    char *bad = malloc(len);
    memcpy(bad, msg, len);
    bad[SL_BATCH_HDR + 24] = (char)0x7f;
    cr_assert_eq(s_split_copy(bad, len, out, counts, &single), -EBADMSG);
    /* More records announced than present, and fewer. */
    memcpy(bad, msg, len);
    bad[4] = 6;
    cr_assert_eq(s_split_copy(bad, len, out, counts, &single), -EBADMSG);
    bad[4] = 4;
    cr_assert_eq(s_split_copy(bad, len, out, counts, &single), -EBADMSG);
    /* A foreign header. */
    memcpy(bad, msg, len);
    bad[0] = 'X';
    cr_assert_eq(s_split_copy(bad, len, out, counts, &single), -EBADMSG);
    for (unsigned l = 0; l < SL_PRIO_LEVELS; l++)
        cr_assert_eq(out[l].len, 0);
    free(bad);
    s_fini_out(out);
    free(msg);
}
