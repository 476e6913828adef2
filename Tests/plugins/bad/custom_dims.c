/* Custom-expert registrations that the host must refuse. config "mode=...;return=ok|status;log=PATH":
 *   dims   o_proj declared 64 -> 64 (the fixture's o_proj is 96 -> 64): LMX_ERR_SHAPE
 *   layer  a valid module on layer 5 (the fixture has 2 layers): LMX_ERR_SHAPE
 *   twice  "twin" registered twice, each with its own user data: the second is refused
 * destroy appends "destroy <tag>" (tags: first, second). Appends "register <status>" per call and
 * "shutdown" when its shutdown runs. */
#include "../plugin_util.h"

static char log_path[1024];
static char first_tag[] = "first", second_tag[] = "second";

static lmx_status forward(void *user_data, uint32_t layer, uint32_t module, const float *input, float *output,
                          size_t n_rows, size_t in_features, size_t out_features) {
    (void)user_data, (void)layer, (void)module, (void)input, (void)output, (void)n_rows, (void)in_features,
        (void)out_features;
    return LMX_OK;
}

static void destroy(void *user_data) {
    char line[64];
    snprintf(line, sizeof line, "destroy %s", (const char *)user_data);
    append_line(log_path, line);
}

static lmx_status add(const lmx_host_api *host, lmx_plugin_registrar *reg, uint32_t module, uint32_t in, uint32_t out,
                      const uint32_t *layers, size_t n_layers, char *tag) {
    uint32_t modules[] = {module}, ins[] = {in}, outs[] = {out};
    lmx_custom_expert_desc desc = {.struct_size = sizeof desc, .modules = modules, .in_features = ins,
                                   .out_features = outs, .n_modules = 1, .layers = layers, .n_layers = n_layers,
                                   .forward = forward, .destroy = destroy, .user_data = tag};
    lmx_status st = host->register_custom(reg, "twin", &desc);
    char line[64];
    snprintf(line, sizeof line, "register %d", (int)st);
    append_line(log_path, line);
    return st;
}

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    char mode[32], ret[32];
    config_get(config, "log", log_path, sizeof log_path);
    config_get(config, "mode", mode, sizeof mode);
    config_get(config, "return", ret, sizeof ret);
    lmx_status st;
    if (strcmp(mode, "dims") == 0) {
        st = add(host, reg, LMX_MODULE_O_PROJ, 64, 64, NULL, 0, first_tag);
    } else if (strcmp(mode, "layer") == 0) {
        static const uint32_t layers[] = {5};
        st = add(host, reg, LMX_MODULE_V_PROJ, 64, 48, layers, 1, first_tag);
    } else {
        st = add(host, reg, LMX_MODULE_V_PROJ, 64, 48, NULL, 0, first_tag);
        if (st == LMX_OK) st = add(host, reg, LMX_MODULE_V_PROJ, 64, 48, NULL, 0, second_tag);
    }
    return strcmp(ret, "status") == 0 ? st : LMX_OK;
}

static void shutdown_plugin(void) { append_line(log_path, "shutdown"); }

TEST_PLUGIN("org.loramixer.test.custom-dims", init, shutdown_plugin)
