/*
 * The log callback handed to plugin_init, as the products' avserver provides
 * it: a printf-like function the plugin calls from any thread. Each message is
 * checked (length, ending, ASCII, no outside text in the format), counted by
 * kind (its "ERR: ", "WRN: ", "SEC: " or "PRO: " prefix, or debug) and sent as
 * a "log" record. Runs in the child process only.
 */
#include "avhost.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LOG_KINDS 5
#define LOG_DEBUG 4 /* the kind of a message without a known prefix */

static __thread const char *tls_current_file;
static long g_log_counts[LOG_KINDS]; /* ERR WRN SEC PRO debug */
static const char *const g_kinds[LOG_KINDS] = {"ERR", "WRN", "SEC", "PRO", "debug"};

void log_set_current_file(const char *filename)
{
    tls_current_file = filename;
}

void log_counts_add(rec *r)
{
    int i;
    for (i = 0; i < LOG_KINDS; i++) {
        char k[16];
        snprintf(k, sizeof k, "logs_%s", g_kinds[i]);
        rec_int(r, k, __atomic_load_n(&g_log_counts[i], __ATOMIC_RELAXED));
    }
}

/* The checks of one formatted message; n is what vsnprintf wanted to write. */
static void check_message(const char *format, const char *text, int n, violations *v)
{
    size_t len = strlen(text);
    int bad;
    if (n >= MAX_STRING)
        viol_add(v, "log message is %d bytes, longer than MAX_STRING-1 (%d)", n, MAX_STRING - 1);
    if (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        viol_add(v, "log message ends with a newline");
    bad = first_non_ascii(text, len);
    /* A line ending at the very end is reported above, not as a non-ASCII byte. */
    if (bad >= 0 && !(text[bad] == '\n' && (size_t)bad == len - 1) &&
        !(text[bad] == '\r' && (size_t)bad >= len - 2))
        viol_add(v, "log message has a non-ASCII byte 0x%02X at offset %d",
                 (unsigned char)text[bad], bad);
    if (format != NULL && tls_current_file != NULL && tls_current_file[0] != '\0' &&
        strstr(format, tls_current_file) != NULL)
        viol_add(v, "log format string contains the scanned file name %s: outside text "
                    "must be passed as a %%s argument",
                 tls_current_file);
}

/* The kind of a message from its prefix: an index into g_kinds. */
static int message_kind(const char *text)
{
    static const char *const prefixes[LOG_DEBUG] = {"ERR: ", "WRN: ", "SEC: ", "PRO: "};
    int kind;
    for (kind = 0; kind < LOG_DEBUG; kind++)
        if (strncmp(text, prefixes[kind], 5) == 0)
            return kind;
    return LOG_DEBUG;
}

void log_callback(const char *format, ...)
{
    char text[4 * MAX_STRING];
    violations v;
    int n, kind;
    va_list ap;
    rec r;
    v.count = 0;
    if (format == NULL) {
        viol_add(&v, "log callback called with a NULL format");
        text[0] = '\0';
        n = 0;
    } else {
        va_start(ap, format);
        n = vsnprintf(text, sizeof text, format, ap);
        va_end(ap);
        if (n < 0) {
            text[0] = '\0';
            n = 0;
        }
    }
    check_message(format, text, n, &v);
    kind = message_kind(text);
    __atomic_add_fetch(&g_log_counts[kind], 1, __ATOMIC_RELAXED);
    if (!g_settings.logs && v.count == 0)
        return;
    rec_begin(&r, "log");
    rec_str(&r, "kind", g_kinds[kind]);
    /* The message without its kind prefix. */
    rec_str(&r, "message", kind < LOG_DEBUG ? text + 5 : text);
    rec_violations(&r, &v);
    chan_event(&r, &v);
}
