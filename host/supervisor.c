/*
 * The product's side: the parent process. It never loads the plugin. It starts
 * the child (the avserver with the plugin), sends it requests, routes the
 * answers, and when the child dies (a crash) or the plugin returns AVCHK_ERROR
 * it starts a fresh child and reports the restart, as the products do.
 *
 * Child -> parent lines:
 *   "P <step>"                   the ABI call the child is about to make
 *   "E <nviol> <record>"         an event record for stdout
 *   "I"                          initialised: requests may be sent
 *   "F"                          the plugin cannot be loaded or initialised
 *   "B <id>"                     the plugin starts scanning request id
 *   "R <id> <code> <nviol> <record>"  the result of request id
 *   "A <id> <record>"            the answer to a stats request
 *   "M <peak_rss_kb> <fds>"      the child's peak RSS and open descriptors at the end
 *   "X <message>"                the child met a host error (not the plugin's)
 *   "D"                          the child closed and unloaded the plugin and calls exit()
 */
/* poll's fortified wrapper (__poll_chk) needs glibc 2.16; the release build targets
   2.12, and every poll here passes an array with its exact size. */
#undef _FORTIFY_SOURCE

#include "avhost.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { Q_WAITING, Q_SENT, Q_BEGUN, Q_DONE };
#define MAX_CLIENTS 64
#define VERDICT_SLOTS 10 /* 0..5, INVALID, CRASHED, NOT_SCANNED, HUNG */
#define SLOT_HUNG 9

typedef struct request_s {
    long id;
    char *path;
    int client; /* -1: stdout */
    int stats;  /* a STATS request, not a scan */
    int state;
    double begun_at; /* when the plugin started scanning it (Q_BEGUN) */
    int hung;        /* it overstayed --scan-timeout: the child was killed for it */
    struct request_s *next;
} request;

typedef struct client_s {
    int fd_in, fd_out;
    char buf[AVHOST_MAX_REQUEST + 2]; /* a request, "\r" and "\n" */
    size_t have;
    int discarding; /* inside a line that was too long: its tail is no request */
} client;

static request *g_reqs, *g_reqs_tail;
static long g_next_id = 1;
static client g_clients[MAX_CLIENTS];
static int g_client_used[MAX_CLIENTS];

static pid_t g_child = -1;
static int g_fd = -1;
/* Records from the child have no fixed size (a long path, a large --vi-size):
   the buffer grows, so no line is ever dropped. */
static char *g_rbuf;
static size_t g_rhave, g_rcap;
static int g_ready, g_fatal, g_closing, g_done_seen, g_restart_pending, g_kill_sent;
static double g_done_at; /* when "D" came: exit() must finish within --close-timeout */
static int g_exit_hung;   /* it did not: killed */
static int g_round = 1;  /* --reloads: the load..unload round the child is in */
static char **g_round_files;
static int g_round_nfiles;
static char g_restart_reason[600];
static char g_step[64] = "start";
static int g_restarts, g_violations;
static long g_verdicts[VERDICT_SLOTS];
static long g_peak_rss = -1, g_child_fds = -1, g_completed, g_bytes_done;
static int g_quiet_results; /* bench */
static int g_in_flight;

static const char *const slot_names[VERDICT_SLOTS] = {
    "FAILED", "OK", "VIRUS_FOUND", "VIRUS_CURED", "IMPOSSIBLE", "ERROR", "INVALID", "CRASHED",
    "NOT_SCANNED", "HUNG"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void out_line(int client, const char *line)
{
    int fd = 1;
    if (client >= 0) {
        if (!g_client_used[client])
            return;
        fd = g_clients[client].fd_out;
    }
    write_all(fd, line, strlen(line));
    write_all(fd, "\n", 1);
}

static void emit(rec *r, int client)
{
    out_line(client, rec_end(r));
    rec_free(r);
}

static request *find_request(long id)
{
    request *q;
    for (q = g_reqs; q; q = q->next)
        if (q->id == id)
            return q;
    return NULL;
}

static request *add_request(const char *path, int client)
{
    request *q = (request *)calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->id = g_next_id++;
    q->path = strdup(path);
    q->client = client;
    if (g_reqs_tail)
        g_reqs_tail->next = q;
    else
        g_reqs = q;
    g_reqs_tail = q;
    return q;
}

/* Drops finished requests from the front of the list. */
static void prune(void)
{
    while (g_reqs && g_reqs->state == Q_DONE) {
        request *q = g_reqs;
        g_reqs = q->next;
        if (g_reqs == NULL)
            g_reqs_tail = NULL;
        free(q->path);
        free(q);
    }
}

static void finish(request *q, int slot)
{
    if (q->state != Q_DONE) {
        q->state = Q_DONE;
        g_in_flight--;
        g_completed++;
        if (slot >= 0 && slot < VERDICT_SLOTS)
            g_verdicts[slot]++;
        if (g_quiet_results) {
            struct stat st;
            if (stat(q->path, &st) == 0)
                g_bytes_done += (long)st.st_size;
        }
    }
}

/* Answers a request the plugin gave no code for (refused, crashed, hung, never
   scanned): a scan record with code -1, its violation counted, the request done. */
static void answer_without_code(request *q, const char *file, const char *verdict, int slot,
                                const char *vir_info, const violations *v)
{
    rec r;
    rec_begin(&r, "scan");
    rec_int(&r, "id", q->id);
    rec_bytes(&r, "file", file, strlen(file) > 8192 ? 8192 : strlen(file));
    rec_int(&r, "code", -1);
    rec_str(&r, "verdict", verdict);
    rec_str(&r, "vir_info", vir_info);
    if (v != NULL) {
        rec_violations(&r, v);
        g_violations += v->count;
    }
    if (g_quiet_results && v == NULL)
        rec_free(&r);
    else
        emit(&r, q->client);
    if (q->state == Q_WAITING) {
        q->state = Q_SENT;
        g_in_flight++;
    }
    finish(q, slot);
}

/* A path the plugin cannot be handed intact is refused, never cut short:
   the answer says why, and the real file is not silently skipped. */
static request *add_scan(const char *path, int client)
{
    const char *why = NULL;
    request *q;
    if (strlen(path) > AVHOST_MAX_REQUEST)
        why = "avhost: path longer than " AVHOST_MAX_REQUEST_TEXT " bytes, not scanned";
    else if (strchr(path, '\n') != NULL)
        why = "avhost: path contains a newline, not scanned";
    q = add_request(why ? "" : path, client);
    if (q == NULL || why == NULL)
        return q;
    answer_without_code(q, path, "NOT_SCANNED", 8, why, NULL);
    return q;
}

/* ---------- the child ---------- */

static int spawn_child(void)
{
    int sv[2], i;
    pid_t pid;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        /* The plugin must not write into the report: its stdout goes to stderr. */
        dup2(2, 1);
        for (i = 3; i < 1024; i++)
            if (i != sv[1])
                close(i);
        signal(SIGPIPE, SIG_IGN);
        /* Not the parent's handlers (their pipe is closed here). A terminal's ^C
           reaches the whole group: the parent then closes the plugin in order. */
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_IGN);
        child_main(sv[1]);
    }
    close(sv[1]);
    g_child = pid;
    g_fd = sv[0];
    g_rhave = 0;
    g_ready = g_done_seen = g_kill_sent = g_exit_hung = 0;
    snprintf(g_step, sizeof g_step, "start");
    return 0;
}

static void send_line(const char *line)
{
    if (g_fd >= 0)
        write_all(g_fd, line, strlen(line));
}

/* Sends waiting requests, at most `window` in flight (0: no limit). */
static void pump(int window)
{
    request *q;
    char line[8300];
    if (!g_ready || g_fd < 0 || g_restart_pending || g_closing)
        return;
    for (q = g_reqs; q; q = q->next) {
        if (q->state != Q_WAITING)
            continue;
        if (window > 0 && g_in_flight >= window)
            break;
        if (q->stats)
            snprintf(line, sizeof line, "T %ld\n", q->id);
        else
            snprintf(line, sizeof line, "S %ld %s\n", q->id, q->path);
        send_line(line);
        q->state = Q_SENT;
        g_in_flight++;
    }
}

static void restart_event(const char *reason, pid_t old)
{
    rec r;
    rec_begin(&r, "restart");
    rec_str(&r, "reason", reason);
    rec_int(&r, "old_pid", (long long)old);
    rec_int(&r, "pid", (long long)g_child);
    rec_int(&r, "restarts", g_restarts);
    emit(&r, -1);
}

/* "E <nviol> <record>": an event record for stdout. */
static void on_event(char *line)
{
    char *rest;
    g_violations += (int)strtol(line + 2, &rest, 10);
    if (*rest == ' ')
        rest++;
    out_line(-1, rest);
}

/* "B <id>": the plugin starts scanning request id. */
static void on_begun(const char *line)
{
    request *q = find_request(strtol(line + 2, NULL, 10));
    if (q && q->state == Q_SENT) {
        q->state = Q_BEGUN;
        q->begun_at = now_s();
    }
}

/* "R <id> <code> <nviol> <record>": the result of request id. */
static void on_result(char *line)
{
    char *rest;
    long id = strtol(line + 2, &rest, 10);
    int code = (int)strtol(rest, &rest, 10);
    int n = (int)strtol(rest, &rest, 10);
    request *q;
    if (*rest == ' ')
        rest++;
    q = find_request(id);
    if (q == NULL || q->state == Q_DONE)
        return;
    g_violations += n;
    if (!g_quiet_results || n > 0)
        out_line(g_quiet_results ? -1 : q->client, rest);
    finish(q, code < 0 ? 8 : code > 5 ? 6 : code);
    if (code == AVCHK_ERROR && !g_restart_pending) {
        /* As the products do: kill avserver and start it again. */
        g_restart_pending = 1;
        snprintf(g_restart_reason, sizeof g_restart_reason,
                 "plugin returned AVCHK_ERROR for %.500s", q->path);
        if (g_child > 0 && !g_kill_sent) {
            kill(g_child, SIGKILL);
            g_kill_sent = 1;
        }
    }
}

/* "A <id> <record>": the answer to a stats request. */
static void on_answer(char *line)
{
    char *rest;
    long id = strtol(line + 2, &rest, 10);
    request *q = find_request(id);
    if (*rest == ' ')
        rest++;
    if (q && q->state != Q_DONE) {
        out_line(q->client, rest);
        q->state = Q_DONE;
        g_in_flight--;
    }
}

/* "M <peak_rss_kb> <fds>": the child's figures at the end. */
static void on_memory(const char *line)
{
    long rss = -1, fds = -1;
    if (sscanf(line + 2, "%ld %ld", &rss, &fds) == 2) {
        if (rss > g_peak_rss)
            g_peak_rss = rss;
        g_child_fds = fds;
    }
}

/* "X <message>": a host error in the child. */
static void on_host_error(const char *line)
{
    rec r;
    rec_begin(&r, "error");
    rec_str(&r, "message", line + 2);
    emit(&r, -1);
    g_fatal = 1;
}

/* One line from the child (the formats are listed at the top). */
static void handle_line(char *line)
{
    switch (line[0]) {
    case 'P':
        snprintf(g_step, sizeof g_step, "%.63s", line + 2);
        break;
    case 'E':
        on_event(line);
        break;
    case 'I':
        g_ready = 1;
        break;
    case 'F':
        g_fatal = 1;
        break;
    case 'B':
        on_begun(line);
        break;
    case 'R':
        on_result(line);
        break;
    case 'A':
        on_answer(line);
        break;
    case 'M':
        on_memory(line);
        break;
    case 'D':
        g_done_seen = 1;
        g_done_at = now_s();
        break;
    case 'X':
        on_host_error(line);
        break;
    default:
        break;
    }
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGABRT: return "SIGABRT";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGPIPE: return "SIGPIPE";
    case SIGTRAP: return "SIGTRAP";
    case SIGSYS: return "SIGSYS";
    default: return "signal";
    }
}

static void describe_status(int status, char *out, size_t size)
{
    if (WIFSIGNALED(status))
        snprintf(out, size, "crashed with signal %d (%s)", WTERMSIG(status),
                 signal_name(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(out, size, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(out, size, "ended (status 0x%x)", status);
}

static void crash_record(pid_t pid, const char *phase, const violations *v)
{
    rec r;
    rec_begin(&r, "crash");
    rec_int(&r, "pid", (long long)pid);
    rec_str(&r, "phase", phase);
    rec_violations(&r, v);
    emit(&r, -1);
    g_violations++;
}

/* The child said "D" (plugin closed and unloaded) and called exit(): it must
   end with status 0. Anything else happened in the plugin's exit handlers or
   destructors, after dlclose: the product would crash the same way. */
static void check_exit(pid_t pid, int status, const char *how)
{
    violations v;
    v.count = 0;
    if (g_exit_hung)
        viol_add(&v, "the plugin process did not finish exit() within %d s after plugin_close "
                     "and dlclose (killed): an exit handler or destructor of the plugin hangs",
                 g_settings.close_timeout_s);
    else if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        viol_add(&v, "the plugin process %s in exit(), after plugin_close and dlclose: a handler "
                     "the plugin left registered (a static destructor, an atexit function, a "
                     "thread) ran after its code was unloaded",
                 how);
    if (v.count)
        crash_record(pid, "exit", &v);
}

/* The child crashed: the requests it was scanning get a CRASHED verdict; when
   it was scanning none, a crash record names the step it was in. */
/* The requests the child was killed for: plugin_thread_test_file never returned. */
static void report_hung(void)
{
    request *q;
    for (q = g_reqs; q; q = q->next)
        if (q->hung && q->state != Q_DONE) {
            violations v;
            v.count = 0;
            viol_add(&v, "plugin_thread_test_file did not return within %g s (--scan-timeout) "
                         "for %s; the plugin process was killed, as the product would",
                     g_settings.scan_timeout_s, q->path);
            answer_without_code(q, q->path, "HUNG", SLOT_HUNG, NULL, &v);
        }
}

static void blame_crash(pid_t old, const char *how)
{
    int blamed = 0;
    request *q;
    for (q = g_reqs; q; q = q->next)
        if (q->state == Q_BEGUN) {
            violations v;
            v.count = 0;
            viol_add(&v, "plugin %s while scanning %s", how, q->path);
            answer_without_code(q, q->path, "CRASHED", 7, NULL, &v);
            blamed++;
        }
    if (!blamed) {
        violations v;
        v.count = 0;
        viol_add(&v, "plugin %s during %s", how, g_step);
        crash_record(old, g_step, &v);
    }
}

/* Requests the dead child had not finished go to the next one. */
static void requeue_unfinished(void)
{
    request *q;
    for (q = g_reqs; q; q = q->next)
        if (q->state == Q_SENT || q->state == Q_BEGUN) {
            q->state = Q_WAITING;
            g_in_flight--;
        }
}

/* A fresh child in place of `old`, unless --max-restarts is reached. Returns
   1 when it was started. */
static int restart_child(pid_t old)
{
    if (g_restarts >= g_settings.max_restarts) {
        rec r;
        rec_begin(&r, "error");
        rec_str(&r, "message", "restart limit reached (--max-restarts); giving up");
        emit(&r, -1);
        g_fatal = 1;
        return 0;
    }
    g_restarts++;
    if (spawn_child() != 0) {
        g_fatal = 1;
        return 0;
    }
    restart_event(g_restart_reason, old);
    return 1;
}

/* The child's channel closed: reap it and decide what happens next. Returns
   1 when a fresh child was started. */
static int child_gone(int want_restart)
{
    int status = 0;
    pid_t old = g_child;
    char how[120];
    close(g_fd);
    g_fd = -1;
    while (waitpid(g_child, &status, 0) < 0 && errno == EINTR)
        ;
    g_child = -1;
    describe_status(status, how, sizeof how);
    if (g_done_seen && !g_kill_sent)
        check_exit(old, status, how);
    report_hung();
    if (!g_done_seen && !g_kill_sent && !g_fatal) {
        blame_crash(old, how);
        if (!g_ready) {
            g_fatal = 1; /* crashed while loading: a fresh child would crash the same way */
            return 0;
        }
        snprintf(g_restart_reason, sizeof g_restart_reason, "plugin %s", how);
        g_restart_pending = 1;
    }
    requeue_unfinished();
    if (g_fatal || !g_restart_pending || !want_restart)
        return 0;
    g_restart_pending = 0;
    return restart_child(old);
}

/* Milliseconds until the oldest scan in the plugin overstays --scan-timeout
   (-1: no limit or no scan). At the limit, the child is killed for it. */
static int scan_deadline_ms(void)
{
    request *q, *oldest = NULL;
    double left;
    if (g_settings.scan_timeout_s <= 0 || g_child <= 0 || g_kill_sent)
        return -1;
    for (q = g_reqs; q; q = q->next)
        if (q->state == Q_BEGUN && (oldest == NULL || q->begun_at < oldest->begun_at))
            oldest = q;
    if (oldest == NULL)
        return -1;
    left = oldest->begun_at + g_settings.scan_timeout_s - now_s();
    if (left > 0)
        return (int)(left * 1000) + 1;
    oldest->hung = 1;
    snprintf(g_restart_reason, sizeof g_restart_reason,
             "plugin_thread_test_file hung on %.500s", oldest->path);
    g_restart_pending = 1;
    g_kill_sent = 1;
    kill(g_child, SIGKILL);
    return -1;
}

/* How long poll may wait: until a scan overstays --scan-timeout, or the child
   in exit() overstays --close-timeout; forever otherwise. Kills a child that
   overstays. */
static int poll_timeout_ms(void)
{
    double left;
    int scan = scan_deadline_ms();
    if (!g_done_seen || g_child <= 0 || g_kill_sent || g_exit_hung)
        return scan;
    left = g_done_at + g_settings.close_timeout_s - now_s();
    if (left <= 0) {
        g_exit_hung = 1;
        kill(g_child, SIGKILL);
        return -1;
    }
    return scan >= 0 && scan < (int)(left * 1000) + 1 ? scan : (int)(left * 1000) + 1;
}

/* Reads what the child sent. Returns 0 when the channel closed. */
static int read_child(void)
{
    ssize_t got;
    char *nl;
    if (g_rcap - g_rhave < 4096) {
        size_t cap = g_rcap ? 2 * g_rcap : 65536;
        char *grown = (char *)realloc(g_rbuf, cap);
        if (grown == NULL) {
            fprintf(stderr, "avhost: out of memory reading the plugin process's records\n");
            exit(3);
        }
        g_rbuf = grown;
        g_rcap = cap;
    }
    got = read(g_fd, g_rbuf + g_rhave, g_rcap - 1 - g_rhave);
    if (got < 0 && errno == EINTR)
        return 1;
    if (got <= 0)
        return 0;
    g_rhave += (size_t)got;
    while ((nl = (char *)memchr(g_rbuf, '\n', g_rhave)) != NULL) {
        size_t n = (size_t)(nl - g_rbuf);
        *nl = '\0';
        handle_line(g_rbuf);
        memmove(g_rbuf, nl + 1, g_rhave - n - 1);
        g_rhave -= n + 1;
    }
    return 1;
}

static void summary(const char *mode)
{
    rec r;
    int i;
    rec_begin(&r, "summary");
    rec_str(&r, "mode", mode);
    rec_int(&r, "files", g_completed);
    for (i = 0; i < VERDICT_SLOTS; i++)
        rec_int(&r, slot_names[i], g_verdicts[i]);
    rec_int(&r, "restarts", g_restarts);
    rec_int(&r, "violation_count", g_violations);
    rec_int(&r, "peak_rss_kb", g_peak_rss);
    rec_int(&r, "exit", g_violations ? 1 : g_fatal ? 3 : 0);
    emit(&r, -1);
}

static int exit_code(void)
{
    return g_violations ? 1 : g_fatal ? 3 : 0;
}


static void add_round_requests(void)
{
    int i, k;
    for (k = 0; k < g_settings.repeat; k++)
        for (i = 0; i < g_round_nfiles; i++)
            add_scan(g_round_files[i], -1);
}

/* Every request answered: with --reloads rounds left, the child unloads the
   plugin and loads it again (as a plugin switch does) and the files are sent
   again; otherwise it closes, unloads and leaves. */
static void next_round_or_close(void)
{
    if (g_round_files != NULL && g_round < g_settings.reloads) {
        g_round++;
        g_ready = 0;
        send_line("U\n");
        add_round_requests();
        return;
    }
    g_closing = 1;
    send_line("Q\n");
}

/* Requests not answered yet. */
static int count_pending(void)
{
    int pending = 0;
    request *q;
    for (q = g_reqs; q; q = q->next)
        if (q->state != Q_DONE)
            pending++;
    return pending;
}

/* Whatever could not be scanned is reported, so no file goes missing. */
static void report_unscanned(void)
{
    request *q;
    for (q = g_reqs; q; q = q->next)
        if (q->state != Q_DONE) {
            answer_without_code(q, q->path, "NOT_SCANNED", 8,
                                "the plugin could not be loaded or initialised", NULL);
        }
    prune();
}

/* Runs until every request is done (or stop() says so), then closes the child. */
static void run_batch(int window, int (*more)(void))
{
    for (;;) {
        struct pollfd pfd;
        int pending, n;
        if (more)
            more();
        pending = count_pending();
        if (g_fatal && g_fd < 0)
            break;
        if (pending == 0 && g_ready && !g_closing && g_fd >= 0 && !g_restart_pending)
            next_round_or_close();
        pump(window);
        prune();
        if (g_fd < 0)
            break;
        pfd.fd = g_fd;
        pfd.events = POLLIN;
        n = poll(&pfd, 1, poll_timeout_ms());
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        if (!read_child()) {
            if (!child_gone(g_restart_pending || !g_closing))
                if (g_closing || g_fatal || g_fd < 0)
                    break;
        }
    }
    report_unscanned();
}

int run_info(void)
{
    if (spawn_child() != 0)
        return 3;
    run_batch(0, NULL);
    summary("info");
    return exit_code();
}

int run_scan(char **files, int nfiles)
{
    g_round_files = files;
    g_round_nfiles = nfiles;
    add_round_requests();
    if (spawn_child() != 0)
        return 3;
    run_batch(g_settings.threads, NULL);
    summary("scan");
    return exit_code();
}

/* ---------- bench ---------- */

static char **g_bench_files;
static int g_bench_nfiles, g_bench_next;
static long g_bench_sent;
static double g_bench_start, g_bench_end;

static int bench_more(void)
{
    int waiting = 0;
    request *q;
    for (q = g_reqs; q; q = q->next)
        if (q->state == Q_WAITING)
            waiting++;
    while (waiting < g_settings.threads) {
        if (g_settings.count > 0 && g_bench_sent >= g_settings.count)
            break;
        if (g_settings.count <= 0 && now_s() - g_bench_start >= g_settings.seconds)
            break;
        add_scan(g_bench_files[g_bench_next], -1);
        g_bench_next = (g_bench_next + 1) % g_bench_nfiles;
        g_bench_sent++;
        waiting++;
    }
    return 0;
}

int run_bench(char **files, int nfiles)
{
    rec r;
    double seconds;
    g_quiet_results = 1;
    g_bench_files = files;
    g_bench_nfiles = nfiles;
    if (spawn_child() != 0)
        return 3;
    /* Loading and plugin_init are not part of the measurement. */
    while (!g_ready && !g_fatal && g_fd >= 0) {
        if (!read_child())
            child_gone(0);
    }
    g_bench_start = now_s();
    /* Two requests per worker in flight, as a busy product keeps avserver fed:
       a worker finds its next file queued instead of waiting for a round trip
       to this process, so the figure is the plugin's, not the pipe's. */
    run_batch(2 * g_settings.threads, bench_more);
    g_bench_end = now_s();
    seconds = g_bench_end - g_bench_start;
    if (seconds <= 0)
        seconds = 1e-9;
    rec_begin(&r, "bench");
    rec_int(&r, "threads", g_settings.threads);
    rec_int(&r, "files", g_completed);
    rec_int(&r, "bytes", g_bytes_done);
    rec_num(&r, "seconds", seconds);
    rec_num(&r, "files_per_s", (double)g_completed / seconds);
    rec_num(&r, "bytes_per_s", (double)g_bytes_done / seconds);
    rec_int(&r, "peak_rss_kb", g_peak_rss);
    rec_int(&r, "open_fds", g_child_fds);
    rec_int(&r, "restarts", g_restarts);
    emit(&r, -1);
    summary("bench");
    return exit_code();
}

/* ---------- serve ---------- */

static int g_listen = -1;
static int g_shutdown;
static int g_signal_pipe[2] = {-1, -1}; /* SIGTERM/SIGINT wake poll through it */
static volatile sig_atomic_t g_signal;
static int g_signal_handled;

#define PARTIAL_REQUEST "request without its newline when the client ended: dropped, nothing " \
                        "run (end every request with a newline)"

static void on_stop_signal(int sig)
{
    int saved = errno;
    g_signal = sig;
    if (write(g_signal_pipe[1], "s", 1) < 0) {
        /* full: poll wakes up anyway */
    }
    errno = saved;
}

/* SIGTERM and SIGINT end serve as SHUTDOWN does, the socket removed at once; a
   second one ends avhost outright (the handler is reset by the first). */
static int catch_stop_signals(void)
{
    struct sigaction sa;
    int i;
    if (pipe(g_signal_pipe) != 0)
        return -1;
    for (i = 0; i < 2; i++) {
        fcntl(g_signal_pipe[i], F_SETFD, FD_CLOEXEC);
        fcntl(g_signal_pipe[i], F_SETFL, O_NONBLOCK);
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    return 0;
}

/* A stop signal came: no new client (the socket goes now), then as SHUTDOWN. */
static void stop_on_signal(void)
{
    char drain[16];
    rec r;
    while (read(g_signal_pipe[0], drain, sizeof drain) > 0)
        ;
    if (!g_signal || g_signal_handled)
        return;
    g_signal_handled = 1;
    if (g_listen >= 0) {
        listener_close(g_listen);
        g_listen = -1;
    }
    g_shutdown = 1;
    rec_begin(&r, "shutting_down");
    rec_str(&r, "signal", signal_name(g_signal));
    emit(&r, -1);
}

static int add_client(int fd_in, int fd_out)
{
    int i;
    for (i = 0; i < MAX_CLIENTS; i++)
        if (!g_client_used[i]) {
            g_client_used[i] = 1;
            g_clients[i].fd_in = fd_in;
            g_clients[i].fd_out = fd_out;
            g_clients[i].have = 0;
            g_clients[i].discarding = 0;
            return i;
        }
    return -1;
}

static void drop_client(int c)
{
    request *q;
    if (g_clients[c].fd_in > 2)
        close(g_clients[c].fd_in);
    g_client_used[c] = 0;
    for (q = g_reqs; q; q = q->next)
        if (q->client == c)
            q->client = -2; /* answered into the void */
}

static void answer(int c, const char *event, const char *key, const char *value)
{
    rec r;
    rec_begin(&r, event);
    if (key)
        rec_str(&r, key, value);
    emit(&r, c);
}

static void refuse_overlong(int c)
{
    rec r;
    rec_begin(&r, "error");
    rec_str(&r, "message", "request line longer than " AVHOST_MAX_REQUEST_TEXT
                           " bytes: refused, nothing scanned");
    rec_int(&r, "limit", AVHOST_MAX_REQUEST);
    emit(&r, c);
}

/* A path keeps its spaces: only the line ending is removed. */
static void client_request(int c, char *line, size_t n)
{
    if (n > 0 && line[n - 1] == '\r')
        line[--n] = '\0';
    if (n > AVHOST_MAX_REQUEST) {
        refuse_overlong(c);
        return;
    }
    if (n == 0)
        return;
    if (strlen(line) != n) {
        answer(c, "error", "message", "request contains a NUL byte: refused");
        return;
    }
    if (strncasecmp(line, "SCAN ", 5) == 0) {
        add_scan(line + 5, c);
    } else if (line[0] == '/') {
        add_scan(line, c);
    } else if (strcasecmp(line, "STATS") == 0) {
        request *q = add_request("", c);
        if (q)
            q->stats = 1; /* answered by the child, once it runs */
    } else if (strcasecmp(line, "PING") == 0) {
        answer(c, "pong", NULL, NULL);
    } else if (strcasecmp(line, "RESTART") == 0) {
        if (g_fd >= 0 && !g_restart_pending) {
            g_restart_pending = 1;
            snprintf(g_restart_reason, sizeof g_restart_reason, "requested by a client");
            send_line("Q\n"); /* graceful: the child finishes its requests, closes, exits */
        }
        answer(c, "restarting", NULL, NULL);
    } else if (strcasecmp(line, "SHUTDOWN") == 0) {
        g_shutdown = 1;
        answer(c, "shutting_down", NULL, NULL);
    } else {
        answer(c, "error", "message",
               "unknown request: use SCAN <path>, STATS, PING, RESTART or SHUTDOWN");
    }
}

/* Takes the complete lines of a client's buffer. */
static void client_lines(int c)
{
    client *cl = &g_clients[c];
    char *nl;
    while ((nl = (char *)memchr(cl->buf, '\n', cl->have)) != NULL) {
        size_t n = (size_t)(nl - cl->buf);
        *nl = '\0';
        if (cl->discarding)
            cl->discarding = 0; /* the end of an overlong line, already refused */
        else
            client_request(c, cl->buf, n);
        if (!g_client_used[c])
            return;
        memmove(cl->buf, nl + 1, cl->have - n - 1);
        cl->have -= n + 1;
    }
    if (cl->have == sizeof cl->buf) {
        if (!cl->discarding)
            refuse_overlong(c);
        cl->discarding = 1;
        cl->have = 0;
    }
}

static int read_client(int c)
{
    client *cl = &g_clients[c];
    ssize_t got = read(cl->fd_in, cl->buf + cl->have, sizeof cl->buf - cl->have);
    if (got < 0 && errno == EINTR)
        return 1;
    if (got <= 0) {
        /* The input ended inside a line: its writer may have died mid-path, so
           what came is not the request that was meant. */
        if (cl->have > 0 && !cl->discarding)
            answer(c, "error", "message", PARTIAL_REQUEST);
        cl->have = 0;
        return 0;
    }
    cl->have += (size_t)got;
    client_lines(c);
    return 1;
}

/* Where requests come from: a listening socket (--socket) or stdin. Returns
   0, or 2 when the socket cannot be made. */
static int open_requests(int *stdin_client)
{
    if (g_settings.socket_path) {
        char why[300];
        g_listen = listener_open(g_settings.socket_path, g_settings.socket_mode, why, sizeof why);
        if (g_listen < 0) {
            fprintf(stderr, "avhost serve: cannot listen on %s: %s\n", g_settings.socket_path,
                    why);
            return 2;
        }
    } else {
        *stdin_client = add_client(0, 1);
    }
    return 0;
}

enum { POLL_SIGNAL = -3, POLL_CHILD = -2, POLL_LISTENER = -1 }; /* in map[]; else a client */

/* The descriptors to wait on: the child, the listener and the clients (no new
   requests after SHUTDOWN). map[i] says what pfds[i] is. Returns how many. */
static int serve_poll_set(struct pollfd *pfds, int *map)
{
    int n = 0, i;
    if (g_fd >= 0) {
        pfds[n].fd = g_fd;
        pfds[n].events = POLLIN;
        map[n++] = POLL_CHILD;
    }
    if (g_listen >= 0 && !g_shutdown) {
        pfds[n].fd = g_listen;
        pfds[n].events = POLLIN;
        map[n++] = POLL_LISTENER;
    }
    for (i = 0; i < MAX_CLIENTS && !g_shutdown; i++)
        if (g_client_used[i]) {
            pfds[n].fd = g_clients[i].fd_in;
            pfds[n].events = POLLIN;
            map[n++] = i;
        }
    return n;
}

/* Acts on what poll found: the child's lines, a new connection, requests. */
static void serve_dispatch(const struct pollfd *pfds, const int *map, int n, int stdin_client)
{
    int i;
    for (i = 0; i < n; i++) {
        if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        if (map[i] == POLL_SIGNAL) {
            stop_on_signal();
        } else if (map[i] == POLL_CHILD) {
            if (!read_child()) {
                child_gone(!g_closing);
                if (g_fd < 0 && !g_closing)
                    g_fatal = 1; /* no child and no restart: nothing left to do */
            }
        } else if (map[i] == POLL_LISTENER) {
            int fd = accept4(g_listen, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0 && add_client(fd, fd) < 0)
                close(fd);
        } else if (!read_client(map[i])) {
            if (map[i] == stdin_client)
                g_shutdown = 1; /* end of stdin: like SHUTDOWN */
            drop_client(map[i]);
        }
    }
}

int run_serve(void)
{
    int stdin_client = -1;
    rec r;
    if (catch_stop_signals() != 0) {
        fprintf(stderr, "avhost serve: cannot catch SIGTERM and SIGINT: %s\n", strerror(errno));
        return 3;
    }
    if (open_requests(&stdin_client) != 0)
        return 2;
    if (spawn_child() != 0) {
        listener_close(g_listen);
        return 3;
    }
    rec_begin(&r, "serving");
    rec_int(&r, "pid", (long long)getpid());
    rec_int(&r, "child_pid", (long long)g_child);
    rec_str(&r, "socket", g_settings.socket_path);
    emit(&r, -1);
    for (;;) {
        struct pollfd pfds[MAX_CLIENTS + 3];
        int map[MAX_CLIENTS + 3];
        int n, ready;
        if (g_shutdown && count_pending() == 0 && !g_closing && g_fd >= 0 && g_ready) {
            g_closing = 1;
            send_line("Q\n");
        }
        if (g_fatal && g_fd < 0)
            break;
        pump(0);
        prune();
        if (g_fd < 0 && g_closing)
            break;
        n = serve_poll_set(pfds, map);
        if (n == 0)
            break;
        pfds[n].fd = g_signal_pipe[0]; /* only while there is something else to wait for */
        pfds[n].events = POLLIN;
        map[n++] = POLL_SIGNAL;
        ready = poll(pfds, (nfds_t)n, poll_timeout_ms());
        if (ready < 0 && errno != EINTR)
            break;
        if (ready > 0)
            serve_dispatch(pfds, map, n, stdin_client);
    }
    listener_close(g_listen);
    summary("serve");
    return exit_code();
}
