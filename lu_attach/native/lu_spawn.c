/*
 * lu_spawn: the tiny library lu loads into a target to start its agent.
 *
 * Why a library and not a direct call: running Python at whatever instruction
 * a debugger stopped a thread corrupts the interpreter (a thread may be inside
 * the GC or an allocator). This library's constructor only starts a new,
 * detached native thread and returns, so the injector's call into the target
 * is short and never waits for the GIL. The new thread takes the GIL the
 * cooperative way (PyGILState_Ensure), exactly like any C extension thread,
 * and then runs the bootstrap script that sits next to this file (same name,
 * ".py" instead of ".so"). If that script is gone by the time the GIL is
 * obtained, the injection was cancelled: the thread releases the GIL and ends
 * without running anything.
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
    /* Read the script only now, holding the GIL: a cancelled injection has
       removed it, and then nothing at all runs. */
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

__attribute__((constructor)) static void lu_spawn_on_load(void) {
    Dl_info info;
    if (!dladdr((void *)lu_spawn_on_load, &info) || !info.dli_fname) return;
    size_t len = strlen(info.dli_fname);
    if (len < 3 || strcmp(info.dli_fname + len - 3, ".so") != 0) return;
    char *script_path = strdup(info.dli_fname);
    if (!script_path) return;
    memcpy(script_path + len - 3, ".py", 3);
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, agent_bootstrap_thread, script_path) != 0) free(script_path);
    pthread_attr_destroy(&attr);
}
