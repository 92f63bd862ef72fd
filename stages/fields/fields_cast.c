/* Strict type conversions for the fields stage (see fields_cast.h). */
#include "fields_cast.h"

#include <sluice/json.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_type_names[] = {
    [FT_INT] = "int",
    [FT_FLOAT] = "float",
    [FT_STRING] = "string",
    [FT_BOOL] = "bool",
};

const char *fields_type_name(fields_type_t t)
{
    return s_type_names[t];
}

int fields_type_parse(const char *name, fields_type_t *t)
{
    for (size_t i = 0; i < sizeof s_type_names / sizeof *s_type_names; i++) {
        if (!strcmp(name, s_type_names[i])) {
            *t = (fields_type_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* The shortest of %.15g..%.17g that reads back as the same double, so
 * that 0.1 becomes "0.1" and not "0.10000000000000001". */
static int format_double(double d, char *buf, size_t len)
{
    if (!isfinite(d))
        return snprintf(buf, len, "%s",
                        isnan(d) ? "nan"
                        : d > 0  ? "inf"
                                 : "-inf");
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, len, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return n;
}

void fields_describe(const msgpack_object *v, char *buf, size_t len)
{
    switch (v->type) {
    case MSGPACK_OBJECT_NIL: snprintf(buf, len, "null"); break;
    case MSGPACK_OBJECT_BOOLEAN:
        snprintf(buf, len, "%s", v->via.boolean ? "true" : "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(buf, len, "%" PRIu64, v->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(buf, len, "%" PRId64, v->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: format_double(v->via.f64, buf, len); break;
    case MSGPACK_OBJECT_STR: {
        /* Control bytes would garble a one-line message: show them as '?'. */
        size_t o = 0;
        uint32_t n = v->via.str.size;
        uint32_t show = n > 32 ? 32 : n;
        if (len < show + 8)
            show = len > 8 ? (uint32_t)(len - 8) : 0;
        buf[o++] = '"';
        for (uint32_t i = 0; i < show; i++) {
            unsigned char c = (unsigned char)v->via.str.ptr[i];
            buf[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
        snprintf(buf + o, len - o, "%s\"", show < n ? "..." : "");
        break;
    }
    case MSGPACK_OBJECT_ARRAY: snprintf(buf, len, "an array"); break;
    case MSGPACK_OBJECT_MAP: snprintf(buf, len, "a map"); break;
    default: snprintf(buf, len, "a binary value"); break;
    }
}

static int fail(const msgpack_object *in, const char *what, char *why,
                size_t whylen)
{
    char v[64];
    fields_describe(in, v, sizeof v);
    snprintf(why, whylen, "%s %s", v, what);
    return -EINVAL;
}

static void set_int(msgpack_object *out, int neg, uint64_t mag)
{
    if (neg && mag) {
        out->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        /* mag <= 2^63 here; -(mag - 1) - 1 stays in range at INT64_MIN */
        out->via.i64 = -(int64_t)(mag - 1) - 1;
    } else {
        out->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        out->via.u64 = mag;
    }
}

/* Whole string, base 10, optional '-', range-checked against int64 for
 * negatives and uint64 otherwise. 1 ok, 0 not an integer, -1 range. */
static int parse_int(const char *s, size_t n, msgpack_object *out)
{
    size_t i = 0;
    int neg = n > 0 && s[0] == '-';
    i += (size_t)neg;
    if (i == n)
        return 0;
    uint64_t mag = 0;
    int range = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (mag > (UINT64_MAX - d) / 10)
            range = 1;
        else
            mag = mag * 10 + d;
    }
    if (range || (neg && mag > (uint64_t)INT64_MAX + 1))
        return -1;
    set_int(out, neg, mag);
    return 1;
}

/* Decimal syntax only (no hex, inf, nan, spaces), so that strtod's
 * liberal extensions do not leak into the data. */
static int is_decimal(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    if (!digits)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        if (i == n || s[i] < '0' || s[i] > '9')
            return 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return i == n;
}

static int parse_float(msgpack_zone *zone, const char *s, size_t n, double *out)
{
    char small[128];
    char *buf = n < sizeof small ? small : msgpack_zone_malloc(zone, n + 1);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return isinf(*out) ? -ERANGE : 0;
}

static int to_int(const msgpack_object *in, msgpack_object *out, char *why,
                  size_t whylen)
{
    switch (in->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = *in; return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        set_int(out, 0, in->via.boolean ? 1 : 0);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        double d = in->via.f64;
        if (isnan(d) || d != trunc(d))
            return fail(in, "is not an integer", why, whylen);
        if (d < -9223372036854775808.0 || d >= 18446744073709551616.0)
            return fail(in, "is out of range", why, whylen);
        if (d < 0)
            set_int(out, 1, (uint64_t)(-d));
        else
            set_int(out, 0, (uint64_t)d);
        return 0;
    }
    case MSGPACK_OBJECT_STR: {
        int rc = parse_int(in->via.str.ptr, in->via.str.size, out);
        if (rc == 0)
            return fail(in, "is not an integer", why, whylen);
        if (rc < 0)
            return fail(in, "is out of range", why, whylen);
        return 0;
    }
    default: return fail(in, "is not an integer", why, whylen);
    }
}

static double num_value(const msgpack_object *in)
{
    if (in->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (double)in->via.u64;
    if (in->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return (double)in->via.i64;
    return in->via.f64;
}

static int to_float(msgpack_zone *zone, const msgpack_object *in,
                    msgpack_object *out, char *why, size_t whylen)
{
    out->type = MSGPACK_OBJECT_FLOAT64;
    switch (in->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: out->via.f64 = num_value(in); return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        out->via.f64 = in->via.boolean ? 1.0 : 0.0;
        return 0;
    case MSGPACK_OBJECT_STR: {
        if (!is_decimal(in->via.str.ptr, in->via.str.size))
            return fail(in, "is not a number", why, whylen);
        int rc =
            parse_float(zone, in->via.str.ptr, in->via.str.size, &out->via.f64);
        if (rc == -ERANGE)
            return fail(in, "is out of range", why, whylen);
        return rc;
    }
    default: return fail(in, "is not a number", why, whylen);
    }
}

static int to_bool(const msgpack_object *in, msgpack_object *out, char *why,
                   size_t whylen)
{
    out->type = MSGPACK_OBJECT_BOOLEAN;
    switch (in->type) {
    case MSGPACK_OBJECT_BOOLEAN: *out = *in; return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        double d = num_value(in);
        if (d != 0.0 && d != 1.0)
            return fail(in, "is not a boolean (only 0 and 1 are)", why, whylen);
        out->via.boolean = d == 1.0;
        return 0;
    }
    case MSGPACK_OBJECT_STR: {
        static const struct {
            const char *text;
            int value;
        } words[] = {{"true", 1}, {"false", 0}, {"1", 1}, {"0", 0}};
        for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
            if (in->via.str.size == strlen(words[i].text) &&
                !memcmp(in->via.str.ptr, words[i].text, in->via.str.size)) {
                out->via.boolean = words[i].value;
                return 0;
            }
        }
        return fail(in, "is not a boolean", why, whylen);
    }
    default: return fail(in, "is not a boolean", why, whylen);
    }
}

static int zone_str(msgpack_zone *zone, const char *s, size_t n,
                    msgpack_object *out)
{
    char *p = msgpack_zone_malloc(zone, n ? n : 1);
    if (!p)
        return -ENOMEM;
    memcpy(p, s, n);
    out->type = MSGPACK_OBJECT_STR;
    out->via.str.ptr = p;
    out->via.str.size = (uint32_t)n;
    return 0;
}

static int to_string(msgpack_zone *zone, const msgpack_object *in,
                     msgpack_object *out)
{
    char buf[40];
    int n;
    switch (in->type) {
    case MSGPACK_OBJECT_STR: *out = *in; return 0;
    case MSGPACK_OBJECT_BIN:
        return zone_str(zone, in->via.bin.ptr, in->via.bin.size, out);
    case MSGPACK_OBJECT_BOOLEAN:
        n = snprintf(buf, sizeof buf, "%s", in->via.boolean ? "true" : "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        n = snprintf(buf, sizeof buf, "%" PRIu64, in->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        n = snprintf(buf, sizeof buf, "%" PRId64, in->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        n = format_double(in->via.f64, buf, sizeof buf);
        break;
    default: {
        /* Maps, arrays and ext become their JSON text. Rare enough that
         * the sbuffer's malloc does not matter. */
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        int rc = sl_json_encode(in, &sb);
        if (rc == 0)
            rc = zone_str(zone, sb.data, sb.size, out);
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    }
    return zone_str(zone, buf, (size_t)n, out);
}

int fields_cast(msgpack_zone *zone, const msgpack_object *in, fields_type_t t,
                msgpack_object *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    if (in->type == MSGPACK_OBJECT_NIL) {
        *out = *in;
        return 0;
    }
    switch (t) {
    case FT_INT: return to_int(in, out, why, whylen);
    case FT_FLOAT: return to_float(zone, in, out, why, whylen);
    case FT_BOOL: return to_bool(in, out, why, whylen);
    case FT_STRING: return to_string(zone, in, out);
    }
    return -EINVAL;
}
