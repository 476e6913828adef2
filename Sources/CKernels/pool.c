#include "lmx_kernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Spins before an idle worker sleeps: about 50 microseconds, longer than the gap between the
 * kernels of one forward pass, shorter than a host's pause between calls. */
enum { SPIN_LIMIT = 20000 };

/* Chunks are claimed from `next`, whose high 32 bits name the job and low 32 bits the next chunk.
 * A worker that wakes late for a job (another process had its core) can only claim a chunk while
 * `next` still names that job, so it never runs a chunk of a later job with an earlier job's task;
 * the caller, meanwhile, claims every chunk nobody else took. So a descheduled worker costs at
 * most the one chunk it holds, never the whole job. */
#define JOB_SHIFT 32
#define CHUNK_MASK 0xffffffffu
#define CLOSED CHUNK_MASK

struct lmxk_pool {
    int threads;
    pthread_t *workers;
    atomic_uint_fast64_t next;     /* job << 32 | next chunk */
    atomic_uint_fast32_t job;      /* bumped once per run; workers wait for it to change */
    atomic_uint done;              /* chunks finished in the current job */
    _Atomic(lmxk_task) task;
    _Atomic(void *) context;
    atomic_uint chunks;
    atomic_int stop;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
};

/* Claims and runs chunks of `job` until none are left (or the job is over). */
static void work(lmxk_pool *pool, uint_fast32_t job) {
    lmxk_task task = atomic_load_explicit(&pool->task, memory_order_acquire);
    void *context = atomic_load_explicit(&pool->context, memory_order_acquire);
    unsigned chunks = atomic_load_explicit(&pool->chunks, memory_order_acquire);
    for (;;) {
        uint_fast64_t now = atomic_load_explicit(&pool->next, memory_order_acquire);
        if ((now >> JOB_SHIFT) != job || (now & CHUNK_MASK) >= chunks) return;
        if (!atomic_compare_exchange_weak_explicit(&pool->next, &now, now + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        task(context, (int)(now & CHUNK_MASK), (int)chunks);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_acq_rel);
    }
}

static void *worker_main(void *raw) {
    lmxk_pool *pool = raw;
    uint_fast32_t seen = 0;
    for (;;) {
        uint_fast32_t job;
        int spins = 0;
        while ((job = atomic_load_explicit(&pool->job, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&pool->stop, memory_order_acquire)) return NULL;
            if (++spins < SPIN_LIMIT) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->mutex);
            while (atomic_load_explicit(&pool->job, memory_order_acquire) == seen &&
                   !atomic_load_explicit(&pool->stop, memory_order_acquire))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
            spins = 0;
        }
        seen = job;
        work(pool, job);
    }
}

lmxk_pool *lmxk_pool_create(int threads) {
    if (threads < 1) return NULL;
    lmxk_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->threads = threads;
    atomic_init(&pool->next, CLOSED);
    atomic_init(&pool->job, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->task, NULL);
    atomic_init(&pool->context, NULL);
    atomic_init(&pool->chunks, 0);
    atomic_init(&pool->stop, 0);
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->workers = calloc((size_t)threads, sizeof *pool->workers);
    if (!pool->workers) {
        free(pool);
        return NULL;
    }
    for (int i = 1; i < threads; i++) {
        if (pthread_create(&pool->workers[i], NULL, worker_main, pool) != 0) {
            pool->threads = i; /* join the ones that started */
            lmxk_pool_free(pool);
            return NULL;
        }
    }
    return pool;
}

int lmxk_pool_threads(const lmxk_pool *pool) { return pool ? pool->threads : 1; }

void lmxk_pool_run(lmxk_pool *pool, int chunks, lmxk_task task, void *context) {
    if (chunks <= 0) return;
    if (!pool || pool->threads == 1 || chunks == 1) {
        for (int c = 0; c < chunks; c++) task(context, c, chunks);
        return;
    }
    uint_fast32_t job = atomic_load_explicit(&pool->job, memory_order_relaxed) + 1;
    /* The previous job's `next` still reads CLOSED-or-exhausted; publish the new job's fields,
     * then open it, then wake the workers. */
    atomic_store_explicit(&pool->next, ((uint_fast64_t)job << JOB_SHIFT) | CLOSED, memory_order_release);
    atomic_store_explicit(&pool->task, task, memory_order_release);
    atomic_store_explicit(&pool->context, context, memory_order_release);
    atomic_store_explicit(&pool->chunks, (unsigned)chunks, memory_order_release);
    atomic_store_explicit(&pool->done, 0, memory_order_release);
    atomic_store_explicit(&pool->next, (uint_fast64_t)job << JOB_SHIFT, memory_order_release);
    pthread_mutex_lock(&pool->mutex);
    atomic_store_explicit(&pool->job, job, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);

    work(pool, job);
    for (int spins = 0; atomic_load_explicit(&pool->done, memory_order_acquire) < (unsigned)chunks; spins++) {
        if (spins < SPIN_LIMIT) cpu_relax();
        else sched_yield(); /* a worker holding a chunk lost its core: let it have ours */
    }
    atomic_store_explicit(&pool->next, ((uint_fast64_t)job << JOB_SHIFT) | CLOSED, memory_order_release);
}

void lmxk_pool_free(lmxk_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store_explicit(&pool->stop, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->threads; i++) pthread_join(pool->workers[i], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    free(pool->workers);
    free(pool);
}
