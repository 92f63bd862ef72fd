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

#endif
