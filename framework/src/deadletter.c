/*
 * Dead-letter files (see deadletter.h and docs/reliability.md).
 *
 * An entry is built whole in memory and handed to one write(2): that costs
 * a copy of the record, paid only by records that have already failed for
 * good, and buys entries that are never torn by a crash or interleaved with
 * another process's. The mutex only orders this process's writers, so that
 * the rare short write (a full disk) can be finished before anyone else
 * appends.
 */
#include "deadletter.h"

#include <sluice/json.h>

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_NS 1000000000ull

struct sl_deadletter {
    int fd;
    sl_dl_format_t format;
    pthread_mutex_t lock;
    _Atomic uint64_t count;
};

/* What one write is about. */
typedef struct s_in {
    const char *stage;
    uint64_t id, ts_ns;
    uint8_t priority;
    const void *payload;
    size_t len;
    const char *error;
    uint32_t attempts;
    uint64_t first_ns, last_ns;
} s_in_t;

typedef enum s_rec { S_REC_NONE, S_REC_MAP, S_REC_RAW } s_rec_t;

static void s_fmt(char *err, size_t errlen, const char *fmt, ...)
    SL_PRINTF(3, 4);

static void s_fmt(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *s_format_name(sl_dl_format_t f)
{
    return f == SL_DL_MSGPACK ? "msgpack" : "jsonl";
}

/* ---- opening ------------------------------------------------------------ */

/* "No such file or directory" alone reads as if the file should exist, so
 * a missing directory is named. */
static void s_open_error(const char *path, int e, char *err, size_t errlen)
{
    char *dir = strdup(path);
    struct stat sb;
    if (e == ENOENT && dir) {
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        else
            strcpy(dir, ".");
        if (stat(dir, &sb) < 0) {
            s_fmt(err, errlen, "cannot open dead-letter file '%s': "
                  "directory '%s' does not exist", path, dir);
            free(dir);
            return;
        }
    }
    free(dir);
    s_fmt(err, errlen, "cannot open dead-letter file '%s': %s", path,
          strerror(e));
}

/* The format of a non-empty file by its first byte, or -1. */
static int s_file_format(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    unsigned char c;
    ssize_t n = pread(fd, &c, 1, 0);
    close(fd);
    if (n != 1)
        return -1;
    return c == '{' ? SL_DL_JSONL : SL_DL_MSGPACK;
}

sl_deadletter_t *sl__deadletter_open(const char *path, sl_dl_format_t format,
                                     char *err, size_t errlen)
{
    if (!path || !*path) {
        s_fmt(err, errlen, "dead-letter file: no path given");
        return NULL;
    }
    if (format != SL_DL_JSONL && format != SL_DL_MSGPACK) {
        s_fmt(err, errlen, "dead-letter file '%s': unknown format %d", path,
              (int)format);
        return NULL;
    }
    sl_deadletter_t *dl = calloc(1, sizeof(*dl));
    if (!dl) {
        s_fmt(err, errlen, "dead-letter file '%s': out of memory", path);
        return NULL;
    }
    dl->format = format;
    dl->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (dl->fd < 0) {
        s_open_error(path, errno, err, errlen);
        goto fail_alloc;
    }
    struct stat sb;
    if (fstat(dl->fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
        int have = s_file_format(path);
        if (have >= 0 && have != (int)format) {
            s_fmt(err, errlen, "dead-letter file '%s' already holds %s "
                  "entries; it cannot take %s ones (one file, one format)",
                  path, s_format_name((sl_dl_format_t)have),
                  s_format_name(format));
            goto fail_fd;
        }
    }
    if (pthread_mutex_init(&dl->lock, NULL) != 0) {
        s_fmt(err, errlen, "dead-letter file '%s': cannot create a lock",
              path);
        goto fail_fd;
    }
    atomic_init(&dl->count, 0);
    return dl;

fail_fd:
    close(dl->fd);
fail_alloc:
    free(dl);
    return NULL;
}

void sl__deadletter_close(sl_deadletter_t **dlp)
{
    sl_deadletter_t *dl = dlp ? *dlp : NULL;
    if (!dl)
        return;
    /* Dead letters are what is left of failed work: worth a sync. */
    fdatasync(dl->fd);
    close(dl->fd);
    pthread_mutex_destroy(&dl->lock);
    free(dl);
    *dlp = NULL;
}

uint64_t sl__deadletter_count(const sl_deadletter_t *dl)
{
    return dl ? atomic_load(&((sl_deadletter_t *)dl)->count) : 0;
}

/* ---- walking msgpack without allocating --------------------------------- */

/* msgpack_unpack_next allocates room for a container's elements from its
 * header alone, so a corrupt count of 2^32 becomes a 100 GB request. These
 * helpers only walk headers, and a count that cannot fit in the bytes left
 * is refused at once. */

typedef enum s_mpk { S_MP_SCALAR, S_MP_BYTES, S_MP_ARRAY, S_MP_MAP,
                     S_MP_BAD } s_mpk_t;

/* 0xc0..0xdf: width of the length field, fixed body bytes, kind. */
static const struct {
    unsigned char w, fixed, kind;
} s_mpt[32] = {
    {0, 0, S_MP_SCALAR}, {0, 0, S_MP_BAD},    {0, 0, S_MP_SCALAR}, /* c0 */
    {0, 0, S_MP_SCALAR}, {1, 0, S_MP_BYTES},  {2, 0, S_MP_BYTES},  /* c3 */
    {4, 0, S_MP_BYTES},  {1, 1, S_MP_BYTES},  {2, 1, S_MP_BYTES},  /* c6 */
    {4, 1, S_MP_BYTES},  {0, 4, S_MP_SCALAR}, {0, 8, S_MP_SCALAR}, /* c9 */
    {0, 1, S_MP_SCALAR}, {0, 2, S_MP_SCALAR}, {0, 4, S_MP_SCALAR}, /* cc */
    {0, 8, S_MP_SCALAR}, {0, 1, S_MP_SCALAR}, {0, 2, S_MP_SCALAR}, /* cf */
    {0, 4, S_MP_SCALAR}, {0, 8, S_MP_SCALAR}, {0, 2, S_MP_SCALAR}, /* d2 */
    {0, 3, S_MP_SCALAR}, {0, 5, S_MP_SCALAR}, {0, 9, S_MP_SCALAR}, /* d5 */
    {0, 17, S_MP_SCALAR}, {1, 0, S_MP_BYTES}, {2, 0, S_MP_BYTES},  /* d8 */
    {4, 0, S_MP_BYTES},  {2, 0, S_MP_ARRAY},  {4, 0, S_MP_ARRAY},  /* db */
    {2, 0, S_MP_MAP},    {4, 0, S_MP_MAP},                         /* de */
};

typedef struct s_mph {
    s_mpk_t kind;
    size_t hdr;     /* header bytes, type byte included */
    uint64_t body;  /* bytes after the header */
    uint64_t items; /* objects that follow (2 per map entry) */
} s_mph_t;

static uint64_t s_be(const unsigned char *p, size_t w)
{
    uint64_t v = 0;
    for (size_t i = 0; i < w; i++)
        v = v << 8 | p[i];
    return v;
}

/* The header at p: 1, 0 if the data ends inside it, -1 for 0xc1. */
static int s_mp_head(const unsigned char *p, size_t avail, s_mph_t *h)
{
    if (avail < 1)
        return 0;
    unsigned char b = p[0];
    *h = (s_mph_t){.kind = S_MP_SCALAR, .hdr = 1};
    if (b <= 0x7f || b >= 0xe0)
        return 1;
    if (b <= 0x8f) {
        h->kind = S_MP_MAP;
        h->items = 2u * (b & 0x0fu);
    } else if (b <= 0x9f) {
        h->kind = S_MP_ARRAY;
        h->items = b & 0x0fu;
    } else if (b <= 0xbf) {
        h->kind = S_MP_BYTES;
        h->body = b & 0x1fu;
    } else {
        size_t w = s_mpt[b - 0xc0].w;
        if (s_mpt[b - 0xc0].kind == S_MP_BAD)
            return -1;
        if (avail < 1 + w)
            return 0;
        uint64_t n = s_be(p + 1, w);
        h->kind = (s_mpk_t)s_mpt[b - 0xc0].kind;
        h->hdr = 1 + w;
        h->body = s_mpt[b - 0xc0].fixed + (h->kind == S_MP_BYTES ? n : 0);
        h->items = h->kind == S_MP_ARRAY ? n : h->kind == S_MP_MAP ? 2 * n : 0;
    }
    return 1;
}

/* Length of the whole object at p: 1 with *len, 0 if the data ends first
 * (or a count says it must), -1 if corrupt. */
static int s_mp_skip(const unsigned char *p, size_t avail, size_t *len)
{
    size_t off = 0;
    uint64_t pending = 1;
    while (pending) {
        s_mph_t h;
        int r = s_mp_head(p + off, avail - off, &h);
        if (r <= 0)
            return r;
        if (h.body > avail - off - h.hdr)
            return 0;
        off += h.hdr + (size_t)h.body;
        pending = pending - 1 + h.items;
        if (pending > avail - off) /* each needs a byte at least */
            return 0;
    }
    *len = off;
    return 1;
}

static bool s_is_map(const unsigned char *p)
{
    return (p[0] & 0xf0) == 0x80 || p[0] == 0xde || p[0] == 0xdf;
}

/* ---- building an entry -------------------------------------------------- */

static int s_put(msgpack_sbuffer *b, const void *p, size_t n)
{
    return msgpack_sbuffer_write(b, p, n) == 0 ? 0 : -ENOMEM;
}

static int s_puts(msgpack_sbuffer *b, const char *s)
{
    return s_put(b, s, strlen(s));
}

static int s_put_u64(msgpack_sbuffer *b, uint64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof(t), "%llu", (unsigned long long)v);
    return s_put(b, t, (size_t)n);
}

/* A JSON string (escaped, invalid UTF-8 replaced by the encoder), or null. */
static int s_put_jstr(msgpack_sbuffer *b, const char *s)
{
    if (!s)
        return s_puts(b, "null");
    size_t n = strlen(s);
    if (n > UINT32_MAX)
        return -EINVAL;
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.size = (uint32_t)n;
    o.via.str.ptr = s;
    return sl_json_encode(&o, b);
}

static void s_rfc3339(uint64_t ns, char *out, size_t len)
{
    time_t sec = (time_t)(ns / S_NS);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (unsigned)(ns % S_NS));
}

/* 0 (unknown) is null rather than a misleading 1970. */
static int s_put_time(msgpack_sbuffer *b, uint64_t ns)
{
    if (!ns)
        return s_puts(b, "null");
    char t[80];
    t[0] = '"';
    s_rfc3339(ns, t + 1, sizeof(t) - 2);
    strcat(t, "\"");
    return s_puts(b, t);
}

static const char s_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int s_put_b64(msgpack_sbuffer *b, const unsigned char *p, size_t n)
{
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = s_b64[v >> 18];
        q[1] = s_b64[(v >> 12) & 63];
        q[2] = i + 1 < n ? s_b64[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? s_b64[v & 63] : '=';
        if (s_put(b, q, 4))
            return -ENOMEM;
    }
    return 0;
}

/* Whether the payload is exactly one msgpack map. With u, also decodes it
 * (for JSON), which the walk has made safe to do. */
static s_rec_t s_classify(const s_in_t *in, msgpack_unpacked *u)
{
    if (!in->payload)
        return S_REC_NONE;
    size_t len = 0, off = 0;
    if (s_mp_skip(in->payload, in->len, &len) != 1 || len != in->len ||
        !s_is_map(in->payload))
        return S_REC_RAW;
    if (u && msgpack_unpack_next(u, in->payload, in->len, &off) !=
                 MSGPACK_UNPACK_SUCCESS)
        return S_REC_RAW; /* nested deeper than msgpack-c can decode */
    return S_REC_MAP;
}

static int s_discard(void *data, const char *buf, size_t len)
{
    (void)data;
    (void)buf;
    (void)len;
    return 0;
}

/* ,"record":{...}, unless sluice's own JSON decoder would refuse the text
 * (a NUL byte in a key, say): then nothing is written and 1 is returned,
 * so that the caller keeps the bytes instead and every entry reads back. */
static int s_put_record_json(msgpack_sbuffer *b, const msgpack_object *map)
{
    size_t start = b->size;
    int rc = s_puts(b, ",\"record\":");
    size_t json = b->size;
    rc = rc ? rc : sl_json_encode(map, b);
    if (rc == 0) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, NULL, s_discard);
        rc = sl_json_decode(b->data + json, b->size - json, &pk, NULL, 0);
        if (rc == 0)
            return 0;
    }
    b->size = start;
    return rc == -EBADMSG ? 1 : rc;
}

static int s_build_jsonl(msgpack_sbuffer *b, const s_in_t *in)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    s_rec_t kind = s_classify(in, &u);
    int rc = s_puts(b, "{\"stage\":");
    rc = rc ? rc : s_put_jstr(b, in->stage);
    rc = rc ? rc : s_puts(b, ",\"id\":");
    rc = rc ? rc : s_put_u64(b, in->id);
    rc = rc ? rc : s_puts(b, ",\"ts\":");
    rc = rc ? rc : s_put_time(b, in->ts_ns);
    rc = rc ? rc : s_puts(b, ",\"attempts\":");
    rc = rc ? rc : s_put_u64(b, in->attempts);
    rc = rc ? rc : s_puts(b, ",\"priority\":");
    rc = rc ? rc : s_put_u64(b, in->priority);
    rc = rc ? rc : s_puts(b, ",\"first_failure\":");
    rc = rc ? rc : s_put_time(b, in->first_ns);
    rc = rc ? rc : s_puts(b, ",\"last_failure\":");
    rc = rc ? rc : s_put_time(b, in->last_ns);
    rc = rc ? rc : s_puts(b, ",\"error\":");
    rc = rc ? rc : s_put_jstr(b, in->error);
    if (kind == S_REC_NONE) {
        rc = rc ? rc : s_puts(b, ",\"record\":null");
    } else if (kind == S_REC_MAP && rc == 0 &&
               (rc = s_put_record_json(b, &u.data)) == 1) {
        kind = S_REC_RAW;
        rc = 0;
    }
    if (kind == S_REC_RAW) {
        rc = rc ? rc : s_puts(b, ",\"record_msgpack_b64\":\"");
        rc = rc ? rc : s_put_b64(b, in->payload, in->len);
        rc = rc ? rc : s_puts(b, "\"");
    }
    rc = rc ? rc : s_puts(b, "}\n");
    msgpack_unpacked_destroy(&u);
    return rc;
}

static int s_pack_str(msgpack_packer *pk, const char *s)
{
    if (!s)
        return msgpack_pack_nil(pk);
    size_t n = strlen(s);
    if (n > UINT32_MAX)
        return -1;
    return msgpack_pack_str_with_body(pk, s, n);
}

static int s_build_msgpack(msgpack_sbuffer *b, const s_in_t *in)
{
    s_rec_t kind = s_classify(in, NULL);
    if (in->len > UINT32_MAX)
        return -EINVAL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, 9);
    rc |= s_pack_str(&pk, "stage") | s_pack_str(&pk, in->stage);
    rc |= s_pack_str(&pk, "id") | msgpack_pack_uint64(&pk, in->id);
    rc |= s_pack_str(&pk, "ts") | msgpack_pack_uint64(&pk, in->ts_ns);
    rc |= s_pack_str(&pk, "attempts") |
          msgpack_pack_uint32(&pk, in->attempts);
    rc |= s_pack_str(&pk, "priority") |
          msgpack_pack_uint8(&pk, in->priority);
    rc |= s_pack_str(&pk, "first_failure") |
          msgpack_pack_uint64(&pk, in->first_ns);
    rc |= s_pack_str(&pk, "last_failure") |
          msgpack_pack_uint64(&pk, in->last_ns);
    rc |= s_pack_str(&pk, "error") | s_pack_str(&pk, in->error);
    if (kind == S_REC_NONE) {
        rc |= s_pack_str(&pk, "record") | msgpack_pack_nil(&pk);
    } else if (kind == S_REC_MAP) {
        /* Verbatim, so that the record comes back byte for byte. */
        rc |= s_pack_str(&pk, "record");
        rc |= s_put(b, in->payload, in->len);
    } else {
        rc |= s_pack_str(&pk, "record_bin") |
              msgpack_pack_bin_with_body(&pk, in->payload, in->len);
    }
    return rc ? -ENOMEM : 0;
}

/* One write(2) per entry; the loop only finishes a write that a full disk
 * cut short, and reports the error that follows. */
static int s_write_all(sl_deadletter_t *dl, const char *p, size_t n)
{
    int rc = 0;
    pthread_mutex_lock(&dl->lock);
    while (n > 0) {
        ssize_t w = write(dl->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&dl->lock);
    return rc;
}

int sl__deadletter_write(sl_deadletter_t *dl, const char *stage,
                         const sl_envelope_t *env, const void *payload,
                         size_t len, const char *error, uint32_t attempts,
                         uint64_t first_failure_ns, uint64_t last_failure_ns)
{
    if (!dl || !stage)
        return -EINVAL;
    s_in_t in = {.stage = stage,
                 .id = env ? env->id : 0,
                 .ts_ns = env ? env->ts_ns : 0,
                 .priority = env ? env->priority : 0,
                 .payload = payload,
                 .len = payload ? len : 0,
                 .error = error,
                 .attempts = attempts,
                 .first_ns = first_failure_ns,
                 .last_ns = last_failure_ns};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    int rc = dl->format == SL_DL_MSGPACK ? s_build_msgpack(&buf, &in)
                                          : s_build_jsonl(&buf, &in);
    if (rc == 0)
        rc = s_write_all(dl, buf.data, buf.size);
    if (rc == 0)
        atomic_fetch_add(&dl->count, 1);
    msgpack_sbuffer_destroy(&buf);
    return rc;
}

/* ---- reading: what both formats share ----------------------------------- */

/* One entry being decoded; strings are owned and freed after the visit. */
typedef struct s_ent {
    sl_deadletter_entry_t e;
    char *stage;
    char *error;
    msgpack_sbuffer rec; /* JSONL: the record re-encoded */
    bool has_rec;
    bool has_stage;
} s_ent_t;

static void s_ent_clear(s_ent_t *x)
{
    free(x->stage);
    free(x->error);
    x->rec.size = 0;
    msgpack_sbuffer tmp = x->rec;
    memset(x, 0, sizeof(*x));
    x->rec = tmp;
}

static int s_visit(s_ent_t *x, sl_deadletter_visit_fn fn, void *arg)
{
    x->e.stage = x->stage;
    x->e.error = x->error;
    return fn(&x->e, arg);
}

/* "2024-05-01T12:00:00.123456789Z" (or an offset for Z) -> ns; 0 or -1. */
static int s_parse_time(const char *s, uint64_t *out)
{
    static const struct {
        int digits;
        char sep;
    } f[6] = {{4, '-'}, {2, '-'}, {2, 'T'}, {2, ':'}, {2, ':'}, {2, 0}};
    int v[6];
    const char *p = s;
    for (int i = 0; i < 6; i++) {
        v[i] = 0;
        for (int k = 0; k < f[i].digits; k++, p++) {
            if (*p < '0' || *p > '9')
                return -1;
            v[i] = v[i] * 10 + (*p - '0');
        }
        if (f[i].sep && *p != f[i].sep && !(f[i].sep == 'T' && *p == 't'))
            return -1;
        if (f[i].sep)
            p++;
    }
    uint64_t frac = 0;
    if (*p == '.') {
        int k = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, k++)
            if (k < 9)
                frac = frac * 10 + (uint64_t)(*p - '0');
        if (k == 0)
            return -1;
        for (; k < 9; k++)
            frac *= 10;
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        if (p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' ||
            p[3] != ':' || p[4] < '0' || p[4] > '9' || p[5] < '0' ||
            p[5] > '9')
            return -1;
        off = sign * (((p[1] - '0') * 10 + (p[2] - '0')) * 3600L +
                      ((p[4] - '0') * 10 + (p[5] - '0')) * 60L);
        p += 6;
    } else {
        return -1;
    }
    if (*p || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[3] > 23 || v[4] > 59 ||
        v[5] > 59)
        return -1;
    struct tm tm = {.tm_year = v[0] - 1900, .tm_mon = v[1] - 1,
                    .tm_mday = v[2], .tm_hour = v[3], .tm_min = v[4],
                    .tm_sec = v[5]};
    time_t t = timegm(&tm);
    if (tm.tm_mday != v[2]) /* February 30th came back as March */
        return -1;
    t -= off;
    if (t < 0 || (uint64_t)t > UINT64_MAX / S_NS - 1)
        return -1;
    *out = (uint64_t)t * S_NS + frac;
    return 0;
}

/* ---- reading JSONL ------------------------------------------------------ */

static const char *s_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* Past the string that starts at p ('"'), or NULL if it does not end. */
static const char *s_skip_str(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Past the value that starts at p. Only strings and brackets are followed:
 * each value's own decoder checks its syntax. */
static const char *s_skip_value(const char *p, const char *e)
{
    if (p >= e)
        return NULL;
    if (*p == '"')
        return s_skip_str(p, e);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < e) {
            if (*p == '"') {
                if (!(p = s_skip_str(p, e)))
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' &&
           *p != '\t' && *p != '\r' && *p != '\n')
        p++;
    return p > s ? p : NULL;
}

static bool s_is(const char *p, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(p, word, n) == 0;
}

/* A JSON string value, decoded and NUL-terminated (malloc'd), or NULL. */
static char *s_json_text(const char *p, size_t n)
{
    if (n < 2 || *p != '"')
        return NULL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char *out = NULL;
    if (sl_json_decode(p, n, &pk, NULL, 0) == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        if (msgpack_unpack_next(&u, sb.data, sb.size, &off) ==
                MSGPACK_UNPACK_SUCCESS &&
            u.data.type == MSGPACK_OBJECT_STR)
            out = u.data.via.str.size
                      ? strndup(u.data.via.str.ptr, u.data.via.str.size)
                      : strdup(""); /* msgpack-c gives NULL for "" */
        msgpack_unpacked_destroy(&u);
    }
    msgpack_sbuffer_destroy(&sb);
    return out;
}

static int s_json_u64(const char *p, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || (n > 1 && *p == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int s_json_time(const char *p, size_t n, uint64_t *out)
{
    if (s_is(p, n, "null")) {
        *out = 0;
        return 0;
    }
    char *s = s_json_text(p, n);
    int rc = s ? s_parse_time(s, out) : -1;
    free(s);
    return rc;
}

static int s_b64_val(char c)
{
    const char *q = c ? strchr(s_b64, c) : NULL;
    return q ? (int)(q - s_b64) : -1;
}

static int s_b64_decode(const char *s, msgpack_sbuffer *out)
{
    size_t n = strlen(s);
    if (n % 4)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int a = s_b64_val(s[i]), b = s_b64_val(s[i + 1]);
        bool last = i + 4 == n;
        int c = last && s[i + 2] == '=' ? -2 : s_b64_val(s[i + 2]);
        int d = last && s[i + 3] == '=' ? -2 : s_b64_val(s[i + 3]);
        if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2))
            return -1;
        unsigned char q[3];
        size_t k = 1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12;
        if (c >= 0) {
            v |= (uint32_t)c << 6;
            k = 2;
        }
        if (d >= 0) {
            v |= (uint32_t)d;
            k = 3;
        }
        q[0] = (unsigned char)(v >> 16);
        q[1] = (unsigned char)(v >> 8);
        q[2] = (unsigned char)v;
        if (s_put(out, q, k))
            return -1;
    }
    return 0;
}

/* One value of a JSONL entry by key. 0, or -1 with a reason in why. */
static int s_jsonl_field(s_ent_t *x, const char *k, size_t kn,
                         const char *v, size_t vn, char *why, size_t wl)
{
    uint64_t u;
    if (s_is(k, kn, "stage")) {
        free(x->stage);
        if (!(x->stage = s_json_text(v, vn)))
            goto bad_string;
        x->has_stage = true;
    } else if (s_is(k, kn, "error")) {
        free(x->error);
        x->error = NULL;
        if (!s_is(v, vn, "null") && !(x->error = s_json_text(v, vn)))
            goto bad_string;
    } else if (s_is(k, kn, "id")) {
        if (s_json_u64(v, vn, UINT64_MAX, &x->e.id))
            goto bad_uint;
    } else if (s_is(k, kn, "attempts")) {
        if (s_json_u64(v, vn, UINT32_MAX, &u))
            goto bad_uint;
        x->e.attempts = (uint32_t)u;
    } else if (s_is(k, kn, "priority")) {
        if (s_json_u64(v, vn, UINT8_MAX, &u))
            goto bad_uint;
        x->e.priority = (uint8_t)u;
    } else if (s_is(k, kn, "ts") || s_is(k, kn, "first_failure") ||
               s_is(k, kn, "last_failure")) {
        uint64_t *t = k[0] == 't' ? &x->e.ts_ns
                      : k[0] == 'f' ? &x->e.first_failure_ns
                                    : &x->e.last_failure_ns;
        if (s_json_time(v, vn, t)) {
            s_fmt(why, wl, "'%.*s' must be an RFC 3339 time or null",
                  (int)kn, k);
            return -1;
        }
    } else if (s_is(k, kn, "record")) {
        x->rec.size = 0;
        x->has_rec = false;
        if (s_is(v, vn, "null"))
            return 0;
        if (*v != '{') {
            s_fmt(why, wl, "'record' must be an object or null");
            return -1;
        }
        msgpack_packer pk;
        msgpack_packer_init(&pk, &x->rec, msgpack_sbuffer_write);
        char jerr[160];
        if (sl_json_decode(v, vn, &pk, jerr, sizeof(jerr)) != 0) {
            s_fmt(why, wl, "'record' is not valid JSON (%s)", jerr);
            return -1;
        }
        x->has_rec = true;
    } else if (s_is(k, kn, "record_msgpack_b64")) {
        char *s = s_json_text(v, vn);
        x->rec.size = 0;
        int rc = s ? s_b64_decode(s, &x->rec) : -1;
        free(s);
        if (rc) {
            s_fmt(why, wl, "'record_msgpack_b64' must be a base64 string");
            return -1;
        }
        x->has_rec = true;
    }
    /* Other keys: written by a later version, skipped. */
    return 0;

bad_string:
    s_fmt(why, wl, "'%.*s' must be a string", (int)kn, k);
    return -1;
bad_uint:
    s_fmt(why, wl, "'%.*s' must be an unsigned integer in range", (int)kn,
          k);
    return -1;
}

static int s_jsonl_entry(s_ent_t *x, const char *p, const char *e,
                         char *why, size_t wl)
{
    p = s_ws(p, e);
    if (p >= e || *p != '{') {
        s_fmt(why, wl, "not a JSON object");
        return -1;
    }
    p = s_ws(p + 1, e);
    if (p < e && *p == '}') {
        p++;
    } else {
        for (;;) {
            const char *k = p, *ke = p < e && *p == '"' ? s_skip_str(p, e)
                                                        : NULL;
            if (!ke)
                goto syntax;
            p = s_ws(ke, e);
            if (p >= e || *p != ':')
                goto syntax;
            const char *v = s_ws(p + 1, e), *ve = s_skip_value(v, e);
            if (!ve)
                goto syntax;
            if (s_jsonl_field(x, k + 1, (size_t)(ke - k - 2), v,
                              (size_t)(ve - v), why, wl))
                return -1;
            p = s_ws(ve, e);
            if (p < e && *p == '}') {
                p++;
                break;
            }
            if (p >= e || *p != ',')
                goto syntax;
            p = s_ws(p + 1, e);
        }
    }
    if (s_ws(p, e) != e) {
        s_fmt(why, wl, "text after the closing brace");
        return -1;
    }
    if (!x->has_stage) {
        s_fmt(why, wl, "no 'stage'");
        return -1;
    }
    if (x->has_rec) {
        /* An empty payload still says "there was one". */
        x->e.record = x->rec.size ? x->rec.data : "";
        x->e.record_len = x->rec.size;
    }
    return 0;
syntax:
    s_fmt(why, wl, "not a valid JSON object");
    return -1;
}

static int s_read_jsonl(const char *path, const char *data, size_t size,
                        sl_deadletter_visit_fn fn, void *arg, char *err,
                        size_t errlen)
{
    const char *p = data, *end = data + size;
    unsigned long entry = 0, line = 0;
    s_ent_t x = {0};
    msgpack_sbuffer_init(&x.rec);
    char why[256];
    int rc = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        if (s_ws(p, le) == le) { /* a blank line is no entry */
            p = le + (nl != NULL);
            continue;
        }
        entry++;
        if (!nl) {
            s_fmt(err, errlen, "%s: entry %lu (line %lu) is truncated: the "
                  "file ends in the middle of it", path, entry, line);
            rc = -EBADMSG;
            break;
        }
        if (s_jsonl_entry(&x, p, le, why, sizeof(why))) {
            s_fmt(err, errlen, "%s: entry %lu (line %lu): %s", path, entry,
                  line, why);
            rc = -EBADMSG;
            break;
        }
        if ((rc = s_visit(&x, fn, arg)) != 0)
            break;
        s_ent_clear(&x);
        p = nl + 1;
    }
    s_ent_clear(&x);
    msgpack_sbuffer_destroy(&x.rec);
    return rc;
}

/* ---- reading msgpack ---------------------------------------------------- */

/* The bytes of a str (or bin) value whose span is [v, v + n). */
static bool s_mp_bytes(const unsigned char *v, size_t n, bool bin,
                       const char **p, size_t *len)
{
    s_mph_t h;
    bool is_bin = v[0] >= 0xc4 && v[0] <= 0xc6;
    bool is_str = (v[0] >= 0xa0 && v[0] <= 0xbf) ||
                  (v[0] >= 0xd9 && v[0] <= 0xdb);
    if ((bin ? !is_bin : !is_str) || s_mp_head(v, n, &h) != 1)
        return false;
    *p = (const char *)v + h.hdr;
    *len = (size_t)h.body;
    return true;
}

/* A non-negative integer in any encoding, up to max. */
static bool s_mp_uint(const unsigned char *v, size_t n, uint64_t max,
                      uint64_t *out)
{
    uint64_t u;
    if (v[0] <= 0x7f) {
        u = v[0];
    } else if (v[0] >= 0xcc && v[0] <= 0xcf) {
        u = s_be(v + 1, n - 1);
    } else if (v[0] >= 0xd0 && v[0] <= 0xd3) {
        u = s_be(v + 1, n - 1);
        if (u >> (8 * (n - 1) - 1)) /* the sign bit */
            return false;
    } else {
        return false;
    }
    if (u > max)
        return false;
    *out = u;
    return true;
}

static bool s_mp_text(const unsigned char *v, size_t n, char **out)
{
    const char *p;
    size_t len;
    free(*out);
    *out = NULL;
    if (v[0] == 0xc0)
        return true;
    if (!s_mp_bytes(v, n, false, &p, &len))
        return false;
    return (*out = strndup(p, len)) != NULL;
}

/* One value by key; [v, v + n) is its span in the file. */
static bool s_mp_field(s_ent_t *x, const char *k, size_t kn,
                       const unsigned char *v, size_t n)
{
    uint64_t u = 0;
    bool ok = true;
    if (s_is(k, kn, "stage")) {
        ok = v[0] != 0xc0 && s_mp_text(v, n, &x->stage);
        x->has_stage = ok;
    } else if (s_is(k, kn, "error")) {
        ok = s_mp_text(v, n, &x->error);
    } else if (s_is(k, kn, "id")) {
        ok = s_mp_uint(v, n, UINT64_MAX, &x->e.id);
    } else if (s_is(k, kn, "ts")) {
        ok = s_mp_uint(v, n, UINT64_MAX, &x->e.ts_ns);
    } else if (s_is(k, kn, "first_failure")) {
        ok = s_mp_uint(v, n, UINT64_MAX, &x->e.first_failure_ns);
    } else if (s_is(k, kn, "last_failure")) {
        ok = s_mp_uint(v, n, UINT64_MAX, &x->e.last_failure_ns);
    } else if (s_is(k, kn, "attempts")) {
        ok = s_mp_uint(v, n, UINT32_MAX, &u);
        x->e.attempts = (uint32_t)u;
    } else if (s_is(k, kn, "priority")) {
        ok = s_mp_uint(v, n, UINT8_MAX, &u);
        x->e.priority = (uint8_t)u;
    } else if (s_is(k, kn, "record")) {
        ok = v[0] == 0xc0 || s_is_map(v);
        x->e.record = ok && v[0] != 0xc0 ? v : NULL;
        x->e.record_len = x->e.record ? n : 0;
    } else if (s_is(k, kn, "record_bin")) {
        const char *p = NULL;
        ok = s_mp_bytes(v, n, true, &p, &x->e.record_len);
        x->e.record = p;
    }
    return ok;
}

/* One entry at *off: 0, 1 if the file ends inside it, -1 if corrupt
 * (why says how). */
static int s_mp_entry(s_ent_t *x, const unsigned char *data, size_t size,
                      size_t *off, char *why, size_t wl)
{
    size_t pos = *off, len;
    s_mph_t h;
    int r = s_mp_head(data + pos, size - pos, &h);
    if (r == 0)
        return 1;
    if (r < 0 || h.kind != S_MP_MAP) {
        s_fmt(why, wl, "not a msgpack map (byte 0x%02x at offset %zu)",
              data[pos], pos);
        return -1;
    }
    pos += h.hdr;
    for (uint64_t i = 0; i < h.items; i += 2) {
        const char *k = NULL;
        size_t kn = 0;
        if ((r = s_mp_skip(data + pos, size - pos, &len)) <= 0)
            goto cut;
        if (!s_mp_bytes(data + pos, len, false, &k, &kn)) {
            s_fmt(why, wl, "a key that is not a string at offset %zu", pos);
            return -1;
        }
        pos += len;
        if ((r = s_mp_skip(data + pos, size - pos, &len)) <= 0)
            goto cut;
        if (!s_mp_field(x, k, kn, data + pos, len)) {
            s_fmt(why, wl, "'%.*s' has the wrong type", (int)kn, k);
            return -1;
        }
        pos += len;
    }
    if (!x->has_stage) {
        s_fmt(why, wl, "no 'stage'");
        return -1;
    }
    *off = pos;
    return 0;
cut:
    if (r < 0)
        s_fmt(why, wl, "corrupt msgpack at offset %zu", pos);
    return r < 0 ? -1 : 1;
}

static int s_read_msgpack(const char *path, const unsigned char *data,
                          size_t size, sl_deadletter_visit_fn fn, void *arg,
                          char *err, size_t errlen)
{
    s_ent_t x = {0};
    msgpack_sbuffer_init(&x.rec);
    unsigned long entry = 0;
    size_t off = 0;
    char why[256];
    int rc = 0;
    while (off < size) {
        entry++;
        int r = s_mp_entry(&x, data, size, &off, why, sizeof(why));
        if (r == 1) {
            s_fmt(err, errlen, "%s: entry %lu is truncated: the file ends "
                  "in the middle of it", path, entry);
            rc = -EBADMSG;
            break;
        }
        if (r < 0) {
            s_fmt(err, errlen, "%s: entry %lu: %s", path, entry, why);
            rc = -EBADMSG;
            break;
        }
        if ((rc = s_visit(&x, fn, arg)) != 0)
            break;
        s_ent_clear(&x);
    }
    s_ent_clear(&x);
    msgpack_sbuffer_destroy(&x.rec);
    return rc;
}

/* ---- reading: entry point ----------------------------------------------- */

int sl__deadletter_read(const char *path, sl_deadletter_visit_fn fn,
                        void *arg, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        s_fmt(err, errlen, "cannot open dead-letter file '%s': %s", path,
              strerror(-rc));
        return rc;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        s_fmt(err, errlen, "dead-letter file '%s' is not a regular file",
              path);
        return -EINVAL;
    }
    if (sb.st_size == 0) {
        close(fd);
        return 0;
    }
    size_t size = (size_t)sb.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        int rc = -errno;
        s_fmt(err, errlen, "cannot read dead-letter file '%s': %s", path,
              strerror(-rc));
        return rc;
    }
    const char *data = map;
    int rc = data[0] == '{'
                 ? s_read_jsonl(path, data, size, fn, arg, err, errlen)
                 : s_read_msgpack(path, map, size, fn, arg, err, errlen);
    munmap(map, size);
    return rc;
}
