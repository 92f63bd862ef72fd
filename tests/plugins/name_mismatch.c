/* Installed as name_mismatch.so, but the descriptor says "other": found by
 * name, it must be refused (a path load does not check the stem). */
#include "trivial.h"

SL_STAGE_DEFINE(.name = "other", .summary = "test: name differs from file",
                .kind = SL_STAGE_TRANSFORM, .init = trivial_init,
                .process = trivial_process);
