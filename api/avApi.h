/*
 * The Kerio antivirus plugin ABI, version 2 ("extended thread" interface).
 *
 * This is the low-level contract between Kerio's avserver and an avir_*.so
 * plugin. A plugin either fills avir_plugin_extended_thread_iface itself, or
 * implements the five functions of avPlugin.h and links avCommon.c, which does it.
 *
 * The layout below is checked at compile time: on anything but the i386
 * System V ABI these checks fail, because the products only load 32-bit plugins.
 */
#ifndef KERIO_AV_API_H
#define KERIO_AV_API_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AVIR_PLUGIN_IFACE_VERSION 2
#define AVIR_ENTRY_POINT "get_plugin_extended_iface"

/* Longest error or log message the products accept, terminator included. */
#define MAX_STRING 512

/* Result of one scan. */
#define AVCHK_FAILED 0      /* error while scanning this file */
#define AVCHK_OK 1          /* clean */
#define AVCHK_VIRUS_FOUND 2 /* infected; vir_info holds the virus name */
#define AVCHK_VIRUS_CURED 3 /* cured (the products do not use it) */
#define AVCHK_IMPOSSIBLE 4  /* cannot tell: encrypted, corrupted, over a limit */
#define AVCHK_ERROR 5       /* plugin cannot go on: the product restarts avserver */

typedef struct avir_plugin_config_s {
    char name[32];   /* option name, US-ASCII; "" ends an array */
    char value[128]; /* option value, US-ASCII */
} avir_plugin_config;

typedef struct avir_plugin_info_s {
    char name[64];         /* library name without path and ".so", e.g. "avir_clam" */
    char description[128]; /* antivirus and plugin version */
    char reserved[64];     /* must be "" */
    int reserved2;         /* must be 0 */
} avir_plugin_info;

/*
 * Log sink handed to plugin_init. printf-like; the message has no trailing
 * newline and its prefix sets its kind: "ERR: ", "WRN: ", "SEC: ", "PRO: ",
 * none for debug. Never pass outside text as the format.
 */
typedef void (*AV_LOG_CALLBACK_NEW)(const char *format, ...);

typedef struct avir_plugin_extended_thread_iface_s {
    void (*get_plugin_info)(avir_plugin_info *info);
    void (*get_error_message)(char *buffer, int bufsize);
    int (*set_plugin_config)(const avir_plugin_config *config);
    avir_plugin_config *(*get_plugin_config)(void);
    void (*free_plugin_config)(avir_plugin_config *config);
    int (*plugin_init)(AV_LOG_CALLBACK_NEW log_callback);
    int (*plugin_close)(void);
    int (*reserved1)(void); /* reserved1..4 must be NULL */
    int (*reserved2)(void);
    int (*reserved3)(void);
    int (*reserved4)(void);
    int (*plugin_thread_init)(void **context);
    int (*plugin_thread_close)(void **context);
    int (*plugin_thread_test_file)(void *context, const char *filename, const char *realname,
                                   char *reserved, unsigned int reserved_size, char *vir_info,
                                   unsigned int vi_size);
} avir_plugin_extended_thread_iface;

/* The one symbol a plugin exports: sets *version to 2 and returns a table that
   stays valid while the library is loaded. */
avir_plugin_extended_thread_iface *get_plugin_extended_iface(unsigned int *version);
typedef avir_plugin_extended_thread_iface *(*get_plugin_extended_iface_fn)(unsigned int *version);

/* --- compile-time checks of every size and offset the products rely on --- */
#if defined(__cplusplus)
#define AVIR_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define AVIR_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

AVIR_STATIC_ASSERT(sizeof(int) == 4 && sizeof(unsigned int) == 4, "int must be 4 bytes");
AVIR_STATIC_ASSERT(sizeof(void *) == 4,
                   "Kerio avserver loads 32-bit (i386) plugins only: build with an i386 toolchain");
AVIR_STATIC_ASSERT(sizeof(avir_plugin_config) == 160, "avir_plugin_config is 160 bytes");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_config, name) == 0, "config.name at 0");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_config, value) == 32, "config.value at 32");
AVIR_STATIC_ASSERT(sizeof(avir_plugin_info) == 260, "avir_plugin_info is 260 bytes");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_info, name) == 0, "info.name at 0");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_info, description) == 64, "info.description at 64");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_info, reserved) == 192, "info.reserved at 192");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_info, reserved2) == 256, "info.reserved2 at 256");
AVIR_STATIC_ASSERT(sizeof(avir_plugin_extended_thread_iface) == 56, "the table is 14 pointers");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, get_plugin_info) == 0, "slot 0");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, get_error_message) == 4, "slot 1");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, set_plugin_config) == 8, "slot 2");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, get_plugin_config) == 12, "slot 3");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, free_plugin_config) == 16, "slot 4");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, plugin_init) == 20, "slot 5");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, plugin_close) == 24, "slot 6");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, reserved1) == 28, "slot 7");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, reserved4) == 40, "slot 10");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, plugin_thread_init) == 44, "slot 11");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, plugin_thread_close) == 48, "slot 12");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, plugin_thread_test_file) == 52,
                   "slot 13");

#ifdef __cplusplus
}
#endif

#endif /* KERIO_AV_API_H */
