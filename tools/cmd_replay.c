/* `sluice replay TRACE|--synth T --to EP --ack EP | --topology FILE ...`:
 * the options and the run. The main thread connects, starts the sender
 * and receiver threads, watches signals, the target and the clock (the
 * progress line, the metrics samples), then reports. */
#include "cmd_replay.h"

#include "cli.h"
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* How long a connection to the target may take: a running target is
 * there at once; one that is starting loads its plugins first. */
#define S_CONNECT_MS 10000
#define S_START_MS 30000
/* How long the child may take to stop (its grace is 2 s). */
#define S_CHILD_WAIT_MS 15000
/* Messages queued for the target (and from it) before a send blocks. */
#define S_HWM 100000

static volatile sig_atomic_t s_signals;

static void s_on_signal(int sig)
{
    (void)sig;
    s_signals++;
}

static void s_usage(FILE *f)
{
    fprintf(f,
        "usage: sluice replay TRACE|--synth TEMPLATE.yaml\n"
        "           (--to ENDPOINT --ack ENDPOINT [--metrics URL]\n"
        "            | --topology FILE.yaml)\n"
        "           [--speed 1x|2x|...|max | --rate N/s] [--duration D]"
        " [--loop]\n"
        "           [--warmup D] [--timeout D] [--drain D]"
        " [--max-inflight N]\n"
        "           [--seq-field NAME] [--json OUT] [--hdr OUT]"
        " [--capture OUT.trace]\n"
        "           [--compare OLD.json [--threshold 10%%]] [--quiet]\n"
        "  (docs/replay.md, \"Replaying a trace\")\n");
}

/* ---- option values -------------------------------------------------------- */

/* "250us", "500ms", "5s", "2m", "1h", or bare seconds (fractions allowed);
 * 0 with *ns, or -EINVAL. */
static int s_duration(const char *s, uint64_t *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0) || isinf(v))
        return -EINVAL;
    double mult = !*end || !strcmp(end, "s") ? 1e9
                  : !strcmp(end, "ms")       ? 1e6
                  : !strcmp(end, "us")       ? 1e3
                  : !strcmp(end, "ns")       ? 1
                  : !strcmp(end, "m")        ? 60e9
                  : !strcmp(end, "h")        ? 3600e9
                                             : -1;
    if (mult < 0 || v * mult > 1e18)
        return -EINVAL;
    *ns = (uint64_t)(v * mult);
    return 0;
}

/* "20000", "20000/s", "20k/s", "1.5M"; > 0. */
static int s_rate(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0) || isinf(v))
        return -EINVAL;
    if (*end == 'k' || *end == 'K')
        v *= 1e3, end++;
    else if (*end == 'M')
        v *= 1e6, end++;
    if (*end && strcmp(end, "/s"))
        return -EINVAL;
    if (v > 1e9)
        return -EINVAL;
    *out = v;
    return 0;
}

/* "1x", "2", "0.5x", "max" (0). */
static int s_speed(const char *s, double *out)
{
    if (!strcmp(s, "max")) {
        *out = 0;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0) || v > 1e6 ||
        (*end && strcmp(end, "x")))
        return -EINVAL;
    *out = v;
    return 0;
}

/* "1000000", "100k", "1M"; >= 1. */
static int s_count(const char *s, uint64_t *out)
{
    double v;
    if (s_rate(s, &v) != 0 || strchr(s, '/') || v < 1 || v > 1e9 ||
        v != floor(v))
        return -EINVAL;
    *out = (uint64_t)v;
    return 0;
}

/* "10%", "10", "2.5%": a fraction. */
static int s_percent(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0) || v > 1000 || (*end && strcmp(end, "%")))
        return -EINVAL;
    *out = v / 100;
    return 0;
}

/* A value option: 1 when a is name (its value in *v), 0 when it is not,
 * -EINVAL when the value is missing. */
static int s_opt(const char *name, int argc, char **argv, int *i,
                 const char **v)
{
    if (strcmp(argv[*i], name))
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "sluice replay: %s needs a value\n", name);
        return -EINVAL;
    }
    *v = argv[++*i];
    return 1;
}

static int s_bad(const char *opt, const char *v, const char *want)
{
    fprintf(stderr, "sluice replay: %s must be %s, got '%s'\n", opt, want, v);
    return -EINVAL;
}

static int s_parse(int argc, char **argv, sl_rp_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->speed = 1;
    o->timeout_ns = 10000000000ull;
    o->drain_ns = 500000000ull;
    o->max_inflight = 1000000;
    o->seq_field = SL_RP_SEQ_FIELD;
    o->threshold = 0.10;
    const char *speed = NULL, *rate = NULL, *threshold = NULL, *v;
    int rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define OPT(name) ((rc = s_opt(name, argc, argv, &i, &v)) != 0)
        if (OPT("--to")) {
            o->to = v;
        } else if (OPT("--ack")) {
            o->ack = v;
        } else if (OPT("--topology")) {
            o->topology = v;
        } else if (OPT("--synth")) {
            o->synth = v;
        } else if (OPT("--metrics")) {
            o->metrics = v;
        } else if (OPT("--speed")) {
            speed = v;
            if (s_speed(v, &o->speed) != 0)
                return s_bad(a, v, "a multiple such as 1x, 2x or 0.5x, "
                                   "or max");
        } else if (OPT("--rate")) {
            rate = v;
            if (s_rate(v, &o->rate) != 0)
                return s_bad(a, v, "records per second such as 20000/s "
                                   "or 20k/s");
        } else if (OPT("--duration")) {
            if (s_duration(v, &o->duration_ns) != 0 || !o->duration_ns)
                return s_bad(a, v, "a duration such as 500ms, 5s or 2m");
        } else if (OPT("--warmup")) {
            if (s_duration(v, &o->warmup_ns) != 0)
                return s_bad(a, v, "a duration such as 500ms, 5s or 2m");
        } else if (OPT("--timeout")) {
            if (s_duration(v, &o->timeout_ns) != 0 || !o->timeout_ns)
                return s_bad(a, v, "a duration such as 500ms, 10s or 1m");
        } else if (OPT("--drain")) {
            if (s_duration(v, &o->drain_ns) != 0)
                return s_bad(a, v, "a duration such as 0, 500ms or 2s");
        } else if (OPT("--max-inflight")) {
            if (s_count(v, &o->max_inflight) != 0)
                return s_bad(a, v, "a count from 1 to 1000M such as "
                                   "1000000 or 1M");
        } else if (OPT("--seq-field")) {
            o->seq_field = v;
            if (!*v || strlen(v) > 255)
                return s_bad(a, v, "a field name of 1 to 255 bytes");
        } else if (OPT("--json")) {
            o->json = v;
        } else if (OPT("--hdr")) {
            o->hdr = v;
        } else if (OPT("--capture")) {
            o->capture = v;
        } else if (OPT("--compare")) {
            o->compare = v;
        } else if (OPT("--threshold")) {
            threshold = v;
            if (s_percent(v, &o->threshold) != 0)
                return s_bad(a, v, "a percentage such as 10%");
        } else if (rc < 0) {
            return rc;
        } else if (!strcmp(a, "--loop")) {
            o->loop = 1;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o->quiet = 1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage(stdout);
            return 1;
        } else if (a[0] != '-' && !o->trace) {
            o->trace = a;
        } else {
            fprintf(stderr, "sluice replay: unexpected argument '%s'\n", a);
            s_usage(stderr);
            return -EINVAL;
        }
#undef OPT
    }
    o->seq_len = strlen(o->seq_field);
    const char *why = NULL;
    if (!o->trace == !o->synth)
        why = o->trace ? "give a TRACE or --synth, not both"
                       : "give a TRACE file or --synth TEMPLATE.yaml";
    else if (!o->topology && (!o->to || !o->ack))
        why = "give --to and --ack (the target's zmq_source and zmq_sink "
              "endpoints), or --topology FILE.yaml";
    else if (speed && rate)
        why = "--speed and --rate exclude each other";
    else if (threshold && !o->compare)
        why = "--threshold goes with --compare";
    else if (o->topology && o->metrics)
        why = "--metrics is implied by --topology";
    else if (o->duration_ns && o->warmup_ns >= o->duration_ns)
        why = "--warmup must be shorter than --duration";
    if (why) {
        fprintf(stderr, "sluice replay: %s\n", why);
        s_usage(stderr);
        return -EINVAL;
    }
    return 0;
}

/* ---- connecting ------------------------------------------------------------ */

/* Waits until sock has had event (CONNECTED or ACCEPTED) on monitor mon,
 * at most ms, giving up early when the target child ends. 0, or
 * -ETIMEDOUT / -ECHILD. */
static int s_wait_event(void *mon, uint16_t event, long ms,
                        sl_rp_target_t *t)
{
    uint64_t deadline = sl__rp_now() + (uint64_t)ms * 1000000ull;
    while (sl__rp_now() < deadline) {
        if (s_signals)
            return -EINTR;
        if (t && t->pid && !sl__rp_target_alive(t))
            return -ECHILD;
        zmq_pollitem_t it = {.socket = mon, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        int n = zmq_msg_recv(&m, mon, 0);
        uint16_t ev = 0;
        if (n >= 2)
            memcpy(&ev, zmq_msg_data(&m), 2);
        int more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) { /* the endpoint frame */
            zmq_msg_init(&m);
            zmq_msg_recv(&m, mon, 0);
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (ev == event)
            return 0;
    }
    return -ETIMEDOUT;
}

static void *s_monitor(void *zctx, void *sock, const char *name, int events)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "inproc://replay-%s", name);
    if (zmq_socket_monitor(sock, ep, events) != 0)
        return NULL;
    void *mon = zmq_socket(zctx, ZMQ_PAIR);
    if (mon && zmq_connect(mon, ep) != 0) {
        zmq_close(mon);
        return NULL;
    }
    return mon;
}

static void s_unmonitor(void *sock, void *mon)
{
    zmq_socket_monitor(sock, NULL, 0);
    if (mon) {
        int zero = 0;
        zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof(zero));
        zmq_close(mon);
    }
}

/* Sockets: the PULL bound on the ack endpoint, the PUSH connected to the
 * target; waits for both connections. */
static int s_connect(sl_replay_t *r, sl_rp_target_t *t, const char *to,
                     const char *ack)
{
    int rc = -EIO;
    r->pull = zmq_socket(r->zctx, ZMQ_PULL);
    r->push = zmq_socket(r->zctx, ZMQ_PUSH);
    if (!r->pull || !r->push)
        return -ENOMEM;
    /* Deep queues on both sides: a target's stall of a few seconds must
     * not block the sender (its schedule would bend to the target's) nor
     * the sink's sends to us. */
    int hwm = S_HWM, timeo = 100, zero = 0;
    zmq_setsockopt(r->pull, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(r->push, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(r->pull, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(r->push, ZMQ_SNDTIMEO, &timeo, sizeof(timeo));
    zmq_setsockopt(r->push, ZMQ_LINGER, &zero, sizeof(zero));
    void *mpull = s_monitor(r->zctx, r->pull, "ack", ZMQ_EVENT_ACCEPTED);
    void *mpush = s_monitor(r->zctx, r->push, "to", ZMQ_EVENT_CONNECTED);
    if (!mpull || !mpush)
        goto out;
    if (zmq_bind(r->pull, ack) != 0) {
        fprintf(stderr, "sluice replay: cannot bind --ack %s: %s\n", ack,
                zmq_strerror(errno));
        goto out;
    }
    if (zmq_connect(r->push, to) != 0) {
        fprintf(stderr, "sluice replay: cannot connect --to %s: %s\n", to,
                zmq_strerror(errno));
        goto out;
    }
    long ms = t->pid ? S_START_MS : S_CONNECT_MS;
    int w = s_wait_event(mpush, ZMQ_EVENT_CONNECTED, ms, t);
    const char *what = "listens on --to (is the topology running?)";
    if (w == 0) {
        w = s_wait_event(mpull, ZMQ_EVENT_ACCEPTED, ms, t);
        what = "connected to --ack (is a zmq_sink pointed at it?)";
    }
    if (w == -ETIMEDOUT) {
        fprintf(stderr, "sluice replay: the target did not connect within "
                        "%ld s: nothing %s\n", ms / 1000, what);
        if (t->pid)
            sl__rp_target_dump_log(t, stderr);
        goto out;
    }
    if (w == -ECHILD) {
        fprintf(stderr, "sluice replay: the target ended before it was "
                        "ready (exit code %d)\n", t->exit_code);
        sl__rp_target_dump_log(t, stderr);
        goto out;
    }
    if (w == -EINTR)
        fprintf(stderr, "sluice replay: interrupted while connecting\n");
    rc = w;
out:
    if (mpull)
        s_unmonitor(r->pull, mpull);
    if (mpush)
        s_unmonitor(r->push, mpush);
    return rc;
}

/* ---- the run ------------------------------------------------------------------ */

static void s_progress(sl_replay_t *r, int clear)
{
    if (clear) {
        fputs("\r\033[K", stderr);
        return;
    }
    double el = (double)(sl__rp_now() - r->t0) / 1e9;
    uint64_t sent = atomic_load_explicit(&r->live_sent, memory_order_relaxed);
    fprintf(stderr, "\r\033[K  %.0f s  sent %llu (%.0f/s)  completed %llu  "
                    "timeouts %llu  behind %.1f ms",
            el, (unsigned long long)sent, el > 0 ? (double)sent / el : 0,
            (unsigned long long)atomic_load(&r->live_acked),
            (unsigned long long)atomic_load(&r->live_timeouts),
            (double)atomic_load(&r->live_lag_ns) / 1e6);
    fflush(stderr);
}

static void s_mode(const sl_rp_opts_t *o, char *buf, size_t cap)
{
    int n;
    if (o->rate > 0)
        n = snprintf(buf, cap, "rate %.0f/s", o->rate);
    else if (o->speed > 0)
        n = snprintf(buf, cap, "speed %gx", o->speed);
    else
        n = snprintf(buf, cap, "max (as fast as possible)");
    if (n < 0 || (size_t)n >= cap)
        return;
    if (o->duration_ns)
        n += snprintf(buf + n, cap - (size_t)n, ", for %g s",
                      (double)o->duration_ns / 1e9);
    if (o->loop && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, ", looping");
    if (o->warmup_ns && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ", warmup %g s",
                 (double)o->warmup_ns / 1e9);
}

static char *s_read_text(const char *path)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return NULL;
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    if (n <= 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* host:port -> http://host:port/metrics; URLs as they are. */
static void s_metrics_url(const char *in, char *out, size_t cap)
{
    if (strstr(in, "://"))
        snprintf(out, cap, "%s", in);
    else
        snprintf(out, cap, "http://%s/metrics", in);
}

/* Runs the threads and waits for them, sampling and drawing meanwhile. */
static int s_run(sl_replay_t *r, sl_rp_target_t *t, sl_rp_stages_t *stages)
{
    const sl_rp_opts_t *o = r->o;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    pthread_t snd, rcv;
    r->t0 = sl__rp_now() + 2000000; /* the threads are up by then */
    int rc = pthread_create(&rcv, NULL, sl__rp_receiver_main, r);
    if (rc == 0 && (rc = pthread_create(&snd, NULL, sl__rp_sender_main, r)))
        atomic_store(&r->stop_all, 1);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        if (!atomic_load(&r->stop_all))
            return -rc;
        pthread_join(rcv, NULL);
        return -rc;
    }
    int tty = !o->quiet && isatty(STDERR_FILENO);
    uint64_t next_draw = sl__rp_now() + 1000000000ull, next_sample = 0;
    int seen = 0, died = 0, sampled_end = 0;
    for (;;) {
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
        if (s_signals != seen) {
            seen = s_signals;
            atomic_store(&r->stop_send, 1);
            if (seen >= 2)
                atomic_store(&r->stop_all, 1);
        }
        if (t->pid && !sl__rp_target_alive(t)) {
            died = 1;
            atomic_store(&r->stop_send, 1);
            atomic_store(&r->stop_all, 1);
        }
        /* the depths while records go in, the last one as the sender
         * ends: the window the breakdown's rates are taken over */
        uint64_t now = sl__rp_now();
        int sending = !atomic_load(&r->sender_done);
        if (stages && ((sending && now >= next_sample) ||
                       (!sending && !sampled_end))) {
            sl__rp_stages_sample(stages);
            next_sample = now + 200000000ull;
            sampled_end = !sending;
        }
        if (tty && now >= next_draw) {
            s_progress(r, 0);
            next_draw += 1000000000ull;
        }
        /* the receiver ends last: it waits for the sender */
        if (atomic_load(&r->sender_done) && atomic_load(&r->recv_done) &&
            (!stages || sampled_end))
            break;
    }
    if (tty)
        s_progress(r, 1);
    pthread_join(snd, NULL);
    pthread_join(rcv, NULL);
    if (died) {
        fprintf(stderr, "sluice replay: the target ended during the replay "
                        "(exit code %d)\n", t->exit_code);
        sl__rp_target_dump_log(t, stderr);
        return -ECHILD;
    }
    return 0;
}

int sl_cmd_replay(int argc, char **argv)
{
    sl_rp_opts_t o;
    int rc = s_parse(argc, argv, &o);
    if (rc)
        return rc > 0 ? SL_EXIT_OK : SL_EXIT_USAGE;
    int code = SL_EXIT_FAILED;
    sl_replay_t *r = calloc(1, sizeof(*r));
    sl_rp_target_t t = {.exit_code = -1};
    sl_rp_stages_t *stages = NULL;
    char *target_report = NULL;
    if (!r)
        return SL_EXIT_FAILED;
    r->o = &o;
    if (sl__rp_source_open(&o, &r->src) != 0) {
        code = SL_EXIT_USAGE;
        goto fail_src;
    }
    const char *to = o.to, *ack = o.ack;
    if (o.topology) {
        if (sl__rp_target_endpoints(&t, o.topology) != 0) {
            code = SL_EXIT_USAGE;
            goto fail_target;
        }
        to = o.to ? o.to : t.to;
        ack = o.ack ? o.ack : t.ack;
    }
    r->cap = o.max_inflight;
    r->state = malloc(r->cap * sizeof(*r->state));
    r->intended = calloc(r->cap, sizeof(*r->intended));
    if (!r->state || !r->intended ||
        sl__rp_slices_init(&r->acks.slices) != 0 ||
        sl__rp_bins_init(&r->acks.ack_times) != 0) {
        fprintf(stderr, "sluice replay: out of memory for %llu in-flight "
                        "records\n", (unsigned long long)r->cap);
        goto fail_target;
    }
    sl__hist_init(&r->acks.all);
    sl__hist_init(&r->sends.lag);
    /* a slot never taken has a tag no seq matches */
    memset((void *)r->state, 0xff, r->cap * sizeof(*r->state));
    if (o.capture) {
        char err[512];
        r->capture = sl_trace_writer_new(o.capture, "sluice replay --capture",
                                         err, sizeof(err));
        if (!r->capture) {
            fprintf(stderr, "sluice replay: --capture: %s\n", err);
            goto fail_target;
        }
    }

    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    struct sigaction old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    if (o.topology && sl__rp_target_start(&t, o.topology) != 0) {
        fprintf(stderr, "sluice replay: cannot start the target: %s\n",
                strerror(errno));
        goto fail_signals;
    }
    r->zctx = zmq_ctx_new();
    if (!r->zctx || s_connect(r, &t, to, ack) != 0)
        goto fail_zmq;
    char url[512] = "";
    if (o.metrics)
        s_metrics_url(o.metrics, url, sizeof(url));
    else if (o.topology && sl__rp_target_metrics_url(&t, 5000) == 0)
        snprintf(url, sizeof(url), "%s", t.metrics);
    else if (o.topology)
        fprintf(stderr, "sluice replay: the target did not say where its "
                        "metrics are: no per-stage breakdown\n");
    if (url[0] && !(stages = sl__rp_stages_begin(url, t.pid ? 5000 : 0)) &&
        o.metrics)
        goto fail_zmq;

    if (!o.quiet)
        fprintf(stderr, "sluice replay: %s -> %s, acks on %s\n",
                o.trace ? o.trace : o.synth, to, ack);
    if (s_run(r, &t, stages) != 0)
        goto fail_zmq;

    const sl_rp_stage_row_t *rows = NULL;
    size_t n_rows = 0;
    if (stages && sl__rp_stages_end(stages, &rows, &n_rows) != 0)
        n_rows = 0;
    if (t.pid) {
        sl__rp_target_stop(&t, S_CHILD_WAIT_MS);
        target_report = s_read_text(t.report_path);
    }
    if (r->sends.source_failed)
        fprintf(stderr, "sluice replay: %s (the records before it were "
                        "replayed)\n", r->sends.source_err);

    char mode[160];
    s_mode(&o, mode, sizeof(mode));
    sl_rp_result_t res;
    sl__rp_result_compute(r, &res);
    res.mode = mode;
    res.stages = rows;
    res.n_stages = n_rows;
    res.target_report = target_report;
    printf("sluice replay: %s\n", o.trace ? o.trace : o.synth);
    sl__rp_report_text(&res, stdout);
    fflush(stdout);
    code = r->sends.source_failed ? SL_EXIT_FAILED : SL_EXIT_OK;
    if (o.json && sl__rp_report_json(&res, o.json) != 0) {
        fprintf(stderr, "sluice replay: cannot write --json %s\n", o.json);
        code = SL_EXIT_FAILED;
    }
    if (o.hdr && (rc = sl__rp_report_hdr(&res, o.hdr)) != 0) {
        fprintf(stderr, "sluice replay: cannot write --hdr %s: %s\n", o.hdr,
                strerror(-rc));
        code = SL_EXIT_FAILED;
    }
    if (o.compare) {
        int c = sl__rp_compare(&res, o.compare, o.threshold, stdout);
        if (c == 2)
            code = SL_EXIT_USAGE;
        else if (c == 1 && code == SL_EXIT_OK)
            code = SL_EXIT_FAILED;
    }
    fflush(stdout);

fail_zmq:
    if (r->push)
        zmq_close(r->push);
    if (r->pull)
        zmq_close(r->pull);
    if (r->zctx)
        zmq_ctx_term(r->zctx);
    sl__rp_stages_destroy(&stages);
fail_signals:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
fail_target:
    if (r->capture && sl_trace_writer_close(&r->capture) != 0) {
        fprintf(stderr, "sluice replay: --capture %s: write failed\n",
                o.capture);
        code = SL_EXIT_FAILED;
    }
    sl__rp_target_fini(&t);
    r->src.close(r->src.self);
fail_src:
    free(target_report);
    sl__rp_slices_fini(&r->acks.slices);
    sl__rp_bins_fini(&r->acks.ack_times);
    free(r->state);
    free(r->intended);
    free(r);
    return code;
}
