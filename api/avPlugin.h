/*
 * The simple plugin API: describe the plugin with one data table and implement
 * five functions; avCommon.c builds the avApi.h interface table from them and
 * takes care of options, the error message, logging and output hygiene.
 *
 * Threading: avp_test_file runs concurrently on different contexts; one
 * context is only ever used by one thread at a time.
 */
#ifndef KERIO_AV_PLUGIN_H
#define KERIO_AV_PLUGIN_H

#include "avApi.h"
#include "avCommon.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One option the plugin understands, with the value used until the product sets one. */
typedef struct avp_option_s {
    const char *name;          /* compared case-insensitively; at most 31 characters */
    const char *default_value; /* at most 127 characters */
} avp_option;

typedef struct avp_plugin_desc_s {
    const char *name;        /* "avir_<name>", the file name without ".so" */
    const char *description; /* "<Antivirus> plugin <version> for Kerio" */
    const avp_option *options;
    size_t option_count;
} avp_plugin_desc;

/* The plugin's description: define it once in the plugin. */
extern const avp_plugin_desc avp_plugin;

/*
 * Start the engine. Options are set. Return 1 on success, 0 on failure after
 * explaining why with avc_set_error().
 */
int avp_init(void);

/* Stop the engine and free everything avp_init made. */
void avp_close(void);

/*
 * Make one worker's private context (a connection, an SDK handle). Must not
 * start a thread. Return 1 and set *context (NULL is allowed), or 0 after avc_set_error().
 */
int avp_thread_init(void **context);

/* Free what avp_thread_init made. */
void avp_thread_close(void *context);

/*
 * Scan one file. `filename` is the full path, `realname` the original name if
 * known (may be NULL). Write the virus name, or a text saying what went wrong
 * with which file, into `result` (always AVP_RESULT_SIZE bytes; avCommon.c
 * makes it ASCII and truncates it for the product). Return an AVCHK_* code.
 */
#define AVP_RESULT_SIZE MAX_STRING
int avp_test_file(void *context, const char *filename, const char *realname, char *result);

#ifdef __cplusplus
}
#endif

#endif /* KERIO_AV_PLUGIN_H */
