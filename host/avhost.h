/*
 * avhost: an emulator of the Kerio products' avserver. Shared declarations.
 *
 * Process model: the parent process (supervisor.c, with scan.c, bench.c and
 * serve.c for the modes) plays the product: it reads
 * the command line, the files to scan or the requests of `serve`, and writes
 * the report. The plugin itself only ever runs in a child process (child.c),
 * as avserver runs outside the product; the child loads the plugin (loader.c),
 * runs a thread pool of workers (pool.c) and answers on a socketpair. When the
 * plugin returns AVCHK_ERROR or crashes, the parent kills the child and starts a
 * fresh one, as the products restart avserver.
 */
#ifndef AVHOST_H
#define AVHOST_H

#include <stddef.h>
#include <sys/types.h>

#include "avApi.h"

#define AVHOST_VERSION "1.0"
#define AVHOST_MAX_OPTIONS 64
#define AVHOST_GUARD 64    /* canary bytes after vir_info */
#define AVHOST_CANARY 0xA5 /* the canary byte */
#define AVHOST_MAX_VIOLATIONS 16
#define AVHOST_MAX_FDS 1024     /* descriptors tracked by number */
#define AVHOST_MAX_THREADS 512  /* threads tracked by id */
#define AVHOST_MAX_REQUEST 8192 /* longest request line (and path), newline excluded */
#define AVHOST_MAX_REQUEST_TEXT "8192"

/* ---------- main.c: the command line, read into g_settings ---------- */
typedef struct host_option_s {
    char name[64];
    char value[256];
} host_option;

typedef struct host_settings_s {
    const char *mode;   /* info, scan, serve, bench */
    const char *plugin; /* path of avir_*.so */
    host_option options[AVHOST_MAX_OPTIONS];
    int option_count;
    int raw_config;       /* pass only the -o options, verbatim */
    unsigned int vi_size; /* size of vir_info */
    int threads;          /* concurrent requests (scan, bench) */
    int max_workers;      /* pool cap */
    int idle_timeout_ms;  /* end workers idle longer than this; 0 = never */
    int repeat;           /* scan: each file this many times */
    int cycles;           /* plugin_init..plugin_close cycles per child */
    int max_restarts;
    int close_timeout_s; /* plugin_close, dlclose and exit must end within this */
    int reloads;         /* load..unload rounds in one process (a plugin switch) */
    int exec_check;      /* fork+exec a helper from each worker: inherited fds? */
    int pretty;
    int logs;                /* emit log records */
    double seconds;          /* bench */
    long count;              /* bench */
    const char *socket_path; /* serve */
    int socket_mode;         /* its permission bits (0600) */
    double scan_timeout_s;   /* plugin_thread_test_file must return within this; 0 = no limit */
    double rehang_timeout_s; /* the same after a scan hung and none completed since */
    int realname;            /* what plugin_thread_test_file gets as realname (REALNAME_*) */
} host_settings;

enum { REALNAME_BASE,
       REALNAME_EMPTY,
       REALNAME_NULL };

extern host_settings g_settings;

/* ---------- json.c: violations and records (JSON lines, text with --pretty) ---------- */
/* Violations: precise texts, collected per record. */
typedef struct violations_s {
    int count;
    char text[AVHOST_MAX_VIOLATIONS][400];
} violations;

void viol_add(violations *v, const char *format, ...) __attribute__((format(printf, 2, 3)));

typedef struct rec_s {
    char *buf;
    size_t len, cap;
    int pretty;
    int fields;
} rec;

void rec_begin(rec *r, const char *event);
void rec_str(rec *r, const char *key, const char *value); /* NULL -> null */
void rec_bytes(rec *r, const char *key, const char *value, size_t n);
void rec_int(rec *r, const char *key, long long value);
void rec_num(rec *r, const char *key, double value);
void rec_bool(rec *r, const char *key, int value);
void rec_violations(rec *r, const violations *v);
/* An array of {"name":..,"value":..} objects. */
void rec_options(rec *r, const char *key, const avir_plugin_config *cfg, int n);
/* One frame of a stack, as crash_frames.c finds it and the parent reports it. */
typedef struct frame_s {
    char offset[24];   /* "0x1a2b", relative to the object's load base */
    char build_id[72]; /* hex, "" when unknown */
    char object[512];  /* absolute path of the executable or shared object */
} frame;
/* "frames": [{object, offset, build_id}...] (with --pretty, one line per frame). */
void rec_frames(rec *r, const frame *frames, int n);
/* The finished line (without newline); the caller frees it with rec_free. */
const char *rec_end(rec *r);
void rec_free(rec *r);
/* Writes all of buf to fd, retrying on EINTR and short writes. */
int write_all(int fd, const char *buf, size_t n);

/* ---------- text.c: checks on the strings a plugin hands over ---------- */
/* Index of the first byte that is not printable 7-bit ASCII, or -1. */
int first_non_ascii(const char *s, size_t n);
/* Length of a string in a fixed-size field: max when it has no NUL. */
size_t field_len(const char *s, size_t max);

/* ---------- channel.c: the child's channel to the parent (whole lines) ---------- */
void chan_init(int fd);
void chan_printf(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* Sends an event record; counts its violations. */
void chan_event(rec *r, const violations *v);
/* For the crash handler: takes the channel's lock if it is free (1), else 0. */
int chan_trylock(void);
void chan_unlock(void);

/* ---------- crash_frames.c: the stack of the plugin process when it dies ---------- */
/* Catches SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT: the frames go to the
   parent as "K" lines on chan_fd, then the signal does what it would have done. */
void crash_frames_install(int chan_fd);
/* Lists the loaded objects (paths, build ids), after each dlopen. */
void crash_frames_note_objects(void);
/* The request the calling thread scans (0: none), for the frames' "K" lines. */
void crash_frames_set_request(long id);
/* The calling thread's alternate signal stack (NULL: none): a stack overflow's
   SIGSEGV needs one. It must stay valid while it is in use. */
void crash_frames_use_stack(void *stack, size_t size);
#define CRASH_FRAMES_STACK (64 * 1024)

/* ---------- plugin_log.c: the log callback given to plugin_init ---------- */
/* Checks, counts and reports one message of the plugin. */
void log_callback(const char *format, ...);
/* The name of the file being scanned by this thread, for the log format check. */
void log_set_current_file(const char *filename);
/* Adds the message counts per kind (logs_ERR .. logs_debug) to a record. */
void log_counts_add(rec *r);

/* ---------- exports.c: the plugin file's ELF header and the symbols it exports ---------- */
/* 0 when the file is an ELF file of avhost's own class and machine (i386 or x86_64, as
   avserver: a process loads only its own kind); else 1, with one line in `why` naming
   both kinds and the avhost to use instead. */
int elf_kind_mismatch(const char *path, char *why, size_t size);
/* The exports of the ELF file besides the entry point; fills v. */
void check_exports(const char *path, violations *v);

/* ---------- loader.c: loading a plugin, plugin_init and plugin_close ---------- */
typedef struct plugin_s {
    void *handle;
    avir_plugin_extended_thread_iface *iface;
    avir_plugin_config defaults[AVHOST_MAX_OPTIONS];
    int default_count;
    char name[64];
} plugin;

/* Loads and checks everything up to set_plugin_config; emits the "load" record.
   Returns 0 when the plugin cannot be used at all. */
int plugin_load(plugin *p, const char *path);
/* plugin_init with the recording log callback; emits "init". 1 = success. */
int plugin_start(plugin *p, int cycle);
/* Remembers the open descriptors before plugin_init, to name the leaked ones. */
void plugin_fds_mark(void);
/* plugin_close under a watchdog; emits "close" with the fd check. */
int plugin_stop(plugin *p, int cycle, int fds_before);

/* ---------- procfs.c: this process, from /proc/self ---------- */
int count_fds(void);
int count_threads(void);
long peak_rss_kb(void);
long rss_kb(void);
void fd_snapshot(unsigned char *seen, int size);
void fd_describe(int fd, char *out, size_t size);
/* "fd -> target, ..." for the descriptors open now that were not in `before`. */
void fd_list_new(const unsigned char *before, int size, char *out, size_t out_size);
void thread_snapshot(int *tids, int max, int *count);
/* "thread tid (name), ..." for the threads running now that were not in `before`. */
void thread_list_new(const int *before, int nbefore, char *out, size_t out_size);
/* 1 when the file is mapped into this process, 0 when not, -1 unknown. */
int path_is_mapped(const char *path);

/* ---------- unload.c: dlclose and what the plugin left behind ---------- */
typedef struct process_facts_s {
    int fds;
    unsigned char fdset[AVHOST_MAX_FDS];
    int threads;
    int tids[AVHOST_MAX_THREADS];
    long rss_kb;
} process_facts;
void facts_take(process_facts *f);
/* dlclose after plugin_close, then the checks against `before` (taken before
   dlopen); emits "unload". 1 when nothing of the plugin was left. */
int plugin_unload(plugin *p, int round, const process_facts *before);

/* ---------- watchdog.c: deadlines for plugin_close and dlclose ---------- */
/* On expiry: an `event` record naming the phase, "F" to the parent, _exit(4). */
void watchdog_arm(const char *phase, const char *event);
void watchdog_disarm(void);

/* ---------- exec_probe.c: descriptors inherited by programs the host executes ---------- */
/* Forks and execs this program as a helper that lists the descriptors it
   inherited: every one is a plugin fd without close-on-exec. */
void exec_probe(violations *v);
int list_inherited_fds(void);

/* ---------- pool.c: the worker pool that runs the scans ---------- */
typedef struct job_s {
    long id;
    char *path;
    struct job_s *next;
} job;

void pool_start(plugin *p);
void pool_submit(long id, const char *path);
/* Waits for all submitted jobs, then ends every worker (plugin_thread_close). */
void pool_drain_and_stop(void);
/* A "stats" answer. */
void pool_stats(rec *r);

/* ---------- child.c: the plugin process (avserver) ---------- */
/* The child's main: load, init, serve requests from fd, close. Never returns. */
void child_main(int fd) __attribute__((noreturn));

/* ---------- listener.c: serve's UNIX socket ---------- */
/* Listens on path, created with `mode` (no moment with another mode, nothing
   followed by name); refuses (-1, why) to replace anything but a stale socket.
   Call it while the process has a single thread (it enters folders). */
int listener_open(const char *path, int mode, char *why, size_t size);
/* Closes fd (when >= 0) and removes the socket, if it is still the one this
   process made (same device and inode); also done at exit(). */
void listener_close(int fd);

/* ---------- the parent (the product): one file per mode, over supervisor.c ---------- */
int run_info(void);                      /* scan.c */
int run_scan(char **files, int nfiles);  /* scan.c */
int run_serve(void);                     /* serve.c */
int run_bench(char **files, int nfiles); /* bench.c */

#endif /* AVHOST_H */
