/* Built against a future ABI: major version 2, minor 3. Its init must never run. */
#include <loramixer_plugin.h>

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    (void)config;
    host->set_error(reg, "abi_major: init ran although the ABI major version differs");
    return LMX_ERR_PLUGIN;
}

static const lmx_plugin_descriptor descriptor = {(2u << 16) | 3u, sizeof(lmx_plugin_descriptor), "org.loramixer.test.abi-major",
                                                 "1.0", "wrong ABI major", "MIT", init, NULL};
LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor; }
