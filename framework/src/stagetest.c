/*
 * `sluice test`: files, cases and their temporary folders. Each case runs
 * in a folder of its own, where its `files:` are made; `${TMP}` anywhere in
 * the test file stands for that folder, so the file is parsed again with
 * the folder's path put in (only when it uses `${TMP}`) and the case is
 * taken from that parse. What the stage prints on standard output goes to
 * a file there too, so that it neither mixes with the report nor is lost.
 */
#include "stagetest_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sluice/json.h>

#define S_TMP_VAR "${TMP}"
#define S_STDOUT_FILE ".sluice-test-stdout"

struct sl_stest_file {
    char *path;
    char *dir;
    char *text;
    sl_config_doc_t *doc;
    sl_stest_case_t *cases;
    size_t n_cases;
};

/* ---- small shared helpers ------------------------------------------------ */

void sl__stest_fail(sl_diag_t *r, const char *fmt, ...)
{
    if (r->count > SL_STEST_MAX_REASONS)
        return;
    if (r->count == SL_STEST_MAX_REASONS) {
        sl__diag_add(r, "... (more differences not shown)");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    sl__diag_add(r, "%s", msg ? msg : fmt);
    free(msg);
}

static int s_blob(sl_stest_blob_t *b, const void *data, size_t len)
{
    b->data = malloc(len ? len : 1);
    if (!b->data)
        return -ENOMEM;
    if (len)
        memcpy(b->data, data, len);
    b->len = len;
    return 0;
}

int sl__stest_stream_add(sl_stest_stream_t *s, const void *data, size_t len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        sl_stest_blob_t *g = realloc(s->recs, cap * sizeof(*g));
        if (!g)
            return -ENOMEM;
        s->recs = g;
        s->cap = cap;
    }
    if (s_blob(&s->recs[s->n], data, len) != 0)
        return -ENOMEM;
    s->n++;
    return 0;
}

int sl__stest_got_dl(sl_stest_got_t *got, const char *stage,
                     const char *error, bool final, uint32_t attempts,
                     const void *record, size_t len)
{
    if (got->n_dls == got->cap_dls) {
        size_t cap = got->cap_dls ? got->cap_dls * 2 : 8;
        sl_stest_got_dl_t *g = realloc(got->dls, cap * sizeof(*g));
        if (!g)
            return -ENOMEM;
        got->dls = g;
        got->cap_dls = cap;
    }
    sl_stest_got_dl_t *d = &got->dls[got->n_dls];
    memset(d, 0, sizeof(*d));
    d->final = final;
    d->attempts = attempts;
    d->stage = stage ? strdup(stage) : NULL;
    d->error = strdup(error ? error : "");
    if ((stage && !d->stage) || !d->error ||
        (record && len && s_blob(&d->record, record, len) != 0)) {
        free(d->stage);
        free(d->error);
        return -ENOMEM;
    }
    got->n_dls++;
    return 0;
}

void sl__stest_got_fini(sl_stest_got_t *got)
{
    for (size_t i = 0; i < got->n_streams; i++) {
        sl_stest_stream_t *s = &got->streams[i];
        for (size_t k = 0; k < s->n; k++)
            free(s->recs[k].data);
        free(s->recs);
        free(s->stage);
    }
    free(got->streams);
    for (size_t i = 0; i < got->n_dls; i++) {
        free(got->dls[i].stage);
        free(got->dls[i].error);
        free(got->dls[i].record.data);
    }
    free(got->dls);
    memset(got, 0, sizeof(*got));
}

/* ---- files --------------------------------------------------------------- */

static sl_stest_file_t *s_make(const char *name, const char *basedir,
                               const char *text, sl_diag_t *diag)
{
    sl_stest_file_t *f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(name)) || !(f->text = strdup(text))) {
        sl__diag_add(diag, "%s: out of memory", name);
        goto fail;
    }
    sl_diag_t local;
    sl__diag_init(&local);
    f->doc = sl__config_doc_parse(name, basedir, text, strlen(text), &local);
    for (size_t i = 0; i < local.count; i++)
        sl__diag_add(diag, "%s", local.lines[i]);
    if (!f->doc) {
        sl__diag_fini(&local);
        goto fail;
    }
    if (!(f->dir = strdup(sl__config_doc_dir(f->doc)))) {
        sl__diag_fini(&local);
        goto fail;
    }
    size_t before = local.count;
    sl__config_doc_set_diag(f->doc, &local, NULL);
    int rc = sl__stest_parse_cases(f->doc, &f->cases, &f->n_cases);
    sl__config_doc_set_diag(f->doc, NULL, NULL);
    sl__diag_sort(&local, before, name);
    for (size_t i = before; i < local.count; i++)
        sl__diag_add(diag, "%s", local.lines[i]);
    sl__diag_fini(&local);
    if (rc != 0) {
        if (rc == -ENOMEM)
            sl__diag_add(diag, "%s: out of memory", name);
        goto fail;
    }
    return f;
fail:
    sl__stest_destroy(&f);
    return NULL;
}

sl_stest_file_t *sl__stest_parse(const char *name, const char *basedir,
                                 const char *text, sl_diag_t *diag)
{
    return s_make(name, basedir, text, diag);
}

sl_stest_file_t *sl__stest_load(const char *path, sl_diag_t *diag)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        sl__diag_add(diag, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    char buf[8192];
    size_t got;
    int bad = !mem;
    while (mem && (got = fread(buf, 1, sizeof(buf), fp)) > 0)
        bad |= fwrite(buf, 1, got, mem) != got;
    bad |= ferror(fp);
    fclose(fp);
    if (mem)
        fclose(mem);
    if (bad || !text || strlen(text) != len) {
        sl__diag_add(diag, "%s: cannot read: %s", path,
                     text && strlen(text) != len ? "the file contains NUL"
                                                 : "read error");
        free(text);
        return NULL;
    }
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    if (dir && !*dir) {
        free(dir);
        dir = strdup("/");
    }
    sl_stest_file_t *f = dir ? s_make(path, dir, text, diag) : NULL;
    free(dir);
    free(text);
    return f;
}

void sl__stest_destroy(sl_stest_file_t **fp)
{
    sl_stest_file_t *f = fp ? *fp : NULL;
    if (!f)
        return;
    sl__stest_cases_free(f->cases, f->n_cases);
    sl__config_doc_destroy(&f->doc);
    free(f->text);
    free(f->dir);
    free(f->path);
    free(f);
    *fp = NULL;
}

size_t sl__stest_count(const sl_stest_file_t *f) { return f->n_cases; }

const char *sl__stest_name(const sl_stest_file_t *f, size_t i)
{
    return i < f->n_cases ? f->cases[i].name : NULL;
}

/* ---- a case's folder ----------------------------------------------------- */

static int s_rm_one(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void s_rmtree(const char *dir)
{
    nftw(dir, s_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh folder whose path can stand in YAML text as it is. */
static char *s_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base || base[0] != '/' ||
        base[strspn(base, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789/._-")] != '\0')
        base = "/tmp";
    char *path = NULL;
    if (asprintf(&path, "%s/sluice-test-XXXXXX", base) < 0)
        return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static int s_mkdirs(const char *dir, char *path)
{
    /* every parent below dir of the file at path */
    for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        int rc = mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -errno;
        *s = '/';
        if (rc)
            return rc;
    }
    return 0;
}

static int s_make_files(const sl_stest_case_t *c, const char *dir,
                        sl_diag_t *r)
{
    for (size_t i = 0; i < c->n_files; i++) {
        char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, c->files[i].path) < 0)
            return -ENOMEM;
        int rc = s_mkdirs(dir, path);
        FILE *fp = rc ? NULL : fopen(path, "wb");
        if (!fp ||
            fwrite(c->files[i].content.data, 1, c->files[i].content.len, fp) !=
                c->files[i].content.len) {
            sl__stest_fail(r, "cannot make file \"%s\": %s", c->files[i].path,
                           strerror(rc ? -rc : errno));
            rc = -EIO;
        }
        if (fp && fclose(fp) != 0 && !rc) {
            sl__stest_fail(r, "cannot make file \"%s\": %s", c->files[i].path,
                           strerror(errno));
            rc = -EIO;
        }
        free(path);
        if (rc)
            return rc;
    }
    return 0;
}

/* text with every ${TMP} replaced by dir. */
static char *s_subst(const char *text, const char *dir)
{
    size_t vl = strlen(S_TMP_VAR), dl = strlen(dir), n = 0;
    for (const char *s = text; (s = strstr(s, S_TMP_VAR)); s += vl)
        n++;
    char *out = malloc(strlen(text) + n * dl + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *s = text;;) {
        const char *hit = strstr(s, S_TMP_VAR);
        size_t keep = hit ? (size_t)(hit - s) : strlen(s);
        memcpy(o, s, keep);
        o += keep;
        if (!hit)
            break;
        memcpy(o, dir, dl);
        o += dl;
        s = hit + vl;
    }
    *o = '\0';
    return out;
}

/* ---- standard output ----------------------------------------------------- */

static int s_stdout_to(const char *path)
{
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (saved < 0 || fd < 0 || dup2(fd, STDOUT_FILENO) < 0) {
        if (saved >= 0)
            close(saved);
        saved = -1;
    }
    if (fd >= 0)
        close(fd);
    return saved;
}

static void s_stdout_back(int saved)
{
    if (saved < 0)
        return;
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
}

/* ---- what a case produced, for --verbose --------------------------------- */

static void s_show_blob(FILE *out, const sl_stest_blob_t *b)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object o;
    size_t off = 0;
    if (msgpack_unpack(b->data, b->len, &off, &zone, &o) ==
        MSGPACK_UNPACK_SUCCESS) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (sl_json_encode(&o, &sb) == 0 && sb.data)
            fprintf(out, "%.*s", (int)sb.size, sb.data);
        msgpack_sbuffer_destroy(&sb);
    } else {
        fprintf(out, "<%zu bytes that are not msgpack>", b->len);
    }
    msgpack_zone_destroy(&zone);
}

static char *s_outputs_text(const sl_stest_got_t *g)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return NULL;
    for (size_t i = 0; i < g->n_streams; i++) {
        const sl_stest_stream_t *s = &g->streams[i];
        if (s->stage)
            fprintf(out, "stage '%s': %zu record%s\n", s->stage, s->n,
                    s->n == 1 ? "" : "s");
        else
            fprintf(out, "%zu output record%s\n", s->n, s->n == 1 ? "" : "s");
        for (size_t k = 0; k < s->n; k++) {
            fprintf(out, "  %soutput %zu: ", s->stage ? "  " : "", k + 1);
            s_show_blob(out, &s->recs[k]);
            fputc('\n', out);
        }
    }
    fprintf(out, "%zu dead letter%s\n", g->n_dls, g->n_dls == 1 ? "" : "s");
    for (size_t i = 0; i < g->n_dls; i++) {
        const sl_stest_got_dl_t *d = &g->dls[i];
        fprintf(out, "  dead letter %zu: ", i + 1);
        if (d->stage)
            fprintf(out, "stage '%s' (%u attempt%s): ", d->stage, d->attempts,
                    d->attempts == 1 ? "" : "s");
        else
            fprintf(out, "(%s): ", d->final ? "final" : "retryable");
        msgpack_object o = {.type = MSGPACK_OBJECT_STR};
        o.via.str.ptr = d->error;
        o.via.str.size = (uint32_t)strlen(d->error);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (sl_json_encode(&o, &sb) == 0 && sb.data)
            fprintf(out, "%.*s", (int)sb.size, sb.data);
        msgpack_sbuffer_destroy(&sb);
        if (d->record.len) {
            fprintf(out, " record ");
            s_show_blob(out, &d->record);
        }
        fputc('\n', out);
    }
    fclose(out);
    return text;
}

/* ---- running a case ------------------------------------------------------ */

static void s_check(const sl_stest_case_t *c, const sl_stest_got_t *got,
                    const char *tmp, const char *stdout_path, sl_diag_t *r)
{
    if (c->kind == SL_STEST_STAGE) {
        if (c->start_error)
            return; /* it started, or not: nothing else to look at */
        sl__stest_check_stream(&c->out, &got->streams[0], "", r);
        sl__stest_check_dls(c, got, true, r);
        sl__stest_check_files(c, tmp, stdout_path, r);
        return;
    }
    for (size_t k = 0; k < c->n_targets && k < got->n_streams; k++) {
        char label[160];
        snprintf(label, sizeof(label), "stage '%.100s': ",
                 c->targets[k].stage);
        sl__stest_check_stream(&c->targets[k].want, &got->streams[k], label,
                               r);
    }
    sl__stest_check_dls(c, got, false, r);
}

void sl__stest_result_fini(sl_stest_result_t *res)
{
    sl__diag_fini(&res->reasons);
    free(res->outputs);
    res->outputs = NULL;
}

/* The cases of f parsed again with ${TMP} as tmp, and their document. */
static int s_reparse(const sl_stest_file_t *f, const char *tmp,
                     sl_config_doc_t **doc, sl_stest_case_t **cases,
                     size_t *n, sl_diag_t *r)
{
    char *text = s_subst(f->text, tmp);
    if (!text)
        return -ENOMEM;
    sl_diag_t d;
    sl__diag_init(&d);
    *doc = sl__config_doc_parse(f->path, f->dir, text, strlen(text), &d);
    free(text);
    int rc = -EINVAL;
    if (*doc) {
        sl__config_doc_set_diag(*doc, &d, NULL);
        rc = sl__stest_parse_cases(*doc, cases, n);
        sl__config_doc_set_diag(*doc, NULL, NULL);
    }
    if (rc) {
        sl__stest_fail(r, "the file does not hold with ${TMP} = %s:", tmp);
        for (size_t i = 0; i < d.count; i++)
            sl__stest_fail(r, "  %s", d.lines[i]);
        sl__config_doc_destroy(doc);
    }
    sl__diag_fini(&d);
    return rc;
}

int sl__stest_run_case(const sl_stest_file_t *f, size_t i,
                       sl_stest_result_t *res)
{
    memset(res, 0, sizeof(*res));
    sl__diag_init(&res->reasons);
    sl_diag_t *r = &res->reasons;
    if (i >= f->n_cases) {
        sl__stest_fail(r, "no case %zu", i);
        return -EINVAL;
    }
    char *tmp = s_tmpdir();
    if (!tmp) {
        sl__stest_fail(r, "cannot make a temporary folder: %s",
                       strerror(errno));
        return -EIO;
    }
    sl_config_doc_t *doc = f->doc, *own_doc = NULL;
    sl_stest_case_t *cases = NULL;
    size_t n_cases = 0;
    const sl_stest_case_t *c = &f->cases[i];
    int rc = 0;
    if (strstr(f->text, S_TMP_VAR)) {
        if ((rc = s_reparse(f, tmp, &own_doc, &cases, &n_cases, r)) != 0)
            goto out;
        doc = own_doc;
        c = &cases[i];
    }
    if ((rc = s_make_files(c, tmp, r)) != 0)
        goto out;
    char *stdout_path = NULL;
    if (asprintf(&stdout_path, "%s/%s", tmp, S_STDOUT_FILE) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    sl_stest_got_t got = {0};
    int saved = s_stdout_to(stdout_path);
    if (c->kind == SL_STEST_STAGE)
        sl__stest_run_stage(c, doc, &got, r);
    else
        sl__stest_run_topology(c, tmp, &got, r);
    s_stdout_back(saved);
    if (saved < 0)
        sl__stest_fail(r, "cannot send the stage's standard output to %s",
                       stdout_path);
    /* reasons so far say it did not run as it should: comparing its output
     * too would only bury them */
    if (r->count == 0 && got.n_streams)
        s_check(c, &got, tmp, stdout_path, r);
    res->outputs = s_outputs_text(&got);
    sl__stest_got_fini(&got);
    free(stdout_path);
out:
    res->passed = rc == 0 && r->count == 0;
    sl__stest_cases_free(cases, n_cases);
    sl__config_doc_destroy(&own_doc);
    s_rmtree(tmp);
    free(tmp);
    return rc;
}

/* ---- a whole file -------------------------------------------------------- */

void sl__stest_run_file(const char *path, const sl_stest_opts_t *o,
                        sl_stest_totals_t *t)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_stest_file_t *f = sl__stest_load(path, &diag);
    if (!f) {
        sl__diag_print(&diag, o->err);
        sl__diag_fini(&diag);
        t->bad_files++;
        return;
    }
    sl__diag_fini(&diag);
    for (size_t i = 0; i < f->n_cases; i++) {
        const char *name = f->cases[i].name;
        if (o->filter && !strstr(name, o->filter)) {
            t->skipped++;
            continue;
        }
        sl_stest_result_t res;
        sl__stest_run_case(f, i, &res);
        if (res.passed) {
            t->passed++;
            fprintf(o->out, "ok   %s\n", name);
        } else {
            t->failed++;
            const sl_diag_t *r = &res.reasons;
            fprintf(o->out, "FAIL %s: %s\n", name,
                    r->count ? r->lines[0] : "failed");
            for (size_t k = 1; k < r->count; k++)
                fprintf(o->out, "     %s\n", r->lines[k]);
            if (o->verbose && res.outputs) {
                fprintf(o->out, "     what it produced:\n");
                for (const char *s = res.outputs; *s;) {
                    size_t n = strcspn(s, "\n");
                    fprintf(o->out, "       %.*s\n", (int)n, s);
                    s += n + (s[n] == '\n');
                }
            }
        }
        fflush(o->out);
        sl__stest_result_fini(&res);
    }
    sl__stest_destroy(&f);
}
