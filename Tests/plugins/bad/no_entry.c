/* A shared library that is not a loramixer plugin: it exports a look-alike, never lmx_plugin_entry. */
#include <loramixer_plugin.h>

LMX_PLUGIN_EXPORT int lmx_plugin_entry_v0(void) { return 0; }
