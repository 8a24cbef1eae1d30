/*
 * libFuzzer harness for the option handling of api/avCommon.c: set_plugin_config
 * with arbitrary config arrays (fields need not be NUL-terminated), then
 * get_plugin_config, avc_option and avc_option_long, as avir_clam reads them.
 * Input: text lines "Name=Value"; each becomes one avir_plugin_config entry, the
 * bytes copied without a terminator when they fill the field (32/128 bytes), and
 * the harness appends the terminating entry. Built with clang -m32 (avApi.h
 * asserts the i386 layout).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "avPlugin.h"

/* The ClamAV plugin's option table (clam/src/config.cpp), copied: that file needs Boost. */
static const avp_option options[] = {
    {"Address", "127.0.0.1"},
    {"Port", "3310"},
    {"StartupTimeout", "90"},
    {"LocalSocket", ""},
    {"ScanTimeout", "120"},
    {"ChunkSize", "65536"},
    {"MaxFileSize", "0"},
    {"KeepAliveInterval", "10"},
};
const avp_plugin_desc avp_plugin = {"avir_fuzz", "option fuzzing harness", options,
                                    sizeof options / sizeof options[0]};

int avp_init(void)
{
    return 1;
}
void avp_close(void)
{}
int avp_thread_init(void **context)
{
    *context = (void *)1;
    return 1;
}
void avp_thread_close(void *context)
{
    (void)context;
}
int avp_test_file(void *c, const char *f, const char *r, char *result)
{
    (void)c;
    (void)f;
    (void)r;
    result[0] = '\0';
    return AVCHK_OK;
}

avir_plugin_extended_thread_iface *get_plugin_extended_iface(unsigned int *version);

static void check_field(const char *s, size_t size)
{
    size_t n = strnlen(s, size);
    if (n == size)
        abort(); /* not terminated */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static avir_plugin_extended_thread_iface *iface;
    unsigned int version = 0;
    if (!iface)
        iface = get_plugin_extended_iface(&version);

    size_t n = 1;
    for (size_t k = 0; k < size; k++)
        n += data[k] == '\n';
    avir_plugin_config *config = calloc(n + 1, sizeof *config);
    if (!config)
        return 0;
    size_t count = 0, at = 0;
    while (at < size && count < n) {
        const uint8_t *line = data + at, *nl = memchr(line, '\n', size - at);
        size_t len = nl ? (size_t)(nl - line) : size - at;
        const uint8_t *eq = memchr(line, '=', len);
        size_t name_len = eq ? (size_t)(eq - line) : len;
        size_t value_len = eq ? len - name_len - 1 : 0;
        memcpy(config[count].name, line, name_len < 32 ? name_len : 32);
        if (eq)
            memcpy(config[count].value, eq + 1, value_len < 128 ? value_len : 128);
        if (config[count].name[0] == '\0')
            break; /* an empty name ends the array, as for the products */
        count++;
        at += len + 1;
    }
    int accepted = iface->set_plugin_config(config);
    if (accepted < 0 || (size_t)accepted > count)
        abort();
    free(config);

    avir_plugin_config *got = iface->get_plugin_config();
    size_t i = 0;
    for (; got && got[i].name[0] != '\0'; i++) {
        if (i >= avp_plugin.option_count)
            abort();
        check_field(got[i].name, sizeof got[i].name);
        check_field(got[i].value, sizeof got[i].value);
    }
    iface->free_plugin_config(got);

    char buf[129];
    long v;
    for (size_t k = 0; k < avp_plugin.option_count; k++) {
        avc_option(options[k].name, buf, sizeof buf);
        check_field(buf, sizeof buf);
    }
    if ((v = avc_option_long("StartupTimeout", 90, 10, 100)) < 10 || v > 100)
        abort();
    if ((v = avc_option_long("ChunkSize", 65536, 4096, 1048576)) < 4096 || v > 1048576)
        abort();
    if ((v = avc_option_long("Port", -1, -1, 99999)) < -1 || v > 99999)
        abort();
    return 0;
}
