/*
 * sluice stage plugin ABI.
 *
 * This header is all a third party needs to write a stage. A plugin is a
 * shared object that exports one `const sl_stage_desc_t` under the symbol
 * SL_STAGE_SYMBOL ("sl_stage"); SL_STAGE_DEFINE() below does that. The host
 * (libsluice) checks the magic+version word and the descriptor's size before
 * it touches anything else, so a stale or foreign object is refused with a
 * clear error naming the file.
 *
 * Records are msgpack maps (msgpack-c types). The host decodes a record on
 * demand (sl_record_map) into memory that lives until the handler returns;
 * a handler emits zero or more records with the sl_emit_* calls.
 *
 * Every function here returns 0 or a negative errno-style code unless its
 * comment says otherwise.
 */
#ifndef SLUICE_STAGE_H
#define SLUICE_STAGE_H

#include <msgpack.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SL_API __attribute__((visibility("default")))
#define SL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SL_API
#define SL_PRINTF(f, a)
#endif

/* The upper half is a fixed magic so that garbage never looks valid; the
 * lower half is the ABI revision. A host accepts exactly its own revision. */
#define SL_STAGE_ABI_MAGIC 0x534c0000u /* "SL" */
#define SL_STAGE_ABI_REV 2u
#define SL_STAGE_ABI (SL_STAGE_ABI_MAGIC | SL_STAGE_ABI_REV)
#define SL_STAGE_SYMBOL "sl_stage"

/* Returned by a source's pull() when its input is exhausted. */
#define SL_EOF 1

typedef enum sl_stage_kind {
    SL_STAGE_SOURCE = 1,    /* produces records: pull() */
    SL_STAGE_TRANSFORM = 2, /* consumes and emits: process() */
    SL_STAGE_SINK = 3,      /* consumes, emits nothing: process() */
} sl_stage_kind_t;

typedef struct sl_record sl_record_t; /* one record being handled */
typedef struct sl_ctx sl_ctx_t;       /* the calling worker's context */
typedef struct sl_config sl_config_t; /* a node of the stage's config */

/*
 * The descriptor. Callbacks run on the stage's worker threads; each worker
 * has its own state (from init), so a plugin needs no locking unless it
 * shares something across workers itself.
 */
typedef struct sl_stage_desc {
    uint32_t abi;  /* SL_STAGE_ABI */
    uint32_t size; /* sizeof(sl_stage_desc_t) as the plugin saw it */
    const char *name;    /* must equal the plugin's file name stem */
    const char *summary; /* one line, shown by `sluice plugins` */
    sl_stage_kind_t kind;
    /* Upper bound on the stage's workers (1 for a file writer, say);
     * 0 means no limit. A topology asking for more is a config error. */
    unsigned max_workers;
    /* NULL-terminated list of accepted top-level config keys; the host
     * rejects any other key with FILE:LINE:COL. NULL accepts anything. */
    const char *const *config_keys;

    /* Checks cfg without side effects (no files opened). Reports each
     * problem with sl_config_error() and returns -EINVAL if there was any.
     * Called by `sluice check` and before init. Optional. */
    int (*validate)(const sl_config_t *cfg);
    /* Builds one worker's state. May fail with a message through
     * sl_config_error() or sl_log(). The config tree stays valid until the
     * run ends. Required. */
    int (*init)(sl_ctx_t *ctx, const sl_config_t *cfg, void **state);
    /* Transform and sink: handles one record. A negative return fails this
     * record (the message given to sl_ctx_error() is kept with it); the
     * stage goes on with the next. Must not block indefinitely. */
    int (*process)(void *state, sl_ctx_t *ctx, sl_record_t *rec);
    /* Source: emits at most sl_ctx_budget(ctx) records and returns 0, or
     * SL_EOF at the end of input, or a negative code for a fatal error.
     * Records emitted in the call that returns SL_EOF or an error are kept.
     * It should return within about 100 ms so that shutdown stays prompt.
     * Once the run is stopping (sl_ctx_stopping) pull() is still called
     * until it returns SL_EOF or the grace period ends, so that a source
     * can first emit input it has already acknowledged. */
    int (*pull)(void *state, sl_ctx_t *ctx);
    /* Called once per worker after the last record (end of stream); may
     * emit (a window closing, a buffered batch written). Optional. */
    int (*flush)(void *state, sl_ctx_t *ctx);
    /* Frees the worker's state, after the worker's thread has ended (on
     * the thread that set the run up). Not called if init failed. */
    void (*fini)(void *state);
    /* Sinks (and transforms with side effects): makes everything handled
     * so far by this worker durable, at least as far as the kernel (write
     * out user-space buffers). When the run keeps source positions
     * (`state_dir:`), the host calls it after each batch, before the
     * records of that batch count as finished; a negative return fails the
     * run rather than commit positions past data that may be lost.
     * Optional. */
    int (*sync)(void *state, sl_ctx_t *ctx);
} sl_stage_desc_t;

/* Exports the descriptor under the fixed symbol. Use once per plugin:
 *   SL_STAGE_DEFINE(.name = "upper", .kind = SL_STAGE_TRANSFORM, ...); */
#define SL_STAGE_DEFINE(...)                                                   \
    SL_API extern const sl_stage_desc_t sl_stage;                              \
    const sl_stage_desc_t sl_stage = {.abi = SL_STAGE_ABI,                     \
                                      .size = sizeof(sl_stage_desc_t),         \
                                      __VA_ARGS__}

/* ---- records ----------------------------------------------------------- */

SL_API uint64_t sl_record_id(const sl_record_t *rec);
/* Source timestamp in nanoseconds since the epoch (CLOCK_REALTIME). */
SL_API uint64_t sl_record_ts(const sl_record_t *rec);
/* Attempts already made on this record before this one (0 the first time). */
SL_API uint32_t sl_record_attempts(const sl_record_t *rec);
/* 0 is the highest priority. */
SL_API uint8_t sl_record_priority(const sl_record_t *rec);
/* The record's msgpack bytes; valid until the handler returns. */
SL_API const void *sl_record_data(const sl_record_t *rec, size_t *len);
/* Decodes the record (once) and points *map at it. Fails with -EBADMSG if
 * the bytes are not exactly one msgpack map, or nest deeper than the
 * stage's limits.max_depth (the bytes are checked against what their
 * headers claim before anything is allocated); -ENOMEM. The object and
 * everything it points to live until the handler returns. */
SL_API int sl_record_map(sl_record_t *rec, const msgpack_object **map);
/* A zone that lives until the handler returns, for building modified
 * copies of the record (new kv arrays, strings). Never NULL. */
SL_API msgpack_zone *sl_record_zone(sl_record_t *rec);

/* Looks up a field by dotted path ("user.address.city") in a map. Returns
 * NULL if any step is missing or not a map. */
SL_API const msgpack_object *sl_map_get(const msgpack_object *map,
                                        const char *path);
/* Same, with an explicit key length, for one level only. */
SL_API const msgpack_object *sl_map_getn(const msgpack_object *map,
                                         const char *key, size_t keylen);

/* ---- emitting ---------------------------------------------------------- */

/* Emits a copy of map (which must be a MAP). In a transform, the first
 * record emitted for an input keeps the input's id, timestamp and priority;
 * later ones get fresh ids. In a source, each gets a fresh id and now().
 *
 * Every emit is held to the stage's `limits:` (docs/topology.md): a record
 * over limits.max_record_bytes or nested deeper than limits.max_depth is
 * not emitted. In a transform the call returns -EMSGSIZE or -ELOOP and
 * the input record is dead-lettered with the reason, whatever the handler
 * returns; in a source it returns 0 and the record is dead-lettered as an
 * input error, so the source goes on. */
SL_API int sl_emit_object(sl_ctx_t *ctx, const msgpack_object *map);
/* Emits already-encoded msgpack bytes (one map), copied. Only the map
 * header byte is checked (-EBADMSG otherwise); the rest is trusted. */
SL_API int sl_emit_raw(sl_ctx_t *ctx, const void *data, size_t len);
/* Zero-copy emission: pack exactly one map into the returned packer, then
 * call sl_emit_commit(). Nothing else may be emitted in between. */
SL_API msgpack_packer *sl_emit_begin(sl_ctx_t *ctx);
SL_API int sl_emit_commit(sl_ctx_t *ctx);
/* Abandons a record begun with sl_emit_begin() (a packing error halfway,
 * say): nothing of it is emitted. A handler that returns without committing
 * abandons it the same way. */
SL_API void sl_emit_abort(sl_ctx_t *ctx);
/* Sets the priority of records emitted from now on in this handler call. */
SL_API void sl_emit_priority(sl_ctx_t *ctx, uint8_t priority);

/* ---- context ------------------------------------------------------------ */

/* For sources: how many records pull() may emit in this call (>= 1). */
SL_API size_t sl_ctx_budget(const sl_ctx_t *ctx);
/* Nonzero once the run is shutting down: a source should stop taking
 * input and return SL_EOF. One atomic load: any thread of the plugin may
 * call it with the worker's ctx (a server thread refusing new work). */
SL_API int sl_ctx_stopping(const sl_ctx_t *ctx);
SL_API const char *sl_ctx_stage(const sl_ctx_t *ctx);
SL_API unsigned sl_ctx_worker(const sl_ctx_t *ctx);  /* 0-based */
SL_API unsigned sl_ctx_workers(const sl_ctx_t *ctx); /* pool size */
/* Attaches a message to the failure of the current record; returns
 * -EINVAL so that `return sl_ctx_error(ctx, ...)` reads naturally. The
 * record is tried again (with backoff) while the stage's
 * retry.max_attempts allow: use this for errors that may pass (a service
 * that did not answer). */
SL_API int sl_ctx_error(sl_ctx_t *ctx, const char *fmt, ...) SL_PRINTF(2, 3);
/* The same for an error no retry can fix (a field of the wrong type, a
 * value out of range): the record is dead-lettered at once, its attempts
 * counted as they are. */
SL_API int sl_ctx_fail(sl_ctx_t *ctx, const char *fmt, ...) SL_PRINTF(2, 3);
/* For sources that can resume: after emitting, records the position in
 * the input that follows the last record emitted by this worker (opaque
 * bytes, at most SL_POSITION_MAX; a file index and byte offset, say).
 * Once every record emitted before the call has been finished downstream
 * (written by the sinks, filtered, dead-lettered or spilled), the host
 * commits the position to the run's state file; a later run of the same
 * topology gets it back from sl_ctx_resume_position(). Without
 * `state_dir:` in the topology it does nothing. -EINVAL if too long. */
#define SL_POSITION_MAX 4096
SL_API int sl_ctx_set_position(sl_ctx_t *ctx, const void *pos, size_t len);
/* For sources, in init() or pull(): the position this worker last had
 * committed in an earlier run (the bytes given to sl_ctx_set_position), or
 * NULL to start from the beginning. Valid until the run ends. */
SL_API const void *sl_ctx_resume_position(const sl_ctx_t *ctx, size_t *len);
/* For sources: counts one unit of input that could not become a record
 * (a malformed line, say) as read and failed, with the message; the message
 * should name the file and line. The run goes on. */
SL_API void sl_ctx_input_error(sl_ctx_t *ctx, const char *fmt, ...)
    SL_PRINTF(2, 3);

typedef enum sl_log_level {
    SL_LOG_ERROR = 0,
    SL_LOG_WARN = 1,
    SL_LOG_INFO = 2,
    SL_LOG_DEBUG = 3,
} sl_log_level_t;
/* Logs with the stage and worker attached. ctx may be NULL. */
SL_API void sl_log(const sl_ctx_t *ctx, sl_log_level_t level, const char *fmt,
                   ...) SL_PRINTF(3, 4);

/* Wall clock in ns since the epoch, and a monotonic clock in ns. */
SL_API uint64_t sl_now_ns(void);
SL_API uint64_t sl_mono_ns(void);

/* ---- config -------------------------------------------------------------- */

typedef enum sl_config_type {
    SL_CONFIG_NULL = 0,
    SL_CONFIG_BOOL,
    SL_CONFIG_INT,
    SL_CONFIG_FLOAT,
    SL_CONFIG_STRING,
    SL_CONFIG_SEQ,
    SL_CONFIG_MAP,
} sl_config_type_t;

SL_API sl_config_type_t sl_config_type(const sl_config_t *node);
/* A scalar's text as written (also for numbers and booleans); NULL for a
 * sequence or map. */
SL_API const char *sl_config_str(const sl_config_t *node);
/* Typed scalar readers: -EINVAL (without reporting) on a type mismatch. */
SL_API int sl_config_int(const sl_config_t *node, int64_t *out);
SL_API int sl_config_double(const sl_config_t *node, double *out);
SL_API int sl_config_bool(const sl_config_t *node, int *out);
/* Entries of a sequence or map; 0 for a scalar. */
SL_API size_t sl_config_len(const sl_config_t *node);
SL_API const sl_config_t *sl_config_at(const sl_config_t *seq, size_t i);
SL_API const char *sl_config_key_at(const sl_config_t *map, size_t i);
SL_API const sl_config_t *sl_config_value_at(const sl_config_t *map,
                                             size_t i);
/* The value under key in a map, or NULL. */
SL_API const sl_config_t *sl_config_get(const sl_config_t *map,
                                        const char *key);

/* Reports a problem at node's position as FILE:LINE:COL: stage 'S': message.
 * Returns -EINVAL. */
SL_API int sl_config_error(const sl_config_t *node, const char *fmt, ...)
    SL_PRINTF(2, 3);

/* Convenience readers for optional keys: the default when absent; a
 * reported error (and -EINVAL) when present with the wrong type. */
SL_API int sl_config_get_str(const sl_config_t *map, const char *key,
                             const char *dflt, const char **out);
SL_API int sl_config_get_int(const sl_config_t *map, const char *key,
                             int64_t dflt, int64_t *out);
SL_API int sl_config_get_double(const sl_config_t *map, const char *key,
                                double dflt, double *out);
SL_API int sl_config_get_bool(const sl_config_t *map, const char *key,
                              int dflt, int *out);
/* A string key naming a file: a relative path is taken relative to the
 * directory of the topology file. *out is malloc'd (the caller frees it),
 * or NULL when absent and dflt is NULL. */
SL_API int sl_config_get_path(const sl_config_t *map, const char *key,
                              const char *dflt, char **out);

#ifdef __cplusplus
}
#endif
#endif /* SLUICE_STAGE_H */
