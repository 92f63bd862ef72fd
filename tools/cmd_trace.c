/* `sluice trace info TRACE [--json]` and `sluice trace synth TEMPLATE -o
 * TRACE` (see cmd_trace.h). */
#include "cmd_trace.h"

#include "cli.h"
#include "synth.h"
#include "timefmt.h"
#include "trace.h"
#include "trace_stats.h"

#include <jansson.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ROWS 20
#define S_BAR 30

static void s_usage(FILE *f)
{
    fprintf(f, "usage: sluice trace info TRACE [--json]\n"
               "       sluice trace synth TEMPLATE.yaml -o TRACE\n");
}

/* ---- info: text ----------------------------------------------------------- */

/* 12 as "12", 12.5 as "12.5". */
static const char *s_num(double v, char *buf, size_t len)
{
    snprintf(buf, len, v == floor(v) && fabs(v) < 1e15 ? "%.0f" : "%.1f", v);
    return buf;
}

/* A field name fit for a terminal: printable ASCII as is, the rest as
 * \xNN, cut at 48 bytes. */
static void s_name(const sl_ts_field_t *f, char *out, size_t len)
{
    size_t n = 0;
    if (!f->str_key) {
        snprintf(out, len, "<%.*s key>", (int)f->name_len, f->name);
        return;
    }
    for (size_t i = 0; i < f->name_len && n + 5 < len; i++) {
        unsigned char c = (unsigned char)f->name[i];
        if (i == 48) {
            n += (size_t)snprintf(out + n, len - n, "...");
            break;
        }
        if (c >= 0x20 && c < 0x7f)
            out[n++] = (char)c;
        else
            n += (size_t)snprintf(out + n, len - n, "\\x%02x", c);
    }
    out[n] = '\0';
}

static void s_types(const sl_ts_field_t *f, char *out, size_t len)
{
    size_t n = 0, kinds = 0;
    out[0] = '\0';
    for (int k = 0; k < SL_MP_KINDS; k++)
        kinds += f->types[k] != 0;
    for (int k = 0; k < SL_MP_KINDS && n < len; k++) {
        if (!f->types[k])
            continue;
        if (kinds == 1)
            n += (size_t)snprintf(out + n, len - n, "%s",
                                  sl__mpscan_kind_name((sl_mp_kind_t)k));
        else
            n += (size_t)snprintf(out + n, len - n, "%s%s %llu",
                                  n ? ", " : "",
                                  sl__mpscan_kind_name((sl_mp_kind_t)k),
                                  (unsigned long long)f->types[k]);
    }
}

static void s_rate_table(FILE *f, const sl_trace_stats_t *s)
{
    size_t nb = s->n_buckets, per = (nb + S_ROWS - 1) / S_ROWS;
    double rates[S_ROWS], top = 0;
    size_t rows = 0;
    for (size_t b = 0; b < nb; b += per, rows++) {
        size_t end = b + per < nb ? b + per : nb;
        uint64_t sum = 0;
        for (size_t i = b; i < end; i++)
            sum += s->buckets[i];
        rates[rows] = (double)sum / (double)((end - b) * s->bucket_s);
        if (rates[rows] > top)
            top = rates[rows];
    }
    fprintf(f, "\nrate over time (records per second):\n");
    for (size_t r = 0; r < rows; r++) {
        uint64_t from = (uint64_t)(r * per) * s->bucket_s;
        uint64_t to = (uint64_t)((r + 1) * per < nb ? (r + 1) * per : nb) *
                      s->bucket_s;
        char label[48], v[32];
        snprintf(label, sizeof(label), "%llus-%llus",
                 (unsigned long long)from, (unsigned long long)to);
        int bar = top > 0 ? (int)lround(rates[r] / top * S_BAR) : 0;
        fprintf(f, "  %-13s %9s %.*s\n", label, s_num(rates[r], v, sizeof(v)),
                bar, "##############################");
    }
}

static void s_print_text(FILE *f, const char *path,
                         const sl_trace_header_t *h,
                         const sl_trace_stats_t *s)
{
    char t[64], a[32], b[32], c[32];
    sl__time_format_rfc3339((int64_t)h->created_ns, 3, t, sizeof(t));
    fprintf(f, "trace     %s\norigin    %s\ncreated   %s\n", path,
            h->origin[0] ? h->origin : "-", t);
    fprintf(f, "records   %llu\nduration  %.3f s\n",
            (unsigned long long)s->records, (double)s->last_ns / 1e9);
    if (!s->records)
        return;
    double mn, p50, mx;
    sl__ts_rates(s, &mn, &p50, &mx);
    if (s->last_ns)
        fprintf(f, "rate      %.1f/s mean; ", (double)(s->records - 1) /
                                                  ((double)s->last_ns / 1e9));
    else
        fprintf(f, "rate      - (every record at offset 0); ");
    if (s->bucket_s == 1)
        fprintf(f, "per second: ");
    else
        fprintf(f, "per %llu s: ", (unsigned long long)s->bucket_s);
    fprintf(f, "min %s, p50 %s, max %s\n", s_num(mn, a, sizeof(a)),
            s_num(p50, b, sizeof(b)), s_num(mx, c, sizeof(c)));
    fprintf(f, "size      min %llu B, mean %.1f B, max %llu B\n",
            (unsigned long long)s->size_min,
            (double)s->size_sum / (double)s->records,
            (unsigned long long)s->size_max);
    s_rate_table(f, s);
    fprintf(f, "\nfields:\n  %-24s %10s %6s  %s\n", "NAME", "RECORDS", "%",
            "TYPES");
    for (size_t i = 0; i < s->n_fields; i++) {
        const sl_ts_field_t *fl = &s->fields[i];
        char name[256], types[256];
        s_name(fl, name, sizeof(name));
        s_types(fl, types, sizeof(types));
        fprintf(f, "  %-24s %10llu %6.1f  %s\n", name,
                (unsigned long long)fl->records,
                100.0 * (double)fl->records / (double)s->records, types);
    }
    if (s->unnamed)
        fprintf(f, "  (and %llu occurrences of fields past the first %d "
                   "names)\n", (unsigned long long)s->unnamed,
                SL_TS_MAX_FIELDS);
}

/* ---- info: JSON ------------------------------------------------------------ */

static json_t *s_json(const char *path, const sl_trace_header_t *h,
                      const sl_trace_stats_t *s, const char *error)
{
    double mn, p50, mx;
    sl__ts_rates(s, &mn, &p50, &mx);
    json_t *buckets = json_array(), *fields = json_array();
    for (size_t i = 0; buckets && i < s->n_buckets; i++)
        json_array_append_new(buckets, json_integer((json_int_t)s->buckets[i]));
    for (size_t i = 0; fields && i < s->n_fields; i++) {
        const sl_ts_field_t *fl = &s->fields[i];
        json_t *types = json_object();
        for (int k = 0; types && k < SL_MP_KINDS; k++)
            if (fl->types[k])
                json_object_set_new(types,
                                    sl__mpscan_kind_name((sl_mp_kind_t)k),
                                    json_integer((json_int_t)fl->types[k]));
        json_t *o = json_object();
        json_t *name = json_stringn(fl->name, fl->name_len);
        if (!name) { /* not UTF-8: the escaped form, as in the text */
            char esc[256];
            s_name(fl, esc, sizeof(esc));
            name = json_string(esc);
        }
        json_object_set_new(o, "name", name);
        if (!fl->str_key)
            json_object_set_new(o, "key_type", json_string(fl->name));
        json_object_set_new(o, "records", json_integer((json_int_t)fl->records));
        json_object_set_new(o, "types", types);
        json_array_append_new(fields, o);
    }
    /* A header from elsewhere may hold any bytes: JSON takes UTF-8. */
    const char *origin = h->origin;
    json_t *probe = json_string(origin);
    if (!probe)
        origin = "(not UTF-8)";
    json_decref(probe);
    double mean = s->last_ns ? (double)(s->records - 1) /
                                   ((double)s->last_ns / 1e9)
                             : 0;
    return json_pack(
        "{s:s, s:s, s:I, s:I, s:I, s:f, s:{s:I, s:f, s:f, s:f, s:o}, "
        "s:{s:I, s:f, s:I}, s:o, s:I, s:s?}",
        "trace", path, "origin", origin, "created_ns",
        (json_int_t)h->created_ns, "records", (json_int_t)s->records,
        "duration_ns", (json_int_t)s->last_ns, "mean_rate", mean, "rate",
        "bucket_s", (json_int_t)s->bucket_s, "min", mn, "p50", p50, "max", mx,
        "buckets", buckets, "size", "min", (json_int_t)s->size_min, "mean",
        s->records ? (double)s->size_sum / (double)s->records : 0.0, "max",
        (json_int_t)s->size_max, "fields", fields, "fields_unnamed",
        (json_int_t)s->unnamed, "error", error);
}

static int s_info(int argc, char **argv)
{
    const char *path = NULL;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            as_json = 1;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fprintf(stderr, "sluice trace info: unexpected argument '%s'\n",
                    argv[i]);
            s_usage(stderr);
            return SL_EXIT_USAGE;
        }
    }
    if (!path) {
        s_usage(stderr);
        return SL_EXIT_USAGE;
    }
    char err[1024];
    sl_trace_reader_t *r = sl_trace_reader_open(path, err, sizeof(err));
    if (!r) {
        fprintf(stderr, "sluice trace: %s\n", err);
        return SL_EXIT_FAILED;
    }
    sl_trace_stats_t s;
    sl__ts_init(&s);
    uint64_t off;
    const void *rec;
    size_t len;
    int rc;
    while ((rc = sl_trace_next(r, &off, &rec, &len)) == 0)
        if (sl__ts_add(&s, off, rec, len) < 0) {
            rc = -ENOMEM;
            break;
        }
    const char *error = rc == -EBADMSG ? sl_trace_reader_error(r)
                        : rc < 0       ? "out of memory"
                                       : NULL;
    const sl_trace_header_t *h = sl_trace_reader_header(r);
    if (as_json) {
        json_t *j = s_json(path, h, &s, error);
        if (j)
            json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                      JSON_REAL_PRECISION(10));
        putchar('\n');
        json_decref(j);
    } else {
        s_print_text(stdout, path, h, &s);
    }
    fflush(stdout);
    if (error)
        fprintf(stderr, "sluice trace: %s (the numbers above are for the "
                        "%llu entries before it)\n", error,
                (unsigned long long)s.records);
    sl__ts_fini(&s);
    sl_trace_reader_close(&r);
    return error ? SL_EXIT_FAILED : SL_EXIT_OK;
}

/* ---- synth ------------------------------------------------------------------- */

static int s_synth(int argc, char **argv)
{
    const char *tpl = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--out")) &&
            i + 1 < argc)
            out = argv[++i];
        else if (argv[i][0] != '-' && !tpl)
            tpl = argv[i];
        else {
            fprintf(stderr, "sluice trace synth: unexpected argument '%s'\n",
                    argv[i]);
            s_usage(stderr);
            return SL_EXIT_USAGE;
        }
    }
    if (!tpl || !out) {
        s_usage(stderr);
        return SL_EXIT_USAGE;
    }
    static char err[16384];
    sl_synth_t *s = sl_synth_load(tpl, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "%s\n", err);
        return SL_EXIT_USAGE;
    }
    sl_trace_writer_t *w = sl_trace_writer_new(out, sl_synth_origin(s), err,
                                               sizeof(err));
    if (!w) {
        fprintf(stderr, "sluice trace: %s\n", err);
        sl_synth_destroy(&s);
        return SL_EXIT_FAILED;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    uint64_t off = 0, last = 0;
    int rc;
    while ((rc = sl_synth_next(s, &off, &sb)) == 0) {
        if ((rc = sl_trace_write(w, off, sb.data, sb.size)) < 0)
            break;
        last = off;
    }
    uint64_t n = sl_trace_written(w);
    int crc = sl_trace_writer_close(&w);
    msgpack_sbuffer_destroy(&sb);
    sl_synth_destroy(&s);
    if (rc < 0 || crc < 0) {
        fprintf(stderr, "sluice trace: cannot write %s: %s\n", out,
                strerror(-(rc < 0 ? rc : crc)));
        return SL_EXIT_FAILED;
    }
    printf("wrote %llu record%s into %s (%.3f s of traffic)\n",
           (unsigned long long)n, n == 1 ? "" : "s", out, (double)last / 1e9);
    return SL_EXIT_OK;
}

int sl_cmd_trace(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "info"))
        return s_info(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "synth"))
        return s_synth(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        s_usage(stdout);
        return SL_EXIT_OK;
    }
    s_usage(stderr);
    return SL_EXIT_USAGE;
}
