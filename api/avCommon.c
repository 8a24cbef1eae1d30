/*
 * Glue from the simple API (avPlugin.h) to the products' interface table
 * (avApi.h). Every plugin built on avPlugin.h links this file; it owns the
 * option store, the error message, the log callback and the output hygiene,
 * so that a plugin author cannot get those parts of the contract wrong.
 */
#include "avPlugin.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AVC_MAX_OPTIONS 64
#define AVC_CONTEXT_MAGIC 0x4b415643u /* "KAVC": tells a real context from garbage */

#if defined(__GNUC__)
#define AVC_EXPORT __attribute__((visibility("default")))
#else
#define AVC_EXPORT
#endif

typedef struct avc_context_s {
    unsigned int magic;
    void *user;
} avc_context;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_values[AVC_MAX_OPTIONS][sizeof(((avir_plugin_config *)0)->value)];
static int g_values_ready; /* under g_lock */
static char g_error[MAX_STRING];
static int g_initialised; /* under g_lock */
/* Names set_plugin_config was given that no option has: said in the log at
   plugin_init (the first moment there is a log), so a misspelt option is seen. */
static char g_unknown[MAX_STRING / 2]; /* under g_lock */
static AV_LOG_CALLBACK_NEW g_log;      /* read and written atomically */

static size_t option_count(void)
{
    return avp_plugin.option_count < AVC_MAX_OPTIONS ? avp_plugin.option_count : AVC_MAX_OPTIONS;
}

/* Copies a possibly unterminated fixed-size field into a terminated string. */
static void copy_field(char *dst, size_t dst_size, const char *src, size_t src_size)
{
    size_t n = 0;
    while (n < src_size && n + 1 < dst_size && src[n] != '\0') {
        dst[n] = src[n];
        n++;
    }
    dst[n] = '\0';
}

/* Caller holds g_lock. */
static void load_defaults_locked(void)
{
    size_t i;
    if (g_values_ready)
        return;
    for (i = 0; i < option_count(); i++)
        avc_ascii_copy(g_values[i], sizeof g_values[i], avp_plugin.options[i].default_value);
    g_values_ready = 1;
}

/* Caller holds g_lock. Returns the option's index or -1. */
static int find_option_locked(const char *name)
{
    size_t i;
    for (i = 0; i < option_count(); i++)
        if (strcasecmp(avp_plugin.options[i].name, name) == 0)
            return (int)i;
    return -1;
}

size_t avc_ascii_copy(char *dst, size_t size, const char *src)
{
    size_t len, n;
    if (dst == NULL || size == 0)
        return 0;
    if (src == NULL)
        src = "";
    len = strlen(src);
    while (len > 0 && (src[len - 1] == '\n' || src[len - 1] == '\r'))
        len--;
    for (n = 0; n < len && n + 1 < size; n++) {
        unsigned char c = (unsigned char)src[n];
        if (c == '\t')
            c = ' ';
        dst[n] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = '\0';
    return n;
}

static void vformat(char *dst, size_t size, const char *format, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void vlog(const char *prefix, const char *format, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void vformat(char *dst, size_t size, const char *format, va_list ap)
{
    char raw[MAX_STRING];
    if (size == 0)
        return;
    if (vsnprintf(raw, sizeof raw, format, ap) < 0)
        raw[0] = '\0';
    avc_ascii_copy(dst, size, raw);
}

void avc_format(char *dst, size_t size, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    vformat(dst, size, format, ap);
    va_end(ap);
}

static void vlog(const char *prefix, const char *format, va_list ap)
{
    char text[MAX_STRING - 8];
    AV_LOG_CALLBACK_NEW log = __atomic_load_n(&g_log, __ATOMIC_ACQUIRE);
    if (log == NULL)
        return;
    vformat(text, sizeof text, format, ap);
    /* The text is never the format: it may hold a file name or a server's reply. */
    if (prefix[0] != '\0')
        log("%s%s", prefix, text);
    else
        log("%s", text);
}

#define AVC_DEFINE_LOG(fn, prefix)   \
    void fn(const char *format, ...) \
    {                                \
        va_list ap;                  \
        va_start(ap, format);        \
        vlog(prefix, format, ap);    \
        va_end(ap);                  \
    }
AVC_DEFINE_LOG(avc_log_debug, "")
AVC_DEFINE_LOG(avc_log_warning, "WRN: ")
AVC_DEFINE_LOG(avc_log_error, "ERR: ")
AVC_DEFINE_LOG(avc_log_security, "SEC: ")

void avc_set_error(const char *format, ...)
{
    char text[MAX_STRING];
    va_list ap;
    va_start(ap, format);
    vformat(text, sizeof text, format, ap);
    va_end(ap);
    pthread_mutex_lock(&g_lock);
    memcpy(g_error, text, sizeof g_error);
    pthread_mutex_unlock(&g_lock);
    avc_log_error("%s", text);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int avc_option(const char *name, char *buf, size_t size)
{
    int index;
    if (buf == NULL || size == 0)
        return 0;
    buf[0] = '\0';
    if (name == NULL)
        return 0;
    pthread_mutex_lock(&g_lock);
    load_defaults_locked();
    index = find_option_locked(name);
    if (index >= 0) {
        /* Administrators paste values with stray blanks; strtol forgives leading
           ones only, so every reader gets them trimmed on both sides. The stored
           value stays verbatim: get_plugin_config must read back what was set. */
        const char *value = g_values[index];
        size_t start = 0, end = 0;
        while (end < sizeof g_values[index] && value[end] != '\0')
            end++;
        while (start < end && is_blank(value[start]))
            start++;
        while (end > start && is_blank(value[end - 1]))
            end--;
        copy_field(buf, size, value + start, end - start);
    }
    pthread_mutex_unlock(&g_lock);
    return index >= 0;
}

long avc_option_long(const char *name, long fallback, long min, long max)
{
    char text[sizeof(((avir_plugin_config *)0)->value)];
    char *end = NULL;
    long value;
    if (!avc_option(name, text, sizeof text))
        return fallback;
    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        avc_log_warning("option %s=\"%s\" is not a number; using %ld", name, text, fallback);
        return fallback;
    }
    if (value < min)
        return min;
    if (value > max)
        return max;
    return value;
}

/* --- the interface table --- */

static void iface_get_plugin_info(avir_plugin_info *info)
{
    if (info == NULL)
        return;
    memset(info, 0, sizeof *info);
    avc_ascii_copy(info->name, sizeof info->name, avp_plugin.name);
    avc_ascii_copy(info->description, sizeof info->description, avp_plugin.description);
}

static void iface_get_error_message(char *buffer, int bufsize)
{
    if (buffer == NULL || bufsize <= 0)
        return;
    pthread_mutex_lock(&g_lock);
    avc_ascii_copy(buffer, (size_t)bufsize, g_error);
    pthread_mutex_unlock(&g_lock);
}

static int iface_set_plugin_config(const avir_plugin_config *config)
{
    int stored = 0;
    if (config == NULL)
        return 0;
    pthread_mutex_lock(&g_lock);
    load_defaults_locked();
    g_unknown[0] = '\0';
    for (; config->name[0] != '\0'; config++) {
        char name[sizeof config->name + 1];
        int index;
        copy_field(name, sizeof name, config->name, sizeof config->name);
        index = find_option_locked(name);
        if (index < 0) {
            /* Ignored (another version's option, or a typo), but remembered to be said. */
            size_t used = strlen(g_unknown);
            if (used + strlen(name) + 3 < sizeof g_unknown)
                snprintf(g_unknown + used, sizeof g_unknown - used, "%s%s", used ? ", " : "", name);
            continue;
        }
        {
            char value[sizeof config->value + 1];
            copy_field(value, sizeof value, config->value, sizeof config->value);
            avc_ascii_copy(g_values[index], sizeof g_values[index], value);
        }
        stored++;
    }
    pthread_mutex_unlock(&g_lock);
    return stored;
}

static avir_plugin_config *iface_get_plugin_config(void)
{
    size_t i, count = option_count();
    avir_plugin_config *copy = (avir_plugin_config *)calloc(count + 1, sizeof *copy);
    if (copy == NULL)
        return NULL;
    pthread_mutex_lock(&g_lock);
    load_defaults_locked();
    for (i = 0; i < count; i++) {
        avc_ascii_copy(copy[i].name, sizeof copy[i].name, avp_plugin.options[i].name);
        memcpy(copy[i].value, g_values[i], sizeof copy[i].value);
    }
    pthread_mutex_unlock(&g_lock);
    return copy; /* calloc left the terminating entry empty */
}

static void iface_free_plugin_config(avir_plugin_config *config)
{
    free(config);
}

static void warn_unknown_options(void)
{
    char unknown[sizeof g_unknown], known[MAX_STRING / 2] = "";
    size_t i;
    pthread_mutex_lock(&g_lock);
    memcpy(unknown, g_unknown, sizeof unknown);
    pthread_mutex_unlock(&g_lock);
    if (unknown[0] == '\0')
        return;
    for (i = 0; i < option_count(); i++) {
        size_t used = strlen(known);
        snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", avp_plugin.options[i].name);
    }
    avc_log_warning("%s ignores the option(s) %s: not among its options (%s)", avp_plugin.name,
                    unknown, known);
}

static int iface_plugin_init(AV_LOG_CALLBACK_NEW log_callback)
{
    int ok;
    pthread_mutex_lock(&g_lock);
    load_defaults_locked();
    g_error[0] = '\0';
    ok = g_initialised;
    pthread_mutex_unlock(&g_lock);
    __atomic_store_n(&g_log, log_callback, __ATOMIC_RELEASE);
    if (ok) {
        avc_log_warning("%s: plugin_init called twice; keeping the running engine", avp_plugin.name);
        return 1;
    }
    warn_unknown_options();
    ok = avp_init() ? 1 : 0;
    if (!ok) {
        pthread_mutex_lock(&g_lock);
        if (g_error[0] == '\0')
            avc_ascii_copy(g_error, sizeof g_error, "plugin initialisation failed");
        pthread_mutex_unlock(&g_lock);
    }
    pthread_mutex_lock(&g_lock);
    g_initialised = ok;
    pthread_mutex_unlock(&g_lock);
    return ok;
}

static int iface_plugin_close(void)
{
    int was;
    pthread_mutex_lock(&g_lock);
    was = g_initialised;
    g_initialised = 0;
    pthread_mutex_unlock(&g_lock);
    if (was)
        avp_close();
    __atomic_store_n(&g_log, (AV_LOG_CALLBACK_NEW)NULL, __ATOMIC_RELEASE);
    return 1;
}

static int is_initialised(void)
{
    int ok;
    pthread_mutex_lock(&g_lock);
    ok = g_initialised;
    pthread_mutex_unlock(&g_lock);
    return ok;
}

static int iface_plugin_thread_init(void **context)
{
    avc_context *ctx;
    if (context == NULL)
        return 0;
    *context = NULL;
    if (!is_initialised()) {
        avc_set_error("%s: plugin_thread_init called before plugin_init", avp_plugin.name);
        return 0;
    }
    ctx = (avc_context *)calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        avc_set_error("%s: out of memory for a thread context", avp_plugin.name);
        return 0;
    }
    if (!avp_thread_init(&ctx->user)) {
        free(ctx);
        return 0;
    }
    ctx->magic = AVC_CONTEXT_MAGIC;
    *context = ctx;
    return 1;
}

static int iface_plugin_thread_close(void **context)
{
    avc_context *ctx;
    if (context == NULL || *context == NULL)
        return 0;
    ctx = (avc_context *)*context;
    if (ctx->magic != AVC_CONTEXT_MAGIC)
        return 0;
    avp_thread_close(ctx->user);
    ctx->magic = 0;
    free(ctx);
    *context = NULL;
    return 1;
}

static int iface_plugin_thread_test_file(void *context, const char *filename, const char *realname,
                                         char *reserved, unsigned int reserved_size,
                                         char *vir_info, unsigned int vi_size)
{
    char result[AVP_RESULT_SIZE];
    avc_context *ctx = (avc_context *)context;
    int code;
    (void)reserved;
    (void)reserved_size;
    result[0] = '\0';
    if (!is_initialised()) {
        avc_format(result, sizeof result, "%s: scan requested before plugin_init", avp_plugin.name);
        code = AVCHK_ERROR;
    } else if (ctx == NULL || ctx->magic != AVC_CONTEXT_MAGIC) {
        avc_format(result, sizeof result, "%s: scan requested without a thread context",
                   avp_plugin.name);
        code = AVCHK_ERROR;
    } else if (filename == NULL || filename[0] == '\0') {
        avc_format(result, sizeof result, "no file name given");
        code = AVCHK_FAILED;
    } else {
        code = avp_test_file(ctx->user, filename, realname, result);
        result[sizeof result - 1] = '\0';
        if (code < AVCHK_FAILED || code > AVCHK_ERROR) {
            avc_log_error("%s returned the unknown code %d for %s", avp_plugin.name, code, filename);
            avc_format(result, sizeof result,
                       "internal error scanning %s: the plugin returned the unknown code %d",
                       filename, code);
            code = AVCHK_FAILED;
        }
    }
    if (code == AVCHK_ERROR)
        avc_log_error("%s", result);
    if (vir_info != NULL)
        avc_ascii_copy(vir_info, vi_size, result);
    return code;
}

/*
 * Unloading. The products dlclose() a plugin after plugin_close and later leave
 * through exit(). A C++ static (or an atexit handler) registers its destructor
 * with __cxa_atexit under this library's __dso_handle; dlclose must run those
 * entries before the code is unmapped, which glibc does only when the library
 * itself calls __cxa_finalize(__dso_handle) from its finalizers. gcc's
 * crtbeginS.o adds that call; zig's linker does not, so without this function a
 * zig-built plugin leaves its destructors on the process's exit list and exit()
 * jumps into unmapped code. Calling it again where crtbeginS.o also does is
 * harmless: an entry runs once.
 */
extern void *__dso_handle __attribute__((visibility("hidden")));
extern void __cxa_finalize(void *dso);

__attribute__((destructor)) static void avc_finalize_on_unload(void)
{
    __cxa_finalize(&__dso_handle);
}

static avir_plugin_extended_thread_iface g_iface = {
    iface_get_plugin_info,
    iface_get_error_message,
    iface_set_plugin_config,
    iface_get_plugin_config,
    iface_free_plugin_config,
    iface_plugin_init,
    iface_plugin_close,
    NULL,
    NULL,
    NULL,
    NULL,
    iface_plugin_thread_init,
    iface_plugin_thread_close,
    iface_plugin_thread_test_file,
};

AVC_EXPORT avir_plugin_extended_thread_iface *get_plugin_extended_iface(unsigned int *version)
{
    if (version != NULL)
        *version = AVIR_PLUGIN_IFACE_VERSION;
    return &g_iface;
}
