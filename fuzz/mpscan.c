/*
 * The two bounded msgpack walkers, side by side on the same bytes: the
 * framework's sl__mpscan_object (trace files, taps) and zmq_source's
 * zsrc_mpk_check (stages/zmq_source/zsrc_mpk.c, compiled in), with
 * msgpack-c as the judge of what they accept.
 *
 * Checks: both agree on where a value ends and on what is wrong with it
 * (each stops at its own first problem, so "cut short" may hide a later
 * one); a value either accepts is exactly what msgpack-c decodes; one
 * nested deeper than 32 containers is one msgpack-c refuses; a header
 * never claims more bytes than it was given.
 */
#include "fuzz.h"

#include "mpscan.h"
#include "zsrc_mpk.h"

#include <errno.h>

static msgpack_unpack_return s_msgpack(const uint8_t *data, size_t len,
                                       size_t *off)
{
    msgpack_zone zone;
    msgpack_object obj;
    msgpack_zone_init(&zone, 1024);
    *off = 0;
    msgpack_unpack_return r =
        msgpack_unpack((const char *)data, len, off, &zone, &obj);
    msgpack_zone_destroy(&zone);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_mp_head_t h;
    int hrc = sl__mpscan_head(data, size, &h);
    FUZZ_CHECK(hrc == 0 || hrc == -EAGAIN || hrc == -EBADMSG, "head %d", hrc);
    if (hrc == 0) {
        FUZZ_CHECK(h.hdr >= 1 && h.hdr <= size, "header of %zu bytes in %zu",
                   h.hdr, size);
        FUZZ_CHECK(h.kind < SL_MP_KINDS, "kind %d", (int)h.kind);
        (void)sl__mpscan_kind_name(h.kind);
    }
    if (size == 0)
        return 0;
    (void)zsrc_mpk_kind(data[0]);

    size_t used = 0, zlen = 0;
    int rc = sl__mpscan_object(data, size, SL_MP_MAX_DEPTH, &used);
    zsrc_mpk_t z = zsrc_mpk_check(data, size, &zlen);
    FUZZ_CHECK(used <= size, "used %zu of %zu", used, size);
    switch (rc) {
    case 0:
        FUZZ_CHECK(z == ZSRC_MPK_OK && zlen == used,
                   "mpscan: %zu bytes; zsrc: %d, %zu", used, (int)z, zlen);
        break;
    case -EAGAIN:
        FUZZ_CHECK(used == size && z == ZSRC_MPK_TRUNCATED,
                   "mpscan: cut short; zsrc: %d", (int)z);
        break;
    case -EBADMSG:
        FUZZ_CHECK(data[used] == 0xc1, "mpscan: bad byte 0x%02x at %zu",
                   data[used], used);
        FUZZ_CHECK((z == ZSRC_MPK_INVALID && zlen == used) ||
                       z == ZSRC_MPK_TRUNCATED,
                   "mpscan: 0xc1 at %zu; zsrc: %d, %zu", used, (int)z, zlen);
        break;
    case -ELOOP:
        FUZZ_CHECK(z == ZSRC_MPK_DEEP || z == ZSRC_MPK_TRUNCATED ||
                       z == ZSRC_MPK_INVALID,
                   "mpscan: too deep at %zu; zsrc: %d", used, (int)z);
        break;
    default:
        FUZZ_CHECK(0, "mpscan returned %d", rc);
    }
    if (z == ZSRC_MPK_OK)
        FUZZ_CHECK(rc == 0, "zsrc: ok; mpscan: %d", rc);
    if (z == ZSRC_MPK_DEEP)
        FUZZ_CHECK(rc == -ELOOP, "zsrc: too deep; mpscan: %d", rc);

    /* Only bytes a walker has vouched for go to msgpack-c, which would
     * otherwise allocate whatever a header claims. */
    size_t off;
    if (rc == 0) {
        msgpack_unpack_return r = s_msgpack(data, used, &off);
        FUZZ_CHECK(r == MSGPACK_UNPACK_SUCCESS && off == used,
                   "walkers accept %zu bytes; msgpack-c says %d at %zu", used,
                   (int)r, off);
    }
    if (z == ZSRC_MPK_DEEP) {
        msgpack_unpack_return r = s_msgpack(data, zlen, &off);
        FUZZ_CHECK(r != MSGPACK_UNPACK_SUCCESS,
                   "refused as too deep, but msgpack-c decodes %zu bytes",
                   zlen);
    }
    return 0;
}
