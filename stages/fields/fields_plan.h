/*
 * The fields stage's config, parsed once into a plan: every path split into
 * segments, every constant turned into a msgpack object, renames ordered
 * for application. Private to the fields plugin.
 */
#ifndef FIELDS_PLAN_H
#define FIELDS_PLAN_H

#include "fields_cast.h"

#include <sluice/stage.h>

#include <stddef.h>

typedef struct fseg {
    const char *ptr;
    size_t len;
} fseg_t;

/* A dotted path as written ("user.name"), split into segments. */
typedef struct fpath {
    const char *text;
    fseg_t *segs;
    size_t nseg;
} fpath_t;

typedef struct fcast {
    fpath_t path;
    fields_type_t type;
} fcast_t;

/* Renames only change the last key, so `to` is one segment. Its pointer is
 * unique to this rename (a copy owned by the plan), which process() uses to
 * recognise keys it has just renamed. */
typedef struct frename {
    fpath_t from;
    fseg_t to;
} frename_t;

typedef struct fset {
    fpath_t path;
    msgpack_object value;
} fset_t;

/* Select trie: one node per path segment; `whole` keeps the entire value
 * (the path ended here), otherwise only the listed children. */
typedef struct fsel fsel_t;
struct fsel {
    fseg_t key;
    int whole;
    fsel_t *kids;
    size_t nkids;
};

typedef struct fields_plan {
    msgpack_zone *zone; /* owns every array and string below */
    fcast_t *casts;
    size_t ncasts;
    frename_t *renames; /* deepest first; equal depths are adjacent */
    size_t nrenames;
    fpath_t *drops;
    size_t ndrops;
    fsel_t *select; /* the root (key unused), or NULL without `select` */
    fset_t *sets;
    size_t nsets;
    int strict;
} fields_plan_t;

/* Parses cfg into *plan, or only checks it when plan is NULL. Reports every
 * problem with sl_config_error() on the offending node and returns -EINVAL
 * if there was any (-ENOMEM on allocation failure); on failure nothing is
 * left allocated. */
int fields_plan_parse(const sl_config_t *cfg, fields_plan_t *plan);
void fields_plan_fini(fields_plan_t *plan);

#endif
