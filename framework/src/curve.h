/*
 * CURVE security for tcp links between hosts (docs/deploy.md, "Keys and
 * CURVE"):
 *   - key files written by `sluice keygen` and read back with errors that
 *     name the file and line (curve.c);
 *   - a ZAP handler (RFC 27) that admits only the CURVE keys the topology
 *     lists (curve_zap.c);
 *   - socket setup for both ends of a link (curve_socket.c).
 *
 * Every function that can fail returns 0 or a negative errno and writes
 * the reason into err (errlen bytes, truncated to fit; err may be NULL).
 *
 * A caution that shapes this API: libzmq (built without its draft API, as
 * Debian's is) admits EVERY CURVE client when no ZAP handler is bound in
 * the socket's context. So a CURVE server socket is only made through
 * sl__curve_server(), which insists on a running handler, and the handler
 * must outlive every server socket of its context.
 */
#ifndef SL_CURVE_H
#define SL_CURVE_H

#include <stddef.h>
#include <stdint.h>

/* A CURVE key as Z85 text: 32 bytes in 40 characters. */
#define SL_CURVE_KEY_LEN 40
/* The ZAP domain of sluice's server sockets; the handler refuses others. */
#define SL_ZAP_DOMAIN "sluice"
/* Node names (key file names, the topology's hosts:) are at most this
 * long: letters, digits, '_', '-', '.', not starting with '.' or '-'. */
#define SL_CURVE_NAME_MAX 63

typedef struct sl_curve_keys {
    char public_key[SL_CURVE_KEY_LEN + 1];
    char secret_key[SL_CURVE_KEY_LEN + 1]; /* "" when only public is known */
} sl_curve_keys_t;

typedef struct sl_zap sl_zap_t;

/* ---- keys (curve.c) ------------------------------------------------------ */

/* 0 when this libzmq can do CURVE (zmq_has("curve")); -ENOTSUP with the
 * reason otherwise. Every function below that needs CURVE checks it. */
int sl__curve_check(char *err, size_t errlen);

/* A fresh key pair from libzmq's generator. */
int sl__curve_keypair(sl_curve_keys_t *keys, char *err, size_t errlen);

/* Checks that name can be a node name and a file name (see
 * SL_CURVE_NAME_MAX); -EINVAL with the reason. */
int sl__curve_check_name(const char *name, char *err, size_t errlen);

/* Checks that text is a 40-character Z85 key; what names it in the
 * message ("public key", "key of host b", ...). -EINVAL with the reason:
 * the length, or the first character that is not Z85 and its column. */
int sl__curve_check_key(const char *text, const char *what, char *err,
                        size_t errlen);

/* Writes DIR/NAME.key (node, public and secret key; mode 0600) and
 * DIR/NAME.pub (node and public key; mode 0644). DIR is made (mode 0700)
 * if it does not exist; its parent must. Without force, -EEXIST if either
 * file exists and nothing is written. Each file is written to a temporary
 * name first and then put in place, so a reader never sees half a key and
 * a failure leaves no partial file. On error a NAME.key this call made is
 * removed again. */
int sl__curve_write(const char *dir, const char *name,
                    const sl_curve_keys_t *keys, int force, char *err,
                    size_t errlen);

/* Reads a secret key file (NAME.key) into keys. Like ssh, refuses a file
 * that others may read or write (the message gives the chmod to run) or
 * that another user owns, before reading it. Errors are
 * "FILE:LINE: problem" (or "FILE: problem" for the whole file): a line
 * that is not `FIELD = "VALUE"`, an unknown or repeated field, a key of
 * the wrong length or with a character that is not Z85, a missing public
 * or secret line, a public key that does not belong to the secret one.
 * node (may be NULL, SL_CURVE_NAME_MAX + 1 bytes) gets the file's node
 * name, "" when it has none. */
int sl__curve_load_secret(const char *path, sl_curve_keys_t *keys,
                          char *node, char *err, size_t errlen);

/* Reads the public key of a public (NAME.pub) or secret key file; the
 * same checks, and the permission checks when the file holds a secret. */
int sl__curve_load_public(const char *path,
                          char public_key[SL_CURVE_KEY_LEN + 1], char *node,
                          char *err, size_t errlen);

/* ---- sockets (curve_socket.c) -------------------------------------------- */

/* Makes sock (before its bind or connect) a CURVE server with the secret
 * key of keys, in ZAP domain SL_ZAP_DOMAIN. zap must be the running
 * handler of the context sock belongs to (that cannot be checked from
 * here); -EINVAL if zap is NULL or not running, because libzmq would then
 * admit any client. Server means the side that authenticates the other:
 * it may bind or connect, send or receive. */
int sl__curve_server(void *sock, const sl_curve_keys_t *keys,
                     const sl_zap_t *zap, char *err, size_t errlen);

/* Makes sock (before its connect or bind) a CURVE client with its own key
 * pair and the public key of the server it talks to; the handshake fails
 * unless the server holds the matching secret key. */
int sl__curve_client(void *sock, const sl_curve_keys_t *keys,
                     const char *server_public, char *err, size_t errlen);

/* For `insecure: true` links: puts the NULL-mechanism server socket sock
 * in ZAP domain SL_ZAP_DOMAIN, so that each connection goes through the
 * handler (logged and counted). zap must run with SL_ZAP_INSECURE; a
 * handler without it would deny every connection (-EINVAL here instead). */
int sl__curve_insecure_server(void *sock, const sl_zap_t *zap, char *err,
                              size_t errlen);

/* ---- the ZAP handler (curve_zap.c) --------------------------------------- */

/* Flags of sl__zap_new. */
#define SL_ZAP_INSECURE 1u /* admit NULL and PLAIN connections too */

typedef struct sl_zap_stats {
    uint64_t accepted;       /* CURVE keys found, and NULL/PLAIN if insecure */
    uint64_t denied;         /* every refusal, the three below added up */
    uint64_t denied_key;     /* CURVE keys not in the allow-list */
    uint64_t denied_mech;    /* NULL/PLAIN without SL_ZAP_INSECURE */
    uint64_t denied_other;   /* malformed requests, foreign domains */
} sl_zap_stats_t;

/* A stopped handler with an empty allow-list. NULL on ENOMEM. With
 * SL_ZAP_INSECURE it logs a warning when it starts. */
sl_zap_t *sl__zap_new(unsigned flags);

/* Adds a CURVE public key (Z85) to the allow-list, under the node name
 * the logs and the User-Id message property give it. Only before start:
 * -EBUSY after. -EINVAL for a bad key or node name, -EEXIST for a key
 * already listed (under which node is in the message), -ENOMEM. */
int sl__zap_allow(sl_zap_t *zap, const char *node, const char *public_key,
                  char *err, size_t errlen);

/* Starts the handler thread in zctx: it binds inproc://zeromq.zap.01
 * there before this returns. -EADDRINUSE when the context has a handler
 * already, -EALREADY when zap runs, -ENOTSUP without CURVE in libzmq.
 * One handler per context: every context with CURVE server sockets
 * needs its own. */
int sl__zap_start(sl_zap_t *zap, void *zctx, char *err, size_t errlen);

/* 1 while the handler thread runs. */
int sl__zap_running(const sl_zap_t *zap);
/* 1 when zap admits NULL/PLAIN connections. */
int sl__zap_insecure(const sl_zap_t *zap);

/* The counters so far (relaxed reads; any thread). */
void sl__zap_stats(const sl_zap_t *zap, sl_zap_stats_t *st);

/* Denials are logged at most once per interval (1000 ms by default);
 * the next logged line says how many were left out. Any time, any
 * thread. A client that was denied does not reconnect (libzmq ends its
 * session), so the lines follow new connection attempts. */
void sl__zap_set_log_interval(sl_zap_t *zap, unsigned ms);

/* Stops the thread (unbinding the endpoint), logs the denials not yet
 * reported, frees, sets *zap to NULL. NULL is ignored. Close every CURVE
 * server socket of the context first: from here on libzmq would admit
 * any client on them. */
void sl__zap_destroy(sl_zap_t **zap);

#endif /* SL_CURVE_H */
