/*
 * Checks on the strings a plugin hands over in fixed-size fields and buffers:
 * whether they end within the field, and whether they are printable 7-bit
 * ASCII (what the products can show and log).
 */
#include "avhost.h"

int first_non_ascii(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f)
            return (int)i;
    }
    return -1;
}

size_t field_len(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n] != '\0')
        n++;
    return n;
}
