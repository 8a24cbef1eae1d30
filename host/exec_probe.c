/*
 * The products fork and exec helpers while plugins have files and connections
 * open; a descriptor without close-on-exec leaks into every such child (a clamd
 * connection then stays half-open in the helper). A worker runs this probe
 * with its context open: this program is executed again as a helper that
 * reports every descriptor it inherited beyond stdin, stdout and stderr.
 */
#include "avhost.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The helper's side (`avhost --list-inherited-fds`): one "fd target" line each. */
int list_inherited_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (d == NULL)
        return 1;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        char target[256];
        if (e->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
            continue;
        fd_describe(fd, target, sizeof target);
        printf("%d %s\n", fd, target);
    }
    closedir(d);
    return 0;
}

void exec_probe(violations *v)
{
    int pipefd[2], status;
    char out[2048], exe[1024];
    size_t have = 0;
    ssize_t got, n;
    pid_t pid;
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || pipe2(pipefd, O_CLOEXEC) != 0)
        return;
    exe[n] = '\0';
    pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec: other threads held locks. */
        char *const argv[] = {exe, (char *)"--list-inherited-fds", NULL};
        dup2(pipefd[1], 1);
        execv(exe, argv);
        _exit(127);
    }
    close(pipefd[1]);
    while (have < sizeof out - 1 &&
           ((got = read(pipefd[0], out + have, sizeof out - 1 - have)) > 0 || (got < 0 && errno == EINTR)))
        if (got > 0)
            have += (size_t)got;
    out[have] = '\0';
    close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (have > 0) {
        char *p;
        for (p = out; *p; p++)
            if (*p == '\n')
                *p = *(p + 1) ? ';' : '\0';
        viol_add(v, "descriptors inherited by a program the host executes (fd target: %.300s): "
                    "the plugin opened them without close-on-exec (use O_CLOEXEC, SOCK_CLOEXEC)",
                 out);
    }
}
