/*
 * contract_test.c: the header's promises about growing structs, handles, getters and aborts.
 *
 *     contract_test FIXTURES_DIR
 *
 *  1. struct_size: every struct the caller fills is accepted from its LMX_*_MIN_SIZE up, refused
 *     one byte below (LMX_ERR_ABI naming the struct); "version 0" copies (the struct as first
 *     declared, shorter than today's) get the defaults of the fields appended since, even with
 *     garbage after them; a longer struct (a newer header) is accepted; output structs are
 *     written only up to the caller's struct_size.
 *  2. Handles: a freed handle stays invalid after many new handles were made (ids are never
 *     reused, whatever the allocator does with the memory); a wrong-kind handle is refused.
 *  3. Getters: every session setter has a getter that reads back what is in effect.
 *  4. Abort: an abort callback that fires after N checks fails eval and generate with
 *     LMX_ERR_CANCELLED, leaves the session as before (same logits afterwards, same n_past), on a
 *     transformer (KV cache) and on Mamba (recurrent state).
 *  5. Text: lmx_text_params from LMX_TEXT_PARAMS_MIN_SIZE up, lmx_tokenizer_info written up to the
 *     caller's struct_size, freed tokenizers and text streams stay invalid after new handles, and
 *     the text entry points refuse NULL and wrong-kind handles.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loramixer.h"
#include "test_util.h"

static char fixtures[1024];

static void fixture_path(char *out, size_t size, const char *relative) { join(out, size, fixtures, relative); }

static lmx_model *load(const char *name) {
    char path[1200];
    fixture_path(path, sizeof path, name);
    lmx_model *model = NULL;
    if (!EXPECT_OK(name, lmx_model_load(path, NULL, &model))) return NULL;
    return model;
}

/* ---------------------------------------------------------------------------------- 1. structs */

/* lmx_session_params as first declared (no n_threads), followed by garbage a real old host would
 * not have: the library must not read it. */
typedef struct {
    uint32_t struct_size, n_ctx, trace;
    uint32_t garbage;
} session_params_v0_plus_garbage;

/* lmx_lora_desc as first declared (no release / user_data), then garbage where they would be. */
typedef struct {
    uint32_t struct_size, dtype, rank;
    float alpha;
    uint32_t use_rslora;
    const lmx_lora_tensor *tensors;
    size_t n_tensors;
    uintptr_t garbage[2];
} lora_desc_v0_plus_garbage;

/* lmx_model_info as first declared: up to architecture; then canaries where d_state.. would be. */
typedef struct {
    lmx_model_info info;
    uint32_t canary;
} model_info_box;

static void test_struct_sizes(void) {
    lmx_model *model = load("llama_f32");
    if (!model) return;
    char path[1200];
    fixture_path(path, sizeof path, "llama_f32");

    /* lmx_model_params */
    lmx_model_params mp = lmx_model_params_default();
    lmx_model *m2 = NULL;
    mp.struct_size = (uint32_t)LMX_MODEL_PARAMS_MIN_SIZE;
    if (EXPECT_OK("model_params: struct_size = LMX_MODEL_PARAMS_MIN_SIZE", lmx_model_load(path, &mp, &m2)))
        lmx_model_free(m2);
    mp.struct_size = (uint32_t)LMX_MODEL_PARAMS_MIN_SIZE - 1;
    EXPECT_ERR("model_params: struct_size = MIN - 1", lmx_model_load(path, &mp, &m2), LMX_ERR_ABI, "lmx_model_params",
               "struct_size");
    struct { lmx_model_params p; uint32_t newer_field; } newer = {lmx_model_params_default(), 12345};
    newer.p.struct_size = sizeof newer;
    if (EXPECT_OK("model_params: a newer host's longer struct", lmx_model_load(path, &newer.p, &m2))) lmx_model_free(m2);

    lmx_mixer *mixer = NULL;
    if (!EXPECT_OK("mixer_create", lmx_mixer_create(model, &mixer))) goto out;

    /* lmx_session_params: version 0 has no n_threads; garbage after it is ignored (n_threads 0:
     * the cores available, not 4294967295, which would be refused). */
    session_params_v0_plus_garbage sp0 = {(uint32_t)LMX_SESSION_PARAMS_MIN_SIZE, 16, 0, 0xFFFFFFFFu};
    lmx_session *s = NULL;
    if (EXPECT_OK("session_params v0 (no n_threads) with garbage after it",
                  lmx_session_create(mixer, (const lmx_session_params *)(const void *)&sp0, &s))) {
        lmx_session_params got = {.struct_size = sizeof got};
        lmx_session_params want = lmx_session_params_default();
        lmx_session *d = NULL;
        lmx_session_params got_default = {.struct_size = sizeof got_default};
        if (EXPECT_OK("session_get_params", lmx_session_get_params(s, &got)) &&
            EXPECT_OK("session_create with defaults", lmx_session_create(mixer, &want, &d)) &&
            EXPECT_OK("session_get_params (defaults)", lmx_session_get_params(d, &got_default))) {
            if (got.n_ctx == 16 && got.trace == 0 && got.n_threads == got_default.n_threads && got.n_threads >= 1)
                pass("session_params v0: n_ctx and trace as given, n_threads the default (cores available)");
            else
                fail("session_params v0: defaults for appended fields", "n_ctx %u trace %u n_threads %u (default %u)",
                     got.n_ctx, got.trace, got.n_threads, got_default.n_threads);
        }
        lmx_session_free(d);
        lmx_session_free(s);
    }
    sp0.struct_size = (uint32_t)LMX_SESSION_PARAMS_MIN_SIZE - 1;
    EXPECT_ERR("session_params: struct_size = MIN - 1",
               lmx_session_create(mixer, (const lmx_session_params *)(const void *)&sp0, &s), LMX_ERR_ABI,
               "lmx_session_params", "struct_size");

    /* lmx_lora_desc v0: no release/user_data: copied (garbage where release would be is never called). */
    lmx_lora_tensor tensor;
    uint32_t in = 0, out = 0;
    float *a = NULL, *b = NULL;
    if (EXPECT_OK("module_shape q_proj", lmx_model_module_shape(model, LMX_MODULE_Q_PROJ, &in, &out))) {
        a = calloc((size_t)2 * in, sizeof *a);
        b = calloc((size_t)out * 2, sizeof *b);
        tensor = (lmx_lora_tensor){.layer = 0, .module = LMX_MODULE_Q_PROJ, .in_features = in, .out_features = out,
                                   .a = a, .b = b};
        lora_desc_v0_plus_garbage d0 = {(uint32_t)LMX_LORA_DESC_MIN_SIZE, LMX_DTYPE_F32, 2, 4.0f, 0, &tensor, 1,
                                        {(uintptr_t)0xDEAD, (uintptr_t)0xBEEF}};
        size_t index = 777;
        if (EXPECT_OK("lora_desc v0 (no release) with garbage after it",
                      lmx_mixer_add_lora(mixer, "v0", (const lmx_lora_desc *)(const void *)&d0, &index)) && index == 0)
            pass("lora_desc v0: added as expert 0 (copied; the garbage release was never called)");
        d0.struct_size = (uint32_t)LMX_LORA_DESC_MIN_SIZE - 1;
        EXPECT_ERR("lora_desc: struct_size = MIN - 1",
                   lmx_mixer_add_lora(mixer, "v0b", (const lmx_lora_desc *)(const void *)&d0, NULL), LMX_ERR_ABI,
                   "lmx_lora_desc", "struct_size");
    }
    free(a);
    free(b);

    /* lmx_custom_expert_desc: version 0 is the whole struct. */
    lmx_custom_expert_desc cd = {.struct_size = (uint32_t)LMX_CUSTOM_EXPERT_DESC_MIN_SIZE - 1};
    EXPECT_ERR("custom_expert_desc: struct_size = MIN - 1", lmx_mixer_add_custom(mixer, "c", &cd, NULL), LMX_ERR_ABI,
               "lmx_custom_expert_desc", "struct_size");

    /* lmx_generate_params */
    lmx_session *g = NULL;
    if (EXPECT_OK("session for generate", lmx_session_create(mixer, NULL, &g))) {
        int32_t prompt[2] = {5, 6}, outs[4];
        size_t n_out = 0;
        lmx_generate_params gp = lmx_generate_params_default();
        gp.max_tokens = 2;
        gp.struct_size = (uint32_t)LMX_GENERATE_PARAMS_MIN_SIZE;
        EXPECT_OK("generate_params: struct_size = MIN", lmx_session_generate(g, prompt, 2, &gp, outs, 4, &n_out));
        gp.struct_size = (uint32_t)LMX_GENERATE_PARAMS_MIN_SIZE - 1;
        EXPECT_ERR("generate_params: struct_size = MIN - 1", lmx_session_generate(g, prompt, 2, &gp, outs, 4, &n_out),
                   LMX_ERR_ABI, "lmx_generate_params", "struct_size");
        lmx_session_free(g);
    }

    /* lmx_plugin_params and lmx_train_params: refused below the minimum before anything is read. */
    lmx_plugin_params pp = lmx_plugin_params_default();
    pp.struct_size = (uint32_t)LMX_PLUGIN_PARAMS_MIN_SIZE - 1;
    EXPECT_ERR("plugin_params: struct_size = MIN - 1", lmx_mixer_load_plugin(mixer, "/nonexistent/x.so", &pp, NULL),
               LMX_ERR_ABI, "lmx_plugin_params", "struct_size");
    lmx_train_params tp = lmx_train_params_default();
    tp.struct_size = (uint32_t)LMX_TRAIN_PARAMS_MIN_SIZE - 1;
    EXPECT_ERR("train_params: struct_size = MIN - 1", lmx_mixer_train(mixer, "/nonexistent.jsonl", NULL, NULL, &tp, NULL, NULL),
               LMX_ERR_ABI, "lmx_train_params", "struct_size");

    /* lmx_model_info as first declared (up to architecture): d_state.. are not written. */
    model_info_box box;
    memset(&box, 0xA5, sizeof box);
    box.info.struct_size = (uint32_t)LMX_SIZE_THROUGH(lmx_model_info, architecture);
    if (EXPECT_OK("model_info v0 (up to architecture)", lmx_model_get_info(model, &box.info))) {
        uint32_t d_state;
        memcpy(&d_state, (const char *)&box.info + offsetof(lmx_model_info, d_state), sizeof d_state);
        if (box.info.n_vocab == 128 && strcmp(box.info.architecture, "LlamaForCausalLM") == 0 && d_state == 0xA5A5A5A5u &&
            box.canary == 0xA5A5A5A5u)
            pass("model_info v0: fields written up to architecture, nothing after");
        else
            fail("model_info v0", "n_vocab %u arch '%.20s' d_state %08x canary %08x", box.info.n_vocab,
                 box.info.architecture, d_state, box.canary);
    }
    lmx_model_info tiny = {.struct_size = (uint32_t)LMX_MODEL_INFO_MIN_SIZE - 1};
    EXPECT_ERR("model_info: struct_size = MIN - 1", lmx_model_get_info(model, &tiny), LMX_ERR_ABI, "lmx_model_info");
out:
    lmx_mixer_free(mixer);
    lmx_model_free(model);
}

/* ---------------------------------------------------------------------------------- 2. handles */

static void test_stale_handles(void) {
    lmx_model *model = load("llama_f32");
    if (!model) return;
    lmx_mixer *mixer = NULL;
    if (!EXPECT_OK("handles: mixer_create", lmx_mixer_create(model, &mixer))) {
        lmx_model_free(model);
        return;
    }
    lmx_session *old = NULL;
    EXPECT_OK("handles: session_create", lmx_session_create(mixer, NULL, &old));
    lmx_session_free(old);
    /* Many new objects of the same kind and size: with address-keyed handles one of them would
     * likely sit where the freed one was. */
    enum { N = 64 };
    lmx_session *fresh[N] = {0};
    int made = 0, same = 0;
    for (int i = 0; i < N; i++) {
        if (lmx_session_create(mixer, NULL, &fresh[i]) == LMX_OK) made++;
        if (fresh[i] == old) same++;
    }
    size_t n_past = 0;
    EXPECT_ERR("handles: a freed session after 64 new sessions", lmx_session_n_past(old, &n_past),
               LMX_ERR_INVALID_ARGUMENT, "session", "freed");
    if (made == N && same == 0) pass("handles: 64 new sessions, none got the freed handle's value");
    else fail("handles: new sessions", "made %d of %d, %d equal to the freed handle", made, N, same);
    lmx_session_free(old); /* a double free is a no-op */
    EXPECT_OK("handles: the new sessions still work after the double free", lmx_session_n_past(fresh[N - 1], &n_past));
    EXPECT_ERR("handles: a mixer passed as a session", lmx_session_n_past((lmx_session *)(void *)mixer, &n_past),
               LMX_ERR_INVALID_ARGUMENT, "lmx_mixer", "lmx_session");
    for (int i = 0; i < N; i++) lmx_session_free(fresh[i]);
    lmx_model *old_model = model;
    lmx_mixer_free(mixer);
    lmx_model_free(model);
    lmx_model *again = load("llama_f32");
    lmx_model_info info = {.struct_size = sizeof info};
    EXPECT_ERR("handles: a freed model after a new model was loaded", lmx_model_get_info(old_model, &info),
               LMX_ERR_INVALID_ARGUMENT, "model");
    lmx_model_free(again);
}

/* ---------------------------------------------------------------------------------- 3. getters */

static void test_getters(void) {
    lmx_model *model = load("llama_f32");
    if (!model) return;
    char dir[1200];
    fixture_path(dir, sizeof dir, "llama_f32");
    lmx_mixer *mixer = fixture_mixer_in(dir, "getters", model, 3, "router.safetensors");
    lmx_session *s = mixer ? make_session("getters: session", mixer, 32, 1) : NULL;
    if (!s) goto out;
    uint32_t mode = 99, top_k = 0;
    float temperature = 0;
    size_t n = 99;
    if (EXPECT_OK("get_routing", lmx_session_get_routing(s, &mode)) && mode == LMX_ROUTING_LEARNED)
        pass("get_routing: LEARNED with a router");
    else fail("get_routing", "mode %u", mode);
    if (EXPECT_OK("get_top_k", lmx_session_get_top_k(s, &top_k)) && top_k == 2) pass("get_top_k: the router file's 2");
    else fail("get_top_k: router file's", "%u", top_k);
    if (EXPECT_OK("get_temperature", lmx_session_get_temperature(s, &temperature)) && temperature > 0)
        pass("get_temperature: the router file's (> 0)");
    else fail("get_temperature", "%g", (double)temperature);
    if (EXPECT_OK("get_fixed_weights: none set", lmx_session_get_fixed_weights(s, NULL, 0, &n)) && n == 0)
        pass("get_fixed_weights: 0 before any were set");
    else fail("get_fixed_weights: none set", "n %zu", n);

    EXPECT_OK("set_top_k 1", lmx_session_set_top_k(s, 1));
    EXPECT_OK("set_temperature 2.5", lmx_session_set_temperature(s, 2.5f));
    float w[3] = {0.25f, 0.5f, 0.25f}, got[3] = {0};
    EXPECT_OK("set_fixed_weights", lmx_session_set_fixed_weights(s, w, 3));
    EXPECT_OK("set_routing SOFT", lmx_session_set_routing(s, LMX_ROUTING_SOFT));
    lmx_session_get_routing(s, &mode);
    lmx_session_get_top_k(s, &top_k);
    lmx_session_get_temperature(s, &temperature);
    if (mode == LMX_ROUTING_SOFT && top_k == 1 && temperature == 2.5f) pass("getters read back SOFT, top_k 1, temperature 2.5");
    else fail("getters read back", "mode %u top_k %u temperature %g", mode, top_k, (double)temperature);
    EXPECT_ERR("get_fixed_weights: capacity 2 < 3", lmx_session_get_fixed_weights(s, got, 2, &n), LMX_ERR_SHAPE, "capacity");
    if (EXPECT_OK("get_fixed_weights", lmx_session_get_fixed_weights(s, got, 3, &n)) && n == 3 &&
        memcmp(got, w, sizeof w) == 0)
        pass("get_fixed_weights: the 3 weights set (kept after the mode changed)");
    else fail("get_fixed_weights", "n %zu", n);
    EXPECT_OK("set_top_k 0 (restore)", lmx_session_set_top_k(s, 0));
    EXPECT_OK("set_temperature 0 (restore)", lmx_session_set_temperature(s, 0));
    lmx_session_get_top_k(s, &top_k);
    float restored = 0;
    lmx_session_get_temperature(s, &restored);
    if (top_k == 2 && restored != 2.5f) pass("getters: 0 restores the router file's top_k and temperature");
    else fail("getters: restore", "top_k %u temperature %g", top_k, (double)restored);
    lmx_session_params p = {.struct_size = sizeof p};
    if (EXPECT_OK("get_params", lmx_session_get_params(s, &p)) && p.n_ctx == 32 && p.trace == 1 && p.n_threads == 1)
        pass("get_params: n_ctx 32, trace 1, n_threads 1 as created");
    else fail("get_params", "n_ctx %u trace %u n_threads %u", p.n_ctx, p.trace, p.n_threads);
    EXPECT_ERR("get_params: NULL out", lmx_session_get_params(s, NULL), LMX_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("get_top_k: NULL out", lmx_session_get_top_k(s, NULL), LMX_ERR_INVALID_ARGUMENT, "out_top_k");
out:
    lmx_session_free(s);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
}

/* ---------------------------------------------------------------------------------- 4. abort */

typedef struct {
    int calls;
    int abort_at; /* abort on this call (1-based); 0 = never */
} abort_state;

static uint32_t abort_after(void *user_data) {
    abort_state *a = user_data;
    a->calls++;
    return a->abort_at > 0 && a->calls >= a->abort_at;
}

static void test_abort(const char *name, int n_layers) {
    char what[256];
    lmx_model *model = load(name);
    if (!model) return;
    char dir[1200];
    fixture_path(dir, sizeof dir, name);
    lmx_mixer *mixer = fixture_mixer_in(dir, name, model, 3, "router.safetensors");
    lmx_session *s = mixer ? make_session(name, mixer, 0, 1) : NULL;
    lmx_session *ref = mixer ? make_session(name, mixer, 0, 1) : NULL;
    float *got = NULL, *want = NULL;
    if (!s || !ref) goto out;
    lmx_model_info info = {.struct_size = sizeof info};
    lmx_model_get_info(model, &info);
    size_t vocab = info.n_vocab;
    got = calloc(vocab, sizeof *got);
    want = calloc(vocab, sizeof *want);
    const int32_t prompt[4] = {11, 12, 13, 14}, next[1] = {15};

    abort_state a = {0, 0};
    snprintf(what, sizeof what, "%s abort: install", name);
    EXPECT_OK(what, lmx_session_set_abort_callback(s, abort_after, &a));
    snprintf(what, sizeof what, "%s abort: prefill 4 tokens (never aborts)", name);
    EXPECT_OK(what, lmx_session_eval(s, prompt, 4, LMX_LOGITS_NONE, NULL, 0));
    if (a.calls == n_layers) pass("abort: the callback is asked once per layer of an evaluation");
    else fail("abort: calls per evaluation", "%s: %d calls, want %d (layers)", name, a.calls, n_layers);
    EXPECT_OK("abort: reference prefill", lmx_session_eval(ref, prompt, 4, LMX_LOGITS_NONE, NULL, 0));

    /* Abort in the middle of the next evaluation: after the first layer already ran. */
    a = (abort_state){0, 2};
    snprintf(what, sizeof what, "%s abort: decode aborted at the second layer", name);
    EXPECT_ERR(what, lmx_session_eval(s, next, 1, LMX_LOGITS_LAST, got, vocab), LMX_ERR_CANCELLED, "abort");
    size_t n_past = 0, n_tokens = 0, n_l = 0, width = 0;
    lmx_session_n_past(s, &n_past);
    lmx_session_trace_size(s, &n_tokens, &n_l, &width);
    snprintf(what, sizeof what, "%s abort: session unchanged (n_past 4, trace 4 tokens)", name);
    if (n_past == 4 && n_tokens == 4) pass(what);
    else fail(what, "n_past %zu, trace tokens %zu", n_past, n_tokens);

    /* Still usable: the same decode gives the reference's logits. */
    snprintf(what, sizeof what, "%s abort: remove the callback", name);
    EXPECT_OK(what, lmx_session_set_abort_callback(s, NULL, NULL));
    EXPECT_OK("abort: decode after the abort", lmx_session_eval(s, next, 1, LMX_LOGITS_LAST, got, vocab));
    EXPECT_OK("abort: reference decode", lmx_session_eval(ref, next, 1, LMX_LOGITS_LAST, want, vocab));
    snprintf(what, sizeof what, "%s abort: logits after an aborted decode == a session never aborted", name);
    expect_close_n(what, got, want, vocab, 0.0);

    /* generate: aborted on its third token's evaluation; nothing kept. */
    a = (abort_state){0, 2 * n_layers + 1};
    EXPECT_OK("abort: install again", lmx_session_set_abort_callback(s, abort_after, &a));
    lmx_generate_params gp = lmx_generate_params_default();
    gp.max_tokens = 8;
    int32_t outs[8];
    size_t n_out = 99;
    snprintf(what, sizeof what, "%s abort: generate aborted during its third evaluation", name);
    EXPECT_ERR(what, lmx_session_generate(s, NULL, 0, &gp, outs, 8, &n_out), LMX_ERR_CANCELLED, "abort");
    lmx_session_n_past(s, &n_past);
    snprintf(what, sizeof what, "%s abort: generate rolled back (n_past 5, n_out 0)", name);
    if (n_past == 5 && n_out == 0) pass(what);
    else fail(what, "n_past %zu n_out %zu", n_past, n_out);
    lmx_session_set_abort_callback(s, NULL, NULL);
    EXPECT_OK("abort: generate after the aborted one", lmx_session_generate(s, NULL, 0, &gp, outs, 8, &n_out));
    int32_t ref_out[8];
    size_t ref_n = 0;
    EXPECT_OK("abort: reference generate", lmx_session_generate(ref, NULL, 0, &gp, ref_out, 8, &ref_n));
    snprintf(what, sizeof what, "%s abort: generation after the abort == a session never aborted", name);
    if (n_out == ref_n && memcmp(outs, ref_out, n_out * sizeof *outs) == 0) pass(what);
    else fail(what, "%zu vs %zu tokens", n_out, ref_n);
    EXPECT_ERR("abort: NULL session", lmx_session_set_abort_callback(NULL, abort_after, &a), LMX_ERR_INVALID_ARGUMENT,
               "session");
out:
    free(got);
    free(want);
    lmx_session_free(s);
    lmx_session_free(ref);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
}

/* ---------------------------------------------------------------------------------- 5. text */

/* lmx_tokenizer_info without max_id (as an older header might have it), then a canary. */
typedef struct {
    lmx_tokenizer_info info;
    uint32_t canary;
} tokenizer_info_box;

static void test_text_contract(void) {
    char path[1200];
    fixture_path(path, sizeof path, "tokenizers/llama3");
    lmx_tokenizer *tok = NULL;
    if (!EXPECT_OK("text: tokenizer_load", lmx_tokenizer_load(path, &tok))) return;
    lmx_model *model = load("llama_f32");
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL;
    char out[16];
    size_t needed = 0, n = 0;
    int32_t ids[4];

    /* lmx_text_params: refused below the minimum; at the minimum it gets past the params to the
     * vocabulary check (this tokenizer has more ids than llama_f32's 128). */
    if (model && EXPECT_OK("text: mixer", lmx_mixer_create(model, &mixer)) && EXPECT_OK("text: session", lmx_session_create(mixer, NULL, &s))) {
        lmx_text_params tp = lmx_text_params_default();
        if (tp.struct_size == sizeof tp && tp.flags == 0 && tp.on_text == NULL) pass("text_params_default: sizeof, no flags, no callback");
        else fail("text_params_default", "struct_size %u flags %u", tp.struct_size, tp.flags);
        tp.struct_size = (uint32_t)LMX_TEXT_PARAMS_MIN_SIZE - 1;
        EXPECT_ERR("text_params: struct_size = MIN - 1", lmx_session_generate_text(s, tok, "a", 1, NULL, &tp, out, sizeof out, &needed, NULL),
                   LMX_ERR_ABI, "lmx_text_params", "struct_size");
        tp.struct_size = (uint32_t)LMX_TEXT_PARAMS_MIN_SIZE;
        EXPECT_ERR("text_params: struct_size = MIN (then the vocabulary check)",
                   lmx_session_generate_text(s, tok, "a", 1, NULL, &tp, out, sizeof out, &needed, NULL), LMX_ERR_SHAPE, "vocabulary");
        lmx_generate_params gp = lmx_generate_params_default();
        gp.struct_size = (uint32_t)LMX_GENERATE_PARAMS_MIN_SIZE - 1;
        EXPECT_ERR("text: generate_params struct_size = MIN - 1",
                   lmx_session_generate_text(s, tok, "a", 1, &gp, NULL, out, sizeof out, &needed, NULL), LMX_ERR_ABI, "lmx_generate_params");
        EXPECT_ERR("text: model_tokenizer of a folder without one", lmx_model_tokenizer(model, &(lmx_tokenizer *){NULL}),
                   LMX_ERR_NOT_FOUND, "tokenizer");
    }

    /* lmx_tokenizer_info up to n_end_of_turn: max_id and the canary untouched. */
    tokenizer_info_box box;
    memset(&box, 0xA5, sizeof box);
    box.info.struct_size = (uint32_t)LMX_SIZE_THROUGH(lmx_tokenizer_info, n_end_of_turn);
    if (EXPECT_OK("tokenizer_info up to n_end_of_turn", lmx_tokenizer_get_info(tok, &box.info)) && box.info.n_vocab > 0 &&
        (uint32_t)box.info.max_id == 0xA5A5A5A5u && box.canary == 0xA5A5A5A5u)
        pass("tokenizer_info: fields written up to the caller's struct_size, nothing after");
    else fail("tokenizer_info short", "n_vocab %u max_id %08x canary %08x", box.info.n_vocab, (uint32_t)box.info.max_id, box.canary);
    lmx_tokenizer_info tiny = {.struct_size = (uint32_t)LMX_TOKENIZER_INFO_MIN_SIZE - 1};
    EXPECT_ERR("tokenizer_info: struct_size = MIN - 1", lmx_tokenizer_get_info(tok, &tiny), LMX_ERR_ABI, "lmx_tokenizer_info");

    /* stale handles: a freed stream after 64 new streams, a freed tokenizer after new ones */
    lmx_text_stream *old = NULL, *fresh[64] = {0};
    EXPECT_OK("text: stream_create", lmx_text_stream_create(tok, 1, &old));
    lmx_text_stream_free(old);
    int same = 0;
    for (int i = 0; i < 64; i++) {
        lmx_text_stream_create(tok, 1, &fresh[i]);
        same += fresh[i] == old;
    }
    EXPECT_ERR("text: a freed stream after 64 new streams", lmx_text_stream_push(old, 1, out, sizeof out, &needed),
               LMX_ERR_INVALID_ARGUMENT, "stream", "freed");
    if (same == 0) pass("text: no new stream got the freed handle's value");
    else fail("text: stream handles", "%d equal", same);
    for (int i = 0; i < 64; i++) lmx_text_stream_free(fresh[i]);
    lmx_tokenizer *stale = tok, *again = NULL;
    lmx_tokenizer_free(tok);
    tok = NULL;
    EXPECT_OK("text: tokenizer_load again", lmx_tokenizer_load(path, &again));
    EXPECT_ERR("text: a freed tokenizer after a new load", lmx_tokenize(stale, "a", 1, 0, 0, ids, 4, &n),
               LMX_ERR_INVALID_ARGUMENT, "tokenizer", "freed");
    /* wrong kinds, both ways */
    if (s) {
        EXPECT_ERR("text: a session passed as a tokenizer", lmx_tokenize((const lmx_tokenizer *)(const void *)s, "a", 1, 0, 0, ids, 4, &n),
                   LMX_ERR_INVALID_ARGUMENT, "lmx_session", "lmx_tokenizer");
        EXPECT_ERR("text: a tokenizer passed as a session",
                   lmx_session_generate_text((lmx_session *)(void *)again, again, "a", 1, NULL, NULL, out, sizeof out, &needed, NULL),
                   LMX_ERR_INVALID_ARGUMENT, "lmx_tokenizer", "lmx_session");
    }
    if (model)
        EXPECT_ERR("text: a tokenizer passed as a model", lmx_model_tokenizer((const lmx_model *)(const void *)again, &tok),
                   LMX_ERR_INVALID_ARGUMENT, "lmx_tokenizer", "lmx_model");
    /* NULL handles everywhere */
    lmx_tokenizer_info info = {.struct_size = sizeof info};
    lmx_chat_message m = {"user", "x"};
    EXPECT_ERR("text: NULL tokenizer (get_info)", lmx_tokenizer_get_info(NULL, &info), LMX_ERR_INVALID_ARGUMENT, "tokenizer");
    EXPECT_ERR("text: NULL tokenizer (end_of_turn)", lmx_tokenizer_end_of_turn(NULL, ids, 4, &n), LMX_ERR_INVALID_ARGUMENT, "tokenizer");
    EXPECT_ERR("text: NULL tokenizer (tokenize)", lmx_tokenize(NULL, "a", 1, 0, 0, ids, 4, &n), LMX_ERR_INVALID_ARGUMENT, "tokenizer");
    EXPECT_ERR("text: NULL tokenizer (token_to_piece)", lmx_token_to_piece(NULL, 1, out, sizeof out, &needed), LMX_ERR_INVALID_ARGUMENT,
               "tokenizer");
    EXPECT_ERR("text: NULL tokenizer (detokenize)", lmx_detokenize(NULL, ids, 0, 0, out, sizeof out, &needed), LMX_ERR_INVALID_ARGUMENT,
               "tokenizer");
    EXPECT_ERR("text: NULL tokenizer (chat)", lmx_chat_apply_template(NULL, &m, 1, 1, out, sizeof out, &needed), LMX_ERR_INVALID_ARGUMENT,
               "tokenizer");
    EXPECT_ERR("text: NULL stream (finish)", lmx_text_stream_finish(NULL, out, sizeof out, &needed), LMX_ERR_INVALID_ARGUMENT, "stream");
    EXPECT_ERR("text: NULL out (tokenizer_load)", lmx_tokenizer_load(path, NULL), LMX_ERR_INVALID_ARGUMENT, "out");
    lmx_tokenizer_free(again);
    lmx_tokenizer_free(stale); /* no-op */
    lmx_session_free(s);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
}

int main(int argc, char **argv) {
    if (!test_start(argc, argv, fixtures, sizeof fixtures)) return 0;
    test_struct_sizes();
    test_stale_handles();
    test_getters();
    test_abort("llama_f32", 2);
    test_abort("mamba_f32", 2);
    test_text_contract();
    return test_summary("contract_test");
}
