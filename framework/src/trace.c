/* Trace files: see trace.h for the format. */
#include "trace.h"

#include "mpscan.h"

#include <msgpack.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Writes go out in chunks of this size; a bigger entry is written as is. */
#define S_WBUF (1u << 20)
/* A header is a handful of short keys: anything larger is not ours. */
#define S_HEADER_MAX (64u << 10)
/* What an entry adds around its record: array header and offset. */
#define S_ENTRY_OVERHEAD 16u
/* The first read, and the least a buffer grows by. */
#define S_RCHUNK (64u << 10)

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- writing -------------------------------------------------------------- */

struct sl_trace_writer {
    int fd;
    unsigned char *buf;
    size_t len;
    uint64_t written;
    uint64_t prev;
    int err; /* the first write error; every later call returns it */
};

static int s_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int s_flush(sl_trace_writer_t *w)
{
    if (w->err)
        return w->err;
    int rc = s_write_all(w->fd, w->buf, w->len);
    w->len = 0;
    if (rc)
        w->err = rc;
    return rc;
}

static int s_put(sl_trace_writer_t *w, const void *data, size_t len)
{
    if (len > S_WBUF - w->len) {
        int rc = s_flush(w);
        if (rc)
            return rc;
        if (len > S_WBUF) {
            rc = s_write_all(w->fd, data, len);
            if (rc)
                w->err = rc;
            return rc;
        }
    }
    memcpy(w->buf + w->len, data, len);
    w->len += len;
    return 0;
}

static int s_pk_write(void *data, const char *buf, size_t len)
{
    return s_put(data, buf, len) ? -1 : 0;
}

sl_trace_writer_t *sl_trace_writer_new(const char *path, const char *origin,
                                       char *err, size_t errlen)
{
    sl_trace_writer_t *w = calloc(1, sizeof(*w));
    if (!w || !(w->buf = malloc(S_WBUF))) {
        s_err(err, errlen, "%s: out of memory", path);
        free(w);
        return NULL;
    }
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        s_err(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        goto fail;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (!origin)
        origin = "";
    msgpack_packer pk;
    msgpack_packer_init(&pk, w, s_pk_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "sluice_trace", 12);
    msgpack_pack_uint32(&pk, SL_TRACE_VERSION);
    msgpack_pack_str_with_body(&pk, "created_ns", 10);
    msgpack_pack_uint64(&pk, now);
    msgpack_pack_str_with_body(&pk, "origin", 6);
    msgpack_pack_str_with_body(&pk, origin, strlen(origin));
    if (s_flush(w)) {
        s_err(err, errlen, "%s: cannot write: %s", path, strerror(-w->err));
        goto fail;
    }
    return w;
fail:
    if (w->fd >= 0)
        close(w->fd);
    free(w->buf);
    free(w);
    return NULL;
}

static int s_is_map(const void *data)
{
    unsigned c = *(const unsigned char *)data;
    return (c & 0xf0) == 0x80 || c == 0xde || c == 0xdf;
}

/* The smallest msgpack unsigned integer for v; returns its size. */
static size_t s_pack_uint(unsigned char *out, uint64_t v)
{
    unsigned n;
    if (v <= 0x7f) {
        out[0] = (unsigned char)v;
        return 1;
    }
    if (v <= 0xff) {
        out[0] = 0xcc;
        n = 1;
    } else if (v <= 0xffff) {
        out[0] = 0xcd;
        n = 2;
    } else if (v <= 0xffffffffu) {
        out[0] = 0xce;
        n = 4;
    } else {
        out[0] = 0xcf;
        n = 8;
    }
    for (unsigned i = 0; i < n; i++)
        out[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
    return 1 + n;
}

int sl_trace_write(sl_trace_writer_t *w, uint64_t offset_ns, const void *rec,
                   size_t len)
{
    if (w->err)
        return w->err;
    size_t used;
    if (!rec || len == 0 || len > SL_TRACE_RECORD_MAX || !s_is_map(rec))
        return -EBADMSG;
    if (sl__mpscan_object(rec, len, SL_MP_MAX_DEPTH, &used) != 0 || used != len)
        return -EBADMSG;
    if (w->written && offset_ns < w->prev)
        return -EINVAL;
    unsigned char head[16];
    head[0] = 0x92;
    size_t n = 1 + s_pack_uint(head + 1, offset_ns);
    int rc = s_put(w, head, n);
    if (!rc)
        rc = s_put(w, rec, len);
    if (rc)
        return rc;
    w->prev = offset_ns;
    w->written++;
    return 0;
}

uint64_t sl_trace_written(const sl_trace_writer_t *w)
{
    return w->written;
}

int sl_trace_writer_close(sl_trace_writer_t **wp)
{
    sl_trace_writer_t *w = wp ? *wp : NULL;
    if (!w)
        return 0;
    int rc = s_flush(w);
    if (!rc && fsync(w->fd) < 0)
        rc = -errno;
    if (close(w->fd) < 0 && !rc)
        rc = -errno;
    free(w->buf);
    free(w);
    *wp = NULL;
    return rc;
}

/* ---- reading ---------------------------------------------------------------- */

struct sl_trace_reader {
    int fd;
    char *path;
    uint64_t size;      /* of the file when opened: the most ever buffered */
    unsigned char *buf;
    size_t cap;
    size_t at;          /* next unread byte in buf */
    size_t end;         /* bytes in buf */
    uint64_t buf_off;   /* file offset of buf[0] */
    int eof;            /* read() said so */
    uint64_t data_off;  /* file offset of the first entry */
    uint64_t entries;   /* returned so far */
    uint64_t prev;
    int failed;
    sl_trace_header_t hdr;
    char *origin;
    char err[512];
};

/* Makes at least want bytes from r->at available if the file has them
 * (fewer at its end). Never holds more than what is left of the file, so a
 * length read from the file cannot make it allocate more than that.
 * 0 or -errno. */
static int s_fill(sl_trace_reader_t *r, size_t want)
{
    if (r->end - r->at >= want || r->eof)
        return 0;
    uint64_t pos = r->buf_off + r->at;
    uint64_t left = r->size > pos ? r->size - pos : 0;
    if (want > left)
        want = left ? (size_t)left : 1;
    if (r->at) {
        memmove(r->buf, r->buf + r->at, r->end - r->at);
        r->end -= r->at;
        r->buf_off += r->at;
        r->at = 0;
    }
    if (want > r->cap) {
        size_t cap = r->cap ? r->cap : S_RCHUNK;
        while (cap < want)
            cap *= 2;
        if (cap > left && left >= want)
            cap = (size_t)left;
        unsigned char *nb = realloc(r->buf, cap);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = cap;
    }
    while (r->end < want) {
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) {
            r->eof = 1;
            break;
        }
        r->end += (size_t)n;
    }
    return 0;
}

static int s_fail(sl_trace_reader_t *r, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_fail(sl_trace_reader_t *r, uint64_t at, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(r->err, sizeof(r->err), "%s: entry %llu at byte %llu: %s",
             r->path, (unsigned long long)r->entries + 1,
             (unsigned long long)at, why);
    r->failed = 1;
    return -EBADMSG;
}

/* Scans one object at r->at, reading more of the file as needed, up to
 * limit bytes. 0 with *used; else the scan's error (-EAGAIN: the file
 * ended first, or limit was reached: *used says which). */
static int s_scan_more(sl_trace_reader_t *r, size_t limit, size_t *used)
{
    /* Scan what is buffered first: asking for a chunk ahead of every
     * entry would move the buffer down for each one. */
    size_t want = 0, before = SIZE_MAX;
    for (;;) {
        int rc = want ? s_fill(r, want < limit ? want : limit) : 0;
        if (rc)
            return rc;
        size_t avail = r->end - r->at;
        if (avail > limit)
            avail = limit;
        rc = sl__mpscan_object(r->buf + r->at, avail, SL_MP_MAX_DEPTH, used);
        /* No new bytes came: the file ends inside the object. */
        if (rc != -EAGAIN || avail >= limit || avail == before)
            return rc;
        before = avail;
        want = avail < S_RCHUNK ? S_RCHUNK : avail * 2;
    }
}

static int s_read_header(sl_trace_reader_t *r, char *err, size_t errlen)
{
    size_t used;
    int rc = s_fill(r, 1);
    if (rc) {
        s_err(err, errlen, "%s: cannot read: %s", r->path, strerror(-rc));
        return rc;
    }
    if (r->end == 0) {
        s_err(err, errlen, "%s: not a sluice trace (the file is empty)",
              r->path);
        return -EBADMSG;
    }
    sl_mp_head_t h;
    if (sl__mpscan_head(r->buf, r->end, &h) != 0 || h.kind != SL_MP_MAP) {
        s_err(err, errlen, "%s: not a sluice trace (it does not start with "
              "a header map)", r->path);
        return -EBADMSG;
    }
    rc = s_scan_more(r, S_HEADER_MAX, &used);
    if (rc == -EAGAIN || rc == -EBADMSG || rc == -ELOOP) {
        s_err(err, errlen, "%s: not a sluice trace (%s)", r->path,
              rc == -EBADMSG  ? "invalid msgpack in the header"
              : rc == -ELOOP  ? "the header nests too deep"
              : used >= S_HEADER_MAX ? "the header is larger than 64 KiB"
                                     : "the header is cut short");
        return -EBADMSG;
    }
    if (rc) {
        s_err(err, errlen, "%s: cannot read: %s", r->path, strerror(-rc));
        return rc;
    }
    const unsigned char *p = r->buf + r->at;
    size_t pos = 0;
    sl_mp_head_t m;
    sl__mpscan_head(p, used, &m);
    pos = m.hdr;
    int have_version = 0;
    for (uint64_t i = 0; i < m.n; i++) {
        sl_mp_head_t k, v;
        size_t klen, vlen;
        sl__mpscan_object(p + pos, used - pos, SL_MP_MAX_DEPTH, &klen);
        sl__mpscan_head(p + pos, used - pos, &k);
        const char *key = (const char *)p + pos + k.hdr;
        size_t keylen = k.kind == SL_MP_STR ? (size_t)k.n : 0;
        pos += klen;
        sl__mpscan_object(p + pos, used - pos, SL_MP_MAX_DEPTH, &vlen);
        sl__mpscan_head(p + pos, used - pos, &v);
        const char *val = (const char *)p + pos + v.hdr;
#define S_IS(name) (keylen == sizeof(name) - 1 && !memcmp(key, name, keylen))
        if (S_IS("sluice_trace")) {
            if (v.kind != SL_MP_INT || v.neg) {
                s_err(err, errlen, "%s: bad trace header: 'sluice_trace' is "
                      "a %s, not a version number", r->path,
                      sl__mpscan_kind_name(v.kind));
                return -EBADMSG;
            }
            if (v.u != SL_TRACE_VERSION) {
                s_err(err, errlen, "%s: unsupported trace version %llu (this "
                      "sluice reads version %u)", r->path,
                      (unsigned long long)v.u, SL_TRACE_VERSION);
                return -EPROTO;
            }
            have_version = 1;
        } else if (S_IS("created_ns")) {
            if (v.kind != SL_MP_INT || v.neg) {
                s_err(err, errlen, "%s: bad trace header: 'created_ns' is a "
                      "%s, not a time in ns", r->path,
                      sl__mpscan_kind_name(v.kind));
                return -EBADMSG;
            }
            r->hdr.created_ns = v.u;
        } else if (S_IS("origin")) {
            if (v.kind != SL_MP_STR) {
                s_err(err, errlen, "%s: bad trace header: 'origin' is a %s, "
                      "not a string", r->path, sl__mpscan_kind_name(v.kind));
                return -EBADMSG;
            }
            free(r->origin);
            r->origin = strndup(val, (size_t)v.n);
            if (!r->origin) {
                s_err(err, errlen, "%s: out of memory", r->path);
                return -ENOMEM;
            }
        }
#undef S_IS
        pos += vlen;
    }
    if (!have_version) {
        s_err(err, errlen, "%s: not a sluice trace (no 'sluice_trace' key in "
              "the header)", r->path);
        return -EBADMSG;
    }
    if (!r->origin && !(r->origin = strdup(""))) {
        s_err(err, errlen, "%s: out of memory", r->path);
        return -ENOMEM;
    }
    r->hdr.version = SL_TRACE_VERSION;
    r->hdr.origin = r->origin;
    r->at += used;
    r->data_off = r->buf_off + r->at;
    return 0;
}

sl_trace_reader_t *sl_trace_reader_open(const char *path, char *err,
                                        size_t errlen)
{
    sl_trace_reader_t *r = calloc(1, sizeof(*r));
    if (!r || !(r->path = strdup(path))) {
        s_err(err, errlen, "%s: out of memory", path);
        free(r);
        return NULL;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (r->fd < 0 || fstat(r->fd, &st) < 0) {
        s_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        s_err(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    r->size = (uint64_t)st.st_size;
    if (s_read_header(r, err, errlen) < 0)
        goto fail;
    return r;
fail:
    sl_trace_reader_close(&r);
    return NULL;
}

const sl_trace_header_t *sl_trace_reader_header(const sl_trace_reader_t *r)
{
    return &r->hdr;
}

static int s_torn(sl_trace_reader_t *r, uint64_t at)
{
    uint64_t have = r->buf_off + r->end - at;
    return s_fail(r, at, "torn entry: the file ends %llu byte%s into it",
                  (unsigned long long)have, have == 1 ? "" : "s");
}

int sl_trace_next(sl_trace_reader_t *r, uint64_t *offset_ns, const void **rec,
                  size_t *len)
{
    if (r->failed)
        return -EBADMSG;
    int rc = s_fill(r, S_ENTRY_OVERHEAD);
    if (rc)
        return s_fail(r, r->buf_off + r->at, "read error: %s", strerror(-rc));
    if (r->at == r->end)
        return 1;
    uint64_t at = r->buf_off + r->at;
    const unsigned char *p = r->buf + r->at;
    size_t avail = r->end - r->at;
    sl_mp_head_t a, o;
    rc = sl__mpscan_head(p, avail, &a);
    if (rc == -EAGAIN)
        return s_torn(r, at);
    if (rc < 0)
        return s_fail(r, at, "invalid msgpack byte 0x%02x", p[0]);
    if (a.kind == SL_MP_ARRAY && a.n != 2)
        return s_fail(r, at, "expected an [offset, record] array, found an "
                      "array of %llu items", (unsigned long long)a.n);
    if (a.kind != SL_MP_ARRAY)
        return s_fail(r, at, "expected an [offset, record] array, found a%s "
                      "%s", a.kind == SL_MP_INT ? "n" : "",
                      sl__mpscan_kind_name(a.kind));
    rc = sl__mpscan_head(p + a.hdr, avail - a.hdr, &o);
    if (rc == -EAGAIN)
        return s_torn(r, at);
    if (rc < 0)
        return s_fail(r, at, "invalid msgpack byte 0x%02x", p[a.hdr]);
    if (o.kind != SL_MP_INT || o.neg)
        return s_fail(r, at, "the offset is a %s%s, not an unsigned integer",
                      o.neg ? "negative " : "", sl__mpscan_kind_name(o.kind));
    if (r->entries && o.u < r->prev)
        return s_fail(r, at, "offset %llu ns is below the previous one, %llu",
                      (unsigned long long)o.u, (unsigned long long)r->prev);
    size_t skip = a.hdr + o.hdr;
    if (avail > skip) {
        sl_mp_head_t m;
        rc = sl__mpscan_head(p + skip, avail - skip, &m);
        if (rc == -EBADMSG)
            return s_fail(r, at, "invalid msgpack byte 0x%02x", p[skip]);
        if (rc == 0 && m.kind != SL_MP_MAP)
            return s_fail(r, at, "the record is a%s %s, not a map",
                          m.kind == SL_MP_INT || m.kind == SL_MP_ARRAY ? "n"
                                                                       : "",
                          sl__mpscan_kind_name(m.kind));
    }
    r->at += skip; /* the record's scan may move the buffer */
    size_t used;
    rc = s_scan_more(r, SL_TRACE_RECORD_MAX, &used);
    if (rc == -EAGAIN) {
        if (used >= SL_TRACE_RECORD_MAX)
            return s_fail(r, at, "the record is larger than %u MiB",
                          SL_TRACE_RECORD_MAX >> 20);
        return s_torn(r, at);
    }
    if (rc == -EBADMSG)
        return s_fail(r, at, "invalid msgpack in the record (byte %llu)",
                      (unsigned long long)(r->buf_off + r->at + used));
    if (rc == -ELOOP)
        return s_fail(r, at, "the record nests deeper than %d levels",
                      SL_MP_MAX_DEPTH);
    if (rc)
        return s_fail(r, at, "read error: %s", strerror(-rc));
    if (!s_is_map(r->buf + r->at))
        return s_fail(r, at, "the record is not a map");
    *offset_ns = o.u;
    *rec = r->buf + r->at;
    *len = used;
    r->at += used;
    r->prev = o.u;
    r->entries++;
    return 0;
}

const char *sl_trace_reader_error(const sl_trace_reader_t *r)
{
    return r->failed ? r->err : NULL;
}

int sl_trace_rewind(sl_trace_reader_t *r)
{
    if (lseek(r->fd, (off_t)r->data_off, SEEK_SET) < 0)
        return -errno;
    r->at = r->end = 0;
    r->buf_off = r->data_off;
    r->eof = 0;
    r->entries = 0;
    r->prev = 0;
    r->failed = 0;
    r->err[0] = '\0';
    return 0;
}

void sl_trace_reader_close(sl_trace_reader_t **rp)
{
    sl_trace_reader_t *r = rp ? *rp : NULL;
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    free(r->origin);
    free(r->path);
    free(r);
    *rp = NULL;
}
