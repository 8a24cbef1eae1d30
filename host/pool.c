/*
 * The worker pool, as the products' avserver runs it: a request goes to a free
 * worker; only when every worker is busy (and the cap allows) is a new thread
 * started, and it calls plugin_thread_init for its own context; a worker idle
 * longer than --idle-timeout calls plugin_thread_close and ends.
 *
 * Each scan is checked: the return code, vir_info's termination within vi_size
 * (canary-filled guard bytes after the buffer), its ASCII content, and that no
 * context is in use by two workers at once.
 */
#include "avhost.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct worker_s {
    int id;
    void *context;
    int busy;
    int probed; /* the exec probe ran with this context open */
    struct worker_s *next;
} worker;

/* Workers that have returned, to be joined: after pool_drain_and_stop no
   thread of the pool is left, so the unload check counts only the plugin's. */
typedef struct ended_s {
    pthread_t thread;
    struct ended_s *next;
} ended;

static plugin *g_plugin;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_work = PTHREAD_COND_INITIALIZER;  /* a job was queued, or stop */
static pthread_cond_t g_state = PTHREAD_COND_INITIALIZER; /* a job ended, a worker came or went */
static job *g_head, *g_tail;
static worker *g_workers;
static int g_queued, g_idle, g_live, g_threads, g_stopping, g_spawning;
/* Workers whose answer is on its way but who have not yet come back for the
   next job: the product counts them as free, so a request arriving in that
   instant reuses one instead of starting a new worker. */
static int g_finishing;
static int g_next_worker = 1, g_started, g_closed_idle, g_peak;
static long g_in_flight, g_done;
static ended *g_ended;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* realname as --realname says: the base name (as the products pass it), "" or NULL. */
static const char *realname_of(const char *path)
{
    if (g_settings.realname == REALNAME_NULL)
        return NULL;
    if (g_settings.realname == REALNAME_EMPTY)
        return "";
    return base_name(path);
}

/* The name of a return code of plugin_thread_test_file, for the scan record. */
static const char *verdict_name(int code)
{
    static const char *const names[] = {"FAILED", "OK", "VIRUS_FOUND",
                                        "VIRUS_CURED", "IMPOSSIBLE", "ERROR"};
    return code >= 0 && code <= 5 ? names[code] : "INVALID";
}

/* Caller holds g_lock and has seen g_head set. */
static job *take_job_locked(void)
{
    job *j = g_head;
    g_head = j->next;
    if (g_head == NULL)
        g_tail = NULL;
    g_queued--;
    return j;
}

static void free_job(job *j)
{
    free(j->path);
    free(j);
}

/* This worker's answer is on its way (see g_finishing). */
static void note_finishing(void)
{
    pthread_mutex_lock(&g_lock);
    g_finishing++;
    pthread_mutex_unlock(&g_lock);
}

/* Answers a job the plugin never saw (no context could be made). */
static void answer_unscanned(job *j, const char *why)
{
    rec r;
    rec_begin(&r, "scan");
    rec_int(&r, "id", j->id);
    rec_str(&r, "file", j->path);
    rec_int(&r, "code", -1);
    rec_str(&r, "verdict", "NOT_SCANNED");
    rec_str(&r, "vir_info", why);
    rec_end(&r);
    chan_printf("R %ld -1 0 %s", j->id, r.buf ? r.buf : "");
    rec_free(&r);
}

/* No context may be in use by two workers at once. */
static void check_context_shared(const worker *w, violations *v)
{
    const worker *other;
    pthread_mutex_lock(&g_lock);
    for (other = g_workers; other; other = other->next)
        if (other != w && other->busy && other->context != NULL && other->context == w->context)
            viol_add(v, "context %p is in use by workers %d and %d at the same time", w->context,
                     w->id, other->id);
    pthread_mutex_unlock(&g_lock);
}

/* The canary bytes after vir_info must be untouched. */
static void check_guard(const unsigned char *buf, unsigned int vi_size, violations *v)
{
    int changed = 0, first_changed = -1;
    unsigned int i;
    for (i = vi_size; i < vi_size + AVHOST_GUARD; i++)
        if (buf[i] != AVHOST_CANARY) {
            changed++;
            if (first_changed < 0)
                first_changed = (int)i;
        }
    if (changed)
        viol_add(v, "wrote past vi_size=%u into vir_info: %d of the %d guard bytes after the "
                    "buffer changed, the first at offset %d",
                 vi_size, changed, AVHOST_GUARD, first_changed);
}

/* vir_info: NUL-terminated within vi_size, ASCII, set for VIRUS_FOUND. Sets
 *touched when the plugin wrote into it; returns the offset of its NUL, or -1. */
static int check_vir_info(const unsigned char *buf, unsigned int vi_size, int code,
                          const char *path, violations *v, int *touched)
{
    int nul = -1;
    unsigned int i;
    *touched = 0;
    for (i = 0; i < vi_size; i++) {
        if (buf[i] != AVHOST_CANARY)
            *touched = 1;
        if (buf[i] == '\0') {
            nul = (int)i;
            break;
        }
    }
    for (; !*touched && i < vi_size; i++)
        *touched = buf[i] != AVHOST_CANARY;
    if (*touched && nul < 0)
        viol_add(v, "vir_info has no NUL within vi_size=%u", vi_size);
    /* Untouched or empty, it is the same to the product: a hit with no name. */
    if ((!*touched || nul == 0) && code == AVCHK_VIRUS_FOUND && vi_size > 1)
        viol_add(v, "returned VIRUS_FOUND for %s without a virus name in vir_info", path);
    if (nul > 0)
        for (i = 0; i < (unsigned int)nul; i++)
            if (buf[i] < 0x20 || buf[i] >= 0x7f) {
                viol_add(v, "vir_info has a non-ASCII byte 0x%02X at offset %u", buf[i], i);
                break;
            }
    return nul;
}

/* The "scan" record, sent as the answer to the job. */
static void answer_scan(const worker *w, const job *j, int code, const unsigned char *buf,
                        int touched, int nul, double ms, const violations *v)
{
    rec r;
    rec_begin(&r, "scan");
    rec_int(&r, "id", j->id);
    rec_str(&r, "file", j->path);
    rec_int(&r, "code", code);
    rec_str(&r, "verdict", verdict_name(code));
    if (code < AVCHK_FAILED || code > AVCHK_ERROR)
        rec_int(&r, "unknown_code", code); /* for tools: the verdict alone says INVALID */
    if (!touched)
        rec_str(&r, "vir_info", NULL);
    else
        rec_bytes(&r, "vir_info", (const char *)buf,
                  nul >= 0 ? (size_t)nul : g_settings.vi_size);
    rec_int(&r, "worker", w->id);
    rec_num(&r, "ms", ms);
    rec_violations(&r, v);
    rec_end(&r);
    note_finishing();
    chan_printf("R %ld %d %d %s", j->id, code, v->count, r.buf ? r.buf : "");
    rec_free(&r);
}

static void scan_one(worker *w, job *j)
{
    unsigned int vi_size = g_settings.vi_size;
    unsigned char *buf = (unsigned char *)malloc((size_t)vi_size + AVHOST_GUARD);
    violations v;
    double t0, t1;
    int code, touched, nul;
    v.count = 0;
    if (buf == NULL) {
        note_finishing();
        answer_unscanned(j, "avhost: out of memory");
        return;
    }
    memset(buf, AVHOST_CANARY, (size_t)vi_size + AVHOST_GUARD);
    check_context_shared(w, &v);

    chan_printf("B %ld", j->id);
    log_set_current_file(j->path);
    crash_frames_set_request(j->id);
    t0 = now_ms();
    code = g_plugin->iface->plugin_thread_test_file(w->context, j->path, realname_of(j->path),
                                                    NULL, 0, (char *)buf, vi_size);
    t1 = now_ms();
    crash_frames_set_request(0);
    log_set_current_file(NULL);

    if (code < AVCHK_FAILED || code > AVCHK_ERROR)
        viol_add(&v, "plugin_thread_test_file returned %d for %s (valid: 0..5)", code, j->path);
    check_guard(buf, vi_size, &v);
    nul = check_vir_info(buf, vi_size, code, j->path, &v, &touched);
    if (g_settings.exec_check && !w->probed) {
        w->probed = 1;
        exec_probe(&v);
    }
    answer_scan(w, j, code, buf, touched, nul, t1 - t0, &v);
    free(buf);
}

/* Caller holds g_lock. */
static void remove_worker(worker *w)
{
    worker **pp;
    for (pp = &g_workers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
}

/* Caller holds g_lock. */
static void note_ended_locked(void)
{
    ended *e = (ended *)malloc(sizeof *e);
    if (e == NULL)
        return; /* cannot be joined: it still ends, only the count may lag */
    e->thread = pthread_self();
    e->next = g_ended;
    g_ended = e;
}

/* Joins the workers that have ended. Caller holds g_lock; it is released
   while joining, since an ending worker still takes it once. */
static void join_ended_locked(void)
{
    while (g_ended != NULL) {
        ended *e = g_ended;
        g_ended = e->next;
        pthread_mutex_unlock(&g_lock);
        pthread_join(e->thread, NULL);
        free(e);
        pthread_mutex_lock(&g_lock);
    }
}

/* plugin_thread_init for the worker's own context, its checks and the
   "thread_init" record. Returns 1 when the worker has a context. */
static int worker_init(worker *w)
{
    violations v;
    rec r;
    int ret, threads_before, threads_after, ok;
    worker *other;
    char error[MAX_STRING];
    v.count = 0;

    /* plugin_thread_init: the spawner waits for it, so thread counts are exact. */
    threads_before = count_threads();
    w->context = NULL;
    ret = g_plugin->iface->plugin_thread_init(&w->context);
    threads_after = count_threads();
    ok = ret == 1;
    if (ret != 0 && ret != 1)
        viol_add(&v, "plugin_thread_init returned %d (valid: 1 success, 0 failure)", ret);
    if (threads_after > threads_before)
        viol_add(&v, "plugin_thread_init started %d thread(s); it must not start threads",
                 threads_after - threads_before);
    pthread_mutex_lock(&g_lock);
    for (other = g_workers; other; other = other->next)
        if (ok && other != w && other->context != NULL && other->context == w->context)
            viol_add(&v, "plugin_thread_init returned context %p, which worker %d already owns",
                     w->context, other->id);
    if (ok) {
        g_threads++;
        g_started++;
        if (g_threads > g_peak)
            g_peak = g_threads;
    }
    g_spawning = 0;
    pthread_cond_broadcast(&g_state);
    pthread_mutex_unlock(&g_lock);
    rec_begin(&r, "thread_init");
    rec_int(&r, "worker", w->id);
    rec_int(&r, "result", ret);
    rec_int(&r, "workers", g_threads);
    if (!ok) {
        error[0] = '\0';
        g_plugin->iface->get_error_message(error, (int)sizeof error);
        error[sizeof error - 1] = '\0';
        rec_str(&r, "error", error);
    }
    rec_violations(&r, &v);
    chan_event(&r, &v);
    return ok;
}

/* Caller holds g_lock, which is released: the worker's thread returns now and
   is joined later (see g_ended). */
static void worker_end_locked(worker *w)
{
    note_ended_locked();
    g_live--;
    pthread_cond_broadcast(&g_state);
    pthread_mutex_unlock(&g_lock);
    free(w);
}

/* A worker without a context ends at once. */
static void worker_give_up(worker *w)
{
    pthread_mutex_lock(&g_lock);
    /* No context: answer one waiting request so that it is not lost. */
    if (g_head != NULL) {
        job *j = take_job_locked();
        pthread_mutex_unlock(&g_lock);
        answer_unscanned(j, "plugin_thread_init failed");
        free_job(j);
        pthread_mutex_lock(&g_lock);
        g_in_flight--;
        g_done++;
    }
    remove_worker(w);
    worker_end_locked(w);
}

/* When a worker idle from now on ends. */
static void idle_deadline(struct timespec *deadline)
{
    clock_gettime(CLOCK_REALTIME, deadline);
    deadline->tv_sec += g_settings.idle_timeout_ms / 1000;
    deadline->tv_nsec += (long)(g_settings.idle_timeout_ms % 1000) * 1000000L;
    if (deadline->tv_nsec >= 1000000000L) {
        deadline->tv_sec++;
        deadline->tv_nsec -= 1000000000L;
    }
}

/* Waits until a job is queued or the pool stops. Caller holds g_lock. Returns
   0 when the worker was idle longer than --idle-timeout. */
static int wait_for_job_locked(void)
{
    while (g_head == NULL && !g_stopping) {
        int timed_out = 0;
        g_idle++;
        if (g_settings.idle_timeout_ms > 0) {
            struct timespec deadline;
            idle_deadline(&deadline);
            timed_out = pthread_cond_timedwait(&g_work, &g_lock, &deadline) == ETIMEDOUT;
        } else {
            pthread_cond_wait(&g_work, &g_lock);
        }
        g_idle--;
        if (timed_out && g_head == NULL && !g_stopping)
            return 0;
    }
    return 1;
}

/* Scans jobs until the pool stops or the worker idles too long. Caller holds
   g_lock, and holds it again on return. Returns why the worker ends. */
static const char *worker_loop(worker *w)
{
    for (;;) {
        job *j;
        if (!wait_for_job_locked()) {
            g_closed_idle++;
            return "idle";
        }
        if (g_head == NULL)
            return "shutdown"; /* stopping */
        j = take_job_locked();
        w->busy = 1;
        pthread_mutex_unlock(&g_lock);
        scan_one(w, j);
        free_job(j);
        pthread_mutex_lock(&g_lock);
        g_finishing--;
        w->busy = 0;
        g_in_flight--;
        g_done++;
        pthread_cond_broadcast(&g_state);
    }
}

/* plugin_thread_close, its checks and the "thread_close" record. */
static void worker_close(worker *w, const char *reason)
{
    violations v;
    rec r;
    int ret;
    v.count = 0;
    ret = g_plugin->iface->plugin_thread_close(&w->context);
    if (ret != 0 && ret != 1)
        viol_add(&v, "plugin_thread_close returned %d (valid: 1 success, 0 failure)", ret);
    if (w->context != NULL)
        viol_add(&v, "plugin_thread_close left *context set (%p); it must set it to NULL",
                 w->context);
    rec_begin(&r, "thread_close");
    rec_int(&r, "worker", w->id);
    rec_str(&r, "reason", reason);
    rec_int(&r, "result", ret);
    rec_violations(&r, &v);
    chan_event(&r, &v);
}

static void *worker_main(void *arg)
{
    worker *w = (worker *)arg;
    const char *reason;
    /* On this thread's own stack, which outlives its use: no leak per worker. */
    char signal_stack[CRASH_FRAMES_STACK];
    crash_frames_use_stack(signal_stack, sizeof signal_stack);
    if (!worker_init(w)) {
        worker_give_up(w);
        crash_frames_use_stack(NULL, 0);
        return NULL;
    }
    pthread_mutex_lock(&g_lock);
    reason = worker_loop(w);
    g_threads--;
    remove_worker(w);
    pthread_mutex_unlock(&g_lock);
    worker_close(w, reason);
    crash_frames_use_stack(NULL, 0);
    pthread_mutex_lock(&g_lock);
    worker_end_locked(w);
    return NULL;
}

/* Caller holds g_lock. Starts one worker and waits for its plugin_thread_init. */
static void spawn_locked(void)
{
    pthread_t t;
    worker *w = (worker *)calloc(1, sizeof *w);
    if (w == NULL)
        return;
    w->id = g_next_worker++;
    w->next = g_workers;
    g_workers = w;
    g_live++;
    g_spawning = 1;
    if (pthread_create(&t, NULL, worker_main, w) != 0) {
        remove_worker(w);
        g_live--;
        g_spawning = 0;
        free(w);
    }
    while (g_spawning)
        pthread_cond_wait(&g_state, &g_lock);
}

void pool_start(plugin *p)
{
    g_plugin = p;
    g_stopping = 0;
}

void pool_submit(long id, const char *path)
{
    job *j = (job *)calloc(1, sizeof *j);
    if (j == NULL)
        return;
    j->id = id;
    j->path = strdup(path);
    pthread_mutex_lock(&g_lock);
    if (g_tail)
        g_tail->next = j;
    else
        g_head = j;
    g_tail = j;
    g_queued++;
    g_in_flight++;
    if (g_queued > g_idle + g_finishing && g_threads < g_settings.max_workers)
        spawn_locked();
    pthread_cond_signal(&g_work);
    /* No worker could be made and none exists: answer what waits. */
    while (g_live == 0 && g_head != NULL) {
        job *k = take_job_locked();
        g_in_flight--;
        g_done++;
        answer_unscanned(k, "no worker: plugin_thread_init failed");
        free_job(k);
    }
    pthread_mutex_unlock(&g_lock);
}

void pool_drain_and_stop(void)
{
    pthread_mutex_lock(&g_lock);
    while (g_in_flight > 0)
        pthread_cond_wait(&g_state, &g_lock);
    g_stopping = 1;
    pthread_cond_broadcast(&g_work);
    while (g_live > 0)
        pthread_cond_wait(&g_state, &g_lock);
    join_ended_locked();
    g_stopping = 0;
    pthread_mutex_unlock(&g_lock);
}

void pool_stats(rec *r)
{
    pthread_mutex_lock(&g_lock);
    rec_int(r, "workers", g_threads);
    rec_int(r, "idle", g_idle);
    rec_int(r, "busy", g_threads - g_idle);
    rec_int(r, "queued", g_queued);
    rec_int(r, "started", g_started);
    rec_int(r, "closed_idle", g_closed_idle);
    rec_int(r, "peak_workers", g_peak);
    rec_int(r, "scanned", g_done);
    pthread_mutex_unlock(&g_lock);
}
