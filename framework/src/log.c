#include "log.h"
#include "ctx.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int s_level = SL_LOG_INFO;
static atomic_int s_format = SL_LOG_LOGFMT;

static const char *const s_names[] = {"error", "warn", "info", "debug"};

void sl__log_set_level(sl_log_level_t level) { atomic_store(&s_level, level); }
void sl__log_set_format(sl_log_format_t format)
{
    atomic_store(&s_format, format);
}

int sl__log_enabled(sl_log_level_t level)
{
    return (int)level <= atomic_load_explicit(&s_level, memory_order_relaxed);
}

int sl__log_parse_level(const char *text, sl_log_level_t *level)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(text, s_names[i]) == 0) {
            *level = (sl_log_level_t)i;
            return 0;
        }
    if (strcmp(text, "warning") == 0) {
        *level = SL_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

/* Appends s quoted for logfmt or JSON (both accept "..." with \" \\ \n). */
static size_t s_quote(char *out, size_t cap, size_t n, const char *s)
{
    if (n < cap)
        out[n++] = '"';
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    if (n < cap)
        out[n++] = '"';
    return n;
}

void sl__vlog(sl_log_level_t level, const char *stage, int worker,
              const char *fmt, va_list ap)
{
    if (!sl__log_enabled(level))
        return;
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    char line[1536];
    size_t cap = sizeof(line) - 2, n = 0;
    int json = atomic_load(&s_format) == SL_LOG_JSON;
    if (json) {
        n += (size_t)snprintf(line + n, cap - n,
                              "{\"ts\":\"%s\",\"level\":\"%s\"", when,
                              s_names[level]);
        if (stage) {
            n += (size_t)snprintf(line + n, cap - n, ",\"stage\":");
            n = s_quote(line, cap, n, stage);
        }
        if (worker >= 0 && n < cap)
            n += (size_t)snprintf(line + n, cap - n, ",\"worker\":%d", worker);
        if (n < cap)
            n += (size_t)snprintf(line + n, cap - n, ",\"msg\":");
        n = s_quote(line, cap, n, msg);
        if (n < cap)
            line[n++] = '}';
    } else {
        n += (size_t)snprintf(line + n, cap - n, "ts=%s level=%s", when,
                              s_names[level]);
        if (stage && n < cap)
            n += (size_t)snprintf(line + n, cap - n, " stage=%s", stage);
        if (worker >= 0 && n < cap)
            n += (size_t)snprintf(line + n, cap - n, " worker=%d", worker);
        if (n < cap)
            n += (size_t)snprintf(line + n, cap - n, " msg=");
        n = s_quote(line, cap, n, msg);
    }
    if (n > cap)
        n = cap;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void sl__log(sl_log_level_t level, const char *stage, int worker,
             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl__vlog(level, stage, worker, fmt, ap);
    va_end(ap);
}

void sl_log(const sl_ctx_t *ctx, sl_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl__vlog(level, ctx ? ctx->stage : NULL, ctx ? (int)ctx->worker : -1,
             fmt, ap);
    va_end(ap);
}

const char *sl__rc_text(int rc, const char *call, char *buf, size_t len)
{
    /* strerrordesc_np, unlike strerror, is thread-safe and says NULL for
     * a code it does not know (not "Unknown error 200"). */
    const char *text = rc < 0 && rc >= -4095 ? strerrordesc_np(-rc) : NULL;
    if (text)
        return text;
    if (rc > 0 && call)
        snprintf(buf, len, "%s returned %d, not 0%s or a negative errno code",
                 call, rc, strcmp(call, "pull") == 0 ? ", SL_EOF (1)" : "");
    else
        snprintf(buf, len, "unknown error code %d", rc);
    return buf;
}
