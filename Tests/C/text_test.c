/*
 * text_test.c: the C API for text (tokenizers, text streams, chat templates, text generation).
 *
 *     text_test FIXTURES_DIR
 *
 * The bundled model is found at FIXTURES_DIR/../../models (the repository's models/).
 *  1. The bundled byte-level model's own tokenizer: info, end-of-turn ids, ids == bytes, round trip.
 *  2. Tests/Fixtures/tokenizers/{llama3,qwen2}: every case of cases.json (read here, so the test
 *     follows the fixture) through lmx_tokenize and lmx_detokenize, and through a text stream.
 *  3. Text streams: a character split over byte tokens comes out whole, a small buffer loses
 *     nothing, finish returns a cut character as U+FFFD.
 *  4. Chat templates: the bundled model's, and a folder made of the llama3 tokenizer and the
 *     template of Tests/Fixtures/chat_templates/llama3.json against its expected renderings.
 *  5. lmx_session_generate_text: "12+30=" routed answers "42" (stopped at the newline), callbacks,
 *     stop reasons, truncated output, chat prompts, continuing.
 *  6. Errors: NULL arguments, bad handles, invalid UTF-8 (offset named), unknown ids, capacities,
 *     no chat template, messages with NULL fields, a tokenizer of another vocabulary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loramixer.h"
#include "test_util.h"

static char fixtures[1024];
static char models[1200];

/* ------------------------------------------------------------------ a small JSON reader */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;
typedef struct jvalue {
    jtype type;
    double num;
    char *str;           /* J_STR: malloc'ed, NUL-terminated; len bytes (may contain NUL) */
    size_t len;
    struct jvalue *items; /* J_ARR / J_OBJ */
    char **keys;          /* J_OBJ */
    size_t n;
} jvalue;

static const char *jp;

static void skip_ws(void) {
    while (*jp == ' ' || *jp == '\n' || *jp == '\r' || *jp == '\t') jp++;
}

static void put_utf8(char **out, size_t *len, unsigned cp) {
    char *o = *out + *len;
    if (cp < 0x80) { o[0] = (char)cp; *len += 1; }
    else if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); *len += 2; }
    else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        *len += 3;
    } else {
        o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
        *len += 4;
    }
}

static int parse_string(char **out, size_t *out_len) {
    if (*jp != '"') return 0;
    jp++;
    const char *start = jp;
    size_t cap = 1;
    while (*jp && *jp != '"') { if (*jp == '\\') jp++; jp++; cap++; }
    if (!*jp) return 0;
    char *s = malloc(cap * 4 + 1);
    size_t len = 0;
    jp = start;
    while (*jp != '"') {
        char c = *jp++;
        if (c != '\\') { s[len++] = c; continue; }
        c = *jp++;
        switch (c) {
        case 'n': s[len++] = '\n'; break;
        case 't': s[len++] = '\t'; break;
        case 'r': s[len++] = '\r'; break;
        case 'b': s[len++] = '\b'; break;
        case 'f': s[len++] = '\f'; break;
        case 'u': {
            unsigned cp = (unsigned)strtoul((char[5]){jp[0], jp[1], jp[2], jp[3], 0}, NULL, 16);
            jp += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && jp[0] == '\\' && jp[1] == 'u') {
                unsigned lo = (unsigned)strtoul((char[5]){jp[2], jp[3], jp[4], jp[5], 0}, NULL, 16);
                jp += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(&s, &len, cp);
            break;
        }
        default: s[len++] = c; /* " \ / */
        }
    }
    jp++;
    s[len] = 0;
    *out = s;
    *out_len = len;
    return 1;
}

static int parse_value(jvalue *v) {
    memset(v, 0, sizeof *v);
    skip_ws();
    if (*jp == '"') { v->type = J_STR; return parse_string(&v->str, &v->len); }
    if (*jp == '[' || *jp == '{') {
        int obj = *jp == '{';
        char close = obj ? '}' : ']';
        v->type = obj ? J_OBJ : J_ARR;
        jp++;
        size_t cap = 0;
        skip_ws();
        if (*jp == close) { jp++; return 1; }
        for (;;) {
            if (v->n == cap) {
                cap = cap ? cap * 2 : 8;
                v->items = realloc(v->items, cap * sizeof *v->items);
                if (obj) v->keys = realloc(v->keys, cap * sizeof *v->keys);
            }
            skip_ws();
            if (obj) {
                size_t klen;
                if (!parse_string(&v->keys[v->n], &klen)) return 0;
                skip_ws();
                if (*jp++ != ':') return 0;
            }
            if (!parse_value(&v->items[v->n])) return 0;
            v->n++;
            skip_ws();
            if (*jp == ',') { jp++; continue; }
            if (*jp == close) { jp++; return 1; }
            return 0;
        }
    }
    if (!strncmp(jp, "true", 4)) { v->type = J_BOOL; v->num = 1; jp += 4; return 1; }
    if (!strncmp(jp, "false", 5)) { v->type = J_BOOL; jp += 5; return 1; }
    if (!strncmp(jp, "null", 4)) { v->type = J_NULL; jp += 4; return 1; }
    char *end;
    v->type = J_NUM;
    v->num = strtod(jp, &end);
    if (end == jp) return 0;
    jp = end;
    return 1;
}

static void free_json(jvalue *v) {
    for (size_t i = 0; i < v->n; i++) {
        free_json(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
}

static const jvalue *get(const jvalue *v, const char *key) {
    if (!v || v->type != J_OBJ) return NULL;
    for (size_t i = 0; i < v->n; i++) if (strcmp(v->keys[i], key) == 0) return &v->items[i];
    return NULL;
}

/* The JSON document of a file; 0 (after a FAIL) if it cannot be read or parsed. */
static int load_json(const char *path, jvalue *out) {
    size_t len = 0;
    char *text = (char *)read_file(path, &len);
    if (!text) { fail("read json", "cannot read %s", path); return 0; }
    jp = text;
    int ok = parse_value(out);
    free(text);
    if (!ok) { fail("parse json", "%s is not JSON this reader understands", path); free_json(out); }
    return ok;
}

/* ids of a JSON array of numbers into a malloc'ed array (n in *n). */
static int32_t *json_ids(const jvalue *a, size_t *n) {
    *n = a && a->type == J_ARR ? a->n : 0;
    int32_t *ids = malloc((*n ? *n : 1) * sizeof *ids);
    for (size_t i = 0; i < *n; i++) ids[i] = (int32_t)a->items[i].num;
    return ids;
}

/* ------------------------------------------------------------------ helpers */

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* detokenize into a malloc'ed buffer (length in *len); NULL on failure. */
static char *detok(const lmx_tokenizer *tok, const int32_t *ids, size_t n, uint32_t skip, size_t *len) {
    size_t needed = 0;
    if (lmx_detokenize(tok, ids, n, skip, NULL, 0, &needed) != LMX_OK) return NULL;
    char *buf = malloc(needed + 1);
    if (lmx_detokenize(tok, ids, n, skip, buf, needed + 1, len) != LMX_OK) { free(buf); return NULL; }
    return buf;
}

/* Pushes ids through a new stream into a malloc'ed string (length in *len), then finish. */
static char *stream_all(const lmx_tokenizer *tok, const int32_t *ids, size_t n, uint32_t skip, size_t *len) {
    lmx_text_stream *s = NULL;
    if (lmx_text_stream_create(tok, skip, &s) != LMX_OK) return NULL;
    size_t cap = 64, used = 0;
    char *all = malloc(cap);
    char piece[256];
    size_t got = 0;
    for (size_t i = 0; i <= n; i++) {
        lmx_status st = i < n ? lmx_text_stream_push(s, ids[i], piece, sizeof piece, &got)
                              : lmx_text_stream_finish(s, piece, sizeof piece, &got);
        if (st != LMX_OK) { free(all); lmx_text_stream_free(s); return NULL; }
        if (used + got + 1 > cap) { cap = (used + got + 1) * 2; all = realloc(all, cap); }
        memcpy(all + used, piece, got);
        used += got;
    }
    all[used] = 0;
    *len = used;
    lmx_text_stream_free(s);
    return all;
}

static lmx_model *load_bundled(void) {
    char path[1400];
    join(path, sizeof path, models, "tiny-llama");
    lmx_model *model = NULL;
    if (!EXPECT_OK("load models/tiny-llama", lmx_model_load(path, NULL, &model))) return NULL;
    return model;
}

static lmx_tokenizer *load_fixture_tokenizer(const char *name) {
    char path[1400], rel[256];
    snprintf(rel, sizeof rel, "tokenizers/%s", name);
    join(path, sizeof path, fixtures, rel);
    lmx_tokenizer *tok = NULL;
    if (!EXPECT_OK(name, lmx_tokenizer_load(path, &tok))) return NULL;
    return tok;
}

/* ------------------------------------------------------------------ 1. bundled tokenizer */

static void test_bundled_tokenizer(void) {
    lmx_model *model = load_bundled();
    if (!model) return;
    lmx_tokenizer *tok = NULL, *again = NULL;
    if (!EXPECT_OK("model_tokenizer", lmx_model_tokenizer(model, &tok))) goto out;
    EXPECT_OK("model_tokenizer again (a new handle)", lmx_model_tokenizer(model, &again));
    if (again && again != tok) pass("model_tokenizer: each call returns a new handle");
    else fail("model_tokenizer: new handle", "%p %p", (void *)tok, (void *)again);
    lmx_tokenizer_free(again);

    lmx_tokenizer_info info = {.struct_size = sizeof info};
    if (EXPECT_OK("tokenizer_get_info", lmx_tokenizer_get_info(tok, &info)) && info.n_vocab == 256 && info.max_id == 255 &&
        info.has_chat_template == 1 && info.n_end_of_turn >= 1 && info.bos_id == -1 && info.pad_id == -1)
        pass("tokenizer_get_info: 256 ids, chat template, an end-of-turn id, no BOS/PAD (-1)");
    else fail("tokenizer_get_info", "n_vocab %u max %d chat %u eot %u bos %d pad %d", info.n_vocab, info.max_id,
              info.has_chat_template, info.n_end_of_turn, info.bos_id, info.pad_id);
    int32_t eot[8];
    size_t n_eot = 0;
    EXPECT_OK("end_of_turn: ask the count", lmx_tokenizer_end_of_turn(tok, NULL, 0, &n_eot));
    if (n_eot == info.n_end_of_turn && EXPECT_OK("end_of_turn", lmx_tokenizer_end_of_turn(tok, eot, 8, &n_eot)) &&
        n_eot >= 1 && eot[0] == 10)
        pass("end_of_turn: generation_config.json's eos_token_id 10 (newline)");
    else fail("end_of_turn", "n %zu first %d", n_eot, n_eot ? eot[0] : -1);

    const char *text = "12+30=";
    int32_t ids[16];
    size_t n = 0;
    EXPECT_OK("tokenize: ask the count (NULL, 0)", lmx_tokenize(tok, text, 6, 1, 0, NULL, 0, &n));
    if (n == 6) pass("tokenize: count 6 asked with NULL ids");
    else fail("tokenize: count", "%zu", n);
    if (EXPECT_OK("tokenize 12+30=", lmx_tokenize(tok, text, 6, 1, 0, ids, 16, &n)) && n == 6) {
        int bytes = 1;
        for (size_t i = 0; i < n; i++) bytes &= ids[i] == (unsigned char)text[i];
        if (bytes) pass("tokenize: byte-level ids == the text's bytes (no BOS: the tokenizer adds none)");
        else fail("tokenize: ids == bytes", "ids differ");
    }
    size_t len = 0;
    char *back = detok(tok, ids, n, 1, &len);
    if (back && len == 6 && strcmp(back, text) == 0) pass("detokenize: round trip 12+30=");
    else fail("detokenize round trip", "'%s'", back ? back : "(failed)");
    free(back);
    /* not NUL-terminated text: only len bytes are read */
    const char unterminated[4] = {'a', 'b', 'c', 'd'};
    if (EXPECT_OK("tokenize: 3 of 4 bytes, no NUL", lmx_tokenize(tok, unterminated, 3, 0, 0, ids, 16, &n)) && n == 3 &&
        ids[2] == 'c')
        pass("tokenize: reads exactly len bytes");
    else fail("tokenize len", "n %zu", n);
    EXPECT_OK("tokenize: NULL text with len 0", lmx_tokenize(tok, NULL, 0, 0, 0, ids, 16, &n));
    if (n == 0) pass("tokenize: empty text gives 0 ids");
    else fail("tokenize empty", "%zu", n);
    /* a byte token's piece may be NUL or a part of a character */
    char piece[8];
    size_t needed = 9;
    if (EXPECT_OK("token_to_piece 0", lmx_token_to_piece(tok, 0, piece, sizeof piece, &needed)) && needed == 1 &&
        piece[0] == 0)
        pass("token_to_piece: the byte-0 token is one NUL byte (needed 1)");
    else fail("token_to_piece 0", "needed %zu", needed);
    if (EXPECT_OK("token_to_piece 0xC3", lmx_token_to_piece(tok, 0xC3, piece, sizeof piece, &needed)) && needed == 1 &&
        (unsigned char)piece[0] == 0xC3 && piece[1] == 0)
        pass("token_to_piece: a byte token gives its byte (part of a character)");
    else fail("token_to_piece 0xC3", "needed %zu", needed);
    /* detokenize bytes that are not UTF-8 -> U+FFFD */
    const int32_t cut[3] = {'a', 0xC3, 'b'};
    back = detok(tok, cut, 3, 1, &len);
    if (back && len == 5 && memcmp(back, "a\xEF\xBF\xBD" "b", 5) == 0) pass("detokenize: a cut character becomes U+FFFD");
    else fail("detokenize cut", "len %zu", len);
    free(back);
    /* truncation on a UTF-8 boundary, OK status */
    const int32_t e_acute[3] = {'x', 0xC3, 0xA9};
    char small[3];
    if (EXPECT_OK("detokenize into 3 bytes", lmx_detokenize(tok, e_acute, 3, 1, small, sizeof small, &needed)) &&
        needed == 3 && strcmp(small, "x") == 0)
        pass("detokenize: truncated on a UTF-8 boundary ('x' of 'x\xC3\xA9'), needed 3");
    else fail("detokenize truncated", "needed %zu '%s'", needed, small);
out:
    lmx_tokenizer_free(tok);
    lmx_model_free(model);
}

/* ------------------------------------------------------------------ 2. fixture cases */

static void test_fixture_cases(const char *name) {
    char path[1400], rel[256], what[256];
    lmx_tokenizer *tok = load_fixture_tokenizer(name);
    if (!tok) return;
    snprintf(rel, sizeof rel, "tokenizers/%s/cases.json", name);
    join(path, sizeof path, fixtures, rel);
    jvalue doc;
    if (!load_json(path, &doc)) { lmx_tokenizer_free(tok); return; }
    const jvalue *cases = get(&doc, "cases");
    lmx_tokenizer_info info = {.struct_size = sizeof info};
    lmx_tokenizer_get_info(tok, &info);
    const jvalue *vocab = get(&doc, "vocab_size");
    snprintf(what, sizeof what, "%s: n_vocab == cases.json vocab_size", name);
    if (vocab && info.n_vocab == (uint32_t)vocab->num) pass(what);
    else fail(what, "%u", info.n_vocab);
    int bad_plain = 0, bad_special = 0, bad_decoded = 0, bad_skip = 0, bad_stream = 0, checked = 0;
    for (size_t c = 0; cases && c < cases->n; c++) {
        const jvalue *k = &cases->items[c], *t = get(k, "text");
        if (!t || t->type != J_STR) continue;
        size_t n_plain, n_special, n;
        int32_t *plain = json_ids(get(k, "ids"), &n_plain), *special = json_ids(get(k, "ids_special"), &n_special);
        int32_t *got = malloc((n_special + n_plain + 8) * sizeof *got);
        if (lmx_tokenize(tok, t->str, t->len, 0, 1, got, n_special + n_plain + 8, &n) != LMX_OK ||
            !same_ids(got, n, plain, n_plain)) {
            if (bad_plain++ < 3) printf("     %s: tokenize '%s': %zu ids (want %zu)\n", name, t->str, n, n_plain);
        }
        if (lmx_tokenize(tok, t->str, t->len, 1, 1, got, n_special + n_plain + 8, &n) != LMX_OK ||
            !same_ids(got, n, special, n_special))
            bad_special++;
        size_t len = 0;
        const jvalue *decoded = get(k, "decoded"), *skip = get(k, "decoded_skip");
        char *text = detok(tok, special, n_special, 0, &len);
        if (!text || !decoded || len != decoded->len || memcmp(text, decoded->str, len) != 0) bad_decoded++;
        free(text);
        text = detok(tok, special, n_special, 1, &len);
        if (!text || !skip || len != skip->len || memcmp(text, skip->str, len) != 0) bad_skip++;
        free(text);
        text = stream_all(tok, special, n_special, 1, &len);
        if (!text || !skip || len != skip->len || memcmp(text, skip->str, len) != 0) bad_stream++;
        free(text);
        free(plain);
        free(special);
        free(got);
        checked++;
    }
    snprintf(what, sizeof what, "%s: %d cases of cases.json: tokenize (plain, with specials), detokenize (shown, skipped), stream",
             name, checked);
    if (checked >= 50 && !bad_plain && !bad_special && !bad_decoded && !bad_skip && !bad_stream) pass(what);
    else fail(what, "bad: plain %d special %d decoded %d skip %d stream %d", bad_plain, bad_special, bad_decoded,
              bad_skip, bad_stream);
    /* partial decodes: U+FFFD for cut characters, as tokenizers does */
    const jvalue *partial = get(&doc, "partial");
    int bad_partial = 0, n_partial = 0;
    for (size_t c = 0; partial && c < partial->n; c++) {
        size_t n, len = 0;
        int32_t *ids = json_ids(get(&partial->items[c], "ids"), &n);
        const jvalue *decoded = get(&partial->items[c], "decoded");
        char *text = detok(tok, ids, n, 0, &len);
        if (!text || !decoded || len != decoded->len || memcmp(text, decoded->str, len) != 0) bad_partial++;
        free(text);
        free(ids);
        n_partial++;
    }
    snprintf(what, sizeof what, "%s: %d partial decodes (cut characters as U+FFFD)", name, n_partial);
    if (!bad_partial) pass(what);
    else fail(what, "%d differ", bad_partial);
    free_json(&doc);
    lmx_tokenizer_free(tok);
}

/* ------------------------------------------------------------------ 3. streams */

static void test_stream(void) {
    lmx_model *model = load_bundled();
    lmx_tokenizer *tok = NULL;
    lmx_text_stream *s = NULL;
    if (!model || !EXPECT_OK("stream: tokenizer", lmx_model_tokenizer(model, &tok))) goto out;
    if (!EXPECT_OK("stream_create", lmx_text_stream_create(tok, 1, &s))) goto out;
    lmx_tokenizer_free(tok); /* the stream keeps the tokenizer alive */
    tok = NULL;
    char buf[16];
    size_t needed = 99;
    /* "€" is E2 82 AC: nothing until its last byte */
    if (EXPECT_OK("push E2", lmx_text_stream_push(s, 0xE2, buf, sizeof buf, &needed)) && needed == 0 && buf[0] == 0)
        pass("stream: the first byte of a 3-byte character gives no text");
    else fail("stream E2", "needed %zu", needed);
    EXPECT_OK("push 82 (NULL buffer, capacity 0: empty text fits)", lmx_text_stream_push(s, 0x82, NULL, 0, &needed));
    /* the last byte with a buffer too small: SHAPE, nothing consumed */
    EXPECT_ERR("push AC into 3 bytes", lmx_text_stream_push(s, 0xAC, buf, 3, &needed), LMX_ERR_SHAPE, "capacity");
    if (needed == 3) pass("stream: a small buffer reports needed 3 and keeps the text");
    else fail("stream small buffer", "needed %zu", needed);
    if (EXPECT_OK("push AC again, 4 bytes", lmx_text_stream_push(s, 0xAC, buf, 4, &needed)) && needed == 3 &&
        strcmp(buf, "\xE2\x82\xAC") == 0)
        pass("stream: retried with a larger buffer, the character comes out whole (nothing lost)");
    else fail("stream retry", "needed %zu", needed);
    EXPECT_OK("push 'a'", lmx_text_stream_push(s, 'a', buf, sizeof buf, &needed));
    if (needed == 1 && strcmp(buf, "a") == 0) pass("stream: an ASCII byte is its own text");
    else fail("stream a", "needed %zu", needed);
    EXPECT_OK("push 999 (unknown id: no text)", lmx_text_stream_push(s, 999, buf, sizeof buf, &needed));
    if (needed == 0) pass("stream: an unknown id adds nothing");
    else fail("stream unknown id", "%zu", needed);
    EXPECT_OK("push C3", lmx_text_stream_push(s, 0xC3, buf, sizeof buf, &needed));
    EXPECT_ERR("finish into 0 bytes", lmx_text_stream_finish(s, NULL, 0, &needed), LMX_ERR_SHAPE, "capacity");
    if (EXPECT_OK("finish", lmx_text_stream_finish(s, buf, sizeof buf, &needed)) && needed == 3 &&
        strcmp(buf, "\xEF\xBF\xBD") == 0)
        pass("stream: finish gives the cut character as U+FFFD (kept through the failed finish)");
    else fail("stream finish", "needed %zu", needed);
    if (EXPECT_OK("finish again (empty)", lmx_text_stream_finish(s, buf, sizeof buf, &needed)) && needed == 0)
        pass("stream: empty after finish, reusable");
    else fail("stream finish again", "%zu", needed);
out:
    lmx_text_stream_free(s);
    lmx_tokenizer_free(tok);
    lmx_model_free(model);
}

/* ------------------------------------------------------------------ 4. chat templates */

static void test_chat(void) {
    lmx_model *model = load_bundled();
    lmx_tokenizer *tok = NULL, *llama = NULL;
    char tmp[1024] = "";
    jvalue doc = {0};
    if (!model || !EXPECT_OK("chat: tokenizer", lmx_model_tokenizer(model, &tok))) goto out;
    lmx_chat_message conv[2] = {{"user", "12+30="}, {"assistant", "42"}};
    char buf[64];
    size_t needed = 0;
    if (EXPECT_OK("chat: bundled template", lmx_chat_apply_template(tok, conv, 2, 0, buf, sizeof buf, &needed)) &&
        strcmp(buf, "12+30=42\n") == 0 && needed == 9)
        pass("chat: the bundled template: user content as is, assistant content + newline");
    else fail("chat bundled", "'%s'", buf);
    if (EXPECT_OK("chat: generation prompt", lmx_chat_apply_template(tok, conv, 1, 1, buf, sizeof buf, &needed)) &&
        strcmp(buf, "12+30=") == 0)
        pass("chat: one user message with the generation prompt");
    else fail("chat gen prompt", "'%s'", buf);
    EXPECT_OK("chat: no messages", lmx_chat_apply_template(tok, NULL, 0, 0, buf, sizeof buf, &needed));
    lmx_chat_message broken[2] = {{"user", "a"}, {NULL, "b"}};
    EXPECT_ERR("chat: NULL role", lmx_chat_apply_template(tok, broken, 2, 0, buf, sizeof buf, &needed),
               LMX_ERR_INVALID_ARGUMENT, "messages[1].role");
    broken[1] = (lmx_chat_message){"user", NULL};
    EXPECT_ERR("chat: NULL content", lmx_chat_apply_template(tok, broken, 2, 0, buf, sizeof buf, &needed),
               LMX_ERR_INVALID_ARGUMENT, "messages[1].content");
    broken[1] = (lmx_chat_message){"user", "\xC3("};
    EXPECT_ERR("chat: invalid UTF-8 content", lmx_chat_apply_template(tok, broken, 2, 0, buf, sizeof buf, &needed),
               LMX_ERR_INVALID_ARGUMENT, "messages[1].content", "offset 0");
    EXPECT_ERR("chat: NULL messages with n 1", lmx_chat_apply_template(tok, NULL, 1, 0, buf, sizeof buf, &needed),
               LMX_ERR_INVALID_ARGUMENT, "messages");

    /* The llama3 tokenizer has no template: LMX_ERR_STATE. */
    llama = load_fixture_tokenizer("llama3");
    if (!llama) goto out;
    EXPECT_ERR("chat: a tokenizer without a template", lmx_chat_apply_template(llama, conv, 1, 1, buf, sizeof buf, &needed),
               LMX_ERR_STATE, "chat template");
    lmx_tokenizer_free(llama);
    llama = NULL;

    /* A folder: the llama3 tokenizer with the template, BOS and EOS of chat_templates/llama3.json. */
    char path[1400], file[1400];
    join(path, sizeof path, fixtures, "chat_templates/llama3.json");
    if (!load_json(path, &doc)) goto out;
    const jvalue *tmpl = get(&doc, "chat_template"), *cases = get(&doc, "cases");
    if (!make_temp_dir(tmp, sizeof tmp, "lmx_text_test")) goto out;
    join(path, sizeof path, fixtures, "tokenizers/llama3/tokenizer.json");
    join(file, sizeof file, tmp, "tokenizer.json");
    copy_file(path, file);
    /* tokenizer_config.json with the raw JSON string of the template (copied from the fixture file) */
    size_t raw_len = 0;
    join(path, sizeof path, fixtures, "chat_templates/llama3.json");
    char *raw = (char *)read_file(path, &raw_len);
    char *start = raw ? strstr(raw, "\"chat_template\":") : NULL;
    if (!start || !tmpl) { fail("chat fixture", "no chat_template in %s", path); free(raw); goto out; }
    start = strchr(start + 16, '"');
    char *end = start + 1;
    while (*end && *end != '"') end += *end == '\\' ? 2 : 1;
    size_t config_cap = (size_t)(end - start) + 256;
    char *config = malloc(config_cap);
    snprintf(config, config_cap, "{\"bos_token\": \"<|begin_of_text|>\", \"eos_token\": \"<|eot_id|>\", \"chat_template\": %.*s\"}",
             (int)(end - start), start);
    free(raw);
    join(file, sizeof file, tmp, "tokenizer_config.json");
    write_or_die(file, config);
    free(config);
    if (!EXPECT_OK("chat: load the llama3 tokenizer with a template", lmx_tokenizer_load(tmp, &llama))) goto out;
    int checked = 0, bad = 0;
    for (size_t c = 0; cases && c < cases->n; c++) {
        const jvalue *k = &cases->items[c], *msgs = get(k, "messages"), *extra = get(k, "extra"), *want = get(k, "expected");
        const jvalue *gen = get(k, "add_generation_prompt");
        if (!msgs || !want || (extra && extra->n > 0)) continue;
        lmx_chat_message *m = calloc(msgs->n + 1, sizeof *m);
        int strings = 1;
        for (size_t i = 0; i < msgs->n; i++) {
            const jvalue *role = get(&msgs->items[i], "role"), *content = get(&msgs->items[i], "content");
            if (!role || !content || role->type != J_STR || content->type != J_STR) strings = 0;
            else m[i] = (lmx_chat_message){role->str, content->str};
        }
        if (strings) {
            size_t n_out = 0;
            char *out = NULL;
            if (lmx_chat_apply_template(llama, m, msgs->n, gen && gen->num != 0, NULL, 0, &n_out) == LMX_OK) {
                out = malloc(n_out + 1);
                lmx_chat_apply_template(llama, m, msgs->n, gen && gen->num != 0, out, n_out + 1, &n_out);
            }
            if (!out || n_out != want->len || memcmp(out, want->str, n_out) != 0) {
                if (bad++ < 2) printf("     chat case %s: got '%s'\n", get(k, "name") ? get(k, "name")->str : "?", out ? out : "(error)");
            }
            free(out);
            checked++;
        }
        free(m);
    }
    if (checked >= 2 && !bad) {
        char what[128];
        snprintf(what, sizeof what, "chat: %d cases of chat_templates/llama3.json rendered as expected", checked);
        pass(what);
    } else fail("chat: llama3 template cases", "%d checked, %d differ", checked, bad);
    /* the rendered text tokenizes with its special tokens recognised */
    lmx_chat_message one = {"user", "Hi"};
    char rendered[256];
    int32_t ids[512];
    size_t n = 0;
    lmx_tokenizer_info info = {.struct_size = sizeof info};
    lmx_tokenizer_get_info(llama, &info);
    if (EXPECT_OK("chat: render one message", lmx_chat_apply_template(llama, &one, 1, 1, rendered, sizeof rendered, &needed)) &&
        EXPECT_OK("chat: tokenize the rendering", lmx_tokenize(llama, rendered, needed, 0, 1, ids, 512, &n)) && n > 2 &&
        info.bos_id >= 0 && ids[0] == info.bos_id)
        pass("chat: the rendering starts with the BOS id when tokenized with parse_special");
    else fail("chat: tokenized rendering", "n %zu first %d bos %d", n, n ? ids[0] : -1, info.bos_id);
    int32_t eot[8];
    size_t n_eot = 0;
    if (EXPECT_OK("chat: end of turn", lmx_tokenizer_end_of_turn(llama, eot, 8, &n_eot)) && n_eot >= 1 &&
        info.eos_id >= 0 && eot[0] == info.eos_id)
        pass("chat: the configured EOS <|eot_id|> is an end-of-turn id");
    else fail("chat: eot", "n %zu eos %d", n_eot, info.eos_id);
out:
    free_json(&doc);
    if (tmp[0]) remove_tree(tmp);
    lmx_tokenizer_free(llama);
    lmx_tokenizer_free(tok);
    lmx_model_free(model);
}

/* ------------------------------------------------------------------ 5. generation */

typedef struct {
    char text[256];
    size_t len;
    int calls;
    int stop_after; /* stop after this many pieces; 0 = never */
} collected;

static uint32_t on_text(const char *text, size_t len, void *user_data) {
    collected *c = user_data;
    if (c->len + len < sizeof c->text) { memcpy(c->text + c->len, text, len); c->len += len; c->text[c->len] = 0; }
    if (text[len] != 0) c->calls += 1000; /* must be NUL-terminated */
    c->calls++;
    return c->stop_after > 0 && c->calls >= c->stop_after;
}

static uint32_t stop_on_token(int32_t token, void *user_data) {
    (void)token;
    int *count = user_data;
    return ++*count >= 1;
}

static void test_generate(void) {
    char dir[1400];
    lmx_model *model = load_bundled();
    lmx_tokenizer *tok = NULL, *llama = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL;
    if (!model || !EXPECT_OK("generate: tokenizer", lmx_model_tokenizer(model, &tok))) goto out;
    if (!EXPECT_OK("generate: mixer", lmx_mixer_create(model, &mixer))) goto out;
    static const char *const experts[] = {"math", "strings", "lookup"};
    for (int e = 0; e < 3; e++) {
        char rel[64];
        snprintf(rel, sizeof rel, "experts/%s", experts[e]);
        join(dir, sizeof dir, models, rel);
        if (!EXPECT_OK(experts[e], lmx_mixer_add_peft(mixer, experts[e], dir, NULL))) goto out;
    }
    join(dir, sizeof dir, models, "router.safetensors");
    if (!EXPECT_OK("generate: router", lmx_mixer_load_router(mixer, dir))) goto out;
    if (!EXPECT_OK("generate: session", lmx_session_create(mixer, NULL, &s))) goto out;

    char out[64];
    size_t needed = 0, n_past = 0;
    uint32_t reason = 99;
    collected col = {0};
    lmx_text_params tp = lmx_text_params_default();
    tp.on_text = on_text;
    tp.user_data = &col;
    if (EXPECT_OK("generate_text 12+30=", lmx_session_generate_text(s, tok, "12+30=", 6, NULL, &tp, out, sizeof out, &needed,
                                                                    &reason)) &&
        strcmp(out, "42") == 0 && needed == 2 && reason == LMX_STOP_END_OF_TURN)
        pass("generate_text: routed 12+30= answers 42, stopped at the newline (LMX_STOP_END_OF_TURN)");
    else fail("generate_text 12+30=", "'%s' needed %zu reason %u", out, needed, reason);
    if (col.len == 2 && strcmp(col.text, "42") == 0 && col.calls == 2) pass("generate_text: on_text got '4', '2' (NUL-terminated)");
    else fail("generate_text on_text", "'%s' calls %d", col.text, col.calls);
    lmx_session_n_past(s, &n_past);
    if (n_past == 8) pass("generate_text: 6 prompt + 2 answer tokens evaluated (the stop token is not)");
    else fail("generate_text n_past", "%zu", n_past);

    /* max tokens, callbacks, truncation */
    lmx_session_reset(s);
    lmx_generate_params gp = lmx_generate_params_default();
    gp.max_tokens = 1;
    if (EXPECT_OK("generate_text max_tokens 1", lmx_session_generate_text(s, tok, "12+30=", 6, &gp, NULL, out, sizeof out,
                                                                          &needed, &reason)) &&
        strcmp(out, "4") == 0 && reason == LMX_STOP_MAX_TOKENS)
        pass("generate_text: max_tokens 1 gives '4' (LMX_STOP_MAX_TOKENS)");
    else fail("generate_text max 1", "'%s' reason %u", out, reason);
    if (EXPECT_OK("generate_text: continue (empty prompt)", lmx_session_generate_text(s, tok, NULL, 0, NULL, NULL, out,
                                                                                      sizeof out, &needed, &reason)) &&
        strcmp(out, "2") == 0 && reason == LMX_STOP_END_OF_TURN)
        pass("generate_text: an empty prompt continues: '2', then the newline");
    else fail("generate_text continue", "'%s' reason %u", out, reason);
    lmx_session_reset(s);
    col = (collected){.stop_after = 1};
    if (EXPECT_OK("generate_text: on_text stops", lmx_session_generate_text(s, tok, "12+30=", 6, NULL, &tp, out, sizeof out,
                                                                             &needed, &reason)) &&
        strcmp(out, "4") == 0 && reason == LMX_STOP_CALLBACK)
        pass("generate_text: on_text returning nonzero stops after '4' (LMX_STOP_CALLBACK)");
    else fail("generate_text on_text stop", "'%s' reason %u", out, reason);
    lmx_session_reset(s);
    int count = 0;
    gp = lmx_generate_params_default();
    gp.on_token = stop_on_token;
    gp.user_data = &count;
    if (EXPECT_OK("generate_text: on_token stops", lmx_session_generate_text(s, tok, "12+30=", 6, &gp, NULL, out, sizeof out,
                                                                              &needed, NULL)) &&
        strcmp(out, "4") == 0 && count == 1)
        pass("generate_text: gen->on_token still applies (stops after the first token); stop_reason may be NULL");
    else fail("generate_text on_token", "'%s' count %d", out, count);
    lmx_session_reset(s);
    char two[2];
    if (EXPECT_OK("generate_text into 2 bytes", lmx_session_generate_text(s, tok, "12+30=", 6, NULL, NULL, two, sizeof two,
                                                                           &needed, &reason)) &&
        strcmp(two, "4") == 0 && needed == 2)
        pass("generate_text: output truncated to fit ('4'), needed 2, LMX_OK");
    else fail("generate_text truncated", "'%s' needed %zu", two, needed);
    lmx_session_reset(s);
    if (EXPECT_OK("generate_text: NULL out, capacity 0", lmx_session_generate_text(s, tok, "12+30=", 6, NULL, NULL, NULL, 0,
                                                                                    &needed, &reason)) &&
        needed == 2)
        pass("generate_text: out may be NULL with capacity 0 (needed 2)");
    else fail("generate_text NULL out", "needed %zu", needed);
    lmx_session_reset(s);
    tp = lmx_text_params_default();
    tp.flags = LMX_TEXT_CHAT;
    if (EXPECT_OK("generate_text: LMX_TEXT_CHAT", lmx_session_generate_text(s, tok, "12+30=", 6, NULL, &tp, out, sizeof out,
                                                                             &needed, &reason)) &&
        strcmp(out, "42") == 0)
        pass("generate_text: a chat prompt through the bundled template answers 42");
    else fail("generate_text chat", "'%s'", out);
    lmx_session_reset(s);
    tp.flags = LMX_TEXT_IGNORE_END_OF_TURN | LMX_TEXT_SHOW_SPECIAL | LMX_TEXT_NO_BOS | LMX_TEXT_PARSE_SPECIAL;
    gp = lmx_generate_params_default();
    gp.max_tokens = 3;
    if (EXPECT_OK("generate_text: ignore end of turn", lmx_session_generate_text(s, tok, "12+30=", 6, &gp, &tp, out,
                                                                                  sizeof out, &needed, &reason)) &&
        strncmp(out, "42\n", 3) == 0 && reason == LMX_STOP_MAX_TOKENS)
        pass("generate_text: LMX_TEXT_IGNORE_END_OF_TURN generates past the newline");
    else fail("generate_text ignore eot", "'%s' reason %u", out, reason);

    /* errors: the session is unchanged */
    lmx_session_reset(s);
    EXPECT_ERR("generate_text: invalid UTF-8 prompt", lmx_session_generate_text(s, tok, "12\xFF" "3", 4, NULL, NULL, out,
                                                                                sizeof out, &needed, &reason),
               LMX_ERR_INVALID_ARGUMENT, "prompt", "offset 2");
    EXPECT_ERR("generate_text: empty prompt, empty session", lmx_session_generate_text(s, tok, "", 0, NULL, NULL, out,
                                                                                       sizeof out, &needed, &reason),
               LMX_ERR_STATE, "empty");
    tp = lmx_text_params_default();
    tp.flags = 1u << 20;
    EXPECT_ERR("generate_text: unknown flags", lmx_session_generate_text(s, tok, "1", 1, NULL, &tp, out, sizeof out, &needed,
                                                                         NULL),
               LMX_ERR_INVALID_ARGUMENT, "flags");
    tp = lmx_text_params_default();
    tp.struct_size = (uint32_t)LMX_TEXT_PARAMS_MIN_SIZE - 1;
    EXPECT_ERR("generate_text: text params below the minimum", lmx_session_generate_text(s, tok, "1", 1, NULL, &tp, out,
                                                                                         sizeof out, &needed, NULL),
               LMX_ERR_ABI, "lmx_text_params", "struct_size");
    tp.struct_size = (uint32_t)LMX_TEXT_PARAMS_MIN_SIZE;
    EXPECT_OK("generate_text: text params at the minimum", lmx_session_generate_text(s, tok, "1", 1, &gp, &tp, NULL, 0,
                                                                                     &needed, NULL));
    lmx_session_reset(s);
    EXPECT_ERR("generate_text: NULL out with capacity 8", lmx_session_generate_text(s, tok, "1", 1, NULL, NULL, NULL, 8,
                                                                                    &needed, NULL),
               LMX_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("generate_text: NULL needed", lmx_session_generate_text(s, tok, "1", 1, NULL, NULL, out, sizeof out, NULL,
                                                                       NULL),
               LMX_ERR_INVALID_ARGUMENT, "needed");
    EXPECT_ERR("generate_text: NULL tokenizer", lmx_session_generate_text(s, NULL, "1", 1, NULL, NULL, out, sizeof out,
                                                                          &needed, NULL),
               LMX_ERR_INVALID_ARGUMENT, "tokenizer");
    EXPECT_ERR("generate_text: NULL session", lmx_session_generate_text(NULL, tok, "1", 1, NULL, NULL, out, sizeof out,
                                                                        &needed, NULL),
               LMX_ERR_INVALID_ARGUMENT, "session");
    EXPECT_ERR("generate_text: a tokenizer passed as the session",
               lmx_session_generate_text((lmx_session *)(void *)tok, tok, "1", 1, NULL, NULL, out, sizeof out, &needed, NULL),
               LMX_ERR_INVALID_ARGUMENT, "lmx_tokenizer", "lmx_session");
    llama = load_fixture_tokenizer("llama3");
    if (llama)
        EXPECT_ERR("generate_text: a tokenizer with more ids than the model", lmx_session_generate_text(s, llama, "1", 1, NULL,
                                                                                                         NULL, out, sizeof out,
                                                                                                         &needed, NULL),
                   LMX_ERR_SHAPE, "vocabulary");
    tp = lmx_text_params_default();
    tp.flags = LMX_TEXT_CHAT;
    lmx_session_n_past(s, &n_past);
    if (n_past == 0) pass("generate_text: failed calls left the session empty");
    else fail("generate_text: failures", "n_past %zu", n_past);
out:
    lmx_session_free(s);
    lmx_mixer_free(mixer);
    lmx_tokenizer_free(llama);
    lmx_tokenizer_free(tok);
    lmx_model_free(model);
}

/* ------------------------------------------------------------------ 6. errors */

static void test_errors(void) {
    char path[1400];
    lmx_tokenizer *tok = NULL, *stale = NULL;
    lmx_model *plain = NULL;
    int32_t ids[8];
    size_t n = 0, needed = 0;
    char buf[16];
    EXPECT_ERR("tokenizer_load: NULL path", lmx_tokenizer_load(NULL, &tok), LMX_ERR_INVALID_ARGUMENT, "path");
    EXPECT_ERR("tokenizer_load: NULL out", lmx_tokenizer_load("x", NULL), LMX_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("tokenizer_load: missing folder", lmx_tokenizer_load("/nonexistent/folder", &tok), LMX_ERR_IO, "nonexistent");
    if (tok == NULL) pass("tokenizer_load: *out is NULL after a failure");
    else fail("tokenizer_load failure out", "%p", (void *)tok);
    join(path, sizeof path, fixtures, "llama_f32");
    if (EXPECT_OK("load llama_f32 (no tokenizer)", lmx_model_load(path, NULL, &plain)))
        EXPECT_ERR("model_tokenizer: a model without tokenizer.json", lmx_model_tokenizer(plain, &tok), LMX_ERR_NOT_FOUND,
                   "tokenizer.json");
    EXPECT_ERR("model_tokenizer: NULL model", lmx_model_tokenizer(NULL, &tok), LMX_ERR_INVALID_ARGUMENT, "model");
    lmx_model_free(plain);

    tok = load_fixture_tokenizer("qwen2");
    if (!tok) return;
    EXPECT_ERR("tokenize: invalid UTF-8 (offset 3)", lmx_tokenize(tok, "abc\xC3(", 5, 0, 0, ids, 8, &n),
               LMX_ERR_INVALID_ARGUMENT, "text", "utf-8", "offset 3");
    EXPECT_ERR("tokenize: a cut character at the end", lmx_tokenize(tok, "ab\xE6\x9D", 4, 0, 0, ids, 8, &n),
               LMX_ERR_INVALID_ARGUMENT, "offset 2");
    EXPECT_ERR("tokenize: an encoded surrogate", lmx_tokenize(tok, "\xED\xA0\x80", 3, 0, 0, ids, 8, &n),
               LMX_ERR_INVALID_ARGUMENT, "offset 0");
    EXPECT_ERR("tokenize: an overlong", lmx_tokenize(tok, "a\xC0\xAF", 3, 0, 0, ids, 8, &n), LMX_ERR_INVALID_ARGUMENT,
               "offset 1");
    EXPECT_ERR("tokenize: NULL text with len 3", lmx_tokenize(tok, NULL, 3, 0, 0, ids, 8, &n), LMX_ERR_INVALID_ARGUMENT,
               "text");
    EXPECT_ERR("tokenize: NULL n", lmx_tokenize(tok, "a", 1, 0, 0, ids, 8, NULL), LMX_ERR_INVALID_ARGUMENT, "'n'");
    EXPECT_ERR("tokenize: capacity too small", lmx_tokenize(tok, "hello world again", 17, 0, 0, ids, 1, &n), LMX_ERR_SHAPE,
               "capacity");
    if (n > 1) pass("tokenize: *n says how many ids are needed after LMX_ERR_SHAPE");
    else fail("tokenize shape n", "%zu", n);
    EXPECT_ERR("tokenize: NULL ids with capacity 4", lmx_tokenize(tok, "a", 1, 0, 0, NULL, 4, &n), LMX_ERR_INVALID_ARGUMENT,
               "ids");
    EXPECT_ERR("token_to_piece: unknown id", lmx_token_to_piece(tok, 999999, buf, sizeof buf, &needed),
               LMX_ERR_INVALID_ARGUMENT, "999999");
    EXPECT_ERR("token_to_piece: negative id", lmx_token_to_piece(tok, -1, buf, sizeof buf, &needed),
               LMX_ERR_INVALID_ARGUMENT, "-1");
    EXPECT_ERR("token_to_piece: NULL needed", lmx_token_to_piece(tok, 5, buf, sizeof buf, NULL), LMX_ERR_INVALID_ARGUMENT,
               "needed");
    EXPECT_ERR("token_to_piece: NULL buf, capacity 4", lmx_token_to_piece(tok, 5, NULL, 4, &needed),
               LMX_ERR_INVALID_ARGUMENT, "buf");
    int32_t a_id = -1;
    if (EXPECT_OK("tokenize a", lmx_tokenize(tok, "a", 1, 0, 0, ids, 8, &n)) && n == 1) a_id = ids[0];
    const int32_t unknown[3] = {999999, a_id, -5};
    size_t len = 0;
    if (EXPECT_OK("detokenize: unknown ids", lmx_detokenize(tok, unknown, 3, 0, buf, sizeof buf, &len)) && len == 1)
        pass("detokenize: unknown ids are skipped, as tokenizers does");
    else fail("detokenize unknown", "len %zu", len);
    EXPECT_ERR("detokenize: NULL ids with n 2", lmx_detokenize(tok, NULL, 2, 0, buf, sizeof buf, &len),
               LMX_ERR_INVALID_ARGUMENT, "ids");
    EXPECT_ERR("detokenize: NULL buf, capacity 4", lmx_detokenize(tok, unknown, 1, 0, NULL, 4, &len),
               LMX_ERR_INVALID_ARGUMENT, "buf");
    EXPECT_ERR("end_of_turn: NULL n", lmx_tokenizer_end_of_turn(tok, ids, 8, NULL), LMX_ERR_INVALID_ARGUMENT, "'n'");
    EXPECT_ERR("get_info: NULL out", lmx_tokenizer_get_info(tok, NULL), LMX_ERR_INVALID_ARGUMENT, "out");
    lmx_tokenizer_info tiny = {.struct_size = 3};
    EXPECT_ERR("get_info: struct_size 3", lmx_tokenizer_get_info(tok, &tiny), LMX_ERR_ABI, "lmx_tokenizer_info");
    lmx_text_stream *s = NULL;
    EXPECT_ERR("stream_create: NULL out", lmx_text_stream_create(tok, 1, NULL), LMX_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("stream_create: NULL tokenizer", lmx_text_stream_create(NULL, 1, &s), LMX_ERR_INVALID_ARGUMENT, "tokenizer");
    EXPECT_ERR("stream_push: NULL stream", lmx_text_stream_push(NULL, 5, buf, sizeof buf, &needed), LMX_ERR_INVALID_ARGUMENT,
               "stream");
    EXPECT_ERR("stream_push: a tokenizer passed as the stream",
               lmx_text_stream_push((lmx_text_stream *)(void *)tok, 5, buf, sizeof buf, &needed), LMX_ERR_INVALID_ARGUMENT,
               "lmx_tokenizer", "lmx_text_stream");
    if (EXPECT_OK("stream_create", lmx_text_stream_create(tok, 1, &s))) {
        EXPECT_ERR("stream_push: NULL needed", lmx_text_stream_push(s, 5, buf, sizeof buf, NULL), LMX_ERR_INVALID_ARGUMENT,
                   "needed");
        EXPECT_ERR("stream_push: NULL buf, capacity 4", lmx_text_stream_push(s, a_id, NULL, 4, &needed),
                   LMX_ERR_INVALID_ARGUMENT, "buf");
        EXPECT_ERR("stream_finish: NULL needed", lmx_text_stream_finish(s, buf, sizeof buf, NULL), LMX_ERR_INVALID_ARGUMENT,
                   "needed");
        lmx_text_stream *freed = s;
        lmx_text_stream_free(s);
        lmx_text_stream_free(freed); /* a double free is a no-op */
        EXPECT_ERR("stream_finish: a freed stream", lmx_text_stream_finish(freed, buf, sizeof buf, &needed),
                   LMX_ERR_INVALID_ARGUMENT, "stream", "freed");
    }
    stale = tok;
    lmx_tokenizer_free(tok);
    EXPECT_ERR("tokenize: a freed tokenizer", lmx_tokenize(stale, "a", 1, 0, 0, ids, 8, &n), LMX_ERR_INVALID_ARGUMENT,
               "tokenizer", "freed");
    EXPECT_ERR("detokenize: a freed tokenizer", lmx_detokenize(stale, ids, 0, 0, buf, sizeof buf, &needed),
               LMX_ERR_INVALID_ARGUMENT, "tokenizer");
    EXPECT_ERR("chat: a freed tokenizer", lmx_chat_apply_template(stale, NULL, 0, 0, buf, sizeof buf, &needed),
               LMX_ERR_INVALID_ARGUMENT, "tokenizer");
    lmx_tokenizer_free(stale); /* no-op */
    lmx_tokenizer_free(NULL);
    lmx_text_stream_free(NULL);
}

int main(int argc, char **argv) {
    if (!test_start(argc, argv, fixtures, sizeof fixtures)) return 0;
    join(models, sizeof models, fixtures, "../../models");
    test_bundled_tokenizer();
    test_fixture_cases("llama3");
    test_fixture_cases("qwen2");
    test_stream();
    test_chat();
    test_generate();
    test_errors();
    return test_summary("text_test");
}
