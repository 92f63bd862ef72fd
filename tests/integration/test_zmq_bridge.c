/* zmq_source -> fields -> zmq_sink through `sluice run`, with the test as
 * the external programs on both ends: 100k records sent in batches come
 * back each exactly once; two workers that connect share a sender's
 * records; a bind with two workers is refused. Backpressure: behind a slow
 * stage the sender's zmq_send blocks, and the run's memory stays bounded
 * while ten times what the queues hold goes through. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "testutil.h"

#include <errno.h>
#include <jansson.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_SOCKETS 4

static void *s_zctx;
static pid_t s_pid;
static void *s_socks[MAX_SOCKETS];
static pthread_t s_sender;
static int s_sender_running;

static void s_setup(void)
{
    sl_test_tmpdir_setup();
    s_zctx = zmq_ctx_new();
    cr_assert_not_null(s_zctx);
    s_pid = 0;
}

static void s_teardown(void)
{
    if (s_pid > 0) {
        kill(s_pid, SIGKILL);
        sl_test_wait_exit(s_pid, 10);
    }
    /* A test that failed halfway: a send still waiting returns ETERM. */
    zmq_ctx_shutdown(s_zctx);
    if (s_sender_running)
        pthread_join(s_sender, NULL);
    s_sender_running = 0;
    for (int i = 0; i < MAX_SOCKETS; i++) {
        if (s_socks[i])
            zmq_close(s_socks[i]);
        s_socks[i] = NULL;
    }
    zmq_ctx_term(s_zctx);
    sl_test_tmpdir_teardown();
}

TestSuite(zmq_bridge, .init = s_setup, .fini = s_teardown, .timeout = 120);

static char *s_path(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

static void *s_socket(int type, const char *ep, int bind, int hwm)
{
    void *s = zmq_socket(s_zctx, type);
    int zero = 0, i = 0;
    cr_assert_not_null(s);
    while (s_socks[i])
        i++;
    s_socks[i] = s;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    cr_assert_eq(bind ? zmq_bind(s, ep) : zmq_connect(s, ep), 0, "%s: %s",
                 ep, zmq_strerror(errno));
    return s;
}

static void s_start_sender(void *(*fn)(void *), void *arg)
{
    cr_assert_eq(pthread_create(&s_sender, NULL, fn, arg), 0);
    s_sender_running = 1;
}

static void s_join_sender(void)
{
    pthread_join(s_sender, NULL);
    s_sender_running = 0;
}

static void s_write_topology(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_write_topology(const char *name, const char *fmt, ...)
{
    char *text = NULL, *path = s_path(name);
    va_list ap;
    va_start(ap, fmt);
    cr_assert_gt(vasprintf(&text, fmt, ap), 0);
    va_end(ap);
    cr_assert_eq(sl_test_write_file(path, text), 0);
    free(text);
    free(path);
}

/* The report's entry for stage name. */
static json_t *s_stage(json_t *report, const char *name)
{
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(report, "stages"), i, st)
        if (!strcmp(json_string_value(json_object_get(st, "name")), name))
            return st;
    cr_assert_fail("no stage '%s' in the report", name);
    return NULL;
}

static json_int_t s_count(json_t *report, const char *stage,
                          const char *key)
{
    return json_integer_value(json_object_get(s_stage(report, stage), key));
}

static json_t *s_report(void)
{
    char *path = s_path("report.json");
    json_error_t err;
    json_t *r = json_load_file(path, 0, &err);
    cr_assert_not_null(r, "%s: %s", path, err.text);
    free(path);
    return r;
}

/* Waits for the run to end; asserts exit code want. */
static void s_wait_run(int want, double timeout_s)
{
    int code = sl_test_wait_exit(s_pid, timeout_s);
    char *log = s_path("run.log");
    char *text = sl_test_read_file(log, NULL);
    s_pid = 0;
    cr_assert_eq(code, want, "exit %d, log:\n%s", code, text);
    free(text);
    free(log);
}

/* ---- the sender ---------------------------------------------------------- */

typedef struct sender {
    char endpoint[512];
    unsigned records;     /* ids 0..records-1 */
    unsigned per_message; /* records per message */
    size_t pad;           /* bytes of padding per record */
    int hwm;
    int bind;
    /* results */
    unsigned accepted_before_block; /* messages sent before one blocked */
    int blocked;                    /* a non-blocking send found no room */
    double blocked_s;               /* time spent waiting for room */
    int failed;                     /* errno of a failed send, or 0 */
} sender_t;

/* Sends the records, per_message to a message, then "EOF". Each message
 * is tried without waiting first, to see when the receiving side has no
 * room left; then it waits. */
static void *s_sender_main(void *arg)
{
    sender_t *s = arg;
    void *sock = zmq_socket(s_zctx, ZMQ_PUSH);
    int linger = 10000;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char *pad = malloc(s->pad + 1);

    memset(pad, 'x', s->pad);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &s->hwm, sizeof(s->hwm));
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    if ((s->bind ? zmq_bind(sock, s->endpoint)
                 : zmq_connect(sock, s->endpoint)) != 0)
        s->failed = errno;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    unsigned messages = 0;
    for (unsigned id = 0; id < s->records && !s->failed;) {
        sb.size = 0;
        for (unsigned k = 0; k < s->per_message && id < s->records; k++) {
            msgpack_pack_map(&pk, s->pad ? 2 : 1);
            msgpack_pack_str_with_body(&pk, "id", 2);
            msgpack_pack_unsigned_int(&pk, id++);
            if (s->pad) {
                msgpack_pack_str_with_body(&pk, "pad", 3);
                msgpack_pack_str_with_body(&pk, pad, s->pad);
            }
        }
        if (zmq_send(sock, sb.data, sb.size, ZMQ_DONTWAIT) < 0) {
            if (errno != EAGAIN) {
                s->failed = errno;
                break;
            }
            if (!s->blocked)
                s->accepted_before_block = messages;
            s->blocked = 1;
            double t0 = sl_test_now();
            if (zmq_send(sock, sb.data, sb.size, 0) < 0)
                s->failed = errno;
            s->blocked_s += sl_test_now() - t0;
        }
        messages++;
    }
    if (!s->failed && zmq_send(sock, "EOF", 3, 0) < 0)
        s->failed = errno;
    zmq_close(sock);
    msgpack_sbuffer_destroy(&sb);
    free(pad);
    return NULL;
}

/* ---- the receiver -------------------------------------------------------- */

/* Receives messages of concatenated maps {"id": N, "via": "bridge"} until
 * n distinct ids came; asserts each id once and the field set. */
static void s_receive_all(void *pull, unsigned n, unsigned char *seen)
{
    msgpack_zone zone;
    unsigned got = 0;
    double end = sl_test_now() + 90;
    msgpack_zone_init(&zone, 4096);
    while (got < n) {
        zmq_pollitem_t it = {.socket = pull, .events = ZMQ_POLLIN};
        cr_assert_lt(sl_test_now(), end, "only %u of %u records came", got,
                     n);
        if (zmq_poll(&it, 1, 1000) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        cr_assert_geq(zmq_msg_recv(&m, pull, 0), 0);
        const char *p = zmq_msg_data(&m);
        size_t len = zmq_msg_size(&m), off = 0;
        while (off < len) {
            msgpack_object o;
            msgpack_unpack_return rc =
                msgpack_unpack(p, len, &off, &zone, &o);
            cr_assert(rc == MSGPACK_UNPACK_SUCCESS ||
                          rc == MSGPACK_UNPACK_EXTRA_BYTES,
                      "bad message at %zu", off);
            cr_assert_eq(o.type, MSGPACK_OBJECT_MAP);
            uint64_t id = UINT64_MAX;
            int via = 0;
            for (uint32_t i = 0; i < o.via.map.size; i++) {
                const msgpack_object_kv *kv = &o.via.map.ptr[i];
                if (kv->key.via.str.size == 2 &&
                    !memcmp(kv->key.via.str.ptr, "id", 2))
                    id = kv->val.via.u64;
                else if (kv->key.via.str.size == 3 &&
                         !memcmp(kv->key.via.str.ptr, "via", 3))
                    via = kv->val.type == MSGPACK_OBJECT_STR &&
                          kv->val.via.str.size == 6 &&
                          !memcmp(kv->val.via.str.ptr, "bridge", 6);
            }
            cr_assert_lt(id, n, "unknown id %llu", (unsigned long long)id);
            cr_assert_eq(seen[id], 0, "id %llu twice", (unsigned long long)id);
            cr_assert(via, "id %llu lacks via: bridge", (unsigned long long)id);
            seen[id] = 1;
            got++;
        }
        zmq_msg_close(&m);
        msgpack_zone_clear(&zone);
    }
    msgpack_zone_destroy(&zone);
}

static void s_expect_no_more(void *pull)
{
    zmq_pollitem_t it = {.socket = pull, .events = ZMQ_POLLIN};
    cr_assert_eq(zmq_poll(&it, 1, 200), 0, "a message after the last id");
}

Test(zmq_bridge, records_in_batches_come_back_exactly_once)
{
    const unsigned n = 100000;
    char in[512], out[512];
    snprintf(in, sizeof(in), "ipc://%s/in.sock", sl_test_dir());
    snprintf(out, sizeof(out), "ipc://%s/out.sock", sl_test_dir());
    s_write_topology("bridge.yaml",
                     "stages:\n"
                     "  - name: src\n"
                     "    plugin: zmq_source\n"
                     "    config: {endpoint: \"%s\", eof_on: EOF}\n"
                     "  - name: tag\n"
                     "    plugin: fields\n"
                     "    config: {set: {via: bridge}}\n"
                     "  - name: out\n"
                     "    plugin: zmq_sink\n"
                     "    config: {endpoint: \"%s\", batch: 64}\n",
                     in, out);
    void *pull = s_socket(ZMQ_PULL, out, 1, 1000);
    const char *args[] = {"run", "bridge.yaml", "--report", "report.json",
                          NULL};
    s_pid = sl_test_spawn_cli("run.log", args);

    sender_t snd = {.records = n, .per_message = 100, .hwm = 1000};
    snprintf(snd.endpoint, sizeof(snd.endpoint), "%s", in);
    s_start_sender(s_sender_main, &snd);
    unsigned char *seen = calloc(n, 1);
    s_receive_all(pull, n, seen);
    s_join_sender();
    cr_assert_eq(snd.failed, 0, "send: %s", zmq_strerror(snd.failed));
    s_wait_run(0, 60);
    s_expect_no_more(pull);

    json_t *r = s_report();
    cr_assert_eq(s_count(r, "src", "read"), n);
    cr_assert_eq(s_count(r, "src", "errors"), 0);
    cr_assert_eq(s_count(r, "out", "delivered"), n);
    cr_assert_eq(s_count(r, "out", "errors"), 0);
    cr_assert(json_is_true(json_object_get(r, "ledger_ok")));
    json_decref(r);
    free(seen);
}

/* bind: false with two workers: each connects to the sender, which hands
 * its messages out between them; every record still comes once. */
Test(zmq_bridge, two_connecting_workers_share_a_sender)
{
    const unsigned n = 20000;
    char in[512], out[512];
    snprintf(in, sizeof(in), "ipc://%s/in.sock", sl_test_dir());
    snprintf(out, sizeof(out), "ipc://%s/out.sock", sl_test_dir());
    s_write_topology("two.yaml",
                     "stages:\n"
                     "  - name: src\n"
                     "    plugin: zmq_source\n"
                     "    workers: 2\n"
                     "    config: {endpoint: \"%s\", bind: false,\n"
                     "             eof_on: EOF, idle_timeout_ms: 1000}\n"
                     "  - name: tag\n"
                     "    plugin: fields\n"
                     "    config: {set: {via: bridge}}\n"
                     "  - name: out\n"
                     "    plugin: zmq_sink\n"
                     "    config: {endpoint: \"%s\", batch: 16}\n",
                     in, out);
    void *pull = s_socket(ZMQ_PULL, out, 1, 1000);
    sender_t snd = {.records = n, .per_message = 50, .hwm = 1000,
                    .bind = 1};
    snprintf(snd.endpoint, sizeof(snd.endpoint), "%s", in);
    s_start_sender(s_sender_main, &snd);
    const char *args[] = {"run", "two.yaml", "--report", "report.json",
                          NULL};
    s_pid = sl_test_spawn_cli("run.log", args);
    unsigned char *seen = calloc(n, 1);
    s_receive_all(pull, n, seen);
    s_join_sender();
    cr_assert_eq(snd.failed, 0, "send: %s", zmq_strerror(snd.failed));
    s_wait_run(0, 60);
    s_expect_no_more(pull);
    json_t *r = s_report();
    /* One worker ended at "EOF", the other when it went idle. */
    cr_assert_eq(s_count(r, "src", "read"), n);
    cr_assert_eq(s_count(r, "src", "errors"), 0);
    cr_assert_eq(s_count(r, "out", "delivered"), n);
    json_decref(r);
    free(seen);
}

Test(zmq_bridge, binding_with_two_workers_is_refused)
{
    s_write_topology("bad.yaml",
                     "stages:\n"
                     "  - name: src\n"
                     "    plugin: zmq_source\n"
                     "    workers: 2\n"
                     "    config: {endpoint: \"ipc://%s/in.sock\"}\n"
                     "  - name: out\n"
                     "    plugin: null\n",
                     sl_test_dir());
    char *topo = s_path("bad.yaml"), *cmd = NULL, *log = NULL;
    cr_assert_gt(asprintf(&cmd, "'%s' run '%s' 2>&1", sl_test_cli(), topo),
                 0);
    int code = sl_test_run(cmd, &log);
    cr_assert_neq(code, 0, "%s", log);
    cr_assert_not_null(strstr(log, "with bind: true only one of the stage's "
                                   "2 workers can bind ipc://"),
                       "%s", log);
    free(log);
    free(cmd);
    free(topo);
}

/* VmRSS of pid in bytes, or -1 once it is gone. */
static long s_rss(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    char *text = sl_test_read_file(path, NULL);
    const char *line = text ? strstr(text, "VmRSS:") : NULL;
    long kb = line ? strtol(line + 6, NULL, 10) : -1;
    free(text);
    return kb < 0 ? -1 : kb * 1024;
}

/* Behind a stage that takes 0.5 ms per record, the sender's zmq_send
 * blocks once the queues (socket and stages) are full, long before it has
 * sent everything, and the run's memory stays well under what went
 * through it: ten times what the queues hold, 64 MiB in all. */
Test(zmq_bridge, slow_stage_blocks_the_sender_and_memory_stays_bounded)
{
    const unsigned n = 4000, per_message = 10;
    const size_t pad = 16 * 1024;
    char in[512];
    snprintf(in, sizeof(in), "ipc://%s/in.sock", sl_test_dir());
    /* What the run can hold: 3 stages x 64 records, 4 messages of 10 in
     * the socket: 232 records, 3.6 MiB. */
    s_write_topology("slow.yaml",
                     "defaults: {queue: 64, batch: 16}\n"
                     "stages:\n"
                     "  - name: src\n"
                     "    plugin: zmq_source\n"
                     "    config: {endpoint: \"%s\", eof_on: EOF, "
                     "rcvhwm: 4}\n"
                     "  - name: slow\n"
                     "    plugin: delay\n"
                     "    config: {ms: 0.5}\n"
                     "  - name: out\n"
                     "    plugin: null\n",
                     in);
#if defined(__SANITIZE_ADDRESS__)
    /* Freed blocks wait in ASan's quarantine (256 MiB by default), which
     * would read as growth; keep it small for the run. */
    const char *old = getenv("ASAN_OPTIONS");
    char opts[1024];
    snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=4", old ? old : "",
             old && *old ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
#endif
    const char *args[] = {"run", "slow.yaml", "--report", "report.json",
                          NULL};
    s_pid = sl_test_spawn_cli("run.log", args);
    /* The run is up once its socket is bound. */
    char *sock = s_path("in.sock");
    struct stat sb;
    double end = sl_test_now() + 20;
    while (stat(sock, &sb) != 0) {
        cr_assert_lt(sl_test_now(), end, "the source never bound");
        struct timespec tick = {0, 5 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    free(sock);
    long base = s_rss(s_pid), peak = base;
    cr_assert_gt(base, 0);

    sender_t snd = {.records = n, .per_message = per_message, .pad = pad,
                    .hwm = 4};
    snprintf(snd.endpoint, sizeof(snd.endpoint), "%s", in);
    s_start_sender(s_sender_main, &snd);
    /* Sample until the run ends (after the sender's EOF). */
    int status;
    while (waitpid(s_pid, &status, WNOHANG) != s_pid) {
        long rss = s_rss(s_pid); /* -1 once it is a zombie */
        if (rss > peak)
            peak = rss;
        cr_assert_lt(sl_test_now(), end + 60, "the run did not end");
        struct timespec tick = {0, 10 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    s_pid = 0;
    char *log = s_path("run.log");
    char *text = sl_test_read_file(log, NULL);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the run failed:\n%s", text);
    free(text);
    free(log);
    s_join_sender();
    cr_assert_eq(snd.failed, 0, "send: %s", zmq_strerror(snd.failed));
    cr_assert(snd.blocked, "the sender never had to wait");
    /* Blocked with at most the socket's share and the kernel's buffers
     * taken: well under a fifth of the 400 messages. */
    cr_assert_lt(snd.accepted_before_block, 80, "%u messages went before "
                 "the first block", snd.accepted_before_block);
    cr_assert_gt(snd.blocked_s, 0.5, "waited only %.3f s", snd.blocked_s);
    double grew = (double)(peak - base) / (1024.0 * 1024.0);
    cr_assert_lt(grew, 24.0, "RSS grew by %.1f MiB (from %.1f MiB) while "
                 "64 MiB went through", grew, base / (1024.0 * 1024.0));
    cr_log_info("sender waited %.2f s after %u messages; RSS %.1f -> %.1f "
                "MiB", snd.blocked_s, snd.accepted_before_block,
                base / (1024.0 * 1024.0), peak / (1024.0 * 1024.0));

    json_t *r = s_report();
    cr_assert_eq(s_count(r, "src", "read"), n);
    cr_assert_eq(s_count(r, "out", "delivered"), n);
    json_decref(r);
}
