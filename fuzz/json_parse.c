/*
 * JSON text: sl_json_decode on its own, then the json_parse stage (through
 * the harness) on the same text held in a record field. Byte 0 picks the
 * stage's mode (merge or `target`, keep_source); the rest is the text.
 *
 * Checks on sl_json_decode: success or -EBADMSG with a "line L column C"
 * message; what it packs is exactly one msgpack value that msgpack-c
 * decodes; encoding that with sl_json_encode and decoding again gives the
 * same text (encode(decode(x)) is a fixed point). On the stage: it fails
 * exactly when the text is not JSON (or, merging, not an object), and an
 * output is one well-formed map without a key twice.
 */
#include "fuzz.h"

#include "harness.h"
#include "mpscan.h"
#include "plugin.h"

#include <errno.h>
#include <sluice/json.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[512];
    if (!sl__plugin_load("json_parse", err, sizeof(err))) {
        fprintf(stderr, "fuzz_json_parse: %s\n", err);
        abort();
    }
    return 0;
}

/* Decodes text; returns its msgpack (caller destroys sb) or rc < 0. */
static int s_decode(const char *text, size_t len, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    char err[256] = "";
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = sl_json_decode(text, len, &pk, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == -EBADMSG, "decode returned %d", rc);
    if (rc == 0) {
        size_t used;
        int src = sl__mpscan_object(sb->data, sb->size, SL_MP_MAX_DEPTH,
                                    &used);
        FUZZ_CHECK(src == 0 && used == sb->size,
                   "decode packed %zu bytes, a scan says %d at %zu", sb->size,
                   src, used);
    } else {
        FUZZ_CHECK(strncmp(err, "line ", 5) == 0 && strstr(err, " column "),
                   "message without a position: '%s'", err);
    }
    return rc;
}

/* encode(obj) must decode, and encode to the same text again. */
static void s_roundtrip(const msgpack_object *obj)
{
    msgpack_sbuffer e1, e2, m2;
    msgpack_sbuffer_init(&e1);
    msgpack_sbuffer_init(&e2);
    FUZZ_CHECK(sl_json_encode(obj, &e1) == 0, "encode failed");
    FUZZ_CHECK(s_decode(e1.data ? e1.data : "", e1.size, &m2) == 0,
               "encoded text does not decode: %.*s", (int)e1.size, e1.data);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object again = fuzz_unpack(m2.data, m2.size, &zone, "again");
    FUZZ_CHECK(sl_json_encode(&again, &e2) == 0, "encode failed");
    FUZZ_CHECK(e1.size == e2.size && memcmp(e1.data, e2.data, e1.size) == 0,
               "not a fixed point:\n  %.*s\n  %.*s", (int)e1.size, e1.data,
               (int)e2.size, e2.data);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&m2);
    msgpack_sbuffer_destroy(&e2);
    msgpack_sbuffer_destroy(&e1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned sel = fuzz_take_byte(&data, &size);
    int target = sel & 1, keep = (sel >> 1) & 1, clash = (sel >> 2) & 1;

    msgpack_sbuffer sb;
    int rc = s_decode((const char *)data, size, &sb);
    int is_map = 0;
    if (rc == 0) {
        msgpack_zone zone;
        msgpack_zone_init(&zone, 1024);
        msgpack_object obj = fuzz_unpack(sb.data, sb.size, &zone, "decoded");
        is_map = obj.type == MSGPACK_OBJECT_MAP;
        FUZZ_CHECK(!is_map || !fuzz_dup_keys(&obj), "decoded a key twice");
        s_roundtrip(&obj);
        msgpack_zone_destroy(&zone);
    }
    msgpack_sbuffer_destroy(&sb);

    char cfg[128], err[1024];
    snprintf(cfg, sizeof(cfg), "%s\nkeep_source: %s\n",
             target ? "target: parsed" : "", keep ? "true" : "false");
    sl_harness_t *h = sl_harness_new("json_parse", cfg, NULL, err, sizeof(err));
    FUZZ_CHECK(h != NULL, "%s\n%s", cfg, err);
    msgpack_sbuffer rec;
    msgpack_sbuffer_init(&rec);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &rec, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, clash ? 4 : 2);
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_uint64(&pk, 7);
    msgpack_pack_str_with_body(&pk, "line", 4);
    msgpack_pack_str_with_body(&pk, data, size);
    if (clash) { /* fields that a parsed key or the target may replace */
        msgpack_pack_str_with_body(&pk, "a", 1);
        msgpack_pack_nil(&pk);
        msgpack_pack_str_with_body(&pk, "parsed", 6);
        msgpack_pack_true(&pk);
    }
    int prc = sl_harness_push_msgpack(h, rec.data, rec.size);
    int want_ok = rc == 0 && (target || is_map);
    FUZZ_CHECK((prc == 0) == want_ok, "stage returned %d (%s), decode %d, "
               "map %d", prc, sl_harness_last_error(h), rc, is_map);
    if (prc == 0) {
        FUZZ_CHECK(sl_harness_count(h) == 1, "%zu outputs",
                   sl_harness_count(h));
        size_t len;
        const void *out = sl_harness_output_msgpack(h, 0, &len);
        msgpack_zone zone;
        msgpack_zone_init(&zone, 1024);
        msgpack_object o = fuzz_unpack(out, len, &zone, "output");
        FUZZ_CHECK(o.type == MSGPACK_OBJECT_MAP, "output is not a map");
        FUZZ_CHECK(!fuzz_dup_keys(&o), "a key twice: %s",
                   sl_harness_output(h, 0));
        msgpack_zone_destroy(&zone);
    }
    msgpack_sbuffer_destroy(&rec);
    sl_harness_destroy(&h);
    return 0;
}
