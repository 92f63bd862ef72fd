/* Where the replayed records come from: a trace file (read into memory
 * first when it is not huge) or a synth template. Each is an
 * sl_rp_source_t the sender pulls from. */
#include "cmd_replay.h"

#include "synth.h"
#include "trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Traces up to this size are read into memory before the replay. */
#define S_PRELOAD_MAX (512ll << 20)

static int s_trace_next(void *self, uint64_t *off, const void **rec,
                        size_t *len)
{
    return sl_trace_next(self, off, rec, len);
}

static int s_trace_rewind(void *self)
{
    return sl_trace_rewind(self);
}

static const char *s_trace_error(void *self)
{
    return sl_trace_reader_error(self);
}

static void s_trace_close(void *self)
{
    sl_trace_reader_t *r = self;
    sl_trace_reader_close(&r);
}

typedef struct s_synth_src {
    sl_synth_t *s;
    msgpack_sbuffer buf;
} s_synth_src_t;

static int s_synth_next(void *self, uint64_t *off, const void **rec,
                        size_t *len)
{
    s_synth_src_t *ss = self;
    int rc = sl_synth_next(ss->s, off, &ss->buf);
    if (rc == 0) {
        *rec = ss->buf.data;
        *len = ss->buf.size;
    }
    return rc;
}

static int s_synth_rewind(void *self)
{
    sl_synth_rewind(((s_synth_src_t *)self)->s);
    return 0;
}

static const char *s_synth_error(void *self)
{
    (void)self;
    return "synth: out of memory";
}

static void s_synth_close(void *self)
{
    s_synth_src_t *ss = self;
    sl_synth_destroy(&ss->s);
    msgpack_sbuffer_destroy(&ss->buf);
    free(ss);
}

/* A trace held in memory: read once before the replay starts, so that
 * the sender's loop never waits for the disk and a loop costs nothing. */
typedef struct s_entry {
    uint64_t off;
    size_t at, len; /* in bytes */
} s_entry_t;

typedef struct s_loaded {
    uint8_t *bytes;
    size_t len, cap;
    s_entry_t *e;
    size_t n, cap_n, next;
    int failed;     /* the reader stopped at a damaged entry */
    char err[512];
} s_loaded_t;

static int s_loaded_next(void *self, uint64_t *off, const void **rec,
                         size_t *len)
{
    s_loaded_t *l = self;
    if (l->next == l->n)
        return l->failed ? -EBADMSG : 1;
    const s_entry_t *e = &l->e[l->next++];
    *off = e->off;
    *rec = l->bytes + e->at;
    *len = e->len;
    return 0;
}

static int s_loaded_rewind(void *self)
{
    ((s_loaded_t *)self)->next = 0;
    return 0;
}

static const char *s_loaded_error(void *self)
{
    return ((s_loaded_t *)self)->err;
}

static void s_loaded_close(void *self)
{
    s_loaded_t *l = self;
    free(l->bytes);
    free(l->e);
    free(l);
}

/* Grows *p (cap elements of elem bytes) to hold need; 0 or -ENOMEM. */
static int s_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* Reads every entry of r into memory; NULL when out of memory. A damaged
 * entry ends the list: next() returns its error after the good ones, as
 * reading it from the file would. */
static s_loaded_t *s_load(sl_trace_reader_t *r)
{
    s_loaded_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    for (;;) {
        uint64_t off;
        const void *rec;
        size_t len;
        int rc = sl_trace_next(r, &off, &rec, &len);
        if (rc == 1)
            break;
        if (rc < 0) {
            l->failed = 1;
            snprintf(l->err, sizeof(l->err), "%s", sl_trace_reader_error(r));
            break;
        }
        if (s_grow((void **)&l->bytes, &l->cap, l->len + len, 1) != 0 ||
            s_grow((void **)&l->e, &l->cap_n, l->n + 1, sizeof(*l->e)) != 0) {
            s_loaded_close(l);
            return NULL;
        }
        memcpy(l->bytes + l->len, rec, len);
        l->e[l->n++] = (s_entry_t){off, l->len, len};
        l->len += len;
    }
    return l;
}

int sl__rp_source_open(const sl_rp_opts_t *o, sl_rp_source_t *src)
{
    char err[2048];
    if (o->trace) {
        sl_trace_reader_t *r = sl_trace_reader_open(o->trace, err,
                                                    sizeof(err));
        if (!r) {
            fprintf(stderr, "sluice replay: %s\n", err);
            return -EINVAL;
        }
        struct stat st;
        if (stat(o->trace, &st) == 0 && st.st_size <= S_PRELOAD_MAX) {
            s_loaded_t *l = s_load(r);
            if (l) {
                sl_trace_reader_close(&r);
                *src = (sl_rp_source_t){l, s_loaded_next, s_loaded_rewind,
                                        s_loaded_error, s_loaded_close};
                return 0;
            }
            /* no memory for it: read it as it goes */
            if (sl_trace_rewind(r) != 0) {
                fprintf(stderr, "sluice replay: %s\n",
                        sl_trace_reader_error(r));
                sl_trace_reader_close(&r);
                return -EIO;
            }
        }
        *src = (sl_rp_source_t){r, s_trace_next, s_trace_rewind,
                                s_trace_error, s_trace_close};
        return 0;
    }
    s_synth_src_t *ss = calloc(1, sizeof(*ss));
    if (!ss)
        return -ENOMEM;
    ss->s = sl_synth_load(o->synth, err, sizeof(err));
    if (!ss->s) {
        fprintf(stderr, "sluice replay: %s%s", err,
                err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n");
        free(ss);
        return -EINVAL;
    }
    msgpack_sbuffer_init(&ss->buf);
    *src = (sl_rp_source_t){ss, s_synth_next, s_synth_rewind, s_synth_error,
                            s_synth_close};
    return 0;
}
