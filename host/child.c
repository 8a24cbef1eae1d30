/*
 * The avserver side: the child process that loads the plugin, runs
 * plugin_init..plugin_close cycles, and serves the parent's scan requests
 * through the worker pool.
 *
 * Parent -> child, one line each:  "S <id> <path>" scan, "T <id>" stats,
 * "Q" close, unload and exit; "U" close, unload and load again (--reloads).
 * Child -> parent: see supervisor.c.
 */
#include "avhost.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A request line: "S <id> <path>" with a path the parent accepted. */
#define CHILD_LINE_MAX (AVHOST_MAX_REQUEST + 64)
/* Memory after this round is the reference for the rounds that follow: the
   first rounds fill caches (the allocator's, the dynamic loader's). */
#define RELOAD_SETTLE_ROUND 3

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

/* Reads one line (without the newline) into line; 0 at end of input. The
   parent never sends a line longer than the buffer (it refuses such requests). */
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
        if (*have >= CHILD_LINE_MAX) {
            chan_printf("X a request of more than %d bytes reached the plugin process",
                        CHILD_LINE_MAX);
            _exit(5);
        }
        got = read(fd, buf + *have, CHILD_LINE_MAX - *have);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return 0;
        *have += (size_t)got;
    }
}

/* Serves requests until the parent says Q (close and leave) or U (unload and
   load again); returns that letter. */
static int serve_requests(int fd)
{
    static char buf[CHILD_LINE_MAX];
    static char line[CHILD_LINE_MAX];
    static size_t have;
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
        } else if (line[0] == 'Q' || line[0] == 'U') {
            return line[0];
        }
    }
    /* The parent went away: stop as well, without waiting for anything. */
    _exit(0);
}

/* Cycles of plugin_init..plugin_close on a loaded plugin; the last one serves
   requests. Returns what ended the serving (Q or U), or F when plugin_init failed. */
static int run_cycles(plugin *p, int fd)
{
    int info = strcmp(g_settings.mode, "info") == 0;
    int cycle, cycles = g_settings.cycles > 0 ? g_settings.cycles : 1, command = info ? 'U' : 'Q';
    for (cycle = 1; cycle <= cycles; cycle++) {
        int fds_before = count_fds();
        plugin_fds_mark();
        if (!plugin_start(p, cycle)) {
            chan_printf("F");
            return 'F'; /* the product unloads a plugin that failed to start, too */
        }
        if (info || cycle < cycles) {
            probe_thread(p);
        } else {
            pool_start(p);
            chan_printf("I");
            command = serve_requests(fd);
            pool_drain_and_stop();
        }
        plugin_stop(p, cycle, fds_before);
    }
    return command;
}

/* After many rounds, memory must be where it was after the first few: a
   plugin that leaks on every load grows without bound in a long-lived avserver. */
static void check_reload_memory(int rounds, long settled_kb, long last_kb)
{
    violations v;
    rec r;
    long allowed = 4096 + settled_kb / 10;
    /* AddressSanitizer holds freed memory back on purpose (its quarantine) and
       keeps the shadow of unloaded code: growth says nothing about the plugin. */
#if defined(__SANITIZE_ADDRESS__)
    int checked = 0;
#else
    int checked = 1;
#endif
    v.count = 0;
    rec_begin(&r, "reloads");
    rec_int(&r, "rounds", rounds);
    rec_int(&r, "rss_settled_kb", settled_kb);
    rec_int(&r, "rss_last_kb", last_kb);
    rec_bool(&r, "memory_checked", checked);
    if (checked && rounds >= 10 && settled_kb > 0 && last_kb - settled_kb > allowed)
        viol_add(&v, "memory grew by %ld kB over %d load/unload rounds (from %ld kB after round "
                     "%d to %ld kB): something is leaked on every load",
                 last_kb - settled_kb, rounds, settled_kb, RELOAD_SETTLE_ROUND, last_kb);
    rec_violations(&r, &v);
    chan_event(&r, &v);
}

void child_main(int fd)
{
    plugin p;
    int round, rounds = g_settings.reloads > 0 ? g_settings.reloads : 1;
    long settled_kb = -1;
    process_facts before;
    chan_init(fd);
    crash_frames_install(fd);
    for (round = 1; round <= rounds; round++) {
        int command;
        facts_take(&before);
        if (!plugin_load(&p, g_settings.plugin)) {
            chan_printf("F");
            if (p.handle == NULL)
                _exit(3); /* nothing was loaded: nothing to unload */
            command = 'F';
        } else {
            crash_frames_note_objects();
            command = run_cycles(&p, fd);
        }
        plugin_unload(&p, round, &before);
        if (round == RELOAD_SETTLE_ROUND)
            settled_kb = rss_kb();
        if (command != 'U')
            break;
    }
    if (rounds > 1)
        check_reload_memory(round > rounds ? rounds : round, settled_kb, rss_kb());
    chan_printf("M %ld %d", peak_rss_kb(), count_fds());
    /* As avserver leaves: through exit(), so whatever the plugin left on the
       exit list runs now, after dlclose. The parent watches how this ends. */
    chan_printf("P exit");
    chan_printf("D");
    exit(0);
}
