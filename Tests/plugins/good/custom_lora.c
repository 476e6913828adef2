/* A custom expert "by-hand" on q_proj and down_proj of every layer that computes
 * delta = (alpha / rank) * B (A x) with the numbers of fixed_numbers.h, by hand. plugin_test
 * compares its logits with the same A/B given to lmx_mixer_add_lora. */
#include "../plugin_util.h"
#include "fixed_numbers.h"

enum { n_modules = 2 };
static const uint32_t modules[n_modules] = {LMX_MODULE_Q_PROJ, LMX_MODULE_DOWN_PROJ};

typedef struct weights {
    uint32_t n_layers;
    uint32_t in[n_modules], out[n_modules];
    float *a[64][n_modules], *b[64][n_modules]; /* [layer][module slot] */
} weights;

static void destroy(void *user_data) {
    weights *w = user_data;
    for (uint32_t l = 0; l < w->n_layers; l++)
        for (int m = 0; m < n_modules; m++) free(w->a[l][m]), free(w->b[l][m]);
    free(w);
}

static lmx_status forward(void *user_data, uint32_t layer, uint32_t module, const float *input, float *output,
                          size_t n_rows, size_t in_features, size_t out_features) {
    const weights *w = user_data;
    int m = module == LMX_MODULE_Q_PROJ ? 0 : module == LMX_MODULE_DOWN_PROJ ? 1 : -1;
    if (m < 0 || layer >= w->n_layers || in_features != w->in[m] || out_features != w->out[m]) return LMX_ERR_SHAPE;
    const float *a = w->a[layer][m], *b = w->b[layer][m];
    const float scale = FIXED_ALPHA / (float)FIXED_RANK;
    for (size_t r = 0; r < n_rows; r++) {
        const float *x = input + r * in_features;
        float z[FIXED_RANK];
        for (int k = 0; k < FIXED_RANK; k++) {
            float sum = 0.0f;
            for (size_t i = 0; i < in_features; i++) sum += a[k * in_features + i] * x[i];
            z[k] = sum;
        }
        for (size_t o = 0; o < out_features; o++) {
            float sum = 0.0f;
            for (int k = 0; k < FIXED_RANK; k++) sum += b[o * FIXED_RANK + k] * z[k];
            output[r * out_features + o] += scale * sum;
        }
    }
    return LMX_OK;
}

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    (void)config;
    lmx_plugin_model_info info = {.struct_size = sizeof info};
    lmx_status st = host->model_info(reg, &info);
    if (st != LMX_OK) return st;
    if (info.n_layers > 64) return LMX_ERR_SHAPE;
    weights *w = calloc(1, sizeof *w);
    if (!w) return LMX_ERR_OUT_OF_MEMORY;
    w->n_layers = info.n_layers;
    for (int m = 0; m < n_modules; m++) {
        if ((st = host->module_shape(reg, modules[m], &w->in[m], &w->out[m])) != LMX_OK) {
            destroy(w);
            return st;
        }
        for (uint32_t l = 0; l < w->n_layers; l++) {
            size_t n_a = (size_t)FIXED_RANK * w->in[m], n_b = (size_t)w->out[m] * FIXED_RANK;
            w->a[l][m] = malloc(n_a * sizeof(float));
            w->b[l][m] = malloc(n_b * sizeof(float));
            if (!w->a[l][m] || !w->b[l][m]) {
                destroy(w);
                return LMX_ERR_OUT_OF_MEMORY;
            }
            for (size_t i = 0; i < n_a; i++) w->a[l][m][i] = fixed_value(l, modules[m], 0, (uint32_t)i);
            for (size_t i = 0; i < n_b; i++) w->b[l][m][i] = fixed_value(l, modules[m], 1, (uint32_t)i);
        }
    }
    lmx_custom_expert_desc desc = {.struct_size = sizeof desc, .modules = modules, .in_features = w->in,
                                   .out_features = w->out, .n_modules = n_modules, .forward = forward,
                                   .destroy = destroy, .user_data = w};
    st = host->register_custom(reg, "by-hand", &desc);
    if (st != LMX_OK) destroy(w); /* a refused registration never calls destroy */
    return st;
}

TEST_PLUGIN("org.loramixer.test.custom-lora", init, NULL)
