/* zmq_source and zmq_sink in the harness, each facing a ZeroMQ socket of
 * the test's own: records exact both ways in msgpack and JSON, several
 * records per message, a message larger than the budget handed out over
 * several pulls without loss or repeat, bad messages reported with their
 * text while the records after them still come through, eof_on and
 * idle_timeout_ms, a send that times out failing the record and
 * succeeding once a peer is there (exactly once), a flush that cannot
 * deliver failing, PUB refusing rather than dropping for a slow
 * subscriber, batches sent when full, on sync and on flush; mangled
 * msgpack never getting through, either way; config errors. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <errno.h>
#include <msgpack.h>
#include <sluice/json.h>
#include <sluice/stage.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* ---- the test's side ----------------------------------------------------- */

#define MAX_SOCKETS 8

static void *s_zctx;
static void *s_socks[MAX_SOCKETS];

static void s_setup(void)
{
    sl_test_tmpdir_setup();
    s_zctx = zmq_ctx_new();
    cr_assert_not_null(s_zctx);
}

static void s_teardown(void)
{
    for (int i = 0; i < MAX_SOCKETS; i++) {
        if (s_socks[i])
            zmq_close(s_socks[i]);
        s_socks[i] = NULL;
    }
    zmq_ctx_term(s_zctx);
    sl_test_tmpdir_teardown();
}

TestSuite(zmq_source, .init = s_setup, .fini = s_teardown);
TestSuite(zmq_sink, .init = s_setup, .fini = s_teardown);

/* "ipc://<test dir>/name". Static storage, one per call site is enough. */
static const char *s_ep(const char *name)
{
    static char buf[2][512];
    static int i;
    i ^= 1;
    snprintf(buf[i], sizeof(buf[i]), "ipc://%s/%s", sl_test_dir(), name);
    return buf[i];
}

static void *s_socket(int type, const char *ep, int bind, int hwm)
{
    void *s = zmq_socket(s_zctx, type);
    int zero = 0, i = 0;
    cr_assert_not_null(s);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    if (hwm) {
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    }
    if (type == ZMQ_SUB)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    cr_assert_eq(bind ? zmq_bind(s, ep) : zmq_connect(s, ep), 0, "%s: %s",
                 ep, zmq_strerror(errno));
    while (s_socks[i])
        i++;
    s_socks[i] = s;
    return s;
}

static void s_send(void *sock, const void *data, size_t len)
{
    cr_assert_eq(zmq_send(sock, data, len, 0), (int)len, "send: %s",
                 zmq_strerror(errno));
}

static void s_send_str(void *sock, const char *s)
{
    s_send(sock, s, strlen(s));
}

/* Receives one message within timeout_s: a malloc'd copy (NUL added), or
 * NULL if none came. */
static char *s_recv(void *sock, double timeout_s, size_t *len)
{
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    zmq_msg_t m;
    if (zmq_poll(&it, 1, (long)(timeout_s * 1000)) <= 0)
        return NULL;
    zmq_msg_init(&m);
    cr_assert_geq(zmq_msg_recv(&m, sock, 0), 0);
    *len = zmq_msg_size(&m);
    char *out = malloc(*len + 1);
    cr_assert_not_null(out);
    memcpy(out, zmq_msg_data(&m), *len);
    out[*len] = '\0';
    zmq_msg_close(&m);
    return out;
}

static void s_expect_msg(void *sock, const void *want, size_t wlen)
{
    size_t len;
    char *got = s_recv(sock, 5, &len);
    cr_assert_not_null(got, "no message came");
    cr_assert_eq(len, wlen, "message of %zu bytes, want %zu: '%s'", len,
                 wlen, got);
    cr_assert_eq(memcmp(got, want, len), 0, "message '%s'", got);
    free(got);
}

/* Nothing more arrives within 100 ms (after what a test expected). */
static void s_expect_silence(void *sock)
{
    size_t len;
    char *got = s_recv(sock, 0.1, &len);
    cr_assert_null(got, "unexpected message of %zu bytes: '%s'", len, got);
}

/* msgpack bytes of a JSON text, appended to sb. */
static void s_mp(msgpack_sbuffer *sb, const char *json)
{
    msgpack_packer pk;
    char err[128];
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    cr_assert_eq(sl_json_decode(json, strlen(json), &pk, err, sizeof(err)),
                 0, "%s: %s", json, err);
}

/* ---- zmq_source ---------------------------------------------------------- */

static sl_harness_t *s_source(const char *fmt, ...) SL_PRINTF(1, 2);
static sl_harness_t *s_source(const char *fmt, ...)
{
    char yaml[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(yaml, sizeof(yaml), fmt, ap);
    va_end(ap);
    return sl_test_harness("zmq_source", yaml, sl_test_dir());
}

/* Pulls (budget per call) until at least n records and errors came in
 * all, for at most 5 s. */
static void s_pull_until(sl_harness_t *h, size_t budget, size_t n)
{
    double end = sl_test_now() + 5;
    while (sl_harness_count(h) + sl_harness_errors(h) < n) {
        cr_assert_lt(sl_test_now(), end, "only %zu records and %zu errors "
                     "of %zu came", sl_harness_count(h),
                     sl_harness_errors(h), n);
        int rc = sl_harness_pull_all(h, budget, 1);
        cr_assert(rc == -ETIMEDOUT, "pull: %d %s", rc,
                  sl_harness_last_error(h));
    }
}

static void s_expect_out(sl_harness_t *h, size_t i, const char *json)
{
    cr_assert_lt(i, sl_harness_count(h));
    cr_expect_str_eq(sl_harness_output(h, i), json, "output %zu", i);
}

Test(zmq_source, msgpack_records_exact_one_or_several_per_message)
{
    static const char *recs[] = {
        "{\"id\":1,\"s\":\"a\"}",
        "{\"id\":2,\"neg\":-5,\"f\":0.25,\"big\":18446744073709551615}",
        "{\"id\":3,\"a\":[null,true,false,\"x\"],\"m\":{\"k\":{\"d\":[]}}}",
        "{}",
    };
    sl_harness_t *h = s_source("endpoint: %s", s_ep("in.sock"));
    void *push = s_socket(ZMQ_PUSH, s_ep("in.sock"), 0, 0);
    msgpack_sbuffer one, many;
    msgpack_sbuffer_init(&one);
    msgpack_sbuffer_init(&many);
    s_mp(&one, recs[0]);
    for (int i = 1; i < 4; i++)
        s_mp(&many, recs[i]);
    /* A bin value: no JSON spelling gives one. */
    msgpack_packer pk;
    msgpack_packer_init(&pk, &many, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_bin_with_body(&pk, "\x00\xff", 2);
    s_send(push, one.data, one.size);
    s_send(push, many.data, many.size);

    s_pull_until(h, 256, 5);
    cr_assert_eq(sl_harness_count(h), 5);
    cr_assert_eq(sl_harness_errors(h), 0, "%s", sl_harness_last_error(h));
    for (int i = 0; i < 4; i++)
        s_expect_out(h, (size_t)i, recs[i]);
    s_expect_out(h, 4, "{\"b\":\"AP8=\"}");
    /* Byte for byte what was sent, all five back to back. */
    size_t off = 0;
    for (size_t i = 0; i < 5; i++) {
        size_t len;
        const char *p = sl_harness_output_msgpack(h, i, &len);
        const msgpack_sbuffer *src = i == 0 ? &one : &many;
        cr_assert(i > 0 || len == one.size, "record 0 length");
        cr_assert_eq(memcmp(p, src->data + off, len), 0, "record %zu", i);
        off = i == 0 ? 0 : off + len;
    }
    cr_assert_eq(off, many.size);
    cr_assert_eq(sl_harness_read(h), 5);
    msgpack_sbuffer_destroy(&one);
    msgpack_sbuffer_destroy(&many);
    sl_harness_destroy(&h);
}

Test(zmq_source, json_lines_exact)
{
    sl_harness_t *h = s_source("endpoint: %s\nformat: json",
                               s_ep("in.sock"));
    void *push = s_socket(ZMQ_PUSH, s_ep("in.sock"), 0, 0);
    s_send_str(push, "{\"a\":1}\n\n  {\"b\":[1,2.5,\"x\"]}\r\n"
                     "{\"c\":{\"d\":null},\"u\":18446744073709551615}\n");
    s_send_str(push, "{\"e\":true,\"s\":\"\\u00e9\\n\"}");
    s_pull_until(h, 256, 4);
    cr_assert_eq(sl_harness_count(h), 4);
    cr_assert_eq(sl_harness_errors(h), 0, "%s", sl_harness_last_error(h));
    s_expect_out(h, 0, "{\"a\":1}");
    s_expect_out(h, 1, "{\"b\":[1,2.5,\"x\"]}");
    s_expect_out(h, 2, "{\"c\":{\"d\":null},\"u\":18446744073709551615}");
    s_expect_out(h, 3, "{\"e\":true,\"s\":\"\xc3\xa9\\n\"}");
    sl_harness_destroy(&h);
}

/* A message of 10 records pulled with a budget of 3: 3, 6, 9, then the
 * last one; the next message follows. Each record once, in order. */
static void s_remainder(const char *format)
{
    sl_harness_t *h = s_source("endpoint: %s\nformat: %s", s_ep("in.sock"),
                               format);
    void *push = s_socket(ZMQ_PUSH, s_ep("in.sock"), 0, 0);
    int json = !strcmp(format, "json");
    msgpack_sbuffer sb;
    char rec[64];
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < 10; i++) {
        snprintf(rec, sizeof(rec), "{\"i\":%d}", i);
        if (json) {
            msgpack_sbuffer_write(&sb, rec, strlen(rec));
            msgpack_sbuffer_write(&sb, "\n", 1);
        } else {
            s_mp(&sb, rec);
        }
    }
    s_send(push, sb.data, sb.size);
    s_pull_until(h, 3, 1);
    cr_assert_eq(sl_harness_count(h), 3, "first pull");
    cr_assert_eq(sl_harness_pull_all(h, 3, 1), -ETIMEDOUT);
    cr_assert_eq(sl_harness_count(h), 6);
    cr_assert_eq(sl_harness_pull_all(h, 3, 1), -ETIMEDOUT);
    cr_assert_eq(sl_harness_count(h), 9);
    /* The last record of the message, and no waiting for more. */
    double t0 = sl_test_now();
    cr_assert_eq(sl_harness_pull_all(h, 3, 1), -ETIMEDOUT);
    cr_assert_eq(sl_harness_count(h), 10);
    cr_assert_lt(sl_test_now() - t0, 0.09, "pull waited with records");
    s_send_str(push, json ? "{\"i\":10}" : "\x81\xa1i\x0a");
    s_pull_until(h, 3, 11);
    cr_assert_eq(sl_harness_count(h), 11);
    for (int i = 0; i <= 10; i++) {
        snprintf(rec, sizeof(rec), "{\"i\":%d}", i);
        s_expect_out(h, (size_t)i, rec);
    }
    cr_assert_eq(sl_harness_errors(h), 0, "%s", sl_harness_last_error(h));
    cr_assert_eq(sl_harness_read(h), 11);
    msgpack_sbuffer_destroy(&sb);
    sl_harness_destroy(&h);
}

Test(zmq_source, msgpack_remainder_over_budget_kept)
{
    s_remainder("msgpack");
}

Test(zmq_source, json_remainder_over_budget_kept)
{
    s_remainder("json");
}

/* Sends one message and pulls until it has made one more error; the
 * error must be want and the message must have given `records` records. */
static void s_bad(sl_harness_t *h, void *push, const void *msg, size_t len,
                  size_t records, const char *want)
{
    size_t count = sl_harness_count(h), errs = sl_harness_errors(h);
    s_send(push, msg, len);
    s_pull_until(h, 256, count + errs + records + 1);
    cr_assert_eq(sl_harness_errors(h), errs + 1, "errors: %zu, last: %s",
                 sl_harness_errors(h) - errs, sl_harness_last_error(h));
    cr_assert_str_eq(sl_harness_last_error(h), want);
    cr_assert_eq(sl_harness_count(h), count + records, "records");
}

/* n maps nested in each other, the innermost {"z":1}. */
static void s_deep(msgpack_sbuffer *sb, int n)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    for (int i = 0; i < n - 1; i++) {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "a", 1);
    }
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "z", 1);
    msgpack_pack_int(&pk, 1);
}

Test(zmq_source, bad_msgpack_reported_and_the_rest_kept)
{
    sl_harness_t *h = s_source("endpoint: %s", s_ep("in.sock"));
    void *push = s_socket(ZMQ_PUSH, s_ep("in.sock"), 0, 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);

    /* A well-formed non-map between two maps: skipped alone. */
    s_mp(&sb, "{\"a\":1}");
    s_mp(&sb, "[1,{\"x\":2}]");
    s_mp(&sb, "{\"a\":2}");
    s_bad(h, push, sb.data, sb.size, 2, "zmq message 1: record 2: expected "
          "a msgpack map, got an array");
    /* A map32 header claiming 4 billion entries: nothing believed, the
     * rest of the message is given up. */
    sb.size = 0;
    s_mp(&sb, "{\"a\":3}");
    msgpack_sbuffer_write(&sb, "\xdf\xff\xff\xff\xff\xa1k", 7);
    s_bad(h, push, sb.data, sb.size, 1, "zmq message 2: record 2: "
          "truncated msgpack value (the message ends within it, 7 bytes "
          "after its start); rest of the message skipped");
    /* A str8 that claims more bytes than follow. */
    s_bad(h, push, "\x81\xa1k\xd9\xc8xyz", 7, 0, "zmq message 3: record 1: "
          "truncated msgpack value (the message ends within it, 7 bytes "
          "after its start); rest of the message skipped");
    s_bad(h, push, "\x81\xa1k\xc1\x80", 5, 0, "zmq message 4: record 1: "
          "invalid msgpack (byte 0xc1 at offset 3 of the message); rest of "
          "the message skipped");
    /* 33 levels cannot be unpacked by msgpack-c; 32 can. */
    sb.size = 0;
    s_deep(&sb, 33);
    s_deep(&sb, 32);
    s_mp(&sb, "{\"a\":4}");
    s_bad(h, push, sb.data, sb.size, 2, "zmq message 5: record 1: msgpack "
          "value nested deeper than 32 levels");
    /* An empty container counts as a level too: [] inside 32 maps is
     * level 33, inside 31 it is level 32. */
    sb.size = 0;
    s_deep(&sb, 32);
    sb.size -= 4; /* the innermost {"z":1} becomes {"a":[]} */
    msgpack_sbuffer_write(&sb, "\x81\xa1" "a\x90", 4);
    size_t first = sb.size;
    s_deep(&sb, 31);
    sb.size -= 4;
    msgpack_sbuffer_write(&sb, "\x81\xa1" "a\x90", 4);
    cr_assert_gt(sb.size, first);
    s_bad(h, push, sb.data, sb.size, 1, "zmq message 6: record 1: msgpack "
          "value nested deeper than 32 levels");
    s_bad(h, push, "", 0, 0, "zmq message 7: no records (empty message)");
    /* The source goes on with good messages. */
    s_send(push, "\x81\xa1" "a\x05", 4);
    s_pull_until(h, 256, 14);

    static const char *want[] = {"{\"a\":1}", "{\"a\":2}", "{\"a\":3}",
                                 NULL, "{\"a\":4}", NULL, "{\"a\":5}"};
    cr_assert_eq(sl_harness_count(h), 7);
    cr_assert_eq(sl_harness_errors(h), 7);
    cr_assert_eq(sl_harness_read(h), 14);
    for (size_t i = 0; i < 7; i++)
        if (want[i])
            s_expect_out(h, i, want[i]);
    /* The deep ones that fit came through whole. */
    cr_assert_not_null(strstr(sl_harness_output(h, 3), "{\"z\":1}"));
    cr_assert_not_null(strstr(sl_harness_output(h, 5), "{\"a\":[]}"));
    msgpack_sbuffer_destroy(&sb);
    sl_harness_destroy(&h);
}

/* Valid batches with random bytes changed, cut short or extended: the
 * source never crashes, every record it emits unpacks whole with
 * msgpack-c, and everything it looked at is a record or an input error. */
Test(zmq_source, mangled_msgpack_never_gets_through)
{
    sl_harness_t *h = s_source("endpoint: %s\neof_on: EOF", s_ep("in.sock"));
    void *push = s_socket(ZMQ_PUSH, s_ep("in.sock"), 0, 0);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int m = 0; m < 400; m++) {
        sb.size = 0;
        int recs = 1 + (int)(sl_test_rand(&rng) % 4);
        for (int r = 0; r < recs; r++)
            s_mp(&sb, "{\"id\":123456,\"s\":\"text\",\"a\":[1,-2,3.5,null],"
                      "\"m\":{\"k\":\"v\",\"b\":true},\"u\":4294967296}");
        int flips = (int)(sl_test_rand(&rng) % 4);
        for (int f = 0; f < flips; f++)
            sb.data[sl_test_rand(&rng) % sb.size] =
                (char)(sl_test_rand(&rng) & 0xff);
        size_t len = sb.size;
        if (sl_test_rand(&rng) % 4 == 0)
            len = sl_test_rand(&rng) % sb.size; /* cut short */
        s_send(push, sb.data, len);
    }
    s_send_str(push, "EOF");
    cr_assert_eq(sl_harness_pull_all(h, 7, 100000), 0);
    cr_assert_gt(sl_harness_count(h), 100, "most records survive");
    cr_assert_gt(sl_harness_errors(h), 50, "many are broken");
    cr_assert_eq(sl_harness_read(h),
                 sl_harness_count(h) + sl_harness_errors(h));
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    for (size_t i = 0; i < sl_harness_count(h); i++) {
        size_t len, off = 0;
        const char *p = sl_harness_output_msgpack(h, i, &len);
        msgpack_object o;
        cr_assert_eq(msgpack_unpack(p, len, &off, &zone, &o),
                     MSGPACK_UNPACK_SUCCESS, "record %zu", i);
        cr_assert_eq(o.type, MSGPACK_OBJECT_MAP);
        cr_assert_eq(off, len);
        msgpack_zone_clear(&zone);
    }
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&sb);
    sl_harness_destroy(&h);
}

Test(zmq_source, bad_json_reported_and_the_rest_kept)
{
    sl_harness_t *h = s_source("endpoint: %s\nformat: json",
                               s_ep("in.sock"));
    void *push = s_socket(ZMQ_PUSH, s_ep("in.sock"), 0, 0);
    const char *m1 = "{\"a\":1}\n{\"a\":\n{\"a\":2}";
    s_bad(h, push, m1, strlen(m1), 2,
          "zmq message 1: record 2: invalid JSON: column 5: parse error: "
          "premature EOF");
    s_bad(h, push, "[1,2]\n{\"a\":3}", 13, 1,
          "zmq message 2: record 1: expected a JSON object, got an array");
    s_bad(h, push, "{\"a\":4} x\n", 10, 0,
          "zmq message 3: record 1: invalid JSON: column 9: parse error: "
          "trailing garbage");
    s_bad(h, push, "\n \n", 3, 0, "zmq message 4: no records (blank "
          "message)");
    s_send_str(push, "{\"a\":5}");
    s_pull_until(h, 256, 8);
    cr_assert_eq(sl_harness_count(h), 4);
    s_expect_out(h, 0, "{\"a\":1}");
    s_expect_out(h, 1, "{\"a\":2}");
    s_expect_out(h, 2, "{\"a\":3}");
    s_expect_out(h, 3, "{\"a\":5}");
    sl_harness_destroy(&h);
}

Test(zmq_source, oversized_message_is_an_input_error)
{
    sl_harness_t *h = s_source("endpoint: %s\nformat: json\nmax_message: 64",
                               s_ep("in.sock"));
    void *push = s_socket(ZMQ_PUSH, s_ep("in.sock"), 0, 0);
    char big[101];
    memset(big, ' ', 100);
    memcpy(big, "{\"a\":1}", 7);
    big[100] = '\0';
    s_bad(h, push, big, 100, 0, "zmq message 1: 100 bytes, larger than "
          "max_message (64 bytes); skipped");
    /* Frames count together; the last one is the body. */
    cr_assert_eq(zmq_send(push, big, 60, ZMQ_SNDMORE), 60);
    s_bad(h, push, "{\"b\":2}", 7, 0, "zmq message 2: 67 bytes, larger "
          "than max_message (64 bytes); skipped");
    cr_assert_eq(zmq_send(push, "topic", 5, ZMQ_SNDMORE), 5);
    s_send_str(push, "{\"c\":3}");
    s_send(push, big, 64); /* exactly the limit */
    s_pull_until(h, 256, 4);
    cr_assert_eq(sl_harness_count(h), 2);
    s_expect_out(h, 0, "{\"c\":3}");
    s_expect_out(h, 1, "{\"a\":1}");
    sl_harness_destroy(&h);
}

Test(zmq_source, eof_on_ends_the_input_after_the_records_before_it)
{
    sl_harness_t *h = s_source("endpoint: %s\nformat: json\neof_on: EOF",
                               s_ep("in.sock"));
    void *push = s_socket(ZMQ_PUSH, s_ep("in.sock"), 0, 0);
    s_send_str(push, "{\"i\":1}\n{\"i\":2}");
    s_send_str(push, "{\"i\":3}\nEOF"); /* not the marker: a bad record */
    s_send_str(push, "EOF");
    s_send_str(push, "{\"i\":4}");
    cr_assert_eq(sl_harness_pull_all(h, 2, 1000), 0, "%s",
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), 3);
    s_expect_out(h, 2, "{\"i\":3}");
    cr_assert_eq(sl_harness_errors(h), 1);
    cr_assert_str_eq(sl_harness_last_error(h), "zmq message 2: record 2: "
                     "invalid JSON: column 1: lexical error: invalid char "
                     "in json text");
    /* Ended for good. */
    cr_assert_eq(sl_harness_pull_all(h, 2, 1), 0);
    cr_assert_eq(sl_harness_count(h), 3);
    sl_harness_destroy(&h);
}

Test(zmq_source, idle_timeout_ends_the_input)
{
    sl_harness_t *h = s_source("endpoint: %s\nidle_timeout_ms: 300",
                               s_ep("in.sock"));
    double t0 = sl_test_now();
    cr_assert_eq(sl_harness_pull_all(h, 256, 1000), 0);
    double took = sl_test_now() - t0;
    cr_assert_eq(sl_harness_count(h), 0);
    cr_assert_geq(took, 0.3, "ended after %.3f s", took);
    cr_assert_lt(took, 2.0, "ended after %.3f s", took);
    sl_harness_destroy(&h);

    /* Messages restart the clock; the records come first. */
    h = s_source("endpoint: %s\nidle_timeout_ms: 300", s_ep("in2.sock"));
    void *push = s_socket(ZMQ_PUSH, s_ep("in2.sock"), 0, 0);
    s_send(push, "\x81\xa1i\x01", 4);
    s_pull_until(h, 256, 1);
    s_send(push, "\x81\xa1i\x02", 4);
    cr_assert_eq(sl_harness_pull_all(h, 256, 1000), 0);
    cr_assert_eq(sl_harness_count(h), 2);
    s_expect_out(h, 1, "{\"i\":2}");
    sl_harness_destroy(&h);
}

Test(zmq_source, sub_takes_only_subscribed_prefixes)
{
    sl_harness_t *h = s_source("endpoint: %s\nsocket: sub\nformat: json\n"
                               "subscribe: [keep]\neof_on: EOF",
                               s_ep("in.sock"));
    void *pub = s_socket(ZMQ_PUB, s_ep("in.sock"), 0, 0);
    /* A subscription takes a moment to reach the publisher: until one
     * warm-up message comes through, sends may be dropped. */
    double end = sl_test_now() + 5;
    while (sl_harness_count(h) == 0) {
        cr_assert_lt(sl_test_now(), end, "no message came through");
        cr_assert_eq(zmq_send(pub, "keep", 4, ZMQ_SNDMORE), 4);
        s_send_str(pub, "{\"warm\":1}");
        cr_assert_eq(sl_harness_pull_all(h, 256, 1), -ETIMEDOUT);
    }
    cr_assert_eq(zmq_send(pub, "drop", 4, ZMQ_SNDMORE), 4);
    s_send_str(pub, "{\"n\":1}");
    cr_assert_eq(zmq_send(pub, "keep", 4, ZMQ_SNDMORE), 4);
    s_send_str(pub, "{\"n\":2}");
    cr_assert_eq(zmq_send(pub, "keep", 4, ZMQ_SNDMORE), 4);
    s_send_str(pub, "EOF");
    cr_assert_eq(sl_harness_pull_all(h, 256, 1000), 0);
    size_t n = sl_harness_count(h);
    for (size_t i = 0; i + 1 < n; i++)
        s_expect_out(h, i, "{\"warm\":1}");
    s_expect_out(h, n - 1, "{\"n\":2}");
    cr_assert_eq(sl_harness_errors(h), 0, "%s", sl_harness_last_error(h));
    sl_harness_destroy(&h);
}

Test(zmq_source, config_errors)
{
    const char *d = sl_test_dir();
    sl_test_refused("zmq_source", "bind: true", d,
                    "'endpoint' is required (tcp://HOST:PORT or ipc://PATH)");
    sl_test_refused("zmq_source", "endpoint: http://x:1", d,
                    "'endpoint' must be tcp://HOST:PORT or ipc://PATH, got "
                    "'http://x:1'");
    sl_test_refused("zmq_source", "endpoint: tcp://127.0.0.1:*\nbind: false",
                    d, "port '*' (any free port) works only with bind: true");
    sl_test_refused("zmq_source", "endpoint: tcp://127.0.0.1:70000", d,
                    "the port must be 1 to 65535 or '*'");
    sl_test_refused("zmq_source", "endpoint: tcp://:5", d,
                    "expected tcp://HOST:PORT");
    sl_test_refused("zmq_source", "endpoint: ipc://\n", d,
                    "the ipc path must have 1 to 107 bytes");
    sl_test_refused("zmq_source", "endpoint: ipc://x\nsocket: req", d,
                    "'socket' must be pull or sub, got 'req'");
    sl_test_refused("zmq_source", "endpoint: ipc://x\nsubscribe: [a]", d,
                    "'subscribe' applies to socket: sub only");
    sl_test_refused("zmq_source", "endpoint: ipc://x\nsocket: sub\n"
                    "subscribe: a", d, "'subscribe' must be a list");
    sl_test_refused("zmq_source", "endpoint: ipc://x\nformat: xml", d,
                    "'format' must be msgpack or json, got 'xml'");
    sl_test_refused("zmq_source", "endpoint: ipc://x\nrcvhwm: 0", d,
                    "'rcvhwm' must be 1 to 10000000 messages, got 0");
    sl_test_refused("zmq_source", "endpoint: ipc://x\nmax_message: 0", d,
                    "'max_message' must be 1 to 1073741824 bytes, got 0");
    sl_test_refused("zmq_source", "endpoint: ipc://x\nidle_timeout_ms: 0",
                    d, "'idle_timeout_ms' must be 1 to 86400000 ms, got 0");
    sl_test_refused("zmq_source", "endpoint: ipc://x\neof_on: [a]", d,
                    "'eof_on' must be a string");
    sl_test_refused("zmq_source", "endpoint: ipc://x\ntopic: a", d,
                    "unknown key 'topic'");
    /* What only binding can tell, at the endpoint's position. */
    void *taken = s_socket(ZMQ_PULL, "tcp://127.0.0.1:*", 1, 0);
    char ep[128], yaml[256];
    size_t len = sizeof(ep);
    cr_assert_eq(zmq_getsockopt(taken, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    snprintf(yaml, sizeof(yaml), "endpoint: %s", ep);
    char want[256];
    snprintf(want, sizeof(want), "config:1:11: zmq_source: cannot "
             "bind %s: Address already in use", ep);
    sl_test_refused("zmq_source", yaml, d, want);
}

/* ---- zmq_sink ------------------------------------------------------------ */

static sl_harness_t *s_sink(const char *fmt, ...) SL_PRINTF(1, 2);
static sl_harness_t *s_sink(const char *fmt, ...)
{
    char yaml[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(yaml, sizeof(yaml), fmt, ap);
    va_end(ap);
    return sl_test_harness("zmq_sink", yaml, sl_test_dir());
}

static void s_push(sl_harness_t *h, const char *json)
{
    cr_assert_eq(sl_harness_push_json(h, json), 0, "%s: %s", json,
                 sl_harness_last_error(h));
}

Test(zmq_sink, msgpack_records_exact)
{
    static const char *recs[] = {
        "{\"id\":1,\"s\":\"a\"}",
        "{\"neg\":-5,\"f\":0.25,\"big\":18446744073709551615}",
        "{\"a\":[null,true,{\"k\":[]}]}",
    };
    void *pull = s_socket(ZMQ_PULL, s_ep("out.sock"), 1, 0);
    sl_harness_t *h = s_sink("endpoint: %s", s_ep("out.sock"));
    for (int i = 0; i < 3; i++)
        s_push(h, recs[i]);
    for (int i = 0; i < 3; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        s_mp(&sb, recs[i]);
        s_expect_msg(pull, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    cr_assert_eq(sl_harness_flush(h), 0);
    s_expect_silence(pull);
    cr_assert_eq(sl_harness_count(h), 0, "a sink emits nothing");
    sl_harness_destroy(&h);
}

Test(zmq_sink, json_lines_exact)
{
    void *pull = s_socket(ZMQ_PULL, s_ep("out.sock"), 1, 0);
    sl_harness_t *h = s_sink("endpoint: %s\nformat: json",
                             s_ep("out.sock"));
    s_push(h, "{\"a\":1,\"s\":\"x\\ny\",\"f\":2.5,\"n\":null}");
    s_push(h, "{\"u\":18446744073709551615,\"m\":{\"k\":[true]}}");
    const char *w1 = "{\"a\":1,\"s\":\"x\\ny\",\"f\":2.5,\"n\":null}\n";
    const char *w2 = "{\"u\":18446744073709551615,\"m\":{\"k\":[true]}}\n";
    s_expect_msg(pull, w1, strlen(w1));
    s_expect_msg(pull, w2, strlen(w2));
    sl_harness_destroy(&h);
}

Test(zmq_sink, batch_sent_when_full_on_sync_and_on_flush)
{
    void *pull = s_socket(ZMQ_PULL, s_ep("out.sock"), 1, 0);
    sl_harness_t *h = s_sink("endpoint: %s\nformat: json\nbatch: 3",
                             s_ep("out.sock"));
    cr_assert_eq(sl_harness_sync(h), 0, "nothing to send is no error");
    s_expect_silence(pull);
    char rec[32];
    for (int i = 0; i < 5; i++) {
        snprintf(rec, sizeof(rec), "{\"i\":%d}", i);
        s_push(h, rec);
    }
    const char *full = "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n";
    s_expect_msg(pull, full, strlen(full));
    s_expect_silence(pull); /* 3 and 4 wait for more */
    cr_assert_eq(sl_harness_sync(h), 0);
    s_expect_msg(pull, "{\"i\":3}\n{\"i\":4}\n", 16);
    s_push(h, "{\"i\":5}");
    s_expect_silence(pull);
    cr_assert_eq(sl_harness_flush(h), 0);
    s_expect_msg(pull, "{\"i\":5}\n", 8);
    s_expect_silence(pull);
    sl_harness_destroy(&h);

    /* msgpack maps back to back, the batch left over at the end sent by
     * the flush. */
    h = s_sink("endpoint: %s\nbatch: 2", s_ep("out.sock"));
    s_push(h, "{\"i\":6}");
    s_push(h, "{\"i\":7}");
    s_push(h, "{\"i\":8}");
    s_expect_msg(pull, "\x81\xa1i\x06\x81\xa1i\x07", 8);
    cr_assert_eq(sl_harness_flush(h), 0);
    s_expect_msg(pull, "\x81\xa1i\x08", 4);
    sl_harness_destroy(&h);
}

/* Pushes json until it is accepted (a peer has just appeared), for at
 * most 10 s; returns the failed tries. */
static unsigned s_push_until_ok(sl_harness_t *h, const char *json)
{
    double end = sl_test_now() + 10;
    unsigned failed = 0;
    while (sl_harness_push_json(h, json) != 0) {
        failed++;
        cr_assert_lt(sl_test_now(), end, "never sent: %s",
                     sl_harness_last_error(h));
    }
    return failed;
}

/* With no peer yet, sndhwm messages wait in the socket's queue; the next
 * send times out and fails its record, which goes once a peer is there,
 * after the queued one. */
Test(zmq_sink, send_timeout_fails_the_record_then_it_goes_once)
{
    const char *ep = s_ep("out.sock");
    sl_harness_t *h = s_sink("endpoint: %s\nsndhwm: 1\nsend_timeout_ms: 100",
                             ep);
    s_push(h, "{\"id\":6}");
    double t0 = sl_test_now();
    cr_assert_eq(sl_harness_push_json(h, "{\"id\":7}"), -EINVAL);
    double took = sl_test_now() - t0;
    cr_assert_geq(took, 0.1, "gave up after %.3f s", took);
    cr_assert_lt(took, 2.0, "gave up after %.3f s", took);
    char want[600];
    snprintf(want, sizeof(want), "%s: no peer took the message within 100 "
             "ms (send_timeout_ms)", ep);
    cr_assert_str_eq(sl_harness_last_error(h), want);
    cr_assert_eq(sl_harness_errors(h), 1);

    void *pull = s_socket(ZMQ_PULL, ep, 1, 0);
    s_push_until_ok(h, "{\"id\":7}");
    s_expect_msg(pull, "\x81\xa2id\x06", 5);
    s_expect_msg(pull, "\x81\xa2id\x07", 5);
    cr_assert_eq(sl_harness_flush(h), 0);
    s_expect_silence(pull); /* the failed tries sent nothing */
    sl_harness_destroy(&h);
}

Test(zmq_sink, failed_record_is_not_left_in_the_batch)
{
    const char *ep = s_ep("out.sock");
    sl_harness_t *h = s_sink("endpoint: %s\nsndhwm: 1\nsend_timeout_ms: 50\n"
                             "batch: 2", ep);
    s_push(h, "{\"a\":1}"); /* buffered */
    s_push(h, "{\"a\":2}"); /* the batch waits in the socket's queue */
    s_push(h, "{\"a\":3}"); /* buffered */
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":4}"), -EINVAL);
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":4}"), -EINVAL);
    void *pull = s_socket(ZMQ_PULL, ep, 1, 0);
    s_push_until_ok(h, "{\"a\":4}");
    s_expect_msg(pull, "\x81\xa1" "a\x01\x81\xa1" "a\x02", 8);
    s_expect_msg(pull, "\x81\xa1" "a\x03\x81\xa1" "a\x04", 8);
    cr_assert_eq(sl_harness_flush(h), 0);
    s_expect_silence(pull);
    sl_harness_destroy(&h);
}

Test(zmq_sink, sync_and_flush_fail_while_a_partial_batch_cannot_go)
{
    sl_harness_t *h = s_sink("endpoint: %s\nsndhwm: 1\nsend_timeout_ms: 20\n"
                             "batch: 2", s_ep("out.sock"));
    s_push(h, "{\"a\":1}");
    s_push(h, "{\"a\":2}"); /* queued */
    s_push(h, "{\"a\":3}");
    cr_assert_eq(sl_harness_sync(h), -ETIMEDOUT);
    cr_assert_eq(sl_harness_flush(h), -ETIMEDOUT);
    /* Once a peer is there, the batch goes, once. */
    void *pull = s_socket(ZMQ_PULL, s_ep("out.sock"), 1, 0);
    double end = sl_test_now() + 10;
    while (sl_harness_flush(h) != 0)
        cr_assert_lt(sl_test_now(), end, "flush never succeeded");
    s_expect_msg(pull, "\x81\xa1" "a\x01\x81\xa1" "a\x02", 8);
    s_expect_msg(pull, "\x81\xa1" "a\x03", 4);
    s_expect_silence(pull);
    sl_harness_destroy(&h);
}

static void s_count_final(void *arg, const char *msg, int final,
                          const void *record, size_t len)
{
    (void)msg;
    (void)record;
    (void)len;
    *(int *)arg += final != 0;
}

/* Bytes that start like a map but are not one whole map (the host checks
 * only the first byte of what a stage emits) and a record nested past
 * limits.max_depth: failed for good, never sent, alone or in a batch,
 * while the records around them go as they are. */
Test(zmq_sink, malformed_msgpack_is_failed_for_good_not_sent)
{
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"\x81\xa1k\xc1", 4},                     /* a byte never used */
        {"\x82\xa1" "a\x01", 4},                   /* 2 pairs said, 1 there */
        {"\x81\xa1" "a\x01\x81\xa1" "b\x02", 8}, /* two maps as one */
        {"\xdf\xff\xff\xff\xff", 5},              /* 2^32-1 pairs said */
    };
    void *pull = s_socket(ZMQ_PULL, s_ep("out.sock"), 1, 0);
    for (int batch = 1; batch <= 2; batch++) {
        sl_harness_t *h = s_sink("endpoint: %s\nbatch: %d", s_ep("out.sock"),
                                 batch);
        int finals = 0;
        sl_harness_on_fail(h, s_count_final, &finals);
        s_push(h, "{\"i\":1}");
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            cr_assert_eq(sl_harness_push_msgpack(h, bad[i].bytes, bad[i].len),
                         -EINVAL, "batch %d, bad record %zu", batch, i);
            cr_assert_str_eq(sl_harness_last_error(h),
                             "record is not a msgpack map");
        }
        msgpack_sbuffer deep;
        msgpack_sbuffer_init(&deep);
        s_deep(&deep, 33);
        cr_assert_eq(sl_harness_push_msgpack(h, deep.data, deep.size),
                     -EMSGSIZE);
        cr_assert_str_eq(sl_harness_last_error(h),
                         "stage 'zmq_sink': record nested deeper than "
                         "limits.max_depth (32)");
        msgpack_sbuffer_destroy(&deep);
        s_push(h, "{\"i\":2}");
        cr_assert_eq(sl_harness_errors(h), 5);
        cr_assert_eq(finals, 5, "each one final: dead-lettered, no retry");
        if (batch == 1) {
            s_expect_msg(pull, "\x81\xa1i\x01", 4);
            s_expect_msg(pull, "\x81\xa1i\x02", 4);
        } else {
            s_expect_msg(pull, "\x81\xa1i\x01\x81\xa1i\x02", 8);
        }
        cr_assert_eq(sl_harness_flush(h), 0);
        s_expect_silence(pull);
        sl_harness_destroy(&h);
    }
}

/* Queued for a peer that never came: the flush closes the socket, the
 * linger runs out, and the flush fails instead of losing them quietly. */
Test(zmq_sink, flush_fails_when_queued_messages_never_leave)
{
    sl_harness_t *h = s_sink("endpoint: %s\nsend_timeout_ms: 150",
                             s_ep("out.sock"));
    s_push(h, "{\"a\":1}"); /* accepted into the socket's queue */
    double t0 = sl_test_now();
    cr_assert_eq(sl_harness_flush(h), -ETIMEDOUT);
    double took = sl_test_now() - t0;
    cr_assert_geq(took, 0.15, "closed after %.3f s", took);
    cr_assert_lt(took, 2.0, "closed after %.3f s", took);
    /* Closed: a record after the end fails rather than vanish. */
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":2}"), -EINVAL);
    sl_harness_destroy(&h);

    /* With the peer there, the same flush delivers and succeeds. */
    void *pull = s_socket(ZMQ_PULL, s_ep("out.sock"), 1, 0);
    h = s_sink("endpoint: %s\nsend_timeout_ms: 150", s_ep("out.sock"));
    s_push(h, "{\"a\":3}");
    cr_assert_eq(sl_harness_flush(h), 0);
    s_expect_msg(pull, "\x81\xa1" "a\x03", 4);
    sl_harness_destroy(&h);
}

/* PUB: a subscriber that stops reading makes sends fail after the timeout
 * instead of losing records; everything accepted arrives, in order. */
Test(zmq_sink, pub_refuses_rather_than_drops_for_a_slow_subscriber)
{
    void *sub = s_socket(ZMQ_SUB, s_ep("out.sock"), 1, 1);
    sl_harness_t *h = s_sink("endpoint: %s\nsocket: pub\nformat: json\n"
                             "sndhwm: 1\nsend_timeout_ms: 50",
                             s_ep("out.sock"));
    size_t len;
    char *got = NULL;
    double end = sl_test_now() + 5;
    /* Until the subscription arrives, PUB discards (and counts). */
    while (!got) {
        cr_assert_lt(sl_test_now(), end, "the subscription never came");
        s_push(h, "{\"warm\":1}");
        got = s_recv(sub, 0.01, &len);
    }
    free(got);
    char rec[64];
    unsigned sent = 0;
    for (;; sent++) {
        cr_assert_lt(sent, 2000000u, "the sends never blocked");
        snprintf(rec, sizeof(rec), "{\"i\":%u}", sent);
        if (sl_harness_push_json(h, rec) != 0)
            break;
    }
    char want[600];
    snprintf(want, sizeof(want), "%s: a subscriber did not keep up within "
             "50 ms (send_timeout_ms)", s_ep("out.sock"));
    cr_assert_str_eq(sl_harness_last_error(h), want);
    /* The subscriber reads again: every accepted record, in order. */
    unsigned next = 0;
    while (next < sent) {
        got = s_recv(sub, 5, &len);
        cr_assert_not_null(got, "%u of %u records came", next, sent);
        unsigned i;
        if (sscanf(got, "{\"i\":%u}\n", &i) == 1) {
            cr_assert_eq(i, next, "record %u came as number %u", i, next);
            next++;
        } else {
            cr_assert_str_eq(got, "{\"warm\":1}\n");
            cr_assert_eq(next, 0, "a warm-up after the records");
        }
        free(got);
    }
    /* The failed one goes through once there is room. */
    snprintf(rec, sizeof(rec), "{\"i\":%u}", sent);
    s_push_until_ok(h, rec);
    snprintf(rec, sizeof(rec), "{\"i\":%u}\n", sent);
    s_expect_msg(sub, rec, strlen(rec));
    s_expect_silence(sub);
    sl_harness_destroy(&h);
}

Test(zmq_sink, pub_without_subscriber_sends_into_the_void)
{
    sl_harness_t *h = s_sink("endpoint: %s\nsocket: pub\nbind: true\n"
                             "send_timeout_ms: 0", s_ep("pub.sock"));
    /* By PUB's design: accepted, discarded, and counted in the log. */
    for (int i = 0; i < 100; i++)
        s_push(h, "{\"a\":1}");
    cr_assert_eq(sl_harness_errors(h), 0);
    cr_assert_eq(sl_harness_flush(h), 0);
    sl_harness_destroy(&h);
}

Test(zmq_sink, config_errors)
{
    const char *d = sl_test_dir();
    sl_test_refused("zmq_sink", "batch: 2", d, "'endpoint' is required");
    sl_test_refused("zmq_sink", "endpoint: tcp://h:*", d,
                    "port '*' (any free port) works only with bind: true");
    sl_test_refused("zmq_sink", "endpoint: udp://h:1", d,
                    "'endpoint' must be tcp://HOST:PORT or ipc://PATH, got "
                    "'udp://h:1'");
    sl_test_refused("zmq_sink", "endpoint: ipc://x\nsocket: pull", d,
                    "'socket' must be push or pub, got 'pull'");
    sl_test_refused("zmq_sink", "endpoint: ipc://x\nformat: csv", d,
                    "'format' must be msgpack or json, got 'csv'");
    sl_test_refused("zmq_sink", "endpoint: ipc://x\nbatch: 0", d,
                    "'batch' must be 1 to 65536 records, got 0");
    sl_test_refused("zmq_sink", "endpoint: ipc://x\nsndhwm: 0", d,
                    "'sndhwm' must be 1 to 10000000 messages, got 0");
    sl_test_refused("zmq_sink", "endpoint: ipc://x\nsend_timeout_ms: -1", d,
                    "'send_timeout_ms' must be 0 to 3600000 ms, got -1");
    sl_test_refused("zmq_sink", "endpoint: ipc://x\nbind: maybe", d,
                    "bind");
    sl_test_refused("zmq_sink", "endpoint: ipc://x\nlinger: 1", d,
                    "unknown key 'linger'");
    void *taken = s_socket(ZMQ_PULL, "tcp://127.0.0.1:*", 1, 0);
    char ep[128], yaml[256], want[256];
    size_t len = sizeof(ep);
    cr_assert_eq(zmq_getsockopt(taken, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    snprintf(yaml, sizeof(yaml), "bind: true\nendpoint: %s", ep);
    snprintf(want, sizeof(want), "cannot bind %s: Address already in use",
             ep);
    sl_test_refused("zmq_sink", yaml, d, want);
}
