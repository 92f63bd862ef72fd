/*
 * Taps: copies of the records crossing a link, sent to an outside
 * recorder (`sluice record --from`) while a run goes on.
 *
 * A tap never slows the run: the dispatcher that sends a batch on a tapped
 * link converts it and hands it to the tap's own thread through a queue
 * bounded in bytes; when the queue is full (the recorder is slower than the
 * link) the copy is dropped and counted, and the recorder is told how many
 * at the end. With no tap on a stage the cost is one relaxed atomic load
 * per batch sent.
 *
 * On the wire (ZeroMQ PUSH, connecting to the recorder's endpoint) a tap
 * sends, in order:
 *   - {"tap": ID, "link": "A>B", "topology": NAME}
 *   - per batch: concatenated msgpack arrays [u64 wall_ns, record_map]
 *   - {"end": true, "dropped": N} when the tap is removed or the run ends.
 */
#ifndef SL_TAP_H
#define SL_TAP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_topology sl_topology_t;
typedef struct sl_taps sl_taps_t;

/* Bytes of converted batches a tap may hold for its recorder. */
#define SL_TAP_QUEUE_BYTES (64u << 20)
#define SL_TAP_MAX 16

/* The run's registry. zctx is the run's ZeroMQ context. NULL on ENOMEM. */
sl_taps_t *sl__taps_new(const sl_topology_t *topo, void *zctx);
/* Ends every tap (end messages sent, threads joined) and frees. */
void sl__taps_destroy(sl_taps_t **taps);
/* Ends every tap now (the run is over); later adds fail with -ESHUTDOWN. */
void sl__taps_close(sl_taps_t *taps);

/* Starts a tap on `link`: "A>B" (that link), "A>" (everything A sends) or
 * ">B" (everything B receives). *id gets its number. -ENOENT for an
 * unknown stage or link, -EINVAL for a bad spec or endpoint, -EBUSY past
 * SL_TAP_MAX, -ESHUTDOWN after the run; the reason goes into err. */
int sl__taps_add(sl_taps_t *taps, const char *link, const char *endpoint,
                 unsigned *id, char *err, size_t errlen);
/* Ends tap id (its end message is sent). -ENOENT if there is none. */
int sl__taps_remove(sl_taps_t *taps, unsigned id);

/* Hot path, from the dispatcher of stage `from`: nonzero when some tap
 * may want its batches. */
int sl__taps_on(const sl_taps_t *taps, size_t from);
/* A batch (wire form, see batch.h) sent from `from` to `to`. */
void sl__taps_batch(sl_taps_t *taps, size_t from, size_t to, const void *buf,
                    size_t len);

#endif /* SL_TAP_H */
