/*
 * loramixer_common.h — types shared by the host API (loramixer.h) and the plugin API
 * (loramixer_plugin.h). Included by both; not meant to be included on its own.
 */
#ifndef LORAMIXER_COMMON_H
#define LORAMIXER_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Growing structs. Every struct the caller fills begins with `uint32_t struct_size` (the plugin
 * descriptor: after abi_version); new fields are only ever appended. The library accepts any
 * struct_size from the struct's minimum size (LMX_<STRUCT>_MIN_SIZE: the end of the fields the
 * struct had in its first version) upward: it copies min(struct_size, its own sizeof) bytes over
 * the defaults, so a caller built against an older, shorter header gets the defaults for fields
 * appended since, and fields a newer header appended are ignored. Below the minimum the call fails
 * with LMX_ERR_ABI naming the struct. Structs the library fills (lmx_model_info,
 * lmx_plugin_model_info, lmx_session_params from lmx_session_get_params) are written only up to
 * the caller's struct_size (at least 4: struct_size itself). Structs the library hands over
 * (lmx_host_api, lmx_train_progress) carry the library's size: read a field only if struct_size
 * reaches its end (LMX_HAS_FIELD).
 * ------------------------------------------------------------------------------------------- */

/* Bytes from the start of `type` to the end of `member`. */
#define LMX_SIZE_THROUGH(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))
/* Nonzero if the struct at `ptr` (with a struct_size field) is large enough to hold `member`. */
#define LMX_HAS_FIELD(type, ptr, member) ((size_t)(ptr)->struct_size >= LMX_SIZE_THROUGH(type, member))

/* ---------------------------------------------------------------------------------------------
 * Integer types (one rule while the version is 0.x):
 *  - size_t: counts, lengths, capacities and indices of the API's own collections (expert and
 *    plugin indices, token and buffer counts), as arguments, outputs and array lengths in structs;
 *  - uint32_t: numbers of model things and small settings (layer, rank, n_ctx, top_k, steps,
 *    thread counts, features), enum values (LMX_MODULE_*, LMX_DTYPE_*, ...), and booleans,
 *    including callback answers (0 = false, nonzero = true);
 *  - int32_t: token ids and the trace's expert ids (values; -1 marks an empty trace slot);
 *  - lmx_status for statuses.
 * ------------------------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------------------------
 * Status codes. Values are fixed forever; new codes are only ever added at the end.
 * ------------------------------------------------------------------------------------------- */
typedef int32_t lmx_status;

enum {
    LMX_OK = 0,
    LMX_ERR_INVALID_ARGUMENT = -1, /* NULL pointer, zero length, out-of-range value, bad handle */
    LMX_ERR_IO = -2,               /* a file is missing or unreadable */
    LMX_ERR_FORMAT = -3,           /* a file is corrupt or not of the expected format */
    LMX_ERR_SHAPE = -4,            /* a tensor or buffer does not have the expected shape/size */
    LMX_ERR_PLUGIN = -5,           /* a plugin (or a custom expert's callback) failed */
    LMX_ERR_ABI = -6,              /* a struct or plugin of an incompatible ABI version */
    LMX_ERR_OUT_OF_MEMORY = -7,    /* an allocation failed or a size would overflow */
    LMX_ERR_STATE = -8,            /* the object is not in a state that allows the call */
    LMX_ERR_NOT_FOUND = -9,        /* a named expert, tensor, module or plugin does not exist */
    LMX_ERR_CANCELLED = -10        /* the host cancelled the operation: a training progress callback
                                      or a session's abort callback asked to stop */
};

/* Log levels of plugin messages (lmx_host_api.log) and of the host's log callback. */
enum {
    LMX_LOG_DEBUG = 0,
    LMX_LOG_INFO = 1,
    LMX_LOG_WARNING = 2,
    LMX_LOG_ERROR = 3
};

/* Projection modules that experts can adapt. Values are fixed forever. A model has either the
 * decoder-layer projections (llama, mistral, qwen2: Q..DOWN) or the Mamba mixer's four linear maps
 * (MambaForCausalLM, FalconMambaForCausalLM: IN..OUT); naming a module the model does not have is
 * LMX_ERR_INVALID_ARGUMENT. */
enum {
    LMX_MODULE_Q_PROJ = 0,
    LMX_MODULE_K_PROJ = 1,
    LMX_MODULE_V_PROJ = 2,
    LMX_MODULE_O_PROJ = 3,
    LMX_MODULE_GATE_PROJ = 4,
    LMX_MODULE_UP_PROJ = 5,
    LMX_MODULE_DOWN_PROJ = 6,
    LMX_MODULE_IN_PROJ = 7,   /* Mamba: d_model -> 2 x d_inner (the scan input and the gate) */
    LMX_MODULE_X_PROJ = 8,    /* Mamba: d_inner -> dt_rank + 2 x d_state (dt, B, C) */
    LMX_MODULE_DT_PROJ = 9,   /* Mamba: dt_rank -> d_inner (before softplus) */
    LMX_MODULE_OUT_PROJ = 10  /* Mamba: d_inner -> d_model */
};

/* Element types of tensors handed over from memory. Values are fixed forever. */
enum {
    LMX_DTYPE_F32 = 0,
    LMX_DTYPE_F16 = 1,
    LMX_DTYPE_BF16 = 2
};

/* One (layer, module) pair of a LoRA expert given from memory. Row-major, as in PEFT: `a` is
 * [rank x in_features], `b` is [out_features x rank], both of the descriptor's dtype. The caller
 * states in_features and out_features (the shapes its buffers have); they are checked against the
 * model's module before any element is read. */
typedef struct lmx_lora_tensor {
    uint32_t layer;        /* 0 .. n_layers-1 */
    uint32_t module;       /* an LMX_MODULE_* value */
    uint32_t in_features;  /* columns of a */
    uint32_t out_features; /* rows of b */
    const void *a;         /* rank * in_features elements */
    const void *b;         /* out_features * rank elements */
} lmx_lora_tensor;

/* A LoRA expert in memory. With `release` NULL the library copies every tensor during the call;
 * with `release` set it uses a and b in place (borrowed) until every session that uses the expert
 * is gone, then calls release(user_data) exactly once, on whatever thread drops the last use. */
typedef struct lmx_lora_desc {
    uint32_t struct_size;            /* sizeof(lmx_lora_desc) */
    uint32_t dtype;                  /* LMX_DTYPE_* of every a and b */
    uint32_t rank;                   /* r, > 0 */
    float alpha;                     /* lora_alpha; scale = alpha / rank (alpha / sqrt(rank) if rslora) */
    uint32_t use_rslora;             /* nonzero: rank-stabilised scaling */
    const lmx_lora_tensor *tensors;  /* n_tensors entries; each (layer, module) at most once */
    size_t n_tensors;                /* > 0 */
    void (*release)(void *user_data);/* NULL: copy; else borrow and release when done */
    void *user_data;                 /* passed to release */
} lmx_lora_desc;
/* Version 0 ended at n_tensors: a shorter desc copies its tensors (release NULL). */
#define LMX_LORA_DESC_MIN_SIZE LMX_SIZE_THROUGH(lmx_lora_desc, n_tensors)

/* A custom expert's forward: for `n_rows` input rows of one (layer, module), ADD the expert's
 * delta into `output` (the library passes it zeroed and then multiplies it by each row's gate, so
 * write the ungated delta). input is [n_rows x in_features], output [n_rows x out_features],
 * row-major f32, valid only during the call. Return LMX_OK, or an error status to fail the
 * evaluation (the session is left unchanged, the caller gets LMX_ERR_PLUGIN).
 * Ownership: input and output are the library's, valid during the call only.
 * Threads: called from the thread evaluating a session; several sessions may call it at once, so
 * it must be thread-safe. */
typedef lmx_status (*lmx_expert_forward_fn)(void *user_data, uint32_t layer, uint32_t module,
                                            const float *input, float *output, size_t n_rows,
                                            size_t in_features, size_t out_features);

/* A custom expert: code that computes its own delta. It adapts `modules` in `layers` (all layers
 * when n_layers is 0). For each module the expert states the input and output features it
 * expects; they are checked against the model. `destroy(user_data)` (optional) runs exactly once,
 * when nothing uses the expert any more. */
typedef struct lmx_custom_expert_desc {
    uint32_t struct_size;            /* sizeof(lmx_custom_expert_desc) */
    const uint32_t *modules;         /* n_modules LMX_MODULE_* values, each at most once */
    const uint32_t *in_features;     /* n_modules values: expected input features per module */
    const uint32_t *out_features;    /* n_modules values: expected output features per module */
    size_t n_modules;                /* > 0 */
    const uint32_t *layers;          /* n_layers layer indices, or NULL for every layer */
    size_t n_layers;
    lmx_expert_forward_fn forward;   /* required */
    void (*destroy)(void *user_data);/* optional */
    void *user_data;
} lmx_custom_expert_desc;
#define LMX_CUSTOM_EXPERT_DESC_MIN_SIZE LMX_SIZE_THROUGH(lmx_custom_expert_desc, user_data)

#ifdef __cplusplus
}
#endif

#endif /* LORAMIXER_COMMON_H */
