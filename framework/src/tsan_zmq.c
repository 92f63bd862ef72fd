/*
 * ThreadSanitizer builds only (-DSLUICE_TSAN=ON): teaches TSan what
 * ZeroMQ guarantees about a message.
 *
 * Batches cross between threads as zero-copy ZeroMQ messages: a worker
 * fills a buffer, a dispatcher wraps it with zmq_msg_init_data and sends it
 * on an inproc socket, and the next stage's dispatcher reads the same bytes
 * and later frees them. ZeroMQ orders all of this (its pipes are lock-free
 * queues with their own atomics), but libzmq is not built with TSan, so TSan
 * sees none of that ordering and reports every read and free of a batch as
 * a race with the writes that filled it.
 *
 * These definitions take the place of libzmq's (the executables export
 * them, so plugins bind to them too) and pass each call on to libzmq,
 * adding the happens-before edges ZeroMQ gives:
 * - a send releases the message's bytes and a receive acquires them;
 * - a close releases them, and the free function given to
 *   zmq_msg_init_data acquires them before it runs: copies of one message
 *   (zmq_msg_copy, one per worker sharing a batch) are closed by several
 *   threads, and libzmq frees the bytes in whichever closes last, ordered
 *   by a reference count TSan cannot see.
 * The edges are keyed on the data address, so they order exactly the
 * threads that share those bytes and nothing else: a race on anything the
 * message does not carry is still reported. Copied messages
 * (zmq_send/zmq_recv) need nothing: their bytes are copied inside libzmq,
 * whose own accesses TSan is told to ignore (tests/tsan.supp).
 */
#if defined(__SANITIZE_THREAD__)

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sanitizer/tsan_interface.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

#define SL_TSAN_EXPORT __attribute__((visibility("default")))

typedef int msg_send_fn(zmq_msg_t *, void *, int);
typedef int msg_recv_fn(zmq_msg_t *, void *, int);
typedef int sendmsg_fn(void *, zmq_msg_t *, int);
typedef int recvmsg_fn(void *, zmq_msg_t *, int);
typedef int init_data_fn(zmq_msg_t *, void *, size_t, zmq_free_fn *, void *);
typedef int close_fn(zmq_msg_t *);

static struct {
    msg_send_fn *msg_send;
    msg_recv_fn *msg_recv;
    sendmsg_fn *sendmsg;
    recvmsg_fn *recvmsg;
    init_data_fn *init_data;
    close_fn *close;
} s_real;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void *s_next(const char *name)
{
    void *fn = dlsym(RTLD_NEXT, name);
    if (!fn) { /* cannot send or receive at all: nothing sensible to do */
        fprintf(stderr, "sluice (tsan): %s not found in libzmq\n", name);
        abort();
    }
    return fn;
}

static void s_resolve(void)
{
    s_real.msg_send = (msg_send_fn *)s_next("zmq_msg_send");
    s_real.msg_recv = (msg_recv_fn *)s_next("zmq_msg_recv");
    s_real.sendmsg = (sendmsg_fn *)s_next("zmq_sendmsg");
    s_real.recvmsg = (recvmsg_fn *)s_next("zmq_recvmsg");
    s_real.init_data = (init_data_fn *)s_next("zmq_msg_init_data");
    s_real.close = (close_fn *)s_next("zmq_msg_close");
}

/* Before the send: afterwards msg is empty and its bytes may already be in
 * the receiver's hands. A failed send keeps them here, and an extra
 * release costs nothing. */
static void s_release(zmq_msg_t *msg)
{
    void *data = zmq_msg_data(msg);
    if (data && zmq_msg_size(msg))
        __tsan_release(data);
}

static void s_acquire(zmq_msg_t *msg)
{
    void *data = zmq_msg_data(msg);
    if (data && zmq_msg_size(msg))
        __tsan_acquire(data);
}

SL_TSAN_EXPORT int zmq_msg_send(zmq_msg_t *msg, void *s, int flags)
{
    pthread_once(&s_once, s_resolve);
    s_release(msg);
    return s_real.msg_send(msg, s, flags);
}

SL_TSAN_EXPORT int zmq_msg_recv(zmq_msg_t *msg, void *s, int flags)
{
    pthread_once(&s_once, s_resolve);
    int rc = s_real.msg_recv(msg, s, flags);
    if (rc >= 0)
        s_acquire(msg);
    return rc;
}

SL_TSAN_EXPORT int zmq_sendmsg(void *s, zmq_msg_t *msg, int flags)
{
    pthread_once(&s_once, s_resolve);
    s_release(msg);
    return s_real.sendmsg(s, msg, flags);
}

SL_TSAN_EXPORT int zmq_recvmsg(void *s, zmq_msg_t *msg, int flags)
{
    pthread_once(&s_once, s_resolve);
    int rc = s_real.recvmsg(s, msg, flags);
    if (rc >= 0)
        s_acquire(msg);
    return rc;
}

/* The caller's free function, run by whichever thread frees the bytes. */
typedef struct s_free_hook {
    zmq_free_fn *ffn;
    void *hint;
} s_free_hook_t;

/* Often run by a libzmq I/O thread once the bytes are on the wire: the
 * acquire comes first, since it also orders the hook's own fields, written
 * before the message was sent. */
static void s_free_hooked(void *data, void *arg)
{
    if (data)
        __tsan_acquire(data);
    s_free_hook_t h = *(s_free_hook_t *)arg;
    free(arg);
    h.ffn(data, h.hint);
}

SL_TSAN_EXPORT int zmq_msg_init_data(zmq_msg_t *msg, void *data, size_t size,
                                     zmq_free_fn *ffn, void *hint)
{
    pthread_once(&s_once, s_resolve);
    if (!ffn)
        return s_real.init_data(msg, data, size, ffn, hint);
    s_free_hook_t *h = malloc(sizeof(*h));
    if (!h) {
        errno = ENOMEM;
        return -1;
    }
    h->ffn = ffn;
    h->hint = hint;
    int rc = s_real.init_data(msg, data, size, s_free_hooked, h);
    if (rc != 0)
        free(h); /* libzmq did not take the bytes: the caller still owns
                    them, and the hook is not called */
    return rc;
}

SL_TSAN_EXPORT int zmq_msg_close(zmq_msg_t *msg)
{
    pthread_once(&s_once, s_resolve);
    s_release(msg);
    return s_real.close(msg);
}

#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int sl__tsan_zmq_unused_t;
#endif
