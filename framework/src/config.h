/*
 * Config documents: a YAML file (or string) loaded into an immutable tree of
 * sl_config_t nodes that remember where they came from, so that any error
 * about any value can name FILE:LINE:COL. Plugins see the tree through the
 * accessors in <sluice/stage.h>; this header adds what the host needs.
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include "diag.h"
#include <sluice/stage.h>

typedef struct sl_config_doc sl_config_doc_t;

/* Plain scalars resolve as in the YAML 1.2 core schema (null/~, true/false,
 * decimal/0x/0o integers with an optional sign, floats with .inf/.nan);
 * quoted and block scalars are strings, and so are `!!binary` ones. Aliases share the anchored node.
 *
 * The sl_config_get_* readers of <sluice/stage.h> accept any non-null
 * scalar for a string or a path (its text as written); an explicit null
 * counts as present, so it is reported as the wrong type.
 *
 * Parses a YAML file. Syntax errors, duplicate keys, and unsupported
 * constructs (merge keys, alias expansion beyond a size limit) are added
 * to diag as FILE:LINE:COL lines and NULL is returned. An empty file gives
 * a document whose root is an empty map. */
sl_config_doc_t *sl__config_doc_load(const char *path, sl_diag_t *diag);
/* Same from text; `name` stands in for the file name in messages and
 * `basedir` anchors relative paths (NULL: the current directory). */
sl_config_doc_t *sl__config_doc_parse(const char *name, const char *basedir,
                                      const char *text, size_t len,
                                      sl_diag_t *diag);
void sl__config_doc_destroy(sl_config_doc_t **doc);

const sl_config_t *sl__config_doc_root(const sl_config_doc_t *doc);
/* Directory that relative paths in this document resolve against. */
const char *sl__config_doc_dir(const sl_config_doc_t *doc);
/* The text the document was parsed from (NUL-terminated), so that a
 * process-lane worker rebuilds exactly the same topology, not whatever the
 * file holds by the time it starts; and the name used in messages. */
const char *sl__config_doc_source(const sl_config_doc_t *doc, size_t *len);
const char *sl__config_doc_name(const sl_config_doc_t *doc);

/* Where sl_config_error() on nodes of this document reports to, and the
 * context put before each message (e.g. "stage 'parse'", or NULL). Not
 * thread-safe: set it around validate/init calls, which run on one thread. */
void sl__config_doc_set_diag(sl_config_doc_t *doc, sl_diag_t *diag,
                             const char *context);

/* Position of a node: 1-based line and column, and the file name. */
unsigned sl__config_line(const sl_config_t *node);
unsigned sl__config_col(const sl_config_t *node);
const char *sl__config_file(const sl_config_t *node);
/* The position of the key of entry i of a map (for "unknown key" errors). */
const sl_config_t *sl__config_key_node_at(const sl_config_t *map, size_t i);

/* A new empty map owned by doc, placed at at's position (1:1 if NULL), for
 * an optional map that was left out (a stage without `config:`), so that
 * errors about it still point somewhere useful. NULL on allocation failure. */
const sl_config_t *sl__config_empty_map(sl_config_doc_t *doc,
                                        const sl_config_t *at);
/* Whether a scalar was tagged `!!binary`: it is then a string whose text
 * is the base64 as written (line breaks included), which nothing checks. */
int sl__config_is_binary(const sl_config_t *node);
/* "null", "boolean", "integer", "number", "string", "sequence", "map". */
const char *sl__config_type_name(sl_config_type_t type);

#endif
