/*
 * train_test.c: the training API over C (lmx_mixer_add_untrained_lora, lmx_train_params_default,
 * lmx_mixer_train and its progress callback) on the tiny llama_f32 fixture.
 *
 *     train_test FIXTURES_DIR
 *
 * Training data (JSON Lines of token ids, vocab 128) and outputs live in a mkdtemp folder, removed
 * at the end. Cases:
 *  1. router regime on e0, e1, e2 + router.safetensors: defaults, every progress call (steps in
 *     order, loads summing to 1, finite losses), the files in out_dir, the mixer adopts the trained
 *     router (new sessions differ, earlier sessions keep their snapshot), router.safetensors
 *     reloads to the same logits;
 *  2. joint regime with label routing on untrained experts (lmx_mixer_add_untrained_lora, q+v):
 *     an untrained expert changes nothing, a trained one does, an expert no example is routed to
 *     stays as it was, the PEFT folders written reload to the same logits;
 *  3. cancellation from the callback (LMX_ERR_CANCELLED, checkpoint, mixer unchanged), then resume
 *     to the end, equal to an uninterrupted run;
 *  4. bad input: exact status and key words of lmx_last_error() for each; the mixer still gives
 *     the same logits afterwards.
 * Prints one line per check and "train_test: N passed, M failed"; exits non-zero on any failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loramixer.h"
#include "test_util.h"

static char fixtures[1024];
static char llama[1024]; /* fixtures/llama_f32 */
static char tmp[256];    /* mkdtemp folder */

#define VOCAB 128
#define LAYERS 2
#define N_EVAL_TOKENS 6
#define N_LOGITS ((size_t)N_EVAL_TOKENS * VOCAB)

/* Tokens evaluated to compare mixers: a prompt and completion of task e0's pattern (see write_train_data). */
static const int32_t eval_tokens[N_EVAL_TOKENS] = {3, 10, 20, 40, 41, 42};

/* ------------------------------------------------------------------------------------------------
 * Files and data
 * ---------------------------------------------------------------------------------------------- */

static void tmp_path(char *out, size_t size, const char *name) { join(out, size, tmp, name); }

/* tmp/<name>, created as a folder. */
static void case_dir(char *out, size_t size, const char *name) { make_dir(out, size, tmp, name); }

static int dir_exists(const char *dir, const char *relative) {
    char path[1400];
    struct stat st;
    join(path, sizeof path, dir, relative);
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ------------------------------------------------------------------------------------------------
 * Mixers and logits
 * ---------------------------------------------------------------------------------------------- */

/* A mixer over `model` with the fixture experts e0 .. e<n-1>, and router.safetensors if `router`. */
static lmx_mixer *fixture_mixer(lmx_model *model, int n_experts, int router) {
    return fixture_mixer_in(llama, "llama_f32", model, n_experts, router ? "router.safetensors" : NULL);
}

/* A session without routing trace. */
static lmx_session *new_session(const char *what, const lmx_mixer *mixer) { return make_session(what, mixer, 0, 0); }

/* Resets `s`, sets fixed weights when `fixed` is not NULL (else keeps the session's routing) and
 * evaluates eval_tokens into out[N_LOGITS]. Reports only a failure. */
static int session_logits(const char *what, lmx_session *s, const float *fixed, size_t n_fixed, float *out) {
    return session_logits_of(what, s, eval_tokens, N_EVAL_TOKENS, ROUTING_KEEP, fixed, n_fixed, out, N_LOGITS);
}

/* Logits of a new session over `mixer` (its default routing, or fixed weights); reports only a failure. */
static int mixer_logits(const char *what, const lmx_mixer *mixer, const float *fixed, size_t n_fixed, float *out) {
    return mixer_logits_of(what, mixer, 0, eval_tokens, N_EVAL_TOKENS, fixed, n_fixed, out, N_LOGITS);
}

static void expect_close(const char *what, const float *got, const float *want, double tolerance) {
    expect_close_n(what, got, want, N_LOGITS, tolerance);
}

static void expect_differ(const char *what, const float *a, const float *b, double at_least) {
    expect_differ_n(what, a, b, N_LOGITS, at_least);
}

/* ------------------------------------------------------------------------------------------------
 * Progress recorder
 * ---------------------------------------------------------------------------------------------- */

#define MAX_CALLS 64

typedef struct {
    int calls;
    int cancel_at;              /* return nonzero when step == cancel_at (0: never) */
    int32_t step[MAX_CALLS], total[MAX_CALLS], epoch[MAX_CALLS]; /* small: kept signed for the checks */
    size_t n_experts[MAX_CALLS], n_layers[MAX_CALLS];
    double load_sum[MAX_CALLS];
    float lr[MAX_CALLS];
    int bad_struct_size;        /* calls whose struct_size != sizeof(lmx_train_progress) */
    int nonfinite;              /* calls with a non-finite loss term, statistic, load or entropy */
    int null_arrays;            /* calls with n_experts/n_layers > 0 but a NULL array */
    int bad_load;               /* calls with a load outside [0, 1] */
    double first_loss;
} recorder;

static int is_finite(double x) { return isfinite(x) != 0; }

static uint32_t record_progress(const lmx_train_progress *p, void *user_data) {
    recorder *r = user_data;
    if (r->calls >= MAX_CALLS) return 1;
    int i = r->calls++;
    if (p->struct_size != sizeof(lmx_train_progress)) r->bad_struct_size++;
    r->step[i] = (int32_t)p->step;
    r->total[i] = (int32_t)p->total_steps;
    r->epoch[i] = (int32_t)p->epoch;
    r->n_experts[i] = p->n_experts;
    r->n_layers[i] = p->n_layers;
    r->lr[i] = p->learning_rate;
    if (i == 0) r->first_loss = p->loss;
    if (!is_finite(p->loss) || !is_finite(p->cross_entropy) || !is_finite(p->balance) || !is_finite(p->entropy_term) ||
        !is_finite(p->preserve) || !is_finite(p->grad_norm) || !is_finite(p->learning_rate) || !is_finite(p->tokens_per_s) ||
        !is_finite(p->elapsed_s) || !is_finite(p->eta_s))
        r->nonfinite++;
    if ((p->n_experts && !p->expert_load) || (p->n_layers && !p->layer_entropy)) {
        r->null_arrays++;
        return r->cancel_at && p->step == (uint32_t)r->cancel_at;
    }
    double sum = 0;
    int bad = 0;
    for (size_t j = 0; j < p->n_experts; j++) {
        if (!is_finite(p->expert_load[j])) bad = 1;
        else if (p->expert_load[j] < 0 || p->expert_load[j] > 1) r->bad_load++;
        sum += p->expert_load[j];
    }
    for (size_t l = 0; l < p->n_layers; l++)
        if (!is_finite(p->layer_entropy[l]) || p->layer_entropy[l] < 0) bad = 1;
    if (bad) r->nonfinite++;
    r->load_sum[i] = sum;
    return r->cancel_at && p->step == (uint32_t)r->cancel_at;
}

/* The calls saw steps first, first+1, ..., last, each with total_steps `total`. */
static void expect_steps(const char *what, const recorder *r, int first, int last, int total) {
    char line[512];
    snprintf(line, sizeof line, "%s: progress called for steps %d..%d of %d, in order", what, first, last, total);
    int want_calls = last - first + 1, bad = -1;
    for (int i = 0; i < r->calls && i < want_calls && bad < 0; i++)
        if (r->step[i] != first + i || r->total[i] != total) bad = i;
    if (r->calls == want_calls && bad < 0) pass(line);
    else if (bad >= 0)
        fail(line, "call %d saw step %d of %d (want %d of %d)", bad + 1, r->step[bad], r->total[bad], first + bad, total);
    else fail(line, "%d calls (want %d); first step %d", r->calls, want_calls, r->calls ? r->step[0] : -1);
}

/* Every call: struct_size, finite numbers, non-NULL arrays. */
static void expect_sane_calls(const char *what, const recorder *r) {
    char line[512];
    snprintf(line, sizeof line, "%s: progress struct_size == sizeof(lmx_train_progress) (%zu) on every call", what,
             sizeof(lmx_train_progress));
    if (r->calls && !r->bad_struct_size) pass(line);
    else fail(line, "%d of %d calls differ", r->bad_struct_size, r->calls);
    snprintf(line, sizeof line, "%s: loss, cross_entropy, statistics, loads and entropies finite on every call", what);
    if (r->calls && !r->nonfinite && !r->null_arrays) pass(line);
    else fail(line, "%d calls with a non-finite value, %d with a NULL array", r->nonfinite, r->null_arrays);
}

/* Every call: n_experts and n_layers as given; the loads sum to 1 within 1e-5 and lie in [0, 1]. */
static void expect_loads(const char *what, const recorder *r, size_t n_experts, size_t n_layers) {
    char line[512];
    int bad = -1;
    for (int i = 0; i < r->calls && bad < 0; i++)
        if (r->n_experts[i] != n_experts || r->n_layers[i] != n_layers) bad = i;
    snprintf(line, sizeof line, "%s: every call has n_experts %zu, n_layers %zu", what, n_experts, n_layers);
    if (r->calls && bad < 0) pass(line);
    else if (bad >= 0) fail(line, "call %d: n_experts %zu, n_layers %zu", bad + 1, r->n_experts[bad], r->n_layers[bad]);
    else fail(line, "no calls");
    bad = -1;
    for (int i = 0; i < r->calls && bad < 0; i++)
        if (!(fabs(r->load_sum[i] - 1.0) <= 1e-5)) bad = i;
    snprintf(line, sizeof line, "%s: expert_load sums to 1 (within 1e-5) on every call, each share in [0, 1]", what);
    if (r->calls && bad < 0 && !r->bad_load) pass(line);
    else if (bad >= 0) fail(line, "call %d: sum %.7f", bad + 1, r->load_sum[bad]);
    else fail(line, "%d shares outside [0, 1]", r->bad_load);
}

/* ------------------------------------------------------------------------------------------------
 * 1. Router regime: defaults, progress, outputs, adoption and snapshots
 * ---------------------------------------------------------------------------------------------- */

static void test_defaults(void) {
    lmx_train_params p = lmx_train_params_default();
    char line[1024];
    int ok = p.struct_size == sizeof(lmx_train_params) && p.regime == LMX_TRAIN_ROUTER &&
             p.routing == LMX_TRAIN_ROUTING_TOPK && p.learning_rate == 1e-3f && p.batch_size == 16 && p.epochs == 1;
    snprintf(line, sizeof line,
             "train_params_default: struct_size == sizeof (%zu), regime ROUTER, routing TOPK, lr 1e-3, batch 16, epochs 1",
             sizeof(lmx_train_params));
    if (ok) pass(line);
    else fail(line, "struct_size %u, regime %u, routing %u, lr %g, batch %d, epochs %d", p.struct_size, p.regime, p.routing,
              (double)p.learning_rate, p.batch_size, p.epochs);
    /* The other documented defaults (header comments). */
    ok = p.router_context == 0 && p.soft_steps == 0 && p.top_k == 0 && p.temperature == 0 && p.alpha == 0.01f &&
         p.lambda == 0 && p.beta == 0 && p.sensitive == NULL && p.min_learning_rate == 0 && p.warmup_steps == 0 &&
         p.weight_decay == 0.01f && p.adam_beta1 == 0.9f && p.adam_beta2 == 0.999f && p.adam_epsilon == 1e-8f &&
         p.clip_norm == 1 && p.steps == 0 && p.seed == 0 && p.checkpoint_every == 0 && p.resume == 0 &&
         p.n_threads == 0 && p.eval_max_tokens == 32;
    if (ok)
        pass("train_params_default: alpha 0.01, lambda 0, beta 0, sensitive NULL, weight decay 0.01, Adam 0.9/0.999/1e-8, "
             "clip 1, steps 0, seed 0, checkpoint_every 0, resume 0, n_threads 0, eval_max_tokens 32, the rest 0");
    else
        fail("train_params_default: the other fields",
             "router_context %u soft_steps %d top_k %d temperature %g alpha %g lambda %g beta %g sensitive %p min_lr %g "
             "warmup %d wd %g betas %g/%g eps %g clip %g steps %d seed %llu ckpt %d resume %d threads %d eval_max %d",
             p.router_context, p.soft_steps, p.top_k, (double)p.temperature, (double)p.alpha, (double)p.lambda,
             (double)p.beta, (const void *)p.sensitive, (double)p.min_learning_rate, p.warmup_steps,
             (double)p.weight_decay, (double)p.adam_beta1, (double)p.adam_beta2, (double)p.adam_epsilon,
             (double)p.clip_norm, p.steps, (unsigned long long)p.seed, p.checkpoint_every, p.resume, p.n_threads,
             p.eval_max_tokens);
}

static void test_router_regime(lmx_model *model) {
    static const char *const tasks[3] = {"e0", "e1", "e2"};
    char data[1200], eval[1200], out[1200];
    tmp_path(data, sizeof data, "router.jsonl");
    write_train_data(data, tasks, 3, 4); /* 12 examples: 3 batches of 4 */
    tmp_path(eval, sizeof eval, "router_eval.jsonl");
    write_or_die(eval, "{\"prompt_tokens\": [3, 10, 20], \"completion_tokens\": [40, 41], \"task\": \"e0\"}\n"
                       "\n"
                       "{\"prompt_tokens\": [4, 11, 27], \"completion_tokens\": [61, 62], \"task\": \"e1\"}\n");
    case_dir(out, sizeof out, "router_out");

    lmx_mixer *mixer = fixture_mixer(model, 3, 1);
    if (!mixer) return;
    float *before = malloc(N_LOGITS * sizeof(float)), *after = malloc(N_LOGITS * sizeof(float));
    float *old_again = malloc(N_LOGITS * sizeof(float)), *reloaded = malloc(N_LOGITS * sizeof(float));
    lmx_session *old = new_session("router: session before training", mixer);
    if (!old || !session_logits("router: logits before training", old, NULL, 0, before)) goto done;

    lmx_train_params p = small_train_params(4, 2);
    p.eval_max_tokens = 2;
    recorder rec = {0};
    if (!EXPECT_OK("router: mixer_train (router regime, TOPK, 4 steps of 4, lr 1e-2, eval file)",
                   lmx_mixer_train(mixer, data, eval, out, &p, record_progress, &rec)))
        goto done;
    expect_steps("router", &rec, 1, 4, 4);
    expect_sane_calls("router", &rec);
    expect_loads("router", &rec, 3, LAYERS);
    {
        /* 3 batches per epoch: step 4 is the first of epoch 1 (0-based). Cosine from lr 1e-2, no warmup. */
        int epochs_ok = rec.calls == 4 && rec.epoch[0] == 0 && rec.epoch[2] == 0 && rec.epoch[3] == 1;
        if (epochs_ok) pass("router: epoch 0 for steps 1..3, 1 for step 4 (12 examples, batch 4)");
        else fail("router: epochs", "saw %d %d %d %d", rec.epoch[0], rec.epoch[1], rec.epoch[2], rec.epoch[3]);
        int lr_ok = rec.calls == 4 && rec.lr[0] == 1e-2f && rec.lr[1] < rec.lr[0] && rec.lr[2] < rec.lr[1] &&
                    rec.lr[3] < rec.lr[2] && rec.lr[3] > 0;
        if (lr_ok) pass("router: learning_rate 1e-2 at step 1, then decreasing (cosine), > 0");
        else fail("router: learning rate schedule", "%g %g %g %g", (double)rec.lr[0], (double)rec.lr[1], (double)rec.lr[2],
                  (double)rec.lr[3]);
    }
    expect_file("router: out_dir", out, "router.safetensors");
    expect_file("router: out_dir", out, "report.json");
    expect_file("router: out_dir", out, "checkpoint/state.safetensors");
    if (!dir_exists(out, "experts")) pass("router: out_dir has no experts/ (experts are frozen in the router regime)");
    else fail("router: no experts/ in the router regime", "%s/experts exists", out);
    {
        char path[1400];
        join(path, sizeof path, out, "report.json");
        unsigned char *report = read_file(path, NULL);
        const char *text = report ? (const char *)report : "";
        if (strstr(text, "\"loramixer.training_report\"") && strstr(text, "\"completed_steps\":4") &&
            strstr(text, "\"total_steps\":4") && strstr(text, "\"exact_match\"") && strstr(text, "\"task\":\"e1\""))
            pass("router: report.json is a training report: 4 of 4 steps, evaluation per task (e0, e1)");
        else fail("router: report.json content", "\"%.300s\"", text);
        free(report);
    }

    /* The mixer adopted the trained router: a new session differs; the old one kept its snapshot. */
    if (mixer_logits("router: logits of a session created after training", mixer, NULL, 0, after))
        expect_differ("router: a session created after training differs from one created before (trained router adopted)",
                      after, before, 1e-4);
    if (session_logits("router: the session created before training, evaluated again", old, NULL, 0, old_again))
        expect_close("router: the session created before training still gives its old logits (snapshot)", old_again,
                     before, 0);

    /* out_dir/router.safetensors is the adopted router. */
    {
        lmx_mixer *fresh = fixture_mixer(model, 3, 0);
        char path[1400];
        join(path, sizeof path, out, "router.safetensors");
        if (fresh && EXPECT_OK("router: load the written router.safetensors into a fresh mixer with e0, e1, e2",
                               lmx_mixer_load_router(fresh, path)) &&
            mixer_logits("router: logits with the written router", fresh, NULL, 0, reloaded))
            expect_close("router: the written router gives the trained mixer's logits", reloaded, after, 1e-6);
        lmx_mixer_free(fresh);
    }
done:
    lmx_session_free(old);
    lmx_mixer_free(mixer);
    free(before);
    free(after);
    free(old_again);
    free(reloaded);
}

/* ------------------------------------------------------------------------------------------------
 * 2. Joint regime, label routing, untrained experts
 * ---------------------------------------------------------------------------------------------- */

#define Q_AND_V ((1u << LMX_MODULE_Q_PROJ) | (1u << LMX_MODULE_V_PROJ))

static void test_joint_regime(lmx_model *model) {
    static const char *const tasks[2] = {"new0", "new1"};
    static const float w_e0[3] = {1, 0, 0}, w_new0[3] = {0, 1, 0}, w_new1[3] = {0, 0, 1}, w_one[2][2] = {{1, 0}, {0, 1}};
    char data[1200], out[1200];
    tmp_path(data, sizeof data, "joint.jsonl");
    write_train_data(data, tasks, 2, 8); /* 16 examples */
    case_dir(out, sizeof out, "joint_out");

    lmx_mixer *mixer = fixture_mixer(model, 1, 0); /* e0, no router */
    if (!mixer) return;
    float *base = malloc(N_LOGITS * sizeof(float)), *e0_before = malloc(N_LOGITS * sizeof(float));
    float *x = malloc(N_LOGITS * sizeof(float)), *trained[2] = {malloc(N_LOGITS * sizeof(float)), malloc(N_LOGITS * sizeof(float))};
    float *reloaded = malloc(N_LOGITS * sizeof(float));

    size_t index = 777;
    if (EXPECT_OK("joint: add_untrained_lora new0 (rank 4, alpha 8, q_proj | v_proj, seed 1)",
                  lmx_mixer_add_untrained_lora(mixer, "new0", 4, 8.0f, Q_AND_V, 1, &index))) {
        if (index == 1) pass("joint: new0 got index 1");
        else fail("joint: new0 index", "got %zu, want 1", index);
    }
    index = 777;
    if (EXPECT_OK("joint: add_untrained_lora new1 (rank 4, alpha 8, q_proj | v_proj, seed 2)",
                  lmx_mixer_add_untrained_lora(mixer, "new1", 4, 8.0f, Q_AND_V, 2, &index))) {
        if (index == 2) pass("joint: new1 got index 2");
        else fail("joint: new1 index", "got %zu, want 2", index);
    }
    size_t count = 0;
    if (lmx_mixer_expert_count(mixer, &count) != LMX_OK || count != 3) {
        fail("joint: expert count 3 (e0, new0, new1)", "got %zu: %s", count, lmx_last_error());
        goto done;
    }

    /* Before training: an untrained expert (B = 0) changes nothing. */
    if (!mixer_logits("joint: base logits (routing NONE)", mixer, NULL, 0, base)) goto done;
    if (mixer_logits("joint: logits with fixed routing on untrained new0", mixer, w_new0, 3, x))
        expect_close("joint: untrained new0 (fixed routing on it) gives the base logits", x, base, 1e-6);
    if (mixer_logits("joint: logits with fixed routing on untrained new1", mixer, w_new1, 3, x))
        expect_close("joint: untrained new1 (fixed routing on it) gives the base logits", x, base, 1e-6);
    if (!mixer_logits("joint: logits with fixed routing on e0", mixer, w_e0, 3, e0_before)) goto done;
    expect_differ("joint: e0 (a trained PEFT adapter) does change the logits", e0_before, base, 1e-4);

    lmx_train_params p = small_train_params(4, 1);
    p.regime = LMX_TRAIN_JOINT;
    p.routing = LMX_TRAIN_ROUTING_LABEL;
    recorder rec = {0};
    if (!EXPECT_OK("joint: mixer_train (joint regime, LABEL routing on new0/new1, 4 steps of 4)",
                   lmx_mixer_train(mixer, data, NULL, out, &p, record_progress, &rec)))
        goto done;
    expect_steps("joint", &rec, 1, 4, 4);
    expect_sane_calls("joint", &rec);
    printf("info joint: label routing without a router reports n_experts %zu, n_layers %zu per step\n",
           rec.calls ? rec.n_experts[0] : 0, rec.calls ? rec.n_layers[0] : 0);

    for (int e = 0; e < 2; e++) {
        char rel[128], what[256];
        snprintf(rel, sizeof rel, "experts/%s/adapter_config.json", tasks[e]);
        expect_file("joint: out_dir", out, rel);
        snprintf(rel, sizeof rel, "experts/%s/adapter_model.safetensors", tasks[e]);
        expect_file("joint: out_dir", out, rel);
        snprintf(what, sizeof what, "joint: logits with fixed routing on trained %s", tasks[e]);
        if (mixer_logits(what, mixer, e == 0 ? w_new0 : w_new1, 3, trained[e])) {
            snprintf(what, sizeof what, "joint: trained %s (fixed routing on it) changes the logits", tasks[e]);
            expect_differ(what, trained[e], base, 1e-4);
        }
    }
    expect_file("joint: out_dir", out, "experts/e0/adapter_model.safetensors");
    expect_file("joint: out_dir", out, "checkpoint/state.safetensors");
    expect_file("joint: out_dir", out, "report.json");
    if (!file_exists(out, "router.safetensors")) pass("joint: no router.safetensors (label routing on a mixer without router trains none)");
    else fail("joint: no router.safetensors", "%s/router.safetensors was written", out);
    if (mixer_logits("joint: logits with fixed routing on e0 after training", mixer, w_e0, 3, x))
        expect_close("joint: e0, to which no example was routed, is unchanged by training", x, e0_before, 1e-6);
    {
        char path[1400];
        join(path, sizeof path, out, "experts/new0/adapter_config.json");
        unsigned char *config = read_file(path, NULL);
        const char *text = config ? (const char *)config : "";
        if (strstr(text, "\"r\":4") && strstr(text, "\"lora_alpha\":8") && strstr(text, "\"q_proj\"") &&
            strstr(text, "\"v_proj\"") && !strstr(text, "k_proj") && !strstr(text, "o_proj") && strstr(text, "\"LORA\""))
            pass("joint: experts/new0/adapter_config.json: r 4, lora_alpha 8, target_modules q_proj and v_proj only");
        else fail("joint: adapter_config.json content", "\"%.400s\"", text);
        free(config);
    }

    /* The written PEFT folders load into a fresh mixer and give the trained experts' logits. */
    {
        lmx_mixer *fresh = NULL;
        if (EXPECT_OK("joint: mixer_create (fresh)", lmx_mixer_create(model, &fresh))) {
            int ok = 1;
            for (int e = 0; e < 2 && ok; e++) {
                char dir[1400], rel[64], what[256];
                snprintf(rel, sizeof rel, "experts/%s", tasks[e]);
                join(dir, sizeof dir, out, rel);
                snprintf(what, sizeof what, "joint: add_peft the written %s into a fresh mixer", rel);
                ok = EXPECT_OK(what, lmx_mixer_add_peft(fresh, tasks[e], dir, NULL));
            }
            for (int e = 0; e < 2 && ok; e++) {
                char what[256];
                snprintf(what, sizeof what, "joint: reloaded %s gives the trained expert's logits", tasks[e]);
                if (mixer_logits(what, fresh, w_one[e], 2, reloaded)) expect_close(what, reloaded, trained[e], 1e-5);
            }
        }
        lmx_mixer_free(fresh);
    }
done:
    lmx_mixer_free(mixer);
    free(base);
    free(e0_before);
    free(x);
    free(trained[0]);
    free(trained[1]);
    free(reloaded);
}

/* ------------------------------------------------------------------------------------------------
 * 3. Cancellation and resume
 * ---------------------------------------------------------------------------------------------- */

static void test_cancel_resume(lmx_model *model) {
    static const char *const tasks[3] = {"e0", "e1", "e2"};
    char data[1200], out[1200];
    tmp_path(data, sizeof data, "cancel.jsonl");
    write_train_data(data, tasks, 3, 4);
    case_dir(out, sizeof out, "cancel_out");

    lmx_mixer *mixer = fixture_mixer(model, 3, 1);
    lmx_mixer *straight = fixture_mixer(model, 3, 1);
    float *before = malloc(N_LOGITS * sizeof(float)), *x = malloc(N_LOGITS * sizeof(float));
    float *resumed = malloc(N_LOGITS * sizeof(float)), *uninterrupted = malloc(N_LOGITS * sizeof(float));
    if (!mixer || !straight || !mixer_logits("cancel: logits before training", mixer, NULL, 0, before)) goto done;

    lmx_train_params p = small_train_params(6, 1);
    recorder rec = {.cancel_at = 2};
    EXPECT_ERR("cancel: progress returns nonzero at step 2 of 6",
               lmx_mixer_train(mixer, data, NULL, out, &p, record_progress, &rec), LMX_ERR_CANCELLED, "cancelled",
               "checkpoint", "step 2 of 6");
    expect_steps("cancel", &rec, 1, 2, 6);
    expect_file("cancel: out_dir", out, "checkpoint/state.safetensors");
    if (mixer_logits("cancel: logits of a new session after the cancelled run", mixer, NULL, 0, x))
        expect_close("cancel: the mixer is unchanged by the cancelled run", x, before, 0);

    /* Without out_dir there is no checkpoint, and the message must not claim one. */
    {
        recorder r1 = {.cancel_at = 1};
        current_check = "cancel: out_dir NULL";
        lmx_status st = lmx_mixer_train(mixer, data, NULL, NULL, &p, record_progress, &r1);
        if (expect_status("cancel: out_dir NULL, progress returns nonzero at step 1", st, LMX_ERR_CANCELLED, "cancelled",
                          "step 1 of 6", (const char *)0)) {
            if (!contains_ci(lmx_last_error(), "checkpoint")) pass("cancel: out_dir NULL: the message mentions no checkpoint");
            else fail("cancel: out_dir NULL: the message mentions no checkpoint", "\"%s\"", lmx_last_error());
        }
        if (mixer_logits("cancel: logits after the second cancelled run", mixer, NULL, 0, x))
            expect_close("cancel: out_dir NULL: the mixer is unchanged", x, before, 0);
    }

    p.resume = 1;
    recorder rec2 = {0};
    if (EXPECT_OK("cancel: resume = 1, same data and out_dir", lmx_mixer_train(mixer, data, NULL, out, &p, record_progress, &rec2))) {
        expect_steps("resume", &rec2, 3, 6, 6);
        expect_loads("resume", &rec2, 3, LAYERS);
        if (mixer_logits("resume: logits after the resumed run", mixer, NULL, 0, resumed)) {
            expect_differ("resume: the mixer holds the trained router", resumed, before, 1e-4);
            /* The same 6 steps without interruption (and without out_dir: nothing written). */
            lmx_train_params q = small_train_params(6, 1);
            if (EXPECT_OK("resume: an uninterrupted 6-step run on another mixer, out_dir NULL",
                          lmx_mixer_train(straight, data, NULL, NULL, &q, NULL, NULL)) &&
                mixer_logits("resume: logits after the uninterrupted run", straight, NULL, 0, uninterrupted))
                expect_close("resume: cancel at 2 + resume gives the uninterrupted run's logits", resumed, uninterrupted,
                             1e-6);
        }
    }
done:
    lmx_mixer_free(mixer);
    lmx_mixer_free(straight);
    free(before);
    free(x);
    free(resumed);
    free(uninterrupted);
}

/* ------------------------------------------------------------------------------------------------
 * 4. Bad input
 * ---------------------------------------------------------------------------------------------- */

static lmx_status noop_forward(void *user_data, uint32_t layer, uint32_t module, const float *input, float *output,
                               size_t n_rows, size_t in_features, size_t out_features) {
    (void)user_data; (void)layer; (void)module; (void)input; (void)output; (void)n_rows; (void)in_features;
    (void)out_features;
    return LMX_OK;
}

static void test_untrained_errors(lmx_model *model) {
    lmx_mixer *mixer = fixture_mixer(model, 1, 0);
    if (!mixer) return;
    size_t index = 777;
    EXPECT_ERR("add_untrained_lora: NULL mixer", lmx_mixer_add_untrained_lora(NULL, "u", 4, 8, Q_AND_V, 0, &index),
               LMX_ERR_INVALID_ARGUMENT, "mixer");
    EXPECT_ERR("add_untrained_lora: a model handle as the mixer",
               lmx_mixer_add_untrained_lora((lmx_mixer *)(void *)model, "u", 4, 8, Q_AND_V, 0, &index),
               LMX_ERR_INVALID_ARGUMENT, "mixer", "model");
    EXPECT_ERR("add_untrained_lora: NULL name", lmx_mixer_add_untrained_lora(mixer, NULL, 4, 8, Q_AND_V, 0, &index),
               LMX_ERR_INVALID_ARGUMENT, "name");
    EXPECT_ERR("add_untrained_lora: empty name", lmx_mixer_add_untrained_lora(mixer, "", 4, 8, Q_AND_V, 0, &index),
               LMX_ERR_INVALID_ARGUMENT, "name");
    EXPECT_ERR("add_untrained_lora: name e0 taken", lmx_mixer_add_untrained_lora(mixer, "e0", 4, 8, Q_AND_V, 0, &index),
               LMX_ERR_INVALID_ARGUMENT, "e0", "already");
    EXPECT_ERR("add_untrained_lora: rank 0", lmx_mixer_add_untrained_lora(mixer, "u", 0, 8, Q_AND_V, 0, &index),
               LMX_ERR_INVALID_ARGUMENT, "rank", "1...4096");
    EXPECT_ERR("add_untrained_lora: rank 4097", lmx_mixer_add_untrained_lora(mixer, "u", 4097, 8, Q_AND_V, 0, &index),
               LMX_ERR_INVALID_ARGUMENT, "rank", "4097");
    EXPECT_ERR("add_untrained_lora: alpha 0", lmx_mixer_add_untrained_lora(mixer, "u", 4, 0, Q_AND_V, 0, &index),
               LMX_ERR_INVALID_ARGUMENT, "alpha");
    EXPECT_ERR("add_untrained_lora: alpha -1", lmx_mixer_add_untrained_lora(mixer, "u", 4, -1, Q_AND_V, 0, &index),
               LMX_ERR_INVALID_ARGUMENT, "alpha");
    EXPECT_ERR("add_untrained_lora: alpha NaN", lmx_mixer_add_untrained_lora(mixer, "u", 4, NAN, Q_AND_V, 0, &index),
               LMX_ERR_INVALID_ARGUMENT, "alpha");
    EXPECT_ERR("add_untrained_lora: module_mask 0", lmx_mixer_add_untrained_lora(mixer, "u", 4, 8, 0, 0, &index),
               LMX_ERR_INVALID_ARGUMENT, "module_mask");
    EXPECT_ERR("add_untrained_lora: module_mask bit 7 (Mamba's in_proj)",
               lmx_mixer_add_untrained_lora(mixer, "u", 4, 8, 1u << 7, 0, &index), LMX_ERR_INVALID_ARGUMENT, "module_mask",
               "in_proj does not exist", "LlamaForCausalLM");
    EXPECT_ERR("add_untrained_lora: module_mask q_proj | bit 31",
               lmx_mixer_add_untrained_lora(mixer, "u", 4, 8, 1u | 1u << 31, 0, &index), LMX_ERR_INVALID_ARGUMENT,
               "module_mask", "bit 31 is not an LMX_MODULE_* value");
    size_t count = 0;
    if (lmx_mixer_expert_count(mixer, &count) == LMX_OK && count == 1 && index == 777)
        pass("add_untrained_lora: refused calls add nothing and leave out_index alone");
    else fail("add_untrained_lora: refused calls add nothing", "expert count %zu (want 1), out_index %zu (want 777)", count, index);
    if (EXPECT_OK("add_untrained_lora: k_proj only (mask 0x2)",
                  lmx_mixer_add_untrained_lora(mixer, "k", 2, 2, 1u << LMX_MODULE_K_PROJ, 0, &index))) {
        if (index == 1 && lmx_mixer_expert_count(mixer, &count) == LMX_OK && count == 2)
            pass("add_untrained_lora: k got index 1, expert count 2");
        else fail("add_untrained_lora: k added", "out_index %zu (want 1), expert count %zu (want 2)", index, count);
    }
    /* out_index is optional ("if not NULL"): the expert must be added all the same. */
    if (EXPECT_OK("add_untrained_lora: all seven modules (mask 0x7f), out_index NULL",
                  lmx_mixer_add_untrained_lora(mixer, "all", 2, 2, 0x7f, 0, NULL))) {
        if (lmx_mixer_expert_count(mixer, &count) == LMX_OK && count == 3)
            pass("add_untrained_lora: with out_index NULL the expert is added too (expert count 3)");
        else fail("add_untrained_lora: with out_index NULL the expert is added too", "expert count %zu, want 3", count);
    }
    lmx_mixer_free(mixer);

    mixer = fixture_mixer(model, 3, 1);
    if (mixer) {
        index = 777;
        EXPECT_ERR("add_untrained_lora: after a router was loaded",
                   lmx_mixer_add_untrained_lora(mixer, "late", 4, 8, Q_AND_V, 0, &index), LMX_ERR_STATE, "router", "late");
        EXPECT_ERR("add_untrained_lora: after a router was loaded, out_index NULL",
                   lmx_mixer_add_untrained_lora(mixer, "late", 4, 8, Q_AND_V, 0, NULL), LMX_ERR_STATE, "router", "late");
        if (lmx_mixer_expert_count(mixer, &count) == LMX_OK && count == 3 && index == 777)
            pass("add_untrained_lora: refused after the router: expert count still 3, out_index untouched");
        else fail("add_untrained_lora: refused after the router", "expert count %zu (want 3), out_index %zu (want 777)", count, index);
    }
    lmx_mixer_free(mixer);
}

/* One failing lmx_mixer_train call with the mixer, data and params given. */
#define TRAIN_ERR(what, mixer, data, params, want, ...) \
    EXPECT_ERR(what, lmx_mixer_train((mixer), (data), NULL, out, (params), NULL, NULL), want, __VA_ARGS__)

static void test_train_errors(lmx_model *model) {
    static const char *const tasks[3] = {"e0", "e1", "e2"};
    char data[1200], out[1200], path[1200], dir[1200];
    tmp_path(data, sizeof data, "errors.jsonl");
    write_train_data(data, tasks, 3, 2);
    case_dir(out, sizeof out, "errors_out");

    lmx_mixer *mixer = fixture_mixer(model, 3, 1);
    if (!mixer) return;
    float *before = malloc(N_LOGITS * sizeof(float)), *x = malloc(N_LOGITS * sizeof(float));
    if (!mixer_logits("train errors: logits before", mixer, NULL, 0, before)) goto done;
    /* Steps 1 everywhere: a call wrongly accepted costs little. */
    const lmx_train_params ok = small_train_params(1, 1);
    lmx_train_params p;

    TRAIN_ERR("mixer_train: NULL mixer", NULL, data, &ok, LMX_ERR_INVALID_ARGUMENT, "mixer");
    TRAIN_ERR("mixer_train: a model handle as the mixer", (lmx_mixer *)(void *)model, data, &ok, LMX_ERR_INVALID_ARGUMENT,
              "mixer", "model");
    TRAIN_ERR("mixer_train: NULL data_path", mixer, NULL, &ok, LMX_ERR_INVALID_ARGUMENT, "data_path");
    TRAIN_ERR("mixer_train: empty data_path", mixer, "", &ok, LMX_ERR_INVALID_ARGUMENT, "data_path", "empty");
    EXPECT_ERR("mixer_train: empty eval_path", lmx_mixer_train(mixer, data, "", out, &ok, NULL, NULL),
               LMX_ERR_INVALID_ARGUMENT, "eval_path", "empty");
    EXPECT_ERR("mixer_train: empty out_dir", lmx_mixer_train(mixer, data, NULL, "", &ok, NULL, NULL),
               LMX_ERR_INVALID_ARGUMENT, "out_dir", "empty");

    tmp_path(path, sizeof path, "missing.jsonl");
    TRAIN_ERR("mixer_train: missing data file", mixer, path, &ok, LMX_ERR_IO, "missing.jsonl");
    EXPECT_ERR("mixer_train: missing eval file", lmx_mixer_train(mixer, data, path, out, &ok, NULL, NULL), LMX_ERR_IO,
               "missing.jsonl");
    tmp_path(path, sizeof path, "bad_json.jsonl");
    write_or_die(path, "{\"tokens\": [1, 2, 3]}\n{\"tokens\": [1, 2,\n{\"tokens\": [4, 5]}\n");
    TRAIN_ERR("mixer_train: malformed JSON on line 2", mixer, path, &ok, LMX_ERR_FORMAT, "bad_json.jsonl:2", "JSON");
    tmp_path(path, sizeof path, "not_object.jsonl");
    write_or_die(path, "[1, 2, 3]\n");
    TRAIN_ERR("mixer_train: a line that is not an object", mixer, path, &ok, LMX_ERR_FORMAT, "not_object.jsonl:1",
              "object");
    tmp_path(path, sizeof path, "range.jsonl");
    write_or_die(path, "{\"tokens\": [1, 2, 3]}\n\n{\"prompt_tokens\": [1, 2], \"completion_tokens\": [128]}\n");
    TRAIN_ERR("mixer_train: token id 128 (vocab 128) on line 3", mixer, path, &ok, LMX_ERR_INVALID_ARGUMENT,
              "range.jsonl:3", "128", "0..<128");
    tmp_path(path, sizeof path, "negative.jsonl");
    write_or_die(path, "{\"tokens\": [1, -1, 3]}\n");
    TRAIN_ERR("mixer_train: token id -1", mixer, path, &ok, LMX_ERR_INVALID_ARGUMENT, "negative.jsonl:1", "-1");
    tmp_path(path, sizeof path, "text.jsonl");
    write_or_die(path, "{\"text\": \"hello\"}\n");
    TRAIN_ERR("mixer_train: a text field on a model that is not byte-level", mixer, path, &ok, LMX_ERR_INVALID_ARGUMENT,
              "text.jsonl:1", "128", "token ids");
    tmp_path(path, sizeof path, "short.jsonl");
    write_or_die(path, "{\"tokens\": [7]}\n");
    TRAIN_ERR("mixer_train: an example of 1 token", mixer, path, &ok, LMX_ERR_INVALID_ARGUMENT, "short.jsonl:1", "2 tokens");
    tmp_path(path, sizeof path, "empty.jsonl");
    write_or_die(path, "\n\n");
    TRAIN_ERR("mixer_train: a data file with only blank lines", mixer, path, &ok, LMX_ERR_INVALID_ARGUMENT, "empty.jsonl",
              "no examples");

    p = ok; p.struct_size = 0;
    TRAIN_ERR("mixer_train: params.struct_size 0", mixer, data, &p, LMX_ERR_ABI, "struct_size", "sizeof(lmx_train_params)");
    p = ok; p.struct_size = (uint32_t)sizeof(lmx_train_params) - 4;
    TRAIN_ERR("mixer_train: params.struct_size sizeof - 4", mixer, data, &p, LMX_ERR_ABI, "struct_size",
              "sizeof(lmx_train_params)");
    p = ok; p.regime = 7;
    TRAIN_ERR("mixer_train: regime 7", mixer, data, &p, LMX_ERR_INVALID_ARGUMENT, "regime", "7");
    p = ok; p.routing = 9;
    TRAIN_ERR("mixer_train: routing 9", mixer, data, &p, LMX_ERR_INVALID_ARGUMENT, "routing", "9");
    p = ok; p.steps = -1;
    TRAIN_ERR("mixer_train: steps -1", mixer, data, &p, LMX_ERR_INVALID_ARGUMENT, "steps", "-1");
    p = ok; p.learning_rate = 0;
    TRAIN_ERR("mixer_train: learning_rate 0", mixer, data, &p, LMX_ERR_INVALID_ARGUMENT, "learning rate");
    p = ok; p.learning_rate = NAN;
    TRAIN_ERR("mixer_train: learning_rate NaN", mixer, data, &p, LMX_ERR_INVALID_ARGUMENT, "learning rate", "nan");
    p = ok; p.learning_rate = -1e-3f;
    TRAIN_ERR("mixer_train: learning_rate -1e-3", mixer, data, &p, LMX_ERR_INVALID_ARGUMENT, "learning rate");
    p = ok; p.batch_size = 0;
    TRAIN_ERR("mixer_train: batch_size 0", mixer, data, &p, LMX_ERR_INVALID_ARGUMENT, "batch size", "0");
    p = ok; p.epochs = 0; p.steps = 0;
    TRAIN_ERR("mixer_train: epochs 0 (steps 0)", mixer, data, &p, LMX_ERR_INVALID_ARGUMENT, "epochs", "0");
    p = ok; p.n_threads = -2;
    TRAIN_ERR("mixer_train: n_threads -2", mixer, data, &p, LMX_ERR_INVALID_ARGUMENT, "n_threads", "-2");
    p = ok; p.top_k = 4;
    TRAIN_ERR("mixer_train: top_k 4 of 3 experts", mixer, data, &p, LMX_ERR_INVALID_ARGUMENT, "top_k", "4");
    p = ok; p.soft_steps = 2; p.routing = LMX_TRAIN_ROUTING_SOFT;
    TRAIN_ERR("mixer_train: soft_steps with routing SOFT", mixer, data, &p, LMX_ERR_INVALID_ARGUMENT, "soft_steps");
    p = ok; p.beta = 0.5f;
    TRAIN_ERR("mixer_train: beta > 0 with the router regime", mixer, data, &p, LMX_ERR_INVALID_ARGUMENT, "beta");
    p = ok; p.regime = LMX_TRAIN_JOINT; p.beta = 0.5f; p.sensitive = "e1,nope";
    TRAIN_ERR("mixer_train: sensitive names an unknown expert", mixer, data, &p, LMX_ERR_NOT_FOUND, "sensitive", "nope");

    tmp_path(path, sizeof path, "no_task.jsonl");
    write_or_die(path, "{\"tokens\": [1, 2, 3], \"task\": \"e0\"}\n{\"tokens\": [4, 5, 6]}\n");
    p = ok; p.routing = LMX_TRAIN_ROUTING_LABEL;
    TRAIN_ERR("mixer_train: label routing, an example without \"task\"", mixer, path, &p, LMX_ERR_INVALID_ARGUMENT, "task",
              "none");
    tmp_path(path, sizeof path, "bad_task.jsonl");
    write_or_die(path, "{\"tokens\": [1, 2, 3], \"task\": \"zzz\"}\n");
    TRAIN_ERR("mixer_train: label routing, a task naming no expert", mixer, path, &p, LMX_ERR_INVALID_ARGUMENT, "task",
              "zzz");
    tmp_path(path, sizeof path, "task_number.jsonl");
    write_or_die(path, "{\"tokens\": [1, 2, 3], \"task\": 3}\n");
    TRAIN_ERR("mixer_train: a task that is not a string", mixer, path, &ok, LMX_ERR_FORMAT, "task_number.jsonl:1", "task");

    /* resume: an out_dir without a checkpoint starts over; one from another run is refused. */
    case_dir(dir, sizeof dir, "other_run");
    {
        lmx_mixer *other = fixture_mixer(model, 3, 1);
        lmx_train_params a = small_train_params(2, 1);
        a.resume = 1;
        recorder rec = {0};
        if (other && EXPECT_OK("mixer_train: resume = 1 with an out_dir without checkpoint (run A, 2 steps)",
                               lmx_mixer_train(other, data, NULL, dir, &a, record_progress, &rec)))
            expect_steps("run A", &rec, 1, 2, 2);
        lmx_mixer_free(other);
        p = small_train_params(2, 1);
        p.learning_rate = 5e-3f;
        p.resume = 1;
        EXPECT_ERR("mixer_train: resume from run A's checkpoint with another learning rate",
                   lmx_mixer_train(mixer, data, NULL, dir, &p, NULL, NULL), LMX_ERR_STATE, "different run",
                   "state.safetensors");
    }

    /* Failures of the file system, not of the arguments: LMX_ERR_IO naming the path. (A read-only
     * folder would not do: the tests may run as root.) */
    {
        char blocker[1200], under[1300];
        tmp_path(blocker, sizeof blocker, "a_file");
        write_or_die(blocker, "not a folder\n");
        snprintf(under, sizeof under, "%s/out", blocker);
        EXPECT_ERR("mixer_train: out_dir below a regular file", lmx_mixer_train(mixer, data, NULL, under, &ok, NULL, NULL),
                   LMX_ERR_IO, "a_file", "not a folder");
        case_dir(dir, sizeof dir, "experts_blocked");
        snprintf(under, sizeof under, "%s/experts", dir);
        write_or_die(under, "in the way\n");
        p = ok; p.regime = LMX_TRAIN_JOINT;
        EXPECT_ERR("mixer_train: joint, out_dir/experts is a regular file (PEFT folders cannot be created)",
                   lmx_mixer_train(mixer, data, NULL, dir, &p, NULL, NULL), LMX_ERR_IO, "experts_blocked/experts",
                   "not a folder");
    }

    /* Mixers training cannot use. */
    {
        lmx_mixer *empty = NULL;
        if (EXPECT_OK("mixer_train: mixer_create (no experts)", lmx_mixer_create(model, &empty)))
            EXPECT_ERR("mixer_train: a mixer without experts", lmx_mixer_train(empty, data, NULL, NULL, &ok, NULL, NULL),
                       LMX_ERR_STATE, "no experts");
        lmx_mixer_free(empty);
        lmx_mixer *custom = fixture_mixer(model, 1, 0);
        static const uint32_t o_proj[1] = {LMX_MODULE_O_PROJ}, in96[1] = {96}, out64[1] = {64};
        const lmx_custom_expert_desc d = {.struct_size = sizeof(lmx_custom_expert_desc), .modules = o_proj,
                                          .in_features = in96, .out_features = out64, .n_modules = 1,
                                          .forward = noop_forward};
        if (custom && EXPECT_OK("mixer_train: add a custom expert 'c' next to e0", lmx_mixer_add_custom(custom, "c", &d, NULL)))
            /* The header lists "custom experts" under LMX_ERR_STATE. */
            EXPECT_ERR("mixer_train: a mixer with a custom expert", lmx_mixer_train(custom, data, NULL, NULL, &ok, NULL, NULL),
                       LMX_ERR_STATE, "custom", "'c'");
        lmx_mixer_free(custom);
    }

    /* After every failure above the mixer is as it was and still evaluates. */
    if (mixer_logits("train errors: logits after the failed calls", mixer, NULL, 0, x))
        expect_close("mixer_train: after every refused call the mixer evaluates to its old logits", x, before, 0);
done:
    lmx_mixer_free(mixer);
    free(before);
    free(x);
}

/* NULL params: the defaults (batch 16, 1 epoch: one step over 6 examples). */
static void test_null_params(lmx_model *model) {
    static const char *const tasks[3] = {"e0", "e1", "e2"};
    char data[1200];
    tmp_path(data, sizeof data, "null_params.jsonl");
    write_train_data(data, tasks, 3, 2);
    lmx_mixer *mixer = fixture_mixer(model, 3, 1);
    recorder rec = {0};
    if (mixer && EXPECT_OK("mixer_train: NULL params (defaults), out_dir NULL",
                           lmx_mixer_train(mixer, data, NULL, NULL, NULL, record_progress, &rec)))
        expect_steps("NULL params", &rec, 1, 1, 1);
    lmx_mixer_free(mixer);
}

/* ------------------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    if (!test_start(argc, argv, fixtures, sizeof fixtures)) return 2;
    join(llama, sizeof llama, fixtures, "llama_f32");

    if (!make_temp_dir(tmp, sizeof tmp, "lmx_train_test")) return 2;

    test_defaults();
    lmx_model *model = NULL;
    if (EXPECT_OK("model_load: llama_f32", lmx_model_load(llama, NULL, &model))) {
        test_router_regime(model);
        test_joint_regime(model);
        test_cancel_resume(model);
        test_untrained_errors(model);
        test_train_errors(model);
        test_null_params(model);
        lmx_model_free(model);
    }

    remove_tree(tmp);
    return test_summary("train_test");
}
