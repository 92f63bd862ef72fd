/* `sluice graph`: the validated topology as Graphviz DOT, optionally
 * rendered by graphviz's `dot`. The picture is built from the resolved
 * topology (defaults applied, `auto` counted, dead-letter stages linked), so
 * it shows what `sluice run` would build, not just what the file says. */
#include "cli.h"
#include "cmd_graph.h"
#include "topology.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define USAGE "usage: sluice graph FILE [--format dot|svg|png] [-o OUT]\n"

typedef struct s_opts {
    const char *file;
    const char *format; /* "dot", "svg" or "png" */
    const char *out;    /* NULL: stdout */
} s_opts_t;

static int s_parse(int argc, char **argv, s_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->format = "dot";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--format") == 0 && next) {
            if (strcmp(next, "dot") != 0 && strcmp(next, "svg") != 0 &&
                strcmp(next, "png") != 0) {
                fprintf(stderr, "sluice graph: unknown format '%s' (dot, "
                                "svg, png)\n", next);
                return -EINVAL;
            }
            o->format = next;
            i++;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) &&
                   next) {
            o->out = next;
            i++;
        } else if (a[0] != '-' && !o->file) {
            o->file = a;
        } else {
            fprintf(stderr, "sluice graph: unexpected argument '%s'\n", a);
            return -EINVAL;
        }
    }
    if (!o->file) {
        fputs(USAGE, stderr);
        return -EINVAL;
    }
    return 0;
}

/* ---- DOT text ------------------------------------------------------------ */

/* Writes s as a DOT quoted string. Only \" is an escape to the DOT parser,
 * but labels give \n, \l, \N... a meaning, so a backslash is doubled (a
 * plugin path or field name may hold one) and a newline becomes \n, which
 * is how the label lines below are separated. */
static void s_q(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c < 0x20 || c == 0x7f) {
            fputc(' ', f);
        } else {
            fputc(c, f);
        }
    }
    fputc('"', f);
}

/* A label under construction: lines joined with '\n', cut at the cap. */
typedef struct s_text {
    char buf[4096];
    size_t len;
} s_text_t;

static void s_add(s_text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_add(s_text_t *t, const char *fmt, ...)
{
    if (t->len >= sizeof(t->buf) - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof(t->buf) - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n;
    if (t->len >= sizeof(t->buf))
        t->len = sizeof(t->buf) - 1;
}

static const char *s_kind(sl_stage_kind_t k)
{
    return k == SL_STAGE_SOURCE ? "source"
         : k == SL_STAGE_SINK   ? "sink"
                                : "transform";
}

static const char *s_when_full(sl_when_full_t w)
{
    return w == SL_WHEN_FULL_SPILL ? "spill" : "dead_letter";
}

static const char *s_base(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

/* Files drawn as nodes (dead-letter files, the spill file), each once
 * however many stages write it. Ids are by index, not path, so that the
 * picture names no absolute folders (the ids end up in SVG titles). */
typedef struct s_files {
    const char **paths;
    size_t n;
} s_files_t;

static size_t s_file_id(s_files_t *fs, const char *path)
{
    for (size_t i = 0; i < fs->n; i++)
        if (strcmp(fs->paths[i], path) == 0)
            return i;
    fs->paths[fs->n] = path;
    return fs->n++;
}

static void s_stage_node(FILE *f, const sl_topology_t *t,
                         const sl_topo_stage_t *s)
{
    sl_stage_kind_t kind = s->plugin->desc->kind;
    s_text_t l = {.len = 0};
    s_add(&l, "%s\n%s (%s)\n", s->name, s->plugin_name, s_kind(kind));
    if (s->workers_auto)
        s_add(&l, "workers auto\u2192%u", s->workers_max);
    else if (s->workers_min != s->workers_max)
        s_add(&l, "workers %u..%u", s->workers_min, s->workers_max);
    else
        s_add(&l, "workers %u", s->workers_min);
    s_add(&l, " \u00b7 %s\nqueue %u \u00b7 batch %u",
          s->lane == SL_LANE_PROCESS ? "process (ipc)" : "thread", s->queue,
          s->batch);
    if (s->n_uses) {
        s_add(&l, "\nuses ");
        for (size_t u = 0; u < s->n_uses; u++)
            s_add(&l, "%s%s", u ? ", " : "", t->resources[s->uses[u]].name);
    }
    if (s->priority && s->priority->field)
        s_add(&l, "\npriority from %s", s->priority->field);
    else if (s->priority)
        s_add(&l, "\npriority %u", (unsigned)s->priority->dflt);
    if (s->when_full != SL_WHEN_FULL_BLOCK)
        s_add(&l, "\nwhen_full: %s", s_when_full(s->when_full));

    fputs("  ", f);
    s_q(f, s->name);
    /* cds and cylinder draw into the label's box: give them room */
    fprintf(f, " [shape=%s, style=\"%s\", fillcolor=\"%s\"%s, label=",
            kind == SL_STAGE_SOURCE ? "cds, margin=\"0.25,0.08\""
            : kind == SL_STAGE_SINK ? "cylinder, margin=\"0.15,0.2\""
                                    : "box",
            kind == SL_STAGE_TRANSFORM ? "rounded,filled" : "filled",
            kind == SL_STAGE_SOURCE ? "#d9f2d9"
            : kind == SL_STAGE_SINK ? "#fdf0c8"
                                    : "#dde8f8",
            s->lane == SL_LANE_PROCESS ? ", peripheries=2" : "");
    s_q(f, l.buf);
    fputs("];\n", f);
}

/* One link: producer p to consumer c. */
static void s_link(FILE *f, const sl_topo_stage_t *p, const sl_topo_stage_t *c)
{
    s_text_t l = {.len = 0};
    if (p->n_outputs > 1)
        s_add(&l, "%s\n", p->fanout == SL_FANOUT_ROUND_ROBIN ? "round_robin"
                                                             : "broadcast");
    if (c->partition_by)
        s_add(&l, "partition_by: %s\n", c->partition_by);
    s_add(&l, "%s", c->lane == SL_LANE_PROCESS ? "ipc" : "inproc");
    if (c->when_full != SL_WHEN_FULL_BLOCK)
        s_add(&l, "\nwhen full: %s", s_when_full(c->when_full));
    fputs("  ", f);
    s_q(f, p->name);
    fputs(" -> ", f);
    s_q(f, c->name);
    fputs(" [label=", f);
    s_q(f, l.buf);
    if (c->when_full != SL_WHEN_FULL_BLOCK)
        fputs(", color=darkorange, fontcolor=darkorange", f);
    fputs("];\n", f);
}

static void s_file_node(FILE *f, size_t id, const char *path,
                        sl_dl_format_t fmt, const char *what)
{
    s_text_t l = {.len = 0};
    s_add(&l, "%s\n%s, %s", s_base(path), what,
          fmt == SL_DL_MSGPACK ? "msgpack" : "jsonl");
    fprintf(f, "  \"file:%zu\" [shape=note, fontsize=9, style=filled, "
               "fillcolor=\"#f4f4f4\", label=", id);
    s_q(f, l.buf);
    fputs("];\n", f);
}

/* Writes the whole graph; -ENOMEM (nothing written) or 0. */
static int s_dot(FILE *f, const sl_topology_t *t)
{
    s_files_t files = {.paths = calloc(t->n_stages + 1, sizeof(char *))};
    s_files_t *fs = &files;
    if (!fs->paths)
        return -ENOMEM;
    fputs("digraph ", f);
    s_q(f, t->name);
    fputs(" {\n  graph [rankdir=LR, labelloc=t, fontname=\"Helvetica\", "
          "label=", f);
    s_q(f, t->name);
    fputs("];\n  node [fontname=\"Helvetica\", fontsize=10];\n"
          "  edge [fontname=\"Helvetica\", fontsize=9];\n", f);

    for (size_t i = 0; i < t->n_stages; i++)
        s_stage_node(f, t, &t->stages[i]);

    for (size_t r = 0; r < t->n_resources; r++) {
        s_text_t l = {.len = 0};
        s_add(&l, "%s\nlimit %u", t->resources[r].name,
              t->resources[r].limit);
        fprintf(f, "  \"resource:%zu\" [shape=hexagon, fontsize=9, "
                   "style=filled, "
                   "fillcolor=\"#eeeeee\", label=", r);
        s_q(f, l.buf);
        fputs("];\n", f);
    }

    size_t spill_id = SIZE_MAX;
    for (size_t i = 0; i < t->n_stages; i++) {
        const sl_topo_stage_t *s = &t->stages[i];
        if (s->dl_path) {
            size_t n = fs->n, id = s_file_id(fs, s->dl_path);
            if (id == n)
                s_file_node(f, id, s->dl_path, s->dl_format, "dead letters");
        }
        if (s->when_full == SL_WHEN_FULL_SPILL && spill_id == SIZE_MAX &&
            t->spill_path) {
            size_t n = fs->n;
            spill_id = s_file_id(fs, t->spill_path);
            if (spill_id == n)
                s_file_node(f, spill_id, t->spill_path, t->spill_format,
                            "spill");
        }
    }

    for (size_t i = 0; i < t->n_stages; i++) {
        const sl_topo_stage_t *s = &t->stages[i];
        for (size_t k = 0; k < s->n_outputs; k++)
            s_link(f, s, &t->stages[s->outputs[k]]);
        if (s->dl_stage >= 0) {
            const sl_topo_stage_t *c = &t->stages[s->dl_stage];
            fputs("  ", f);
            s_q(f, s->name);
            fputs(" -> ", f);
            s_q(f, c->name);
            fprintf(f, " [style=dashed, color=red, fontcolor=red, "
                       "label=\"dead letters\\n%s\"];\n",
                    c->lane == SL_LANE_PROCESS ? "ipc" : "inproc");
        }
        if (s->dl_path) {
            fputs("  ", f);
            s_q(f, s->name);
            fprintf(f, " -> \"file:%zu\" [style=dashed, color=red, "
                       "fontcolor=red, arrowsize=0.6, label=\"dead "
                       "letters\"];\n", s_file_id(fs, s->dl_path));
        }
        if (s->when_full == SL_WHEN_FULL_SPILL && spill_id != SIZE_MAX) {
            fputs("  ", f);
            s_q(f, s->name);
            fprintf(f, " -> \"file:%zu\" [style=dotted, color=darkorange, "
                       "fontcolor=darkorange, arrowsize=0.6, label=\"shed "
                       "when full\"];\n", spill_id);
        }
        for (size_t u = 0; u < s->n_uses; u++) {
            fputs("  ", f);
            s_q(f, s->name);
            fprintf(f, " -> \"resource:%zu\" [style=dotted, dir=none, "
                       "color=gray50, constraint=false];\n", s->uses[u]);
        }
    }
    fputs("}\n", f);
    free(fs->paths);
    return 0;
}

/* ---- output --------------------------------------------------------------- */

/* The first executable `name` on PATH into out; 0 or -ENOENT. */
static int s_find_exe(const char *name, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        return -ENOENT;
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        struct stat st;
        /* an empty entry means the current folder, as for the shell */
        int n = len ? snprintf(out, cap, "%.*s/%s", (int)len, path, name)
                    : snprintf(out, cap, "./%s", name);
        if (n > 0 && (size_t)n < cap && stat(out, &st) == 0 &&
            S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 0;
        path += len + (colon != NULL);
    }
    return -ENOENT;
}

/* Pipes the DOT text into `dot -T<format> [-o out]`. */
static int s_render(const sl_topology_t *t, const char *dot,
                    const char *format, const char *out)
{
    char tflag[16];
    snprintf(tflag, sizeof(tflag), "-T%s", format);
    char *argv[] = {"dot", tflag, out ? "-o" : NULL, (char *)out, NULL};
    int fds[2];
    if (pipe(fds) != 0) {
        fprintf(stderr, "sluice graph: pipe: %s\n", strerror(errno));
        return SL_EXIT_FAILED;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "sluice graph: fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return SL_EXIT_FAILED;
    }
    if (pid == 0) {
        close(fds[1]);
        if (dup2(fds[0], STDIN_FILENO) < 0)
            _exit(127);
        close(fds[0]);
        execv(dot, argv);
        _exit(127);
    }
    close(fds[0]);
    /* If dot dies early, report its status rather than die of SIGPIPE. */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    FILE *f = fdopen(fds[1], "w");
    int wrc = -ENOMEM;
    if (f) {
        wrc = s_dot(f, t);
        fclose(f);
    } else {
        close(fds[1]);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    signal(SIGPIPE, old);
    if (wrc) {
        fprintf(stderr, "sluice graph: %s\n", strerror(-wrc));
        return SL_EXIT_FAILED;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "sluice graph: %s -T%s failed (%s %d)\n", dot, format,
                WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return SL_EXIT_FAILED;
    }
    return SL_EXIT_OK;
}

static int s_write_dot(const sl_topology_t *t, const char *out)
{
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        fprintf(stderr, "sluice graph: cannot write %s: %s\n", out,
                strerror(errno));
        return SL_EXIT_FAILED;
    }
    int err = s_dot(f, t) != 0 || ferror(f);
    if ((out ? fclose(f) : fflush(f)) != 0)
        err = 1;
    if (err) {
        fprintf(stderr, "sluice graph: cannot write %s: %s\n",
                out ? out : "standard output", strerror(errno));
        return SL_EXIT_FAILED;
    }
    return SL_EXIT_OK;
}

int sl_cmd_graph(int argc, char **argv)
{
    s_opts_t o;
    if (s_parse(argc, argv, &o) != 0)
        return SL_EXIT_USAGE;

    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *topo = sl__topology_load(o.file, &diag);
    sl__diag_print(&diag, stderr);
    if (!topo) {
        fprintf(stderr, "%s: %zu problem%s\n", o.file, diag.count,
                diag.count == 1 ? "" : "s");
        sl__diag_fini(&diag);
        return SL_EXIT_USAGE;
    }
    sl__diag_fini(&diag);

    int rc;
    if (strcmp(o.format, "dot") == 0) {
        rc = s_write_dot(topo, o.out);
    } else {
        char dot[PATH_MAX];
        if (s_find_exe("dot", dot, sizeof(dot)) != 0) {
            fprintf(stderr, "sluice graph: install graphviz for svg/png; DOT "
                            "works without it (--format dot)\n");
            rc = SL_EXIT_FAILED;
        } else {
            fflush(stdout);
            rc = s_render(topo, dot, o.format, o.out);
        }
    }
    sl__topology_destroy(&topo);
    return rc;
}
