/* CURVE socket setup for both ends of a tcp link (curve.h). */
#include "curve.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int s_set(void *sock, int opt, const char *name, const void *val,
                 size_t len, char *err, size_t errlen)
{
    if (zmq_setsockopt(sock, opt, val, len) == 0)
        return 0;
    return s_fail(err, errlen, -errno, "cannot set %s: %s", name,
                  zmq_strerror(errno));
}

int sl__curve_server(void *sock, const sl_curve_keys_t *keys,
                     const sl_zap_t *zap, char *err, size_t errlen)
{
    int rc = sl__curve_check(err, errlen);
    if (rc < 0)
        return rc;
    if (!zap || !sl__zap_running(zap))
        return s_fail(err, errlen, -EINVAL,
                      "a CURVE server socket needs the ZAP handler of its "
                      "context running first (without one, libzmq admits "
                      "any client)");
    if ((rc = sl__curve_check_key(keys->secret_key, "secret key", err,
                                  errlen)) < 0)
        return rc;
    int one = 1;
    if ((rc = s_set(sock, ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER", &one,
                    sizeof(one), err, errlen)) < 0 ||
        (rc = s_set(sock, ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY",
                    keys->secret_key, SL_CURVE_KEY_LEN + 1, err,
                    errlen)) < 0 ||
        (rc = s_set(sock, ZMQ_ZAP_DOMAIN, "ZMQ_ZAP_DOMAIN", SL_ZAP_DOMAIN,
                    strlen(SL_ZAP_DOMAIN), err, errlen)) < 0)
        return rc;
    return 0;
}

int sl__curve_client(void *sock, const sl_curve_keys_t *keys,
                     const char *server_public, char *err, size_t errlen)
{
    int rc = sl__curve_check(err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = sl__curve_check_key(keys->public_key, "public key", err,
                                  errlen)) < 0 ||
        (rc = sl__curve_check_key(keys->secret_key, "secret key", err,
                                  errlen)) < 0 ||
        (rc = sl__curve_check_key(server_public, "server public key", err,
                                  errlen)) < 0)
        return rc;
    if ((rc = s_set(sock, ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY",
                    server_public, SL_CURVE_KEY_LEN + 1, err, errlen)) < 0 ||
        (rc = s_set(sock, ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY",
                    keys->public_key, SL_CURVE_KEY_LEN + 1, err,
                    errlen)) < 0 ||
        (rc = s_set(sock, ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY",
                    keys->secret_key, SL_CURVE_KEY_LEN + 1, err,
                    errlen)) < 0)
        return rc;
    return 0;
}

int sl__curve_insecure_server(void *sock, const sl_zap_t *zap, char *err,
                              size_t errlen)
{
    if (!zap || !sl__zap_running(zap) || !sl__zap_insecure(zap))
        return s_fail(err, errlen, -EINVAL,
                      "an insecure server socket needs the context's ZAP "
                      "handler running in insecure mode");
    return s_set(sock, ZMQ_ZAP_DOMAIN, "ZMQ_ZAP_DOMAIN", SL_ZAP_DOMAIN,
                 strlen(SL_ZAP_DOMAIN), err, errlen);
}
