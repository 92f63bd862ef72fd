/*
 * Trace files (framework/src/trace.c): the input is the whole file. It is
 * written to a memfd, opened by path like any trace, and read to the end,
 * then rewound and read again.
 *
 * Checks: open fails with "PATH: ..." or gives a header; each entry's
 * record is one map that msgpack-c decodes in exactly its bytes, offsets
 * never decrease; a damaged entry stops the reader with a message that
 * names the entry; the second pass returns the same entries.
 */
#include "fuzz.h"

#include "trace.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

static int s_fd = -1;
static char s_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    s_fd = memfd_create("fuzz-trace", MFD_CLOEXEC);
    if (s_fd < 0) {
        perror("fuzz_trace: memfd_create");
        abort();
    }
    snprintf(s_path, sizeof(s_path), "/proc/self/fd/%d", s_fd);
    return 0;
}

/* Reads every entry; returns how many and a checksum of what they held. */
static uint64_t s_read_all(sl_trace_reader_t *r, uint64_t *sum)
{
    uint64_t n = 0, prev = 0;
    *sum = 0;
    for (;;) {
        uint64_t off;
        const void *rec;
        size_t len;
        int rc = sl_trace_next(r, &off, &rec, &len);
        if (rc == 1) {
            FUZZ_CHECK(sl_trace_reader_error(r) == NULL, "an error at EOF");
            break;
        }
        if (rc < 0) {
            FUZZ_CHECK(rc == -EBADMSG, "next returned %d", rc);
            const char *e = sl_trace_reader_error(r);
            FUZZ_CHECK(e && strstr(e, s_path) && strstr(e, ": entry "),
                       "error message: %s", e ? e : "(none)");
            FUZZ_CHECK(sl_trace_next(r, &off, &rec, &len) == -EBADMSG,
                       "read on after an error");
            break;
        }
        FUZZ_CHECK(rc == 0, "next returned %d", rc);
        FUZZ_CHECK(n == 0 || off >= prev, "offset %llu after %llu",
                   (unsigned long long)off, (unsigned long long)prev);
        msgpack_zone zone;
        msgpack_zone_init(&zone, 1024);
        msgpack_object o = fuzz_unpack(rec, len, &zone, "record");
        FUZZ_CHECK(o.type == MSGPACK_OBJECT_MAP, "record is not a map");
        msgpack_zone_destroy(&zone);
        const unsigned char *p = rec;
        for (size_t i = 0; i < len; i++)
            *sum = *sum * 31 + p[i];
        *sum = *sum * 31 + off;
        prev = off;
        n++;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_CHECK(ftruncate(s_fd, 0) == 0, "ftruncate");
    FUZZ_CHECK(pwrite(s_fd, data, size, 0) == (ssize_t)size, "pwrite");
    char err[512] = "";
    sl_trace_reader_t *r = sl_trace_reader_open(s_path, err, sizeof(err));
    if (!r) {
        FUZZ_CHECK(strncmp(err, s_path, strlen(s_path)) == 0,
                   "open error: %s", err);
        return 0;
    }
    const sl_trace_header_t *h = sl_trace_reader_header(r);
    FUZZ_CHECK(h->version == SL_TRACE_VERSION && h->origin,
               "header version %u", h->version);
    (void)strlen(h->origin);
    uint64_t sum1, sum2;
    uint64_t n1 = s_read_all(r, &sum1);
    FUZZ_CHECK(sl_trace_rewind(r) == 0, "rewind");
    uint64_t n2 = s_read_all(r, &sum2);
    FUZZ_CHECK(n1 == n2 && sum1 == sum2, "first pass %llu entries, second "
               "%llu", (unsigned long long)n1, (unsigned long long)n2);
    sl_trace_reader_close(&r);
    FUZZ_CHECK(r == NULL, "close left the pointer");
    return 0;
}
