/* A shared object that exports no sl_stage: a descriptor with another
 * name (hidden or not, the loader looks for exactly "sl_stage"). */
#include "trivial.h"

SL_API extern const sl_stage_desc_t not_sl_stage;
const sl_stage_desc_t not_sl_stage = {
    .abi = SL_STAGE_ABI,
    .size = sizeof(sl_stage_desc_t),
    .name = "no_symbol",
    .kind = SL_STAGE_TRANSFORM,
    .init = trivial_init,
    .process = trivial_process,
};
