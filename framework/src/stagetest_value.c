/*
 * YAML values to msgpack for `sluice test`: what the config loader kept of
 * each scalar (its resolved type, whether it was quoted, a `!!binary` tag)
 * decides the msgpack type, so "1" stays a string and 1 an integer.
 */
#include "stagetest_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int s_b64(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard base64, whitespace ignored, padding optional. Returns the
 * decoded length, or -1 for anything else. out holds at least
 * strlen(text) * 3 / 4 + 3 bytes. */
static long s_unbase64(const char *text, unsigned char *out)
{
    uint32_t acc = 0;
    unsigned bits = 0, pad = 0;
    long n = 0;
    for (const char *s = text; *s; s++) {
        int c = (unsigned char)*s;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = s_b64(c);
        if (v < 0 || pad)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* what is left must be padding bits only, and '=' just fills a group */
    if (bits >= 6 || acc != 0 || pad > 2)
        return -1;
    return n;
}

int sl__stest_binary(const sl_config_t *n, unsigned char **out, size_t *len)
{
    const char *t = sl_config_str(n);
    unsigned char *buf = malloc(strlen(t) * 3 / 4 + 4);
    if (!buf)
        return -ENOMEM;
    long got = s_unbase64(t, buf);
    if (got < 0) {
        free(buf);
        return sl_config_error(n, "!!binary value is not valid base64");
    }
    *out = buf;
    *len = (size_t)got;
    return 0;
}

/* An integer literal that does not fit int64: maybe a uint64. */
static int s_pack_big(const sl_config_t *n, msgpack_packer *pk)
{
    const char *digits = sl_config_str(n);
    int base = 10;
    if (*digits == '+')
        digits++;
    if (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'o')) {
        base = digits[1] == 'x' ? 16 : 8;
        digits += 2;
    }
    if (*digits >= '0' && *digits <= '9') { /* strtoull takes signs too */
        char *end;
        errno = 0;
        unsigned long long v = strtoull(digits, &end, base);
        if (errno == 0 && *end == '\0')
            return msgpack_pack_uint64(pk, v) ? -ENOMEM : 0;
    }
    return sl_config_error(n, "integer %s is out of range", sl_config_str(n));
}

int sl__stest_pack(const sl_config_t *n, msgpack_packer *pk)
{
    int rc = 0;
    switch (sl_config_type(n)) {
    case SL_CONFIG_NULL: return msgpack_pack_nil(pk) ? -ENOMEM : 0;
    case SL_CONFIG_BOOL: {
        int b = 0;
        sl_config_bool(n, &b);
        return (b ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) ? -ENOMEM
                                                                    : 0;
    }
    case SL_CONFIG_INT: {
        int64_t v;
        rc = sl_config_int(n, &v);
        if (rc == -ERANGE)
            return s_pack_big(n, pk);
        if (rc)
            return sl_config_error(n, "'%s' is not an integer",
                                   sl_config_str(n));
        return msgpack_pack_int64(pk, v) ? -ENOMEM : 0;
    }
    case SL_CONFIG_FLOAT: {
        double v;
        if (sl_config_double(n, &v) != 0)
            return sl_config_error(n, "number %s is out of range",
                                   sl_config_str(n));
        return msgpack_pack_double(pk, v) ? -ENOMEM : 0;
    }
    case SL_CONFIG_STRING: {
        if (sl__config_is_binary(n)) {
            unsigned char *bin;
            size_t len;
            if ((rc = sl__stest_binary(n, &bin, &len)) != 0)
                return rc;
            rc = msgpack_pack_bin(pk, len) ||
                 msgpack_pack_bin_body(pk, bin, len);
            free(bin);
            return rc ? -ENOMEM : 0;
        }
        const char *t = sl_config_str(n);
        size_t len = strlen(t);
        return msgpack_pack_str(pk, len) || msgpack_pack_str_body(pk, t, len)
                   ? -ENOMEM
                   : 0;
    }
    case SL_CONFIG_SEQ:
        if (msgpack_pack_array(pk, sl_config_len(n)))
            return -ENOMEM;
        for (size_t i = 0; i < sl_config_len(n); i++) {
            int r = sl__stest_pack(sl_config_at(n, i), pk);
            rc = rc ? rc : r;
        }
        return rc;
    case SL_CONFIG_MAP:
        if (msgpack_pack_map(pk, sl_config_len(n)))
            return -ENOMEM;
        for (size_t i = 0; i < sl_config_len(n); i++) {
            const char *k = sl_config_key_at(n, i);
            size_t kl = strlen(k);
            if (msgpack_pack_str(pk, kl) || msgpack_pack_str_body(pk, k, kl))
                return -ENOMEM;
            int r = sl__stest_pack(sl_config_value_at(n, i), pk);
            rc = rc ? rc : r;
        }
        return rc;
    }
    return -EINVAL;
}
