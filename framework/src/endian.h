/* Little-endian loads and stores that do not care about alignment. */
#ifndef SL_ENDIAN_H
#define SL_ENDIAN_H

#include <stdint.h>

static inline void sl__put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline void sl__put_u64(unsigned char *p, uint64_t v)
{
    sl__put_u32(p, (uint32_t)v);
    sl__put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t sl__get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t sl__get_u64(const unsigned char *p)
{
    return (uint64_t)sl__get_u32(p) | (uint64_t)sl__get_u32(p + 4) << 32;
}

#endif
