#include "cli.h"
#include "curve.h"
#include "topology.h"

#include <stdio.h>
#include <string.h>

int sl_cmd_check(int argc, char **argv)
{
    const char *node = NULL;
    if (argc == 4 && strcmp(argv[2], "--node") == 0)
        node = argv[3];
    if ((argc != 2 && !node) || argv[1][0] == '-') {
        fprintf(stderr, "usage: sluice check FILE [--node NAME]\n");
        return SL_EXIT_USAGE;
    }
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *topo = sl__topology_load(argv[1], &diag);
    sl__diag_print(&diag, stderr);
    int rc = SL_EXIT_USAGE;
    char err[1024];
    if (topo && node) {
        if (sl__topology_set_node(topo, node, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", argv[1], err);
        } else {
            size_t here = 0;
            for (size_t i = 0; i < topo->n_stages; i++)
                here += topo->stages[i].host == topo->run_node;
            /* the node must be able to read its secret key */
            char path[4096];
            sl_curve_keys_t keys;
            snprintf(path, sizeof(path), "%s/%s.key", topo->keys_dir, node);
            if (!topo->insecure &&
                sl__curve_load_secret(path, &keys, NULL, err, sizeof(err))) {
                fprintf(stderr, "%s: node '%s': %s\n", argv[1], node, err);
            } else {
                printf("%s: ok (%zu stages, %zu on node '%s')\n", argv[1],
                       topo->n_stages, here, node);
                rc = SL_EXIT_OK;
            }
            explicit_bzero(&keys, sizeof(keys));
        }
    } else if (topo) {
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
