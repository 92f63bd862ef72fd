/* A descriptor whose size field disagrees with this stage.h, as when a
 * plugin was built against a header with more or fewer fields. */
#include "trivial.h"

SL_API extern const sl_stage_desc_t sl_stage;
const sl_stage_desc_t sl_stage = {
    .abi = SL_STAGE_ABI,
    .size = sizeof(sl_stage_desc_t) - 8,
    .name = "wrong_size",
    .summary = "test: size field off by 8",
    .kind = SL_STAGE_TRANSFORM,
    .init = trivial_init,
    .process = trivial_process,
};
