#include "batch.h"
#include "endian.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sl__batch_init(sl_batch_t *b)
{
    memset(b, 0, sizeof(*b));
}

void sl__batch_fini(sl_batch_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static int s_reserve(sl_batch_t *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t want = b->cap ? b->cap : b->cap_hint > 4096 ? b->cap_hint : 4096;
    while (want - b->len < more) {
        if (want > SIZE_MAX / 2)
            return -ENOMEM;
        want *= 2;
    }
    char *bigger = realloc(b->data, want);
    if (!bigger)
        return -ENOMEM;
    b->data = bigger;
    b->cap = want;
    return 0;
}

void sl__batch_reset(sl_batch_t *b)
{
    b->len = 0;
    b->count = 0;
    b->open = 0;
}

static int s_header_if_empty(sl_batch_t *b)
{
    if (b->len)
        return 0;
    int rc = s_reserve(b, SL_BATCH_HDR);
    if (rc)
        return rc;
    memset(b->data, 0, SL_BATCH_HDR);
    b->data[0] = SL_BATCH_MAGIC;
    b->data[1] = SL_BATCH_VERSION;
    b->len = SL_BATCH_HDR;
    return 0;
}

static void s_put_env(unsigned char *p, const sl_envelope_t *env, uint32_t len)
{
    sl__put_u64(p, env->id);
    sl__put_u64(p + 8, env->ts_ns);
    sl__put_u32(p + 16, env->attempts);
    p[20] = env->priority;
    p[21] = env->flags;
    p[22] = 0;
    p[23] = 0;
    sl__put_u32(p + 24, len);
}

int sl__batch_append(sl_batch_t *b, const sl_envelope_t *env,
                     const void *payload, size_t len)
{
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    int rc = s_header_if_empty(b);
    if (rc == 0)
        rc = s_reserve(b, SL_ENV_SIZE + len);
    if (rc)
        return rc;
    s_put_env((unsigned char *)b->data + b->len, env, (uint32_t)len);
    memcpy(b->data + b->len + SL_ENV_SIZE, payload, len);
    b->len += SL_ENV_SIZE + len;
    b->count++;
    return 0;
}

int sl__batch_begin(sl_batch_t *b, const sl_envelope_t *env)
{
    int rc = s_header_if_empty(b);
    if (rc == 0)
        rc = s_reserve(b, SL_ENV_SIZE + 256);
    if (rc)
        return rc;
    b->open = b->len;
    s_put_env((unsigned char *)b->data + b->len, env, 0);
    b->len += SL_ENV_SIZE;
    return 0;
}

int sl__batch_grow(sl_batch_t *b, size_t more)
{
    return s_reserve(b, more);
}

int sl__batch_commit(sl_batch_t *b, size_t *payload_off)
{
    if (!b->open)
        return -EINVAL;
    size_t off = b->open + SL_ENV_SIZE;
    size_t len = b->len - off;
    if (len > UINT32_MAX) {
        sl__batch_abort(b);
        return -EMSGSIZE;
    }
    sl__put_u32((unsigned char *)b->data + b->open + 24, (uint32_t)len);
    b->open = 0;
    b->count++;
    if (payload_off)
        *payload_off = off;
    return 0;
}

void sl__batch_abort(sl_batch_t *b)
{
    if (b->open) {
        b->len = b->open;
        b->open = 0;
    }
}

char *sl__batch_release(sl_batch_t *b, size_t *len)
{
    if (s_header_if_empty(b) != 0)
        return NULL;
    sl__put_u32((unsigned char *)b->data + 4, b->count);
    char *data = b->data;
    *len = b->len;
    size_t hint = b->cap;
    memset(b, 0, sizeof(*b));
    /* The next batch is likely the same size: growing it again from 4 KiB
     * by doubling would cost several reallocs per batch. */
    b->cap_hint = hint;
    return data;
}

int sl__batch_iter_init(sl_batch_iter_t *it, const void *msg, size_t len,
                        uint32_t *count)
{
    const unsigned char *p = msg;
    if (len < SL_BATCH_HDR || p[0] != SL_BATCH_MAGIC ||
        p[1] != SL_BATCH_VERSION)
        return -EBADMSG;
    it->p = p + SL_BATCH_HDR;
    it->end = p + len;
    it->left = sl__get_u32(p + 4);
    if (count)
        *count = it->left;
    return 0;
}

int sl__batch_next(sl_batch_iter_t *it, sl_envelope_t *env,
                   const char **payload, size_t *len)
{
    if (it->left == 0)
        return it->p == it->end ? 0 : -EBADMSG;
    if ((size_t)(it->end - it->p) < SL_ENV_SIZE)
        return -EBADMSG;
    const unsigned char *p = it->p;
    uint32_t n = sl__get_u32(p + 24);
    if ((size_t)(it->end - p) - SL_ENV_SIZE < n)
        return -EBADMSG;
    env->id = sl__get_u64(p);
    env->ts_ns = sl__get_u64(p + 8);
    env->attempts = sl__get_u32(p + 16);
    env->priority = p[20];
    env->flags = p[21];
    *payload = (const char *)p + SL_ENV_SIZE;
    *len = n;
    it->p = p + SL_ENV_SIZE + n;
    it->left--;
    return 1;
}

int sl__batch_validate(const void *msg, size_t len, uint32_t *count)
{
    sl_batch_iter_t it;
    uint32_t n;
    int rc = sl__batch_iter_init(&it, msg, len, &n);
    if (rc)
        return rc;
    sl_envelope_t env;
    const char *payload;
    size_t plen;
    while ((rc = sl__batch_next(&it, &env, &payload, &plen)) == 1)
        ;
    if (rc < 0)
        return rc;
    if (count)
        *count = n;
    return 0;
}

int sl__batch_validate_max(const void *msg, size_t len, uint32_t max_records,
                           uint32_t *count)
{
    sl_batch_iter_t it;
    uint32_t n;
    int rc = sl__batch_iter_init(&it, msg, len, &n);
    if (rc)
        return rc;
    if (n > max_records) {
        if (count)
            *count = n;
        return -EMSGSIZE;
    }
    return sl__batch_validate(msg, len, count);
}
