/* sluice: run, check and inspect stream-processing topologies. */
#include "cli.h"
#include "cmd_dlq.h"
#include "cmd_graph.h"
#include "cmd_keygen.h"
#include "cmd_record.h"
#include "cmd_test.h"
#include "cmd_replay.h"
#include "cmd_top.h"
#include "cmd_trace.h"
#include "cmd_tune.h"
#include "procpool.h"

#include <limits.h>
#include <unistd.h>

#include <stdio.h>
#include <string.h>

#ifndef SL_VERSION
#define SL_VERSION "0.1.0"
#endif

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: sluice <command> [args]\n"
            "\n"
            "commands:\n"
            "  run FILE [--report OUT.json] [--quiet] [--grace DURATION]\n"
            "           [--node NAME] [--workers STAGE=N]... [--log-level LEVEL]\n"
            "           [--log-format logfmt|json]\n"
            "           [--metrics ADDR] [--metrics-linger SECONDS]\n"
            "                     run a topology to the end of its input\n"
            "  check FILE [--node NAME]\n"
            "                     validate a topology without running it\n"
            "  top ADDR [--interval DURATION] [--once]\n"
            "                     watch a run started with --metrics ADDR\n"
            "  graph FILE [--format dot|svg|png] [-o OUT]\n"
            "                     draw a topology (Graphviz DOT; svg/png "
            "need `dot`)\n"
            "  dlq inspect FILE [--json] [--limit N]\n"
            "                     print the entries of a dead-letter or spill "
            "file\n"
            "  dlq replay FILE --topology T [--stage S] [--report OUT.json]\n"
            "             [--quiet]\n"
            "                     send a dead-letter file's records through "
            "stage S\n"
            "                     of topology T and what is downstream of it\n"
            "  replay TRACE|--synth T (--to EP --ack EP | --topology FILE)\n"
            "         [--speed 1x|max | --rate N/s] [--duration D] [--json OUT]\n"
            "                     replay records into a running topology and\n"
            "                     report its latency (docs/replay.md)\n"
            "  record --from ADDR --link FROM>TO -o TRACE [--duration D]\n"
            "         [--count N] [--allow-drops]\n"
            "  record TOPOLOGY --stage SOURCE -o TRACE [--count N]\n"
            "         [--time-field F --time-unit s|ms|us|ns]\n"
            "                     record a link of a running run, or a "
            "source, into a trace\n"
            "  trace info TRACE [--json] | trace synth TEMPLATE -o TRACE\n"
            "                     describe a trace; make one from a template\n"
            "  tune TOPOLOGY --stage S --trace TRACE [--max-workers N] "
            "[--rate R]\n"
            "                     find the pool size where stage S stops "
            "scaling\n"
            "  test FILE_test.yaml... [--verbose] [--filter SUBSTRING]\n"
            "                     run the cases of YAML stage/topology tests\n"
            "  keygen NAME [-d DIR] [--force]\n"
            "                     write a CURVE key pair for node NAME of a\n"
            "                     multi-host topology (docs/deploy.md)\n"
            "  plugins            list the stage plugins found\n"
            "  version            print the version\n"
            "\n"
            "Plugins are searched in SLUICE_PLUGIN_PATH (colon-separated), then\n"
            "in the build and install folders.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return SL_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    /* Worker processes of process lanes run this same executable. */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        sl__procpool_set_worker_exe(self);
    }
    if (strcmp(cmd, "__worker") == 0)
        return sl__procworker_main(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return sl_cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return sl_cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "top") == 0)
        return sl_cmd_top(argc - 1, argv + 1);
    if (strcmp(cmd, "graph") == 0)
        return sl_cmd_graph(argc - 1, argv + 1);
    if (strcmp(cmd, "dlq") == 0)
        return sl_cmd_dlq(argc - 1, argv + 1);
    if (strcmp(cmd, "replay") == 0)
        return sl_cmd_replay(argc - 1, argv + 1);
    if (strcmp(cmd, "record") == 0)
        return sl_cmd_record(argc - 1, argv + 1);
    if (strcmp(cmd, "trace") == 0)
        return sl_cmd_trace(argc - 1, argv + 1);
    if (strcmp(cmd, "tune") == 0)
        return sl_cmd_tune(argc - 1, argv + 1);
    if (strcmp(cmd, "test") == 0)
        return sl_cmd_test(argc - 1, argv + 1);
    if (strcmp(cmd, "keygen") == 0)
        return sl_cmd_keygen(argc - 1, argv + 1);
    if (strcmp(cmd, "plugins") == 0)
        return sl_cmd_plugins(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("sluice %s\n", SL_VERSION);
        return SL_EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
        strcmp(cmd, "-h") == 0) {
        s_usage(stdout);
        return SL_EXIT_OK;
    }
    fprintf(stderr, "sluice: unknown command '%s'\n\n", cmd);
    s_usage(stderr);
    return SL_EXIT_USAGE;
}
