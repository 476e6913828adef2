/* A descriptor that claims to be 16 bytes: smaller than ABI 1.0's lmx_plugin_descriptor. */
#include <loramixer_plugin.h>

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    (void)config;
    host->set_error(reg, "small_descriptor: init ran although the descriptor is too small");
    return LMX_ERR_PLUGIN;
}

static const lmx_plugin_descriptor descriptor = {LMX_PLUGIN_ABI_VERSION, 16, "org.loramixer.test.small-descriptor", "1.0",
                                                 "descriptor too small", "MIT", init, NULL};
LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor; }
