/* Taps on a running run (POST /tap, DELETE /tap/ID on the metrics port):
 * the recorder gets the header, exactly the records that crossed the link,
 * and the end message; bad requests are answered with the reason. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <msgpack.h>
#include <zmq.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(tap, .init = sl_test_tmpdir_setup, .fini = sl_test_tmpdir_teardown,
          .timeout = 120);

/* gen -> keep (country US: seq % 8 == 0) -> sink, paced so that a tap attached after
 * the start still sees most of the run. */
static char *s_topology(unsigned count, unsigned rate)
{
    char *path = NULL, *yaml = NULL;
    cr_assert_gt(asprintf(&path, "%s/t.yaml", sl_test_dir()), 0);
    cr_assert_gt(asprintf(&yaml,
                          "name: tapped\n"
                          "stages:\n"
                          "  - name: gen\n"
                          "    plugin: generator\n"
                          "    config: {count: %u, rate: %u}\n"
                          "  - name: keep\n"
                          "    plugin: filter\n"
                          "    from: gen\n"
                          "    config: {expr: 'country == \"US\"'}\n"
                          "  - name: sink\n"
                          "    plugin: \"null\"\n"
                          "    from: keep\n",
                          count, rate),
                 0);
    cr_assert_eq(sl_test_write_file(path, yaml), 0);
    free(yaml);
    return path;
}

typedef struct s_recorder {
    void *ctx, *sock;
    char endpoint[128];
} s_recorder_t;

static void s_recorder_open(s_recorder_t *r)
{
    r->ctx = zmq_ctx_new();
    r->sock = zmq_socket(r->ctx, ZMQ_PULL);
    int timeout = 20000;
    zmq_setsockopt(r->sock, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    cr_assert_eq(zmq_bind(r->sock, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof(r->endpoint);
    cr_assert_eq(zmq_getsockopt(r->sock, ZMQ_LAST_ENDPOINT, r->endpoint,
                                &len), 0);
}

static void s_recorder_close(s_recorder_t *r)
{
    zmq_close(r->sock);
    zmq_ctx_term(r->ctx);
}

/* The next message, unpacked as a sequence of objects into *objs (zone
 * owned by the caller). Returns how many. */
static size_t s_recv(s_recorder_t *r, msgpack_zone *zone,
                     msgpack_object *objs, size_t max)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    cr_assert_geq(zmq_msg_recv(&m, r->sock, 0), 0, "no tap message: %s",
                  zmq_strerror(errno));
    size_t off = 0, n = 0, len = zmq_msg_size(&m);
    char *copy = msgpack_zone_malloc(zone, len ? len : 1);
    memcpy(copy, zmq_msg_data(&m), len);
    zmq_msg_close(&m);
    while (off < len) {
        cr_assert_lt(n, max);
        msgpack_unpack_return ur =
            msgpack_unpack(copy, len, &off, zone, &objs[n]);
        cr_assert(ur == MSGPACK_UNPACK_SUCCESS ||
                      ur == MSGPACK_UNPACK_EXTRA_BYTES,
                  "bad tap message");
        n++;
    }
    return n;
}

static const msgpack_object *s_get(const msgpack_object *map, const char *k)
{
    cr_assert_eq(map->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR &&
            kv->key.via.str.size == strlen(k) &&
            memcmp(kv->key.via.str.ptr, k, kv->key.via.str.size) == 0)
            return &kv->val;
    }
    return NULL;
}

static unsigned s_start(const char *topo, const char *log, pid_t *pid)
{
    const char *args[] = {"run", topo, "--metrics", "127.0.0.1:0",
                          "--metrics-linger", "60", NULL};
    *pid = sl_test_spawn_cli(log, args);
    char *text = sl_test_wait_log(log, "metrics on http://", 30);
    unsigned port = sl_test_metrics_port(text, "127.0.0.1");
    free(text);
    return port;
}

/* A tap from attach to the end of the run gets every record that crossed
 * the link after it was attached, once, in order, and the end message. */
Test(tap, records_a_link_to_the_end)
{
    char *topo = s_topology(6000, 4000);
    pid_t pid;
    unsigned port = s_start(topo, "run.log", &pid);
    s_recorder_t rec;
    s_recorder_open(&rec);
    char path[512];
    snprintf(path, sizeof(path), "/tap?link=keep%%3Esink&endpoint=%s",
             rec.endpoint);
    sl_test_http_t h = sl_test_http(port, "POST", path);
    cr_assert_eq(h.status, 201, "%s\n%s", h.head, h.body);
    cr_assert_str_eq(h.body, "1\n");
    sl_test_http_free(&h);

    msgpack_zone zone;
    msgpack_zone_init(&zone, 1 << 16);
    static msgpack_object objs[8192];
    size_t n = s_recv(&rec, &zone, objs, 8192);
    cr_assert_eq(n, 1);
    cr_assert_eq(s_get(&objs[0], "tap")->via.u64, 1);
    const msgpack_object *link = s_get(&objs[0], "link");
    cr_assert_eq(link->via.str.size, 9);
    cr_assert_eq(memcmp(link->via.str.ptr, "keep>sink", 9), 0);

    uint64_t records = 0, first = UINT64_MAX, last = 0, prev_ns = 0;
    for (;;) {
        msgpack_zone_clear(&zone);
        n = s_recv(&rec, &zone, objs, 8192);
        if (objs[0].type == MSGPACK_OBJECT_MAP) {
            cr_assert_eq(n, 1);
            cr_assert_not_null(s_get(&objs[0], "end"));
            cr_assert_eq(s_get(&objs[0], "dropped")->via.u64, 0);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(objs[i].type, MSGPACK_OBJECT_ARRAY);
            cr_assert_eq(objs[i].via.array.size, 2);
            uint64_t ns = objs[i].via.array.ptr[0].via.u64;
            cr_assert_geq(ns, prev_ns);
            prev_ns = ns;
            uint64_t seq = s_get(&objs[i].via.array.ptr[1], "seq")->via.u64;
            cr_assert_eq(seq % 8, 0, "seq %llu crossed keep>sink",
                         (unsigned long long)seq);
            if (first == UINT64_MAX)
                first = seq;
            else
                cr_assert_eq(seq, last + 8, "seq %llu after %llu",
                             (unsigned long long)seq,
                             (unsigned long long)last);
            last = seq;
            records++;
        }
    }
    msgpack_zone_destroy(&zone);
    /* The tap saw the rest of the run without a gap, up to the last even
     * record, and most of it (the run lasts 1.5 s at this rate). */
    cr_assert_eq(last, 5992);
    cr_assert_eq(records, (last - first) / 8 + 1);
    cr_assert_gt(records, 250, "only %llu records", (unsigned long long)records);
    s_recorder_close(&rec);

    /* After the run, a new tap is refused with the reason. */
    char *text = sl_test_wait_log("run.log", "metrics stay on", 30);
    free(text);
    h = sl_test_http(port, "POST", path);
    cr_assert_eq(h.status, 409, "%s", h.head);
    cr_assert_str_eq(h.body, "the run has ended\n");
    sl_test_http_free(&h);
    kill(pid, SIGTERM);
    cr_assert_eq(sl_test_wait_exit(pid, 30), 0);
    free(topo);
}

/* DELETE ends a tap at once, with its end message; errors name the
 * problem. */
Test(tap, delete_and_bad_requests)
{
    char *topo = s_topology(1000000, 2000);
    pid_t pid;
    unsigned port = s_start(topo, "run.log", &pid);
    s_recorder_t rec;
    s_recorder_open(&rec);
    char path[512];
    snprintf(path, sizeof(path), "/tap?link=gen%%3E&endpoint=%s",
             rec.endpoint);
    sl_test_http_t h = sl_test_http(port, "POST", path);
    cr_assert_eq(h.status, 201, "%s", h.body);
    sl_test_http_free(&h);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1 << 16);
    static msgpack_object objs[8192];
    cr_assert_eq(s_recv(&rec, &zone, objs, 8192), 1); /* header */
    msgpack_zone_clear(&zone);
    cr_assert_geq(s_recv(&rec, &zone, objs, 8192), 1); /* records flow */
    cr_assert_eq(objs[0].type, MSGPACK_OBJECT_ARRAY);

    h = sl_test_http(port, "DELETE", "/tap/1");
    cr_assert_eq(h.status, 200, "%s", h.body);
    sl_test_http_free(&h);
    for (;;) {
        msgpack_zone_clear(&zone);
        size_t n = s_recv(&rec, &zone, objs, 8192);
        if (objs[0].type == MSGPACK_OBJECT_MAP) {
            cr_assert_eq(n, 1);
            cr_assert_not_null(s_get(&objs[0], "end"));
            break;
        }
    }
    msgpack_zone_destroy(&zone);
    s_recorder_close(&rec);

    static const struct {
        const char *method, *path;
        int status;
        const char *body;
    } bad[] = {
        {"DELETE", "/tap/1", 404, "no such tap\n"},
        {"DELETE", "/tap/x", 400, "want DELETE /tap/ID\n"},
        {"POST", "/tap?link=gen%3Esink&endpoint=tcp://127.0.0.1:9", 404,
         "link 'gen>sink': 'gen' does not send to 'sink'\n"},
        {"POST", "/tap?link=nope%3E&endpoint=tcp://127.0.0.1:9", 404,
         "link 'nope>': no stage 'nope'\n"},
        {"POST", "/tap?link=sink%3E&endpoint=tcp://127.0.0.1:9", 404,
         "link 'sink>': 'sink' sends to no stage\n"},
        {"POST", "/tap?link=gen&endpoint=tcp://127.0.0.1:9", 400,
         "link 'gen': want A>B, A> or >B\n"},
        {"POST", "/tap?link=gen%3E&endpoint=nonsense", 400,
         "endpoint 'nonsense': Invalid argument\n"},
        {"POST", "/tap?link=gen%3E", 400,
         "want POST /tap?link=A>B&endpoint=ZMQ_ENDPOINT\n"},
        {"GET", "/tap", 405, "method not allowed: POST /tap, DELETE /tap/ID\n"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        h = sl_test_http(port, bad[i].method, bad[i].path);
        cr_expect_eq(h.status, bad[i].status, "%s %s: %d", bad[i].method,
                     bad[i].path, h.status);
        cr_expect_str_eq(h.body, bad[i].body, "%s %s", bad[i].method,
                         bad[i].path);
        if (bad[i].status == 405)
            cr_expect_not_null(strstr(h.head, "\r\nAllow: POST, DELETE"),
                               "%s", h.head);
        sl_test_http_free(&h);
    }
    kill(pid, SIGKILL);
    sl_test_wait_exit(pid, 30);
    free(topo);
}
