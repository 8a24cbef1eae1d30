/*
 * A deadline for the plugin calls that must return for the product to go on:
 * plugin_close and dlclose. A plugin that hangs there hangs avserver's shutdown
 * or plugin switch, so the child reports which call hung and leaves.
 */
#include "avhost.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int g_done;
static const char *g_phase;
static const char *g_event;
static pthread_t g_thread;
static int g_running;

static void *watch(void *arg)
{
    struct timespec deadline;
    int timed_out = 0;
    (void)arg;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += g_settings.close_timeout_s;
    pthread_mutex_lock(&g_lock);
    while (!g_done && !timed_out)
        timed_out = pthread_cond_timedwait(&g_cond, &g_lock, &deadline) != 0;
    timed_out = timed_out && !g_done;
    pthread_mutex_unlock(&g_lock);
    if (timed_out) {
        violations v;
        rec r;
        v.count = 0;
        viol_add(&v, "%s did not return within %d s (--close-timeout)", g_phase,
                 g_settings.close_timeout_s);
        rec_begin(&r, g_event);
        rec_str(&r, "phase", g_phase);
        rec_violations(&r, &v);
        chan_event(&r, &v);
        chan_printf("F");
        _exit(4);
    }
    return NULL;
}

void watchdog_arm(const char *phase, const char *event)
{
    g_done = 0;
    g_phase = phase;
    g_event = event;
    g_running = pthread_create(&g_thread, NULL, watch, NULL) == 0;
}

void watchdog_disarm(void)
{
    pthread_mutex_lock(&g_lock);
    g_done = 1;
    pthread_cond_signal(&g_cond);
    pthread_mutex_unlock(&g_lock);
    if (g_running)
        pthread_join(g_thread, NULL);
    g_running = 0;
}
