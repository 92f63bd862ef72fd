/*
 * Envelopes and batches: the wire form of records between stages.
 *
 * A batch is one link message carrying up to a few thousand records:
 *
 *   header   u8 'D', u8 version (1), u16 reserved, u32 count
 *   record   u64 id, u64 ts_ns, u32 attempts, u8 priority, u8 flags,
 *            u16 reserved, u32 len, then len bytes of msgpack (one map)
 *
 * All integers little-endian. The same bytes travel over inproc, ipc and
 * tcp, so nothing here depends on the host's layout, and the reader checks
 * every length against the message size before trusting it.
 */
#ifndef SL_BATCH_H
#define SL_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SL_BATCH_MAGIC 'D'
#define SL_BATCH_VERSION 1
#define SL_BATCH_HDR 8
#define SL_ENV_SIZE 28

typedef struct sl_envelope {
    uint64_t id;
    uint64_t ts_ns;
    uint32_t attempts;
    uint8_t priority;
    uint8_t flags;
} sl_envelope_t;

/* A batch under construction. The buffer is malloc'd and owned by the
 * batch until sl__batch_release() hands it to someone else. */
typedef struct sl_batch {
    char *data;
    size_t len;
    size_t cap;
    uint32_t count;
    size_t open;  /* offset of a record begun but not committed, or 0 */
    size_t cap_hint; /* size of the last buffer given away: start there */
} sl_batch_t;

void sl__batch_init(sl_batch_t *b);
void sl__batch_fini(sl_batch_t *b);
/* Empties the batch, keeping its buffer. */
void sl__batch_reset(sl_batch_t *b);
/* Appends one whole record. 0 or -ENOMEM. */
int sl__batch_append(sl_batch_t *b, const sl_envelope_t *env,
                     const void *payload, size_t len);
/* Two-step append for packing in place: begin writes the envelope with a
 * zero length, writes go to the end, commit fixes the length. A begun
 * record must be committed or aborted before anything else is appended. */
int sl__batch_begin(sl_batch_t *b, const sl_envelope_t *env);
int sl__batch_grow(sl_batch_t *b, size_t more);
/* msgpack's packer calls this once per token, so the common case (room
 * left) must stay a compare and a copy. */
static inline int sl__batch_write(sl_batch_t *b, const void *data, size_t len)
{
    if (b->cap - b->len < len) {
        int rc = sl__batch_grow(b, len);
        if (rc)
            return rc;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}
/* Returns the committed payload's first byte offset, or -EINVAL if no
 * record was begun. */
int sl__batch_commit(sl_batch_t *b, size_t *payload_off);
void sl__batch_abort(sl_batch_t *b);
/* Finalises the header and gives the buffer away (caller frees it with
 * free()); the batch is left empty and reusable. *len gets the size. */
char *sl__batch_release(sl_batch_t *b, size_t *len);

/* Reading a received batch. */
typedef struct sl_batch_iter {
    const unsigned char *p;
    const unsigned char *end;
    uint32_t left;
} sl_batch_iter_t;

/* Checks the header; *count gets the number of records announced.
 * -EBADMSG on a short or foreign message. */
int sl__batch_iter_init(sl_batch_iter_t *it, const void *msg, size_t len,
                        uint32_t *count);
/* 1 with the next record, 0 at the end, -EBADMSG if a length runs past
 * the message or the record count disagrees with the bytes. */
int sl__batch_next(sl_batch_iter_t *it, sl_envelope_t *env,
                   const char **payload, size_t *len);
/* Walks the whole batch once: 0 if every record is well-formed and the
 * count matches, else -EBADMSG. */
int sl__batch_validate(const void *msg, size_t len, uint32_t *count);
/* The same for a receiver that takes at most max_records records per
 * message (limits.max_batch_records): a header announcing more is refused
 * with -EMSGSIZE before anything is walked (*count still gets the
 * announced number, for the message). */
int sl__batch_validate_max(const void *msg, size_t len, uint32_t max_records,
                           uint32_t *count);

#endif
