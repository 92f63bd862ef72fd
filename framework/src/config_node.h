/*
 * The inside of config documents, shared by the two halves of the config
 * module: config_yaml.c builds a document from YAML text, config.c owns
 * the document's life and answers every question asked about its nodes.
 * Nothing outside those two files includes this header.
 */
#ifndef SL_CONFIG_NODE_H
#define SL_CONFIG_NODE_H

#include "config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct sl_config {
    sl_config_type_t type;
    unsigned line, col;
    sl_config_doc_t *doc;
    char *text;          /* scalars: as written (after YAML unescaping) */
    sl_config_t **keys;  /* maps: key nodes, parallel to items */
    sl_config_t **items; /* sequences: entries; maps: values */
    size_t len, cap;
    size_t weight;       /* nodes in this subtree with aliases expanded */
    bool plain;          /* an unquoted scalar */
    bool binary;         /* a `!!binary` scalar: text is its base64 */
    bool open;           /* a collection still being built */
};

struct sl_config_doc {
    char *name;          /* file name used in messages */
    char *dir;           /* absolute directory for relative paths */
    sl_config_t *root;
    sl_config_t **nodes; /* every node, for destroy */
    size_t n_nodes, cap_nodes;
    sl_diag_t *diag;     /* where sl_config_error() reports; may be NULL */
    char *context;
    char *source;        /* the text parsed, for process-lane workers */
    size_t source_len;
};

/* Reports "FILE:LINE:COL: CONTEXT: message" (no "CONTEXT: " when context
 * is NULL) to diag, or as a line on stderr when diag is NULL. A message
 * that cannot be formatted for lack of memory is reported as fmt. */
void sl__config_vreport(sl_diag_t *diag, const char *file, unsigned line,
                        unsigned col, const char *context, const char *fmt,
                        va_list ap);

/* A new document with no root yet, named name in messages; relative paths
 * in it resolve against dir (NULL: the current directory), made absolute
 * here even if it does not exist. NULL on allocation failure. */
sl_config_doc_t *sl__config_doc_new(const char *name, const char *dir);

/* A new node of doc at line:col, owned by doc (sl__config_doc_destroy
 * frees it), counting 1 toward its subtree's weight. NULL on allocation
 * failure (no node is added). */
sl_config_t *sl__config_node_new(sl_config_doc_t *doc, sl_config_type_t type,
                                 unsigned line, unsigned col);

/* Whether s is a YAML 1.2 core-schema integer literal: an optional sign,
 * then decimal digits, or 0x/0o and hex/octal digits. Sets *neg and
 * *digits (where the digits start) and returns the base (10, 16 or 8), or
 * 0 if s is not one. Says nothing about the range. */
int sl__config_int_syntax(const char *s, bool *neg, const char **digits);

#endif
