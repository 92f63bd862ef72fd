#include "plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Loaded plugins are shared by name across stages and runs of the
 * process; a small refcounted list is plenty (tens of plugins). */
typedef struct s_entry {
    sl_plugin_t plugin;
    char *name;
    unsigned refs;
    struct s_entry *next;
} s_entry_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static s_entry_t *s_loaded;

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int sl__plugin_check_desc(const sl_stage_desc_t *desc, const char *path,
                          char *err, size_t errlen)
{
    if ((desc->abi & 0xffff0000u) != SL_STAGE_ABI_MAGIC) {
        s_err(err, errlen, "%s: '%s' is not a sluice stage descriptor",
              path, SL_STAGE_SYMBOL);
        return -EPROTO;
    }
    if (desc->abi != SL_STAGE_ABI) {
        s_err(err, errlen,
              "%s: stage ABI revision %u, but this sluice needs %u; rebuild "
              "the plugin against this sluice's stage.h",
              path, desc->abi & 0xffffu, SL_STAGE_ABI_REV);
        return -EPROTO;
    }
    if (desc->size != sizeof(sl_stage_desc_t)) {
        s_err(err, errlen,
              "%s: descriptor size %u, expected %zu; rebuild the plugin "
              "against this sluice's stage.h",
              path, desc->size, sizeof(sl_stage_desc_t));
        return -EPROTO;
    }
    if (!desc->name || !desc->name[0]) {
        s_err(err, errlen, "%s: descriptor has no name", path);
        return -EINVAL;
    }
    if (!desc->init) {
        s_err(err, errlen, "%s: stage '%s' has no init callback", path,
              desc->name);
        return -EINVAL;
    }
    switch (desc->kind) {
    case SL_STAGE_SOURCE:
        if (!desc->pull) {
            s_err(err, errlen, "%s: source '%s' has no pull callback", path,
                  desc->name);
            return -EINVAL;
        }
        break;
    case SL_STAGE_TRANSFORM:
    case SL_STAGE_SINK:
        if (!desc->process) {
            s_err(err, errlen, "%s: stage '%s' has no process callback",
                  path, desc->name);
            return -EINVAL;
        }
        break;
    default:
        s_err(err, errlen, "%s: stage '%s' has unknown kind %d", path,
              desc->name, (int)desc->kind);
        return -EINVAL;
    }
    return 0;
}

/* Search order: SLUICE_PLUGIN_PATH entries, the build tree, the install
 * path. Writes the directories tried into `tried` for the error message. */
static char *s_find(const char *name, char *tried, size_t triedlen)
{
    char file[512];
    snprintf(file, sizeof(file), "%s.so", name);
    const char *env = getenv("SLUICE_PLUGIN_PATH");
    char *dirs = NULL;
    if (asprintf(&dirs, "%s%s%s:%s", env ? env : "", env && *env ? ":" : "",
                 SL_STAGE_BUILD_DIR, SL_STAGE_INSTALL_DIR) < 0)
        return NULL;
    size_t used = 0;
    tried[0] = '\0';
    char *save = NULL, *found = NULL;
    for (char *dir = strtok_r(dirs, ":", &save); dir;
         dir = strtok_r(NULL, ":", &save)) {
        if (!*dir)
            continue;
        used += (size_t)snprintf(tried + used, triedlen > used ? triedlen - used : 0,
                                 "%s%s", used ? ", " : "", dir);
        if (used >= triedlen)
            used = triedlen - 1;
        char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, file) < 0)
            break;
        if (access(path, R_OK) == 0) {
            found = path;
            break;
        }
        free(path);
    }
    free(dirs);
    return found;
}

/* Edit distance (insert, delete, substitute, swap of neighbours) between
 * short names, capped: anything past 3 is 3. */
static unsigned s_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 3;
    unsigned d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            unsigned best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
                a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb] < 3 ? d[la][lb] : 3;
}

/* The closest plugin name in the search path to a name that was not found
 * (a typo such as 'generatr'), into out; "" when none is close. */
static void s_suggest(const char *name, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *env = getenv("SLUICE_PLUGIN_PATH");
    char *dirs = NULL;
    if (asprintf(&dirs, "%s%s%s:%s", env ? env : "", env && *env ? ":" : "",
                 SL_STAGE_BUILD_DIR, SL_STAGE_INSTALL_DIR) < 0)
        return;
    /* One edit for short names, two from six letters on. */
    unsigned best = strlen(name) >= 6 ? 3 : 2;
    char *save = NULL;
    for (char *dir = strtok_r(dirs, ":", &save); dir;
         dir = strtok_r(NULL, ":", &save)) {
        DIR *d = opendir(dir);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t len = strlen(de->d_name);
            if (len < 4 || len > 66 || strcmp(de->d_name + len - 3, ".so"))
                continue;
            char stem[64];
            snprintf(stem, sizeof(stem), "%.*s", (int)(len - 3), de->d_name);
            unsigned dist = s_distance(name, stem);
            if (dist < best) {
                best = dist;
                snprintf(out, outlen, "%s", stem);
            }
        }
        closedir(d);
    }
    free(dirs);
}

static sl_plugin_t *s_open(const char *name, const char *path, char *err,
                           size_t errlen)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        s_err(err, errlen, "%s: cannot load plugin: %s", path, dlerror());
        return NULL;
    }
    const sl_stage_desc_t *desc = dlsym(dl, SL_STAGE_SYMBOL);
    if (!desc) {
        s_err(err, errlen,
              "%s: not a sluice plugin: symbol '%s' not found (define the "
              "stage with SL_STAGE_DEFINE)",
              path, SL_STAGE_SYMBOL);
        goto fail;
    }
    if (sl__plugin_check_desc(desc, path, err, errlen) != 0)
        goto fail;
    if (!strchr(name, '/') && strcmp(desc->name, name) != 0) {
        s_err(err, errlen, "%s: file is named '%s' but its stage is '%s'",
              path, name, desc->name);
        goto fail;
    }
    sl_plugin_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->path = strdup(path))) {
        free(p);
        s_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    p->desc = desc;
    p->dl = dl;
    return p;
fail:
    dlclose(dl);
    return NULL;
}

sl_plugin_t *sl__plugin_load(const char *name, char *err, size_t errlen)
{
    pthread_mutex_lock(&s_lock);
    for (s_entry_t *e = s_loaded; e; e = e->next)
        if (strcmp(e->name, name) == 0) {
            e->refs++;
            pthread_mutex_unlock(&s_lock);
            return &e->plugin;
        }

    sl_plugin_t *p = NULL;
    s_entry_t *e = NULL;
    char *path = NULL;
    if (strchr(name, '/')) {
        path = strdup(name);
    } else {
        char tried[1024];
        path = s_find(name, tried, sizeof(tried));
        if (!path) {
            char hint[64];
            s_suggest(name, hint, sizeof(hint));
            s_err(err, errlen,
                  "unknown plugin '%s': no %s.so in %s (set "
                  "SLUICE_PLUGIN_PATH to add folders)%s%s%s",
                  name, name, tried, hint[0] ? "; did you mean '" : "", hint,
                  hint[0] ? "'?" : "");
            goto out;
        }
    }
    if (!path) {
        s_err(err, errlen, "out of memory");
        goto out;
    }
    p = s_open(name, path, err, errlen);
    if (!p)
        goto out;
    e = calloc(1, sizeof(*e));
    if (!e || !(e->name = strdup(name))) {
        free(e);
        e = NULL;
        dlclose(p->dl);
        free(p->path);
        s_err(err, errlen, "out of memory");
        goto out;
    }
    e->plugin = *p;
    e->refs = 1;
    e->next = s_loaded;
    s_loaded = e;
out:
    free(p);
    free(path);
    pthread_mutex_unlock(&s_lock);
    return e ? &e->plugin : NULL;
}

sl_plugin_t *sl__plugin_builtin(const sl_stage_desc_t *desc, void *owned,
                                void (*free_owned)(void *), char *err,
                                size_t errlen)
{
    sl_plugin_t *p = NULL;
    if (sl__plugin_check_desc(desc, "(built-in)", err, errlen) != 0)
        goto fail;
    if (!(p = calloc(1, sizeof(*p))) || !(p->path = strdup("(built-in)"))) {
        free(p);
        p = NULL;
        s_err(err, errlen, "built-in stage '%s': out of memory", desc->name);
        goto fail;
    }
    p->desc = desc;
    p->owned = owned;
    p->free_owned = free_owned;
    return p;
fail:
    if (owned && free_owned)
        free_owned(owned);
    return NULL;
}

void sl__plugin_release(sl_plugin_t **plugin)
{
    if (!plugin || !*plugin)
        return;
    if (!(*plugin)->dl) { /* built-in: one owner, nothing shared */
        sl_plugin_t *p = *plugin;
        if (p->owned && p->free_owned)
            p->free_owned(p->owned);
        free(p->path);
        free(p);
        *plugin = NULL;
        return;
    }
    pthread_mutex_lock(&s_lock);
    for (s_entry_t **pe = &s_loaded; *pe; pe = &(*pe)->next) {
        s_entry_t *e = *pe;
        if (&e->plugin != *plugin)
            continue;
        if (--e->refs == 0) {
            *pe = e->next;
            /* Sanitizers report leaks inside unloaded objects without
             * symbols; keeping the code mapped costs nothing. */
#if !defined(__SANITIZE_ADDRESS__)
            dlclose(e->plugin.dl);
#endif
            free(e->plugin.path);
            free(e->name);
            free(e);
        }
        break;
    }
    pthread_mutex_unlock(&s_lock);
    *plugin = NULL;
}

void sl__plugin_foreach(sl_plugin_visit_fn fn, void *arg)
{
    const char *env = getenv("SLUICE_PLUGIN_PATH");
    char *dirs = NULL;
    if (asprintf(&dirs, "%s%s%s:%s", env ? env : "", env && *env ? ":" : "",
                 SL_STAGE_BUILD_DIR, SL_STAGE_INSTALL_DIR) < 0)
        return;
    /* Names already visited, so that the first in search order wins. */
    char **seen = NULL;
    size_t n_seen = 0;
    char *save = NULL;
    for (char *dir = strtok_r(dirs, ":", &save); dir;
         dir = strtok_r(NULL, ":", &save)) {
        DIR *d = opendir(dir);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t len = strlen(de->d_name);
            if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0)
                continue;
            char *name = strndup(de->d_name, len - 3);
            if (!name)
                continue;
            int dup = 0;
            for (size_t i = 0; i < n_seen && !dup; i++)
                dup = strcmp(seen[i], name) == 0;
            char **grown = dup ? NULL : realloc(seen, (n_seen + 1) * sizeof(*seen));
            if (!grown) {
                free(name);
                continue;
            }
            seen = grown;
            seen[n_seen++] = name;
            char err[512];
            sl_plugin_t *p = sl__plugin_load(name, err, sizeof(err));
            if (p) {
                fn(p, arg);
                sl__plugin_release(&p);
            }
        }
        closedir(d);
    }
    for (size_t i = 0; i < n_seen; i++)
        free(seen[i]);
    free(seen);
    free(dirs);
}
