/*
 * Reading dead-letter files back (see deadletter.h): a reader walks the
 * file through a buffer that holds the entry at hand, JSONL line by line or
 * msgpack entry by entry, so that a corrupt or truncated file is reported
 * by entry number and never makes the reader trust a length it has not
 * checked, and a file of any size reads in the memory of its largest entry.
 */
#include "deadletter_int.h"

#include <sluice/json.h>

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

static const sl_deadletter_entry_t *s_done(s_ent_t *x)
{
    x->e.stage = x->stage;
    x->e.error = x->error;
    return &x->e;
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
    if (t < 0 || (uint64_t)t > UINT64_MAX / SL_DL_NS - 1)
        return -1;
    *out = (uint64_t)t * SL_DL_NS + frac;
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
    const char *q = c ? strchr(sl__dl_b64, c) : NULL;
    return q ? (int)(q - sl__dl_b64) : -1;
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
        if (msgpack_sbuffer_write(out, (const char *)q, k) != 0)
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
            sl__dl_fmt(why, wl, "'%.*s' must be an RFC 3339 time or null",
                       (int)kn, k);
            return -1;
        }
    } else if (s_is(k, kn, "record")) {
        x->rec.size = 0;
        x->has_rec = false;
        if (s_is(v, vn, "null"))
            return 0;
        if (*v != '{') {
            sl__dl_fmt(why, wl, "'record' must be an object or null");
            return -1;
        }
        msgpack_packer pk;
        msgpack_packer_init(&pk, &x->rec, msgpack_sbuffer_write);
        char jerr[160];
        if (sl_json_decode(v, vn, &pk, jerr, sizeof(jerr)) != 0) {
            sl__dl_fmt(why, wl, "'record' is not valid JSON (%s)", jerr);
            return -1;
        }
        x->has_rec = true;
    } else if (s_is(k, kn, "record_msgpack_b64")) {
        char *s = s_json_text(v, vn);
        x->rec.size = 0;
        int rc = s ? s_b64_decode(s, &x->rec) : -1;
        free(s);
        if (rc) {
            sl__dl_fmt(why, wl,
                       "'record_msgpack_b64' must be a base64 string");
            return -1;
        }
        x->has_rec = true;
    }
    /* Other keys: written by a later version, skipped. */
    return 0;

bad_string:
    sl__dl_fmt(why, wl, "'%.*s' must be a string", (int)kn, k);
    return -1;
bad_uint:
    sl__dl_fmt(why, wl, "'%.*s' must be an unsigned integer in range", (int)kn,
               k);
    return -1;
}

static int s_jsonl_entry(s_ent_t *x, const char *p, const char *e,
                         char *why, size_t wl)
{
    p = s_ws(p, e);
    if (p >= e || *p != '{') {
        sl__dl_fmt(why, wl, "not a JSON object");
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
        sl__dl_fmt(why, wl, "text after the closing brace");
        return -1;
    }
    if (!x->has_stage) {
        sl__dl_fmt(why, wl, "no 'stage'");
        return -1;
    }
    if (x->has_rec) {
        /* An empty payload still says "there was one". */
        x->e.record = x->rec.size ? x->rec.data : "";
        x->e.record_len = x->rec.size;
    }
    return 0;
syntax:
    sl__dl_fmt(why, wl, "not a valid JSON object");
    return -1;
}

/* ---- reading msgpack ---------------------------------------------------- */

/* The bytes of a str (or bin) value whose span is [v, v + n). */
static bool s_mp_bytes(const unsigned char *v, size_t n, bool bin,
                       const char **p, size_t *len)
{
    sl_mph_t h;
    bool is_bin = v[0] >= 0xc4 && v[0] <= 0xc6;
    bool is_str = (v[0] >= 0xa0 && v[0] <= 0xbf) ||
                  (v[0] >= 0xd9 && v[0] <= 0xdb);
    if ((bin ? !is_bin : !is_str) || sl__mp_head(v, n, &h) != 1)
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
        u = sl__mp_be(v + 1, n - 1);
    } else if (v[0] >= 0xd0 && v[0] <= 0xd3) {
        u = sl__mp_be(v + 1, n - 1);
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
        ok = v[0] == 0xc0 || sl__mp_is_map(v);
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
                      size_t *off, uint64_t base, char *why, size_t wl)
{
    size_t pos = *off, len;
    sl_mph_t h;
    int r = sl__mp_head(data + pos, size - pos, &h);
    if (r == 0)
        return 1;
    if (r < 0 || h.kind != SL_MP_MAP) {
        sl__dl_fmt(why, wl, "not a msgpack map (byte 0x%02x at offset %llu)",
                   data[pos], (unsigned long long)(base + pos));
        return -1;
    }
    pos += h.hdr;
    for (uint64_t i = 0; i < h.items; i += 2) {
        const char *k = NULL;
        size_t kn = 0;
        if ((r = sl__mp_skip(data + pos, size - pos, &len)) <= 0)
            goto cut;
        if (!s_mp_bytes(data + pos, len, false, &k, &kn)) {
            sl__dl_fmt(why, wl, "a key that is not a string at offset %llu",
                       (unsigned long long)(base + pos));
            return -1;
        }
        pos += len;
        if ((r = sl__mp_skip(data + pos, size - pos, &len)) <= 0)
            goto cut;
        if (!s_mp_field(x, k, kn, data + pos, len)) {
            sl__dl_fmt(why, wl, "'%.*s' has the wrong type", (int)kn, k);
            return -1;
        }
        pos += len;
    }
    if (!x->has_stage) {
        sl__dl_fmt(why, wl, "no 'stage'");
        return -1;
    }
    *off = pos;
    return 0;
cut:
    if (r < 0)
        sl__dl_fmt(why, wl, "corrupt msgpack at offset %llu",
                   (unsigned long long)(base + pos));
    return r < 0 ? -1 : 1;
}


/* ---- the reader --------------------------------------------------------- */

#define S_CHUNK (64u * 1024u)

struct sl_deadletter_reader {
    char *path;
    int fd;
    uint64_t bound;    /* bytes of the file that may be read */
    uint64_t got;      /* bytes read into buf so far */
    uint64_t base;     /* file offset of buf[0] */
    char *buf;
    size_t cap, start, end; /* unread bytes: buf[start, end) */
    size_t scanned;    /* JSONL: buf[start, scanned) has no newline */
    bool jsonl;
    int state;         /* 0 reading, 1 at the end, < 0 the error to repeat */
    char *last_err;    /* the error message, for repeats */
    unsigned long entry, line;
    s_ent_t x;
};

/* Reads more of the file after the unread bytes: 1 if some came, 0 at the
 * bound, -errno. Unread bytes move to the front, so pointers into the
 * buffer do not survive a call. */
static int s_fill(sl_deadletter_reader_t *r)
{
    if (r->got >= r->bound)
        return 0;
    if (r->start) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->base += r->start;
        r->end -= r->start;
        r->scanned -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : S_CHUNK;
        char *b = realloc(r->buf, cap);
        if (!b)
            return -ENOMEM;
        r->buf = b;
        r->cap = cap;
    }
    size_t want = r->cap - r->end;
    if (want > r->bound - r->got)
        want = (size_t)(r->bound - r->got);
    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->end, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0) { /* shorter than it was at open: that is the end */
            r->bound = r->got;
            return 0;
        }
        r->end += (size_t)n;
        r->got += (uint64_t)n;
        return 1;
    }
}

static int s_fail(sl_deadletter_reader_t *r, int rc, char *err, size_t errlen,
                  const char *fmt, ...) SL_PRINTF(5, 6);
static int s_fail(sl_deadletter_reader_t *r, int rc, char *err, size_t errlen,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(r->last_err);
    if (vasprintf(&r->last_err, fmt, ap) < 0)
        r->last_err = NULL;
    va_end(ap);
    sl__dl_fmt(err, errlen, "%s", r->last_err ? r->last_err : "out of memory");
    r->state = rc;
    return rc;
}

static int s_fail_read(sl_deadletter_reader_t *r, int rc, char *err,
                       size_t errlen)
{
    return s_fail(r, rc, err, errlen, "cannot read dead-letter file '%s': %s",
                  r->path, strerror(-rc));
}

static int s_next_jsonl(sl_deadletter_reader_t *r,
                        const sl_deadletter_entry_t **e, char *err,
                        size_t errlen)
{
    char why[256];
    for (;;) {
        char *p = r->buf + r->start, *end = r->buf + r->end;
        char *nl = memchr(r->buf + r->scanned, '\n', r->end - r->scanned);
        if (!nl) {
            r->scanned = r->end;
            int f = s_fill(r);
            if (f < 0)
                return s_fail_read(r, f, err, errlen);
            if (f > 0)
                continue;
            p = r->buf + r->start; /* the buffer may have moved */
            end = r->buf + r->end;
            if (s_ws(p, end) == end) { /* blank to the end */
                r->state = 1;
                return 0;
            }
            return s_fail(r, -EBADMSG, err, errlen,
                          "%s: entry %lu (line %lu) is truncated: the file "
                          "ends in the middle of it",
                          r->path, r->entry + 1, r->line + 1);
        }
        r->line++;
        r->start = r->scanned = (size_t)(nl + 1 - r->buf);
        if (s_ws(p, nl) == nl) /* a blank line is no entry */
            continue;
        if (s_jsonl_entry(&r->x, p, nl, why, sizeof(why)))
            return s_fail(r, -EBADMSG, err, errlen, "%s: entry %lu (line %lu): %s",
                          r->path, r->entry + 1, r->line, why);
        r->entry++;
        *e = s_done(&r->x);
        return 1;
    }
}

static int s_next_msgpack(sl_deadletter_reader_t *r,
                          const sl_deadletter_entry_t **e, char *err,
                          size_t errlen)
{
    char why[256];
    for (;;) {
        int f = 1;
        if (r->start == r->end) {
            if ((f = s_fill(r)) < 0)
                return s_fail_read(r, f, err, errlen);
            if (f == 0) {
                r->state = 1;
                return 0;
            }
        }
        size_t off = r->start;
        int rc = s_mp_entry(&r->x, (const unsigned char *)r->buf, r->end, &off,
                            r->base, why, sizeof(why));
        if (rc == 1) { /* cut short by the buffer, or by the file */
            s_ent_clear(&r->x);
            if ((f = s_fill(r)) < 0)
                return s_fail_read(r, f, err, errlen);
            if (f > 0)
                continue;
            return s_fail(r, -EBADMSG, err, errlen,
                          "%s: entry %lu is truncated: the file ends in the "
                          "middle of it", r->path, r->entry + 1);
        }
        if (rc < 0)
            return s_fail(r, -EBADMSG, err, errlen, "%s: entry %lu: %s",
                          r->path, r->entry + 1, why);
        r->start = off;
        r->entry++;
        *e = s_done(&r->x);
        return 1;
    }
}

int sl__deadletter_reader_next(sl_deadletter_reader_t *r,
                               const sl_deadletter_entry_t **e, char *err,
                               size_t errlen)
{
    if (r->state) {
        if (r->state < 0)
            sl__dl_fmt(err, errlen, "%s",
                       r->last_err ? r->last_err : "out of memory");
        return r->state < 0 ? r->state : 0;
    }
    s_ent_clear(&r->x);
    return r->jsonl ? s_next_jsonl(r, e, err, errlen)
                    : s_next_msgpack(r, e, err, errlen);
}

int sl__deadletter_reader_open(const char *path, uint64_t max_bytes,
                               sl_deadletter_reader_t **out, char *err,
                               size_t errlen)
{
    *out = NULL;
    sl_deadletter_reader_t *r = calloc(1, sizeof(*r));
    if (!r || !(r->path = strdup(path))) {
        free(r);
        sl__dl_fmt(err, errlen, "dead-letter file '%s': out of memory", path);
        return -ENOMEM;
    }
    msgpack_sbuffer_init(&r->x.rec);
    int rc;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        rc = -errno;
        sl__dl_fmt(err, errlen, "cannot open dead-letter file '%s': %s", path,
                   strerror(-rc));
        goto fail;
    }
    struct stat sb;
    if (fstat(r->fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        rc = -EINVAL;
        sl__dl_fmt(err, errlen, "dead-letter file '%s' is not a regular file",
                   path);
        goto fail;
    }
    r->bound = (uint64_t)sb.st_size < max_bytes ? (uint64_t)sb.st_size
                                                : max_bytes;
    /* The first byte decides the format. */
    if ((rc = s_fill(r)) < 0) {
        sl__dl_fmt(err, errlen, "cannot read dead-letter file '%s': %s", path,
                   strerror(-rc));
        goto fail;
    }
    r->jsonl = r->end > 0 && r->buf[0] == '{';
    *out = r;
    return 0;
fail:
    sl__deadletter_reader_close(&r);
    return rc;
}

uint64_t sl__deadletter_reader_bound(const sl_deadletter_reader_t *r)
{
    return r->bound;
}

void sl__deadletter_reader_close(sl_deadletter_reader_t **rp)
{
    sl_deadletter_reader_t *r = rp ? *rp : NULL;
    if (!r)
        return;
    s_ent_clear(&r->x);
    msgpack_sbuffer_destroy(&r->x.rec);
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    free(r->last_err);
    free(r->path);
    free(r);
    *rp = NULL;
}

int sl__deadletter_read(const char *path, sl_deadletter_visit_fn fn,
                        void *arg, char *err, size_t errlen)
{
    sl_deadletter_reader_t *r;
    int rc = sl__deadletter_reader_open(path, UINT64_MAX, &r, err, errlen);
    if (rc)
        return rc;
    const sl_deadletter_entry_t *e;
    while ((rc = sl__deadletter_reader_next(r, &e, err, errlen)) == 1)
        if ((rc = fn(e, arg)) != 0)
            break;
    sl__deadletter_reader_close(&r);
    return rc;
}

int sl__deadletter_record_is_map(const void *record, size_t len)
{
    size_t n = 0;
    return record && len > 0 && sl__mp_is_map(record) &&
           sl__mp_skip(record, len, &n) == 1 && n == len;
}
