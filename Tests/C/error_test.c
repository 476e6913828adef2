/*
 * error_test.c: bad input over the public C API, plus a happy path against the oracle fixtures.
 *
 *     error_test FIXTURES_DIR            all cases (FIXTURES_DIR = Tests/Fixtures)
 *     error_test --happy FIXTURES_DIR    only the happy path (used under valgrind)
 *
 * Corrupt files are written at run time into a mkdtemp folder (removed at the end). Every error
 * case asserts the exact lmx_status and that lmx_last_error() contains the key words a host needs
 * (file name, tensor name, argument name, expected value). Experts from memory are checked too:
 * borrowed LoRA tensors (release exactly once, after the last user), custom experts (descriptor
 * checks, destroy, a failing forward, a LoRA computed by hand in the callback against
 * lmx_mixer_add_lora). Descriptors are built with designated initialisers, since the structs grow.
 * Prints one line per check and "error_test: N passed, M failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE /* mallinfo2 */

#include <dlfcn.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
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
static void case_dir(char *out, size_t size, const char *name) { make_dir(out, size, tmp, name); }

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
               "struct_size", "set it to sizeof(lmx_model_params)");
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
    load_fails("model_load: missing folder", dir, LMX_ERR_IO, "no_such_model", "model folder does not exist", NULL);
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
    EXPECT_ERR("model_get_info: struct_size 0", lmx_model_get_info(model, &info), LMX_ERR_ABI, "struct_size",
               "set it to sizeof(lmx_model_info)");
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
    size_t index = 777;
    current_check = what;
    lmx_status st = lmx_mixer_add_peft(mixer, name, dir, &index);
    expect_status(what, st, want, k1, k2, (const char *)0);
}

/* After an LMX_ERR_ABI for a too-small struct_size: the message tells the host the fix,
 * "set it to sizeof(<struct>)". */
static void expect_sizeof_hint(const char *what, const char *struct_name) {
    char want[128], check[256];
    snprintf(want, sizeof want, "sizeof(%s)", struct_name);
    snprintf(check, sizeof check, "%s: message says %s", what, want);
    if (contains_ci(lmx_last_error(), want)) pass(check);
    else fail(check, "\"%s\"", lmx_last_error());
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
    add_fails("mixer_add_peft: missing folder", mixer, "x", dir, LMX_ERR_IO, "no_adapter_here", "adapter folder does not exist");
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
    size_t index = 777;
    if (EXPECT_OK("mixer_add_peft: e0", lmx_mixer_add_peft(mixer, "e0", e0, &index))) {
        if (index == 0) pass("mixer_add_peft: first expert gets index 0");
        else fail("mixer_add_peft: first expert gets index 0", "got %zu", index);
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

    /* lmx_mixer_add_lora (descriptors built with designated initialisers: the structs grow). */
    {
        static float a[4 * 64], b[96 * 4];
        lmx_lora_tensor t[2] = {
            {.layer = 0, .module = LMX_MODULE_Q_PROJ, .in_features = 64, .out_features = 96, .a = a, .b = b},
            {.layer = 0, .module = LMX_MODULE_Q_PROJ, .in_features = 64, .out_features = 96, .a = a, .b = b}};
        const lmx_lora_desc d = {.struct_size = sizeof(lmx_lora_desc), .dtype = LMX_DTYPE_F32, .rank = 4, .alpha = 8.0f,
                                 .use_rslora = 0, .tensors = t, .n_tensors = 1, .release = NULL, .user_data = NULL};
        lmx_lora_desc x;
        EXPECT_ERR("mixer_add_lora: NULL desc", lmx_mixer_add_lora(mixer, "m", NULL, NULL), LMX_ERR_INVALID_ARGUMENT, "desc");
        EXPECT_ERR("mixer_add_lora: NULL mixer", lmx_mixer_add_lora(NULL, "m", &d, NULL), LMX_ERR_INVALID_ARGUMENT, "mixer");
        EXPECT_ERR("mixer_add_lora: NULL name", lmx_mixer_add_lora(mixer, NULL, &d, NULL), LMX_ERR_INVALID_ARGUMENT, "name");
        x = d; x.struct_size = 0;
        if (EXPECT_ERR("mixer_add_lora: struct_size 0", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_ABI,
                       "struct_size", "lmx_lora_desc"))
            expect_sizeof_hint("mixer_add_lora: struct_size 0", "lmx_lora_desc");
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
        lmx_lora_tensor bad = t[0];
        bad.module = 9;
        x = d; x.tensors = &bad;
        EXPECT_ERR("mixer_add_lora: module 9", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_INVALID_ARGUMENT, "module");
        bad.module = LMX_MODULE_Q_PROJ;
        bad.layer = 2;
        /* SHAPE, as for a PEFT adapter with a layer the model lacks: the expert does not fit the model. */
        EXPECT_ERR("mixer_add_lora: layer 2 of a 2-layer model", lmx_mixer_add_lora(mixer, "m", &x, NULL),
                   LMX_ERR_SHAPE, "layer 2");
        bad.layer = 0;
        /* The declared features are checked against the model before a or b is read. */
        bad.in_features = 96;
        bad.out_features = 64;
        EXPECT_ERR("mixer_add_lora: q_proj declared 96 -> 64 (model: 64 -> 96)", lmx_mixer_add_lora(mixer, "m", &x, NULL),
                   LMX_ERR_SHAPE, "q_proj", "96 -> 64", "64 -> 96");
        bad.in_features = 0;
        bad.out_features = 0;
        EXPECT_ERR("mixer_add_lora: features left 0", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_SHAPE, "q_proj",
                   "64 -> 96");
        bad.in_features = 64;
        bad.out_features = 96;
        bad.a = NULL;
        EXPECT_ERR("mixer_add_lora: NULL a", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_INVALID_ARGUMENT, "tensor");
        bad.a = a;
        bad.b = NULL;
        EXPECT_ERR("mixer_add_lora: NULL b", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_INVALID_ARGUMENT, "b");
        EXPECT_ERR("mixer_add_lora: name already taken (e0)", lmx_mixer_add_lora(mixer, "e0", &d, &index),
                   LMX_ERR_INVALID_ARGUMENT, "e0");
        x = d; x.n_tensors = SIZE_MAX;
        EXPECT_ERR("mixer_add_lora: n_tensors SIZE_MAX", lmx_mixer_add_lora(mixer, "m", &x, NULL), LMX_ERR_INVALID_ARGUMENT,
                   "tensors");
        index = -1;
        if (EXPECT_OK("mixer_add_lora: zero F32 q_proj expert", lmx_mixer_add_lora(mixer, "m", &d, &index)) && index != 2)
            fail("mixer_add_lora: third expert gets index 2", "got %zu", index);
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
        lmx_lora_tensor t16 = {.layer = 1, .module = LMX_MODULE_Q_PROJ, .in_features = 64, .out_features = 96,
                               .a = a16, .b = b16};
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
    EXPECT_ERR("session_create: params.struct_size 0", lmx_session_create(mixer, &sp, &s), LMX_ERR_ABI, "struct_size",
               "set it to sizeof(lmx_session_params)");
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
               LMX_ERR_INVALID_ARGUMENT, "128", "at position 1 (0-based)");  /* positions count from 0, as in lmx and Python */
    bad_tokens[1] = -1;
    EXPECT_ERR("session_eval: token id -1", lmx_session_eval(s, bad_tokens, 3, LMX_LOGITS_LAST, logits, VOCAB),
               LMX_ERR_INVALID_ARGUMENT, "-1", "at position 1 (0-based)");
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
            /* ... and FIXED then uses those weights: same logits as a session given them directly. */
            lmx_session *direct = NULL;
            float reused[VOCAB], given[VOCAB];
            if (EXPECT_OK("session_eval: FIXED after UNIFORM -> FIXED",
                          lmx_session_eval(ps, some_tokens, 3, LMX_LOGITS_LAST, reused, VOCAB)) &&
                EXPECT_OK("session_create: reference with set_fixed_weights", lmx_session_create(plain, NULL, &direct)) &&
                EXPECT_OK("session_set_fixed_weights: reference", lmx_session_set_fixed_weights(direct, w3, 3)) &&
                EXPECT_OK("session_eval: reference", lmx_session_eval(direct, some_tokens, 3, LMX_LOGITS_LAST, given, VOCAB))) {
                if (memcmp(reused, given, sizeof reused) == 0)
                    pass("session_set_routing: FIXED reuses the last fixed weights (logits identical)");
                else
                    fail("session_set_routing: FIXED reuses the last fixed weights", "logits differ (max |diff| %.3e)",
                         max_abs_diff(reused, given, VOCAB));
            }
            lmx_session_free(direct);
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
                       LMX_ERR_STATE, "context full", "n_ctx 4");
            size_t n_out = 0;
            int32_t gen[4];
            EXPECT_ERR("session_generate: 5-token prompt into n_ctx 4",
                       lmx_session_generate(small, some_tokens, 5, NULL, gen, 4, &n_out), LMX_ERR_STATE, "context full", "n_ctx 4");
            EXPECT_OK("session_eval: 3 tokens into n_ctx 4", lmx_session_eval(small, some_tokens, 3, LMX_LOGITS_NONE, NULL, 0));
            EXPECT_ERR("session_eval: 2 more tokens with 3 of 4 held",
                       lmx_session_eval(small, some_tokens, 2, LMX_LOGITS_LAST, logits, VOCAB), LMX_ERR_STATE, "context full", "n_ctx 4");
            EXPECT_OK("session_reset", lmx_session_reset(small));
            EXPECT_OK("session_eval: 4 tokens into n_ctx 4", lmx_session_eval(small, some_tokens, 4, LMX_LOGITS_LAST, logits, VOCAB));
            EXPECT_ERR("session_eval: a 5th token into a full context",
                       lmx_session_eval(small, some_tokens, 1, LMX_LOGITS_LAST, logits, VOCAB), LMX_ERR_STATE, "context full", "n_ctx 4");
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
                       LMX_ERR_ABI, "struct_size", "set it to sizeof(lmx_generate_params)");
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
        lmx_model_info info = {.struct_size = sizeof info};
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
    lmx_model_info info = {.struct_size = sizeof info};
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
 * Experts from memory: borrowed LoRA tensors (lmx_lora_desc.release) and custom experts
 * (lmx_mixer_add_custom), checked against each other and against lmx_mixer_add_lora
 * ---------------------------------------------------------------------------------------------- */

/* A rank-4 LoRA with fixed pseudo-random A and B (B nonzero, unlike a fresh PEFT adapter) on three
 * projections of llama_f32 with different shapes, both layers. Used as tensors for
 * lmx_mixer_add_lora and, computed by hand in hand_forward, as a custom expert. */
#define HAND_RANK 4
#define HAND_ALPHA 8.0f
#define HAND_MODULES 3
static const uint32_t hand_modules[HAND_MODULES] = {LMX_MODULE_Q_PROJ, LMX_MODULE_O_PROJ, LMX_MODULE_DOWN_PROJ};
static const uint32_t hand_in[HAND_MODULES] = {64, 96, 96};
static const uint32_t hand_out[HAND_MODULES] = {96, 64, 64};

typedef struct {
    float *a[LAYERS][HAND_MODULES]; /* [rank x in] */
    float *b[LAYERS][HAND_MODULES]; /* [out x rank] */
    int only_layer;                 /* -1, or the one layer the custom expert declares */
    lmx_status fail_with;           /* nonzero: hand_forward returns it (after ok_calls_left more calls) */
    int ok_calls_left;
    int calls, bad_calls, dirty_output, released, destroyed;
    char bad[256];                  /* the first bad call */
} hand_lora;

static float hand_value(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return ((float)(*state >> 8) / 16777216.0f - 0.5f) * 0.4f; /* [-0.2, 0.2) */
}

static void hand_init(hand_lora *h, uint32_t seed) {
    memset(h, 0, sizeof *h);
    h->only_layer = -1;
    uint32_t state = seed;
    for (int l = 0; l < LAYERS; l++) {
        for (int m = 0; m < HAND_MODULES; m++) {
            size_t na = (size_t)HAND_RANK * hand_in[m], nb = (size_t)hand_out[m] * HAND_RANK;
            h->a[l][m] = malloc(na * sizeof(float));
            h->b[l][m] = malloc(nb * sizeof(float));
            for (size_t i = 0; i < na; i++) h->a[l][m][i] = hand_value(&state);
            for (size_t i = 0; i < nb; i++) h->b[l][m][i] = hand_value(&state);
        }
    }
}

/* Frees the tensors (idempotent). */
static void hand_free_tensors(hand_lora *h) {
    for (int l = 0; l < LAYERS; l++) {
        for (int m = 0; m < HAND_MODULES; m++) {
            free(h->a[l][m]);
            free(h->b[l][m]);
            h->a[l][m] = h->b[l][m] = NULL;
        }
    }
}

/* lmx_lora_desc.release for a borrowed hand LoRA: counts, then frees the borrowed memory, so that
 * any later use by the library is a use-after-free that valgrind reports (make memcheck). */
static void hand_release(void *user_data) {
    hand_lora *h = user_data;
    h->released++;
    hand_free_tensors(h);
}

/* lmx_custom_expert_desc.destroy: counts only (the test frees the tensors itself). */
static void hand_destroy(void *user_data) { ((hand_lora *)user_data)->destroyed++; }

/* Tensors of `h` for lmx_lora_desc (all layers, or only `layer`); returns how many. */
static size_t hand_tensors(const hand_lora *h, lmx_lora_tensor *out, int layer) {
    size_t n = 0;
    for (int l = 0; l < LAYERS; l++) {
        if (layer >= 0 && l != layer) continue;
        for (int m = 0; m < HAND_MODULES; m++)
            out[n++] = (lmx_lora_tensor){.layer = (uint32_t)l, .module = hand_modules[m], .in_features = hand_in[m],
                                         .out_features = hand_out[m], .a = h->a[l][m], .b = h->b[l][m]};
    }
    return n;
}

static lmx_lora_desc hand_desc(const lmx_lora_tensor *tensors, size_t n, void (*release)(void *), void *user_data) {
    return (lmx_lora_desc){.struct_size = sizeof(lmx_lora_desc), .dtype = LMX_DTYPE_F32, .rank = HAND_RANK,
                           .alpha = HAND_ALPHA, .use_rslora = 0, .tensors = tensors, .n_tensors = n,
                           .release = release, .user_data = user_data};
}

static void hand_bad(hand_lora *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hand_bad(hand_lora *h, const char *fmt, ...) {
    if (h->bad_calls++) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->bad, sizeof h->bad, fmt, ap);
    va_end(ap);
}

/* The custom expert: output += (alpha / rank) * B (A x) per row, as a LoRA does, in double. Checks
 * its arguments against the declaration (layer, module, features, zeroed output). */
static lmx_status hand_forward(void *user_data, uint32_t layer, uint32_t module, const float *input, float *output,
                               size_t n_rows, size_t in_features, size_t out_features) {
    hand_lora *h = user_data;
    h->calls++;
    int m = module_index(hand_modules, HAND_MODULES, module);
    if (m < 0 || layer >= LAYERS || (h->only_layer >= 0 && (int)layer != h->only_layer)) {
        hand_bad(h, "called for layer %u module %u, which the expert does not declare", layer, module);
        return LMX_ERR_INVALID_ARGUMENT;
    }
    if (in_features != hand_in[m] || out_features != hand_out[m] || n_rows == 0 || !input || !output) {
        hand_bad(h, "layer %u module %u: in %zu out %zu rows %zu input %p output %p (want in %u out %u)", layer, module,
                 in_features, out_features, n_rows, (const void *)input, (void *)output, hand_in[m], hand_out[m]);
        return LMX_ERR_INVALID_ARGUMENT;
    }
    if (h->fail_with != LMX_OK) {
        if (h->ok_calls_left == 0) return h->fail_with;
        h->ok_calls_left--;
    }
    const float *a = h->a[layer][m], *b = h->b[layer][m];
    const double scale = HAND_ALPHA / HAND_RANK;
    for (size_t r = 0; r < n_rows; r++) {
        float *y = output + r * out_features;
        for (size_t j = 0; j < out_features; j++)
            if (y[j] != 0.0f) h->dirty_output++;
        lora_row(a, b, HAND_RANK, scale, input + r * in_features, y, in_features, out_features);
    }
    return LMX_OK;
}

static lmx_custom_expert_desc hand_custom_desc(hand_lora *h, const uint32_t *layers, size_t n_layers) {
    return (lmx_custom_expert_desc){.struct_size = sizeof(lmx_custom_expert_desc), .modules = hand_modules,
                                    .in_features = hand_in, .out_features = hand_out, .n_modules = HAND_MODULES,
                                    .layers = layers, .n_layers = n_layers, .forward = hand_forward,
                                    .destroy = hand_destroy, .user_data = h};
}

#define EXPERT_TOKENS 5

/* Resets `s`, sets fixed weights `w` (n experts) and evaluates some_tokens into
 * logits[EXPERT_TOKENS * VOCAB]; one check line. */
static int eval_fixed(const char *what, lmx_session *s, const float *w, size_t n, float *logits) {
    lmx_status st;
    const char *step = "session_reset";
    current_check = what;
    if ((st = lmx_session_reset(s)) == LMX_OK) {
        step = "session_set_fixed_weights";
        if ((st = lmx_session_set_fixed_weights(s, w, n)) == LMX_OK) {
            step = "session_eval";
            st = lmx_session_eval(s, some_tokens, EXPERT_TOKENS, LMX_LOGITS_ALL, logits, (size_t)EXPERT_TOKENS * VOCAB);
        }
    }
    if (st == LMX_OK) pass(what);
    else fail(what, "%s: %s (%d) \"%s\"", step, status_name(st), st, lmx_last_error());
    return st == LMX_OK;
}

static void expect_close(const char *what, const float *got, const float *want, double tolerance) {
    expect_close_n(what, got, want, (size_t)EXPERT_TOKENS * VOCAB, tolerance);
}

static void expect_differ(const char *what, const float *a, const float *b) {
    double d = max_abs_diff(a, b, (size_t)EXPERT_TOKENS * VOCAB);
    char line[256];
    snprintf(line, sizeof line, "%s (max |diff| %.2f)", what, d);
    if (d > 1e-3) pass(line);
    else fail(what, "max |diff| only %.3e: the expert has no visible effect, so the comparison proves nothing", d);
}

/* A custom expert that computes a LoRA by hand gives the logits of the same A and B given to
 * lmx_mixer_add_lora, with the gate applied to its output; restricted to one layer too. */
static void test_custom_matches_lora(void) {
    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL;
    hand_lora h;
    hand_init(&h, 12345);
    size_t n_logits = (size_t)EXPERT_TOKENS * VOCAB;
    float *base = calloc(n_logits, sizeof(float)), *lora = calloc(n_logits, sizeof(float));
    float *custom = calloc(n_logits, sizeof(float)), *other = calloc(n_logits, sizeof(float));
    lmx_lora_tensor tensors[LAYERS * HAND_MODULES];
    lmx_lora_desc ld = hand_desc(tensors, hand_tensors(&h, tensors, -1), NULL, NULL);
    lmx_custom_expert_desc cd = hand_custom_desc(&h, NULL, 0);
    size_t index = 777;
    if (!EXPECT_OK("custom vs lora: model_load", lmx_model_load(llama, NULL, &model)) ||
        !EXPECT_OK("custom vs lora: mixer_create", lmx_mixer_create(model, &mixer)) ||
        !EXPECT_OK("custom vs lora: add_lora (q, o, down_proj of both layers)", lmx_mixer_add_lora(mixer, "lora", &ld, &index)))
        goto out;
    if (EXPECT_OK("custom vs lora: add_custom computing the same LoRA", lmx_mixer_add_custom(mixer, "custom", &cd, &index)) &&
        index != 1)
        fail("mixer_add_custom: second expert gets index 1", "got %zu", index);
    if (index != 1 || !EXPECT_OK("custom vs lora: session_create", lmx_session_create(mixer, NULL, &s))) goto out;

    const float w_lora[2] = {1, 0}, w_custom[2] = {0, 1}, w_half[2] = {0.5f, 0.5f};
    const float w_lora_03[2] = {0.3f, 0}, w_custom_03[2] = {0, 0.3f};
    if (EXPECT_OK("custom vs lora: routing NONE", lmx_session_set_routing(s, LMX_ROUTING_NONE)) &&
        EXPECT_OK("custom vs lora: base logits", lmx_session_eval(s, some_tokens, EXPERT_TOKENS, LMX_LOGITS_ALL, base, n_logits)) &&
        h.calls == 0)
        pass("custom vs lora: routing NONE does not call forward");
    else if (h.calls) fail("custom vs lora: routing NONE does not call forward", "%d calls", h.calls);
    if (eval_fixed("custom vs lora: eval with weights {1, 0}", s, w_lora, 2, lora) &&
        eval_fixed("custom vs lora: eval with weights {0, 1}", s, w_custom, 2, custom)) {
        expect_differ("custom vs lora: the LoRA changes the logits", lora, base);
        expect_close("custom vs lora: custom expert logits == add_lora logits", custom, lora, 1e-5);
        /* 3 modules x 2 layers per pass. */
        if (h.calls == LAYERS * HAND_MODULES) pass("custom vs lora: forward called once per (layer, module) of a pass");
        else fail("custom vs lora: forward calls", "%d calls for one 5-token pass, want %d", h.calls, LAYERS * HAND_MODULES);
    }
    if (eval_fixed("custom vs lora: eval with weights {0.5, 0.5}", s, w_half, 2, other))
        expect_close("custom vs lora: 0.5 x lora + 0.5 x custom == 1 x lora", other, lora, 1e-5);
    if (eval_fixed("custom vs lora: eval with weights {0.3, 0}", s, w_lora_03, 2, lora) &&
        eval_fixed("custom vs lora: eval with weights {0, 0.3}", s, w_custom_03, 2, custom))
        expect_close("custom vs lora: the gate (0.3) scales the custom expert's output", custom, lora, 1e-5);
    /* Prefill 3, then decode 2 one by one: forward sees 3, 1 and 1 rows. */
    {
        float last[VOCAB];
        int ok = lmx_session_reset(s) == LMX_OK && lmx_session_set_fixed_weights(s, w_custom, 2) == LMX_OK &&
                 lmx_session_eval(s, some_tokens, 3, LMX_LOGITS_NONE, NULL, 0) == LMX_OK &&
                 lmx_session_eval(s, some_tokens + 3, 1, LMX_LOGITS_NONE, NULL, 0) == LMX_OK &&
                 lmx_session_eval(s, some_tokens + 4, 1, LMX_LOGITS_LAST, last, VOCAB) == LMX_OK;
        if (!ok) fail("custom vs lora: prefill 3 + decode 2", "%s", lmx_last_error());
        else if (eval_fixed("custom vs lora: reference for decode", s, w_lora, 2, lora)) {
            double d = max_abs_diff(last, lora + (size_t)(EXPERT_TOKENS - 1) * VOCAB, VOCAB);
            if (d <= 1e-5) pass("custom vs lora: decoding token by token through the custom expert matches");
            else fail("custom vs lora: decode", "last row max |diff| %.3e > 1e-5", d);
        }
    }
    if (h.bad_calls == 0) pass("custom vs lora: forward always got the declared layer, module, features");
    else fail("custom vs lora: forward arguments", "%d bad calls; first: %s", h.bad_calls, h.bad);
    if (h.dirty_output == 0) pass("custom vs lora: forward's output buffer arrives zeroed");
    else fail("custom vs lora: output zeroed", "%d nonzero output values on entry", h.dirty_output);
    lmx_session_free(s);
    s = NULL;
    lmx_mixer_free(mixer);
    mixer = NULL;
    if (h.destroyed == 1) pass("custom vs lora: destroy ran once after the session and the mixer were freed");
    else fail("custom vs lora: destroy", "ran %d times, want 1", h.destroyed);

    /* Only layer 1: the LoRA's layer-1 tensors vs a custom expert declaring layers = {1}. */
    {
        static const uint32_t layer1[1] = {1};
        hand_lora h1;
        hand_init(&h1, 777);
        h1.only_layer = 1;
        lmx_lora_tensor t1[HAND_MODULES];
        lmx_lora_desc ld1 = hand_desc(t1, hand_tensors(&h1, t1, 1), NULL, NULL);
        lmx_custom_expert_desc cd1 = hand_custom_desc(&h1, layer1, 1);
        if (EXPECT_OK("custom vs lora, layer 1 only: mixer_create", lmx_mixer_create(model, &mixer)) &&
            EXPECT_OK("custom vs lora, layer 1 only: add_lora", lmx_mixer_add_lora(mixer, "lora1", &ld1, NULL)) &&
            EXPECT_OK("custom vs lora, layer 1 only: add_custom with layers {1}", lmx_mixer_add_custom(mixer, "custom1", &cd1, NULL)) &&
            EXPECT_OK("custom vs lora, layer 1 only: session_create", lmx_session_create(mixer, NULL, &s)) &&
            eval_fixed("custom vs lora, layer 1 only: weights {1, 0}", s, w_lora, 2, lora) &&
            eval_fixed("custom vs lora, layer 1 only: weights {0, 1}", s, w_custom, 2, custom)) {
            expect_differ("custom vs lora, layer 1 only: the LoRA changes the logits", lora, base);
            expect_close("custom vs lora, layer 1 only: logits agree", custom, lora, 1e-5);
            if (h1.bad_calls == 0 && h1.calls == HAND_MODULES) pass("custom vs lora, layer 1 only: forward called for layer 1 only");
            else fail("custom vs lora, layer 1 only: forward calls", "%d calls (want %d), %d bad: %s", h1.calls, HAND_MODULES,
                      h1.bad_calls, h1.bad);
        }
        lmx_session_free(s);
        s = NULL;
        lmx_mixer_free(mixer);
        mixer = NULL;
        hand_free_tensors(&h1);
    }
out:
    lmx_session_free(s);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
    hand_free_tensors(&h);
    free(base);
    free(lora);
    free(custom);
    free(other);
}

/* lmx_lora_desc.release: the tensors are used in place and released exactly once, after the last
 * session and mixer using them are gone; the logits equal those of the copied tensors. */
static void count_release(void *user_data) { ++*(int *)user_data; }

static void test_borrowed_lora(void) {
    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s1 = NULL, *s2 = NULL;
    hand_lora copied, borrowed;
    hand_init(&copied, 4242);
    hand_init(&borrowed, 4242); /* same values */
    size_t n_logits = (size_t)EXPERT_TOKENS * VOCAB;
    float *base = calloc(n_logits, sizeof(float)), *from_copy = calloc(n_logits, sizeof(float));
    float *from_borrowed = calloc(n_logits, sizeof(float));
    lmx_lora_tensor tc[LAYERS * HAND_MODULES], tb[LAYERS * HAND_MODULES];
    lmx_lora_desc dc = hand_desc(tc, hand_tensors(&copied, tc, -1), NULL, NULL);
    lmx_lora_desc db = hand_desc(tb, hand_tensors(&borrowed, tb, -1), hand_release, &borrowed);
    if (!EXPECT_OK("borrowed lora: model_load", lmx_model_load(llama, NULL, &model)) ||
        !EXPECT_OK("borrowed lora: mixer_create", lmx_mixer_create(model, &mixer)))
        goto out;
    if (EXPECT_OK("borrowed lora: add_lora copied (release NULL)", lmx_mixer_add_lora(mixer, "copied", &dc, NULL)))
        hand_free_tensors(&copied); /* "the caller's memory may be released as soon as this returns" */
    EXPECT_OK("borrowed lora: add_lora borrowed (release set)", lmx_mixer_add_lora(mixer, "borrowed", &db, NULL));
    if (!EXPECT_OK("borrowed lora: session 1", lmx_session_create(mixer, NULL, &s1)) ||
        !EXPECT_OK("borrowed lora: session 2", lmx_session_create(mixer, NULL, &s2)))
        goto out;
    if (borrowed.released == 0) pass("borrowed lora: not released while the mixer holds it");
    else fail("borrowed lora: release timing", "released %d times while the mixer is alive", borrowed.released);
    lmx_mixer_free(mixer);
    mixer = NULL;
    if (borrowed.released == 0) pass("borrowed lora: not released after lmx_mixer_free while sessions use it");
    else fail("borrowed lora: release timing", "released %d times after lmx_mixer_free, with 2 sessions alive",
              borrowed.released);
    const float w_copy[2] = {1, 0}, w_borrowed[2] = {0, 1};
    if (EXPECT_OK("borrowed lora: routing NONE", lmx_session_set_routing(s1, LMX_ROUTING_NONE)) &&
        EXPECT_OK("borrowed lora: base logits", lmx_session_eval(s1, some_tokens, EXPERT_TOKENS, LMX_LOGITS_ALL, base, n_logits)) &&
        eval_fixed("borrowed lora: eval the copied expert", s1, w_copy, 2, from_copy) &&
        eval_fixed("borrowed lora: eval the borrowed expert", s1, w_borrowed, 2, from_borrowed)) {
        expect_differ("borrowed lora: the expert changes the logits", from_copy, base);
        if (memcmp(from_copy, from_borrowed, n_logits * sizeof(float)) == 0)
            pass("borrowed lora: logits identical to the copied variant");
        else fail("borrowed lora: logits equal the copied variant", "max |diff| %.3e",
                  max_abs_diff(from_copy, from_borrowed, n_logits));
    }
    lmx_session_free(s1);
    s1 = NULL;
    if (borrowed.released == 0) pass("borrowed lora: not released while one session still uses it");
    else fail("borrowed lora: release timing", "released %d times with session 2 alive", borrowed.released);
    if (EXPECT_OK("borrowed lora: session 2 evaluates after the mixer and session 1 are gone",
                  lmx_session_set_fixed_weights(s2, w_borrowed, 2)) &&
        EXPECT_OK("borrowed lora: session 2 eval",
                  lmx_session_eval(s2, some_tokens, EXPERT_TOKENS, LMX_LOGITS_ALL, from_copy, n_logits))) {
        if (memcmp(from_copy, from_borrowed, n_logits * sizeof(float)) == 0)
            pass("borrowed lora: session 2 gives the same logits");
        else fail("borrowed lora: session 2 logits", "max |diff| %.3e", max_abs_diff(from_copy, from_borrowed, n_logits));
    }
    lmx_session_free(s2);
    s2 = NULL;
    if (borrowed.released == 1) pass("borrowed lora: released exactly once, when the last session was freed");
    else fail("borrowed lora: released exactly once", "released %d times", borrowed.released);

    /* Other orders: session freed before the mixer; a mixer without sessions. */
    {
        int released = 0;
        static float a[4 * 64], b[96 * 4];
        lmx_lora_tensor t = {.layer = 0, .module = LMX_MODULE_Q_PROJ, .in_features = 64, .out_features = 96, .a = a, .b = b};
        lmx_lora_desc d = hand_desc(&t, 1, count_release, &released);
        d.alpha = 4.0f;
        if (EXPECT_OK("borrowed lora: mixer_create (session freed first)", lmx_mixer_create(model, &mixer)) &&
            EXPECT_OK("borrowed lora: add borrowed", lmx_mixer_add_lora(mixer, "b", &d, NULL)) &&
            EXPECT_OK("borrowed lora: session_create", lmx_session_create(mixer, NULL, &s1))) {
            lmx_session_free(s1);
            s1 = NULL;
            int after_session = released;
            lmx_mixer_free(mixer);
            mixer = NULL;
            if (after_session == 0 && released == 1)
                pass("borrowed lora: session freed first, released once when the mixer is freed");
            else fail("borrowed lora: session then mixer", "released %d after the session, %d after the mixer (want 0, 1)",
                      after_session, released);
        }
        released = 0;
        if (EXPECT_OK("borrowed lora: mixer_create (no session)", lmx_mixer_create(model, &mixer)) &&
            EXPECT_OK("borrowed lora: add borrowed", lmx_mixer_add_lora(mixer, "b", &d, NULL))) {
            lmx_mixer_free(mixer);
            mixer = NULL;
            if (released == 1) pass("borrowed lora: mixer without sessions, released once by lmx_mixer_free");
            else fail("borrowed lora: mixer without sessions", "released %d times", released);
        }

        /* A failed add_lora with release set: the header does not say whether release runs. It
         * must at least be the same for every failure, or a host cannot know whether to free. */
        int on_rank = 0, on_module = 0, on_duplicate = 0, on_shape = 0;
        if (EXPECT_OK("borrowed lora: mixer for failed adds", lmx_mixer_create(model, &mixer)) &&
            EXPECT_OK("borrowed lora: add a copied 'taken'", lmx_mixer_add_lora(mixer, "taken", &(lmx_lora_desc){
                .struct_size = sizeof(lmx_lora_desc), .dtype = LMX_DTYPE_F32, .rank = 4, .alpha = 4.0f,
                .tensors = &t, .n_tensors = 1}, NULL))) {
            lmx_lora_desc x = hand_desc(&t, 1, count_release, &on_rank);
            x.rank = 0;
            lmx_mixer_add_lora(mixer, "r0", &x, NULL);
            lmx_lora_tensor bad = t;
            bad.module = 9;
            x = hand_desc(&bad, 1, count_release, &on_module);
            lmx_mixer_add_lora(mixer, "m9", &x, NULL);
            bad = t;
            bad.in_features = 96;
            x = hand_desc(&bad, 1, count_release, &on_shape);
            lmx_mixer_add_lora(mixer, "shape", &x, NULL);
            x = hand_desc(&t, 1, count_release, &on_duplicate);
            lmx_mixer_add_lora(mixer, "taken", &x, NULL);
            lmx_mixer_free(mixer);
            mixer = NULL;
            if (on_rank == 0 && on_module == 0 && on_shape == 0 && on_duplicate == 0)
                pass("borrowed lora: a failed add_lora never calls release (the memory stays the caller's)");
            else
                fail("borrowed lora: a failed add_lora never calls release (the memory stays the caller's)",
                     "release ran %d x after rank 0, %d x after module 9, %d x after a shape mismatch, %d x after a "
                     "duplicate name", on_rank, on_module, on_shape, on_duplicate);
        }
    }
out:
    lmx_session_free(s1);
    lmx_session_free(s2);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
    hand_free_tensors(&copied);
    hand_free_tensors(&borrowed);
    free(base);
    free(from_copy);
    free(from_borrowed);
}

/* lmx_mixer_add_custom: arguments, descriptor checks (exact status and message words), destroy
 * never called for a refused expert, out_index optional. */
static lmx_status noop_forward(void *user_data, uint32_t layer, uint32_t module, const float *input, float *output,
                               size_t n_rows, size_t in_features, size_t out_features) {
    (void)user_data; (void)layer; (void)module; (void)input; (void)output; (void)n_rows; (void)in_features;
    (void)out_features;
    return LMX_OK;
}

static void count_destroy(void *user_data) { ++*(int *)user_data; }

static void test_custom_expert_args(lmx_model *model) {
    lmx_mixer *mixer = NULL;
    if (!EXPECT_OK("add_custom: mixer_create", lmx_mixer_create(model, &mixer))) return;
    int destroyed = 0;
    static const uint32_t o_proj[1] = {LMX_MODULE_O_PROJ}, in96[1] = {96}, out64[1] = {64};
    const lmx_custom_expert_desc d = {.struct_size = sizeof(lmx_custom_expert_desc), .modules = o_proj,
                                      .in_features = in96, .out_features = out64, .n_modules = 1, .layers = NULL,
                                      .n_layers = 0, .forward = noop_forward, .destroy = count_destroy,
                                      .user_data = &destroyed};
    lmx_custom_expert_desc x;
    size_t index = 777;

    EXPECT_ERR("add_custom: NULL mixer", lmx_mixer_add_custom(NULL, "c", &d, &index), LMX_ERR_INVALID_ARGUMENT, "mixer");
    EXPECT_ERR("add_custom: a model handle as the mixer", lmx_mixer_add_custom((lmx_mixer *)(void *)model, "c", &d, &index),
               LMX_ERR_INVALID_ARGUMENT, "mixer");
    EXPECT_ERR("add_custom: NULL name", lmx_mixer_add_custom(mixer, NULL, &d, &index), LMX_ERR_INVALID_ARGUMENT, "name");
    EXPECT_ERR("add_custom: empty name", lmx_mixer_add_custom(mixer, "", &d, &index), LMX_ERR_INVALID_ARGUMENT, "name");
    EXPECT_ERR("add_custom: NULL desc", lmx_mixer_add_custom(mixer, "c", NULL, &index), LMX_ERR_INVALID_ARGUMENT, "desc");
    x = d; x.forward = NULL;
    EXPECT_ERR("add_custom: NULL forward", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_INVALID_ARGUMENT, "forward");
    x = d; x.n_modules = 0;
    EXPECT_ERR("add_custom: n_modules 0", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_INVALID_ARGUMENT,
               "n_modules", "0");
    x = d; x.n_modules = SIZE_MAX;
    EXPECT_ERR("add_custom: n_modules SIZE_MAX", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_INVALID_ARGUMENT,
               "n_modules");
    x = d; x.modules = NULL;
    EXPECT_ERR("add_custom: NULL modules", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_INVALID_ARGUMENT, "modules");
    x = d; x.in_features = NULL;
    EXPECT_ERR("add_custom: NULL in_features", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_INVALID_ARGUMENT,
               "in_features");
    {
        static const uint32_t m11[1] = {11}, m_dt[1] = {LMX_MODULE_DT_PROJ}, m_max[1] = {UINT32_MAX};
        x = d; x.modules = m11;
        EXPECT_ERR("add_custom: unknown module 11", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_INVALID_ARGUMENT,
                   "module", "11");
        x = d; x.modules = m_dt;
        EXPECT_ERR("add_custom: Mamba's dt_proj on a llama model", lmx_mixer_add_custom(mixer, "c", &x, &index),
                   LMX_ERR_INVALID_ARGUMENT, "dt_proj does not exist", "LlamaForCausalLM");
        x = d; x.modules = m_max;
        EXPECT_ERR("add_custom: module UINT32_MAX", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_INVALID_ARGUMENT,
                   "module", "4294967295");
    }
    {
        static const uint32_t twice[2] = {LMX_MODULE_O_PROJ, LMX_MODULE_O_PROJ}, in2[2] = {96, 96}, out2[2] = {64, 64};
        x = d; x.modules = twice; x.in_features = in2; x.out_features = out2; x.n_modules = 2;
        EXPECT_ERR("add_custom: o_proj listed twice", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_INVALID_ARGUMENT,
                   "o_proj", "twice");
    }
    {
        static const uint32_t in64[1] = {64};
        x = d; x.in_features = in64;
        EXPECT_ERR("add_custom: o_proj declared 64 -> 64 (model: 96 -> 64)", lmx_mixer_add_custom(mixer, "c", &x, &index),
                   LMX_ERR_SHAPE, "o_proj", "64 -> 64", "96 -> 64");
        static const uint32_t qo[2] = {LMX_MODULE_Q_PROJ, LMX_MODULE_O_PROJ}, qo_in[2] = {64, 96}, qo_out[2] = {96, 96};
        x = d; x.modules = qo; x.in_features = qo_in; x.out_features = qo_out; x.n_modules = 2;
        EXPECT_ERR("add_custom: second module o_proj declared 96 -> 96", lmx_mixer_add_custom(mixer, "c", &x, &index),
                   LMX_ERR_SHAPE, "o_proj", "96 -> 96", "96 -> 64");
        static const uint32_t gate[1] = {LMX_MODULE_GATE_PROJ};
        x = d; x.modules = gate; /* declared 96 -> 64, gate_proj is 64 -> 96 */
        EXPECT_ERR("add_custom: gate_proj declared 96 -> 64 (model: 64 -> 96)", lmx_mixer_add_custom(mixer, "c", &x, &index),
                   LMX_ERR_SHAPE, "gate_proj", "96 -> 64", "64 -> 96");
    }
    {
        static const uint32_t l2[1] = {2}, l_max[1] = {UINT32_MAX}, ok_then_bad[2] = {0, 5};
        x = d; x.layers = l2; x.n_layers = 1;
        EXPECT_ERR("add_custom: layer 2 of a 2-layer model", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_SHAPE,
                   "layers[0]", "2", "2 layers");
        x = d; x.layers = l_max; x.n_layers = 1;
        EXPECT_ERR("add_custom: layer UINT32_MAX", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_SHAPE,
                   "4294967295", "2 layers");
        x = d; x.layers = ok_then_bad; x.n_layers = 2;
        EXPECT_ERR("add_custom: layers {0, 5}", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_SHAPE, "layers[1]", "5");
        x = d; x.layers = NULL; x.n_layers = 1;
        EXPECT_ERR("add_custom: NULL layers with n_layers 1", lmx_mixer_add_custom(mixer, "c", &x, &index),
                   LMX_ERR_INVALID_ARGUMENT, "layers");
        x = d; x.layers = ok_then_bad; x.n_layers = 3;
        EXPECT_ERR("add_custom: n_layers 3 of a 2-layer model", lmx_mixer_add_custom(mixer, "c", &x, &index),
                   LMX_ERR_INVALID_ARGUMENT, "layers");
        /* A count above INT64_MAX (e.g. an underflowed size_t) must be refused like 3. On its own
         * mixer, since the library currently accepts it (as an expert that adapts no layer). */
        lmx_mixer *other = NULL;
        int other_destroyed = 0;
        if (EXPECT_OK("add_custom: mixer for n_layers SIZE_MAX", lmx_mixer_create(model, &other))) {
            x = d; x.layers = ok_then_bad; x.n_layers = SIZE_MAX; x.user_data = &other_destroyed;
            const char *what = "add_custom: n_layers SIZE_MAX refused (LMX_ERR_INVALID_ARGUMENT, 'layers')";
            current_check = what;
            lmx_status st = lmx_mixer_add_custom(other, "c", &x, NULL);
            if (st == LMX_ERR_INVALID_ARGUMENT && contains_ci(lmx_last_error(), "layers")) pass(what);
            else fail(what, "got %s \"%s\"", status_name(st), st ? lmx_last_error() : "");
            lmx_mixer_free(other);
        }
    }
    x = d; x.struct_size = 0;
    if (EXPECT_ERR("add_custom: struct_size 0", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_ABI, "struct_size",
                   "lmx_custom_expert_desc"))
        expect_sizeof_hint("add_custom: struct_size 0", "lmx_custom_expert_desc");
    x = d; x.struct_size = (uint32_t)offsetof(lmx_custom_expert_desc, user_data);
    EXPECT_ERR("add_custom: struct_size without user_data", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_ABI,
               "struct_size");
    size_t count = 99;
    if (index == 777 && destroyed == 0 && lmx_mixer_expert_count(mixer, &count) == LMX_OK && count == 0)
        pass("add_custom: refused descriptors add nothing, leave out_index alone, never call destroy");
    else fail("add_custom: refused descriptors", "out_index %zu, destroy ran %d times, expert count %zu", index, destroyed,
              count);

    /* Accepted: out_index, NULL out_index (regression: it used to skip the add), newer struct. */
    index = -1;
    if (EXPECT_OK("add_custom: o_proj 96 -> 64", lmx_mixer_add_custom(mixer, "c", &d, &index)) && index != 0)
        fail("add_custom: first expert gets index 0", "got %zu", index);
    {
        size_t before = 0, after = 0;
        lmx_mixer_expert_count(mixer, &before);
        if (EXPECT_OK("add_custom: out_index NULL", lmx_mixer_add_custom(mixer, "c_no_index", &d, NULL))) {
            lmx_mixer_expert_count(mixer, &after);
            if (after == before + 1) pass("add_custom: out_index NULL still adds the expert");
            else fail("add_custom: out_index NULL still adds the expert", "LMX_OK, but the expert count went %zu -> %zu",
                      before, after);
        }
        union { lmx_custom_expert_desc d; unsigned char bytes[sizeof(lmx_custom_expert_desc) + 16]; } newer;
        memset(&newer, 0x5A, sizeof newer);
        newer.d = d;
        newer.d.struct_size = sizeof newer;
        EXPECT_OK("add_custom: desc from a newer header (struct_size + 16)",
                  lmx_mixer_add_custom(mixer, "c_newer", &newer.d, NULL));
        static const uint32_t both[2] = {1, 0};
        x = d; x.layers = both; x.n_layers = 2;
        EXPECT_OK("add_custom: layers {1, 0}", lmx_mixer_add_custom(mixer, "c_layers", &x, NULL));
        x = d; x.destroy = NULL;
        EXPECT_OK("add_custom: no destroy callback", lmx_mixer_add_custom(mixer, "c_no_destroy", &x, NULL));
    }
    /* Duplicate names (custom or LoRA): refused, and the refused desc's destroy never runs. */
    {
        int dup_destroyed = 0;
        x = d; x.user_data = &dup_destroyed;
        EXPECT_ERR("add_custom: duplicate name 'c'", lmx_mixer_add_custom(mixer, "c", &x, &index), LMX_ERR_INVALID_ARGUMENT,
                   "'c'");
        static float a[4 * 64], b[96 * 4];
        lmx_lora_tensor t = {.layer = 0, .module = LMX_MODULE_Q_PROJ, .in_features = 64, .out_features = 96, .a = a, .b = b};
        lmx_lora_desc ld = {.struct_size = sizeof(lmx_lora_desc), .dtype = LMX_DTYPE_F32, .rank = 4, .alpha = 4.0f,
                            .tensors = &t, .n_tensors = 1};
        EXPECT_OK("add_lora: 'lora'", lmx_mixer_add_lora(mixer, "lora", &ld, NULL));
        EXPECT_ERR("add_custom: the name of a LoRA expert", lmx_mixer_add_custom(mixer, "lora", &x, &index),
                   LMX_ERR_INVALID_ARGUMENT, "lora");
        EXPECT_ERR("add_lora: the name of a custom expert", lmx_mixer_add_lora(mixer, "c", &ld, &index),
                   LMX_ERR_INVALID_ARGUMENT, "'c'");
        int before_free = destroyed;
        lmx_mixer_free(mixer);
        mixer = NULL;
        if (dup_destroyed == 0) pass("add_custom: destroy of a refused duplicate never runs (not even at mixer_free)");
        else fail("add_custom: destroy of a refused duplicate", "ran %d times", dup_destroyed);
        /* c, c_no_index, c_newer, c_layers have destroy (c_no_destroy has none). */
        if (before_free == 0 && destroyed == 4) pass("add_custom: destroy ran once per accepted expert, at lmx_mixer_free");
        else fail("add_custom: destroy at lmx_mixer_free", "%d before the free, %d after (want 0, 4)", before_free, destroyed);
    }
    lmx_mixer_free(mixer);
}

/* destroy runs exactly once, after the mixer and every session holding the expert are freed, in
 * any order; a session created before the expert was added does not hold it. */
static void test_custom_expert_lifetimes(void) {
    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s1 = NULL, *s2 = NULL, *early = NULL;
    hand_lora h;
    hand_init(&h, 99);
    lmx_custom_expert_desc cd = hand_custom_desc(&h, NULL, 0);
    if (!EXPECT_OK("custom lifetimes: model_load", lmx_model_load(llama, NULL, &model)) ||
        !EXPECT_OK("custom lifetimes: mixer_create", lmx_mixer_create(model, &mixer)) ||
        !EXPECT_OK("custom lifetimes: session before the expert", lmx_session_create(mixer, NULL, &early)) ||
        !EXPECT_OK("custom lifetimes: add_custom", lmx_mixer_add_custom(mixer, "hand", &cd, NULL)) ||
        !EXPECT_OK("custom lifetimes: session 1", lmx_session_create(mixer, NULL, &s1)) ||
        !EXPECT_OK("custom lifetimes: session 2", lmx_session_create(mixer, NULL, &s2)))
        goto out;
    lmx_model_free(model);
    model = NULL;
    lmx_mixer_free(mixer);
    mixer = NULL;
    int after_mixer = h.destroyed;
    float logits[VOCAB];
    const float one[1] = {1};
    if (EXPECT_OK("custom lifetimes: session 1 after the model and mixer handles are freed",
                  lmx_session_set_fixed_weights(s1, one, 1)) &&
        EXPECT_OK("custom lifetimes: eval through the custom expert",
                  lmx_session_eval(s1, some_tokens, 3, LMX_LOGITS_LAST, logits, VOCAB)) && h.calls == 0)
        fail("custom lifetimes: eval through the custom expert", "forward was never called");
    lmx_session_free(s1);
    s1 = NULL;
    int after_s1 = h.destroyed;
    lmx_session_free(s2);
    s2 = NULL;
    int after_s2 = h.destroyed;
    if (after_mixer == 0 && after_s1 == 0 && after_s2 == 1)
        pass("custom lifetimes: destroy ran once, when the last session holding the expert was freed");
    else fail("custom lifetimes: destroy exactly once, after the last user",
              "destroy count after mixer_free %d, after session 1 %d, after session 2 %d (want 0, 0, 1)", after_mixer,
              after_s1, after_s2);
    lmx_session_free(early);
    early = NULL;
    if (h.destroyed == 1) pass("custom lifetimes: a session created before the expert does not call destroy again");
    else fail("custom lifetimes: early session", "destroy count %d", h.destroyed);
out:
    lmx_session_free(s1);
    lmx_session_free(s2);
    lmx_session_free(early);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
    hand_free_tensors(&h);
}

/* A forward that returns an error: the evaluation fails with LMX_ERR_PLUGIN and leaves the session
 * exactly as it was (n_past, trace, KV cache: later tokens give the logits of an unfailed session). */
static void test_custom_expert_failure(void) {
    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL, *ref = NULL;
    hand_lora h;
    hand_init(&h, 2024);
    lmx_custom_expert_desc cd = hand_custom_desc(&h, NULL, 0);
    const float one[1] = {1};
    float got[2 * VOCAB], want[2 * VOCAB];
    size_t n_past = 99, nt = 99, nl = 0, width = 0;
    if (!EXPECT_OK("custom failure: model_load", lmx_model_load(llama, NULL, &model)) ||
        !EXPECT_OK("custom failure: mixer_create", lmx_mixer_create(model, &mixer)) ||
        !EXPECT_OK("custom failure: add_custom 'failing'", lmx_mixer_add_custom(mixer, "failing", &cd, NULL)) ||
        !EXPECT_OK("custom failure: session", lmx_session_create(mixer, NULL, &s)) ||
        !EXPECT_OK("custom failure: reference session", lmx_session_create(mixer, NULL, &ref)) ||
        !EXPECT_OK("custom failure: fixed weights", lmx_session_set_fixed_weights(s, one, 1)) ||
        !EXPECT_OK("custom failure: reference fixed weights", lmx_session_set_fixed_weights(ref, one, 1)))
        goto out;
    h.fail_with = -42;
    EXPECT_ERR("custom failure: eval on an empty session", lmx_session_eval(s, some_tokens, 3, LMX_LOGITS_LAST, got, VOCAB),
               LMX_ERR_PLUGIN, "failing", "-42");
    if (lmx_session_n_past(s, &n_past) == LMX_OK && n_past == 0) pass("custom failure: n_past stays 0");
    else fail("custom failure: n_past after a failed first eval", "%zu, want 0", n_past);
    h.fail_with = LMX_OK;
    if (!EXPECT_OK("custom failure: eval 3 tokens", lmx_session_eval(s, some_tokens, 3, LMX_LOGITS_NONE, NULL, 0)) ||
        !EXPECT_OK("custom failure: reference eval 3 tokens", lmx_session_eval(ref, some_tokens, 3, LMX_LOGITS_NONE, NULL, 0)))
        goto out;
    h.fail_with = LMX_ERR_OUT_OF_MEMORY;
    EXPECT_ERR("custom failure: eval 2 more tokens (forward returns LMX_ERR_OUT_OF_MEMORY)",
               lmx_session_eval(s, some_tokens + 3, 2, LMX_LOGITS_ALL, got, 2 * VOCAB), LMX_ERR_PLUGIN, "failing", "-7");
    h.fail_with = 1; /* any status other than LMX_OK is a failure */
    EXPECT_ERR("custom failure: eval (forward returns 1)", lmx_session_eval(s, some_tokens + 3, 1, LMX_LOGITS_NONE, NULL, 0),
               LMX_ERR_PLUGIN, "failing");
    {
        int32_t out[4];
        size_t n_out = 99;
        h.fail_with = -42;
        EXPECT_ERR("custom failure: generate", lmx_session_generate(s, some_tokens + 3, 2, NULL, out, 4, &n_out),
                   LMX_ERR_PLUGIN, "failing", "-42");
        EXPECT_ERR("custom failure: generate with an empty prompt (decode fails)",
                   lmx_session_generate(s, NULL, 0, NULL, out, 4, &n_out), LMX_ERR_PLUGIN, "failing");
    }
    n_past = 99;
    if (lmx_session_n_past(s, &n_past) == LMX_OK && n_past == 3) pass("custom failure: n_past unchanged (3) by the failed calls");
    else fail("custom failure: n_past unchanged", "%zu, want 3", n_past);
    if (lmx_session_trace_size(s, &nt, &nl, &width) == LMX_OK && nt == 3) pass("custom failure: trace unchanged (3 tokens)");
    else fail("custom failure: trace unchanged", "%zu tokens, want 3", nt);
    /* Generation that fails after two generated tokens were evaluated (prompt pass + 2 decode
     * passes of 6 forward calls each succeed). The header does not say what a failed generate
     * leaves behind; a host can only resume if the session is unchanged, or holds exactly the
     * prompt and the n_out tokens written. */
    {
        lmx_session *g = NULL;
        int32_t out[8];
        size_t n_out = 99, g_past = 99;
        lmx_generate_params gp = lmx_generate_params_default();
        gp.max_tokens = 6;
        if (EXPECT_OK("custom failure: session for generate", lmx_session_create(mixer, NULL, &g)) &&
            EXPECT_OK("custom failure: generate fixed weights", lmx_session_set_fixed_weights(g, one, 1))) {
            h.fail_with = -42;
            h.ok_calls_left = 3 * LAYERS * HAND_MODULES;
            EXPECT_ERR("custom failure: generate fails at the 3rd decode pass",
                       lmx_session_generate(g, some_tokens, 3, &gp, out, 8, &n_out), LMX_ERR_PLUGIN, "failing", "-42");
            h.fail_with = LMX_OK;
            h.ok_calls_left = 0;
            lmx_session_n_past(g, &g_past);
            const char *what = "custom failure: a failed generate leaves the session as before the call, n_out 0";
            if (g_past == 0 && n_out == 0) pass(what);
            else fail(what, "n_out %zu, n_past %zu (want 0 and 0)", n_out, g_past);
        }
        lmx_session_free(g);
    }
    /* Routing NONE does not call the expert, so it cannot fail. */
    {
        lmx_session *none = NULL;
        if (EXPECT_OK("custom failure: session with routing NONE", lmx_session_create(mixer, NULL, &none)) &&
            EXPECT_OK("custom failure: routing NONE", lmx_session_set_routing(none, LMX_ROUTING_NONE)))
            EXPECT_OK("custom failure: eval with routing NONE while forward fails",
                      lmx_session_eval(none, some_tokens, 2, LMX_LOGITS_NONE, NULL, 0));
        lmx_session_free(none);
    }
    h.fail_with = LMX_OK;
    if (EXPECT_OK("custom failure: eval 2 more tokens once forward works again",
                  lmx_session_eval(s, some_tokens + 3, 2, LMX_LOGITS_ALL, got, 2 * VOCAB)) &&
        EXPECT_OK("custom failure: reference eval of the same 2 tokens",
                  lmx_session_eval(ref, some_tokens + 3, 2, LMX_LOGITS_ALL, want, 2 * VOCAB))) {
        if (memcmp(got, want, sizeof got) == 0)
            pass("custom failure: after the failures the session continues exactly like one that never failed");
        else fail("custom failure: session state after failures", "logits differ from the reference (max |diff| %.3e)",
                  max_abs_diff(got, want, 2 * VOCAB));
    }
out:
    lmx_session_free(s);
    lmx_session_free(ref);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
    if (h.destroyed == 1) pass("custom failure: destroy ran once");
    else fail("custom failure: destroy ran once", "%d times", h.destroyed);
    hand_free_tensors(&h);
}

/* Plugin entry points without a plugin: defaults, policy and file errors, empty listings. */
static void test_plugin_errors(lmx_model *model) {
    lmx_mixer *mixer = NULL;
    if (!EXPECT_OK("plugins: mixer_create", lmx_mixer_create(model, &mixer))) return;
    lmx_plugin_params pp = lmx_plugin_params_default();
    if (pp.struct_size == sizeof(lmx_plugin_params) && pp.config == NULL && pp.allowed_sha256 == NULL &&
        pp.n_allowed_sha256 == 0 && pp.allow_writable == 0)
        pass("plugin_params_default: sizeof, no config, no pinning, writable refused");
    else fail("plugin_params_default", "struct_size %u (want %zu), config %p, allowed %p/%zu, allow_writable %u",
              pp.struct_size, sizeof(lmx_plugin_params), (const void *)pp.config, (const void *)pp.allowed_sha256,
              pp.n_allowed_sha256, pp.allow_writable);
    char dir[1200], path[1300];
    size_t index = 77, count = 99, needed = 0;
    char buf[32];
    case_dir(dir, sizeof dir, "plugins");
    EXPECT_ERR("load_plugin: NULL mixer", lmx_mixer_load_plugin(NULL, "x.so", NULL, &index), LMX_ERR_INVALID_ARGUMENT, "mixer");
    EXPECT_ERR("load_plugin: NULL path", lmx_mixer_load_plugin(mixer, NULL, NULL, &index), LMX_ERR_INVALID_ARGUMENT, "path");
    join(path, sizeof path, dir, "no_plugin.so");
    EXPECT_ERR("load_plugin: missing file", lmx_mixer_load_plugin(mixer, path, NULL, &index), LMX_ERR_IO, "no_plugin.so");
    join(path, sizeof path, dir, "text.so");
    write_text(path, "not a shared library\n");
    EXPECT_ERR("load_plugin: a text file", lmx_mixer_load_plugin(mixer, path, NULL, &index), LMX_ERR_PLUGIN, "text.so",
               "shared library");
    EXPECT_ERR("load_plugin: a folder", lmx_mixer_load_plugin(mixer, dir, NULL, &index), LMX_ERR_PLUGIN, "plugins");
    pp.struct_size = 0;
    EXPECT_ERR("load_plugin: params.struct_size 0", lmx_mixer_load_plugin(mixer, path, &pp, &index), LMX_ERR_ABI,
               "struct_size", "set it to sizeof(lmx_plugin_params)");
    {
        pp = lmx_plugin_params_default();
        const char *allowed[1] = {"0000000000000000000000000000000000000000000000000000000000000000"};
        pp.allowed_sha256 = allowed;
        pp.n_allowed_sha256 = 1;
        EXPECT_ERR("load_plugin: SHA-256 not in the allowed list", lmx_mixer_load_plugin(mixer, path, &pp, &index),
                   LMX_ERR_PLUGIN, "text.so", "SHA-256");
        pp.allowed_sha256 = NULL;
        EXPECT_ERR("load_plugin: NULL allowed_sha256 with n 1", lmx_mixer_load_plugin(mixer, path, &pp, &index),
                   LMX_ERR_INVALID_ARGUMENT, "allowed_sha256");
    }
    if (chmod(path, 0666) == 0) {
        EXPECT_ERR("load_plugin: a file writable by others", lmx_mixer_load_plugin(mixer, path, NULL, &index), LMX_ERR_PLUGIN,
                   "text.so", "writable");
        chmod(path, 0644);
    }
    /* A shared library without lmx_plugin_entry: the loramixer library itself. */
    {
        char lib[1200];
        Dl_info info;
        if (dladdr((void *)lmx_version, &info) && info.dli_fname) {
            snprintf(lib, sizeof lib, "%s", info.dli_fname);
            EXPECT_ERR("load_plugin: a shared library without lmx_plugin_entry", lmx_mixer_load_plugin(mixer, lib, NULL, &index),
                       LMX_ERR_PLUGIN, "lmx_plugin_entry");
        }
    }
    if (index == 77 && EXPECT_OK("mixer_plugin_count", lmx_mixer_plugin_count(mixer, &count)) && count == 0)
        pass("load_plugin: failed loads leave no plugin and out_index alone");
    else fail("load_plugin: failed loads", "out_index %zu, plugin count %zu", index, count);
    EXPECT_ERR("mixer_plugin_count: NULL out_count", lmx_mixer_plugin_count(mixer, NULL), LMX_ERR_INVALID_ARGUMENT, "out_count");
    EXPECT_ERR("mixer_plugin_string: index 0 of 0", lmx_mixer_plugin_string(mixer, 0, LMX_PLUGIN_ID, buf, sizeof buf, &needed),
               LMX_ERR_NOT_FOUND, "0");
    EXPECT_ERR("mixer_unload_plugin: unknown id", lmx_mixer_unload_plugin(mixer, "org.example.none"), LMX_ERR_NOT_FOUND,
               "org.example.none");
    EXPECT_ERR("mixer_unload_plugin: NULL id", lmx_mixer_unload_plugin(mixer, NULL), LMX_ERR_INVALID_ARGUMENT, "id");
    lmx_mixer_free(mixer);
}

/* ------------------------------------------------------------------------------------------------
 * Happy path against the oracle
 * ---------------------------------------------------------------------------------------------- */

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
        size_t index = 777;
        if (EXPECT_OK(what, lmx_mixer_add_peft(mixer, name, dir, &index)) && index != (size_t)i)
            fail(what, "index %zu, want %d", index, i);
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
            trace_diff r = compare_trace(ids, gates, trace_tokens, tokens, want_ids, want_gates, N_TOKENS, LAYERS, 4,
                                         "trace token");
            if (!r.bad_ids) pass("happy: trace expert ids match learned_ids (top-2, largest gate first)");
            else fail("happy: trace expert ids", "%d of %d differ from learned_ids", r.bad_ids, N_TOKENS * LAYERS * 2);
            if (r.gate_diff <= 1e-4) pass("happy: trace gates match learned_gates");
            else fail("happy: trace gates", "max |diff| %.3e > 1e-4", r.gate_diff);
            if (!r.bad_rest) pass("happy: unused third slot is -1 / 0.0");
            else fail("happy: unused slot", "%d entries have a third expert", r.bad_rest);
            if (!r.bad_tokens) pass("happy: trace tokens are the evaluated tokens");
            else fail("happy: trace tokens", "%d differ", r.bad_tokens);
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

static uint32_t count_and_stop(int32_t token, void *user_data) {
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
        return test_summary("error_test --happy");
    }

    if (!make_temp_dir(tmp, sizeof tmp, "lmx_error_test")) return 2;

    test_library();
    test_model_load();
    lmx_model *model = NULL;
    if (EXPECT_OK("model_load: llama_f32", lmx_model_load(llama, NULL, &model))) {
        test_model_info(model);
        test_sticky_error(model);
        test_adapters(model);
        test_routers(model);
        test_sessions(model);
        test_custom_expert_args(model);
        test_plugin_errors(model);
        lmx_model_free(model);
    }
    test_lifetimes();
    test_borrowed_lora();
    test_custom_matches_lora();
    test_custom_expert_lifetimes();
    test_custom_expert_failure();
    test_callback();
    test_happy_path();
    test_parity();
    test_snapshot_and_sampling();
    test_lifecycle_loop();

    remove_tree(tmp);
    return test_summary("error_test");
}
