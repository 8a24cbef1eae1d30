/*
 * avhost info and avhost scan: one batch of requests through the plugin
 * process, one verdict per file, then a summary. With --reloads, the child
 * unloads and loads the plugin again between rounds and the files are sent again.
 */
#include "supervisor.h"

#include <string.h>
#include <unistd.h>

typedef struct scan_state_s {
    char **files;
    int nfiles;
    int round; /* --reloads: the load..unload round the child is in */
} scan_state;

/* Every answer goes to stdout. */
static void scan_answer(supervisor *s, const request *q, const char *line, int nviol)
{
    (void)s;
    (void)q;
    (void)nviol;
    write_all(1, line, strlen(line));
    write_all(1, "\n", 1);
}

static void scan_reply(supervisor *s, int client, const char *line)
{
    (void)client;
    scan_answer(s, NULL, line, 0);
}

static void add_round_requests(supervisor *s)
{
    scan_state *st = (scan_state *)s->sink.mode_state;
    int i, k;
    for (k = 0; k < s->settings->repeat; k++)
        for (i = 0; i < st->nfiles; i++)
            sup_add_scan(s, st->files[i], -1);
}

/* Every request answered: with --reloads rounds left, the child unloads the
   plugin and loads it again (as a plugin switch does) and the files are sent
   again; otherwise it closes, unloads and leaves. */
static void next_round_or_close(supervisor *s)
{
    scan_state *st = (scan_state *)s->sink.mode_state;
    if (st->files != NULL && st->round < s->settings->reloads) {
        st->round++;
        s->child.ready = 0;
        sup_send_line(s, "U\n");
        add_round_requests(s);
        return;
    }
    sup_close_child(s);
}

static int run_batch_mode(const char *mode, char **files, int nfiles, int window)
{
    scan_state st;
    answer_sink sink;
    batch_plan plan;
    supervisor s;
    st.files = files;
    st.nfiles = nfiles;
    st.round = 1;
    memset(&sink, 0, sizeof sink);
    sink.scan = scan_answer;
    sink.reply = scan_reply;
    sink.mode_state = &st;
    sup_init(&s, &g_settings, &sink);
    if (files != NULL)
        add_round_requests(&s);
    if (sup_spawn_child(&s) != 0)
        return 3;
    plan.window = window;
    plan.refill = NULL;
    plan.all_answered = next_round_or_close;
    sup_run_batch(&s, &plan);
    sup_summary(&s, mode);
    return sup_exit_code(&s);
}

int run_info(void)
{
    return run_batch_mode("info", NULL, 0, 0);
}

int run_scan(char **files, int nfiles)
{
    return run_batch_mode("scan", files, nfiles, g_settings.threads);
}
