/*
 * peft_folders — an example loramixer plugin that registers PEFT LoRA folders named in its config,
 * and optionally a router file.
 *
 *   id      org.loramixer.example.peft-folders
 *   config  "name=dir;name=dir;...[;router=path]", e.g.
 *           "math=models/experts/math;strings=models/experts/strings;router=models/router.safetensors"
 *
 * Relative paths are resolved by the host process (its working directory). Spaces around names and
 * paths are trimmed. "router" is a reserved key (at most once); every other key names an expert.
 * A malformed config (no experts, an entry without '=', an empty name or path, a name given
 * twice, two routers) is refused with LMX_ERR_INVALID_ARGUMENT and a message naming the entry.
 *
 * Build: cc -std=c11 -fPIC -shared -fvisibility=hidden -Iinclude peft_folders.c -o peft_folders.so
 */
#include <loramixer_plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLUGIN_ID "org.loramixer.example.peft-folders"

enum { max_entries = 64, max_entry = 4096 };

typedef struct entry {
    char name[128];
    char path[max_entry];
} entry;

/* The parsed config (on the heap: init may run on several threads at once, for several mixers). */
typedef struct parsed {
    entry entries[max_entries];
    size_t n_entries;
    char router[max_entry];
} parsed;

static lmx_status fail(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *format, const char *a,
                       int index) {
    char message[max_entry + 512];
    snprintf(message, sizeof message, format, index, a);
    host->set_error(reg, message);
    return LMX_ERR_INVALID_ARGUMENT;
}

/* Copies [begin, end) into out (capacity size) without leading/trailing spaces; 0 if too long. */
static int trimmed(const char *begin, const char *end, char *out, size_t size) {
    while (begin < end && (*begin == ' ' || *begin == '\t')) begin++;
    while (end > begin && (end[-1] == ' ' || end[-1] == '\t')) end--;
    if ((size_t)(end - begin) >= size) return 0;
    memcpy(out, begin, (size_t)(end - begin));
    out[end - begin] = '\0';
    return 1;
}

/* Parses `config` into *out, or sets the error and returns LMX_ERR_INVALID_ARGUMENT. */
static lmx_status parse(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config, parsed *out) {
    int index = 0;
    for (const char *p = config ? config : ""; *p;) {
        size_t len = strcspn(p, ";");
        const char *end = p + len;
        index++;
        char raw[max_entry];
        if (!trimmed(p, end, raw, sizeof raw))
            return fail(host, reg, "config entry %d is longer than the %s bytes this plugin accepts", "4095", index);
        p = end + (*end == ';');
        if (!raw[0]) continue; /* "a=b;;c=d" and a trailing ';' are fine */
        char *eq = strchr(raw, '=');
        if (!eq)
            return fail(host, reg, "config entry %d '%s' is not name=dir (expected e.g. "
                        "\"math=models/experts/math;router=models/router.safetensors\")", raw, index);
        char name[sizeof out->entries[0].name], path[max_entry];
        if (!trimmed(raw, eq, name, sizeof name))
            return fail(host, reg, "config entry %d: the name in '%s' is longer than 127 bytes", raw, index);
        if (!trimmed(eq + 1, eq + strlen(eq), path, sizeof path))
            return fail(host, reg, "config entry %d: the path of '%s' is too long", name, index);
        if (!name[0]) return fail(host, reg, "config entry %d '%s' has an empty name before '='", raw, index);
        if (!path[0]) return fail(host, reg, "config entry %d: '%s' has an empty path after '='", name, index);
        if (strcmp(name, "router") == 0) {
            if (out->router[0])
                return fail(host, reg, "config entry %d: a second router '%s' (at most one router=path)", path, index);
            memcpy(out->router, path, sizeof out->router);
            continue;
        }
        for (size_t i = 0; i < out->n_entries; i++)
            if (strcmp(out->entries[i].name, name) == 0)
                return fail(host, reg, "config entry %d: expert name '%s' is given twice", name, index);
        if (out->n_entries == max_entries) return fail(host, reg, "config entry %d: more than %s experts", "64", index);
        memcpy(out->entries[out->n_entries].name, name, sizeof name);
        memcpy(out->entries[out->n_entries].path, path, sizeof path);
        out->n_entries++;
    }
    if (out->n_entries == 0)
        return fail(host, reg, "config (%d entries) lists no experts%s; expected name=dir pairs separated by ';', "
                    "e.g. \"math=models/experts/math;router=models/router.safetensors\"", "", index);
    return LMX_OK;
}

/* Registers what `config` names. A failed registration has already left the host's precise
 * message (file, tensor, shape), so returning its status is enough. */
static lmx_status register_all(const lmx_host_api *host, lmx_plugin_registrar *reg, const parsed *cfg) {
    for (size_t i = 0; i < cfg->n_entries; i++) {
        lmx_status st = host->register_peft(reg, cfg->entries[i].name, cfg->entries[i].path);
        if (st != LMX_OK) return st;
    }
    if (cfg->router[0]) {
        lmx_status st = host->register_router_file(reg, cfg->router);
        if (st != LMX_OK) return st;
    }
    char message[256];
    snprintf(message, sizeof message, "registered %zu PEFT folder%s%s", cfg->n_entries, cfg->n_entries == 1 ? "" : "s",
             cfg->router[0] ? " and a router" : "");
    host->log(reg, LMX_LOG_INFO, message);
    return LMX_OK;
}

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    if (host->struct_size < sizeof(lmx_host_api)) return LMX_ERR_ABI; /* needs every ABI 1.0 function */
    parsed *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        host->set_error(reg, "cannot allocate the parsed config");
        return LMX_ERR_OUT_OF_MEMORY;
    }
    /* Parse everything first, so a malformed config registers nothing at all. */
    lmx_status st = parse(host, reg, config, cfg);
    if (st == LMX_OK) st = register_all(host, reg, cfg);
    free(cfg);
    return st;
}

static const lmx_plugin_descriptor descriptor = {
    LMX_PLUGIN_ABI_VERSION,
    sizeof(lmx_plugin_descriptor),
    PLUGIN_ID,
    "1.0.0",
    "PEFT LoRA folders (and a router file) named in the config string",
    "MIT",
    init,
    NULL,
};

LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor; }
