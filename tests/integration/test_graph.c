/* `sluice graph`: the DOT text for real topologies, line by line; that the
 * text is well formed (by graphviz when it is installed, and always by a
 * small structural check here); svg/png without graphviz; and that an
 * invalid topology is reported exactly as `sluice check` reports it. */
#include "cpu.h"
#include "testutil.h"

#include <criterion/criterion.h>

#include <stdarg.h>
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(graph, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 60);

#define QUICKSTART SL_TEST_SOURCE_DIR "/topologies/quickstart.yaml"

/* Runs `sluice ARGS` with stdout and stderr kept apart; returns the exit
 * code. */
static int s_sluice(const char *args, char **out, char **err)
{
    char *cmd, *errpath;
    cr_assert_gt(asprintf(&errpath, "%s/stderr.txt", sl_test_dir()), 0);
    cr_assert_gt(asprintf(&cmd, "%s %s 2>'%s'", sl_test_cli(), args, errpath),
                 0);
    int rc = sl_test_run(cmd, out);
    char *e = sl_test_read_file(errpath, NULL);
    cr_assert_not_null(e);
    if (err)
        *err = e;
    else
        free(e);
    free(cmd);
    free(errpath);
    return rc;
}

/* The one line of text that starts with `prefix` (after its two spaces of
 * indentation), without its newline; asserts there is exactly one. */
static char *s_line(const char *text, const char *prefix)
{
    char *found = NULL;
    size_t plen = strlen(prefix);
    for (const char *l = text; *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        if (len >= 2 + plen && strncmp(l, "  ", 2) == 0 &&
            strncmp(l + 2, prefix, plen) == 0) {
            cr_assert_null(found, "two lines start with %s:\n%s", prefix,
                           text);
            found = strndup(l + 2, len - 2);
        }
        l += len + (nl != NULL);
    }
    cr_assert_not_null(found, "no line starts with %s:\n%s", prefix, text);
    return found;
}

/* Asserts that the line starting with prefix contains each of the
 * NULL-terminated fragments. */
static void s_expect(const char *dot, const char *prefix, ...)
{
    char *line = s_line(dot, prefix);
    va_list ap;
    va_start(ap, prefix);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        cr_expect(strstr(line, frag), "line\n  %s\nlacks\n  %s", line, frag);
    va_end(ap);
    free(line);
}

/* Asserts that the exact line is present. */
static void s_exact(const char *dot, const char *want)
{
    char *pat;
    cr_assert_gt(asprintf(&pat, "\n  %s\n", want), 0);
    cr_expect(strstr(dot, pat), "missing line\n  %s\nin:\n%s", want, dot);
    free(pat);
}

static size_t s_count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- a small structural validator ---------------------------------------
 * Enough of DOT to catch what a generator gets wrong: unbalanced braces,
 * unterminated or badly escaped strings, unquoted ids, and edges to nodes
 * that were never declared. */

typedef struct s_ids {
    char *v[64];
    size_t n;
} s_ids_t;

/* Reads a quoted string at *p into out (escapes kept as written);
 * returns 0, or -1 when it is not terminated on its line. */
static int s_quoted(const char **p, char *out, size_t cap)
{
    const char *s = *p;
    if (*s != '"')
        return -1;
    size_t n = 0;
    for (s++; *s && *s != '"'; s++) {
        if (*s == '\n')
            return -1;
        if (*s == '\\') {
            if (!s[1] || s[1] == '\n')
                return -1;
            if (n + 1 < cap)
                out[n++] = *s;
            s++;
        }
        if (n + 1 < cap)
            out[n++] = *s;
    }
    if (*s != '"')
        return -1;
    out[n] = '\0';
    *p = s + 1;
    return 0;
}

static int s_has(const s_ids_t *ids, const char *id)
{
    for (size_t i = 0; i < ids->n; i++)
        if (strcmp(ids->v[i], id) == 0)
            return 1;
    return 0;
}

/* What is wrong with dot (into msg), or NULL when nothing is. */
static const char *s_problem(const char *dot, char *msg, size_t cap)
{
    int depth = 0, in_q = 0;
    for (const char *p = dot; *p; p++) {
        if (in_q && *p == '\\' && p[1]) {
            if (p[1] == '\n')
                return "backslash-newline in a string";
            p++;
        } else if (*p == '"') {
            in_q = !in_q;
        } else if (!in_q && *p == '{') {
            depth++;
        } else if (!in_q && *p == '}') {
            if (--depth < 0)
                return "unbalanced '}'";
        } else if (in_q && *p == '\n') {
            return "a string spans lines";
        }
    }
    if (in_q)
        return "unterminated string";
    if (depth)
        return "unbalanced braces";
    size_t len = strlen(dot);
    if (strncmp(dot, "digraph \"", 9) != 0 || len < 2 ||
        strcmp(dot + len - 2, "}\n") != 0)
        return "not one digraph";

    s_ids_t ids = {.n = 0};
    size_t edges = 0;
    char a[512], b[512];
    const char *why = NULL;
    /* The statements: node lines declare, edge lines reference. */
    for (const char *l = strchr(dot, '\n') + 1; *l && !why;
         l = strchr(l, '\n') + 1) {
        if (strncmp(l, "  \"", 3) != 0)
            continue;
        const char *p = l + 2;
        snprintf(msg, cap, "at: %.60s", l);
        if (s_quoted(&p, a, sizeof(a)) != 0) {
            why = "bad id";
        } else if (strncmp(p, " -> ", 4) == 0) {
            p += 4;
            if (s_quoted(&p, b, sizeof(b)) != 0)
                why = "bad id";
            else if (!s_has(&ids, a) || !s_has(&ids, b))
                why = "edge to an undeclared node";
            edges++;
        } else if (s_has(&ids, a)) {
            why = "node declared twice";
        } else if (ids.n == 64) {
            why = "too many nodes for the checker";
        } else {
            ids.v[ids.n++] = strdup(a);
        }
        const char *nl = strchr(p, '\n');
        if (!why && (strncmp(p, " [", 2) != 0 || nl - p < 4 ||
                     strncmp(nl - 2, "];", 2) != 0))
            why = "statement without [...];";
    }
    if (!why && (!ids.n || !edges))
        why = "no nodes or no edges";
    for (size_t i = 0; i < ids.n; i++)
        free(ids.v[i]);
    return why;
}

static void s_validate(const char *dot)
{
    char where[128] = "";
    const char *why = s_problem(dot, where, sizeof(where));
    cr_assert_null(why, "%s %s\n%s", why, where, dot);
}

static int s_have_dot(void)
{
    return sl_test_run("command -v dot >/dev/null 2>&1", NULL) == 0;
}

/* Well formed for graphviz when it is here, and for the checker always. */
static void s_well_formed(const char *dot)
{
    s_validate(dot);
    if (!s_have_dot())
        return;
    char *path, *cmd;
    cr_assert_gt(asprintf(&path, "%s/g.dot", sl_test_dir()), 0);
    cr_assert_eq(sl_test_write_file(path, dot), 0);
    cr_assert_gt(asprintf(&cmd, "dot -Tsvg '%s' -o /dev/null 2>&1", path), 0);
    char *out = NULL;
    cr_expect_eq(sl_test_run(cmd, &out), 0, "dot refused it: %s\n%s", out,
                 dot);
    free(out);
    free(cmd);
    free(path);
}

Test(graph, quickstart)
{
    char *dot = NULL, *err = NULL;
    cr_assert_eq(s_sluice("graph " QUICKSTART, &dot, &err), 0, "%s", err);
    cr_expect_str_empty(err);
    cr_assert_eq(strncmp(dot, "digraph \"quickstart\" {\n", 23), 0, "%s", dot);

    s_expect(dot, "\"read\" [", "shape=cds",
             "label=\"read\\nfile_source (source)\\nworkers 1 \u00b7 thread"
             "\\nqueue 1024 \u00b7 batch 256\"];", NULL);
    char types[160];
    snprintf(types, sizeof(types),
             "label=\"types\\nfields (transform)\\nworkers auto\u2192%u "
             "\u00b7 thread\\nqueue 1024 \u00b7 batch 256\"];",
             sl__cpu_budget());
    s_expect(dot, "\"types\" [", "shape=box", "rounded", types, NULL);
    s_expect(dot, "\"paid\" [", "shape=box",
             "label=\"paid\\nfilter (transform)\\nworkers 1", NULL);
    s_expect(dot, "\"shape\" [", "shape=box",
             "label=\"shape\\nfields (transform)\\nworkers 1", NULL);
    s_expect(dot, "\"write\" [", "shape=cylinder",
             "label=\"write\\nfile_sink (sink)\\nworkers 1 \u00b7 thread",
             NULL);

    s_exact(dot, "\"read\" -> \"types\" [label=\"inproc\"];");
    s_exact(dot, "\"types\" -> \"paid\" [label=\"inproc\"];");
    s_exact(dot, "\"paid\" -> \"shape\" [label=\"inproc\"];");
    s_exact(dot, "\"shape\" -> \"write\" [label=\"inproc\"];");
    cr_expect_eq(s_count(dot, " -> "), 4, "%s", dot);
    cr_expect_eq(s_count(dot, "\" [shape="), 5, "%s", dot);
    /* nothing about dead letters, spills or resources in this one */
    cr_expect_null(strstr(dot, "file:"), "%s", dot);
    cr_expect_null(strstr(dot, "resource:"), "%s", dot);
    s_well_formed(dot);
    free(dot);
    free(err);
}

/* Fan-out (round robin) and fan-in, a process lane, a dead-letter stage
 * and a dead-letter file, an elastic pool using a shared resource, and a
 * consumer that spills when full. */
static const char s_full[] =
    "name: 'full \"graph\" \\x'\n"
    "resources: {db: 4}\n"
    "stages:\n"
    "  - {name: gen, plugin: generator, config: {count: 10},\n"
    "     fanout: round_robin}\n"
    "  - name: a\n"
    "    plugin: fields\n"
    "    config: {set: {x: 1}}\n"
    "    from: gen\n"
    "    lane: process\n"
    "    workers: 2\n"
    "    partition_by: user.id\n"
    "    dead_letter: {stage: errors}\n"
    "  - name: b\n"
    "    plugin: fields\n"
    "    config: {set: {x: 2}}\n"
    "    from: gen\n"
    "    workers: {min: 2, max: 8}\n"
    "    queue: 64\n"
    "    batch: 16\n"
    "    uses: db\n"
    "    priority: {field: level}\n"
    "    dead_letter: dlq/b.msgpack\n"
    "  - {name: join, plugin: \"null\", from: [a, b]}\n"
    "  - {name: live, plugin: stdout, from: b, when_full: spill}\n"
    "  - {name: errors, plugin: \"null\"}\n";

static char *s_full_dot(void)
{
    char *path, *dlq, *args;
    cr_assert_gt(asprintf(&path, "%s/full.yaml", sl_test_dir()), 0);
    cr_assert_gt(asprintf(&dlq, "%s/dlq", sl_test_dir()), 0);
    cr_assert_eq(mkdir(dlq, 0755), 0);
    cr_assert_eq(sl_test_write_file(path, s_full), 0);
    cr_assert_gt(asprintf(&args, "graph '%s'", path), 0);
    char *dot = NULL, *err = NULL;
    cr_assert_eq(s_sluice(args, &dot, &err), 0, "%s", err);
    cr_expect_str_empty(err);
    free(err);
    free(args);
    free(dlq);
    free(path);
    return dot;
}

Test(graph, every_feature)
{
    char *dot = s_full_dot();
    /* the name's quote and backslash are escaped */
    cr_assert_eq(strncmp(dot, "digraph \"full \\\"graph\\\" \\\\x\" {\n", 31),
                 0, "%s", dot);

    s_expect(dot, "\"gen\" [", "shape=cds",
             "label=\"gen\\ngenerator (source)\\nworkers 1", NULL);
    /* a process lane: double border, and ipc on the node and its input */
    s_expect(dot, "\"a\" [", "shape=box", "peripheries=2",
             "label=\"a\\nfields (transform)\\nworkers 2 \u00b7 process "
             "(ipc)\\nqueue 1024 \u00b7 batch 256\"];", NULL);
    /* an elastic pool with a resource and a priority */
    s_expect(dot, "\"b\" [", "shape=box",
             "label=\"b\\nfields (transform)\\nworkers 2..8 \u00b7 thread"
             "\\nqueue 64 \u00b7 batch 16\\nuses db\\npriority from level\"];",
             NULL);
    char *b = s_line(dot, "\"b\" [");
    cr_expect_null(strstr(b, "peripheries"), "%s", b);
    free(b);
    s_expect(dot, "\"join\" [", "shape=cylinder",
             "label=\"join\\nnull (sink)\\n", NULL);
    s_expect(dot, "\"live\" [", "shape=cylinder",
             "label=\"live\\nstdout (sink)\\nworkers 1 \u00b7 thread\\nqueue "
             "1024 \u00b7 batch 256\\nwhen_full: spill\"];", NULL);
    s_expect(dot, "\"resource:0\" [", "shape=hexagon",
             "label=\"db\\nlimit 4\"];", NULL);
    s_expect(dot, "\"file:0\" [", "shape=note",
             "label=\"b.msgpack\\ndead letters, msgpack\"];", NULL);
    s_expect(dot, "\"file:1\" [", "shape=note",
             "label=\"full \\\"graph\\\" \\\\x.spill.jsonl\\nspill, jsonl\"];",
             NULL);

    /* fan-out: the mode on each output; partition_by and the transport
     * on the consumer's side */
    s_exact(dot, "\"gen\" -> \"a\" [label=\"round_robin\\npartition_by: "
                 "user.id\\nipc\"];");
    s_exact(dot, "\"gen\" -> \"b\" [label=\"round_robin\\ninproc\"];");
    /* fan-in */
    s_exact(dot, "\"a\" -> \"join\" [label=\"inproc\"];");
    s_exact(dot, "\"b\" -> \"join\" [label=\"broadcast\\ninproc\"];");
    /* when_full on the consumer decorates its input and sheds to spill */
    s_exact(dot, "\"b\" -> \"live\" [label=\"broadcast\\ninproc\\nwhen full: "
                 "spill\", color=darkorange, fontcolor=darkorange];");
    s_expect(dot, "\"live\" -> \"file:1\" [", "style=dotted",
             "label=\"shed when full\"", NULL);
    /* dead letters: to a stage, and to a file */
    s_exact(dot, "\"a\" -> \"errors\" [style=dashed, color=red, "
                 "fontcolor=red, label=\"dead letters\\ninproc\"];");
    s_expect(dot, "\"b\" -> \"file:0\" [", "style=dashed", "color=red",
             "label=\"dead letters\"", NULL);
    s_expect(dot, "\"b\" -> \"resource:0\" [", "style=dotted", "dir=none",
             NULL);
    cr_expect_eq(s_count(dot, " -> "), 9, "%s", dot);
    /* no absolute folder leaks into the picture */
    cr_expect_null(strstr(dot, sl_test_dir()), "%s", dot);
    s_well_formed(dot);
    free(dot);
}

Test(graph, validator_catches_mistakes)
{
    /* The checker must be able to fail, or the tests above prove nothing
     * where graphviz is absent. */
    static const struct {
        const char *dot, *why;
    } bad[] = {
        {"digraph \"g\" {\n  \"a\" [label=\"x\"];\n  \"a\" -> \"b\" "
         "[label=\"\"];\n}\n", "edge to an undeclared node"},
        {"digraph \"g\" {\n  \"a\" [label=\"x];\n}\n",
         "a string spans lines"},
        {"digraph \"g\" {\n  \"a\" [label=\"x\"];\n", "unbalanced braces"},
        {"digraph \"g\" {\n  \"a\" [label=\"x\"];\n  \"b\" [x=1];\n"
         "  \"a\" -> \"b\" [];\n  \"a\" [x=2];\n}\n",
         "node declared twice"},
        {"digraph \"g\" {\n  \"a\" [label=\"x\"];\n  \"b\" [x=1];\n"
         "  \"a\" -> \"b\";\n}\n", "statement without [...];"},
    };
    char where[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        const char *why = s_problem(bad[i].dot, where, sizeof(where));
        cr_expect(why && strcmp(why, bad[i].why) == 0, "case %zu: got %s",
                  i, why ? why : "(nothing)");
    }
    s_validate("digraph \"g\" {\n  \"a\" [label=\"x\\\"y\"];\n  \"b\" "
               "[label=\"\"];\n  \"a\" -> \"b\" [label=\"e\"];\n}\n");
}

Test(graph, output_file)
{
    char *out, *args;
    cr_assert_gt(asprintf(&out, "%s/q.dot", sl_test_dir()), 0);
    cr_assert_gt(asprintf(&args, "graph " QUICKSTART " -o '%s'", out), 0);
    char *so = NULL;
    cr_assert_eq(s_sluice(args, &so, NULL), 0);
    cr_expect_str_empty(so);
    char *dot = sl_test_read_file(out, NULL);
    cr_assert_not_null(dot);
    s_exact(dot, "\"read\" -> \"types\" [label=\"inproc\"];");
    free(dot);
    free(so);
    free(args);
    free(out);
}

Test(graph, svg_without_graphviz)
{
    char *so = NULL, *err = NULL;
    char *cmd;
    cr_assert_gt(asprintf(&cmd, "PATH=/nonexistent %s graph " QUICKSTART
                          " --format svg 2>&1", sl_test_cli()), 0);
    cr_expect_eq(sl_test_run(cmd, &so), 1);
    cr_expect_str_eq(so, "sluice graph: install graphviz for svg/png; DOT "
                         "works without it (--format dot)\n");
    free(so);
    free(err);
    free(cmd);
}

Test(graph, svg_and_png_with_graphviz)
{
    if (!s_have_dot())
        cr_skip_test("graphviz's dot is not installed");
    char *svg, *png, *args;
    cr_assert_gt(asprintf(&svg, "%s/q.svg", sl_test_dir()), 0);
    cr_assert_gt(asprintf(&png, "%s/q.png", sl_test_dir()), 0);
    cr_assert_gt(asprintf(&args, "graph " QUICKSTART " --format svg -o '%s'",
                          svg), 0);
    cr_assert_eq(s_sluice(args, NULL, NULL), 0);
    char *text = sl_test_read_file(svg, NULL);
    cr_assert_not_null(text);
    cr_expect(strstr(text, "<svg"), "%.200s", text);
    cr_expect(strstr(text, "file_source (source)"), "%.200s", text);
    free(text);
    free(args);
    cr_assert_gt(asprintf(&args, "graph " QUICKSTART " --format png -o '%s'",
                          png), 0);
    cr_assert_eq(s_sluice(args, NULL, NULL), 0);
    size_t len = 0;
    text = sl_test_read_file(png, &len);
    cr_assert_not_null(text);
    cr_assert_gt(len, 8);
    cr_expect_eq(memcmp(text, "\x89PNG\r\n\x1a\n", 8), 0);
    free(text);
    free(args);
    free(png);
    free(svg);
}

Test(graph, invalid_topology_reported_as_check_does)
{
    char *path, *args;
    cr_assert_gt(asprintf(&path, "%s/bad.yaml", sl_test_dir()), 0);
    cr_assert_eq(sl_test_write_file(path,
                                    "stages:\n"
                                    "  - {name: g, plugin: generator, "
                                    "config: {count: 1}}\n"
                                    "  - {name: s, plugin: stdout, form: g}\n"
                                    "  - {name: t, plugin: nosuchplugin}\n"),
                 0);
    char *gout = NULL, *gerr = NULL, *cout = NULL, *cerr = NULL;
    cr_assert_gt(asprintf(&args, "graph '%s'", path), 0);
    cr_expect_eq(s_sluice(args, &gout, &gerr), 2);
    free(args);
    cr_assert_gt(asprintf(&args, "check '%s'", path), 0);
    cr_expect_eq(s_sluice(args, &cout, &cerr), 2);
    cr_expect_str_empty(gout);
    cr_expect(strstr(gerr, "unknown key 'form'"), "%s", gerr);
    cr_expect(strstr(gerr, "bad.yaml: "), "%s", gerr);
    cr_expect_str_eq(gerr, cerr);
    free(gout);
    free(gerr);
    free(cout);
    free(cerr);
    free(args);
    free(path);
}

Test(graph, usage)
{
    char *so = NULL;
    char *cmd;
    cr_assert_gt(asprintf(&cmd, "%s graph 2>&1", sl_test_cli()), 0);
    cr_expect_eq(sl_test_run(cmd, &so), 2);
    cr_expect_str_eq(so, "usage: sluice graph FILE [--format dot|svg|png] "
                         "[-o OUT]\n");
    free(so);
    free(cmd);
    cr_assert_gt(asprintf(&cmd, "%s graph " QUICKSTART " --format gif 2>&1",
                          sl_test_cli()), 0);
    cr_expect_eq(sl_test_run(cmd, &so), 2);
    cr_expect_str_eq(so, "sluice graph: unknown format 'gif' (dot, svg, "
                         "png)\n");
    free(so);
    free(cmd);
}
