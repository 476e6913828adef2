/* A plugin built against a newer header than the host's: its descriptor has a field appended
 * after shutdown (the host must accept the longer struct_size and ignore the field), and its view
 * of the host table has a function appended after set_error, which it calls only if the host's
 * table reaches it (LMX_HAS_FIELD on host->struct_size), as loramixer_plugin.h says. This host's
 * table does not, so it logs a WARNING saying so and carries on: it registers the PEFT folder
 * named by `config` as "newer-peft". */
#include <loramixer_plugin.h>

typedef struct {
    lmx_host_api base;
    lmx_status (*future_function)(lmx_plugin_registrar *registrar, uint32_t flags);
} newer_host_api;

typedef struct {
    lmx_plugin_descriptor base;
    const char *homepage; /* appended by the newer header */
} newer_descriptor;

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    const newer_host_api *newer = (const newer_host_api *)(const void *)host;
    if (LMX_HAS_FIELD(newer_host_api, &newer->base, future_function)) {
        lmx_status st = newer->future_function(reg, 0);
        if (st != LMX_OK) return st;
    } else {
        host->log(reg, LMX_LOG_WARNING, "newer_header: the host table has no future_function; not calling it");
    }
    if (!LMX_HOST_HAS(host, set_error)) return LMX_ERR_ABI;
    return host->register_peft(reg, "newer-peft", config);
}

static const newer_descriptor descriptor = {
    {LMX_PLUGIN_ABI_VERSION, sizeof(newer_descriptor), "org.loramixer.test.newer-header", "2.0.0",
     "built against a header with appended fields", "MIT", init, NULL},
    "https://example.invalid/newer"};

LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor.base; }
