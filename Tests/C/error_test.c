/*
 * error_test.c: bad input over the public C API, plus a happy path against the oracle fixtures.
 *
 *     error_test FIXTURES_DIR            all cases (FIXTURES_DIR = Tests/Fixtures)
 *     error_test --happy FIXTURES_DIR    only the happy path (used under valgrind)
 *
 * Corrupt files are written at run time into a mkdtemp folder (removed at the end). Every error
 * case asserts the exact lmx_status and that lmx_last_error() contains the key words a host needs
 * (file name, tensor name, argument name, expected value). Prints one line per check and
 * "error_test: N passed, M failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE /* mallinfo2 */

#include <errno.h>
#include <malloc.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loramixer.h"
#include "test_util.h"

static char fixtures[1024];
static char llama[1024];   /* fixtures/llama_f32 */
static char tmp[256];      /* mkdtemp folder */

#define N_TOKENS 12
#define VOCAB 128
#define LAYERS 2

/* ------------------------------------------------------------------------------------------------
 * File helpers
 * ---------------------------------------------------------------------------------------------- */

static void fixture(char *out, size_t size, const char *relative) { join(out, size, fixtures, relative); }

/* tmp/<name>, created as a folder. */
static void case_dir(char *out, size_t size, const char *name) {
    join(out, size, tmp, name);
    if (mkdir(out, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "mkdir %s failed\n", out);
        exit(2);
    }
}

/* Returns a malloc'ed copy of `text` with the first `old` replaced by `new_text` (aborts if absent). */
static char *replace_once(const char *text, const char *old, const char *new_text) {
    const char *at = strstr(text, old);
    if (!at) {
        fprintf(stderr, "replace_once: '%s' not found\n", old);
        exit(2);
    }
    size_t head = (size_t)(at - text), old_len = strlen(old), new_len = strlen(new_text);
    char *out = malloc(strlen(text) - old_len + new_len + 1);
    memcpy(out, text, head);
    memcpy(out + head, new_text, new_len);
    strcpy(out + head + new_len, at + old_len);
    return out;
}

/* 8-byte little-endian `declared_len`, then `header` bytes (strlen), then `data_len` zero bytes. */
static void write_safetensors_raw(const char *path, uint64_t declared_len, const char *header, size_t data_len) {
    size_t header_len = strlen(header);
    size_t total = 8 + header_len + data_len;
    unsigned char *bytes = calloc(1, total);
    for (int i = 0; i < 8; i++) bytes[i] = (unsigned char)(declared_len >> (8 * i));
    memcpy(bytes + 8, header, header_len);
    for (size_t i = 0; i < data_len; i++) bytes[8 + header_len + i] = (unsigned char)(i * 7 + 1);
    if (!write_file(path, bytes, total)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    free(bytes);
}

static void write_safetensors(const char *path, const char *header, size_t data_len) {
    write_safetensors_raw(path, strlen(header), header, data_len);
}

/* A model folder tmp/<name> with llama_f32's config.json (or `config`) and no weights yet. */
static void model_case(char *dir, size_t size, const char *name, const char *config) {
    char path[1200], from[1200];
    case_dir(dir, size, name);
    join(path, sizeof path, dir, "config.json");
    if (config) {
        write_text(path, config);
    } else {
        join(from, sizeof from, llama, "config.json");
        copy_file(from, path);
    }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

/* The real llama_f32 weights, with their header split out. */
typedef struct {
    unsigned char *bytes;
    size_t len;
    size_t header_len;
} st_file;

static st_file load_st(const char *path) {
    st_file f = {0};
    f.bytes = read_file(path, &f.len);
    if (!f.bytes || f.len < 8) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | f.bytes[i];
    f.header_len = (size_t)n;
    return f;
}

/* Writes `f` with its header text edited (same length required so offsets stay valid). */
static void write_st_edited(const char *path, const st_file *f, const char *old, const char *new_text) {
    if (strlen(old) != strlen(new_text)) {
        fprintf(stderr, "write_st_edited: edits must keep the length\n");
        exit(2);
    }
    unsigned char *copy = malloc(f->len);
    memcpy(copy, f->bytes, f->len);
    char *header = malloc(f->header_len + 1);
    memcpy(header, copy + 8, f->header_len);
    header[f->header_len] = 0;
    char *at = strstr(header, old);
    if (!at) {
        fprintf(stderr, "write_st_edited: '%s' not in header\n", old);
        exit(2);
    }
    memcpy(copy + 8 + (at - header), new_text, strlen(new_text));
    write_file(path, copy, f->len);
    free(header);
    free(copy);
}

/* ------------------------------------------------------------------------------------------------
 * Library basics
 * ---------------------------------------------------------------------------------------------- */

static void test_library(void) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", LMX_VERSION_MAJOR, LMX_VERSION_MINOR, LMX_VERSION_PATCH);
    const char *version = lmx_version();
    if (version && strcmp(version, want) == 0) pass("lmx_version matches the header macros");
    else fail("lmx_version matches the header macros", "got \"%s\", header says %s", version ? version : "(NULL)", want);
    if (lmx_version_number() == LMX_VERSION_NUMBER) pass("lmx_version_number == LMX_VERSION_NUMBER");
    else fail("lmx_version_number == LMX_VERSION_NUMBER", "got %u, header %d", lmx_version_number(), LMX_VERSION_NUMBER);

    const char *s = lmx_status_string(LMX_ERR_IO);
    if (s && s[0] && lmx_status_string(LMX_OK) && strcmp(lmx_status_string(LMX_OK), "ok") == 0)
        pass("lmx_status_string names codes (\"ok\" for LMX_OK)");
    else fail("lmx_status_string names codes", "LMX_ERR_IO -> \"%s\", LMX_OK -> \"%s\"", s ? s : "(NULL)",
              lmx_status_string(LMX_OK) ? lmx_status_string(LMX_OK) : "(NULL)");
    s = lmx_status_string(12345);
    if (s && contains_ci(s, "unknown")) pass("lmx_status_string(12345) is \"unknown status\"");
    else fail("lmx_status_string(12345)", "got \"%s\"", s ? s : "(NULL)");
    s = lmx_status_string(-11);
    if (s && contains_ci(s, "unknown")) pass("lmx_status_string(-11) (first undefined code) is unknown");
    else fail("lmx_status_string(-11)", "got \"%s\"", s ? s : "(NULL)");
    for (int code = 0; code >= LMX_ERR_CANCELLED; code--) {
        s = lmx_status_string(code);
        if (!s || !s[0] || contains_ci(s, "unknown")) {
            fail("lmx_status_string of every defined code", "code %d -> \"%s\"", code, s ? s : "(NULL)");
            break;
        }
        if (code == LMX_ERR_CANCELLED) pass("lmx_status_string of every defined code");
    }
}

/* ------------------------------------------------------------------------------------------------
 * Model loading
 * ---------------------------------------------------------------------------------------------- */

static void load_fails(const char *what, const char *dir, lmx_status want, const char *k1, const char *k2,
                       const char *k3) {
    lmx_model *model = NULL;
    current_check = what;
    lmx_status st = lmx_model_load(dir, NULL, &model);
    expect_status(what, st, want, k1, k2, k3, (const char *)0);
    if (st == LMX_OK) lmx_model_free(model);
}

static void test_model_load(void) {
    char dir[1200], path[1300], from[1300];
    lmx_model *model = NULL;

    /* Arguments. */
    EXPECT_ERR("model_load: NULL path", lmx_model_load(NULL, NULL, &model), LMX_ERR_INVALID_ARGUMENT, "path");
    EXPECT_ERR("model_load: empty path", lmx_model_load("", NULL, &model), LMX_ERR_INVALID_ARGUMENT, "path");
    EXPECT_ERR("model_load: NULL out", lmx_model_load(llama, NULL, NULL), LMX_ERR_INVALID_ARGUMENT, "out");
    lmx_model_params params = lmx_model_params_default();
    params.struct_size = 0;
    EXPECT_ERR("model_load: params.struct_size 0", lmx_model_load(llama, &params, &model), LMX_ERR_ABI,
               "struct_size");
    params = lmx_model_params_default();
    params.load_mode = 7;
    EXPECT_ERR("model_load: params.load_mode 7", lmx_model_load(llama, &params, &model), LMX_ERR_INVALID_ARGUMENT,
               "load_mode", "7");

    /* A newer host's larger struct (fields are only ever appended): accepted, extra bytes ignored. */
    {
        union { lmx_model_params p; unsigned char bytes[sizeof(lmx_model_params) + 16]; } newer;
        memset(&newer, 0, sizeof newer);
        newer.p = lmx_model_params_default();
        newer.p.struct_size = sizeof newer;
        memset(newer.bytes + sizeof(lmx_model_params), 0x5A, 16);
        if (EXPECT_OK("model_load: params from a newer header (struct_size + 16)", lmx_model_load(llama, &newer.p, &model)))
            lmx_model_free(model);
    }

    /* Missing things. */
    join(dir, sizeof dir, tmp, "no_such_model");
    load_fails("model_load: missing folder", dir, LMX_ERR_IO, "no_such_model", NULL, NULL);
    case_dir(dir, sizeof dir, "empty_folder");
    load_fails("model_load: folder without config.json", dir, LMX_ERR_IO, "config.json", NULL, NULL);
    model_case(dir, sizeof dir, "no_weights", NULL);
    load_fails("model_load: no model.safetensors", dir, LMX_ERR_IO, "model.safetensors", NULL, NULL);
    model_case(dir, sizeof dir, "weights_is_a_folder", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    mkdir(path, 0700);
    load_fails("model_load: model.safetensors is a folder", dir, LMX_ERR_IO, "model.safetensors", NULL, NULL);

    /* config.json problems. */
    join(from, sizeof from, llama, "config.json");
    char *config = (char *)read_file(from, NULL);
    join(from, sizeof from, llama, "model.safetensors");
    char *edited = replace_once(config, "LlamaForCausalLM", "GPT2LMHeadModel");
    model_case(dir, sizeof dir, "unknown_architecture", edited);
    join(path, sizeof path, dir, "model.safetensors");
    copy_file(from, path);
    load_fails("model_load: unknown architecture", dir, LMX_ERR_FORMAT, "GPT2LMHeadModel", NULL, NULL);
    free(edited);
    model_case(dir, sizeof dir, "config_not_json", "{\"architectures\": [\"LlamaForCausalLM\"], oops");
    join(path, sizeof path, dir, "model.safetensors");
    copy_file(from, path);
    load_fails("model_load: config.json is not JSON", dir, LMX_ERR_FORMAT, "config.json", NULL, NULL);
    edited = replace_once(config, "\"hidden_size\"", "\"hidden_sizX\"");
    model_case(dir, sizeof dir, "config_no_hidden_size", edited);
    join(path, sizeof path, dir, "model.safetensors");
    copy_file(from, path);
    load_fails("model_load: config.json without hidden_size", dir, LMX_ERR_FORMAT, "hidden_size", "config.json", NULL);
    free(edited);
    free(config);

    /* Corrupt safetensors. */
    st_file real = load_st(from);
    model_case(dir, sizeof dir, "truncated", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    /* Cut inside model.layers.0.mlp.gate_proj.weight (data [90368, 114944)): the first tensor that
     * then lies past the end, in header order and in offset order alike. */
    write_file(path, real.bytes, 8 + real.header_len + 90368 + 100);
    load_fails("model_load: truncated model.safetensors", dir, LMX_ERR_FORMAT, "model.safetensors",
               "model.layers.0.mlp.gate_proj.weight", NULL);
    write_file(path, real.bytes, 5);
    load_fails("model_load: model.safetensors of 5 bytes", dir, LMX_ERR_FORMAT, "model.safetensors", NULL, NULL);
    write_file(path, real.bytes, 8 + 1000);
    load_fails("model_load: model.safetensors cut inside its header", dir, LMX_ERR_FORMAT, "model.safetensors",
               "header", NULL);
    write_file(path, real.bytes, 0);
    load_fails("model_load: empty model.safetensors", dir, LMX_ERR_FORMAT, "model.safetensors", NULL, NULL);

    model_case(dir, sizeof dir, "absurd_header_length", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    write_safetensors_raw(path, UINT64_C(0x7fffffffffffff00), "{}", 16);
    load_fails("model_load: absurd header length", dir, LMX_ERR_FORMAT, "model.safetensors", "header", NULL);
    write_safetensors_raw(path, UINT64_C(0xffffffffffffffff), "{}", 16);
    load_fails("model_load: header length 2^64-1", dir, LMX_ERR_FORMAT, "model.safetensors", "header", NULL);
    write_safetensors_raw(path, 0, "{}", 16);
    load_fails("model_load: header length 0", dir, LMX_ERR_FORMAT, "model.safetensors", "header", NULL);

    model_case(dir, sizeof dir, "non_json_header", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    write_safetensors(path, "this is not JSON", 16);
    load_fails("model_load: non-JSON header", dir, LMX_ERR_FORMAT, "model.safetensors", NULL, NULL);
    write_safetensors(path, "[1, 2, 3]", 0);
    load_fails("model_load: header is a JSON array", dir, LMX_ERR_FORMAT, "model.safetensors", NULL, NULL);
    write_safetensors(path, "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]", 16);
    load_fails("model_load: header JSON cut short", dir, LMX_ERR_FORMAT, "model.safetensors", NULL, NULL);

    model_case(dir, sizeof dir, "offsets_outside", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    write_safetensors(path,
                      "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                      "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[250000],\"data_offsets\":[16,1000016]}}",
                      32);
    load_fails("model_load: tensor offsets outside the file", dir, LMX_ERR_FORMAT, "model.safetensors",
               "lm_head.weight", NULL);
    write_safetensors(path,
                      "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                      "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,8]}}",
                      16);
    load_fails("model_load: data_offsets begin after end", dir, LMX_ERR_FORMAT, "lm_head.weight", NULL, NULL);
    write_safetensors(path,
                      "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                      "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-16,0]}}",
                      16);
    load_fails("model_load: negative data_offsets", dir, LMX_ERR_FORMAT, "lm_head.weight", NULL, NULL);

    model_case(dir, sizeof dir, "overlapping", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    write_safetensors(path,
                      "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                      "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                      24);
    load_fails("model_load: overlapping tensor offsets", dir, LMX_ERR_FORMAT, "model.norm.weight", "lm_head.weight",
               "model.safetensors");

    model_case(dir, sizeof dir, "gap", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    write_safetensors(path,
                      "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                      "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[20,36]}}",
                      36);
    load_fails("model_load: bytes between tensors", dir, LMX_ERR_FORMAT, "model.safetensors", "16", NULL);

    model_case(dir, sizeof dir, "size_mismatch", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    write_safetensors(path, "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,60]}}", 60);
    load_fails("model_load: byte size != dtype x shape", dir, LMX_ERR_FORMAT, "model.norm.weight", "64", "60");
    write_safetensors(path,
                      "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],"
                      "\"data_offsets\":[0,16]}}",
                      16);
    /* LMX_ERR_OUT_OF_MEMORY: "an allocation failed or a size would overflow" (the status enum). */
    load_fails("model_load: element count overflows", dir, LMX_ERR_OUT_OF_MEMORY, "model.norm.weight", NULL, NULL);

    model_case(dir, sizeof dir, "unknown_dtype", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    write_safetensors(path, "{\"model.norm.weight\":{\"dtype\":\"F99\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16);
    load_fails("model_load: unknown dtype", dir, LMX_ERR_FORMAT, "F99", "model.norm.weight", NULL);

    model_case(dir, sizeof dir, "duplicate_names", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    write_safetensors(path,
                      "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                      "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}",
                      32);
    load_fails("model_load: duplicate tensor names", dir, LMX_ERR_FORMAT, "model.norm.weight", NULL, NULL);

    model_case(dir, sizeof dir, "trailing_bytes", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    {
        unsigned char *longer = malloc(real.len + 4);
        memcpy(longer, real.bytes, real.len);
        memset(longer + real.len, 0, 4);
        write_file(path, longer, real.len + 4);
        free(longer);
    }
    load_fails("model_load: bytes after the last tensor", dir, LMX_ERR_FORMAT, "model.safetensors", NULL, NULL);

    /* Valid safetensors, wrong model contents. */
    model_case(dir, sizeof dir, "wrong_shape", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    write_st_edited(path, &real, "\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[128,64]",
                    "\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[64,128]");
    load_fails("model_load: tensor of the wrong shape", dir, LMX_ERR_SHAPE, "model.embed_tokens.weight", "128", NULL);
    model_case(dir, sizeof dir, "missing_tensor", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    write_st_edited(path, &real, "\"model.norm.weight\"", "\"model.norX.weight\"");
    load_fails("model_load: a required tensor is missing", dir, LMX_ERR_NOT_FOUND, "model.norm.weight", NULL, NULL);
    model_case(dir, sizeof dir, "i32_weights", NULL);
    join(path, sizeof path, dir, "model.safetensors");
    write_st_edited(path, &real, "\"model.norm.weight\":{\"dtype\":\"F32\"", "\"model.norm.weight\":{\"dtype\":\"I32\"");
    load_fails("model_load: I32 weight tensor", dir, LMX_ERR_FORMAT, "model.norm.weight", "I32", NULL);
    free(real.bytes);

    /* Sharded folder with a shard missing. */
    model_case(dir, sizeof dir, "missing_shard", NULL);
    static const char *const shard_files[] = {"model.safetensors.index.json", "model-00001-of-00003.safetensors",
                                              "model-00002-of-00003.safetensors"};
    for (size_t i = 0; i < 3; i++) {
        char sharded[1200];
        fixture(sharded, sizeof sharded, "llama_sharded");
        join(from, sizeof from, sharded, shard_files[i]);
        join(path, sizeof path, dir, shard_files[i]);
        copy_file(from, path);
    }
    load_fails("model_load: a shard listed by the index is missing", dir, LMX_ERR_IO,
               "model-00003-of-00003.safetensors", NULL, NULL);

    /* Still fine afterwards, in both load modes. */
    params = lmx_model_params_default();
    params.load_mode = LMX_LOAD_COPY;
    if (EXPECT_OK("model_load: llama_f32 with LMX_LOAD_COPY", lmx_model_load(llama, &params, &model)))
        lmx_model_free(model);
}

/* ------------------------------------------------------------------------------------------------
 * Model queries and handles
 * ---------------------------------------------------------------------------------------------- */

static void test_model_info(lmx_model *model) {
    lmx_model_info info;
    memset(&info, 0xEE, sizeof info);
    info.struct_size = 0;
    EXPECT_ERR("model_get_info: struct_size 0", lmx_model_get_info(model, &info), LMX_ERR_ABI, "struct_size");
    info.struct_size = 2;
    EXPECT_ERR("model_get_info: struct_size 2 (< the struct_size field)", lmx_model_get_info(model, &info), LMX_ERR_ABI,
               "struct_size");
    EXPECT_ERR("model_get_info: NULL model", lmx_model_get_info(NULL, &info), LMX_ERR_INVALID_ARGUMENT, "model");
    EXPECT_ERR("model_get_info: NULL out", lmx_model_get_info(model, NULL), LMX_ERR_INVALID_ARGUMENT, "out");

    /* A newer host's larger struct: the known fields are written, the rest is left alone. */
    {
        union { lmx_model_info i; unsigned char bytes[sizeof(lmx_model_info) + 16]; } newer;
        memset(&newer, 0xEE, sizeof newer);
        newer.i.struct_size = sizeof newer;
        if (EXPECT_OK("model_get_info: struct from a newer header (struct_size + 16)", lmx_model_get_info(model, &newer.i))) {
            int untouched = 1;
            for (size_t k = sizeof(lmx_model_info); k < sizeof newer; k++) untouched &= newer.bytes[k] == 0xEE;
            if (newer.i.n_vocab == VOCAB && untouched) pass("model_get_info: newer struct, unknown tail untouched");
            else fail("model_get_info: newer struct", "n_vocab %u, tail untouched %d", newer.i.n_vocab, untouched);
        }
    }
    /* An older, shorter struct: only the fields that fit are written. */
    memset(&info, 0xEE, sizeof info);
    info.struct_size = (uint32_t)(offsetof(lmx_model_info, n_vocab) + sizeof info.n_vocab);
    if (EXPECT_OK("model_get_info: struct_size covering n_vocab only", lmx_model_get_info(model, &info))) {
        if (info.n_vocab == VOCAB && info.n_layers == 0xEEEEEEEEu) pass("model_get_info: short struct, later fields untouched");
        else fail("model_get_info: short struct", "n_vocab %u (want %d), n_layers 0x%x (want untouched 0xeeeeeeee)",
                  info.n_vocab, VOCAB, info.n_layers);
    }
    memset(&info, 0xEE, sizeof info);
    info.struct_size = sizeof info;
    if (EXPECT_OK("model_get_info: full struct", lmx_model_get_info(model, &info))) {
        if (info.n_vocab == 128 && info.n_layers == 2 && info.d_model == 64 && info.n_heads == 4 &&
            info.n_kv_heads == 2 && info.head_dim == 24 && info.d_ff == 96 && info.max_positions == 64 &&
            memchr(info.architecture, 0, sizeof info.architecture) && strcmp(info.architecture, "LlamaForCausalLM") == 0)
            pass("model_get_info: llama_f32 dimensions");
        else
            fail("model_get_info: llama_f32 dimensions",
                 "got vocab %u layers %u d_model %u heads %u kv %u head_dim %u d_ff %u max_pos %u arch '%.63s'",
                 info.n_vocab, info.n_layers, info.d_model, info.n_heads, info.n_kv_heads, info.head_dim, info.d_ff,
                 info.max_positions, info.architecture);
    }

    uint32_t in = 0, out = 0;
    EXPECT_ERR("model_module_shape: unknown module 99", lmx_model_module_shape(model, 99, &in, &out),
               LMX_ERR_INVALID_ARGUMENT, "module", "99");
    EXPECT_ERR("model_module_shape: module UINT32_MAX", lmx_model_module_shape(model, UINT32_MAX, &in, &out),
               LMX_ERR_INVALID_ARGUMENT, "module");
    EXPECT_ERR("model_module_shape: NULL model", lmx_model_module_shape(NULL, 0, &in, &out), LMX_ERR_INVALID_ARGUMENT,
               "model");
    EXPECT_ERR("model_module_shape: NULL in_features", lmx_model_module_shape(model, 0, NULL, &out),
               LMX_ERR_INVALID_ARGUMENT, "in_features");
    EXPECT_ERR("model_module_shape: NULL out_features", lmx_model_module_shape(model, 0, &in, NULL),
               LMX_ERR_INVALID_ARGUMENT, "out_features");
    static const uint32_t want[7][2] = {{64, 96}, {64, 48}, {64, 48}, {96, 64}, {64, 96}, {64, 96}, {96, 64}};
    int all = 1;
    for (uint32_t m = 0; m < 7; m++) {
        lmx_status st = lmx_model_module_shape(model, m, &in, &out);
        if (st != LMX_OK || in != want[m][0] || out != want[m][1]) {
            fail("model_module_shape: all seven modules", "module %u: status %d, in %u out %u (want %u %u)", m, st, in,
                 out, want[m][0], want[m][1]);
            all = 0;
        }
    }
    if (all) pass("model_module_shape: all seven modules of llama_f32");
}

/* ------------------------------------------------------------------------------------------------
 * Adapters
 * ---------------------------------------------------------------------------------------------- */

/* tmp/<name>/ with e0's adapter_config.json (or `config`) and adapter_model.safetensors from
 * `header` (+ data_len bytes), or no weights when header is NULL. */
static void adapter_case(char *dir, size_t size, const char *name, const char *config, const char *header,
                         size_t data_len) {
    char path[1200], from[1200], e0[1200];
    case_dir(dir, size, name);
    fixture(e0, sizeof e0, "llama_f32/adapters/e0");
    join(path, sizeof path, dir, "adapter_config.json");
    if (config) {
        write_text(path, config);
    } else {
        join(from, sizeof from, e0, "adapter_config.json");
        copy_file(from, path);
    }
    if (header) {
        join(path, sizeof path, dir, "adapter_model.safetensors");
        write_safetensors(path, header, data_len);
    }
}

static void add_fails(const char *what, lmx_mixer *mixer, const char *name, const char *dir, lmx_status want,
                      const char *k1, const char *k2) {
    int32_t index = -7;
    current_check = what;
    lmx_status st = lmx_mixer_add_peft(mixer, name, dir, &index);
    expect_status(what, st, want, k1, k2, (const char *)0);
}

static void test_adapters(lmx_model *model) {
    char dir[1200], path[1300], e0[1200], from[1300];
    lmx_mixer *mixer = NULL;
    if (!EXPECT_OK("mixer_create over llama_f32", lmx_mixer_create(model, &mixer))) return;
    fixture(e0, sizeof e0, "llama_f32/adapters/e0");

    {
        lmx_mixer *other = NULL;
        EXPECT_ERR("mixer_create: NULL model", lmx_mixer_create(NULL, &other), LMX_ERR_INVALID_ARGUMENT, "model");
        EXPECT_ERR("mixer_create: NULL out", lmx_mixer_create(model, NULL), LMX_ERR_INVALID_ARGUMENT, "out");
    }
    EXPECT_ERR("mixer_add_peft: NULL mixer", lmx_mixer_add_peft(NULL, "x", e0, NULL), LMX_ERR_INVALID_ARGUMENT, "mixer");
    EXPECT_ERR("mixer_add_peft: NULL name", lmx_mixer_add_peft(mixer, NULL, e0, NULL), LMX_ERR_INVALID_ARGUMENT, "name");
    EXPECT_ERR("mixer_add_peft: empty name", lmx_mixer_add_peft(mixer, "", e0, NULL), LMX_ERR_INVALID_ARGUMENT, "name");
    EXPECT_ERR("mixer_add_peft: NULL dir", lmx_mixer_add_peft(mixer, "x", NULL, NULL), LMX_ERR_INVALID_ARGUMENT, "dir");

    join(dir, sizeof dir, tmp, "no_adapter_here");
    add_fails("mixer_add_peft: missing folder", mixer, "x", dir, LMX_ERR_IO, "no_adapter_here", NULL);
    adapter_case(dir, sizeof dir, "adapter_without_weights", NULL, NULL, 0);
    add_fails("mixer_add_peft: no adapter_model.safetensors", mixer, "x", dir, LMX_ERR_IO, "adapter_model.safetensors",
              NULL);
    adapter_case(dir, sizeof dir, "adapter_config_not_json", "{ \"r\": 4, ", "{}", 0);
    add_fails("mixer_add_peft: adapter_config.json is not JSON", mixer, "x", dir, LMX_ERR_FORMAT, "adapter_config.json",
              NULL);
    {
        join(from, sizeof from, e0, "adapter_config.json");
        char *config = (char *)read_file(from, NULL);
        char *edited = replace_once(config, "\"peft_type\": \"LORA\"", "\"peft_type\": \"PREFIX_TUNING\"");
        adapter_case(dir, sizeof dir, "adapter_prefix_tuning", edited, "{}", 0);
        add_fails("mixer_add_peft: peft_type PREFIX_TUNING", mixer, "x", dir, LMX_ERR_FORMAT, "PREFIX_TUNING", NULL);
        free(edited);
        /* r in the config disagrees with the tensors (rank 4). */
        edited = replace_once(config, "\"r\": 4,", "\"r\": 8,");
        adapter_case(dir, sizeof dir, "adapter_rank_mismatch", edited, NULL, 0);
        join(path, sizeof path, dir, "adapter_model.safetensors");
        join(from, sizeof from, e0, "adapter_model.safetensors");
        copy_file(from, path);
        add_fails("mixer_add_peft: adapter_config r 8 vs rank-4 tensors", mixer, "x", dir, LMX_ERR_SHAPE, "8",
                  "adapter_config.json");
        free(edited);
        free(config);
    }

    /* Shapes that do not fit the model. */
    {
        lmx_model *mistral = NULL;
        char other[1200];
        fixture(other, sizeof other, "mistral_f32");
        if (EXPECT_OK("model_load: mistral_f32", lmx_model_load(other, NULL, &mistral))) {
            lmx_mixer *mm = NULL;
            if (EXPECT_OK("mixer_create over mistral_f32", lmx_mixer_create(mistral, &mm))) {
                /* llama q_proj out is 96 (4 heads x 24), mistral's 64; k/v out 48 vs 16. */
                add_fails("mixer_add_peft: llama_f32 e0 on mistral_f32", mm, "e0", e0, LMX_ERR_SHAPE,
                          "adapter_model.safetensors", "base_model.model.model.layers.0.");
                size_t count = 99;
                if (lmx_mixer_expert_count(mm, &count) == LMX_OK && count == 0)
                    pass("mixer_add_peft: a refused adapter leaves no expert behind");
                else fail("mixer_add_peft: a refused adapter leaves no expert behind", "expert count %zu", count);
                lmx_mixer_free(mm);
            }
            lmx_model_free(mistral);
        }
        char qwen_e0[1200];
        fixture(qwen_e0, sizeof qwen_e0, "qwen2_f32/adapters/e0");
        add_fails("mixer_add_peft: qwen2_f32 e0 on llama_f32", mixer, "q0", qwen_e0, LMX_ERR_SHAPE,
                  "adapter_model.safetensors", "base_model.model.model.layers.0.");
    }

    /* Tensors for modules we do not route, or incomplete pairs. */
    adapter_case(dir, sizeof dir, "adapter_lm_head", NULL,
                 "{\"base_model.model.lm_head.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[4,64],\"data_offsets\":[0,1024]},"
                 "\"base_model.model.lm_head.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[128,4],\"data_offsets\":[1024,3072]}}",
                 3072);
    add_fails("mixer_add_peft: adapter targeting lm_head", mixer, "x", dir, LMX_ERR_FORMAT, "lm_head", NULL);
    adapter_case(dir, sizeof dir, "adapter_rotary", NULL,
                 "{\"base_model.model.model.layers.0.self_attn.rotary_emb.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[4,64],\"data_offsets\":[0,1024]},"
                 "\"base_model.model.model.layers.0.self_attn.rotary_emb.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[64,4],\"data_offsets\":[1024,2048]}}",
                 2048);
    add_fails("mixer_add_peft: adapter targeting self_attn.rotary_emb", mixer, "x", dir, LMX_ERR_FORMAT, "rotary_emb",
              NULL);
    adapter_case(dir, sizeof dir, "adapter_a_only", NULL,
                 "{\"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[4,64],\"data_offsets\":[0,1024]}}",
                 1024);
    add_fails("mixer_add_peft: lora_A without lora_B", mixer, "x", dir, LMX_ERR_FORMAT, "lora_B", "q_proj");
    adapter_case(dir, sizeof dir, "adapter_layer_7", NULL,
                 "{\"base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[4,64],\"data_offsets\":[0,1024]},"
                 "\"base_model.model.model.layers.7.self_attn.q_proj.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[96,4],\"data_offsets\":[1024,2560]}}",
                 2560);
    add_fails("mixer_add_peft: layer 7 of a 2-layer model", mixer, "x", dir, LMX_ERR_SHAPE, "7", NULL);
    adapter_case(dir, sizeof dir, "adapter_truncated", NULL, NULL, 0);
    {
        join(from, sizeof from, e0, "adapter_model.safetensors");
        size_t len;
        unsigned char *bytes = read_file(from, &len);
        join(path, sizeof path, dir, "adapter_model.safetensors");
        write_file(path, bytes, len - 100);
        free(bytes);
    }
    add_fails("mixer_add_peft: truncated adapter_model.safetensors", mixer, "x", dir, LMX_ERR_FORMAT,
              "adapter_model.safetensors", NULL);

    /* Names. */
    int32_t index = -1;
    if (EXPECT_OK("mixer_add_peft: e0", lmx_mixer_add_peft(mixer, "e0", e0, &index))) {
        if (index == 0) pass("mixer_add_peft: first expert gets index 0");
        else fail("mixer_add_peft: first expert gets index 0", "got %d", index);
    }
    add_fails("mixer_add_peft: duplicate name e0", mixer, "e0", e0, LMX_ERR_INVALID_ARGUMENT, "e0", NULL);
    {
        char e1[1200];
        size_t before = 0, after = 0;
        fixture(e1, sizeof e1, "llama_f32/adapters/e1");
        lmx_mixer_expert_count(mixer, &before);
        if (EXPECT_OK("mixer_add_peft: out_index NULL", lmx_mixer_add_peft(mixer, "e1", e1, NULL))) {
            lmx_mixer_expert_count(mixer, &after);
            if (after == before + 1) pass("mixer_add_peft: out_index NULL still adds the expert");
            else fail("mixer_add_peft: out_index NULL still adds the expert", "expert count %zu -> %zu", before, after);
        }
    }
    size_t count = 0, needed = 0;
    char name[8];
    EXPECT_ERR("mixer_expert_count: NULL out_count", lmx_mixer_expert_count(mixer, NULL), LMX_ERR_INVALID_ARGUMENT,
               "out_count");
    if (EXPECT_OK("mixer_expert_count", lmx_mixer_expert_count(mixer, &count)) && count != 2)
        fail("mixer_expert_count", "got %zu, want 2", count);
    EXPECT_ERR("mixer_expert_name: index 5 of 2", lmx_mixer_expert_name(mixer, 5, name, sizeof name, &needed),
               LMX_ERR_NOT_FOUND, "5");
    EXPECT_ERR("mixer_expert_name: index SIZE_MAX", lmx_mixer_expert_name(mixer, SIZE_MAX, name, sizeof name, &needed),
               LMX_ERR_NOT_FOUND, "index");
    EXPECT_ERR("mixer_expert_name: NULL buf with capacity 8", lmx_mixer_expert_name(mixer, 0, NULL, 8, &needed),
               LMX_ERR_INVALID_ARGUMENT, "buf");
    needed = 0;
    if (EXPECT_OK("mixer_expert_name: length query (NULL, 0)", lmx_mixer_expert_name(mixer, 0, NULL, 0, &needed)) &&
        needed != 2)
        fail("mixer_expert_name: length query", "needed %zu, want 2", needed);
    memset(name, 'x', sizeof name);
    needed = 0;
    if (EXPECT_OK("mixer_expert_name: capacity 2 truncates", lmx_mixer_expert_name(mixer, 0, name, 2, &needed))) {
        if (strcmp(name, "e") == 0 && needed == 2 && name[2] == 'x') pass("mixer_expert_name: truncated to \"e\", needed 2");
        else fail("mixer_expert_name: truncation", "buf \"%.7s\" needed %zu", name, needed);
    }

    /* lmx_mixer_add_lora. */
    {
        static float a[4 * 64], b[96 * 4];
        lmx_lora_tensor t[2] = {{0, LMX_MODULE_Q_PROJ, a, b}, {0, LMX_MODULE_Q_PROJ, a, b}};
        lmx_lora_desc d = {sizeof(lmx_lora_desc), LMX_DTYPE_F32, 4, 8.0f, 0, t, 1};
        lmx_lora_desc x;
        EXPECT_ERR("mixer_add_lora: NULL desc", lmx_mixer_add_lora(mixer, "m", NULL, NULL), LMX_ERR_INVALID_ARGUMENT, "desc");
        x = d; x.struct_size = 0;
        EXPECT_ERR("mixer_add_lora: struct_size 0", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_ABI, "struct_size");
        x = d; x.rank = 0;
        EXPECT_ERR("mixer_add_lora: rank 0", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_INVALID_ARGUMENT, "rank");
        x = d; x.n_tensors = 0;
        EXPECT_ERR("mixer_add_lora: n_tensors 0", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_INVALID_ARGUMENT, "tensors");
        x = d; x.tensors = NULL;
        EXPECT_ERR("mixer_add_lora: NULL tensors", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_INVALID_ARGUMENT, "tensors");
        x = d; x.dtype = 9;
        EXPECT_ERR("mixer_add_lora: dtype 9", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_INVALID_ARGUMENT, "dtype");
        x = d; x.alpha = NAN;
        EXPECT_ERR("mixer_add_lora: alpha NaN", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_INVALID_ARGUMENT, "alpha");
        x = d; x.n_tensors = 2;
        EXPECT_ERR("mixer_add_lora: (layer 0, q_proj) twice", lmx_mixer_add_lora(mixer, "m", &x, NULL),
                   LMX_ERR_INVALID_ARGUMENT, "q_proj");
        lmx_lora_tensor bad = {0, 9, a, b};
        x = d; x.tensors = &bad;
        EXPECT_ERR("mixer_add_lora: module 9", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_INVALID_ARGUMENT, "module");
        bad.module = LMX_MODULE_Q_PROJ;
        bad.layer = 2;
        /* SHAPE, as for a PEFT adapter with a layer the model lacks: the expert does not fit the model. */
        EXPECT_ERR("mixer_add_lora: layer 2 of a 2-layer model", lmx_mixer_add_lora(mixer, "m", &x, NULL),
                   LMX_ERR_SHAPE, "layer 2");
        bad.layer = 0;
        bad.a = NULL;
        EXPECT_ERR("mixer_add_lora: NULL a", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_INVALID_ARGUMENT, "tensor");
        EXPECT_ERR("mixer_add_lora: name already taken (e0)", lmx_mixer_add_lora(mixer, "e0", &d, &index),
                   LMX_ERR_INVALID_ARGUMENT, "e0");
        x = d; x.n_tensors = SIZE_MAX;
        EXPECT_ERR("mixer_add_lora: n_tensors SIZE_MAX", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_INVALID_ARGUMENT,
                   "tensors");
        index = -1;
        if (EXPECT_OK("mixer_add_lora: zero F32 q_proj expert", lmx_mixer_add_lora(mixer, "m", &d, &index)) && index != 2)
            fail("mixer_add_lora: third expert gets index 2", "got %d", index);
        /* out_index is optional ("if `out_index` is not NULL it receives the expert's index"). */
        size_t before = 0, after = 0;
        lmx_mixer_expert_count(mixer, &before);
        if (EXPECT_OK("mixer_add_lora: out_index NULL", lmx_mixer_add_lora(mixer, "m_no_index", &d, NULL))) {
            lmx_mixer_expert_count(mixer, &after);
            if (after == before + 1) pass("mixer_add_lora: out_index NULL still adds the expert");
            else fail("mixer_add_lora: out_index NULL still adds the expert",
                      "LMX_OK, but the expert count stayed %zu (want %zu)", after, before + 1);
        }
        {
            union { lmx_lora_desc d; unsigned char bytes[sizeof(lmx_lora_desc) + 16]; } newer;
            memset(&newer, 0x5A, sizeof newer);
            newer.d = d;
            newer.d.struct_size = sizeof newer;
            EXPECT_OK("mixer_add_lora: desc from a newer header (struct_size + 16)",
                      lmx_mixer_add_lora(mixer, "m_newer", &newer.d, &index));
        }
        static uint16_t a16[4 * 64], b16[96 * 4];
        lmx_lora_tensor t16 = {1, LMX_MODULE_Q_PROJ, a16, b16};
        x = d; x.dtype = LMX_DTYPE_F16; x.tensors = &t16;
        EXPECT_OK("mixer_add_lora: F16 expert", lmx_mixer_add_lora(mixer, "m_f16", &x, &index));
        x.dtype = LMX_DTYPE_BF16;
        EXPECT_OK("mixer_add_lora: BF16 expert", lmx_mixer_add_lora(mixer, "m_bf16", &x, &index));
    }
    lmx_mixer_free(mixer);
}

/* ------------------------------------------------------------------------------------------------
 * Routers
 * ---------------------------------------------------------------------------------------------- */

static lmx_mixer *mixer_with(lmx_model *model, int n_experts, const char *extra_name) {
    lmx_mixer *mixer = NULL;
    if (lmx_mixer_create(model, &mixer) != LMX_OK) return NULL;
    for (int i = 0; i < n_experts; i++) {
        char name[8], dir[1200], rel[64];
        snprintf(name, sizeof name, "e%d", i);
        snprintf(rel, sizeof rel, "llama_f32/adapters/e%d", i);
        fixture(dir, sizeof dir, rel);
        if (lmx_mixer_add_peft(mixer, name, dir, NULL) != LMX_OK) {
            fail("mixer setup", "add_peft %s: %s", name, lmx_last_error());
            lmx_mixer_free(mixer);
            return NULL;
        }
    }
    if (extra_name) {
        char dir[1200];
        fixture(dir, sizeof dir, "llama_f32/adapters/e0");
        if (lmx_mixer_add_peft(mixer, extra_name, dir, NULL) != LMX_OK) {
            fail("mixer setup", "add_peft %s: %s", extra_name, lmx_last_error());
            lmx_mixer_free(mixer);
            return NULL;
        }
    }
    return mixer;
}

static void test_routers(lmx_model *model) {
    char router[1200], path[1300], dir[1200];
    fixture(router, sizeof router, "llama_f32/router.safetensors");

    lmx_mixer *mixer = mixer_with(model, 2, NULL);
    if (mixer) {
        EXPECT_ERR("mixer_load_router: mixer lacks e2", lmx_mixer_load_router(mixer, router), LMX_ERR_NOT_FOUND, "e2");
        lmx_mixer_free(mixer);
    }
    mixer = mixer_with(model, 3, "e3");
    if (mixer) {
        EXPECT_ERR("mixer_load_router: mixer has an extra e3", lmx_mixer_load_router(mixer, router), LMX_ERR_NOT_FOUND,
                   "e3");
        lmx_mixer_free(mixer);
    }

    mixer = mixer_with(model, 3, NULL);
    if (!mixer) return;
    EXPECT_ERR("mixer_load_router: NULL mixer", lmx_mixer_load_router(NULL, router), LMX_ERR_INVALID_ARGUMENT, "mixer");
    EXPECT_ERR("mixer_load_router: NULL path", lmx_mixer_load_router(mixer, NULL), LMX_ERR_INVALID_ARGUMENT, "path");
    join(path, sizeof path, tmp, "no_router.safetensors");
    EXPECT_ERR("mixer_load_router: missing file", lmx_mixer_load_router(mixer, path), LMX_ERR_IO, "no_router.safetensors");
    fixture(path, sizeof path, "llama_f32/model.safetensors");
    EXPECT_ERR("mixer_load_router: a model file, not a router", lmx_mixer_load_router(mixer, path), LMX_ERR_FORMAT,
               "loramixer.router");

    case_dir(dir, sizeof dir, "routers");
    {
        size_t len;
        unsigned char *bytes = read_file(router, &len);
        join(path, sizeof path, dir, "truncated_router.safetensors");
        write_file(path, bytes, len - 10);
        free(bytes);
        EXPECT_ERR("mixer_load_router: truncated file", lmx_mixer_load_router(mixer, path), LMX_ERR_FORMAT,
                   "truncated_router.safetensors");
    }
    const char *meta =
        "\"__metadata__\":{\"format\":\"loramixer.router\",\"version\":\"1\",\"experts\":\"[\\\"e0\\\",\\\"e1\\\",\\\"e2\\\"]\","
        "\"top_k\":\"%s\",\"scope\":\"layer\",\"temperature\":\"1.0\",\"input\":\"token\"}";
    char header[2048], m[512];
    snprintf(m, sizeof m, meta, "2");
    snprintf(header, sizeof header,
             "{%s,\"router.layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[3,32],\"data_offsets\":[0,384]},"
             "\"router.layers.1.weight\":{\"dtype\":\"F32\",\"shape\":[3,64],\"data_offsets\":[384,1152]}}",
             m);
    join(path, sizeof path, dir, "narrow_router.safetensors");
    write_safetensors(path, header, 1152);
    EXPECT_ERR("mixer_load_router: weight [3, 32] for d_model 64", lmx_mixer_load_router(mixer, path), LMX_ERR_SHAPE,
               "router.layers.0.weight", "64");
    snprintf(header, sizeof header,
             "{%s,\"router.layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[3,64],\"data_offsets\":[0,768]}}", m);
    join(path, sizeof path, dir, "one_layer_router.safetensors");
    write_safetensors(path, header, 768);
    EXPECT_ERR("mixer_load_router: no weight for layer 1", lmx_mixer_load_router(mixer, path), LMX_ERR_NOT_FOUND,
               "router.layers.1.weight");
    snprintf(m, sizeof m, meta, "5");
    snprintf(header, sizeof header,
             "{%s,\"router.layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[3,64],\"data_offsets\":[0,768]},"
             "\"router.layers.1.weight\":{\"dtype\":\"F32\",\"shape\":[3,64],\"data_offsets\":[768,1536]}}",
             m);
    join(path, sizeof path, dir, "top5_router.safetensors");
    write_safetensors(path, header, 1536);
    EXPECT_ERR("mixer_load_router: top_k 5 of 3 experts", lmx_mixer_load_router(mixer, path), LMX_ERR_FORMAT, "top_k");

    if (EXPECT_OK("mixer_load_router: router.safetensors with e0,e1,e2", lmx_mixer_load_router(mixer, router))) {
        char e0[1200];
        fixture(e0, sizeof e0, "llama_f32/adapters/e0");
        EXPECT_ERR("mixer_add_peft: after the router was loaded", lmx_mixer_add_peft(mixer, "late", e0, NULL),
                   LMX_ERR_STATE, "router");
    }
    lmx_mixer_free(mixer);
}

/* ------------------------------------------------------------------------------------------------
 * Sessions
 * ---------------------------------------------------------------------------------------------- */

static const int32_t some_tokens[5] = {1, 2, 3, 4, 5};

static void test_sessions(lmx_model *model) {
    char router[1200];
    fixture(router, sizeof router, "llama_f32/router.safetensors");
    lmx_mixer *mixer = mixer_with(model, 3, NULL);
    lmx_mixer *plain = mixer_with(model, 3, NULL); /* no router */
    lmx_mixer *empty = NULL;
    if (!mixer || !plain || lmx_mixer_create(model, &empty) != LMX_OK) {
        fail("session setup", "mixers: %s", lmx_last_error());
        lmx_mixer_free(mixer);
        lmx_mixer_free(plain);
        return;
    }
    EXPECT_OK("mixer_load_router for the session tests", lmx_mixer_load_router(mixer, router));

    lmx_session *s = NULL;
    lmx_session_params sp = lmx_session_params_default();
    EXPECT_ERR("session_create: NULL mixer", lmx_session_create(NULL, NULL, &s), LMX_ERR_INVALID_ARGUMENT, "mixer");
    EXPECT_ERR("session_create: NULL out", lmx_session_create(mixer, NULL, NULL), LMX_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("session_create: a model handle as the mixer",
               lmx_session_create((const lmx_mixer *)(const void *)model, NULL, &s), LMX_ERR_INVALID_ARGUMENT, "mixer");
    sp.struct_size = 0;
    EXPECT_ERR("session_create: params.struct_size 0", lmx_session_create(mixer, &sp, &s), LMX_ERR_ABI, "struct_size");
    sp = lmx_session_params_default();
    sp.n_ctx = 65;
    EXPECT_ERR("session_create: n_ctx 65 > max_positions 64", lmx_session_create(mixer, &sp, &s),
               LMX_ERR_INVALID_ARGUMENT, "65", "64");
    sp.n_ctx = UINT32_MAX;
    EXPECT_ERR("session_create: n_ctx UINT32_MAX", lmx_session_create(mixer, &sp, &s), LMX_ERR_INVALID_ARGUMENT, "n_ctx");
    {
        union { lmx_session_params p; unsigned char bytes[sizeof(lmx_session_params) + 16]; } newer;
        memset(&newer, 0x5A, sizeof newer);
        newer.p = lmx_session_params_default();
        newer.p.struct_size = sizeof newer;
        lmx_session *tmp_session = NULL;
        if (EXPECT_OK("session_create: params from a newer header (struct_size + 16)",
                      lmx_session_create(mixer, &newer.p, &tmp_session)))
            lmx_session_free(tmp_session);
    }
    if (!EXPECT_OK("session_create: defaults", lmx_session_create(mixer, NULL, &s))) goto done;

    /* lmx_session_eval arguments. */
    float logits[VOCAB * 5];
    int32_t bad_tokens[3] = {1, VOCAB, 2};
    EXPECT_ERR("session_eval: NULL session", lmx_session_eval(NULL, some_tokens, 3, LMX_LOGITS_LAST, logits, VOCAB),
               LMX_ERR_INVALID_ARGUMENT, "session");
    EXPECT_ERR("session_eval: NULL tokens", lmx_session_eval(s, NULL, 3, LMX_LOGITS_LAST, logits, VOCAB),
               LMX_ERR_INVALID_ARGUMENT, "tokens");
    EXPECT_ERR("session_eval: zero tokens", lmx_session_eval(s, some_tokens, 0, LMX_LOGITS_LAST, logits, VOCAB),
               LMX_ERR_INVALID_ARGUMENT, "tokens");
    EXPECT_ERR("session_eval: token id 128 >= vocab 128", lmx_session_eval(s, bad_tokens, 3, LMX_LOGITS_LAST, logits, VOCAB),
               LMX_ERR_INVALID_ARGUMENT, "128");
    bad_tokens[1] = -1;
    EXPECT_ERR("session_eval: token id -1", lmx_session_eval(s, bad_tokens, 3, LMX_LOGITS_LAST, logits, VOCAB),
               LMX_ERR_INVALID_ARGUMENT, "-1");
    EXPECT_ERR("session_eval: NULL logits with LMX_LOGITS_LAST", lmx_session_eval(s, some_tokens, 3, LMX_LOGITS_LAST, NULL, VOCAB),
               LMX_ERR_INVALID_ARGUMENT, "logits");
    EXPECT_ERR("session_eval: which 7", lmx_session_eval(s, some_tokens, 3, 7, logits, VOCAB * 3),
               LMX_ERR_INVALID_ARGUMENT, "which");
    EXPECT_ERR("session_eval: LMX_LOGITS_ALL capacity 383 < 3 x 128",
               lmx_session_eval(s, some_tokens, 3, LMX_LOGITS_ALL, logits, 3 * VOCAB - 1), LMX_ERR_SHAPE, "384");
    EXPECT_ERR("session_eval: LMX_LOGITS_LAST capacity 127", lmx_session_eval(s, some_tokens, 3, LMX_LOGITS_LAST, logits, VOCAB - 1),
               LMX_ERR_SHAPE, "128");
    size_t n_past = 99;
    EXPECT_ERR("session_n_past: NULL out_n_past", lmx_session_n_past(s, NULL), LMX_ERR_INVALID_ARGUMENT, "out_n_past");
    if (EXPECT_OK("session_n_past", lmx_session_n_past(s, &n_past))) {
        if (n_past == 0) pass("session_eval: failed calls leave the session unchanged (n_past 0)");
        else fail("session_eval: failed calls leave the session unchanged", "n_past %zu, want 0", n_past);
    }
    EXPECT_ERR("session_eval: n_tokens SIZE_MAX", lmx_session_eval(s, some_tokens, SIZE_MAX, LMX_LOGITS_LAST, logits, VOCAB),
               LMX_ERR_INVALID_ARGUMENT, "tokens");
    EXPECT_ERR("session_eval: which UINT32_MAX", lmx_session_eval(s, some_tokens, 1, UINT32_MAX, logits, VOCAB),
               LMX_ERR_INVALID_ARGUMENT, "which");
    EXPECT_OK("session_eval: NULL logits with LMX_LOGITS_NONE", lmx_session_eval(s, some_tokens, 2, LMX_LOGITS_NONE, NULL, 0));
    EXPECT_OK("session_eval: capacity SIZE_MAX (a large claim is fine)",
              lmx_session_eval(s, some_tokens + 2, 1, LMX_LOGITS_LAST, logits, SIZE_MAX));

    /* Routing settings. */
    float w3[3] = {0.5f, 0.25f, 0.25f}, wnan[3] = {0.5f, NAN, 0.5f}, winf[3] = {INFINITY, 0, 0};
    EXPECT_ERR("session_set_routing: mode 99", lmx_session_set_routing(s, 99), LMX_ERR_INVALID_ARGUMENT, "99");
    EXPECT_ERR("session_set_routing: mode UINT32_MAX", lmx_session_set_routing(s, UINT32_MAX), LMX_ERR_INVALID_ARGUMENT, "mode");
    EXPECT_ERR("session_set_fixed_weights: n_weights SIZE_MAX", lmx_session_set_fixed_weights(s, w3, SIZE_MAX),
               LMX_ERR_INVALID_ARGUMENT, "weights");
    EXPECT_ERR("session_set_top_k: UINT32_MAX", lmx_session_set_top_k(s, UINT32_MAX), LMX_ERR_INVALID_ARGUMENT, "top_k");
    EXPECT_ERR("session_set_fixed_weights: 2 weights for 3 experts", lmx_session_set_fixed_weights(s, w3, 2),
               LMX_ERR_INVALID_ARGUMENT, "3", "2");
    EXPECT_ERR("session_set_fixed_weights: 4 weights for 3 experts", lmx_session_set_fixed_weights(s, w3, 4),
               LMX_ERR_INVALID_ARGUMENT, "3", "4");
    EXPECT_ERR("session_set_fixed_weights: NaN", lmx_session_set_fixed_weights(s, wnan, 3), LMX_ERR_INVALID_ARGUMENT, "nan");
    EXPECT_ERR("session_set_fixed_weights: infinity", lmx_session_set_fixed_weights(s, winf, 3), LMX_ERR_INVALID_ARGUMENT,
               "inf");
    EXPECT_ERR("session_set_fixed_weights: NULL weights", lmx_session_set_fixed_weights(s, NULL, 3),
               LMX_ERR_INVALID_ARGUMENT, "weights");
    EXPECT_ERR("session_set_top_k: 4 of 3 experts", lmx_session_set_top_k(s, 4), LMX_ERR_INVALID_ARGUMENT, "4");
    EXPECT_OK("session_set_top_k: 0 restores the file's", lmx_session_set_top_k(s, 0));
    EXPECT_ERR("session_set_temperature: -1", lmx_session_set_temperature(s, -1.0f), LMX_ERR_INVALID_ARGUMENT, "temperature");
    EXPECT_ERR("session_set_temperature: NaN", lmx_session_set_temperature(s, NAN), LMX_ERR_INVALID_ARGUMENT, "temperature");
    EXPECT_ERR("session_set_temperature: infinity", lmx_session_set_temperature(s, INFINITY), LMX_ERR_INVALID_ARGUMENT,
               "temperature");
    EXPECT_OK("session_set_temperature: 0 restores the file's", lmx_session_set_temperature(s, 0.0f));
    {
        lmx_session *ps = NULL;
        if (EXPECT_OK("session_create: mixer without a router", lmx_session_create(plain, NULL, &ps))) {
            EXPECT_ERR("session_set_routing: LEARNED without a router", lmx_session_set_routing(ps, LMX_ROUTING_LEARNED),
                       LMX_ERR_STATE, "router");
            EXPECT_ERR("session_set_routing: SOFT without a router", lmx_session_set_routing(ps, LMX_ROUTING_SOFT),
                       LMX_ERR_STATE, "router");
            EXPECT_ERR("session_set_routing: FIXED before weights were set", lmx_session_set_routing(ps, LMX_ROUTING_FIXED),
                       LMX_ERR_STATE, "weight");
            EXPECT_OK("session_set_routing: UNIFORM without a router", lmx_session_set_routing(ps, LMX_ROUTING_UNIFORM));
            EXPECT_OK("session_set_fixed_weights: 3 weights", lmx_session_set_fixed_weights(ps, w3, 3));
            /* "FIXED needs weights set first": they were, so switching away and back must work. */
            EXPECT_OK("session_set_routing: UNIFORM after fixed weights", lmx_session_set_routing(ps, LMX_ROUTING_UNIFORM));
            EXPECT_OK("session_set_routing: back to FIXED (weights were set before)",
                      lmx_session_set_routing(ps, LMX_ROUTING_FIXED));
            lmx_session_free(ps);
        }
        if (EXPECT_OK("session_create: mixer without experts", lmx_session_create(empty, NULL, &ps))) {
            EXPECT_ERR("session_set_top_k: 1 with no experts", lmx_session_set_top_k(ps, 1), LMX_ERR_INVALID_ARGUMENT, "top_k");
            EXPECT_OK("session_eval: base model through an empty mixer",
                      lmx_session_eval(ps, some_tokens, 2, LMX_LOGITS_LAST, logits, VOCAB));
            lmx_session_free(ps);
        }
    }

    /* Context full. */
    {
        lmx_session *small = NULL;
        sp = lmx_session_params_default();
        sp.n_ctx = 4;
        if (EXPECT_OK("session_create: n_ctx 4", lmx_session_create(mixer, &sp, &small))) {
            EXPECT_ERR("session_eval: 5 tokens into n_ctx 4", lmx_session_eval(small, some_tokens, 5, LMX_LOGITS_LAST, logits, VOCAB),
                       LMX_ERR_STATE, "context", "4");
            size_t n_out = 0;
            int32_t gen[4];
            EXPECT_ERR("session_generate: 5-token prompt into n_ctx 4",
                       lmx_session_generate(small, some_tokens, 5, NULL, gen, 4, &n_out), LMX_ERR_STATE, "context", "4");
            EXPECT_OK("session_eval: 3 tokens into n_ctx 4", lmx_session_eval(small, some_tokens, 3, LMX_LOGITS_NONE, NULL, 0));
            EXPECT_ERR("session_eval: 2 more tokens with 3 of 4 held",
                       lmx_session_eval(small, some_tokens, 2, LMX_LOGITS_LAST, logits, VOCAB), LMX_ERR_STATE, "context", "4");
            EXPECT_OK("session_reset", lmx_session_reset(small));
            EXPECT_OK("session_eval: 4 tokens into n_ctx 4", lmx_session_eval(small, some_tokens, 4, LMX_LOGITS_LAST, logits, VOCAB));
            EXPECT_ERR("session_eval: a 5th token into a full context",
                       lmx_session_eval(small, some_tokens, 1, LMX_LOGITS_LAST, logits, VOCAB), LMX_ERR_STATE, "context", "4");
            n_past = 0;
            if (lmx_session_n_past(small, &n_past) == LMX_OK && n_past == 4) pass("session_n_past: 4 after the refused token");
            else fail("session_n_past after context full", "got %zu, want 4", n_past);
            n_out = 99;
            int32_t out[4];
            if (EXPECT_OK("session_generate: full context is not an error",
                          lmx_session_generate(small, NULL, 0, NULL, out, 4, &n_out)) && n_out > 1)
                fail("session_generate: full context", "n_out %zu (want 0 or 1)", n_out);
            EXPECT_OK("session_reset", lmx_session_reset(small));
            EXPECT_OK("session_eval: after reset, 4 tokens fit again",
                      lmx_session_eval(small, some_tokens, 4, LMX_LOGITS_NONE, NULL, 0));
            lmx_session_free(small);
        }
    }

    /* Generation arguments. */
    {
        int32_t out[8];
        size_t n_out = 0;
        lmx_generate_params gp = lmx_generate_params_default();
        lmx_session *g = NULL;
        if (EXPECT_OK("session_create for generate", lmx_session_create(mixer, NULL, &g))) {
            EXPECT_ERR("session_generate: NULL session", lmx_session_generate(NULL, some_tokens, 2, NULL, out, 8, &n_out),
                       LMX_ERR_INVALID_ARGUMENT, "session");
            EXPECT_ERR("session_generate: NULL prompt with n_prompt 2", lmx_session_generate(g, NULL, 2, NULL, out, 8, &n_out),
                       LMX_ERR_INVALID_ARGUMENT, "prompt");
            EXPECT_ERR("session_generate: NULL out_tokens", lmx_session_generate(g, some_tokens, 2, NULL, NULL, 8, &n_out),
                       LMX_ERR_INVALID_ARGUMENT, "out_tokens");
            EXPECT_ERR("session_generate: NULL n_out", lmx_session_generate(g, some_tokens, 2, NULL, out, 8, NULL),
                       LMX_ERR_INVALID_ARGUMENT, "n_out");
            EXPECT_ERR("session_generate: empty prompt on an empty session",
                       lmx_session_generate(g, NULL, 0, NULL, out, 8, &n_out), LMX_ERR_STATE, "prompt");
            gp.struct_size = 0;
            EXPECT_ERR("session_generate: params.struct_size 0", lmx_session_generate(g, some_tokens, 2, &gp, out, 8, &n_out),
                       LMX_ERR_ABI, "struct_size");
            {
                union { lmx_generate_params p; unsigned char bytes[sizeof(lmx_generate_params) + 16]; } newer;
                memset(&newer, 0x5A, sizeof newer);
                newer.p = lmx_generate_params_default();
                newer.p.struct_size = sizeof newer;
                newer.p.max_tokens = 2;
                if (EXPECT_OK("session_generate: params from a newer header (struct_size + 16)",
                              lmx_session_generate(g, some_tokens, 2, &newer.p, out, 8, &n_out)) && n_out != 2)
                    fail("session_generate: newer params", "n_out %zu, want 2", n_out);
                lmx_session_reset(g);
            }
            gp = lmx_generate_params_default();
            gp.temperature = NAN;
            EXPECT_ERR("session_generate: temperature NaN", lmx_session_generate(g, some_tokens, 2, &gp, out, 8, &n_out),
                       LMX_ERR_INVALID_ARGUMENT, "temperature");
            gp = lmx_generate_params_default();
            gp.top_p = 2.0f;
            EXPECT_ERR("session_generate: top_p 2", lmx_session_generate(g, some_tokens, 2, &gp, out, 8, &n_out),
                       LMX_ERR_INVALID_ARGUMENT, "top_p");
            gp = lmx_generate_params_default();
            gp.n_stop_tokens = 2;
            EXPECT_ERR("session_generate: NULL stop_tokens with n_stop_tokens 2",
                       lmx_session_generate(g, some_tokens, 2, &gp, out, 8, &n_out), LMX_ERR_INVALID_ARGUMENT, "stop_tokens");
            gp = lmx_generate_params_default();
            bad_tokens[1] = VOCAB;
            EXPECT_ERR("session_generate: prompt token 128", lmx_session_generate(g, bad_tokens, 3, &gp, out, 8, &n_out),
                       LMX_ERR_INVALID_ARGUMENT, "128");
            n_past = 99;
            if (lmx_session_n_past(g, &n_past) == LMX_OK && n_past == 0) pass("session_generate: failed calls leave n_past 0");
            else fail("session_generate: failed calls leave the session unchanged", "n_past %zu", n_past);
            EXPECT_ERR("session_generate: n_prompt SIZE_MAX", lmx_session_generate(g, some_tokens, SIZE_MAX, NULL, out, 8, &n_out),
                       LMX_ERR_INVALID_ARGUMENT, "prompt");
            gp.max_tokens = 6;
            n_out = 99;
            if (EXPECT_OK("session_generate: out_capacity 3 bounds max_tokens 6",
                          lmx_session_generate(g, some_tokens, 2, &gp, out, 3, &n_out)) && n_out > 3)
                fail("session_generate: out_capacity bounds the output", "n_out %zu > 3", n_out);
            lmx_session_free(g);
        }
    }

    /* Trace. */
    {
        size_t nt = 0, nl = 0, width = 0;
        int32_t ids[64];
        float gates[64];
        EXPECT_ERR("session_trace_size: NULL n_tokens", lmx_session_trace_size(s, NULL, &nl, &width),
                   LMX_ERR_INVALID_ARGUMENT, "n_tokens");
        EXPECT_ERR("session_trace_size: NULL n_layers", lmx_session_trace_size(s, &nt, NULL, &width),
                   LMX_ERR_INVALID_ARGUMENT, "n_layers");
        EXPECT_ERR("session_trace_size: NULL width", lmx_session_trace_size(s, &nt, &nl, NULL),
                   LMX_ERR_INVALID_ARGUMENT, "width");
        EXPECT_ERR("session_trace_size: NULL session", lmx_session_trace_size(NULL, &nt, &nl, &width),
                   LMX_ERR_INVALID_ARGUMENT, "session");
        EXPECT_ERR("session_trace_copy: NULL session", lmx_session_trace_copy(NULL, ids, gates, 64, NULL, 0),
                   LMX_ERR_INVALID_ARGUMENT, "session");
        EXPECT_OK("session_trace_copy: capacities SIZE_MAX", lmx_session_trace_copy(s, ids, gates, SIZE_MAX, NULL, SIZE_MAX));
        /* s holds 3 tokens: 3 x 2 layers x 3 slots = 18 values. */
        EXPECT_ERR("session_trace_copy: capacity 17 < 18", lmx_session_trace_copy(s, ids, gates, 17, NULL, 0), LMX_ERR_SHAPE,
                   "18");
        EXPECT_ERR("session_trace_copy: NULL expert_ids", lmx_session_trace_copy(s, NULL, gates, 64, NULL, 0),
                   LMX_ERR_INVALID_ARGUMENT, "expert_ids");
        EXPECT_ERR("session_trace_copy: NULL gates", lmx_session_trace_copy(s, ids, NULL, 64, NULL, 0),
                   LMX_ERR_INVALID_ARGUMENT, "gates");
        int32_t toks[2];
        EXPECT_ERR("session_trace_copy: tokens_capacity 2 < 3", lmx_session_trace_copy(s, ids, gates, 64, toks, 2),
                   LMX_ERR_SHAPE, "3");
        lmx_session *quiet = NULL;
        sp = lmx_session_params_default();
        sp.trace = 0;
        if (EXPECT_OK("session_create: trace off", lmx_session_create(mixer, &sp, &quiet))) {
            EXPECT_OK("session_eval: trace off", lmx_session_eval(quiet, some_tokens, 2, LMX_LOGITS_NONE, NULL, 0));
            EXPECT_ERR("session_trace_copy: tracing off", lmx_session_trace_copy(quiet, ids, gates, 64, NULL, 0),
                       LMX_ERR_STATE, "trac");
            lmx_session_free(quiet);
        }
    }

    /* Handles of the wrong kind, freed handles, double frees. */
    {
        size_t count = 0;
        EXPECT_ERR("session_reset: a mixer handle as the session", lmx_session_reset((lmx_session *)(void *)mixer),
                   LMX_ERR_INVALID_ARGUMENT, "session");
        EXPECT_ERR("session_eval: a model handle as the session",
                   lmx_session_eval((lmx_session *)(void *)model, some_tokens, 1, LMX_LOGITS_NONE, NULL, 0),
                   LMX_ERR_INVALID_ARGUMENT, "session");
        EXPECT_ERR("mixer_expert_count: a session handle as the mixer",
                   lmx_mixer_expert_count((lmx_mixer *)(void *)s, &count), LMX_ERR_INVALID_ARGUMENT, "mixer");
        lmx_model_info info = {sizeof info, 0, 0, 0, 0, 0, 0, 0, 0, {0}};
        EXPECT_ERR("model_get_info: a mixer handle as the model", lmx_model_get_info((lmx_model *)(void *)mixer, &info),
                   LMX_ERR_INVALID_ARGUMENT, "model");
        int32_t stack_object[16] = {0};
        EXPECT_ERR("session_reset: a pointer to a stack array", lmx_session_reset((lmx_session *)(void *)stack_object),
                   LMX_ERR_INVALID_ARGUMENT, "session");
        /* Freeing with the wrong kind of free must not free the object. */
        lmx_session_free((lmx_session *)(void *)mixer);
        lmx_model_free((lmx_model *)(void *)s);
        lmx_mixer_free((lmx_mixer *)(void *)stack_object);
        EXPECT_OK("mixer_expert_count: mixer alive after lmx_session_free(mixer)", lmx_mixer_expert_count(mixer, &count));
        EXPECT_OK("session_eval: session alive after lmx_model_free(session)",
                  lmx_session_eval(s, some_tokens, 1, LMX_LOGITS_NONE, NULL, 0));

        lmx_session_free(s);
        lmx_session_free(s); /* double free: a no-op */
        pass("session_free: double free returns");
        EXPECT_ERR("session_reset: a freed session", lmx_session_reset(s), LMX_ERR_INVALID_ARGUMENT, "session");
        s = NULL;
        lmx_mixer_free(plain);
        lmx_mixer_free(plain);
        pass("mixer_free: double free returns");
        EXPECT_ERR("mixer_expert_count: a freed mixer", lmx_mixer_expert_count(plain, &count), LMX_ERR_INVALID_ARGUMENT,
                   "mixer");
        plain = NULL;
    }

done:
    lmx_session_free(s);
    lmx_mixer_free(mixer);
    lmx_mixer_free(plain);
    lmx_mixer_free(empty);
}

/* The model outlives its handle while a mixer/session uses it; freeing the model twice is a no-op. */
static void test_lifetimes(void) {
    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL;
    if (!EXPECT_OK("lifetimes: model_load", lmx_model_load(llama, NULL, &model))) return;
    if (!EXPECT_OK("lifetimes: mixer_create", lmx_mixer_create(model, &mixer))) {
        lmx_model_free(model);
        return;
    }
    lmx_model_free(model);
    lmx_model_free(model);
    pass("model_free: double free returns");
    lmx_model_info info = {sizeof info, 0, 0, 0, 0, 0, 0, 0, 0, {0}};
    EXPECT_ERR("model_get_info: a freed model handle", lmx_model_get_info(model, &info), LMX_ERR_INVALID_ARGUMENT, "model");
    if (EXPECT_OK("lifetimes: session_create after the model handle was freed", lmx_session_create(mixer, NULL, &s))) {
        lmx_mixer_free(mixer);
        mixer = NULL;
        float logits[VOCAB];
        EXPECT_OK("lifetimes: eval after model and mixer handles were freed",
                  lmx_session_eval(s, some_tokens, 3, LMX_LOGITS_LAST, logits, VOCAB));
        lmx_session_free(s);
    }
    lmx_mixer_free(mixer);
}

/* lmx_last_error is left unchanged by successful calls. */
static void test_sticky_error(lmx_model *model) {
    lmx_model_load(NULL, NULL, NULL);
    char before[512];
    snprintf(before, sizeof before, "%s", lmx_last_error());
    uint32_t in, out;
    lmx_status st = lmx_model_module_shape(model, 0, &in, &out);
    if (st == LMX_OK && strcmp(before, lmx_last_error()) == 0 && before[0])
        pass("lmx_last_error: unchanged by a successful call");
    else fail("lmx_last_error: unchanged by a successful call", "before \"%s\", after \"%s\"", before, lmx_last_error());
}

/* ------------------------------------------------------------------------------------------------
 * Happy path against the oracle
 * ---------------------------------------------------------------------------------------------- */

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = d; /* NaN wins */
    }
    return worst;
}

static void test_happy_path(void) {
    char path[1200];
    size_t n = 0;
    fixture(path, sizeof path, "llama_f32/expected.safetensors");
    int32_t *tokens = fixture_tensor(path, "tokens", "I32", &n);
    float *want_logits = fixture_tensor(path, "learned_logits", "F32", NULL);
    float *base_logits = fixture_tensor(path, "base_logits", "F32", NULL);
    int32_t *want_ids = fixture_tensor(path, "learned_ids", "I32", NULL);
    float *want_gates = fixture_tensor(path, "learned_gates", "F32", NULL);
    if (!tokens || n != N_TOKENS || !want_logits || !base_logits || !want_ids || !want_gates) {
        fail("happy path", "cannot read the fixture tensors of %s", path);
        goto out;
    }

    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL;
    if (!EXPECT_OK("happy: model_load llama_f32", lmx_model_load(llama, NULL, &model))) goto out;
    if (!EXPECT_OK("happy: mixer_create", lmx_mixer_create(model, &mixer))) goto free_model;
    for (int i = 0; i < 3; i++) {
        char name[8], rel[64], dir[1200], what[64];
        snprintf(name, sizeof name, "e%d", i);
        snprintf(rel, sizeof rel, "llama_f32/adapters/e%d", i);
        snprintf(what, sizeof what, "happy: mixer_add_peft %s", name);
        fixture(dir, sizeof dir, rel);
        int32_t index = -1;
        if (EXPECT_OK(what, lmx_mixer_add_peft(mixer, name, dir, &index)) && index != i)
            fail(what, "index %d, want %d", index, i);
    }
    fixture(path, sizeof path, "llama_f32/router.safetensors");
    EXPECT_OK("happy: mixer_load_router", lmx_mixer_load_router(mixer, path));
    if (!EXPECT_OK("happy: session_create", lmx_session_create(mixer, NULL, &s))) goto free_mixer;

    float logits[N_TOKENS * VOCAB];
    memset(logits, 0, sizeof logits);
    if (EXPECT_OK("happy: session_eval 12 tokens, LMX_LOGITS_ALL",
                  lmx_session_eval(s, tokens, N_TOKENS, LMX_LOGITS_ALL, logits, N_TOKENS * VOCAB))) {
        double d = max_abs_diff(logits, want_logits, N_TOKENS * VOCAB);
        if (d <= 1e-4) {
            char what[96];
            snprintf(what, sizeof what, "happy: learned logits match the oracle (max |diff| %.2e)", d);
            pass(what);
        } else {
            fail("happy: learned logits match the oracle", "max |diff| %.3e > 1e-4", d);
        }
    }
    size_t nt = 0, nl = 0, width = 0, n_past = 0;
    if (EXPECT_OK("happy: session_n_past", lmx_session_n_past(s, &n_past)) && n_past != N_TOKENS)
        fail("happy: n_past", "got %zu, want %d", n_past, N_TOKENS);
    if (EXPECT_OK("happy: session_trace_size", lmx_session_trace_size(s, &nt, &nl, &width))) {
        if (nt == N_TOKENS && nl == LAYERS && width == 3) pass("happy: trace is 12 tokens x 2 layers x 3 slots");
        else fail("happy: trace size", "%zu x %zu x %zu, want 12 x 2 x 3", nt, nl, width);
    }
    if (nt == N_TOKENS && nl == LAYERS && width == 3) {
        int32_t ids[N_TOKENS * LAYERS * 3], trace_tokens[N_TOKENS];
        float gates[N_TOKENS * LAYERS * 3];
        if (EXPECT_OK("happy: session_trace_copy",
                      lmx_session_trace_copy(s, ids, gates, sizeof ids / sizeof ids[0], trace_tokens, N_TOKENS))) {
            int bad_ids = 0, bad_rest = 0, bad_tokens = 0;
            double gate_diff = 0;
            for (int t = 0; t < N_TOKENS; t++) {
                if (trace_tokens[t] != tokens[t]) bad_tokens++;
                for (int l = 0; l < LAYERS; l++) {
                    for (int k = 0; k < 2; k++) {
                        int got = ids[(t * LAYERS + l) * 3 + k], want = want_ids[(t * LAYERS + l) * 2 + k];
                        if (got != want) {
                            if (bad_ids < 4)
                                printf("     trace token %d layer %d slot %d: expert %d, oracle %d\n", t, l, k, got, want);
                            bad_ids++;
                        }
                        double d = fabs((double)gates[(t * LAYERS + l) * 3 + k] - want_gates[(t * LAYERS + l) * 2 + k]);
                        if (!(d <= gate_diff)) gate_diff = d;
                    }
                    if (ids[(t * LAYERS + l) * 3 + 2] != -1 || gates[(t * LAYERS + l) * 3 + 2] != 0.0f) bad_rest++;
                }
            }
            if (!bad_ids) pass("happy: trace expert ids match learned_ids (top-2, largest gate first)");
            else fail("happy: trace expert ids", "%d of %d differ from learned_ids", bad_ids, N_TOKENS * LAYERS * 2);
            if (gate_diff <= 1e-4) pass("happy: trace gates match learned_gates");
            else fail("happy: trace gates", "max |diff| %.3e > 1e-4", gate_diff);
            if (!bad_rest) pass("happy: unused third slot is -1 / 0.0");
            else fail("happy: unused slot", "%d entries have a third expert", bad_rest);
            if (!bad_tokens) pass("happy: trace tokens are the evaluated tokens");
            else fail("happy: trace tokens", "%d differ", bad_tokens);
        }
    }

    /* Incremental evaluation (prefill 7, then 5 single tokens) gives the same last logits. */
    float last[VOCAB];
    if (EXPECT_OK("happy: session_reset", lmx_session_reset(s)) &&
        EXPECT_OK("happy: prefill 7 tokens", lmx_session_eval(s, tokens, 7, LMX_LOGITS_NONE, NULL, 0))) {
        int ok = 1;
        double worst = 0;
        for (int t = 7; t < N_TOKENS && ok; t++) {
            ok = lmx_session_eval(s, tokens + t, 1, LMX_LOGITS_LAST, last, VOCAB) == LMX_OK;
            if (ok) {
                double d = max_abs_diff(last, want_logits + (size_t)t * VOCAB, VOCAB);
                if (!(d <= worst)) worst = d;
            }
        }
        if (ok && worst <= 1e-4) pass("happy: decode token by token matches the oracle rows");
        else fail("happy: decode token by token", "status ok %d, max |diff| %.3e (%s)", ok, worst, lmx_last_error());
    }

    /* Routing NONE gives the base model. */
    if (EXPECT_OK("happy: session_reset", lmx_session_reset(s)) &&
        EXPECT_OK("happy: set_routing NONE", lmx_session_set_routing(s, LMX_ROUTING_NONE)) &&
        EXPECT_OK("happy: eval with routing NONE",
                  lmx_session_eval(s, tokens, N_TOKENS, LMX_LOGITS_ALL, logits, N_TOKENS * VOCAB))) {
        double d = max_abs_diff(logits, base_logits, N_TOKENS * VOCAB);
        if (d <= 1e-4) pass("happy: routing NONE matches base_logits");
        else fail("happy: routing NONE matches base_logits", "max |diff| %.3e", d);
    }

    /* Greedy generation: deterministic, and the callback sees every token. */
    {
        int32_t out1[8], out2[8];
        size_t n1 = 0, n2 = 0;
        lmx_generate_params gp = lmx_generate_params_default();
        gp.max_tokens = 5;
        EXPECT_OK("happy: set_routing LEARNED", lmx_session_set_routing(s, LMX_ROUTING_LEARNED));
        int ok = lmx_session_reset(s) == LMX_OK && lmx_session_generate(s, tokens, 4, &gp, out1, 8, &n1) == LMX_OK &&
                 lmx_session_reset(s) == LMX_OK && lmx_session_generate(s, tokens, 4, &gp, out2, 8, &n2) == LMX_OK;
        if (ok && n1 == 5 && n2 == 5 && memcmp(out1, out2, sizeof(int32_t) * 5) == 0)
            pass("happy: greedy generate is repeatable (5 tokens)");
        else fail("happy: greedy generate", "ok %d, n %zu / %zu (%s)", ok, n1, n2, ok ? "" : lmx_last_error());
    }

free_mixer:
    lmx_session_free(s);
    lmx_mixer_free(mixer);
free_model:
    lmx_model_free(model);
out:
    free(tokens);
    free(want_logits);
    free(base_logits);
    free(want_ids);
    free(want_gates);
}

/* ------------------------------------------------------------------------------------------------
 * Every routing mode and model family through the C API, against the oracle
 * ---------------------------------------------------------------------------------------------- */

enum setup { S_NONE, S_LEARNED, S_FIXED_E0, S_FIXED_E1, S_FIXED_E2, S_FIXED_MIX, S_UNIFORM, S_SOFT, S_TOPK1, S_TEMP2,
             S_CONTEXT };

/* Loads `model_rel` (+ e0..e2 and a router unless S_NONE), sets the mode, evaluates the fixture
 * tokens and compares with `tensor` of the folder's expected.safetensors. */
static void parity(const char *model_rel, enum setup setup, const char *tensor) {
    char what[160], dir[1200], path[1300];
    snprintf(what, sizeof what, "parity: %s %s", model_rel, tensor);
    current_check = what;
    fixture(dir, sizeof dir, model_rel);
    join(path, sizeof path, dir, "expected.safetensors");
    size_t n = 0;
    int32_t *tokens = fixture_tensor(path, "tokens", "I32", &n);
    float *want = fixture_tensor(path, tensor, "F32", NULL);
    float *weights = setup == S_FIXED_MIX ? fixture_tensor(path, "fixed_weights", "F32", NULL) : NULL;
    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL;
    float *logits = calloc((size_t)N_TOKENS * VOCAB, sizeof(float));
    lmx_status st = LMX_OK;
    const char *step = "fixture";
    if (!tokens || n != N_TOKENS || !want || (setup == S_FIXED_MIX && !weights)) { st = -100; goto report; }
    step = "model_load";
    if ((st = lmx_model_load(dir, NULL, &model)) != LMX_OK) goto report;
    step = "mixer_create";
    if ((st = lmx_mixer_create(model, &mixer)) != LMX_OK) goto report;
    if (setup != S_NONE) {
        for (int i = 0; i < 3; i++) {
            char name[8], rel[32], adapter[1300];
            snprintf(name, sizeof name, "e%d", i);
            snprintf(rel, sizeof rel, "adapters/e%d", i);
            join(adapter, sizeof adapter, dir, rel);
            step = "mixer_add_peft";
            if ((st = lmx_mixer_add_peft(mixer, name, adapter, NULL)) != LMX_OK) goto report;
        }
        join(path, sizeof path, dir, setup == S_CONTEXT ? "router_context.safetensors" : "router.safetensors");
        step = "mixer_load_router";
        if ((st = lmx_mixer_load_router(mixer, path)) != LMX_OK) goto report;
    }
    step = "session_create";
    if ((st = lmx_session_create(mixer, NULL, &s)) != LMX_OK) goto report;
    step = "routing setup";
    float one_hot[3] = {0, 0, 0};
    switch (setup) {
    case S_FIXED_E0: case S_FIXED_E1: case S_FIXED_E2:
        one_hot[setup - S_FIXED_E0] = 1.0f;
        st = lmx_session_set_fixed_weights(s, one_hot, 3);
        break;
    case S_FIXED_MIX: st = lmx_session_set_fixed_weights(s, weights, 3); break;
    case S_UNIFORM: st = lmx_session_set_routing(s, LMX_ROUTING_UNIFORM); break;
    case S_SOFT: st = lmx_session_set_routing(s, LMX_ROUTING_SOFT); break;
    case S_TOPK1: st = lmx_session_set_top_k(s, 1); break;
    case S_TEMP2: st = lmx_session_set_temperature(s, 2.0f); break;
    default: break;
    }
    if (st != LMX_OK) goto report;
    step = "session_eval";
    st = lmx_session_eval(s, tokens, N_TOKENS, LMX_LOGITS_ALL, logits, (size_t)N_TOKENS * VOCAB);
report:
    if (st != LMX_OK) {
        fail(what, "%s failed: %d %s", step, st, st == -100 ? "(cannot read the fixture)" : lmx_last_error());
    } else {
        double d = max_abs_diff(logits, want, (size_t)N_TOKENS * VOCAB);
        if (d <= 1e-4) {
            char ok[200];
            snprintf(ok, sizeof ok, "%s (max |diff| %.1e)", what, d);
            pass(ok);
        } else {
            fail(what, "max |diff| %.3e > 1e-4", d);
        }
    }
    lmx_session_free(s);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
    free(logits);
    free(tokens);
    free(want);
    free(weights);
}

static void test_parity(void) {
    parity("llama_f32", S_NONE, "base_logits");
    parity("llama_f32", S_FIXED_E0, "peft_e0_logits");
    parity("llama_f32", S_FIXED_E1, "peft_e1_logits");
    parity("llama_f32", S_FIXED_E2, "peft_e2_logits");
    parity("llama_f32", S_FIXED_MIX, "fixed_logits");
    parity("llama_f32", S_UNIFORM, "uniform_logits");
    parity("llama_f32", S_SOFT, "soft_logits");
    parity("llama_f32", S_TOPK1, "learned_topk1_logits");
    parity("llama_f32", S_TEMP2, "learned_temp2_logits");
    parity("llama_f32", S_CONTEXT, "context_logits");
    parity("mistral_f32", S_LEARNED, "learned_logits");
    parity("qwen2_f32", S_LEARNED, "learned_logits");
    parity("llama_bf16", S_LEARNED, "learned_logits");
    parity("llama_sharded", S_NONE, "base_logits");
}

/* A session is a snapshot: experts added to the mixer later are not seen by it. Sampling with equal
 * seeds gives equal tokens; a stop token ends generation without being written. */
static void test_snapshot_and_sampling(void) {
    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL, *s2 = NULL;
    char e0[1200], e1[1200];
    fixture(e0, sizeof e0, "llama_f32/adapters/e0");
    fixture(e1, sizeof e1, "llama_f32/adapters/e1");
    if (lmx_model_load(llama, NULL, &model) != LMX_OK || lmx_mixer_create(model, &mixer) != LMX_OK ||
        lmx_mixer_add_peft(mixer, "e0", e0, NULL) != LMX_OK || lmx_session_create(mixer, NULL, &s) != LMX_OK ||
        lmx_mixer_add_peft(mixer, "e1", e1, NULL) != LMX_OK || lmx_session_create(mixer, NULL, &s2) != LMX_OK) {
        fail("snapshot setup", "%s", lmx_last_error());
    } else {
        float w2[2] = {1, 0};
        EXPECT_ERR("snapshot: the older session still has 1 expert (2 weights refused)",
                   lmx_session_set_fixed_weights(s, w2, 2), LMX_ERR_INVALID_ARGUMENT, "1");
        EXPECT_OK("snapshot: the newer session has 2 experts", lmx_session_set_fixed_weights(s2, w2, 2));
        EXPECT_OK("snapshot: eval in the older session", lmx_session_eval(s, some_tokens, 2, LMX_LOGITS_NONE, NULL, 0));
        size_t nt = 0, nl = 0, width = 0;
        if (lmx_session_trace_size(s, &nt, &nl, &width) == LMX_OK && width == 1)
            pass("snapshot: the older session's trace is 1 slot wide");
        else fail("snapshot: trace width", "width %zu, want 1", width);

        lmx_generate_params gp = lmx_generate_params_default();
        gp.temperature = 1.0f;
        gp.top_k = 20;
        gp.top_p = 0.9f;
        gp.seed = 1234;
        gp.max_tokens = 6;
        int32_t a[6], b[6];
        size_t na = 0, nb = 0;
        int ok = lmx_session_reset(s2) == LMX_OK && lmx_session_generate(s2, some_tokens, 3, &gp, a, 6, &na) == LMX_OK &&
                 lmx_session_reset(s2) == LMX_OK && lmx_session_generate(s2, some_tokens, 3, &gp, b, 6, &nb) == LMX_OK;
        if (ok && na == 6 && nb == 6 && memcmp(a, b, sizeof a) == 0) pass("generate: equal seeds give equal samples");
        else fail("generate: equal seeds give equal samples", "ok %d, n %zu/%zu (%s)", ok, na, nb, ok ? "" : lmx_last_error());
        /* Greedy: the first token, used as a stop token, ends generation before anything is written. */
        gp = lmx_generate_params_default();
        gp.max_tokens = 4;
        ok = lmx_session_reset(s2) == LMX_OK && lmx_session_generate(s2, some_tokens, 3, &gp, a, 4, &na) == LMX_OK && na > 0;
        if (ok) {
            int32_t stop = a[0];
            gp.stop_tokens = &stop;
            gp.n_stop_tokens = 1;
            ok = lmx_session_reset(s2) == LMX_OK && lmx_session_generate(s2, some_tokens, 3, &gp, b, 4, &nb) == LMX_OK;
            if (ok && nb == 0) pass("generate: a stop token ends generation and is not written");
            else fail("generate: stop token", "ok %d, n_out %zu (want 0)", ok, nb);
        } else {
            fail("generate: stop token setup", "%s", lmx_last_error());
        }
        gp = lmx_generate_params_default();
        gp.max_tokens = 0;
        nb = 99;
        if (EXPECT_OK("generate: max_tokens 0", lmx_session_generate(s2, some_tokens, 1, &gp, b, 4, &nb)) && nb != 0)
            fail("generate: max_tokens 0", "n_out %zu", nb);
    }
    lmx_session_free(s);
    lmx_session_free(s2);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
}

/* Number of lines of /proc/self/maps that name a file under `needle` (mapped model files). */
static int mappings_of(const char *needle) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

static int lifecycle_once(void) {
    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL;
    char dir[1200], router[1200];
    float logits[VOCAB];
    int ok = lmx_model_load(llama, NULL, &model) == LMX_OK && lmx_mixer_create(model, &mixer) == LMX_OK;
    for (int i = 0; ok && i < 3; i++) {
        char name[8], rel[64];
        snprintf(name, sizeof name, "e%d", i);
        snprintf(rel, sizeof rel, "llama_f32/adapters/e%d", i);
        fixture(dir, sizeof dir, rel);
        ok = lmx_mixer_add_peft(mixer, name, dir, NULL) == LMX_OK;
    }
    fixture(router, sizeof router, "llama_f32/router.safetensors");
    ok = ok && lmx_mixer_load_router(mixer, router) == LMX_OK && lmx_session_create(mixer, NULL, &s) == LMX_OK &&
         lmx_session_eval(s, some_tokens, 5, LMX_LOGITS_LAST, logits, VOCAB) == LMX_OK;
    lmx_model_load(NULL, NULL, NULL); /* an error message, replaced each time */
    lmx_session_free(s);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
    return ok;
}

/* Loading, using and freeing everything many times must not grow the heap or keep files mapped
 * (catches leaks that stay reachable, e.g. handles kept in a registry, which valgrind does not
 * count as definite). Skipped under valgrind, whose allocator mallinfo2 does not see. */
static void test_lifecycle_loop(void) {
    if (!lifecycle_once()) {
        fail("lifecycle loop", "setup failed: %s", lmx_last_error());
        return;
    }
    struct mallinfo2 before = mallinfo2();
    if (before.uordblks == 0) {
        printf("skip lifecycle loop: mallinfo2 unavailable (valgrind?)\n");
        return;
    }
    int ok = 1;
    for (int i = 0; i < 30 && ok; i++) ok = lifecycle_once();
    struct mallinfo2 after = mallinfo2();
    long long growth = (long long)after.uordblks - (long long)before.uordblks;
    if (!ok) fail("lifecycle loop", "an iteration failed: %s", lmx_last_error());
    else if (growth > 256 * 1024)
        fail("lifecycle loop: 30 x (load, 3 experts, router, session, eval, free) does not grow the heap",
             "heap grew by %lld bytes", growth);
    else {
        char what[160];
        snprintf(what, sizeof what,
                 "lifecycle loop: 30 x (load, 3 experts, router, session, eval, free) does not grow the heap (%+lld bytes)",
                 growth);
        pass(what);
    }
    int maps = mappings_of("llama_f32/model.safetensors");
    if (maps == 0) pass("lifecycle loop: no model file stays mapped after every handle is freed");
    else fail("lifecycle loop: model files unmapped", "%d mappings of llama_f32/model.safetensors remain", maps);
}

static int32_t count_and_stop(int32_t token, void *user_data) {
    (void)token;
    int *calls = user_data;
    return ++*calls >= 2; /* stop after the second token */
}

static void test_callback(void) {
    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL;
    if (lmx_model_load(llama, NULL, &model) != LMX_OK || lmx_mixer_create(model, &mixer) != LMX_OK ||
        lmx_session_create(mixer, NULL, &s) != LMX_OK) {
        fail("generate callback setup", "%s", lmx_last_error());
    } else {
        int calls = 0;
        int32_t out[8];
        size_t n_out = 0;
        lmx_generate_params gp = lmx_generate_params_default();
        gp.max_tokens = 8;
        gp.on_token = count_and_stop;
        gp.user_data = &calls;
        if (EXPECT_OK("session_generate: callback asks to stop", lmx_session_generate(s, some_tokens, 3, &gp, out, 8, &n_out))) {
            if (calls == 2 && n_out == 2) pass("session_generate: stops after the callback's nonzero return");
            else fail("session_generate: callback stop", "callback called %d times, n_out %zu (want 2, 2)", calls, n_out);
        }
    }
    lmx_session_free(s);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
}

int main(int argc, char **argv) {
    int happy_only = 0;
    int argi = 1;
    if (argi < argc && strcmp(argv[argi], "--happy") == 0) {
        happy_only = 1;
        argi++;
    }
    if (argc - argi != 1) {
        fprintf(stderr, "usage: %s [--happy] FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    snprintf(fixtures, sizeof fixtures, "%s", argv[argi]);
    join(llama, sizeof llama, fixtures, "llama_f32");
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_crash_handler();

    if (happy_only) {
        test_happy_path();
        printf("error_test --happy: %d passed, %d failed\n", tests_passed, tests_failed);
        return tests_failed ? 1 : 0;
    }

    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/lmx_error_test.XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 2;
    }

    test_library();
    test_model_load();
    lmx_model *model = NULL;
    if (EXPECT_OK("model_load: llama_f32", lmx_model_load(llama, NULL, &model))) {
        test_model_info(model);
        test_sticky_error(model);
        test_adapters(model);
        test_routers(model);
        test_sessions(model);
        lmx_model_free(model);
    }
    test_lifetimes();
    test_callback();
    test_happy_path();
    test_parity();
    test_snapshot_and_sampling();
    test_lifecycle_loop();

    nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("error_test: %d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed ? 1 : 0;
}
