#include "cli.h"
#include "topology.h"

#include <stdio.h>
#include <string.h>

int sl_cmd_check(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: sluice check FILE\n");
        return SL_EXIT_USAGE;
    }
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *topo = sl__topology_load(argv[1], &diag);
    sl__diag_print(&diag, stderr);
    int rc = SL_EXIT_USAGE;
    if (topo) {
        printf("%s: ok (%zu stages)\n", argv[1], topo->n_stages);
        rc = SL_EXIT_OK;
    } else {
        fprintf(stderr, "%s: %zu problem%s\n", argv[1], diag.count,
                diag.count == 1 ? "" : "s");
    }
    sl__topology_destroy(&topo);
    sl__diag_fini(&diag);
    return rc;
}
