#define _GNU_SOURCE /* RTLD_DEFAULT */

#include "test_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>

int tests_passed, tests_failed;
const char *volatile current_check = "(start)";

static void on_crash(int sig) {
    static const char head[] = "\nCRASH (fatal signal) during: ";
    const char *what = current_check;
    ssize_t ignored = write(STDOUT_FILENO, head, sizeof head - 1);
    ignored = write(STDOUT_FILENO, what, strlen(what));
    ignored = write(STDOUT_FILENO, "\n", 1);
    (void)ignored;
    signal(sig, SIG_DFL);
    raise(sig);
}

void install_crash_handler(void) {
    static const int signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = on_crash;
        sigemptyset(&action.sa_mask);
        action.sa_flags = (int)SA_RESETHAND;
        sigaction(signals[i], &action, NULL);
    }
}

const char *status_name(lmx_status status) {
    switch (status) {
    case LMX_OK: return "LMX_OK";
    case LMX_ERR_INVALID_ARGUMENT: return "LMX_ERR_INVALID_ARGUMENT";
    case LMX_ERR_IO: return "LMX_ERR_IO";
    case LMX_ERR_FORMAT: return "LMX_ERR_FORMAT";
    case LMX_ERR_SHAPE: return "LMX_ERR_SHAPE";
    case LMX_ERR_PLUGIN: return "LMX_ERR_PLUGIN";
    case LMX_ERR_ABI: return "LMX_ERR_ABI";
    case LMX_ERR_OUT_OF_MEMORY: return "LMX_ERR_OUT_OF_MEMORY";
    case LMX_ERR_STATE: return "LMX_ERR_STATE";
    case LMX_ERR_NOT_FOUND: return "LMX_ERR_NOT_FOUND";
    case LMX_ERR_CANCELLED: return "LMX_ERR_CANCELLED";
    default: return "(unknown)";
    }
}

unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return NULL; }
    unsigned char *data = malloc((size_t)size + 1);
    if (!data) { fclose(f); return NULL; }
    if (fread(data, 1, (size_t)size, f) != (size_t)size) { free(data); fclose(f); return NULL; }
    fclose(f);
    data[size] = 0;
    if (len) *len = (size_t)size;
    return data;
}

int write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, len, f) == len;
    ok &= fclose(f) == 0;
    return ok;
}

int write_text(const char *path, const char *text) { return write_file(path, text, strlen(text)); }

int copy_file(const char *from, const char *to) {
    size_t len;
    unsigned char *data = read_file(from, &len);
    if (!data) return 0;
    int ok = write_file(to, data, len);
    free(data);
    return ok;
}

void join(char *out, size_t size, const char *dir, const char *name) {
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "path too long: %s/%s\n", dir, name);
        abort();
    }
}

int contains_ci(const char *haystack, const char *needle) {
    if (!haystack || !needle) return 0;
    size_t n = strlen(needle);
    for (const char *p = haystack; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return 1;
    }
    return n == 0;
}

void *fixture_tensor(const char *path, const char *name, const char *dtype, size_t *count) {
    size_t len;
    unsigned char *file = read_file(path, &len);
    if (!file || len < 8) { free(file); return NULL; }
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = header_len << 8 | file[i];
    if (header_len > len - 8) { free(file); return NULL; }
    char *header = malloc(header_len + 1);
    memcpy(header, file + 8, header_len);
    header[header_len] = 0;

    char key[256];
    snprintf(key, sizeof key, "\"%s\":", name);
    void *result = NULL;
    char *entry = strstr(header, key);
    char *end = entry ? strchr(entry, '}') : NULL;
    if (entry && end) {
        *end = 0; /* limit the search to this tensor's object */
        char want_dtype[32];
        snprintf(want_dtype, sizeof want_dtype, "\"dtype\":\"%s\"", dtype);
        char *offsets = strstr(entry, "\"data_offsets\":[");
        unsigned long long begin, stop;
        if (strstr(entry, want_dtype) && offsets &&
            sscanf(offsets + strlen("\"data_offsets\":["), "%llu,%llu", &begin, &stop) == 2 &&
            begin <= stop && stop <= len - 8 - header_len) {
            size_t bytes = (size_t)(stop - begin);
            result = malloc(bytes ? bytes : 1);
            memcpy(result, file + 8 + header_len + begin, bytes);
            if (count) *count = bytes / 4; /* F32 and I32 only */
        }
    }
    free(header);
    free(file);
    return result;
}

void pass(const char *what) {
    tests_passed++;
    printf("ok   %s\n", what);
}


void fail(const char *what, const char *fmt, ...) {
    tests_failed++;
    printf("FAIL %s: ", what);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* A message that tells the host to call lmx_something() must name a function that exists. Returns
 * the first `lmx_name(` in `message` that the process cannot resolve, or NULL. */
static const char *nonexistent_function(const char *message, char *name, size_t size) {
    for (const char *p = message; (p = strstr(p, "lmx_")) != NULL; p++) {
        if (p > message && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) continue;
        size_t n = 0;
        while (isalnum((unsigned char)p[n]) || p[n] == '_') n++;
        if (p[n] != '(' || n >= size) continue;
        memcpy(name, p, n);
        name[n] = 0;
        if (!dlsym(RTLD_DEFAULT, name)) return name;
    }
    return NULL;
}

int expect_status(const char *what, lmx_status got, lmx_status want, ...) {
    const char *message = lmx_last_error();
    if (got != want) {
        fail(what, "expected %s (%d), got %s (%d); lmx_last_error: \"%s\"", status_name(want), want,
             status_name(got), got, got != LMX_OK && message ? message : "");
        return 0;
    }
    if (want != LMX_OK) {
        if (!message || !message[0]) {
            fail(what, "%s as expected, but lmx_last_error() is empty", status_name(got));
            return 0;
        }
        va_list ap;
        va_start(ap, want);
        const char *missing[16];
        int n_missing = 0;
        for (const char *key = va_arg(ap, const char *); key; key = va_arg(ap, const char *))
            if (!contains_ci(message, key) && n_missing < 16) missing[n_missing++] = key;
        va_end(ap);
        if (n_missing) {
            char list[512] = "";
            for (int i = 0; i < n_missing; i++) {
                strncat(list, i ? ", '" : "'", sizeof list - strlen(list) - 1);
                strncat(list, missing[i], sizeof list - strlen(list) - 1);
                strncat(list, "'", sizeof list - strlen(list) - 1);
            }
            fail(what, "%s as expected, but the message lacks %s: \"%s\"", status_name(got), list, message);
            return 0;
        }
        char name[128];
        if (nonexistent_function(message, name, sizeof name)) {
            fail(what, "%s as expected, but the message tells the host to use %s(), which the library does not have: \"%s\"",
                 status_name(got), name, message);
            return 0;
        }
        tests_passed++;
        printf("ok   %s: %s \"%s\"\n", what, status_name(got), message);
        return 1;
    }
    pass(what);
    return 1;
}
