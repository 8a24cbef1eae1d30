/*
 * Loading a plugin the way avserver does, and checking each step of the ABI
 * contract (docs/ABI.md) as it goes: entry point, version, table shape,
 * plugin info, options, plugin_init with the recording log callback
 * (plugin_log.c), plugin_close under a watchdog, and the file descriptors left
 * behind. The exports are read from the file by exports.c.
 *
 * Runs in the child process only.
 */
#include "avhost.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---------- loading ---------- */

static const char *const slot_names[14] = {
    "get_plugin_info", "get_error_message", "set_plugin_config", "get_plugin_config",
    "free_plugin_config", "plugin_init", "plugin_close", "reserved1",
    "reserved2", "reserved3", "reserved4", "plugin_thread_init",
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

/* The 14 slots: reserved 7..10 NULL, every other one set. Returns 0 when a
   function is missing. */
static int check_slots(plugin *p, rec *r, violations *v)
{
    void **slots = (void **)p->iface;
    int i, ok = 1;
    for (i = 0; i < 14; i++) {
        int reserved = i >= 7 && i <= 10;
        if (reserved && slots[i] != NULL)
            viol_add(v, "slot %d (%s) must be NULL", i, slot_names[i]);
        if (!reserved && slots[i] == NULL) {
            viol_add(v, "slot %d (%s) is NULL", i, slot_names[i]);
            ok = 0;
        }
    }
    rec_int(r, "slots", 14);
    return ok;
}

/* dlopen, the entry point, the shape of its table and the file's exports.
   Returns 0 when the plugin cannot be used at all. */
static int open_plugin(plugin *p, const char *path, rec *r, violations *v)
{
    unsigned int version = 0xDEADBEEFu;
    get_plugin_extended_iface_fn entry;
    char why[1024];
    int ok;
    if (elf_kind_mismatch(path, why, sizeof why)) {
        rec_str(r, "error", why); /* dlopen would say only "wrong ELF class" */
        return 0;
    }
    chan_printf("P dlopen");
    p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (p->handle == NULL) {
        const char *err = dlerror();
        rec_str(r, "error", err ? err : "dlopen failed");
        return 0;
    }
    chan_printf("P " AVIR_ENTRY_POINT);
    entry = (get_plugin_extended_iface_fn)dlsym(p->handle, AVIR_ENTRY_POINT);
    if (entry == NULL) {
        viol_add(v, "does not export " AVIR_ENTRY_POINT);
        return 0;
    }
    p->iface = entry(&version);
    rec_int(r, "version", version);
    if (version != AVIR_PLUGIN_IFACE_VERSION)
        viol_add(v, AVIR_ENTRY_POINT " set *version to %u, expected 2", version);
    if (p->iface == NULL) {
        viol_add(v, AVIR_ENTRY_POINT " returned NULL");
        return 0;
    }
    ok = check_slots(p, r, v);
    check_exports(path, v);
    return ok;
}

/* get_plugin_info: terminated, ASCII, named like the file, reserved zeroed. */
static void check_info(plugin *p, const char *path, rec *r, violations *v)
{
    avir_plugin_info info;
    char expect_name[64];
    int i;
    chan_printf("P get_plugin_info");
    memset(&info, AVHOST_CANARY, sizeof info);
    p->iface->get_plugin_info(&info);
    if (field_len(info.name, sizeof info.name) == sizeof info.name)
        viol_add(v, "get_plugin_info: name has no NUL within 64 bytes");
    if (field_len(info.description, sizeof info.description) == sizeof info.description)
        viol_add(v, "get_plugin_info: description has no NUL within 128 bytes");
    info.name[sizeof info.name - 1] = '\0';
    info.description[sizeof info.description - 1] = '\0';
    if ((i = first_non_ascii(info.name, strlen(info.name))) >= 0)
        viol_add(v, "get_plugin_info: name has a non-ASCII byte 0x%02X at offset %d",
                 (unsigned char)info.name[i], i);
    if ((i = first_non_ascii(info.description, strlen(info.description))) >= 0)
        viol_add(v, "get_plugin_info: description has a non-ASCII byte 0x%02X at offset %d",
                 (unsigned char)info.description[i], i);
    plugin_name_of(path, expect_name, sizeof expect_name);
    if (strcmp(info.name, expect_name) != 0)
        viol_add(v, "get_plugin_info: name \"%.64s\" differs from the file name \"%s\"",
                 info.name, expect_name);
    for (i = 0; i < (int)sizeof info.reserved; i++)
        if (info.reserved[i] != 0) {
            viol_add(v, "get_plugin_info: reserved is not zeroed (byte %d is 0x%02X)", i,
                     (unsigned char)info.reserved[i]);
            break;
        }
    if (info.reserved2 != 0)
        viol_add(v, "get_plugin_info: reserved2 is %d, must be 0", info.reserved2);
    snprintf(p->name, sizeof p->name, "%s", info.name);
    rec_str(r, "name", info.name);
    rec_str(r, "description", info.description);
}

/* The plugin's options (p->defaults), from get_plugin_config; a second call
   must return a fresh copy, and both are handed back to free_plugin_config. */
static void read_defaults(plugin *p, rec *r, violations *v)
{
    avir_plugin_config *cfg, *cfg2;
    chan_printf("P get_plugin_config");
    cfg = p->iface->get_plugin_config();
    if (cfg == NULL) {
        viol_add(v, "get_plugin_config returned NULL");
    } else {
        p->default_count = read_config(cfg, p->defaults, AVHOST_MAX_OPTIONS, "get_plugin_config",
                                       v);
        cfg2 = p->iface->get_plugin_config();
        if (cfg2 == cfg)
            viol_add(v, "get_plugin_config returned the same pointer twice: not a fresh copy");
        chan_printf("P free_plugin_config");
        if (cfg2 != NULL && cfg2 != cfg)
            p->iface->free_plugin_config(cfg2);
        p->iface->free_plugin_config(cfg);
    }
    rec_options(r, "options", p->defaults, p->default_count);
}

/* What the product passes: its stored options (the defaults) with the
   user's values, or with --raw-config exactly the -o list. `given` has room
   for AVHOST_MAX_OPTIONS + 1 entries and ends with an empty one. Returns how
   many options it holds. */
static int product_options(const plugin *p, avir_plugin_config *given)
{
    int given_count = 0, i, j;
    memset(given, 0, (AVHOST_MAX_OPTIONS + 1) * sizeof *given);
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
    return given_count;
}

/* How many of the given names the plugin reported (compared case-insensitively):
   what set_plugin_config must return. */
static int known_options(const plugin *p, const avir_plugin_config *given, int given_count)
{
    int expected = 0, i, j;
    for (i = 0; i < given_count; i++)
        for (j = 0; j < p->default_count; j++)
            if (strcasecmp(given[i].name, p->defaults[j].name) == 0) {
                expected++;
                break;
            }
    return expected;
}

/* The -o names the plugin does not have (a typo, another version's option): not a
   violation, the product passes such names too, but said, in the record and on stderr. */
static void unknown_options(const plugin *p, rec *r)
{
    char names[512] = "";
    int i, j;
    for (i = 0; i < g_settings.option_count; i++) {
        int known = 0;
        for (j = 0; j < p->default_count && !known; j++)
            known = strcasecmp(g_settings.options[i].name, p->defaults[j].name) == 0;
        if (!known) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "",
                     g_settings.options[i].name);
        }
    }
    rec_str(r, "unknown_options", names);
    if (names[0] != '\0') {
        char list[512] = "";
        for (j = 0; j < p->default_count; j++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s", j ? ", " : "", p->defaults[j].name);
        }
        fprintf(stderr, "avhost: warning: %s has no option %s (its options: %s)\n", p->name,
                names, list);
    }
}

/* Every given ASCII value of an option the plugin knows must read back as set. */
static void check_read_back(const avir_plugin_config *given, int given_count,
                            const avir_plugin_config *after, int after_count, violations *v)
{
    int i, j;
    for (i = 0; i < given_count; i++)
        for (j = 0; j < after_count; j++)
            if (strcasecmp(given[i].name, after[j].name) == 0 &&
                first_non_ascii(given[i].value, strlen(given[i].value)) < 0 &&
                strcmp(given[i].value, after[j].value) != 0)
                viol_add(v, "option %s reads back as \"%s\" after set_plugin_config set \"%s\"",
                         after[j].name, after[j].value, given[i].value);
}

/* set_plugin_config with what the product would pass, its return value, and
   the options read back after it. */
static void set_options(plugin *p, rec *r, violations *v)
{
    avir_plugin_config given[AVHOST_MAX_OPTIONS + 1];
    avir_plugin_config after[AVHOST_MAX_OPTIONS];
    avir_plugin_config *cfg;
    int given_count = product_options(p, given);
    int expected = known_options(p, given, given_count), accepted, after_count = 0;
    chan_printf("P set_plugin_config");
    accepted = p->iface->set_plugin_config(given);
    rec_int(r, "given", given_count);
    rec_int(r, "accepted", accepted);
    rec_int(r, "known", expected);
    unknown_options(p, r);
    if (accepted != expected)
        viol_add(v, "set_plugin_config returned %d, but %d of the %d options given are names "
                    "the plugin reported (compared case-insensitively)",
                 accepted, expected, given_count);
    cfg = p->iface->get_plugin_config();
    if (cfg != NULL) {
        after_count = read_config(cfg, after, AVHOST_MAX_OPTIONS, "get_plugin_config", v);
        p->iface->free_plugin_config(cfg);
        check_read_back(given, given_count, after, after_count, v);
    }
    rec_options(r, "options_after", after, after_count);
}

int plugin_load(plugin *p, const char *path)
{
    violations v;
    rec r;
    int usable;
    v.count = 0;
    memset(p, 0, sizeof *p);
    rec_begin(&r, "load");
    rec_str(&r, "plugin", path);
    rec_int(&r, "pid", (long long)getpid());
    usable = open_plugin(p, path, &r, &v);
    if (usable) {
        check_info(p, path, &r, &v);
        read_defaults(p, &r, &v);
        set_options(p, &r, &v);
    }
    rec_violations(&r, &v);
    chan_event(&r, &v);
    return usable;
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
    int ret, fds_after;
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
    log_counts_add(&r);
    rec_violations(&r, &v);
    chan_event(&r, &v);
    return ret;
}
