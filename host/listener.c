/*
 * The UNIX socket of `avhost serve --socket PATH`. A client of it can make avhost
 * (often run as root) read any file and stop the plugin, so the socket is made
 * private (0600 unless --socket-mode widens it), and avhost never removes or
 * replaces anything at PATH but a stale socket of its own kind.
 *
 * PATH's folder may be writable by others, who can swap what is at PATH at any
 * moment. So nothing here acts on PATH by name after looking at it:
 *  - the folder is opened once and every later step is relative to it, so a
 *    folder renamed or replaced by a symlink meanwhile changes nothing;
 *  - the socket is bound inside a private folder (0700, ours) with its mode
 *    already set (fchmod on the socket before bind: Linux gives the file the
 *    socket's mode, less the umask), looked at there, and only then linked to
 *    PATH; link() never replaces what someone put there meanwhile;
 *  - a stale socket is first moved into the private folder and removed only if
 *    it is the very socket that was probed; anything else goes back.
 */
#include "avhost.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef O_PATH
#define O_PATH 010000000
#endif
#if !defined(SYS_renameat2) && defined(__i386__)
#define SYS_renameat2 353
#endif
#define RENAME_NOREPLACE_FLAG 1

static int g_folder = -1; /* PATH's folder, opened once */
static char g_name[108];  /* PATH's last component */
static dev_t g_dev;       /* the socket file this process made */
static ino_t g_ino;
static pid_t g_owner; /* forked children never remove it */
static int g_made;
static int g_kept_aside; /* a file that came to PATH could not be put back */

/* PATH's folder ("." when none) and last component. */
static int split_path(const char *path, char *folder, size_t size, char *why, size_t why_size)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    if (*name == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        snprintf(why, why_size, "the path names a folder, not a socket file");
        return -1;
    }
    if (slash == NULL)
        snprintf(folder, size, ".");
    else if (slash == path)
        snprintf(folder, size, "/");
    else
        snprintf(folder, size, "%.*s", (int)(slash - path), path);
    snprintf(g_name, sizeof g_name, "%s", name);
    return 0;
}

/* Moves old (in `from`) to new (in `to`), failing rather than replacing anything. */
static int move_no_replace(int from, const char *old, int to, const char *new_name)
{
#ifdef SYS_renameat2
    if (syscall(SYS_renameat2, from, old, to, new_name, RENAME_NOREPLACE_FLAG) == 0)
        return 0;
    if (errno != ENOSYS && errno != EINVAL)
        return -1;
#endif
    /* Without renameat2 (old kernel, or a file system without it): link + unlink. */
    if (linkat(from, old, to, new_name, 0) != 0)
        return -1;
    unlinkat(from, old, 0);
    return 0;
}

/* A folder only this process's user can enter, inside PATH's folder (so that a
   link from it to PATH stays on one file system). Returns its descriptor. */
static int make_private_folder(char *name, size_t size, char *why, size_t why_size)
{
    struct stat st;
    int i, fd;
    for (i = 0; i < 100; i++) {
        snprintf(name, size, ".avhost-%ld-%d.tmp", (long)getpid(), i);
        if (mkdirat(g_folder, name, 0700) == 0)
            break;
        if (errno != EEXIST) {
            snprintf(why, why_size, "cannot make a private folder beside it: %s", strerror(errno));
            return -1;
        }
    }
    if (i == 100) {
        snprintf(why, why_size, "cannot make a private folder beside it: 100 names taken");
        return -1;
    }
    fd = openat(g_folder, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* Someone may have swapped it already: it must be the folder just made, ours. */
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        snprintf(why, why_size, "the private folder %s beside it was replaced; avhost stops",
                 name);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void remove_private_folder(int fd, const char *name)
{
    unlinkat(fd, "s", 0);
    unlinkat(fd, "stale", 0);
    close(fd);
    unlinkat(g_folder, name, AT_REMOVEDIR);
}

/* 1 when a server answers on the socket at g_name (the working folder is g_folder). */
static int somebody_serves(void)
{
    struct sockaddr_un addr;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), alive;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, g_name, strlen(g_name));
    alive = probe >= 0 && connect(probe, (const struct sockaddr *)&addr, sizeof addr) == 0;
    if (probe >= 0)
        close(probe);
    return alive;
}

/* Takes the stale socket probed (seen) away from PATH: moved into the private
   folder first, removed only if it is that same socket; anything else that came
   meanwhile is put back. */
static int remove_stale(int private_fd, const struct stat *seen, char *why, size_t size)
{
    struct stat st;
    if (move_no_replace(g_folder, g_name, private_fd, "stale") != 0) {
        snprintf(why, size, "cannot remove the stale socket there: %s", strerror(errno));
        return -1;
    }
    if (fstatat(private_fd, "stale", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == seen->st_dev && st.st_ino == seen->st_ino) {
        unlinkat(private_fd, "stale", 0);
        return 0;
    }
    if (move_no_replace(private_fd, "stale", g_folder, g_name) != 0) {
        g_kept_aside = 1;
        snprintf(why, size, "it changed while avhost checked it, and what came there could "
                            "not be put back: it is in the folder .avhost-%ld-*.tmp beside it",
                 (long)getpid());
    } else
        snprintf(why, size, "it changed while avhost checked it; avhost does not replace it");
    return -1;
}

/* What is at PATH now: 0 nothing (or a stale socket, removed), else a refusal in why. */
static int clear_path(int private_fd, char *why, size_t size)
{
    struct stat st;
    if (fstatat(g_folder, g_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : (snprintf(why, size, "%s", strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(why, size, "it exists and is not a socket; avhost does not replace it");
        return -1;
    }
    if (somebody_serves()) {
        snprintf(why, size, "something is serving on it already");
        return -1;
    }
    return remove_stale(private_fd, &st, why, size);
}

/* Binds and listens on "s" in the private folder (the working folder), born with
   its mode; then links it to PATH. Returns the listening descriptor. */
static int bind_and_publish(int private_fd, int mode, char *why, size_t size)
{
    struct sockaddr_un addr;
    struct stat st;
    mode_t old;
    int fd, ok;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, "s");
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || fchmod(fd, (mode_t)mode) != 0) {
        snprintf(why, size, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    old = umask(~(mode_t)mode & 0777); /* the mode even where fchmod were not honoured */
    ok = bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(fd, 16) == 0;
    umask(old);
    if (!ok || fstatat(private_fd, "s", &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(st.st_mode) ||
        ((st.st_mode & 07777) != (mode_t)mode && fchmodat(private_fd, "s", (mode_t)mode, 0) != 0)) {
        snprintf(why, size, "%s", ok ? "the socket file was not made as asked" : strerror(errno));
        close(fd);
        return -1;
    }
    if (linkat(private_fd, "s", g_folder, g_name, 0) != 0) {
        if (errno == EEXIST)
            snprintf(why, size, "something was put there while avhost made its socket; avhost "
                                "does not replace it");
        else
            snprintf(why, size, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    g_dev = st.st_dev;
    g_ino = st.st_ino;
    g_owner = getpid();
    g_made = 1;
    return fd;
}

/* Removes the socket at PATH if it is still the one this process made. */
static void remove_own_socket(void)
{
    struct stat st;
    if (!g_made || getpid() != g_owner)
        return;
    g_made = 0;
    if (fstatat(g_folder, g_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == g_dev && st.st_ino == g_ino)
        unlinkat(g_folder, g_name, 0);
}

/* The steps, each relative to PATH's folder or to the private folder. */
static int open_in_folder(int mode, char *why, size_t size)
{
    char private_name[64];
    int private_fd, fd = -1;
    if (fchdir(g_folder) != 0) {
        snprintf(why, size, "cannot enter its folder: %s", strerror(errno));
        return -1;
    }
    private_fd = make_private_folder(private_name, sizeof private_name, why, size);
    if (private_fd < 0)
        return -1;
    if (clear_path(private_fd, why, size) == 0) {
        if (fchdir(private_fd) != 0)
            snprintf(why, size, "cannot enter the private folder: %s", strerror(errno));
        else
            fd = bind_and_publish(private_fd, mode, why, size);
    }
    if (g_kept_aside)
        close(private_fd); /* it stays where the message says */
    else
        remove_private_folder(private_fd, private_name);
    return fd;
}

int listener_open(const char *path, int mode, char *why, size_t size)
{
    char folder[sizeof((struct sockaddr_un *)0)->sun_path];
    int cwd, fd;
    why[0] = '\0';
    if (strlen(path) >= sizeof folder) {
        snprintf(why, size, "the path is longer than a UNIX socket allows (%d bytes)",
                 (int)sizeof folder - 1);
        return -1;
    }
    if (split_path(path, folder, sizeof folder, why, size) != 0)
        return -1;
    g_folder = open(folder, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (g_folder < 0) {
        snprintf(why, size, "cannot open its folder: %s", strerror(errno));
        return -1;
    }
    /* bind() and connect() take names: they are made relative to the folders held
       open, by entering them (this process has no other thread yet). */
    cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0) {
        snprintf(why, size, "cannot note the working folder: %s", strerror(errno));
        return -1;
    }
    fd = open_in_folder(mode, why, size);
    if (fchdir(cwd) != 0) {
        snprintf(why, size, "cannot return to the working folder: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        remove_own_socket();
        fd = -1;
    }
    close(cwd);
    if (fd >= 0)
        atexit(remove_own_socket); /* also when avhost leaves through exit() elsewhere */
    return fd;
}

void listener_close(int fd)
{
    if (fd >= 0)
        close(fd);
    remove_own_socket();
}
