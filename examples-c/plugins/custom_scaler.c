/*
 * custom_scaler — an example loramixer plugin with a custom expert written by hand in C.
 *
 *   id      org.loramixer.example.custom-scaler
 *   config  "scale=S;layers=L,L,..." (both optional: scale 0.5, every layer)
 *
 * The expert "scaler" adapts two projections, with dimensions taken from host->module_shape and
 * declared in its descriptor (the host checks them against the model):
 *
 *   o_proj     a rectangular diagonal map: delta[j] = scale * x[j] for j < min(in, out), else 0
 *   down_proj  a fixed rank-1 map: delta = scale * u * (v . x), with u[j] = ((7j mod 13) - 6) / 6
 *              and v[i] = ((5i mod 11) - 5) / (5 * in) (no libm needed)
 *
 * forward ADDS the ungated delta into the output rows it is given; the host scales each row by its
 * gate. It only reads its user data, so several sessions may call it at once. The user data is
 * allocated in init and freed by destroy (run by the host once nothing uses the expert); shutdown
 * (run when the plugin is unloaded and its last expert is gone, just before the library closes)
 * writes one line to stderr.
 *
 * Build: cc -std=c11 -fPIC -shared -fvisibility=hidden -Iinclude custom_scaler.c -o custom_scaler.so
 */
#include <loramixer_plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLUGIN_ID "org.loramixer.example.custom-scaler"

enum { max_layers = 1024 };

typedef struct scaler {
    float scale;
    uint32_t o_in, o_out; /* o_proj features */
    uint32_t d_in, d_out; /* down_proj features */
    float *u;             /* d_out */
    float *v;             /* d_in */
} scaler;

static lmx_status forward(void *user_data, uint32_t layer, uint32_t module, const float *input, float *output,
                          size_t n_rows, size_t in_features, size_t out_features) {
    (void)layer;
    const scaler *s = user_data;
    if (module == LMX_MODULE_O_PROJ) {
        if (in_features != s->o_in || out_features != s->o_out) return LMX_ERR_SHAPE;
        size_t n = in_features < out_features ? in_features : out_features;
        for (size_t r = 0; r < n_rows; r++) {
            const float *x = input + r * in_features;
            float *y = output + r * out_features;
            for (size_t j = 0; j < n; j++) y[j] += s->scale * x[j];
        }
        return LMX_OK;
    }
    if (module == LMX_MODULE_DOWN_PROJ) {
        if (in_features != s->d_in || out_features != s->d_out) return LMX_ERR_SHAPE;
        for (size_t r = 0; r < n_rows; r++) {
            const float *x = input + r * in_features;
            float *y = output + r * out_features;
            float dot = 0.0f;
            for (size_t i = 0; i < in_features; i++) dot += s->v[i] * x[i];
            for (size_t j = 0; j < out_features; j++) y[j] += s->scale * s->u[j] * dot;
        }
        return LMX_OK;
    }
    return LMX_ERR_INVALID_ARGUMENT; /* a module this expert never declared */
}

static void destroy(void *user_data) {
    scaler *s = user_data;
    if (!s) return;
    free(s->u);
    free(s->v);
    free(s);
}

static void plugin_shutdown(void) { fprintf(stderr, "[%s] shutdown: the last 'scaler' user is gone\n", PLUGIN_ID); }

static lmx_status fail(const lmx_host_api *host, lmx_plugin_registrar *reg, lmx_status status, const char *message) {
    host->set_error(reg, message);
    return status;
}

/* Parses "scale=S;layers=a,b,c" into *scale and layers[0..*n_layers). */
static lmx_status parse(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config, uint32_t n_model_layers,
                        float *scale, uint32_t *layers, size_t *n_layers) {
    char message[512];
    *scale = 0.5f;
    *n_layers = 0;
    for (const char *p = config ? config : ""; *p;) {
        size_t len = strcspn(p, ";");
        char entry[256];
        if (len >= sizeof entry) return fail(host, reg, LMX_ERR_INVALID_ARGUMENT, "config: an entry is longer than 255 bytes");
        memcpy(entry, p, len);
        entry[len] = '\0';
        p += len + (p[len] == ';');
        if (len == 0) continue;
        char *value = strchr(entry, '=');
        if (value) *value++ = '\0';
        char *stop = NULL;
        if (value && strcmp(entry, "scale") == 0) {
            *scale = strtof(value, &stop);
            if (!*value || *stop || !(*scale > -1e3f && *scale < 1e3f)) {
                snprintf(message, sizeof message, "config: scale '%s' is not a number in (-1000, 1000)", value);
                return fail(host, reg, LMX_ERR_INVALID_ARGUMENT, message);
            }
        } else if (value && strcmp(entry, "layers") == 0) {
            for (const char *q = value; *q;) {
                unsigned long layer = strtoul(q, &stop, 10);
                if (stop == q || (*stop && *stop != ',') || layer >= n_model_layers || *n_layers == max_layers) {
                    snprintf(message, sizeof message, "config: layers '%s' must be a comma-separated list of layer "
                             "indices below %u", value, n_model_layers);
                    return fail(host, reg, LMX_ERR_INVALID_ARGUMENT, message);
                }
                layers[(*n_layers)++] = (uint32_t)layer;
                q = stop + (*stop == ',');
            }
        } else {
            snprintf(message, sizeof message, "config: '%s' is not scale=S or layers=L,L,...", entry);
            return fail(host, reg, LMX_ERR_INVALID_ARGUMENT, message);
        }
    }
    return LMX_OK;
}

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    if (host->struct_size < sizeof(lmx_host_api)) return LMX_ERR_ABI; /* needs every ABI 1.0 function */

    lmx_plugin_model_info info = {.struct_size = sizeof info};
    lmx_status st = host->model_info(reg, &info);
    if (st != LMX_OK) return st;
    static const uint32_t modules[2] = {LMX_MODULE_O_PROJ, LMX_MODULE_DOWN_PROJ};
    uint32_t in[2], out[2];
    for (int m = 0; m < 2; m++)
        if ((st = host->module_shape(reg, modules[m], &in[m], &out[m])) != LMX_OK) return st;
    /* Both projections write into the residual stream. */
    if (out[0] != info.d_model || out[1] != info.d_model || in[0] == 0 || in[1] == 0) {
        char message[256];
        snprintf(message, sizeof message, "expected o_proj and down_proj to write d_model=%u features, got %u and %u",
                 info.d_model, out[0], out[1]);
        return fail(host, reg, LMX_ERR_SHAPE, message);
    }

    uint32_t *layers = calloc(max_layers, sizeof *layers);
    if (!layers) return fail(host, reg, LMX_ERR_OUT_OF_MEMORY, "cannot allocate the layer list");
    float scale;
    size_t n_layers;
    st = parse(host, reg, config, info.n_layers, &scale, layers, &n_layers);
    if (st != LMX_OK) {
        free(layers);
        return st;
    }

    scaler *s = calloc(1, sizeof *s);
    if (s) {
        *s = (scaler){.scale = scale, .o_in = in[0], .o_out = out[0], .d_in = in[1], .d_out = out[1],
                      .u = malloc(out[1] * sizeof(float)), .v = malloc(in[1] * sizeof(float))};
    }
    if (!s || !s->u || !s->v) {
        destroy(s);
        free(layers);
        return fail(host, reg, LMX_ERR_OUT_OF_MEMORY, "cannot allocate the expert's vectors");
    }
    for (uint32_t j = 0; j < out[1]; j++) s->u[j] = (float)((int)(7u * j % 13u) - 6) / 6.0f;
    for (uint32_t i = 0; i < in[1]; i++) s->v[i] = (float)((int)(5u * i % 11u) - 5) / (5.0f * (float)in[1]);

    lmx_custom_expert_desc desc = {.struct_size = sizeof desc, .modules = modules, .in_features = in,
                                   .out_features = out, .n_modules = 2, .layers = n_layers ? layers : NULL,
                                   .n_layers = n_layers, .forward = forward, .destroy = destroy, .user_data = s};
    st = host->register_custom(reg, "scaler", &desc);
    free(layers);
    if (st != LMX_OK) {
        /* A registration that fails keeps nothing and never calls destroy (as lmx_mixer_add_custom):
         * the user data is still ours. */
        destroy(s);
        return st;
    }
    char message[256];
    snprintf(message, sizeof message, "registered 'scaler' (o_proj %u->%u diagonal, down_proj %u->%u rank 1), "
             "scale %g, %s", in[0], out[0], in[1], out[1], (double)scale, n_layers ? "some layers" : "every layer");
    host->log(reg, LMX_LOG_INFO, message);
    return LMX_OK;
}

static const lmx_plugin_descriptor descriptor = {
    LMX_PLUGIN_ABI_VERSION,
    sizeof(lmx_plugin_descriptor),
    PLUGIN_ID,
    "1.0.0",
    "A hand-written custom expert: a diagonal map on o_proj and a rank-1 map on down_proj",
    "MIT",
    init,
    plugin_shutdown,
};

LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor; }
