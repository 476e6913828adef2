/* Helpers for the test plugins in bad/ and good/ (not for the example plugins, which include only
 * loramixer_plugin.h). Header-only; everything is static. */
#ifndef LMX_TEST_PLUGIN_UTIL_H
#define LMX_TEST_PLUGIN_UTIL_H

#include <loramixer_plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Value of `key` in a "key=value;key;..." config into out (a bare "key" gives ""); 1 if present.
 * `out` may be NULL (size 0) to test for presence only. */
static inline int config_get(const char *config, const char *key, char *out, size_t size) {
    size_t key_len = strlen(key);
    for (const char *p = config ? config : ""; *p;) {
        size_t len = strcspn(p, ";");
        if (len >= key_len && strncmp(p, key, key_len) == 0 && (len == key_len || p[key_len] == '=')) {
            if (!out || size == 0) return 1;
            const char *value = len == key_len ? p + len : p + key_len + 1;
            size_t n = (size_t)(p + len - value);
            if (n >= size) n = size - 1;
            memcpy(out, value, n);
            out[n] = '\0';
            return 1;
        }
        p += len + (p[len] == ';');
    }
    if (out && size) out[0] = '\0';
    return 0;
}

/* Appends `line` and a newline to `path` (nothing when path is empty). */
static inline void append_line(const char *path, const char *line) {
    if (!path || !path[0]) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%s\n", line);
    fclose(f);
}

#define TEST_PLUGIN(ID, INIT, SHUTDOWN)                                                                       \
    static const lmx_plugin_descriptor descriptor = {LMX_PLUGIN_ABI_VERSION, sizeof(lmx_plugin_descriptor), ID, \
                                                     "1.0", "test plugin", "MIT", INIT, SHUTDOWN};              \
    LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor; }

#endif

#ifndef LMX_TEST_PLUGIN_LORA
#define LMX_TEST_PLUGIN_LORA
/* A rank-2 F32 LoRA on (layer 0, module), A and B declared in_features/out_features and sized for
 * that, filled with small fixed values. Copied when release is NULL; else borrowed: `buffer` must
 * then hold 2*in + out*2 floats and stay alive until release. */
static inline lmx_status register_small_lora(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *name,
                                             uint32_t module, uint32_t in, uint32_t out, uint32_t rank, float *buffer,
                                             void (*release)(void *), void *user_data) {
    float local[2 * 256 + 256 * 2];
    float *data = buffer ? buffer : local;
    if (!buffer && (in > 256 || out > 256)) return LMX_ERR_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < 2 * in + out * 2; i++) data[i] = (float)((int)(i % 7) - 3) * 0.01f;
    lmx_lora_tensor tensor = {.layer = 0, .module = module, .in_features = in, .out_features = out,
                              .a = data, .b = data + 2 * in};
    lmx_lora_desc desc = {.struct_size = sizeof desc, .dtype = LMX_DTYPE_F32, .rank = rank, .alpha = 2.0f,
                          .tensors = &tensor, .n_tensors = 1, .release = release, .user_data = user_data};
    return host->register_lora(reg, name, &desc);
}
#endif
