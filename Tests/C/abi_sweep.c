/*
 * abi_sweep.c: call every function of include/loramixer.h through libffi with wrong arguments.
 *
 *     abi_sweep DESCRIPTION LIBRARY
 *
 * DESCRIPTION is written by tools/abi/header_functions.py from the header's clang AST (one record
 * per function: return and parameter classes; see that script), so a function added to the header
 * is swept without editing this file. Each function is dlsym'ed from LIBRARY (missing = failure)
 * and called in three passes, each in a forked child so that a crash is reported as a failure of
 * that function and the sweep goes on:
 *
 *   null   every pointer NULL, every integer 0, every float 0.
 *   buffer pointers other than handles point at a zeroed 256-byte buffer; handles stay NULL.
 *   bogus  as buffer, but every handle points at a zeroed 256-byte buffer that is not a handle.
 *
 * Expectations:
 *   - a function returning lmx_status returns a negative status in the null pass (none is a
 *     documented no-op for NULL arguments), in the buffer pass when it takes a handle, and exactly
 *     LMX_ERR_INVALID_ARGUMENT in the bogus pass when it takes a handle (the header promises that
 *     a freed or foreign handle is detected);
 *   - after each failing call lmx_last_error() is a non-empty string that names the function
 *     (which also shows it is this call's message, not a stale one);
 *   - a function returning a pointer (const char *) returns non-NULL;
 *   - a struct returned by value whose first field is uint32_t (params defaults) has that field
 *     equal to the struct's size as laid out from the header's field list (struct_size);
 *   - void functions (the *_free functions, NULL and foreign pointers are no-ops) return.
 *
 * Prints one line per function and pass, then "abi_sweep: N passed, M failed" (N + M = number of
 * functions). Exit status 0 only when every function passed.
 */
#define _XOPEN_SOURCE 700

#include <dlfcn.h>
#include <ffi.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loramixer.h"

#define MAX_FUNCTIONS 256
#define MAX_PARAMS 32
#define MAX_FIELDS 32
#define BUFFER_BYTES 256

enum cls { C_VOID, C_I8, C_U8, C_I16, C_U16, C_I32, C_U32, C_I64, C_U64, C_SIZE, C_F32, C_F64,
           C_POINTER, C_FNPTR, C_STRUCT };

static const struct { const char *name; enum cls cls; } CLASS_NAMES[] = {
    {"void", C_VOID}, {"i8", C_I8}, {"u8", C_U8}, {"i16", C_I16}, {"u16", C_U16}, {"i32", C_I32},
    {"u32", C_U32}, {"i64", C_I64}, {"u64", C_U64}, {"size_t", C_SIZE}, {"f32", C_F32},
    {"f64", C_F64}, {"pointer", C_POINTER}, {"fnptr", C_FNPTR}, {"struct", C_STRUCT},
};

typedef struct {
    enum cls cls;
    int is_status;             /* i32 spelled lmx_status */
    int is_handle;             /* pointer to an opaque handle type */
    char name[64];             /* parameter name, "-" for the return value */
    char ctype[128];           /* as written in the header */
    enum cls fields[MAX_FIELDS];
    int n_fields;
    ffi_type struct_type;      /* for C_STRUCT */
    ffi_type *elements[MAX_FIELDS + 1];
} value_desc;

typedef struct {
    char name[128];
    int n_params;
    value_desc ret;
    value_desc params[MAX_PARAMS];
} function_desc;

static function_desc functions[MAX_FUNCTIONS];
static int n_functions;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("abi_sweep: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int class_of(const char *text, enum cls *out) {
    for (size_t i = 0; i < sizeof CLASS_NAMES / sizeof CLASS_NAMES[0]; i++) {
        if (strcmp(CLASS_NAMES[i].name, text) == 0) {
            *out = CLASS_NAMES[i].cls;
            return 1;
        }
    }
    return 0;
}

/* Splits `line` at TABs into at most `max` fields (in place); returns the count. */
static int split_tabs(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab) break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

static void parse_value(value_desc *v, char **f, int lineno) {
    /* f: index name class detail ctype */
    snprintf(v->name, sizeof v->name, "%s", f[1]);
    if (!class_of(f[2], &v->cls)) die("line %d: unknown class '%s'", lineno, f[2]);
    snprintf(v->ctype, sizeof v->ctype, "%s", f[4]);
    v->is_status = strcmp(f[3], "status") == 0;
    v->is_handle = strncmp(f[3], "handle=", 7) == 0;
    v->n_fields = 0;
    if (v->cls == C_STRUCT && strcmp(f[3], "-") != 0) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", f[3]);
        for (char *tok = strtok(detail, ","); tok; tok = strtok(NULL, ",")) {
            if (v->n_fields == MAX_FIELDS) die("line %d: too many struct fields", lineno);
            if (!class_of(tok, &v->fields[v->n_fields]) || v->fields[v->n_fields] == C_STRUCT ||
                v->fields[v->n_fields] == C_VOID)
                die("line %d: bad struct field class '%s'", lineno, tok);
            v->n_fields++;
        }
    }
}

static void load_description(const char *path) {
    FILE *file = fopen(path, "r");
    if (!file) die("cannot open description %s", path);
    char line[1024];
    int lineno = 0;
    function_desc *fn = NULL;
    while (fgets(line, sizeof line, file)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        char *f[8];
        int n = split_tabs(line, f, 8);
        if (strcmp(f[0], "fn") == 0 && n == 3) {
            if (n_functions == MAX_FUNCTIONS) die("too many functions");
            fn = &functions[n_functions++];
            memset(fn, 0, sizeof *fn);
            snprintf(fn->name, sizeof fn->name, "%s", f[1]);
            fn->n_params = atoi(f[2]);
            if (fn->n_params < 0 || fn->n_params > MAX_PARAMS) die("line %d: bad parameter count", lineno);
        } else if (strcmp(f[0], "ret") == 0 && n == 6 && fn) {
            parse_value(&fn->ret, f + 1, lineno);
        } else if (strcmp(f[0], "arg") == 0 && n == 6 && fn) {
            int index = atoi(f[1]);
            if (index < 0 || index >= fn->n_params) die("line %d: bad parameter index", lineno);
            parse_value(&fn->params[index], f + 1, lineno);
            if (fn->params[index].cls == C_VOID) die("line %d: void parameter", lineno);
        } else {
            die("%s line %d: cannot parse '%s'", path, lineno, f[0]);
        }
    }
    fclose(file);
    if (n_functions == 0) die("%s describes no functions", path);
}

static ffi_type *ffi_scalar(enum cls cls) {
    switch (cls) {
    case C_VOID: return &ffi_type_void;
    case C_I8: return &ffi_type_sint8;
    case C_U8: return &ffi_type_uint8;
    case C_I16: return &ffi_type_sint16;
    case C_U16: return &ffi_type_uint16;
    case C_I32: return &ffi_type_sint32;
    case C_U32: return &ffi_type_uint32;
    case C_I64: return &ffi_type_sint64;
    case C_U64: return &ffi_type_uint64;
    case C_SIZE: return sizeof(size_t) == 8 ? &ffi_type_uint64 : &ffi_type_uint32;
    case C_F32: return &ffi_type_float;
    case C_F64: return &ffi_type_double;
    case C_POINTER:
    case C_FNPTR: return &ffi_type_pointer;
    case C_STRUCT: break;
    }
    return NULL;
}

static ffi_type *ffi_of(value_desc *v) {
    if (v->cls != C_STRUCT) return ffi_scalar(v->cls);
    for (int i = 0; i < v->n_fields; i++) v->elements[i] = ffi_scalar(v->fields[i]);
    v->elements[v->n_fields] = NULL;
    memset(&v->struct_type, 0, sizeof v->struct_type);
    v->struct_type.type = FFI_TYPE_STRUCT;
    v->struct_type.elements = v->elements;
    return &v->struct_type;
}

/* Offset of field `index` of a struct laid out by libffi (after ffi_prep_cif set its size). */
static size_t field_offset(const value_desc *v, int index) {
    size_t offset = 0;
    for (int i = 0; i <= index; i++) {
        size_t align = v->elements[i]->alignment;
        offset = (offset + align - 1) / align * align;
        if (i < index) offset += v->elements[i]->size;
    }
    return offset;
}

enum pass { PASS_NULL, PASS_BUFFER, PASS_BOGUS };
static const char *const PASS_NAMES[] = {"null", "buffer", "bogus"};

static const char *(*last_error)(void);

static int takes_handle(const function_desc *fn) {
    for (int i = 0; i < fn->n_params; i++)
        if (fn->params[i].is_handle) return 1;
    return 0;
}

/* One pass over one function; prints one line; returns 1 if the expectations held. */
static int run_pass(function_desc *fn, void *symbol, enum pass pass) {
    ffi_cif cif;
    ffi_type *arg_types[MAX_PARAMS];
    void *arg_values[MAX_PARAMS];
    union { int64_t i; uint64_t u; double d; float f; void *p; } scalars[MAX_PARAMS];
    static _Alignas(16) unsigned char buffers[MAX_PARAMS][BUFFER_BYTES];

    for (int i = 0; i < fn->n_params; i++) {
        value_desc *p = &fn->params[i];
        arg_types[i] = ffi_of(p);
        memset(&scalars[i], 0, sizeof scalars[i]);
        memset(buffers[i], 0, BUFFER_BYTES);
        if (p->cls == C_POINTER) {
            if (pass == PASS_BUFFER && !p->is_handle) scalars[i].p = buffers[i];
            if (pass == PASS_BOGUS) scalars[i].p = buffers[i];
        }
        if (p->cls == C_STRUCT) die("%s: struct parameters by value are not supported", fn->name);
        arg_values[i] = &scalars[i];
    }
    ffi_type *ret_type = ffi_of(&fn->ret);
    if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, (unsigned)fn->n_params, ret_type, arg_types) != FFI_OK) {
        printf("FAIL %-32s %-6s ffi_prep_cif failed\n", fn->name, PASS_NAMES[pass]);
        return 0;
    }
    _Alignas(16) unsigned char ret_buf[1024];
    memset(ret_buf, 0xAB, sizeof ret_buf);
    if (ret_type->size > sizeof ret_buf) die("%s: return value too large", fn->name);
    ffi_call(&cif, FFI_FN(symbol), ret_buf, arg_values);

    char detail[600] = "";
    int ok = 1;
    const char *why = "";
    if (fn->ret.cls == C_I32 || fn->ret.cls == C_I8 || fn->ret.cls == C_I16) {
        int64_t value = (int64_t)*(ffi_sarg *)ret_buf;
        if (fn->ret.is_status) {
            const char *message = last_error();
            int must_fail = pass == PASS_NULL || takes_handle(fn);
            if (value < 0) {
                if (!message || !message[0]) {
                    ok = 0;
                    why = "lmx_last_error() is empty after a failure";
                } else if (!strstr(message, fn->name)) {
                    ok = 0;
                    why = "lmx_last_error() does not name the function (stale or vague message)";
                }
                if (pass == PASS_BOGUS && takes_handle(fn) && value != LMX_ERR_INVALID_ARGUMENT) {
                    ok = 0;
                    why = "a foreign handle must be refused with LMX_ERR_INVALID_ARGUMENT";
                }
            } else if (must_fail) {
                ok = 0;
                why = "expected a negative status";
            }
            snprintf(detail, sizeof detail, "status=%lld \"%s\"", (long long)value,
                     value < 0 && message ? message : "");
        } else {
            snprintf(detail, sizeof detail, "value=%lld", (long long)value);
        }
    } else if (fn->ret.cls == C_U32 || fn->ret.cls == C_U8 || fn->ret.cls == C_U16) {
        uint64_t value = (uint64_t)*(ffi_arg *)ret_buf;
        snprintf(detail, sizeof detail, "value=%llu", (unsigned long long)value);
        if (strcmp(fn->name, "lmx_version_number") == 0 && value != LMX_VERSION_NUMBER) {
            ok = 0;
            why = "lmx_version_number() differs from LMX_VERSION_NUMBER of the header";
        }
    } else if (fn->ret.cls == C_POINTER) {
        const char *value = *(const char **)ret_buf;
        if (!value) {
            ok = 0;
            why = "returned NULL";
            snprintf(detail, sizeof detail, "value=NULL");
        } else if (strstr(fn->ret.ctype, "char")) {
            snprintf(detail, sizeof detail, "value=\"%.200s\"", value);
        } else {
            snprintf(detail, sizeof detail, "value=%p", (const void *)value);
        }
    } else if (fn->ret.cls == C_STRUCT) {
        snprintf(detail, sizeof detail, "struct of %zu bytes", ret_type->size);
        if (fn->ret.n_fields > 0 && fn->ret.fields[0] == C_U32) {
            uint32_t struct_size;
            memcpy(&struct_size, ret_buf + field_offset(&fn->ret, 0), sizeof struct_size);
            snprintf(detail, sizeof detail, "struct_size=%u (header layout: %zu bytes)", struct_size,
                     ret_type->size);
            if (struct_size != ret_type->size) {
                ok = 0;
                why = "first field (struct_size) differs from the struct's size";
            }
        }
    } else if (fn->ret.cls == C_VOID) {
        snprintf(detail, sizeof detail, "returned");
    } else {
        snprintf(detail, sizeof detail, "returned (class %d)", (int)fn->ret.cls);
    }
    printf("%s %-32s %-6s %s%s%s\n", ok ? "ok  " : "FAIL", fn->name, PASS_NAMES[pass], detail,
           ok ? "" : " -- ", why);
    return ok;
}

/* Runs the passes of one function in a child process; returns 1 if all passed. */
static int sweep_function(function_desc *fn, void *library, int use_fork) {
    dlerror();
    void *symbol = dlsym(library, fn->name);
    if (!symbol) {
        printf("FAIL %-32s missing from the library (%s)\n", fn->name, dlerror());
        return 0;
    }
    if (!use_fork) {
        int ok = 1;
        for (int pass = PASS_NULL; pass <= PASS_BOGUS; pass++) ok &= run_pass(fn, symbol, (enum pass)pass);
        return ok;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) die("fork failed");
    if (child == 0) {
        alarm(60);
        int ok = 1;
        for (int pass = PASS_NULL; pass <= PASS_BOGUS; pass++) ok &= run_pass(fn, symbol, (enum pass)pass);
        fflush(stdout);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    if (waitpid(child, &status, 0) < 0) die("waitpid failed");
    if (WIFSIGNALED(status)) {
        printf("FAIL %-32s CRASHED with signal %d (%s)\n", fn->name, WTERMSIG(status),
               strsignal(WTERMSIG(status)));
        return 0;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(int argc, char **argv) {
    int use_fork = 1;
    int argi = 1;
    if (argi < argc && strcmp(argv[argi], "--no-fork") == 0) {
        use_fork = 0;
        argi++;
    }
    if (argc - argi != 2) {
        fprintf(stderr, "usage: %s [--no-fork] DESCRIPTION LIBRARY\n", argv[0]);
        return 2;
    }
    load_description(argv[argi]);
    void *library = dlopen(argv[argi + 1], RTLD_NOW | RTLD_LOCAL);
    if (!library) die("dlopen %s: %s", argv[argi + 1], dlerror());
    last_error = (const char *(*)(void))(uintptr_t)dlsym(library, "lmx_last_error");
    if (!last_error) die("the library has no lmx_last_error");

    int passed = 0, failed = 0;
    for (int i = 0; i < n_functions; i++) {
        if (sweep_function(&functions[i], library, use_fork)) passed++;
        else failed++;
    }
    printf("abi_sweep: %d passed, %d failed\n", passed, failed);
    dlclose(library);
    return failed ? 1 : 0;
}
