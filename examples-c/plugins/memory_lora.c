/*
 * memory_lora — an example loramixer plugin that builds two LoRA experts in memory at init.
 *
 *   id      org.loramixer.example.memory-lora
 *   config  "seed=N;rank=R;alpha=A;release_log=PATH" (every key optional; defaults seed=1, rank=4,
 *           alpha=8, no release log)
 *
 * Both experts are generated deterministically from the seed (xorshift64*, values in
 * [-0.1, 0.1)) and sized from the model the host describes (model_info, module_shape), so the
 * plugin works on any llama-like model:
 *
 *   mem-copied    F32, q_proj and v_proj of every layer; the host copies it during the call.
 *   mem-borrowed  F16, up_proj and down_proj of every layer; the host uses the plugin's buffers in
 *                 place and calls release() once when no mixer or session uses the expert any more.
 *                 release frees the buffers, reports on stderr and, with release_log=PATH, appends
 *                 the line "released mem-borrowed" to PATH (a side channel for tests).
 *
 * release runs after init, when the registrar (and so host->log) is no longer valid: that is why it
 * writes to stderr itself.
 *
 * Build: cc -std=c11 -fPIC -shared -fvisibility=hidden -Iinclude memory_lora.c -o memory_lora.so
 */
#include <loramixer_plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLUGIN_ID "org.loramixer.example.memory-lora"

/* ---- configuration ------------------------------------------------------------------------- */

typedef struct config {
    unsigned long long seed;
    unsigned long rank;
    float alpha;
    char release_log[1024];
} config;

/* Applies one key=value; on error writes a message into `error` and returns 0. */
static int apply_entry(const char *key, const char *value, config *out, char *error, size_t error_size) {
    char *stop = NULL;
    if (strcmp(key, "seed") == 0) {
        out->seed = strtoull(value, &stop, 10);
        if (*value && !*stop) return 1;
        snprintf(error, error_size, "config: seed '%s' must be a non-negative integer", value);
    } else if (strcmp(key, "rank") == 0) {
        out->rank = strtoul(value, &stop, 10);
        if (*value && !*stop && out->rank >= 1 && out->rank <= 64) return 1;
        snprintf(error, error_size, "config: rank '%s' must be an integer in 1..64", value);
    } else if (strcmp(key, "alpha") == 0) {
        out->alpha = strtof(value, &stop);
        if (*value && !*stop && out->alpha > 0.0f && out->alpha < 1e6f) return 1;
        snprintf(error, error_size, "config: alpha '%s' must be a positive number", value);
    } else if (strcmp(key, "release_log") == 0) {
        if (*value && strlen(value) < sizeof out->release_log) {
            strcpy(out->release_log, value);
            return 1;
        }
        snprintf(error, error_size, "config: release_log must be a path of 1..%zu bytes", sizeof out->release_log - 1);
    } else {
        snprintf(error, error_size, "config: unknown key '%s' (keys: seed, rank, alpha, release_log)", key);
    }
    return 0;
}

/* Parses "key=value;key=value" (empty entries allowed) into *out, starting from the defaults. */
static int parse_config(const char *text, config *out, char *error, size_t error_size) {
    *out = (config){.seed = 1, .rank = 4, .alpha = 8.0f};
    int index = 0;
    for (const char *p = text ? text : ""; *p;) {
        size_t len = strcspn(p, ";");
        index++;
        char entry[1100];
        if (len >= sizeof entry) {
            snprintf(error, error_size, "config entry %d is longer than %zu bytes", index, sizeof entry - 1);
            return 0;
        }
        memcpy(entry, p, len);
        entry[len] = '\0';
        p += len + (p[len] == ';');
        if (len == 0) continue;
        char *eq = strchr(entry, '=');
        if (!eq || eq == entry) {
            snprintf(error, error_size, "config entry %d '%s' is not key=value (keys: seed, rank, alpha, release_log)",
                     index, entry);
            return 0;
        }
        *eq = '\0';
        if (!apply_entry(entry, eq + 1, out, error, error_size)) return 0;
    }
    return 1;
}

/* ---- numbers ------------------------------------------------------------------------------- */

/* xorshift64*: deterministic, the same on every platform. */
static uint64_t next_random(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* A value in [-0.1, 0.1) from the top 24 bits. */
static float next_value(uint64_t *state) {
    return ((float)(next_random(state) >> 40) / 16777216.0f - 0.5f) * 0.2f;
}

/* float -> IEEE binary16, round to nearest even; handles subnormals, overflow to inf, NaN. */
static uint16_t f32_to_f16(float value) {
    uint32_t x;
    memcpy(&x, &value, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exponent = (x >> 23) & 0xffu;
    uint32_t mantissa = x & 0x7fffffu;
    if (exponent == 0xffu) return (uint16_t)(sign | 0x7c00u | (mantissa ? 0x200u : 0u)); /* inf, NaN */
    int32_t e = (int32_t)exponent - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u); /* too large: inf */
    if (e <= 0) {                                    /* subnormal half (or zero) */
        if (e < -10) return (uint16_t)sign;
        mantissa |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = mantissa >> shift;
        uint32_t rest = mantissa & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
        if (rest > halfway || (rest == halfway && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++; /* a carry rounds into the exponent */
    return (uint16_t)half;
}

/* ---- the borrowed expert's memory ---------------------------------------------------------- */

/* One allocation per borrowed expert: the tensor table, then the F16 data. */
typedef struct borrowed_block {
    char name[32];
    char release_log[1024];
    size_t n_tensors;
    lmx_lora_tensor *tensors;
    uint16_t *data;
} borrowed_block;

static void release_borrowed(void *user_data) {
    borrowed_block *block = user_data;
    fprintf(stderr, "[%s] released the borrowed buffers of '%s'\n", PLUGIN_ID, block->name);
    if (block->release_log[0]) {
        FILE *f = fopen(block->release_log, "a");
        if (f) {
            fprintf(f, "released %s\n", block->name);
            fclose(f);
        }
    }
    free(block->tensors);
    free(block->data);
    free(block);
}

/* ---- init ---------------------------------------------------------------------------------- */

static lmx_status fail(const lmx_host_api *host, lmx_plugin_registrar *reg, lmx_status status, const char *message) {
    host->set_error(reg, message);
    return status;
}

/* Fills A then B of every (layer, module) in order, from one random stream per expert. */
static lmx_status build_tensors(const lmx_host_api *host, lmx_plugin_registrar *reg, uint32_t n_layers,
                                const uint32_t *modules, size_t n_modules, uint32_t rank, uint64_t state,
                                int as_f16, lmx_lora_tensor *tensors, void **out_data) {
    size_t total = 0;
    uint32_t in[8], out[8];
    for (size_t m = 0; m < n_modules; m++) {
        lmx_status st = host->module_shape(reg, modules[m], &in[m], &out[m]);
        if (st != LMX_OK) return st;
        total += (size_t)rank * in[m] + (size_t)out[m] * rank;
    }
    total *= n_layers;
    size_t element = as_f16 ? sizeof(uint16_t) : sizeof(float);
    unsigned char *data = malloc(total * element);
    if (!data) return fail(host, reg, LMX_ERR_OUT_OF_MEMORY, "cannot allocate the expert's tensors");
    size_t at = 0, t = 0;
    for (uint32_t layer = 0; layer < n_layers; layer++) {
        for (size_t m = 0; m < n_modules; m++, t++) {
            size_t n_a = (size_t)rank * in[m], n_b = (size_t)out[m] * rank;
            unsigned char *a = data + at * element, *b = data + (at + n_a) * element;
            for (size_t i = 0; i < n_a + n_b; i++) {
                float v = next_value(&state);
                if (as_f16) ((uint16_t *)(void *)data)[at + i] = f32_to_f16(v);
                else ((float *)(void *)data)[at + i] = v;
            }
            tensors[t] = (lmx_lora_tensor){.layer = layer, .module = modules[m], .in_features = in[m],
                                           .out_features = out[m], .a = a, .b = b};
            at += n_a + n_b;
        }
    }
    *out_data = data;
    return LMX_OK;
}

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config_text) {
    if (host->struct_size < sizeof(lmx_host_api)) return LMX_ERR_ABI; /* needs every ABI 1.0 function */

    config cfg;
    char message[1400];
    if (!parse_config(config_text, &cfg, message, sizeof message)) return fail(host, reg, LMX_ERR_INVALID_ARGUMENT, message);

    lmx_plugin_model_info info = {.struct_size = sizeof info};
    lmx_status st = host->model_info(reg, &info);
    if (st != LMX_OK) return st;
    if (info.n_layers == 0 || info.n_layers > 4096) return fail(host, reg, LMX_ERR_SHAPE, "the model reports no layers");
    uint32_t rank = (uint32_t)cfg.rank;

    /* 1. mem-copied: F32, q_proj + v_proj; our buffers are freed right after the call. */
    static const uint32_t copied_modules[] = {LMX_MODULE_Q_PROJ, LMX_MODULE_V_PROJ};
    size_t n_copied = (size_t)info.n_layers * 2;
    lmx_lora_tensor *tensors = calloc(n_copied, sizeof *tensors);
    void *data = NULL;
    if (!tensors) return fail(host, reg, LMX_ERR_OUT_OF_MEMORY, "cannot allocate the tensor table");
    st = build_tensors(host, reg, info.n_layers, copied_modules, 2, rank, cfg.seed * 2 + 1, 0, tensors, &data);
    if (st == LMX_OK) {
        lmx_lora_desc desc = {.struct_size = sizeof desc, .dtype = LMX_DTYPE_F32, .rank = rank, .alpha = cfg.alpha,
                              .tensors = tensors, .n_tensors = n_copied};
        st = host->register_lora(reg, "mem-copied", &desc);
    }
    free(tensors);
    free(data);
    if (st != LMX_OK) return st; /* the host's message says what failed */

    /* 2. mem-borrowed: F16, up_proj + down_proj; handed over to the host with release_borrowed. */
    static const uint32_t borrowed_modules[] = {LMX_MODULE_UP_PROJ, LMX_MODULE_DOWN_PROJ};
    borrowed_block *block = calloc(1, sizeof *block);
    if (!block) return fail(host, reg, LMX_ERR_OUT_OF_MEMORY, "cannot allocate the borrowed expert");
    snprintf(block->name, sizeof block->name, "mem-borrowed");
    memcpy(block->release_log, cfg.release_log, sizeof block->release_log);
    block->n_tensors = (size_t)info.n_layers * 2;
    block->tensors = calloc(block->n_tensors, sizeof *block->tensors);
    void *f16 = NULL;
    st = block->tensors ? build_tensors(host, reg, info.n_layers, borrowed_modules, 2, rank, cfg.seed * 2 + 2, 1,
                                        block->tensors, &f16)
                        : fail(host, reg, LMX_ERR_OUT_OF_MEMORY, "cannot allocate the tensor table");
    if (st != LMX_OK) {
        free(block->tensors);
        free(block);
        return st;
    }
    block->data = f16;
    lmx_lora_desc desc = {.struct_size = sizeof desc, .dtype = LMX_DTYPE_F16, .rank = rank, .alpha = cfg.alpha,
                          .tensors = block->tensors, .n_tensors = block->n_tensors,
                          .release = release_borrowed, .user_data = block};
    /* Once registered, the host owns `block` and calls release_borrowed exactly once (when the last
     * session using the expert is gone, or when the load fails after this point). A refused
     * registration takes nothing: the block is still ours. */
    st = host->register_lora(reg, block->name, &desc);
    if (st != LMX_OK) {
        free(block->tensors);
        free(block->data);
        free(block);
        return st;
    }

    snprintf(message, sizeof message, "registered mem-copied (F32, q/v_proj) and mem-borrowed (F16, up/down_proj): "
             "%u layers, rank %u, alpha %g, seed %llu", info.n_layers, rank, (double)cfg.alpha, cfg.seed);
    host->log(reg, LMX_LOG_INFO, message);
    return LMX_OK;
}

static const lmx_plugin_descriptor descriptor = {
    LMX_PLUGIN_ABI_VERSION,
    sizeof(lmx_plugin_descriptor),
    PLUGIN_ID,
    "1.0.0",
    "Two LoRA experts generated in memory from a seed (one copied F32, one borrowed F16)",
    "MIT",
    init,
    NULL,
};

LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor; }
