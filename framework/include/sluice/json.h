/*
 * JSON <-> msgpack conversion, provided by the host to plugins and tools.
 * Neither direction builds a tree per record: decoding streams yajl's
 * parser events into msgpack, encoding writes straight from msgpack
 * objects.
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
 * allowed, nothing else) and packs it into pk:
 * - objects become maps in key order; a duplicate key keeps its first
 *   position and takes the last value;
 * - integers become int64 if they fit, else uint64 if they fit (so
 *   18446744073709551615 stays exact), else floats like other numbers;
 *   numbers are read as JSON defines them whatever LC_NUMERIC is; one too
 *   large for a double is an error;
 * - strings must be valid UTF-8 (no overlong forms, encoded surrogates or
 *   code points above U+10FFFF) and \u escapes must pair surrogates;
 *   "\u0000" is kept in string values but refused in object keys;
 * - at most 32 containers may nest (all that msgpack-c can unpack).
 * On invalid input returns -EBADMSG and writes "line L column C: reason"
 * into err (if errlen > 0, truncated to fit): L counts lines from 1, C the
 * characters of that line up to the problem (0: before its first one);
 * nothing is packed in that case. Returns -ENOMEM if memory runs out, or
 * if pk fails (pk may then hold part of the value).
 * Thread-safe; each thread keeps reusable scratch memory (freed when the
 * thread exits), so decoding records of a steady size does not allocate. */
SL_API int sl_json_decode(const char *text, size_t len, msgpack_packer *pk,
                          char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
