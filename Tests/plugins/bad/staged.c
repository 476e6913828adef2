/* Staged registration: three good experts, then a bad one; nothing may become visible.
 * config "log=PATH;return=ok|status":
 *   staged-a  copied LoRA on q_proj (64 -> 96)
 *   staged-b  custom expert on v_proj (64 -> 48); destroy appends "destroy staged-b"
 *   staged-c  borrowed LoRA on o_proj (96 -> 64); release appends "release staged-c"
 *   staged-d  copied LoRA on v_proj declared 64 -> 64 (the model's is 64 -> 48): LMX_ERR_SHAPE
 * Appends "register <name> <status>" per registration, and "shutdown" when its shutdown runs. */
#include "../plugin_util.h"

static char log_path[1024];

static lmx_status forward(void *user_data, uint32_t layer, uint32_t module, const float *input, float *output,
                          size_t n_rows, size_t in_features, size_t out_features) {
    (void)user_data, (void)layer, (void)module;
    for (size_t r = 0; r < n_rows; r++)
        for (size_t j = 0; j < out_features && j < in_features; j++) output[r * out_features + j] += 0.1f * input[r * in_features + j];
    return LMX_OK;
}

static void destroy(void *user_data) {
    append_line(log_path, "destroy staged-b");
    free(user_data);
}

static void release(void *user_data) {
    append_line(log_path, "release staged-c");
    free(user_data);
}

static void note(const char *name, lmx_status st) {
    char line[96];
    snprintf(line, sizeof line, "register %s %d", name, (int)st);
    append_line(log_path, line);
}

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    char ret[32];
    config_get(config, "log", log_path, sizeof log_path);
    config_get(config, "return", ret, sizeof ret);

    lmx_status st = register_small_lora(host, reg, "staged-a", LMX_MODULE_Q_PROJ, 64, 96, 2, NULL, NULL, NULL);
    note("staged-a", st);

    uint32_t modules[] = {LMX_MODULE_V_PROJ}, in[] = {64}, out[] = {48};
    lmx_custom_expert_desc custom = {.struct_size = sizeof custom, .modules = modules, .in_features = in,
                                     .out_features = out, .n_modules = 1, .forward = forward, .destroy = destroy,
                                     .user_data = malloc(16)};
    st = host->register_custom(reg, "staged-b", &custom);
    note("staged-b", st);

    float *buffer = malloc((2 * 96 + 64 * 2) * sizeof(float));
    if (!buffer) return LMX_ERR_OUT_OF_MEMORY;
    st = register_small_lora(host, reg, "staged-c", LMX_MODULE_O_PROJ, 96, 64, 2, buffer, release, buffer);
    note("staged-c", st);

    st = register_small_lora(host, reg, "staged-d", LMX_MODULE_V_PROJ, 64, 64, 2, NULL, NULL, NULL);
    note("staged-d", st);
    return strcmp(ret, "status") == 0 ? st : LMX_OK;
}

static void shutdown_plugin(void) { append_line(log_path, "shutdown"); }

TEST_PLUGIN("org.loramixer.test.staged", init, shutdown_plugin)
