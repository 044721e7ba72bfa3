/*
 * lu_spawn: the tiny library lu loads into a target to start its agent.
 *
 * Why a library and not a direct call: running Python at whatever instruction
 * a thread was stopped corrupts the interpreter (a thread may be inside the
 * GC or an allocator). lu instead calls `lu_spawn_start(script)` in a stopped
 * thread; it only starts a new, detached native thread and returns, so the
 * call is short and never waits for the GIL. The new thread takes the GIL the
 * cooperative way (PyGILState_Ensure), exactly like any C extension thread,
 * and runs the bootstrap script. The script itself decides, atomically with
 * lu's cancel, whether it still may run (see lu_attach/staging.py).
 *
 * The library is loaded once per process and reused by later injections (its
 * path names its build), so repeated attach and detach add no mappings.
 * Loading it does nothing but set `lu_spawn_ready`: its constructor runs once
 * the loader has relocated it, and lu waits for that flag before it calls
 * `lu_spawn_start` (the mapping appears before the library can be called).
 *
 * The Python C API is resolved at run time with dlsym(RTLD_DEFAULT), so this
 * file includes no Python header and links against no libpython: one build
 * serves every CPython 3.8+, shared-libpython and static builds alike.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*gil_ensure_fn)(void);
typedef void (*gil_release_fn)(int);
typedef int (*is_initialized_fn)(void);
typedef void *(*dict_new_fn)(void);
typedef void *(*get_builtins_fn)(void);
typedef int (*dict_set_fn)(void *, const char *, void *);
typedef void *(*run_string_fn)(const char *, int, void *, void *);
typedef void (*decref_fn)(void *);
typedef void (*err_clear_fn)(void);
typedef void *(*unicode_fn)(const char *);

#define PY_FILE_INPUT 257
#define MAX_SCRIPT (1 << 20)

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
        if (cap - len - 1 == 0) {
            if (cap >= MAX_SCRIPT) { free(buf); buf = NULL; break; }
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) { free(buf); buf = NULL; break; }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    return buf;
}

static void *agent_bootstrap_thread(void *arg) {
    char *script_path = (char *)arg;
    is_initialized_fn is_initialized = (is_initialized_fn)dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    gil_ensure_fn gil_ensure = (gil_ensure_fn)dlsym(RTLD_DEFAULT, "PyGILState_Ensure");
    gil_release_fn gil_release = (gil_release_fn)dlsym(RTLD_DEFAULT, "PyGILState_Release");
    dict_new_fn dict_new = (dict_new_fn)dlsym(RTLD_DEFAULT, "PyDict_New");
    get_builtins_fn get_builtins = (get_builtins_fn)dlsym(RTLD_DEFAULT, "PyEval_GetBuiltins");
    dict_set_fn dict_set = (dict_set_fn)dlsym(RTLD_DEFAULT, "PyDict_SetItemString");
    run_string_fn run_string = (run_string_fn)dlsym(RTLD_DEFAULT, "PyRun_String");
    decref_fn decref = (decref_fn)dlsym(RTLD_DEFAULT, "Py_DecRef");
    err_clear_fn err_clear = (err_clear_fn)dlsym(RTLD_DEFAULT, "PyErr_Clear");
    unicode_fn unicode = (unicode_fn)dlsym(RTLD_DEFAULT, "PyUnicode_FromString");

    if (!is_initialized || !gil_ensure || !gil_release || !dict_new || !get_builtins ||
        !dict_set || !run_string || !decref || !err_clear || !unicode || !is_initialized()) {
        free(script_path);
        return NULL;
    }
    int state = gil_ensure();
    char *source = read_file(script_path);
    if (source) {
        void *globals = dict_new();
        if (globals) {
            void *name = unicode("__lu_bootstrap__");
            if (name) { dict_set(globals, "__name__", name); decref(name); }
            dict_set(globals, "__builtins__", get_builtins());
            void *result = run_string(source, PY_FILE_INPUT, globals, globals);
            if (result) decref(result); else err_clear();
            decref(globals);
        } else {
            err_clear();
        }
        free(source);
    }
    gil_release(state);
    free(script_path);
    return NULL;
}

__attribute__((visibility("default"))) volatile int lu_spawn_ready = 0;

__attribute__((constructor)) static void lu_spawn_loaded(void) { lu_spawn_ready = 1; }

/* Called by lu in a stopped thread of the target: start the bootstrap thread
 * and return at once. The path is copied: the caller's string lives on the
 * interrupted thread's stack, which is reused as soon as this returns. */
__attribute__((visibility("default"))) int lu_spawn_start(const char *script) {
    char *script_path = strdup(script);
    if (!script_path) return -1;
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, agent_bootstrap_thread, script_path);
    pthread_attr_destroy(&attr);
    if (rc != 0) { free(script_path); return -1; }
    return 0;
}
