/*
 * Plugin loading: finds NAME.so on SLUICE_PLUGIN_PATH (colon-separated),
 * then in the build's stage folder, then the installed one; or takes a
 * path when the name contains '/'. Checks the descriptor before use.
 */
#ifndef SL_PLUGIN_H
#define SL_PLUGIN_H

#include <sluice/stage.h>
#include <stddef.h>

typedef struct sl_plugin {
    const sl_stage_desc_t *desc;
    char *path; /* the file loaded */
    void *dl;   /* dlopen handle; NULL for a built-in plugin */
    void *owned; /* built-in: freed with free_owned on release */
    void (*free_owned)(void *);
} sl_plugin_t;

/* Loads a plugin. On failure returns NULL and writes a message naming the
 * file and the problem into err (not found: the places searched; missing
 * symbol; ABI magic/revision/size mismatch; name mismatch; missing
 * callbacks for its kind). Loading the same plugin twice shares one
 * handle; each sl__plugin_load needs one sl__plugin_release. */
sl_plugin_t *sl__plugin_load(const char *name, char *err, size_t errlen);
void sl__plugin_release(sl_plugin_t **plugin);

/* A plugin compiled into sluice (no file, no dlopen), such as the source
 * of `sluice dlq replay`. desc is checked as a loaded one is and must
 * outlive the plugin. `owned` (may be NULL) goes with the plugin and is
 * freed with free_owned when it is released: what the stage's config
 * points into, say. Each call makes a new plugin, not shared by name. On
 * failure returns NULL with err filled, and owned has been freed. */
sl_plugin_t *sl__plugin_builtin(const sl_stage_desc_t *desc, void *owned,
                                void (*free_owned)(void *), char *err,
                                size_t errlen);

/* Checks a descriptor as the loader does (for unit tests and for plugins
 * linked in statically). Returns 0 or -EPROTO/-EINVAL with err filled. */
int sl__plugin_check_desc(const sl_stage_desc_t *desc, const char *path,
                          char *err, size_t errlen);

/* Calls fn for every plugin found in the search path (first wins by name);
 * used by `sluice plugins`. */
typedef void (*sl_plugin_visit_fn)(const sl_plugin_t *plugin, void *arg);
void sl__plugin_foreach(sl_plugin_visit_fn fn, void *arg);

#endif
