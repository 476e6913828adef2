/* Registers one good copied LoRA (q_proj, layer 0) named by config "name=NAME", to clash with an
 * expert already in the mixer. */
#include "../plugin_util.h"

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    char name[128];
    if (!config_get(config, "name", name, sizeof name)) return LMX_ERR_INVALID_ARGUMENT;
    return register_small_lora(host, reg, name, LMX_MODULE_Q_PROJ, 64, 96, 2, NULL, NULL, NULL);
}

TEST_PLUGIN("org.loramixer.test.dup-name", init, NULL)
