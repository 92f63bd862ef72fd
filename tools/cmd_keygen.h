/* `sluice keygen NAME [-d DIR] [--force]`: a CURVE key pair for node NAME
 * of a multi-host topology, as DIR/NAME.key (secret, mode 0600) and
 * DIR/NAME.pub (docs/deploy.md, "Keys and CURVE"). Prints the public key
 * and the lines for the topology's hosts: entry. */
#ifndef SL_CMD_KEYGEN_H
#define SL_CMD_KEYGEN_H

/* argv[0] is "keygen". Returns the exit code (cli.h): 1 when the files
 * could not be written (one exists already without --force, or libzmq
 * has no CURVE), 2 on bad usage. */
int sl_cmd_keygen(int argc, char **argv);

#endif
