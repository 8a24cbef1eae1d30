/*
 * The plugin process's stack when it dies of a signal (SIGSEGV, SIGBUS, SIGILL,
 * SIGFPE, SIGABRT): each frame as the object it lies in (absolute path, build
 * id) and its offset from that object's load base, sent to the parent as "K"
 * lines, so that a crash report names the plugin's functions once symbolized.
 * Then the signal's previous action runs (the default, or AddressSanitizer's
 * report), so the process still dies of that signal with the same status.
 *
 * The handler runs on an alternate stack (a stack overflow is a SIGSEGV too)
 * and keeps to what is reasonable there: the objects were listed beforehand
 * (crash_frames_note_objects, after each dlopen; dladdr only for an object the
 * plugin loaded later), the line is formatted by hand and written with write().
 * backtrace() was called once before, so that it has loaded the unwinder
 * already and allocates nothing in the handler.
 */
#include "avhost.h"

#include <dlfcn.h>
#include <elf.h>
#include <execinfo.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_OBJECTS 128
#define MAX_SEGMENTS 8
#define STACK_FRAMES 32

typedef struct loaded_object_s {
    uintptr_t base;
    int segments;
    uintptr_t lo[MAX_SEGMENTS], hi[MAX_SEGMENTS];
    char build_id[72]; /* hex, "" when the object has none */
    char path[PATH_MAX];
} loaded_object;

static const int g_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
#define SIGNAL_COUNT ((int)(sizeof g_signals / sizeof g_signals[0]))
static struct sigaction g_previous[SIGNAL_COUNT]; /* the default, or AddressSanitizer's */
static loaded_object g_objects[MAX_OBJECTS];
static volatile int g_object_count;
static int g_chan_fd = -1;
static __thread long t_request; /* the request this thread scans, 0 when none */

void crash_frames_set_request(long id)
{
    t_request = id;
}

static void hex_of(const unsigned char *bytes, size_t n, char *out, size_t size)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n && 2 * i + 2 < size; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * i] = '\0';
}

/* The NT_GNU_BUILD_ID note of a loaded object, from its PT_NOTE segments. */
static void find_build_id(const struct dl_phdr_info *info, char *out, size_t size)
{
    int i;
    out[0] = '\0';
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        const char *p, *end;
        if (ph->p_type != PT_NOTE)
            continue;
        p = (const char *)(info->dlpi_addr + ph->p_vaddr);
        end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *note = (const ElfW(Nhdr) *)p;
            const char *name = p + sizeof *note;
            const char *desc = name + ((note->n_namesz + 3) & ~3u);
            if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
                memcmp(name, "GNU", 4) == 0 && desc + note->n_descsz <= end) {
                hex_of((const unsigned char *)desc, note->n_descsz, out, size);
                return;
            }
            p = desc + ((note->n_descsz + 3) & ~3u);
        }
    }
}

static int note_object(struct dl_phdr_info *info, size_t size, void *data)
{
    loaded_object *o;
    int i;
    (void)size;
    (void)data;
    if (g_object_count >= MAX_OBJECTS)
        return 1;
    o = &g_objects[g_object_count];
    memset(o, 0, sizeof *o);
    o->base = (uintptr_t)info->dlpi_addr;
    for (i = 0; i < info->dlpi_phnum && o->segments < MAX_SEGMENTS; i++)
        if (info->dlpi_phdr[i].p_type == PT_LOAD) {
            o->lo[o->segments] = o->base + info->dlpi_phdr[i].p_vaddr;
            o->hi[o->segments] = o->lo[o->segments] + info->dlpi_phdr[i].p_memsz;
            o->segments++;
        }
    /* The executable has no name here; a plugin has the name given to dlopen. */
    if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", o->path, sizeof o->path - 1);
        o->path[n > 0 ? n : 0] = '\0';
    } else if (realpath(info->dlpi_name, o->path) == NULL) {
        strncpy(o->path, info->dlpi_name, sizeof o->path - 1);
    }
    if (o->path[0] == '\0' || strncmp(o->path, "linux-", 6) == 0)
        return 0; /* the vDSO */
    find_build_id(info, o->build_id, sizeof o->build_id);
    g_object_count++;
    return 0;
}

void crash_frames_note_objects(void)
{
    g_object_count = 0;
    dl_iterate_phdr(note_object, NULL);
}

static const loaded_object *object_at(uintptr_t addr)
{
    int i, k;
    for (i = 0; i < g_object_count; i++)
        for (k = 0; k < g_objects[i].segments; k++)
            if (addr >= g_objects[i].lo[k] && addr < g_objects[i].hi[k])
                return &g_objects[i];
    return NULL;
}

static size_t put_text(char *out, size_t at, size_t size, const char *s)
{
    while (*s && at + 1 < size)
        out[at++] = *s++;
    return at;
}

static size_t put_number(char *out, size_t at, size_t size, unsigned long value, int base)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[value % (unsigned long)base];
        value /= (unsigned long)base;
    } while (value && n < (int)sizeof digits);
    while (n > 0 && at + 1 < size)
        out[at++] = digits[--n];
    return at;
}

/* "K <request> 0x<offset> <build_id|-> <object>\n" for one frame. */
static void send_frame(uintptr_t addr)
{
    char line[PATH_MAX + 200];
    const loaded_object *o = object_at(addr);
    size_t at = 0;
    at = put_text(line, at, sizeof line, "K ");
    at = put_number(line, at, sizeof line, (unsigned long)t_request, 10);
    at = put_text(line, at, sizeof line, " 0x");
    if (o != NULL) {
        at = put_number(line, at, sizeof line, (unsigned long)(addr - o->base), 16);
        at = put_text(line, at, sizeof line, " ");
        at = put_text(line, at, sizeof line, o->build_id[0] ? o->build_id : "-");
        at = put_text(line, at, sizeof line, " ");
        at = put_text(line, at, sizeof line, o->path);
    } else {
        /* Loaded later than the list was made (the plugin's own dlopen): dladdr. */
        Dl_info info;
        if (dladdr((void *)addr, &info) == 0 || info.dli_fname == NULL)
            return;
        at = put_number(line, at, sizeof line, (unsigned long)(addr - (uintptr_t)info.dli_fbase),
                        16);
        at = put_text(line, at, sizeof line, " - ");
        at = put_text(line, at, sizeof line, info.dli_fname);
    }
    at = put_text(line, at, sizeof line, "\n");
    write_all(g_chan_fd, line, at);
}

/* The program counter where the signal struck, from the signal's context. */
static uintptr_t fault_address(const void *ucontext)
{
    const ucontext_t *uc = (const ucontext_t *)ucontext;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__i386__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_EIP];
#else
    (void)uc;
    return 0;
#endif
}

static void on_fatal_signal(int sig, siginfo_t *info, void *ucontext)
{
    void *stack[STACK_FRAMES + 8];
    uintptr_t pc = fault_address(ucontext);
    int n, i, first = 0, sent = 0, locked = 0, tries;
    /* Another thread may be writing a line: wait for it a little (a second at
       most), so the lines do not mix; a lock never freed is not waited on longer. */
    for (tries = 0; tries < 1000 && !(locked = chan_trylock()); tries++) {
        struct timespec ms = {0, 1000000L};
        nanosleep(&ms, NULL);
    }
    n = backtrace(stack, STACK_FRAMES + 8);
    /* Skip this handler and the signal trampoline: from the frame that faulted. */
    for (i = 0; i < n; i++)
        if ((uintptr_t)stack[i] == pc) {
            first = i;
            break;
        }
    if (first == 0 && pc != 0) {
        send_frame(pc);
        sent++;
        first = n; /* the unwinder did not see the signal frame: only the pc is sure */
    }
    for (i = first; i < n && sent < STACK_FRAMES; i++, sent++)
        send_frame((uintptr_t)stack[i]);
    if (locked)
        chan_unlock();
    /* Then what would have happened without this handler: a fault (si_code > 0)
       strikes again when the instruction is retried, a signal sent by a process
       (abort's, a kill) is raised again, delivered once this handler returns. */
    for (i = 0; i < SIGNAL_COUNT; i++)
        if (g_signals[i] == sig)
            sigaction(sig, &g_previous[i], NULL);
    if (info == NULL || info->si_code <= 0)
        raise(sig);
}

void crash_frames_use_stack(void *stack, size_t size)
{
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = stack;
    ss.ss_size = size;
    ss.ss_flags = stack != NULL ? 0 : SS_DISABLE;
    sigaltstack(&ss, NULL);
}

void crash_frames_install(int chan_fd)
{
    static char main_stack[CRASH_FRAMES_STACK];
    struct sigaction sa;
    void *warm[2];
    int i;
    g_chan_fd = chan_fd;
    backtrace(warm, 2); /* loads the unwinder now, not in the handler */
    crash_frames_use_stack(main_stack, sizeof main_stack);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < SIGNAL_COUNT; i++)
        sigaction(g_signals[i], &sa, &g_previous[i]);
}
