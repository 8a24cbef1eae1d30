/*
 * The UNIX socket of `avhost serve --socket PATH`. A client of it can make avhost
 * (often run as root) read any file and stop the plugin, so the socket is made
 * private (0600 unless --socket-mode widens it), and avhost never removes or
 * replaces anything at PATH but a stale socket of its own kind.
 */
#include "avhost.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static dev_t g_dev;
static ino_t g_ino;

/* What is at path now: 0 nothing (or a stale socket, removed), else a refusal in why. */
static int clear_path(const struct sockaddr_un *addr, char *why, size_t size)
{
    struct stat st;
    int probe, alive;
    if (lstat(addr->sun_path, &st) != 0)
        return errno == ENOENT ? 0 : (snprintf(why, size, "%s", strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(why, size, "it exists and is not a socket; avhost does not replace it");
        return -1;
    }
    probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    alive = probe >= 0 && connect(probe, (const struct sockaddr *)addr, sizeof *addr) == 0;
    if (probe >= 0)
        close(probe);
    if (alive) {
        snprintf(why, size, "something is serving on it already");
        return -1;
    }
    if (unlink(addr->sun_path) != 0) {
        snprintf(why, size, "cannot remove the stale socket there: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int listener_open(const char *path, int mode, char *why, size_t size)
{
    struct sockaddr_un addr;
    struct stat st;
    mode_t old;
    int fd, ok;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        snprintf(why, size, "the path is longer than a UNIX socket allows (%d bytes)",
                 (int)sizeof addr.sun_path - 1);
        return -1;
    }
    strcpy(addr.sun_path, path);
    if (clear_path(&addr, why, size) != 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, size, "%s", strerror(errno));
        return -1;
    }
    old = umask(0177); /* born private: no moment in which others may connect */
    ok = bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    umask(old);
    if (!ok || chmod(path, (mode_t)mode) != 0 || listen(fd, 16) != 0 || stat(path, &st) != 0) {
        snprintf(why, size, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    g_dev = st.st_dev;
    g_ino = st.st_ino;
    return fd;
}

void listener_close(int fd, const char *path)
{
    struct stat st;
    close(fd);
    /* Only the socket this process made: someone may have put another there since. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == g_dev && st.st_ino == g_ino)
        unlink(path);
}
