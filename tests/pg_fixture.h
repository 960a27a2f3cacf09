/*
 * pg_fixture.h - a real PostgreSQL server for the data_pg tests, started
 * by the test itself: initdb into a temporary directory, pg_ctl start with
 * its Unix socket in that directory and TCP on 127.0.0.1 at a free port,
 * trust authentication; stopped and removed at exit, also when a CHECK
 * aborts.  PostgreSQL refuses to run as root (CI does), so as root the
 * server's programs run as nobody (setpriv) and the directory is theirs.
 * TERN_PG_BINDIR comes from tests/CMakeLists.txt.
 */
#ifndef TERN_TEST_PG_FIXTURE_H
#define TERN_TEST_PG_FIXTURE_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct pg_fixture {
    char dir[64];
    char data[96];
    char log[96];
    int port;
    char tcp[160];                  /* conninfo over TCP */
    char unix_sock[200];            /* conninfo over the Unix socket */
    bool up;
} pg_fixture;

static pg_fixture pg_fx;

/* Run argv (as nobody when we are root); its exit status. */
static int pg_fx_run(const char *const *argv, bool quiet)
{
    const char *full[24];
    int n = 0;
    if (geteuid() == 0) {
        full[n++] = "setpriv";
        full[n++] = "--reuid=nobody";
        full[n++] = "--regid=nogroup";
        full[n++] = "--clear-groups";
    }
    for (int i = 0; argv[i]; i++)
        full[n++] = argv[i];
    full[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        if (quiet) {
            FILE *f = freopen("/dev/null", "w", stdout);
            (void)f;
        }
        execvp(full[0], (char *const *)full);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int pg_fx_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(s, (struct sockaddr *)&a, &len) < 0)
        abort();
    close(s);
    return ntohs(a.sin_port);
}

static int pg_fx_ctl(const char *what)
{
    char opts[256];
    snprintf(opts, sizeof opts,
             "-k %s -p %d -h 127.0.0.1 -c fsync=off -c max_connections=60 -c synchronous_commit=off",
             pg_fx.dir, pg_fx.port);
    const char *argv[] = {TERN_PG_BINDIR "/pg_ctl", "-D", pg_fx.data, "-l", pg_fx.log, "-w", "-t", "60",
                          "-m", "fast", "-o", opts, what, NULL};
    return pg_fx_run(argv, true);
}

static void pg_fixture_stop(void)
{
    /* Once, whoever gets here first: exit, or an abort on any thread. */
    if (!__atomic_exchange_n(&pg_fx.up, false, __ATOMIC_ACQ_REL))
        return;
    const char *stop[] = {TERN_PG_BINDIR "/pg_ctl", "-D", pg_fx.data, "-w", "-m", "immediate", "stop", NULL};
    pg_fx_run(stop, true);
    const char *rm[] = {"rm", "-rf", pg_fx.dir, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        execvp(rm[0], (char *const *)rm);
        _exit(127);
    }
    waitpid(pid, NULL, 0);
}

static void pg_fx_on_abort(int sig)
{
    pg_fixture_stop();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Start the server once per test program. */
static const pg_fixture *pg_fixture_start(void)
{
    if (pg_fx.up)
        return &pg_fx;
    snprintf(pg_fx.dir, sizeof pg_fx.dir, "/tmp/tern-pg-XXXXXX");
    if (!mkdtemp(pg_fx.dir))
        abort();
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("nobody");
        if (!pw || chown(pg_fx.dir, pw->pw_uid, pw->pw_gid) < 0)
            abort();
    }
    snprintf(pg_fx.data, sizeof pg_fx.data, "%s/data", pg_fx.dir);
    snprintf(pg_fx.log, sizeof pg_fx.log, "%s/log", pg_fx.dir);
    pg_fx.port = pg_fx_free_port();
    snprintf(pg_fx.tcp, sizeof pg_fx.tcp, "host=127.0.0.1 port=%d user=postgres dbname=postgres",
             pg_fx.port);
    snprintf(pg_fx.unix_sock, sizeof pg_fx.unix_sock, "host=%s port=%d user=postgres dbname=postgres",
             pg_fx.dir, pg_fx.port);
    const char *initdb[] = {TERN_PG_BINDIR "/initdb", "-D", pg_fx.data, "-A", "trust", "-U", "postgres",
                            "-E", "UTF8", "--locale=C", "--no-sync", NULL};
    if (pg_fx_run(initdb, true) != 0) {
        fprintf(stderr, "pg_fixture: initdb failed\n");
        abort();
    }
    pg_fx.up = true;
    atexit(pg_fixture_stop);
    signal(SIGABRT, pg_fx_on_abort);
    if (pg_fx_ctl("start") != 0) {
        fprintf(stderr, "pg_fixture: pg_ctl start failed; its log:\n");
        const char *cat[] = {"cat", pg_fx.log, NULL};
        pg_fx_run(cat, false);
        abort();
    }
    return &pg_fx;
}

static int pg_fx_restart_run(void *arg)
{
    (void)arg;
    return pg_fx_ctl("restart");
}

/* Stop and start the server again, as a failover or a deploy would; from a
 * coroutine on the blocking pool, so that the wait does not hold a worker. */
__attribute__((unused)) static int pg_fixture_restart(void)
{
    return tern_self() ? tern_blocking(pg_fx_restart_run, NULL) : pg_fx_restart_run(NULL);
}

#endif
