/*
 * Unloading, as the products do it: after plugin_close, avserver (and Kerio's
 * own test kit) dlclose() the plugin, then go on (a plugin switch loads one
 * again) or leave through exit(). Whatever the plugin registered must be gone
 * when dlclose returns: a thread still running its code, or a destructor left
 * on the exit list, jumps into unmapped memory later. This file checks what
 * can be seen at dlclose; a crash in exit() is seen by the parent.
 */
#include "avhost.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void facts_take(process_facts *f)
{
    f->fds = count_fds();
    fd_snapshot(f->fdset, AVHOST_MAX_FDS);
    thread_snapshot(f->tids, AVHOST_MAX_THREADS, &f->threads);
    f->rss_kb = rss_kb();
}

/* A thread that has just returned may still be listed for a moment. */
static int threads_settled(int expected)
{
    int i, n = count_threads();
    for (i = 0; i < 50 && n > expected; i++) {
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
        n = count_threads();
    }
    return n;
}

int plugin_unload(plugin *p, int round, const process_facts *before)
{
    violations v;
    rec r;
    process_facts after;
    int ret, mapped, threads;
    char list[600];
    v.count = 0;
    chan_printf("P dlclose");
    watchdog_arm("dlclose", "unload");
    ret = dlclose(p->handle);
    watchdog_disarm();
    p->handle = NULL;
    p->iface = NULL;
    rec_begin(&r, "unload");
    rec_int(&r, "round", round);
    rec_int(&r, "result", ret);
    if (ret != 0) {
        const char *err = dlerror();
        viol_add(&v, "dlclose failed: %s", err ? err : "(no message)");
    }
    threads = threads_settled(before->threads);
    facts_take(&after);
    mapped = path_is_mapped(g_settings.plugin);
    /* Not a violation by itself: glibc keeps a library with STB_GNU_UNIQUE
       symbols (gcc's C++ runtime makes them) mapped for good. */
    rec_bool(&r, "unmapped", mapped == 0);
    rec_int(&r, "fds_before_load", before->fds);
    rec_int(&r, "fds_after_unload", after.fds);
    rec_int(&r, "threads_before_load", before->threads);
    rec_int(&r, "threads_after_unload", threads);
    rec_int(&r, "rss_kb", after.rss_kb);
    if (threads > before->threads) {
        thread_list_new(before->tids, before->threads, list, sizeof list);
        viol_add(&v, "%d thread(s) still running after plugin_close and dlclose (round %d): %s; "
                     "plugin_close must stop and join every thread the plugin started",
                 threads - before->threads, round, list);
    }
    if (after.fds > before->fds) {
        fd_list_new(before->fdset, AVHOST_MAX_FDS, list, sizeof list);
        viol_add(&v, "%d descriptor(s) left open after dlclose (round %d): %s", after.fds - before->fds,
                 round, list);
    }
    rec_violations(&r, &v);
    chan_event(&r, &v);
    return v.count == 0;
}
