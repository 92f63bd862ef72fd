/* A descriptor from a future ABI revision: right magic, revision 99. */
#include "trivial.h"

SL_API extern const sl_stage_desc_t sl_stage;
const sl_stage_desc_t sl_stage = {
    .abi = SL_STAGE_ABI_MAGIC | 99u,
    .size = sizeof(sl_stage_desc_t),
    .name = "bad_abi",
    .summary = "test: ABI revision 99",
    .kind = SL_STAGE_TRANSFORM,
    .init = trivial_init,
    .process = trivial_process,
};
