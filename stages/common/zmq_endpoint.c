#include "zmq_endpoint.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

/* The longest ipc path: it must fit sockaddr_un.sun_path with its NUL. */
#define IPC_PATH_MAX (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)

int zmq_endpoint_check(const sl_config_t *node, const char *ep, int bind)
{
    if (!strncmp(ep, "ipc://", 6)) {
        size_t len = strlen(ep + 6);
        if (len == 0 || len > IPC_PATH_MAX)
            return sl_config_error(node, "'endpoint' %s: the ipc path must "
                                   "have 1 to %zu bytes", ep, IPC_PATH_MAX);
        return 0;
    }
    if (strncmp(ep, "tcp://", 6))
        return sl_config_error(node, "'endpoint' must be tcp://HOST:PORT or "
                               "ipc://PATH, got '%s'", ep);
    const char *colon = strrchr(ep + 6, ':');
    if (!colon || colon == ep + 6)
        return sl_config_error(node, "'endpoint' %s: expected "
                               "tcp://HOST:PORT", ep);
    const char *port = colon + 1;
    if (!strcmp(port, "*")) {
        if (bind)
            return 0;
        return sl_config_error(node, "'endpoint' %s: port '*' (any free "
                               "port) works only with bind: true", ep);
    }
    char *end;
    errno = 0;
    long v = strtol(port, &end, 10);
    if (!*port || *end || errno || v < 1 || v > 65535 || *port == '+' ||
        *port == '-')
        return sl_config_error(node, "'endpoint' %s: the port must be 1 to "
                               "65535%s", ep, bind ? " or '*'" : "");
    return 0;
}
