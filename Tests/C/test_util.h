/* Small helpers shared by the C tests: files, fixture tensors, status names, a pass/fail counter. */
#ifndef LMX_TEST_UTIL_H
#define LMX_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "loramixer.h"

/* "LMX_ERR_IO" etc.; "LMX_OK"; "(unknown)". */
const char *status_name(lmx_status status);

/* Reads a whole file into malloc'ed memory (NUL-terminated, *len excludes the NUL); NULL on error. */
unsigned char *read_file(const char *path, size_t *len);
int write_file(const char *path, const void *data, size_t len);
int write_text(const char *path, const char *text);
int copy_file(const char *from, const char *to);
/* snprintf into a fixed buffer that must be large enough (aborts otherwise). */
void join(char *out, size_t size, const char *dir, const char *name);

/* Case-insensitive substring test. */
int contains_ci(const char *haystack, const char *needle);

/* A tensor of a safetensors file, located by a small lookup of its JSON header (enough for the
 * fixtures: "name":{"dtype":"F32","shape":[...],"data_offsets":[b,e]}). Returns a malloc'ed copy of
 * the data and the element count; NULL if absent or of another dtype. */
void *fixture_tensor(const char *path, const char *name, const char *dtype, size_t *count);

/* Counters and reporting. */
extern int tests_passed, tests_failed;
void pass(const char *what);
void fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks that `got` == `want`; when want is an error, also that lmx_last_error() contains every
 * key (case-insensitive); the keys end with NULL. Returns 1 on success. */
int expect_status(const char *what, lmx_status got, lmx_status want, ...);
#define EXPECT_ERR(what, call, want, ...) \
    (current_check = (what), expect_status((what), (call), (want), __VA_ARGS__, (const char *)0))
#define EXPECT_OK(what, call) (current_check = (what), expect_status((what), (call), LMX_OK, (const char *)0))

/* The check being run, named by the crash handler if the library crashes the process. */
extern const char *volatile current_check;
/* On SIGSEGV/SIGBUS/SIGILL/SIGTRAP/SIGFPE/SIGABRT: print "CRASH ... during: <current_check>" and die
 * with the signal (a Swift trap is SIGILL or SIGTRAP). */
void install_crash_handler(void);

#endif
