/*
 * Shared by the fuzz targets. A target's own checks abort() with a message:
 * libFuzzer then saves the input like any crash, so a broken promise of the
 * code under test (a checker that passes what msgpack-c cannot decode, a
 * count that disagrees with a walk) is found as surely as a bad read.
 */
#ifndef SL_FUZZ_H
#define SL_FUZZ_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                               \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__,  \
                    __LINE__, #cond);                                       \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* The input as a NUL-terminated string (for APIs that take text), owned by
 * the caller. Embedded NULs stay: APIs given a length see them. */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    FUZZ_CHECK(s != NULL, "out of memory");
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Reads the first byte as a selector and advances past it (0 if empty). */
static inline unsigned fuzz_take_byte(const uint8_t **data, size_t *size)
{
    if (*size == 0)
        return 0;
    unsigned b = **data;
    (*data)++;
    (*size)--;
    return b;
}

/* Decodes data[0..len) as exactly one msgpack value into zone, aborting
 * if msgpack-c cannot, or if it ends early. Only for bytes whose headers
 * were already checked against their length (msgpack-c allocates what a
 * header claims). */
static inline msgpack_object fuzz_unpack(const void *data, size_t len,
                                         msgpack_zone *zone,
                                         const char *what)
{
    msgpack_object obj;
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack(data, len, &off, zone, &obj);
    FUZZ_CHECK(r == MSGPACK_UNPACK_SUCCESS && off == len,
               "%s: msgpack-c says %d after %zu of %zu bytes", what, (int)r,
               off, len);
    return obj;
}

/* 1 if a map has two equal string keys. */
static inline int fuzz_dup_keys(const msgpack_object *map)
{
    const msgpack_object_kv *kv = map->via.map.ptr;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        for (uint32_t j = i + 1; j < map->via.map.size; j++)
            if (kv[i].key.type == MSGPACK_OBJECT_STR &&
                kv[j].key.type == MSGPACK_OBJECT_STR &&
                kv[i].key.via.str.size == kv[j].key.via.str.size &&
                memcmp(kv[i].key.via.str.ptr, kv[j].key.via.str.ptr,
                       kv[i].key.via.str.size) == 0)
                return 1;
    return 0;
}

#endif
