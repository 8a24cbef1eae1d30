/*
 * The child's channel to the parent: one socketpair, written by every thread
 * of the child (loader, workers, watchdog, the plugin's log callback). Each
 * write is a whole line under a lock, so lines of different threads never mix.
 * The line formats are listed in supervisor.c.
 */
#include "avhost.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int g_chan = -1;
static pthread_mutex_t g_chan_lock = PTHREAD_MUTEX_INITIALIZER;

void chan_init(int fd)
{
    g_chan = fd;
}

void chan_printf(const char *format, ...)
{
    char stack[1024];
    char *line = stack;
    int n;
    va_list ap;
    va_start(ap, format);
    n = vsnprintf(stack, sizeof stack, format, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof stack) {
        line = (char *)malloc((size_t)n + 1);
        if (line == NULL)
            return;
        va_start(ap, format);
        vsnprintf(line, (size_t)n + 1, format, ap);
        va_end(ap);
    }
    pthread_mutex_lock(&g_chan_lock);
    write_all(g_chan, line, (size_t)n);
    write_all(g_chan, "\n", 1);
    pthread_mutex_unlock(&g_chan_lock);
    if (line != stack)
        free(line);
}

int chan_trylock(void)
{
    return pthread_mutex_trylock(&g_chan_lock) == 0;
}

void chan_unlock(void)
{
    pthread_mutex_unlock(&g_chan_lock);
}

void chan_event(rec *r, const violations *v)
{
    chan_printf("E %d %s", v ? v->count : 0, rec_end(r));
    rec_free(r);
}
