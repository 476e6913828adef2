/* Probes the host table with good and bad arguments; registers nothing. Returns LMX_OK when every
 * answer is as the ABI says, else LMX_ERR_PLUGIN with set_error listing each mismatch.
 * config "abi_lora" / "abi_custom": instead only registers an lmx_lora_desc / lmx_custom_expert_desc
 * whose struct_size is 8 (must fail with LMX_ERR_ABI) and returns LMX_OK regardless. */
#include "../plugin_util.h"

#include <stddef.h>

static char problems[4096];

static void expect(const char *what, lmx_status got, lmx_status want) {
    if (got == want) return;
    size_t used = strlen(problems);
    snprintf(problems + used, sizeof problems - used, "%s%s: got %d, want %d", used ? "; " : "", what, (int)got, (int)want);
}

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    problems[0] = '\0';
    if (config_get(config, "abi_lora", NULL, 0)) {
        lmx_lora_desc small_desc = {.struct_size = 8};
        host->register_lora(reg, "tiny-desc", &small_desc);
        return LMX_OK;
    }
    if (config_get(config, "abi_custom", NULL, 0)) {
        lmx_custom_expert_desc small_custom = {.struct_size = 8};
        host->register_custom(reg, "tiny-desc", &small_custom);
        return LMX_OK;
    }
    if (host->struct_size < sizeof(lmx_host_api)) expect("host->struct_size >= sizeof(lmx_host_api)", 0, 1);
    if (host->abi_version != LMX_PLUGIN_ABI_VERSION) expect("host->abi_version == LMX_PLUGIN_ABI_VERSION", 0, 1);

    /* model_info: the full struct */
    lmx_plugin_model_info info;
    memset(&info, 0xAB, sizeof info);
    info.struct_size = sizeof info;
    expect("model_info", host->model_info(reg, &info), LMX_OK);
    if (info.n_layers != 2 || info.d_model != 64 || info.n_vocab != 128 || info.n_heads != 4 || info.n_kv_heads != 2 ||
        info.head_dim != 24 || info.d_ff != 96 || strcmp(info.family, "llama") != 0 ||
        strcmp(info.architecture, "LlamaForCausalLM") != 0)
        expect("model_info values (2 layers, d_model 64, vocab 128, 4/2 heads of 24, d_ff 96, llama)", 0, 1);
    /* model_info: an older, smaller struct (up to d_model) must not be written past its size */
    unsigned char small[sizeof(lmx_plugin_model_info)];
    memset(small, 0xCD, sizeof small);
    uint32_t small_size = (uint32_t)offsetof(lmx_plugin_model_info, n_heads);
    memcpy(small, &small_size, sizeof small_size);
    expect("model_info with a smaller struct_size", host->model_info(reg, (lmx_plugin_model_info *)(void *)small), LMX_OK);
    for (size_t i = small_size; i < sizeof small; i++)
        if (small[i] != 0xCD) {
            expect("model_info wrote past struct_size", 0, 1);
            break;
        }
    lmx_plugin_model_info zero = {.struct_size = 0};
    expect("model_info with struct_size 0", host->model_info(reg, &zero), LMX_ERR_ABI);
    expect("model_info NULL", host->model_info(reg, NULL), LMX_ERR_INVALID_ARGUMENT);

    /* module_shape */
    uint32_t in = 0, out = 0;
    expect("module_shape o_proj", host->module_shape(reg, LMX_MODULE_O_PROJ, &in, &out), LMX_OK);
    if (in != 96 || out != 64) expect("module_shape o_proj is 96 -> 64", 0, 1);
    expect("module_shape down_proj", host->module_shape(reg, LMX_MODULE_DOWN_PROJ, &in, &out), LMX_OK);
    if (in != 96 || out != 64) expect("module_shape down_proj is 96 -> 64", 0, 1);
    expect("module_shape k_proj", host->module_shape(reg, LMX_MODULE_K_PROJ, &in, &out), LMX_OK);
    if (in != 64 || out != 48) expect("module_shape k_proj is 64 -> 48", 0, 1);
    expect("module_shape module 99", host->module_shape(reg, 99, &in, &out), LMX_ERR_INVALID_ARGUMENT);
    expect("module_shape NULL out", host->module_shape(reg, 0, &in, NULL), LMX_ERR_INVALID_ARGUMENT);

    /* Registrations refused before anything is staged (each fails the whole load, so only with
     * config "nulls"). */
    if (config_get(config, "nulls", NULL, 0)) {
    expect("register_lora NULL desc", host->register_lora(reg, "x", NULL), LMX_ERR_INVALID_ARGUMENT);
    expect("register_custom NULL desc", host->register_custom(reg, "x", NULL), LMX_ERR_INVALID_ARGUMENT);
    expect("register_peft NULL dir", host->register_peft(reg, "x", NULL), LMX_ERR_INVALID_ARGUMENT);
    expect("register_router NULL desc", host->register_router(reg, NULL), LMX_ERR_INVALID_ARGUMENT);
    expect("register_router_file NULL", host->register_router_file(reg, NULL), LMX_ERR_INVALID_ARGUMENT);
    expect("register_lora NULL name", host->register_lora(reg, NULL, NULL), LMX_ERR_INVALID_ARGUMENT);
    }
    expect("model_info NULL registrar", host->model_info(NULL, &info), LMX_ERR_INVALID_ARGUMENT);
    host->log(reg, 99, "probe: a log line at an unknown level");
    host->log(reg, LMX_LOG_DEBUG, NULL);

    if (!problems[0]) return LMX_OK;
    host->set_error(reg, problems);
    return LMX_ERR_PLUGIN;
}

TEST_PLUGIN("org.loramixer.test.probe", init, NULL)
