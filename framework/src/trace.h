/*
 * Trace files: recorded traffic for `sluice replay`.
 *
 * A trace is a msgpack stream. It starts with one header map
 *   {"sluice_trace": 1, "created_ns": <u64 wall clock>, "origin": <str>}
 * (readers ignore keys they do not know, so later versions can add some),
 * followed by one 2-element array per record:
 *   [<u64 offset in ns from the first record>, <record: one msgpack map>]
 * Offsets never decrease. The file may end after any complete entry, so a
 * recorder that is killed leaves a readable trace; a torn last entry is
 * reported as such.
 *
 * Traces come from other machines and users, so the reader treats every
 * byte as untrusted: sizes are checked against what is left of the file
 * before anything is allocated, and nesting is bounded.
 */
#ifndef SL_TRACE_H
#define SL_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define SL_TRACE_VERSION 1
/* A record larger than this is refused by writer and reader alike. */
#define SL_TRACE_RECORD_MAX (64u << 20)

typedef struct sl_trace_writer sl_trace_writer_t;
typedef struct sl_trace_reader sl_trace_reader_t;

typedef struct sl_trace_header {
    uint32_t version;
    uint64_t created_ns;
    const char *origin; /* what was recorded ("link parse>sink of x.yaml") */
} sl_trace_header_t;

/* Creates (truncates) path and writes the header. NULL on failure, with
 * the reason naming the file in err. */
sl_trace_writer_t *sl_trace_writer_new(const char *path, const char *origin,
                                       char *err, size_t errlen);
/* Appends one entry. rec must be one msgpack map of at most
 * SL_TRACE_RECORD_MAX bytes (-EBADMSG otherwise); offset_ns must not be
 * below the previous one (-EINVAL). Buffered. */
int sl_trace_write(sl_trace_writer_t *w, uint64_t offset_ns, const void *rec,
                   size_t len);
/* Entries written so far. */
uint64_t sl_trace_written(const sl_trace_writer_t *w);
/* Flushes, fsyncs and closes; 0 or the first error met (-EIO, -ENOSPC...).
 * Frees the writer in any case and sets *w to NULL. */
int sl_trace_writer_close(sl_trace_writer_t **w);

/* Opens and reads the header. NULL on failure, with "FILE: reason" in
 * err (not a trace, unsupported version, unreadable). */
sl_trace_reader_t *sl_trace_reader_open(const char *path, char *err,
                                        size_t errlen);
/* The header; strings live as long as the reader. */
const sl_trace_header_t *sl_trace_reader_header(const sl_trace_reader_t *r);
/* The next entry: 0 with *offset_ns and the record's msgpack bytes (valid
 * until the next call), 1 at the clean end of the file, or -EBADMSG for a
 * damaged entry, with "FILE: entry N at byte B: reason" available from
 * sl_trace_reader_error(). Nothing can be read after an error. */
int sl_trace_next(sl_trace_reader_t *r, uint64_t *offset_ns, const void **rec,
                  size_t *len);
const char *sl_trace_reader_error(const sl_trace_reader_t *r);
/* Back to the first entry (for --loop). */
int sl_trace_rewind(sl_trace_reader_t *r);
void sl_trace_reader_close(sl_trace_reader_t **r);

#endif /* SL_TRACE_H */
