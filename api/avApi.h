/*
 * The Kerio antivirus plugin ABI, version 2 ("extended thread" interface).
 *
 * This is the low-level contract between Kerio's avserver and an avir_*.so
 * plugin. A plugin either fills avir_plugin_extended_thread_iface itself, or
 * implements the five functions of avPlugin.h and links avCommon.c, which does it.
 *
 * The layout below is checked at compile time against the two architectures the
 * products' avserver exists for: i386 (System V i386 ABI) and x86_64 (System V
 * AMD64 ABI, LP64). The header has no packing pragmas: each uses its natural layout,
 * so only the interface table (14 pointers) differs; the config and info structs
 * are char arrays and an int, the same bytes on both. On any other target (x32,
 * ARM, ...) the checks fail: no avserver loads such a plugin. docs/ABI.md derives
 * the figures.
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

/* Per architecture: the pointer size, the table's size and the offset of slot n
   (n pointers in: no padding, every member a pointer). */
#if defined(__i386__)
#define AVIR_ABI_NAME "i386"
#define AVIR_ABI_POINTER 4
#define AVIR_ABI_TABLE_SIZE 56
#define AVIR_ABI_SLOT(n) ((n)*4)
#elif defined(__x86_64__) && defined(__LP64__)
#define AVIR_ABI_NAME "x86_64"
#define AVIR_ABI_POINTER 8
#define AVIR_ABI_TABLE_SIZE 112
#define AVIR_ABI_SLOT(n) ((n)*8)
#else
#define AVIR_ABI_NAME "unsupported"
#define AVIR_ABI_POINTER 0 /* fails the check below, with its message */
#define AVIR_ABI_TABLE_SIZE 0
#define AVIR_ABI_SLOT(n) 0
#endif

AVIR_STATIC_ASSERT(sizeof(int) == 4 && sizeof(unsigned int) == 4, "int must be 4 bytes");
AVIR_STATIC_ASSERT(sizeof(void *) == AVIR_ABI_POINTER,
                   "Kerio avserver loads i386 or x86_64 (LP64) plugins only: build with the "
                   "i386 or the x86_64 toolchain (cmake/toolchains/, KERIO_ARCH)");
/* The same on both architectures: char arrays and an int, alignment 4 at most. */
AVIR_STATIC_ASSERT(sizeof(avir_plugin_config) == 160, "avir_plugin_config is 160 bytes");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_config, name) == 0, "config.name at 0");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_config, value) == 32, "config.value at 32");
AVIR_STATIC_ASSERT(sizeof(avir_plugin_info) == 260, "avir_plugin_info is 260 bytes");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_info, name) == 0, "info.name at 0");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_info, description) == 64, "info.description at 64");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_info, reserved) == 192, "info.reserved at 192");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_info, reserved2) == 256, "info.reserved2 at 256");
/* The table: 14 pointers, 56 bytes on i386 and 112 on x86_64. */
AVIR_STATIC_ASSERT(sizeof(avir_plugin_extended_thread_iface) == AVIR_ABI_TABLE_SIZE,
                   "the table is 14 pointers");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, get_plugin_info) == AVIR_ABI_SLOT(0), "slot 0");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, get_error_message) == AVIR_ABI_SLOT(1), "slot 1");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, set_plugin_config) == AVIR_ABI_SLOT(2), "slot 2");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, get_plugin_config) == AVIR_ABI_SLOT(3), "slot 3");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, free_plugin_config) == AVIR_ABI_SLOT(4), "slot 4");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, plugin_init) == AVIR_ABI_SLOT(5), "slot 5");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, plugin_close) == AVIR_ABI_SLOT(6), "slot 6");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, reserved1) == AVIR_ABI_SLOT(7), "slot 7");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, reserved4) == AVIR_ABI_SLOT(10), "slot 10");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, plugin_thread_init) == AVIR_ABI_SLOT(11), "slot 11");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, plugin_thread_close) == AVIR_ABI_SLOT(12), "slot 12");
AVIR_STATIC_ASSERT(offsetof(avir_plugin_extended_thread_iface, plugin_thread_test_file) == AVIR_ABI_SLOT(13),
                   "slot 13");

#ifdef __cplusplus
}
#endif

#endif /* KERIO_AV_API_H */
