/*
 * The symbols a plugin exports, read from its ELF file (.dynsym) rather than
 * asked of the dynamic loader: the ABI allows exactly one, the entry point, so
 * that two plugins (or a plugin and the product) never bind to each other's
 * functions. Runs in the child, while loading.
 */
#include "avhost.h"

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORTS_NAMED 8 /* names listed in the violation; the rest are counted */

/* The whole file, or NULL when it cannot be read (or is empty or huge). */
static unsigned char *read_file(const char *path, off_t *size)
{
    unsigned char *data = NULL;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf32_Ehdr) ||
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

/* The section header table of an ELF32 i386 file, or NULL. Any other kind of
   file is a violation; a table that does not fit the file is skipped silently. */
static const Elf32_Shdr *section_headers(const unsigned char *data, off_t size, const char *path,
                                         violations *v)
{
    const Elf32_Ehdr *eh = (const Elf32_Ehdr *)data;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS32 ||
        eh->e_machine != EM_386) {
        viol_add(v, "%s is not an ELF32 i386 (EM_386) file", path);
        return NULL;
    }
    if (eh->e_shoff == 0 || eh->e_shentsize != sizeof(Elf32_Shdr) ||
        (off_t)eh->e_shoff + (off_t)eh->e_shnum * (off_t)sizeof(Elf32_Shdr) > size)
        return NULL;
    return (const Elf32_Shdr *)(data + eh->e_shoff);
}

/* A defined symbol that other objects can bind to. */
static int is_exported(const Elf32_Sym *sym, size_t strsize)
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
static int extra_exports(const unsigned char *data, off_t size, const Elf32_Shdr *sh, int shnum,
                         char *names, size_t names_size)
{
    int extra = 0, i;
    for (i = 0; i < shnum; i++) {
        const Elf32_Sym *sym;
        const char *strtab;
        size_t count, k, strsize;
        if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_link >= (Elf32_Word)shnum)
            continue;
        if ((off_t)sh[i].sh_offset + (off_t)sh[i].sh_size > size ||
            (off_t)sh[sh[i].sh_link].sh_offset + (off_t)sh[sh[i].sh_link].sh_size > size)
            break;
        sym = (const Elf32_Sym *)(data + sh[i].sh_offset);
        strtab = (const char *)(data + sh[sh[i].sh_link].sh_offset);
        strsize = sh[sh[i].sh_link].sh_size;
        count = sh[i].sh_size / sizeof(Elf32_Sym);
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
    const Elf32_Shdr *sh;
    unsigned char *data = read_file(path, &size);
    if (data == NULL)
        return;
    sh = section_headers(data, size, path, v);
    if (sh != NULL)
        extra = extra_exports(data, size, sh, ((const Elf32_Ehdr *)data)->e_shnum, names,
                              sizeof names);
    if (extra > 0)
        viol_add(v, "exports %d symbol(s) besides " AVIR_ENTRY_POINT ": %s%s", extra, names,
                 extra > EXPORTS_NAMED ? ", ..." : "");
    free(data);
}
