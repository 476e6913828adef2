/*
 * loramixer.h — the host C API of libloramixer.
 *
 * Load a Hugging Face model — decoder-only transformers of the llama family (llama, mistral,
 * qwen2) or the state-space models Mamba and FalconMamba — add LoRA experts (PEFT folders, raw
 * tensors, host code, plugins), load a learned router, and evaluate or generate tokens while the
 * router picks, per token and layer, which experts are mixed into the model's projections
 * (attention and MLP; Mamba's in/x/dt/out projections) (LoRA-Mixer, arXiv 2507.00029).
 *
 * Conventions (every function below follows them):
 *  - Functions return an lmx_status: LMX_OK (0) on success, a negative code on failure. After a
 *    failure, lmx_last_error() describes it precisely (file, tensor, argument, expected vs found).
 *  - Every function's comment ends with three lines: "Ownership:" (who owns what it takes and
 *    returns), "Threads:" (what may run concurrently), "Errors:" (every status it can return, or
 *    "none"). Every function that takes a handle can also return LMX_ERR_INVALID_ARGUMENT for a
 *    NULL, freed or wrong-kind handle; it is listed anyway.
 *  - Handles are opaque ids, not addresses. Constructors write the new handle through a trailing
 *    `out` pointer; every handle has an lmx_<object>_free that accepts NULL. Ids are never reused,
 *    so a handle passed after it was freed (even once its memory holds a new object), a pointer
 *    this library never returned, or a handle of the wrong kind is detected and refused with
 *    LMX_ERR_INVALID_ARGUMENT; freeing one is a no-op.
 *  - Params structs begin with `struct_size`; get defaults from lmx_<x>_params_default(). A NULL
 *    params pointer means the defaults. New fields are only ever appended; a struct_size from the
 *    struct's LMX_<STRUCT>_MIN_SIZE up is accepted and missing fields take their defaults (see
 *    "Growing structs" in loramixer_common.h). Below the minimum: LMX_ERR_ABI.
 *  - Integer types follow one rule (see loramixer_common.h): counts, lengths, capacities and
 *    indices are size_t, booleans uint32_t, token ids int32_t.
 *  - Strings are UTF-8 and NUL-terminated. Output strings go into a caller buffer: the call writes at
 *    most `capacity` bytes including the NUL and reports the full length (without NUL) in `*needed`.
 *  - Threads: a model is immutable once loaded and may be shared by any number of threads. A mixer
 *    may be read (sessions created from it) by many threads, but must not be modified (experts or
 *    routers added) while another thread uses it. A session is used by one thread at a time.
 *  - Nothing in this library aborts the host process on bad input: every argument is validated.
 */
#ifndef LORAMIXER_H
#define LORAMIXER_H

#include "loramixer_common.h" /* lmx_status and LMX_ERR_*, LMX_MODULE_*, LMX_DTYPE_*, LMX_LOG_*, expert descriptors */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LMX_API __attribute__((visibility("default")))
#else
#define LMX_API
#endif

/* Version of this header. lmx_version_number() reports the library's; a host can compare them. */
#define LMX_VERSION_MAJOR 0
#define LMX_VERSION_MINOR 1
#define LMX_VERSION_PATCH 0
#define LMX_VERSION_NUMBER (LMX_VERSION_MAJOR * 10000 + LMX_VERSION_MINOR * 100 + LMX_VERSION_PATCH)

/* Opaque handles. */
typedef struct lmx_model lmx_model;
typedef struct lmx_mixer lmx_mixer;
typedef struct lmx_session lmx_session;
typedef struct lmx_tokenizer lmx_tokenizer;

/* ---------------------------------------------------------------------------------------------
 * Library
 * ------------------------------------------------------------------------------------------- */

/* Library version as "MAJOR.MINOR.PATCH".
 * Ownership: static storage; never free.
 * Threads: any thread.
 * Errors: none. */
LMX_API const char *lmx_version(void);

/* Library version as MAJOR*10000 + MINOR*100 + PATCH; compare with LMX_VERSION_NUMBER to check
 * that the header a host was built with matches the library it runs with.
 * Ownership: nothing is passed.
 * Threads: any thread.
 * Errors: none. */
LMX_API uint32_t lmx_version_number(void);

/* Static English text naming `status` ("ok", "invalid argument", ...; "unknown status" for codes
 * this library does not define).
 * Ownership: static storage, never NULL; never free.
 * Threads: any thread.
 * Errors: none. */
LMX_API const char *lmx_status_string(lmx_status status);

/* Message describing the most recent failure on the calling thread ("" if none yet). Successful
 * calls leave it unchanged.
 * Ownership: the library's, valid until the next lmx_* call on this thread.
 * Threads: any thread; each thread has its own.
 * Errors: none. */
LMX_API const char *lmx_last_error(void);

/* Receives plugin log messages (lmx_host_api.log): `level` is an LMX_LOG_* value, `source` the
 * plugin's id, `message` the text. Both strings are borrowed for the call. */
typedef void (*lmx_log_callback)(uint32_t level, const char *source, const char *message, void *user_data);

/* Send every later plugin log message to `callback` (with `user_data`), for the whole process;
 * NULL restores the default: one line per message on stderr.
 * Ownership: user_data stays the host's; it must stay valid until another callback is set (calls
 * already running when this returns may still use the previous callback and user_data).
 * Threads: may be called from any thread; the callback is called from whichever thread a plugin
 * logs on (the thread loading it), possibly several at once, so it must be thread-safe. It must
 * not call lmx_set_log_callback.
 * Errors: none. */
LMX_API void lmx_set_log_callback(lmx_log_callback callback, void *user_data);

/* ---------------------------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------------------------- */

/* How weights get into memory. */
enum {
    LMX_LOAD_MMAP = 0, /* map the safetensors files and use weights in place (lowest memory) */
    LMX_LOAD_COPY = 1  /* read weights into ordinary memory (immune to page-out of mapped files) */
};

typedef struct lmx_model_params {
    uint32_t struct_size; /* sizeof(lmx_model_params) */
    uint32_t load_mode;   /* LMX_LOAD_MMAP (default) or LMX_LOAD_COPY */
} lmx_model_params;
#define LMX_MODEL_PARAMS_MIN_SIZE LMX_SIZE_THROUGH(lmx_model_params, load_mode)

/* Default model params.
 * Ownership: returned by value.
 * Threads: any thread.
 * Errors: none. */
LMX_API lmx_model_params lmx_model_params_default(void);

/* Load a Hugging Face model folder (config.json + model.safetensors, or shards listed in
 * model.safetensors.index.json). Families: llama, mistral, qwen2 (LlamaForCausalLM,
 * MistralForCausalLM, Qwen2ForCausalLM) and the state-space models MambaForCausalLM and
 * FalconMambaForCausalLM; weights F32, F16 or BF16.
 * Ownership: `path` and `params` are borrowed for the call; on success *out owns a new model: free
 * it with lmx_model_free. On failure *out is NULL.
 * Threads: any thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, unknown load_mode), LMX_ERR_ABI (params->struct_size
 * below LMX_MODEL_PARAMS_MIN_SIZE), LMX_ERR_IO (missing or unreadable file), LMX_ERR_FORMAT (corrupt
 * file, unknown architecture), LMX_ERR_SHAPE (a tensor of the wrong shape), LMX_ERR_NOT_FOUND (a
 * required tensor is missing), LMX_ERR_OUT_OF_MEMORY. */
LMX_API lmx_status lmx_model_load(const char *path, const lmx_model_params *params, lmx_model **out);

/* Release the caller's reference to a model. Mixers and sessions created from it keep it alive
 * until they are freed too, so this may be called at any time.
 * Ownership: the handle is invalid afterwards; NULL, freed and foreign handles are no-ops.
 * Threads: any thread, once no other thread uses this handle.
 * Errors: none. */
LMX_API void lmx_model_free(lmx_model *model);

typedef struct lmx_model_info {
    uint32_t struct_size;       /* set by the caller to sizeof(lmx_model_info) */
    uint32_t n_vocab;           /* vocabulary size: valid token ids are 0 .. n_vocab-1 */
    uint32_t n_layers;          /* decoder layers (Mamba: blocks) */
    uint32_t d_model;           /* hidden size */
    uint32_t n_heads;           /* attention (query) heads; 0 for Mamba */
    uint32_t n_kv_heads;        /* key/value heads (GQA when fewer than n_heads); 0 for Mamba */
    uint32_t head_dim;          /* size of one attention head; 0 for Mamba */
    uint32_t d_ff;              /* MLP intermediate size; Mamba: d_inner (expand x d_model) */
    uint32_t max_positions;     /* max_position_embeddings from config.json: the largest n_ctx
                                   (Mamba: 1048576 unless config.json sets it; its state does not
                                   grow with the context) */
    char architecture[64];      /* e.g. "LlamaForCausalLM", "MambaForCausalLM", NUL-terminated */
    uint32_t d_state;           /* Mamba: SSM state size per channel (state_size); 0 otherwise */
    uint32_t d_conv;            /* Mamba: causal convolution width (conv_kernel); 0 otherwise */
    uint32_t dt_rank;           /* Mamba: time-step projection rank (time_step_rank); 0 otherwise */
} lmx_model_info;
/* Output struct: only the fields within the caller's struct_size are written. */
#define LMX_MODEL_INFO_MIN_SIZE LMX_SIZE_THROUGH(lmx_model_info, struct_size)

/* Fill `*out` with the model's dimensions. The caller sets out->struct_size; only fields that fit
 * are written.
 * Ownership: *out is the caller's; nothing is kept.
 * Threads: any thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle), LMX_ERR_ABI (struct_size below 4). */
LMX_API lmx_status lmx_model_get_info(const lmx_model *model, lmx_model_info *out);

/* Input and output features of projection `module` (an LMX_MODULE_* value) in this model, i.e. a
 * LoRA A for it is [rank x in_features] and B is [out_features x rank].
 * Ownership: the outputs are the caller's.
 * Threads: any thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, unknown module or one the model lacks). */
LMX_API lmx_status lmx_model_module_shape(const lmx_model *model, uint32_t module,
                                          uint32_t *in_features, uint32_t *out_features);

/* ---------------------------------------------------------------------------------------------
 * Mixers: a model plus a set of named experts and an optional router
 * ------------------------------------------------------------------------------------------- */

/* Create an empty mixer over `model`.
 * Ownership: the mixer keeps the model alive; on success *out owns a new mixer: free it with
 * lmx_mixer_free. On failure *out is NULL.
 * Threads: any thread (the model may be in use by others).
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */
LMX_API lmx_status lmx_mixer_create(const lmx_model *model, lmx_mixer **out);

/* Release the caller's reference to a mixer; sessions created from it keep what they use alive.
 * Ownership: the handle is invalid afterwards; NULL, freed and foreign handles are no-ops.
 * Threads: any thread, once no other thread uses this handle.
 * Errors: none. */
LMX_API void lmx_mixer_free(lmx_mixer *mixer);

/* Add the PEFT LoRA adapter in folder `dir` (adapter_config.json + adapter_model.safetensors) as
 * expert `name` (unique in this mixer). Shapes are checked against the model here. On success, if
 * `out_index` is not NULL it receives the expert's index (experts are numbered 0, 1, ... in the
 * order they were added).
 * Ownership: strings are borrowed for the call; tensors are copied into the mixer.
 * Threads: not with other uses of the same mixer.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, empty or duplicate name), LMX_ERR_IO,
 * LMX_ERR_FORMAT, LMX_ERR_SHAPE, LMX_ERR_OUT_OF_MEMORY, LMX_ERR_STATE (the mixer already has a
 * router: add every expert before loading it). */
LMX_API lmx_status lmx_mixer_add_peft(lmx_mixer *mixer, const char *name, const char *dir,
                                      size_t *out_index);

/* Add a LoRA expert from memory (lmx_lora_desc, in loramixer_common.h) as expert `name`. Every
 * tensor is validated now. `out_index` as in lmx_mixer_add_peft.
 * Ownership: copied when desc->release is NULL (the caller's memory may be released as soon as
 * this returns), else borrowed until desc->release(desc->user_data) is called (never called if
 * this call fails: the memory stays the caller's). `name` and `desc` are borrowed for the call.
 * Threads: not with other uses of the same mixer; release runs on the thread dropping the last use.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, duplicate name, bad rank, dtype, module or
 * tensor list), LMX_ERR_SHAPE, LMX_ERR_ABI (struct_size below LMX_LORA_DESC_MIN_SIZE),
 * LMX_ERR_OUT_OF_MEMORY, LMX_ERR_STATE (as lmx_mixer_add_peft). */
LMX_API lmx_status lmx_mixer_add_lora(lmx_mixer *mixer, const char *name, const lmx_lora_desc *desc,
                                      size_t *out_index);

/* Add a custom expert (lmx_custom_expert_desc, in loramixer_common.h): host code that computes its
 * own delta for the modules and layers it names. Dimensions are checked against the model now.
 * `out_index` as in lmx_mixer_add_peft.
 * Ownership: desc->destroy(desc->user_data) runs once when no mixer or session uses the expert
 * any more (not if this call fails). `name` and `desc` (and its arrays) are borrowed for the call.
 * Threads: not with other uses of the same mixer; forward runs on evaluating threads.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, duplicate name, bad module or layer list),
 * LMX_ERR_SHAPE, LMX_ERR_ABI (struct_size below LMX_CUSTOM_EXPERT_DESC_MIN_SIZE), LMX_ERR_STATE
 * (as lmx_mixer_add_peft). */
LMX_API lmx_status lmx_mixer_add_custom(lmx_mixer *mixer, const char *name, const lmx_custom_expert_desc *desc,
                                        size_t *out_index);

/* Number of experts in the mixer.
 * Ownership: *out_count is the caller's.
 * Threads: any thread, unless another thread modifies the mixer.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */
LMX_API lmx_status lmx_mixer_expert_count(const lmx_mixer *mixer, size_t *out_count);

/* Name of expert `index` into `buf` (see the string convention above; `buf` may be NULL when
 * `capacity` is 0, to ask for the length).
 * Ownership: `buf` is the caller's.
 * Threads: any thread, unless another thread modifies the mixer.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle), LMX_ERR_NOT_FOUND (index out of range). */
LMX_API lmx_status lmx_mixer_expert_name(const lmx_mixer *mixer, size_t index, char *buf,
                                         size_t capacity, size_t *needed);

/* Load a router file (safetensors, format "loramixer.router"; see README) into the mixer, replacing
 * any earlier router. Its experts are matched to the mixer's by name: a name the mixer lacks, or a
 * mixer expert the router does not list, is an error naming it; so add every expert first. Sessions
 * created afterwards default to LMX_ROUTING_LEARNED with the file's top_k and temperature.
 * Ownership: `path` is borrowed for the call; the router is read into the mixer.
 * Threads: not with other uses of the same mixer.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle), LMX_ERR_IO, LMX_ERR_FORMAT, LMX_ERR_SHAPE,
 * LMX_ERR_NOT_FOUND, LMX_ERR_OUT_OF_MEMORY. */
LMX_API lmx_status lmx_mixer_load_router(lmx_mixer *mixer, const char *path);

/* ---------------------------------------------------------------------------------------------
 * Plugins: third-party experts in shared libraries (see loramixer_plugin.h and the README)
 * ------------------------------------------------------------------------------------------- */

typedef struct lmx_plugin_params {
    uint32_t struct_size;                /* sizeof(lmx_plugin_params) */
    const char *config;                  /* passed to the plugin's init (NULL = ""); copied */
    const char *const *allowed_sha256;   /* NULL: any file; else the file's SHA-256 (hex) must be listed */
    size_t n_allowed_sha256;
    uint32_t allow_writable;             /* nonzero: accept a file or folder writable by group/others */
} lmx_plugin_params;
#define LMX_PLUGIN_PARAMS_MIN_SIZE LMX_SIZE_THROUGH(lmx_plugin_params, allow_writable)

/* Default plugin params: no config, no SHA-256 pinning, writable files refused.
 * Ownership: returned by value.
 * Threads: any thread.
 * Errors: none. */
LMX_API lmx_plugin_params lmx_plugin_params_default(void);

/* Load the plugin library at `path` into the mixer: check it against the params' policy, open it,
 * check its ABI version and descriptor, and run its init with params->config. Everything it
 * registers is added at once if init returns OK and every registration succeeded; otherwise
 * nothing is, the library is closed, and the error (with the plugin's own message) is reported.
 * `out_index` (optional) receives its index among lmx_mixer_plugin_count.
 * The file is opened once: the policy (a regular file; it and its folder not writable by group or
 * others unless allow_writable; its SHA-256 listed) is checked on that open file, and the library
 * is loaded from the same descriptor (/proc/self/fd/N, so Linux with /proc mounted), which stays
 * open while the plugin is loaded: replacing the file at `path` after the check cannot get other
 * code loaded. A `path` without '/' names a file in the current directory; it is never looked up
 * on the library search path. dladdr() on plugin code names /proc/self/fd/N.
 * Ownership: `path` and `params` are borrowed for the call; the library stays open while the
 * mixer or a session uses its experts.
 * Threads: not with other uses of the same mixer; init runs on this thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, duplicate plugin id or expert name),
 * LMX_ERR_IO (cannot open or read the file), LMX_ERR_PLUGIN (not a regular file, not a shared
 * library, no lmx_plugin_entry, init failed, policy), LMX_ERR_ABI (wrong major version, descriptor or params below their minimum
 * size), and those of the registrations: LMX_ERR_FORMAT, LMX_ERR_SHAPE, LMX_ERR_NOT_FOUND,
 * LMX_ERR_STATE, LMX_ERR_OUT_OF_MEMORY. */
LMX_API lmx_status lmx_mixer_load_plugin(lmx_mixer *mixer, const char *path, const lmx_plugin_params *params,
                                         size_t *out_index);

/* Number of plugins loaded into the mixer.
 * Ownership: *out_count is the caller's.
 * Threads: any thread, unless another thread modifies the mixer.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */
LMX_API lmx_status lmx_mixer_plugin_count(const lmx_mixer *mixer, size_t *out_count);

/* Which string lmx_mixer_plugin_string returns. */
enum {
    LMX_PLUGIN_ID = 0,          /* reverse-DNS id */
    LMX_PLUGIN_VERSION = 1,     /* the plugin's own version */
    LMX_PLUGIN_DESCRIPTION = 2,
    LMX_PLUGIN_LICENSE = 3,
    LMX_PLUGIN_PATH = 4,        /* the file it was loaded from */
    LMX_PLUGIN_EXPERTS = 5      /* names of the experts it registered, one per line */
};

/* A string about plugin `index` (0 .. count-1) into `buf` (see the string convention above).
 * Ownership: `buf` is the caller's.
 * Threads: any thread, unless another thread modifies the mixer.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, unknown field), LMX_ERR_NOT_FOUND (index out
 * of range). */
LMX_API lmx_status lmx_mixer_plugin_string(const lmx_mixer *mixer, size_t index, uint32_t field, char *buf,
                                           size_t capacity, size_t *needed);

/* Unload the plugin with id `id`: its experts leave the mixer (and the router, if it routes to any
 * of them), so expert indices after them shift down. Sessions created earlier keep using them; the
 * library's shutdown runs and it is closed when the last of them is freed.
 * Ownership: `id` is borrowed for the call.
 * Threads: not with other uses of the same mixer.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle), LMX_ERR_NOT_FOUND. */
LMX_API lmx_status lmx_mixer_unload_plugin(lmx_mixer *mixer, const char *id);

/* ---------------------------------------------------------------------------------------------
 * Sessions: a KV cache, routing settings and a routing trace over one mixer
 * ------------------------------------------------------------------------------------------- */

typedef struct lmx_session_params {
    uint32_t struct_size; /* sizeof(lmx_session_params) */
    uint32_t n_ctx;       /* max tokens held (prompt + generated); 0 = the model's max_positions */
    uint32_t trace;       /* nonzero (default): record the routing trace */
    uint32_t n_threads;   /* threads for this session's evaluations; 0 (default) = the cores available */
} lmx_session_params;
/* Version 0 ended at trace: a shorter struct gets n_threads 0 (the cores available). */
#define LMX_SESSION_PARAMS_MIN_SIZE LMX_SIZE_THROUGH(lmx_session_params, trace)

/* Default session params.
 * Ownership: returned by value.
 * Threads: any thread.
 * Errors: none. */
LMX_API lmx_session_params lmx_session_params_default(void);

/* Create a session over a snapshot of `mixer`: the experts and router it has now (experts added to
 * the mixer later are not seen by this session). Routing starts as LMX_ROUTING_LEARNED when the
 * mixer has a router, else LMX_ROUTING_NONE.
 * Ownership: the session keeps what it uses alive; on success *out owns a new session: free it
 * with lmx_session_free. On failure *out is NULL. `params` is borrowed for the call.
 * Threads: any thread (several threads may create sessions from one mixer).
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, n_ctx above max_positions, n_threads above
 * 1024), LMX_ERR_ABI (struct_size below LMX_SESSION_PARAMS_MIN_SIZE), LMX_ERR_OUT_OF_MEMORY (the
 * KV cache cannot be reserved). */
LMX_API lmx_status lmx_session_create(const lmx_mixer *mixer, const lmx_session_params *params,
                                      lmx_session **out);

/* Free a session and its KV cache and trace.
 * Ownership: the handle is invalid afterwards; NULL, freed and foreign handles are no-ops.
 * Threads: any thread, once no other thread uses this session.
 * Errors: none. */
LMX_API void lmx_session_free(lmx_session *session);

/* Forget all processed tokens (KV cache, router context, trace); routing settings are kept.
 * Ownership: nothing is passed.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */
LMX_API lmx_status lmx_session_reset(lmx_session *session);

/* Number of tokens processed since creation or the last reset (the next token's position).
 * Ownership: *out_n_past is the caller's.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */
LMX_API lmx_status lmx_session_n_past(const lmx_session *session, size_t *out_n_past);

/* The settings the session was created with, as in effect: n_ctx (the model's max_positions when
 * 0 was asked), trace (0 or 1), n_threads (the cores available when 0 was asked). The caller sets
 * out->struct_size; only fields that fit are written.
 * Ownership: *out is the caller's.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle), LMX_ERR_ABI (struct_size below 4). */
LMX_API lmx_status lmx_session_get_params(const lmx_session *session, lmx_session_params *out);

/* Routing modes (see README, "Routing"). Values are fixed forever. */
enum {
    LMX_ROUTING_NONE = 0,    /* base model only */
    LMX_ROUTING_LEARNED = 1, /* router, sparse top-K, gates renormalised over the selected experts */
    LMX_ROUTING_SOFT = 2,    /* router, all experts, gates = router probabilities */
    LMX_ROUTING_FIXED = 3,   /* the weights of lmx_session_set_fixed_weights for every token */
    LMX_ROUTING_UNIFORM = 4  /* every expert with gate 1/E */
};

/* Set the routing mode for tokens evaluated from now on. LEARNED and SOFT need a router; FIXED
 * needs weights set first; UNIFORM needs an expert.
 * Ownership: nothing is passed.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, unknown mode), LMX_ERR_STATE. */
LMX_API lmx_status lmx_session_set_routing(lmx_session *session, uint32_t mode);

/* The routing mode in effect (an LMX_ROUTING_* value).
 * Ownership: *out_mode is the caller's.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */
LMX_API lmx_status lmx_session_get_routing(const lmx_session *session, uint32_t *out_mode);

/* Set the mode to LMX_ROUTING_FIXED with one weight per expert (index order of the mixer), used as
 * given for every token: a one-hot vector selects one adapter, weights summing to 1 make a static
 * merge.
 * Ownership: `weights` is copied.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, n != expert count, non-finite weight). */
LMX_API lmx_status lmx_session_set_fixed_weights(lmx_session *session, const float *weights,
                                                 size_t n_weights);

/* The weights last given to lmx_session_set_fixed_weights (kept when the mode changes since):
 * *n_weights receives their number (0 if none were set) and, when it is not 0, `weights` (room for
 * `capacity` floats) receives them. `weights` may be NULL with capacity 0 to ask for the number.
 * Ownership: `weights` and *n_weights are the caller's.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle), LMX_ERR_SHAPE (capacity too small). */
LMX_API lmx_status lmx_session_get_fixed_weights(const lmx_session *session, float *weights, size_t capacity,
                                                 size_t *n_weights);

/* Number of experts the learned router selects per token (1 .. expert count); 0 restores the router
 * file's top_k.
 * Ownership: nothing is passed.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, out of range). */
LMX_API lmx_status lmx_session_set_top_k(lmx_session *session, uint32_t top_k);

/* The top-K in effect: the value set, else the router file's, else the expert count.
 * Ownership: *out_top_k is the caller's.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */
LMX_API lmx_status lmx_session_get_top_k(const lmx_session *session, uint32_t *out_top_k);

/* Router softmax temperature (finite, > 0); 0 restores the router file's temperature.
 * Ownership: nothing is passed.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, negative or not finite). */
LMX_API lmx_status lmx_session_set_temperature(lmx_session *session, float temperature);

/* The router temperature in effect: the value set, else the router file's, else 1.
 * Ownership: *out_temperature is the caller's.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */
LMX_API lmx_status lmx_session_get_temperature(const lmx_session *session, float *out_temperature);

/* Asked before each layer of every evaluation (lmx_session_eval, the prompt and every token of
 * lmx_session_generate); return nonzero to abort the call with LMX_ERR_CANCELLED. */
typedef uint32_t (*lmx_abort_callback)(void *user_data);

/* Install an abort callback for this session's evaluations (NULL removes it). An aborted call
 * fails with LMX_ERR_CANCELLED and leaves the session exactly as it was before the call (KV cache
 * or recurrent state, router context, trace), as any failed call does; the session stays usable.
 * Ownership: user_data stays the host's; it must stay valid while the callback is installed.
 * Threads: one thread at a time per session; the callback runs on the thread evaluating.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL session, bad handle). */
LMX_API lmx_status lmx_session_set_abort_callback(lmx_session *session, lmx_abort_callback callback,
                                                  void *user_data);

/* Which logits lmx_session_eval writes. */
enum {
    LMX_LOGITS_NONE = 0, /* none (just fill the KV cache) */
    LMX_LOGITS_LAST = 1, /* the last position's: n_vocab floats */
    LMX_LOGITS_ALL = 2   /* every position's: n_tokens * n_vocab floats, row-major */
};

/* Process `n_tokens` tokens (prefill, or one token for decode) after those already in the session,
 * and write logits into `logits` (caller memory of `capacity` floats) as chosen by `which`. `logits`
 * may be NULL only with LMX_LOGITS_NONE. On failure the session is unchanged.
 * Ownership: `tokens` is borrowed for the call; `logits` is the caller's.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, zero tokens, token id >= n_vocab, unknown
 * which), LMX_ERR_SHAPE (capacity too small: the message says how many floats are needed),
 * LMX_ERR_STATE (context full), LMX_ERR_PLUGIN (a custom or plugin expert failed),
 * LMX_ERR_CANCELLED (the abort callback asked to stop). */
LMX_API lmx_status lmx_session_eval(lmx_session *session, const int32_t *tokens, size_t n_tokens,
                                    uint32_t which, float *logits, size_t capacity);

/* Called once per generated token with the token and the host's user_data. Return 0 to go on,
 * nonzero to stop generation after this token. Runs on the thread that called generate. */
typedef uint32_t (*lmx_token_callback)(int32_t token, void *user_data);

typedef struct lmx_generate_params {
    uint32_t struct_size;        /* sizeof(lmx_generate_params) */
    uint32_t max_tokens;         /* new tokens at most (default 32) */
    float temperature;           /* 0 = greedy (default); > 0 samples */
    uint32_t top_k;              /* keep the k most likely tokens before sampling; 0 = all */
    float top_p;                 /* nucleus: smallest set with probability >= top_p; 1 = all */
    uint64_t seed;               /* sampling seed; equal seeds give equal samples */
    const int32_t *stop_tokens;  /* generation ends when one of these is produced (not written); ids < n_vocab */
    size_t n_stop_tokens;
    lmx_token_callback on_token; /* optional */
    void *user_data;             /* passed to on_token */
} lmx_generate_params;
#define LMX_GENERATE_PARAMS_MIN_SIZE LMX_SIZE_THROUGH(lmx_generate_params, user_data)

/* Default generation params: greedy, 32 tokens.
 * Ownership: returned by value.
 * Threads: any thread.
 * Errors: none. */
LMX_API lmx_generate_params lmx_generate_params_default(void);

/* Evaluate `prompt` (may be empty when the session already holds tokens), then generate up to
 * params->max_tokens tokens into `out_tokens` (capacity `out_capacity`, which bounds max_tokens
 * too); `*n_out` receives the number written. Each generated token is evaluated in turn, so a later
 * call continues where this one ended. Ends at max tokens, a stop token, a callback asking to
 * stop, or a full context (not an error; the last token is then written but not evaluated).
 * On failure the session is as it was before the call and *n_out is 0 (tokens already passed to
 * on_token are void).
 * Ownership: `prompt` and `params` are borrowed for the call; `out_tokens` is the caller's.
 * Threads: one thread at a time per session; on_token runs on this thread.
 * Errors: as lmx_session_eval (LMX_ERR_INVALID_ARGUMENT, LMX_ERR_SHAPE, LMX_ERR_STATE,
 * LMX_ERR_PLUGIN, LMX_ERR_CANCELLED), and LMX_ERR_ABI (struct_size below
 * LMX_GENERATE_PARAMS_MIN_SIZE). */
LMX_API lmx_status lmx_session_generate(lmx_session *session, const int32_t *prompt, size_t n_prompt,
                                        const lmx_generate_params *params, int32_t *out_tokens,
                                        size_t out_capacity, size_t *n_out);

/* Size of the routing trace: one entry per processed token and layer, each `width` slots wide
 * (width = the session's expert count).
 * Ownership: the outputs are the caller's.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */
LMX_API lmx_status lmx_session_trace_size(const lmx_session *session, size_t *n_tokens,
                                          size_t *n_layers, size_t *width);

/* Copy the routing trace: `expert_ids` and `gates` receive n_tokens * n_layers * width values
 * (row-major [token][layer][slot]); each entry lists the experts applied to that token at that
 * layer, largest gate first, then -1 and 0.0 in unused slots. `tokens`, if not NULL, receives the
 * n_tokens token ids. `capacity` is the number of elements each of expert_ids and gates can hold.
 * Ownership: the buffers are the caller's.
 * Threads: one thread at a time per session.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle), LMX_ERR_SHAPE (capacity too small),
 * LMX_ERR_STATE (tracing off). */
LMX_API lmx_status lmx_session_trace_copy(const lmx_session *session, int32_t *expert_ids,
                                          float *gates, size_t capacity, int32_t *tokens,
                                          size_t tokens_capacity);

/* ---------------------------------------------------------------------------------------------
 * Tokenizers and text: Hugging Face tokenizer.json (or a GGUF file's tokenizer), chat templates,
 * and generation with text in and out (see README, "Text in the C API")
 * ------------------------------------------------------------------------------------------- */

/* Text given to these functions is `len` bytes of UTF-8 (not necessarily NUL-terminated; NULL is
 * allowed with len 0); bytes that are not valid UTF-8 are refused with LMX_ERR_INVALID_ARGUMENT
 * naming the byte offset. Text they return follows the string convention above. A tokenizer is
 * immutable and may be shared by any number of threads; a text stream is used by one thread at a
 * time. */

/* Load a tokenizer: a model folder (tokenizer.json, with the special tokens and chat template of
 * tokenizer_config.json, special_tokens_map.json and generation_config.json beside it) or a .gguf
 * file (the tokenizer in its metadata).
 * Ownership: `path` is borrowed for the call; on success *out owns a new tokenizer: free it with
 * lmx_tokenizer_free. On failure *out is NULL.
 * Threads: any thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, empty path), LMX_ERR_IO (missing or unreadable file),
 * LMX_ERR_FORMAT (corrupt file, a tokenizer component this library does not support),
 * LMX_ERR_OUT_OF_MEMORY. */
LMX_API lmx_status lmx_tokenizer_load(const char *path, lmx_tokenizer **out);

/* The model folder's own tokenizer (read on first use, then shared: every call returns a new
 * handle to the same immutable tokenizer). Its ids are checked against the model's vocabulary.
 * Ownership: on success *out owns a new handle: free it with lmx_tokenizer_free (the model may be
 * freed first). On failure *out is NULL.
 * Threads: any thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle), LMX_ERR_NOT_FOUND (the folder has no
 * tokenizer.json), LMX_ERR_IO, LMX_ERR_FORMAT, LMX_ERR_SHAPE (the tokenizer has ids the model's
 * vocabulary lacks), LMX_ERR_OUT_OF_MEMORY. */
LMX_API lmx_status lmx_model_tokenizer(const lmx_model *model, lmx_tokenizer **out);

/* Release a tokenizer handle.
 * Ownership: the handle is invalid afterwards; NULL, freed and foreign handles are no-ops.
 * Threads: any thread, once no other thread uses this handle.
 * Errors: none. */
LMX_API void lmx_tokenizer_free(lmx_tokenizer *tokenizer);

typedef struct lmx_tokenizer_info {
    uint32_t struct_size;       /* set by the caller to sizeof(lmx_tokenizer_info) */
    uint32_t n_vocab;           /* distinct ids: the vocabulary and the added tokens */
    int32_t bos_id;             /* beginning of sequence; -1 when none */
    int32_t eos_id;             /* end of sequence; -1 when none */
    int32_t pad_id;             /* padding; -1 when none */
    int32_t unk_id;             /* unknown token; -1 when none */
    uint32_t has_chat_template; /* 1 when lmx_chat_apply_template can be used */
    uint32_t n_end_of_turn;     /* ids that end a turn (lmx_tokenizer_end_of_turn) */
    int32_t max_id;             /* the largest id the tokenizer produces; -1 for an empty vocabulary */
} lmx_tokenizer_info;
/* Output struct: only the fields within the caller's struct_size are written. */
#define LMX_TOKENIZER_INFO_MIN_SIZE LMX_SIZE_THROUGH(lmx_tokenizer_info, struct_size)

/* Fill `*out` with the tokenizer's vocabulary size and special tokens. The caller sets
 * out->struct_size; only fields that fit are written.
 * Ownership: *out is the caller's; nothing is kept.
 * Threads: any thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle), LMX_ERR_ABI (struct_size below 4). */
LMX_API lmx_status lmx_tokenizer_get_info(const lmx_tokenizer *tokenizer, lmx_tokenizer_info *out);

/* The ids that end a turn, which lmx_session_generate_text stops at by default: EOS, the ids of
 * generation_config.json's eos_token_id and end-of-turn tokens such as <|eot_id|>. *n receives
 * their number; `ids` (room for `capacity`) receives them; `ids` may be NULL with capacity 0 to
 * ask for the number.
 * Ownership: `ids` and *n are the caller's.
 * Threads: any thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, NULL ids with capacity > 0), LMX_ERR_SHAPE
 * (capacity too small). */
LMX_API lmx_status lmx_tokenizer_end_of_turn(const lmx_tokenizer *tokenizer, int32_t *ids, size_t capacity,
                                             size_t *n);

/* Token ids of `text` (`len` bytes of UTF-8), as Hugging Face tokenizers' encode does: with
 * `add_special` nonzero the tokenizer's template adds BOS/EOS; with `parse_special` nonzero special
 * tokens written in the text (such as "<|eot_id|>") become their ids, otherwise their text is
 * tokenized as any other text, so that user text cannot forge control tokens. *n always receives
 * the number of ids; `ids` (room for `capacity`) receives them; `ids` may be NULL with capacity 0
 * to ask for the number (then nothing is written and LMX_OK is returned).
 * Ownership: `text` is borrowed for the call; `ids` and *n are the caller's.
 * Threads: any thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, NULL text with len > 0, NULL ids with
 * capacity > 0, invalid UTF-8: the message names the byte offset), LMX_ERR_SHAPE (capacity smaller
 * than *n). */
LMX_API lmx_status lmx_tokenize(const lmx_tokenizer *tokenizer, const char *text, size_t len, uint32_t add_special,
                                uint32_t parse_special, int32_t *ids, size_t capacity, size_t *n);

/* The bytes token `id` stands for, into `buf`: a piece of text that may be part of a UTF-8
 * character (byte tokens) and may contain a NUL byte (the token of byte 0), so a host uses
 * *needed (the number of bytes), not strlen. At most capacity - 1 bytes are written, then a NUL;
 * `buf` may be NULL with capacity 0 to ask for the length. Special tokens give their text.
 * Ownership: `buf` and *needed are the caller's.
 * Threads: any thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, an id the tokenizer does not have, NULL buf
 * with capacity > 0). */
LMX_API lmx_status lmx_token_to_piece(const lmx_tokenizer *tokenizer, int32_t id, char *buf, size_t capacity,
                                      size_t *needed);

/* The text of `n` ids (see the string convention above), as Hugging Face tokenizers' decode does:
 * bytes that do not form valid UTF-8 (a character cut between tokens) become U+FFFD, ids the
 * tokenizer does not have are skipped, and so are special tokens when `skip_special` is nonzero.
 * Ownership: `ids` is borrowed for the call; `buf` and *needed are the caller's.
 * Threads: any thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, NULL ids with n > 0, NULL buf with
 * capacity > 0). */
LMX_API lmx_status lmx_detokenize(const lmx_tokenizer *tokenizer, const int32_t *ids, size_t n, uint32_t skip_special,
                                  char *buf, size_t capacity, size_t *needed);

/* A streaming decoder for hosts with their own generation loop: push ids one at a time and get
 * back text that is always whole UTF-8 (a character whose bytes span several tokens comes out with
 * its last token). */
typedef struct lmx_text_stream lmx_text_stream;

/* A new stream over `tokenizer`; special tokens add no text when `skip_special` is nonzero.
 * Ownership: the stream keeps the tokenizer alive; on success *out owns a new stream: free it with
 * lmx_text_stream_free. On failure *out is NULL.
 * Threads: any thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */
LMX_API lmx_status lmx_text_stream_create(const lmx_tokenizer *tokenizer, uint32_t skip_special,
                                          lmx_text_stream **out);

/* Free a text stream (whatever it holds is dropped).
 * Ownership: the handle is invalid afterwards; NULL, freed and foreign handles are no-ops.
 * Threads: any thread, once no other thread uses this stream.
 * Errors: none. */
LMX_API void lmx_text_stream_free(lmx_text_stream *stream);

/* Push id `id`; `buf` receives the text that is now whole (often the token's own text; empty
 * while a character is cut, for a special token when skipping, and for an id the tokenizer does
 * not have), NUL-terminated, its length in *needed. Nothing is lost to a small buffer: when the
 * text and its NUL do not fit in `capacity`, the call fails with LMX_ERR_SHAPE, *needed says how
 * many bytes the text has, and the stream is left as it was, so the host pushes the same id again
 * with a larger buffer. `buf` may be NULL with capacity 0 (fits only empty text).
 * Ownership: `buf` and *needed are the caller's.
 * Threads: one thread at a time per stream.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, NULL buf with capacity > 0), LMX_ERR_SHAPE
 * (the text does not fit; nothing changed). */
LMX_API lmx_status lmx_text_stream_push(lmx_text_stream *stream, int32_t id, char *buf, size_t capacity,
                                        size_t *needed);

/* End the stream: `buf` receives what it held back (an unfinished character, as U+FFFD; usually
 * nothing) and the stream is empty again, ready for a new sequence. A small buffer fails as in
 * lmx_text_stream_push, leaving the stream as it was.
 * Ownership: `buf` and *needed are the caller's.
 * Threads: one thread at a time per stream.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, NULL buf with capacity > 0), LMX_ERR_SHAPE
 * (the text does not fit; nothing changed). */
LMX_API lmx_status lmx_text_stream_finish(lmx_text_stream *stream, char *buf, size_t capacity, size_t *needed);

/* One message of a conversation: UTF-8, NUL-terminated; role is typically "system", "user" or
 * "assistant". */
typedef struct lmx_chat_message {
    const char *role;
    const char *content;
} lmx_chat_message;

/* Render the tokenizer's chat template (tokenizer_config.json's chat_template, or the GGUF's) for
 * `n` messages into `buf` (see the string convention above), as transformers'
 * apply_chat_template(tokenize=False) does; with `add_generation_prompt` nonzero the template's
 * start of an assistant turn is appended. The template writes BOS itself: tokenize the result
 * with add_special 0 and parse_special 1.
 * Ownership: `messages` and their strings are borrowed for the call; `buf` and *needed are the
 * caller's.
 * Threads: any thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, a NULL or non-UTF-8 role or content: the
 * message names its index; a template that raises an error), LMX_ERR_STATE (the tokenizer has no
 * chat template), LMX_ERR_FORMAT (a template this library cannot parse or render). */
LMX_API lmx_status lmx_chat_apply_template(const lmx_tokenizer *tokenizer, const lmx_chat_message *messages, size_t n,
                                           uint32_t add_generation_prompt, char *buf, size_t capacity,
                                           size_t *needed);

/* Called with each piece of generated text as soon as it is whole UTF-8: `len` bytes at `text`
 * (NUL-terminated; a host uses len, as a piece may contain a NUL byte). Return 0 to go on, nonzero
 * to stop generation after the current token. Runs on the thread that called generate. */
typedef uint32_t (*lmx_text_callback)(const char *text, size_t len, void *user_data);

/* lmx_text_params.flags */
enum {
    LMX_TEXT_CHAT = 1u << 0,              /* the prompt is a user message: the chat template is applied
                                             to it alone with the generation prompt, tokenized without
                                             adding special tokens but recognising those the template
                                             writes (for a longer conversation render it with
                                             lmx_chat_apply_template and pass the text with
                                             LMX_TEXT_PARSE_SPECIAL | LMX_TEXT_NO_BOS) */
    LMX_TEXT_PARSE_SPECIAL = 1u << 1,     /* plain prompts: special tokens written in the prompt become
                                             their ids (off: user text cannot forge control tokens) */
    LMX_TEXT_NO_BOS = 1u << 2,            /* plain prompts: never add BOS/EOS (by default they are added
                                             when the session is empty) */
    LMX_TEXT_SHOW_SPECIAL = 1u << 3,      /* special tokens' text is part of the output */
    LMX_TEXT_IGNORE_END_OF_TURN = 1u << 4 /* do not stop at the tokenizer's end-of-turn ids */
};

typedef struct lmx_text_params {
    uint32_t struct_size;      /* sizeof(lmx_text_params) */
    uint32_t flags;            /* LMX_TEXT_* bits (default 0) */
    lmx_text_callback on_text; /* optional */
    void *user_data;           /* passed to on_text */
} lmx_text_params;
#define LMX_TEXT_PARAMS_MIN_SIZE LMX_SIZE_THROUGH(lmx_text_params, user_data)

/* Default text params: plain prompt, BOS added to an empty session, special tokens hidden, stop at
 * end of turn, no callback.
 * Ownership: returned by value.
 * Threads: any thread.
 * Errors: none. */
LMX_API lmx_text_params lmx_text_params_default(void);

/* Why lmx_session_generate_text ended. Values are fixed forever. */
enum {
    LMX_STOP_END_OF_TURN = 0,  /* a stop token: an end-of-turn id or one of gen->stop_tokens */
    LMX_STOP_MAX_TOKENS = 1,   /* gen->max_tokens tokens were generated */
    LMX_STOP_CALLBACK = 2,     /* on_text or gen->on_token asked to stop */
    LMX_STOP_CONTEXT_FULL = 3  /* the session's context is full */
};

/* Generate text: tokenize `prompt` (`prompt_len` bytes of UTF-8; may be empty to continue the
 * session) as text->flags say, then generate as lmx_session_generate does with `gen` (max_tokens,
 * sampling, stop_tokens and on_token still apply), also stopping at the tokenizer's end-of-turn
 * ids unless LMX_TEXT_IGNORE_END_OF_TURN. The stop token is neither evaluated nor part of the text.
 * text->on_text receives the text as it is produced. `out` receives the whole generated text
 * (string convention: truncated to fit on a UTF-8 boundary, LMX_OK), *needed its full length;
 * `out` may be NULL with capacity 0 (a host reading on_text). `stop_reason` (may be NULL) receives
 * an LMX_STOP_* value. An invalid prompt is refused before anything runs. On failure the session is
 * as it was before the call (text already passed to on_text is void).
 * Ownership: `prompt`, `gen` and `text` are borrowed for the call; `out`, *needed and *stop_reason
 * are the caller's. The session does not keep the tokenizer.
 * Threads: one thread at a time per session (the tokenizer may be shared); callbacks run on this
 * thread.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, invalid UTF-8 prompt: the message names the
 * byte offset; unknown flags; as lmx_session_generate), LMX_ERR_ABI (struct_size below
 * LMX_GENERATE_PARAMS_MIN_SIZE or LMX_TEXT_PARAMS_MIN_SIZE), LMX_ERR_SHAPE (the tokenizer has ids
 * the model's vocabulary lacks), LMX_ERR_STATE (LMX_TEXT_CHAT without a chat template; context
 * full; an empty prompt with an empty session), LMX_ERR_FORMAT (the chat template cannot be
 * rendered), LMX_ERR_PLUGIN, LMX_ERR_CANCELLED (the abort callback asked to stop). */
LMX_API lmx_status lmx_session_generate_text(lmx_session *session, const lmx_tokenizer *tokenizer, const char *prompt,
                                             size_t prompt_len, const lmx_generate_params *gen,
                                             const lmx_text_params *text, char *out, size_t capacity,
                                             size_t *needed, uint32_t *stop_reason);

/* ---------------------------------------------------------------------------------------------
 * Training: the router alone, or the router and LoRA experts together (see README, "Training")
 * ------------------------------------------------------------------------------------------- */

/* Add an untrained LoRA expert `name` for training: rank `rank`, scale lora_alpha / rank, on the
 * modules set in `module_mask` (bit LMX_MODULE_* for each) in every layer; A is drawn from `seed`
 * as PEFT initialises it and B is zero, so it changes nothing until trained. `out_index` as in
 * lmx_mixer_add_peft.
 * Ownership: `name` is borrowed for the call.
 * Threads: not with other uses of the same mixer.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, name taken, rank outside 1...4096, alpha <= 0,
 * empty or unknown mask bits), LMX_ERR_STATE (the mixer already has a router),
 * LMX_ERR_OUT_OF_MEMORY. */
LMX_API lmx_status lmx_mixer_add_untrained_lora(lmx_mixer *mixer, const char *name, uint32_t rank,
                                                float lora_alpha, uint32_t module_mask, uint64_t seed,
                                                size_t *out_index);

/* Training regimes and routing; values are fixed forever. */
enum {
    LMX_TRAIN_ROUTER = 0, /* train the router; experts frozen */
    LMX_TRAIN_JOINT = 1   /* train the router and every expert's LoRA A/B */
};
enum {
    LMX_TRAIN_ROUTING_TOPK = 0,  /* renormalised top-K gates; gradients through the chosen probabilities */
    LMX_TRAIN_ROUTING_SOFT = 1,  /* every expert, gate = router probability */
    LMX_TRAIN_ROUTING_LABEL = 2  /* one-hot by the example's "task" (an expert name); no router needed */
};

/* Training settings. Start from lmx_train_params_default() and change fields. Counts above
 * 2147483647 are refused (LMX_ERR_INVALID_ARGUMENT). */
typedef struct lmx_train_params {
    uint32_t struct_size;        /* sizeof(lmx_train_params) */
    uint32_t regime;             /* LMX_TRAIN_ROUTER (default) or LMX_TRAIN_JOINT */
    uint32_t routing;            /* LMX_TRAIN_ROUTING_* (default TOPK) */
    uint32_t router_context;     /* a new router reads the running context mean too (0 = token input) */
    uint32_t soft_steps;         /* with TOPK: route softly for the first N steps (0) */
    uint32_t top_k;              /* K of top-K and of the load report; 0 = the router's (2 for a new one) */
    float temperature;           /* router temperature; 0 = the router's (1 for a new one) */
    float alpha;                 /* L_RSL load-balance weight (0.01) */
    float lambda;                /* L_RSL entropy weight, signed (0) */
    float beta;                  /* L_preserve weight, joint regime (0) */
    const char *sensitive;       /* comma-separated experts L_preserve keeps near their start, or NULL */
    float learning_rate;         /* peak (1e-3) */
    float min_learning_rate;     /* end of the cosine (0) */
    uint32_t warmup_steps;       /* linear warmup (0) */
    float weight_decay;          /* AdamW, matrices only (0.01) */
    float adam_beta1, adam_beta2, adam_epsilon; /* 0.9, 0.999, 1e-8 */
    float clip_norm;             /* global gradient-norm clip, 0 = none (1) */
    uint32_t batch_size;         /* examples per step (16) */
    uint32_t epochs;             /* passes over the data unless `steps` (1) */
    uint32_t steps;              /* total steps; 0 = epochs x batches */
    uint64_t seed;               /* data order and new parameters (0) */
    uint32_t checkpoint_every;   /* checkpoint every N steps; 0 = at the end and on cancel */
    uint32_t resume;             /* nonzero: continue from out_dir's checkpoint if there is one */
    uint32_t n_threads;          /* 0 = the cores available */
    uint32_t eval_max_tokens;    /* most tokens generated per evaluation example (32) */
} lmx_train_params;
#define LMX_TRAIN_PARAMS_MIN_SIZE LMX_SIZE_THROUGH(lmx_train_params, eval_max_tokens)

/* Default training params.
 * Ownership: returned by value.
 * Threads: any thread.
 * Errors: none. */
LMX_API lmx_train_params lmx_train_params_default(void);

/* What the progress callback sees after every step. Pointers are valid during the call only.
 * `step` counts from 1, `epoch` from 0; n_experts and n_layers are 0 when the run has no router
 * (label routing without one). struct_size is the library's: a host built against a later header
 * reads fields beyond it only if LMX_HAS_FIELD(lmx_train_progress, progress, field). */
typedef struct lmx_train_progress {
    uint32_t struct_size;        /* sizeof(lmx_train_progress) as the library built it */
    uint32_t step, total_steps, epoch;
    double loss, cross_entropy, balance, entropy_term, preserve;
    float learning_rate;
    double grad_norm, tokens_per_s, elapsed_s, eta_s;
    size_t n_experts;
    const float *expert_load;    /* per expert: share of this step's top-K assignments (mean over layers) */
    size_t n_layers;
    const float *layer_entropy;  /* per layer: mean token entropy of the router (nats) */
} lmx_train_progress;

/* Called after every step, on the training thread; return nonzero to cancel (after the last step
 * the run is complete and nonzero changes nothing). */
typedef uint32_t (*lmx_train_progress_fn)(const lmx_train_progress *progress, void *user_data);

/* Train `mixer` on the JSON Lines file `data_path` (README, "Training data"); `eval_path` (may be
 * NULL) is evaluated per task at the end. With `out_dir` (may be NULL: nothing is written) the
 * router file, the experts as PEFT folders (joint), checkpoints and report.json are written there,
 * each file atomically. On success the mixer holds the trained router (and experts); sessions
 * created before keep what they had. Blocks until done; `progress` (may be NULL) can cancel:
 * LMX_ERR_CANCELLED, checkpoint saved in out_dir, mixer unchanged. Other threads may create
 * sessions meanwhile: they see the old router and experts until training succeeds; an expert added
 * to the mixer during the run makes the final hand-over fail (LMX_ERR_NOT_FOUND; the files in
 * out_dir are written). resume and checkpoint_every need out_dir.
 * Ownership: strings and `params` are borrowed for the call; user_data stays the host's.
 * Threads: blocks the calling thread; progress runs on it. Not with modifications of the mixer.
 * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle, params, data), LMX_ERR_ABI (struct_size below
 * LMX_TRAIN_PARAMS_MIN_SIZE), LMX_ERR_IO, LMX_ERR_FORMAT, LMX_ERR_SHAPE, LMX_ERR_STATE (no experts,
 * custom experts, a checkpoint from another run), LMX_ERR_NOT_FOUND (a `sensitive` name the mixer
 * lacks, an expert added during the run), LMX_ERR_CANCELLED, LMX_ERR_OUT_OF_MEMORY. */
LMX_API lmx_status lmx_mixer_train(lmx_mixer *mixer, const char *data_path, const char *eval_path,
                                   const char *out_dir, const lmx_train_params *params,
                                   lmx_train_progress_fn progress, void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* LORAMIXER_H */
