#include "cli.h"
#include "plugin.h"

#include <stdio.h>

static void s_print(const sl_plugin_t *p, void *arg)
{
    (void)arg;
    const char *kind = p->desc->kind == SL_STAGE_SOURCE ? "source"
                       : p->desc->kind == SL_STAGE_SINK ? "sink"
                                                        : "transform";
    printf("%-14s %-9s %s\n               %s\n", p->desc->name, kind,
           p->desc->summary ? p->desc->summary : "", p->path);
}

int sl_cmd_plugins(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: sluice plugins\n");
        return SL_EXIT_USAGE;
    }
    sl__plugin_foreach(s_print, NULL);
    return SL_EXIT_OK;
}
