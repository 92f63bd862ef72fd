/*
 * The filter stage's expression language (stages/filter/expr*.c, compiled
 * in): the input is an expression, compiled and then evaluated against a
 * few fixed records that hold every msgpack type the evaluator compares.
 *
 * Checks: checking only (out == NULL) and compiling agree; a refused
 * expression has a message ("column N: ..." or the length limit); an
 * accepted one evaluates to 0 or 1, the same every time.
 */
#include "fuzz.h"

#include "expr.h"

#include <errno.h>

#define S_RECORDS 3
static msgpack_zone s_zone;
static msgpack_object s_records[S_RECORDS];
static msgpack_sbuffer s_packed[S_RECORDS];

static void s_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void s_pack_full(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 16);
    s_str(pk, "a");
    msgpack_pack_int(pk, 1);
    s_str(pk, "b");
    msgpack_pack_int(pk, -2);
    s_str(pk, "f");
    msgpack_pack_double(pk, 1.5);
    s_str(pk, "g");
    msgpack_pack_float(pk, -0.0f);
    s_str(pk, "s");
    s_str(pk, "hello world");
    s_str(pk, "e");
    s_str(pk, "");
    s_str(pk, "t");
    msgpack_pack_true(pk);
    s_str(pk, "n");
    msgpack_pack_nil(pk);
    s_str(pk, "big");
    msgpack_pack_uint64(pk, UINT64_MAX);
    s_str(pk, "neg");
    msgpack_pack_int64(pk, INT64_MIN);
    s_str(pk, "arr");
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1);
    s_str(pk, "x");
    s_str(pk, "bin");
    msgpack_pack_bin_with_body(pk, "a\0b", 3);
    s_str(pk, "in");
    s_str(pk, "key");
    s_str(pk, "a.b");
    msgpack_pack_int(pk, 5);
    s_str(pk, "m");
    msgpack_pack_map(pk, 4);
    s_str(pk, "x");
    msgpack_pack_int(pk, 1);
    s_str(pk, "y");
    s_str(pk, "z");
    s_str(pk, "e-mail");
    s_str(pk, "a@example.org");
    s_str(pk, "deep");
    msgpack_pack_map(pk, 1);
    s_str(pk, "er");
    msgpack_pack_false(pk);
    msgpack_pack_int(pk, 3); /* a key that is not a string */
    s_str(pk, "int key");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    msgpack_zone_init(&s_zone, 4096);
    for (int i = 0; i < S_RECORDS; i++) {
        msgpack_packer pk;
        msgpack_sbuffer_init(&s_packed[i]);
        msgpack_packer_init(&pk, &s_packed[i], msgpack_sbuffer_write);
        if (i == 0) {
            s_pack_full(&pk);
        } else if (i == 1) {
            msgpack_pack_map(&pk, 0);
        } else { /* the same names, other types */
            msgpack_pack_map(&pk, 4);
            s_str(&pk, "a");
            s_str(&pk, "1");
            s_str(&pk, "s");
            msgpack_pack_int(&pk, 0);
            s_str(&pk, "m");
            msgpack_pack_nil(&pk);
            s_str(&pk, "t");
            msgpack_pack_int(&pk, 1);
        }
        s_records[i] = fuzz_unpack(s_packed[i].data, s_packed[i].size,
                                   &s_zone, "record");
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    char err[256] = "", err2[256] = "";
    expr_t *e = NULL;
    int check = expr_compile(text, NULL, err2, sizeof(err2));
    int rc = expr_compile(text, &e, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == -EINVAL, "compile returned %d", rc);
    FUZZ_CHECK(rc == check, "compile %d, check only %d", rc, check);
    if (rc < 0) {
        FUZZ_CHECK(e == NULL, "a refused expression left a tree");
        FUZZ_CHECK(strcmp(err, err2) == 0, "two messages: '%s', '%s'", err,
                   err2);
        FUZZ_CHECK(strncmp(err, "column ", 7) == 0 ||
                       strncmp(err, "expression is ", 14) == 0,
                   "message: '%s'", err);
    } else {
        FUZZ_CHECK(e != NULL, "no tree");
        for (int i = 0; i < S_RECORDS; i++) {
            int r = expr_eval(e, &s_records[i]);
            FUZZ_CHECK(r == 0 || r == 1, "eval returned %d", r);
            FUZZ_CHECK(expr_eval(e, &s_records[i]) == r, "eval changed");
        }
    }
    expr_destroy(&e);
    FUZZ_CHECK(e == NULL, "destroy left the pointer");
    free(text);
    return 0;
}
