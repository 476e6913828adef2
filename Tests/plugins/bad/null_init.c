/* A descriptor without init. */
#include <loramixer_plugin.h>

static const lmx_plugin_descriptor descriptor = {LMX_PLUGIN_ABI_VERSION, sizeof(lmx_plugin_descriptor),
                                                 "org.loramixer.test.null-init", "1.0", "no init", "MIT", NULL, NULL};
LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor; }
