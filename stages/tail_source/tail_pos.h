/*
 * The resume position of tail_source, as a self-checking byte string for
 * sl_ctx_set_position() (stages/common/file_pos.h): which file (device,
 * inode and a fingerprint of its first bytes, since a deleted file's inode
 * number is soon reused) and where in it.
 *
 * Layout, integers little-endian:
 *   0  4  magic "SLTP"
 *   4  1  version (1)
 *   5  1  flags: bit 0 = inside an over-long line (drop through its '\n')
 *   6  2  path length P
 *   8  8  device
 *  16  8  inode
 *  24  8  offset of the next unread byte (the start of an incomplete line)
 *  32  8  lines read before offset
 *  40  8  emit_from: lines starting before this offset are not emitted
 *         (start_at: end skips what the file held at the start)
 *  48  4  fingerprint length F: the first min(offset, 1024) bytes
 *  52  8  FNV-1a 64 of those F bytes
 *  60  P  the configured path, made absolute
 *  60+P 8 FNV-1a 64 of all the bytes before it
 */
#ifndef TL_POS_H
#define TL_POS_H

#include "file_pos.h"

#define TL_POS_SKIPPING 0x01

/* The own byte holds the flags; with device and emit_from. */
extern const file_pos_kind_t tl_pos_kind;

#endif
