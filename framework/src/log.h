/*
 * Structured logs to stderr: logfmt by default, one line per event, each
 * line written with a single write so that threads do not interleave.
 */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <sluice/stage.h>

typedef enum sl_log_format { SL_LOG_LOGFMT = 0, SL_LOG_JSON = 1 } sl_log_format_t;

void sl__log_set_level(sl_log_level_t level);
void sl__log_set_format(sl_log_format_t format);
int sl__log_enabled(sl_log_level_t level);
/* Parses "error|warn|info|debug"; -EINVAL otherwise. */
int sl__log_parse_level(const char *text, sl_log_level_t *level);
/* Logs with explicit stage/worker fields (stage NULL: none; worker < 0:
 * none). */
void sl__log(sl_log_level_t level, const char *stage, int worker,
             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void sl__vlog(sl_log_level_t level, const char *stage, int worker,
              const char *fmt, va_list ap);

/* Room for every text sl__rc_text writes. */
#define SL_RC_TEXT_MAX 96
/* Words for a code a plugin callback returned without a message, for a
 * log line or a dead letter. A plugin may return anything, INT_MIN
 * included, so the code is never negated unchecked: -rc when it is an
 * errno the C library knows (1..4095) gives that errno's text ("Input/
 * output error"); a positive code, with the callback's name in `call`,
 * says what was returned against what the ABI allows ("init returned 3,
 * not 0 or a negative errno code"; for "pull" SL_EOF is allowed too);
 * anything else is "unknown error code N", N as returned. Returns a
 * static string or buf (len bytes, SL_RC_TEXT_MAX is enough); safe from
 * any thread. */
const char *sl__rc_text(int rc, const char *call, char *buf, size_t len);

#endif
