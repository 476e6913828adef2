/* Small helpers shared by the C tests: files and temporary folders, training data, fixture tensors
 * and safetensors headers, float and routing-trace comparisons, fixture mixers and sessions, status
 * names, a pass/fail counter. */
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

/* write_text, or exit(2) after "cannot write PATH" on stderr. */
void write_or_die(const char *path, const char *text);
/* parent/name into out, created as a folder (one that exists is fine); exit(2) if it cannot be made. */
void make_dir(char *out, size_t size, const char *parent, const char *name);
/* dir/relative is a non-empty regular file. */
int file_exists(const char *dir, const char *relative);
/* One check "<what>: <relative> exists" (a non-empty regular file). */
void expect_file(const char *what, const char *dir, const char *relative);
/* A new folder $TMPDIR/<prefix>.XXXXXX ($TMPDIR unset or empty: /tmp) into out; 0 after perror if
 * mkdtemp fails. remove_tree removes a folder and everything under it (links are not followed). */
int make_temp_dir(char *out, size_t size, const char *prefix);
void remove_tree(const char *dir);

/* Training data, JSON Lines of token ids (vocab >= 128): `per_task` examples for each of the
 * n_tasks task names (with a "task" field); task t, example i: prompt [3+t, 10+i, 20+(7i mod 30)],
 * completion [40+20t+(i mod 10), +1, +2]; every fourth example uses the {"tokens": [...]} form
 * instead (loss on every token after the first). Exits(2) if the file cannot be written. */
void write_train_data(const char *path, const char *const *tasks, int n_tasks, int per_task);
/* lmx_train_params_default() with `steps` steps, batch 4, learning rate 1e-2 and n_threads. */
lmx_train_params small_train_params(int32_t steps, int32_t n_threads);

/* Case-insensitive substring test. */
int contains_ci(const char *haystack, const char *needle);

/* A tensor of a safetensors file, located by a small lookup of its JSON header (enough for the
 * fixtures: "name":{"dtype":"F32","shape":[...],"data_offsets":[b,e]}). Returns a malloc'ed copy of
 * the data and the element count; NULL if absent or of another dtype. */
void *fixture_tensor(const char *path, const char *name, const char *dtype, size_t *count);
/* The JSON header of a safetensors file held in file[len]: a malloc'ed, NUL-terminated copy, its
 * length in *header_len; NULL if len < 8 or the declared length runs past the end. */
char *safetensors_header(const unsigned char *file, size_t len, size_t *header_len);

/* Comparisons of float arrays. max_abs_diff: the largest |a[i] - b[i]| (a NaN propagates).
 * expect_close_n: one check, "<what> (max |diff| D <= TOL)"; expect_differ_n: one check,
 * "<what> (max |diff| D > AT_LEAST)". */
double max_abs_diff(const float *a, const float *b, size_t n);
void expect_close_n(const char *what, const float *got, const float *want, size_t n, double tolerance);
void expect_differ_n(const char *what, const float *a, const float *b, size_t n, double at_least);

/* A routing trace (ids and gates [n_tokens][n_layers][3], the evaluated tokens) against an oracle's
 * top-2 (ids and gates [n_tokens][n_layers][2]). The first `n_print` differing ids are printed as
 * "     <label> T layer L slot K: expert E, oracle O". */
typedef struct {
    int bad_ids;      /* ids in the first two slots that differ from the oracle's */
    int bad_rest;     /* third slots that are not -1 / 0.0 */
    int bad_tokens;   /* trace tokens that differ from the evaluated ones */
    double gate_diff; /* max |gate - oracle gate| over the first two slots (a NaN propagates) */
} trace_diff;
trace_diff compare_trace(const int32_t *ids, const float *gates, const int32_t *trace_tokens, const int32_t *tokens,
                         const int32_t *want_ids, const float *want_gates, int n_tokens, int n_layers, int n_print,
                         const char *label);

/* The index of `module` in modules[n], or -1. */
int module_index(const uint32_t *modules, size_t n, uint32_t module);
/* A LoRA on one row: y[out] += scale * B (A x) for x[in], A [rank x in], B [out x rank], in double
 * (rank <= 64; aborts otherwise). */
void lora_row(const float *a, const float *b, size_t rank, double scale, const float *x, float *y, size_t in, size_t out);

/* Sessions and mixers over the fixtures. Each reports only a failure (one FAIL line naming `what`). */
/* A session over `mixer`: 1 thread, n_ctx (0: the model's max_positions), the routing trace on or off. */
lmx_session *make_session(const char *what, const lmx_mixer *mixer, uint32_t n_ctx, int trace);
/* session_logits_of's `mode` that keeps the session's routing (otherwise an LMX_ROUTING_* value). */
enum { ROUTING_KEEP = -1 };
/* Resets `s`, sets the routing (`fixed` weights when not NULL, else `mode` unless ROUTING_KEEP) and
 * evaluates tokens[n_tokens] with LMX_LOGITS_ALL into out[n_out]. */
int session_logits_of(const char *what, lmx_session *s, const int32_t *tokens, size_t n_tokens, int mode,
                      const float *fixed, size_t n_fixed, float *out, size_t n_out);
/* The same in a new make_session(what, mixer, 0, trace) (its default routing, or fixed weights). */
int mixer_logits_of(const char *what, const lmx_mixer *mixer, int trace, const int32_t *tokens, size_t n_tokens,
                    const float *fixed, size_t n_fixed, float *out, size_t n_out);
/* A mixer over `model` with the PEFT experts e0 .. e<n-1> of dir/adapters/ and, unless `router` is
 * NULL, the router dir/<router>; failures are reported as "mixer setup: <label>: ...". */
lmx_mixer *fixture_mixer_in(const char *dir, const char *label, lmx_model *model, int n_experts, const char *router);

/* The start of a test program taking one argument, FIXTURES_DIR: with another argument count, prints
 * "usage: <program> FIXTURES_DIR" and returns 0; else copies argv[1] into fixtures, makes stdout
 * line-buffered, installs the crash handler and returns 1. */
int test_start(int argc, char **argv, char *fixtures, size_t size);

/* Counters and reporting. */
extern int tests_passed, tests_failed;
void pass(const char *what);
void fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "<program>: N passed, M failed"; returns the exit status (1 if any check failed). */
int test_summary(const char *program);

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
