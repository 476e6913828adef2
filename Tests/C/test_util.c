#define _GNU_SOURCE /* RTLD_DEFAULT */

#include "test_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
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

void write_or_die(const char *path, const char *text) {
    if (!write_text(path, text)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
}

void make_dir(char *out, size_t size, const char *parent, const char *name) {
    join(out, size, parent, name);
    if (mkdir(out, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "mkdir %s failed\n", out);
        exit(2);
    }
}

int file_exists(const char *dir, const char *relative) {
    char path[1400];
    struct stat st;
    join(path, sizeof path, dir, relative);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

void expect_file(const char *what, const char *dir, const char *relative) {
    char line[512];
    snprintf(line, sizeof line, "%s: %s exists", what, relative);
    if (file_exists(dir, relative)) pass(line);
    else fail(line, "%s/%s is missing or empty", dir, relative);
}

int make_temp_dir(char *out, size_t size, const char *prefix) {
    const char *base = getenv("TMPDIR");
    int n = snprintf(out, size, "%s/%s.XXXXXX", base && base[0] ? base : "/tmp", prefix);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "temporary folder name too long: %s\n", out);
        return 0;
    }
    if (!mkdtemp(out)) {
        perror("mkdtemp");
        return 0;
    }
    return 1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

void remove_tree(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

void write_train_data(const char *path, const char *const *tasks, int n_tasks, int per_task) {
    size_t cap = 256 * (size_t)(n_tasks * per_task) + 1, len = 0;
    char *text = malloc(cap);
    text[0] = 0;
    for (int i = 0; i < per_task; i++) {
        for (int t = 0; t < n_tasks; t++) {
            int p0 = 3 + t, p1 = 10 + i, p2 = 20 + (7 * i) % 30, c0 = 40 + 20 * t + i % 10;
            int n;
            if (i % 4 == 3)
                n = snprintf(text + len, cap - len, "{\"tokens\": [%d, %d, %d, %d, %d, %d], \"task\": \"%s\"}\n", p0, p1,
                             p2, c0, c0 + 1, c0 + 2, tasks[t]);
            else
                n = snprintf(text + len, cap - len,
                             "{\"prompt_tokens\": [%d, %d, %d], \"completion_tokens\": [%d, %d, %d], \"task\": \"%s\"}\n",
                             p0, p1, p2, c0, c0 + 1, c0 + 2, tasks[t]);
            len += (size_t)n;
        }
    }
    write_or_die(path, text);
    free(text);
}

lmx_train_params small_train_params(int32_t steps, int32_t n_threads) {
    lmx_train_params p = lmx_train_params_default();
    p.steps = steps;
    p.batch_size = 4;
    p.learning_rate = 1e-2f;
    p.n_threads = n_threads;
    return p;
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

char *safetensors_header(const unsigned char *file, size_t len, size_t *header_len) {
    if (!file || len < 8) return NULL;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | file[i];
    if (n > len - 8) return NULL;
    char *header = malloc((size_t)n + 1);
    memcpy(header, file + 8, (size_t)n);
    header[n] = 0;
    *header_len = (size_t)n;
    return header;
}

void *fixture_tensor(const char *path, const char *name, const char *dtype, size_t *count) {
    size_t len = 0, header_len = 0;
    unsigned char *file = read_file(path, &len);
    char *header = safetensors_header(file, len, &header_len);
    if (!header) { free(file); return NULL; }

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

double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double x = fabs((double)a[i] - (double)b[i]);
        if (!(x <= d)) d = x; /* NaN propagates */
    }
    return d;
}

void expect_close_n(const char *what, const float *got, const float *want, size_t n, double tolerance) {
    double d = max_abs_diff(got, want, n);
    char line[512];
    snprintf(line, sizeof line, "%s (max |diff| %.1e <= %.0e)", what, d, tolerance);
    if (d <= tolerance) pass(line);
    else fail(what, "max |diff| %.3e > %.0e", d, tolerance);
}

void expect_differ_n(const char *what, const float *a, const float *b, size_t n, double at_least) {
    double d = max_abs_diff(a, b, n);
    char line[512];
    snprintf(line, sizeof line, "%s (max |diff| %.2e > %.0e)", what, d, at_least);
    if (d > at_least) pass(line);
    else fail(what, "max |diff| only %.3e (want > %.0e)", d, at_least);
}

trace_diff compare_trace(const int32_t *ids, const float *gates, const int32_t *trace_tokens, const int32_t *tokens,
                         const int32_t *want_ids, const float *want_gates, int n_tokens, int n_layers, int n_print,
                         const char *label) {
    trace_diff r = {0, 0, 0, 0};
    for (int t = 0; t < n_tokens; t++) {
        if (trace_tokens[t] != tokens[t]) r.bad_tokens++;
        for (int l = 0; l < n_layers; l++) {
            for (int k = 0; k < 2; k++) {
                int got = ids[(t * n_layers + l) * 3 + k], want = want_ids[(t * n_layers + l) * 2 + k];
                if (got != want) {
                    if (r.bad_ids < n_print)
                        printf("     %s %d layer %d slot %d: expert %d, oracle %d\n", label, t, l, k, got, want);
                    r.bad_ids++;
                }
                double d = fabs((double)gates[(t * n_layers + l) * 3 + k] - want_gates[(t * n_layers + l) * 2 + k]);
                if (!(d <= r.gate_diff)) r.gate_diff = d;
            }
            if (ids[(t * n_layers + l) * 3 + 2] != -1 || gates[(t * n_layers + l) * 3 + 2] != 0.0f) r.bad_rest++;
        }
    }
    return r;
}

int module_index(const uint32_t *modules, size_t n, uint32_t module) {
    for (size_t i = 0; i < n; i++)
        if (modules[i] == module) return (int)i;
    return -1;
}

void lora_row(const float *a, const float *b, size_t rank, double scale, const float *x, float *y, size_t in, size_t out) {
    double t[64];
    if (rank > sizeof t / sizeof t[0]) {
        fprintf(stderr, "lora_row: rank %zu > 64\n", rank);
        abort();
    }
    for (size_t k = 0; k < rank; k++) {
        double sum = 0;
        for (size_t i = 0; i < in; i++) sum += (double)a[k * in + i] * x[i];
        t[k] = sum;
    }
    for (size_t j = 0; j < out; j++) {
        double sum = 0;
        for (size_t k = 0; k < rank; k++) sum += (double)b[j * rank + k] * t[k];
        y[j] += (float)(scale * sum);
    }
}

lmx_session *make_session(const char *what, const lmx_mixer *mixer, uint32_t n_ctx, int trace) {
    lmx_session_params sp = lmx_session_params_default();
    sp.n_threads = 1;
    sp.n_ctx = n_ctx;
    if (!trace) sp.trace = 0; /* else the default (on) */
    lmx_session *s = NULL;
    current_check = what;
    lmx_status st = lmx_session_create(mixer, &sp, &s);
    if (st != LMX_OK) {
        fail(what, "session_create: %s (%d) \"%s\"", status_name(st), st, lmx_last_error());
        return NULL;
    }
    return s;
}

int session_logits_of(const char *what, lmx_session *s, const int32_t *tokens, size_t n_tokens, int mode,
                      const float *fixed, size_t n_fixed, float *out, size_t n_out) {
    const char *step = "session_reset";
    current_check = what;
    lmx_status st = lmx_session_reset(s);
    if (st == LMX_OK && fixed) {
        step = "session_set_fixed_weights";
        st = lmx_session_set_fixed_weights(s, fixed, n_fixed);
    } else if (st == LMX_OK && mode != ROUTING_KEEP) {
        step = "session_set_routing";
        st = lmx_session_set_routing(s, (uint32_t)mode);
    }
    if (st == LMX_OK) {
        step = "session_eval";
        st = lmx_session_eval(s, tokens, n_tokens, LMX_LOGITS_ALL, out, n_out);
    }
    if (st != LMX_OK) fail(what, "%s: %s (%d) \"%s\"", step, status_name(st), st, lmx_last_error());
    return st == LMX_OK;
}

int mixer_logits_of(const char *what, const lmx_mixer *mixer, int trace, const int32_t *tokens, size_t n_tokens,
                    const float *fixed, size_t n_fixed, float *out, size_t n_out) {
    lmx_session *s = make_session(what, mixer, 0, trace);
    if (!s) return 0;
    int ok = session_logits_of(what, s, tokens, n_tokens, ROUTING_KEEP, fixed, n_fixed, out, n_out);
    lmx_session_free(s);
    return ok;
}

lmx_mixer *fixture_mixer_in(const char *dir, const char *label, lmx_model *model, int n_experts, const char *router) {
    lmx_mixer *mixer = NULL;
    current_check = "mixer setup";
    if (lmx_mixer_create(model, &mixer) != LMX_OK) {
        fail("mixer setup", "%s: mixer_create: %s", label, lmx_last_error());
        return NULL;
    }
    for (int i = 0; i < n_experts; i++) {
        char name[16], rel[64], expert_dir[1200];
        snprintf(name, sizeof name, "e%d", i);
        snprintf(rel, sizeof rel, "adapters/e%d", i);
        join(expert_dir, sizeof expert_dir, dir, rel);
        if (lmx_mixer_add_peft(mixer, name, expert_dir, NULL) != LMX_OK) {
            fail("mixer setup", "%s: add_peft %s: %s", label, name, lmx_last_error());
            lmx_mixer_free(mixer);
            return NULL;
        }
    }
    if (router) {
        char path[1200];
        join(path, sizeof path, dir, router);
        if (lmx_mixer_load_router(mixer, path) != LMX_OK) {
            fail("mixer setup", "%s: load_router %s: %s", label, router, lmx_last_error());
            lmx_mixer_free(mixer);
            return NULL;
        }
    }
    return mixer;
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

int test_start(int argc, char **argv, char *fixtures, size_t size) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 0;
    }
    snprintf(fixtures, size, "%s", argv[1]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_crash_handler();
    return 1;
}

int test_summary(const char *program) {
    printf("%s: %d passed, %d failed\n", program, tests_passed, tests_failed);
    return tests_failed ? 1 : 0;
}

/* With $LMX_STATUS_LOG set, every failing status a check sees is appended there as
 * "<function>\t<LMX_ERR_*>" (the function from the "lmx_x: ..." prefix of lmx_last_error), for
 * tools/abi/check_header_docs.py --status-log: each must be among that function's documented Errors. */
static void log_status(lmx_status got, const char *message) {
    const char *path = getenv("LMX_STATUS_LOG");
    if (!path || !path[0] || got == LMX_OK || !message || strncmp(message, "lmx_", 4) != 0) return;
    size_t n = strcspn(message, ": ");
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%.*s\t%s\n", (int)n, message, status_name(got));
    fclose(f);
}

int expect_status(const char *what, lmx_status got, lmx_status want, ...) {
    const char *message = lmx_last_error();
    log_status(got, message);
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
