# Writes a web server access log in the combined format, deterministic for
# a given seed on every awk (its own random numbers, its own calendar):
#
#   awk -v n=2000 -v seed=7 -v start=1700000000 -v span=600 \
#       -f topologies/data/gen_access_log.awk > topologies/data/access.log
#
# n lines spread evenly over span seconds from start (epoch seconds), local
# time at offset +0200; request times run up to 3 s out of order, as a
# server logs requests when they end. Every `bad`-th line (default 250; 0:
# none) is malformed, in turn: cut short, an error log line, a blank line,
# a status that is not a number, a line in the common format. Used for
# topologies/data/access.log and by bench/access_logs.sh.
function rnd(m) {
    # Park-Miller: products stay below 2^53, so every awk computes the same.
    state = (state * 16807) % 2147483647
    return state % m
}
function pick(list, k,    parts) {
    k = split(list, parts, "|")
    return parts[rnd(k) + 1]
}
# Days since 1970-01-01 -> "DD/Mon/YYYY" (proleptic Gregorian).
function civil(days,    z, era, doe, yoe, y, doy, mp, d, m) {
    z = days + 719468
    era = int(z / 146097)
    doe = z - era * 146097
    yoe = int((doe - int(doe / 1460) + int(doe / 36524) - int(doe / 146096)) / 365)
    y = yoe + era * 400
    doy = doe - (365 * yoe + int(yoe / 4) - int(yoe / 100))
    mp = int((5 * doy + 2) / 153)
    d = doy - int((153 * mp + 2) / 5) + 1
    m = mp < 10 ? mp + 3 : mp - 9
    if (m <= 2)
        y++
    return sprintf("%02d/%s/%04d", d, mon[m], y)
}
function stamp(t,    local, days, secs) {
    local = t + 7200
    days = int(local / 86400)
    secs = local - days * 86400
    return sprintf("%s:%02d:%02d:%02d +0200", civil(days), int(secs / 3600),
                   int(secs % 3600 / 60), secs % 60)
}
function client(    r) {
    r = rnd(100)
    if (r < 12)
        return sprintf("2001:db8:%x::%x", rnd(16), rnd(65536))
    if (r < 45)
        return sprintf("203.0.113.%d", rnd(254) + 1)
    if (r < 75)
        return sprintf("198.51.100.%d", rnd(254) + 1)
    return sprintf("192.0.2.%d", rnd(254) + 1)
}
function request(    r, method, path) {
    # A TLS handshake sent to the HTTP port, as nginx logs it.
    if (rnd(200) == 0)
        return "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03"
    r = rnd(100)
    method = r < 80 ? "GET" : r < 92 ? "POST" : r < 96 ? "HEAD" : r < 98 ? "PUT" : "DELETE"
    path = pick("/|/index.html|/static/app.js|/static/style.css|/images/logo.png|/favicon.ico|/robots.txt|/login|/api/v1/items|/api/v1/orders|/about")
    r = rnd(100)
    if (r < 8)
        path = "/api/v1/items/" rnd(5000)
    else if (r < 13)
        path = "/search?q=" pick("shoes|red+shoes|%22exact%22|caf%C3%A9|\\\"quoted\\\"") "&page=" (rnd(5) + 1)
    return method " " path " " pick("HTTP/1.1|HTTP/1.1|HTTP/1.1|HTTP/2.0|HTTP/1.0")
}
function status(    r) {
    r = rnd(100)
    if (r < 68) return 200
    if (r < 70) return 201
    if (r < 71) return 204
    if (r < 79) return 304
    if (r < 81) return 301
    if (r < 83) return 302
    if (r < 93) return 404
    if (r < 95) return 401
    if (r < 96) return 403
    if (r < 98) return 500
    if (r < 99) return 502
    return 503
}
function agent(    r) {
    r = rnd(100)
    if (r < 55)
        return pick("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36|Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0|Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15|Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
    if (r < 80)
        return pick("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)|Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)|Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)|Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)")
    if (r < 95)
        return pick("curl/8.4.0|python-requests/2.31.0|Wget/1.21.4|Go-http-client/1.1")
    return "-"
}
function line(t,    req, st, bytes, ref, ua) {
    req = request()
    st = status()
    bytes = (st == 304) ? "-" : (st == 204) ? 0 : rnd(48000) + 120
    ref = rnd(2) ? "-" : "https://www.example.com" pick("/|/index.html|/search?q=shoes|/about")
    ua = agent()
    if (substr(req, 1, 4) == "\\x16") {
        st = 400
        bytes = 157
        ref = ua = "-"
    }
    return sprintf("%s - %s [%s] \"%s\" %d %s \"%s\" \"%s\"", client(),
                   rnd(20) ? "-" : pick("alice|bob|carol"), stamp(t), req, st,
                   bytes, ref, ua)
}
function malformed(t, k,    l, local, days, secs, ymd) {
    k = k % 5
    l = line(t)
    if (k == 0)
        return substr(l, 1, 20 + rnd(length(l) - 40))
    if (k == 1) {
        local = t + 7200
        days = int(local / 86400)
        secs = local - days * 86400
        split(civil(days), ymd, "/")
        return sprintf("%s/%02d/%s %02d:%02d:%02d [error] 2211#2211: *%d open() \"/var/www/html/wp-login.php\" failed (2: No such file or directory)",
                       ymd[3], monum[ymd[2]], ymd[1], int(secs / 3600),
                       int(secs % 3600 / 60), secs % 60, rnd(100000))
    }
    if (k == 2)
        return ""
    if (k == 3) {
        sub(/" [0-9][0-9][0-9] /, "\" 2OO ", l)
        return l
    }
    sub(/ "[^"]*" "[^"]*"$/, "", l)   # a common-format line
    return l
}
BEGIN {
    split("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec", mon, " ")
    for (i = 1; i <= 12; i++)
        monum[mon[i]] = i
    if (n == "") n = 2000
    if (seed == "") seed = 7
    if (start == "") start = 1700000000
    if (span == "") span = 600
    if (bad == "") bad = 250
    state = seed % 2147483646 + 1
    for (i = 0; i < n; i++) {
        t = start + int(i * span / n) - rnd(4)
        if (bad > 0 && i % bad == bad - 1)
            print malformed(t, int(i / bad))
        else
            print line(t)
    }
}
