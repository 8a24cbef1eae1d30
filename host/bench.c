/*
 * avhost bench: keeps the plugin process fed with the files, round robin,
 * for --count requests or --seconds, and reports the throughput. Scan records
 * are not printed, except those with a violation.
 */
#include "supervisor.h"

#include <string.h>
#include <sys/stat.h>

typedef struct bench_state_s {
    char **files;
    int nfiles, next;
    long sent;
    double start;
    long bytes_done;
} bench_state;

/* Only answers with a violation are shown: a benchmark's report is its figures. */
static void bench_answer(supervisor *s, const request *q, const char *line, int nviol)
{
    (void)s;
    (void)q;
    if (nviol > 0) {
        write_all(1, line, strlen(line));
        write_all(1, "\n", 1);
    }
}

static void bench_reply(supervisor *s, int client, const char *line)
{
    (void)client;
    bench_answer(s, NULL, line, 1);
}

static void bench_count_bytes(supervisor *s, const request *q)
{
    bench_state *b = (bench_state *)s->sink.mode_state;
    struct stat st;
    if (stat(q->path, &st) == 0)
        b->bytes_done += (long)st.st_size;
}

/* Keeps `threads` requests waiting until the count or the time is reached. */
static void bench_refill(supervisor *s)
{
    bench_state *b = (bench_state *)s->sink.mode_state;
    const host_settings *set = s->settings;
    int waiting = sup_count(s, Q_WAITING);
    while (waiting < set->threads) {
        if (set->count > 0 && b->sent >= set->count)
            break;
        if (set->count <= 0 && now_s() - b->start >= set->seconds)
            break;
        sup_add_scan(s, b->files[b->next], -1);
        b->next = (b->next + 1) % b->nfiles;
        b->sent++;
        waiting++;
    }
}

static void bench_record(supervisor *s, const bench_state *b, double seconds)
{
    rec r;
    if (seconds <= 0)
        seconds = 1e-9;
    rec_begin(&r, "bench");
    rec_int(&r, "threads", s->settings->threads);
    rec_int(&r, "files", s->tally.completed);
    rec_int(&r, "bytes", b->bytes_done);
    rec_num(&r, "seconds", seconds);
    rec_num(&r, "files_per_s", (double)s->tally.completed / seconds);
    rec_num(&r, "bytes_per_s", (double)b->bytes_done / seconds);
    rec_int(&r, "peak_rss_kb", s->tally.peak_rss);
    rec_int(&r, "open_fds", s->tally.child_fds);
    rec_int(&r, "restarts", s->tally.restarts);
    sup_emit(s, &r, -1);
}

int run_bench(char **files, int nfiles)
{
    bench_state b;
    answer_sink sink;
    batch_plan plan;
    supervisor s;
    memset(&b, 0, sizeof b);
    b.files = files;
    b.nfiles = nfiles;
    memset(&sink, 0, sizeof sink);
    sink.scan = bench_answer;
    sink.reply = bench_reply;
    sink.done = bench_count_bytes;
    sink.mode_state = &b;
    sup_init(&s, &g_settings, &sink);
    if (sup_spawn_child(&s) != 0)
        return 3;
    /* Loading and plugin_init are not part of the measurement. */
    while (!s.child.ready && !s.fatal && s.child.fd >= 0) {
        if (!sup_read_child(&s))
            sup_child_gone(&s, 0);
    }
    b.start = now_s();
    /* Two requests per worker in flight, as a busy product keeps avserver fed:
       a worker finds its next file queued instead of waiting for a round trip
       to this process, so the figure is the plugin's, not the pipe's. */
    plan.window = 2 * g_settings.threads;
    plan.refill = bench_refill;
    plan.all_answered = NULL;
    sup_run_batch(&s, &plan);
    bench_record(&s, &b, now_s() - b.start);
    sup_summary(&s, "bench");
    return sup_exit_code(&s);
}
