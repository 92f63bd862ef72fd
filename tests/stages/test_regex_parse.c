/* regex_parse in the harness: the combined and common access log presets
 * on real-looking lines (quotes, IPv6, "-" fields), a pattern of one's
 * own with every type, times with zone offsets whatever TZ says, lines
 * that do not match (dead-lettered or dropped), bad values and config
 * errors with their exact text and position. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* {"line": text} as JSON, text escaped; the caller frees. */
static char *s_rec(const char *text)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    fputs("{\"line\":\"", f);
    for (const char *p = text; *p; p++) {
        if ((unsigned char)*p < 0x20) {
            fprintf(f, "\\u%04x", (unsigned)*p);
            continue;
        }
        if (*p == '"' || *p == '\\')
            fputc('\\', f);
        fputc(*p, f);
    }
    fputs("\"}", f);
    fclose(f);
    return out;
}

/* Pushes line and expects exactly one record, want. */
static void s_ok(sl_harness_t *h, const char *line, const char *want)
{
    char *rec = s_rec(line);
    size_t before = sl_harness_count(h);
    cr_assert_eq(sl_harness_push_json(h, rec), 0, "%s: %s", rec,
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), before + 1);
    const char *got = sl_harness_output(h, before);
    cr_expect_str_eq(got, want, "in %s\ngot  %s\nwant %s", rec, got, want);
    free(rec);
}

static void s_fails(sl_harness_t *h, const char *line, const char *want)
{
    char *rec = s_rec(line);
    sl_test_push_fails(h, rec, want);
    free(rec);
}

/* ---- presets ------------------------------------------------------------- */

Test(regex_parse, combined_log_lines)
{
    sl_harness_t *h = sl_test_harness("regex_parse", "preset: combined", NULL);
    s_ok(h,
         "203.0.113.7 - - [10/Oct/2023:13:55:36 +0200] \"GET /index.html "
         "HTTP/1.1\" 200 2326 \"https://example.com/start\" \"Mozilla/5.0 "
         "(X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/118.0 Safari/537.36\"",
         "{\"remote_addr\":\"203.0.113.7\",\"ident\":\"-\",\"remote_user\":"
         "\"-\",\"time\":1696938936,\"request\":\"GET /index.html "
         "HTTP/1.1\",\"status\":200,\"bytes\":2326,\"referer\":"
         "\"https://example.com/start\",\"user_agent\":\"Mozilla/5.0 (X11; "
         "Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0 "
         "Safari/537.36\"}");
    /* IPv6, a user, a body of "-" (null), a negative offset. */
    s_ok(h,
         "2001:db8::1 - alice [01/Jan/2024:00:00:00 -0500] \"POST "
         "/api/v1/items?id=5&x=%22a%22 HTTP/2.0\" 201 - \"-\" \"curl/8.4.0\"",
         "{\"remote_addr\":\"2001:db8::1\",\"ident\":\"-\",\"remote_user\":"
         "\"alice\",\"time\":1704085200,\"request\":\"POST "
         "/api/v1/items?id=5&x=%22a%22 HTTP/2.0\",\"status\":201,\"bytes\":"
         "null,\"referer\":\"-\",\"user_agent\":\"curl/8.4.0\"}");
    /* Apache escapes a quote inside a field as \" (kept as written);
     * nginx as \x22. */
    s_ok(h,
         "198.51.100.23 - - [29/Feb/2024:23:59:59 +0530] \"GET "
         "/search?q=\\\"hello world\\\" HTTP/1.1\" 404 153 \"-\" "
         "\"Bot \\\"quoted\\\" \\x22nginx\\x22\"",
         "{\"remote_addr\":\"198.51.100.23\",\"ident\":\"-\",\"remote_user\":"
         "\"-\",\"time\":1709231399,\"request\":\"GET /search?q=\\\\\\\"hello "
         "world\\\\\\\" HTTP/1.1\",\"status\":404,\"bytes\":153,\"referer\":"
         "\"-\",\"user_agent\":\"Bot \\\\\\\"quoted\\\\\\\" "
         "\\\\x22nginx\\\\x22\"}");
    /* An empty request (a connection closed before sending one). */
    s_ok(h,
         "192.0.2.1 - - [15/Mar/2024:08:00:00 -0930] \"\" 400 0 \"-\" \"-\"",
         "{\"remote_addr\":\"192.0.2.1\",\"ident\":\"-\",\"remote_user\":"
         "\"-\",\"time\":1710523800,\"request\":\"\",\"status\":400,"
         "\"bytes\":0,\"referer\":\"-\",\"user_agent\":\"-\"}");
    /* Not the format: a common log line, a status that is not 3 digits,
     * a line cut short, a TLS handshake sent to the HTTP port. */
    s_fails(h,
            "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" "
            "200 2326",
            "field 'line' does not match the pattern (preset combined): "
            "'127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" "
            "200 2326'");
    s_fails(h,
            "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" "
            "2000 1 \"-\" \"-\"",
            "does not match the pattern");
    s_fails(h,
            "10.0.0.8 - - [10/Oct/2023:13:55:36 +0200] \"GET /index.html "
            "HTTP/1.1\" 200 2326 \"https://example.com/start\" \"Mozilla/5.0 "
            "(X11; Linux x86",
            "field 'line' does not match the pattern (preset combined): "
            "'10.0.0.8 - - [10/Oct/2023:13:55:36 +0200] \"GET /index.html "
            "HTTP/1.1\" 200 2326 \"h'...");
    s_fails(h, "\x16\x03\x01\x02", "does not match the pattern");
    /* A time the format does not fit. */
    s_fails(h,
            "10.0.0.8 - - [2023-10-10T13:55:36Z] \"GET / HTTP/1.1\" 200 1 "
            "\"-\" \"-\"",
            "field 'time': '2023-10-10T13:55:36Z' does not match "
            "time_format '%d/%b/%Y:%H:%M:%S %z'");
    sl_harness_destroy(&h);
}

Test(regex_parse, common_log_lines_and_overridden_types)
{
    sl_harness_t *h = sl_test_harness("regex_parse", "preset: common", NULL);
    s_ok(h,
         "127.0.0.1 user-identifier frank [10/Oct/2000:13:55:36 -0700] "
         "\"GET /apache_pb.gif HTTP/1.0\" 200 2326",
         "{\"remote_addr\":\"127.0.0.1\",\"ident\":\"user-identifier\","
         "\"remote_user\":\"frank\",\"time\":971211336,\"request\":\"GET "
         "/apache_pb.gif HTTP/1.0\",\"status\":200,\"bytes\":2326}");
    sl_harness_destroy(&h);

    /* types: keep the time as text, the status too. */
    h = sl_test_harness("regex_parse",
                        "preset: common\ntypes: {time: string, status: "
                        "string}", NULL);
    s_ok(h,
         "::1 - - [10/Oct/2000:13:55:36 -0700] \"HEAD / HTTP/1.0\" 304 -",
         "{\"remote_addr\":\"::1\",\"ident\":\"-\",\"remote_user\":\"-\","
         "\"time\":\"10/Oct/2000:13:55:36 -0700\",\"request\":\"HEAD / "
         "HTTP/1.0\",\"status\":\"304\",\"bytes\":null}");
    sl_harness_destroy(&h);
}

Test(regex_parse, other_fields_stay_and_captures_take_the_source_place)
{
    sl_harness_t *h = sl_test_harness(
        "regex_parse",
        "field: msg\npattern: '^([a-z]+)=([0-9]+)$'\nfields: [key, n]\n"
        "types: {n: int}",
        NULL);
    /* A field named like a capture is replaced by it. */
    sl_test_push_ok(h, "{\"a\":1,\"msg\":\"x=5\",\"n\":\"old\",\"z\":[true]}",
                    "{\"a\":1,\"key\":\"x\",\"n\":5,\"z\":[true]}");
    sl_harness_destroy(&h);

    h = sl_test_harness("regex_parse",
                        "field: msg\npattern: '^([a-z]+)=([0-9]+)$'\n"
                        "fields: [key, n]\nkeep_source: true",
                        NULL);
    sl_test_push_ok(h, "{\"msg\":\"x=5\",\"t\":2}",
                    "{\"msg\":\"x=5\",\"key\":\"x\",\"n\":\"5\",\"t\":2}");
    sl_test_push_fails(h, "{\"t\":2}", "field 'msg' is missing");
    sl_test_push_fails(h, "{\"msg\":12}",
                       "field 'msg' is a number, not a string");
    sl_test_push_fails(h, "{\"msg\":null}", "field 'msg' is null, not a "
                                            "string");
    sl_harness_destroy(&h);
}

/* The presets are scanned by hand (rp_fast.c); their pattern, as
 * docs/stages/regex_parse.md gives it, is the definition. Real lines and
 * thousands of random edits of them (the bytes that matter to the format
 * inserted, deleted, replaced) must come out the same both ways. */
#define Q "\"((\\\\.|[^\"\\\\])*)\""
#define COMMON_RE                                                            \
    "^([^ ]+) ([^ ]+) ([^ ]+) \\[([^]]+)\\] " Q " ([0-9]{3}) ([0-9]+|-)"

static const char *const s_samples[] = {
    "203.0.113.7 - - [10/Oct/2023:13:55:36 +0200] \"GET /index.html "
    "HTTP/1.1\" 200 2326 \"https://example.com/\" \"Mozilla/5.0 (X11)\"",
    "2001:db8::1 - alice [01/Jan/2024:00:00:00 -0500] \"POST /a?b=\\\"c\\\" "
    "HTTP/2.0\" 201 - \"-\" \"curl/8.4.0\"",
    "192.0.2.1 - - [15/Mar/2024:08:00:00 -0930] \"\" 400 0 \"-\" \"-\"",
    "10.1.2.3 id u [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 304 -",
    "a b c [x] \"\\\\\" 999 12345678901234567890 \"\\\"\" \"]\"",
};

static void s_differential(const char *preset, const char *pattern,
                           const char *fields)
{
    char *conf = NULL;
    cr_assert_gt(asprintf(&conf,
                          "pattern: '%s'\nfields: %s\n"
                          "types: {time: time, status: int, bytes: int}\n"
                          "time_format: '%%d/%%b/%%Y:%%H:%%M:%%S %%z'",
                          pattern, fields), 0);
    sl_harness_t *fast = sl_test_harness("regex_parse", preset, NULL);
    sl_harness_t *re = sl_test_harness("regex_parse", conf, NULL);
    static const char alphabet[] = " \"\\[]-0123456789ax";
    uint64_t seed = 0x5eed1234abcdull;
    size_t ok = 0, total = 0;
    for (size_t k = 0; k < sizeof(s_samples) / sizeof(*s_samples); k++) {
        for (int round = 0; round < 400; round++, total++) {
            char line[512];
            snprintf(line, sizeof(line), "%s", s_samples[k]);
            int edits = round == 0 ? 0 : 1 + (int)(sl_test_rand(&seed) % 3);
            for (int e = 0; e < edits; e++) {
                size_t len = strlen(line);
                size_t at = sl_test_rand(&seed) % (len + 1);
                char b = alphabet[sl_test_rand(&seed) % (sizeof(alphabet) - 1)];
                switch (sl_test_rand(&seed) % 3) {
                case 0: /* delete */
                    if (at < len)
                        memmove(line + at, line + at + 1, len - at);
                    break;
                case 1: /* insert */
                    if (len + 1 < sizeof(line)) {
                        memmove(line + at + 1, line + at, len - at + 1);
                        line[at] = b;
                    }
                    break;
                default: /* replace */
                    if (at < len)
                        line[at] = b;
                }
            }
            char *rec = s_rec(line);
            size_t nf = sl_harness_count(fast), nr = sl_harness_count(re);
            int rf = sl_harness_push_json(fast, rec);
            char ef[1024];
            snprintf(ef, sizeof(ef), "%s", sl_harness_last_error(fast));
            int rr = sl_harness_push_json(re, rec);
            const char *er = sl_harness_last_error(re);
            cr_assert_eq(rf == 0, rr == 0, "%s: %s\npreset: %s\npattern: %s",
                         preset, line, rf ? ef : sl_harness_output(fast, nf),
                         rr ? er : sl_harness_output(re, nr));
            if (rf == 0) {
                cr_assert_str_eq(sl_harness_output(fast, nf),
                                 sl_harness_output(re, nr), "%s", line);
                ok++;
            } else {
                int mf = strstr(ef, "does not match the pattern") != NULL;
                int mr = strstr(er, "does not match the pattern") != NULL;
                cr_assert_eq(mf, mr, "%s: %s\npreset: %s\npattern: %s",
                             preset, line, ef, er);
            }
            free(rec);
        }
    }
    /* Both outcomes were tried often enough to mean something. */
    cr_expect_gt(ok, total / 20, "%zu of %zu matched", ok, total);
    cr_expect_lt(ok, total - total / 20, "%zu of %zu matched", ok, total);
    sl_harness_destroy(&fast);
    sl_harness_destroy(&re);
    free(conf);
}

Test(regex_parse, presets_agree_with_their_pattern)
{
    s_differential("preset: combined", COMMON_RE " " Q " " Q "$",
                   "[remote_addr, ident, remote_user, time, request, _, "
                   "status, bytes, referer, _, user_agent, _]");
    s_differential("preset: common", COMMON_RE "$",
                   "[remote_addr, ident, remote_user, time, request, _, "
                   "status, bytes]");
}

/* ---- a pattern of one's own ---------------------------------------------- */

static const char s_app_conf[] =
    "pattern: '^([0-9T:-]+Z) (DEBUG|INFO|WARN|ERROR) \\[([a-z]+)\\]"
    "( took ([0-9.]+)ms)?( ok=([A-Za-z0-9]+))?( n=([-0-9]+))? (.*)$'\n"
    "fields: [ts, level, component, _, ms, '', ok, '', n, msg]\n"
    "types: {ts: time, ms: float, ok: bool, n: int}\n"
    "time_format: '%Y-%m-%dT%H:%M:%SZ'\n";

Test(regex_parse, custom_pattern_with_types_and_optional_groups)
{
    sl_harness_t *h = sl_test_harness("regex_parse", s_app_conf, NULL);
    s_ok(h, "2024-03-15T08:00:00Z INFO [db] took 12.5ms ok=yes n=-42 done",
         "{\"ts\":1710489600,\"level\":\"INFO\",\"component\":\"db\","
         "\"ms\":12.5,\"ok\":true,\"n\":-42,\"msg\":\"done\"}");
    /* Groups that took no part are null. */
    s_ok(h, "2024-03-15T08:00:00Z WARN [http] slow client",
         "{\"ts\":1710489600,\"level\":\"WARN\",\"component\":\"http\","
         "\"ms\":null,\"ok\":null,\"n\":null,\"msg\":\"slow client\"}");
    s_ok(h, "2024-03-15T08:00:01Z DEBUG [x] ok=OFF n=9223372036854775807 ",
         "{\"ts\":1710489601,\"level\":\"DEBUG\",\"component\":\"x\","
         "\"ms\":null,\"ok\":false,\"n\":9223372036854775807,\"msg\":\"\"}");
    s_ok(h, "2024-03-15T08:00:01Z DEBUG [x] n=-9223372036854775808 m",
         "{\"ts\":1710489601,\"level\":\"DEBUG\",\"component\":\"x\","
         "\"ms\":null,\"ok\":null,\"n\":-9223372036854775808,\"msg\":\"m\"}");

    s_fails(h, "2024-03-15T08:00:00Z INFO [db] took 1.2.3ms x",
            "field 'ms': '1.2.3' is not a float");
    s_fails(h, "2024-03-15T08:00:00Z INFO [db] ok=maybe x",
            "field 'ok': 'maybe' is not a bool");
    s_fails(h, "2024-03-15T08:00:00Z INFO [db] n=9223372036854775808 x",
            "field 'n': '9223372036854775808' is out of the int64 range");
    s_fails(h, "2024-03-15T08:00:00Z INFO [db] n=4-2 x",
            "field 'n': '4-2' is not an int");
    s_fails(h, "2024-13-45T99:00:00Z INFO [db] x",
            "field 'ts': '2024-13-45T99:00:00Z' does not match time_format "
            "'%Y-%m-%dT%H:%M:%SZ'");
    s_fails(h, "FATAL everything",
            "field 'line' does not match the pattern: 'FATAL everything'");
    cr_expect_eq(sl_harness_count(h), 4);
    sl_harness_destroy(&h);
}

Test(regex_parse, times_ignore_tz)
{
    const char *conf = "pattern: '^(.*)$'\nfields: [t]\ntypes: {t: time}\n"
                       "time_format: '%d/%b/%Y:%H:%M:%S %z'";
    const char *zones[] = {"UTC", "America/New_York", "Asia/Kolkata",
                           "Pacific/Chatham"};
    char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    for (size_t i = 0; i < 4; i++) {
        setenv("TZ", zones[i], 1);
        tzset();
        sl_harness_t *h = sl_test_harness("regex_parse", conf, NULL);
        s_ok(h, "10/Oct/2023:13:55:36 +0200", "{\"t\":1696938936}");
        s_ok(h, "10/Oct/2023:13:55:36 +0000", "{\"t\":1696946136}");
        s_ok(h, "10/Oct/2023:13:55:36 -0930", "{\"t\":1696980336}");
        s_ok(h, "10/Oct/2023:13:55:36 +05:45", "{\"t\":1696925436}");
        /* The same text again, from the per-worker cache. */
        s_ok(h, "10/Oct/2023:13:55:36 -0930", "{\"t\":1696980336}");
        s_ok(h, "-", "{\"t\":null}");
        s_fails(h, "10/Oct/2023:13:55:36 +0200 trailing",
                "field 't': '10/Oct/2023:13:55:36 +0200 trailing' does not "
                "match time_format");
        s_fails(h, "10/Okt/2023:13:55:36 +0200",
                "field 't': '10/Okt/2023:13:55:36 +0200' does not match");
        sl_harness_destroy(&h);
    }
    if (old)
        setenv("TZ", old, 1);
    else
        unsetenv("TZ");
    tzset();
    free(old);
}

/* The access log's time format is read without strptime when it has its
 * usual shape; a format with a leading space (which strptime reads the
 * same) always goes through strptime. Random times, in range and out,
 * must give the same results both ways. */
Test(regex_parse, clf_times_agree_with_strptime)
{
    sl_harness_t *fast = sl_test_harness(
        "regex_parse", "pattern: '^(.*)$'\nfields: [t]\ntypes: {t: time}\n"
                       "time_format: '%d/%b/%Y:%H:%M:%S %z'", NULL);
    sl_harness_t *slow = sl_test_harness(
        "regex_parse", "pattern: '^(.*)$'\nfields: [t]\ntypes: {t: time}\n"
                       "time_format: ' %d/%b/%Y:%H:%M:%S %z'", NULL);
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May",
                                         "Jun", "Jul", "Aug", "Sep", "Oct",
                                         "Nov", "Dec", "oct", "OCT", "Okt",
                                         "Octo"};
    uint64_t seed = 42;
    size_t ok = 0;
    for (int i = 0; i < 3000; i++) {
        unsigned r = (unsigned)sl_test_rand(&seed);
        char t[64];
        /* Mostly valid; now and then a field one past its range. */
        int wild = r % 4 == 0;
        snprintf(t, sizeof(t), "%02u/%s/%04u:%02u:%02u:%02u %c%02u%02u",
                 (unsigned)(sl_test_rand(&seed) % (wild ? 33 : 31)) +
                     !wild,
                 months[sl_test_rand(&seed) % (wild ? 16 : 12)],
                 (unsigned)(1900 + sl_test_rand(&seed) % 300),
                 (unsigned)(sl_test_rand(&seed) % (wild ? 25 : 24)),
                 (unsigned)(sl_test_rand(&seed) % (wild ? 61 : 60)),
                 (unsigned)(sl_test_rand(&seed) % (wild ? 62 : 60)),
                 sl_test_rand(&seed) % 2 ? '+' : '-',
                 (unsigned)(sl_test_rand(&seed) % 15),
                 (unsigned)(sl_test_rand(&seed) % (wild ? 61 : 4)) *
                     (wild ? 1 : 15));
        char *rec = s_rec(t);
        size_t nf = sl_harness_count(fast), ns = sl_harness_count(slow);
        int rf = sl_harness_push_json(fast, rec);
        int rs = sl_harness_push_json(slow, rec);
        cr_assert_eq(rf == 0, rs == 0, "%s: %s / %s", t,
                     rf ? sl_harness_last_error(fast)
                        : sl_harness_output(fast, nf),
                     rs ? sl_harness_last_error(slow)
                        : sl_harness_output(slow, ns));
        if (rf == 0) {
            cr_assert_str_eq(sl_harness_output(fast, nf),
                             sl_harness_output(slow, ns), "%s", t);
            ok++;
        }
        free(rec);
    }
    cr_expect_gt(ok, 2000);
    cr_expect_lt(ok, 3000);
    sl_harness_destroy(&fast);
    sl_harness_destroy(&slow);
}

/* ---- lines that do not match --------------------------------------------- */

Test(regex_parse, mismatch_quotes_the_first_80_bytes)
{
    sl_harness_t *h = sl_test_harness("regex_parse",
                                      "pattern: '^([0-9]+)$'\nfields: [n]",
                                      NULL);
    char line[201];
    memset(line, 'x', 200);
    line[200] = '\0';
    char want[256];
    snprintf(want, sizeof(want),
             "field 'line' does not match the pattern: '%.80s'...", line);
    s_fails(h, line, want);
    cr_expect_str_eq(sl_harness_last_error(h), want);
    /* Not cut inside a UTF-8 character: "é" is 2 bytes at 79..80. */
    memset(line, 'y', 79);
    strcpy(line + 79, "\xc3\xa9zzzz");
    snprintf(want, sizeof(want),
             "field 'line' does not match the pattern: '%.79s'...", line);
    s_fails(h, line, want);
    cr_expect_str_eq(sl_harness_last_error(h), want);
    s_ok(h, "42", "{\"n\":\"42\"}");
    sl_harness_destroy(&h);
}

Test(regex_parse, on_mismatch_drop)
{
    sl_harness_t *h = sl_test_harness(
        "regex_parse", "pattern: '^([0-9]+)$'\nfields: [n]\n"
                       "types: {n: int}\non_mismatch: drop", NULL);
    cr_expect_eq(sl_harness_push_json(h, "{\"line\":\"abc\"}"), 0);
    cr_expect_eq(sl_harness_count(h), 0);
    cr_expect_eq(sl_harness_errors(h), 0);
    /* A missing field is still a failure. */
    sl_test_push_fails(h, "{\"other\":1}", "field 'line' is missing");
    s_ok(h, "7", "{\"n\":7}");
    sl_harness_destroy(&h);
}

/* ---- config -------------------------------------------------------------- */

Test(regex_parse, config_errors)
{
    sl_test_refused("regex_parse", "pattern: '([a-z]+'\nfields: [a]", NULL,
                    "config:1:10: regex_parse: 'pattern' is not a valid "
                    "POSIX extended regular expression: Unmatched ( or \\(");
    sl_test_refused("regex_parse", "fields: [a]\npattern: 'a{2,1}(b)'", NULL,
                    "config:2:10: regex_parse: 'pattern' is not a valid "
                    "POSIX extended regular expression: Invalid content of "
                    "\\{\\}");
    sl_test_refused("regex_parse", "pattern: '(a)+++++++++++++++++++++'\n"
                    "fields: [a]", NULL,
                    "config:1:10: regex_parse: 'pattern' refused: repetition "
                    "operators follow one another at character 5 (each "
                    "copies what it repeats)");
    sl_test_refused("regex_parse", "pattern: '[a-z]+'\nfields: [a]", NULL,
                    "config:1:10: regex_parse: 'pattern' has no capture "
                    "group: nothing to extract");
    sl_test_refused("regex_parse", "field: msg", NULL,
                    "config:1:1: regex_parse: 'pattern' (a POSIX extended "
                    "regular expression) or 'preset' (combined or common) is "
                    "required");
    sl_test_refused("regex_parse", "pattern: '(a)'\npreset: combined", NULL,
                    "config:2:9: regex_parse: give 'pattern' or 'preset', not "
                    "both");
    sl_test_refused("regex_parse", "preset: apache", NULL,
                    "config:1:9: regex_parse: 'preset' must be combined or "
                    "common, got 'apache'");
    sl_test_refused("regex_parse", "pattern: '(a)(b)'", NULL,
                    "config:1:1: regex_parse: 'fields' is required with "
                    "'pattern' (one name per capture group, \"_\" to skip "
                    "one)");
    sl_test_refused("regex_parse", "pattern: '(a)(b)'\nfields: [x]", NULL,
                    "config:2:9: regex_parse: 'fields' names 1 group, the "
                    "pattern has 2 capture groups");
    sl_test_refused("regex_parse", "pattern: '(a)(b)'\nfields: [x, x]", NULL,
                    "config:2:13: regex_parse: 'fields' names 'x' twice");
    sl_test_refused("regex_parse", "pattern: '(a)(b)'\nfields: [_, '']", NULL,
                    "'fields' skips every group: nothing to extract");
    sl_test_refused("regex_parse", "preset: combined\nfields: [a]", NULL,
                    "config:2:9: regex_parse: 'fields' cannot be combined "
                    "with 'preset'");
    sl_test_refused("regex_parse", "preset: common\ntypes: {agent: string}",
                    NULL,
                    "config:2:16: regex_parse: 'types' names 'agent', which "
                    "is not a field of the preset");
    sl_test_refused("regex_parse", "pattern: '(a)'\nfields: [x]\n"
                    "types: {x: date}", NULL,
                    "config:3:12: regex_parse: 'types.x' must be int, float, "
                    "bool, string or time, got 'date'");
    sl_test_refused("regex_parse", "pattern: '(a)'\nfields: [x]\n"
                    "types: {x: time}", NULL,
                    "config:3:8: regex_parse: 'time_format' is required for "
                    "the time field 'x'");
    sl_test_refused("regex_parse", "pattern: '(a)'\nfields: [x]\n"
                    "time_format: '%s'", NULL,
                    "config:3:14: regex_parse: 'time_format' is given but no "
                    "field has type time");
    sl_test_refused("regex_parse", "preset: common\ntime_format: 'dd/mm'",
                    NULL, "'time_format' must be a strptime format");
    sl_test_refused("regex_parse", "preset: common\non_mismatch: skip", NULL,
                    "config:2:14: regex_parse: 'on_mismatch' must be "
                    "dead_letter or drop, got 'skip'");
    sl_test_refused("regex_parse", "preset: common\nfield: ''", NULL,
                    "'field' must not be empty");
    sl_test_refused("regex_parse", "preset: common\nflags: [i]", NULL,
                    "unknown key 'flags' for plugin 'regex_parse'");
}
