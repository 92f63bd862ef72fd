/*
 * The inside of `sluice test`, shared by its modules: stagetest_parse.c
 * (with stagetest_expect.c and stagetest_value.c) turns a test file into
 * cases, stagetest_stage.c and stagetest_topo.c run them,
 * stagetest_match.c and stagetest_check.c compare what came out with what
 * was expected, and stagetest.c drives files and cases. Nothing else
 * includes this.
 */
#ifndef SL_STAGETEST_INT_H
#define SL_STAGETEST_INT_H

#include "config.h"
#include "diag.h"
#include "stagetest.h"

#include <msgpack.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Failure reasons kept per case; past this one line says how many more. */
#define SL_STEST_MAX_REASONS 40
/* A source that has not ended after this many records fails its case
 * (unless the case stops it with stop_after). */
#define SL_STEST_MAX_RECORDS 100000u
#define SL_STEST_TIMEOUT_MS 30000u

/* Bytes: a msgpack value, or a file's content. */
typedef struct sl_stest_blob {
    char *data;
    size_t len;
} sl_stest_blob_t;

/* A number in a condition (gt, ge, lt, le): integers compare exactly. */
typedef struct sl_stest_num {
    bool is_int;
    bool neg;     /* integers: below zero */
    uint64_t mag; /* integers: magnitude */
    double d;     /* the value as a double (also for integers) */
    char *text;   /* as written, for messages */
} sl_stest_num_t;

enum {
    SL_STEST_EQUALS = 1u << 0,
    SL_STEST_TYPE = 1u << 1,
    SL_STEST_MATCHES = 1u << 2,
    SL_STEST_EXISTS = 1u << 3,
    SL_STEST_GT = 1u << 4,
    SL_STEST_GE = 1u << 5,
    SL_STEST_LT = 1u << 6,
    SL_STEST_LE = 1u << 7,
};

/* One `where:` condition on a field of every output record. */
typedef struct sl_stest_cond {
    char *field; /* dotted path */
    unsigned ops;
    sl_stest_blob_t equals;
    char *type; /* int|float|string|bool|null|map|array|binary */
    char *pattern;
    regex_t re;
    bool re_ok;
    bool exists;
    sl_stest_num_t bound[4]; /* gt, ge, lt, le */
} sl_stest_cond_t;

/* What one stream of records must be: a stage's output, or what reaches
 * a captured stage in a topology. */
typedef struct sl_stest_expect {
    bool has_records;
    sl_stest_blob_t *records;
    size_t n_records;
    bool has_count;
    uint64_t count;
    sl_stest_cond_t *where;
    size_t n_where;
    bool ordered;
} sl_stest_expect_t;

/* One expected dead letter; unset parts match anything. */
typedef struct sl_stest_dl {
    char *error; /* a substring of the message */
    int retry;   /* -1 unset, 0 final, 1 retryable */
    char *stage; /* topology cases */
    bool has_record;
    sl_stest_blob_t record;
} sl_stest_dl_t;

/* A file made before the case, or expected after it (path in the case's
 * temporary folder). */
typedef struct sl_stest_fdata {
    char *path;
    sl_stest_blob_t content;
} sl_stest_fdata_t;

/* A stage of a topology case whose input is captured and checked. */
typedef struct sl_stest_target {
    char *stage;
    const sl_config_t *node; /* its key under expect */
    sl_stest_expect_t want;
} sl_stest_target_t;

typedef enum sl_stest_kind {
    SL_STEST_STAGE = 1,
    SL_STEST_TOPOLOGY = 2
} sl_stest_kind_t;

typedef struct sl_stest_case {
    char *name;
    const sl_config_t *node;
    sl_stest_kind_t kind;
    /* one stage */
    char *plugin;
    const sl_config_t *stage_node;
    const sl_config_t *config; /* NULL when the case gives none */
    uint64_t stop_after;       /* sources: ask to stop after so many */
    /* a topology */
    char *topology; /* resolved path */
    char *inject;
    const sl_config_t *inject_node;
    /* both */
    uint64_t timeout_ms;
    sl_stest_fdata_t *files;
    size_t n_files;
    bool has_input;
    sl_stest_blob_t *input;
    size_t n_input;
    sl_stest_expect_t out; /* one stage: its output */
    sl_stest_target_t *targets;
    size_t n_targets;
    sl_stest_dl_t *dls;
    size_t n_dls;
    sl_stest_fdata_t *want_files;
    size_t n_want_files;
    bool has_stdout;
    sl_stest_blob_t want_stdout;
    char *start_error;
} sl_stest_case_t;

/* ---- what a case produced ------------------------------------------------ */

typedef struct sl_stest_got_dl {
    char *stage;
    char *error;
    bool final;
    uint32_t attempts;
    sl_stest_blob_t record; /* len 0: none (an input error) */
} sl_stest_got_dl_t;

typedef struct sl_stest_stream {
    char *stage; /* NULL: the stage under test */
    sl_stest_blob_t *recs;
    size_t n, cap;
} sl_stest_stream_t;

typedef struct sl_stest_got {
    sl_stest_stream_t *streams;
    size_t n_streams;
    sl_stest_got_dl_t *dls;
    size_t n_dls, cap_dls;
} sl_stest_got_t;

void sl__stest_got_fini(sl_stest_got_t *got);
/* Appends a copy of len bytes to a stream / a dead letter to got.
 * 0 or -ENOMEM. */
int sl__stest_stream_add(sl_stest_stream_t *s, const void *data, size_t len);
int sl__stest_got_dl(sl_stest_got_t *got, const char *stage,
                     const char *error, bool final, uint32_t attempts,
                     const void *record, size_t len);

/* Adds a failure reason, keeping at most SL_STEST_MAX_REASONS. */
void sl__stest_fail(sl_diag_t *reasons, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- stagetest_parse.c, stagetest_expect.c, stagetest_value.c ----------- */

/* Reads every case of doc's root; problems go through sl_config_error
 * (so the doc must report to a diag). Returns 0, or -EINVAL if there was
 * any problem (*cases is then NULL). */
int sl__stest_parse_cases(const sl_config_doc_t *doc, sl_stest_case_t **cases,
                          size_t *n);
void sl__stest_cases_free(sl_stest_case_t *cases, size_t n);

/* Reading one test file: where relative paths start, the case being read
 * (put before each message) and how many problems were reported. */
typedef struct sl_stest_parse {
    const sl_config_doc_t *doc;
    char label[160]; /* "test 'name'", or empty */
    unsigned errors;
} sl_stest_parse_t;

/* Reports "FILE:LINE:COL: LABEL: message" at node and counts it. */
void sl__stest_perr(sl_stest_parse_t *p, const sl_config_t *node,
                    const char *fmt, ...) SL_PRINTF(3, 4);
/* "a string", "an integer", ... for messages. */
const char *sl__stest_a(sl_config_type_t t);
bool sl__stest_is_scalar(const sl_config_t *n);
/* Reports every key of map not in allowed (NULL-ended); `where` names the
 * map in the message. */
void sl__stest_keys(sl_stest_parse_t *p, const sl_config_t *map,
                    const char *const *allowed, const char *where);
/* Each reads n (the value of key `what`) or reports why it cannot:
 * 0 or -EINVAL (-ENOMEM). */
int sl__stest_map(sl_stest_parse_t *p, const sl_config_t *n,
                  const char *what);
int sl__stest_seq(sl_stest_parse_t *p, const sl_config_t *n,
                  const char *what);
int sl__stest_str(sl_stest_parse_t *p, const sl_config_t *n, const char *what,
                  char **out);
int sl__stest_bool(sl_stest_parse_t *p, const sl_config_t *n,
                   const char *what, bool *out);
int sl__stest_uint(sl_stest_parse_t *p, const sl_config_t *n,
                   const char *what, uint64_t min, uint64_t *out);
/* Any value, packed. */
int sl__stest_value(sl_stest_parse_t *p, const sl_config_t *n,
                    sl_stest_blob_t *out);
/* Record i of a list (`what` names it in messages): a map, or with raw
 * `!!binary` bytes passed on as they are. */
int sl__stest_record(sl_stest_parse_t *p, const sl_config_t *n,
                     const char *what, size_t i, bool raw,
                     sl_stest_blob_t *out);
int sl__stest_records(sl_stest_parse_t *p, const sl_config_t *n,
                      const char *key, const char *what, bool raw,
                      sl_stest_blob_t **out, size_t *len);
/* A file's content: a string, `!!binary` bytes or null (empty). */
int sl__stest_content(sl_stest_parse_t *p, const sl_config_t *n,
                      const char *path, sl_stest_blob_t *out);
/* `files:`: relative path -> content. */
int sl__stest_files(sl_stest_parse_t *p, const sl_config_t *n,
                    sl_stest_fdata_t **out, size_t *len);

/* A case's `expect:` map, read into c (whose kind is known). */
int sl__stest_parse_expect(sl_stest_parse_t *p, const sl_config_t *n,
                           sl_stest_case_t *c);
void sl__stest_expect_fini(sl_stest_expect_t *e);

/* Packs a YAML value as msgpack: ints stay ints, floats floats, quoted
 * scalars strings, `!!binary` bin. Problems are reported at the node. */
int sl__stest_pack(const sl_config_t *node, msgpack_packer *pk);
/* The bytes of a `!!binary` scalar (malloc'd); a reported -EINVAL when
 * they are not base64. */
int sl__stest_binary(const sl_config_t *n, unsigned char **out, size_t *len);

/* ---- stagetest_match.c, stagetest_check.c ------------------------------- */

/* Values shown in messages are cut to this many characters of JSON. */
#define SL_STEST_SHOW_MAX 160

/* "int", "float", "string", "bool", "null", "map", "array", "binary",
 * "ext". */
const char *sl__stest_type_name(const msgpack_object *o);
/* o as short JSON with its type: `200 (int)`, into buf. */
void sl__stest_show(const msgpack_object *o, char *buf, size_t len);
/* o (a record) as short JSON; s[0..len) as a JSON string. */
void sl__stest_show_rec(const msgpack_object *o, char *buf, size_t len);
void sl__stest_json(const msgpack_object *o, char *buf, size_t len);
void sl__stest_quote(const char *s, size_t len, char *out, size_t outlen);
const char *sl__stest_plural(size_t n, const char *one, const char *many);
/* Deep, type-aware equality (1 != 1.0 != "1"; map key order ignored). */
bool sl__stest_equal(const msgpack_object *a, const msgpack_object *b);
/* The first difference between two unequal values, as a reason would
 * say it (`field "a": expected 1 (int), got 2 (int)`). */
void sl__stest_first_diff(const msgpack_object *w, const msgpack_object *g,
                          char *out, size_t len);
/* Unpacks a blob into zone; false (and *o nil) if it is not msgpack. */
bool sl__stest_unpack(const sl_stest_blob_t *b, msgpack_zone *zone,
                      msgpack_object *o);

/* Each checks one kind of expectation and adds a reason per difference.
 * `label` ("stage 'store': ") goes before each reason; may be "". */
void sl__stest_check_stream(const sl_stest_expect_t *want,
                            const sl_stest_stream_t *got, const char *label,
                            sl_diag_t *reasons);
void sl__stest_check_dls(const sl_stest_case_t *c, const sl_stest_got_t *got,
                         bool ordered, sl_diag_t *reasons);
/* expected files relative to dir; stdout_path: what the case printed. */
void sl__stest_check_files(const sl_stest_case_t *c, const char *dir,
                           const char *stdout_path, sl_diag_t *reasons);

/* ---- stagetest_stage.c / stagetest_topo.c -------------------------------- */

/* Runs a one-stage case whose config nodes belong to doc, in folder tmp.
 * What came out goes to got, problems running it to reasons. */
void sl__stest_run_stage(const sl_stest_case_t *c, sl_config_doc_t *doc,
                         sl_stest_got_t *got, sl_diag_t *reasons);
/* The stage kind of a plugin, or 0 if it cannot be loaded. */
int sl__stest_plugin_kind(const char *plugin);

void sl__stest_run_topology(const sl_stest_case_t *c, const char *tmp,
                            sl_stest_got_t *got, sl_diag_t *reasons);
/* Load-time checks of a topology case against its topology (when it
 * loads): inject and expect name stages that exist and can be reached.
 * Problems are reported at the case's nodes; -EINVAL if any. */
int sl__stest_check_topology(const sl_stest_case_t *c);

#endif
