/*
 * Private PostgreSQL servers for the suites that need one.
 *
 * A server lives in a fresh temporary folder: initdb there, a free port on
 * 127.0.0.1 (and a unix socket in the folder, nothing else), started and
 * stopped with pg_ctl. As root, the server's commands run as the `postgres`
 * system user (PostgreSQL refuses root) and the folder belongs to it. A
 * guard process stops the server and removes the folder should the process
 * that started it die without doing so, so that no server is left behind.
 *
 * Two ways to get one:
 * - per suite: SL_PGTEST_SUITE_SERVER() in the test file starts one server
 *   before the first test and stops it as the runner exits; each test calls
 *   sl_pgtest_shared(), which skips the test (naming the missing package)
 *   when the server could not start because PostgreSQL is not installed.
 *   Tests share it, so each works in a database of its own
 *   (sl_pgtest_createdb) and must not stop it.
 * - per test: sl_pgtest_start(), for tests that stop or restart it.
 *
 * The helpers that assert (cr_assert) may only be called from a test's own
 * thread; the sl_pgtest_try_* ones report instead, for helper threads.
 */
#ifndef SL_PGTEST_H
#define SL_PGTEST_H

#include <criterion/criterion.h>
#include <criterion/hooks.h>

#include <stddef.h>

typedef struct sl_pgtest sl_pgtest_t;

/* Starts a server. NULL if it could not: *why (when why is not NULL) is a
 * malloc'd reason, which says which package to install when PostgreSQL's
 * binaries (or, as root, the postgres user) are missing. */
sl_pgtest_t *sl_pgtest_start(char **why);
/* Stops the server (if it runs), removes its folder, frees pg; a server
 * attached with sl_pgtest_shared is only detached. NULL is ignored. */
void sl_pgtest_destroy(sl_pgtest_t **pg);
/* 1 when the binaries are missing, so that the caller skips: a reason
 * from sl_pgtest_start that is not about a missing package is a failure. */
int sl_pgtest_missing(const char *why);

/* In a test: the suite's server, attached (do not destroy it). Skips the
 * test when PostgreSQL is not installed; fails it when the server could
 * not start for another reason. */
sl_pgtest_t *sl_pgtest_shared(void);
/* In a test: a server of its own (sl_pgtest_destroy at the end); skips or
 * fails like sl_pgtest_shared. */
sl_pgtest_t *sl_pgtest_private(void);

/* Starts the suite's server, and stops it when the process exits. */
void sl__pgtest_suite_start(void);
#define SL_PGTEST_SUITE_SERVER()                                               \
    ReportHook(PRE_ALL)(struct criterion_test_set * sl_set_)                   \
    {                                                                          \
        (void)sl_set_;                                                         \
        sl__pgtest_suite_start();                                              \
    }

int sl_pgtest_port(const sl_pgtest_t *pg);
/* A libpq connection string for database db over TCP to 127.0.0.1, as the
 * superuser `postgres` (trust authentication); malloc'd. */
char *sl_pgtest_conninfo(const sl_pgtest_t *pg, const char *db);
/* The same through another port (a proxy in front of the server). */
char *sl_pgtest_conninfo_port(const sl_pgtest_t *pg, int port,
                              const char *db);

/* (Re)creates database db, empty. */
void sl_pgtest_createdb(const sl_pgtest_t *pg, const char *db);
/* Runs sql (one or more statements) in db; asserts that it succeeds. */
void sl_pgtest_exec(const sl_pgtest_t *pg, const char *db, const char *sql);
/* The rows of sql's last statement, columns joined by '|' (NULL as
 * "NULL"), each row ending in '\n'; asserts that it succeeds. The caller
 * frees the text. */
char *sl_pgtest_query(const sl_pgtest_t *pg, const char *db,
                      const char *sql);
/* Asserts that sql's rows are exactly want (as sl_pgtest_query gives). */
void sl_pgtest_expect(const sl_pgtest_t *pg, const char *db, const char *sql,
                      const char *want);
/* Without asserting: 0 and the rows in *out (malloc'd), or -1 and the
 * error in *out (malloc'd; out may be NULL). */
int sl_pgtest_try_query(const sl_pgtest_t *pg, const char *db,
                        const char *sql, char **out);

/* Terminates the backends connected to db whose application_name starts
 * with app (pg_terminate_backend): how many, or -1 on error. */
int sl_pgtest_terminate(const sl_pgtest_t *pg, const char *db,
                        const char *app);

/* Stops the server (fast shutdown: every connection is cut) and starts it
 * again on the same port; 0 or -1 (the log says why). */
int sl_pgtest_server_stop(sl_pgtest_t *pg);
int sl_pgtest_server_start(sl_pgtest_t *pg);

#endif
