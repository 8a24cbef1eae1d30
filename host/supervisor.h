/*
 * The parent's shared machinery (supervisor.c), used by the three modes that
 * run requests through a plugin process: scan.c (info and scan), bench.c and
 * serve.c. All state lives in one `supervisor` the mode owns and passes in;
 * what differs between the modes is said by the mode, through `answer_sink`
 * (where answers go) and `batch_plan` (how a batch is fed and ended).
 */
#ifndef AVHOST_SUPERVISOR_H
#define AVHOST_SUPERVISOR_H

#include "avhost.h"

#include <sys/types.h>

#define VERDICT_SLOTS 10 /* 0..5, INVALID, CRASHED, NOT_SCANNED, HUNG */
#define SLOT_INVALID 6
#define SLOT_CRASHED 7
#define SLOT_NOT_SCANNED 8
#define SLOT_HUNG 9
#define MAX_FRAMES 32

enum { Q_WAITING,
       Q_SENT,
       Q_BEGUN,
       Q_DONE };

typedef struct frames_s {
    int count;
    frame *list; /* MAX_FRAMES of them once the first came */
} frames;

typedef struct request_s {
    long id;
    char *path;
    int client; /* -1: stdout */
    int stats;  /* a STATS request, not a scan */
    int state;
    double begun_at;     /* when the plugin started scanning it (Q_BEGUN) */
    int progress_shown;  /* "waiting" records given for it so far */
    int hung;            /* it overstayed its timeout: the child was killed for it */
    int short_timeout;   /* that timeout was --rehang-timeout (an earlier scan hung) */
    frames crash_frames; /* the plugin process's stack when it died scanning it */
    struct request_s *next;
} request;

typedef struct supervisor_s supervisor;

/* Where a mode's answers go. Records that are not answers (restart, crash,
   error, summary) always go to stdout. */
typedef struct answer_sink_s {
    /* A scan record for request q carrying nviol violations (0: a clean answer). */
    void (*scan)(supervisor *s, const request *q, const char *line, int nviol);
    /* Any other answer for a client (stats, pong, errors); client -1 is stdout. */
    void (*reply)(supervisor *s, int client, const char *line);
    /* Request q is answered (NULL: nothing to do). */
    void (*done)(supervisor *s, const request *q);
    void *mode_state;
} answer_sink;

/* The plugin process (avserver) and what it said. */
typedef struct child_link_s {
    pid_t pid;
    int fd;
    /* Records from the child have no fixed size (a long path, a large --vi-size):
       the buffer grows, so no line is ever dropped. */
    char *rbuf;
    size_t rhave, rcap;
    int ready;     /* "I": requests may be sent */
    int done_seen; /* "D": closed and unloaded, in exit() */
    double done_at;
    int kill_sent;
    int exit_hung;       /* exit() overstayed --close-timeout: killed */
    char step[64];       /* the ABI call it is in ("P") */
    frames loose_frames; /* a crash outside any scan */
} child_link;

typedef struct request_queue_s {
    request *head, *tail;
    long next_id;
    int in_flight;
} request_queue;

typedef struct tally_s {
    int restarts, violations;
    long verdicts[VERDICT_SLOTS];
    long peak_rss, child_fds, completed;
} tally;

struct supervisor_s {
    const host_settings *settings;
    answer_sink sink;
    request_queue queue;
    child_link child;
    tally tally;
    int fatal;           /* nothing more can be done: no child, no restart */
    int closing;         /* "Q" sent: the child closes and leaves */
    int restart_pending; /* a fresh child is due once this one is gone */
    char restart_reason[600];
    int after_hang; /* a scan hung and none completed since: the short timeout */
};

/* How run_batch feeds and ends a batch of requests. */
typedef struct batch_plan_s {
    int window; /* requests in flight at most (0: no limit) */
    /* Called before each wait: adds requests (NULL: the queue is all there is). */
    void (*refill)(supervisor *s);
    /* Every request answered: what next (NULL: close the child). */
    void (*all_answered)(supervisor *s);
} batch_plan;

void sup_init(supervisor *s, const host_settings *settings, const answer_sink *sink);
double now_s(void);
const char *signal_name(int sig);

/* Writes a record to stdout (client -1) or through the sink, and frees it. */
void sup_emit(supervisor *s, rec *r, int client);
request *sup_add_request(supervisor *s, const char *path, int client);
/* A scan request; a path the plugin cannot be handed intact is answered NOT_SCANNED. */
request *sup_add_scan(supervisor *s, const char *path, int client);
int sup_count(const supervisor *s, int state); /* requests in that state */
int sup_count_pending(const supervisor *s);    /* requests not answered yet */

int sup_spawn_child(supervisor *s);
void sup_send_line(supervisor *s, const char *line);
/* "Q": the child finishes its requests, closes the plugin and leaves. */
void sup_close_child(supervisor *s);
/* Sends waiting requests, at most `window` in flight (0: no limit); drops answered ones. */
void sup_pump(supervisor *s, int window);
/* Reads what the child sent. Returns 0 when the channel closed. */
int sup_read_child(supervisor *s);
/* The child's channel closed: reap it and decide what happens next. Returns
   1 when a fresh child was started. */
int sup_child_gone(supervisor *s, int want_restart);
/* How long poll may wait (-1: forever); kills a child that overstays a timeout
   and gives the progress of long scans on stderr. */
int sup_poll_timeout_ms(supervisor *s);
/* Runs until every request is done (or the child cannot go on), then closes the child. */
void sup_run_batch(supervisor *s, const batch_plan *plan);
/* Every request still open is answered NOT_SCANNED, so no file goes missing. */
void sup_report_unscanned(supervisor *s);

void sup_summary(supervisor *s, const char *mode);
int sup_exit_code(const supervisor *s);

#endif /* AVHOST_SUPERVISOR_H */
