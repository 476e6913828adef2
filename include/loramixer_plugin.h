/*
 * loramixer_plugin.h — the plugin ABI of libloramixer: the only header a plugin author includes.
 *
 * A plugin is a shared library that ships experts (and optionally a router) to any loramixer host.
 * It exports one symbol, lmx_plugin_entry, returning a descriptor. The host calls the descriptor's
 * init() once, with a table of host functions (lmx_host_api) and a registrar; everything the plugin
 * registers during init() is staged and becomes visible only if init() returns LMX_OK. A plugin
 * never links libloramixer: it reaches the host only through the table.
 *
 *   #include <loramixer_plugin.h>
 *   static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
 *       return host->register_peft(reg, "math", config);        // config: the folder to load
 *   }
 *   static const lmx_plugin_descriptor descriptor = {
 *       LMX_PLUGIN_ABI_VERSION, sizeof(lmx_plugin_descriptor), "org.example.math", "1.0.0",
 *       "A math expert", "MIT", init, NULL};
 *   LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor; }
 *
 * Versioning: LMX_PLUGIN_ABI_VERSION = major << 16 | minor. A host loads plugins of its own major
 * version and any minor; structs only ever grow at the end and carry their size (see "Growing
 * structs" in loramixer_common.h), so a plugin built against an older minor keeps working, and a
 * host reads an older plugin's shorter descriptor with defaults (NULL) for fields appended since.
 * The host table lmx_host_api is append-only: a function added by a later minor sits after every
 * older one, and a host of an older minor hands a shorter table. Before calling a function that
 * is not in the first version of the table (everything after set_error), a plugin must check that
 * the host's table reaches it: LMX_HOST_HAS(host, member); calling it otherwise reads past the
 * host's table.
 */
#ifndef LORAMIXER_PLUGIN_H
#define LORAMIXER_PLUGIN_H

#include "loramixer_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LMX_PLUGIN_ABI_MAJOR 1
#define LMX_PLUGIN_ABI_MINOR 0
#define LMX_PLUGIN_ABI_VERSION ((uint32_t)((LMX_PLUGIN_ABI_MAJOR << 16) | LMX_PLUGIN_ABI_MINOR))

#if defined(__GNUC__) || defined(__clang__)
#define LMX_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define LMX_PLUGIN_EXPORT
#endif

/* Opaque: where a plugin's registrations are staged. Valid only during init(); never store it. */
typedef struct lmx_plugin_registrar lmx_plugin_registrar;

/* Facts about the model the plugin's experts will run on. */
typedef struct lmx_plugin_model_info {
    uint32_t struct_size;   /* set by the plugin to sizeof(lmx_plugin_model_info) */
    uint32_t n_vocab;
    uint32_t n_layers;
    uint32_t d_model;
    uint32_t n_heads;       /* 0 for Mamba */
    uint32_t n_kv_heads;    /* 0 for Mamba */
    uint32_t head_dim;      /* 0 for Mamba */
    uint32_t d_ff;          /* Mamba: d_inner */
    uint32_t max_positions;
    char architecture[64];  /* e.g. "LlamaForCausalLM", "MambaForCausalLM" */
    char family[16];        /* "llama", "mistral", "qwen2", "mamba" or "falcon_mamba" */
    uint32_t d_state;       /* Mamba: SSM state size; 0 for attention models */
    uint32_t d_conv;        /* Mamba: convolution width; 0 otherwise */
    uint32_t dt_rank;       /* Mamba: time-step rank; 0 otherwise */
} lmx_plugin_model_info;
/* Output struct: the host writes only the fields within the plugin's struct_size (at least 4). */
#define LMX_PLUGIN_MODEL_INFO_MIN_SIZE LMX_SIZE_THROUGH(lmx_plugin_model_info, struct_size)

/* A router given from memory (see the router file format in the README). Arrays are copied during
 * the call. experts[i] names row i of every weight matrix. */
typedef struct lmx_router_desc {
    uint32_t struct_size;                 /* sizeof(lmx_router_desc) */
    const char *const *experts;           /* n_experts expert names */
    size_t n_experts;
    uint32_t n_layers;                    /* must equal the model's */
    uint32_t d_model;                     /* must equal the model's */
    const float *const *weights;          /* n_layers pointers to [n_experts x d_model] */
    const float *const *biases;           /* NULL, or n_layers pointers (each may be NULL) to [n_experts] */
    const float *const *context_weights;  /* NULL (token input), or n_layers pointers to [n_experts x d_model] */
    uint32_t top_k;                       /* 1 .. n_experts */
    float temperature;                    /* > 0 */
} lmx_router_desc;
#define LMX_ROUTER_DESC_MIN_SIZE LMX_SIZE_THROUGH(lmx_router_desc, temperature)

/* The host's functions, passed to init(). The table and the registrar are valid only during
 * init(): copy what you need. A failed register_* call takes no ownership (release/destroy will
 * not run; the memory is still the plugin's) and fails the whole load — with that registration's
 * status and message, even if init then returns LMX_OK. Every function is called on the thread
 * that runs init() (Threads below says so once more). A NULL or foreign registrar makes a
 * function return LMX_ERR_INVALID_ARGUMENT (or do nothing, for the void ones). */
typedef struct lmx_host_api {
    uint32_t struct_size;  /* sizeof(lmx_host_api) of the host; grows at the end only */
    uint32_t abi_version;  /* the host's LMX_PLUGIN_ABI_VERSION */

    /* Send a message at an LMX_LOG_* level, tagged with the plugin's id, to the host's log callback
     * (lmx_set_log_callback), or to stderr when the host has set none.
     * Ownership: `message` is borrowed for the call.
     * Threads: the thread running init().
     * Errors: none (returns nothing; a NULL message is ignored). */
    void (*log)(lmx_plugin_registrar *registrar, uint32_t level, const char *message);

    /* Fill *out with the model's facts; the plugin sets out->struct_size first, and only fields
     * within it are written.
     * Ownership: *out is the plugin's; nothing is kept.
     * Threads: the thread running init().
     * Errors: LMX_ERR_INVALID_ARGUMENT (NULL out), LMX_ERR_ABI (struct_size below 4). */
    lmx_status (*model_info)(lmx_plugin_registrar *registrar, lmx_plugin_model_info *out);

    /* Input and output features of an LMX_MODULE_* projection in this model.
     * Ownership: the outputs are the plugin's.
     * Threads: the thread running init().
     * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, unknown module or one the model lacks). */
    lmx_status (*module_shape)(lmx_plugin_registrar *registrar, uint32_t module, uint32_t *in_features,
                               uint32_t *out_features);

    /* Stage a LoRA expert from memory named `name` (unique in the mixer). Shapes are checked now.
     * If the staged expert never becomes visible (init fails later), borrowed memory is released
     * when the staging is dropped.
     * Ownership: copied when desc->release is NULL; else borrowed until release(user_data), which
     * is never called if this call fails. `name` and `desc` are borrowed for the call.
     * Threads: the thread running init().
     * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, duplicate name, bad rank, dtype or module),
     * LMX_ERR_SHAPE, LMX_ERR_ABI (struct_size below LMX_LORA_DESC_MIN_SIZE). */
    lmx_status (*register_lora)(lmx_plugin_registrar *registrar, const char *name, const lmx_lora_desc *desc);

    /* Stage the PEFT LoRA folder `dir` as expert `name`.
     * Ownership: strings borrowed for the call; the tensors are copied.
     * Threads: the thread running init().
     * Errors: LMX_ERR_INVALID_ARGUMENT, LMX_ERR_IO, LMX_ERR_FORMAT, LMX_ERR_SHAPE, LMX_ERR_OUT_OF_MEMORY. */
    lmx_status (*register_peft)(lmx_plugin_registrar *registrar, const char *name, const char *dir);

    /* Stage a custom expert computed by desc->forward. Dimensions are checked against the model
     * now.
     * Ownership: desc->destroy(user_data) runs once when nothing uses the expert (also if init
     * fails later), but never if this call fails. `name` and `desc` are borrowed for the call.
     * Threads: the thread running init(); forward is later called from evaluating threads.
     * Errors: LMX_ERR_INVALID_ARGUMENT, LMX_ERR_SHAPE, LMX_ERR_ABI (struct_size below
     * LMX_CUSTOM_EXPERT_DESC_MIN_SIZE). */
    lmx_status (*register_custom)(lmx_plugin_registrar *registrar, const char *name,
                                  const lmx_custom_expert_desc *desc);

    /* Stage a router file; on commit it replaces the mixer's router and must route to exactly the
     * mixer's experts (including this plugin's).
     * Ownership: `path` is borrowed for the call.
     * Threads: the thread running init().
     * Errors: LMX_ERR_INVALID_ARGUMENT, LMX_ERR_IO, LMX_ERR_FORMAT, LMX_ERR_SHAPE. */
    lmx_status (*register_router_file)(lmx_plugin_registrar *registrar, const char *path);

    /* Stage a router from memory; as register_router_file otherwise.
     * Ownership: every array is copied during the call.
     * Threads: the thread running init().
     * Errors: LMX_ERR_INVALID_ARGUMENT, LMX_ERR_SHAPE, LMX_ERR_ABI (struct_size below
     * LMX_ROUTER_DESC_MIN_SIZE). */
    lmx_status (*register_router)(lmx_plugin_registrar *registrar, const lmx_router_desc *desc);

    /* Set the message the host reports if init() fails.
     * Ownership: `message` (UTF-8) is copied.
     * Threads: the thread running init().
     * Errors: none (returns nothing; a NULL message is ignored). */
    void (*set_error)(lmx_plugin_registrar *registrar, const char *message);

    /* Functions added by later minor versions go here; check LMX_HOST_HAS(host, member) first. */
} lmx_host_api;
/* The first version of the table ends at set_error; every host hands at least this much. */
#define LMX_HOST_API_MIN_SIZE LMX_SIZE_THROUGH(lmx_host_api, set_error)
/* Nonzero if the host's table has function `member` (check before calling one after set_error). */
#define LMX_HOST_HAS(host, member) LMX_HAS_FIELD(lmx_host_api, host, member)

/* What lmx_plugin_entry returns: static storage that lives as long as the library is loaded. */
typedef struct lmx_plugin_descriptor {
    uint32_t abi_version;     /* LMX_PLUGIN_ABI_VERSION the plugin was built against */
    uint32_t struct_size;     /* sizeof(lmx_plugin_descriptor) */
    const char *id;           /* reverse-DNS, unique, e.g. "org.example.math" */
    const char *version;      /* the plugin's own version, e.g. "1.2.0" */
    const char *description;  /* one line */
    const char *license;      /* SPDX identifier, e.g. "MIT" */

    /* Register experts (and optionally a router) through `host`. `config` is the host's config
     * string for this plugin ("" when none; its meaning is the plugin's). Return LMX_OK to commit
     * everything registered; any other status discards it all (set a message with set_error).
     * Ownership: `host`, `registrar` and `config` are the host's, valid during the call only.
     * Threads: called once per load, on the thread that called lmx_mixer_load_plugin.
     * Errors: the plugin's to choose; any status other than LMX_OK fails the load (the host
     * reports LMX_ERR_PLUGIN). */
    lmx_status (*init)(const lmx_host_api *host, lmx_plugin_registrar *registrar, const char *config);

    /* Optional. Called once for every init that returned LMX_OK, just before the library is
     * closed: after the plugin was unloaded and the last session using its experts was freed, or
     * right away when the load is refused after init (a failed registration, an expert name already
     * in the mixer, a router that does not match). Not called if init itself failed.
     * Ownership: nothing is passed.
     * Threads: whichever thread drops the last use (a free, an unload, or the refused load).
     * Errors: none (returns nothing). */
    void (*shutdown)(void);
} lmx_plugin_descriptor;
/* Version 0 ended at shutdown (every field). A host refuses a smaller struct_size (LMX_ERR_ABI). */
#define LMX_PLUGIN_DESCRIPTOR_MIN_SIZE LMX_SIZE_THROUGH(lmx_plugin_descriptor, shutdown)

/* The one symbol a plugin exports. Returns its descriptor (never NULL). */
typedef const lmx_plugin_descriptor *(*lmx_plugin_entry_fn)(void);
#define LMX_PLUGIN_ENTRY_SYMBOL "lmx_plugin_entry"

#ifdef __cplusplus
}
#endif

#endif /* LORAMIXER_PLUGIN_H */
