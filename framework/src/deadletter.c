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
#include "deadletter_int.h"

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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

void sl__dl_fmt(char *err, size_t errlen, const char *fmt, ...)
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
            sl__dl_fmt(err, errlen, "cannot open dead-letter file '%s': "
                       "directory '%s' does not exist", path, dir);
            free(dir);
            return;
        }
    }
    free(dir);
    sl__dl_fmt(err, errlen, "cannot open dead-letter file '%s': %s", path,
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
        sl__dl_fmt(err, errlen, "dead-letter file: no path given");
        return NULL;
    }
    if (format != SL_DL_JSONL && format != SL_DL_MSGPACK) {
        sl__dl_fmt(err, errlen, "dead-letter file '%s': unknown format %d",
                   path, (int)format);
        return NULL;
    }
    sl_deadletter_t *dl = calloc(1, sizeof(*dl));
    if (!dl) {
        sl__dl_fmt(err, errlen, "dead-letter file '%s': out of memory", path);
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
            sl__dl_fmt(err, errlen, "dead-letter file '%s' already holds %s "
                       "entries; it cannot take %s ones (one file, one format)",
                       path, s_format_name((sl_dl_format_t)have),
                       s_format_name(format));
            goto fail_fd;
        }
    }
    if (pthread_mutex_init(&dl->lock, NULL) != 0) {
        sl__dl_fmt(err, errlen, "dead-letter file '%s': cannot create a lock",
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

/* 0xc0..0xdf: width of the length field, fixed body bytes, kind. */
static const struct {
    unsigned char w, fixed, kind;
} s_mpt[32] = {
    {0, 0, SL_MP_SCALAR}, {0, 0, SL_MP_BAD},    {0, 0, SL_MP_SCALAR}, /* c0 */
    {0, 0, SL_MP_SCALAR}, {1, 0, SL_MP_BYTES},  {2, 0, SL_MP_BYTES},  /* c3 */
    {4, 0, SL_MP_BYTES},  {1, 1, SL_MP_BYTES},  {2, 1, SL_MP_BYTES},  /* c6 */
    {4, 1, SL_MP_BYTES},  {0, 4, SL_MP_SCALAR}, {0, 8, SL_MP_SCALAR}, /* c9 */
    {0, 1, SL_MP_SCALAR}, {0, 2, SL_MP_SCALAR}, {0, 4, SL_MP_SCALAR}, /* cc */
    {0, 8, SL_MP_SCALAR}, {0, 1, SL_MP_SCALAR}, {0, 2, SL_MP_SCALAR}, /* cf */
    {0, 4, SL_MP_SCALAR}, {0, 8, SL_MP_SCALAR}, {0, 2, SL_MP_SCALAR}, /* d2 */
    {0, 3, SL_MP_SCALAR}, {0, 5, SL_MP_SCALAR}, {0, 9, SL_MP_SCALAR}, /* d5 */
    {0, 17, SL_MP_SCALAR}, {1, 0, SL_MP_BYTES}, {2, 0, SL_MP_BYTES},  /* d8 */
    {4, 0, SL_MP_BYTES},  {2, 0, SL_MP_ARRAY},  {4, 0, SL_MP_ARRAY},  /* db */
    {2, 0, SL_MP_MAP},    {4, 0, SL_MP_MAP},                          /* de */
};

uint64_t sl__mp_be(const unsigned char *p, size_t w)
{
    uint64_t v = 0;
    for (size_t i = 0; i < w; i++)
        v = v << 8 | p[i];
    return v;
}

/* The header at p: 1, 0 if the data ends inside it, -1 for 0xc1. */
int sl__mp_head(const unsigned char *p, size_t avail, sl_mph_t *h)
{
    if (avail < 1)
        return 0;
    unsigned char b = p[0];
    *h = (sl_mph_t){.kind = SL_MP_SCALAR, .hdr = 1};
    if (b <= 0x7f || b >= 0xe0)
        return 1;
    if (b <= 0x8f) {
        h->kind = SL_MP_MAP;
        h->items = 2u * (b & 0x0fu);
    } else if (b <= 0x9f) {
        h->kind = SL_MP_ARRAY;
        h->items = b & 0x0fu;
    } else if (b <= 0xbf) {
        h->kind = SL_MP_BYTES;
        h->body = b & 0x1fu;
    } else {
        size_t w = s_mpt[b - 0xc0].w;
        if (s_mpt[b - 0xc0].kind == SL_MP_BAD)
            return -1;
        if (avail < 1 + w)
            return 0;
        uint64_t n = sl__mp_be(p + 1, w);
        h->kind = (sl_mpk_t)s_mpt[b - 0xc0].kind;
        h->hdr = 1 + w;
        h->body = s_mpt[b - 0xc0].fixed + (h->kind == SL_MP_BYTES ? n : 0);
        h->items = h->kind == SL_MP_ARRAY ? n
                   : h->kind == SL_MP_MAP ? 2 * n
                                          : 0;
    }
    return 1;
}

/* Length of the whole object at p: 1 with *len, 0 if the data ends first
 * (or a count says it must), -1 if corrupt. */
int sl__mp_skip(const unsigned char *p, size_t avail, size_t *len)
{
    size_t off = 0;
    uint64_t pending = 1;
    while (pending) {
        sl_mph_t h;
        int r = sl__mp_head(p + off, avail - off, &h);
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

bool sl__mp_is_map(const unsigned char *p)
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
    time_t sec = (time_t)(ns / SL_DL_NS);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (unsigned)(ns % SL_DL_NS));
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

const char sl__dl_b64[] =
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
        q[0] = sl__dl_b64[v >> 18];
        q[1] = sl__dl_b64[(v >> 12) & 63];
        q[2] = i + 1 < n ? sl__dl_b64[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? sl__dl_b64[v & 63] : '=';
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
    if (sl__mp_skip(in->payload, in->len, &len) != 1 || len != in->len ||
        !sl__mp_is_map(in->payload))
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

static s_in_t s_in(const char *stage, const sl_envelope_t *env,
                   const void *payload, size_t len, const char *error,
                   uint32_t attempts, uint64_t first_ns, uint64_t last_ns)
{
    return (s_in_t){.stage = stage,
                    .id = env ? env->id : 0,
                    .ts_ns = env ? env->ts_ns : 0,
                    .priority = env ? env->priority : 0,
                    .payload = payload,
                    .len = payload ? len : 0,
                    .error = error,
                    .attempts = attempts,
                    .first_ns = first_ns,
                    .last_ns = last_ns};
}

int sl__deadletter_write(sl_deadletter_t *dl, const char *stage,
                         const sl_envelope_t *env, const void *payload,
                         size_t len, const char *error, uint32_t attempts,
                         uint64_t first_failure_ns, uint64_t last_failure_ns)
{
    if (!dl || !stage)
        return -EINVAL;
    s_in_t in = s_in(stage, env, payload, len, error, attempts,
                     first_failure_ns, last_failure_ns);
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

int sl__deadletter_encode(msgpack_sbuffer *out, const char *stage,
                          const sl_envelope_t *env, const void *payload,
                          size_t len, const char *error, uint32_t attempts,
                          uint64_t first_failure_ns, uint64_t last_failure_ns)
{
    if (!stage)
        return -EINVAL;
    s_in_t in = s_in(stage, env, payload, len, error, attempts,
                     first_failure_ns, last_failure_ns);
    return s_build_msgpack(out, &in);
}

int sl__deadletter_entry_jsonl(msgpack_sbuffer *out,
                               const sl_deadletter_entry_t *e)
{
    sl_envelope_t env = {.id = e->id, .ts_ns = e->ts_ns,
                         .priority = e->priority};
    s_in_t in = s_in(e->stage, &env, e->record, e->record_len, e->error,
                     e->attempts, e->first_failure_ns, e->last_failure_ns);
    return s_build_jsonl(out, &in);
}
