/*
 * plugin_test — the plugin ABI of libloramixer, from C: the example plugins of examples-c/plugins/
 * and the purpose-made plugins of bad/ and good/ (built by the Makefile into BUILD/plugins/).
 *
 *   plugin_test FIXTURES_DIR BUILD_DIR
 *
 * Every failure path is checked for its exact status and the key words of lmx_last_error(), and
 * for leaving the mixer unchanged; side effects of plugin callbacks (release, destroy, shutdown)
 * are observed through log files the test plugins append to. Numbers are checked against the
 * fixture oracle (peft_folders) or against the same delta given to the library another way
 * (custom_lora vs lmx_mixer_add_lora, memory_lora vs its numbers regenerated here).
 * Prints one line per check and `plugin_test: N passed, M failed`; exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"
#include "good/fixed_numbers.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { N_TOKENS = 12, VOCAB = 128, LAYERS = 2, N_LOGITS = N_TOKENS * VOCAB };

static const char *fixtures, *build, *self_path;
static char llama[1024], plugins[1100], logs[1100];
static lmx_model *model;
static int32_t *tokens;
static float *base_logits;

/* ------------------------------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------------------------------- */

static void plugin_path(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s.so", plugins, name);
}

/* A fresh (empty) log file for one check; its path goes into `out`. */
static void fresh_log(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s.log", logs, name);
    write_text(out, "");
}

/* How many lines of the file equal `line` (or start with it, when prefix is set). */
static int count_lines(const char *path, const char *line, int prefix) {
    unsigned char *text = read_file(path, NULL);
    if (!text) return -1;
    int n = 0;
    size_t len = strlen(line);
    for (char *p = (char *)text; *p;) {
        char *end = strchr(p, '\n');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (prefix ? (l >= len && strncmp(p, line, len) == 0) : (l == len && strncmp(p, line, len) == 0)) n++;
        p += l + (end != NULL);
    }
    free(text);
    return n;
}

/* The whole log (for messages); static buffer. */
static const char *log_text(const char *path) {
    static char text[2048];
    unsigned char *data = read_file(path, NULL);
    snprintf(text, sizeof text, "%s", data ? (char *)data : "(unreadable)");
    free(data);
    for (char *c = text; *c; c++)
        if (*c == '\n') *c = '|';
    return text;
}

static void expect_lines(const char *what, const char *path, const char *line, int want) {
    int got = count_lines(path, line, 0);
    if (got == want) {
        char name[256];
        snprintf(name, sizeof name, "%s: \"%s\" logged %d time%s", what, line, want, want == 1 ? "" : "s");
        pass(name);
    } else {
        fail(what, "\"%s\" logged %d times, want %d (log: %s)", line, got, want, log_text(path));
    }
}

static lmx_status load(lmx_mixer *mixer, const char *name, const char *config) {
    char path[1300];
    plugin_path(path, sizeof path, name);
    lmx_plugin_params params = lmx_plugin_params_default();
    params.config = config;
    return lmx_mixer_load_plugin(mixer, path, &params, NULL);
}

static size_t n_experts(const lmx_mixer *mixer) {
    size_t n = (size_t)-1;
    lmx_mixer_expert_count(mixer, &n);
    return n;
}

static size_t n_plugins(const lmx_mixer *mixer) {
    size_t n = (size_t)-1;
    lmx_mixer_plugin_count(mixer, &n);
    return n;
}

/* The mixer still has `experts` experts and `plugins_before` plugins. */
static void expect_unchanged(const char *what, const lmx_mixer *mixer, size_t experts, size_t plugins_before) {
    size_t e = n_experts(mixer), p = n_plugins(mixer);
    char name[256];
    snprintf(name, sizeof name, "%s: mixer unchanged (%zu experts, %zu plugins)", what, experts, plugins_before);
    if (e == experts && p == plugins_before) pass(name);
    else fail(name, "%zu experts, %zu plugins", e, p);
}

static int all_finite(const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i])) return 0;
    return 1;
}

/* Evaluates the fixture tokens on `session` after a reset, every position's logits. */
static int eval_all(const char *what, lmx_session *session, float *logits) {
    char name[256];
    snprintf(name, sizeof name, "%s: session_reset", what);
    if (!EXPECT_OK(name, lmx_session_reset(session))) return 0;
    snprintf(name, sizeof name, "%s: session_eval", what);
    return EXPECT_OK(name, lmx_session_eval(session, tokens, N_TOKENS, LMX_LOGITS_ALL, logits, N_LOGITS));
}

/* A session over `mixer` with fixed weights (or routing NONE when weights is NULL). */
static lmx_session *fixed_session(const char *what, const lmx_mixer *mixer, const float *weights, size_t n) {
    lmx_session *s = NULL;
    char name[256];
    snprintf(name, sizeof name, "%s: session_create", what);
    if (!EXPECT_OK(name, lmx_session_create(mixer, NULL, &s))) return NULL;
    snprintf(name, sizeof name, "%s: set routing", what);
    lmx_status st = weights ? lmx_session_set_fixed_weights(s, weights, n) : lmx_session_set_routing(s, LMX_ROUTING_NONE);
    if (!EXPECT_OK(name, st)) {
        lmx_session_free(s);
        return NULL;
    }
    return s;
}

static void compare(const char *what, const float *got, const float *want, double tolerance) {
    double d = max_abs_diff(got, want, N_LOGITS);
    char name[256];
    snprintf(name, sizeof name, "%s (max |diff| %.2e <= %.0e)", what, d, tolerance);
    if (d <= tolerance) pass(name);
    else fail(what, "max |diff| %.3e > %.0e", d, tolerance);
}

/* The logits differ from the base model's and are finite. */
static void expect_effect(const char *what, const float *logits) {
    double d = max_abs_diff(logits, base_logits, N_LOGITS);
    char name[256];
    snprintf(name, sizeof name, "%s: finite, differ from base (max |diff| %.2e)", what, d);
    if (all_finite(logits, N_LOGITS) && d > 1e-3) pass(name);
    else fail(what, "finite %d, max |diff| from base %.3e (want > 1e-3)", all_finite(logits, N_LOGITS), d);
}

/* ---- SHA-256 (FIPS 180-4), for the pinning policy ------------------------------------------- */

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(uint32_t h[8], const unsigned char *p) {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

/* Lowercase hex SHA-256 of `data` into out[65]. */
static void sha256_hex(const unsigned char *data, size_t len, char out[65]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    size_t full = len / 64 * 64;
    for (size_t i = 0; i < full; i += 64) sha256_block(h, data + i);
    unsigned char tail[128] = {0};
    size_t rest = len - full, tail_len = rest < 56 ? 64 : 128;
    memcpy(tail, data + full, rest);
    tail[rest] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) tail[tail_len - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t i = 0; i < tail_len; i += 64) sha256_block(h, tail + i);
    for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", h[i]);
}

/* SHA-256 of the file at `path` into digest[65]; 0 (and a failed check named `what`) when it
 * cannot be read. */
static int file_sha256_hex(const char *path, char digest[65], const char *what) {
    size_t len = 0;
    unsigned char *data = read_file(path, &len);
    if (!data) {
        fail(what, "cannot read %s", path);
        return 0;
    }
    sha256_hex(data, len, digest);
    free(data);
    return 1;
}

static void test_sha256_self(void) {
    char hex[65];
    sha256_hex((const unsigned char *)"abc", 3, hex);
    int ok = strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0;
    const char *long_text = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes: two tail blocks */
    sha256_hex((const unsigned char *)long_text, strlen(long_text), hex);
    ok &= strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0;
    if (ok) pass("sha256 self-test (FIPS 180-4 examples)");
    else fail("sha256 self-test", "got %s", hex);
}

/* ------------------------------------------------------------------------------------------------
 * 1. Loading: files, libraries, descriptors, init
 * ---------------------------------------------------------------------------------------------- */

static void test_loader_failures(lmx_mixer *mixer) {
    size_t e0 = n_experts(mixer), p0 = n_plugins(mixer);
    char path[1300], log[1300];

    plugin_path(path, sizeof path, "does_not_exist");
    lmx_plugin_params params = lmx_plugin_params_default();
    EXPECT_ERR("missing file", lmx_mixer_load_plugin(mixer, path, &params, NULL), LMX_ERR_IO, "does_not_exist.so",
               "no such file");
    expect_unchanged("missing file", mixer, e0, p0);

    plugin_path(path, sizeof path, "text");
    write_text(path, "This is a text file named text.so. It is long enough to have an ELF header, but it has none.\n");
    chmod(path, 0644);
    EXPECT_ERR("not a shared library", load(mixer, "text", NULL), LMX_ERR_PLUGIN, "text.so",
               "cannot load as a shared library", "invalid ELF header");
    expect_unchanged("not a shared library", mixer, e0, p0);

    EXPECT_ERR("a folder, not a file", lmx_mixer_load_plugin(mixer, plugins, NULL, NULL), LMX_ERR_PLUGIN,
               "not a regular file");

    EXPECT_ERR("no lmx_plugin_entry", load(mixer, "no_entry", NULL), LMX_ERR_PLUGIN, "no_entry.so", "lmx_plugin_entry");
    expect_unchanged("no lmx_plugin_entry", mixer, e0, p0);

    EXPECT_ERR("entry returns NULL", load(mixer, "null_entry", NULL), LMX_ERR_PLUGIN, "null_entry.so",
               "lmx_plugin_entry", "NULL");

    EXPECT_ERR("ABI major 2.3", load(mixer, "abi_major", NULL), LMX_ERR_ABI, "abi_major.so", "2.3", "1.x");
    expect_unchanged("ABI major 2.3", mixer, e0, p0);

    EXPECT_ERR("descriptor struct_size 16", load(mixer, "small_descriptor", NULL), LMX_ERR_ABI, "small_descriptor.so",
               "struct_size 16", "smaller");

    EXPECT_ERR("descriptor without init", load(mixer, "null_init", NULL), LMX_ERR_PLUGIN, "null_init.so", "init");

    fresh_log(log, sizeof log, "init_error");
    char config[1400];
    snprintf(config, sizeof config, "log=%s", log);
    EXPECT_ERR("init fails with set_error", load(mixer, "init_error", config), LMX_ERR_PLUGIN,
               "org.loramixer.test.init-error", "init failed", "the frobnicator licence expired (code 42)");
    expect_unchanged("init fails with set_error", mixer, e0, p0);
    snprintf(config, sizeof config, "log=%s;silent", log);
    EXPECT_ERR("init fails without a message", load(mixer, "init_error", config), LMX_ERR_PLUGIN,
               "org.loramixer.test.init-error", "init failed", "-3");
    expect_lines("init failed: shutdown never runs", log, "shutdown", 0);

    EXPECT_ERR("lmx_mixer_load_plugin NULL mixer", lmx_mixer_load_plugin(NULL, path, NULL, NULL),
               LMX_ERR_INVALID_ARGUMENT, "mixer");
    EXPECT_ERR("lmx_mixer_load_plugin NULL path", lmx_mixer_load_plugin(mixer, NULL, NULL, NULL),
               LMX_ERR_INVALID_ARGUMENT, "path");
    params.struct_size = 4;
    plugin_path(path, sizeof path, "custom_scaler");
    EXPECT_ERR("lmx_plugin_params.struct_size 4", lmx_mixer_load_plugin(mixer, path, &params, NULL), LMX_ERR_ABI,
               "lmx_plugin_params", "struct_size");
    expect_unchanged("after the loader failures", mixer, e0, p0);
}

/* ------------------------------------------------------------------------------------------------
 * 2. Registrations: shapes, staging, names, ids, the host table
 * ---------------------------------------------------------------------------------------------- */

static void test_registration_failures(lmx_mixer *mixer) {
    size_t e0 = n_experts(mixer), p0 = n_plugins(mixer);
    char log[1300], config[1500];

    /* A tensor of the wrong shape, init ignoring the failure. */
    fresh_log(log, sizeof log, "bad_shape_ok");
    snprintf(config, sizeof config, "mode=copied;return=ok;log=%s", log);
    EXPECT_ERR("wrong LoRA shape, init returns OK", load(mixer, "bad_shape", config), LMX_ERR_SHAPE, "misfit", "q_proj",
               "64 -> 64", "64 -> 96");
    expect_unchanged("wrong LoRA shape, init returns OK", mixer, e0, p0);
    expect_lines("wrong LoRA shape: register_lora answered LMX_ERR_SHAPE", log, "register -4", 1);
    if (count_lines(log, "shutdown", 0) > 1) fail("wrong LoRA shape: shutdown", "ran more than once: %s", log_text(log));

    /* The same, init returning the registration's status (what most plugins do). */
    fresh_log(log, sizeof log, "bad_shape_status");
    snprintf(config, sizeof config, "mode=copied;return=status;log=%s", log);
    EXPECT_ERR("wrong LoRA shape, init returns that status", load(mixer, "bad_shape", config), LMX_ERR_SHAPE, "misfit",
               "q_proj", "64 -> 96");
    expect_unchanged("wrong LoRA shape, init returns that status", mixer, e0, p0);
    expect_lines("wrong LoRA shape, init failed: shutdown never runs", log, "shutdown", 0);

    /* A refused borrowed registration takes no ownership, whichever check refuses it: release does
     * not run and the memory stays the plugin's (as for a refused custom expert's user data). */
    fresh_log(log, sizeof log, "bad_shape_borrowed");
    snprintf(config, sizeof config, "mode=borrowed;return=ok;log=%s", log);
    EXPECT_ERR("wrong borrowed LoRA shape", load(mixer, "bad_shape", config), LMX_ERR_SHAPE, "misfit", "q_proj");
    expect_lines("wrong borrowed LoRA shape: refused, so release does not run", log, "release misfit", 0);
    fresh_log(log, sizeof log, "bad_shape_rank0");
    snprintf(config, sizeof config, "mode=rank0;return=ok;log=%s", log);
    EXPECT_ERR("borrowed LoRA with rank 0", load(mixer, "bad_shape", config), LMX_ERR_INVALID_ARGUMENT, "misfit", "rank");
    expect_lines("borrowed LoRA with rank 0: refused, so release does not run", log, "release misfit", 0);
    expect_unchanged("refused borrowed LoRAs", mixer, e0, p0);

    /* Staging: three good registrations, then a bad one: none of them is visible, all are cleaned up. */
    for (int mode = 0; mode < 2; mode++) {
        const char *ret = mode ? "status" : "ok";
        char what[128];
        fresh_log(log, sizeof log, mode ? "staged_status" : "staged_ok");
        snprintf(config, sizeof config, "log=%s;return=%s", log, ret);
        snprintf(what, sizeof what, "staged: 3 good + 1 bad, init returns %s", mode ? "that status" : "OK");
        EXPECT_ERR(what, load(mixer, "staged", config), LMX_ERR_SHAPE, "staged-d", "v_proj", "64 -> 64", "64 -> 48");
        expect_unchanged(what, mixer, e0, p0);
        int good = count_lines(log, "register staged-a 0", 0) + count_lines(log, "register staged-b 0", 0) +
                   count_lines(log, "register staged-c 0", 0);
        if (good == 3 && count_lines(log, "register staged-d -4", 0) == 1)
            pass("staged: a, b, c were accepted by the host, d refused with LMX_ERR_SHAPE");
        else fail("staged: registrations", "log: %s", log_text(log));
        expect_lines("staged: the custom expert's destroy ran", log, "destroy staged-b", 1);
        expect_lines("staged: the borrowed LoRA was released", log, "release staged-c", 1);
        if (mode) expect_lines("staged, init failed: shutdown never runs", log, "shutdown", 0);
        else if (count_lines(log, "shutdown", 0) > 1) fail("staged: shutdown", "ran more than once: %s", log_text(log));
    }

    /* Custom experts whose declared dimensions do not fit. */
    fresh_log(log, sizeof log, "custom_dims");
    snprintf(config, sizeof config, "mode=dims;return=ok;log=%s", log);
    EXPECT_ERR("custom expert o_proj declared 64 -> 64", load(mixer, "custom_dims", config), LMX_ERR_SHAPE, "twin",
               "o_proj", "64 -> 64", "96 -> 64");
    expect_unchanged("custom expert with wrong dims", mixer, e0, p0);
    expect_lines("custom expert with wrong dims: refused registration, destroy not called", log, "destroy first", 0);
    fresh_log(log, sizeof log, "custom_layer");
    snprintf(config, sizeof config, "mode=layer;return=ok;log=%s", log);
    EXPECT_ERR("custom expert on layer 5 of 2", load(mixer, "custom_dims", config), LMX_ERR_SHAPE, "twin", "layers[0] = 5",
               "2 layers");
    fresh_log(log, sizeof log, "custom_twice");
    snprintf(config, sizeof config, "mode=twice;return=ok;log=%s", log);
    EXPECT_ERR("one plugin registers 'twin' twice", load(mixer, "custom_dims", config), LMX_ERR_INVALID_ARGUMENT, "twin",
               "twice");
    expect_unchanged("one plugin registers 'twin' twice", mixer, e0, p0);
    expect_lines("'twin' twice: the staged first one is destroyed", log, "destroy first", 1);
    expect_lines("'twin' twice: the refused second one is not destroyed (as a refused registration)", log,
                 "destroy second", 0);

    /* Descriptors smaller than ABI 1.0's, handed to register_*. */
    EXPECT_ERR("register_lora desc struct_size 8", load(mixer, "probe", "abi_lora"), LMX_ERR_ABI, "tiny-desc",
               "lmx_lora_desc", "struct_size");
    EXPECT_ERR("register_custom desc struct_size 8", load(mixer, "probe", "abi_custom"), LMX_ERR_ABI, "tiny-desc",
               "lmx_custom_expert_desc", "struct_size");
    expect_unchanged("small registration descriptors", mixer, e0, p0);

    /* The host table answers as documented (the probe reports mismatches through set_error). */
    if (EXPECT_OK("host table probe: model_info, module_shape, NULL arguments", load(mixer, "probe", NULL))) {
        if (n_experts(mixer) == e0 && n_plugins(mixer) == p0 + 1) pass("probe: loaded with no experts");
        else fail("probe", "%zu experts, %zu plugins", n_experts(mixer), n_plugins(mixer));
        EXPECT_OK("probe: unload", lmx_mixer_unload_plugin(mixer, "org.loramixer.test.probe"));
    }
    /* Registrations refused for NULL arguments answer LMX_ERR_INVALID_ARGUMENT and fail the load,
     * even though init returns OK; the probe adds no complaint of its own ("plugin says"). */
    if (EXPECT_ERR("host table probe: NULL registrations fail the load", load(mixer, "probe", "nulls"),
                   LMX_ERR_INVALID_ARGUMENT, "a registration failed", "register_lora", "'desc' must not be NULL")) {
        if (strstr(lmx_last_error(), "plugin says")) fail("probe nulls", "the probe saw a mismatch: %s", lmx_last_error());
        else pass("probe nulls: every NULL registration answered LMX_ERR_INVALID_ARGUMENT");
    }
    expect_unchanged("probe with NULL registrations", mixer, e0, p0);

    /* A name that clashes with an expert already in the mixer (e0, from lmx_mixer_add_peft). */
    EXPECT_ERR("plugin expert named like a mixer expert", load(mixer, "dup_name", "name=e0"), LMX_ERR_INVALID_ARGUMENT,
               "'e0'", "already");
    expect_unchanged("plugin expert named like a mixer expert", mixer, e0, p0);

    /* The same plugin id twice. */
    if (EXPECT_OK("memory_lora: first load", load(mixer, "memory_lora", "seed=5"))) {
        EXPECT_ERR("memory_lora: the same id again", load(mixer, "memory_lora", "seed=6"), LMX_ERR_PLUGIN,
                   "org.loramixer.example.memory-lora", "already loaded");
        expect_unchanged("memory_lora: the same id again", mixer, e0 + 2, p0 + 1);
        EXPECT_OK("memory_lora: unload", lmx_mixer_unload_plugin(mixer, "org.loramixer.example.memory-lora"));
    }
    EXPECT_ERR("memory_lora: bad config", load(mixer, "memory_lora", "seed=x"), LMX_ERR_PLUGIN, "seed 'x'");
    EXPECT_ERR("memory_lora: unknown key", load(mixer, "memory_lora", "colour=red"), LMX_ERR_PLUGIN, "unknown key 'colour'");

    /* peft_folders: malformed configs, a missing folder, a router that does not fit. */
    static const struct { const char *config, *key; } malformed[] = {
        {"math", "config entry 1 'math' is not name=dir"},
        {"", "lists no experts"},
        {"a=x;b=", "config entry 2: 'b' has an empty path"},
        {"=x", "empty name"},
        {"a=x;a=y", "expert name 'a' is given twice"},
        {"router=r1;router=r2", "a second router 'r2'"},
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        char what[128];
        snprintf(what, sizeof what, "peft_folders: config \"%s\"", malformed[i].config);
        EXPECT_ERR(what, load(mixer, "peft_folders", malformed[i].config), LMX_ERR_PLUGIN, "peft-folders", malformed[i].key);
    }
    EXPECT_ERR("peft_folders: a missing folder", load(mixer, "peft_folders", "x=/nonexistent/adapter"), LMX_ERR_IO,
               "/nonexistent/adapter");
    snprintf(config, sizeof config, "f0=%s/llama_f32/adapters/e0;f1=%s/llama_f32/adapters/e1;router=%s/llama_f32/router.safetensors",
             fixtures, fixtures, fixtures);
    EXPECT_ERR("peft_folders: router rows e0,e1,e2 vs experts e0 (mixer), f0, f1", load(mixer, "peft_folders", config),
               LMX_ERR_NOT_FOUND, "e1");
    expect_unchanged("after the peft_folders failures", mixer, e0, p0);

    /* Queries and unload with bad arguments. */
    char buf[64];
    size_t needed = 0;
    EXPECT_ERR("plugin_string index out of range", lmx_mixer_plugin_string(mixer, 7, LMX_PLUGIN_ID, buf, sizeof buf, &needed),
               LMX_ERR_NOT_FOUND, "7");
    EXPECT_ERR("unload an unknown id", lmx_mixer_unload_plugin(mixer, "org.nope"), LMX_ERR_NOT_FOUND, "org.nope");
    EXPECT_ERR("unload NULL id", lmx_mixer_unload_plugin(mixer, NULL), LMX_ERR_INVALID_ARGUMENT, "id");
    EXPECT_ERR("plugin_count NULL out", lmx_mixer_plugin_count(mixer, NULL), LMX_ERR_INVALID_ARGUMENT, "out_count");
}

/* After every failure above the host still works: a good plugin loads into the same mixer and evaluates. */
static void test_host_keeps_working(lmx_mixer *mixer) {
    size_t e0 = n_experts(mixer);
    if (!EXPECT_OK("after the failures: load custom_scaler", load(mixer, "custom_scaler", "scale=0.5"))) return;
    if (n_experts(mixer) == e0 + 1) pass("after the failures: custom_scaler's expert is in the mixer");
    else fail("after the failures", "%zu experts, want %zu", n_experts(mixer), e0 + 1);
    float weights[8] = {0};
    weights[e0] = 1.0f;
    lmx_session *s = fixed_session("after the failures", mixer, weights, e0 + 1);
    static float logits[N_LOGITS];
    if (s && eval_all("after the failures", s, logits)) expect_effect("after the failures: custom_scaler", logits);
    lmx_session_free(s);
    EXPECT_OK("after the failures: unload custom_scaler", lmx_mixer_unload_plugin(mixer, "org.loramixer.example.custom-scaler"));
}

/* ------------------------------------------------------------------------------------------------
 * 3. Policy: SHA-256 pins, writable files and folders
 * ---------------------------------------------------------------------------------------------- */

static lmx_status load_with(lmx_mixer *mixer, const char *path, const char *const *pins, size_t n_pins, int writable) {
    lmx_plugin_params params = lmx_plugin_params_default();
    params.allowed_sha256 = pins;
    params.n_allowed_sha256 = n_pins;
    params.allow_writable = (uint32_t)writable;
    return lmx_mixer_load_plugin(mixer, path, &params, NULL);
}

static void unload_scaler(lmx_mixer *mixer, const char *what) {
    char name[256];
    snprintf(name, sizeof name, "%s: unload", what);
    EXPECT_OK(name, lmx_mixer_unload_plugin(mixer, "org.loramixer.example.custom-scaler"));
}

static void test_policy(lmx_mixer *mixer) {
    char source[1300], dir[1300], open_dir[1300], path[1400], digest[65], upper[65];
    plugin_path(source, sizeof source, "custom_scaler");
    snprintf(dir, sizeof dir, "%s/policy", build);
    snprintf(open_dir, sizeof open_dir, "%s/policy_open", build);
    mkdir(dir, 0755);
    mkdir(open_dir, 0755);
    chmod(dir, 0755);
    chmod(open_dir, 0777);

    if (!file_sha256_hex(source, digest, "policy")) return;
    for (int i = 0; i < 65; i++) upper[i] = (char)(digest[i] >= 'a' && digest[i] <= 'f' ? digest[i] - 32 : digest[i]);

    snprintf(path, sizeof path, "%s/pinned.so", dir);
    copy_file(source, path);
    chmod(path, 0755);
    const char *right[] = {digest};
    const char *wrong[] = {"0000000000000000000000000000000000000000000000000000000000000000"};
    const char *both[] = {wrong[0], digest};
    const char *upper_pin[] = {upper};
    if (EXPECT_OK("policy: pinned SHA-256 matches", load_with(mixer, path, right, 1, 0))) unload_scaler(mixer, "policy pinned");
    if (EXPECT_OK("policy: the right digest among two pins", load_with(mixer, path, both, 2, 0)))
        unload_scaler(mixer, "policy two pins");
    if (EXPECT_OK("policy: pin in uppercase hex", load_with(mixer, path, upper_pin, 1, 0)))
        unload_scaler(mixer, "policy uppercase pin");
    EXPECT_ERR("policy: wrong pin", load_with(mixer, path, wrong, 1, 0), LMX_ERR_PLUGIN, "pinned.so", "SHA-256", digest,
               "not among");
    EXPECT_ERR("policy: NULL pin list with a count", load_with(mixer, path, NULL, 1, 0), LMX_ERR_INVALID_ARGUMENT,
               "allowed_sha256");

    snprintf(path, sizeof path, "%s/writable.so", dir);
    copy_file(source, path);
    chmod(path, 0666);
    EXPECT_ERR("policy: file mode 0666 refused", load_with(mixer, path, NULL, 0, 0), LMX_ERR_PLUGIN, "writable.so",
               "writable by group or others", "666");
    if (EXPECT_OK("policy: file mode 0666 with allow_writable", load_with(mixer, path, NULL, 0, 1)))
        unload_scaler(mixer, "policy writable file");
    chmod(path, 0620);
    EXPECT_ERR("policy: file mode 0620 (group-writable) refused", load_with(mixer, path, NULL, 0, 0), LMX_ERR_PLUGIN,
               "writable by group or others");

    snprintf(path, sizeof path, "%s/in_open_folder.so", open_dir);
    copy_file(source, path);
    chmod(path, 0755);
    EXPECT_ERR("policy: folder mode 0777 refused", load_with(mixer, path, NULL, 0, 0), LMX_ERR_PLUGIN, "folder",
               "policy_open", "777");
    if (EXPECT_OK("policy: folder mode 0777 with allow_writable", load_with(mixer, path, NULL, 0, 1)))
        unload_scaler(mixer, "policy writable folder");
    chmod(open_dir, 0755);
    if (EXPECT_OK("policy: the same folder at 0755", load_with(mixer, path, NULL, 0, 0))) unload_scaler(mixer, "policy 0755");
}

/* ------------------------------------------------------------------------------------------------
 * 3b. The pin holds the loaded file: the library hashes and loads one open file, so replacing the
 *     file at the path (between loads, or while a load runs) never gets unpinned code loaded; a
 *     path without '/' names a file in the current folder, never one on the library search path.
 * ---------------------------------------------------------------------------------------------- */

#define SCALER_ID "org.loramixer.example.custom-scaler"

/* The id of the mixer's last plugin into out ("" if there is none). */
static void last_plugin_id(const lmx_mixer *mixer, char *out, size_t size) {
    out[0] = 0;
    size_t n = n_plugins(mixer);
    if (n == 0 || n == (size_t)-1 || lmx_mixer_plugin_string(mixer, n - 1, LMX_PLUGIN_ID, out, size, NULL) != LMX_OK)
        out[0] = 0;
}

/* Puts the file `from` at `target` in one step: a hard link under a temporary name, renamed over. */
static int replace_with(const char *from, const char *target, const char *tmp) {
    unlink(tmp);
    return link(from, tmp) == 0 && rename(tmp, target) == 0;
}

typedef struct {
    const char *a, *b, *target;
    char tmp[1500];
    atomic_int stop;
    long swaps, errors;
} swapper;

/* Renames A and B over the target in turn until told to stop (at most 2,000,000 times). */
static void *swap_loop(void *arg) {
    swapper *s = arg;
    for (long i = 0; i < 2000000 && !atomic_load(&s->stop); i++) {
        if (!replace_with((i & 1) ? s->b : s->a, s->target, s->tmp)) {
            s->errors++;
            break;
        }
        s->swaps++;
    }
    return NULL;
}

static void test_pin_race(lmx_mixer *mixer) {
    char dir[1300], a[1400], b[1400], target[1400], tmp[1400], link_path[1400], digest[65], id[256];
    snprintf(dir, sizeof dir, "%s/pin_race", build);
    mkdir(dir, 0755);
    chmod(dir, 0755);
    char source_a[1300], source_b[1300];
    plugin_path(source_a, sizeof source_a, "custom_scaler");
    plugin_path(source_b, sizeof source_b, "lifecycle");
    snprintf(a, sizeof a, "%s/a.so", dir);
    snprintf(b, sizeof b, "%s/b.so", dir);
    snprintf(target, sizeof target, "%s/plugin.so", dir);
    snprintf(tmp, sizeof tmp, "%s/.plugin.so.tmp", dir);
    snprintf(link_path, sizeof link_path, "%s/link.so", dir);
    copy_file(source_a, a);
    copy_file(source_b, b);
    chmod(a, 0755);
    chmod(b, 0755);
    if (!file_sha256_hex(a, digest, "pin race")) return;
    const char *pin_a[] = {digest};
    size_t e0 = n_experts(mixer), p0 = n_plugins(mixer);

    /* Swapped between two loads: A's bytes load, B's are refused at the same path. */
    replace_with(a, target, tmp);
    if (EXPECT_OK("pin: A at the path, pinned to A", load_with(mixer, target, pin_a, 1, 0))) {
        last_plugin_id(mixer, id, sizeof id);
        if (strcmp(id, SCALER_ID) == 0) pass("pin: the loaded plugin is A (" SCALER_ID ")");
        else fail("pin: the loaded plugin", "id '%s', want " SCALER_ID, id);
        unload_scaler(mixer, "pin: A");
    }
    replace_with(b, target, tmp);
    EXPECT_ERR("pin: B renamed over the path, pinned to A", load_with(mixer, target, pin_a, 1, 0), LMX_ERR_PLUGIN,
               "plugin.so", "SHA-256", "not among");
    expect_unchanged("pin: B refused", mixer, e0, p0);
    replace_with(a, target, tmp);
    if (EXPECT_OK("pin: A renamed back", load_with(mixer, target, pin_a, 1, 0))) unload_scaler(mixer, "pin: A back");

    /* Through a symlink: the file it points to when opened is the one hashed and loaded. */
    unlink(link_path);
    if (symlink("a.so", link_path) == 0 && EXPECT_OK("pin: a symlink to A", load_with(mixer, link_path, pin_a, 1, 0)))
        unload_scaler(mixer, "pin: symlink to A");
    unlink(link_path);
    if (symlink("b.so", link_path) == 0)
        EXPECT_ERR("pin: the symlink repointed to B", load_with(mixer, link_path, pin_a, 1, 0), LMX_ERR_PLUGIN,
                   "link.so", "SHA-256", "not among");

    /* Renamed over while loading: a thread swaps A and B at the path without pause while this one
     * loads it pinned to A. Every load must be A (by its id) or refused by the pin; none may be B. */
    swapper s = {.a = a, .b = b, .target = target};
    snprintf(s.tmp, sizeof s.tmp, "%s/.swap.tmp", dir);
    atomic_init(&s.stop, 0);
    pthread_t thread;
    if (pthread_create(&thread, NULL, swap_loop, &s) != 0) {
        fail("pin race", "pthread_create failed");
        return;
    }
    enum { LOADS = 100 };
    int loaded_a = 0, refused = 0, wrong = 0, other = 0;
    char wrong_id[256] = "", other_error[512] = "";
    for (int i = 0; i < LOADS; i++) {
        lmx_status st = load_with(mixer, target, pin_a, 1, 0);
        if (st == LMX_OK) {
            last_plugin_id(mixer, id, sizeof id);
            if (strcmp(id, SCALER_ID) == 0) loaded_a++;
            else if (wrong++ == 0) snprintf(wrong_id, sizeof wrong_id, "%s", id);
            lmx_mixer_unload_plugin(mixer, id);
        } else if (st == LMX_ERR_PLUGIN && strstr(lmx_last_error(), "not among")) {
            refused++;
        } else if (other++ == 0) {
            snprintf(other_error, sizeof other_error, "%s: %s", status_name(st), lmx_last_error());
        }
    }
    atomic_store(&s.stop, 1);
    pthread_join(thread, NULL);
    char name[512];
    snprintf(name, sizeof name, "pin: %d loads while the path is swapped (%ld swaps): A loaded %d times, B refused %d times, "
             "never anything else", LOADS, s.swaps, loaded_a, refused);
    if (wrong == 0 && other == 0 && s.errors == 0 && loaded_a + refused == LOADS) pass(name);
    else fail("pin: loads during swaps", "%d loaded another plugin (first: '%s'), %d failed otherwise (first: %s), "
              "%ld swap errors", wrong, wrong_id, other, other_error, s.errors);
    expect_unchanged("pin: after the swaps", mixer, e0, p0);
}

/* The child half of test_bare_name, run as `plugin_test FIXTURES BUILD --bare-name DIR` with DIR's
 * sibling bare_libpath on LD_LIBRARY_PATH. Exits 0 when every check passed. */
static int bare_name_child(const char *dir) {
    lmx_mixer *mixer = NULL;
    char id[256];
    if (!EXPECT_OK("bare name (child): model_load", lmx_model_load(llama, NULL, &model)) ||
        !EXPECT_OK("bare name (child): mixer_create", lmx_mixer_create(model, &mixer)))
        return 1;
    if (chdir(dir) != 0) {
        fail("bare name (child)", "cannot enter %s", dir);
        return 1;
    }
    if (EXPECT_OK("bare name: 'bare_plugin.so' loads", lmx_mixer_load_plugin(mixer, "bare_plugin.so", NULL, NULL))) {
        last_plugin_id(mixer, id, sizeof id);
        if (strcmp(id, SCALER_ID) == 0)
            pass("bare name: 'bare_plugin.so' is the one in the current folder, not the one on LD_LIBRARY_PATH");
        else fail("bare name: which file", "loaded '%s', want " SCALER_ID " (the current folder's)", id);
    }
    EXPECT_ERR("bare name: a name only on LD_LIBRARY_PATH is not found", lmx_mixer_load_plugin(mixer, "only_on_path.so",
               NULL, NULL), LMX_ERR_IO, "only_on_path.so", "no such file");
    lmx_mixer_free(mixer);
    lmx_model_free(model);
    return tests_failed ? 1 : 0;
}

static void test_bare_name(void) {
    char cwd_dir[1300], lib_dir[1300], from[1300], to[1400], env[8200];
    snprintf(cwd_dir, sizeof cwd_dir, "%s/bare_cwd", build);
    snprintf(lib_dir, sizeof lib_dir, "%s/bare_libpath", build);
    mkdir(cwd_dir, 0755);
    mkdir(lib_dir, 0755);
    chmod(cwd_dir, 0755);
    chmod(lib_dir, 0755);
    plugin_path(from, sizeof from, "custom_scaler");
    snprintf(to, sizeof to, "%s/bare_plugin.so", cwd_dir);
    copy_file(from, to);
    chmod(to, 0755);
    plugin_path(from, sizeof from, "lifecycle");
    snprintf(to, sizeof to, "%s/bare_plugin.so", lib_dir);
    copy_file(from, to);
    chmod(to, 0755);
    snprintf(to, sizeof to, "%s/only_on_path.so", lib_dir);
    copy_file(from, to);
    chmod(to, 0755);

    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        const char *old = getenv("LD_LIBRARY_PATH");
        /* The child changes folder: the decoy's folder goes on the path as an absolute one. */
        char cwd[2048] = "";
        if (lib_dir[0] != '/' && !getcwd(cwd, sizeof cwd)) _exit(126);
        snprintf(env, sizeof env, "%s%s%s%s%s", cwd, *cwd ? "/" : "", lib_dir, old && *old ? ":" : "", old ? old : "");
        setenv("LD_LIBRARY_PATH", env, 1);
        execl(self_path, self_path, fixtures, build, "--bare-name", cwd_dir, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) fail("bare name", "cannot run the child process");
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        pass("bare name: the child with a decoy on LD_LIBRARY_PATH passed its checks");
    else fail("bare name", "the child (LD_LIBRARY_PATH=%s, cwd %s) failed: status 0x%x", lib_dir, cwd_dir, status);
}

/* ------------------------------------------------------------------------------------------------
 * 4. Unload and lifetime: sessions keep experts and code; shutdown after the last user
 * ---------------------------------------------------------------------------------------------- */

static void test_lifecycle(void) {
    lmx_mixer *mixer = NULL;
    char log[1300], config[2600], e0_dir[1200];
    static float before[N_LOGITS], after[N_LOGITS], other[N_LOGITS], custom[N_LOGITS];
    const float one = 1.0f;
    snprintf(e0_dir, sizeof e0_dir, "%s/llama_f32/adapters/e0", fixtures);
    if (!EXPECT_OK("lifecycle: mixer_create", lmx_mixer_create(model, &mixer))) return;

    /* a. A custom expert: unload while a session uses it. */
    fresh_log(log, sizeof log, "lifecycle_custom");
    snprintf(config, sizeof config, "log=%s;custom", log);
    if (EXPECT_OK("lifecycle: load (custom expert)", load(mixer, "lifecycle", config))) {
        lmx_session *s = fixed_session("lifecycle", mixer, &one, 1);
        if (s && eval_all("lifecycle: before unload", s, before)) {
            expect_effect("lifecycle: custom expert 'life'", before);
            memcpy(custom, before, sizeof custom);
            EXPECT_OK("lifecycle: unload", lmx_mixer_unload_plugin(mixer, "org.loramixer.test.lifecycle"));
            if (n_experts(mixer) == 0 && n_plugins(mixer) == 0) pass("lifecycle: unload removes the expert and the plugin");
            else fail("lifecycle: unload", "%zu experts, %zu plugins left", n_experts(mixer), n_plugins(mixer));
            expect_lines("lifecycle: after unload, with a session alive: not destroyed", log, "destroy life", 0);
            if (count_lines(log, "shutdown", 1) == 0) pass("lifecycle: after unload, with a session alive: no shutdown yet");
            else fail("lifecycle: shutdown too early", "log after unload: %s", log_text(log));
            if (eval_all("lifecycle: the older session after unload", s, after)) {
                if (memcmp(before, after, sizeof before) == 0)
                    pass("lifecycle: the older session still runs the plugin's code (bit-identical logits)");
                else fail("lifecycle: older session", "logits changed by %.3e", max_abs_diff(before, after, N_LOGITS));
            }
            lmx_session *fresh = fixed_session("lifecycle: session after unload", mixer, NULL, 0);
            if (fresh && eval_all("lifecycle: session after unload", fresh, other))
                compare("lifecycle: a session created after unload is the base model", other, base_logits, 1e-4);
            lmx_session_free(fresh);
            expect_lines("lifecycle: still no destroy before the older session is freed", log, "destroy life", 0);
        }
        lmx_session_free(s);
        expect_lines("lifecycle: session freed: destroy ran", log, "destroy life", 1);
        int shutdowns = count_lines(log, "shutdown forward_calls=", 1);
        int forward_seen = count_lines(log, "shutdown forward_calls=0", 0) == 0;
        if (shutdowns == 1 && forward_seen) pass("lifecycle: session freed: shutdown ran once, after forward calls");
        else fail("lifecycle: shutdown", "%d shutdown lines (want 1, with forward_calls > 0): %s", shutdowns, log_text(log));
        unsigned char *text = read_file(log, NULL);
        char *d = text ? strstr((char *)text, "destroy life") : NULL, *sd = text ? strstr((char *)text, "shutdown") : NULL;
        if (d && sd && d < sd) pass("lifecycle: destroy before shutdown");
        else fail("lifecycle: order", "log: %s", log_text(log));
        free(text);
    }

    /* b. PEFT or copied-LoRA experts only (no plugin code runs at evaluation): shutdown must still
     *    wait for the last session that uses them. */
    for (int variant = 0; variant < 2; variant++) {
        const char *kind = variant ? "lifecycle copied LoRA" : "lifecycle peft";
        char what[160];
        fresh_log(log, sizeof log, variant ? "lifecycle_lora" : "lifecycle_peft");
        if (variant) snprintf(config, sizeof config, "log=%s;lora", log);
        else snprintf(config, sizeof config, "log=%s;peft=%s", log, e0_dir);
        snprintf(what, sizeof what, "%s: load (%s only)", kind, variant ? "a copied LoRA" : "a PEFT expert");
        if (!EXPECT_OK(what, load(mixer, "lifecycle", config))) continue;
        float *want = NULL;
        char expected[1200];
        snprintf(expected, sizeof expected, "%s/llama_f32/expected.safetensors", fixtures);
        want = fixture_tensor(expected, "peft_e0_logits", "F32", NULL);
        lmx_session *s = fixed_session(kind, mixer, &one, 1);
        int have = s && want && eval_all(kind, s, before);
        if (have && !variant) compare("lifecycle peft: register_peft e0 equals peft_e0_logits", before, want, 1e-4);
        if (have && variant) expect_effect("lifecycle copied LoRA: life-lora", before);
        snprintf(what, sizeof what, "%s: unload", kind);
        EXPECT_OK(what, lmx_mixer_unload_plugin(mixer, "org.loramixer.test.lifecycle"));
        snprintf(what, sizeof what, "%s: after unload, with a session alive: no shutdown yet", kind);
        if (count_lines(log, "shutdown", 1) == 0) pass(what);
        else fail(what, "shutdown ran at unload although a session still uses the plugin's expert (log: %s)", log_text(log));
        snprintf(what, sizeof what, "%s: the older session keeps the expert", kind);
        if (have && eval_all(what, s, after)) compare(what, after, before, 0.0);
        lmx_session_free(s);
        snprintf(what, sizeof what, "%s: session freed: shutdown ran once", kind);
        expect_lines(what, log, "shutdown forward_calls=0", 1);
        free(want);
    }

    /* c. init fails after registering a custom expert: destroyed, no shutdown. */
    fresh_log(log, sizeof log, "lifecycle_fail");
    snprintf(config, sizeof config, "log=%s;custom;fail", log);
    EXPECT_ERR("lifecycle: init fails after registering", load(mixer, "lifecycle", config), LMX_ERR_PLUGIN,
               "lifecycle: asked to fail");
    expect_unchanged("lifecycle: init fails after registering", mixer, 0, 0);
    expect_lines("lifecycle: init failed: the staged custom expert is destroyed", log, "destroy life", 1);
    if (count_lines(log, "shutdown", 1) == 0) pass("lifecycle: init failed: shutdown never runs");
    else fail("lifecycle: init failed: shutdown ran", "log: %s", log_text(log));

    /* d. The mixer freed (without unload) while a session lives. */
    fresh_log(log, sizeof log, "lifecycle_mixer_free");
    snprintf(config, sizeof config, "log=%s;custom", log);
    if (EXPECT_OK("lifecycle: load again", load(mixer, "lifecycle", config))) {
        lmx_session *s = fixed_session("lifecycle: mixer freed first", mixer, &one, 1);
        lmx_mixer_free(mixer);
        mixer = NULL;
        if (count_lines(log, "shutdown", 1) == 0 && count_lines(log, "destroy life", 0) == 0)
            pass("lifecycle: mixer freed, session alive: no destroy, no shutdown");
        else fail("lifecycle: mixer freed first", "log: %s", log_text(log));
        if (s && eval_all("lifecycle: session outlives its mixer", s, after))
            compare("lifecycle: session outlives its mixer, same logits as before", after, custom, 0.0);
        lmx_session_free(s);
        expect_lines("lifecycle: last session freed: destroy", log, "destroy life", 1);
        if (count_lines(log, "shutdown forward_calls=", 1) == 1) pass("lifecycle: last session freed: shutdown once");
        else fail("lifecycle: last session freed: shutdown", "log: %s", log_text(log));
    }
    lmx_mixer_free(mixer);
}

/* ------------------------------------------------------------------------------------------------
 * 5. A custom expert equals the same delta given as a LoRA
 * ---------------------------------------------------------------------------------------------- */

static void test_custom_matches_lora(void) {
    static const uint32_t modules[2] = {LMX_MODULE_Q_PROJ, LMX_MODULE_DOWN_PROJ};
    static float custom[N_LOGITS], lora[N_LOGITS];
    lmx_mixer *with_plugin = NULL, *with_lora = NULL;
    float *buffers[LAYERS * 2 * 2] = {0};
    lmx_lora_tensor tensors[LAYERS * 2];
    if (!EXPECT_OK("custom vs LoRA: mixer_create", lmx_mixer_create(model, &with_plugin))) return;
    if (!EXPECT_OK("custom vs LoRA: mixer_create", lmx_mixer_create(model, &with_lora))) goto done;
    if (!EXPECT_OK("custom vs LoRA: load custom_lora", load(with_plugin, "custom_lora", NULL))) goto done;

    /* The same A and B, as a LoRA expert with rank 3 and alpha 1.5. */
    for (uint32_t l = 0; l < LAYERS; l++) {
        for (int m = 0; m < 2; m++) {
            uint32_t in = 0, out = 0;
            lmx_model_module_shape(model, modules[m], &in, &out);
            size_t t = l * 2 + (size_t)m, n_a = (size_t)FIXED_RANK * in, n_b = (size_t)out * FIXED_RANK;
            float *a = buffers[2 * t] = malloc(n_a * sizeof *a), *b = buffers[2 * t + 1] = malloc(n_b * sizeof *b);
            if (!a || !b) goto done;
            for (size_t i = 0; i < n_a; i++) a[i] = fixed_value(l, modules[m], 0, (uint32_t)i);
            for (size_t i = 0; i < n_b; i++) b[i] = fixed_value(l, modules[m], 1, (uint32_t)i);
            tensors[t] = (lmx_lora_tensor){.layer = l, .module = modules[m], .in_features = in, .out_features = out, .a = a, .b = b};
        }
    }
    lmx_lora_desc desc = {.struct_size = sizeof desc, .dtype = LMX_DTYPE_F32, .rank = FIXED_RANK, .alpha = FIXED_ALPHA,
                          .tensors = tensors, .n_tensors = LAYERS * 2};
    if (!EXPECT_OK("custom vs LoRA: lmx_mixer_add_lora", lmx_mixer_add_lora(with_lora, "as-lora", &desc, NULL))) goto done;

    static const float gates[] = {1.0f, 0.5f};
    for (int g = 0; g < 2; g++) {
        char what[128];
        snprintf(what, sizeof what, "custom vs LoRA, fixed weight %.1f", (double)gates[g]);
        lmx_session *sc = fixed_session(what, with_plugin, &gates[g], 1), *sl = fixed_session(what, with_lora, &gates[g], 1);
        int ok = sc && sl && eval_all(what, sc, custom) && eval_all(what, sl, lora);
        lmx_session_free(sc);
        lmx_session_free(sl);
        if (!ok) continue;
        if (g == 0) expect_effect("custom vs LoRA: the custom expert", custom);
        snprintf(what, sizeof what, "custom expert s*B(Ax) by hand == the same A/B as a LoRA, gate %.1f", (double)gates[g]);
        compare(what, custom, lora, 1e-5);
    }

done:
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    lmx_mixer_free(with_plugin);
    lmx_mixer_free(with_lora);
}

/* ------------------------------------------------------------------------------------------------
 * 6. memory_lora: a copied F32 and a borrowed F16 expert; the release callback
 * ---------------------------------------------------------------------------------------------- */

/* memory_lora's numbers, regenerated (xorshift64*, values in [-0.1, 0.1)). */
static uint64_t next_random(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static float next_value(uint64_t *state) { return ((float)(next_random(state) >> 40) / 16777216.0f - 0.5f) * 0.2f; }

/* The f16 rounding of v by the compiler's own conversion, independent of the plugin's converter. */
static float round_f16(float v) {
#ifdef __FLT16_MAX__
    return (float)(_Float16)v;
#else
    return v;
#endif
}

/* Adds memory_lora's expert (seed, rank, alpha; borrowed: up/down_proj f16-rounded, else q/v_proj)
 * to `mixer` as a copied F32 LoRA named `name`. */
static lmx_status add_memory_oracle(lmx_mixer *mixer, const char *name, uint64_t seed, uint32_t rank, float alpha,
                                    int borrowed) {
    const uint32_t modules[2] = {borrowed ? LMX_MODULE_UP_PROJ : LMX_MODULE_Q_PROJ,
                                 borrowed ? LMX_MODULE_DOWN_PROJ : LMX_MODULE_V_PROJ};
    uint64_t state = seed * 2 + (borrowed ? 2 : 1);
    lmx_lora_tensor tensors[LAYERS * 2];
    float *data[LAYERS * 2] = {0};
    lmx_status st = LMX_ERR_OUT_OF_MEMORY;
    for (uint32_t l = 0; l < LAYERS; l++) {
        for (int m = 0; m < 2; m++) {
            uint32_t in = 0, out = 0;
            lmx_model_module_shape(model, modules[m], &in, &out);
            size_t t = l * 2 + (size_t)m, n_a = (size_t)rank * in, n_b = (size_t)out * rank;
            float *d = data[t] = malloc((n_a + n_b) * sizeof *d);
            if (!d) goto done;
            for (size_t i = 0; i < n_a + n_b; i++) {
                float v = next_value(&state);
                d[i] = borrowed ? round_f16(v) : v;
            }
            tensors[t] = (lmx_lora_tensor){.layer = l, .module = modules[m], .in_features = in, .out_features = out,
                                           .a = d, .b = d + n_a};
        }
    }
    lmx_lora_desc desc = {.struct_size = sizeof desc, .dtype = LMX_DTYPE_F32, .rank = rank, .alpha = alpha,
                          .tensors = tensors, .n_tensors = LAYERS * 2};
    st = lmx_mixer_add_lora(mixer, name, &desc, NULL);
done:
    for (int i = 0; i < LAYERS * 2; i++) free(data[i]);
    return st;
}

static void test_memory_lora(void) {
    lmx_mixer *mixer = NULL, *oracle = NULL;
    lmx_session *copied = NULL, *borrowed = NULL;
    char log[1300], config[1500], buf[256];
    static float logits[N_LOGITS], want[N_LOGITS];
    fresh_log(log, sizeof log, "memory_lora");
    snprintf(config, sizeof config, "seed=3;rank=2;alpha=3;release_log=%s", log);
    if (!EXPECT_OK("memory_lora: mixer_create", lmx_mixer_create(model, &mixer))) return;
    if (!EXPECT_OK("memory_lora: load", load(mixer, "memory_lora", config))) goto done;
    size_t needed = 0;
    if (EXPECT_OK("memory_lora: plugin_string experts",
                  lmx_mixer_plugin_string(mixer, 0, LMX_PLUGIN_EXPERTS, buf, sizeof buf, &needed))) {
        if (strcmp(buf, "mem-copied\nmem-borrowed") == 0 && needed == strlen(buf))
            pass("memory_lora: experts mem-copied, mem-borrowed");
        else fail("memory_lora: experts", "\"%s\" (needed %zu)", buf, needed);
    }

    static const float first[2] = {1, 0}, second[2] = {0, 1};
    copied = fixed_session("memory_lora: mem-copied", mixer, first, 2);
    borrowed = fixed_session("memory_lora: mem-borrowed", mixer, second, 2);
    if (!EXPECT_OK("memory_lora: oracle mixer", lmx_mixer_create(model, &oracle))) goto done;
    int have_oracle = EXPECT_OK("memory_lora: oracle copied (regenerated F32)", add_memory_oracle(oracle, "copied", 3, 2, 3.0f, 0)) &&
                      EXPECT_OK("memory_lora: oracle borrowed (regenerated, f16-rounded by the compiler)",
                                add_memory_oracle(oracle, "borrowed", 3, 2, 3.0f, 1));
    for (int which = 0; which < 2; which++) {
        const char *name = which ? "memory_lora: mem-borrowed (F16, borrowed)" : "memory_lora: mem-copied (F32, copied)";
        lmx_session *s = which ? borrowed : copied;
        if (!s || !eval_all(name, s, logits)) continue;
        expect_effect(name, logits);
        lmx_session *o = have_oracle ? fixed_session(name, oracle, which ? second : first, 2) : NULL;
        char what[160];
        snprintf(what, sizeof what, "%s equals its numbers regenerated here", name);
        if (o && eval_all(name, o, want)) compare(what, logits, want, 1e-5);
        lmx_session_free(o);
    }

    /* The borrowed buffers are released once, after the last user (mixer, then two sessions). */
    lmx_mixer_free(mixer);
    mixer = NULL;
    expect_lines("memory_lora: mixer freed, sessions alive: not released", log, "released mem-borrowed", 0);
    lmx_session_free(copied);
    copied = NULL;
    expect_lines("memory_lora: one session freed, the other alive: not released", log, "released mem-borrowed", 0);
    lmx_session_free(borrowed);
    borrowed = NULL;
    expect_lines("memory_lora: everything freed: released exactly once", log, "released mem-borrowed", 1);

done:
    lmx_session_free(copied);
    lmx_session_free(borrowed);
    lmx_mixer_free(mixer);
    lmx_mixer_free(oracle);
}

/* ------------------------------------------------------------------------------------------------
 * 7. peft_folders with the fixture adapters and router: the oracle's learned logits
 * ---------------------------------------------------------------------------------------------- */

static void expect_string(const lmx_mixer *mixer, size_t index, uint32_t field, const char *field_name, const char *want) {
    char buf[1400], what[128];
    size_t needed = 0;
    snprintf(what, sizeof what, "peft_folders: plugin_string %s", field_name);
    if (!EXPECT_OK(what, lmx_mixer_plugin_string(mixer, index, field, buf, sizeof buf, &needed))) return;
    if ((want ? strcmp(buf, want) == 0 : buf[0] != '\0') && needed == strlen(buf)) {
        int lines = 0;
        for (char *c = buf; *c; c++)
            if (*c == '\n') *c = '|', lines = 1;
        snprintf(what, sizeof what, "peft_folders: %s is \"%s\"%s", field_name, buf, lines ? " ('|' = newline)" : "");
        pass(what);
    } else {
        fail(what, "\"%s\" (needed %zu), want \"%s\"", buf, needed, want ? want : "(not empty)");
    }
}

static void test_peft_folders(void) {
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL;
    char config[4096], expected[1200];
    static float logits[N_LOGITS];
    snprintf(expected, sizeof expected, "%s/llama_f32/expected.safetensors", fixtures);
    float *want = fixture_tensor(expected, "learned_logits", "F32", NULL);
    snprintf(config, sizeof config, "e0=%s/llama_f32/adapters/e0; e1=%s/llama_f32/adapters/e1;e2=%s/llama_f32/adapters/e2;"
             "router=%s/llama_f32/router.safetensors;", fixtures, fixtures, fixtures, fixtures);
    if (!want) {
        fail("peft_folders", "cannot read learned_logits from %s", expected);
        return;
    }
    if (!EXPECT_OK("peft_folders: mixer_create", lmx_mixer_create(model, &mixer))) goto done;
    size_t index = 99;
    char plugin[1300];
    plugin_path(plugin, sizeof plugin, "peft_folders");
    lmx_plugin_params params = lmx_plugin_params_default();
    params.config = config;
    if (!EXPECT_OK("peft_folders: load e0, e1, e2 + router", lmx_mixer_load_plugin(mixer, plugin, &params, &index))) goto done;
    if (index == 0) pass("peft_folders: out_index 0");
    else fail("peft_folders: out_index", "%zu, want 0", index);
    expect_string(mixer, 0, LMX_PLUGIN_ID, "id", "org.loramixer.example.peft-folders");
    expect_string(mixer, 0, LMX_PLUGIN_VERSION, "version", "1.0.0");
    expect_string(mixer, 0, LMX_PLUGIN_LICENSE, "license", "MIT");
    expect_string(mixer, 0, LMX_PLUGIN_DESCRIPTION, "description", NULL);
    expect_string(mixer, 0, LMX_PLUGIN_PATH, "path", plugin);
    expect_string(mixer, 0, LMX_PLUGIN_EXPERTS, "experts", "e0\ne1\ne2");
    size_t needed = 0;
    char small[4];
    if (EXPECT_OK("peft_folders: plugin_string into a 4-byte buffer",
                  lmx_mixer_plugin_string(mixer, 0, LMX_PLUGIN_ID, small, sizeof small, &needed)) &&
        strcmp(small, "org") == 0 && needed == strlen("org.loramixer.example.peft-folders"))
        pass("peft_folders: truncated to \"org\", needed is the full length");
    else fail("peft_folders: truncation", "\"%.4s\", needed %zu", small, needed);
    EXPECT_ERR("peft_folders: plugin_string unknown field", lmx_mixer_plugin_string(mixer, 0, 42, small, sizeof small, NULL),
               LMX_ERR_INVALID_ARGUMENT, "field");

    if (!EXPECT_OK("peft_folders: session_create (learned routing from the plugin's router)",
                   lmx_session_create(mixer, NULL, &s)))
        goto done;
    if (EXPECT_OK("peft_folders: session_eval", lmx_session_eval(s, tokens, N_TOKENS, LMX_LOGITS_ALL, logits, N_LOGITS)))
        compare("peft_folders: learned logits == oracle learned_logits", logits, want, 1e-4);
    lmx_session_free(s);
    s = NULL;

    EXPECT_OK("peft_folders: unload", lmx_mixer_unload_plugin(mixer, "org.loramixer.example.peft-folders"));
    if (n_experts(mixer) == 0 && n_plugins(mixer) == 0) pass("peft_folders: unload leaves no experts, no plugin");
    else fail("peft_folders: unload", "%zu experts, %zu plugins", n_experts(mixer), n_plugins(mixer));
    if (EXPECT_OK("peft_folders: session after unload", lmx_session_create(mixer, NULL, &s)) &&
        EXPECT_OK("peft_folders: session after unload: eval", lmx_session_eval(s, tokens, N_TOKENS, LMX_LOGITS_ALL, logits, N_LOGITS)))
        compare("peft_folders: after unload (router gone too) == base logits", logits, base_logits, 1e-4);

done:
    lmx_session_free(s);
    lmx_mixer_free(mixer);
    free(want);
}

/* ------------------------------------------------------------------------------------------------
 * 8. A router from memory (register_router) equals the same router as a file
 * ---------------------------------------------------------------------------------------------- */

/* Writes router_mem's router (see good/router_mem.c) as a router file. */
static int write_router_file(const char *path) {
    enum { E = 3, D = 64 };
    static float data[LAYERS][E * D + E];
    char header[2048];
    int n = snprintf(header, sizeof header,
                     "{\"__metadata__\":{\"format\":\"loramixer.router\",\"version\":\"1\",\"experts\":\"[\\\"e0\\\",\\\"e1\\\",\\\"e2\\\"]\","
                     "\"top_k\":\"2\",\"scope\":\"layer\",\"temperature\":\"1.5\",\"input\":\"token\"}");
    size_t offset = 0;
    for (uint32_t l = 0; l < LAYERS; l++) {
        for (uint32_t i = 0; i < E * D; i++) data[l][i] = 4.0f * fixed_value(l, 100, 0, i);
        for (uint32_t e = 0; e < E; e++) data[l][E * D + e] = fixed_value(l, 101, 1, e);
        n += snprintf(header + n, sizeof header - (size_t)n,
                      ",\"router.layers.%u.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}"
                      ",\"router.layers.%u.bias\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                      l, E, D, offset, offset + E * D * 4, l, E, offset + E * D * 4, offset + (E * D + E) * 4);
        offset += (E * D + E) * 4;
    }
    n += snprintf(header + n, sizeof header - (size_t)n, "}");
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    unsigned char length[8];
    for (int i = 0; i < 8; i++) length[i] = (unsigned char)((uint64_t)n >> (8 * i));
    int ok = fwrite(length, 1, 8, f) == 8 && fwrite(header, 1, (size_t)n, f) == (size_t)n &&
             fwrite(data, 1, sizeof data, f) == sizeof data;
    return (fclose(f) == 0) & ok;
}

static void test_router_from_memory(void) {
    lmx_mixer *with_plugin = NULL, *with_file = NULL;
    lmx_session *sp = NULL, *sf = NULL;
    char config[1400], router[1300], adapters[1200];
    static float from_plugin[N_LOGITS], from_file[N_LOGITS];
    snprintf(adapters, sizeof adapters, "%s/adapters", llama);
    snprintf(router, sizeof router, "%s/router_mem.safetensors", logs);
    if (!write_router_file(router)) {
        fail("router from memory", "cannot write %s", router);
        return;
    }
    if (!EXPECT_OK("router from memory: mixer_create", lmx_mixer_create(model, &with_plugin)) ||
        !EXPECT_OK("router from memory: mixer_create", lmx_mixer_create(model, &with_file)))
        goto done;

    static const struct { const char *mode; lmx_status status; const char *key1, *key2; } bad[] = {
        {"layers", LMX_ERR_SHAPE, "3", "2"},
        {"dmodel", LMX_ERR_SHAPE, "32", "64"},
        {"topk", LMX_ERR_INVALID_ARGUMENT, "top_k", "0"},
        {"temp", LMX_ERR_INVALID_ARGUMENT, "temperature", "0"},
        {"names", LMX_ERR_NOT_FOUND, "zz", "e2"},
        {"small", LMX_ERR_ABI, "lmx_router_desc", "struct_size"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char what[128];
        snprintf(config, sizeof config, "dir=%s;mode=%s", adapters, bad[i].mode);
        snprintf(what, sizeof what, "register_router mode=%s", bad[i].mode);
        EXPECT_ERR(what, load(with_plugin, "router_mem", config), bad[i].status, "router", bad[i].key1, bad[i].key2);
        expect_unchanged(what, with_plugin, 0, 0);
    }

    snprintf(config, sizeof config, "dir=%s;mode=ok", adapters);
    if (!EXPECT_OK("router from memory: load e0, e1, e2 + router", load(with_plugin, "router_mem", config))) goto done;
    for (int e = 0; e < 3; e++) {
        char name[8], dir[1300];
        snprintf(name, sizeof name, "e%d", e);
        snprintf(dir, sizeof dir, "%s/%s", adapters, name);
        if (!EXPECT_OK("router from memory: the same experts with add_peft", lmx_mixer_add_peft(with_file, name, dir, NULL)))
            goto done;
    }
    if (!EXPECT_OK("router from memory: the same router as a file", lmx_mixer_load_router(with_file, router))) goto done;
    if (EXPECT_OK("router from memory: session (plugin)", lmx_session_create(with_plugin, NULL, &sp)) &&
        EXPECT_OK("router from memory: session (file)", lmx_session_create(with_file, NULL, &sf)) &&
        eval_all("router from memory: plugin", sp, from_plugin) && eval_all("router from memory: file", sf, from_file)) {
        expect_effect("router from memory: learned routing", from_plugin);
        compare("router from memory == the same router from a file (learned top-2, T 1.5)", from_plugin, from_file, 1e-6);
    }

done:
    lmx_session_free(sp);
    lmx_session_free(sf);
    lmx_mixer_free(with_plugin);
    lmx_mixer_free(with_file);
}

/* A plugin's experts arriving in a mixer that already has a router (which does not know them). */
static void test_plugin_after_router(void) {
    lmx_mixer *mixer = NULL;
    char path[1300];
    if (!EXPECT_OK("plugin after a router: mixer_create", lmx_mixer_create(model, &mixer))) return;
    for (int e = 0; e < 3; e++) {
        char name[8], dir[1300];
        snprintf(name, sizeof name, "e%d", e);
        snprintf(dir, sizeof dir, "%s/adapters/%s", llama, name);
        lmx_mixer_add_peft(mixer, name, dir, NULL);
    }
    snprintf(path, sizeof path, "%s/router.safetensors", llama);
    if (EXPECT_OK("plugin after a router: load_router e0,e1,e2", lmx_mixer_load_router(mixer, path))) {
        lmx_status st = load(mixer, "dup_name", "name=extra");
        if (st == LMX_ERR_STATE) EXPECT_ERR("plugin after a router: refused like lmx_mixer_add_peft", st, LMX_ERR_STATE, "extra", "router");
        else EXPECT_ERR("plugin after a router: refused", st, LMX_ERR_NOT_FOUND, "extra", "router");
        expect_unchanged("plugin after a router", mixer, 3, 0);
    }
    lmx_mixer_free(mixer);
}

/* ------------------------------------------------------------------------------------------------ */

/* Plugin log messages reach the host's log callback (level, plugin id, text); NULL restores stderr. */
typedef struct {
    int count;
    char lines[16][320];
} log_sink;

static void collect_log(uint32_t level, const char *source, const char *message, void *user_data) {
    log_sink *sink = user_data;
    if (sink->count < 16)
        snprintf(sink->lines[sink->count], sizeof sink->lines[0], "%u|%s|%s", level, source ? source : "(null)",
                 message ? message : "(null)");
    sink->count++;
}

static int sink_has(const log_sink *sink, const char *line) {
    for (int i = 0; i < sink->count && i < 16; i++)
        if (strcmp(sink->lines[i], line) == 0) return 1;
    return 0;
}

/* Plugins built against an older and a newer view of the ABI (good/old_header.c,
 * good/newer_header.c), with their log messages caught by lmx_set_log_callback. */
static void test_header_versions_and_log(void) {
    log_sink sink = {0};
    lmx_set_log_callback(collect_log, &sink);
    lmx_mixer *mixer = NULL;
    char e0[1200];
    snprintf(e0, sizeof e0, "%s/adapters/e0", llama);
    if (!EXPECT_OK("versions: mixer_create", lmx_mixer_create(model, &mixer))) goto out;
    if (EXPECT_OK("old header: plugin built against a version-0 view of the ABI loads", load(mixer, "old_header", NULL)))
        expect_string(mixer, 0, LMX_PLUGIN_EXPERTS, "EXPERTS", "old-zero");
    if (sink_has(&sink, "1|org.loramixer.test.old-header|old_header: registered old-zero through a version-0 view of the ABI"))
        pass("log callback: the old plugin's INFO line, with its id as the source");
    else fail("log callback: old plugin's INFO line", "%d lines, first '%s'", sink.count, sink.count ? sink.lines[0] : "");
    if (EXPECT_OK("newer header: plugin with a longer descriptor and table view loads", load(mixer, "newer_header", e0)))
        expect_string(mixer, 1, LMX_PLUGIN_EXPERTS, "EXPERTS", "newer-peft");
    if (sink_has(&sink, "2|org.loramixer.test.newer-header|newer_header: the host table has no future_function; not calling it"))
        pass("newer header: the plugin checked host->struct_size and did not call past the host's table");
    else fail("newer header: host->struct_size check", "%d log lines", sink.count);
    int before = sink.count;
    EXPECT_ERR("log callback: init_error", load(mixer, "init_error", NULL), LMX_ERR_PLUGIN, "frobnicator");
    if (sink.count == before + 1 && sink_has(&sink, "2|org.loramixer.test.init-error|init_error: about to fail on purpose"))
        pass("log callback: a failing plugin's WARNING reaches it");
    else fail("log callback: init_error's WARNING", "%d new lines", sink.count - before);
    lmx_set_log_callback(NULL, NULL);
    before = sink.count;
    EXPECT_ERR("log callback removed: init_error again (its line goes to stderr)", load(mixer, "init_error", NULL),
               LMX_ERR_PLUGIN, "frobnicator");
    if (sink.count == before) pass("log callback: NULL restores stderr (the callback sees nothing more)");
    else fail("log callback: NULL", "%d more lines", sink.count - before);
out:
    lmx_set_log_callback(NULL, NULL);
    lmx_mixer_free(mixer);
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[3], "--bare-name") == 0) {
        fixtures = argv[1];
        build = argv[2];
        snprintf(llama, sizeof llama, "%s/llama_f32", fixtures);
        setvbuf(stdout, NULL, _IOLBF, 0);
        return bare_name_child(argv[4]);
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s FIXTURES_DIR BUILD_DIR\n", argv[0]);
        return 2;
    }
    install_crash_handler();
    self_path = argv[0]; /* test_bare_name runs this program again (not /proc/self/exe: under valgrind that is valgrind) */
    setvbuf(stdout, NULL, _IOLBF, 0); /* plugin log lines go to stderr: keep whole lines apart */
    fixtures = argv[1];
    build = argv[2];
    snprintf(llama, sizeof llama, "%s/llama_f32", fixtures);
    snprintf(plugins, sizeof plugins, "%s/plugins", build);
    snprintf(logs, sizeof logs, "%s/logs", build);
    mkdir(logs, 0755);
    chmod(plugins, 0755);

    char expected[1200];
    size_t n = 0;
    snprintf(expected, sizeof expected, "%s/llama_f32/expected.safetensors", fixtures);
    tokens = fixture_tensor(expected, "tokens", "I32", &n);
    base_logits = fixture_tensor(expected, "base_logits", "F32", NULL);
    if (!tokens || n != N_TOKENS || !base_logits) {
        fail("fixtures", "cannot read tokens/base_logits from %s", expected);
        goto out;
    }
    test_sha256_self();
    if (!EXPECT_OK("model_load llama_f32", lmx_model_load(llama, NULL, &model))) goto out;

    lmx_mixer *mixer = NULL;
    char e0[1200];
    snprintf(e0, sizeof e0, "%s/adapters/e0", llama);
    if (EXPECT_OK("failures: mixer_create", lmx_mixer_create(model, &mixer)) &&
        EXPECT_OK("failures: add_peft e0", lmx_mixer_add_peft(mixer, "e0", e0, NULL))) {
        test_loader_failures(mixer);
        test_registration_failures(mixer);
        test_policy(mixer);
        test_pin_race(mixer);
        test_host_keeps_working(mixer);
    }
    lmx_mixer_free(mixer);

    test_bare_name();
    test_lifecycle();
    test_custom_matches_lora();
    test_memory_lora();
    test_peft_folders();
    test_router_from_memory();
    test_plugin_after_router();
    test_header_versions_and_log();

out:
    lmx_model_free(model);
    free(tokens);
    free(base_logits);
    printf("plugin_test: %d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed ? 1 : 0;
}
