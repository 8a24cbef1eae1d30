/*
 * avhost serve: a long-lived server, as avserver is to the product. Requests
 * come one per line on stdin or on each connection to --socket PATH; each
 * answer goes back to the client that asked (see host/README.md, "serve").
 */
/* poll's fortified wrapper (__poll_chk) needs glibc 2.16; the release build targets
   2.12, and every poll here passes an array with its exact size. */
#undef _FORTIFY_SOURCE

#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define PARTIAL_REQUEST "request without its newline when the client ended: dropped, nothing " \
                        "run (end every request with a newline)"

typedef struct client_s {
    int used;
    int fd_in, fd_out;
    char buf[AVHOST_MAX_REQUEST + 2]; /* a request, "\r" and "\n" */
    size_t have;
    int discarding; /* inside a line that was too long: its tail is no request */
} client;

typedef struct serve_state_s {
    client clients[MAX_CLIENTS];
    int stdin_client; /* -1: requests come from the socket */
    int listen_fd;
    int shutdown; /* SHUTDOWN, end of stdin or a signal: no new requests */
    int signal_handled;
} serve_state;

/* The signal handler's side: only these two. */
static int g_signal_pipe[2] = {-1, -1}; /* SIGTERM/SIGINT wake poll through it */
static volatile sig_atomic_t g_signal;

static serve_state *state_of(supervisor *s)
{
    return (serve_state *)s->sink.mode_state;
}

/* An answer for a client; one that has gone gets nothing; -2 (its client left
   before the answer came) and -1 go to stdout. */
static void serve_reply(supervisor *s, int c, const char *line)
{
    int fd = 1;
    if (c >= 0) {
        if (!state_of(s)->clients[c].used)
            return;
        fd = state_of(s)->clients[c].fd_out;
    }
    write_all(fd, line, strlen(line));
    write_all(fd, "\n", 1);
}

static void serve_answer(supervisor *s, const request *q, const char *line, int nviol)
{
    (void)nviol;
    serve_reply(s, q->client, line);
}

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
static void stop_on_signal(supervisor *s)
{
    serve_state *st = state_of(s);
    char drain[16];
    rec r;
    while (read(g_signal_pipe[0], drain, sizeof drain) > 0)
        ;
    if (!g_signal || st->signal_handled)
        return;
    st->signal_handled = 1;
    if (st->listen_fd >= 0) {
        listener_close(st->listen_fd);
        st->listen_fd = -1;
    }
    st->shutdown = 1;
    rec_begin(&r, "shutting_down");
    rec_str(&r, "signal", signal_name(g_signal));
    sup_emit(s, &r, -1);
}

static int add_client(serve_state *st, int fd_in, int fd_out)
{
    int i;
    for (i = 0; i < MAX_CLIENTS; i++)
        if (!st->clients[i].used) {
            st->clients[i].used = 1;
            st->clients[i].fd_in = fd_in;
            st->clients[i].fd_out = fd_out;
            st->clients[i].have = 0;
            st->clients[i].discarding = 0;
            return i;
        }
    return -1;
}

static void drop_client(supervisor *s, int c)
{
    serve_state *st = state_of(s);
    request *q;
    if (st->clients[c].fd_in > 2)
        close(st->clients[c].fd_in);
    st->clients[c].used = 0;
    for (q = s->queue.head; q; q = q->next)
        if (q->client == c)
            q->client = -2; /* answered into the void */
}

static void answer(supervisor *s, int c, const char *event, const char *key, const char *value)
{
    rec r;
    rec_begin(&r, event);
    if (key)
        rec_str(&r, key, value);
    sup_emit(s, &r, c);
}

static void refuse_overlong(supervisor *s, int c)
{
    rec r;
    rec_begin(&r, "error");
    rec_str(&r, "message", "request line longer than " AVHOST_MAX_REQUEST_TEXT " bytes: refused, nothing scanned");
    rec_int(&r, "limit", AVHOST_MAX_REQUEST);
    sup_emit(s, &r, c);
}

/* RESTART: graceful, the child finishes its requests, closes and exits. */
static void request_restart(supervisor *s)
{
    if (s->child.fd >= 0 && !s->restart_pending) {
        s->restart_pending = 1;
        snprintf(s->restart_reason, sizeof s->restart_reason, "requested by a client");
        sup_send_line(s, "Q\n");
    }
}

/* A path keeps its spaces: only the line ending is removed. */
static void client_request(supervisor *s, int c, char *line, size_t n)
{
    if (n > 0 && line[n - 1] == '\r')
        line[--n] = '\0';
    if (n > AVHOST_MAX_REQUEST) {
        refuse_overlong(s, c);
        return;
    }
    if (n == 0)
        return;
    if (strlen(line) != n) {
        answer(s, c, "error", "message", "request contains a NUL byte: refused");
        return;
    }
    if (strncasecmp(line, "SCAN ", 5) == 0) {
        sup_add_scan(s, line + 5, c);
    } else if (line[0] == '/') {
        sup_add_scan(s, line, c);
    } else if (strcasecmp(line, "STATS") == 0) {
        request *q = sup_add_request(s, "", c);
        if (q)
            q->stats = 1; /* answered by the child, once it runs */
    } else if (strcasecmp(line, "PING") == 0) {
        answer(s, c, "pong", NULL, NULL);
    } else if (strcasecmp(line, "RESTART") == 0) {
        request_restart(s);
        answer(s, c, "restarting", NULL, NULL);
    } else if (strcasecmp(line, "SHUTDOWN") == 0) {
        state_of(s)->shutdown = 1;
        answer(s, c, "shutting_down", NULL, NULL);
    } else {
        answer(s, c, "error", "message",
               "unknown request: use SCAN <path>, STATS, PING, RESTART or SHUTDOWN");
    }
}

/* Takes the complete lines of a client's buffer. */
static void client_lines(supervisor *s, int c)
{
    client *cl = &state_of(s)->clients[c];
    char *nl;
    while ((nl = (char *)memchr(cl->buf, '\n', cl->have)) != NULL) {
        size_t n = (size_t)(nl - cl->buf);
        *nl = '\0';
        if (cl->discarding)
            cl->discarding = 0; /* the end of an overlong line, already refused */
        else
            client_request(s, c, cl->buf, n);
        if (!cl->used)
            return;
        memmove(cl->buf, nl + 1, cl->have - n - 1);
        cl->have -= n + 1;
    }
    if (cl->have == sizeof cl->buf) {
        if (!cl->discarding)
            refuse_overlong(s, c);
        cl->discarding = 1;
        cl->have = 0;
    }
}

static int read_client(supervisor *s, int c)
{
    client *cl = &state_of(s)->clients[c];
    ssize_t got = read(cl->fd_in, cl->buf + cl->have, sizeof cl->buf - cl->have);
    if (got < 0 && errno == EINTR)
        return 1;
    if (got <= 0) {
        /* The input ended inside a line: its writer may have died mid-path, so
           what came is not the request that was meant. */
        if (cl->have > 0 && !cl->discarding)
            answer(s, c, "error", "message", PARTIAL_REQUEST);
        cl->have = 0;
        return 0;
    }
    cl->have += (size_t)got;
    client_lines(s, c);
    return 1;
}

/* Where requests come from: a listening socket (--socket) or stdin. Returns
   0, or 2 when the socket cannot be made. */
static int open_requests(serve_state *st, const host_settings *set)
{
    if (set->socket_path) {
        char why[300];
        st->listen_fd = listener_open(set->socket_path, set->socket_mode, why, sizeof why);
        if (st->listen_fd < 0) {
            fprintf(stderr, "avhost serve: cannot listen on %s: %s\n", set->socket_path, why);
            return 2;
        }
    } else {
        st->stdin_client = add_client(st, 0, 1);
    }
    return 0;
}

enum { POLL_SIGNAL = -3,
       POLL_CHILD = -2,
       POLL_LISTENER = -1 }; /* in map[]; else a client */

/* The descriptors to wait on: the child, the listener and the clients (no new
   requests after SHUTDOWN). map[i] says what pfds[i] is. Returns how many. */
static int serve_poll_set(supervisor *s, struct pollfd *pfds, int *map)
{
    serve_state *st = state_of(s);
    int n = 0, i;
    if (s->child.fd >= 0) {
        pfds[n].fd = s->child.fd;
        pfds[n].events = POLLIN;
        map[n++] = POLL_CHILD;
    }
    if (st->listen_fd >= 0 && !st->shutdown) {
        pfds[n].fd = st->listen_fd;
        pfds[n].events = POLLIN;
        map[n++] = POLL_LISTENER;
    }
    for (i = 0; i < MAX_CLIENTS && !st->shutdown; i++)
        if (st->clients[i].used) {
            pfds[n].fd = st->clients[i].fd_in;
            pfds[n].events = POLLIN;
            map[n++] = i;
        }
    return n;
}

/* Acts on what poll found: the child's lines, a new connection, requests. */
static void serve_dispatch(supervisor *s, const struct pollfd *pfds, const int *map, int n)
{
    serve_state *st = state_of(s);
    int i;
    for (i = 0; i < n; i++) {
        if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        if (map[i] == POLL_SIGNAL) {
            stop_on_signal(s);
        } else if (map[i] == POLL_CHILD) {
            if (!sup_read_child(s)) {
                sup_child_gone(s, !s->closing);
                if (s->child.fd < 0 && !s->closing)
                    s->fatal = 1; /* no child and no restart: nothing left to do */
            }
        } else if (map[i] == POLL_LISTENER) {
            int fd = accept4(st->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0 && add_client(st, fd, fd) < 0)
                close(fd);
        } else if (!read_client(s, map[i])) {
            if (map[i] == st->stdin_client)
                st->shutdown = 1; /* end of stdin: like SHUTDOWN */
            drop_client(s, map[i]);
        }
    }
}

static void serving_record(supervisor *s)
{
    rec r;
    rec_begin(&r, "serving");
    rec_int(&r, "pid", (long long)getpid());
    rec_int(&r, "child_pid", (long long)s->child.pid);
    rec_str(&r, "socket", s->settings->socket_path);
    sup_emit(s, &r, -1);
}

/* Until SHUTDOWN (or a signal, or the end of stdin) and the child has closed. */
static void serve_loop(supervisor *s)
{
    serve_state *st = state_of(s);
    for (;;) {
        struct pollfd pfds[MAX_CLIENTS + 3];
        int map[MAX_CLIENTS + 3];
        int n, ready;
        if (st->shutdown && sup_count_pending(s) == 0 && !s->closing && s->child.fd >= 0 &&
            s->child.ready)
            sup_close_child(s);
        if (s->fatal && s->child.fd < 0)
            break;
        sup_pump(s, 0);
        if (s->child.fd < 0 && s->closing)
            break;
        n = serve_poll_set(s, pfds, map);
        if (n == 0)
            break;
        pfds[n].fd = g_signal_pipe[0]; /* only while there is something else to wait for */
        pfds[n].events = POLLIN;
        map[n++] = POLL_SIGNAL;
        ready = poll(pfds, (nfds_t)n, sup_poll_timeout_ms(s));
        if (ready < 0 && errno != EINTR)
            break;
        if (ready > 0)
            serve_dispatch(s, pfds, map, n);
    }
}

int run_serve(void)
{
    static serve_state st; /* the clients' buffers: too large for the stack */
    answer_sink sink;
    supervisor s;
    st.stdin_client = -1;
    st.listen_fd = -1;
    memset(&sink, 0, sizeof sink);
    sink.scan = serve_answer;
    sink.reply = serve_reply;
    sink.mode_state = &st;
    sup_init(&s, &g_settings, &sink);
    if (catch_stop_signals() != 0) {
        fprintf(stderr, "avhost serve: cannot catch SIGTERM and SIGINT: %s\n", strerror(errno));
        return 3;
    }
    if (open_requests(&st, &g_settings) != 0)
        return 2;
    if (sup_spawn_child(&s) != 0) {
        listener_close(st.listen_fd);
        return 3;
    }
    serving_record(&s);
    serve_loop(&s);
    listener_close(st.listen_fd);
    sup_summary(&s, "serve");
    return sup_exit_code(&s);
}
