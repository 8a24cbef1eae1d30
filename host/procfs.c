/*
 * Facts about this process read from /proc/self: open descriptors, threads,
 * memory and mappings. The contract checks compare them before a plugin is
 * loaded and after it is gone.
 */
#include "avhost.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Open descriptors (the one opendir uses is not counted). */
int count_fds(void)
{
    int n = count_dir("/proc/self/fd");
    return n < 0 ? -1 : n - 1;
}

int count_threads(void)
{
    return count_dir("/proc/self/task");
}

static long status_kb(const char *key)
{
    char line[256];
    long kb = -1;
    size_t n = strlen(key);
    FILE *f = fopen("/proc/self/status", "re");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

long peak_rss_kb(void)
{
    return status_kb("VmHWM");
}

long rss_kb(void)
{
    return status_kb("VmRSS");
}

void fd_snapshot(unsigned char *seen, int size)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    memset(seen, 0, (size_t)size);
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= 0 && fd < size && fd != dirfd(d))
            seen[fd] = 1;
    }
    closedir(d);
}

void fd_describe(int fd, char *out, size_t size)
{
    char link[64];
    ssize_t n;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, out, size - 1);
    out[n > 0 ? n : 0] = '\0';
}

void fd_list_new(const unsigned char *before, int size, char *out, size_t out_size)
{
    unsigned char now[AVHOST_MAX_FDS];
    int i;
    out[0] = '\0';
    fd_snapshot(now, size < AVHOST_MAX_FDS ? size : AVHOST_MAX_FDS);
    for (i = 0; i < size && i < AVHOST_MAX_FDS; i++)
        if (now[i] && !before[i]) {
            char target[128];
            size_t used = strlen(out);
            fd_describe(i, target, sizeof target);
            snprintf(out + used, out_size - used, "%s%d -> %s", used ? ", " : "", i, target);
        }
}

void thread_snapshot(int *tids, int max, int *count)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    *count = 0;
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL && *count < max)
        if (e->d_name[0] != '.')
            tids[(*count)++] = atoi(e->d_name);
    closedir(d);
}

void thread_list_new(const int *before, int nbefore, char *out, size_t out_size)
{
    int now[AVHOST_MAX_THREADS];
    int n, i, k;
    out[0] = '\0';
    thread_snapshot(now, AVHOST_MAX_THREADS, &n);
    for (i = 0; i < n; i++) {
        int known = 0;
        char path[64], comm[64] = "";
        FILE *f;
        size_t used = strlen(out);
        for (k = 0; k < nbefore && !known; k++)
            known = before[k] == now[i];
        if (known)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%d/comm", now[i]);
        if ((f = fopen(path, "re")) != NULL) {
            if (fgets(comm, sizeof comm, f) != NULL)
                comm[strcspn(comm, "\n")] = '\0';
            fclose(f);
        }
        snprintf(out + used, out_size - used, "%sthread %d (%s)", used ? ", " : "", now[i], comm);
    }
}

int path_is_mapped(const char *path)
{
    char line[PATH_MAX + 128], real[PATH_MAX];
    int found = 0;
    FILE *f;
    if (realpath(path, real) == NULL)
        snprintf(real, sizeof real, "%s", path);
    f = fopen("/proc/self/maps", "re");
    if (f == NULL)
        return -1;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        char *name = strchr(line, '/');
        if (name != NULL) {
            name[strcspn(name, "\n")] = '\0';
            found = strcmp(name, real) == 0;
        }
    }
    fclose(f);
    return found;
}
