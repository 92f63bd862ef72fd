/*
 * A single-stage harness: loads one plugin and drives it in-process,
 * without the runtime, collecting what it emits. Used by the unit tests of
 * every bundled stage.
 */
#ifndef SL_HARNESS_H
#define SL_HARNESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_harness sl_harness_t;

/* Loads plugin `name` (searched like the runtime does) and inits one worker
 * with config given as YAML text (a map, or "" for none). Relative paths
 * in the config resolve against `basedir` (NULL: the current directory).
 * On failure returns NULL and writes the reason (config errors included)
 * into err. */
sl_harness_t *sl_harness_new(const char *name, const char *config_yaml,
                             const char *basedir, char *err, size_t errlen);
/* Like sl_harness_new, but the worker keeps source positions as in a run
 * with `state_dir:`, and init sees pos (len bytes, copied; NULL for none)
 * as the position an earlier run committed. */
sl_harness_t *sl_harness_new_resume(const char *name, const char *config_yaml,
                                    const char *basedir, const void *pos,
                                    size_t len, char *err, size_t errlen);
/* Like sl_harness_new, with the config given as node cfg of a document
 * that the caller keeps (and that must outlive the harness), so that
 * messages about the config point into that document (its file, line and
 * column). Relative paths resolve against the document's folder. The
 * document reports to the harness while the harness lives. */
typedef struct sl_config_doc sl_config_doc_t;
typedef struct sl_config sl_config_t;
sl_harness_t *sl_harness_new_node(const char *name, sl_config_doc_t *doc,
                                  const sl_config_t *cfg, char *err,
                                  size_t errlen);
void sl_harness_destroy(sl_harness_t **h);

/* Called for each failure as it happens: a record whose process() failed
 * (record is its msgpack bytes; final when the plugin said no retry can
 * fix it, with sl_ctx_fail, or when it went over the limits) and each
 * input error of a source (record NULL, final), and each record a source
 * or flush() emitted over the limits (record is the refused record, or
 * NULL when it was too big to keep; final). The harness tries nothing
 * again. */
typedef void (*sl_harness_fail_fn)(void *arg, const char *msg, int final,
                                   const void *record, size_t len);
void sl_harness_on_fail(sl_harness_t *h, sl_harness_fail_fn fn, void *arg);
/* Sets the limits the worker checks records against, as a topology's
 * `limits:` does (docs/topology.md); 0 keeps a value (the defaults of
 * record_limits.h until set). */
void sl_harness_set_limits(sl_harness_t *h, uint32_t max_record_bytes,
                           uint32_t max_depth);
/* Asks the stage to stop, as a run does at shutdown: from now on
 * sl_ctx_stopping() is true in its calls. */
void sl_harness_stop(sl_harness_t *h);

/* Transform/sink: runs process() on one record given as JSON text (an
 * object) or as msgpack bytes. Returns the handler's return code (a
 * negative return is counted as an error, message in last_error), or
 * -EBADMSG if the JSON is not an object. */
int sl_harness_push_json(sl_harness_t *h, const char *json);
int sl_harness_push_msgpack(sl_harness_t *h, const void *data, size_t len);
/* Source: calls pull() until SL_EOF, at most max_calls times, with the given
 * budget per call. Returns 0 at EOF, the negative code of a fatal error, or
 * -ETIMEDOUT if max_calls ran out. */
int sl_harness_pull_all(sl_harness_t *h, size_t budget, size_t max_calls);
/* Calls flush() on the worker. */
int sl_harness_flush(sl_harness_t *h);
/* Calls sync() on the worker; -ENOTSUP if the plugin has none. */
int sl_harness_sync(sl_harness_t *h);
/* The newest position the source set with sl_ctx_set_position (only with
 * sl_harness_new_resume), or NULL if none yet. Valid until the next pull. */
const void *sl_harness_position(const sl_harness_t *h, size_t *len);

/* What came out so far, each as compact JSON (keys in emitted order; bin as
 * base64 string; floats with %.17g trimmed). Pointers stay valid until the
 * harness is destroyed. */
size_t sl_harness_count(const sl_harness_t *h);
const char *sl_harness_output(const sl_harness_t *h, size_t i);
/* The raw msgpack bytes of output i. */
const void *sl_harness_output_msgpack(const sl_harness_t *h, size_t i,
                                      size_t *len);
/* Failed records and input errors so far, and the newest message. */
size_t sl_harness_errors(const sl_harness_t *h);
const char *sl_harness_last_error(const sl_harness_t *h);
/* Input-unit accounting for sources: units read (records + input errors). */
uint64_t sl_harness_read(const sl_harness_t *h);

#endif
