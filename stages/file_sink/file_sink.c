/*
 * file_sink: writes records to one file as JSON lines, CSV or raw msgpack.
 *
 * Output goes through a userspace buffer that is written with write(2) when
 * it passes FS_BUF_BYTES, every `flush_every` records if set, at sync()
 * (after each batch when the run keeps source positions), at flush() and at
 * fini, so the cost per record is a decode, an encode and a memcpy (raw
 * msgpack is decoded too, to keep malformed bytes out of the file). One
 * worker at most: a second writer would interleave partial buffers.
 */
#include "record_map.h"

#include <sluice/json.h>
#include <sluice/stage.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define FS_BUF_BYTES (256 * 1024)

typedef enum fs_format {
    FS_JSONL = 0,
    FS_CSV,
    FS_MSGPACK,
} fs_format_t;

typedef struct fs_field {
    const char *name; /* points into the config tree, which outlives us */
    size_t len;
} fs_field_t;

typedef struct fs_opts {
    char *path; /* owned */
    const sl_config_t *path_node;
    fs_format_t format;
    int append;
    fs_field_t *fields; /* owned array; NULL = whole records */
    size_t nfields;
    int64_t flush_every;
    int fsync;
} fs_opts_t;

typedef struct fs_state {
    fs_opts_t o;
    int fd;
    uint64_t pending;       /* records buffered since the last write */
    int unsynced;           /* written since the last fsync */
    msgpack_sbuffer buf;    /* bytes not yet written */
    msgpack_packer pk;      /* packs into buf (msgpack projection) */
    msgpack_sbuffer scratch; /* JSON of one CSV cell */
    msgpack_object_kv *kv;  /* nfields entries, reused for projection */
} fs_state_t;

static const char *const s_keys[] = {"path",        "format", "mode",
                                     "fields",      "fsync",  "flush_every",
                                     NULL};

static const char *s_text(const sl_config_t *n)
{
    const char *s = sl_config_str(n);
    return s ? s : "a sequence or map";
}

static void s_opts_free(fs_opts_t *o)
{
    free(o->path);
    free(o->fields);
    memset(o, 0, sizeof(*o));
}

static fs_format_t s_format_from_ext(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');

    if (!dot)
        return FS_JSONL;
    if (!strcasecmp(dot, ".csv"))
        return FS_CSV;
    if (!strcasecmp(dot, ".msgpack") || !strcasecmp(dot, ".mpk"))
        return FS_MSGPACK;
    return FS_JSONL; /* .jsonl, .ndjson and anything else */
}

static int s_parse_fields(const sl_config_t *node, fs_opts_t *o)
{
    size_t n = sl_config_len(node);
    int rc = 0;

    if (sl_config_type(node) != SL_CONFIG_SEQ)
        return sl_config_error(node, "'fields' must be a list of field "
                                     "names");
    if (n == 0)
        return sl_config_error(node, "'fields' must name at least one "
                                     "field");
    o->fields = calloc(n, sizeof(*o->fields));
    if (!o->fields)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const sl_config_t *item = sl_config_at(node, i);
        const char *name = sl_config_str(item);
        if (!name || sl_config_type(item) == SL_CONFIG_NULL || !*name) {
            rc = sl_config_error(item, "'fields' entry %zu must be a "
                                       "non-empty field name", i + 1);
            continue;
        }
        o->fields[i].name = name;
        o->fields[i].len = strlen(name);
    }
    o->nfields = n;
    return rc;
}

/* Shared by validate and init: reports every problem it finds. On success
 * the caller owns o (s_opts_free); on failure nothing is left allocated. */
static int fs_parse(const sl_config_t *cfg, fs_opts_t *o)
{
    const sl_config_t *n;
    const char *s;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    o->path_node = sl_config_get(cfg, "path");
    if (sl_config_get_path(cfg, "path", NULL, &o->path) < 0) {
        rc = -EINVAL;
    } else if (!o->path) {
        rc = sl_config_error(cfg, "'path' is required (the file to write)");
    } else if (!*o->path || (o->path_node && !*s_text(o->path_node))) {
        rc = sl_config_error(o->path_node, "'path' must not be empty");
    }

    if (sl_config_get_str(cfg, "format", NULL, &s) < 0) {
        rc = -EINVAL;
    } else if (!s) {
        o->format = o->path ? s_format_from_ext(o->path) : FS_JSONL;
    } else if (!strcmp(s, "jsonl")) {
        o->format = FS_JSONL;
    } else if (!strcmp(s, "csv")) {
        o->format = FS_CSV;
    } else if (!strcmp(s, "msgpack")) {
        o->format = FS_MSGPACK;
    } else {
        rc = sl_config_error(sl_config_get(cfg, "format"),
                             "'format' must be jsonl, csv or msgpack, got "
                             "'%s'", s);
    }

    if (sl_config_get_str(cfg, "mode", "truncate", &s) < 0) {
        rc = -EINVAL;
    } else if (!strcmp(s, "append")) {
        o->append = 1;
    } else if (strcmp(s, "truncate")) {
        rc = sl_config_error(sl_config_get(cfg, "mode"),
                             "'mode' must be truncate or append, got '%s'",
                             s);
    }

    n = sl_config_get(cfg, "fields");
    if (n) {
        int frc = s_parse_fields(n, o);
        if (frc < 0)
            rc = frc;
    } else if (o->format == FS_CSV) {
        rc = sl_config_error(cfg, "format csv needs 'fields' (the column "
                                  "order)");
    }

    if (sl_config_get_int(cfg, "flush_every", 0, &o->flush_every) < 0) {
        rc = -EINVAL;
    } else if (o->flush_every < 0) {
        rc = sl_config_error(sl_config_get(cfg, "flush_every"),
                             "'flush_every' must be >= 0 records, got %s",
                             s_text(sl_config_get(cfg, "flush_every")));
    }
    if (sl_config_get_bool(cfg, "fsync", 0, &o->fsync) < 0)
        rc = -EINVAL;

    if (rc < 0)
        s_opts_free(o);
    return rc;
}

static int fs_validate(const sl_config_t *cfg)
{
    fs_opts_t o;
    int rc = fs_parse(cfg, &o);

    if (rc == 0)
        s_opts_free(&o);
    return rc;
}

static int s_put(msgpack_sbuffer *b, const void *s, size_t n)
{
    return msgpack_sbuffer_write(b, s, n) == 0 ? 0 : -ENOMEM;
}

/* Writes the buffer out. On error the unwritten bytes are dropped (keeping
 * them would grow the buffer without bound on a full disk) and -errno is
 * returned; *lost says how many bytes that was. */
static int s_drain(fs_state_t *st, size_t *lost)
{
    size_t off = 0;
    int rc = 0;

    while (off < st->buf.size) {
        ssize_t n = write(st->fd, st->buf.data + off, st->buf.size - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        off += (size_t)n;
    }
    st->unsynced |= off > 0;
    if (lost)
        *lost = st->buf.size - off;
    st->buf.size = 0;
    st->pending = 0;
    return rc;
}

static char *s_u64(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

static int s_put_int(msgpack_sbuffer *b, const msgpack_object *v)
{
    char tmp[24];
    char *end = tmp + sizeof(tmp);
    char *p;

    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        p = s_u64(end, v->via.u64);
    } else {
        /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
        p = s_u64(end, 0 - (uint64_t)v->via.i64);
        *--p = '-';
    }
    return s_put(b, p, (size_t)(end - p));
}

/* Floats as the JSON encoder prints them: the shortest precision that
 * reads back exactly, always with a '.' or exponent so that a reader sees
 * a float (1.0 stays "1.0"), and never a locale's decimal comma, which
 * would split the cell. Non-finite values become an empty cell, as JSON
 * prints them as null. */
static int s_put_double(msgpack_sbuffer *b, double d, int is_f32)
{
    int lo = is_f32 ? 6 : 15, hi = is_f32 ? 9 : 17;
    int mark = 0;
    char tmp[40];
    int n = 0;

    if (!isfinite(d))
        return 0;
    for (int prec = lo; prec <= hi; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        double back = strtod(tmp, NULL);
        if (is_f32 ? (float)back == (float)d : back == d)
            break;
    }
    for (int i = 0; i < n; i++) {
        if (tmp[i] == ',')
            tmp[i] = '.';
        mark |= tmp[i] == '.' || tmp[i] == 'e';
    }
    if (!mark) {
        tmp[n++] = '.';
        tmp[n++] = '0';
    }
    return s_put(b, tmp, (size_t)n);
}

/* RFC 4180: a cell holding a comma, quote or line break is quoted, with
 * quotes doubled. Other bytes are written as they are. */
static int s_put_cell(msgpack_sbuffer *b, const char *s, size_t n)
{
    size_t start = 0;
    int rc;

    if (!memchr(s, ',', n) && !memchr(s, '"', n) && !memchr(s, '\n', n) &&
        !memchr(s, '\r', n))
        return s_put(b, s, n);
    rc = s_put(b, "\"", 1);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (s[i] != '"')
            continue;
        rc = s_put(b, s + start, i + 1 - start); /* through the quote */
        if (rc == 0)
            rc = s_put(b, "\"", 1);
        start = i + 1;
    }
    if (rc == 0)
        rc = s_put(b, s + start, n - start);
    if (rc == 0)
        rc = s_put(b, "\"", 1);
    return rc;
}

static int s_put_csv_value(fs_state_t *st, const msgpack_object *v)
{
    msgpack_sbuffer *b = &st->buf;
    int rc;

    if (!v)
        return 0;
    switch (v->type) {
    case MSGPACK_OBJECT_NIL:
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        return v->via.boolean ? s_put(b, "true", 4) : s_put(b, "false", 5);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return s_put_int(b, v);
    case MSGPACK_OBJECT_FLOAT32:
        return s_put_double(b, v->via.f64, 1);
    case MSGPACK_OBJECT_FLOAT64:
        return s_put_double(b, v->via.f64, 0);
    case MSGPACK_OBJECT_STR:
        return s_put_cell(b, v->via.str.ptr, v->via.str.size);
    default:
        break;
    }
    /* Maps, arrays, bin and ext: their JSON text. bin encodes as a base64
     * JSON string, whose quotes are dropped so the cell holds the base64. */
    st->scratch.size = 0;
    rc = sl_json_encode(v, &st->scratch);
    if (rc < 0)
        return rc;
    if (v->type == MSGPACK_OBJECT_BIN && st->scratch.size >= 2)
        return s_put(b, st->scratch.data + 1, st->scratch.size - 2);
    return s_put_cell(b, st->scratch.data, st->scratch.size);
}

static int s_put_header(fs_state_t *st)
{
    int rc = 0;

    for (size_t i = 0; i < st->o.nfields && rc == 0; i++) {
        if (i)
            rc = s_put(&st->buf, ",", 1);
        if (rc == 0)
            rc = s_put_cell(&st->buf, st->o.fields[i].name,
                            st->o.fields[i].len);
    }
    if (rc == 0)
        rc = s_put(&st->buf, "\n", 1);
    return rc;
}

static int s_put_csv_row(fs_state_t *st, const msgpack_object *map)
{
    int rc = 0;

    for (size_t i = 0; i < st->o.nfields && rc == 0; i++) {
        if (i)
            rc = s_put(&st->buf, ",", 1);
        if (rc == 0)
            rc = s_put_csv_value(st, sl_map_get(map, st->o.fields[i].name));
    }
    if (rc == 0)
        rc = s_put(&st->buf, "\n", 1);
    return rc;
}

/* Points out at a map of just the configured fields, in their order;
 * missing ones are left out. Uses the per-worker kv array: no allocation. */
static void s_project(fs_state_t *st, const msgpack_object *map,
                      msgpack_object *out)
{
    uint32_t n = 0;

    for (size_t i = 0; i < st->o.nfields; i++) {
        const msgpack_object *v = sl_map_get(map, st->o.fields[i].name);
        if (!v)
            continue;
        st->kv[n].key.type = MSGPACK_OBJECT_STR;
        st->kv[n].key.via.str.ptr = st->o.fields[i].name;
        st->kv[n].key.via.str.size = (uint32_t)st->o.fields[i].len;
        st->kv[n].val = *v;
        n++;
    }
    out->type = MSGPACK_OBJECT_MAP;
    out->via.map.size = n;
    out->via.map.ptr = st->kv;
}

/* Opens the file; the message for a missing directory names it, since
 * "No such file or directory" alone reads as if the file should exist. */
static int s_open(fs_state_t *st)
{
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC |
                (st->o.append ? O_APPEND : O_TRUNC);
    const sl_config_t *at = st->o.path_node;
    struct stat sb;
    char *dir;
    char *slash;
    int err;

    st->fd = open(st->o.path, flags, 0666);
    if (st->fd >= 0)
        return 0;
    err = errno;
    if (err != ENOENT)
        return sl_config_error(at, "cannot open '%s': %s", st->o.path,
                               strerror(err));
    dir = strdup(st->o.path);
    if (!dir)
        return -ENOMEM;
    slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    if (stat(dir, &sb) < 0)
        sl_config_error(at, "cannot open '%s': directory '%s' does not "
                            "exist", st->o.path, dir);
    else
        sl_config_error(at, "cannot open '%s': %s", st->o.path,
                        strerror(err));
    free(dir);
    return -ENOENT;
}

static void s_state_free(fs_state_t *st)
{
    if (st->fd >= 0)
        close(st->fd);
    msgpack_sbuffer_destroy(&st->buf);
    msgpack_sbuffer_destroy(&st->scratch);
    free(st->kv);
    s_opts_free(&st->o);
    free(st);
}

static int fs_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    fs_state_t *st;
    struct stat sb;
    int rc;

    (void)ctx;
    st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->fd = -1;
    msgpack_sbuffer_init(&st->buf);
    msgpack_sbuffer_init(&st->scratch);
    msgpack_packer_init(&st->pk, &st->buf, msgpack_sbuffer_write);
    rc = fs_parse(cfg, &st->o);
    if (rc < 0)
        goto fail;
    if (st->o.nfields) {
        st->kv = calloc(st->o.nfields, sizeof(*st->kv));
        if (!st->kv) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    rc = s_open(st);
    if (rc < 0)
        goto fail;
    /* The header goes into a new or truncated file, or an empty one being
     * appended to; a non-empty file being appended to has one already. */
    if (st->o.format == FS_CSV &&
        (!st->o.append || (fstat(st->fd, &sb) == 0 && sb.st_size == 0))) {
        rc = s_put_header(st);
        if (rc < 0)
            goto fail;
    }
    *state = st;
    return 0;
fail:
    s_state_free(st);
    return rc;
}

static int fs_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    fs_state_t *st = state;
    const msgpack_object *map;
    msgpack_object proj;
    size_t mark = st->buf.size;
    size_t lost;
    int rc;

    /* Every format decodes the record first, raw msgpack too: the host
     * checks only the first byte of what a plugin emits, and bytes that are
     * not one whole map would corrupt the file for every reader after them.
     * The decode is bounded by the bytes at hand. */
    rc = stage_record_map(ctx, rec, &map);
    if (rc < 0)
        return rc;
    if (st->o.format == FS_MSGPACK && !st->o.nfields) {
        size_t len;
        const void *data = sl_record_data(rec, &len);
        rc = s_put(&st->buf, data, len);
    } else if (st->o.format == FS_CSV) {
        rc = s_put_csv_row(st, map);
    } else {
        if (st->o.nfields) {
            s_project(st, map, &proj);
            map = &proj;
        }
        if (st->o.format == FS_MSGPACK) {
            rc = msgpack_pack_object(&st->pk, *map) == 0 ? 0 : -ENOMEM;
        } else {
            rc = sl_json_encode(map, &st->buf);
            if (rc == 0)
                rc = s_put(&st->buf, "\n", 1);
        }
    }
    if (rc < 0) {
        /* Only -ENOMEM gets here (the record decoded), which may pass. */
        st->buf.size = mark; /* never leave half a record behind */
        return sl_ctx_error(ctx, "cannot encode the record: %s",
                            strerror(-rc));
    }
    st->pending++;
    if (st->buf.size < FS_BUF_BYTES &&
        (!st->o.flush_every || st->pending < (uint64_t)st->o.flush_every))
        return 0;
    rc = s_drain(st, &lost);
    if (rc < 0)
        return sl_ctx_error(ctx, "cannot write '%s': %s (%zu buffered bytes "
                                 "dropped)", st->o.path, strerror(-rc), lost);
    return 0;
}

static int fs_flush(void *state, sl_ctx_t *ctx)
{
    fs_state_t *st = state;
    size_t lost;
    int rc = s_drain(st, &lost);

    if (rc < 0) {
        sl_log(ctx, SL_LOG_ERROR, "cannot write '%s': %s (%zu buffered "
               "bytes dropped)", st->o.path, strerror(-rc), lost);
        return rc;
    }
    if (st->o.fsync && fsync(st->fd) < 0) {
        rc = -errno;
        sl_log(ctx, SL_LOG_ERROR, "cannot fsync '%s': %s", st->o.path,
               strerror(-rc));
    } else {
        st->unsynced = 0;
    }
    return rc;
}

/* Everything handled so far reaches the kernel (and the disk with
 * `fsync`) before the host commits source positions past it; an error
 * fails the run rather than have positions skip lost records. */
static int fs_sync(void *state, sl_ctx_t *ctx)
{
    fs_state_t *st = state;
    size_t lost;
    int rc = 0;

    if (st->buf.size > 0 && (rc = s_drain(st, &lost)) < 0) {
        sl_log(ctx, SL_LOG_ERROR, "cannot write '%s': %s (%zu buffered "
               "bytes dropped)", st->o.path, strerror(-rc), lost);
        return rc;
    }
    if (st->o.fsync && st->unsynced) {
        if (fsync(st->fd) < 0) {
            rc = -errno;
            sl_log(ctx, SL_LOG_ERROR, "cannot fsync '%s': %s", st->o.path,
                   strerror(-rc));
            return rc;
        }
        st->unsynced = 0;
    }
    return 0;
}

static void fs_fini(void *state)
{
    fs_state_t *st = state;
    size_t lost;
    int rc = s_drain(st, &lost);

    if (rc < 0)
        sl_log(NULL, SL_LOG_ERROR, "file_sink: cannot write '%s': %s (%zu "
               "buffered bytes dropped)", st->o.path, strerror(-rc), lost);
    if (st->fd >= 0 && close(st->fd) < 0)
        sl_log(NULL, SL_LOG_ERROR, "file_sink: cannot close '%s': %s",
               st->o.path, strerror(errno));
    st->fd = -1;
    s_state_free(st);
}

SL_STAGE_DEFINE(.name = "file_sink",
                .summary = "writes records to a file as JSON lines, CSV or "
                           "msgpack",
                .kind = SL_STAGE_SINK,
                .max_workers = 1,
                .config_keys = s_keys,
                .validate = fs_validate,
                .init = fs_init,
                .process = fs_process,
                .flush = fs_flush,
                .sync = fs_sync,
                .fini = fs_fini);
