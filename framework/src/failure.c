#include "failure.h"
#include "deadletter.h"
#include "log.h"

#include <string.h>
#include <sluice/stage.h>

/* Failures are all counted; only this many per worker are logged in full,
 * then one in ERRORS_LOG_EVERY, so that a bad file cannot flood the log. */
#define ERRORS_LOGGED_IN_FULL 20
#define ERRORS_LOG_EVERY 10000

int sl__record_give_up(const char *stage, int worker, uint64_t *logged,
                       sl_deadletter_t *dl, const sl_envelope_t *env,
                       const void *payload, size_t len, const char *reason,
                       uint32_t attempts)
{
    uint64_t now = sl_now_ns();
    return sl__record_give_up_at(stage, worker, logged, dl, env, payload, len,
                                 reason, attempts, now, now);
}

int sl__record_give_up_at(const char *stage, int worker, uint64_t *logged,
                          sl_deadletter_t *dl, const sl_envelope_t *env,
                          const void *payload, size_t len, const char *reason,
                          uint32_t attempts, uint64_t first_ns,
                          uint64_t last_ns)
{
    int rc = 0;
    if (dl) {
        rc = sl__deadletter_write(dl, stage, env, payload, len, reason,
                                  attempts, first_ns, last_ns);
        if (rc == 0)
            return 0;
    }
    uint64_t n = ++*logged;
    if (n <= ERRORS_LOGGED_IN_FULL || n % ERRORS_LOG_EVERY == 0)
        sl__log(SL_LOG_WARN, stage, worker, "record %llu failed: %s%s%s%s",
                (unsigned long long)env->id, reason,
                rc ? " (could not be dead-lettered: " : "",
                rc ? strerror(-rc) : "", rc ? ")" : "");
    if (n == ERRORS_LOGGED_IN_FULL)
        sl__log(SL_LOG_WARN, stage, worker,
                "further failures are counted and logged sparsely");
    return rc;
}
