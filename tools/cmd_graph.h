/* `sluice graph FILE`: a topology as a Graphviz picture (docs/operations.md
 * has the legend). */
#ifndef SL_CMD_GRAPH_H
#define SL_CMD_GRAPH_H

/* argv[0] is "graph". Returns the exit code (cli.h): 0, 1 when the output
 * cannot be written or rendered (no `dot` for svg/png), 2 for bad usage or
 * an invalid topology (reported as `sluice check` does). */
int sl_cmd_graph(int argc, char **argv);

#endif
