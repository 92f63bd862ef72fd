/* Trace files (framework/src/trace.c): what is written reads back byte for
 * byte, and a damaged file gives an exact error and never a crash. */
#include "mpscan.h"
#include "testutil.h"
#include "trace.h"

#include <criterion/criterion.h>
#include <msgpack.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

TestSuite(trace, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

static char s_err[1024];

/* A path in the test's folder; a few stay valid at once. */
static const char *s_file(const char *name)
{
    static char paths[4][4096];
    static unsigned next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof(paths[0]), "%s/%s", sl_test_dir(), name);
    return p;
}

static uint64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* {"i": i, "pad": <n bytes>} */
static void s_rec(msgpack_sbuffer *sb, uint64_t i, size_t pad)
{
    msgpack_packer pk;
    sb->size = 0;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "i", 1);
    msgpack_pack_uint64(&pk, i);
    msgpack_pack_str_with_body(&pk, "pad", 3);
    char *p = malloc(pad ? pad : 1);
    cr_assert(p);
    for (size_t k = 0; k < pad; k++)
        p[k] = (char)('a' + (i + k) % 26);
    msgpack_pack_str_with_body(&pk, p, pad);
    free(p);
}

/* A trace with n records {"i": k, "pad": 3 letters} at offsets k * 1000. */
static void s_make(const char *path, unsigned n)
{
    sl_trace_writer_t *w = sl_trace_writer_new(path, "test", s_err,
                                               sizeof(s_err));
    cr_assert(w, "%s", s_err);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (unsigned k = 0; k < n; k++) {
        s_rec(&sb, k, 3);
        cr_assert_eq(sl_trace_write(w, k * 1000ull, sb.data, sb.size), 0);
    }
    msgpack_sbuffer_destroy(&sb);
    cr_assert_eq(sl_trace_writer_close(&w), 0);
    cr_assert_null(w);
}

/* The bytes of the header the writer puts first, measured. */
static long s_header_len(void)
{
    sl_trace_writer_t *w = sl_trace_writer_new(s_file("empty.trace"), "test",
                                               s_err, sizeof(s_err));
    cr_assert(w, "%s", s_err);
    cr_assert_eq(sl_trace_writer_close(&w), 0);
    struct stat st;
    cr_assert_eq(stat(s_file("empty.trace"), &st), 0);
    return (long)st.st_size;
}

static sl_trace_reader_t *s_open(const char *path)
{
    sl_trace_reader_t *r = sl_trace_reader_open(path, s_err, sizeof(s_err));
    cr_assert(r, "%s", s_err);
    return r;
}

/* Opening must fail with exactly want (after "PATH: "). */
static void s_open_fails(const char *path, const char *want)
{
    s_err[0] = '\0';
    sl_trace_reader_t *r = sl_trace_reader_open(path, s_err, sizeof(s_err));
    cr_assert_null(r);
    char full[2048];
    snprintf(full, sizeof(full), "%s: %s", path, want);
    cr_assert_str_eq(s_err, full);
}

/* Writes header bytes of a real trace followed by tail. */
static void s_write_raw(const char *path, const void *tail, size_t len)
{
    s_make(path, 0);
    FILE *f = fopen(path, "ab");
    cr_assert(f);
    cr_assert_eq(fwrite(tail, 1, len, f), len);
    fclose(f);
}

/* Reads entries until the end or an error; returns the last code and how
 * many entries came before it. */
static int s_read_all(sl_trace_reader_t *r, unsigned *n)
{
    uint64_t off;
    const void *rec;
    size_t len;
    int rc;
    *n = 0;
    while ((rc = sl_trace_next(r, &off, &rec, &len)) == 0)
        (*n)++;
    return rc;
}

/* The reading fails at entry `entry` (1-based) after entry - 1 good ones,
 * with exactly "PATH: entry N at byte B: " + why. */
static void s_read_fails(const char *path, unsigned entry, long byte,
                         const char *why)
{
    sl_trace_reader_t *r = s_open(path);
    unsigned n;
    cr_assert_eq(s_read_all(r, &n), -EBADMSG);
    cr_assert_eq(n, entry - 1);
    char want[2048];
    snprintf(want, sizeof(want), "%s: entry %u at byte %ld: %s", path, entry,
             byte, why);
    cr_assert_str_eq(sl_trace_reader_error(r), want);
    /* Nothing can be read after an error. */
    uint64_t off;
    const void *rec;
    size_t len;
    cr_assert_eq(sl_trace_next(r, &off, &rec, &len), -EBADMSG);
    sl_trace_reader_close(&r);
    cr_assert_null(r);
}

Test(trace, round_trip_is_byte_exact)
{
    const char *path = s_file("rt.trace");
    sl_trace_writer_t *w = sl_trace_writer_new(path, "link a>b of t.yaml",
                                               s_err, sizeof(s_err));
    cr_assert(w, "%s", s_err);
    /* Sizes around the writer's and reader's buffers, and one record of
     * 3 MiB that neither buffer holds at first. */
    static const size_t pads[] = {0, 1, 100, 70000, 3u << 20, 5, 1u << 20};
    const unsigned n = 70;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (unsigned i = 0; i < n; i++) {
        s_rec(&sb, i, pads[i % 7]);
        /* Offsets repeat (equal is allowed) and jump over 2^32. */
        uint64_t off = (uint64_t)(i / 2) * 3000000000ull;
        cr_assert_eq(sl_trace_write(w, off, sb.data, sb.size), 0);
    }
    cr_assert_eq(sl_trace_written(w), n);
    cr_assert_eq(sl_trace_writer_close(&w), 0);

    sl_trace_reader_t *r = s_open(path);
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < n; i++) {
            uint64_t off;
            const void *rec;
            size_t len;
            cr_assert_eq(sl_trace_next(r, &off, &rec, &len), 0,
                         "entry %u: %s", i, sl_trace_reader_error(r));
            s_rec(&sb, i, pads[i % 7]);
            cr_assert_eq(off, (uint64_t)(i / 2) * 3000000000ull);
            cr_assert_eq(len, sb.size, "entry %u", i);
            cr_assert_eq(memcmp(rec, sb.data, len), 0, "entry %u", i);
        }
        uint64_t off;
        const void *rec;
        size_t len;
        cr_assert_eq(sl_trace_next(r, &off, &rec, &len), 1);
        cr_assert_eq(sl_trace_next(r, &off, &rec, &len), 1);
        cr_assert_eq(sl_trace_rewind(r), 0);
    }
    sl_trace_reader_close(&r);
    msgpack_sbuffer_destroy(&sb);
}

Test(trace, header_fields)
{
    const char *path = s_file("h.trace");
    uint64_t before = s_now_ns();
    sl_trace_writer_t *w = sl_trace_writer_new(path, "synth t.yaml seed 7",
                                               s_err, sizeof(s_err));
    cr_assert(w, "%s", s_err);
    uint64_t after = s_now_ns();
    cr_assert_eq(sl_trace_writer_close(&w), 0);
    sl_trace_reader_t *r = s_open(path);
    const sl_trace_header_t *h = sl_trace_reader_header(r);
    cr_assert_eq(h->version, 1);
    cr_assert_str_eq(h->origin, "synth t.yaml seed 7");
    cr_assert(h->created_ns >= before && h->created_ns <= after,
              "created_ns %llu not in [%llu, %llu]",
              (unsigned long long)h->created_ns,
              (unsigned long long)before, (unsigned long long)after);
    unsigned n;
    cr_assert_eq(s_read_all(r, &n), 1);
    cr_assert_eq(n, 0);
    sl_trace_reader_close(&r);

    /* Keys a later version may add are skipped, nested values too; a
     * missing origin reads as "". */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "future", 6);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_map(&pk, 0);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "sluice_trace", 12);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_str_with_body(&pk, "created_ns", 10);
    msgpack_pack_uint64(&pk, 42);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint8(&pk, 7);
    msgpack_pack_map(&pk, 0);
    path = s_file("h2.trace");
    FILE *f = fopen(path, "wb");
    fwrite(sb.data, 1, sb.size, f);
    fclose(f);
    r = s_open(path);
    h = sl_trace_reader_header(r);
    cr_assert_str_eq(h->origin, "");
    cr_assert_eq(h->created_ns, 42);
    uint64_t off;
    const void *rec;
    size_t len;
    cr_assert_eq(sl_trace_next(r, &off, &rec, &len), 0);
    cr_assert_eq(off, 7);
    cr_assert_eq(len, 1);
    cr_assert_eq(*(const unsigned char *)rec, 0x80);
    sl_trace_reader_close(&r);
    msgpack_sbuffer_destroy(&sb);
}

Test(trace, writer_refuses_bad_entries)
{
    sl_trace_writer_t *w = sl_trace_writer_new(s_file("w.trace"), NULL,
                                               s_err, sizeof(s_err));
    cr_assert(w, "%s", s_err);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_rec(&sb, 1, 4);
    cr_assert_eq(sl_trace_write(w, 10, sb.data, sb.size), 0);
    cr_assert_eq(sl_trace_write(w, 10, sb.data, sb.size), 0);
    cr_assert_eq(sl_trace_write(w, 9, sb.data, sb.size), -EINVAL);
    /* Not one map: an array, a map cut short, a map with bytes after it. */
    static const unsigned char arr[] = {0x91, 0x01};
    cr_assert_eq(sl_trace_write(w, 11, arr, sizeof(arr)), -EBADMSG);
    cr_assert_eq(sl_trace_write(w, 11, sb.data, sb.size - 1), -EBADMSG);
    char *more = malloc(sb.size + 1);
    memcpy(more, sb.data, sb.size);
    more[sb.size] = 0x01;
    cr_assert_eq(sl_trace_write(w, 11, more, sb.size + 1), -EBADMSG);
    free(more);
    cr_assert_eq(sl_trace_write(w, 11, sb.data, 0), -EBADMSG);
    /* 32 nested maps pass (what a stage can decode); 33 do not. */
    unsigned char deep[128];
    for (int d = 32; d <= 33; d++) {
        size_t k = 0;
        for (int i = 0; i < d - 1; i++) {
            deep[k++] = 0x81;
            deep[k++] = 0xa1;
            deep[k++] = 'k';
        }
        deep[k++] = 0x80;
        cr_assert_eq(sl_trace_write(w, 11, deep, k), d == 32 ? 0 : -EBADMSG,
                     "depth %d", d);
    }
    cr_assert_eq(sl_trace_written(w), 3);
    cr_assert_eq(sl_trace_writer_close(&w), 0);
    sl_trace_reader_t *r = s_open(s_file("w.trace"));
    unsigned n;
    cr_assert_eq(s_read_all(r, &n), 1);
    cr_assert_eq(n, 3);
    sl_trace_reader_close(&r);
    msgpack_sbuffer_destroy(&sb);

    cr_assert_null(sl_trace_writer_new("/nonexistent/dir/x.trace", "", s_err,
                                       sizeof(s_err)));
    cr_assert_str_eq(s_err, "/nonexistent/dir/x.trace: cannot create: No "
                            "such file or directory");
}

Test(trace, writer_reports_a_full_disk)
{
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no /dev/full");
    sl_trace_writer_t *w = sl_trace_writer_new("/dev/full", "", s_err,
                                               sizeof(s_err));
    cr_assert_null(w);
    cr_assert_str_eq(s_err, "/dev/full: cannot write: No space left on "
                            "device");
}

Test(trace, torn_last_entry)
{
    const char *path = s_file("t.trace");
    s_make(path, 3);
    long hdr = s_header_len();
    /* Each entry: 0x92, offset (0 / cd 03e8 / cd 07d0), record
     * {"i": k, "pad": "xyz"} = 1 + 2 + 1 + 4 + 4 = 12 bytes. */
    long e1 = hdr, e2 = e1 + 1 + 1 + 12, e3 = e2 + 1 + 3 + 12;
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, e3 + 1 + 3 + 12);
    cr_assert_eq(truncate(path, st.st_size - 5), 0);
    s_read_fails(path, 3, e3, "torn entry: the file ends 11 bytes into it");
    /* Cut right after the array header. */
    cr_assert_eq(truncate(path, e3 + 1), 0);
    s_read_fails(path, 3, e3, "torn entry: the file ends 1 byte into it");
    /* Cut at an entry boundary: a clean, shorter trace. */
    cr_assert_eq(truncate(path, e3), 0);
    sl_trace_reader_t *r = s_open(path);
    unsigned n;
    cr_assert_eq(s_read_all(r, &n), 1);
    cr_assert_eq(n, 2);
    sl_trace_reader_close(&r);
}

Test(trace, not_a_trace)
{
    const char *path = s_file("bad.trace");
    cr_assert_eq(sl_test_write_file(path, ""), 0);
    s_open_fails(path, "not a sluice trace (the file is empty)");
    cr_assert_eq(sl_test_write_file(path, "{\"sluice_trace\": 1}\n"), 0);
    s_open_fails(path, "not a sluice trace (it does not start with a header "
                       "map)");
    /* {"sluice": 1} */
    cr_assert_eq(sl_test_write_file(path, "\x81\xa6sluice\x01"), 0);
    s_open_fails(path, "not a sluice trace (no 'sluice_trace' key in the "
                       "header)");
    /* {"sluice_trace": 2} */
    cr_assert_eq(sl_test_write_file(path, "\x81\xacsluice_trace\x02"), 0);
    s_open_fails(path, "unsupported trace version 2 (this sluice reads "
                       "version 1)");
    cr_assert_eq(sl_test_write_file(path, "\x81\xacsluice_trace\xa1x"), 0);
    s_open_fails(path, "bad trace header: 'sluice_trace' is a str, not a "
                       "version number");
    cr_assert_eq(sl_test_write_file(path, "\x81\xacsluice_trace"), 0);
    s_open_fails(path, "not a sluice trace (the header is cut short)");
    /* A header map claiming 2^32 - 1 pairs, with 3 bytes after it. */
    cr_assert_eq(sl_test_write_file(path, "\xdf\xff\xff\xff\xff\x01\x02\x03"),
                 0);
    s_open_fails(path, "not a sluice trace (the header is cut short)");
    s_open_fails(s_file("missing.trace"), "cannot open: No such file or "
                                          "directory");
    s_open_fails(sl_test_dir(), "not a regular file");
}

Test(trace, damaged_entries_give_exact_errors)
{
    const char *path = s_file("d.trace");
    long hdr = s_header_len();
    /* A good entry [5, {}] then the damage. */
    static const struct {
        const char *bytes;
        size_t len;
        const char *why;
    } cases[] = {
        {"\x92\x06\x05", 3, "the record is an int, not a map"},
        {"\x92\x06\x91\x00", 4, "the record is an array, not a map"},
        {"\x92\x06\xa1x", 4, "the record is a str, not a map"},
        {"\x93\x00\x80\x80", 4, "expected an [offset, record] array, found "
                                "an array of 3 items"},
        {"\x80", 1, "expected an [offset, record] array, found a map"},
        {"\x05", 1, "expected an [offset, record] array, found an int"},
        {"\xc1", 1, "invalid msgpack byte 0xc1"},
        {"\x92\xc1\x80", 3, "invalid msgpack byte 0xc1"},
        {"\x92\xa1x\x80", 4, "the offset is a str, not an unsigned integer"},
        {"\x92\xff\x80", 3, "the offset is a negative int, not an unsigned "
                            "integer"},
        {"\x92\x04\x80", 3, "offset 4 ns is below the previous one, 5"},
        {"\x92\x06\x81\xc1\x00", 5, "invalid msgpack in the record (byte "
                                    "%ld)"},
        /* A map header claiming 2^32 - 1 pairs: read as far as the bytes
         * go, then reported torn; nothing is allocated for the claim. */
        {"\x92\x06\xdf\xff\xff\xff\xff\x01\x02\x03\x04", 11,
         "torn entry: the file ends 11 bytes into it"},
        /* A string claiming 4 GiB. */
        {"\x92\x06\x81\xdb\xff\xff\xff\xff", 8,
         "torn entry: the file ends 8 bytes into it"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char buf[64] = "\x92\x05\x80";
        memcpy(buf + 3, cases[c].bytes, cases[c].len);
        s_write_raw(path, buf, 3 + cases[c].len);
        char why[256];
        snprintf(why, sizeof(why), cases[c].why, hdr + 3 + 3);
        s_read_fails(path, 2, hdr + 3, why);
    }
    /* Nesting: {0: [[...[{}]...]]} with d containers in all; 32 read
     * (and msgpack-c unpacks them), 33 are refused. */
    for (int d = 32; d <= 33; d++) {
        unsigned char buf[64];
        size_t k = 0;
        buf[k++] = 0x92;
        buf[k++] = 0x00;
        buf[k++] = 0x81;
        buf[k++] = 0x00;
        for (int i = 0; i < d - 2; i++)
            buf[k++] = 0x91;
        buf[k++] = 0x80;
        s_write_raw(path, buf, k);
        if (d == 33) {
            s_read_fails(path, 1, hdr, "the record nests deeper than 32 "
                                       "levels");
            continue;
        }
        sl_trace_reader_t *r = s_open(path);
        uint64_t off;
        const void *rec;
        size_t len;
        cr_assert_eq(sl_trace_next(r, &off, &rec, &len), 0, "%s",
                     sl_trace_reader_error(r));
        msgpack_zone zone;
        msgpack_zone_init(&zone, 1024);
        msgpack_object obj;
        size_t pos = 0;
        cr_assert_eq(msgpack_unpack(rec, len, &pos, &zone, &obj),
                     MSGPACK_UNPACK_SUCCESS);
        cr_assert_eq(pos, len);
        msgpack_zone_destroy(&zone);
        sl_trace_reader_close(&r);
    }
}

/* Every byte of a valid trace flipped, and the file cut at every length:
 * the reader returns entries, the end, or an error naming the file, and
 * never reads out of bounds (run under ASan). */
Test(trace, garbage_never_crashes)
{
    const char *path = s_file("g.trace");
    s_make(path, 6);
    size_t len;
    char *good = sl_test_read_file(path, &len);
    cr_assert(good);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    char *bad = malloc(len);
    for (int round = 0; round < 800; round++) {
        memcpy(bad, good, len);
        size_t cut = len;
        if (round < (int)len) {
            cut = (size_t)round;
        } else {
            int flips = 1 + (int)(sl_test_rand(&seed) % 4);
            for (int k = 0; k < flips; k++)
                bad[sl_test_rand(&seed) % len] =
                    (char)sl_test_rand(&seed);
        }
        FILE *f = fopen(path, "wb");
        fwrite(bad, 1, cut, f);
        fclose(f);
        s_err[0] = '\0';
        sl_trace_reader_t *r = sl_trace_reader_open(path, s_err,
                                                    sizeof(s_err));
        if (!r) {
            cr_assert(!strncmp(s_err, path, strlen(path)), "%s", s_err);
            continue;
        }
        unsigned n;
        int rc = s_read_all(r, &n);
        cr_assert(rc == 1 || rc == -EBADMSG, "rc %d", rc);
        if (rc < 0)
            cr_assert(!strncmp(sl_trace_reader_error(r), path, strlen(path)));
        sl_trace_reader_close(&r);
    }
    free(bad);
    free(good);
}

Test(trace, rewind_starts_over_and_repeats_an_error)
{
    const char *path = s_file("rw.trace");
    s_make(path, 4);
    sl_trace_reader_t *r = s_open(path);
    uint64_t off;
    const void *rec;
    size_t len;
    cr_assert_eq(sl_trace_next(r, &off, &rec, &len), 0);
    cr_assert_eq(sl_trace_next(r, &off, &rec, &len), 0);
    cr_assert_eq(off, 1000);
    cr_assert_eq(sl_trace_rewind(r), 0);
    unsigned n;
    cr_assert_eq(s_read_all(r, &n), 1);
    cr_assert_eq(n, 4);
    sl_trace_reader_close(&r);

    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size - 1), 0);
    r = s_open(path);
    for (int pass = 0; pass < 2; pass++) {
        cr_assert_eq(s_read_all(r, &n), -EBADMSG);
        cr_assert_eq(n, 3);
        cr_assert(strstr(sl_trace_reader_error(r), ": entry 4 at byte "));
        cr_assert_eq(sl_trace_rewind(r), 0);
        cr_assert_null(sl_trace_reader_error(r));
    }
    sl_trace_reader_close(&r);
}

Test(trace, scanner_kinds_and_bounds)
{
    /* float32 1.5, int16 -2, uint64 max, ext8 of 2 bytes */
    static const unsigned char f32[] = {0xca, 0x3f, 0xc0, 0x00, 0x00};
    static const unsigned char i16[] = {0xd1, 0xff, 0xfe};
    static const unsigned char u64[] = {0xcf, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff};
    static const unsigned char ext[] = {0xc7, 0x02, 0x05, 0xaa, 0xbb};
    sl_mp_head_t h;
    cr_assert_eq(sl__mpscan_head(f32, sizeof(f32), &h), 0);
    cr_assert_eq(h.kind, SL_MP_FLOAT32);
    cr_assert_float_eq(h.f, 1.5, 1e-9);
    cr_assert_eq(sl__mpscan_head(i16, sizeof(i16), &h), 0);
    cr_assert(h.kind == SL_MP_INT && h.neg && h.i == -2);
    cr_assert_eq(sl__mpscan_head(u64, sizeof(u64), &h), 0);
    cr_assert(h.kind == SL_MP_INT && !h.neg && h.u == UINT64_MAX);
    cr_assert_eq(sl__mpscan_head(u64, 5, &h), -EAGAIN);
    size_t used;
    cr_assert_eq(sl__mpscan_object(ext, sizeof(ext), 32, &used), 0);
    cr_assert_eq(used, sizeof(ext));
    cr_assert_eq(sl__mpscan_object(ext, 4, 32, &used), -EAGAIN);
    cr_assert_str_eq(sl__mpscan_kind_name(SL_MP_EXT), "ext");
}
