/*
 * file_source: reads one file as text lines, JSON lines, CSV or a stream of
 * msgpack maps and emits one record per unit.
 *
 * The file is read in 256 KiB blocks (reader.c); lines are handed on as
 * pointers into that buffer and packed straight into the output, so a
 * record costs no allocation. A unit that cannot become a record (invalid
 * JSON, a CSV row of the wrong width, an over-long line) is reported with
 * sl_ctx_input_error naming FILE:LINE (or FILE: byte N) and skipped.
 *
 * Each pull ends by recording the position after the last unit handled
 * (position.h), so that a run with `state_dir:` resumes where the records
 * it had finished end; a position that no longer fits the file (replaced,
 * truncated, corrupt) is refused with a warning and the file read again.
 */
#include <sluice/json.h>
#include <sluice/stage.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "csv_row.h"
#include "mpk_scan.h"
#include "position.h"
#include "reader.h"

#define FS_DEFAULT_MAX_LINE (1024 * 1024)
#define FS_LIMIT_MAX_LINE (1024 * 1024 * 1024)
/* Lines looked at per pull() even if none becomes a record (a run of bad
 * or blank lines), so that pull() returns promptly. */
#define FS_UNITS_PER_PULL 65536
/* What a step returns at the end of the input (1 means "emitted one"). */
#define FS_DONE 2

typedef enum fs_format {
    FS_LINES = 0,
    FS_JSONL,
    FS_CSV,
    FS_MSGPACK,
} fs_format_t;

static const char *const s_format_names[] = {"lines", "jsonl", "csv",
                                             "msgpack"};

typedef struct fs_opts {
    char *path; /* owned */
    fs_format_t format;
    int with_position;
    size_t max_line;
    const sl_config_t *header; /* a sequence in the config tree, or NULL */
    unsigned char delim;
    unsigned char quote;
} fs_opts_t;

typedef struct fs_state {
    fs_opts_t o;
    fs_reader_t rd;
    int at_end;             /* input exhausted; the next pull says SL_EOF */
    msgpack_sbuffer scratch; /* one decoded JSON line */
    msgpack_packer spk;     /* packs into scratch */
    /* csv */
    csv_row_t csv;
    int csv_ready;
    char *names;            /* header names back to back, owned */
    size_t *name_off;       /* ncols + 1 offsets into names, owned */
    size_t ncols;           /* 0 until the header is known */
    int in_row;             /* a row has started and not yet ended */
    uint64_t row_line;      /* line where the current row started */
    uint64_t row_off;       /* file offset where it started */
    size_t row_bytes;
    /* resuming */
    int started;            /* the first pull has looked at the resume */
    int quiet;              /* re-reading a csv header after a resume */
    uint64_t ino;
    char *real;             /* absolute path with links resolved, owned */
    unsigned char *pos;     /* the encoded position, pos_len bytes, or NULL */
    size_t pos_len;
    fs_fp_t fp;
} fs_state_t;

static const char *const s_keys[] = {"path",      "format", "with_position",
                                     "max_line",  "header", "delimiter",
                                     "quote",     NULL};

/* ---- config -------------------------------------------------------------- */

static fs_format_t s_format_from_ext(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');

    if (!dot)
        return FS_LINES;
    if (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".ndjson") ||
        !strcasecmp(dot, ".json"))
        return FS_JSONL;
    if (!strcasecmp(dot, ".csv"))
        return FS_CSV;
    if (!strcasecmp(dot, ".msgpack") || !strcasecmp(dot, ".mpk"))
        return FS_MSGPACK;
    return FS_LINES;
}

/* A one-byte option such as the CSV delimiter. */
static int s_parse_char(const sl_config_t *cfg, const char *key, char dflt,
                        unsigned char *out)
{
    const char *s;

    if (sl_config_get_str(cfg, key, NULL, &s) < 0)
        return -EINVAL;
    if (!s) {
        *out = (unsigned char)dflt;
        return 0;
    }
    if (strlen(s) != 1 || s[0] == '\n' || s[0] == '\r')
        return sl_config_error(sl_config_get(cfg, key),
                               "'%s' must be a single character other than "
                               "a line break, got '%s'", key, s);
    *out = (unsigned char)s[0];
    return 0;
}

static int s_parse_header(const sl_config_t *node)
{
    size_t n = sl_config_len(node);
    int rc = 0;

    if (sl_config_type(node) != SL_CONFIG_SEQ || n == 0)
        return sl_config_error(node, "'header' must be a non-empty list of "
                                     "column names");
    for (size_t i = 0; i < n; i++) {
        const sl_config_t *item = sl_config_at(node, i);
        const char *name = sl_config_str(item);
        if (sl_config_type(item) == SL_CONFIG_NULL || !name || !*name)
            rc = sl_config_error(item, "'header' entry %zu must be a "
                                       "non-empty column name", i + 1);
    }
    return rc;
}

static void s_opts_free(fs_opts_t *o)
{
    free(o->path);
    memset(o, 0, sizeof(*o));
}

/* Shared by validate and init; reports every problem. On success the
 * caller owns o (s_opts_free); on failure nothing is left allocated. */
static int s_parse(const sl_config_t *cfg, fs_opts_t *o)
{
    const sl_config_t *n;
    const char *s;
    int64_t max_line;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    n = sl_config_get(cfg, "path");
    if (sl_config_get_path(cfg, "path", NULL, &o->path) < 0)
        rc = -EINVAL;
    else if (!o->path)
        rc = sl_config_error(cfg, "'path' is required (the file to read)");
    else if (!*o->path || (n && sl_config_str(n) && !*sl_config_str(n)))
        rc = sl_config_error(n, "'path' must not be empty");

    o->format = o->path ? s_format_from_ext(o->path) : FS_LINES;
    if (sl_config_get_str(cfg, "format", NULL, &s) < 0) {
        rc = -EINVAL;
    } else if (s) {
        size_t i = 0;
        while (i < 4 && strcmp(s, s_format_names[i]))
            i++;
        if (i == 4)
            rc = sl_config_error(sl_config_get(cfg, "format"),
                                 "'format' must be lines, jsonl, csv or "
                                 "msgpack, got '%s'", s);
        else
            o->format = (fs_format_t)i;
    }

    if (sl_config_get_bool(cfg, "with_position", 0, &o->with_position) < 0)
        rc = -EINVAL;
    else if (o->with_position && o->format == FS_MSGPACK)
        rc = sl_config_error(sl_config_get(cfg, "with_position"),
                             "'with_position' is not available for format "
                             "msgpack (it has no lines)");

    if (sl_config_get_int(cfg, "max_line", FS_DEFAULT_MAX_LINE, &max_line) <
        0)
        rc = -EINVAL;
    else if (max_line < 1 || max_line > FS_LIMIT_MAX_LINE)
        rc = sl_config_error(sl_config_get(cfg, "max_line"),
                             "'max_line' must be between 1 and %d bytes, "
                             "got %lld", FS_LIMIT_MAX_LINE,
                             (long long)max_line);
    else
        o->max_line = (size_t)max_line;

    o->header = sl_config_get(cfg, "header");
    if (o->header && s_parse_header(o->header) < 0)
        rc = -EINVAL;
    if (s_parse_char(cfg, "delimiter", ',', &o->delim) < 0 ||
        s_parse_char(cfg, "quote", '"', &o->quote) < 0)
        rc = -EINVAL;
    else if (o->delim == o->quote)
        rc = sl_config_error(sl_config_get(cfg, "quote")
                                 ? sl_config_get(cfg, "quote")
                                 : sl_config_get(cfg, "delimiter"),
                             "'quote' and 'delimiter' must differ");

    if (o->format != FS_CSV) {
        static const char *const csv_only[] = {"header", "delimiter", "quote"};
        for (size_t i = 0; i < 3; i++) {
            n = sl_config_get(cfg, csv_only[i]);
            if (n)
                rc = sl_config_error(n, "'%s' applies to format csv only "
                                        "(the format here is %s)",
                                     csv_only[i], s_format_names[o->format]);
        }
    }

    if (rc < 0)
        s_opts_free(o);
    return rc;
}

static int fs_validate(const sl_config_t *cfg)
{
    fs_opts_t o;
    int rc = s_parse(cfg, &o);

    if (rc == 0)
        s_opts_free(&o);
    return rc;
}

/* ---- lifecycle ----------------------------------------------------------- */

static void fs_fini(void *state)
{
    fs_state_t *st = state;

    if (!st)
        return;
    if (st->csv_ready)
        csv_row_fini(&st->csv);
    free(st->names);
    free(st->name_off);
    msgpack_sbuffer_destroy(&st->scratch);
    fs_reader_close(&st->rd);
    s_opts_free(&st->o);
    free(st->pos);
    free(st->real);
    free(st);
}

/* Takes the header from the config, when given. */
static int s_set_header_from_config(fs_state_t *st)
{
    size_t n = sl_config_len(st->o.header), total = 0;

    for (size_t i = 0; i < n; i++)
        total += strlen(sl_config_str(sl_config_at(st->o.header, i)));
    st->names = malloc(total ? total : 1);
    st->name_off = calloc(n + 1, sizeof(*st->name_off));
    if (!st->names || !st->name_off)
        return -ENOMEM;
    total = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = sl_config_str(sl_config_at(st->o.header, i));
        size_t len = strlen(s);
        memcpy(st->names + total, s, len);
        st->name_off[i] = total;
        total += len;
    }
    st->name_off[n] = total;
    st->ncols = n;
    return 0;
}

/* Room for the position, unless the path is too long to fit one. The
 * position names the file by its real path: the configured one is
 * relative to the topology's folder as given on the command line, which
 * may differ from run to run. */
static int s_pos_alloc(fs_state_t *st, sl_ctx_t *ctx)
{
    struct stat sb;
    size_t plen;

    if (fstat(st->rd.fd, &sb) < 0)
        return -errno;
    st->ino = (uint64_t)sb.st_ino;
    st->real = realpath(st->o.path, NULL);
    if (!st->real && !(st->real = strdup(st->o.path)))
        return -ENOMEM;
    plen = strlen(st->real);
    if (plen > UINT16_MAX ||
        file_pos_size(&fs_pos_kind, plen) > SL_POSITION_MAX) {
        sl_log(ctx, SL_LOG_WARN, "%.64s...: path too long to keep a resume "
               "position; a later run reads the file from the beginning",
               st->o.path);
        return 0;
    }
    st->pos_len = file_pos_size(&fs_pos_kind, plen);
    st->pos = malloc(st->pos_len);
    return st->pos ? 0 : -ENOMEM;
}

static int fs_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    fs_state_t *st = calloc(1, sizeof(*st));
    int rc;

    if (!st)
        return -ENOMEM;
    st->rd.fd = -1;
    msgpack_sbuffer_init(&st->scratch);
    msgpack_packer_init(&st->spk, &st->scratch, msgpack_sbuffer_write);
    rc = s_parse(cfg, &st->o);
    if (rc < 0)
        goto fail;
    if (st->o.format == FS_CSV) {
        if (st->o.header && (rc = s_set_header_from_config(st)) < 0)
            goto fail;
        /* Keep one field more than the header so a wide row is counted but
         * never stored whole; the header row itself is kept entirely. */
        rc = csv_row_init(&st->csv, st->o.delim, st->o.quote,
                          st->ncols ? st->ncols : SIZE_MAX);
        if (rc < 0)
            goto fail;
        st->csv_ready = 1;
    }
    rc = fs_reader_open(&st->rd, st->o.path, st->o.max_line);
    if (rc < 0) {
        const sl_config_t *n = sl_config_get(cfg, "path");
        sl_config_error(n ? n : cfg, "cannot open '%s': %s", st->o.path,
                        strerror(-rc));
        goto fail;
    }
    rc = s_pos_alloc(st, ctx);
    if (rc < 0)
        goto fail;
    *state = st;
    return 0;

fail:
    fs_fini(st);
    return rc;
}

/* ---- emitting ------------------------------------------------------------ */

/* Input errors go through here so that re-reading a csv header after a
 * resume does not count again what the earlier run counted. */
static void SL_PRINTF(3, 4) s_input_error(fs_state_t *st, sl_ctx_t *ctx,
                                          const char *fmt, ...)
{
    char msg[SL_POSITION_MAX + 512];
    va_list ap;

    if (st->quiet)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sl_ctx_input_error(ctx, "%s", msg);
}

static void s_pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str_with_body(pk, s, n);
}

static void s_pack_position(fs_state_t *st, msgpack_packer *pk,
                            uint64_t lineno)
{
    s_pack_str(pk, "file", 4);
    s_pack_str(pk, st->o.path, strlen(st->o.path));
    s_pack_str(pk, "lineno", 6);
    msgpack_pack_uint64(pk, lineno);
}

static int s_emit_line(fs_state_t *st, sl_ctx_t *ctx, const char *line,
                       size_t len)
{
    msgpack_packer *pk = sl_emit_begin(ctx);

    if (!pk)
        return -ENOBUFS;
    msgpack_pack_map(pk, st->o.with_position ? 3 : 1);
    s_pack_str(pk, "line", 4);
    s_pack_str(pk, line, len);
    if (st->o.with_position)
        s_pack_position(st, pk, st->rd.lineno);
    return sl_emit_commit(ctx);
}

/* What a msgpack value is, from its first byte, for error messages. */
static const char *s_kind(unsigned char c)
{
    if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3))
        return "a number";
    if (c <= 0x8f || c == 0xde || c == 0xdf)
        return "a map";
    if (c <= 0x9f || c == 0xdc || c == 0xdd)
        return "an array";
    if (c <= 0xbf || (c >= 0xd9 && c <= 0xdb))
        return "a string";
    if (c == 0xc0)
        return "null";
    if (c == 0xc2 || c == 0xc3)
        return "a boolean";
    if (c == 0xca || c == 0xcb)
        return "a number";
    if (c >= 0xc4 && c <= 0xc6)
        return "binary data";
    return "an extension value";
}

static int s_is_map_head(unsigned char c)
{
    return (c & 0xf0) == 0x80 || c == 0xde || c == 0xdf;
}

/* Entries and header size of the msgpack map at p (p[0] is a map head). */
static size_t s_map_head(const unsigned char *p, uint32_t *count)
{
    if ((p[0] & 0xf0) == 0x80) {
        *count = p[0] & 0x0f;
        return 1;
    }
    if (p[0] == 0xde) {
        *count = (uint32_t)p[1] << 8 | p[2];
        return 3;
    }
    *count = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
             (uint32_t)p[3] << 8 | p[4];
    return 5;
}

static int s_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

/* One JSON line. Decoded into scratch first: a line that turns out not to
 * be an object must leave nothing half-emitted, and the API has no way to
 * take back an sl_emit_begin. Returns 1 if a record was emitted. */
static int s_jsonl(fs_state_t *st, sl_ctx_t *ctx, const char *line,
                   size_t len)
{
    char err[256];
    unsigned long lineno = (unsigned long)st->rd.lineno;

    if (s_blank(line, len))
        return 0;
    st->scratch.size = 0;
    int rc = sl_json_decode(line, len, &st->spk, err, sizeof(err));
    if (rc == -EBADMSG) {
        /* The text is one line: "line 1 column C" is just "column C". */
        const char *e = strncmp(err, "line 1 ", 7) ? err : err + 7;
        s_input_error(st, ctx, "%s:%lu: invalid JSON: %s", st->o.path,
                      lineno, e);
        return 0;
    }
    if (rc < 0)
        return rc;
    const unsigned char *p = (const unsigned char *)st->scratch.data;
    if (!s_is_map_head(p[0])) {
        s_input_error(st, ctx, "%s:%lu: expected a JSON object, got %s",
                      st->o.path, lineno, s_kind(p[0]));
        return 0;
    }
    if (!st->o.with_position) {
        rc = sl_emit_raw(ctx, p, st->scratch.size);
        return rc < 0 ? rc : 1;
    }
    uint32_t count;
    size_t hlen = s_map_head(p, &count);
    msgpack_packer *pk = sl_emit_begin(ctx);
    if (!pk)
        return -ENOBUFS;
    msgpack_pack_map(pk, count + 2);
    /* The entries are already msgpack: copy them as they are. */
    pk->callback(pk->data, (const char *)p + hlen, st->scratch.size - hlen);
    s_pack_position(st, pk, lineno);
    rc = sl_emit_commit(ctx);
    return rc < 0 ? rc : 1;
}

/* ---- csv ----------------------------------------------------------------- */

static int s_csv_take_header(fs_state_t *st)
{
    csv_row_t *r = &st->csv;
    size_t n = r->first;

    st->names = malloc(r->len ? r->len : 1);
    st->name_off = malloc((n + 1) * sizeof(*st->name_off));
    if (!st->names || !st->name_off)
        return -ENOMEM;
    memcpy(st->names, r->buf, r->len);
    memcpy(st->name_off, r->off, (n + 1) * sizeof(*st->name_off));
    st->ncols = n;
    r->keep = n;
    return 0;
}

/* Handles the row that just ended. Returns 1 if a record was emitted. */
static int s_csv_row(fs_state_t *st, sl_ctx_t *ctx)
{
    csv_row_t *r = &st->csv;
    int rc = 0;

    if (st->ncols == 0) {
        rc = s_csv_take_header(st);
    } else if (r->first != st->ncols) {
        s_input_error(st, ctx, "%s:%lu: expected %zu fields, got %zu",
                      st->o.path, (unsigned long)st->row_line, st->ncols,
                      r->first);
    } else {
        msgpack_packer *pk = sl_emit_begin(ctx);
        if (!pk)
            return -ENOBUFS;
        msgpack_pack_map(pk, st->ncols + (st->o.with_position ? 2 : 0));
        for (size_t i = 0; i < st->ncols; i++) {
            size_t len;
            const char *v = csv_row_field(r, i, &len);
            s_pack_str(pk, st->names + st->name_off[i],
                       st->name_off[i + 1] - st->name_off[i]);
            s_pack_str(pk, v, len);
        }
        if (st->o.with_position)
            s_pack_position(st, pk, st->row_line);
        rc = sl_emit_commit(ctx);
        rc = rc < 0 ? rc : 1;
    }
    csv_row_clear(r);
    st->in_row = 0;
    return rc;
}

/* Reports a broken row and forgets it. */
static void s_csv_drop(fs_state_t *st, sl_ctx_t *ctx, unsigned long line,
                       const char *what)
{
    s_input_error(st, ctx, "%s:%lu: %s", st->o.path, line, what);
    csv_row_reset(&st->csv);
    st->in_row = 0;
}

/* One physical line (with its "\n"), or the end of the file (line NULL). */
static int s_csv_line(fs_state_t *st, sl_ctx_t *ctx, const char *line,
                      size_t len)
{
    char msg[96];
    int rc;

    if (!line) {
        if (!st->in_row)
            return 0;
        rc = csv_row_end(&st->csv);
        if (rc == -EBADMSG) {
            s_csv_drop(st, ctx, (unsigned long)st->row_line,
                       "unterminated quoted field");
            return 0;
        }
        if (rc < 0)
            return rc;
        return st->csv.rows ? s_csv_row(st, ctx) : 0;
    }
    if (!st->in_row) {
        /* Blank lines are no rows; libcsv skips them the same way. */
        if (s_blank(line, len))
            return 0;
        st->in_row = 1;
        st->row_line = st->rd.lineno;
        st->row_off = fs_reader_offset(&st->rd) - len;
        st->row_bytes = 0;
    }
    st->row_bytes += len;
    if (st->row_bytes > st->o.max_line + 2) {
        snprintf(msg, sizeof(msg), "row longer than max_line (%zu bytes)",
                 st->o.max_line);
        s_csv_drop(st, ctx, (unsigned long)st->row_line, msg);
        return 0;
    }
    rc = csv_row_feed(&st->csv, line, len);
    if (rc == -EBADMSG) {
        s_csv_drop(st, ctx, (unsigned long)st->rd.lineno,
                   "invalid CSV: misplaced quote character");
        return 0;
    }
    if (rc < 0)
        return rc;
    if (!st->csv.rows && (len == 0 || line[len - 1] != '\n'))
        return s_csv_line(st, ctx, NULL, 0); /* last line, no newline */
    return st->csv.rows ? s_csv_row(st, ctx) : 0;
}

/* ---- msgpack ------------------------------------------------------------- */

static int s_msgpack(fs_state_t *st, sl_ctx_t *ctx)
{
    fs_reader_t *rd = &st->rd;
    long avail = fs_reader_fill(rd, 1);
    size_t len = 0;

    if (avail <= 0)
        return avail < 0 ? (int)avail : FS_DONE;
    for (;;) {
        const char *p = fs_reader_data(rd);
        unsigned long long off = (unsigned long long)fs_reader_offset(rd);
        fs_mpk_result_t r = fs_mpk_scan(p, (size_t)avail, &len);
        if (r == FS_MPK_DONE) {
            int is_map = s_is_map_head((unsigned char)p[0]), rc = 0;
            if (is_map)
                rc = sl_emit_raw(ctx, p, len);
            else
                s_input_error(st, ctx, "%s: byte %llu: expected a msgpack "
                                   "map, got %s", st->o.path, off,
                              s_kind((unsigned char)p[0]));
            fs_reader_consume(rd, len);
            return rc < 0 ? rc : is_map;
        }
        /* Past a bad byte there is no telling where the next value
         * starts, so the rest of the file is given up. */
        if (r == FS_MPK_INVALID || r == FS_MPK_DEEP) {
            s_input_error(st, ctx, "%s: byte %llu: %s", st->o.path,
                          off + len,
                          r == FS_MPK_DEEP
                              ? "msgpack value nested deeper than 32 "
                                "levels; rest of file skipped"
                              : "invalid msgpack data (byte 0xc1); "
                                "rest of file skipped");
            return FS_DONE;
        }
        if (rd->eof) {
            s_input_error(st, ctx, "%s: byte %llu: truncated msgpack value "
                               "at end of file", st->o.path, off);
            /* Not consumed: the position stays before it, in case the
             * writer was only halfway through. */
            return FS_DONE;
        }
        size_t want = (size_t)avail + LINE_BUF_CHUNK;
        if ((size_t)avail >= rd->b.max_cap) {
            s_input_error(st, ctx, "%s: byte %llu: msgpack value larger than "
                               "max_line (%zu bytes); rest of file "
                               "skipped", st->o.path, off,
                          st->o.max_line);
            return FS_DONE;
        }
        if (want > rd->b.max_cap)
            want = rd->b.max_cap;
        avail = fs_reader_fill(rd, want);
        if (avail < 0)
            return (int)avail;
    }
}

/* ---- pull ---------------------------------------------------------------- */

/* Reads one unit. Returns 1 if a record was emitted, 0 if not, FS_DONE at
 * the end of the input, or a negative code for a fatal error. */
static int s_step(fs_state_t *st, sl_ctx_t *ctx)
{
    const char *line;
    size_t len;
    int rc;

    if (st->o.format == FS_MSGPACK)
        return s_msgpack(st, ctx);
    rc = fs_reader_line(&st->rd, st->o.format == FS_CSV, &line, &len);
    if (rc == -E2BIG) {
        if (st->o.format == FS_CSV && st->in_row) {
            csv_row_reset(&st->csv);
            st->in_row = 0;
        }
        s_input_error(st, ctx, "%s:%lu: line longer than max_line (%zu "
                           "bytes)", st->o.path,
                      (unsigned long)st->rd.lineno, st->o.max_line);
        return 0;
    }
    if (rc < 0)
        return rc;
    if (rc == 0) {
        if (st->o.format == FS_CSV) {
            rc = s_csv_line(st, ctx, NULL, 0);
            if (rc != 0)
                return rc;
        }
        return FS_DONE;
    }
    switch (st->o.format) {
    case FS_LINES:
        rc = s_emit_line(st, ctx, line, len);
        return rc < 0 ? rc : 1;
    case FS_JSONL:
        return s_jsonl(st, ctx, line, len);
    default:
        return s_csv_line(st, ctx, line, len);
    }
}

/* ---- positions ----------------------------------------------------------- */

/* Records where the next pull reads on: after the last unit handled, or at
 * the start of a csv row that is only partly read. No I/O once the file's
 * first FILE_FP_MAX bytes are known. */
static void s_set_position(fs_state_t *st, sl_ctx_t *ctx)
{
    file_pos_t p = {.own = (unsigned)st->o.format, .ino = st->ino,
                    .offset = fs_reader_offset(&st->rd),
                    .lineno = st->rd.lineno, .path = st->real};

    if (!st->pos)
        return;
    p.path_len = st->pos_len - file_pos_size(&fs_pos_kind, 0);
    if (st->o.format == FS_CSV && st->in_row) {
        p.offset = st->row_off;
        p.lineno = st->row_line - 1;
    }
    if (fs_fp_get(&st->fp, st->rd.fd, p.offset, &p.fp_len, &p.fp_hash) < 0)
        return; /* the reading itself reports a failing file */
    file_pos_encode(&fs_pos_kind, &p, st->pos);
    sl_ctx_set_position(ctx, st->pos, st->pos_len);
}

/* Why a saved position does not describe the file as it is now, or NULL
 * if it does. */
static const char *s_changed(fs_state_t *st, const file_pos_t *p,
                             char *buf, size_t len)
{
    struct stat sb;
    uint32_t fp_len;
    uint64_t fp_hash;

    if (fstat(st->rd.fd, &sb) < 0)
        return strerror(errno);
    if ((uint64_t)sb.st_ino != p->ino) {
        snprintf(buf, len, "it is another file: inode %llu, was %llu",
                 (unsigned long long)sb.st_ino,
                 (unsigned long long)p->ino);
        return buf;
    }
    if ((uint64_t)sb.st_size < p->offset) {
        snprintf(buf, len, "it was truncated: %llu bytes, the position is "
                           "at byte %llu",
                 (unsigned long long)sb.st_size,
                 (unsigned long long)p->offset);
        return buf;
    }
    if (fs_fp_get(&st->fp, st->rd.fd, p->offset, &fp_len, &fp_hash) < 0 ||
        fp_len != p->fp_len || fp_hash != p->fp_hash) {
        snprintf(buf, len, "its first %u bytes are not the same",
                 (unsigned)p->fp_len);
        return buf;
    }
    return NULL;
}

/* A csv file's own header is read again, quietly (the earlier run
 * reported its errors), before seeking past it. */
static int s_reread_header(fs_state_t *st, sl_ctx_t *ctx)
{
    int rc = 0;

    st->quiet = 1;
    while (st->ncols == 0 && rc >= 0 && rc != FS_DONE)
        rc = s_step(st, ctx);
    st->quiet = 0;
    return rc < 0 ? rc : 0;
}

/* Seeks to the position the earlier run committed, if it still fits the
 * file; otherwise warns and leaves the file to be read from the start. */
static int s_resume(fs_state_t *st, sl_ctx_t *ctx)
{
    size_t len;
    const void *blob = sl_ctx_resume_position(ctx, &len);
    const char *why;
    char buf[160];
    file_pos_t p;
    int rc;

    if (!blob)
        return 0;
    if (file_pos_decode(&fs_pos_kind, blob, len, &p, &why) < 0) {
        sl_log(ctx, SL_LOG_WARN, "%s: saved position ignored (%s); reading "
               "from the beginning", st->o.path, why);
        return 0;
    }
    if (p.own != (unsigned)st->o.format ||
        p.path_len != strlen(st->real) ||
        memcmp(p.path, st->real, p.path_len)) {
        sl_log(ctx, SL_LOG_WARN, "%s: saved position ignored (it is for "
               "%s file '%.*s'); reading from the beginning", st->o.path,
               s_format_names[p.own], (int)p.path_len, p.path);
        return 0;
    }
    why = s_changed(st, &p, buf, sizeof(buf));
    if (why) {
        sl_log(ctx, SL_LOG_WARN, "%s: file changed since the saved position "
               "(%s); reading it again from the beginning", st->o.path, why);
        return 0;
    }
    if (st->o.format == FS_CSV && st->ncols == 0) {
        rc = s_reread_header(st, ctx);
        /* Up to the header's end there were no records: read on from
         * there (or from the end, for a file with no header at all). */
        if (rc < 0 || st->ncols == 0 || fs_reader_offset(&st->rd) >= p.offset)
            return rc;
    }
    rc = fs_reader_seek(&st->rd, p.offset, p.lineno);
    if (st->csv_ready) {
        csv_row_reset(&st->csv);
        st->in_row = 0;
    }
    return rc;
}

static int fs_pull(void *state, sl_ctx_t *ctx)
{
    fs_state_t *st = state;
    size_t budget = sl_ctx_budget(ctx);
    size_t emitted = 0;
    int rc = 0;

    if (st->at_end || sl_ctx_stopping(ctx))
        return SL_EOF;
    if (!st->started) {
        st->started = 1;
        rc = s_resume(st, ctx);
    }
    for (size_t units = 0;
         rc >= 0 && emitted < budget && units < FS_UNITS_PER_PULL; units++) {
        rc = s_step(st, ctx);
        if (rc == FS_DONE)
            break;
        if (rc > 0)
            emitted += (size_t)rc;
    }
    /* One position per pull, after everything it emitted. */
    s_set_position(st, ctx);
    if (rc < 0) {
        sl_log(ctx, SL_LOG_ERROR, "%s: stopped reading: %s", st->o.path,
               strerror(-rc));
        return rc;
    }
    if (rc == FS_DONE) {
        st->at_end = 1;
        /* Records emitted in this call are delivered first; the next call
         * reports the end. */
        return emitted ? 0 : SL_EOF;
    }
    return 0;
}

SL_STAGE_DEFINE(.name = "file_source",
                .summary = "reads a file as lines, JSON lines, CSV or msgpack",
                .kind = SL_STAGE_SOURCE, .max_workers = 1,
                .config_keys = s_keys, .validate = fs_validate,
                .init = fs_init, .pull = fs_pull, .fini = fs_fini);
