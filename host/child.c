/*
 * The avserver side: the child process that loads the plugin, runs
 * plugin_init..plugin_close cycles, and serves the parent's scan requests
 * through the worker pool.
 *
 * Parent -> child, one line each:  "S <id> <path>" scan, "T <id>" stats, "Q" close and exit.
 * Child -> parent: see supervisor.c.
 */
#include "avhost.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One plugin_thread_init/plugin_thread_close pair on this thread (info, early cycles). */
static void probe_thread(plugin *p)
{
    violations v;
    rec r;
    void *context = NULL;
    int before, after, ret, closed = -1;
    v.count = 0;
    before = count_threads();
    chan_printf("P plugin_thread_init");
    ret = p->iface->plugin_thread_init(&context);
    after = count_threads();
    if (ret != 0 && ret != 1)
        viol_add(&v, "plugin_thread_init returned %d (valid: 1 success, 0 failure)", ret);
    if (after > before)
        viol_add(&v, "plugin_thread_init started %d thread(s); it must not start threads",
                 after - before);
    if (ret == 1) {
        chan_printf("P plugin_thread_close");
        closed = p->iface->plugin_thread_close(&context);
        if (closed != 0 && closed != 1)
            viol_add(&v, "plugin_thread_close returned %d (valid: 1 success, 0 failure)", closed);
        if (context != NULL)
            viol_add(&v, "plugin_thread_close left *context set (%p); it must set it to NULL",
                     context);
    }
    rec_begin(&r, "thread_probe");
    rec_int(&r, "thread_init", ret);
    rec_int(&r, "thread_close", closed);
    rec_violations(&r, &v);
    chan_event(&r, &v);
}

/* Reads one line (without the newline) into line; 0 at end of input. */
static int read_line(int fd, char *buf, size_t *have, char *line, size_t size)
{
    for (;;) {
        char *nl = (char *)memchr(buf, '\n', *have);
        ssize_t got;
        if (nl != NULL) {
            size_t n = (size_t)(nl - buf);
            size_t copy = n < size - 1 ? n : size - 1;
            memcpy(line, buf, copy);
            line[copy] = '\0';
            memmove(buf, nl + 1, *have - n - 1);
            *have -= n + 1;
            return 1;
        }
        if (*have >= 8192)
            *have = 0; /* an over-long line: dropped */
        got = read(fd, buf + *have, 8192 - *have);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return 0;
        *have += (size_t)got;
    }
}

static void serve_requests(int fd)
{
    static char buf[8192];
    char line[8192];
    size_t have = 0;
    while (read_line(fd, buf, &have, line, sizeof line)) {
        if (line[0] == 'S' && line[1] == ' ') {
            char *end;
            long id = strtol(line + 2, &end, 10);
            if (*end == ' ')
                pool_submit(id, end + 1);
        } else if (line[0] == 'T' && line[1] == ' ') {
            rec r;
            rec_begin(&r, "stats");
            rec_int(&r, "pid", (long long)getpid());
            pool_stats(&r);
            chan_printf("A %ld %s", strtol(line + 2, NULL, 10), rec_end(&r));
            rec_free(&r);
        } else if (line[0] == 'Q') {
            return;
        }
    }
    /* The parent went away: stop as well, without waiting for anything. */
    _exit(0);
}

void child_main(int fd)
{
    plugin p;
    int cycle, cycles = g_settings.cycles > 0 ? g_settings.cycles : 1;
    int info = strcmp(g_settings.mode, "info") == 0;
    chan_init(fd);
    if (!plugin_load(&p, g_settings.plugin)) {
        chan_printf("F");
        _exit(3);
    }
    for (cycle = 1; cycle <= cycles; cycle++) {
        int fds_before = count_fds();
        plugin_fds_mark();
        if (!plugin_start(&p, cycle)) {
            chan_printf("F");
            _exit(3);
        }
        if (info || cycle < cycles) {
            probe_thread(&p);
        } else {
            pool_start(&p);
            chan_printf("I");
            serve_requests(fd);
            pool_drain_and_stop();
        }
        plugin_stop(&p, cycle, fds_before);
    }
    chan_printf("M %ld %d", peak_rss_kb(), count_fds());
    chan_printf("D");
    _exit(0);
}
