#include "spill.h"
#include "deadletter.h"
#include "log.h"
#include "run.h"

#include <errno.h>
#include <string.h>

#define SPILL_REASON "shutdown"

static sl_deadletter_t *s_file(sl_run_t *run)
{
    pthread_mutex_lock(&run->spill_mu);
    if (!run->spill && !run->spill_failed) {
        char err[512];
        run->spill = sl__deadletter_open(run->topo->spill_path,
                                         run->topo->spill_format, err,
                                         sizeof(err));
        if (!run->spill) {
            run->spill_failed = 1;
            sl__log(SL_LOG_ERROR, NULL, -1, "cannot open the spill file: %s",
                    err);
        } else {
            sl__log(SL_LOG_INFO, NULL, -1, "spill file %s opened",
                    run->topo->spill_path);
        }
    }
    sl_deadletter_t *dl = run->spill;
    pthread_mutex_unlock(&run->spill_mu);
    return dl;
}

int sl__spill_record(sl_run_t *run, const char *stage,
                     const sl_envelope_t *env, const void *payload,
                     size_t len, uint64_t first_ns)
{
    int rc = sl__spill_record_why(run, stage, env, payload, len, first_ns,
                                  SPILL_REASON);
    if (rc == 0)
        atomic_fetch_add(&run->spilled, 1);
    return rc;
}

int sl__spill_record_why(sl_run_t *run, const char *stage,
                         const sl_envelope_t *env, const void *payload,
                         size_t len, uint64_t first_ns, const char *why)
{
    sl_deadletter_t *dl = s_file(run);
    int rc = dl ? sl__deadletter_write(dl, stage, env, payload, len, why,
                                       env->attempts, first_ns,
                                       first_ns ? sl_now_ns() : 0)
                : -EIO;
    if (rc == 0)
        return 0;
    /* Counted so that the ledger shows the loss instead of hiding it. */
    if (atomic_fetch_add(&run->spill_lost, 1) < 20)
        sl__log(SL_LOG_ERROR, stage, -1, "record %llu lost: cannot spill: %s",
                (unsigned long long)env->id, strerror(-rc));
    return rc;
}

uint64_t sl__spill_batch(sl_run_t *run, const char *stage, const void *batch,
                         size_t len, const uint64_t *first_ns)
{
    sl_batch_iter_t it;
    sl_envelope_t env;
    const char *payload;
    size_t plen;
    uint64_t lost = 0, k = 0;
    if (sl__batch_iter_init(&it, batch, len, NULL) != 0)
        return 0;
    while (sl__batch_next(&it, &env, &payload, &plen) == 1) {
        if (sl__spill_record(run, stage, &env, payload, plen,
                             first_ns ? first_ns[k] : 0) != 0)
            lost++;
        k++;
    }
    return lost;
}

void sl__spill_close(sl_run_t *run)
{
    sl__deadletter_close(&run->spill);
}
