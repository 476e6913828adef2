/* Three PEFT experts and a router from memory (register_router). config "dir=ADAPTERS;mode=...":
 * ADAPTERS holds e0, e1, e2 (the fixture adapters). Router weights: 4 * fixed_value(l, 100, 0, i)
 * for [3 x 64] per layer, biases fixed_value(l, 101, 1, e); top_k 2, temperature 1.5.
 *   mode=ok      as above
 *   mode=layers  n_layers 3 (the fixture has 2): LMX_ERR_SHAPE
 *   mode=dmodel  d_model 32: LMX_ERR_SHAPE
 *   mode=topk    top_k 0: LMX_ERR_INVALID_ARGUMENT
 *   mode=temp    temperature 0: LMX_ERR_INVALID_ARGUMENT
 *   mode=names   rows named e0, e1, zz: the load fails when the router is matched to the experts
 *   mode=small   struct_size LMX_ROUTER_DESC_MIN_SIZE - 1: LMX_ERR_ABI
 * (every other mode passes struct_size = LMX_ROUTER_DESC_MIN_SIZE, the first version's size)
 * Returns LMX_OK whatever register_router answered, so the load reports that registration's own
 * status and message. */
#include "../plugin_util.h"
#include "fixed_numbers.h"

enum { E = 3, D = 64, L = 2 };

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    char dir[1024], mode[32], path[1100];
    config_get(config, "dir", dir, sizeof dir);
    config_get(config, "mode", mode, sizeof mode);
    static const char *const names[E] = {"e0", "e1", "e2"};
    for (int e = 0; e < E; e++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[e]);
        lmx_status st = host->register_peft(reg, names[e], path);
        if (st != LMX_OK) return st;
    }
    float weights[L][E * D], biases[L][E];
    const float *weight_rows[L], *bias_rows[L];
    for (uint32_t l = 0; l < L; l++) {
        for (uint32_t i = 0; i < E * D; i++) weights[l][i] = 4.0f * fixed_value(l, 100, 0, i);
        for (uint32_t e = 0; e < E; e++) biases[l][e] = fixed_value(l, 101, 1, e);
        weight_rows[l] = weights[l];
        bias_rows[l] = biases[l];
    }
    static const char *const wrong_names[E] = {"e0", "e1", "zz"};
    uint32_t size = (uint32_t)LMX_ROUTER_DESC_MIN_SIZE - (strcmp(mode, "small") == 0 ? 1u : 0u);
    lmx_router_desc desc = {.struct_size = size, .experts = strcmp(mode, "names") == 0 ? wrong_names : names,
                            .n_experts = E, .n_layers = strcmp(mode, "layers") == 0 ? 3 : L,
                            .d_model = strcmp(mode, "dmodel") == 0 ? 32 : D, .weights = weight_rows,
                            .biases = bias_rows, .context_weights = NULL, .top_k = strcmp(mode, "topk") == 0 ? 0 : 2,
                            .temperature = strcmp(mode, "temp") == 0 ? 0.0f : 1.5f};
    /* weight_rows has L entries: with mode=layers the host must refuse before reading a third. */
    host->register_router(reg, &desc);
    return LMX_OK;
}

TEST_PLUGIN("org.loramixer.test.router-mem", init, NULL)
