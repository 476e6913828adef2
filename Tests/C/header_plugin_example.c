/* The minimal plugin from the comment at the top of loramixer_plugin.h, written out: the plugin
 * header's types must be usable as documented, warning-free as C11 and C++17 (`make header-check`).
 * Compiled with -fsyntax-only; it is never linked or loaded. */
#include "loramixer_plugin.h"

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    return host->register_peft(reg, "math", config); /* config: the folder to load */
}

static const lmx_plugin_descriptor descriptor = {
    LMX_PLUGIN_ABI_VERSION, sizeof(lmx_plugin_descriptor), "org.example.math", "1.0.0",
    "A math expert", "MIT", init, NULL};

#ifdef __cplusplus
extern "C" {
#endif
LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void);
#ifdef __cplusplus
}
#endif

LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor; }

/* The entry point has the type the host looks up. */
static const lmx_plugin_entry_fn entry_has_the_documented_type = lmx_plugin_entry;
const lmx_plugin_entry_fn *header_plugin_example_use(void);
const lmx_plugin_entry_fn *header_plugin_example_use(void) { return &entry_has_the_documented_type; }
