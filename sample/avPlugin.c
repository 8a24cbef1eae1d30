/*
 * avir_sample: the skeleton of a Kerio antivirus plugin on the simple API.
 *
 * Copy this folder and api/, rename the plugin, and replace the EICAR search
 * in scan_stream() with calls to your antivirus. Everything around it (options,
 * error message, logging, thread contexts, result codes) is what a real plugin
 * needs as well.
 */
#include "avPlugin.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SAMPLE_VERSION
#define SAMPLE_VERSION "0.0.0" /* CMake passes the project version */
#endif
#define CHUNK_SIZE (64 * 1024)

/* The EICAR anti-virus test file: harmless, detected by every scanner. */
static const char eicar[] =
    "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
#define EICAR_LEN (sizeof eicar - 1)

static const avp_option options[] = {
    {"VirusName", "EICAR-Test-File"}, /* name reported for a hit */
    {"MaxScanSize", "0"},             /* bytes; larger files are IMPOSSIBLE; 0 = no limit */
};

const avp_plugin_desc avp_plugin = {
    "avir_sample",
    "Sample EICAR plugin " SAMPLE_VERSION " for Kerio",
    options,
    sizeof options / sizeof options[0],
};

/* Settings read once in avp_init, so scans need no lock. */
static char virus_name[128];
static long long max_scan_size;

/* One per worker thread: its read buffer, so memory does not grow with file size. */
typedef struct sample_context_s {
    char buffer[EICAR_LEN - 1 + CHUNK_SIZE];
} sample_context;

int avp_init(void)
{
    avc_option("VirusName", virus_name, sizeof virus_name);
    if (virus_name[0] == '\0') {
        avc_set_error("option VirusName must not be empty");
        return 0;
    }
    max_scan_size = avc_option_long("MaxScanSize", 0, 0, 0x7fffffffL);
    avc_log_debug("%s started (VirusName=%s, MaxScanSize=%lld)", avp_plugin.name, virus_name,
                  max_scan_size);
    return 1;
}

void avp_close(void)
{
    avc_log_debug("%s stopped", avp_plugin.name);
}

int avp_thread_init(void **context)
{
    sample_context *ctx = (sample_context *)malloc(sizeof *ctx);
    if (ctx == NULL) {
        avc_set_error("out of memory for a %u-byte scan buffer", (unsigned)sizeof *ctx);
        return 0;
    }
    *context = ctx;
    return 1;
}

void avp_thread_close(void *context)
{
    free(context);
}

/*
 * Reads fd in chunks and looks for the EICAR string; the tail of each chunk is
 * kept in front of the next one so a match across a chunk boundary is found.
 */
static int scan_stream(sample_context *ctx, int fd, const char *filename, char *result)
{
    size_t kept = 0;
    long long total = 0;
    for (;;) {
        ssize_t got = read(fd, ctx->buffer + kept, CHUNK_SIZE);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            avc_format(result, AVP_RESULT_SIZE, "cannot read %s: %s", filename, strerror(errno));
            return AVCHK_FAILED;
        }
        if (got == 0)
            return AVCHK_OK;
        total += got;
        if (max_scan_size > 0 && total > max_scan_size) {
            avc_format(result, AVP_RESULT_SIZE, "%s is larger than MaxScanSize (%lld bytes)",
                       filename, max_scan_size);
            return AVCHK_IMPOSSIBLE;
        }
        kept += (size_t)got;
        if (kept >= EICAR_LEN && memmem(ctx->buffer, kept, eicar, EICAR_LEN) != NULL) {
            avc_format(result, AVP_RESULT_SIZE, "%s", virus_name);
            return AVCHK_VIRUS_FOUND;
        }
        if (kept > EICAR_LEN - 1) {
            memmove(ctx->buffer, ctx->buffer + kept - (EICAR_LEN - 1), EICAR_LEN - 1);
            kept = EICAR_LEN - 1;
        }
    }
}

int avp_test_file(void *context, const char *filename, const char *realname, char *result)
{
    struct stat st;
    int fd, code;
    (void)realname;
    /* O_NONBLOCK: a FIFO without a writer must not block the worker in open(). */
    fd = open(filename, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        avc_format(result, AVP_RESULT_SIZE, "cannot open %s: %s", filename, strerror(errno));
        return AVCHK_FAILED;
    }
    if (fstat(fd, &st) != 0 || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
        avc_format(result, AVP_RESULT_SIZE, "%s is not a file that can be scanned", filename);
        close(fd);
        return AVCHK_FAILED;
    }
    code = scan_stream((sample_context *)context, fd, filename, result);
    close(fd);
    if (code == AVCHK_VIRUS_FOUND)
        avc_log_security("%s found in %s", result, filename);
    return code;
}
