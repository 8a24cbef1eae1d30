/*
 * A deliberately broken Kerio plugin, on the low-level API (avApi.h). Without a
 * BROKEN_* macro it is correct: it reports files containing "EICAR" as infected.
 * Each macro breaks one rule of the contract; tests/test_avhost.py compiles one
 * avir_<variant>.so per macro and checks that avhost reports it precisely.
 *
 *   BROKEN_OVERFLOW   writes 8 bytes past vi_size into vir_info
 *   BROKEN_CODE7      returns 7, not an AVCHK_* code
 *   BROKEN_CRASH3     dereferences NULL on the third file
 *   BROKEN_NONASCII   a virus name with UTF-8 bytes
 *   BROKEN_EXPORTS    exports two helper functions besides the entry point
 *   BROKEN_ERROR      returns AVCHK_ERROR for files named *error*
 *   BROKEN_FDLEAK     plugin_init opens /dev/null and plugin_close leaves it open
 *   BROKEN_NOTERM     fills vir_info without a NUL
 *   BROKEN_INFO       wrong name in get_plugin_info, reserved fields not zeroed
 *   BROKEN_LOG        log messages with a trailing newline and a non-ASCII byte
 *   BROKEN_HANGCLOSE  plugin_close never returns
 *   BROKEN_SAMECTX    plugin_thread_init hands every worker the same context
 *   BROKEN_NONAME     VIRUS_FOUND with an empty virus name
 *   BROKEN_HANGSCAN   never returns from scanning files named *hang*
 *   BROKEN_HANGEICAR  never returns from scanning a file that holds EICAR
 *   BROKEN_REALNAME   reads realname without checking for NULL (the ABI allows NULL)
 *   BROKEN_UNOPENED   returns -1, not AVCHK_FAILED, for a file it cannot open
 *
 * Unloading (the products dlclose the plugin after plugin_close, then exit()):
 *   BROKEN_UNFINALIZED  registers a destructor that dlclose never runs, as a zig-linked
 *                       C++ plugin without __cxa_finalize does: exit() calls unmapped code
 *   BROKEN_THREAD       plugin_init starts a thread that plugin_close leaves running
 *   BROKEN_LOADFD       opens /dev/null when loaded and never closes it: one more fd per reload
 *   BROKEN_NOCLOEXEC    a worker's context holds a descriptor without close-on-exec
 *   BROKEN_DTORCRASH    its destructor (run by dlclose) dereferences NULL
 *   BROKEN_DTORHANG     its destructor (run by dlclose) never returns
 *   BROKEN_EXITHANG     stays loaded (-z nodelete) with an exit handler that never returns
 */
#include "avApi.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PLUGIN_NAME
#define PLUGIN_NAME "avir_broken"
#endif

#if defined(BROKEN_EXPORTS)
#define HIDDEN __attribute__((visibility("default")))
#else
#define HIDDEN static
#endif

static AV_LOG_CALLBACK_NEW g_log;
static int g_files;
static int g_leak __attribute__((unused)) = -1;
static int g_shared_context __attribute__((unused));

#if defined(BROKEN_UNFINALIZED)
/* Registered under a handle no one passes to __cxa_finalize, so dlclose keeps
   it on the exit list while unmapping the code it points to. */
extern int __cxa_atexit(void (*fn)(void *), void *arg, void *dso);
static char g_orphan_handle;
static void orphan_destructor(void *arg)
{
    (void)arg;
    g_files = 0;
}
#endif

#if defined(BROKEN_THREAD)
static void *forever(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}
#endif

#if defined(BROKEN_LOADFD)
__attribute__((constructor)) static void open_at_load(void)
{
    g_leak = open("/dev/null", O_RDONLY | O_CLOEXEC);
}
#endif

#if defined(BROKEN_DTORCRASH)
__attribute__((destructor)) static void crash_at_unload(void)
{
    *(volatile int *)0 = 1;
}
#endif

#if defined(BROKEN_DTORHANG)
__attribute__((destructor)) static void hang_at_unload(void)
{
    for (;;)
        pause();
}
#endif

#if defined(BROKEN_EXITHANG)
static void hang_at_exit(void)
{
    for (;;)
        pause();
}
#endif

HIDDEN void get_info(avir_plugin_info *info)
{
    memset(info, 0, sizeof *info);
#if defined(BROKEN_INFO)
    memset(info->reserved, 'x', 8);
    strcpy(info->name, "avir_somethingelse");
#else
    strcpy(info->name, PLUGIN_NAME);
#endif
    strcpy(info->description, "Broken test plugin 0.1 for Kerio");
}

HIDDEN void get_error(char *buffer, int size)
{
    if (size > 0)
        snprintf(buffer, (size_t)size, "%s", "no error");
}

HIDDEN int set_config(const avir_plugin_config *config)
{
    (void)config;
    return 0;
}

HIDDEN avir_plugin_config *get_config(void)
{
    return (avir_plugin_config *)calloc(1, sizeof(avir_plugin_config));
}

HIDDEN void free_config(avir_plugin_config *config)
{
    free(config);
}

static int init(AV_LOG_CALLBACK_NEW log)
{
    g_log = log;
#if defined(BROKEN_FDLEAK)
    g_leak = open("/dev/null", O_RDONLY);
#endif
#if defined(BROKEN_UNFINALIZED)
    __cxa_atexit(orphan_destructor, NULL, &g_orphan_handle);
#endif
#if defined(BROKEN_THREAD)
    {
        pthread_t t;
        pthread_create(&t, NULL, forever, NULL);
        pthread_detach(t);
    }
#endif
#if defined(BROKEN_EXITHANG)
    atexit(hang_at_exit);
#endif
#if defined(BROKEN_LOG)
    log("%s", "WRN: a message with a newline\n");
    log("%s", "caf\xc3\xa9 is not ASCII");
#else
    log("%s", "broken test plugin started");
#endif
    return 1;
}

static int close_(void)
{
#if defined(BROKEN_HANGCLOSE)
    for (;;)
        pause();
#endif
    g_log = NULL;
    return 1;
}

static int thread_init(void **context)
{
#if defined(BROKEN_SAMECTX)
    *context = &g_shared_context;
#elif defined(BROKEN_NOCLOEXEC)
    int *fd = (int *)malloc(sizeof *fd);
    *fd = open("/dev/null", O_RDONLY);
    *context = fd;
#else
    *context = malloc(16);
#endif
    return 1;
}

static int thread_close(void **context)
{
#if defined(BROKEN_NOCLOEXEC)
    close(*(int *)*context);
#endif
#if !defined(BROKEN_SAMECTX)
    free(*context);
#endif
    *context = NULL;
    return 1;
}

static int test_file(void *context, const char *filename, const char *realname, char *reserved,
                     unsigned int reserved_size, char *vir_info, unsigned int vi_size)
{
    char data[4096];
    ssize_t got;
    int fd, files = __atomic_add_fetch(&g_files, 1, __ATOMIC_SEQ_CST);
    (void)context;
    (void)realname;
    (void)reserved;
    (void)reserved_size;
    (void)files;
#if defined(BROKEN_CRASH3)
    if (files == 3)
        *(volatile int *)0 = 1;
#endif
#if defined(BROKEN_CODE7)
    return 7;
#endif
#if defined(BROKEN_REALNAME)
    if (strlen(realname) > 200)
        return AVCHK_IMPOSSIBLE;
#endif
#if defined(BROKEN_OVERFLOW)
    memset(vir_info, 'A', vi_size + 8);
    return AVCHK_OK;
#endif
#if defined(BROKEN_NOTERM)
    memset(vir_info, 'A', vi_size);
    return AVCHK_OK;
#endif
#if defined(BROKEN_ERROR)
    if (strstr(filename, "error") != NULL) {
        snprintf(vir_info, vi_size, "%s", "engine lost");
        return AVCHK_ERROR;
    }
#endif
#if defined(BROKEN_SAMECTX)
    usleep(300000); /* so that two workers overlap */
#endif
#if defined(BROKEN_HANGSCAN)
    if (strstr(filename, "hang") != NULL)
        for (;;)
            pause();
#endif
    fd = open(filename, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(vir_info, vi_size, "cannot open %s", filename);
#if defined(BROKEN_UNOPENED)
        return -1;
#endif
        return AVCHK_FAILED;
    }
    got = read(fd, data, sizeof data - 1);
    close(fd);
    data[got > 0 ? got : 0] = '\0';
    if (got > 0 && strstr(data, "EICAR") != NULL) {
#if defined(BROKEN_HANGEICAR)
        for (;;)
            pause();
#endif
#if defined(BROKEN_NONASCII)
        snprintf(vir_info, vi_size, "%s", "Eicar-\xc3\x9cnicode");
#elif defined(BROKEN_NONAME)
        vir_info[0] = '\0';
#else
        snprintf(vir_info, vi_size, "%s", "Eicar-Test");
#endif
        return AVCHK_VIRUS_FOUND;
    }
    if (vi_size > 0)
        vir_info[0] = '\0';
    return AVCHK_OK;
}

static avir_plugin_extended_thread_iface g_iface = {
    get_info,
    get_error,
    set_config,
    get_config,
    free_config,
    init,
    close_,
    NULL,
    NULL,
    NULL,
    NULL,
    thread_init,
    thread_close,
    test_file,
};

__attribute__((visibility("default"))) avir_plugin_extended_thread_iface *
get_plugin_extended_iface(unsigned int *version)
{
    *version = 2;
    return &g_iface;
}
