/* A transform without a process callback. */
#include "trivial.h"

SL_STAGE_DEFINE(.name = "no_process", .summary = "test: no process()",
                .kind = SL_STAGE_TRANSFORM, .init = trivial_init);
