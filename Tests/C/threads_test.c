/*
 * threads_test.c: one model and one mixer (e0, e1, e2 + router) shared by two threads, on
 * llama_f32 and on mamba_f32; then experts from memory across threads (llama_f32).
 *
 *     threads_test FIXTURES_DIR [ITERATIONS]     (default 20 iterations per thread)
 *
 * Shared mixer, for each of the two fixtures (test_shared_mixer; check names start with the
 * fixture's): the main thread loads the model, builds the mixer with e0-e2 and router.safetensors,
 * evaluates the fixture tokens sequentially (LMX_LOGITS_ALL) as the reference, and checks it against
 * the oracle (learned_logits, 1e-4) and against a second sequential run (bit-identical). On
 * mamba_f32 it also evaluates the tokens as a 5-token prefill followed by 7 single-token evals
 * (LMX_LOGITS_LAST each), the split reference: its 8 rows must match learned_logits rows 4-11 within
 * 1e-4. Then two threads start together (barrier); each loads and frees a model of its own from the
 * fixture (one mmap, one copy, at once), creates its own session from the shared mixer and evaluates
 * the tokens ITERATIONS times (reset between runs); every run must be bit-identical to the
 * reference, and on mamba_f32 every iteration also repeats the split, bit-identical to the split
 * reference. Each thread also makes a failing call with its own marker after every run and checks
 * that lmx_last_error() shows its own message (the last error is per thread).
 *
 * Then experts from memory across threads: a second mixer holds a borrowed LoRA (lmx_lora_desc with
 * `release`) and a custom expert (lmx_custom_expert_desc). Two threads create sessions from it; the
 * main thread frees the mixer before they start evaluating (barriers); each thread evaluates ITERATIONS times with weights
 * {0.5, 0.5} (the custom forward runs on both threads at once), bit-identical to a sequential run,
 * and frees its session. release and destroy must each run exactly once, on the worker thread that
 * frees the last session (the tensors are freed in release, so a later use shows under valgrind).
 * Prints "threads_test: N passed, M failed".
 */
#define _XOPEN_SOURCE 700

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loramixer.h"
#include "test_util.h"

#define N_TOKENS 12
#define VOCAB 128
#define N_THREADS 2
/* The split evaluation (mamba_f32): a PREFILL-token prefill, then one token at a time; SPLIT_ROWS
 * rows of logits, those of tokens PREFILL-1 .. N_TOKENS-1. */
#define PREFILL 5
#define SPLIT_ROWS (N_TOKENS - PREFILL + 1)

/* "<fixture>: <what>", in one of 8 rotating buffers (a name lives on while the next few are made). */
__attribute__((format(printf, 2, 3))) static const char *named(const char *fixture, const char *fmt, ...) {
    static char buffers[8][256];
    static int next;
    char *out = buffers[next++ % 8];
    int n = snprintf(out, sizeof buffers[0], "%s: ", fixture);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, sizeof buffers[0] - (size_t)n, fmt, ap);
    va_end(ap);
    return out;
}

/* Resets `s` and evaluates tokens[N_TOKENS] at once, LMX_LOGITS_ALL, into out[N_TOKENS][VOCAB]. */
static lmx_status eval_all(lmx_session *s, const int32_t *tokens, float *out) {
    lmx_status st = lmx_session_reset(s);
    return st == LMX_OK ? lmx_session_eval(s, tokens, N_TOKENS, LMX_LOGITS_ALL, out, (size_t)N_TOKENS * VOCAB) : st;
}

/* Resets `s` and evaluates tokens[N_TOKENS] as a PREFILL-token prefill followed by single-token
 * evals, LMX_LOGITS_LAST each, into out[SPLIT_ROWS][VOCAB]. */
static lmx_status eval_split(lmx_session *s, const int32_t *tokens, float *out) {
    lmx_status st = lmx_session_reset(s);
    if (st == LMX_OK) st = lmx_session_eval(s, tokens, PREFILL, LMX_LOGITS_LAST, out, VOCAB);
    for (int t = PREFILL; st == LMX_OK && t < N_TOKENS; t++)
        st = lmx_session_eval(s, tokens + t, 1, LMX_LOGITS_LAST, out + (size_t)(t - PREFILL + 1) * VOCAB, VOCAB);
    return st;
}

/* How many of a thread's runs of one kind were bit-identical to the sequential one, how many not. */
typedef struct {
    int identical, failed;
} tally;

typedef struct {
    int id;
    const lmx_mixer *mixer;
    const int32_t *tokens;
    const float *reference;
    const float *split_reference; /* NULL: no split runs */
    int iterations;
    pthread_barrier_t *barrier;
    /* results */
    int created;
    tally runs, split_runs;
    int error_isolation_failures;
    int own_model_ok;
    const char *model_dir;
    char first_problem[512];
} job;

static void note(job *j, const char *fmt, const char *detail, int iteration) {
    if (j->first_problem[0]) return;
    snprintf(j->first_problem, sizeof j->first_problem, fmt, iteration, detail);
}

/* Counts one run (`kind`: "run" or "split run") of iteration i in *t: identical if it succeeded and
 * got[n] equals want[n] bit for bit; else failed, and noted if it is the thread's first problem. */
static void count_run(job *j, tally *t, const char *kind, int i, lmx_status st, const float *got, const float *want,
                      size_t n) {
    if (st == LMX_OK && memcmp(got, want, sizeof(float) * n) == 0) {
        t->identical++;
        return;
    }
    t->failed++;
    char detail[400];
    if (st != LMX_OK) snprintf(detail, sizeof detail, "%s: %s", kind, lmx_last_error());
    else snprintf(detail, sizeof detail, "%s: logits differ from the sequential %s", kind, kind);
    note(j, "iteration %d, %s", detail, i);
}

/* One check: all `iterations` runs counted in *t were bit-identical. */
static void report_runs(const char *what, const job *j, const tally *t, int iterations) {
    if (j->created && t->identical == iterations) pass(what);
    else fail(what, "%d identical, %d failed; first problem: %s", t->identical, t->failed, j->first_problem);
}

static void *worker(void *arg) {
    job *j = arg;
    float *logits = malloc(sizeof(float) * N_TOKENS * VOCAB);
    float *split = malloc(sizeof(float) * SPLIT_ROWS * VOCAB);
    lmx_session *session = NULL;
    pthread_barrier_wait(j->barrier);
    /* Loading is thread-safe too: both threads load (and free) a model of their own at once. */
    lmx_model *own = NULL;
    lmx_model_params params = lmx_model_params_default();
    params.load_mode = j->id % 2 ? LMX_LOAD_COPY : LMX_LOAD_MMAP;
    j->own_model_ok = lmx_model_load(j->model_dir, &params, &own) == LMX_OK;
    if (!j->own_model_ok) note(j, "own model_load (iteration %d): %s", lmx_last_error(), 0);
    lmx_model_free(own);
    lmx_status st = lmx_session_create(j->mixer, NULL, &session);
    j->created = st == LMX_OK;
    if (!j->created) note(j, "session_create (iteration %d): %s", lmx_last_error(), 0);
    for (int i = 0; j->created && i < j->iterations; i++) {
        count_run(j, &j->runs, "run", i, eval_all(session, j->tokens, logits), logits, j->reference,
                  (size_t)N_TOKENS * VOCAB);
        if (j->split_reference)
            count_run(j, &j->split_runs, "split run", i, eval_split(session, j->tokens, split), split,
                      j->split_reference, (size_t)SPLIT_ROWS * VOCAB);
        /* A failing call with this thread's marker; the message must be this thread's own. */
        char marker[64], path[128];
        snprintf(marker, sizeof marker, "no-such-model-thread-%d-run-%d", j->id, i);
        snprintf(path, sizeof path, "/nonexistent/%s", marker);
        lmx_model *model = NULL;
        st = lmx_model_load(path, NULL, &model);
        if (st != LMX_ERR_IO || !strstr(lmx_last_error(), marker)) {
            j->error_isolation_failures++;
            note(j, "iteration %d: lmx_last_error() is \"%s\" (expected this thread's marker)", lmx_last_error(), i);
        }
        if (st == LMX_OK) lmx_model_free(model);
    }
    lmx_session_free(session);
    free(split);
    free(logits);
    return NULL;
}

/* The shared-mixer test on FIXTURES/<fixture> (see the top of this file); with `split`, the
 * prefill + single-token runs too. Returns the model (the caller frees it), NULL if it did not load. */
static lmx_model *test_shared_mixer(const char *fixtures, const char *fixture, int split, int iterations) {
    char dir[1024], path[1100];
    join(dir, sizeof dir, fixtures, fixture);
    join(path, sizeof path, dir, "expected.safetensors");
    size_t n_tokens = 0, n_oracle = 0;
    int32_t *tokens = fixture_tensor(path, "tokens", "I32", &n_tokens);
    float *oracle = fixture_tensor(path, "learned_logits", "F32", &n_oracle);
    if (!tokens || n_tokens != N_TOKENS || !oracle || n_oracle != (size_t)N_TOKENS * VOCAB) {
        fprintf(stderr, "threads_test: cannot read %s\n", path);
        exit(2);
    }

    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL;
    float *reference = calloc((size_t)N_TOKENS * VOCAB, sizeof(float));
    float *again = calloc((size_t)N_TOKENS * VOCAB, sizeof(float));
    float *split_reference = split ? calloc((size_t)SPLIT_ROWS * VOCAB, sizeof(float)) : NULL;
    int ok = EXPECT_OK(named(fixture, "model_load"), lmx_model_load(dir, NULL, &model)) &&
             (mixer = fixture_mixer_in(dir, fixture, model, 3, "router.safetensors")) != NULL;
    if (ok) pass(named(fixture, "mixer with e0, e1, e2 and router.safetensors"));
    ok = ok && EXPECT_OK(named(fixture, "sequential session_create"), lmx_session_create(mixer, NULL, &s)) &&
         EXPECT_OK(named(fixture, "sequential eval (reference)"), eval_all(s, tokens, reference));
    if (ok) {
        expect_close_n(named(fixture, "sequential run matches learned_logits"), reference, oracle,
                       (size_t)N_TOKENS * VOCAB, 1e-4);
        ok = EXPECT_OK(named(fixture, "sequential eval again"), eval_all(s, tokens, again));
        if (ok && memcmp(reference, again, sizeof(float) * N_TOKENS * VOCAB) == 0)
            pass(named(fixture, "sequential runs are bit-identical"));
        else if (ok) fail(named(fixture, "sequential runs are bit-identical"), "the second run differs");
    }
    if (ok && split) {
        ok = EXPECT_OK(named(fixture, "sequential prefill %d + %d single-token evals (split reference)", PREFILL,
                             N_TOKENS - PREFILL),
                       eval_split(s, tokens, split_reference));
        if (ok)
            expect_close_n(named(fixture, "split reference matches learned_logits rows %d-%d", PREFILL - 1,
                                 N_TOKENS - 1),
                           split_reference, oracle + (size_t)(PREFILL - 1) * VOCAB, (size_t)SPLIT_ROWS * VOCAB, 1e-4);
    }
    lmx_session_free(s);

    if (ok) {
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, N_THREADS);
        job jobs[N_THREADS];
        pthread_t threads[N_THREADS];
        for (int t = 0; t < N_THREADS; t++) {
            jobs[t] = (job){.id = t, .mixer = mixer, .tokens = tokens, .reference = reference,
                            .split_reference = split_reference, .iterations = iterations, .barrier = &barrier,
                            .model_dir = dir};
            if (pthread_create(&threads[t], NULL, worker, &jobs[t]) != 0) {
                fprintf(stderr, "pthread_create failed\n");
                exit(2);
            }
        }
        for (int t = 0; t < N_THREADS; t++) pthread_join(threads[t], NULL);
        pthread_barrier_destroy(&barrier);
        for (int t = 0; t < N_THREADS; t++) {
            job *j = &jobs[t];
            const char *what = named(fixture, "thread %d: lmx_model_load while the other thread loads too", t);
            if (j->own_model_ok) pass(what);
            else fail(what, "%s", j->first_problem);
            what = named(fixture, "thread %d: session_create from the shared mixer", t);
            if (j->created) pass(what);
            else fail(what, "%s", j->first_problem);
            report_runs(named(fixture, "thread %d: %d runs bit-identical to the sequential run", t, iterations), j,
                        &j->runs, iterations);
            if (split)
                report_runs(named(fixture, "thread %d: %d split runs (prefill %d + %d single-token) bit-identical to "
                                  "the sequential split run", t, iterations, PREFILL, N_TOKENS - PREFILL),
                            j, &j->split_runs, iterations);
            what = named(fixture, "thread %d: lmx_last_error() is per thread", t);
            if (j->created && j->error_isolation_failures == 0) pass(what);
            else fail(what, "%d failures; first problem: %s", j->error_isolation_failures, j->first_problem);
        }
    }

    lmx_mixer_free(mixer);
    free(split_reference);
    free(reference);
    free(again);
    free(tokens);
    free(oracle);
    return model;
}

/* ------------------------------------------------------------------------------------------------
 * Experts from memory across threads
 * ---------------------------------------------------------------------------------------------- */

#define MEM_TOKENS 6

/* The borrowed LoRA: q_proj of layer 0 (64 -> 96), rank 2, tensors malloc'ed and freed by release. */
static float *borrowed_a, *borrowed_b;
static atomic_int released, destroyed, forward_calls, forward_in_flight, forward_overlap;
static pthread_t release_thread, destroy_thread;

static void release_borrowed(void *user_data) {
    (void)user_data;
    release_thread = pthread_self();
    free(borrowed_a);
    free(borrowed_b);
    borrowed_a = borrowed_b = NULL;
    atomic_fetch_add(&released, 1);
}

static void destroy_custom(void *user_data) {
    (void)user_data;
    destroy_thread = pthread_self();
    atomic_fetch_add(&destroyed, 1);
}

/* output[r][j] += 0.05 * input[r][(3 j) % in] * (1 + j % 5): read-only state, so thread-safe. Notes
 * whether two calls overlapped (both threads inside forward at once). */
static lmx_status custom_forward(void *user_data, uint32_t layer, uint32_t module, const float *input, float *output,
                                 size_t n_rows, size_t in_features, size_t out_features) {
    (void)user_data;
    (void)layer;
    (void)module;
    atomic_fetch_add(&forward_calls, 1);
    if (atomic_fetch_add(&forward_in_flight, 1) > 0) atomic_fetch_add(&forward_overlap, 1);
    for (size_t r = 0; r < n_rows; r++)
        for (size_t j = 0; j < out_features; j++)
            output[r * out_features + j] += 0.05f * input[r * in_features + (3 * j) % in_features] * (float)(1 + j % 5);
    atomic_fetch_sub(&forward_in_flight, 1);
    return LMX_OK;
}

typedef struct {
    const lmx_mixer *mixer;
    const float *reference;
    int iterations;
    pthread_barrier_t *created; /* the workers and the main thread: sessions exist, mixer may go */
    pthread_barrier_t *freed;   /* ... the main thread has freed the mixer: the workers may run */
    int session_ok, identical_runs;
    char problem[256];
} memory_job;

static const int32_t mem_tokens[MEM_TOKENS] = {3, 14, 15, 92, 65, 35};

static void *memory_worker(void *arg) {
    memory_job *j = arg;
    lmx_session *session = NULL;
    float logits[MEM_TOKENS * VOCAB];
    const float weights[2] = {0.5f, 0.5f};
    j->session_ok = lmx_session_create(j->mixer, NULL, &session) == LMX_OK &&
                    lmx_session_set_fixed_weights(session, weights, 2) == LMX_OK;
    if (!j->session_ok) snprintf(j->problem, sizeof j->problem, "session setup: %s", lmx_last_error());
    pthread_barrier_wait(j->created);
    pthread_barrier_wait(j->freed);
    for (int i = 0; j->session_ok && i < j->iterations; i++) {
        lmx_status st = lmx_session_reset(session);
        if (st == LMX_OK) st = lmx_session_eval(session, mem_tokens, MEM_TOKENS, LMX_LOGITS_ALL, logits, MEM_TOKENS * VOCAB);
        if (st != LMX_OK) {
            if (!j->problem[0]) snprintf(j->problem, sizeof j->problem, "iteration %d: %s", i, lmx_last_error());
        } else if (memcmp(logits, j->reference, sizeof logits) != 0) {
            if (!j->problem[0]) snprintf(j->problem, sizeof j->problem, "iteration %d: logits differ", i);
        } else {
            j->identical_runs++;
        }
    }
    lmx_session_free(session);
    return NULL;
}

static void test_memory_experts(lmx_model *model, int iterations) {
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL;
    float reference[MEM_TOKENS * VOCAB], base[MEM_TOKENS * VOCAB];
    borrowed_a = malloc(sizeof(float) * 2 * 64);
    borrowed_b = malloc(sizeof(float) * 96 * 2);
    for (int i = 0; i < 2 * 64; i++) borrowed_a[i] = (float)((i * 37) % 19 - 9) * 0.02f;
    for (int i = 0; i < 96 * 2; i++) borrowed_b[i] = (float)((i * 53) % 23 - 11) * 0.02f;
    lmx_lora_tensor tensor = {.layer = 0, .module = LMX_MODULE_Q_PROJ, .in_features = 64, .out_features = 96,
                              .a = borrowed_a, .b = borrowed_b};
    lmx_lora_desc lora = {.struct_size = sizeof(lmx_lora_desc), .dtype = LMX_DTYPE_F32, .rank = 2, .alpha = 4.0f,
                          .tensors = &tensor, .n_tensors = 1, .release = release_borrowed, .user_data = NULL};
    static const uint32_t modules[2] = {LMX_MODULE_O_PROJ, LMX_MODULE_UP_PROJ}, ins[2] = {96, 64}, outs[2] = {64, 96};
    lmx_custom_expert_desc custom = {.struct_size = sizeof(lmx_custom_expert_desc), .modules = modules,
                                     .in_features = ins, .out_features = outs, .n_modules = 2, .layers = NULL,
                                     .n_layers = 0, .forward = custom_forward, .destroy = destroy_custom,
                                     .user_data = NULL};
    const float weights[2] = {0.5f, 0.5f};
    int ok = EXPECT_OK("memory experts: mixer_create", lmx_mixer_create(model, &mixer)) &&
             EXPECT_OK("memory experts: add_lora borrowed", lmx_mixer_add_lora(mixer, "borrowed", &lora, NULL)) &&
             EXPECT_OK("memory experts: add_custom", lmx_mixer_add_custom(mixer, "custom", &custom, NULL)) &&
             EXPECT_OK("memory experts: sequential session", lmx_session_create(mixer, NULL, &s)) &&
             EXPECT_OK("memory experts: base run (routing NONE)",
                       lmx_session_eval(s, mem_tokens, MEM_TOKENS, LMX_LOGITS_ALL, base, MEM_TOKENS * VOCAB)) &&
             EXPECT_OK("memory experts: weights {0.5, 0.5}", lmx_session_set_fixed_weights(s, weights, 2)) &&
             EXPECT_OK("memory experts: reset", lmx_session_reset(s)) &&
             EXPECT_OK("memory experts: sequential run (reference)",
                       lmx_session_eval(s, mem_tokens, MEM_TOKENS, LMX_LOGITS_ALL, reference, MEM_TOKENS * VOCAB));
    lmx_session_free(s);
    if (ok) {
        if (memcmp(base, reference, sizeof base) != 0) pass("memory experts: the experts change the logits");
        else fail("memory experts: the experts change the logits", "identical to the base model");
        pthread_barrier_t created, freed;
        pthread_barrier_init(&created, NULL, N_THREADS + 1);
        pthread_barrier_init(&freed, NULL, N_THREADS + 1);
        memory_job jobs[N_THREADS];
        pthread_t threads[N_THREADS];
        for (int t = 0; t < N_THREADS; t++) {
            memset(&jobs[t], 0, sizeof jobs[t]);
            jobs[t].mixer = mixer;
            jobs[t].reference = reference;
            jobs[t].iterations = iterations;
            jobs[t].created = &created;
            jobs[t].freed = &freed;
            if (pthread_create(&threads[t], NULL, memory_worker, &jobs[t]) != 0) {
                fprintf(stderr, "pthread_create failed\n");
                exit(2);
            }
        }
        pthread_barrier_wait(&created);
        lmx_mixer_free(mixer); /* the sessions keep the experts alive */
        mixer = NULL;
        int after_mixer_free = atomic_load(&released) + atomic_load(&destroyed);
        pthread_barrier_wait(&freed);
        for (int t = 0; t < N_THREADS; t++) pthread_join(threads[t], NULL);
        pthread_barrier_destroy(&created);
        pthread_barrier_destroy(&freed);
        for (int t = 0; t < N_THREADS; t++) {
            char what[160];
            snprintf(what, sizeof what, "memory experts: thread %d, %d runs bit-identical to the sequential run", t,
                     iterations);
            if (jobs[t].session_ok && jobs[t].identical_runs == iterations) pass(what);
            else fail(what, "%d identical; %s", jobs[t].identical_runs, jobs[t].problem);
        }
        if (after_mixer_free == 0) pass("memory experts: lmx_mixer_free with live sessions releases nothing");
        else fail("memory experts: lmx_mixer_free with live sessions", "release/destroy ran %d times", after_mixer_free);
        int r = atomic_load(&released), d = atomic_load(&destroyed);
        pthread_t main_thread = pthread_self();
        if (r == 1 && d == 1 && !pthread_equal(release_thread, main_thread) && !pthread_equal(destroy_thread, main_thread))
            pass("memory experts: release and destroy ran once each, on the worker that freed the last session");
        else fail("memory experts: release and destroy once, on a worker thread",
                  "release %d, destroy %d; release on the main thread: %d, destroy on the main thread: %d", r, d,
                  r && pthread_equal(release_thread, main_thread), d && pthread_equal(destroy_thread, main_thread));
        printf("note memory experts: %d forward calls, %d of them while the other thread was inside forward\n",
               atomic_load(&forward_calls), atomic_load(&forward_overlap));
    }
    lmx_mixer_free(mixer);
    if (atomic_load(&released) == 0) { /* never added, or the test failed early */
        free(borrowed_a);
        free(borrowed_b);
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s FIXTURES_DIR [ITERATIONS]\n", argv[0]);
        return 2;
    }
    int iterations = argc == 3 ? atoi(argv[2]) : 20;
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_crash_handler();

    lmx_model *llama = test_shared_mixer(argv[1], "llama_f32", 0, iterations);
    lmx_model_free(test_shared_mixer(argv[1], "mamba_f32", 1, iterations));
    if (llama) test_memory_experts(llama, iterations);
    lmx_model_free(llama);

    printf("threads_test: %d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed ? 1 : 0;
}
