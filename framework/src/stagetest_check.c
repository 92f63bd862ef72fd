/*
 * Dead letters and files against what a case expects. Dead letters of one
 * stage come in a known order and are compared in it; those of a topology
 * are paired by a maximum matching, since several workers reorder them.
 */
#include "stagetest_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- dead letters -------------------------------------------------------- */

static void s_got_dl_text(const sl_stest_got_dl_t *d, char *out, size_t len)
{
    char q[SL_STEST_SHOW_MAX + 8];
    sl__stest_quote(d->error, strlen(d->error), q, sizeof(q));
    if (d->stage)
        snprintf(out, len, "stage '%s': %s", d->stage, q);
    else
        snprintf(out, len, "%s", q);
}

/* Why got does not satisfy want, into why; false when it does. */
static bool s_dl_mismatch(const sl_stest_dl_t *w, const sl_stest_got_dl_t *g,
                          msgpack_zone *zone, char *why, size_t len)
{
    char gt[1024];
    s_got_dl_text(g, gt, sizeof(gt));
    if (w->stage && (!g->stage || strcmp(w->stage, g->stage) != 0)) {
        snprintf(why, len, "expected stage '%s', got %s", w->stage, gt);
        return true;
    }
    if (w->error && !strstr(g->error, w->error)) {
        char q[SL_STEST_SHOW_MAX + 8];
        sl__stest_quote(w->error, strlen(w->error), q, sizeof(q));
        snprintf(why, len, "expected an error containing %s, got %s", q, gt);
        return true;
    }
    if (w->retry == 1 && g->final) {
        snprintf(why, len, "expected a retryable error (retry: true), got a "
                 "final one: %s", gt);
        return true;
    }
    if (w->retry == 0 && !g->final) {
        snprintf(why, len, "expected a final error (retry: false), got a "
                 "retryable one: %s", gt);
        return true;
    }
    if (w->has_record) {
        msgpack_object wo, go;
        sl__stest_unpack(&w->record, zone, &wo);
        if (!g->record.len) {
            char buf[SL_STEST_SHOW_MAX + 8];
            sl__stest_show_rec(&wo, buf, sizeof(buf));
            snprintf(why, len, "expected record %s, got none (an input "
                     "error): %s", buf, gt);
            return true;
        }
        sl__stest_unpack(&g->record, zone, &go);
        if (!sl__stest_equal(&wo, &go)) {
            char diff[1024];
            sl__stest_first_diff(&wo, &go, diff, sizeof(diff));
            snprintf(why, len, "record: %s", diff);
            return true;
        }
    }
    return false;
}

static void s_dl_want_text(const sl_stest_dl_t *w, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "a dead letter");
    if (w->stage && n < len)
        n += (size_t)snprintf(out + n, len - n, " from stage '%s'", w->stage);
    if (w->error && n < len) {
        char q[SL_STEST_SHOW_MAX + 8];
        sl__stest_quote(w->error, strlen(w->error), q, sizeof(q));
        n += (size_t)snprintf(out + n, len - n, " with an error containing %s",
                              q);
    }
    if (w->retry >= 0 && n < len)
        snprintf(out + n, len - n, " (retry: %s)", w->retry ? "true" : "false");
}

/* Kuhn's augmenting paths: substrings do not make an equivalence, so
 * first-fit could miss a pairing that exists. */
static bool s_augment(size_t j, const bool *ok, size_t ng, bool *seen,
                      long *of_got, long *of_want)
{
    for (size_t i = 0; i < ng; i++) {
        if (!ok[j * ng + i] || seen[i])
            continue;
        seen[i] = true;
        if (of_got[i] < 0 || s_augment((size_t)of_got[i], ok, ng, seen,
                                       of_got, of_want)) {
            of_got[i] = (long)j;
            of_want[j] = (long)i;
            return true;
        }
    }
    return false;
}

void sl__stest_check_dls(const sl_stest_case_t *c, const sl_stest_got_t *got,
                         bool ordered, sl_diag_t *r)
{
    size_t nw = c->n_dls, ng = got->n_dls;
    char why[2048], text[1024];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    if (nw != ng)
        sl__stest_fail(r, "expected %zu dead %s, got %zu", nw,
                       sl__stest_plural(nw, "letter", "letters"), ng);
    if (ordered) {
        size_t both = nw < ng ? nw : ng;
        for (size_t i = 0; i < both; i++)
            if (s_dl_mismatch(&c->dls[i], &got->dls[i], &zone, why,
                              sizeof(why)))
                sl__stest_fail(r, "dead letter %zu: %s", i + 1, why);
        for (size_t i = both; i < ng; i++) {
            s_got_dl_text(&got->dls[i], text, sizeof(text));
            sl__stest_fail(r, "dead letter %zu: unexpected: %s", i + 1, text);
        }
        for (size_t i = both; i < nw; i++) {
            s_dl_want_text(&c->dls[i], text, sizeof(text));
            sl__stest_fail(r, "dead letter %zu: missing: expected %s", i + 1,
                           text);
        }
        msgpack_zone_destroy(&zone);
        return;
    }
    bool *ok = calloc(nw * ng + 1, sizeof(*ok));
    bool *seen = calloc(ng + 1, sizeof(*seen));
    long *of_got = malloc((ng + 1) * sizeof(*of_got));
    long *of_want = malloc((nw + 1) * sizeof(*of_want));
    if (!ok || !seen || !of_got || !of_want) {
        sl__stest_fail(r, "out of memory comparing dead letters");
        goto out;
    }
    for (size_t j = 0; j < nw; j++)
        for (size_t i = 0; i < ng; i++)
            ok[j * ng + i] = !s_dl_mismatch(&c->dls[j], &got->dls[i], &zone,
                                            why, sizeof(why));
    for (size_t i = 0; i < ng; i++)
        of_got[i] = -1;
    for (size_t j = 0; j < nw; j++) {
        of_want[j] = -1;
        memset(seen, 0, ng * sizeof(*seen));
        s_augment(j, ok, ng, seen, of_got, of_want);
    }
    memset(seen, 0, ng * sizeof(*seen)); /* now: shown as a closest one */
    /* an unmatched expectation is shown against the first dead letter
     * left over (of its stage, when it names one), to say what differs */
    for (size_t j = 0; j < nw; j++) {
        if (of_want[j] >= 0)
            continue;
        const sl_stest_dl_t *w = &c->dls[j];
        long near = -1;
        for (size_t i = 0; i < ng && near < 0; i++)
            if (of_got[i] < 0 && !seen[i] &&
                (!w->stage || (got->dls[i].stage &&
                               strcmp(w->stage, got->dls[i].stage) == 0)))
                near = (long)i;
        for (size_t i = 0; i < ng && near < 0; i++)
            if (of_got[i] < 0 && !seen[i])
                near = (long)i;
        s_dl_want_text(w, text, sizeof(text));
        if (near < 0) {
            sl__stest_fail(r, "dead letter %zu: missing: expected %s", j + 1,
                           text);
            continue;
        }
        seen[near] = true;
        s_dl_mismatch(w, &got->dls[near], &zone, why, sizeof(why));
        sl__stest_fail(r, "dead letter %zu: none matches; closest: %s", j + 1,
                       why);
    }
    for (size_t i = 0; i < ng; i++) {
        if (of_got[i] >= 0 || seen[i])
            continue;
        s_got_dl_text(&got->dls[i], text, sizeof(text));
        sl__stest_fail(r, "unexpected dead letter: %s", text);
    }
out:
    free(ok);
    free(seen);
    free(of_got);
    free(of_want);
    msgpack_zone_destroy(&zone);
}

/* ---- files -------------------------------------------------------------- */

static char *s_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n < cap)
            continue;
        char *bigger = realloc(buf, cap * 2 + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}


/* One line of text: [*at, end of line), moving *at past its newline. */
static bool s_line(const char *s, size_t len, size_t *at, size_t *start,
                   size_t *n)
{
    if (*at >= len)
        return false;
    *start = *at;
    const char *nl = memchr(s + *at, '\n', len - *at);
    *n = nl ? (size_t)(nl - (s + *at)) : len - *at;
    *at += *n + (nl ? 1 : 0);
    return true;
}

static void s_compare_text(const char *label, const sl_stest_blob_t *want,
                           const char *got, size_t glen, sl_diag_t *r)
{
    if (want->len == glen && memcmp(want->data, got, glen) == 0)
        return;
    bool binary = memchr(want->data, '\0', want->len) ||
                  memchr(got, '\0', glen);
    if (binary) {
        size_t k = 0;
        while (k < want->len && k < glen && want->data[k] == got[k])
            k++;
        sl__stest_fail(r, "%s: expected %zu bytes, got %zu; first difference "
                       "at byte %zu", label, want->len, glen, k);
        return;
    }
    size_t wa = 0, ga = 0, ws = 0, wn = 0, gs = 0, gn = 0;
    char a[SL_STEST_SHOW_MAX + 8], b[SL_STEST_SHOW_MAX + 8];
    for (unsigned line = 1;; line++) {
        bool hw = s_line(want->data, want->len, &wa, &ws, &wn);
        bool hg = s_line(got, glen, &ga, &gs, &gn);
        if (!hw && !hg) { /* same lines: only the final newline differs */
            sl__stest_fail(r, "%s: expected %s final newline", label,
                           want->len && want->data[want->len - 1] == '\n'
                               ? "a"
                               : "no");
            return;
        }
        if (hw && hg && wn == gn && memcmp(want->data + ws, got + gs, wn) == 0)
            continue;
        if (hw)
            sl__stest_quote(want->data + ws, wn, a, sizeof(a));
        if (hg)
            sl__stest_quote(got + gs, gn, b, sizeof(b));
        if (hw && hg)
            sl__stest_fail(r, "%s: line %u: expected %s, got %s", label, line,
                           a, b);
        else if (hw)
            sl__stest_fail(r, "%s: line %u: expected %s, got the end of the "
                           "file", label, line, a);
        else
            sl__stest_fail(r, "%s: line %u: expected the end of the file, got "
                           "%s", label, line, b);
        return;
    }
}

void sl__stest_check_files(const sl_stest_case_t *c, const char *dir,
                           const char *stdout_path, sl_diag_t *r)
{
    char label[600];
    for (size_t i = 0; i < c->n_want_files; i++) {
        const sl_stest_fdata_t *f = &c->want_files[i];
        char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, f->path) < 0) {
            sl__stest_fail(r, "out of memory");
            return;
        }
        size_t len = 0;
        char *data = s_read(path, &len);
        snprintf(label, sizeof(label), "file \"%s\"", f->path);
        if (!data)
            sl__stest_fail(r, "%s: not found (%s)", label, strerror(errno));
        else
            s_compare_text(label, &f->content, data, len, r);
        free(data);
        free(path);
    }
    if (c->has_stdout && stdout_path) {
        size_t len = 0;
        char *data = s_read(stdout_path, &len);
        if (!data)
            sl__stest_fail(r, "stdout: cannot read what the stage printed");
        else
            s_compare_text("stdout", &c->want_stdout, data, len, r);
        free(data);
    }
}
