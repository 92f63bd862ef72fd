/*
 * raw_zmq: the hand-written reference that the sluice pipeline benchmark is
 * measured against. Three threads joined by PUSH/PULL sockets do the work of
 * bench/pipeline.yaml with nothing in between:
 *
 *   gen   encodes N ~98-byte msgpack maps (byte for byte the generator
 *         stage's default record, timestamp included) and sends them,
 *         `batch` records per ZeroMQ message;
 *   xform decodes each record (msgpack_unpack into a reused zone), sets one
 *         field to a constant and re-encodes it (msgpack_pack_object);
 *   sink  counts records without decoding them (like the null sink).
 *
 * A message is a run of [u32 length][msgpack bytes] frames; an empty
 * message ends the stream. The sink checks the record and byte counts
 * against what gen produced, so a fast but wrong run cannot pass.
 *
 * --transport inproc (the default) joins the threads in memory; ipc joins
 * them over abstract unix sockets (ipc://@raw-zmq-PID-a and -b, so nothing
 * is left on disk), through ZeroMQ's I/O threads and the kernel. With
 * --transform-process (implies ipc) xform runs in a child process forked
 * before anything ZeroMQ exists, with its own context: the shape of a
 * sluice process lane, which the benchmark compares it with.
 *
 * --transport tcp is the shape of a topology split across two nodes: gen
 * and sink only (no transform), gen in this process and sink in a child
 * forked before anything ZeroMQ exists, joined by one PUSH/PULL link over
 * tcp on 127.0.0.1 (a port the kernel picks). The sink binds and the gen
 * connects, as a consumer's node binds and a producer's node connects.
 * With --curve the link is CurveZMQ-encrypted: the sink is the CURVE
 * server with a key pair made at start, gen a client with a key pair of
 * its own that knows the server's public key. There is no ZAP handler: it
 * would be asked once per connection, never per message.
 *
 * Output (stdout, one line, machine-readable):
 *   raw batch=B records=N seconds=S rate=R send=copy|zc bytes_per_record=X
 *       transport=inproc|ipc|tcp xform=thread|process|none [curve=yes|no]
 * (curve= over tcp only) and on stderr the CPU seconds each thread used
 * (plus, over ipc and tcp, ZeroMQ's I/O threads). Exit 1 if the counts do
 * not match or the transform or sink process failed, 2 on a usage or
 * setup error.
 */
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define FIELD_TO_SET "country"
#define FIELD_VALUE "XX"

typedef struct opts {
    uint64_t count;
    unsigned batch;
    int zerocopy; /* zmq_msg_init_data on a fresh buffer vs zmq_send copy */
    int hwm;      /* 0 keeps libzmq's default */
    int ipc;      /* ipc:// instead of inproc:// */
    int xf_process; /* xform in a child process (implies ipc) */
    int tcp;        /* gen -> sink over tcp, sink in a child process */
    int curve;      /* CURVE on the tcp link */
} opts_t;

/* A growable byte buffer the msgpack packer writes into. Kept instead of
 * msgpack_sbuffer so that the zero-copy mode can size each allocation to
 * the batch rather than sbuffer's 8 KiB first step. */
typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

/* What the transform side reports, written before its EOF. In shared
 * memory when it is a process, read by the parent once it has exited. */
typedef struct xf_result {
    uint64_t records;
    uint64_t bytes;
    int rc;
    double cpu;    /* seconds of CPU its thread used */
    double io_cpu; /* the rest of its process (ZeroMQ's I/O thread) */
} xf_result_t;

typedef struct shared {
    opts_t o;
    void *gen_out, *xf_in, *xf_out, *sink_in;
    uint64_t gen_bytes; /* written by gen before its EOF */
    double gen_cpu;     /* seconds of CPU gen's thread used */
    xf_result_t *xf;
} shared_t;

static void die(const char *what)
{
    fprintf(stderr, "raw_zmq: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(2);
}

static int buf_reserve(buf_t *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

static __attribute__((noinline)) int buf_write_slow(buf_t *b, const char *src,
                                                    size_t len)
{
    if (buf_reserve(b, len) < 0)
        return -1;
    memcpy(b->data + b->len, src, len);
    b->len += len;
    return 0;
}

/* The packer calls this once per tag and per scalar, mostly with 1-9
 * bytes, ~20 times per record: a leaf function whose short copies are two
 * overlapping fixed-size moves halves the cost of packing compared with a
 * plain memcpy call. */
static int buf_write(void *data, const char *src, size_t len)
{
    buf_t *b = data;
    if (__builtin_expect(b->cap - b->len < len, 0))
        return buf_write_slow(b, src, len);
    char *dst = b->data + b->len;
    b->len += len;
    if (len >= 4 && len <= 8) {
        memcpy(dst, src, 4);
        memcpy(dst + len - 4, src + len - 4, 4);
    } else if (len > 8 && len <= 16) {
        memcpy(dst, src, 8);
        memcpy(dst + len - 8, src + len - 8, 8);
    } else if (len > 16) {
        memcpy(dst, src, len);
    } else if (len >= 2) {
        memcpy(dst, src, 2);
        memcpy(dst + len - 2, src + len - 2, 2);
    } else if (len == 1) {
        *dst = *src;
    }
    return 0;
}

/* Starts a frame: leaves room for the length, returns where data begins. */
static size_t frame_open(buf_t *b)
{
    static const char zero[4];
    if (buf_write(b, zero, sizeof zero) < 0)
        die("malloc");
    return b->len;
}

static void frame_close(buf_t *b, size_t start)
{
    uint32_t n = (uint32_t)(b->len - start);
    memcpy(b->data + start - 4, &n, 4);
}

static uint64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* The sink process over tcp, 0 otherwise. gen's socket then has a send
 * timeout, and a send that times out looks whether that process is still
 * there: a PUSH without a peer would block for ever. */
static pid_t s_watched;

/* Called when a send timed out (errno EAGAIN); returns to retry. */
static void send_blocked(const char *what)
{
    int status = 0;
    if (zmq_errno() != EAGAIN || s_watched <= 0)
        die(what);
    pid_t got = waitpid(s_watched, &status, WNOHANG);
    if (got == 0)
        return;
    int sig = got == s_watched && WIFSIGNALED(status);
    fprintf(stderr, "raw_zmq: CHECK FAILED: the sink process ended (%s %d) "
                    "before the end of stream was sent\n",
            sig ? "signal" : "status",
            sig ? WTERMSIG(status)
                : got == s_watched && WIFEXITED(status) ? WEXITSTATUS(status)
                                                        : -1);
    _exit(1);
}

/* Sends b's contents and leaves b empty and ready for the next batch. */
static void send_buf(void *sock, buf_t *b, const opts_t *o)
{
    if (!o->zerocopy) {
        while (zmq_send(sock, b->data, b->len, 0) < 0)
            send_blocked("zmq_send");
        b->len = 0;
        return;
    }
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, b->data, b->len, free_buf, NULL) < 0)
        die("zmq_msg_init_data");
    while (zmq_msg_send(&m, sock, 0) < 0)
        send_blocked("zmq_msg_send");
    size_t cap = b->cap;
    b->data = NULL;
    b->len = b->cap = 0;
    if (buf_reserve(b, cap) < 0)
        die("malloc");
}

static void send_eof(void *sock)
{
    while (zmq_send(sock, "", 0, 0) < 0)
        send_blocked("zmq_send eof");
}

static uint8_t *put_be(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = bytes; i-- > 0; v >>= 8)
        p[i] = (uint8_t)v;
    return p + bytes;
}

static uint8_t *put_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (uint8_t)v;
        return p;
    }
    if (v <= 0xff) {
        *p++ = 0xcc;
        return put_be(p, v, 1);
    }
    if (v <= 0xffff) {
        *p++ = 0xcd;
        return put_be(p, v, 2);
    }
    if (v <= 0xffffffffu) {
        *p++ = 0xce;
        return put_be(p, v, 4);
    }
    *p++ = 0xcf;
    return put_be(p, v, 8);
}

/* Copies a string literal without its NUL; evaluates to the end. */
#define PUT_LIT(p, lit)                                                        \
    (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)
#define RECORD_MAX 128

/* The generator stage's default record, byte for byte (stages/generator:
 * same keys, order, value formulas and encodings), written directly rather
 * than through msgpack_pack_*: a hand-written producer would do this, and
 * so does the generator. Needs RECORD_MAX bytes at out. */
static size_t encode_record(uint8_t *out, uint64_t seq, uint64_t ts)
{
    static const char countries[8][3] = {"US", "DE", "FR", "GB",
                                         "JP", "BR", "IN", "CA"};
    uint8_t *p = out;
    char digits[4];
    unsigned u = (unsigned)(seq % 1000), nd = 0;

    p = PUT_LIT(p, "\x86\xa3seq");
    p = put_uint(p, seq);
    p = PUT_LIT(p, "\xa2ts");
    p = put_uint(p, ts);
    p = PUT_LIT(p, "\xa4user");
    do {
        digits[nd++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    *p++ = (uint8_t)(0xa0 | (5 + nd));
    p = PUT_LIT(p, "user-");
    while (nd)
        *p++ = (uint8_t)digits[--nd];
    p = PUT_LIT(p, "\xa6" "amount\xcb");
    double amount = (double)((seq * 7919u) % 100000u) / 100.0;
    uint64_t bits;
    memcpy(&bits, &amount, sizeof bits);
    p = put_be(p, bits, 8);
    p = PUT_LIT(p, "\xa7" "country\xa2");
    memcpy(p, countries[seq % 8], 2);
    p += 2;
    p = PUT_LIT(p, "\xa3msg\xbe" "the quick brown fox jumps over");
    return (size_t)(p - out);
}

static size_t batch_cap(const opts_t *o)
{
    return (size_t)o->batch * (4 + RECORD_MAX);
}

static void *gen_main(void *arg)
{
    shared_t *sh = arg;
    const opts_t *o = &sh->o;
    buf_t b = {0};
    uint64_t bytes = 0;
    unsigned in_batch = 0;

    if (buf_reserve(&b, batch_cap(o)) < 0)
        die("malloc");
    for (uint64_t n = 0; n < o->count; n++) {
        if (buf_reserve(&b, 4 + RECORD_MAX) < 0)
            die("malloc");
        uint32_t len = (uint32_t)encode_record(
            (uint8_t *)b.data + b.len + 4, n, now_ns(CLOCK_REALTIME));
        memcpy(b.data + b.len, &len, 4);
        b.len += 4 + (size_t)len;
        bytes += len;
        if (++in_batch == o->batch) {
            send_buf(sh->gen_out, &b, o);
            in_batch = 0;
        }
    }
    if (in_batch)
        send_buf(sh->gen_out, &b, o);
    sh->gen_bytes = bytes;
    sh->gen_cpu = (double)now_ns(CLOCK_THREAD_CPUTIME_ID) / 1e9;
    send_eof(sh->gen_out);
    free(b.data);
    return NULL;
}

/* Points the value under key at a constant string. The object's strings
 * reference the input message, which outlives the re-encode. */
static int set_field(msgpack_object *map, const char *key, const char *val)
{
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR &&
            kv->key.via.str.size == klen &&
            memcmp(kv->key.via.str.ptr, key, klen) == 0) {
            kv->val.type = MSGPACK_OBJECT_STR;
            kv->val.via.str.ptr = val;
            kv->val.via.str.size = (uint32_t)strlen(val);
            return 0;
        }
    }
    return -ENOENT;
}

static void *xform_main(void *arg)
{
    shared_t *sh = arg;
    const opts_t *o = &sh->o;
    buf_t b = {0};
    msgpack_packer pk;
    msgpack_zone zone;
    zmq_msg_t in;
    uint64_t records = 0, bytes = 0;

    if (buf_reserve(&b, batch_cap(o)) < 0 ||
        !msgpack_zone_init(&zone, MSGPACK_ZONE_CHUNK_SIZE))
        die("malloc");
    msgpack_packer_init(&pk, &b, buf_write);
    zmq_msg_init(&in);
    for (;;) {
        if (zmq_msg_recv(&in, sh->xf_in, 0) < 0)
            die("zmq_msg_recv xform");
        const char *p = zmq_msg_data(&in);
        size_t n = zmq_msg_size(&in), off = 0;
        if (n == 0)
            break;
        while (off + 4 <= n) {
            uint32_t len;
            memcpy(&len, p + off, 4);
            off += 4;
            if (len > n - off) {
                fprintf(stderr, "raw_zmq: xform: truncated frame\n");
                sh->xf->rc = -EBADMSG;
                goto done;
            }
            msgpack_object obj;
            size_t used = 0;
            msgpack_zone_clear(&zone);
            if (msgpack_unpack(p + off, len, &used, &zone, &obj) !=
                    MSGPACK_UNPACK_SUCCESS ||
                used != len || obj.type != MSGPACK_OBJECT_MAP ||
                set_field(&obj, FIELD_TO_SET, FIELD_VALUE) < 0) {
                fprintf(stderr, "raw_zmq: xform: bad record %" PRIu64 "\n",
                        records);
                sh->xf->rc = -EBADMSG;
                goto done;
            }
            off += len;
            size_t start = frame_open(&b);
            if (msgpack_pack_object(&pk, obj) != 0)
                die("malloc");
            frame_close(&b, start);
            bytes += b.len - start;
            records++;
        }
        send_buf(sh->xf_out, &b, o);
    }
done:
    sh->xf->records = records;
    sh->xf->bytes = bytes;
    sh->xf->cpu = (double)now_ns(CLOCK_THREAD_CPUTIME_ID) / 1e9;
    send_eof(sh->xf_out);
    zmq_msg_close(&in);
    msgpack_zone_destroy(&zone);
    free(b.data);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: raw_zmq [--count N] [--batch B] [--send copy|zc] "
            "[--hwm H]\n"
            "               [--transport inproc|ipc|tcp] [--transform-process] "
            "[--curve]\n");
    exit(2);
}

static opts_t parse_opts(int argc, char **argv)
{
    opts_t o = {.count = 5000000, .batch = 64, .zerocopy = 0, .hwm = 0};
    int inproc_asked = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (strcmp(a, "--transform-process") == 0) {
            o.xf_process = 1;
            continue;
        }
        if (strcmp(a, "--curve") == 0) {
            o.curve = 1;
            continue;
        }
        if (!v)
            usage();
        if (strcmp(a, "--count") == 0) {
            o.count = strtoull(v, &end, 10);
            if (*end || o.count == 0)
                usage();
        } else if (strcmp(a, "--batch") == 0) {
            unsigned long b = strtoul(v, &end, 10);
            if (*end || b == 0 || b > 65536)
                usage();
            o.batch = (unsigned)b;
        } else if (strcmp(a, "--send") == 0) {
            if (strcmp(v, "copy") == 0)
                o.zerocopy = 0;
            else if (strcmp(v, "zc") == 0)
                o.zerocopy = 1;
            else
                usage();
        } else if (strcmp(a, "--hwm") == 0) {
            long h = strtol(v, &end, 10);
            if (*end || h < 0 || h > 1000000)
                usage();
            o.hwm = (int)h;
        } else if (strcmp(a, "--transport") == 0) {
            o.ipc = o.tcp = 0;
            if (strcmp(v, "ipc") == 0)
                o.ipc = 1;
            else if (strcmp(v, "tcp") == 0)
                o.tcp = 1;
            else if (strcmp(v, "inproc") != 0)
                usage();
            inproc_asked = !o.ipc && !o.tcp;
        } else {
            usage();
        }
        i++;
    }
    if (o.curve && !o.tcp) {
        fprintf(stderr, "raw_zmq: --curve needs --transport tcp\n");
        exit(2);
    }
    if (o.xf_process && o.tcp) {
        fprintf(stderr, "raw_zmq: --transport tcp has no transform (gen -> "
                        "sink); --transform-process does not apply\n");
        exit(2);
    }
    if (o.xf_process) {
        if (inproc_asked) {
            fprintf(stderr, "raw_zmq: --transform-process needs --transport "
                            "ipc (inproc cannot cross processes)\n");
            exit(2);
        }
        o.ipc = 1;
    }
    return o;
}

static void *make_sock(void *ctx, int type, const opts_t *o)
{
    void *s = zmq_socket(ctx, type);
    if (!s)
        die("zmq_socket");
    if (o->hwm) {
        int opt = type == ZMQ_PUSH ? ZMQ_SNDHWM : ZMQ_RCVHWM;
        if (zmq_setsockopt(s, opt, &o->hwm, sizeof o->hwm) < 0)
            die("zmq_setsockopt");
    }
    return s;
}

/* a: gen -> xform, b: xform -> sink. Abstract ipc names (the leading @)
 * live in the kernel only, so a killed run leaves no socket file. */
typedef struct endpoints {
    char a[64];
    char b[64];
} endpoints_t;

static void make_endpoints(const opts_t *o, endpoints_t *ep)
{
    if (!o->ipc) {
        snprintf(ep->a, sizeof ep->a, "inproc://gen");
        snprintf(ep->b, sizeof ep->b, "inproc://xform");
        return;
    }
    snprintf(ep->a, sizeof ep->a, "ipc://@raw-zmq-%d-a", (int)getpid());
    snprintf(ep->b, sizeof ep->b, "ipc://@raw-zmq-%d-b", (int)getpid());
}

static double cpu_s(clockid_t clk)
{
    return (double)now_ns(clk) / 1e9;
}

/* The transform process. It connects only once the parent has bound both
 * endpoints (told through go_fd): a connect that finds no listener is
 * retried after ZeroMQ's 100 ms reconnect interval, which would be timed.
 * Never returns. */
static void xform_child(shared_t *sh, const endpoints_t *ep, int go_fd,
                        pid_t parent)
{
    char go;
    /* A parent killed by the benchmark's timeout takes its child along. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent || read(go_fd, &go, 1) != 1)
        _exit(2);
    close(go_fd);
    void *ctx = zmq_ctx_new();
    if (!ctx)
        die("zmq_ctx_new");
    sh->xf_in = make_sock(ctx, ZMQ_PULL, &sh->o);
    sh->xf_out = make_sock(ctx, ZMQ_PUSH, &sh->o);
    if (zmq_connect(sh->xf_in, ep->a) < 0 || zmq_connect(sh->xf_out, ep->b) < 0)
        die("connect");
    xform_main(sh);
    zmq_close(sh->xf_in);
    zmq_close(sh->xf_out);
    /* Returns once the EOF has left: the default linger is infinite. */
    zmq_ctx_term(ctx);
    sh->xf->io_cpu = cpu_s(CLOCK_PROCESS_CPUTIME_ID) - sh->xf->cpu;
    exit(sh->xf->rc ? 1 : 0);
}

/* How long the sink waits for a message before it looks at the transform
 * process, and how many such waits it allows once that process is gone. */
#define SINK_WAIT_MS 500
#define SINK_WAITS_AFTER_EXIT 10

/* Reports how the transform process ended; 0 when it exited cleanly. */
static int child_status(pid_t got, pid_t child, int status)
{
    if (got == child && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (got == child && WIFSIGNALED(status))
        fprintf(stderr, "raw_zmq: CHECK FAILED: the transform process was "
                        "killed by signal %d\n", WTERMSIG(status));
    else
        fprintf(stderr, "raw_zmq: CHECK FAILED: the transform process "
                        "exited with status %d\n",
                got == child && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return -1;
}

/* Called whenever the sink has waited SINK_WAIT_MS for a message: if the
 * transform process died, its EOF will never come and gen may be stuck on
 * a full pipe, so the run ends here, as a failure. */
static void check_child(pid_t child, int *reaped, int *waits)
{
    int status = 0;
    if (*reaped) {
        if (++*waits < SINK_WAITS_AFTER_EXIT)
            return;
        fprintf(stderr, "raw_zmq: CHECK FAILED: the transform process ended "
                        "but its end of stream never came\n");
        _exit(1);
    }
    pid_t got = waitpid(child, &status, WNOHANG);
    if (got == 0)
        return;
    *reaped = 1;
    if (child_status(got, child, status) != 0)
        _exit(1);
}

/* Forks the transform process, then binds the parent's ends. The clock
 * starts before the fork, as sluice's elapsed time covers starting its
 * worker processes. Returns the child's pid; exits on failure. */
static pid_t start_process(shared_t *sh, const endpoints_t *ep, void **ctx,
                           uint64_t *t0)
{
    int go[2];
    sh->xf = mmap(NULL, sizeof(*sh->xf), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh->xf == MAP_FAILED || pipe(go) != 0) {
        perror("raw_zmq: mmap/pipe");
        exit(2);
    }
    *t0 = now_ns(CLOCK_MONOTONIC);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        perror("raw_zmq: fork");
        exit(2);
    }
    if (child == 0) {
        close(go[1]);
        xform_child(sh, ep, go[0], parent);
    }
    close(go[0]);
    *ctx = zmq_ctx_new();
    if (!*ctx)
        die("zmq_ctx_new");
    sh->gen_out = make_sock(*ctx, ZMQ_PUSH, &sh->o);
    sh->sink_in = make_sock(*ctx, ZMQ_PULL, &sh->o);
    int wait_ms = SINK_WAIT_MS;
    if (zmq_bind(sh->gen_out, ep->a) < 0 || zmq_bind(sh->sink_in, ep->b) < 0 ||
        zmq_setsockopt(sh->sink_in, ZMQ_RCVTIMEO, &wait_ms, sizeof wait_ms) < 0)
        die("bind");
    if (write(go[1], "g", 1) != 1) {
        perror("raw_zmq: write");
        exit(2);
    }
    close(go[1]);
    return child;
}

/* All three sides in this process: one context, four sockets. */
static void start_threads(shared_t *sh, const endpoints_t *ep, void **ctx,
                          uint64_t *t0)
{
    *ctx = zmq_ctx_new();
    if (!*ctx)
        die("zmq_ctx_new");
    /* inproc needs no I/O thread; an idle one would only cost a wakeup. */
    if (!sh->o.ipc)
        zmq_ctx_set(*ctx, ZMQ_IO_THREADS, 0);
    sh->gen_out = make_sock(*ctx, ZMQ_PUSH, &sh->o);
    sh->xf_in = make_sock(*ctx, ZMQ_PULL, &sh->o);
    sh->xf_out = make_sock(*ctx, ZMQ_PUSH, &sh->o);
    sh->sink_in = make_sock(*ctx, ZMQ_PULL, &sh->o);
    if (zmq_bind(sh->gen_out, ep->a) < 0 || zmq_connect(sh->xf_in, ep->a) < 0 ||
        zmq_bind(sh->xf_out, ep->b) < 0 || zmq_connect(sh->sink_in, ep->b) < 0)
        die("bind/connect");
    /* The main thread is the sink; the clock covers the whole run. */
    *t0 = now_ns(CLOCK_MONOTONIC);
}

/* The sink: counts records without decoding them until the empty
 * message. With a transform process (child > 0) the socket has a receive
 * timeout, and each timeout looks at that process. Returns non-zero when
 * a message did not split into whole frames. */
static int sink_loop(void *sock, pid_t child, int *reaped, int *waits,
                     uint64_t *records, uint64_t *bytes)
{
    zmq_msg_t in;
    int bad = 0;
    zmq_msg_init(&in);
    for (;;) {
        if (zmq_msg_recv(&in, sock, 0) < 0) {
            if (child > 0 && zmq_errno() == EAGAIN) {
                check_child(child, reaped, waits);
                continue;
            }
            die("zmq_msg_recv sink");
        }
        const char *p = zmq_msg_data(&in);
        size_t n = zmq_msg_size(&in), off = 0;
        if (n == 0)
            break;
        while (off + 4 <= n) {
            uint32_t len;
            memcpy(&len, p + off, 4);
            off += 4 + (size_t)len;
            *bytes += len;
            ++*records;
        }
        bad |= off != n;
    }
    zmq_msg_close(&in);
    return bad;
}

/* ---- --transport tcp: gen and sink in two processes -------------------- */

/* What the sink process reports, in shared memory, read by the parent once
 * it has exited. */
typedef struct tcp_result {
    uint64_t records;
    uint64_t bytes;
    uint64_t t_end; /* CLOCK_MONOTONIC (system-wide) when the EOF came */
    double cpu;     /* the sink thread */
    double io_cpu;  /* the rest of its process: ZeroMQ's I/O thread */
    int bad;
} tcp_result_t;

typedef struct curve_pair {
    char pub[41]; /* Z85 and a NUL, the form zmq_setsockopt takes */
    char sec[41];
} curve_pair_t;

static void set_key(void *sock, int opt, const char *z85)
{
    if (zmq_setsockopt(sock, opt, z85, 41) < 0)
        die("zmq_setsockopt CURVE key");
}

/* The sink process: binds, tells the parent where (a NUL-terminated
 * endpoint on ep_fd), counts, reports. Never returns. */
static void tcp_sink_child(const opts_t *o, const curve_pair_t *server,
                           int ep_fd, tcp_result_t *res, pid_t parent)
{
    /* A parent killed by the benchmark's timeout takes its child along. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(2);
    void *ctx = zmq_ctx_new();
    if (!ctx)
        die("zmq_ctx_new");
    void *in = make_sock(ctx, ZMQ_PULL, o);
    if (o->curve) {
        int one = 1;
        if (zmq_setsockopt(in, ZMQ_CURVE_SERVER, &one, sizeof one) < 0)
            die("zmq_setsockopt ZMQ_CURVE_SERVER");
        set_key(in, ZMQ_CURVE_SECRETKEY, server->sec);
    }
    char ep[256];
    size_t len = sizeof ep;
    if (zmq_bind(in, "tcp://127.0.0.1:*") < 0 ||
        zmq_getsockopt(in, ZMQ_LAST_ENDPOINT, ep, &len) < 0)
        die("bind tcp");
    ep[sizeof ep - 1] = '\0';
    if (write(ep_fd, ep, strlen(ep) + 1) != (ssize_t)(strlen(ep) + 1))
        _exit(2);
    close(ep_fd);
    int reaped = 0, waits = 0;
    res->bad = sink_loop(in, 0, &reaped, &waits, &res->records, &res->bytes);
    res->t_end = now_ns(CLOCK_MONOTONIC);
    res->cpu = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    zmq_close(in);
    zmq_ctx_term(ctx);
    res->io_cpu = cpu_s(CLOCK_PROCESS_CPUTIME_ID) - res->cpu;
    exit(res->bad ? 1 : 0);
}

/* Reads the sink's endpoint, up to its NUL; exits when the sink died. */
static void tcp_read_endpoint(int fd, char *ep, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, ep + got, len - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (memchr(ep, '\0', got))
            return;
    }
    fprintf(stderr, "raw_zmq: the sink process did not say where it "
                    "listens\n");
    exit(2);
}

/* gen here, sink in a child, one tcp link. The clock starts once the sink
 * listens (as the benchmark starts the producer's node once the
 * consumer's node listens) and stops when the sink has seen the EOF. */
static int run_tcp(shared_t *sh)
{
    const opts_t *o = &sh->o;
    curve_pair_t server = {{0}, {0}}, client = {{0}, {0}};
    if (o->curve && (zmq_curve_keypair(server.pub, server.sec) < 0 ||
                     zmq_curve_keypair(client.pub, client.sec) < 0))
        die("zmq_curve_keypair (is this libzmq built with CURVE?)");
    tcp_result_t *res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int ep_pipe[2];
    if (res == MAP_FAILED || pipe(ep_pipe) != 0) {
        perror("raw_zmq: mmap/pipe");
        return 2;
    }
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        perror("raw_zmq: fork");
        return 2;
    }
    if (child == 0) {
        close(ep_pipe[0]);
        tcp_sink_child(o, &server, ep_pipe[1], res, parent);
    }
    close(ep_pipe[1]);
    char ep[256];
    tcp_read_endpoint(ep_pipe[0], ep, sizeof ep);
    close(ep_pipe[0]);

    uint64_t t0 = now_ns(CLOCK_MONOTONIC);
    void *ctx = zmq_ctx_new();
    if (!ctx)
        die("zmq_ctx_new");
    void *out = make_sock(ctx, ZMQ_PUSH, o);
    /* A finite linger: a sink that died must not hang zmq_ctx_term. */
    int wait_ms = SINK_WAIT_MS, linger_ms = 10000;
    if (zmq_setsockopt(out, ZMQ_SNDTIMEO, &wait_ms, sizeof wait_ms) < 0 ||
        zmq_setsockopt(out, ZMQ_LINGER, &linger_ms, sizeof linger_ms) < 0)
        die("zmq_setsockopt");
    if (o->curve) {
        set_key(out, ZMQ_CURVE_SERVERKEY, server.pub);
        set_key(out, ZMQ_CURVE_PUBLICKEY, client.pub);
        set_key(out, ZMQ_CURVE_SECRETKEY, client.sec);
    }
    if (zmq_connect(out, ep) < 0)
        die("connect tcp");
    s_watched = child;
    sh->gen_out = out;
    gen_main(sh);
    zmq_close(out);
    zmq_ctx_term(ctx);
    double gen_io = cpu_s(CLOCK_PROCESS_CPUTIME_ID) - sh->gen_cpu;

    int status = 0;
    pid_t got = waitpid(child, &status, 0);
    s_watched = 0;
    if (got != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "raw_zmq: CHECK FAILED: the sink process %s %d\n",
                got == child && WIFSIGNALED(status) ? "was killed by signal"
                                                    : "exited with status",
                got == child && WIFSIGNALED(status) ? WTERMSIG(status)
                : got == child && WIFEXITED(status) ? WEXITSTATUS(status)
                                                    : -1);
        munmap(res, sizeof(*res));
        return 1;
    }
    double secs = (double)(res->t_end - t0) / 1e9;
    printf("raw batch=%u records=%" PRIu64 " seconds=%.3f rate=%.0f send=%s "
           "bytes_per_record=%.1f transport=tcp xform=none curve=%s\n",
           o->batch, res->records, secs, (double)res->records / secs,
           o->zerocopy ? "zc" : "copy",
           res->records ? (double)res->bytes / (double)res->records : 0.0,
           o->curve ? "yes" : "no");
    fprintf(stderr, "raw cpu_s gen=%.3f sink=%.3f io=%.3f\n", sh->gen_cpu,
            res->cpu, gen_io + res->io_cpu);
    int rc = 0;
    if (res->bad || res->records != o->count || res->bytes != sh->gen_bytes) {
        fprintf(stderr,
                "raw_zmq: CHECK FAILED: expected %" PRIu64 " records, sink "
                "got %" PRIu64 "; bytes gen %" PRIu64 " sink %" PRIu64 "%s\n",
                o->count, res->records, sh->gen_bytes, res->bytes,
                res->bad ? "; malformed frame" : "");
        rc = 1;
    }
    munmap(res, sizeof(*res));
    return rc;
}

int main(int argc, char **argv)
{
    shared_t sh = {.o = parse_opts(argc, argv)};
    xf_result_t local = {0};
    endpoints_t ep;
    pid_t child = 0;
    int reaped = 0, waits = 0;
    uint64_t t0 = 0;
    void *ctx = NULL;

    sh.xf = &local;
    if (sh.o.tcp)
        return run_tcp(&sh);
    make_endpoints(&sh.o, &ep);
    if (sh.o.xf_process)
        child = start_process(&sh, &ep, &ctx, &t0);
    else
        start_threads(&sh, &ep, &ctx, &t0);

    pthread_t tg, tx;
    if ((!sh.o.xf_process &&
         pthread_create(&tx, NULL, xform_main, &sh) != 0) ||
        pthread_create(&tg, NULL, gen_main, &sh) != 0) {
        fprintf(stderr, "raw_zmq: pthread_create failed\n");
        return 2;
    }

    uint64_t records = 0, bytes = 0;
    int bad = sink_loop(sh.sink_in, child, &reaped, &waits, &records, &bytes);
    uint64_t t1 = now_ns(CLOCK_MONOTONIC);
    double sink_cpu = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    pthread_join(tg, NULL);
    if (!sh.o.xf_process)
        pthread_join(tx, NULL);
    int child_bad = 0;
    if (child > 0 && !reaped) {
        int status = 0;
        pid_t got = waitpid(child, &status, 0);
        child_bad = child_status(got, child, status) != 0;
    }
    /* The rest of the CPU went to ZeroMQ's I/O threads (ipc only). */
    double io_cpu = cpu_s(CLOCK_PROCESS_CPUTIME_ID) - sh.gen_cpu - sink_cpu;
    if (sh.o.xf_process)
        io_cpu += sh.xf->io_cpu;
    else
        io_cpu -= sh.xf->cpu;

    double secs = (double)(t1 - t0) / 1e9;
    printf("raw batch=%u records=%" PRIu64 " seconds=%.3f rate=%.0f send=%s "
           "bytes_per_record=%.1f transport=%s xform=%s\n",
           sh.o.batch, records, secs, (double)records / secs,
           sh.o.zerocopy ? "zc" : "copy",
           records ? (double)bytes / (double)records : 0.0,
           sh.o.ipc ? "ipc" : "inproc", sh.o.xf_process ? "process" : "thread");
    /* Where the CPU went: on a 2-core machine three busy threads share two
     * cores, so the sum is what bounds the rate. */
    fprintf(stderr, "raw cpu_s gen=%.3f xform=%.3f sink=%.3f", sh.gen_cpu,
            sh.xf->cpu, sink_cpu);
    if (sh.o.ipc)
        fprintf(stderr, " io=%.3f", io_cpu);
    fprintf(stderr, "\n");

    int rc = 0;
    if (child_bad) {
        rc = 1;
    } else if (bad || sh.xf->rc || records != sh.o.count ||
        records != sh.xf->records || bytes != sh.xf->bytes ||
        bytes != sh.gen_bytes) {
        fprintf(stderr,
                "raw_zmq: CHECK FAILED: expected %" PRIu64 " records, sink "
                "got %" PRIu64 " (xform %" PRIu64 "); bytes gen %" PRIu64
                " xform %" PRIu64 " sink %" PRIu64 "%s\n",
                sh.o.count, records, sh.xf->records, sh.gen_bytes,
                sh.xf->bytes, bytes, bad ? "; malformed frame" : "");
        rc = 1;
    }
    zmq_close(sh.gen_out);
    zmq_close(sh.sink_in);
    if (!sh.o.xf_process) {
        zmq_close(sh.xf_in);
        zmq_close(sh.xf_out);
    }
    zmq_ctx_term(ctx);
    if (sh.xf != &local)
        munmap(sh.xf, sizeof(*sh.xf));
    return rc;
}
