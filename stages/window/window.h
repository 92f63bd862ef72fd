/* One window worker's state, shared by window.c (records) and
 * window_close.c (closing and emitting windows). */
#ifndef WINDOW_H
#define WINDOW_H

#include "window_conf.h"
#include "window_table.h"

#include <locale.h>
#include <msgpack.h>
#include <sluice/stage.h>

typedef struct wn {
    wn_conf_t c;
    wn_table_t t;
    locale_t loc; /* "C", for time_format; 0 without one */
    msgpack_sbuffer key; /* the record's key, reused */
    msgpack_packer kpk;
    const msgpack_object *vals[WN_MAX_AGGS]; /* per field; NULL: skip */
    uint32_t *rec_groups; /* the record's groups, size / slide of them */
    int have_max;
    int64_t max_seen;  /* the newest event time handled (ns) */
    int64_t fill_next; /* emit_empty: the next window to close, or WN_UNSET */
    uint64_t late_dropped;
    uint64_t gap_windows_skipped;
} wn_t;

/* Closes every window that ends at or before wm, or with flush set every
 * open window: emits one record per group (and, with emit_empty, one per
 * known key absent from the window), in window order, then frees them.
 * On an emit error nothing is freed and the error is returned, so that
 * the windows are emitted again later. */
int wn_close(wn_t *w, sl_ctx_t *ctx, int64_t wm, int flush);

/* The most groups the windows closed by wm hold. */
size_t wn_closing_groups(const wn_t *w, int64_t wm);

#endif
