/* The envelope/batch codec: exact round trips, the in-place append path,
 * and a reader that refuses every malformed or truncated message. Buffers
 * handed to the reader are allocated at their exact size so that ASan
 * catches any read past the end. */
#include <criterion/criterion.h>

#include "batch.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t s_le32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 |
           (uint32_t)u[3] << 24;
}

static void s_put32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (char)(v >> (8 * i));
}

/* An exact-size heap copy of the first len bytes of src. */
static char *s_dup(const void *src, size_t len)
{
    char *p = malloc(len ? len : 1);
    cr_assert_not_null(p);
    if (len)
        memcpy(p, src, len);
    return p;
}

/* Payload byte i of record r, so that every record's bytes differ. */
static char s_byte(size_t r, size_t i)
{
    return (char)((r * 131 + i * 7 + 1) & 0xff);
}

typedef struct s_rec {
    sl_envelope_t env;
    size_t len;
} s_rec_t;

static const s_rec_t s_recs[] = {
    {{.id = 0, .ts_ns = 0, .attempts = 0, .priority = 0, .flags = 0}, 0},
    {{.id = UINT64_MAX, .ts_ns = UINT64_MAX, .attempts = UINT32_MAX,
      .priority = 255, .flags = 255}, 1},
    {{.id = 1, .ts_ns = 1700000000123456789ull, .attempts = 3,
      .priority = 7, .flags = 1}, 100},
    {{.id = 0x0102030405060708ull, .ts_ns = 42, .attempts = 1,
      .priority = 128, .flags = 0x80}, 1024 * 1024},
    {{.id = 5, .ts_ns = 6, .attempts = 7, .priority = 8, .flags = 9}, 0},
    {{.id = 1ull << 63, .ts_ns = 1ull << 32, .attempts = 1u << 31,
      .priority = 1, .flags = 2}, 4095},
};
#define N_RECS (sizeof(s_recs) / sizeof(s_recs[0]))

Test(batch, round_trip_many_records_with_extreme_values)
{
    sl_batch_t b;
    sl__batch_init(&b);
    char *payload = malloc(1024 * 1024);
    cr_assert_not_null(payload);
    /* The table, then enough small records to force several regrowths. */
    const size_t extra = 5000;
    for (size_t r = 0; r < N_RECS + extra; r++) {
        size_t len = r < N_RECS ? s_recs[r].len : r % 300;
        sl_envelope_t env = r < N_RECS ? s_recs[r].env
                                       : (sl_envelope_t){.id = r * 3,
                                                         .ts_ns = r * 5,
                                                         .attempts = (uint32_t)r,
                                                         .priority = (uint8_t)r,
                                                         .flags = (uint8_t)(r >> 8)};
        for (size_t i = 0; i < len; i++)
            payload[i] = s_byte(r, i);
        cr_assert_eq(sl__batch_append(&b, &env, payload, len), 0);
    }
    cr_assert_eq(b.count, N_RECS + extra);

    size_t len = 0;
    char *msg = sl__batch_release(&b, &len);
    cr_assert_not_null(msg);
    cr_assert_eq(b.data, NULL, "release must leave the batch empty");
    cr_assert_eq(b.count, 0);

    uint32_t count = 0;
    cr_assert_eq(sl__batch_validate(msg, len, &count), 0);
    cr_assert_eq(count, N_RECS + extra);

    sl_batch_iter_t it;
    cr_assert_eq(sl__batch_iter_init(&it, msg, len, &count), 0);
    cr_assert_eq(count, N_RECS + extra);
    for (size_t r = 0; r < N_RECS + extra; r++) {
        sl_envelope_t env;
        const char *p;
        size_t plen;
        cr_assert_eq(sl__batch_next(&it, &env, &p, &plen), 1, "record %zu", r);
        sl_envelope_t want = r < N_RECS ? s_recs[r].env
                                        : (sl_envelope_t){.id = r * 3,
                                                          .ts_ns = r * 5,
                                                          .attempts = (uint32_t)r,
                                                          .priority = (uint8_t)r,
                                                          .flags = (uint8_t)(r >> 8)};
        size_t wlen = r < N_RECS ? s_recs[r].len : r % 300;
        cr_assert_eq(env.id, want.id, "record %zu", r);
        cr_assert_eq(env.ts_ns, want.ts_ns, "record %zu", r);
        cr_assert_eq(env.attempts, want.attempts, "record %zu", r);
        cr_assert_eq(env.priority, want.priority, "record %zu", r);
        cr_assert_eq(env.flags, want.flags, "record %zu", r);
        cr_assert_eq(plen, wlen, "record %zu", r);
        for (size_t i = 0; i < plen; i++)
            if (p[i] != s_byte(r, i))
                cr_assert_fail("record %zu payload byte %zu differs", r, i);
    }
    sl_envelope_t env;
    const char *p;
    size_t plen;
    cr_assert_eq(sl__batch_next(&it, &env, &p, &plen), 0);
    cr_assert_eq(sl__batch_next(&it, &env, &p, &plen), 0, "end is sticky");

    free(msg);
    free(payload);
    sl__batch_fini(&b);
}

Test(batch, release_gives_valid_header)
{
    sl_batch_t b;
    sl__batch_init(&b);
    size_t len = 0;
    char *msg = sl__batch_release(&b, &len);
    cr_assert_not_null(msg, "an empty batch still releases a header");
    cr_assert_eq(len, SL_BATCH_HDR);
    cr_assert_eq(msg[0], 'D');
    cr_assert_eq(msg[1], SL_BATCH_VERSION);
    cr_assert_eq(msg[2], 0);
    cr_assert_eq(msg[3], 0);
    cr_assert_eq(s_le32(msg + 4), 0);
    uint32_t count = 99;
    cr_assert_eq(sl__batch_validate(msg, len, &count), 0);
    cr_assert_eq(count, 0);
    free(msg);

    /* The batch is reusable after a release. */
    sl_envelope_t env = {.id = 9};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(sl__batch_append(&b, &env, "abc", 3), 0);
    msg = sl__batch_release(&b, &len);
    cr_assert_not_null(msg);
    cr_assert_eq(len, SL_BATCH_HDR + 3 * (SL_ENV_SIZE + 3));
    cr_assert_eq(msg[0], 'D');
    cr_assert_eq(msg[1], SL_BATCH_VERSION);
    cr_assert_eq(s_le32(msg + 4), 3);
    /* The envelope layout is part of the wire format: check one field at
     * its documented offset. */
    cr_assert_eq(s_le32(msg + SL_BATCH_HDR + 24), 3);
    free(msg);
    sl__batch_fini(&b);
}

Test(batch, reset_keeps_buffer_and_empties)
{
    sl_batch_t b;
    sl__batch_init(&b);
    sl_envelope_t env = {.id = 1};
    cr_assert_eq(sl__batch_append(&b, &env, "x", 1), 0);
    char *buf = b.data;
    sl__batch_reset(&b);
    cr_assert_eq(b.count, 0);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.data, buf);
    cr_assert_eq(sl__batch_append(&b, &env, "yz", 2), 0);
    size_t len;
    char *msg = sl__batch_release(&b, &len);
    uint32_t count;
    cr_assert_eq(sl__batch_validate(msg, len, &count), 0);
    cr_assert_eq(count, 1);
    free(msg);
    sl__batch_fini(&b);
}

Test(batch, begin_write_commit_abort)
{
    sl_batch_t b;
    sl__batch_init(&b);
    size_t off = 0;
    cr_assert_eq(sl__batch_commit(&b, &off), -EINVAL, "commit without begin");

    sl_envelope_t e1 = {.id = 11, .ts_ns = 12, .attempts = 2, .priority = 3};
    cr_assert_eq(sl__batch_begin(&b, &e1), 0);
    cr_assert_eq(sl__batch_write(&b, "hello ", 6), 0);
    cr_assert_eq(sl__batch_write(&b, "", 0), 0);
    cr_assert_eq(sl__batch_write(&b, "world", 5), 0);
    cr_assert_eq(sl__batch_commit(&b, &off), 0);
    cr_assert_eq(off, SL_BATCH_HDR + SL_ENV_SIZE);
    cr_assert_eq(memcmp(b.data + off, "hello world", 11), 0);
    cr_assert_eq(b.count, 1);
    cr_assert_eq(sl__batch_commit(&b, &off), -EINVAL, "double commit");

    /* An aborted record leaves no trace, however much it wrote. */
    size_t before = b.len;
    sl_envelope_t e2 = {.id = 22};
    cr_assert_eq(sl__batch_begin(&b, &e2), 0);
    char big[10000];
    memset(big, 'q', sizeof(big));
    cr_assert_eq(sl__batch_write(&b, big, sizeof(big)), 0);
    sl__batch_abort(&b);
    cr_assert_eq(b.len, before);
    cr_assert_eq(b.count, 1);
    cr_assert_eq(sl__batch_commit(&b, &off), -EINVAL, "commit after abort");
    sl__batch_abort(&b); /* harmless when nothing is open */
    cr_assert_eq(b.len, before);

    /* An empty payload through the two-step path. */
    sl_envelope_t e3 = {.id = 33, .priority = 255};
    cr_assert_eq(sl__batch_begin(&b, &e3), 0);
    cr_assert_eq(sl__batch_commit(&b, &off), 0);
    cr_assert_eq(off, before + SL_ENV_SIZE);

    /* A whole-record append after a commit mixes fine. */
    sl_envelope_t e4 = {.id = 44};
    cr_assert_eq(sl__batch_append(&b, &e4, "tail", 4), 0);

    size_t len;
    char *msg = sl__batch_release(&b, &len);
    cr_assert_not_null(msg);
    sl_batch_iter_t it;
    uint32_t count;
    cr_assert_eq(sl__batch_iter_init(&it, msg, len, &count), 0);
    cr_assert_eq(count, 3);
    sl_envelope_t env;
    const char *p;
    size_t plen;
    cr_assert_eq(sl__batch_next(&it, &env, &p, &plen), 1);
    cr_assert_eq(env.id, 11);
    cr_assert_eq(env.ts_ns, 12);
    cr_assert_eq(env.attempts, 2);
    cr_assert_eq(env.priority, 3);
    cr_assert_eq(plen, 11);
    cr_assert_eq(memcmp(p, "hello world", 11), 0);
    cr_assert_eq(sl__batch_next(&it, &env, &p, &plen), 1);
    cr_assert_eq(env.id, 33);
    cr_assert_eq(env.priority, 255);
    cr_assert_eq(plen, 0);
    cr_assert_eq(sl__batch_next(&it, &env, &p, &plen), 1);
    cr_assert_eq(env.id, 44);
    cr_assert_eq(plen, 4);
    cr_assert_eq(memcmp(p, "tail", 4), 0);
    cr_assert_eq(sl__batch_next(&it, &env, &p, &plen), 0);
    free(msg);
    sl__batch_fini(&b);
}

/* A valid batch of three records, as an exact-size heap buffer. */
static char *s_three(size_t *len)
{
    sl_batch_t b;
    sl__batch_init(&b);
    sl_envelope_t env = {.id = 1, .ts_ns = 2, .attempts = 3, .priority = 4};
    cr_assert_eq(sl__batch_append(&b, &env, "\x81\xa1" "a\x01", 4), 0);
    env.id = 2;
    cr_assert_eq(sl__batch_append(&b, &env, "", 0), 0);
    env.id = 3;
    cr_assert_eq(sl__batch_append(&b, &env, "\x80", 1), 0);
    char *msg = sl__batch_release(&b, len);
    cr_assert_not_null(msg);
    cr_assert_eq(*len, SL_BATCH_HDR + 3 * SL_ENV_SIZE + 5);
    char *exact = s_dup(msg, *len);
    free(msg);
    sl__batch_fini(&b);
    return exact;
}

Test(batch, rejects_short_header)
{
    size_t len;
    char *msg = s_three(&len);
    for (size_t n = 0; n < SL_BATCH_HDR; n++) {
        char *cut = s_dup(msg, n);
        sl_batch_iter_t it;
        uint32_t count = 77;
        cr_assert_eq(sl__batch_iter_init(&it, cut, n, &count), -EBADMSG,
                     "header of %zu bytes", n);
        cr_assert_eq(sl__batch_validate(cut, n, &count), -EBADMSG,
                     "header of %zu bytes", n);
        free(cut);
    }
    free(msg);
}

Test(batch, rejects_wrong_magic_and_version)
{
    size_t len;
    char *msg = s_three(&len);
    uint32_t count;
    cr_assert_eq(sl__batch_validate(msg, len, &count), 0);

    msg[0] = 'H';
    cr_assert_eq(sl__batch_validate(msg, len, &count), -EBADMSG);
    msg[0] = 0;
    cr_assert_eq(sl__batch_validate(msg, len, &count), -EBADMSG);
    msg[0] = 'D';
    msg[1] = SL_BATCH_VERSION + 1;
    cr_assert_eq(sl__batch_validate(msg, len, &count), -EBADMSG);
    msg[1] = 0;
    cr_assert_eq(sl__batch_validate(msg, len, &count), -EBADMSG);
    msg[1] = SL_BATCH_VERSION;
    cr_assert_eq(sl__batch_validate(msg, len, &count), 0);
    free(msg);
}

Test(batch, rejects_length_past_end)
{
    size_t len;
    char *msg = s_three(&len);
    /* The last record's length field: one more than the bytes left. */
    size_t last = SL_BATCH_HDR + 2 * SL_ENV_SIZE + 4;
    cr_assert_eq(s_le32(msg + last + 24), 1);
    s_put32(msg + last + 24, 2);
    cr_assert_eq(sl__batch_validate(msg, len, NULL), -EBADMSG);
    s_put32(msg + last + 24, UINT32_MAX);
    cr_assert_eq(sl__batch_validate(msg, len, NULL), -EBADMSG);
    /* The first record claims everything: the others vanish into it. */
    s_put32(msg + last + 24, 1);
    size_t rest = len - SL_BATCH_HDR - SL_ENV_SIZE;
    s_put32(msg + SL_BATCH_HDR + 24, (uint32_t)rest);
    cr_assert_eq(sl__batch_validate(msg, len, NULL), -EBADMSG,
                 "count 3 but only one record's worth");
    s_put32(msg + SL_BATCH_HDR + 24, (uint32_t)rest + 1);
    cr_assert_eq(sl__batch_validate(msg, len, NULL), -EBADMSG);

    /* The iterator stops at the bad record and keeps saying so. */
    s_put32(msg + SL_BATCH_HDR + 24, 4);
    s_put32(msg + last + 24, 1000);
    sl_batch_iter_t it;
    cr_assert_eq(sl__batch_iter_init(&it, msg, len, NULL), 0);
    sl_envelope_t env;
    const char *p;
    size_t plen;
    cr_assert_eq(sl__batch_next(&it, &env, &p, &plen), 1);
    cr_assert_eq(sl__batch_next(&it, &env, &p, &plen), 1);
    cr_assert_eq(sl__batch_next(&it, &env, &p, &plen), -EBADMSG);
    cr_assert_eq(sl__batch_next(&it, &env, &p, &plen), -EBADMSG);
    free(msg);
}

Test(batch, rejects_count_disagreeing_with_bytes)
{
    size_t len;
    char *msg = s_three(&len);
    uint32_t count = 0;
    cr_assert_eq(sl__batch_validate(msg, len, &count), 0);
    cr_assert_eq(count, 3);

    s_put32(msg + 4, 4);
    cr_assert_eq(sl__batch_validate(msg, len, &count), -EBADMSG,
                 "count larger than the records present");
    s_put32(msg + 4, UINT32_MAX);
    cr_assert_eq(sl__batch_validate(msg, len, &count), -EBADMSG);
    s_put32(msg + 4, 2);
    cr_assert_eq(sl__batch_validate(msg, len, &count), -EBADMSG,
                 "count smaller: trailing bytes");
    s_put32(msg + 4, 0);
    cr_assert_eq(sl__batch_validate(msg, len, &count), -EBADMSG,
                 "count 0 with records following");
    free(msg);

    /* Trailing garbage after a correct count. */
    msg = s_three(&len);
    char *longer = malloc(len + 1);
    cr_assert_not_null(longer);
    memcpy(longer, msg, len);
    longer[len] = 0;
    cr_assert_eq(sl__batch_validate(longer, len + 1, &count), -EBADMSG);
    cr_assert_eq(sl__batch_validate(longer, len, &count), 0);
    free(longer);
    free(msg);
}

Test(batch, rejects_every_truncation)
{
    size_t len;
    char *msg = s_three(&len);
    for (size_t n = 0; n < len; n++) {
        char *cut = s_dup(msg, n);
        uint32_t count = 0;
        cr_assert_eq(sl__batch_validate(cut, n, &count), -EBADMSG,
                     "truncated to %zu of %zu bytes", n, len);

        /* Walking it by hand must end in -EBADMSG too, after at most the
         * records that are wholly present. */
        sl_batch_iter_t it;
        int rc = sl__batch_iter_init(&it, cut, n, &count);
        if (rc == 0) {
            sl_envelope_t env;
            const char *p;
            size_t plen;
            int steps = 0;
            while ((rc = sl__batch_next(&it, &env, &p, &plen)) == 1) {
                cr_assert(p >= cut && p + plen <= cut + n,
                          "payload outside the message at length %zu", n);
                cr_assert_lt(++steps, 3, "length %zu", n);
            }
        }
        cr_assert_eq(rc, -EBADMSG, "truncated to %zu of %zu bytes", n, len);
        free(cut);
    }
    uint32_t count = 0;
    cr_assert_eq(sl__batch_validate(msg, len, &count), 0);
    cr_assert_eq(count, 3);
    free(msg);
}
