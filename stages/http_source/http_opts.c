/* http_source: config parsing (syntax only; the address is resolved at
 * init). */
#include "http_opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HS_MIB (1024ull * 1024ull)

const char *const hs_config_keys[] = {
    "listen", "path",          "max_body",        "queue",
    "queue_bytes", "retry_after_s", "format",     "max_connections",
    "threads", "auth_token_env", NULL};

static const char *const s_formats[] = {"auto", "json", "ndjson", "msgpack"};

const char *hs_format_name(hs_format_t f)
{
    return s_formats[f];
}

static const char *s_text(const sl_config_t *n)
{
    const char *s = sl_config_str(n);
    return s ? s : "a sequence or map";
}

/* HOST:PORT, [IPV6]:PORT, :PORT or PORT; an empty host is 127.0.0.1, so
 * that all interfaces are only ever served when written out. */
static int s_parse_listen(const sl_config_t *n, hs_opts_t *o)
{
    const char *addr = o->listen;
    char buf[sizeof(o->host)];
    const char *host, *port;

    if (strlen(addr) >= sizeof(buf))
        return sl_config_error(n, "'listen' is too long");
    strcpy(buf, addr);
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close || close[1] != ':')
            return sl_config_error(n, "'listen' '%s': expected [IPV6]:PORT",
                                   addr);
        *close = '\0';
        host = buf + 1;
        port = close + 2;
        o->host_v6 = 1;
        if (!*host)
            return sl_config_error(n, "'listen' '%s': empty IPv6 address",
                                   addr);
    } else {
        char *colon = strrchr(buf, ':');
        if (colon && strchr(buf, ':') != colon)
            return sl_config_error(n, "'listen' '%s': an IPv6 address goes "
                                      "in brackets, as in [::1]:8080", addr);
        if (colon) {
            *colon = '\0';
            host = buf;
            port = colon + 1;
        } else {
            host = "";
            port = buf;
        }
    }
    size_t plen = strlen(port);
    if (plen == 0 || plen > 5 || strspn(port, "0123456789") != plen ||
        atol(port) > 65535)
        return sl_config_error(n, "'listen' '%s': the port must be a number "
                                  "0..65535 (0 picks a free one)", addr);
    o->port = (unsigned)atol(port);
    snprintf(o->host, sizeof(o->host), "%s", *host ? host : "127.0.0.1");
    return 0;
}

/* An integer key in [lo, hi]; *out keeps dflt when the key is absent. */
static int s_range(const sl_config_t *cfg, const char *key, uint64_t dflt,
                   uint64_t lo, uint64_t hi, const char *unit, uint64_t *out)
{
    int64_t v;

    if (sl_config_get_int(cfg, key, (int64_t)dflt, &v) < 0)
        return -EINVAL;
    if (v < (int64_t)lo || (uint64_t)v > hi)
        return sl_config_error(sl_config_get(cfg, key), "'%s' must be "
                               "%llu..%llu%s, got %s", key,
                               (unsigned long long)lo,
                               (unsigned long long)hi, unit,
                               s_text(sl_config_get(cfg, key)));
    *out = (uint64_t)v;
    return 0;
}

static int s_parse_format(const sl_config_t *cfg, hs_opts_t *o)
{
    const sl_config_t *n = sl_config_get(cfg, "format");
    const char *s;

    o->format = HS_AUTO;
    if (!n)
        return 0;
    s = sl_config_str(n);
    for (size_t i = 0; s && i < sizeof(s_formats) / sizeof(s_formats[0]);
         i++) {
        if (strcasecmp(s, s_formats[i]) == 0) {
            o->format = (hs_format_t)i;
            return 0;
        }
    }
    return sl_config_error(n, "'format' must be auto, json, ndjson or "
                              "msgpack, got %s", s_text(n));
}

static int s_env_name_ok(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') ||
              (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

int hs_opts_parse(const sl_config_t *cfg, hs_opts_t *o)
{
    const sl_config_t *n;
    uint64_t v;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    /* Any scalar: `listen: 8080` is a port as much as `listen: "8080"`. */
    o->listen_node = sl_config_get(cfg, "listen");
    o->listen = o->listen_node ? sl_config_str(o->listen_node) : ":8080";
    if (!o->listen || (o->listen_node &&
                       sl_config_type(o->listen_node) == SL_CONFIG_NULL))
        rc = sl_config_error(o->listen_node, "'listen' must be an address "
                             "such as 127.0.0.1:8080 or :8080");
    else if (s_parse_listen(o->listen_node ? o->listen_node : cfg, o) < 0)
        rc = -EINVAL;

    if (sl_config_get_str(cfg, "path", "/", &o->path) < 0) {
        rc = -EINVAL;
    } else if (o->path[0] != '/' || strpbrk(o->path, "?# \t")) {
        rc = sl_config_error(sl_config_get(cfg, "path"), "'path' must start "
                             "with '/' and hold no '?', '#' or blanks, got "
                             "'%s'", o->path);
    }

    if (s_range(cfg, "max_body", HS_MIB, 1, 1024 * HS_MIB, " bytes",
                &o->max_body) < 0)
        rc = -EINVAL;
    if (s_range(cfg, "queue", 10000, 1, 16777216, " records", &o->queue) < 0)
        rc = -EINVAL;
    /* Room for two of the largest bodies by default: a body that can
     * never fit is refused with 413, and a queue smaller than one body
     * would refuse every large one. */
    uint64_t dflt_bytes = 64 * HS_MIB;
    if (o->max_body && dflt_bytes < 2 * o->max_body)
        dflt_bytes = 2 * o->max_body;
    if (s_range(cfg, "queue_bytes", dflt_bytes, 1024, 64 * 1024 * HS_MIB,
                " bytes", &o->queue_bytes) < 0) {
        rc = -EINVAL;
    } else if (o->max_body && o->queue_bytes < o->max_body) {
        n = sl_config_get(cfg, "queue_bytes");
        rc = sl_config_error(n, "'queue_bytes' (%llu) must be at least "
                             "'max_body' (%llu): a full body could never "
                             "be queued",
                             (unsigned long long)o->queue_bytes,
                             (unsigned long long)o->max_body);
    }
    if (s_range(cfg, "retry_after_s", 1, 0, 3600, " seconds", &v) < 0)
        rc = -EINVAL;
    else
        o->retry_after_s = (unsigned)v;
    if (s_parse_format(cfg, o) < 0)
        rc = -EINVAL;
    if (s_range(cfg, "max_connections", 64, 1, 10000, "", &v) < 0)
        rc = -EINVAL;
    else
        o->max_connections = (unsigned)v;
    if (s_range(cfg, "threads", 1, 1, 64, "", &v) < 0)
        rc = -EINVAL;
    else
        o->threads = (unsigned)v;

    o->auth_node = sl_config_get(cfg, "auth_token_env");
    if (sl_config_get_str(cfg, "auth_token_env", NULL, &o->auth_env) < 0)
        rc = -EINVAL;
    else if (o->auth_env && !s_env_name_ok(o->auth_env))
        rc = sl_config_error(o->auth_node, "'auth_token_env' must name an "
                             "environment variable (letters, digits, '_'), "
                             "got '%s'", o->auth_env);
    return rc;
}
