/*
 * avhost: loads a Kerio antivirus plugin (avir_*.so) the way the products'
 * avserver does, checks the ABI contract while it runs, and reports in JSON.
 *
 *   avhost info  PLUGIN [options]               ABI report (load, options, init/close cycles)
 *   avhost scan  PLUGIN FILE... [options]       one verdict per file
 *   avhost serve PLUGIN [--socket PATH]         long-lived server: requests on stdin or a socket
 *   avhost bench PLUGIN FILE... --threads N (--seconds S | --count N)
 *
 * OUTPUT: one JSON object per line on stdout (--pretty: one readable line per record).
 * Every object has "event"; records that check something carry "violations", an
 * array of precise texts (empty when all is well). Strings escape control
 * characters and bytes >= 0x80 as \u00XX, so whatever the plugin wrote is shown.
 *
 *   load         plugin, pid, version, slots, name, description, options [{name,value}],
 *                given, accepted (set_plugin_config's return), known (how many given
 *                names the plugin reported), options_after, violations; error if dlopen failed
 *   init         cycle, result (plugin_init), error (get_error_message when 0), violations
 *   log          kind (ERR|WRN|SEC|PRO|debug), message (prefix removed), violations
 *   thread_init  worker, result, workers, error, violations        (a new pool worker)
 *   thread_close worker, reason (idle|shutdown), result, violations
 *   thread_probe thread_init, thread_close, violations             (info, early cycles)
 *   scan         id, file, code (-1 when the plugin gave none), verdict (FAILED|OK|
 *                VIRUS_FOUND|VIRUS_CURED|IMPOSSIBLE|ERROR|INVALID|CRASHED|NOT_SCANNED),
 *                vir_info (null if untouched), worker, ms, violations
 *   close        cycle, result (plugin_close), fds_before_init, fds_after_close,
 *                peak_rss_kb, logs_ERR, logs_WRN, logs_SEC, logs_PRO, logs_debug, violations
 *   unload       round, result (dlclose), unmapped, fds_before_load, fds_after_unload,
 *                threads_before_load, threads_after_unload, rss_kb, violations
 *   reloads      rounds, rss_settled_kb, rss_last_kb, memory_checked, violations
 *                                                   (--reloads > 1)
 *   restart      reason, old_pid, pid, restarts      (AVCHK_ERROR, a crash, or RESTART)
 *   crash        pid, phase, violations              (a crash outside any scan, or
 *                                                    in exit() after dlclose)
 *   stats        pid, workers, idle, busy, queued, started, closed_idle, peak_workers, scanned
 *   bench        threads, files, bytes, seconds, files_per_s, bytes_per_s, peak_rss_kb,
 *                open_fds, restarts
 *   serving      pid, child_pid, socket                 (serve, at start)
 *   summary      mode, files, FAILED, OK, VIRUS_FOUND, VIRUS_CURED, IMPOSSIBLE, ERROR,
 *                INVALID, CRASHED, NOT_SCANNED, restarts, violation_count, peak_rss_kb, exit
 *
 * EXIT STATUS: 0 no violation; 1 at least one violation; 2 usage error;
 * 3 the plugin could not be loaded or initialised (without a violation).
 *
 * serve requests, one per line: "SCAN <path>" (or just an absolute path), "STATS",
 * "PING", "RESTART" (close the plugin and start it in a fresh process), "SHUTDOWN"
 * (finish, close, exit; end of stdin does the same). Answers are records as above.
 */
#include "avhost.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

host_settings g_settings;

static void usage(FILE *f)
{
    fputs(
        "usage: avhost info  PLUGIN [options]\n"
        "       avhost scan  PLUGIN FILE... [options]\n"
        "       avhost serve PLUGIN [--socket PATH] [options]\n"
        "       avhost bench PLUGIN FILE... [--threads N] (--seconds S | --count N) [options]\n"
        "options:\n"
        "  -o NAME=VALUE       plugin option (repeatable), passed with set_plugin_config\n"
        "  --raw-config        pass only the -o options, verbatim (default: the plugin's\n"
        "                      options with the -o values, as the products do)\n"
        "  --vi-size N         size of vir_info (default 512)\n"
        "  --threads N         concurrent requests (scan, bench; default 1)\n"
        "  --max-workers N     cap of the worker pool (default 32, at least --threads)\n"
        "  --idle-timeout S    end workers idle longer than S seconds (default 60; 0 never)\n"
        "  --repeat N          scan every file N times (default 1)\n"
        "  --cycles N          plugin_init..plugin_close cycles (default 2 for info, else 1)\n"
        "  --max-restarts N    give up after N restarts of the plugin (default 20)\n"
        "  --close-timeout S   plugin_close, dlclose and exit() must each end within S\n"
        "                      seconds (default 30)\n"
        "  --reloads N         load, use, close and dlclose the plugin N times in one\n"
        "                      process, as a plugin switch does (scan, info; default 1)\n"
        "  --no-exec-check     skip the check that a program the host executes inherits\n"
        "                      no plugin descriptor (run once per worker by default)\n"
        "  --seconds S, --count N   length of a bench run (default 5 s)\n"
        "  --socket PATH       serve on a UNIX socket instead of stdin/stdout\n"
        "  --no-logs           do not print log records (violations are still reported)\n"
        "  --pretty            readable lines instead of JSON\n"
        "Output: JSON lines, see host/README.md. Exit: 0 ok, 1 violations, 2 usage, 3 no plugin.\n",
        f);
}

static int bad(const char *what, const char *value)
{
    fprintf(stderr, "avhost: invalid %s: %s\n", what, value ? value : "(missing)");
    usage(stderr);
    return 2;
}

static int to_int(const char *s, int min, int *out)
{
    char *end;
    long v;
    if (s == NULL)
        return 0;
    v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < min || v > 1000000000L)
        return 0;
    *out = (int)v;
    return 1;
}

static int to_double(const char *s, double *out)
{
    char *end;
    double v;
    if (s == NULL)
        return 0;
    v = strtod(s, &end);
    if (end == s || *end != '\0' || v < 0)
        return 0;
    *out = v;
    return 1;
}

int main(int argc, char **argv)
{
    static char *positional[4096];
    int npos = 0, i, cycles = 0, max_workers_set = 0;
    double idle = 60.0, close_timeout = 30.0;
    host_settings *s = &g_settings;

    memset(s, 0, sizeof *s);
    s->vi_size = 512;
    s->threads = 1;
    s->max_workers = 32;
    s->repeat = 1;
    s->max_restarts = 20;
    s->logs = 1;
    s->seconds = 5.0;
    s->reloads = 1;
    s->exec_check = 1;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--list-inherited-fds") == 0)
        return list_inherited_fds(); /* the exec probe's helper, see exec_probe.c */
    if (strcmp(argv[1], "--version") == 0) {
        printf("avhost %s\n", AVHOST_VERSION);
        return 0;
    }
    s->mode = argv[1];
    if (strcmp(s->mode, "info") && strcmp(s->mode, "scan") && strcmp(s->mode, "serve") &&
        strcmp(s->mode, "bench"))
        return bad("mode (info, scan, serve or bench)", s->mode);

    for (i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        const char *eq;
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (npos < (int)(sizeof positional / sizeof positional[0]))
                positional[npos++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc && npos < 4096; i++)
                positional[npos++] = argv[i];
            break;
        }
        /* --name=value or --name value */
        eq = strchr(a, '=');
        if (a[1] == '-' && eq != NULL) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
        if (strcmp(name, "--pretty") == 0) {
            s->pretty = 1;
            continue;
        }
        if (strcmp(name, "--raw-config") == 0) {
            s->raw_config = 1;
            continue;
        }
        if (strcmp(name, "--no-logs") == 0) {
            s->logs = 0;
            continue;
        }
        if (strcmp(name, "--no-exec-check") == 0) {
            s->exec_check = 0;
            continue;
        }
        if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (val == NULL) {
            if (i + 1 >= argc)
                return bad(name, NULL);
            val = argv[++i];
        }
        if (strcmp(name, "-o") == 0) {
            const char *sep = strchr(val, '=');
            host_option *o;
            if (sep == NULL || sep == val || s->option_count >= AVHOST_MAX_OPTIONS)
                return bad("-o (want NAME=VALUE)", val);
            o = &s->options[s->option_count++];
            snprintf(o->name, sizeof o->name, "%.*s", (int)(sep - val), val);
            snprintf(o->value, sizeof o->value, "%s", sep + 1);
        } else if (strcmp(name, "--vi-size") == 0) {
            int v;
            if (!to_int(val, 0, &v))
                return bad(name, val);
            s->vi_size = (unsigned int)v;
        } else if (strcmp(name, "--threads") == 0) {
            if (!to_int(val, 1, &s->threads))
                return bad(name, val);
        } else if (strcmp(name, "--max-workers") == 0) {
            if (!to_int(val, 1, &s->max_workers))
                return bad(name, val);
            max_workers_set = 1;
        } else if (strcmp(name, "--idle-timeout") == 0) {
            if (!to_double(val, &idle))
                return bad(name, val);
        } else if (strcmp(name, "--repeat") == 0) {
            if (!to_int(val, 1, &s->repeat))
                return bad(name, val);
        } else if (strcmp(name, "--cycles") == 0) {
            if (!to_int(val, 1, &cycles))
                return bad(name, val);
        } else if (strcmp(name, "--reloads") == 0) {
            if (!to_int(val, 1, &s->reloads))
                return bad(name, val);
        } else if (strcmp(name, "--max-restarts") == 0) {
            if (!to_int(val, 0, &s->max_restarts))
                return bad(name, val);
        } else if (strcmp(name, "--close-timeout") == 0) {
            if (!to_double(val, &close_timeout) || close_timeout < 1)
                return bad(name, val);
        } else if (strcmp(name, "--seconds") == 0) {
            if (!to_double(val, &s->seconds))
                return bad(name, val);
        } else if (strcmp(name, "--count") == 0) {
            int v;
            if (!to_int(val, 1, &v))
                return bad(name, val);
            s->count = v;
        } else if (strcmp(name, "--socket") == 0) {
            s->socket_path = val;
        } else {
            return bad("option", name);
        }
    }
    if (npos < 1)
        return bad("arguments: PLUGIN is missing", s->mode);
    s->plugin = positional[0];
    s->idle_timeout_ms = (int)(idle * 1000.0 + 0.5);
    s->close_timeout_s = (int)(close_timeout + 0.5);
    s->cycles = cycles ? cycles : strcmp(s->mode, "info") == 0 ? 2 : 1;
    if (!max_workers_set && s->max_workers < s->threads)
        s->max_workers = s->threads;
    /* bench measures N workers: extra requests queue instead of adding workers. */
    if (!max_workers_set && strcmp(s->mode, "bench") == 0)
        s->max_workers = s->threads;

    signal(SIGPIPE, SIG_IGN);
    if (strcmp(s->mode, "info") == 0)
        return run_info();
    if (strcmp(s->mode, "serve") == 0)
        return run_serve();
    if (npos < 2)
        return bad("arguments: no FILE given", s->mode);
    if (strcmp(s->mode, "scan") == 0)
        return run_scan(positional + 1, npos - 1);
    return run_bench(positional + 1, npos - 1);
}
