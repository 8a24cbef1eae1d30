/*
 * Records: one output line each, JSON by default, a readable "key=value" line
 * with --pretty. Strings are escaped so that any byte a plugin writes survives:
 * control characters as \n, \t or \u00XX, bytes 0x80..0xFF as \u00XX (so the
 * line is valid JSON even when the plugin wrote invalid UTF-8).
 */
#include "avhost.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void viol_add(violations *v, const char *format, ...)
{
    va_list ap;
    if (v->count >= AVHOST_MAX_VIOLATIONS)
        return;
    va_start(ap, format);
    vsnprintf(v->text[v->count], sizeof v->text[0], format, ap);
    va_end(ap);
    v->count++;
}

static void put(rec *r, const char *s, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        char *grown;
        while (cap < r->len + n + 1)
            cap *= 2;
        grown = (char *)realloc(r->buf, cap);
        if (grown == NULL)
            return; /* out of memory: the line is cut, the host goes on */
        r->buf = grown;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
    r->buf[r->len] = '\0';
}

static void puts_(rec *r, const char *s)
{
    put(r, s, strlen(s));
}

/* The length of the valid multi-byte UTF-8 sequence at s (2..4), or 0. */
static size_t utf8_sequence(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len, k;
    if (u[0] >= 0xC2 && u[0] <= 0xDF)
        len = 2;
    else if (u[0] >= 0xE0 && u[0] <= 0xEF)
        len = 3;
    else if (u[0] >= 0xF0 && u[0] <= 0xF4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    for (k = 1; k < len; k++)
        if ((u[k] & 0xC0) != 0x80)
            return 0;
    return len;
}

static void put_escaped(rec *r, const char *s, size_t n)
{
    size_t i;
    char tmp[8];
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (r->pretty) {
            /* For people: a UTF-8 file name shows as itself; control bytes stay escaped. */
            size_t seq = utf8_sequence(s + i, n - i);
            if (c >= 0x20 && c < 0x7f) {
                put(r, (const char *)&c, 1);
            } else if (seq > 1) {
                put(r, s + i, seq);
                i += seq - 1;
            } else {
                snprintf(tmp, sizeof tmp, "\\x%02X", c);
                puts_(r, tmp);
            }
            continue;
        }
        switch (c) {
        case '"':
            puts_(r, "\\\"");
            break;
        case '\\':
            puts_(r, "\\\\");
            break;
        case '\n':
            puts_(r, "\\n");
            break;
        case '\r':
            puts_(r, "\\r");
            break;
        case '\t':
            puts_(r, "\\t");
            break;
        default:
            if (c < 0x20 || c >= 0x7f) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                puts_(r, tmp);
            } else {
                put(r, (const char *)&c, 1);
            }
        }
    }
}

static void key(rec *r, const char *k)
{
    if (r->pretty) {
        puts_(r, r->fields ? "  " : "");
        puts_(r, k);
        puts_(r, "=");
    } else {
        puts_(r, ",\"");
        puts_(r, k);
        puts_(r, "\":");
    }
    r->fields++;
}

void rec_begin(rec *r, const char *event)
{
    r->buf = NULL;
    r->len = r->cap = 0;
    r->pretty = g_settings.pretty;
    r->fields = 0;
    if (r->pretty) {
        char head[32];
        snprintf(head, sizeof head, "%-12s", event);
        puts_(r, head);
        r->fields = 0;
        puts_(r, " ");
    } else {
        puts_(r, "{\"event\":\"");
        puts_(r, event);
        puts_(r, "\"");
    }
}

void rec_bytes(rec *r, const char *k, const char *value, size_t n)
{
    key(r, k);
    if (value == NULL) {
        puts_(r, r->pretty ? "-" : "null");
        return;
    }
    puts_(r, "\"");
    put_escaped(r, value, n);
    puts_(r, "\"");
}

void rec_str(rec *r, const char *k, const char *value)
{
    rec_bytes(r, k, value, value ? strlen(value) : 0);
}

void rec_int(rec *r, const char *k, long long value)
{
    char tmp[32];
    key(r, k);
    snprintf(tmp, sizeof tmp, "%lld", value);
    puts_(r, tmp);
}

void rec_num(rec *r, const char *k, double value)
{
    char tmp[48];
    key(r, k);
    snprintf(tmp, sizeof tmp, "%.3f", value);
    puts_(r, tmp);
}

void rec_bool(rec *r, const char *k, int value)
{
    key(r, k);
    puts_(r, value ? "true" : "false");
}

void rec_violations(rec *r, const violations *v)
{
    int i;
    if (r->pretty && v->count == 0)
        return;
    key(r, "violations");
    puts_(r, "[");
    for (i = 0; i < v->count; i++) {
        if (i)
            puts_(r, r->pretty ? "; " : ",");
        if (!r->pretty)
            puts_(r, "\"");
        put_escaped(r, v->text[i], strlen(v->text[i]));
        if (!r->pretty)
            puts_(r, "\"");
    }
    puts_(r, "]");
}

void rec_options(rec *r, const char *k, const avir_plugin_config *cfg, int n)
{
    int i;
    key(r, k);
    puts_(r, r->pretty ? "" : "[");
    for (i = 0; i < n; i++) {
        if (r->pretty) {
            puts_(r, i ? "," : "");
            put_escaped(r, cfg[i].name, field_len(cfg[i].name, sizeof cfg[i].name));
            puts_(r, ":");
            put_escaped(r, cfg[i].value, field_len(cfg[i].value, sizeof cfg[i].value));
            continue;
        }
        puts_(r, i ? ",{\"name\":\"" : "{\"name\":\"");
        put_escaped(r, cfg[i].name, field_len(cfg[i].name, sizeof cfg[i].name));
        puts_(r, "\",\"value\":\"");
        put_escaped(r, cfg[i].value, field_len(cfg[i].value, sizeof cfg[i].value));
        puts_(r, "\"}");
    }
    puts_(r, r->pretty ? "" : "]");
}

void rec_frames(rec *r, const frame *frames, int n)
{
    int i;
    key(r, "frames");
    puts_(r, r->pretty ? "" : "[");
    for (i = 0; i < n; i++) {
        if (r->pretty) {
            char head[32];
            snprintf(head, sizeof head, "\n    #%-2d ", i);
            puts_(r, head);
            puts_(r, frames[i].offset);
            puts_(r, " in ");
            put_escaped(r, frames[i].object, strlen(frames[i].object));
            if (frames[i].build_id[0]) {
                puts_(r, " (build-id ");
                puts_(r, frames[i].build_id);
                puts_(r, ")");
            }
            continue;
        }
        puts_(r, i ? ",{\"object\":\"" : "{\"object\":\"");
        put_escaped(r, frames[i].object, strlen(frames[i].object));
        puts_(r, "\",\"offset\":\"");
        puts_(r, frames[i].offset);
        puts_(r, "\"");
        if (frames[i].build_id[0]) {
            puts_(r, ",\"build_id\":\"");
            puts_(r, frames[i].build_id);
            puts_(r, "\"");
        }
        puts_(r, "}");
    }
    puts_(r, r->pretty ? "" : "]");
}

const char *rec_end(rec *r)
{
    if (!r->pretty)
        puts_(r, "}");
    return r->buf ? r->buf : "";
}

void rec_free(rec *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t done = write(fd, buf, n);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += done;
        n -= (size_t)done;
    }
    return 0;
}
