/*
 * http_source's request body decoder (stages/http_source/http_body.c,
 * compiled in): byte 0 picks the format (JSON, NDJSON, msgpack), the rest
 * is the body as a client sent it.
 *
 * Checks: -EBADMSG comes with a message and no batch; an accepted body is
 * a batch of records that lie back to back inside its data, each exactly
 * one map that msgpack-c decodes (what the source will emit later, when
 * nothing can be refused any more); a msgpack body is adopted.
 */
#include "fuzz.h"

#include "http_body.h"

#include <errno.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const hs_format_t formats[] = {HS_JSON, HS_NDJSON, HS_MSGPACK};
    hs_format_t f = formats[fuzz_take_byte(&data, &size) % 3];
    char *body = malloc(size ? size : 1);
    FUZZ_CHECK(body != NULL, "out of memory");
    if (size)
        memcpy(body, data, size);
    hs_batch_t *b = (hs_batch_t *)1;
    char err[512] = "";
    int rc = hs_body_decode(f, &body, size, &b, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == -EBADMSG, "decode returned %d", rc);
    if (rc < 0) {
        FUZZ_CHECK(b == NULL && err[0], "refused without a message");
        FUZZ_CHECK(body != NULL, "a refused body was taken");
        free(body);
        return 0;
    }
    FUZZ_CHECK(b != NULL, "no batch");
    FUZZ_CHECK(f != HS_MSGPACK || body == NULL, "a msgpack body was copied");
    FUZZ_CHECK(b->n <= b->cap && b->pos == 0, "n %zu cap %zu pos %zu", b->n,
               b->cap, b->pos);
    size_t prev = b->first;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    for (size_t i = 0; i < b->n; i++) {
        size_t start = hs_batch_start(b, i), end = b->ends[i];
        FUZZ_CHECK(start == prev && start < end && end <= b->len,
                   "record %zu at [%zu, %zu) of %zu", i, start, end, b->len);
        msgpack_object o =
            fuzz_unpack(b->data + start, end - start, &zone, "record");
        FUZZ_CHECK(o.type == MSGPACK_OBJECT_MAP, "record %zu is not a map", i);
        msgpack_zone_clear(&zone);
        prev = end;
    }
    FUZZ_CHECK(prev == b->len,
               "records end at %zu of %zu bytes", prev, b->len);
    msgpack_zone_destroy(&zone);
    hs_batch_free(b);
    free(body);
    return 0;
}
