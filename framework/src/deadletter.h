/*
 * Dead letters: records (or input that never became one) that failed their
 * last attempt, appended to a per-stage file so that nothing is lost
 * silently. docs/reliability.md describes the entry and both formats.
 *
 * Each entry reaches the file with a single write(2) on an O_APPEND
 * descriptor, so a crash never leaves half an entry behind a later one,
 * and several processes appending to the same file do not interleave.
 * Files are never truncated.
 */
#ifndef SL_DEADLETTER_H
#define SL_DEADLETTER_H

#include "batch.h"

#include <msgpack.h>

#include <stddef.h>
#include <stdint.h>

typedef struct sl_deadletter sl_deadletter_t;

/* JSONL is for people and jq; it loses float widths and turns bin into
 * base64 text. MSGPACK keeps the record's bytes exactly. */
typedef enum sl_dl_format { SL_DL_JSONL = 0, SL_DL_MSGPACK = 1 } sl_dl_format_t;

/* Opens (creating if needed, mode 0644) a dead-letter file for appending;
 * never truncates. A non-empty file written in the other format is refused,
 * since one file holds one format. On failure returns NULL and writes a
 * message naming the path (and the missing directory, if that is why)
 * into err. */
sl_deadletter_t *sl__deadletter_open(const char *path, sl_dl_format_t format,
                                     char *err, size_t errlen);
/* Syncs the data to disk and closes; sets *dl to NULL. NULL is ignored. */
void sl__deadletter_close(sl_deadletter_t **dl);

/* Appends one dead letter. Thread-safe. `stage` is required; env may be
 * NULL (id, ts and priority are then 0), and so may payload (the msgpack
 * bytes of the record) for input that never became a record, in which case
 * `error` should carry the FILE:LINE reason; error may be NULL. A payload
 * that is not exactly one msgpack map is kept as raw bytes (base64 in
 * JSONL). Times are ns since the epoch; 0 means unknown. Returns 0, -EINVAL
 * for a missing dl or stage, -ENOMEM, or the -errno of write(2) (an entry
 * that could not be written completely may be left partial at the end of
 * the file only if the disk filled up halfway). */
int sl__deadletter_write(sl_deadletter_t *dl, const char *stage,
                         const sl_envelope_t *env, const void *payload,
                         size_t len, const char *error, uint32_t attempts,
                         uint64_t first_failure_ns, uint64_t last_failure_ns);
/* The entry as one msgpack map, appended to out: what a dead-letter
 * stage receives as its record (see docs/reliability.md). */
int sl__deadletter_encode(msgpack_sbuffer *out, const char *stage,
                          const sl_envelope_t *env, const void *payload,
                          size_t len, const char *error, uint32_t attempts,
                          uint64_t first_failure_ns, uint64_t last_failure_ns);
/* Entries written so far through this handle. */
uint64_t sl__deadletter_count(const sl_deadletter_t *dl);

/* One entry as read back. Strings and record bytes live until the visitor
 * returns. record is NULL when the entry has no record. */
typedef struct sl_deadletter_entry {
    const char *stage;
    uint64_t id;
    uint64_t ts_ns;
    uint32_t attempts;
    uint8_t priority;
    uint64_t first_failure_ns;
    uint64_t last_failure_ns;
    const char *error; /* NULL if none */
    const void *record; /* msgpack bytes */
    size_t record_len;
} sl_deadletter_entry_t;

/* An entry as read back, as the line a JSONL dead-letter file holds for
 * it (ending in a newline), appended to out. */
int sl__deadletter_entry_jsonl(msgpack_sbuffer *out,
                               const sl_deadletter_entry_t *e);

/* A non-zero return stops the walk; sl__deadletter_read returns it. */
typedef int (*sl_deadletter_visit_fn)(const sl_deadletter_entry_t *e,
                                      void *arg);

/* Calls fn for each entry of a file in either format (the first byte
 * decides: '{' is JSONL, anything else msgpack). JSONL records are
 * re-encoded as msgpack (integers exact, floats as float64, bins as their
 * base64 text); msgpack records come back byte for byte. Returns 0 at the
 * end, fn's non-zero value, -errno if the file cannot be read, or -EBADMSG
 * with "PATH: entry N: reason" in err for a corrupt or truncated entry
 * (entries before it have been visited). An empty file has no entries. */
int sl__deadletter_read(const char *path, sl_deadletter_visit_fn fn,
                        void *arg, char *err, size_t errlen);

/* The same walk one entry at a time, for readers that must not hold a
 * whole file (a replay of millions of entries). The reader keeps one
 * entry's bytes at a time (its buffer grows to the largest entry). */
typedef struct sl_deadletter_reader sl_deadletter_reader_t;

/* Opens path for reading and fixes the bound: the file's size now, or
 * max_bytes if smaller (UINT64_MAX: no other limit). Entries appended
 * later are never read, so a run may dead-letter into the file it
 * replays. Returns 0 with *out set, or -errno (-EINVAL for something that
 * is not a regular file) with a message naming the path in err. */
int sl__deadletter_reader_open(const char *path, uint64_t max_bytes,
                               sl_deadletter_reader_t **out, char *err,
                               size_t errlen);
/* The next entry: 1 with *e set (valid until the next call or close), 0
 * at the bound, or a negative code with err filled exactly as
 * sl__deadletter_read reports it ("PATH: entry N: reason", -EBADMSG).
 * After an error or the end, every later call returns the same again. */
int sl__deadletter_reader_next(sl_deadletter_reader_t *r,
                               const sl_deadletter_entry_t **e, char *err,
                               size_t errlen);
/* The bytes this reader may read (fixed at open). */
uint64_t sl__deadletter_reader_bound(const sl_deadletter_reader_t *r);
/* Closes and sets *r to NULL; NULL is ignored. */
void sl__deadletter_reader_close(sl_deadletter_reader_t **r);
/* Whether an entry's record bytes are exactly one msgpack map (what a
 * stage can take): false for a raw payload kept as base64 or bin. */
int sl__deadletter_record_is_map(const void *record, size_t len);

#endif
