/*
 * The csv_parse stage, loaded through the harness, on one CSV row held in
 * a record field. Byte 0 picks the dialect and shape (columns, delimiter,
 * quote, keep_source, whether the record says where it came from, and a
 * record field named like a column); the rest is the row.
 *
 * Checks: each record either becomes exactly one record or fails with a
 * message naming the field; an output is one well-formed map with every
 * column as a string and no column twice.
 */
#include "fuzz.h"

#include "harness.h"
#include "plugin.h"

static const char *const s_columns[] = {"[a]", "[a, b]", "[a, b, c]",
                                        "[a, b, c, d, e, f, g, h]"};
/* As YAML scalars. */
static const char *const s_delims[] = {"','", "';'", "\"\\t\"", "'|'"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[512];
    if (!sl__plugin_load("csv_parse", err, sizeof(err))) {
        fprintf(stderr, "fuzz_csv_parse: %s\n", err);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned sel = fuzz_take_byte(&data, &size);
    size_t ncols = sel & 3;
    unsigned delim = (sel >> 2) & 3;
    int single_quote = (sel >> 4) & 1;
    int keep = (sel >> 5) & 1;
    int where = (sel >> 6) & 1;
    int clash = (sel >> 7) & 1;
    char cfg[256];
    snprintf(cfg, sizeof(cfg),
             "columns: %s\ndelimiter: %s\nquote: %s\nkeep_source: %s\n",
             s_columns[ncols], s_delims[delim], single_quote ? "\"'\"" : "'\"'",
             keep ? "true" : "false");
    char err[1024];
    sl_harness_t *h = sl_harness_new("csv_parse", cfg, NULL, err, sizeof(err));
    FUZZ_CHECK(h != NULL, "%s\n%s", cfg, err);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1u + 2u * (unsigned)where + (unsigned)clash);
    if (where) {
        msgpack_pack_str_with_body(&pk, "file", 4);
        msgpack_pack_str_with_body(&pk, "in.csv", 6);
        msgpack_pack_str_with_body(&pk, "lineno", 6);
        msgpack_pack_uint64(&pk, 42);
    }
    msgpack_pack_str_with_body(&pk, "line", 4);
    msgpack_pack_str_with_body(&pk, data, size);
    if (clash) {
        msgpack_pack_str_with_body(&pk, "b", 1);
        msgpack_pack_int(&pk, -1);
    }

    int rc = sl_harness_push_msgpack(h, sb.data, sb.size);
    if (rc < 0) {
        FUZZ_CHECK(sl_harness_errors(h) == 1 && sl_harness_count(h) == 0,
                   "failed with %zu errors and %zu outputs",
                   sl_harness_errors(h), sl_harness_count(h));
        FUZZ_CHECK(strstr(sl_harness_last_error(h), "field 'line'") != NULL,
                   "message without the field: %s", sl_harness_last_error(h));
    } else {
        FUZZ_CHECK(sl_harness_count(h) == 1 && sl_harness_errors(h) == 0,
                   "passed with %zu errors and %zu outputs",
                   sl_harness_errors(h), sl_harness_count(h));
        size_t len;
        const void *out = sl_harness_output_msgpack(h, 0, &len);
        msgpack_zone zone;
        msgpack_zone_init(&zone, 1024);
        msgpack_object o = fuzz_unpack(out, len, &zone, "output");
        FUZZ_CHECK(o.type == MSGPACK_OBJECT_MAP, "output is not a map");
        FUZZ_CHECK(!fuzz_dup_keys(&o), "duplicate keys: %s",
                   sl_harness_output(h, 0));
        static const char *const names[] = {"a", "b", "c", "d",
                                            "e", "f", "g", "h"};
        size_t want = ncols == 3 ? 8 : ncols + 1;
        for (size_t c = 0; c < want; c++) {
            const msgpack_object *v = sl_map_getn(&o, names[c], 1);
            FUZZ_CHECK(v && v->type == MSGPACK_OBJECT_STR,
                       "column %s missing or not a string: %s", names[c],
                       sl_harness_output(h, 0));
        }
        FUZZ_CHECK(o.via.map.size == want + (size_t)keep + 2u * (size_t)where +
                                         (size_t)(clash && want < 2),
                   "%u keys: %s", o.via.map.size, sl_harness_output(h, 0));
        msgpack_zone_destroy(&zone);
    }
    msgpack_sbuffer_destroy(&sb);
    sl_harness_destroy(&h);
    return 0;
}
