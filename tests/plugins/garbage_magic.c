/* Something exported as sl_stage that is not a sluice descriptor. */
#include "trivial.h"

SL_API extern const sl_stage_desc_t sl_stage;
const sl_stage_desc_t sl_stage = {
    .abi = 0x12345678u,
    .size = sizeof(sl_stage_desc_t),
    .name = "garbage_magic",
    .kind = SL_STAGE_TRANSFORM,
    .init = trivial_init,
    .process = trivial_process,
};
