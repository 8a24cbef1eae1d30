/*
 * Loading a plugin the way avserver does, and checking each step of the ABI
 * contract (docs/ABI.md) as it goes: entry point, version, table shape,
 * plugin info, options, plugin_init with a recording log callback, plugin_close
 * under a watchdog, and the file descriptors left behind.
 *
 * Runs in the child process only.
 */
#include "avhost.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------- the channel to the parent ---------- */

static int g_chan = -1;
static pthread_mutex_t g_chan_lock = PTHREAD_MUTEX_INITIALIZER;

void chan_init(int fd)
{
    g_chan = fd;
}

void chan_printf(const char *format, ...)
{
    char stack[1024];
    char *line = stack;
    int n;
    va_list ap;
    va_start(ap, format);
    n = vsnprintf(stack, sizeof stack, format, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof stack) {
        line = (char *)malloc((size_t)n + 1);
        if (line == NULL)
            return;
        va_start(ap, format);
        vsnprintf(line, (size_t)n + 1, format, ap);
        va_end(ap);
    }
    pthread_mutex_lock(&g_chan_lock);
    write_all(g_chan, line, (size_t)n);
    write_all(g_chan, "\n", 1);
    pthread_mutex_unlock(&g_chan_lock);
    if (line != stack)
        free(line);
}

void chan_event(rec *r, const violations *v)
{
    chan_printf("E %d %s", v ? v->count : 0, rec_end(r));
    rec_free(r);
}

const char *verdict_name(int code)
{
    static const char *const names[] = {"FAILED",     "OK",         "VIRUS_FOUND",
                                        "VIRUS_CURED", "IMPOSSIBLE", "ERROR"};
    return code >= 0 && code <= 5 ? names[code] : "INVALID";
}

/* Index of the first byte that is not printable 7-bit ASCII, or -1. */
static int first_non_ascii(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f)
            return (int)i;
    }
    return -1;
}

static size_t field_len(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n] != '\0')
        n++;
    return n;
}

/* ---------- exported symbols, read from the ELF file ---------- */

void check_exports(const char *path, violations *v)
{
    char names[300] = "";
    int extra = 0, i;
    unsigned char *data = NULL;
    struct stat st;
    Elf32_Ehdr *eh;
    Elf32_Shdr *sh;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf32_Ehdr) ||
        st.st_size > 256L * 1024 * 1024)
        goto out;
    data = (unsigned char *)malloc((size_t)st.st_size);
    if (data == NULL || pread(fd, data, (size_t)st.st_size, 0) != (ssize_t)st.st_size)
        goto out;
    eh = (Elf32_Ehdr *)data;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS32 ||
        eh->e_machine != EM_386) {
        viol_add(v, "%s is not an ELF32 i386 (EM_386) file", path);
        goto out;
    }
    if (eh->e_shoff == 0 || eh->e_shentsize != sizeof(Elf32_Shdr) ||
        (off_t)eh->e_shoff + (off_t)eh->e_shnum * (off_t)sizeof(Elf32_Shdr) > st.st_size)
        goto out;
    sh = (Elf32_Shdr *)(data + eh->e_shoff);
    for (i = 0; i < eh->e_shnum; i++) {
        Elf32_Sym *sym;
        const char *strtab;
        size_t count, k, strsize;
        if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_link >= eh->e_shnum)
            continue;
        if ((off_t)sh[i].sh_offset + (off_t)sh[i].sh_size > st.st_size ||
            (off_t)sh[sh[i].sh_link].sh_offset + (off_t)sh[sh[i].sh_link].sh_size > st.st_size)
            break;
        sym = (Elf32_Sym *)(data + sh[i].sh_offset);
        strtab = (const char *)(data + sh[sh[i].sh_link].sh_offset);
        strsize = sh[sh[i].sh_link].sh_size;
        count = sh[i].sh_size / sizeof(Elf32_Sym);
        for (k = 1; k < count; k++) {
            int bind = ELF32_ST_BIND(sym[k].st_info);
            const char *name;
            if (sym[k].st_shndx == SHN_UNDEF || sym[k].st_name >= strsize)
                continue;
            if (bind != STB_GLOBAL && bind != STB_WEAK && bind != STB_GNU_UNIQUE)
                continue;
            if (ELF32_ST_VISIBILITY(sym[k].st_other) != STV_DEFAULT &&
                ELF32_ST_VISIBILITY(sym[k].st_other) != STV_PROTECTED)
                continue;
            name = strtab + sym[k].st_name;
            if (strcmp(name, AVIR_ENTRY_POINT) == 0)
                continue;
            if (extra < 8) {
                size_t used = strlen(names);
                snprintf(names + used, sizeof names - used, "%s%s", extra ? ", " : "", name);
            }
            extra++;
        }
        break;
    }
    if (extra > 0)
        viol_add(v, "exports %d symbol(s) besides " AVIR_ENTRY_POINT ": %s%s", extra, names,
                 extra > 8 ? ", ..." : "");
out:
    if (fd >= 0)
        close(fd);
    free(data);
}

/* ---------- the log callback ---------- */

static __thread const char *tls_current_file;
static long g_log_counts[5]; /* ERR WRN SEC PRO debug */
static const char *const g_kinds[5] = {"ERR", "WRN", "SEC", "PRO", "debug"};

void log_set_current_file(const char *filename)
{
    tls_current_file = filename;
}

static void log_callback(const char *format, ...)
{
    char text[4 * MAX_STRING];
    violations v;
    const char *message = text;
    int n, kind = 4, bad;
    size_t len;
    va_list ap;
    rec r;
    v.count = 0;
    if (format == NULL) {
        viol_add(&v, "log callback called with a NULL format");
        text[0] = '\0';
        n = 0;
    } else {
        va_start(ap, format);
        n = vsnprintf(text, sizeof text, format, ap);
        va_end(ap);
        if (n < 0) {
            text[0] = '\0';
            n = 0;
        }
    }
    len = strlen(text);
    if (n >= MAX_STRING)
        viol_add(&v, "log message is %d bytes, longer than MAX_STRING-1 (%d)", n, MAX_STRING - 1);
    if (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        viol_add(&v, "log message ends with a newline");
    bad = first_non_ascii(text, len);
    if (bad >= 0 && !(text[bad] == '\n' && (size_t)bad == len - 1) &&
        !(text[bad] == '\r' && (size_t)bad >= len - 2))
        viol_add(&v, "log message has a non-ASCII byte 0x%02X at offset %d",
                 (unsigned char)text[bad], bad);
    if (format != NULL && tls_current_file != NULL && tls_current_file[0] != '\0' &&
        strstr(format, tls_current_file) != NULL)
        viol_add(&v, "log format string contains the scanned file name %s: outside text "
                     "must be passed as a %%s argument",
                 tls_current_file);
    if (strncmp(text, "ERR: ", 5) == 0)
        kind = 0;
    else if (strncmp(text, "WRN: ", 5) == 0)
        kind = 1;
    else if (strncmp(text, "SEC: ", 5) == 0)
        kind = 2;
    else if (strncmp(text, "PRO: ", 5) == 0)
        kind = 3;
    if (kind < 4)
        message = text + 5;
    __atomic_add_fetch(&g_log_counts[kind], 1, __ATOMIC_RELAXED);
    if (!g_settings.logs && v.count == 0)
        return;
    rec_begin(&r, "log");
    rec_str(&r, "kind", g_kinds[kind]);
    rec_str(&r, "message", message);
    rec_violations(&r, &v);
    chan_event(&r, &v);
}

/* ---------- loading ---------- */

static const char *const slot_names[14] = {
    "get_plugin_info",    "get_error_message",   "set_plugin_config",      "get_plugin_config",
    "free_plugin_config", "plugin_init",         "plugin_close",           "reserved1",
    "reserved2",          "reserved3",           "reserved4",              "plugin_thread_init",
    "plugin_thread_close", "plugin_thread_test_file"};

/* Walks a config array: checks termination of every field and of the array. */
static int read_config(const avir_plugin_config *cfg, avir_plugin_config *out, int max,
                       const char *what, violations *v)
{
    int i;
    for (i = 0; i < 256; i++) {
        if (cfg[i].name[0] == '\0')
            return i < max ? i : max;
        if (field_len(cfg[i].name, sizeof cfg[i].name) == sizeof cfg[i].name)
            viol_add(v, "%s: option %d has no NUL within its 32-byte name", what, i);
        if (field_len(cfg[i].value, sizeof cfg[i].value) == sizeof cfg[i].value)
            viol_add(v, "%s: option %d has no NUL within its 128-byte value", what, i);
        if (i < max) {
            memcpy(&out[i], &cfg[i], sizeof out[i]);
            out[i].name[sizeof out[i].name - 1] = '\0';
            out[i].value[sizeof out[i].value - 1] = '\0';
        }
    }
    viol_add(v, "%s: no terminating entry (empty name) within 256 entries", what);
    return max < 256 ? max : 256;
}

static void copy_trunc(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    memset(dst + n, 0, size - n);
}

static int plugin_name_of(const char *path, char *out, size_t size)
{
    const char *base = strrchr(path, '/');
    size_t n;
    base = base ? base + 1 : path;
    n = strlen(base);
    if (n > 3 && strcmp(base + n - 3, ".so") == 0)
        n -= 3;
    if (n >= size)
        n = size - 1;
    memcpy(out, base, n);
    out[n] = '\0';
    return (int)n;
}

int plugin_load(plugin *p, const char *path)
{
    violations v;
    rec r;
    unsigned int version = 0xDEADBEEFu;
    get_plugin_extended_iface_fn entry;
    avir_plugin_info info;
    avir_plugin_config *cfg, *cfg2;
    avir_plugin_config given[AVHOST_MAX_OPTIONS + 1];
    avir_plugin_config after[AVHOST_MAX_OPTIONS];
    int given_count = 0, expected = 0, accepted, after_count = 0, i, j, ok = 1;
    char expect_name[64];
    void **slots;
    v.count = 0;
    memset(p, 0, sizeof *p);
    rec_begin(&r, "load");
    rec_str(&r, "plugin", path);
    rec_int(&r, "pid", (long long)getpid());

    chan_printf("P dlopen");
    p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (p->handle == NULL) {
        const char *err = dlerror();
        rec_str(&r, "error", err ? err : "dlopen failed");
        rec_violations(&r, &v);
        chan_event(&r, &v);
        return 0;
    }
    chan_printf("P " AVIR_ENTRY_POINT);
    entry = (get_plugin_extended_iface_fn)dlsym(p->handle, AVIR_ENTRY_POINT);
    if (entry == NULL) {
        viol_add(&v, "does not export " AVIR_ENTRY_POINT);
        rec_violations(&r, &v);
        chan_event(&r, &v);
        return 0;
    }
    p->iface = entry(&version);
    rec_int(&r, "version", version);
    if (version != AVIR_PLUGIN_IFACE_VERSION)
        viol_add(&v, AVIR_ENTRY_POINT " set *version to %u, expected 2", version);
    if (p->iface == NULL) {
        viol_add(&v, AVIR_ENTRY_POINT " returned NULL");
        rec_violations(&r, &v);
        chan_event(&r, &v);
        return 0;
    }
    slots = (void **)p->iface;
    for (i = 0; i < 14; i++) {
        int reserved = i >= 7 && i <= 10;
        if (reserved && slots[i] != NULL)
            viol_add(&v, "slot %d (%s) must be NULL", i, slot_names[i]);
        if (!reserved && slots[i] == NULL) {
            viol_add(&v, "slot %d (%s) is NULL", i, slot_names[i]);
            ok = 0;
        }
    }
    rec_int(&r, "slots", 14);
    check_exports(path, &v);
    if (!ok) {
        rec_violations(&r, &v);
        chan_event(&r, &v);
        return 0;
    }

    chan_printf("P get_plugin_info");
    memset(&info, AVHOST_CANARY, sizeof info);
    p->iface->get_plugin_info(&info);
    if (field_len(info.name, sizeof info.name) == sizeof info.name)
        viol_add(&v, "get_plugin_info: name has no NUL within 64 bytes");
    if (field_len(info.description, sizeof info.description) == sizeof info.description)
        viol_add(&v, "get_plugin_info: description has no NUL within 128 bytes");
    info.name[sizeof info.name - 1] = '\0';
    info.description[sizeof info.description - 1] = '\0';
    if ((i = first_non_ascii(info.name, strlen(info.name))) >= 0)
        viol_add(&v, "get_plugin_info: name has a non-ASCII byte 0x%02X at offset %d",
                 (unsigned char)info.name[i], i);
    if ((i = first_non_ascii(info.description, strlen(info.description))) >= 0)
        viol_add(&v, "get_plugin_info: description has a non-ASCII byte 0x%02X at offset %d",
                 (unsigned char)info.description[i], i);
    plugin_name_of(path, expect_name, sizeof expect_name);
    if (strcmp(info.name, expect_name) != 0)
        viol_add(&v, "get_plugin_info: name \"%.64s\" differs from the file name \"%s\"",
                 info.name, expect_name);
    for (i = 0; i < (int)sizeof info.reserved; i++)
        if (info.reserved[i] != 0) {
            viol_add(&v, "get_plugin_info: reserved is not zeroed (byte %d is 0x%02X)", i,
                     (unsigned char)info.reserved[i]);
            break;
        }
    if (info.reserved2 != 0)
        viol_add(&v, "get_plugin_info: reserved2 is %d, must be 0", info.reserved2);
    snprintf(p->name, sizeof p->name, "%s", info.name);
    rec_str(&r, "name", info.name);
    rec_str(&r, "description", info.description);

    chan_printf("P get_plugin_config");
    cfg = p->iface->get_plugin_config();
    if (cfg == NULL) {
        viol_add(&v, "get_plugin_config returned NULL");
    } else {
        p->default_count = read_config(cfg, p->defaults, AVHOST_MAX_OPTIONS, "get_plugin_config",
                                       &v);
        cfg2 = p->iface->get_plugin_config();
        if (cfg2 == cfg)
            viol_add(&v, "get_plugin_config returned the same pointer twice: not a fresh copy");
        chan_printf("P free_plugin_config");
        if (cfg2 != NULL && cfg2 != cfg)
            p->iface->free_plugin_config(cfg2);
        p->iface->free_plugin_config(cfg);
    }
    rec_options(&r, "options", p->defaults, p->default_count);

    /* What the product passes: its stored options (the defaults) with the
       user's values, or with --raw-config exactly the -o list. */
    memset(given, 0, sizeof given);
    if (!g_settings.raw_config) {
        for (i = 0; i < p->default_count; i++)
            given[given_count++] = p->defaults[i];
    }
    for (j = 0; j < g_settings.option_count; j++) {
        int slot = -1;
        if (!g_settings.raw_config)
            for (i = 0; i < given_count; i++)
                if (strcasecmp(given[i].name, g_settings.options[j].name) == 0)
                    slot = i;
        if (slot < 0) {
            if (given_count >= AVHOST_MAX_OPTIONS)
                break;
            slot = given_count++;
            copy_trunc(given[slot].name, sizeof given[slot].name, g_settings.options[j].name);
        }
        copy_trunc(given[slot].value, sizeof given[slot].value, g_settings.options[j].value);
    }
    for (i = 0; i < given_count; i++)
        for (j = 0; j < p->default_count; j++)
            if (strcasecmp(given[i].name, p->defaults[j].name) == 0) {
                expected++;
                break;
            }
    chan_printf("P set_plugin_config");
    accepted = p->iface->set_plugin_config(given);
    rec_int(&r, "given", given_count);
    rec_int(&r, "accepted", accepted);
    rec_int(&r, "known", expected);
    if (accepted != expected)
        viol_add(&v, "set_plugin_config returned %d, but %d of the %d options given are names "
                     "the plugin reported (compared case-insensitively)",
                 accepted, expected, given_count);
    cfg = p->iface->get_plugin_config();
    if (cfg != NULL) {
        after_count = read_config(cfg, after, AVHOST_MAX_OPTIONS, "get_plugin_config", &v);
        p->iface->free_plugin_config(cfg);
        for (i = 0; i < given_count; i++)
            for (j = 0; j < after_count; j++)
                if (strcasecmp(given[i].name, after[j].name) == 0 &&
                    first_non_ascii(given[i].value, strlen(given[i].value)) < 0 &&
                    strcmp(given[i].value, after[j].value) != 0)
                    viol_add(&v, "option %s reads back as \"%s\" after set_plugin_config set \"%s\"",
                             after[j].name, after[j].value, given[i].value);
    }
    rec_options(&r, "options_after", after, after_count);
    rec_violations(&r, &v);
    chan_event(&r, &v);
    return 1;
}

/* Reads get_error_message into a guarded buffer and checks it. */
static void error_message(plugin *p, char *out, size_t size, violations *v)
{
    char buf[MAX_STRING + AVHOST_GUARD];
    int i;
    memset(buf, AVHOST_CANARY, sizeof buf);
    p->iface->get_error_message(buf, MAX_STRING);
    for (i = MAX_STRING; i < (int)sizeof buf; i++)
        if ((unsigned char)buf[i] != AVHOST_CANARY) {
            viol_add(v, "get_error_message wrote past bufsize=%d (byte %d changed)", MAX_STRING, i);
            break;
        }
    if (field_len(buf, MAX_STRING) == MAX_STRING) {
        viol_add(v, "get_error_message left no NUL within bufsize=%d", MAX_STRING);
        buf[MAX_STRING - 1] = '\0';
    }
    if ((i = first_non_ascii(buf, strlen(buf))) >= 0)
        viol_add(v, "get_error_message: non-ASCII byte 0x%02X at offset %d", (unsigned char)buf[i],
                 i);
    snprintf(out, size, "%s", buf);
}

int plugin_start(plugin *p, int cycle)
{
    violations v;
    rec r;
    int ret;
    char error[MAX_STRING];
    v.count = 0;
    chan_printf("P plugin_init");
    ret = p->iface->plugin_init(log_callback);
    rec_begin(&r, "init");
    rec_int(&r, "cycle", cycle);
    rec_int(&r, "result", ret);
    if (ret != 0 && ret != 1)
        viol_add(&v, "plugin_init returned %d (valid: 1 success, 0 failure)", ret);
    if (ret == 0) {
        error_message(p, error, sizeof error, &v);
        rec_str(&r, "error", error);
        if (error[0] == '\0')
            viol_add(&v, "plugin_init failed and get_error_message says nothing");
    }
    rec_violations(&r, &v);
    chan_event(&r, &v);
    return ret != 0;
}

/* ---------- plugin_close under a watchdog ---------- */

static unsigned char g_fds_at_init[AVHOST_MAX_FDS];

void plugin_fds_mark(void)
{
    fd_snapshot(g_fds_at_init, AVHOST_MAX_FDS);
}

int plugin_stop(plugin *p, int cycle, int fds_before)
{
    violations v;
    rec r;
    int ret, fds_after, i;
    v.count = 0;
    chan_printf("P plugin_close");
    watchdog_arm("plugin_close", "close");
    ret = p->iface->plugin_close();
    watchdog_disarm();
    fds_after = count_fds();
    rec_begin(&r, "close");
    rec_int(&r, "cycle", cycle);
    rec_int(&r, "result", ret);
    if (ret != 0 && ret != 1)
        viol_add(&v, "plugin_close returned %d (valid: 1 success, 0 failure)", ret);
    rec_int(&r, "fds_before_init", fds_before);
    rec_int(&r, "fds_after_close", fds_after);
    if (fds_after > fds_before) {
        char list[200];
        fd_list_new(g_fds_at_init, AVHOST_MAX_FDS, list, sizeof list);
        viol_add(&v, "%d file descriptor(s) left open after plugin_close (cycle %d): %d before "
                     "plugin_init, %d after plugin_close: %s",
                 fds_after - fds_before, cycle, fds_before, fds_after, list);
    }
    rec_int(&r, "peak_rss_kb", peak_rss_kb());
    for (i = 0; i < 5; i++) {
        char k[16];
        snprintf(k, sizeof k, "logs_%s", g_kinds[i]);
        rec_int(&r, k, __atomic_load_n(&g_log_counts[i], __ATOMIC_RELAXED));
    }
    rec_violations(&r, &v);
    chan_event(&r, &v);
    return ret;
}
