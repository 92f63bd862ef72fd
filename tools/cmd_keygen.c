/* `sluice keygen` (cmd_keygen.h). */
#include "cli.h"
#include "cmd_keygen.h"
#include "curve.h"

#include <stdio.h>
#include <string.h>

#define USAGE "usage: sluice keygen NAME [-d DIR] [--force]\n"

int sl_cmd_keygen(int argc, char **argv)
{
    const char *name = NULL, *dir = ".";
    int force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-d") == 0 || strcmp(a, "--dir") == 0) &&
            i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(a, "--force") == 0 || strcmp(a, "-f") == 0) {
            force = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(USAGE, stdout);
            return SL_EXIT_OK;
        } else if (a[0] != '-' && !name) {
            name = a;
        } else {
            fprintf(stderr, "sluice keygen: unexpected argument '%s'\n%s",
                    a, USAGE);
            return SL_EXIT_USAGE;
        }
    }
    if (!name) {
        fputs(USAGE, stderr);
        return SL_EXIT_USAGE;
    }
    char err[512];
    if (sl__curve_check_name(name, err, sizeof(err)) < 0) {
        fprintf(stderr, "sluice keygen: %s\n", err);
        return SL_EXIT_USAGE;
    }
    sl_curve_keys_t keys;
    int rc = sl__curve_keypair(&keys, err, sizeof(err));
    if (rc == 0)
        rc = sl__curve_write(dir, name, &keys, force, err, sizeof(err));
    explicit_bzero(keys.secret_key, sizeof(keys.secret_key));
    if (rc < 0) {
        fprintf(stderr, "sluice keygen: %s\n", err);
        return SL_EXIT_FAILED;
    }
    printf("wrote %s/%s.key (secret: keep it on host %s only, mode 0600)\n"
           "  and %s/%s.pub (public)\n"
           "public key of %s: %s\n"
           "\n"
           "Add it to the topology's hosts: entry for %s:\n"
           "\n"
           "hosts:\n"
           "  %s:\n"
           "    address: HOST_OR_IP\n"
           "    key: \"%s\"\n",
           dir, name, name, dir, name, name, keys.public_key, name, name,
           keys.public_key);
    return SL_EXIT_OK;
}
