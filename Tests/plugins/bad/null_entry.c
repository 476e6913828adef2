/* lmx_plugin_entry returns NULL. */
#include <loramixer_plugin.h>

LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return NULL; }
