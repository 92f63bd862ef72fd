/*
 * JSON <-> msgpack conversion, provided by the host to plugins and tools.
 * Decoding uses jansson (a well-kept parser); encoding writes straight from
 * msgpack objects, since building a jansson tree per record only to print
 * it would double the allocations on the hot path.
 */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <sluice/stage.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Appends obj to out as compact JSON: map keys that are not strings are
 * printed as JSON strings of their value; bin as a base64 string; ext as
 * {"ext": type, "data": base64}; NaN/Inf as null; invalid UTF-8 bytes in
 * strings as U+FFFD. Returns 0 or -ENOMEM. */
SL_API int sl_json_encode(const msgpack_object *obj, msgpack_sbuffer *out);

/* Parses exactly one JSON value from text[0..len) (surrounding whitespace
 * allowed) and packs it into pk: objects become maps (key order kept),
 * integers that fit int64/uint64 become ints, other numbers floats. On a
 * syntax error returns -EBADMSG and writes "line L column C: reason" into
 * err (if errlen > 0); nothing is packed in that case. */
SL_API int sl_json_decode(const char *text, size_t len, msgpack_packer *pk,
                          char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
