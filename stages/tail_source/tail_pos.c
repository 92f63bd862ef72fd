#include "tail_pos.h"

const file_pos_kind_t tl_pos_kind = {
    .magic = {'S', 'L', 'T', 'P'},
    .version = 1,
    .own_mask = TL_POS_SKIPPING,
    .has_dev = 1,
    .has_emit_from = 1,
    .foreign = "not a tail_source position",
};
