/*
 * avhost: loads a Kerio antivirus plugin (avir_*.so) the way the products'
 * avserver does, checks the ABI contract while it runs, and reports in JSON.
 * Modes, options, every record with its fields, the exit status and the serve
 * requests are described in host/README.md. This file reads the command line.
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
        "  --scan-timeout S    a scan that takes longer is HUNG: the plugin process is\n"
        "                      killed and started again, as the product does (default 0:\n"
        "                      no limit)\n"
        "  --rehang-timeout S  after a scan was HUNG, the next scans are HUNG after S\n"
        "                      seconds (default 3, at most --scan-timeout) until one\n"
        "                      completes: a hang costs one full timeout, not one per file\n"
        "  --realname MODE     realname given to plugin_thread_test_file: base (the file's\n"
        "                      base name, as the products pass it; default), empty (\"\")\n"
        "                      or null (NULL); the ABI allows all three\n"
        "  --reloads N         load, use, close and dlclose the plugin N times in one\n"
        "                      process, as a plugin switch does (scan, info; default 1)\n"
        "  --no-exec-check     skip the check that a program the host executes inherits\n"
        "                      no plugin descriptor (run once per worker by default)\n"
        "  --seconds S, --count N   length of a bench run (default 5 s)\n"
        "  --socket PATH       serve on a UNIX socket instead of stdin/stdout; never\n"
        "                      replaces anything at PATH but a stale socket\n"
        "  --socket-mode MODE  its permissions, octal (default 600: only this user; a\n"
        "                      client can make avhost read any file it can and stop it)\n"
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

#define GO_ON (-1) /* parsing goes on: not an exit status */
#define MAX_POSITIONAL 4096

/* What the command line says that reaches g_settings only once all of it is
   read (derive_settings). */
typedef struct parse_state_s {
    char *positional[MAX_POSITIONAL]; /* PLUGIN, then the FILEs */
    int npos;
    int vi_size, count;   /* int here, unsigned and long in g_settings */
    int max_workers;      /* 0: not given, derived from --threads and the mode */
    int cycles;           /* 0: not given, derived from the mode */
    double idle;          /* --idle-timeout, seconds */
    double close_timeout; /* seconds */
} parse_state;

static void set_defaults(host_settings *s, parse_state *ps)
{
    memset(s, 0, sizeof *s);
    s->threads = 1;
    s->max_workers = 32; /* and at least --threads, see derive_settings */
    s->repeat = 1;
    s->max_restarts = 20;
    s->logs = 1;
    s->seconds = 5.0;
    s->reloads = 1;
    s->socket_mode = 0600;
    s->exec_check = 1;
    s->rehang_timeout_s = 3.0; /* and never above --scan-timeout, see supervisor.c */
    ps->vi_size = 512;
    ps->idle = 60.0;
    ps->close_timeout = 30.0;
}

/* The first argument: the mode, or a request answered at once. */
static int parse_mode(int argc, char **argv)
{
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
    g_settings.mode = argv[1];
    if (strcmp(argv[1], "info") && strcmp(argv[1], "scan") && strcmp(argv[1], "serve") &&
        strcmp(argv[1], "bench"))
        return bad("mode (info, scan, serve or bench)", argv[1]);
    return GO_ON;
}

/* Options without a value. Returns 1 when `name` is one. */
static int parse_flag(const char *name)
{
    static const struct {
        const char *name;
        int *target;
        int value;
    } flags[] = {{"--pretty", &g_settings.pretty, 1},
                 {"--raw-config", &g_settings.raw_config, 1},
                 {"--no-logs", &g_settings.logs, 0},
                 {"--no-exec-check", &g_settings.exec_check, 0}};
    size_t i;
    for (i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (strcmp(name, flags[i].name) == 0) {
            *flags[i].target = flags[i].value;
            return 1;
        }
    return 0;
}

/* -o NAME=VALUE */
static int parse_plugin_option(const char *val)
{
    host_settings *s = &g_settings;
    const char *sep = strchr(val, '=');
    host_option *o;
    if (sep == NULL || sep == val || s->option_count >= AVHOST_MAX_OPTIONS)
        return bad("-o (want NAME=VALUE)", val);
    o = &s->options[s->option_count++];
    snprintf(o->name, sizeof o->name, "%.*s", (int)(sep - val), val);
    snprintf(o->value, sizeof o->value, "%s", sep + 1);
    return GO_ON;
}

/* Options with a value. Returns GO_ON, or the exit status of a usage error. */
static int parse_option(parse_state *ps, const char *name, const char *val)
{
    host_settings *s = &g_settings;
    const struct {
        const char *name;
        int min;
        int *target;
    } ints[] = {{"--vi-size", 0, &ps->vi_size}, {"--threads", 1, &s->threads}, {"--max-workers", 1, &ps->max_workers}, {"--repeat", 1, &s->repeat}, {"--cycles", 1, &ps->cycles}, {"--reloads", 1, &s->reloads}, {"--max-restarts", 0, &s->max_restarts}, {"--count", 1, &ps->count}};
    /* Seconds: to_double refuses negative values; below min is refused too. */
    const struct {
        const char *name;
        double min;
        double *target;
    } doubles[] = {{"--idle-timeout", 0, &ps->idle},
                   {"--close-timeout", 1, &ps->close_timeout},
                   {"--scan-timeout", 0, &s->scan_timeout_s},
                   {"--rehang-timeout", 0, &s->rehang_timeout_s},
                   {"--seconds", 0, &s->seconds}};
    size_t i;
    for (i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (strcmp(name, ints[i].name) == 0)
            return to_int(val, ints[i].min, ints[i].target) ? GO_ON : bad(name, val);
    for (i = 0; i < sizeof doubles / sizeof doubles[0]; i++)
        if (strcmp(name, doubles[i].name) == 0)
            return to_double(val, doubles[i].target) && !(*doubles[i].target < doubles[i].min)
                       ? GO_ON
                       : bad(name, val);
    if (strcmp(name, "-o") == 0)
        return parse_plugin_option(val);
    if (strcmp(name, "--socket") == 0) {
        s->socket_path = val;
        return GO_ON;
    }
    if (strcmp(name, "--realname") == 0) {
        static const char *const modes[] = {"base", "empty", "null"}; /* REALNAME_* */
        for (i = 0; i < sizeof modes / sizeof modes[0]; i++)
            if (strcmp(val, modes[i]) == 0) {
                s->realname = (int)i;
                return GO_ON;
            }
        return bad("--realname (base, empty or null)", val);
    }
    if (strcmp(name, "--socket-mode") == 0) {
        char *end;
        long mode = strtol(val, &end, 8);
        if (end == val || *end != '\0' || mode < 0 || mode > 0777)
            return bad(name, val);
        s->socket_mode = (int)mode;
        return GO_ON;
    }
    return bad("option", name);
}

/* One argument starting with '-' at argv[*i]: --name=value, or a flag, or a
   name with its value in the next argument (*i moves past it). */
static int parse_dashed(parse_state *ps, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *val = NULL;
    const char *eq = strchr(a, '=');
    char name[64];
    if (a[1] == '-' && eq != NULL) {
        snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
        val = eq + 1;
    } else {
        snprintf(name, sizeof name, "%s", a);
    }
    if (parse_flag(name))
        return GO_ON;
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (val == NULL) {
        if (*i + 1 >= argc)
            return bad(name, NULL);
        val = argv[++*i];
    }
    return parse_option(ps, name, val);
}

/* The arguments after the mode: options and positional ones, in any order;
   after "--" all are positional. */
static int parse_args(parse_state *ps, int argc, char **argv)
{
    int i;
    for (i = 2; i < argc; i++) {
        const char *a = argv[i];
        int rc;
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (ps->npos < MAX_POSITIONAL)
                ps->positional[ps->npos++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc && ps->npos < MAX_POSITIONAL; i++)
                ps->positional[ps->npos++] = argv[i];
            break;
        }
        rc = parse_dashed(ps, argc, argv, &i);
        if (rc != GO_ON)
            return rc;
    }
    return GO_ON;
}

/* The settings that depend on others or on the mode. */
static void derive_settings(const parse_state *ps)
{
    host_settings *s = &g_settings;
    s->plugin = ps->positional[0];
    s->vi_size = (unsigned int)ps->vi_size;
    s->count = ps->count;
    s->idle_timeout_ms = (int)(ps->idle * 1000.0 + 0.5);
    s->close_timeout_s = (int)(ps->close_timeout + 0.5);
    s->cycles = ps->cycles ? ps->cycles : strcmp(s->mode, "info") == 0 ? 2
                                                                       : 1;
    if (ps->max_workers)
        s->max_workers = ps->max_workers;
    /* bench measures N workers: extra requests queue instead of adding workers. */
    else if (strcmp(s->mode, "bench") == 0)
        s->max_workers = s->threads;
    else if (s->max_workers < s->threads)
        s->max_workers = s->threads;
}

static int run_mode(parse_state *ps)
{
    const char *mode = g_settings.mode;
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(mode, "info") == 0)
        return run_info();
    if (strcmp(mode, "serve") == 0)
        return run_serve();
    if (ps->npos < 2)
        return bad("arguments: no FILE given", mode);
    if (strcmp(mode, "scan") == 0)
        return run_scan(ps->positional + 1, ps->npos - 1);
    return run_bench(ps->positional + 1, ps->npos - 1);
}

int main(int argc, char **argv)
{
    static parse_state ps;
    int rc;
    set_defaults(&g_settings, &ps);
    rc = parse_mode(argc, argv);
    if (rc == GO_ON)
        rc = parse_args(&ps, argc, argv);
    if (rc != GO_ON)
        return rc;
    if (ps.npos < 1)
        return bad("arguments: PLUGIN is missing", g_settings.mode);
    derive_settings(&ps);
    return run_mode(&ps);
}
