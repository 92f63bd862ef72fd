/*
 * Endpoint syntax shared by zmq_source and zmq_sink.
 */
#ifndef ZMQ_ENDPOINT_H
#define ZMQ_ENDPOINT_H

#include <sluice/stage.h>

/* Checks an endpoint's form: tcp://HOST:PORT (port '*' only when binding)
 * or ipc://PATH (a path that fits a Unix socket address). ZeroMQ reports
 * anything subtler when the socket binds or connects. Reports at node and
 * returns -EINVAL, or returns 0. */
int zmq_endpoint_check(const sl_config_t *node, const char *ep, int bind);

#endif
