/* `sluice top ADDR [--interval D] [--once]`: scrapes a run's /metrics
 * every interval and draws top_view's table: redrawn in place on a
 * terminal, one snapshot after another otherwise (docs/operations_top.md). */
#include "cmd_top.h"

#include "cli.h"
#include "promtext.h"
#include "top_view.h"

#include <curl/curl.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* A body this large is not sluice's: stop reading rather than grow. */
#define S_MAX_BODY (16u << 20)
#define S_MAX_SHOWN_ERRORS 3

typedef struct s_opts {
    const char *addr;
    long interval_ms;
    int once;
} s_opts_t;

typedef struct s_fetch {
    CURL *curl;
    char url[1024];
    char err[CURL_ERROR_SIZE];
    char *body;
    size_t len, cap;
} s_fetch_t;

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "500ms", "1s", "1.5s", "2m", or bare seconds; -1 if malformed. */
static long s_interval_ms(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0))
        return -1;
    double mult = !*end || !strcmp(end, "s") ? 1000
                  : !strcmp(end, "ms")       ? 1
                  : !strcmp(end, "m")        ? 60000
                                             : -1;
    if (mult < 0 || v * mult < 50 || v * mult > 3600000)
        return -1;
    return (long)(v * mult);
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: sluice top ADDR [--interval DURATION] [--once]\n"
               "  ADDR is host:port of `sluice run --metrics`, or a URL\n");
}

static int s_parse(int argc, char **argv, s_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->interval_ms = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--interval") || !strcmp(a, "-n")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice top: %s needs a duration\n", a);
                return -EINVAL;
            }
            if ((o->interval_ms = s_interval_ms(argv[++i])) < 0) {
                fprintf(stderr, "sluice top: --interval must be a duration "
                                "between 50ms and 1h such as 500ms or 2s, "
                                "got '%s'\n", argv[i]);
                return -EINVAL;
            }
        } else if (!strcmp(a, "--once")) {
            o->once = 1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage(stdout);
            return 1;
        } else if (a[0] != '-' && !o->addr) {
            o->addr = a;
        } else {
            fprintf(stderr, "sluice top: unexpected argument '%s'\n", a);
            s_usage(stderr);
            return -EINVAL;
        }
    }
    if (!o->addr) {
        s_usage(stderr);
        return -EINVAL;
    }
    return 0;
}

/* host:port becomes http://host:port/metrics; a URL without a path gets
 * /metrics; a URL with one is used as it is. */
static int s_url(const char *addr, char *out, size_t len)
{
    if (!*addr || strpbrk(addr, " \t\r\n")) {
        fprintf(stderr, "sluice top: bad address '%s': expected host:port "
                        "or an http:// URL\n", addr);
        return -EINVAL;
    }
    const char *scheme = strstr(addr, "://");
    int n;
    if (!scheme) {
        n = snprintf(out, len, "http://%s/metrics", addr);
    } else if (strncmp(addr, "http://", 7) && strncmp(addr, "https://", 8)) {
        fprintf(stderr, "sluice top: bad address '%s': only http:// and "
                        "https:// URLs\n", addr);
        return -EINVAL;
    } else {
        const char *path = strchr(scheme + 3, '/');
        if (!path || !strcmp(path, "/"))
            n = snprintf(out, len, "%.*s/metrics",
                         (int)(path ? path - addr : (long)strlen(addr)),
                         addr);
        else
            n = snprintf(out, len, "%s", addr);
    }
    if (n < 0 || (size_t)n >= len) {
        fprintf(stderr, "sluice top: address too long\n");
        return -EINVAL;
    }
    return 0;
}

/* ---- fetching -------------------------------------------------------------- */

static size_t s_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    s_fetch_t *fe = arg;
    size_t n = size * nmemb;
    if (n > S_MAX_BODY - fe->len)
        return 0; /* curl reports a write error */
    if (fe->len + n > fe->cap) {
        size_t cap = fe->cap ? fe->cap : 65536;
        while (cap < fe->len + n)
            cap *= 2;
        char *p = realloc(fe->body, cap);
        if (!p)
            return 0;
        fe->body = p;
        fe->cap = cap;
    }
    memcpy(fe->body + fe->len, data, n);
    fe->len += n;
    return n;
}

static int s_fetch_init(s_fetch_t *fe, long interval_ms)
{
    fe->curl = curl_easy_init();
    if (!fe->curl)
        return -ENOMEM;
    /* A scrape slower than two intervals (at least 2 s) counts as gone. */
    long timeout = interval_ms * 2 > 2000 ? interval_ms * 2 : 2000;
    curl_easy_setopt(fe->curl, CURLOPT_URL, fe->url);
    curl_easy_setopt(fe->curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(fe->curl, CURLOPT_WRITEDATA, fe);
    curl_easy_setopt(fe->curl, CURLOPT_ERRORBUFFER, fe->err);
    curl_easy_setopt(fe->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(fe->curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(fe->curl, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(fe->curl, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(fe->curl, CURLOPT_USERAGENT, "sluice-top");
    return 0;
}

static void s_fetch_fini(s_fetch_t *fe)
{
    if (fe->curl)
        curl_easy_cleanup(fe->curl);
    free(fe->body);
}

/* One scrape into *out. On failure writes why into why and returns -EIO
 * (or -ENOMEM). Parse problems are kept in the document. */
static int s_scrape(s_fetch_t *fe, sl_top_scrape_t **out, char *why,
                    size_t why_len)
{
    *out = NULL;
    fe->len = 0;
    fe->err[0] = '\0';
    CURLcode c = curl_easy_perform(fe->curl);
    if (c != CURLE_OK) {
        snprintf(why, why_len, "%s",
                 fe->err[0] ? fe->err : curl_easy_strerror(c));
        return -EIO;
    }
    sl_prom_doc_t *doc;
    int rc = sl_prom_parse(fe->body ? fe->body : "", fe->len, &doc);
    if (rc < 0) {
        snprintf(why, why_len, "out of memory");
        return rc;
    }
    return sl_top_scrape_new(&doc, s_now(), out);
}

/* ---- the screen -------------------------------------------------------------- */

/* Malformed lines in what the endpoint sent: a few of them to f. */
static void s_parse_errors(FILE *f, const char *url,
                           const sl_prom_doc_t *doc)
{
    size_t n, total;
    const sl_prom_error_t *e = sl_prom_errors(doc, &n, &total);
    for (size_t i = 0; i < n && i < S_MAX_SHOWN_ERRORS; i++)
        fprintf(f, "sluice top: %s line %zu: %s\n", url, e[i].line,
                e[i].msg);
    if (total > S_MAX_SHOWN_ERRORS)
        fprintf(f, "sluice top: %s: %zu malformed lines in all\n", url,
                total);
}

typedef struct s_term {
    int raw; /* stdin switched to unbuffered, no echo */
    struct termios saved;
} s_term_t;

static void s_term_enter(s_term_t *t)
{
    t->raw = 0;
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &t->saved) < 0)
        return;
    struct termios raw = t->saved;
    /* ISIG stays on: Ctrl-C still raises SIGINT, which ends the loop. */
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
        t->raw = 1;
}

static void s_term_leave(s_term_t *t)
{
    if (t->raw)
        tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
    t->raw = 0;
}

/* Waits ms, or less if q is pressed or a signal arrives; 1 to quit. */
static int s_wait(const s_term_t *t, long ms)
{
    double until = s_now() + (double)ms / 1000;
    while (!s_stop) {
        double left = until - s_now();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(&p, t->raw ? 1 : 0, (int)(left * 1000) + 1);
        if (r > 0 && (p.revents & POLLIN)) {
            char c;
            if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q'))
                return 1;
        }
    }
    return 1;
}

/* One frame: on a terminal cleared and drawn from the top in one write,
 * so that it does not flicker. */
static void s_frame(int ansi, const char *url, const sl_top_scrape_t *prev,
                    const sl_top_scrape_t *cur, const sl_prom_doc_t *doc,
                    long interval_ms)
{
    if (!ansi) {
        sl_top_render(stdout, url, prev, cur);
        fflush(stdout);
        return;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return;
    fputs("\033[H\033[2J", m);
    sl_top_render(m, url, prev, cur);
    if (doc) {
        size_t n, total;
        const sl_prom_error_t *e = sl_prom_errors(doc, &n, &total);
        if (total)
            fprintf(m, "\n%zu malformed lines in the metrics (line %zu: "
                       "%s)\n", total, e[0].line, e[0].msg);
    }
    fprintf(m, "\nevery %.1f s; q or Ctrl-C to quit\n",
            (double)interval_ms / 1000);
    fclose(m);
    fwrite(buf, 1, len, stdout);
    fflush(stdout);
    free(buf);
}

/* ---- the command ------------------------------------------------------------ */

int sl_cmd_top(int argc, char **argv)
{
    s_opts_t o;
    int rc = s_parse(argc, argv, &o);
    if (rc)
        return rc > 0 ? SL_EXIT_OK : SL_EXIT_USAGE;
    s_fetch_t fe = {0};
    if (s_url(o.addr, fe.url, sizeof(fe.url)) < 0)
        return SL_EXIT_USAGE;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "sluice top: cannot start libcurl\n");
        return SL_EXIT_FAILED;
    }
    int code = SL_EXIT_FAILED;
    sl_top_scrape_t *prev = NULL, *cur = NULL;
    s_term_t term = {0};
    char why[CURL_ERROR_SIZE + 32];
    int ansi = !o.once && isatty(STDOUT_FILENO);
    if (s_fetch_init(&fe, o.interval_ms) < 0) {
        fprintf(stderr, "sluice top: out of memory\n");
        goto out;
    }
    if (s_scrape(&fe, &prev, why, sizeof(why)) < 0) {
        fprintf(stderr, "sluice top: cannot reach %s: %s\n", fe.url, why);
        goto out;
    }
    if (!ansi)
        s_parse_errors(stderr, fe.url, sl_top_scrape_doc(prev));

    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    if (ansi) {
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        s_term_enter(&term);
        fputs("\033[?25l", stdout); /* no cursor blinking over the table */
        s_frame(1, fe.url, NULL, prev, sl_top_scrape_doc(prev), o.interval_ms);
    }
    for (int first = 1;; first = 0) {
        if (o.once || !ansi) {
            struct timespec ts = {o.interval_ms / 1000,
                                  (o.interval_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        } else if (s_wait(&term, o.interval_ms)) {
            code = SL_EXIT_OK;
            break;
        }
        if (s_scrape(&fe, &cur, why, sizeof(why)) < 0) {
            if (o.once) {
                fprintf(stderr, "sluice top: cannot reach %s: %s\n", fe.url,
                        why);
            } else {
                printf("%srun ended: %s is gone (%s)\n", first ? "" : "\n",
                       fe.url, why);
                code = SL_EXIT_OK;
            }
            break;
        }
        if (!ansi) {
            s_parse_errors(stderr, fe.url, sl_top_scrape_doc(cur));
            if (!first)
                putchar('\n');
        }
        s_frame(ansi, fe.url, prev, cur, sl_top_scrape_doc(cur), o.interval_ms);
        sl_top_scrape_destroy(&prev);
        prev = cur;
        cur = NULL;
        if (o.once) {
            code = SL_EXIT_OK;
            break;
        }
    }
    if (ansi) {
        fputs("\033[?25h", stdout);
        fflush(stdout);
    }
    s_term_leave(&term);
out:
    sl_top_scrape_destroy(&cur);
    sl_top_scrape_destroy(&prev);
    s_fetch_fini(&fe);
    curl_global_cleanup();
    return code;
}
