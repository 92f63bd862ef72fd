/*
 * zmq_source: receives records from external programs over ZeroMQ (a PULL
 * or SUB socket) and emits them.
 *
 * A message body holds one or more records: msgpack maps back to back, or
 * JSON objects one per line. A message with more records than the pull's
 * budget is kept (zmq_msg_t and a byte offset) and the rest emitted by the
 * next pulls, so nothing received is lost to the budget and no record is
 * emitted twice. msgpack records are checked by a bounded walker
 * (zsrc_mpk.c) before they are handed on as raw bytes: a header never
 * makes anything allocate what it claims, and only values msgpack-c can
 * unpack get through. A record that cannot become one is reported with
 * sl_ctx_input_error("zmq message N: record K: ...") and skipped; the
 * records after it in the same message still count, except after bytes
 * that leave no way to find the next record's start.
 *
 * Backpressure: pull() is called only when the stage has room for more
 * records. While it is not called the socket's queue (RCVHWM messages,
 * plus the kernel's socket buffers) fills, ZeroMQ stops reading from the
 * connection, and a PUSH sender's zmq_send blocks (or fails with EAGAIN
 * when non-blocking). A PUB sender does not block: it drops messages for
 * a subscriber that does not keep up, by ZeroMQ's design.
 */
#include "zsrc_conf.h"
#include "zsrc_mpk.h"

#include <sluice/json.h>
#include <sluice/stage.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Messages received per pull() at most, so that a flood of messages that
 * yield no record (all bad, all blank) still lets pull() return. */
#define ZSRC_MSGS_PER_PULL 4096
/* The longest pull() waits for a message when the socket is empty. */
#define ZSRC_WAIT_MS 100

typedef struct zsrc_state {
    zsrc_opts_t o;
    char *stage;      /* the stage's name, for what fini logs; owned */
    void *zctx;
    void *sock;
    zmq_msg_t msg;    /* the body being handed out (the last frame) */
    int have;         /* msg holds bytes not looked at yet */
    size_t off;       /* the next byte of msg to look at */
    unsigned rec;     /* records of msg looked at so far */
    uint64_t msg_no;  /* messages received, the current one included */
    uint64_t last_ns; /* monotonic time of the newest message */
    int started;
    int at_end;       /* eof_on seen or idle: every pull says SL_EOF */
    msgpack_sbuffer scratch; /* a bad JSON line, decoded for its error */
    msgpack_packer spk;
} zsrc_state_t;

/* ---- lifecycle ----------------------------------------------------------- */

static int zs_validate(const sl_config_t *cfg)
{
    zsrc_opts_t o;
    return zsrc_opts_parse(cfg, &o);
}

/* Counts the records left in the current message (for the warning about
 * what a stopped run leaves unread). */
static uint64_t s_count_left(zsrc_state_t *st)
{
    const char *p = zmq_msg_data(&st->msg);
    size_t n = zmq_msg_size(&st->msg), off = st->off, len;
    uint64_t count = 0;

    while (off < n) {
        if (st->o.format == ZSRC_JSON) {
            const char *nl = memchr(p + off, '\n', n - off);
            size_t end = nl ? (size_t)(nl - p) : n;
            count += memchr(p + off, '{', end - off) != NULL;
            off = nl ? end + 1 : n;
            continue;
        }
        zsrc_mpk_t r = zsrc_mpk_check(p + off, n - off, &len);
        if (r < 0)
            break;
        count++;
        off += len;
    }
    return count;
}

/* What a run that ended leaves behind: the rest of a message it had begun
 * and the messages already queued in the socket. ZeroMQ has no
 * acknowledgements, so these are lost; saying how many is the least. */
static void s_report_unread(zsrc_state_t *st)
{
    uint64_t records = st->have ? s_count_left(st) : 0, messages = 0;
    zmq_msg_t m;

    zmq_msg_init(&m);
    /* Bounded: a sender that keeps sending must not keep us here. */
    for (int i = 0; i < st->o.rcvhwm + 64; i++) {
        if (zmq_msg_recv(&m, st->sock, ZMQ_DONTWAIT) < 0)
            break;
        if (!zmq_msg_more(&m))
            messages++;
    }
    zmq_msg_close(&m);
    if (records || messages)
        sl_log(NULL, SL_LOG_WARN, "stage '%s': %s: %" PRIu64 " records of a "
               "message partly read and %" PRIu64 " queued messages were "
               "not read before the end and are discarded",
               st->stage, st->o.conn.endpoint, records, messages);
}

static void zs_fini(void *state)
{
    zsrc_state_t *st = state;

    if (!st)
        return;
    if (st->sock) {
        s_report_unread(st);
        zmq_close(st->sock);
    }
    zmq_msg_close(&st->msg);
    if (st->zctx)
        zmq_ctx_term(st->zctx);
    msgpack_sbuffer_destroy(&st->scratch);
    free(st->stage);
    free(st);
}

static int s_setopt(zsrc_state_t *st, int opt, const void *v, size_t len)
{
    return zmq_conn_setopt(st->sock, opt, v, len);
}

/* One socket can bind an endpoint, and each SUB socket gets every
 * message: either would go wrong with several workers. */
static int s_check_workers(const zsrc_opts_t *o, unsigned workers,
                           const sl_config_t *cfg)
{
    if (workers <= 1)
        return 0;
    if (o->conn.bind)
        return zmq_conn_workers(&o->conn, cfg, workers, "sender");
    if (o->socket == ZSRC_SUB)
        return sl_config_error(o->socket_node, "socket: sub with %u workers "
                               "would receive every message %u times; use "
                               "workers: 1", workers, workers);
    return 0;
}

static int s_open(zsrc_state_t *st, const sl_config_t *cfg)
{
    const zsrc_opts_t *o = &st->o;
    int zero = 0;
    /* A frame this much larger than max_message makes ZeroMQ drop the
     * sender's connection before it stores the frame, so that a length
     * on the wire never costs more memory than this; below it, an
     * oversized message is received and reported as an input error. */
    int64_t hard = (int64_t)o->max_message * 2;
    int rc;

    if ((rc = zmq_conn_socket(o->socket == ZSRC_SUB ? ZMQ_SUB : ZMQ_PULL,
                              &st->zctx, &st->sock)) < 0)
        return rc;
    if ((rc = s_setopt(st, ZMQ_RCVHWM, &o->rcvhwm, sizeof(int))) < 0 ||
        (rc = s_setopt(st, ZMQ_MAXMSGSIZE, &hard, sizeof(hard))) < 0 ||
        (rc = s_setopt(st, ZMQ_LINGER, &zero, sizeof(zero))) < 0)
        return rc;
    if (o->socket == ZSRC_SUB) {
        size_t n = o->subscribe ? sl_config_len(o->subscribe) : 1;
        for (size_t i = 0; i < n; i++) {
            const char *pre =
                o->subscribe ? sl_config_str(sl_config_at(o->subscribe, i))
                             : "";
            if ((rc = s_setopt(st, ZMQ_SUBSCRIBE, pre, strlen(pre))) < 0)
                return rc;
        }
    }
    return zmq_conn_attach(&o->conn, cfg, st->sock);
}

static int zs_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    zsrc_state_t *st = calloc(1, sizeof(*st));
    int rc;

    if (!st)
        return -ENOMEM;
    zmq_msg_init(&st->msg);
    msgpack_sbuffer_init(&st->scratch);
    msgpack_packer_init(&st->spk, &st->scratch, msgpack_sbuffer_write);
    if ((rc = zsrc_opts_parse(cfg, &st->o)) < 0 ||
        (rc = s_check_workers(&st->o, sl_ctx_workers(ctx), cfg)) < 0)
        goto fail;
    rc = -ENOMEM;
    if (!(st->stage = strdup(sl_ctx_stage(ctx))))
        goto fail;
    if ((rc = s_open(st, cfg)) < 0)
        goto fail;
    *state = st;
    return 0;
fail:
    if (st->sock) {
        zmq_close(st->sock);
        st->sock = NULL;
    }
    zs_fini(st);
    return rc;
}

/* ---- records ------------------------------------------------------------- */

static int s_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

/* What a JSON text that does not start with '{' is, for messages. */
static const char *s_json_kind(char c)
{
    switch (c) {
    case '[': return "an array";
    case '"': return "a string";
    case 't': case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
    }
}

/* One JSON line (not blank). Decoded straight into the output: the
 * decoder packs nothing when the text is invalid, and a line starting with
 * '{' that decodes is an object. */
static int s_json_record(zsrc_state_t *st, sl_ctx_t *ctx, const char *line,
                         size_t len)
{
    char err[256];
    size_t lead = 0;
    int rc;

    while (lead < len && (line[lead] == ' ' || line[lead] == '\t'))
        lead++;
    if (line[lead] == '{') {
        msgpack_packer *pk = sl_emit_begin(ctx);
        if (!pk)
            return -ENOBUFS;
        rc = sl_json_decode(line, len, pk, err, sizeof(err));
        if (rc == 0)
            return sl_emit_commit(ctx);
        sl_emit_abort(ctx);
        if (rc != -EBADMSG)
            return rc;
    } else {
        st->scratch.size = 0;
        rc = sl_json_decode(line, len, &st->spk, err, sizeof(err));
        if (rc == 0) {
            sl_ctx_input_error(ctx, "zmq message %" PRIu64 ": record %u: "
                               "expected a JSON object, got %s", st->msg_no,
                               st->rec, s_json_kind(line[lead]));
            return 0;
        }
        if (rc != -EBADMSG)
            return rc;
    }
    /* The text is one line: "line 1 column C" is just "column C". */
    sl_ctx_input_error(ctx, "zmq message %" PRIu64 ": record %u: invalid "
                       "JSON: %s", st->msg_no, st->rec,
                       strncmp(err, "line 1 ", 7) ? err : err + 7);
    return 0;
}

/* Hands out records of the current message while the budget lasts.
 * Returns 0 once the message is used up, 1 if the budget ran out first
 * (the rest waits for the next pull), or a negative code. */
static int s_emit(zsrc_state_t *st, sl_ctx_t *ctx)
{
    const char *p = zmq_msg_data(&st->msg);
    size_t n = zmq_msg_size(&st->msg), len;
    int rc;

    while (st->off < n) {
        if (sl_ctx_budget(ctx) == 0)
            return 1;
        const char *at = p + st->off;
        if (st->o.format == ZSRC_JSON) {
            const char *nl = memchr(at, '\n', n - st->off);
            len = nl ? (size_t)(nl - at) : n - st->off;
            st->off += len + (nl != NULL);
            if (s_blank(at, len))
                continue;
            st->rec++;
            if ((rc = s_json_record(st, ctx, at, len)) < 0)
                return rc;
            continue;
        }
        st->rec++;
        zsrc_mpk_t r = zsrc_mpk_check(at, n - st->off, &len);
        if (r == ZSRC_MPK_OK && zsrc_mpk_is_map((unsigned char)*at)) {
            if ((rc = sl_emit_raw(ctx, at, len)) < 0)
                return rc;
        } else if (r == ZSRC_MPK_OK) {
            sl_ctx_input_error(ctx, "zmq message %" PRIu64 ": record %u: "
                               "expected a msgpack map, got %s", st->msg_no,
                               st->rec, zsrc_mpk_kind((unsigned char)*at));
        } else if (r == ZSRC_MPK_DEEP) {
            sl_ctx_input_error(ctx, "zmq message %" PRIu64 ": record %u: "
                               "msgpack value nested deeper than %d levels",
                               st->msg_no, st->rec, ZSRC_MPK_MAX_DEPTH);
        } else {
            /* No telling where a next record would start. */
            if (r == ZSRC_MPK_INVALID)
                sl_ctx_input_error(ctx, "zmq message %" PRIu64 ": record %u: "
                                   "invalid msgpack (byte 0xc1 at offset %zu "
                                   "of the message); rest of the message "
                                   "skipped", st->msg_no, st->rec,
                                   st->off + len);
            else
                sl_ctx_input_error(ctx, "zmq message %" PRIu64 ": record %u: "
                                   "truncated msgpack value (the message "
                                   "ends within it, %zu bytes after its "
                                   "start); rest of the message skipped",
                                   st->msg_no, st->rec, n - st->off);
            len = n - st->off;
        }
        st->off += len;
    }
    if (st->rec == 0)
        sl_ctx_input_error(ctx, "zmq message %" PRIu64 ": no records (%s "
                           "message)", st->msg_no, n ? "blank" : "empty");
    st->have = 0;
    return 0;
}

/* ---- receiving ----------------------------------------------------------- */

/* Receives one whole message if one is queued, without waiting. Its last
 * frame is the body (earlier frames, a topic say, are skipped). Returns 1
 * if a message was taken, 0 if none was queued, or a negative code. */
static int s_recv(zsrc_state_t *st, sl_ctx_t *ctx)
{
    int n = zmq_msg_recv(&st->msg, st->sock, ZMQ_DONTWAIT);
    size_t total;

    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    st->msg_no++;
    st->last_ns = sl_mono_ns();
    total = (size_t)n;
    /* The other frames of a message arrive with its first. */
    while (zmq_msg_more(&st->msg)) {
        do
            n = zmq_msg_recv(&st->msg, st->sock, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return -errno;
        total += (size_t)n;
    }
    if (total > st->o.max_message) {
        sl_ctx_input_error(ctx, "zmq message %" PRIu64 ": %zu bytes, larger "
                           "than max_message (%zu bytes); skipped",
                           st->msg_no, total, st->o.max_message);
        return 1;
    }
    if (st->o.eof_on && (size_t)n == st->o.eof_len &&
        !memcmp(zmq_msg_data(&st->msg), st->o.eof_on, st->o.eof_len)) {
        sl_log(ctx, SL_LOG_INFO, "%s: message %" PRIu64 " is the end "
               "marker (eof_on): end of input", st->o.conn.endpoint,
               st->msg_no);
        st->at_end = 1;
        return 1;
    }
    st->have = 1;
    st->off = 0;
    st->rec = 0;
    return 1;
}

/* Waits up to ZSRC_WAIT_MS (less when the idle timeout comes first) for a
 * message. Returns 1 when one may be there, 0 on timeout, or -ETIMEDOUT
 * once idle_timeout_ms has passed without a message. */
static int s_wait(zsrc_state_t *st, sl_ctx_t *ctx)
{
    zmq_pollitem_t item = {.socket = st->sock, .events = ZMQ_POLLIN};
    long wait_ms = ZSRC_WAIT_MS;

    if (st->o.idle_ns) {
        uint64_t idle = sl_mono_ns() - st->last_ns;
        if (idle >= st->o.idle_ns) {
            sl_log(ctx, SL_LOG_INFO, "%s: no message for %" PRIu64 " ms "
                   "(idle_timeout_ms): end of input", st->o.conn.endpoint,
                   st->o.idle_ns / 1000000u);
            return -ETIMEDOUT;
        }
        uint64_t left_ms = (st->o.idle_ns - idle + 999999u) / 1000000u;
        if (left_ms < (uint64_t)wait_ms)
            wait_ms = (long)left_ms;
    }
    int rc = zmq_poll(&item, 1, wait_ms);
    if (rc < 0 && errno != EINTR)
        return -errno;
    return rc > 0;
}

static int zs_pull(void *state, sl_ctx_t *ctx)
{
    zsrc_state_t *st = state;
    size_t budget = sl_ctx_budget(ctx);
    int waited = 0, rc;

    if (st->at_end || sl_ctx_stopping(ctx))
        return SL_EOF;
    if (!st->started) {
        st->started = 1;
        st->last_ns = sl_mono_ns(); /* idle counts from the first pull */
    }
    for (unsigned msgs = 0;;) {
        if (st->have) {
            rc = s_emit(st, ctx);
            if (rc != 0)
                return rc > 0 ? 0 : rc;
        }
        /* Records emitted before the end are kept with SL_EOF. */
        if (st->at_end)
            return SL_EOF;
        if (msgs == ZSRC_MSGS_PER_PULL)
            return 0;
        rc = s_recv(st, ctx);
        if (rc > 0) {
            msgs++;
            continue;
        }
        if (rc < 0)
            break;
        /* Nothing queued: hand on what we have rather than wait. */
        if (sl_ctx_budget(ctx) < budget || waited)
            return 0;
        rc = s_wait(st, ctx);
        if (rc == -ETIMEDOUT) {
            st->at_end = 1;
            return SL_EOF;
        }
        if (rc < 0)
            break;
        waited = 1;
    }
    sl_log(ctx, SL_LOG_ERROR, "%s: receiving failed: %s",
           st->o.conn.endpoint, zmq_strerror(-rc));
    return rc;
}

SL_STAGE_DEFINE(.name = "zmq_source",
                .summary = "receives msgpack or JSON records over ZeroMQ "
                           "(PULL or SUB)",
                .kind = SL_STAGE_SOURCE, .max_workers = 0,
                .config_keys = zsrc_keys, .validate = zs_validate,
                .init = zs_init, .pull = zs_pull, .fini = zs_fini);
