/*
 * peer_proc.h - a test's peer process (a python3-h2 script, nghttpd):
 * started with its stdout on a pipe, whose first line is the port it
 * listens on, and killed with the test if the test aborts.  For tests that
 * start their peers before tern_run (the port is read blocking).
 */
#ifndef TERN_TEST_PEER_PROC_H
#define TERN_TEST_PEER_PROC_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

typedef struct peer {
    pid_t pid;
    int port;
    char base[64];
} peer;

/* Start argv[0..] with stdout on a pipe; its first line is the port
 * (port_known: no such line, the port is given). */
static peer peer_start(char *const argv[], int port_known)
{
    peer p = {0};
    int fd[2];
    CHECK(pipe(fd) == 0);
    pid_t parent = getpid();
    p.pid = fork();
    CHECK(p.pid >= 0);
    if (p.pid == 0) {
        /* a test that aborts takes its peers with it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    if (port_known) {
        p.port = port_known;
        close(fd[0]);
    } else {
        char line[32] = {0};
        size_t n = 0;
        while (n < sizeof line - 1 && read(fd[0], line + n, 1) == 1 && line[n] != '\n')
            n++;
        close(fd[0]);
        p.port = atoi(line);
        CHECK(p.port > 0);
    }
    snprintf(p.base, sizeof p.base, "http://127.0.0.1:%d", p.port);
    return p;
}

static void peer_stop(peer *p)
{
    kill(p->pid, SIGTERM);
    int st;
    waitpid(p->pid, &st, 0);
}

#endif
