/* A prototype of a compiled call-tree timer, for bench/accel_floor.py only.
 *
 * It measures what the design of a compiled timer costs per profiled call
 * before the real one is written: one C call on entry and one on exit, the
 * thread's position kept in C thread-local storage, call-tree nodes as C
 * structs (children found by the identity of their FuncInfo), and the clock
 * read with clock_gettime(CLOCK_MONOTONIC) or the time-stamp counter.
 *
 * Built against the stable ABI of 3.8, so that one build loads in every GIL
 * interpreter from 3.8 to 3.15. Not safe for a real target: one timer per
 * process, nodes never freed, no fork or thread-end handling, no greenlets.
 */
#define Py_LIMITED_API 0x03080000
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>

typedef struct Node {
    PyObject *info;
    struct Node *parent;
    uint64_t hits;
    uint64_t spent;
    uint64_t started;
    struct Node **kids;
    uint32_t count;
    uint32_t capacity;
} Node;

typedef struct {
    uint64_t generation; /* the timer's generation this thread's tree belongs to */
    Node *current;
    Node *root;
} ThreadSlot;

static __thread ThreadSlot slot;
static uint64_t generation = 1;
static int use_tsc = 0;
static Node *main_root = NULL; /* the first thread's tree, for hits() */

static inline uint64_t now(void)
{
    if (use_tsc)
        return __rdtsc();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static Node *child_of(Node *node, PyObject *info)
{
    for (uint32_t i = 0; i < node->count; i++) {
        if (node->kids[i]->info == info)
            return node->kids[i];
    }
    if (node->count == node->capacity) {
        uint32_t capacity = node->capacity ? node->capacity * 2 : 4;
        Node **kids = realloc(node->kids, capacity * sizeof(Node *));
        if (kids == NULL)
            return NULL;
        node->kids = kids;
        node->capacity = capacity;
    }
    Node *child = calloc(1, sizeof(Node));
    if (child == NULL)
        return NULL;
    Py_INCREF(info);
    child->info = info;
    child->parent = node;
    node->kids[node->count++] = child;
    return child;
}

static PyObject *enter(PyObject *module, PyObject *info)
{
    if (slot.generation != generation) {
        slot.root = calloc(1, sizeof(Node));
        if (slot.root == NULL)
            return PyErr_NoMemory();
        slot.current = slot.root;
        slot.generation = generation;
        if (main_root == NULL)
            main_root = slot.root;
    }
    Node *child = child_of(slot.current, info);
    if (child == NULL)
        return PyErr_NoMemory();
    slot.current = child;
    child->started = now();
    Py_RETURN_NONE;
}

static PyObject *leave(PyObject *module, PyObject *token)
{
    uint64_t end = now();
    Node *node = slot.current;
    if (node != NULL && node->parent != NULL) {
        node->hits++;
        node->spent += end - node->started;
        slot.current = node->parent;
    }
    Py_RETURN_NONE;
}

static PyObject *hits(PyObject *module, PyObject *info)
{
    if (main_root == NULL)
        return PyLong_FromLong(0);
    for (uint32_t i = 0; i < main_root->count; i++) {
        if (main_root->kids[i]->info == info)
            return PyLong_FromUnsignedLongLong(main_root->kids[i]->hits);
    }
    return PyLong_FromLong(0);
}

static PyObject *set_clock(PyObject *module, PyObject *tsc)
{
    use_tsc = PyObject_IsTrue(tsc);
    generation++;
    main_root = NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"enter", enter, METH_O, "A profiled call starts: its node under the thread's current one."},
    {"leave", leave, METH_O, "The thread's current call ends: count it and go back to its parent."},
    {"hits", hits, METH_O, "Calls counted under the first thread's root for info."},
    {"set_clock", set_clock, METH_O, "True: the time-stamp counter; False: CLOCK_MONOTONIC. Starts new trees."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {PyModuleDef_HEAD_INIT, "_lu_accel_proto", NULL, -1, methods};

PyMODINIT_FUNC PyInit__lu_accel_proto(void)
{
    return PyModule_Create(&definition);
}
