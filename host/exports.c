/*
 * The symbols a plugin exports, read from its ELF file (.dynsym) rather than
 * asked of the dynamic loader: the ABI allows exactly one, the entry point, so
 * that two plugins (or a plugin and the product) never bind to each other's
 * functions. Runs in the child, while loading. The file is of avhost's own class
 * (ElfW: Elf32 on i386, Elf64 on x86_64): elf_kind_mismatch() refused any other.
 */
#include "avhost.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORTS_NAMED 8 /* names listed in the violation; the rest are counted */

#if defined(__x86_64__)
#define OWN_CLASS ELFCLASS64
#define OWN_MACHINE EM_X86_64
#define OWN_ARCH "x86_64"
#define OTHER_ARCH "i386"
#else
#define OWN_CLASS ELFCLASS32
#define OWN_MACHINE EM_386
#define OWN_ARCH "i386"
#define OTHER_ARCH "x86_64"
#endif

/* "64-bit x86_64 (ELFCLASS64, EM_X86_64)" and the like, for the two kinds avserver exists as. */
static const char *kind_name(int elf_class, int machine)
{
    if (elf_class == ELFCLASS32 && machine == EM_386)
        return "32-bit i386 (ELFCLASS32, EM_386)";
    if (elf_class == ELFCLASS64 && machine == EM_X86_64)
        return "64-bit x86_64 (ELFCLASS64, EM_X86_64)";
    return NULL;
}

int elf_kind_mismatch(const char *path, char *why, size_t size)
{
    /* e_ident, e_type and e_machine sit at the same offsets in both classes */
    unsigned char head[sizeof(Elf32_Ehdr)];
    const char *own = kind_name(OWN_CLASS, OWN_MACHINE), *theirs;
    Elf32_Half machine;
    char other[64];
    ssize_t got = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        got = pread(fd, head, sizeof head, 0);
        close(fd);
    }
    if (got < (ssize_t)sizeof head || memcmp(head, ELFMAG, SELFMAG) != 0)
        return 0; /* unreadable, or no ELF file at all: dlopen names the reason */
    memcpy(&machine, head + offsetof(Elf32_Ehdr, e_machine), sizeof machine);
    if (head[EI_CLASS] == OWN_CLASS && machine == OWN_MACHINE)
        return 0;
    theirs = kind_name(head[EI_CLASS], machine);
    if (theirs == NULL) {
        snprintf(other, sizeof other, "ELFCLASS%d machine %u", head[EI_CLASS] == ELFCLASS64 ? 64 : 32,
                 (unsigned)machine);
        theirs = other;
    }
    snprintf(why, size,
             "%s is a %s plugin, but this avhost is %s and, like an %s avserver, loads only %s "
             "plugins: install the %s build of the plugin, or test this one with the %s avhost "
             "(avkit build --arch %s)",
             path, theirs, OWN_ARCH, OWN_ARCH, own, OWN_ARCH, OTHER_ARCH, OTHER_ARCH);
    return 1;
}

/* The whole file, or NULL when it cannot be read (or is empty or huge). */
static unsigned char *read_file(const char *path, off_t *size)
{
    unsigned char *data = NULL;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(ElfW(Ehdr)) ||
        st.st_size > 256L * 1024 * 1024)
        goto out;
    data = (unsigned char *)malloc((size_t)st.st_size);
    if (data != NULL && pread(fd, data, (size_t)st.st_size, 0) != (ssize_t)st.st_size) {
        free(data);
        data = NULL;
    }
    *size = st.st_size;
out:
    if (fd >= 0)
        close(fd);
    return data;
}

/* The section header table of an ELF file of avhost's own kind, or NULL. Any other
   kind of file is a violation; a table that does not fit the file is skipped silently. */
static const ElfW(Shdr) * section_headers(const unsigned char *data, off_t size, const char *path,
                                          violations *v)
{
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)data;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != OWN_CLASS ||
        eh->e_machine != OWN_MACHINE) {
        viol_add(v, "%s is not a %s file", path, kind_name(OWN_CLASS, OWN_MACHINE));
        return NULL;
    }
    if (eh->e_shoff == 0 || eh->e_shentsize != sizeof(ElfW(Shdr)) ||
        (off_t)eh->e_shoff + (off_t)eh->e_shnum * (off_t)sizeof(ElfW(Shdr)) > size)
        return NULL;
    return (const ElfW(Shdr) *)(data + eh->e_shoff);
}

/* A defined symbol that other objects can bind to. */
static int is_exported(const ElfW(Sym) * sym, size_t strsize)
{
    int bind = ELF32_ST_BIND(sym->st_info);
    if (sym->st_shndx == SHN_UNDEF || sym->st_name >= strsize)
        return 0;
    if (bind != STB_GLOBAL && bind != STB_WEAK && bind != STB_GNU_UNIQUE)
        return 0;
    return ELF32_ST_VISIBILITY(sym->st_other) == STV_DEFAULT ||
           ELF32_ST_VISIBILITY(sym->st_other) == STV_PROTECTED;
}

/* Counts the exports of the first .dynsym besides the entry point, naming the
   first EXPORTS_NAMED of them in `names`. */
static int extra_exports(const unsigned char *data, off_t size, const ElfW(Shdr) * sh, int shnum,
                         char *names, size_t names_size)
{
    int extra = 0, i;
    for (i = 0; i < shnum; i++) {
        const ElfW(Sym) * sym;
        const char *strtab;
        size_t count, k, strsize;
        if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_link >= (ElfW(Word))shnum)
            continue;
        if ((off_t)sh[i].sh_offset + (off_t)sh[i].sh_size > size ||
            (off_t)sh[sh[i].sh_link].sh_offset + (off_t)sh[sh[i].sh_link].sh_size > size)
            break;
        sym = (const ElfW(Sym) *)(data + sh[i].sh_offset);
        strtab = (const char *)(data + sh[sh[i].sh_link].sh_offset);
        strsize = sh[sh[i].sh_link].sh_size;
        count = sh[i].sh_size / sizeof(ElfW(Sym));
        for (k = 1; k < count; k++) {
            const char *name;
            if (!is_exported(&sym[k], strsize))
                continue;
            name = strtab + sym[k].st_name;
            if (strcmp(name, AVIR_ENTRY_POINT) == 0)
                continue;
            if (extra < EXPORTS_NAMED) {
                size_t used = strlen(names);
                snprintf(names + used, names_size - used, "%s%s", extra ? ", " : "", name);
            }
            extra++;
        }
        break;
    }
    return extra;
}

void check_exports(const char *path, violations *v)
{
    char names[300] = "";
    int extra = 0;
    off_t size = 0;
    const ElfW(Shdr) * sh;
    unsigned char *data = read_file(path, &size);
    if (data == NULL)
        return;
    sh = section_headers(data, size, path, v);
    if (sh != NULL)
        extra = extra_exports(data, size, sh, ((const ElfW(Ehdr) *)data)->e_shnum, names,
                              sizeof names);
    if (extra > 0)
        viol_add(v, "exports %d symbol(s) besides " AVIR_ENTRY_POINT ": %s%s", extra, names,
                 extra > EXPORTS_NAMED ? ", ..." : "");
    free(data);
}
