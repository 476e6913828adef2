/* Lifecycle side channel. config "log=PATH;custom;lora;peft=DIR;fail":
 *   custom    registers custom expert "life" on v_proj (64 -> 48): delta[j] = 0.3 * x[j];
 *             destroy appends "destroy life", and each forward call is counted
 *   lora      registers a copied rank-2 LoRA "life-lora" on q_proj of layer 0
 *   peft=DIR  registers the PEFT folder DIR as expert "life-peft"
 *   fail      after registering, set_error("lifecycle: asked to fail") and return LMX_ERR_PLUGIN
 * shutdown appends "shutdown forward_calls=<n>" to PATH. */
#include "../plugin_util.h"

static char log_path[1024];
static volatile unsigned long forward_calls; /* one session at a time in the test */

static lmx_status forward(void *user_data, uint32_t layer, uint32_t module, const float *input, float *output,
                          size_t n_rows, size_t in_features, size_t out_features) {
    (void)user_data, (void)layer, (void)module;
    forward_calls++;
    for (size_t r = 0; r < n_rows; r++)
        for (size_t j = 0; j < out_features && j < in_features; j++) output[r * out_features + j] += 0.3f * input[r * in_features + j];
    return LMX_OK;
}

static void destroy(void *user_data) {
    (void)user_data;
    append_line(log_path, "destroy life");
}

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    char dir[1024];
    config_get(config, "log", log_path, sizeof log_path);
    forward_calls = 0;
    lmx_status st = LMX_OK;
    if (config_get(config, "custom", NULL, 0)) {
        uint32_t modules[] = {LMX_MODULE_V_PROJ}, in[] = {64}, out[] = {48};
        lmx_custom_expert_desc desc = {.struct_size = sizeof desc, .modules = modules, .in_features = in,
                                       .out_features = out, .n_modules = 1, .forward = forward, .destroy = destroy};
        if ((st = host->register_custom(reg, "life", &desc)) != LMX_OK) return st;
    }
    if (config_get(config, "lora", NULL, 0) &&
        (st = register_small_lora(host, reg, "life-lora", LMX_MODULE_Q_PROJ, 64, 96, 2, NULL, NULL, NULL)) != LMX_OK)
        return st;
    if (config_get(config, "peft", dir, sizeof dir) && (st = host->register_peft(reg, "life-peft", dir)) != LMX_OK)
        return st;
    if (config_get(config, "fail", NULL, 0)) {
        host->set_error(reg, "lifecycle: asked to fail");
        return LMX_ERR_PLUGIN;
    }
    return LMX_OK;
}

static void shutdown_plugin(void) {
    char line[64];
    snprintf(line, sizeof line, "shutdown forward_calls=%lu", forward_calls);
    append_line(log_path, line);
}

TEST_PLUGIN("org.loramixer.test.lifecycle", init, shutdown_plugin)
