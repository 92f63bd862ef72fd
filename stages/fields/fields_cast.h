/*
 * Type conversions for the fields stage's `cast`. Strict: a conversion that
 * would have to guess (trailing garbage, a fraction dropped, an overflow)
 * fails instead, with a reason fit for the record's error message.
 */
#ifndef FIELDS_CAST_H
#define FIELDS_CAST_H

#include <msgpack.h>
#include <stddef.h>

typedef enum fields_type {
    FT_INT,
    FT_FLOAT,
    FT_STRING,
    FT_BOOL,
} fields_type_t;

/* "int", "float", "string", "bool". */
const char *fields_type_name(fields_type_t t);
/* 0 and *t set when name is one of the above, else -EINVAL. */
int fields_type_parse(const char *name, fields_type_t *t);

/* Converts in to type t into *out; new strings are allocated in zone. null
 * stays null. Returns 0; -EINVAL with a reason in why (e.g.
 * "\"12,5\" is not a number"); or -ENOMEM. */
int fields_cast(msgpack_zone *zone, const msgpack_object *in, fields_type_t t,
                msgpack_object *out, char *why, size_t whylen);

/* Writes a short rendering of v for messages: strings quoted and cut at
 * 32 bytes, numbers and booleans as written, containers by kind. */
void fields_describe(const msgpack_object *v, char *buf, size_t len);

#endif
