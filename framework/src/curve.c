/* Key files (curve.h). The key file format is
 * documented in docs/deploy.md: '#' comments, blank lines, and lines
 * `FIELD = "VALUE"` with FIELD one of node, public, secret. */
#include "curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* Key files are a few hundred bytes; anything much larger is not one. */
#define S_FILE_MAX (64 * 1024)

static const char s_z85[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int sl__curve_check(char *err, size_t errlen)
{
    if (zmq_has("curve"))
        return 0;
    return s_fail(err, errlen, -ENOTSUP,
                  "this libzmq was built without CURVE security "
                  "(zmq_has(\"curve\") is 0): encrypted tcp links need a "
                  "libzmq built with libsodium");
}

int sl__curve_keypair(sl_curve_keys_t *keys, char *err, size_t errlen)
{
    int rc = sl__curve_check(err, errlen);
    if (rc < 0)
        return rc;
    if (zmq_curve_keypair(keys->public_key, keys->secret_key) != 0)
        return s_fail(err, errlen, -errno, "cannot make a key pair: %s",
                      zmq_strerror(errno));
    return 0;
}

int sl__curve_check_name(const char *name, char *err, size_t errlen)
{
    size_t n = strlen(name);
    if (n == 0)
        return s_fail(err, errlen, -EINVAL, "a node name cannot be empty");
    if (n > SL_CURVE_NAME_MAX)
        return s_fail(err, errlen, -EINVAL,
                      "node name '%.20s...' is %zu characters long; at most "
                      "%d", name, n, SL_CURVE_NAME_MAX);
    if (name[0] == '.' || name[0] == '-')
        return s_fail(err, errlen, -EINVAL,
                      "node name '%s' starts with '%c'; it must start with a "
                      "letter, a digit or '_'", name, name[0]);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
            !(c >= '0' && c <= '9') && c != '_' && c != '-' && c != '.')
            return s_fail(err, errlen, -EINVAL,
                          "node name '%s' has '%c' at column %zu; use "
                          "letters, digits, '_', '-' and '.'",
                          name, c >= 0x20 && c < 0x7f ? c : '?', i + 1);
    }
    return 0;
}

int sl__curve_check_key(const char *text, const char *what, char *err,
                        size_t errlen)
{
    size_t n = strlen(text);
    if (n != SL_CURVE_KEY_LEN)
        return s_fail(err, errlen, -EINVAL,
                      "%s is %zu characters long; a CURVE key is %d Z85 "
                      "characters", what, n, SL_CURVE_KEY_LEN);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x21 || c > 0x7e || !strchr(s_z85, c))
            return s_fail(err, errlen, -EINVAL,
                          "%s has '%c' at column %zu, which is not a Z85 "
                          "character", what,
                          c >= 0x20 && c < 0x7f ? c : '?', i + 1);
    }
    /* Five valid characters can still exceed 32 bits ("#####"). */
    uint8_t raw[32];
    if (!zmq_z85_decode(raw, text))
        return s_fail(err, errlen, -EINVAL,
                      "%s is not a valid Z85 encoding (a group of five "
                      "characters is larger than 32 bits)", what);
    return 0;
}

/* ---- reading ------------------------------------------------------------- */

typedef struct s_keyfile {
    char node[SL_CURVE_NAME_MAX + 1];
    char public_key[SL_CURVE_KEY_LEN + 1];
    char secret_key[SL_CURVE_KEY_LEN + 1];
    unsigned node_line, public_line, secret_line; /* 0: absent */
} s_keyfile_t;

/* Refuses what ssh refuses for a private key: access for group or others,
 * or an owner other than us (or root). */
static int s_check_private(const char *path, const struct stat *st,
                           char *err, size_t errlen)
{
    if (st->st_uid != geteuid() && st->st_uid != 0)
        return s_fail(err, errlen, -EACCES,
                      "%s: secret key file is owned by uid %u, not by this "
                      "user (uid %u); refusing to use it",
                      path, (unsigned)st->st_uid, (unsigned)geteuid());
    if (st->st_mode & 077)
        return s_fail(err, errlen, -EACCES,
                      "%s: secret key file is accessible by others (mode "
                      "%04o); refusing to use it. Run: chmod 600 %s",
                      path, (unsigned)(st->st_mode & 07777), path);
    return 0;
}

static char *s_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* One `FIELD = "VALUE"` line (trimmed, not a comment) into kf. */
static int s_parse_line(const char *path, unsigned ln, char *line,
                        s_keyfile_t *kf, char *err, size_t errlen)
{
    char *eq = strchr(line, '=');
    if (!eq)
        return s_fail(err, errlen, -EINVAL,
                      "%s:%u: expected FIELD = \"VALUE\"", path, ln);
    *eq = '\0';
    char *field = s_trim(line);
    char *value = s_trim(eq + 1);
    size_t vn = strlen(value);
    if (vn < 2 || value[0] != '"' || !strchr(value + 1, '"'))
        return s_fail(err, errlen, -EINVAL,
                      "%s:%u: the value of '%s' must be in double quotes",
                      path, ln, field);
    char *close = strchr(value + 1, '"');
    char *rest = s_trim(close + 1);
    if (*rest && *rest != '#')
        return s_fail(err, errlen, -EINVAL,
                      "%s:%u: unexpected text after the closing quote of "
                      "'%s'", path, ln, field);
    *close = '\0';
    value++;

    char *dst;
    unsigned *at;
    const char *what;
    if (strcmp(field, "public") == 0) {
        dst = kf->public_key, at = &kf->public_line, what = "public key";
    } else if (strcmp(field, "secret") == 0) {
        dst = kf->secret_key, at = &kf->secret_line, what = "secret key";
    } else if (strcmp(field, "node") == 0) {
        dst = kf->node, at = &kf->node_line, what = NULL;
    } else {
        return s_fail(err, errlen, -EINVAL,
                      "%s:%u: unknown field '%s' (a key file has node, "
                      "public and secret)", path, ln, field);
    }
    if (*at)
        return s_fail(err, errlen, -EINVAL,
                      "%s:%u: '%s' given twice (first on line %u)", path, ln,
                      field, *at);
    char why[256];
    int rc = what ? sl__curve_check_key(value, what, why, sizeof(why))
                  : sl__curve_check_name(value, why, sizeof(why));
    if (rc < 0)
        return s_fail(err, errlen, rc, "%s:%u: %s", path, ln, why);
    strcpy(dst, value); /* lengths checked above */
    *at = ln;
    return 0;
}

/* Reads and parses path. want_secret: the file must be private (checked
 * before reading) and hold a secret. Otherwise a file that turns out to
 * hold a secret gets the same check. */
static int s_read(const char *path, int want_secret, s_keyfile_t *kf,
                  char *err, size_t errlen)
{
    memset(kf, 0, sizeof(*kf));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return s_fail(err, errlen, -errno, "%s: cannot open: %s", path,
                      strerror(errno));
    int rc;
    char *text = NULL;
    size_t cap = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = s_fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = s_fail(err, errlen, -EINVAL, "%s: not a regular file", path);
        goto out;
    }
    if (want_secret && (rc = s_check_private(path, &st, err, errlen)) < 0)
        goto out;
    if (st.st_size > S_FILE_MAX) {
        rc = s_fail(err, errlen, -EFBIG,
                    "%s: %lld bytes is too large for a key file", path,
                    (long long)st.st_size);
        goto out;
    }
    cap = (size_t)st.st_size + 1;
    text = malloc(cap);
    if (!text) {
        rc = s_fail(err, errlen, -ENOMEM, "%s: out of memory", path);
        goto out;
    }
    size_t len = 0;
    while (len < (size_t)st.st_size) {
        ssize_t r = read(fd, text + len, (size_t)st.st_size - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = s_fail(err, errlen, -errno, "%s: cannot read: %s", path,
                        strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    text[len] = '\0';
    if (strlen(text) != len) {
        rc = s_fail(err, errlen, -EINVAL, "%s: not a text file (NUL byte)",
                    path);
        goto out;
    }

    unsigned ln = 0;
    for (char *line = text; line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        ln++;
        char *t = s_trim(line);
        if (*t && *t != '#' &&
            (rc = s_parse_line(path, ln, t, kf, err, errlen)) < 0)
            goto out;
        line = nl ? nl + 1 : NULL;
    }
    if (!kf->public_line) {
        rc = s_fail(err, errlen, -EINVAL,
                    "%s: no public key (a line public = \"...\")", path);
        goto out;
    }
    if (want_secret && !kf->secret_line) {
        rc = s_fail(err, errlen, -EINVAL,
                    "%s: no secret key (a line secret = \"...\"); is this "
                    "the .pub file?", path);
        goto out;
    }
    if (!want_secret && kf->secret_line &&
        (rc = s_check_private(path, &st, err, errlen)) < 0)
        goto out;
    if (kf->secret_line) {
        char derived[SL_CURVE_KEY_LEN + 1];
        if ((rc = sl__curve_check(err, errlen)) < 0)
            goto out;
        if (zmq_curve_public(derived, kf->secret_key) != 0 ||
            strcmp(derived, kf->public_key) != 0) {
            rc = s_fail(err, errlen, -EINVAL,
                        "%s:%u: the public key does not belong to the "
                        "secret key on line %u", path, kf->public_line,
                        kf->secret_line);
            goto out;
        }
    }
    rc = 0;
out:
    /* The buffer held a secret: do not leave it in freed memory. */
    if (text) {
        explicit_bzero(text, cap);
        free(text);
    }
    close(fd);
    return rc;
}

int sl__curve_load_secret(const char *path, sl_curve_keys_t *keys,
                          char *node, char *err, size_t errlen)
{
    s_keyfile_t kf;
    int rc = s_read(path, 1, &kf, err, errlen);
    if (rc == 0) {
        memcpy(keys->public_key, kf.public_key, sizeof(keys->public_key));
        memcpy(keys->secret_key, kf.secret_key, sizeof(keys->secret_key));
        if (node)
            memcpy(node, kf.node, sizeof(kf.node));
    }
    explicit_bzero(&kf, sizeof(kf));
    return rc;
}

int sl__curve_load_public(const char *path,
                          char public_key[SL_CURVE_KEY_LEN + 1], char *node,
                          char *err, size_t errlen)
{
    s_keyfile_t kf;
    int rc = s_read(path, 0, &kf, err, errlen);
    if (rc == 0) {
        memcpy(public_key, kf.public_key, SL_CURVE_KEY_LEN + 1);
        if (node)
            memcpy(node, kf.node, sizeof(kf.node));
    }
    explicit_bzero(&kf, sizeof(kf));
    return rc;
}

/* ---- writing ------------------------------------------------------------- */

/* Writes text to a new temporary file beside path with the given mode,
 * then puts it at path: link() when the name must be new (it fails if the
 * name exists, with no window for a race), rename() to replace. */
static int s_put(const char *path, const char *text, mode_t mode, int force,
                 char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= (int)sizeof(tmp))
        return s_fail(err, errlen, -ENAMETOOLONG, "%s: path too long", path);
    int fd = mkstemp(tmp); /* mode 0600 from the start */
    if (fd < 0)
        return s_fail(err, errlen, -errno, "cannot create a file beside %s: "
                      "%s", path, strerror(errno));
    int rc = 0;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = s_fail(err, errlen, -errno, "cannot write %s: %s", tmp,
                        strerror(errno));
            goto fail;
        }
        off += (size_t)w;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
        rc = s_fail(err, errlen, -errno, "cannot write %s: %s", tmp,
                    strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = s_fail(err, errlen, -errno, "cannot write %s: %s", tmp,
                    strerror(errno));
        goto fail;
    }
    fd = -1;
    if (force ? rename(tmp, path) != 0 : link(tmp, path) != 0) {
        rc = -errno;
        if (rc == -EEXIST)
            s_fail(err, errlen, rc, "%s already exists; use --force to "
                   "replace it", path);
        else
            s_fail(err, errlen, rc, "cannot create %s: %s", path,
                   strerror(-rc));
        goto fail;
    }
    if (!force)
        unlink(tmp);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

int sl__curve_write(const char *dir, const char *name,
                    const sl_curve_keys_t *keys, int force, char *err,
                    size_t errlen)
{
    int rc = sl__curve_check_name(name, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = sl__curve_check_key(keys->public_key, "public key", err,
                                  errlen)) < 0 ||
        (rc = sl__curve_check_key(keys->secret_key, "secret key", err,
                                  errlen)) < 0)
        return rc;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return s_fail(err, errlen, -errno, "cannot create directory %s: %s",
                      dir, strerror(errno));

    char key_path[4096], pub_path[4096];
    if (snprintf(key_path, sizeof(key_path), "%s/%s.key", dir, name) >=
            (int)sizeof(key_path) ||
        snprintf(pub_path, sizeof(pub_path), "%s/%s.pub", dir, name) >=
            (int)sizeof(pub_path))
        return s_fail(err, errlen, -ENAMETOOLONG, "%s: path too long", dir);
    /* Both names are checked first so that neither file is written when
     * one is in the way; link() below still refuses a file that appears
     * in between. */
    if (!force) {
        struct stat st;
        if (lstat(key_path, &st) == 0)
            return s_fail(err, errlen, -EEXIST, "%s already exists; use "
                          "--force to replace it", key_path);
        if (lstat(pub_path, &st) == 0)
            return s_fail(err, errlen, -EEXIST, "%s already exists; use "
                          "--force to replace it", pub_path);
    }

    char text[1024];
    snprintf(text, sizeof(text),
             "# sluice CURVE key pair of node \"%s\". SECRET: keep this file "
             "on that host only,\n"
             "# readable by its owner only (chmod 600). Its public key also "
             "goes into the\n"
             "# topology's hosts: entry for %s (docs/deploy.md).\n"
             "node = \"%s\"\n"
             "public = \"%s\"\n"
             "secret = \"%s\"\n",
             name, name, name, keys->public_key, keys->secret_key);
    rc = s_put(key_path, text, 0600, force, err, errlen);
    explicit_bzero(text, sizeof(text));
    if (rc < 0)
        return rc;

    snprintf(text, sizeof(text),
             "# sluice CURVE public key of node \"%s\": not a secret; it "
             "goes into the\n"
             "# topology's hosts: entry for %s (docs/deploy.md).\n"
             "node = \"%s\"\n"
             "public = \"%s\"\n",
             name, name, name, keys->public_key);
    rc = s_put(pub_path, text, 0644, force, err, errlen);
    if (rc < 0 && !force)
        unlink(key_path);
    return rc;
}
