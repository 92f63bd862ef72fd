/* file_source positions: a run resumed from the position of an earlier one
 * reads every record exactly once, FILE:LINE stays right, and a position
 * that does not fit the file (replaced, truncated, corrupt, foreign) makes
 * the file be read again with a warning. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(file_source_resume, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

#define BIG 100000

/* A few buffers in turn, so that two paths can be arguments of one call. */
static const char *s_path(const char *name)
{
    static char bufs[4][4096];
    static unsigned next;
    char *buf = bufs[next++ % 4];
    snprintf(buf, sizeof(bufs[0]), "%s/%s", sl_test_dir(), name);
    return buf;
}

static void s_write_bin(const char *name, const void *data, size_t len)
{
    FILE *f = fopen(s_path(name), "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void s_write(const char *name, const char *text)
{
    s_write_bin(name, text, strlen(text));
}

/* Rewrites a file in place: same inode, new bytes. */
static void s_rewrite(const char *name, const char *text, int append)
{
    int fd = open(s_path(name), O_WRONLY | (append ? O_APPEND : O_TRUNC));
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    cr_assert_eq(close(fd), 0);
}

static unsigned long long s_ino(const char *name)
{
    struct stat sb;
    cr_assert_eq(stat(s_path(name), &sb), 0);
    return (unsigned long long)sb.st_ino;
}

/* Appends outputs [from, count) to *acc, one per line. */
static void s_append_outputs(const sl_harness_t *h, char **acc)
{
    size_t total = *acc ? strlen(*acc) : 0, len = total + 1;
    for (size_t i = 0; i < sl_harness_count(h); i++)
        len += strlen(sl_harness_output(h, i)) + 1;
    char *s = realloc(*acc, len), *w = s + total;
    cr_assert_not_null(s);
    *w = '\0';
    for (size_t i = 0; i < sl_harness_count(h); i++)
        w += sprintf(w, "%s\n", sl_harness_output(h, i));
    *acc = s;
}

/* ---- stderr, where warnings go ------------------------------------------ */

static int s_saved_fd = -1;

static void s_capture(void)
{
    fflush(stderr);
    s_saved_fd = dup(STDERR_FILENO);
    cr_assert_geq(s_saved_fd, 0);
    int fd = open(s_path("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_geq(dup2(fd, STDERR_FILENO), 0);
    close(fd);
}

/* What was logged since s_capture(); the caller frees. */
static char *s_captured(void)
{
    fflush(stderr);
    cr_assert_geq(dup2(s_saved_fd, STDERR_FILENO), 0);
    close(s_saved_fd);
    s_saved_fd = -1;
    char *text = sl_test_read_file(s_path("stderr.txt"), NULL);
    cr_assert_not_null(text);
    return text;
}

/* ---- harness helpers ------------------------------------------------------ */

static sl_harness_t *s_new(const char *yaml, const void *pos, size_t len)
{
    char err[1024];
    sl_harness_t *h = sl_harness_new_resume("file_source", yaml, sl_test_dir(),
                                            pos, len, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
    return h;
}

/* A copy of the harness's newest position; *len 0 and NULL if none. */
static void *s_take_position(const sl_harness_t *h, size_t *len)
{
    const void *pos = sl_harness_position(h, len);
    if (!pos)
        return NULL;
    void *copy = malloc(*len ? *len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, pos, *len);
    return copy;
}

typedef struct run {
    char *out;     /* outputs, one per line */
    size_t errors; /* input errors */
    uint64_t read;
    void *pos; /* position at the end */
    size_t pos_len;
    char *last_error;
} run_t;

static void s_run_free(run_t *r)
{
    free(r->out);
    free(r->pos);
    free(r->last_error);
    memset(r, 0, sizeof(*r));
}

/* Resumes from pos (NULL: a fresh start) and pulls with budget at most
 * calls times (BIG: to the end, which it asserts). */
static void s_pull(const char *yaml, const void *pos, size_t len,
                   size_t budget, size_t calls, run_t *r)
{
    sl_harness_t *h = s_new(yaml, pos, len);
    int rc = sl_harness_pull_all(h, budget, calls);
    if (calls == BIG)
        cr_assert_eq(rc, 0, "%s: pull: %s", yaml, sl_harness_last_error(h));
    else
        cr_assert(rc == 0 || rc == -ETIMEDOUT, "%s: pull: %d", yaml, rc);
    memset(r, 0, sizeof(*r));
    s_append_outputs(h, &r->out);
    r->errors = sl_harness_errors(h);
    r->read = sl_harness_read(h);
    r->pos = s_take_position(h, &r->pos_len);
    r->last_error = strdup(sl_harness_last_error(h));
    sl_harness_destroy(&h);
}

/* For every split (budget b, k pulls), a first run plus a run resumed from
 * its position give the full output exactly once, the same input errors
 * and nothing logged. */
static void s_every_split(const char *yaml)
{
    run_t full;
    s_pull(yaml, NULL, 0, 64, BIG, &full);
    size_t n = 0;
    for (const char *p = full.out; *p; p++)
        n += *p == '\n';
    cr_assert_gt(n, 2, "%s: too small a test", yaml);
    for (size_t b = 1; b <= 3; b++) {
        for (size_t k = 0; k <= n / b + 2; k++) {
            run_t first, rest;
            s_pull(yaml, NULL, 0, b, k, &first);
            cr_assert(k == 0 || first.pos, "%s: no position after %zu pulls",
                      yaml, k);
            s_capture();
            s_pull(yaml, first.pos, first.pos_len, 64, BIG, &rest);
            char *log = s_captured();
            cr_expect_str_eq(log, "", "%s b=%zu k=%zu logged: %s", yaml, b, k,
                             log);
            free(log);
            char *both = NULL;
            size_t blen = strlen(first.out) + strlen(rest.out) + 1;
            both = malloc(blen);
            snprintf(both, blen, "%s%s", first.out, rest.out);
            cr_assert_str_eq(both, full.out,
                             "%s b=%zu k=%zu\nfirst:\n%s\nrest:\n%s", yaml,
                             b, k, first.out, rest.out);
            cr_assert_eq(first.errors + rest.errors, full.errors,
                         "%s b=%zu k=%zu errors %zu + %zu", yaml, b, k,
                         first.errors, rest.errors);
            cr_assert_eq(first.read + rest.read, full.read);
            free(both);
            s_run_free(&first);
            s_run_free(&rest);
        }
    }
    s_run_free(&full);
}

/* One new harness per pull of budget 1, each resuming from the last:
 * still the full output once. */
static void s_chained(const char *yaml)
{
    run_t full;
    s_pull(yaml, NULL, 0, 64, BIG, &full);
    char *acc = strdup("");
    void *pos = NULL;
    size_t len = 0, errors = 0;
    for (int i = 0; i < 100; i++) {
        run_t r;
        s_pull(yaml, pos, len, 1, 1, &r);
        size_t alen = strlen(acc) + strlen(r.out) + 1;
        acc = realloc(acc, alen);
        strcat(acc, r.out);
        errors += r.errors;
        free(pos);
        pos = r.pos;
        len = r.pos_len;
        r.pos = NULL;
        int done = r.out[0] == '\0' && r.errors == 0;
        s_run_free(&r);
        if (done)
            break;
    }
    cr_assert_str_eq(acc, full.out, "%s\nchained:\n%s", yaml, acc);
    cr_assert_eq(errors, full.errors);
    free(acc);
    free(pos);
    s_run_free(&full);
}

/* ---- every format, every split -------------------------------------------- */

static const char s_lines[] = "alpha\r\nbeta\n\n  spaced\n"
                              "this line is too long\nok\nlast";
static const char s_jsonl[] = "{\"a\":1}\n\n{\"a\":2}\nnot json\n[1]\n"
                              "{\"a\":3,\"b\":{\"c\":[1,2]}}\n{\"a\":4}";
static const char s_csv[] = "\n name , age\n\"Ann\",30\n\nbob,\"multi\nline\"\n"
                            "bad\n\"x,y\",5\r\nlast,1";

static void s_write_msgpack(const char *name, int truncate_last)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < 5; i++) {
        if (i == 2) {
            msgpack_pack_array(&pk, 1); /* not a map: an input error */
            msgpack_pack_int(&pk, 7);
        }
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "i", 1);
        msgpack_pack_int(&pk, i);
        msgpack_pack_str_with_body(&pk, "s", 1);
        msgpack_pack_str_with_body(&pk, "some text", 9);
    }
    s_write_bin(name, sb.data, sb.size - (truncate_last ? 4 : 0));
    msgpack_sbuffer_destroy(&sb);
}

Test(file_source_resume, lines_every_split)
{
    s_write("in.txt", s_lines);
    s_every_split("path: in.txt\nwith_position: true\nmax_line: 12");
    s_every_split("path: in.txt\nmax_line: 12");
}

Test(file_source_resume, jsonl_every_split)
{
    s_write("in.jsonl", s_jsonl);
    s_every_split("path: in.jsonl\nwith_position: true");
    s_every_split("path: in.jsonl");
}

Test(file_source_resume, csv_every_split)
{
    s_write("in.csv", s_csv);
    s_every_split("path: in.csv\nwith_position: true");
    s_write("h.csv", "1,2\n3,4\n\n5,6,7\n8,9\n");
    s_every_split("path: h.csv\nheader: [n, v]\nwith_position: true");
}

Test(file_source_resume, msgpack_every_split)
{
    s_write_msgpack("in.mpk", 0);
    s_every_split("path: in.mpk");
}

Test(file_source_resume, chained_resumes_one_pull_each)
{
    s_write("in.txt", s_lines);
    s_write("in.jsonl", s_jsonl);
    s_write("in.csv", s_csv);
    s_write_msgpack("in.mpk", 0);
    s_chained("path: in.txt\nwith_position: true\nmax_line: 12");
    s_chained("path: in.jsonl\nwith_position: true");
    s_chained("path: in.csv\nwith_position: true");
    s_chained("path: in.mpk");
}

/* ---- exact records after a resume ----------------------------------------- */

Test(file_source_resume, csv_header_and_line_numbers_after_resume)
{
    s_write("p.csv", "name,age\nann,30\nbob\ncid,41\n\"dee\n\",5\nbad,\"x\"y\n"
                     "eve,7\n");
    const char *yaml = "path: p.csv\nwith_position: true";
    const char *f = s_path("p.csv");
    char want[16384];
    run_t r1, r2, r3;

    s_pull(yaml, NULL, 0, 1, 1, &r1);
    snprintf(want, sizeof(want),
             "{\"name\":\"ann\",\"age\":\"30\",\"file\":\"%s\",\"lineno\":2}\n",
             f);
    cr_assert_str_eq(r1.out, want);

    /* The header comes from the file, which the resumed run reads again
     * without counting anything; bob (line 3) is this run's error. */
    s_pull(yaml, r1.pos, r1.pos_len, 1, 2, &r2);
    snprintf(want, sizeof(want),
             "{\"name\":\"cid\",\"age\":\"41\",\"file\":\"%s\",\"lineno\":4}\n"
             "{\"name\":\"dee\\n\",\"age\":\"5\",\"file\":\"%s\","
             "\"lineno\":5}\n",
             f, f);
    cr_assert_str_eq(r2.out, want);
    cr_assert_eq(r2.errors, 1);
    snprintf(want, sizeof(want), "%s:3: expected 2 fields, got 1", f);
    cr_assert_str_eq(r2.last_error, want);

    s_pull(yaml, r2.pos, r2.pos_len, 64, BIG, &r3);
    snprintf(want, sizeof(want),
             "{\"name\":\"eve\",\"age\":\"7\",\"file\":\"%s\",\"lineno\":8}\n",
             f);
    cr_assert_str_eq(r3.out, want);
    cr_assert_eq(r3.errors, 1);
    snprintf(want, sizeof(want),
             "%s:7: invalid CSV: misplaced quote character", f);
    cr_assert_str_eq(r3.last_error, want);
    s_run_free(&r1);
    s_run_free(&r2);
    s_run_free(&r3);
}

Test(file_source_resume, csv_row_longer_than_a_pull_resumes_at_its_start)
{
    /* One quoted field over 70,000 lines: a pull stops looking after
     * 65,536 lines, inside the row, and the position must not. */
    size_t n = 70000, len = 0;
    char *text = malloc(2 * n + 32);
    len += (size_t)sprintf(text, "a,b\n\"");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(text + len, "x\n");
    len += (size_t)sprintf(text + len, "\",1\nlast,2\n");
    s_write_bin("long.csv", text, len);
    free(text);
    const char *yaml = "path: long.csv\nmax_line: 1000000\n"
                       "with_position: true";
    run_t full, r1, r2;
    s_pull(yaml, NULL, 0, 64, BIG, &full);
    s_pull(yaml, NULL, 0, 1, 1, &r1);
    cr_assert_str_eq(r1.out, "", "the row is not complete after one pull");
    s_pull(yaml, r1.pos, r1.pos_len, 64, BIG, &r2);
    cr_assert_str_eq(r2.out, full.out);
    cr_assert_eq(r2.errors, 0, "%s", r2.last_error);
    cr_assert(strstr(r2.out, "\"lineno\":70003}\n"), "last row's line");
    cr_assert(strstr(r2.out, "\"lineno\":2}\n"), "long row's line");
    s_run_free(&full);
    s_run_free(&r1);
    s_run_free(&r2);
}

Test(file_source_resume, input_errors_after_resume_name_the_right_place)
{
    char want[8192];
    run_t r1, r2;

    s_write("e.jsonl", "{\"a\":1}\n{\"a\":2}\n\nnope\n{\"a\":3}\n");
    s_pull("path: e.jsonl", NULL, 0, 1, 1, &r1);
    cr_assert_str_eq(r1.out, "{\"a\":1}\n");
    s_pull("path: e.jsonl", r1.pos, r1.pos_len, 64, BIG, &r2);
    cr_assert_str_eq(r2.out, "{\"a\":2}\n{\"a\":3}\n");
    cr_assert_eq(r2.errors, 1);
    snprintf(want, sizeof(want), "%s:4: invalid JSON: ", s_path("e.jsonl"));
    cr_assert_eq(strncmp(r2.last_error, want, strlen(want)), 0, "%s",
                 r2.last_error);
    s_run_free(&r1);
    s_run_free(&r2);

    s_write("e.txt", "ok\nok2\n\n0123456789X\nend\n");
    s_pull("path: e.txt\nmax_line: 10", NULL, 0, 2, 1, &r1);
    s_pull("path: e.txt\nmax_line: 10", r1.pos, r1.pos_len, 64, BIG, &r2);
    cr_assert_str_eq(r2.out, "{\"line\":\"\"}\n{\"line\":\"end\"}\n");
    snprintf(want, sizeof(want), "%s:4: line longer than max_line (10 bytes)",
             s_path("e.txt"));
    cr_assert_str_eq(r2.last_error, want);
    s_run_free(&r1);
    s_run_free(&r2);

    /* Each map of s_write_msgpack is 16 bytes: the array is at byte 32. */
    s_write_msgpack("e.mpk", 0);
    s_pull("path: e.mpk", NULL, 0, 1, 1, &r1);
    s_pull("path: e.mpk", r1.pos, r1.pos_len, 64, BIG, &r2);
    snprintf(want, sizeof(want),
             "%s: byte 32: expected a msgpack map, got an array",
             s_path("e.mpk"));
    cr_assert_str_eq(r2.last_error, want);
    cr_assert_eq(r2.errors, 1);
    s_run_free(&r1);
    s_run_free(&r2);
}

Test(file_source_resume, end_of_file_position_reads_nothing_more)
{
    s_write("d.txt", "a\nb\n");
    run_t r1, r2;
    s_pull("path: d.txt", NULL, 0, 64, BIG, &r1);
    cr_assert_str_eq(r1.out, "{\"line\":\"a\"}\n{\"line\":\"b\"}\n");
    s_capture();
    s_pull("path: d.txt", r1.pos, r1.pos_len, 64, BIG, &r2);
    char *log = s_captured();
    cr_assert_str_eq(r2.out, "");
    cr_assert_eq(r2.errors, 0);
    cr_assert_str_eq(log, "");
    free(log);
    s_run_free(&r1);
    s_run_free(&r2);
}

Test(file_source_resume, appended_file_reads_on_from_the_position)
{
    s_write("g.txt", "a\nb\nc\n");
    run_t r1, r2;
    s_pull("path: g.txt", NULL, 0, 2, 1, &r1);
    s_rewrite("g.txt", "d\ne\n", 1);
    s_capture();
    s_pull("path: g.txt", r1.pos, r1.pos_len, 64, BIG, &r2);
    char *log = s_captured();
    cr_assert_str_eq(r2.out, "{\"line\":\"c\"}\n{\"line\":\"d\"}\n"
                             "{\"line\":\"e\"}\n");
    cr_assert_str_eq(log, "");
    free(log);
    s_run_free(&r1);
    s_run_free(&r2);
}

Test(file_source_resume, msgpack_value_cut_short_is_read_once_complete)
{
    s_write_msgpack("t.mpk", 1);
    run_t r1, r2;
    s_pull("path: t.mpk", NULL, 0, 64, BIG, &r1);
    cr_assert_eq(r1.errors, 2, "the array and the cut map");
    cr_assert(strstr(r1.last_error, "truncated msgpack value at end of file"));
    s_write_msgpack("t.mpk", 0); /* the writer finishes: same file */
    s_pull("path: t.mpk", r1.pos, r1.pos_len, 64, BIG, &r2);
    cr_assert_str_eq(r2.out, "{\"i\":4,\"s\":\"some text\"}\n");
    cr_assert_eq(r2.errors, 0);
    s_run_free(&r1);
    s_run_free(&r2);
}

/* ---- the file changed ------------------------------------------------------ */

/* The old file stays open so that the new one cannot get its inode. */
static int s_keep_fd = -1;

/* Reads two of three lines of r.txt, lets change() alter the file, resumes
 * and checks the output and the warning. */
static void s_changed(void (*change)(void), const char *want_out,
                      const char *want_why)
{
    run_t r1, r2;
    s_write("r.txt", "a\nb\nc\n");
    s_pull("path: r.txt", NULL, 0, 2, 1, &r1);
    change();
    s_capture();
    s_pull("path: r.txt", r1.pos, r1.pos_len, 64, BIG, &r2);
    char *log = s_captured();
    if (s_keep_fd >= 0)
        close(s_keep_fd);
    cr_assert_str_eq(r2.out, want_out);
    char want[8192];
    snprintf(want, sizeof(want), "%s: file changed since the saved position "
                                 "(%s",
             s_path("r.txt"), want_why);
    cr_assert(strstr(log, want), "log lacks '%s':\n%s", want, log);
    cr_assert(strstr(log, "); reading it again from the beginning"), "%s",
              log);
    cr_assert(strstr(log, "level=warn") || strstr(log, "WARN") ||
                  strstr(log, "warn"),
              "not a warning: %s", log);
    free(log);
    s_run_free(&r1);
    s_run_free(&r2);
}

static void s_replace(void)
{
    s_keep_fd = open(s_path("r.txt"), O_RDONLY);
    cr_assert_geq(s_keep_fd, 0);
    unsigned long long ino = s_ino("r.txt");
    s_write("new.tmp", "x\ny\n");
    cr_assert_eq(rename(s_path("new.tmp"), s_path("r.txt")), 0);
    cr_assert_neq(s_ino("r.txt"), ino);
}

static void s_replace_same_bytes(void)
{
    s_keep_fd = open(s_path("r.txt"), O_RDONLY);
    cr_assert_geq(s_keep_fd, 0);
    s_write("new.tmp", "a\nb\nc\n");
    cr_assert_eq(rename(s_path("new.tmp"), s_path("r.txt")), 0);
}

static void s_overwrite(void) { s_rewrite("r.txt", "A\nB\nC\nD\n", 0); }
static void s_truncate(void) { s_rewrite("r.txt", "a\n", 0); }

Test(file_source_resume, replaced_file_is_read_again_with_a_warning)
{
    s_changed(s_replace, "{\"line\":\"x\"}\n{\"line\":\"y\"}\n",
              "it is another file: inode ");
}

Test(file_source_resume, replaced_by_a_copy_is_read_again)
{
    /* A copy may be a different file: at least once, never silently
     * skipping records of a new file. */
    s_changed(s_replace_same_bytes,
              "{\"line\":\"a\"}\n{\"line\":\"b\"}\n{\"line\":\"c\"}\n",
              "it is another file: inode ");
}

Test(file_source_resume, overwritten_in_place_is_read_again)
{
    s_changed(s_overwrite,
              "{\"line\":\"A\"}\n{\"line\":\"B\"}\n{\"line\":\"C\"}\n"
              "{\"line\":\"D\"}\n",
              "its first 4 bytes are not the same)");
}

Test(file_source_resume, truncated_file_is_read_again)
{
    s_changed(s_truncate, "{\"line\":\"a\"}\n",
              "it was truncated: 2 bytes, the position is at byte 4)");
}

/* ---- positions that cannot be used ---------------------------------------- */

static uint64_t s_fnv(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t s_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void s_put_le(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Resumes from pos and expects the whole of c.txt plus a warning with
 * want in it. */
static void s_refused(const void *pos, size_t len, const char *want)
{
    run_t r;
    s_capture();
    s_pull("path: c.txt", pos, len, 64, BIG, &r);
    char *log = s_captured();
    cr_assert_str_eq(r.out, "{\"line\":\"a\"}\n{\"line\":\"b\"}\n"
                            "{\"line\":\"c\"}\n", "len %zu", len);
    cr_assert(strstr(log, "saved position ignored ("), "len %zu: %s", len,
              log);
    cr_assert(strstr(log, want), "len %zu: log lacks '%s': %s", len, want,
              log);
    cr_assert(strstr(log, "); reading from the beginning"), "%s", log);
    free(log);
    s_run_free(&r);
}

Test(file_source_resume, position_layout_is_as_documented)
{
    s_write("c.txt", "a\nb\nc\n");
    run_t r;
    s_pull("path: c.txt", NULL, 0, 2, 1, &r);
    const unsigned char *p = r.pos;
    const char *path = s_path("c.txt");
    size_t plen = strlen(path);
    cr_assert_eq(r.pos_len, 44 + plen + 8);
    cr_assert_eq(memcmp(p, "SLFP", 4), 0);
    cr_assert_eq(p[4], 1, "version");
    cr_assert_eq(p[5], 0, "format lines");
    cr_assert_eq(s_le(p + 6, 2), plen);
    cr_assert_eq(s_le(p + 8, 8), s_ino("c.txt"));
    cr_assert_eq(s_le(p + 16, 8), 4, "offset after \"a\\nb\\n\"");
    cr_assert_eq(s_le(p + 24, 8), 2, "lines before it");
    cr_assert_eq(s_le(p + 32, 4), 4, "fingerprint length");
    cr_assert_eq(s_le(p + 36, 8), s_fnv("a\nb\n", 4));
    cr_assert_eq(memcmp(p + 44, path, plen), 0);
    cr_assert_eq(s_le(p + 44 + plen, 8), s_fnv(p, 44 + plen));
    s_run_free(&r);
}

Test(file_source_resume, corrupt_positions_start_from_the_beginning)
{
    s_write("c.txt", "a\nb\nc\n");
    run_t r;
    s_pull("path: c.txt", NULL, 0, 1, 1, &r);
    cr_assert_not_null(r.pos);
    unsigned char *bad = malloc(r.pos_len);

    /* Any single changed byte, any cut. */
    for (size_t i = 0; i < r.pos_len; i++) {
        memcpy(bad, r.pos, r.pos_len);
        bad[i] ^= 0x5a;
        s_refused(bad, r.pos_len, "position");
        s_refused(r.pos, i, "position");
    }
    s_refused(r.pos, 0, "not a file_source position");

    /* Garbage of many sizes, with and without the magic. */
    uint64_t seed = 42;
    unsigned char junk[5000];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)sl_test_rand(&seed);
    s_refused(junk, sizeof(junk), "not a file_source position");
    memcpy(junk, "SLFP\x01", 5);
    s_refused(junk, 4096, "corrupt position");
    s_refused(junk, 60, "corrupt position");

    /* Well formed but inconsistent: more lines than bytes. */
    memcpy(bad, r.pos, r.pos_len);
    s_put_le(bad + 24, 1000, 8);
    s_put_le(bad + r.pos_len - 8, s_fnv(bad, r.pos_len - 8), 8);
    s_refused(bad, r.pos_len, "corrupt position: inconsistent fields");
    free(bad);
    s_run_free(&r);
}

Test(file_source_resume, position_past_the_end_reads_again)
{
    s_write("c.txt", "a\nb\nc\n");
    run_t r, r2;
    s_pull("path: c.txt", NULL, 0, 1, 1, &r);
    unsigned char *p = r.pos;
    s_put_le(p + 16, 1u << 20, 8);
    s_put_le(p + r.pos_len - 8, s_fnv(p, r.pos_len - 8), 8);
    s_capture();
    s_pull("path: c.txt", p, r.pos_len, 64, BIG, &r2);
    char *log = s_captured();
    cr_assert_str_eq(r2.out, "{\"line\":\"a\"}\n{\"line\":\"b\"}\n"
                             "{\"line\":\"c\"}\n");
    cr_assert(strstr(log, "it was truncated: 6 bytes, the position is at "
                          "byte 1048576"), "%s", log);
    free(log);
    s_run_free(&r);
    s_run_free(&r2);
}

Test(file_source_resume, position_of_another_file_or_format_is_refused)
{
    s_write("c.txt", "a\nb\nc\n");
    s_write("o.txt", "a\nb\nc\n");
    s_write("c.jsonl", "{\"a\":1}\n{\"a\":2}\n");
    run_t r;
    char want[8192];

    s_pull("path: o.txt", NULL, 0, 1, 1, &r);
    snprintf(want, sizeof(want), "it is for lines file '%s'", s_path("o.txt"));
    s_refused(r.pos, r.pos_len, want);
    s_run_free(&r);

    /* The same file read as another format: offsets mean other things. */
    s_pull("path: c.txt\nformat: jsonl", NULL, 0, 1, 1, &r);
    snprintf(want, sizeof(want), "it is for jsonl file '%s'", s_path("c.txt"));
    s_refused(r.pos, r.pos_len, want);
    s_run_free(&r);
}

Test(file_source_resume, same_file_by_another_path_resumes)
{
    /* A topology run from another folder spells its paths differently;
     * the position names the file by its real path. */
    s_write("c.txt", "a\nb\nc\n");
    char yaml[8192];
    snprintf(yaml, sizeof(yaml), "path: %s/./c.txt", sl_test_dir());
    run_t r1, r2;
    s_pull("path: c.txt", NULL, 0, 2, 1, &r1);
    s_capture();
    s_pull(yaml, r1.pos, r1.pos_len, 64, BIG, &r2);
    char *log = s_captured();
    cr_assert_str_eq(r2.out, "{\"line\":\"c\"}\n");
    cr_assert_str_eq(log, "");
    free(log);
    s_run_free(&r1);
    s_run_free(&r2);
}

Test(file_source_resume, no_positions_unless_the_run_keeps_them)
{
    s_write("c.txt", "a\nb\nc\n");
    sl_harness_t *h = sl_test_harness("file_source", "path: c.txt",
                                      sl_test_dir());
    cr_assert_eq(sl_harness_pull_all(h, 1, 1), -ETIMEDOUT);
    size_t len = 1;
    cr_assert_null(sl_harness_position(h, &len));
    cr_assert_eq(len, 0);
    sl_harness_destroy(&h);
}
