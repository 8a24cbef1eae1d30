/*
 * Helpers shared by every plugin built on avPlugin.h: option values, the error
 * message, logging to the product and 7-bit ASCII output.
 *
 * Format strings are the plugin's own literals; text from outside (file names,
 * virus names, server replies) goes in as %s arguments only.
 */
#ifndef KERIO_AV_COMMON_H
#define KERIO_AV_COMMON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define AVC_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define AVC_PRINTF(fmt_index, first_arg)
#endif

/*
 * Copy the current value of option `name` into buf (NUL-terminated, truncated
 * to size), without leading and trailing spaces and tabs: " 3310", "3310 " and
 * "3310" read the same. Returns 1 if the option exists, else 0 and buf = "".
 * get_plugin_config still reports the value exactly as it was set.
 */
int avc_option(const char *name, char *buf, size_t size);

/*
 * The option as a decimal integer clamped to [min, max], trimmed as by
 * avc_option; `fallback` if missing or not a number.
 */
long avc_option_long(const char *name, long fallback, long min, long max);

/* Set the text get_error_message returns (and log it as an error). */
void avc_set_error(const char *format, ...) AVC_PRINTF(1, 2);

/* Log through the product's callback; dropped before plugin_init and after plugin_close. */
void avc_log_debug(const char *format, ...) AVC_PRINTF(1, 2);
void avc_log_warning(const char *format, ...) AVC_PRINTF(1, 2);
void avc_log_error(const char *format, ...) AVC_PRINTF(1, 2);
void avc_log_security(const char *format, ...) AVC_PRINTF(1, 2);

/* printf into dst (size bytes, NUL included), then force 7-bit printable ASCII. */
void avc_format(char *dst, size_t size, const char *format, ...) AVC_PRINTF(3, 4);

/*
 * Copy src into dst (size bytes, NUL included; nothing written when size is 0),
 * replacing every byte that is not printable 7-bit ASCII with '?' and dropping
 * trailing newlines. Returns the number of characters written.
 */
size_t avc_ascii_copy(char *dst, size_t size, const char *src);

#ifdef __cplusplus
}
#endif

#endif /* KERIO_AV_COMMON_H */
