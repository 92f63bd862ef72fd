/*
 * A link message as a receiving stage gets it: the batch reader
 * (sl__batch_validate, then the iterator), and every record of a batch it
 * accepts handed to two stages through the harness, which decode it with
 * sl_record_map exactly as in a run. The filter stage forwards the bytes
 * unchanged, so the harness also decodes and JSON-encodes each one; the
 * fields stage edits the decoded tree and packs it again.
 *
 * Checks: validate and a walk by hand agree on every message; the records
 * walked fill the message exactly.
 */
#include "fuzz.h"

#include "batch.h"
#include "harness.h"
#include "plugin.h"

#include <errno.h>

static const char *const s_filter_cfg = "expr: 'true'\n";
static const char *const s_fields_cfg =
    "cast: {n: int, f: float, s: string, b: bool, 'm.x': string}\n"
    "rename: {a: z, 'm.y': 'm.w'}\n"
    "drop: [d, 'm.d']\n"
    "set: {k: 1, 'm.k': two}\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[512];
    /* One reference held for the whole run keeps each plugin mapped, so
     * that a harness per input does not load and unload it every time. */
    if (!sl__plugin_load("filter", err, sizeof(err)) ||
        !sl__plugin_load("fields", err, sizeof(err))) {
        fprintf(stderr, "fuzz_batch: %s\n", err);
        abort();
    }
    return 0;
}

static sl_harness_t *s_harness(const char *name, const char *cfg)
{
    char err[1024];
    sl_harness_t *h = sl_harness_new(name, cfg, NULL, err, sizeof(err));
    FUZZ_CHECK(h != NULL, "%s: %s", name, err);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t count = 0;
    int rc = sl__batch_validate(data, size, &count);

    sl_batch_iter_t it;
    uint32_t announced = 0, walked = 0;
    size_t bytes = SL_BATCH_HDR;
    int wrc = sl__batch_iter_init(&it, data, size, &announced);
    if (wrc == 0) {
        sl_envelope_t env;
        const char *payload;
        size_t plen;
        while ((wrc = sl__batch_next(&it, &env, &payload, &plen)) == 1) {
            FUZZ_CHECK(payload == (const char *)data + bytes + SL_ENV_SIZE,
                       "record %u starts at the wrong place", walked);
            bytes += SL_ENV_SIZE + plen;
            FUZZ_CHECK(bytes <= size, "record %u runs past the message",
                       walked);
            walked++;
        }
    }
    FUZZ_CHECK(rc == 0 || rc == -EBADMSG, "validate returned %d", rc);
    FUZZ_CHECK((rc == 0) == (wrc == 0), "validate says %d, a walk says %d",
               rc, wrc);
    if (rc != 0)
        return 0;
    FUZZ_CHECK(count == announced && walked == count,
               "count %u, header %u, walked %u", count, announced, walked);
    FUZZ_CHECK(bytes == size, "records end at %zu of %zu bytes", bytes, size);

    sl_harness_t *filter = s_harness("filter", s_filter_cfg);
    sl_harness_t *fields = s_harness("fields", s_fields_cfg);
    sl__batch_iter_init(&it, data, size, NULL);
    sl_envelope_t env;
    const char *payload;
    size_t plen;
    while (sl__batch_next(&it, &env, &payload, &plen) == 1) {
        sl_harness_push_msgpack(filter, payload, plen);
        sl_harness_push_msgpack(fields, payload, plen);
    }
    /* Whatever the filter kept is the input's bytes, unchanged. */
    FUZZ_CHECK(sl_harness_count(filter) + sl_harness_errors(filter) == count,
               "filter: %zu out + %zu failed of %u", sl_harness_count(filter),
               sl_harness_errors(filter), count);
    sl_harness_destroy(&filter);
    sl_harness_destroy(&fields);
    return 0;
}
