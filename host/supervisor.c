/*
 * The product's side: the parent process. It never loads the plugin. It starts
 * the child (the avserver with the plugin), sends it requests, routes the
 * answers, and when the child dies (a crash) or the plugin returns AVCHK_ERROR
 * it starts a fresh child and reports the restart, as the products do.
 *
 * This file holds what every mode shares (supervisor.h); the modes are in
 * scan.c (info, scan), bench.c and serve.c.
 *
 * Child -> parent lines:
 *   "P <step>"                   the ABI call the child is about to make
 *   "E <nviol> <record>"         an event record for stdout
 *   "I"                          initialised: requests may be sent
 *   "F"                          the plugin cannot be loaded or initialised
 *   "B <id>"                     the plugin starts scanning request id
 *   "R <id> <code> <nviol> <record>"  the result of request id
 *   "A <id> <record>"            the answer to a stats request
 *   "K <id> <offset> <build_id> <object>"  a stack frame of the plugin process as it
 *                                dies of a signal (id 0: in no scan; build_id "-": unknown)
 *   "M <peak_rss_kb> <fds>"      the child's peak RSS and open descriptors at the end
 *   "X <message>"                the child met a host error (not the plugin's)
 *   "D"                          the child closed and unloaded the plugin and calls exit()
 */
/* poll's fortified wrapper (__poll_chk) needs glibc 2.16; the release build targets
   2.12, and every poll here passes an array with its exact size. */
#undef _FORTIFY_SOURCE

#include "supervisor.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_EVERY_S 5 /* a scan waited on longer than this is reported that often */

static const char *const slot_names[VERDICT_SLOTS] = {
    "FAILED", "OK", "VIRUS_FOUND", "VIRUS_CURED", "IMPOSSIBLE", "ERROR", "INVALID", "CRASHED",
    "NOT_SCANNED", "HUNG"};

void sup_init(supervisor *s, const host_settings *settings, const answer_sink *sink)
{
    memset(s, 0, sizeof *s);
    s->settings = settings;
    s->sink = *sink;
    s->queue.next_id = 1;
    s->child.pid = -1;
    s->child.fd = -1;
    snprintf(s->child.step, sizeof s->child.step, "start");
    s->tally.peak_rss = -1;
    s->tally.child_fds = -1;
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void out_line(int fd, const char *line)
{
    write_all(fd, line, strlen(line));
    write_all(fd, "\n", 1);
}

void sup_emit(supervisor *s, rec *r, int client)
{
    if (client == -1)
        out_line(1, rec_end(r));
    else
        s->sink.reply(s, client, rec_end(r));
    rec_free(r);
}

/* ---------- requests ---------- */

static request *find_request(const supervisor *s, long id)
{
    request *q;
    for (q = s->queue.head; q; q = q->next)
        if (q->id == id)
            return q;
    return NULL;
}

request *sup_add_request(supervisor *s, const char *path, int client)
{
    request *q = (request *)calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->id = s->queue.next_id++;
    q->path = strdup(path);
    q->client = client;
    if (s->queue.tail)
        s->queue.tail->next = q;
    else
        s->queue.head = q;
    s->queue.tail = q;
    return q;
}

/* Drops finished requests from the front of the list. */
static void prune(supervisor *s)
{
    while (s->queue.head && s->queue.head->state == Q_DONE) {
        request *q = s->queue.head;
        s->queue.head = q->next;
        if (s->queue.head == NULL)
            s->queue.tail = NULL;
        free(q->crash_frames.list);
        free(q->path);
        free(q);
    }
}

int sup_count(const supervisor *s, int state)
{
    int n = 0;
    const request *q;
    for (q = s->queue.head; q; q = q->next)
        if (q->state == state)
            n++;
    return n;
}

int sup_count_pending(const supervisor *s)
{
    int pending = 0;
    const request *q;
    for (q = s->queue.head; q; q = q->next)
        if (q->state != Q_DONE)
            pending++;
    return pending;
}

static void finish(supervisor *s, request *q, int slot)
{
    if (q->state == Q_DONE)
        return;
    q->state = Q_DONE;
    s->queue.in_flight--;
    s->tally.completed++;
    if (slot >= 0 && slot < VERDICT_SLOTS)
        s->tally.verdicts[slot]++;
    if (s->sink.done)
        s->sink.done(s, q);
}

/* Answers a request the plugin gave no code for (refused, crashed, hung, never
   scanned): a scan record with code -1, its violations counted, the request done. */
static void answer_without_code(supervisor *s, request *q, const char *file,
                                const char *verdict, int slot, const char *vir_info,
                                const violations *v)
{
    rec r;
    rec_begin(&r, "scan");
    rec_int(&r, "id", q->id);
    rec_bytes(&r, "file", file, strlen(file) > 8192 ? 8192 : strlen(file));
    rec_int(&r, "code", -1);
    rec_str(&r, "verdict", verdict);
    rec_str(&r, "vir_info", vir_info);
    if (q->short_timeout)
        rec_bool(&r, "short_timeout", 1);
    if (v != NULL) {
        rec_violations(&r, v);
        s->tally.violations += v->count;
    }
    if (q->crash_frames.count > 0)
        rec_frames(&r, q->crash_frames.list, q->crash_frames.count);
    s->sink.scan(s, q, rec_end(&r), v != NULL ? v->count : 0);
    rec_free(&r);
    if (q->state == Q_WAITING) {
        q->state = Q_SENT;
        s->queue.in_flight++;
    }
    finish(s, q, slot);
}

request *sup_add_scan(supervisor *s, const char *path, int client)
{
    const char *why = NULL;
    request *q;
    if (strlen(path) > AVHOST_MAX_REQUEST)
        why = "avhost: path longer than " AVHOST_MAX_REQUEST_TEXT " bytes, not scanned";
    else if (strchr(path, '\n') != NULL)
        why = "avhost: path contains a newline, not scanned";
    q = sup_add_request(s, why ? "" : path, client);
    if (q == NULL || why == NULL)
        return q;
    answer_without_code(s, q, path, "NOT_SCANNED", SLOT_NOT_SCANNED, why, NULL);
    return q;
}

void sup_report_unscanned(supervisor *s)
{
    request *q;
    for (q = s->queue.head; q; q = q->next)
        if (q->state != Q_DONE)
            answer_without_code(s, q, q->path, "NOT_SCANNED", SLOT_NOT_SCANNED,
                                "the plugin could not be loaded or initialised", NULL);
    prune(s);
}

/* ---------- the child ---------- */

int sup_spawn_child(supervisor *s)
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
    s->child.pid = pid;
    s->child.fd = sv[0];
    s->child.rhave = 0;
    s->child.ready = s->child.done_seen = s->child.kill_sent = s->child.exit_hung = 0;
    snprintf(s->child.step, sizeof s->child.step, "start");
    return 0;
}

void sup_send_line(supervisor *s, const char *line)
{
    if (s->child.fd >= 0)
        write_all(s->child.fd, line, strlen(line));
}

void sup_close_child(supervisor *s)
{
    s->closing = 1;
    sup_send_line(s, "Q\n");
}

void sup_pump(supervisor *s, int window)
{
    request *q;
    char line[8300];
    if (s->child.ready && s->child.fd >= 0 && !s->restart_pending && !s->closing) {
        for (q = s->queue.head; q; q = q->next) {
            if (q->state != Q_WAITING)
                continue;
            if (window > 0 && s->queue.in_flight >= window)
                break;
            if (q->stats)
                snprintf(line, sizeof line, "T %ld\n", q->id);
            else
                snprintf(line, sizeof line, "S %ld %s\n", q->id, q->path);
            sup_send_line(s, line);
            q->state = Q_SENT;
            s->queue.in_flight++;
        }
    }
    prune(s);
}

static void kill_child(supervisor *s)
{
    if (s->child.pid > 0 && !s->child.kill_sent) {
        kill(s->child.pid, SIGKILL);
        s->child.kill_sent = 1;
    }
}

static void restart_event(supervisor *s, const char *reason, pid_t old)
{
    rec r;
    rec_begin(&r, "restart");
    rec_str(&r, "reason", reason);
    rec_int(&r, "old_pid", (long long)old);
    rec_int(&r, "pid", (long long)s->child.pid);
    rec_int(&r, "restarts", s->tally.restarts);
    sup_emit(s, &r, -1);
}

/* "E <nviol> <record>": an event record for stdout. */
static void on_event(supervisor *s, char *line)
{
    char *rest;
    s->tally.violations += (int)strtol(line + 2, &rest, 10);
    if (*rest == ' ')
        rest++;
    out_line(1, rest);
}

/* "B <id>": the plugin starts scanning request id. */
static void on_begun(supervisor *s, const char *line)
{
    request *q = find_request(s, strtol(line + 2, NULL, 10));
    if (q && q->state == Q_SENT) {
        q->state = Q_BEGUN;
        q->begun_at = now_s();
        q->progress_shown = 0;
    }
}

/* "R <id> <code> <nviol> <record>": the result of request id. */
static void on_result(supervisor *s, char *line)
{
    char *rest;
    long id = strtol(line + 2, &rest, 10);
    int code = (int)strtol(rest, &rest, 10);
    int n = (int)strtol(rest, &rest, 10);
    request *q;
    if (*rest == ' ')
        rest++;
    q = find_request(s, id);
    if (q == NULL || q->state == Q_DONE)
        return;
    s->tally.violations += n;
    s->after_hang = 0; /* the plugin scans again: the next scan gets the full timeout */
    s->sink.scan(s, q, rest, n);
    finish(s, q, code < 0 ? SLOT_NOT_SCANNED : code > 5 ? SLOT_INVALID
                                                        : code);
    if (code == AVCHK_ERROR && !s->restart_pending) {
        /* As the products do: kill avserver and start it again. */
        s->restart_pending = 1;
        snprintf(s->restart_reason, sizeof s->restart_reason,
                 "plugin returned AVCHK_ERROR for %.500s", q->path);
        kill_child(s);
    }
}

/* "A <id> <record>": the answer to a stats request. */
static void on_answer(supervisor *s, char *line)
{
    char *rest;
    long id = strtol(line + 2, &rest, 10);
    request *q = find_request(s, id);
    if (*rest == ' ')
        rest++;
    if (q && q->state != Q_DONE) {
        s->sink.reply(s, q->client, rest);
        q->state = Q_DONE;
        s->queue.in_flight--;
    }
}

/* "K <id> <offset> <build_id> <object>": one frame of the dying child's stack. */
static void on_frame(supervisor *s, const char *line)
{
    char *rest;
    long id = strtol(line + 2, &rest, 10);
    request *q = id > 0 ? find_request(s, id) : NULL;
    frames *f = q != NULL ? &q->crash_frames : &s->child.loose_frames;
    char offset[24], build_id[72];
    int used = 0;
    frame *fr;
    if (sscanf(rest, " %23s %71s %n", offset, build_id, &used) < 2 || used == 0)
        return;
    if (f->list == NULL && (f->list = (frame *)calloc(MAX_FRAMES, sizeof *f->list)) == NULL)
        return;
    if (f->count >= MAX_FRAMES)
        return;
    fr = &f->list[f->count++];
    snprintf(fr->offset, sizeof fr->offset, "%s", offset);
    snprintf(fr->build_id, sizeof fr->build_id, "%s", strcmp(build_id, "-") ? build_id : "");
    snprintf(fr->object, sizeof fr->object, "%s", rest + used);
}

/* "M <peak_rss_kb> <fds>": the child's figures at the end. */
static void on_memory(supervisor *s, const char *line)
{
    long rss = -1, fds = -1;
    if (sscanf(line + 2, "%ld %ld", &rss, &fds) == 2) {
        if (rss > s->tally.peak_rss)
            s->tally.peak_rss = rss;
        s->tally.child_fds = fds;
    }
}

/* "X <message>": a host error in the child. */
static void on_host_error(supervisor *s, const char *line)
{
    rec r;
    rec_begin(&r, "error");
    rec_str(&r, "message", line + 2);
    sup_emit(s, &r, -1);
    s->fatal = 1;
}

/* One line from the child (the formats are listed at the top). */
static void handle_line(supervisor *s, char *line)
{
    switch (line[0]) {
    case 'P':
        snprintf(s->child.step, sizeof s->child.step, "%.63s", line + 2);
        break;
    case 'E':
        on_event(s, line);
        break;
    case 'I':
        s->child.ready = 1;
        break;
    case 'F':
        s->fatal = 1;
        break;
    case 'B':
        on_begun(s, line);
        break;
    case 'R':
        on_result(s, line);
        break;
    case 'A':
        on_answer(s, line);
        break;
    case 'K':
        on_frame(s, line);
        break;
    case 'M':
        on_memory(s, line);
        break;
    case 'D':
        s->child.done_seen = 1;
        s->child.done_at = now_s();
        break;
    case 'X':
        on_host_error(s, line);
        break;
    default:
        break;
    }
}

int sup_read_child(supervisor *s)
{
    child_link *c = &s->child;
    ssize_t got;
    char *nl;
    if (c->rcap - c->rhave < 4096) {
        size_t cap = c->rcap ? 2 * c->rcap : 65536;
        char *grown = (char *)realloc(c->rbuf, cap);
        if (grown == NULL) {
            fprintf(stderr, "avhost: out of memory reading the plugin process's records\n");
            exit(3);
        }
        c->rbuf = grown;
        c->rcap = cap;
    }
    got = read(c->fd, c->rbuf + c->rhave, c->rcap - 1 - c->rhave);
    if (got < 0 && errno == EINTR)
        return 1;
    if (got <= 0)
        return 0;
    c->rhave += (size_t)got;
    while ((nl = (char *)memchr(c->rbuf, '\n', c->rhave)) != NULL) {
        size_t n = (size_t)(nl - c->rbuf);
        *nl = '\0';
        handle_line(s, c->rbuf);
        memmove(c->rbuf, nl + 1, c->rhave - n - 1);
        c->rhave -= n + 1;
    }
    return 1;
}

const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGABRT:
        return "SIGABRT";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGKILL:
        return "SIGKILL";
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGPIPE:
        return "SIGPIPE";
    case SIGTRAP:
        return "SIGTRAP";
    case SIGSYS:
        return "SIGSYS";
    default:
        return "signal";
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

static void crash_record(supervisor *s, pid_t pid, const char *phase, const violations *v)
{
    rec r;
    rec_begin(&r, "crash");
    rec_int(&r, "pid", (long long)pid);
    rec_str(&r, "phase", phase);
    rec_violations(&r, v);
    if (s->child.loose_frames.count > 0)
        rec_frames(&r, s->child.loose_frames.list, s->child.loose_frames.count);
    sup_emit(s, &r, -1);
    s->tally.violations++;
}

/* The child said "D" (plugin closed and unloaded) and called exit(): it must
   end with status 0. Anything else happened in the plugin's exit handlers or
   destructors, after dlclose: the product would crash the same way. */
static void check_exit(supervisor *s, pid_t pid, int status, const char *how)
{
    violations v;
    v.count = 0;
    if (s->child.exit_hung)
        viol_add(&v, "the plugin process did not finish exit() within %d s after plugin_close "
                     "and dlclose (killed): an exit handler or destructor of the plugin hangs",
                 s->settings->close_timeout_s);
    else if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        viol_add(&v, "the plugin process %s in exit(), after plugin_close and dlclose: a handler "
                     "the plugin left registered (a static destructor, an atexit function, a "
                     "thread) ran after its code was unloaded",
                 how);
    if (v.count)
        crash_record(s, pid, "exit", &v);
}

/* The full --scan-timeout, or the short --rehang-timeout after a hang with
   no completed scan since (0: no limit). */
static double current_scan_timeout(const supervisor *s, int *is_short)
{
    double full = s->settings->scan_timeout_s, rehang = s->settings->rehang_timeout_s;
    *is_short = full > 0 && s->after_hang && rehang > 0 && rehang < full;
    return *is_short ? rehang : full;
}

/* The requests the child was killed for: plugin_thread_test_file never returned. */
static void report_hung(supervisor *s)
{
    request *q;
    for (q = s->queue.head; q; q = q->next)
        if (q->hung && q->state != Q_DONE) {
            violations v;
            v.count = 0;
            if (q->short_timeout)
                viol_add(&v, "plugin_thread_test_file did not return within %g s "
                             "(--rehang-timeout: an earlier scan hung and none completed since) "
                             "for %s; the plugin process was killed, as the product would",
                         s->settings->rehang_timeout_s, q->path);
            else
                viol_add(&v, "plugin_thread_test_file did not return within %g s "
                             "(--scan-timeout) for %s; the plugin process was killed, as the "
                             "product would",
                         s->settings->scan_timeout_s, q->path);
            answer_without_code(s, q, q->path, "HUNG", SLOT_HUNG, NULL, &v);
            s->after_hang = 1;
        }
}

/* The child crashed: the requests it was scanning get a CRASHED verdict; when
   it was scanning none, a crash record names the step it was in. */
static void blame_crash(supervisor *s, pid_t old, const char *how)
{
    int blamed = 0;
    request *q;
    for (q = s->queue.head; q; q = q->next)
        if (q->state == Q_BEGUN) {
            violations v;
            v.count = 0;
            viol_add(&v, "plugin %s while scanning %s", how, q->path);
            answer_without_code(s, q, q->path, "CRASHED", SLOT_CRASHED, NULL, &v);
            blamed++;
        }
    if (!blamed) {
        violations v;
        v.count = 0;
        viol_add(&v, "plugin %s during %s", how, s->child.step);
        crash_record(s, old, s->child.step, &v);
    }
}

/* Requests the dead child had not finished go to the next one. */
static void requeue_unfinished(supervisor *s)
{
    request *q;
    for (q = s->queue.head; q; q = q->next)
        if (q->state == Q_SENT || q->state == Q_BEGUN) {
            q->state = Q_WAITING;
            s->queue.in_flight--;
            q->crash_frames.count = 0;
        }
}

/* A fresh child in place of `old`, unless --max-restarts is reached. Returns
   1 when it was started. */
static int restart_child(supervisor *s, pid_t old)
{
    if (s->tally.restarts >= s->settings->max_restarts) {
        rec r;
        rec_begin(&r, "error");
        rec_str(&r, "message", "restart limit reached (--max-restarts); giving up");
        sup_emit(s, &r, -1);
        s->fatal = 1;
        return 0;
    }
    s->tally.restarts++;
    if (sup_spawn_child(s) != 0) {
        s->fatal = 1;
        return 0;
    }
    restart_event(s, s->restart_reason, old);
    return 1;
}

int sup_child_gone(supervisor *s, int want_restart)
{
    int status = 0;
    pid_t old = s->child.pid;
    char how[120];
    close(s->child.fd);
    s->child.fd = -1;
    while (waitpid(s->child.pid, &status, 0) < 0 && errno == EINTR)
        ;
    s->child.pid = -1;
    describe_status(status, how, sizeof how);
    if (s->child.done_seen && !s->child.kill_sent)
        check_exit(s, old, status, how);
    report_hung(s);
    if (!s->child.done_seen && !s->child.kill_sent && !s->fatal) {
        blame_crash(s, old, how);
        if (!s->child.ready) {
            s->fatal = 1; /* crashed while loading: a fresh child would crash the same way */
            return 0;
        }
        snprintf(s->restart_reason, sizeof s->restart_reason, "plugin %s", how);
        s->restart_pending = 1;
    }
    s->child.loose_frames.count = 0;
    requeue_unfinished(s);
    if (s->fatal || !s->restart_pending || !want_restart)
        return 0;
    s->restart_pending = 0;
    return restart_child(s, old);
}

/* Milliseconds until the oldest scan in the plugin overstays its timeout (-1:
   no limit or no scan). At the limit, the child is killed for it. */
static int scan_deadline_ms(supervisor *s)
{
    request *q, *oldest = NULL;
    double left, timeout;
    int is_short;
    timeout = current_scan_timeout(s, &is_short);
    if (timeout <= 0 || s->child.pid <= 0 || s->child.kill_sent)
        return -1;
    for (q = s->queue.head; q; q = q->next)
        if (q->state == Q_BEGUN && (oldest == NULL || q->begun_at < oldest->begun_at))
            oldest = q;
    if (oldest == NULL)
        return -1;
    left = oldest->begun_at + timeout - now_s();
    if (left > 0)
        return (int)(left * 1000) + 1;
    oldest->hung = 1;
    oldest->short_timeout = is_short;
    snprintf(s->restart_reason, sizeof s->restart_reason,
             "plugin_thread_test_file hung on %.500s", oldest->path);
    s->restart_pending = 1;
    kill_child(s);
    return -1;
}

/* "Still scanning": on stderr, so neither a report on stdout nor serve's
   answers carry it. */
static void show_waiting(const supervisor *s, const request *q, int seconds)
{
    int is_short;
    double timeout = current_scan_timeout(s, &is_short);
    char line[600];
    rec r;
    if (s->settings->pretty) {
        if (timeout > 0)
            snprintf(line, sizeof line, "still scanning %.500s: %d s of %g s", q->path, seconds,
                     timeout);
        else
            snprintf(line, sizeof line, "still scanning %.500s: %d s (no --scan-timeout)",
                     q->path, seconds);
        out_line(2, line);
        return;
    }
    rec_begin(&r, "waiting");
    rec_int(&r, "id", q->id);
    rec_str(&r, "path", q->path);
    rec_int(&r, "seconds", seconds);
    if (timeout > 0)
        rec_num(&r, "timeout", timeout);
    else
        rec_str(&r, "timeout", NULL);
    out_line(2, rec_end(&r));
    rec_free(&r);
}

/* Milliseconds until the next progress line of a long scan (-1: none due). */
static int progress_ms(supervisor *s)
{
    request *q;
    double now = now_s();
    int wait = -1;
    if (s->child.kill_sent)
        return -1;
    for (q = s->queue.head; q; q = q->next) {
        double elapsed, due;
        int ms;
        if (q->state != Q_BEGUN || q->hung)
            continue;
        elapsed = now - q->begun_at;
        due = (double)(q->progress_shown + 1) * PROGRESS_EVERY_S;
        if (elapsed >= due) {
            q->progress_shown = (int)(elapsed / PROGRESS_EVERY_S);
            show_waiting(s, q, q->progress_shown * PROGRESS_EVERY_S);
            due = (double)(q->progress_shown + 1) * PROGRESS_EVERY_S;
        }
        ms = (int)((due - elapsed) * 1000) + 1;
        if (wait < 0 || ms < wait)
            wait = ms;
    }
    return wait;
}

static int sooner(int a, int b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

int sup_poll_timeout_ms(supervisor *s)
{
    double left;
    int scan = scan_deadline_ms(s);
    scan = sooner(scan, progress_ms(s));
    if (!s->child.done_seen || s->child.pid <= 0 || s->child.kill_sent || s->child.exit_hung)
        return scan;
    left = s->child.done_at + s->settings->close_timeout_s - now_s();
    if (left <= 0) {
        s->child.exit_hung = 1;
        kill(s->child.pid, SIGKILL);
        return -1;
    }
    return sooner(scan, (int)(left * 1000) + 1);
}

void sup_run_batch(supervisor *s, const batch_plan *plan)
{
    for (;;) {
        struct pollfd pfd;
        int n;
        if (plan->refill)
            plan->refill(s);
        if (s->fatal && s->child.fd < 0)
            break;
        if (sup_count_pending(s) == 0 && s->child.ready && !s->closing && s->child.fd >= 0 &&
            !s->restart_pending) {
            if (plan->all_answered)
                plan->all_answered(s);
            else
                sup_close_child(s);
        }
        sup_pump(s, plan->window);
        if (s->child.fd < 0)
            break;
        pfd.fd = s->child.fd;
        pfd.events = POLLIN;
        n = poll(&pfd, 1, sup_poll_timeout_ms(s));
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        if (!sup_read_child(s)) {
            if (!sup_child_gone(s, s->restart_pending || !s->closing))
                if (s->closing || s->fatal || s->child.fd < 0)
                    break;
        }
    }
    sup_report_unscanned(s);
}

int sup_exit_code(const supervisor *s)
{
    return s->tally.violations ? 1 : s->fatal ? 3
                                              : 0;
}

void sup_summary(supervisor *s, const char *mode)
{
    rec r;
    int i;
    rec_begin(&r, "summary");
    rec_str(&r, "mode", mode);
    rec_int(&r, "files", s->tally.completed);
    for (i = 0; i < VERDICT_SLOTS; i++)
        rec_int(&r, slot_names[i], s->tally.verdicts[i]);
    rec_int(&r, "restarts", s->tally.restarts);
    rec_int(&r, "violation_count", s->tally.violations);
    rec_int(&r, "peak_rss_kb", s->tally.peak_rss);
    rec_int(&r, "exit", sup_exit_code(s));
    sup_emit(s, &r, -1);
}
