/*
 * mamba_test.c: Mamba and FalconMamba (MambaForCausalLM, FalconMambaForCausalLM) over the C API,
 * on the tiny oracle fixtures mamba_f32 and falcon_mamba_f32 (hidden 48, d_inner 96, state 8,
 * conv 4, dt_rank 3 / 5, 2 layers, vocab 128; see Tests/Fixtures/README.md).
 *
 *     mamba_test FIXTURES_DIR
 *
 * For each fixture:
 *  1. lmx_model_get_info: every field, d_state / d_conv / dt_rank included;
 *  2. lmx_model_module_shape of in_proj, x_proj, dt_proj, out_proj; a llama module and an unknown
 *     module are refused (LMX_ERR_INVALID_ARGUMENT naming the module and the architecture);
 *  3. e0, e1, e2 (PEFT) + router.safetensors: every routing mode's logits and the learned / context
 *     routers' traces against expected.safetensors (1e-4); PEFT folders of llama_f32 or of the
 *     other fixture (another dt_rank) refused;
 *  4. a session: prefill then decode token by token, reset, n_past, greedy generation (repeatable,
 *     continued with an empty prompt), failed calls (bad token, small buffer, full context, a
 *     failing custom expert, a generation failing mid-way) leave the recurrent state unchanged;
 *  5. lmx_mixer_add_lora from memory with e2's tensors (f32, bf16, f16), shape and module errors;
 *  6. lmx_mixer_add_custom on the Mamba modules: zero delta = base, a constant delta changes the
 *     logits, a LoRA computed by hand = lmx_mixer_add_lora / peft_e2, refusals;
 *  7. lmx_mixer_add_untrained_lora with the four Mamba bits (no effect before training), masks with
 *     llama bits refused;
 *  8. lmx_mixer_train: the router regime and the joint regime with an untrained expert (JSON Lines
 *     of token ids in a mkdtemp folder, removed at the end); files written, PEFT names
 *     base_model.model.backbone.layers.*.mixer.*, written files reload to the trained logits.
 * Then llama_f32: d_state = d_conv = dt_rank = 0 and every Mamba module refused.
 * Prints one line per check and "mamba_test: N passed, M failed"; exits non-zero on any failure.
 */
#include <stdarg.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loramixer.h"
#include "test_util.h"

#define N_TOKENS 12
#define VOCAB 128
#define LAYERS 2
#define D_MODEL 48
#define D_INNER 96
#define D_STATE 8
#define D_CONV 4
#define N_LOGITS ((size_t)N_TOKENS * VOCAB)
#define N_SSM 4 /* in_proj, x_proj, dt_proj, out_proj */
#define MAMBA_MASK ((1u << LMX_MODULE_IN_PROJ) | (1u << LMX_MODULE_X_PROJ) | (1u << LMX_MODULE_DT_PROJ) | \
                    (1u << LMX_MODULE_OUT_PROJ))

static char fixtures[1024];
static char tmp[256]; /* mkdtemp folder */

static const uint32_t ssm_modules[N_SSM] = {LMX_MODULE_IN_PROJ, LMX_MODULE_X_PROJ, LMX_MODULE_DT_PROJ,
                                            LMX_MODULE_OUT_PROJ};
static const char *const ssm_names[N_SSM] = {"in_proj", "x_proj", "dt_proj", "out_proj"};

/* One fixture folder and its oracle tensors. */
typedef struct {
    const char *name; /* "mamba_f32" */
    const char *arch; /* "MambaForCausalLM" */
    uint32_t dt_rank;
    char dir[1024];
    int32_t *tokens;
    float *base, *peft[3], *fixed_weights, *fixed, *uniform, *soft, *learned, *topk1, *temp2, *context;
    int32_t *learned_ids, *context_ids;
    float *learned_gates, *context_gates;
} fixture_t;

/* in/out features of Mamba module k (index into ssm_modules). */
static void ssm_shape(const fixture_t *fx, int k, uint32_t *in, uint32_t *out) {
    static const uint32_t in_f[N_SSM] = {D_MODEL, D_INNER, 0, D_INNER}, out_f[N_SSM] = {2 * D_INNER, 0, D_INNER, D_MODEL};
    *in = k == 2 ? fx->dt_rank : in_f[k];
    *out = k == 1 ? fx->dt_rank + 2 * D_STATE : out_f[k];
}

/* ------------------------------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------------------------------- */

static void expect_close(const char *what, const float *got, const float *want, double tolerance) {
    expect_close_n(what, got, want, N_LOGITS, tolerance);
}

static void expect_differ(const char *what, const float *a, const float *b, double at_least) {
    expect_differ_n(what, a, b, N_LOGITS, at_least);
}

static void check(int ok, const char *what, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(int ok, const char *what, const char *fmt, ...) {
    if (ok) {
        pass(what);
        return;
    }
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    fail(what, "%s", detail);
}

/* A setup step: reported only when it fails (the check that follows reports success). */
static int quiet_ok(const char *what, lmx_status st) {
    if (st == LMX_OK) return 1;
    fail(what, "%s (%d) \"%s\"", status_name(st), st, lmx_last_error());
    return 0;
}
#define QUIET_OK(what, call) (current_check = (what), quiet_ok((what), (call)))

/* tmp/<name>, created as a folder. */
static void case_dir(char *out, size_t size, const char *name) { make_dir(out, size, tmp, name); }

static lmx_session *new_session(const char *what, const lmx_mixer *mixer, uint32_t n_ctx) {
    return make_session(what, mixer, n_ctx, 1);
}

/* Resets `s`, sets the routing (`fixed` weights when not NULL, else `mode` unless ROUTING_KEEP) and
 * evaluates the fixture's 12 tokens into out[N_LOGITS]. Reports only a failure. */
static int session_logits(const char *what, lmx_session *s, const int32_t *tokens, int mode, const float *fixed,
                          size_t n_fixed, float *out) {
    return session_logits_of(what, s, tokens, N_TOKENS, mode, fixed, n_fixed, out, N_LOGITS);
}

/* Logits of a new session over `mixer` (its default routing, or fixed weights). */
static int mixer_logits(const char *what, const lmx_mixer *mixer, const int32_t *tokens, const float *fixed,
                        size_t n_fixed, float *out) {
    return mixer_logits_of(what, mixer, 1, tokens, N_TOKENS, fixed, n_fixed, out, N_LOGITS);
}

/* A mixer over `model` with the fixture experts e0 .. e<n-1>, and `router` (a file of the fixture
 * folder) unless NULL. */
static lmx_mixer *fixture_mixer(const fixture_t *fx, lmx_model *model, int n_experts, const char *router) {
    return fixture_mixer_in(fx->dir, fx->name, model, n_experts, router);
}

static size_t argmax(const float *row, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

/* ------------------------------------------------------------------------------------------------
 * e2's LoRA tensors, read from its adapter_model.safetensors
 * ---------------------------------------------------------------------------------------------- */

#define E2_RANK 4
#define E2_ALPHA 4.0f /* scale 1 */

typedef struct {
    float *a[LAYERS][N_SSM]; /* [rank x in] */
    float *b[LAYERS][N_SSM]; /* [out x rank] */
} lora_weights;

static int load_e2(const fixture_t *fx, lora_weights *w) {
    char path[1200];
    join(path, sizeof path, fx->dir, "adapters/e2/adapter_model.safetensors");
    memset(w, 0, sizeof *w);
    int ok = 1;
    for (int l = 0; l < LAYERS; l++) {
        for (int k = 0; k < N_SSM; k++) {
            uint32_t in, out;
            ssm_shape(fx, k, &in, &out);
            char name[256];
            size_t na = 0, nb = 0;
            snprintf(name, sizeof name, "base_model.model.backbone.layers.%d.mixer.%s.lora_A.weight", l, ssm_names[k]);
            w->a[l][k] = fixture_tensor(path, name, "F32", &na);
            snprintf(name, sizeof name, "base_model.model.backbone.layers.%d.mixer.%s.lora_B.weight", l, ssm_names[k]);
            w->b[l][k] = fixture_tensor(path, name, "F32", &nb);
            if (!w->a[l][k] || !w->b[l][k] || na != (size_t)E2_RANK * in || nb != (size_t)out * E2_RANK) ok = 0;
        }
    }
    return ok;
}

static void free_lora(lora_weights *w) {
    for (int l = 0; l < LAYERS; l++)
        for (int k = 0; k < N_SSM; k++) {
            free(w->a[l][k]);
            free(w->b[l][k]);
            w->a[l][k] = w->b[l][k] = NULL;
        }
}

/* float -> bfloat16 / IEEE half, round to nearest even (finite inputs). */
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    float a = fabsf(f);
    if (a >= 65520.0f) return sign | 0x7C00u;
    if (a < 6.103515625e-05f) { /* subnormal half: multiples of 2^-24 */
        float q = nearbyintf(a * 16777216.0f);
        return sign | (uint16_t)q;
    }
    uint32_t exp = ((u >> 23) & 0xFFu) - 127u + 15u, mant = u & 0x7FFFFFu;
    uint32_t h = exp << 10 | mant >> 13, rest = mant & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return sign | (uint16_t)h;
}

static float from_f16(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    float f;
    if (exp == 0) {
        f = ldexpf((float)mant, -24);
        return sign ? -f : f;
    }
    uint32_t u = sign | (exp - 15u + 127u) << 23 | mant << 13;
    memcpy(&f, &u, 4);
    return f;
}

/* ------------------------------------------------------------------------------------------------
 * 1 + 2. Model info and module shapes
 * ---------------------------------------------------------------------------------------------- */

static void test_info(const fixture_t *fx, lmx_model *model) {
    char what[256];
    lmx_model_info info;
    memset(&info, 0xEE, sizeof info);
    info.struct_size = sizeof info;
    snprintf(what, sizeof what, "%s: model_get_info", fx->name);
    if (!QUIET_OK(what, lmx_model_get_info(model, &info))) return;
    snprintf(what, sizeof what,
             "%s: info n_vocab 128, n_layers 2, d_model 48, n_heads 0, n_kv_heads 0, head_dim 0, d_ff 96 (d_inner), "
             "max_positions 1048576, architecture %s, d_state 8, d_conv 4, dt_rank %u",
             fx->name, fx->arch, fx->dt_rank);
    int ok = info.n_vocab == VOCAB && info.n_layers == LAYERS && info.d_model == D_MODEL && info.n_heads == 0 &&
             info.n_kv_heads == 0 && info.head_dim == 0 && info.d_ff == D_INNER && info.max_positions == 1048576 &&
             memchr(info.architecture, 0, sizeof info.architecture) && strcmp(info.architecture, fx->arch) == 0 &&
             info.d_state == D_STATE && info.d_conv == D_CONV && info.dt_rank == fx->dt_rank;
    check(ok, what,
          "vocab %u layers %u d_model %u heads %u kv %u head_dim %u d_ff %u max_pos %u arch '%.63s' d_state %u d_conv %u "
          "dt_rank %u",
          info.n_vocab, info.n_layers, info.d_model, info.n_heads, info.n_kv_heads, info.head_dim, info.d_ff,
          info.max_positions, info.architecture, info.d_state, info.d_conv, info.dt_rank);

    /* A struct of the previous header (ending at architecture): the new fields are not written. */
    union { lmx_model_info i; unsigned char bytes[sizeof(lmx_model_info)]; } old;
    memset(&old, 0xEE, sizeof old);
    old.i.struct_size = (uint32_t)offsetof(lmx_model_info, d_state);
    snprintf(what, sizeof what, "%s: model_get_info with struct_size ending at architecture (older header)", fx->name);
    if (QUIET_OK(what, lmx_model_get_info(model, &old.i))) {
        int untouched = 1;
        for (size_t k = offsetof(lmx_model_info, d_state); k < sizeof old; k++) untouched &= old.bytes[k] == 0xEE;
        snprintf(what, sizeof what, "%s: older struct: architecture written, d_state/d_conv/dt_rank untouched", fx->name);
        check(untouched && strcmp(old.i.architecture, fx->arch) == 0, what, "arch '%.63s', tail untouched %d",
              old.i.architecture, untouched);
    }
}

static void test_shapes(const fixture_t *fx, lmx_model *model) {
    char what[256];
    for (int k = 0; k < N_SSM; k++) {
        uint32_t in = 0, out = 0, want_in, want_out;
        ssm_shape(fx, k, &want_in, &want_out);
        snprintf(what, sizeof what, "%s: model_module_shape %s", fx->name, ssm_names[k]);
        if (EXPECT_OK(what, lmx_model_module_shape(model, ssm_modules[k], &in, &out))) {
            snprintf(what, sizeof what, "%s: %s is %u -> %u", fx->name, ssm_names[k], want_in, want_out);
            check(in == want_in && out == want_out, what, "got %u -> %u", in, out);
        }
    }
    static const char *const llama_names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    for (uint32_t m = LMX_MODULE_Q_PROJ; m <= LMX_MODULE_DOWN_PROJ; m++) {
        uint32_t in = 77, out = 77;
        snprintf(what, sizeof what, "%s: model_module_shape %s (a llama module)", fx->name, llama_names[m]);
        if (EXPECT_ERR(what, lmx_model_module_shape(model, m, &in, &out), LMX_ERR_INVALID_ARGUMENT, llama_names[m],
                       fx->arch)) {
            snprintf(what, sizeof what, "%s: refused %s leaves in/out features alone", fx->name, llama_names[m]);
            check(in == 77 && out == 77, what, "in %u out %u", in, out);
        }
    }
    uint32_t in = 0, out = 0;
    snprintf(what, sizeof what, "%s: model_module_shape 11 (no such module)", fx->name);
    EXPECT_ERR(what, lmx_model_module_shape(model, 11, &in, &out), LMX_ERR_INVALID_ARGUMENT, "module", "11");
}

static void test_llama(void) {
    char dir[1200], what[256];
    join(dir, sizeof dir, fixtures, "llama_f32");
    lmx_model *model = NULL;
    if (!EXPECT_OK("llama_f32: model_load", lmx_model_load(dir, NULL, &model))) return;
    lmx_model_info info;
    memset(&info, 0xEE, sizeof info);
    info.struct_size = sizeof info;
    if (EXPECT_OK("llama_f32: model_get_info", lmx_model_get_info(model, &info)))
        check(info.d_state == 0 && info.d_conv == 0 && info.dt_rank == 0 && info.n_heads == 4 && info.d_ff == 96 &&
                  strcmp(info.architecture, "LlamaForCausalLM") == 0,
              "llama_f32: d_state = d_conv = dt_rank = 0 (n_heads 4, d_ff 96, LlamaForCausalLM)",
              "d_state %u d_conv %u dt_rank %u heads %u d_ff %u arch '%.63s'", info.d_state, info.d_conv, info.dt_rank,
              info.n_heads, info.d_ff, info.architecture);
    for (int k = 0; k < N_SSM; k++) {
        uint32_t in = 0, out = 0;
        snprintf(what, sizeof what, "llama_f32: model_module_shape %s", ssm_names[k]);
        EXPECT_ERR(what, lmx_model_module_shape(model, ssm_modules[k], &in, &out), LMX_ERR_INVALID_ARGUMENT, ssm_names[k],
                   "LlamaForCausalLM");
    }
    lmx_mixer *mixer = NULL;
    if (EXPECT_OK("llama_f32: mixer_create", lmx_mixer_create(model, &mixer))) {
        size_t index = 777;
        EXPECT_ERR("llama_f32: add_untrained_lora with module_mask in_proj (0x80)",
                   lmx_mixer_add_untrained_lora(mixer, "u", 4, 8, 1u << LMX_MODULE_IN_PROJ, 0, &index),
                   LMX_ERR_INVALID_ARGUMENT, "module_mask", "in_proj", "LlamaForCausalLM", "q_proj");
        EXPECT_ERR("llama_f32: add_untrained_lora with the four Mamba bits (0x780)",
                   lmx_mixer_add_untrained_lora(mixer, "u", 4, 8, MAMBA_MASK, 0, &index), LMX_ERR_INVALID_ARGUMENT,
                   "module_mask", "in_proj", "LlamaForCausalLM");
        EXPECT_ERR("llama_f32: add_untrained_lora with q_proj | out_proj",
                   lmx_mixer_add_untrained_lora(mixer, "u", 4, 8, 1u | 1u << LMX_MODULE_OUT_PROJ, 0, &index),
                   LMX_ERR_INVALID_ARGUMENT, "module_mask", "out_proj", "LlamaForCausalLM");
        static float a[4 * 64], b[64 * 4];
        const lmx_lora_tensor t = {.layer = 0, .module = LMX_MODULE_IN_PROJ, .in_features = 64, .out_features = 64,
                                   .a = a, .b = b};
        const lmx_lora_desc d = {.struct_size = sizeof(lmx_lora_desc), .dtype = LMX_DTYPE_F32, .rank = 4, .alpha = 4,
                                 .tensors = &t, .n_tensors = 1};
        EXPECT_ERR("llama_f32: add_lora on in_proj", lmx_mixer_add_lora(mixer, "m", &d, &index), LMX_ERR_INVALID_ARGUMENT,
                   "in_proj", "LlamaForCausalLM");
        char mamba_e0[1200];
        join(mamba_e0, sizeof mamba_e0, fixtures, "mamba_f32/adapters/e0");
        EXPECT_ERR("llama_f32: add_peft of mamba_f32's e0 (in_proj, x_proj under backbone.layers)",
                   lmx_mixer_add_peft(mixer, "e0", mamba_e0, &index), LMX_ERR_FORMAT, "backbone.layers.0.mixer.",
                   "LlamaForCausalLM", "base_model.model.model.layers");
        size_t count = 99;
        check(lmx_mixer_expert_count(mixer, &count) == LMX_OK && count == 0 && index == 777,
              "llama_f32: the refused calls added nothing and left out_index alone", "count %zu, index %zu", count, index);
    }
    lmx_mixer_free(mixer);
    lmx_model_free(model);
}

/* ------------------------------------------------------------------------------------------------
 * 3. Routing modes and traces against the oracle
 * ---------------------------------------------------------------------------------------------- */

/* The trace of `s` (12 tokens evaluated, `width` experts) against oracle ids/gates [12][2][2]. */
static void expect_trace(const char *what, const lmx_session *s, const int32_t *tokens, const int32_t *want_ids,
                         const float *want_gates) {
    size_t nt = 0, nl = 0, width = 0;
    char line[512];
    current_check = what;
    if (lmx_session_trace_size(s, &nt, &nl, &width) != LMX_OK || nt != N_TOKENS || nl != LAYERS || width != 3) {
        fail(what, "trace size %zu x %zu x %zu, want 12 x 2 x 3 (%s)", nt, nl, width, lmx_last_error());
        return;
    }
    int32_t ids[N_TOKENS * LAYERS * 3], trace_tokens[N_TOKENS];
    float gates[N_TOKENS * LAYERS * 3];
    lmx_status st = lmx_session_trace_copy(s, ids, gates, N_TOKENS * LAYERS * 3, trace_tokens, N_TOKENS);
    if (st != LMX_OK) {
        fail(what, "trace_copy: %s \"%s\"", status_name(st), lmx_last_error());
        return;
    }
    trace_diff r = compare_trace(ids, gates, trace_tokens, tokens, want_ids, want_gates, N_TOKENS, LAYERS, 3, "token");
    snprintf(line, sizeof line, "%s: 12 x 2 x 3, ids match the oracle's top-2, gates within 1e-4 (max %.1e), slot 3 empty, tokens",
             what, r.gate_diff);
    check(!r.bad_ids && r.gate_diff <= 1e-4 && !r.bad_rest && !r.bad_tokens, line,
          "%d ids differ, gates max |diff| %.3e, %d third slots used, %d tokens differ", r.bad_ids, r.gate_diff, r.bad_rest,
          r.bad_tokens);
}

static void test_parity(const fixture_t *fx, lmx_model *model) {
    char what[256];
    lmx_mixer *mixer = NULL;
    if (!QUIET_OK(fx->name, lmx_mixer_create(model, &mixer))) return;
    for (int i = 0; i < 3; i++) {
        char name[8], rel[64], dir[1200];
        snprintf(name, sizeof name, "e%d", i);
        snprintf(rel, sizeof rel, "adapters/e%d", i);
        join(dir, sizeof dir, fx->dir, rel);
        size_t index = 777;
        snprintf(what, sizeof what, "%s: mixer_add_peft %s", fx->name, rel);
        if (EXPECT_OK(what, lmx_mixer_add_peft(mixer, name, dir, &index))) {
            snprintf(what, sizeof what, "%s: %s got index %d", fx->name, name, i);
            check(index == (size_t)i, what, "index %zu", index);
        }
    }
    char path[1200];
    join(path, sizeof path, fx->dir, "router.safetensors");
    snprintf(what, sizeof what, "%s: mixer_load_router router.safetensors", fx->name);
    if (!EXPECT_OK(what, lmx_mixer_load_router(mixer, path))) goto done;

    lmx_session *s = new_session(fx->name, mixer, 0);
    if (!s) goto done;
    float *x = malloc(N_LOGITS * sizeof(float));
    /* Default routing with a router: LEARNED. */
    snprintf(what, sizeof what, "%s: default routing (learned, top-2) = learned_logits", fx->name);
    if (session_logits(what, s, fx->tokens, ROUTING_KEEP, NULL, 0, x)) {
        expect_close(what, x, fx->learned, 1e-4);
        snprintf(what, sizeof what, "%s: learned trace", fx->name);
        expect_trace(what, s, fx->tokens, fx->learned_ids, fx->learned_gates);
    }
    snprintf(what, sizeof what, "%s: routing NONE = base_logits", fx->name);
    if (session_logits(what, s, fx->tokens, LMX_ROUTING_NONE, NULL, 0, x)) expect_close(what, x, fx->base, 1e-4);
    for (int e = 0; e < 3; e++) {
        float one_hot[3] = {0, 0, 0};
        one_hot[e] = 1;
        snprintf(what, sizeof what, "%s: fixed one-hot on e%d = peft_e%d_logits", fx->name, e, e);
        if (session_logits(what, s, fx->tokens, ROUTING_KEEP, one_hot, 3, x)) expect_close(what, x, fx->peft[e], 1e-4);
    }
    snprintf(what, sizeof what, "%s: fixed_weights = fixed_logits", fx->name);
    if (session_logits(what, s, fx->tokens, ROUTING_KEEP, fx->fixed_weights, 3, x)) expect_close(what, x, fx->fixed, 1e-4);
    snprintf(what, sizeof what, "%s: routing UNIFORM = uniform_logits", fx->name);
    if (session_logits(what, s, fx->tokens, LMX_ROUTING_UNIFORM, NULL, 0, x)) expect_close(what, x, fx->uniform, 1e-4);
    snprintf(what, sizeof what, "%s: routing SOFT = soft_logits", fx->name);
    if (session_logits(what, s, fx->tokens, LMX_ROUTING_SOFT, NULL, 0, x)) expect_close(what, x, fx->soft, 1e-4);
    snprintf(what, sizeof what, "%s: learned, top_k 1 = learned_topk1_logits", fx->name);
    if (QUIET_OK(what, lmx_session_set_top_k(s, 1)) &&
        session_logits(what, s, fx->tokens, LMX_ROUTING_LEARNED, NULL, 0, x))
        expect_close(what, x, fx->topk1, 1e-4);
    lmx_session_set_top_k(s, 0);
    snprintf(what, sizeof what, "%s: learned, temperature 2 = learned_temp2_logits", fx->name);
    if (QUIET_OK(what, lmx_session_set_temperature(s, 2.0f)) &&
        session_logits(what, s, fx->tokens, LMX_ROUTING_LEARNED, NULL, 0, x))
        expect_close(what, x, fx->temp2, 1e-4);
    lmx_session_free(s);

    /* The context router (its file lists the experts as e2, e0, e1: matched by name). */
    {
        lmx_mixer *cm = fixture_mixer(fx, model, 3, "router_context.safetensors");
        lmx_session *cs = cm ? new_session(fx->name, cm, 0) : NULL;
        snprintf(what, sizeof what, "%s: router_context.safetensors (learned) = context_logits", fx->name);
        if (cs && session_logits(what, cs, fx->tokens, ROUTING_KEEP, NULL, 0, x)) {
            expect_close(what, x, fx->context, 1e-4);
            snprintf(what, sizeof what, "%s: context trace", fx->name);
            expect_trace(what, cs, fx->tokens, fx->context_ids, fx->context_gates);
        }
        lmx_session_free(cs);
        lmx_mixer_free(cm);
    }
    free(x);
done:
    lmx_mixer_free(mixer);
}

/* PEFT folders of another family, or of a Mamba with another dt_rank, are refused. */
static void test_foreign_adapters(const fixture_t *fx, lmx_model *model) {
    char what[512], dir[1200];
    lmx_mixer *m = NULL;
    if (!QUIET_OK(fx->name, lmx_mixer_create(model, &m))) return;
    size_t index = 777;
    join(dir, sizeof dir, fixtures, "llama_f32/adapters/e0");
    snprintf(what, sizeof what, "%s: add_peft of llama_f32's e0 (q_proj ... under model.layers)", fx->name);
    EXPECT_ERR(what, lmx_mixer_add_peft(m, "e0", dir, &index), LMX_ERR_FORMAT, "base_model.model.model.layers", fx->arch,
               "backbone");
    /* x_proj is 96 -> dt_rank + 16 and dt_proj dt_rank -> 96: the other fixture's e2 does not fit. */
    const fixture_t other = {.dt_rank = fx->dt_rank == 3 ? 5 : 3};
    join(dir, sizeof dir, fixtures, fx->dt_rank == 3 ? "falcon_mamba_f32/adapters/e2" : "mamba_f32/adapters/e2");
    snprintf(what, sizeof what, "%s: add_peft of the e2 of a Mamba with dt_rank %u", fx->name, other.dt_rank);
    EXPECT_ERR(what, lmx_mixer_add_peft(m, "e2", dir, &index), LMX_ERR_SHAPE, "adapter_model.safetensors",
               "backbone.layers.", "has shape", "expected");
    size_t count = 99;
    snprintf(what, sizeof what, "%s: the refused adapters added nothing, out_index untouched", fx->name);
    check(lmx_mixer_expert_count(m, &count) == LMX_OK && count == 0 && index == 777, what, "count %zu, index %zu", count,
          index);
    lmx_mixer_free(m);
}

/* ------------------------------------------------------------------------------------------------
 * 4. Sessions: incremental evaluation, reset, generation, failed calls
 * ---------------------------------------------------------------------------------------------- */

/* Custom expert on in_proj (every layer) that adds zero, counts its calls and fails on demand. */
typedef struct {
    int calls, armed, fail_layer; /* armed: fail when called for fail_layer, after skip more calls */
    int skip;
    int bad;                      /* calls with unexpected arguments */
} failing_expert;

static lmx_status failing_forward(void *user_data, uint32_t layer, uint32_t module, const float *input, float *output,
                                  size_t n_rows, size_t in_features, size_t out_features) {
    failing_expert *f = user_data;
    f->calls++;
    if (module != LMX_MODULE_IN_PROJ || layer >= LAYERS || in_features != D_MODEL || out_features != 2 * D_INNER ||
        !input || !output || n_rows == 0)
        f->bad++;
    if (f->armed && (int)layer == f->fail_layer) {
        if (f->skip == 0) return -42;
        f->skip--;
    }
    return LMX_OK;
}

static uint32_t count_tokens(int32_t token, void *user_data) {
    (void)token;
    ++*(int *)user_data;
    return 0;
}

static void expect_n_past(const char *what, const lmx_session *s, size_t want) {
    size_t n = 999;
    lmx_status st = lmx_session_n_past(s, &n);
    char line[512];
    snprintf(line, sizeof line, "%s: n_past %zu", what, want);
    check(st == LMX_OK && n == want, line, "status %s, n_past %zu", status_name(st), n);
}

static void test_session(const fixture_t *fx, lmx_model *model) {
    char what[256];
    const int32_t *tok = fx->tokens;
    lmx_mixer *mixer = fixture_mixer(fx, model, 3, "router.safetensors");
    if (!mixer) return;
    lmx_session *s = new_session(fx->name, mixer, 0);
    float *x = malloc(N_LOGITS * sizeof(float));
    float row[VOCAB];
    if (!s) goto done;

    /* Prefill 5, then one token at a time; twice (the second after a reset). */
    for (int round = 0; round < 2; round++) {
        const char *when = round ? "after session_reset" : "new session";
        if (round) {
            snprintf(what, sizeof what, "%s: session_reset", fx->name);
            if (!QUIET_OK(what, lmx_session_reset(s))) break;
            snprintf(what, sizeof what, "%s: after reset", fx->name);
            expect_n_past(what, s, 0);
        }
        snprintf(what, sizeof what, "%s (%s): prefill 5 tokens, LMX_LOGITS_ALL", fx->name, when);
        if (!QUIET_OK(what, lmx_session_eval(s, tok, 5, LMX_LOGITS_ALL, x, 5 * VOCAB))) break;
        expect_close_n(what, x, fx->learned, 5 * VOCAB, 1e-4);
        expect_n_past(what, s, 5);
        double worst = 0;
        int ok = 1, bad_past = 0;
        for (int t = 5; t < N_TOKENS && ok; t++) {
            ok = lmx_session_eval(s, tok + t, 1, LMX_LOGITS_LAST, row, VOCAB) == LMX_OK;
            size_t n_past = 0;
            if (lmx_session_n_past(s, &n_past) != LMX_OK || n_past != (size_t)t + 1) bad_past++;
            double d = ok ? max_abs_diff(row, fx->learned + (size_t)t * VOCAB, VOCAB) : 0;
            if (!(d <= worst)) worst = d;
        }
        snprintf(what, sizeof what,
                 "%s (%s): decode tokens 5..11 one at a time = learned_logits rows, n_past 6..12 (max |diff| %.1e)",
                 fx->name, when, worst);
        check(ok && worst <= 1e-4 && !bad_past, what, "eval ok %d (%s), max |diff| %.3e, %d wrong n_past", ok,
              ok ? "" : lmx_last_error(), worst, bad_past);
    }

    /* LMX_LOGITS_NONE, then LAST for a batch. */
    if (lmx_session_reset(s) == LMX_OK) {
        snprintf(what, sizeof what, "%s: eval 7 tokens with LMX_LOGITS_NONE, then 5 with LMX_LOGITS_LAST = row 11",
                 fx->name);
        if (QUIET_OK(what, lmx_session_eval(s, tok, 7, LMX_LOGITS_NONE, NULL, 0)) &&
            QUIET_OK(what, lmx_session_eval(s, tok + 7, 5, LMX_LOGITS_LAST, row, VOCAB)))
            expect_close_n(what, row, fx->learned + 11 * VOCAB, VOCAB, 1e-4);
    }

    /* A longer sequence (80 tokens): one prefill, uneven chunks, and prefill 40 + decode 40 agree;
     * a session with 4 threads agrees with the 1-thread one. */
    {
        enum { LONG = 80 };
        int32_t seq[LONG];
        for (int i = 0; i < LONG; i++) seq[i] = (int32_t)((i * 37 + 11) % VOCAB);
        float *all = malloc((size_t)LONG * VOCAB * sizeof(float)), *parts = malloc((size_t)LONG * VOCAB * sizeof(float));
        snprintf(what, sizeof what, "%s: 80 tokens in one eval", fx->name);
        if (QUIET_OK(what, lmx_session_reset(s)) &&
            QUIET_OK(what, lmx_session_eval(s, seq, LONG, LMX_LOGITS_ALL, all, (size_t)LONG * VOCAB))) {
            static const int chunks[] = {1, 7, 16, 3, 33, 20};
            size_t at = 0;
            int ok = QUIET_OK(what, lmx_session_reset(s));
            for (size_t c = 0; ok && c < sizeof chunks / sizeof chunks[0]; c++) {
                ok = QUIET_OK(what, lmx_session_eval(s, seq + at, (size_t)chunks[c], LMX_LOGITS_ALL, parts + at * VOCAB,
                                                     (size_t)chunks[c] * VOCAB));
                at += (size_t)chunks[c];
            }
            snprintf(what, sizeof what, "%s: 80 tokens in chunks of 1, 7, 16, 3, 33, 20 = in one eval", fx->name);
            if (ok && at == LONG) expect_close_n(what, parts, all, (size_t)LONG * VOCAB, 1e-4);
            ok = QUIET_OK(what, lmx_session_reset(s)) &&
                 QUIET_OK(what, lmx_session_eval(s, seq, 40, LMX_LOGITS_NONE, NULL, 0));
            for (int t = 40; ok && t < LONG; t++)
                ok = QUIET_OK(what, lmx_session_eval(s, seq + t, 1, LMX_LOGITS_LAST, parts + (size_t)t * VOCAB, VOCAB));
            snprintf(what, sizeof what, "%s: 80 tokens as prefill 40 + 40 single-token decodes = in one eval", fx->name);
            if (ok) expect_close_n(what, parts + 40 * VOCAB, all + 40 * VOCAB, 40 * VOCAB, 1e-4);
            lmx_session_params sp = lmx_session_params_default();
            sp.n_threads = 4;
            lmx_session *s4 = NULL;
            snprintf(what, sizeof what, "%s: a session with n_threads 4 gives the 1-thread logits (80 tokens)", fx->name);
            if (QUIET_OK(what, lmx_session_create(mixer, &sp, &s4)) &&
                QUIET_OK(what, lmx_session_eval(s4, seq, LONG, LMX_LOGITS_ALL, parts, (size_t)LONG * VOCAB))) {
                expect_close_n(what, parts, all, (size_t)LONG * VOCAB, 1e-5);
                printf("info %s: n_threads 4 vs 1 over 80 tokens: %s\n", fx->name,
                       memcmp(parts, all, (size_t)LONG * VOCAB * sizeof(float)) ? "not bit-identical" : "bit-identical");
            }
            lmx_session_free(s4);
        }
        free(all);
        free(parts);
    }

    /* Failed calls in the middle of a sequence leave the state (conv history, SSM state) alone. */
    if (lmx_session_reset(s) == LMX_OK && lmx_session_eval(s, tok, 5, LMX_LOGITS_NONE, NULL, 0) == LMX_OK) {
        int32_t bad_batch[4] = {tok[5], tok[6], VOCAB, tok[7]};
        snprintf(what, sizeof what, "%s: eval of 4 tokens with id 128 third", fx->name);
        EXPECT_ERR(what, lmx_session_eval(s, bad_batch, 4, LMX_LOGITS_ALL, x, 4 * VOCAB), LMX_ERR_INVALID_ARGUMENT, "128");
        bad_batch[2] = -1;
        snprintf(what, sizeof what, "%s: eval of 4 tokens with id -1 third", fx->name);
        EXPECT_ERR(what, lmx_session_eval(s, bad_batch, 4, LMX_LOGITS_ALL, x, 4 * VOCAB), LMX_ERR_INVALID_ARGUMENT, "-1");
        snprintf(what, sizeof what, "%s: eval of 3 tokens, LMX_LOGITS_ALL into 2 rows", fx->name);
        EXPECT_ERR(what, lmx_session_eval(s, tok + 5, 3, LMX_LOGITS_ALL, x, 2 * VOCAB), LMX_ERR_SHAPE, "384");
        snprintf(what, sizeof what, "%s: after the failed evals", fx->name);
        expect_n_past(what, s, 5);
        snprintf(what, sizeof what, "%s: after the failed evals, tokens 5..11 = learned_logits rows 5..11", fx->name);
        if (QUIET_OK(what, lmx_session_eval(s, tok + 5, 7, LMX_LOGITS_ALL, x, 7 * VOCAB)))
            expect_close_n(what, x, fx->learned + 5 * VOCAB, 7 * VOCAB, 1e-4);
    }

    /* A full context (n_ctx 6): refused, the session unchanged. */
    {
        lmx_session *small = new_session(fx->name, mixer, 6);
        if (small) {
            snprintf(what, sizeof what, "%s: n_ctx 6: eval 5 tokens", fx->name);
            if (QUIET_OK(what, lmx_session_eval(small, tok, 5, LMX_LOGITS_NONE, NULL, 0))) {
                snprintf(what, sizeof what, "%s: n_ctx 6: eval 2 more tokens (context full)", fx->name);
                EXPECT_ERR(what, lmx_session_eval(small, tok + 5, 2, LMX_LOGITS_LAST, row, VOCAB), LMX_ERR_STATE, "6");
                snprintf(what, sizeof what, "%s: n_ctx 6: the 6th token after the refusal = learned row 5", fx->name);
                if (QUIET_OK(what, lmx_session_eval(small, tok + 5, 1, LMX_LOGITS_LAST, row, VOCAB)))
                    expect_close_n(what, row, fx->learned + 5 * VOCAB, VOCAB, 1e-4);
                snprintf(what, sizeof what, "%s: n_ctx 6: eval a 7th token", fx->name);
                EXPECT_ERR(what, lmx_session_eval(small, tok + 6, 1, LMX_LOGITS_LAST, row, VOCAB), LMX_ERR_STATE, "6");
            }
        }
        lmx_session_free(small);
    }

    /* Greedy generation. */
    {
        lmx_generate_params gp = lmx_generate_params_default();
        gp.max_tokens = 5;
        int32_t out1[16], out2[16], more[16], ten[16];
        size_t n1 = 0, n2 = 0, n3 = 0, n10 = 0;
        int ok = 1;
        current_check = "generate";
        snprintf(what, sizeof what, "%s: generate greedy 5 from the first 4 tokens", fx->name);
        ok &= QUIET_OK(what, lmx_session_reset(s)) && EXPECT_OK(what, lmx_session_generate(s, tok, 4, &gp, out1, 16, &n1));
        snprintf(what, sizeof what, "%s: after generate (4 prompt + 5 generated)", fx->name);
        if (ok) expect_n_past(what, s, 9);
        snprintf(what, sizeof what, "%s: generate with an empty prompt continues (5 more)", fx->name);
        ok &= EXPECT_OK(what, lmx_session_generate(s, NULL, 0, &gp, more, 16, &n3));
        snprintf(what, sizeof what, "%s: after the continued generate", fx->name);
        if (ok) expect_n_past(what, s, 14);
        snprintf(what, sizeof what, "%s: reset + generate greedy 5 again", fx->name);
        ok &= QUIET_OK(what, lmx_session_reset(s)) && EXPECT_OK(what, lmx_session_generate(s, tok, 4, &gp, out2, 16, &n2));
        gp.max_tokens = 10;
        snprintf(what, sizeof what, "%s: reset + generate greedy 10", fx->name);
        ok &= QUIET_OK(what, lmx_session_reset(s)) && EXPECT_OK(what, lmx_session_generate(s, tok, 4, &gp, ten, 16, &n10));
        if (ok) {
            printf("info %s: greedy tokens %d %d %d %d %d | %d %d %d %d %d\n", fx->name, out1[0], out1[1], out1[2],
                   out1[3], out1[4], more[0], more[1], more[2], more[3], more[4]);
            snprintf(what, sizeof what, "%s: greedy generate from a reset is repeatable (5 tokens)", fx->name);
            check(n1 == 5 && n2 == 5 && memcmp(out1, out2, 5 * sizeof(int32_t)) == 0, what, "n %zu / %zu, tokens differ",
                  n1, n2);
            snprintf(what, sizeof what, "%s: the first generated token is the argmax of learned_logits row 3", fx->name);
            check(n1 >= 1 && (size_t)out1[0] == argmax(fx->learned + 3 * VOCAB, VOCAB), what, "token %d, argmax %zu",
                  n1 ? out1[0] : -1, argmax(fx->learned + 3 * VOCAB, VOCAB));
            snprintf(what, sizeof what, "%s: generate 5 + generate 5 with an empty prompt = generate 10", fx->name);
            check(n3 == 5 && n10 == 10 && memcmp(ten, out1, 5 * sizeof(int32_t)) == 0 &&
                      memcmp(ten + 5, more, 5 * sizeof(int32_t)) == 0,
                  what, "n %zu + %zu vs %zu", n1, n3, n10);
        }
    }

    /* A custom expert that fails inside layer 1 (after layer 0 ran): the eval and a generation
     * that fails mid-way leave the session as before the call. */
    {
        lmx_mixer *fm = fixture_mixer(fx, model, 1, NULL); /* e0 */
        failing_expert f = {0};
        static const uint32_t in_proj[1] = {LMX_MODULE_IN_PROJ}, in48[1] = {D_MODEL}, out192[1] = {2 * D_INNER};
        const lmx_custom_expert_desc d = {.struct_size = sizeof(lmx_custom_expert_desc), .modules = in_proj,
                                          .in_features = in48, .out_features = out192, .n_modules = 1,
                                          .forward = failing_forward, .user_data = &f};
        static const float both[2] = {1, 1};
        lmx_session *fs = NULL;
        snprintf(what, sizeof what, "%s: add_custom 'failing' (in_proj, adds zero) next to e0", fx->name);
        if (fm && EXPECT_OK(what, lmx_mixer_add_custom(fm, "failing", &d, NULL)) &&
            (fs = new_session(fx->name, fm, 0)) && EXPECT_OK(what, lmx_session_set_fixed_weights(fs, both, 2))) {
            snprintf(what, sizeof what, "%s: fixed {e0: 1, failing: 1}: prefill 5 = peft_e0 rows 0..4 (zero delta)",
                     fx->name);
            if (QUIET_OK(what, lmx_session_eval(fs, tok, 5, LMX_LOGITS_ALL, x, 5 * VOCAB)))
                expect_close_n(what, x, fx->peft[0], 5 * VOCAB, 1e-4);
            f.armed = 1;
            f.fail_layer = 1;
            f.skip = 0;
            int calls_before = f.calls;
            snprintf(what, sizeof what, "%s: eval 4 tokens, forward fails in layer 1", fx->name);
            EXPECT_ERR(what, lmx_session_eval(fs, tok + 5, 4, LMX_LOGITS_ALL, x, 4 * VOCAB), LMX_ERR_PLUGIN, "failing",
                       "-42");
            snprintf(what, sizeof what, "%s: the failing eval ran layer 0's forward before layer 1's", fx->name);
            check(f.calls >= calls_before + 2, what, "%d calls", f.calls - calls_before);
            snprintf(what, sizeof what, "%s: after the failed eval", fx->name);
            expect_n_past(what, fs, 5);

            /* Generation failing at the 3rd decode pass (after 2 tokens were passed to on_token). */
            lmx_generate_params gp = lmx_generate_params_default();
            int seen = 0;
            gp.max_tokens = 6;
            gp.on_token = count_tokens;
            gp.user_data = &seen;
            int32_t out[8];
            size_t n_out = 99;
            f.skip = 3; /* layer-1 calls: prompt pass, 2 decode passes; the 4th fails */
            snprintf(what, sizeof what, "%s: generate from a 2-token prompt fails at the 3rd decode pass", fx->name);
            EXPECT_ERR(what, lmx_session_generate(fs, tok + 5, 2, &gp, out, 8, &n_out), LMX_ERR_PLUGIN, "failing", "-42");
            snprintf(what, sizeof what, "%s: the failed generate had passed tokens to on_token; n_out 0", fx->name);
            check(seen >= 2 && n_out == 0, what, "on_token saw %d tokens, n_out %zu", seen, n_out);
            snprintf(what, sizeof what, "%s: after the failed generate", fx->name);
            expect_n_past(what, fs, 5);
            f.armed = 0;
            snprintf(what, sizeof what, "%s: after both failures, tokens 5..11 = peft_e0 rows 5..11", fx->name);
            if (QUIET_OK(what, lmx_session_eval(fs, tok + 5, 7, LMX_LOGITS_ALL, x, 7 * VOCAB)))
                expect_close_n(what, x, fx->peft[0] + 5 * VOCAB, 7 * VOCAB, 1e-4);
            snprintf(what, sizeof what, "%s: the failing expert saw in_proj, layers 0..1, 48 -> 192, rows > 0", fx->name);
            check(f.bad == 0 && f.calls > 0, what, "%d of %d calls with unexpected arguments", f.bad, f.calls);
        }
        lmx_session_free(fs);
        lmx_mixer_free(fm);
    }
done:
    lmx_session_free(s);
    lmx_mixer_free(mixer);
    free(x);
}

/* ------------------------------------------------------------------------------------------------
 * 5. LoRA experts from memory
 * ---------------------------------------------------------------------------------------------- */

/* Tensors of `w` for modules with bit k set in `which` (bit k = ssm_modules[k]), both layers. */
static size_t lora_tensors(const fixture_t *fx, const lora_weights *w, unsigned which, const void *const a[LAYERS][N_SSM],
                           const void *const b[LAYERS][N_SSM], lmx_lora_tensor *out) {
    size_t n = 0;
    for (int l = 0; l < LAYERS; l++)
        for (int k = 0; k < N_SSM; k++) {
            if (!(which & 1u << k)) continue;
            uint32_t in, of;
            ssm_shape(fx, k, &in, &of);
            out[n++] = (lmx_lora_tensor){.layer = (uint32_t)l, .module = ssm_modules[k], .in_features = in,
                                         .out_features = of, .a = a ? a[l][k] : w->a[l][k], .b = b ? b[l][k] : w->b[l][k]};
        }
    return n;
}

static lmx_lora_desc e2_desc(uint32_t dtype, const lmx_lora_tensor *t, size_t n) {
    return (lmx_lora_desc){.struct_size = sizeof(lmx_lora_desc), .dtype = dtype, .rank = E2_RANK, .alpha = E2_ALPHA,
                           .use_rslora = 0, .tensors = t, .n_tensors = n};
}

/* Adds `desc` as expert `name` to a fresh mixer and evaluates it with fixed weight 1. */
static int lora_logits(const char *what, const fixture_t *fx, lmx_model *model, const char *name, const lmx_lora_desc *d,
                       float *out) {
    lmx_mixer *m = NULL;
    int ok = QUIET_OK(what, lmx_mixer_create(model, &m)) && QUIET_OK(what, lmx_mixer_add_lora(m, name, d, NULL));
    static const float one[1] = {1};
    ok = ok && mixer_logits(what, m, fx->tokens, one, 1, out);
    lmx_mixer_free(m);
    return ok;
}

static void test_memory_lora(const fixture_t *fx, lmx_model *model, const lora_weights *w) {
    char what[256];
    lmx_lora_tensor t[LAYERS * N_SSM];
    float *x = malloc(N_LOGITS * sizeof(float)), *y = malloc(N_LOGITS * sizeof(float));

    /* f32, all four modules: the PEFT expert e2 (r 4, alpha 4, scale 1). */
    size_t n = lora_tensors(fx, w, 0xF, NULL, NULL, t);
    lmx_lora_desc d = e2_desc(LMX_DTYPE_F32, t, n);
    snprintf(what, sizeof what, "%s: add_lora f32 with e2's 16 tensors (4 modules x 2 layers) = peft_e2_logits", fx->name);
    if (lora_logits(what, fx, model, "m", &d, x)) expect_close(what, x, fx->peft[2], 1e-4);

    /* bf16 and f16: the same values rounded; equal to f32 tensors holding the rounded values. */
    for (int half = 0; half < 2; half++) {
        const char *dt = half ? "f16" : "bf16";
        uint16_t *ha[LAYERS][N_SSM], *hb[LAYERS][N_SSM];
        float *ra[LAYERS][N_SSM], *rb[LAYERS][N_SSM];
        for (int l = 0; l < LAYERS; l++)
            for (int k = 0; k < N_SSM; k++) {
                uint32_t in, of;
                ssm_shape(fx, k, &in, &of);
                size_t na = (size_t)E2_RANK * in, nb = (size_t)of * E2_RANK;
                ha[l][k] = malloc(na * 2);
                hb[l][k] = malloc(nb * 2);
                ra[l][k] = malloc(na * 4);
                rb[l][k] = malloc(nb * 4);
                for (size_t i = 0; i < na; i++) {
                    ha[l][k][i] = half ? to_f16(w->a[l][k][i]) : to_bf16(w->a[l][k][i]);
                    ra[l][k][i] = half ? from_f16(ha[l][k][i]) : from_bf16(ha[l][k][i]);
                }
                for (size_t i = 0; i < nb; i++) {
                    hb[l][k][i] = half ? to_f16(w->b[l][k][i]) : to_bf16(w->b[l][k][i]);
                    rb[l][k][i] = half ? from_f16(hb[l][k][i]) : from_bf16(hb[l][k][i]);
                }
            }
        const void *pa[LAYERS][N_SSM], *pb[LAYERS][N_SSM];
        for (int l = 0; l < LAYERS; l++)
            for (int k = 0; k < N_SSM; k++) {
                pa[l][k] = ha[l][k];
                pb[l][k] = hb[l][k];
            }
        n = lora_tensors(fx, w, 0xF, pa, pb, t);
        d = e2_desc(half ? LMX_DTYPE_F16 : LMX_DTYPE_BF16, t, n);
        snprintf(what, sizeof what, "%s: add_lora %s with e2's tensors", fx->name, dt);
        int ok = lora_logits(what, fx, model, "m", &d, x);
        for (int l = 0; l < LAYERS; l++)
            for (int k = 0; k < N_SSM; k++) {
                pa[l][k] = ra[l][k];
                pb[l][k] = rb[l][k];
            }
        n = lora_tensors(fx, w, 0xF, pa, pb, t);
        d = e2_desc(LMX_DTYPE_F32, t, n);
        snprintf(what, sizeof what, "%s: add_lora f32 with e2's tensors rounded to %s", fx->name, dt);
        ok = ok && lora_logits(what, fx, model, "m", &d, y);
        if (ok) {
            snprintf(what, sizeof what, "%s: add_lora %s = f32 holding the same rounded values", fx->name, dt);
            expect_close(what, x, y, 1e-5);
            snprintf(what, sizeof what, "%s: add_lora %s close to peft_e2_logits (rounding only)", fx->name, dt);
            expect_close(what, x, fx->peft[2], half ? 2e-3 : 2e-2);
        }
        for (int l = 0; l < LAYERS; l++)
            for (int k = 0; k < N_SSM; k++) {
                free(ha[l][k]);
                free(hb[l][k]);
                free(ra[l][k]);
                free(rb[l][k]);
            }
    }

    /* in_proj + out_proj only, f32: has an effect (and is the reference for the custom expert in 6). */
    n = lora_tensors(fx, w, 0x9, NULL, NULL, t);
    d = e2_desc(LMX_DTYPE_F32, t, n);
    snprintf(what, sizeof what, "%s: add_lora f32 with e2's in_proj + out_proj only", fx->name);
    if (lora_logits(what, fx, model, "m", &d, x)) {
        expect_differ(what, x, fx->base, 1e-3);
        snprintf(what, sizeof what, "%s: in_proj + out_proj only differs from all four modules", fx->name);
        expect_differ(what, x, fx->peft[2], 1e-4);
    }

    /* Refusals. */
    lmx_mixer *m = NULL;
    if (QUIET_OK(fx->name, lmx_mixer_create(model, &m))) {
        size_t index = 777;
        for (int k = 0; k < N_SSM; k++) {
            uint32_t in, of;
            ssm_shape(fx, k, &in, &of);
            char in_s[16], out_s[16];
            snprintf(in_s, sizeof in_s, "%u", in);
            snprintf(out_s, sizeof out_s, "%u", of);
            n = lora_tensors(fx, w, 0xF, NULL, NULL, t);
            lmx_lora_tensor *one = &t[4 + k]; /* layer 1, module k */
            one->in_features = in + 1;
            d = e2_desc(LMX_DTYPE_F32, t, n);
            snprintf(what, sizeof what, "%s: add_lora with layer 1 %s declaring in_features %u (model: %u)", fx->name,
                     ssm_names[k], in + 1, in);
            EXPECT_ERR(what, lmx_mixer_add_lora(m, "m", &d, &index), LMX_ERR_SHAPE, ssm_names[k], in_s);
            one->in_features = in;
            one->out_features = of - 1;
            snprintf(what, sizeof what, "%s: add_lora with layer 1 %s declaring out_features %u (model: %u)", fx->name,
                     ssm_names[k], of - 1, of);
            EXPECT_ERR(what, lmx_mixer_add_lora(m, "m", &d, &index), LMX_ERR_SHAPE, ssm_names[k], out_s);
        }
        n = lora_tensors(fx, w, 0xF, NULL, NULL, t);
        t[0].module = LMX_MODULE_Q_PROJ;
        d = e2_desc(LMX_DTYPE_F32, t, n);
        snprintf(what, sizeof what, "%s: add_lora with a q_proj tensor", fx->name);
        EXPECT_ERR(what, lmx_mixer_add_lora(m, "m", &d, &index), LMX_ERR_INVALID_ARGUMENT, "q_proj", fx->arch);
        t[0].module = LMX_MODULE_DOWN_PROJ;
        t[0].in_features = D_INNER;
        t[0].out_features = D_MODEL;
        snprintf(what, sizeof what, "%s: add_lora with a down_proj tensor of out_proj's shape", fx->name);
        EXPECT_ERR(what, lmx_mixer_add_lora(m, "m", &d, &index), LMX_ERR_INVALID_ARGUMENT, "down_proj", fx->arch);
        n = lora_tensors(fx, w, 0xF, NULL, NULL, t);
        t[0].module = 11;
        snprintf(what, sizeof what, "%s: add_lora with module 11", fx->name);
        EXPECT_ERR(what, lmx_mixer_add_lora(m, "m", &d, &index), LMX_ERR_INVALID_ARGUMENT, "module", "11");
        n = lora_tensors(fx, w, 0xF, NULL, NULL, t);
        t[4].layer = 2;
        snprintf(what, sizeof what, "%s: add_lora with layer 2 (2 layers)", fx->name);
        EXPECT_ERR(what, lmx_mixer_add_lora(m, "m", &d, &index), LMX_ERR_SHAPE, "layer 2", "in_proj");
        size_t count = 99;
        snprintf(what, sizeof what, "%s: refused add_lora calls added nothing, out_index untouched", fx->name);
        check(lmx_mixer_expert_count(m, &count) == LMX_OK && count == 0 && index == 777, what, "count %zu, index %zu", count,
              index);
    }
    lmx_mixer_free(m);
    free(x);
    free(y);
}

/* ------------------------------------------------------------------------------------------------
 * 6. Custom experts
 * ---------------------------------------------------------------------------------------------- */

/* A custom expert: `kind` 0 adds zero, 1 adds a constant vector, 2 computes e2's LoRA by hand.
 * Declares the modules with bit k set in `which`. */
typedef struct {
    const fixture_t *fx;
    const lora_weights *w;
    int kind;
    unsigned which;
    int calls, bad, dirty, destroyed;
    char first_bad[256];
} custom_expert;

static lmx_status custom_forward(void *user_data, uint32_t layer, uint32_t module, const float *input, float *output,
                                 size_t n_rows, size_t in_features, size_t out_features) {
    custom_expert *c = user_data;
    c->calls++;
    int k = module_index(ssm_modules, N_SSM, module);
    if (k >= 0 && !(c->which & 1u << k)) k = -1; /* a module the expert does not declare */
    uint32_t want_in = 0, want_out = 0;
    if (k >= 0) ssm_shape(c->fx, k, &want_in, &want_out);
    if (k < 0 || layer >= LAYERS || in_features != want_in || out_features != want_out || n_rows == 0 || !input ||
        !output) {
        if (!c->bad++)
            snprintf(c->first_bad, sizeof c->first_bad, "layer %u module %u in %zu out %zu rows %zu", layer, module,
                     in_features, out_features, n_rows);
        return LMX_ERR_INVALID_ARGUMENT;
    }
    for (size_t r = 0; r < n_rows; r++) {
        const float *xr = input + r * in_features;
        float *yr = output + r * out_features;
        for (size_t j = 0; j < out_features; j++)
            if (yr[j] != 0.0f) c->dirty++;
        if (c->kind == 1) {
            for (size_t j = 0; j < out_features; j++) yr[j] += 0.05f * (float)((int)(j % 7) - 3);
        } else if (c->kind == 2) {
            lora_row(c->w->a[layer][k], c->w->b[layer][k], E2_RANK, E2_ALPHA / E2_RANK, xr, yr, in_features,
                     out_features);
        }
    }
    return LMX_OK;
}

static void custom_destroy(void *user_data) { ((custom_expert *)user_data)->destroyed++; }

typedef struct {
    uint32_t modules[N_SSM], in[N_SSM], out[N_SSM];
    lmx_custom_expert_desc d;
} custom_decl;

static void custom_declare(custom_decl *cd, custom_expert *c) {
    size_t n = 0;
    for (int k = 0; k < N_SSM; k++) {
        if (!(c->which & 1u << k)) continue;
        cd->modules[n] = ssm_modules[k];
        ssm_shape(c->fx, k, &cd->in[n], &cd->out[n]);
        n++;
    }
    cd->d = (lmx_custom_expert_desc){.struct_size = sizeof(lmx_custom_expert_desc), .modules = cd->modules,
                                     .in_features = cd->in, .out_features = cd->out, .n_modules = n,
                                     .forward = custom_forward, .destroy = custom_destroy, .user_data = c};
}

/* Logits of a fresh mixer holding only custom expert `c`, fixed weight 1; 0 on failure. */
static int custom_logits(const char *what, lmx_model *model, custom_expert *c, const int32_t *tokens, float *out) {
    custom_decl cd;
    custom_declare(&cd, c);
    lmx_mixer *m = NULL;
    int ok = QUIET_OK(what, lmx_mixer_create(model, &m)) && QUIET_OK(what, lmx_mixer_add_custom(m, "c", &cd.d, NULL));
    static const float one[1] = {1};
    ok = ok && mixer_logits(what, m, tokens, one, 1, out);
    lmx_mixer_free(m);
    return ok;
}

static void expect_custom_calls(const char *what, const custom_expert *c) {
    char line[512];
    snprintf(line, sizeof line, "%s: forward called (%d calls) with the declared modules and shapes, output zeroed, destroy once",
             what, c->calls);
    check(c->calls > 0 && !c->bad && !c->dirty && c->destroyed == 1, line, "%d calls, %d bad (first: %s), %d dirty, destroyed %d",
          c->calls, c->bad, c->first_bad, c->dirty, c->destroyed);
}

static void test_custom(const fixture_t *fx, lmx_model *model, const lora_weights *w) {
    char what[256];
    float *x = malloc(N_LOGITS * sizeof(float)), *y = malloc(N_LOGITS * sizeof(float));

    custom_expert zero = {.fx = fx, .w = w, .kind = 0, .which = 0x9};
    snprintf(what, sizeof what, "%s: custom on in_proj + out_proj adding zero = base_logits", fx->name);
    if (custom_logits(what, model, &zero, fx->tokens, x)) expect_close(what, x, fx->base, 1e-4);
    expect_custom_calls(what, &zero);

    custom_expert konst = {.fx = fx, .w = w, .kind = 1, .which = 0x9};
    snprintf(what, sizeof what, "%s: custom on in_proj + out_proj adding a constant vector changes the logits", fx->name);
    if (custom_logits(what, model, &konst, fx->tokens, x)) expect_differ(what, x, fx->base, 1e-3);
    expect_custom_calls(what, &konst);

    /* e2's in_proj + out_proj computed by hand = the same tensors through lmx_mixer_add_lora. */
    custom_expert hand2 = {.fx = fx, .w = w, .kind = 2, .which = 0x9};
    lmx_lora_tensor t[LAYERS * N_SSM];
    size_t n = lora_tensors(fx, w, 0x9, NULL, NULL, t);
    lmx_lora_desc d = e2_desc(LMX_DTYPE_F32, t, n);
    snprintf(what, sizeof what, "%s: custom computing e2's in_proj + out_proj LoRA by hand = add_lora of them", fx->name);
    if (custom_logits(what, model, &hand2, fx->tokens, x) && lora_logits(what, fx, model, "m", &d, y))
        expect_close(what, x, y, 1e-5);
    expect_custom_calls(what, &hand2);

    /* All four modules by hand = peft_e2 (x_proj and dt_proj sit inside the scan). */
    custom_expert hand4 = {.fx = fx, .w = w, .kind = 2, .which = 0xF};
    snprintf(what, sizeof what, "%s: custom computing e2's LoRA on all four modules by hand = peft_e2_logits", fx->name);
    if (custom_logits(what, model, &hand4, fx->tokens, x)) expect_close(what, x, fx->peft[2], 1e-4);
    expect_custom_calls(what, &hand4);

    /* Refusals; destroy is not called for a refused expert. */
    lmx_mixer *m = NULL;
    if (QUIET_OK(fx->name, lmx_mixer_create(model, &m))) {
        custom_expert r = {.fx = fx, .w = w, .kind = 0, .which = 0x9};
        custom_decl cd;
        size_t index = 777;
        custom_declare(&cd, &r);
        cd.modules[0] = LMX_MODULE_Q_PROJ;
        snprintf(what, sizeof what, "%s: add_custom declaring q_proj", fx->name);
        EXPECT_ERR(what, lmx_mixer_add_custom(m, "c", &cd.d, &index), LMX_ERR_INVALID_ARGUMENT, "q_proj", fx->arch);
        custom_declare(&cd, &r);
        cd.modules[1] = LMX_MODULE_GATE_PROJ;
        cd.in[1] = D_MODEL;
        cd.out[1] = D_INNER;
        snprintf(what, sizeof what, "%s: add_custom declaring in_proj + gate_proj", fx->name);
        EXPECT_ERR(what, lmx_mixer_add_custom(m, "c", &cd.d, &index), LMX_ERR_INVALID_ARGUMENT, "gate_proj", fx->arch);
        custom_declare(&cd, &r);
        cd.modules[0] = 11;
        snprintf(what, sizeof what, "%s: add_custom declaring module 11", fx->name);
        EXPECT_ERR(what, lmx_mixer_add_custom(m, "c", &cd.d, &index), LMX_ERR_INVALID_ARGUMENT, "11");
        custom_declare(&cd, &r);
        cd.in[0] = 2 * D_INNER; /* in_proj declared 192 -> 192 */
        snprintf(what, sizeof what, "%s: add_custom declaring in_proj with in_features 192 (model: 48)", fx->name);
        EXPECT_ERR(what, lmx_mixer_add_custom(m, "c", &cd.d, &index), LMX_ERR_SHAPE, "in_proj", "48");
        custom_declare(&cd, &r);
        cd.out[1] = D_INNER; /* out_proj declared 96 -> 96 */
        snprintf(what, sizeof what, "%s: add_custom declaring out_proj with out_features 96 (model: 48)", fx->name);
        EXPECT_ERR(what, lmx_mixer_add_custom(m, "c", &cd.d, &index), LMX_ERR_SHAPE, "out_proj", "48");
        size_t count = 99;
        snprintf(what, sizeof what, "%s: refused add_custom calls added nothing, never called destroy", fx->name);
        check(lmx_mixer_expert_count(m, &count) == LMX_OK && count == 0 && index == 777 && r.destroyed == 0 && r.calls == 0,
              what, "count %zu, index %zu, destroyed %d, calls %d", count, index, r.destroyed, r.calls);
    }
    lmx_mixer_free(m);
    free(x);
    free(y);
}

/* ------------------------------------------------------------------------------------------------
 * 7. Untrained experts
 * ---------------------------------------------------------------------------------------------- */

static void test_untrained(const fixture_t *fx, lmx_model *model) {
    char what[256];
    lmx_mixer *m = NULL;
    float *x = malloc(N_LOGITS * sizeof(float)), *base = malloc(N_LOGITS * sizeof(float));
    if (!QUIET_OK(fx->name, lmx_mixer_create(model, &m))) goto done;
    size_t index = 777;
    snprintf(what, sizeof what, "%s: add_untrained_lora 'u' rank 4 alpha 8, module_mask 0x780 (the four Mamba bits)",
             fx->name);
    if (EXPECT_OK(what, lmx_mixer_add_untrained_lora(m, "u", 4, 8, MAMBA_MASK, 7, &index))) {
        snprintf(what, sizeof what, "%s: 'u' got index 0", fx->name);
        check(index == 0, what, "index %zu", index);
    }
    for (int k = 0; k < N_SSM; k++) {
        char name[16];
        snprintf(name, sizeof name, "only_%d", k);
        snprintf(what, sizeof what, "%s: add_untrained_lora on %s alone", fx->name, ssm_names[k]);
        EXPECT_OK(what, lmx_mixer_add_untrained_lora(m, name, 2, 2, 1u << ssm_modules[k], 7, NULL));
    }
    static const float w_u[5] = {1, 0, 0, 0, 0}, w_all[5] = {1, 1, 1, 1, 1};
    /* B = 0: the library's own base logits (routing NONE) within 1e-6; the oracle's within 1e-4. */
    lmx_session *s = new_session(fx->name, m, 0);
    snprintf(what, sizeof what, "%s: routing NONE over the untrained experts = base_logits", fx->name);
    if (s && session_logits(what, s, fx->tokens, LMX_ROUTING_NONE, NULL, 0, base)) expect_close(what, base, fx->base, 1e-4);
    lmx_session_free(s);
    snprintf(what, sizeof what, "%s: untrained 'u' (fixed routing on it) = routing NONE", fx->name);
    if (mixer_logits(what, m, fx->tokens, w_u, 5, x)) expect_close(what, x, base, 1e-6);
    snprintf(what, sizeof what, "%s: all five untrained experts (fixed weight 1 each) = routing NONE", fx->name);
    if (mixer_logits(what, m, fx->tokens, w_all, 5, x)) expect_close(what, x, base, 1e-6);

    index = 777;
    snprintf(what, sizeof what, "%s: add_untrained_lora with module_mask q_proj (0x1)", fx->name);
    EXPECT_ERR(what, lmx_mixer_add_untrained_lora(m, "q", 4, 8, 1u << LMX_MODULE_Q_PROJ, 0, &index),
               LMX_ERR_INVALID_ARGUMENT, "module_mask", "q_proj", fx->arch, "in_proj, x_proj, dt_proj, out_proj");
    snprintf(what, sizeof what, "%s: add_untrained_lora with module_mask 0x781 (Mamba bits + q_proj)", fx->name);
    EXPECT_ERR(what, lmx_mixer_add_untrained_lora(m, "q", 4, 8, MAMBA_MASK | 1u, 0, &index), LMX_ERR_INVALID_ARGUMENT,
               "module_mask", "q_proj", fx->arch, "in_proj, x_proj, dt_proj, out_proj");
    snprintf(what, sizeof what, "%s: add_untrained_lora with module_mask 0x7f (all llama modules)", fx->name);
    EXPECT_ERR(what, lmx_mixer_add_untrained_lora(m, "q", 4, 8, 0x7f, 0, &index), LMX_ERR_INVALID_ARGUMENT, "module_mask",
               "_proj", fx->arch, "in_proj, x_proj, dt_proj, out_proj");
    snprintf(what, sizeof what, "%s: add_untrained_lora with module_mask bit 11 (0x800)", fx->name);
    EXPECT_ERR(what, lmx_mixer_add_untrained_lora(m, "q", 4, 8, 1u << 11, 0, &index), LMX_ERR_INVALID_ARGUMENT,
               "module_mask", "11");
    size_t count = 0;
    snprintf(what, sizeof what, "%s: refused add_untrained_lora calls added nothing (5 experts), out_index untouched",
             fx->name);
    check(lmx_mixer_expert_count(m, &count) == LMX_OK && count == 5 && index == 777, what, "count %zu, index %zu", count,
          index);
done:
    lmx_mixer_free(m);
    free(x);
    free(base);
}

/* ------------------------------------------------------------------------------------------------
 * 8. Training
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    int calls, bad;
    int32_t last_step, total;
} progress_log;

static uint32_t on_progress(const lmx_train_progress *p, void *user_data) {
    progress_log *g = user_data;
    g->calls++;
    if (p->struct_size != sizeof(lmx_train_progress) || p->step != (uint32_t)g->calls || !isfinite(p->loss) ||
        !isfinite(p->cross_entropy) || !isfinite(p->grad_norm))
        g->bad++;
    double sum = 0;
    for (size_t i = 0; i < p->n_experts && p->expert_load; i++) sum += p->expert_load[i];
    if (p->n_experts && fabs(sum - 1.0) > 1e-5) g->bad++;
    g->last_step = p->step;
    g->total = p->total_steps;
    return 0;
}

/* The tensor names of a PEFT safetensors file: every one under base_model.model.backbone.layers.
 * L.mixer.M.lora_{A,B}.weight, and each of the modules in `want` (bit k = ssm_names[k]) present. */
static void expect_peft_names(const char *what, const char *path, unsigned want) {
    size_t len = 0, header_len = 0;
    unsigned char *file = read_file(path, &len);
    char line[512];
    snprintf(line, sizeof line, "%s: tensor names are base_model.model.backbone.layers.L.mixer.{in,x,dt,out}_proj.lora_*",
             what);
    if (!file || len < 8) {
        fail(line, "cannot read %s", path);
        free(file);
        return;
    }
    char *header = safetensors_header(file, len, &header_len);
    free(file);
    if (!header) {
        fail(line, "bad header length in %s", path);
        return;
    }
    /* Keys are the strings followed by ":{" ("name":{"dtype":...}); __metadata__ is skipped. */
    int n_tensors = 0, bad = 0;
    unsigned seen = 0;
    char first_bad[256] = "";
    for (char *p = header; (p = strstr(p, "\":{")) != NULL; p += 3) {
        char *start = p;
        while (start > header && start[-1] != '"') start--;
        size_t n = (size_t)(p - start);
        char name[256];
        if (n >= sizeof name) n = sizeof name - 1;
        memcpy(name, start, n);
        name[n] = 0;
        if (strcmp(name, "__metadata__") == 0) continue;
        n_tensors++;
        int layer = -1, consumed = 0;
        char module[32] = "", ab = 0;
        int ok = sscanf(name, "base_model.model.backbone.layers.%d.mixer.%31[a-z_].lora_%c.weight%n", &layer, module, &ab,
                        &consumed) == 3 && consumed == (int)strlen(name) && layer >= 0 && layer < LAYERS &&
                 (ab == 'A' || ab == 'B');
        int k = -1;
        for (int j = 0; j < N_SSM; j++)
            if (strcmp(module, ssm_names[j]) == 0) k = j;
        if (!ok || k < 0) {
            if (!bad++) snprintf(first_bad, sizeof first_bad, "%s", name);
        } else {
            seen |= 1u << k;
        }
    }
    free(header);
    check(n_tensors > 0 && !bad && (seen & want) == want, line, "%d tensors, %d bad (first '%s'), modules seen 0x%x of 0x%x",
          n_tensors, bad, first_bad, seen, want);
}

/* A regime's data, tmp/<fixture>_<regime>.jsonl (per_task examples for each task, see
 * write_train_data), and its out_dir, the new folder tmp/<fixture>_<regime>_out. */
static void train_case(const fixture_t *fx, const char *regime, const char *const *tasks, int n_tasks, int per_task,
                       char *data, size_t data_size, char *out, size_t out_size) {
    char name[256];
    snprintf(name, sizeof name, "%s_%s.jsonl", fx->name, regime);
    join(data, data_size, tmp, name);
    write_train_data(data, tasks, n_tasks, per_task);
    snprintf(name, sizeof name, "%s_%s_out", fx->name, regime);
    case_dir(out, out_size, name);
}

/* lmx_mixer_train(m, data, NULL, out, p) with on_progress, as check `what`; when it succeeds, checks
 * the progress calls (steps 1..3 of 3, finite, loads sum to 1) and that out_dir holds
 * router.safetensors and report.json. Returns whether the training succeeded. */
static int train_3_steps(const fixture_t *fx, const char *regime, const char *what, lmx_mixer *m, const char *data,
                         const char *out, const lmx_train_params *p) {
    char line[256];
    progress_log g = {0};
    if (!EXPECT_OK(what, lmx_mixer_train(m, data, NULL, out, p, on_progress, &g))) return 0;
    snprintf(line, sizeof line, "%s: %s regime: progress steps 1..3 of 3, finite, loads sum to 1", fx->name, regime);
    check(g.calls == 3 && g.last_step == 3 && g.total == 3 && !g.bad, line, "%d calls, last %d of %d, %d bad", g.calls,
          g.last_step, g.total, g.bad);
    snprintf(line, sizeof line, "%s: %s regime: out_dir", fx->name, regime);
    expect_file(line, out, "router.safetensors");
    expect_file(line, out, "report.json");
    return 1;
}

static void test_train(const fixture_t *fx, lmx_model *model, int router_regime) {
    char what[256], data[1200], out[1200], path[1400], dir[1400];
    float *before = malloc(N_LOGITS * sizeof(float)), *after = malloc(N_LOGITS * sizeof(float));
    float *reloaded = malloc(N_LOGITS * sizeof(float)), *x = malloc(N_LOGITS * sizeof(float));

    if (router_regime) {
        static const char *const tasks[3] = {"e0", "e1", "e2"};
        train_case(fx, "router", tasks, 3, 4, data, sizeof data, out, sizeof out); /* 12 examples */
        lmx_mixer *m = fixture_mixer(fx, model, 3, "router.safetensors");
        if (m && mixer_logits(fx->name, m, fx->tokens, NULL, 0, before)) {
            lmx_train_params p = small_train_params(3, 1);
            snprintf(what, sizeof what, "%s: mixer_train router regime (TOPK, 3 steps of 4) on e0..e2 + router", fx->name);
            if (train_3_steps(fx, "router", what, m, data, out, &p)) {
                snprintf(what, sizeof what, "%s: router regime: the trained mixer's logits differ", fx->name);
                if (mixer_logits(what, m, fx->tokens, NULL, 0, after)) {
                    expect_differ(what, after, before, 1e-5);
                    lmx_mixer *fresh = fixture_mixer(fx, model, 3, NULL);
                    join(path, sizeof path, out, "router.safetensors");
                    snprintf(what, sizeof what, "%s: router regime: the written router reloads to the trained logits",
                             fx->name);
                    if (fresh && QUIET_OK(what, lmx_mixer_load_router(fresh, path)) &&
                        mixer_logits(what, fresh, fx->tokens, NULL, 0, reloaded))
                        expect_close(what, reloaded, after, 1e-6);
                    lmx_mixer_free(fresh);
                }
            }
        }
        lmx_mixer_free(m);
    }

    /* Joint regime, TOPK through a new router, over e0 and an untrained expert on the four modules. */
    {
        static const char *const tasks[2] = {"e0", "new"};
        train_case(fx, "joint", tasks, 2, 6, data, sizeof data, out, sizeof out); /* 12 examples */
        lmx_mixer *m = fixture_mixer(fx, model, 1, NULL);
        snprintf(what, sizeof what, "%s: add_untrained_lora 'new' (rank 4, alpha 8, the four Mamba modules)", fx->name);
        if (m && EXPECT_OK(what, lmx_mixer_add_untrained_lora(m, "new", 4, 8, MAMBA_MASK, 3, NULL))) {
            static const float w_new[2] = {0, 1};
            lmx_train_params p = small_train_params(3, 1);
            p.regime = LMX_TRAIN_JOINT;
            snprintf(what, sizeof what, "%s: mixer_train joint regime (TOPK, new router, 3 steps of 4) on e0 + 'new'",
                     fx->name);
            if (train_3_steps(fx, "joint", what, m, data, out, &p)) {
                snprintf(what, sizeof what, "%s: joint regime: out_dir", fx->name);
                expect_file(what, out, "experts/new/adapter_config.json");
                expect_file(what, out, "experts/new/adapter_model.safetensors");
                expect_file(what, out, "experts/e0/adapter_model.safetensors");
                join(path, sizeof path, out, "experts/new/adapter_model.safetensors");
                snprintf(what, sizeof what, "%s: joint regime: experts/new/adapter_model.safetensors", fx->name);
                expect_peft_names(what, path, 0xF);
                join(path, sizeof path, out, "experts/e0/adapter_model.safetensors");
                snprintf(what, sizeof what, "%s: joint regime: experts/e0/adapter_model.safetensors", fx->name);
                expect_peft_names(what, path, 0x3);
                {
                    join(path, sizeof path, out, "experts/new/adapter_config.json");
                    unsigned char *config = read_file(path, NULL);
                    const char *text = config ? (const char *)config : "";
                    snprintf(what, sizeof what,
                             "%s: joint regime: experts/new/adapter_config.json targets in_proj, x_proj, dt_proj, out_proj",
                             fx->name);
                    check(strstr(text, "\"in_proj\"") && strstr(text, "\"x_proj\"") && strstr(text, "\"dt_proj\"") &&
                              strstr(text, "\"out_proj\"") && !strstr(text, "q_proj") && strstr(text, "\"LORA\""),
                          what, "\"%.400s\"", text);
                    free(config);
                }
                snprintf(what, sizeof what, "%s: joint regime: the trained 'new' (fixed routing on it) changes the logits",
                         fx->name);
                if (mixer_logits(what, m, fx->tokens, w_new, 2, x)) expect_differ(what, x, fx->base, 1e-5);
                snprintf(what, sizeof what, "%s: joint regime: the trained mixer evaluates (learned routing)", fx->name);
                if (mixer_logits(what, m, fx->tokens, NULL, 0, after)) {
                    int finite = 1;
                    for (size_t i = 0; i < N_LOGITS; i++) finite &= isfinite(after[i]) != 0;
                    check(finite, what, "non-finite logits");
                    /* The written experts + router give the same logits. */
                    lmx_mixer *fresh = NULL;
                    int ok = QUIET_OK(what, lmx_mixer_create(model, &fresh));
                    for (int e = 0; e < 2 && ok; e++) {
                        char rel[64];
                        snprintf(rel, sizeof rel, "experts/%s", tasks[e]);
                        join(dir, sizeof dir, out, rel);
                        snprintf(what, sizeof what, "%s: joint regime: add_peft the written %s", fx->name, rel);
                        ok = EXPECT_OK(what, lmx_mixer_add_peft(fresh, tasks[e], dir, NULL));
                    }
                    join(path, sizeof path, out, "router.safetensors");
                    snprintf(what, sizeof what, "%s: joint regime: load the written router", fx->name);
                    ok = ok && EXPECT_OK(what, lmx_mixer_load_router(fresh, path));
                    snprintf(what, sizeof what, "%s: joint regime: the written experts + router reload to the trained logits",
                             fx->name);
                    if (ok && mixer_logits(what, fresh, fx->tokens, NULL, 0, reloaded))
                        expect_close(what, reloaded, after, 1e-5);
                    lmx_mixer_free(fresh);
                }
            }
        }
        lmx_mixer_free(m);
    }
    free(before);
    free(after);
    free(reloaded);
    free(x);
}

/* ------------------------------------------------------------------------------------------------ */

static int load_fixture(fixture_t *fx) {
    char path[1200];
    join(fx->dir, sizeof fx->dir, fixtures, fx->name);
    join(path, sizeof path, fx->dir, "expected.safetensors");
    size_t n = 0, nw = 0;
    fx->tokens = fixture_tensor(path, "tokens", "I32", &n);
    fx->base = fixture_tensor(path, "base_logits", "F32", NULL);
    for (int e = 0; e < 3; e++) {
        char name[32];
        snprintf(name, sizeof name, "peft_e%d_logits", e);
        fx->peft[e] = fixture_tensor(path, name, "F32", NULL);
    }
    fx->fixed_weights = fixture_tensor(path, "fixed_weights", "F32", &nw);
    fx->fixed = fixture_tensor(path, "fixed_logits", "F32", NULL);
    fx->uniform = fixture_tensor(path, "uniform_logits", "F32", NULL);
    fx->soft = fixture_tensor(path, "soft_logits", "F32", NULL);
    fx->learned = fixture_tensor(path, "learned_logits", "F32", NULL);
    fx->topk1 = fixture_tensor(path, "learned_topk1_logits", "F32", NULL);
    fx->temp2 = fixture_tensor(path, "learned_temp2_logits", "F32", NULL);
    fx->context = fixture_tensor(path, "context_logits", "F32", NULL);
    fx->learned_ids = fixture_tensor(path, "learned_ids", "I32", NULL);
    fx->context_ids = fixture_tensor(path, "context_ids", "I32", NULL);
    fx->learned_gates = fixture_tensor(path, "learned_gates", "F32", NULL);
    fx->context_gates = fixture_tensor(path, "context_gates", "F32", NULL);
    return fx->tokens && n == N_TOKENS && fx->base && fx->peft[0] && fx->peft[1] && fx->peft[2] && fx->fixed_weights &&
           nw == 3 && fx->fixed && fx->uniform && fx->soft && fx->learned && fx->topk1 && fx->temp2 && fx->context &&
           fx->learned_ids && fx->context_ids && fx->learned_gates && fx->context_gates;
}

static void free_fixture(fixture_t *fx) {
    void *const tensors[] = {fx->tokens, fx->base, fx->peft[0], fx->peft[1], fx->peft[2], fx->fixed_weights,
                             fx->fixed, fx->uniform, fx->soft, fx->learned, fx->topk1, fx->temp2, fx->context,
                             fx->learned_ids, fx->context_ids, fx->learned_gates, fx->context_gates};
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++) free(tensors[i]);
}

static void run_fixture(fixture_t *fx, int router_regime) {
    char what[256];
    if (!load_fixture(fx)) {
        fail(fx->name, "cannot read the tensors of %s/expected.safetensors", fx->dir);
        free_fixture(fx);
        return;
    }
    lmx_model *model = NULL;
    snprintf(what, sizeof what, "%s: model_load", fx->name);
    if (EXPECT_OK(what, lmx_model_load(fx->dir, NULL, &model))) {
        lora_weights w;
        test_info(fx, model);
        test_shapes(fx, model);
        test_parity(fx, model);
        test_foreign_adapters(fx, model);
        test_session(fx, model);
        if (load_e2(fx, &w)) {
            test_memory_lora(fx, model, &w);
            test_custom(fx, model, &w);
        } else {
            fail(fx->name, "cannot read e2's tensors from adapters/e2/adapter_model.safetensors");
        }
        free_lora(&w);
        test_untrained(fx, model);
        test_train(fx, model, router_regime);
        lmx_model_free(model);
    }
    free_fixture(fx);
}

int main(int argc, char **argv) {
    if (!test_start(argc, argv, fixtures, sizeof fixtures)) return 2;
    if (!make_temp_dir(tmp, sizeof tmp, "lmx_mamba_test")) return 2;

    fixture_t mamba = {.name = "mamba_f32", .arch = "MambaForCausalLM", .dt_rank = 3};
    fixture_t falcon = {.name = "falcon_mamba_f32", .arch = "FalconMambaForCausalLM", .dt_rank = 5};
    run_fixture(&mamba, 1);
    run_fixture(&falcon, 0);
    test_llama();

    remove_tree(tmp);
    return test_summary("mamba_test");
}
