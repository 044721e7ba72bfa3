/* lu's compiled call-tree timer: the optional fast path of FuncProfiler's woven timing.
 *
 * The engine weaves one call of `enter(info)` before a profiled function's
 * body and one call of `leave(info)` in its `finally` (payloads/engine/
 * transform.py). The pure-Python timer does the same work in bytecode: find
 * the thread's tree, find the call's node under the current one, read the
 * clock, and add up on exit. Here that work is a few C operations, so a
 * profiled call costs less than under cProfile.
 *
 * Layout. A timer keeps one tree per thread, in a table keyed by the
 * thread's *serial*: a number this library gives each thread the first time
 * it meets a timer, kept in C thread-local storage and never reused (thread
 * idents are reused as soon as a thread is gone). Nodes are C structs; a
 * node's children are found by the identity of their FuncInfo. The timer
 * holds a reference to every FuncInfo a node names (the `keep` dict, by
 * identity), so a node never outlives its FuncInfo. Nodes are freed only when their
 * thread's tree is taken (`take`, once the thread has ended) or with the
 * timer.
 *
 * Snapshots. `tree(serial)` converts one thread's tree to the engine's node
 * lists ([hits, total_s, children, info, parent, started_s, wall_s]) and
 * returns it with the node of the call running now, so the Python session
 * reads the same records whichever timer ran.
 *
 * Safety. Everything runs under the GIL, and enter/leave never run Python
 * code, except the `on_thread` callback on a thread's first call (the tree
 * is inserted after it returns). Converting allocates Python objects, which
 * may run the collector and with it any code: the converter re-reads every
 * child array as it goes, and no tree is freed while a conversion runs.
 * leave() never raises: it runs in the program's `finally`.
 *
 * LineProfiler's per-line timing has its twin here too (LineTimer): the
 * woven `before(key)` and `after(key)` of each profiled line, where the key
 * is the constant (FuncInfo, line) tuple of that line in the woven code,
 * count and time it in a per-thread table keyed by the key's identity.
 *
 * Built against the stable ABI of 3.8: one file loads in every GIL build
 * from 3.8 on. Free-threaded builds do not take it (payloads/engine/
 * accel.py checks before loading).
 */
#define Py_LIMITED_API 0x03080000
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ABI 3         /* what payloads/engine/accel.py expects; bump when the interface changes */
#define LINEAR 8      /* children searched in order up to this many; beyond, through a hash index */
#define EMPTY 0
#define GONE UINT64_MAX /* a table slot whose tree was taken */

typedef struct Node {
    PyObject *info; /* borrowed: the timer's keep list holds it; NULL for a root */
    struct Node *parent;
    uint64_t hits;
    uint64_t spent; /* ns, finished calls */
    uint64_t started; /* ns, the clock when the running call of this node started */
    struct Node **kids;
    uint32_t count;
    uint32_t capacity;
    struct Node **index; /* kids by info, open addressing, when count > LINEAR */
    uint32_t index_mask;
} Node;

/* One thread's state in a timer: its tree (CallTimer) or its lines (LineTimer), malloc'd, so that it
   stays where it is when the table moves. */
typedef struct {
    uint64_t serial; /* EMPTY, GONE, or a thread's serial */
    void *state;
} Slot;

typedef struct {
    Slot *slots;
    size_t mask; /* len(slots) - 1 */
    size_t used; /* slots not EMPTY (live and GONE) */
} Table;

typedef struct {
    Node root;
    Node *current;
} CallState;

typedef struct {
    PyObject *key; /* the woven (info, line) constant, borrowed as a node's info; NULL: an empty slot */
    uint64_t hits;
    uint64_t spent; /* ns, executions that completed */
    uint64_t started;
    int running; /* started and not yet ended (what `after` times) */
} LineStat;

typedef struct {
    LineStat *stats; /* open addressing by the identity of the key */
    uint32_t mask;
    uint32_t count;
} LineState;

typedef void (*free_state)(void *);

typedef struct {
    PyObject_HEAD
    PyObject *keep; /* {id(info): info}: every FuncInfo the states name */
    PyObject *on_thread; /* called with a thread's serial before its first event is counted */
    Table table;
    uint64_t last_serial; /* the thread seen last, and its state: most calls skip the table */
    void *last_state;
    long converting; /* conversions running (nothing is freed meanwhile) */
} Timer;

/* Initial-exec: read with one instruction, not a call into the loader. A library loaded by dlopen
   takes such variables from the loader's small reserve; if that were used up, the library would not
   load, and the Python timer would run (engine/accel.py says so). */
#define FAST_TLS __attribute__((tls_model("initial-exec")))
static __thread uint64_t thread_serial FAST_TLS; /* 0 until the thread first meets a timer */
static __thread int in_callback FAST_TLS; /* the thread is in on_thread: its calls are not timed */
static uint64_t next_serial = 1; /* under the GIL */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t my_serial(void)
{
    if (thread_serial == 0)
        thread_serial = next_serial++;
    return thread_serial;
}

static inline size_t spread(uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17);
}

/* Keep info alive as long as the timer (by identity: what the states compare). */
static int keep(Timer *self, PyObject *info)
{
    PyObject *key = PyLong_FromVoidPtr(info);
    if (key == NULL)
        return -1;
    int failed = PyDict_SetItem(self->keep, key, info);
    Py_DECREF(key);
    return failed;
}

/* -- nodes ------------------------------------------------------------------------- */

static void free_subtree(Node *top)
{
    /* Iterative: a deep recursion in the program makes a deep tree. */
    Node *node = top;
    while (node != NULL) {
        if (node->count) {
            Node *kid = node->kids[--node->count];
            node = kid;
            continue;
        }
        Node *parent = node == top ? NULL : node->parent;
        free(node->kids);
        free(node->index);
        free(node);
        node = parent;
    }
}

static int index_put(Node **index, uint32_t mask, Node *kid)
{
    size_t at = spread((uintptr_t)kid->info) & mask;
    while (index[at] != NULL)
        at = (at + 1) & mask;
    index[at] = kid;
    return 0;
}

static int reindex(Node *node)
{
    uint32_t size = 16;
    while (size < 2u * node->capacity)
        size *= 2;
    Node **index = calloc(size, sizeof(Node *));
    if (index == NULL)
        return -1;
    for (uint32_t i = 0; i < node->count; i++)
        index_put(index, size - 1, node->kids[i]);
    free(node->index);
    node->index = index;
    node->index_mask = size - 1;
    return 0;
}

static inline Node *find_kid(Node *node, PyObject *info)
{
    if (node->index == NULL) {
        for (uint32_t i = 0; i < node->count; i++) {
            if (node->kids[i]->info == info)
                return node->kids[i];
        }
        return NULL;
    }
    size_t at = spread((uintptr_t)info) & node->index_mask;
    while (node->index[at] != NULL) {
        if (node->index[at]->info == info)
            return node->index[at];
        at = (at + 1) & node->index_mask;
    }
    return NULL;
}

static Node *new_kid(Timer *self, Node *node, PyObject *info)
{
    if (node->count == node->capacity) {
        uint32_t capacity = node->capacity ? node->capacity * 2 : 4;
        Node **kids = realloc(node->kids, capacity * sizeof(Node *));
        if (kids == NULL)
            return NULL;
        node->kids = kids;
        node->capacity = capacity;
        if (capacity > LINEAR && reindex(node) < 0)
            return NULL;
    }
    if (keep(self, info) < 0)
        return NULL;
    Node *kid = calloc(1, sizeof(Node));
    if (kid == NULL)
        return NULL;
    kid->info = info;
    kid->parent = node;
    node->kids[node->count++] = kid;
    if (node->index != NULL)
        index_put(node->index, node->index_mask, kid);
    return kid;
}

/* -- the table of per-thread states --------------------------------------------- */

static Slot *lookup(Table *table, uint64_t serial)
{
    if (table->slots == NULL || serial == EMPTY || serial == GONE)
        return NULL;
    size_t at = spread(serial) & table->mask;
    for (;;) {
        Slot *slot = &table->slots[at];
        if (slot->serial == serial)
            return slot;
        if (slot->serial == EMPTY)
            return NULL;
        at = (at + 1) & table->mask;
    }
}

static int grow(Table *table)
{
    size_t live = 0;
    for (size_t i = 0; table->slots != NULL && i <= table->mask; i++)
        live += table->slots[i].serial != EMPTY && table->slots[i].serial != GONE;
    size_t size = 8;
    while (size < 4 * (live + 1))
        size *= 2;
    Slot *slots = calloc(size, sizeof(Slot));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; table->slots != NULL && i <= table->mask; i++) {
        Slot *old = &table->slots[i];
        if (old->serial == EMPTY || old->serial == GONE)
            continue;
        size_t at = spread(old->serial) & (size - 1);
        while (slots[at].serial != EMPTY)
            at = (at + 1) & (size - 1);
        slots[at] = *old;
    }
    free(table->slots);
    table->slots = slots;
    table->mask = size - 1;
    table->used = live;
    return 0;
}

static int insert(Table *table, uint64_t serial, void *state)
{
    if (table->slots == NULL || 2 * (table->used + 1) > table->mask + 1) {
        if (grow(table) < 0)
            return -1;
    }
    size_t at = spread(serial) & table->mask;
    while (table->slots[at].serial != EMPTY && table->slots[at].serial != GONE)
        at = (at + 1) & table->mask;
    Slot *slot = &table->slots[at];
    if (slot->serial == EMPTY)
        table->used++;
    slot->serial = serial;
    slot->state = state;
    return 0;
}

static void free_table(Table *table, free_state release)
{
    for (size_t i = 0; table->slots != NULL && i <= table->mask; i++) {
        Slot *slot = &table->slots[i];
        if (slot->serial != EMPTY && slot->serial != GONE)
            release(slot->state);
    }
    free(table->slots);
    table->slots = NULL;
    table->mask = table->used = 0;
}

/* The calling thread's state; NULL with an exception set, or NULL with none while on_thread runs
   (the callback's own calls are not timed). `make` allocates a new thread's state. */
static void *thread_state(Timer *self, void *(*make)(void), free_state release)
{
    uint64_t serial = my_serial();
    if (serial == self->last_serial)
        return self->last_state;
    Slot *slot = lookup(&self->table, serial);
    if (slot != NULL) {
        self->last_serial = serial;
        self->last_state = slot->state;
        return slot->state;
    }
    if (in_callback)
        return NULL;
    in_callback = 1;
    PyObject *serial_object = PyLong_FromUnsignedLongLong(serial);
    PyObject *result = serial_object ? PyObject_CallFunctionObjArgs(self->on_thread, serial_object, NULL) : NULL;
    in_callback = 0;
    Py_XDECREF(serial_object);
    if (result == NULL)
        return NULL;
    Py_DECREF(result);
    void *state = make();
    if (state == NULL || insert(&self->table, serial, state) < 0) {
        if (state != NULL)
            release(state);
        PyErr_NoMemory();
        return NULL;
    }
    self->last_serial = serial;
    self->last_state = state;
    return state;
}

/* The calling thread's state if it has one (what leave and after need), or NULL. */
static inline void *known_state(Timer *self)
{
    uint64_t serial = thread_serial;
    if (serial == 0)
        return NULL;
    if (serial == self->last_serial)
        return self->last_state;
    Slot *slot = lookup(&self->table, serial);
    return slot != NULL ? slot->state : NULL;
}

static void *make_call_state(void)
{
    CallState *state = calloc(1, sizeof(CallState));
    if (state != NULL)
        state->current = &state->root;
    return state;
}

static void free_call_state(void *state)
{
    CallState *calls = state;
    Node *root = &calls->root;
    /* the root is inline: free its children's subtrees, then its arrays */
    for (uint32_t i = 0; i < root->count; i++)
        free_subtree(root->kids[i]);
    free(root->kids);
    free(root->index);
    free(calls);
}

/* -- the woven calls of CallTimer ------------------------------------------------ */

static PyObject *timer_enter(PyObject *op, PyObject *info)
{
    Timer *self = (Timer *)op;
    CallState *state = thread_state(self, make_call_state, free_call_state);
    if (state == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE; /* a call made by on_thread itself: not timed */
    }
    Node *node = find_kid(state->current, info);
    if (node == NULL) {
        node = new_kid(self, state->current, info);
        if (node == NULL) {
            if (!PyErr_Occurred())
                PyErr_NoMemory();
            return NULL;
        }
    }
    state->current = node;
    node->started = now_ns();
    Py_INCREF(info);
    return info;
}

static PyObject *timer_leave(PyObject *op, PyObject *info)
{
    uint64_t end = now_ns();
    CallState *state = known_state((Timer *)op);
    if (state == NULL)
        Py_RETURN_NONE;
    /* Normally the current node is this call's. If a leave was ever missed (an exception
       between entry and the body's try), the call's node is an outer one: go back to it. */
    Node *node = state->current;
    while (node != NULL && node->info != info)
        node = node->parent;
    if (node == NULL || node->parent == NULL)
        Py_RETURN_NONE;
    node->hits++;
    node->spent += end - node->started;
    state->current = node->parent;
    Py_RETURN_NONE;
}

/* -- CallTimer's snapshots --------------------------------------------------------- */

typedef struct {
    Node *node;
    PyObject *list;
    uint32_t next; /* the next child to convert */
} Step;

static PyObject *node_list(Node *node, PyObject *parent)
{
    PyObject *list = PyList_New(7);
    if (list == NULL)
        return NULL;
    PyObject *items[7];
    items[0] = PyLong_FromUnsignedLongLong(node->hits);
    items[1] = PyFloat_FromDouble((double)node->spent / 1e9);
    items[2] = PyDict_New();
    items[3] = node->info ? node->info : Py_None;
    Py_INCREF(items[3]);
    items[4] = parent ? parent : Py_None;
    Py_INCREF(items[4]);
    items[5] = PyFloat_FromDouble((double)node->started / 1e9);
    items[6] = PyFloat_FromDouble(0.0);
    int failed = 0;
    for (int i = 0; i < 7; i++) {
        if (items[i] == NULL)
            failed = 1;
        else
            PyList_SetItem(list, i, items[i]); /* steals */
    }
    if (failed) {
        Py_DECREF(list);
        return NULL;
    }
    return list;
}

/* (root, current) as node lists, current being the node of the call running now. */
static PyObject *convert(Node *root, Node *current)
{
    size_t depth = 0, room = 64;
    Step *stack = malloc(room * sizeof(Step));
    if (stack == NULL)
        return PyErr_NoMemory();
    PyObject *top = node_list(root, NULL);
    PyObject *found = NULL; /* borrowed: current's list */
    PyObject *result = NULL;
    if (top == NULL)
        goto done;
    if (current == root)
        found = top;
    stack[depth++] = (Step){root, top, 0};
    while (depth) {
        Step *step = &stack[depth - 1];
        if (step->next >= step->node->count) { /* re-read: collected code may have added calls */
            depth--;
            continue;
        }
        Node *kid = step->node->kids[step->next++];
        PyObject *list = node_list(kid, step->list);
        if (list == NULL)
            goto done;
        PyObject *children = PyList_GetItem(step->list, 2);
        int failed = PyDict_SetItem(children, kid->info, list);
        Py_DECREF(list); /* the children dict holds it */
        if (failed < 0)
            goto done;
        if (kid == current)
            found = list;
        if (depth == room) {
            Step *bigger = realloc(stack, 2 * room * sizeof(Step));
            if (bigger == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            stack = bigger;
            room *= 2;
        }
        stack[depth++] = (Step){kid, list, 0};
    }
    result = Py_BuildValue("(OO)", top, found ? found : top);
done:
    free(stack);
    Py_XDECREF(top);
    return result;
}

/* A thread's serial from Python (GONE names no thread: it reads as EMPTY). */
static int serial_of(PyObject *arg, uint64_t *serial)
{
    unsigned long long value = PyLong_AsUnsignedLongLong(arg);
    if (value == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *serial = value == GONE ? EMPTY : value;
    return 0;
}

static PyObject *timer_tree(PyObject *op, PyObject *arg)
{
    Timer *self = (Timer *)op;
    uint64_t serial;
    if (serial_of(arg, &serial) < 0)
        return NULL;
    Slot *slot = lookup(&self->table, serial);
    if (slot == NULL)
        Py_RETURN_NONE;
    CallState *state = slot->state; /* the table may move meanwhile; the state does not */
    self->converting++;
    PyObject *result = convert(&state->root, state->current);
    self->converting--;
    return result;
}

/* Free a taken thread's state, once it is out of the table. */
static void forget(Timer *self, uint64_t serial, void *state, free_state release)
{
    Slot *slot = lookup(&self->table, serial); /* the table may have moved while converting */
    if (slot != NULL && slot->state == state) {
        slot->serial = GONE;
        slot->state = NULL;
        if (self->last_serial == serial)
            self->last_serial = EMPTY, self->last_state = NULL;
        release(state);
    }
}

static PyObject *timer_take(PyObject *op, PyObject *arg)
{
    /* The tree of a thread that ended, as node lists, and its nodes freed; None while a
       conversion runs (the caller keeps the thread and takes it at a later snapshot). */
    Timer *self = (Timer *)op;
    uint64_t serial;
    if (serial_of(arg, &serial) < 0)
        return NULL;
    Slot *slot = lookup(&self->table, serial);
    if (slot == NULL || self->converting)
        Py_RETURN_NONE;
    CallState *state = slot->state;
    self->converting++;
    PyObject *pair = convert(&state->root, &state->root);
    self->converting--;
    if (pair == NULL)
        return NULL;
    if (self->converting) { /* a conversion began meanwhile (collected code): not now */
        Py_DECREF(pair);
        Py_RETURN_NONE;
    }
    forget(self, serial, state, free_call_state);
    PyObject *top = PyTuple_GetItem(pair, 0);
    Py_INCREF(top);
    Py_DECREF(pair);
    return top;
}

static size_t count_nodes(Node *top)
{
    /* iterative, with an index stack: a deep recursion makes a deep tree */
    size_t nodes = 1, depth = 0, room = 64;
    uint32_t *at = malloc(room * sizeof(uint32_t));
    if (at == NULL)
        return 0;
    at[0] = 0;
    Node *node = top;
    while (node != NULL) {
        if (at[depth] < node->count) {
            node = node->kids[at[depth]++];
            nodes++;
            if (++depth == room) {
                uint32_t *bigger = realloc(at, 2 * room * sizeof(uint32_t));
                if (bigger == NULL)
                    break;
                at = bigger;
                room *= 2;
            }
            at[depth] = 0;
        } else if (depth) {
            node = node->parent;
            depth--;
        } else {
            node = NULL;
        }
    }
    free(at);
    return nodes;
}

static PyObject *timer_counts(PyObject *op, PyObject *unused)
{
    /* (threads, nodes): what the timer holds, for tests of what it frees. */
    Timer *self = (Timer *)op;
    size_t threads = 0, nodes = 0;
    for (size_t i = 0; self->table.slots != NULL && i <= self->table.mask; i++) {
        Slot *slot = &self->table.slots[i];
        if (slot->serial == EMPTY || slot->serial == GONE)
            continue;
        threads++;
        nodes += count_nodes(&((CallState *)slot->state)->root);
    }
    return Py_BuildValue("(nn)", (Py_ssize_t)threads, (Py_ssize_t)nodes);
}

/* -- LineTimer --------------------------------------------------------------------- */

static void *make_line_state(void)
{
    LineState *state = calloc(1, sizeof(LineState));
    if (state == NULL)
        return NULL;
    state->stats = calloc(16, sizeof(LineStat));
    if (state->stats == NULL) {
        free(state);
        return NULL;
    }
    state->mask = 15;
    return state;
}

static void free_line_state(void *state)
{
    LineState *lines = state;
    free(lines->stats);
    free(lines);
}

static inline LineStat *find_line(LineState *state, PyObject *key)
{
    size_t at = spread((uintptr_t)key) & state->mask;
    for (;;) {
        LineStat *stat = &state->stats[at];
        if (stat->key == key)
            return stat;
        if (stat->key == NULL)
            return NULL;
        at = (at + 1) & state->mask;
    }
}

static LineStat *add_line(Timer *self, LineState *state, PyObject *key)
{
    if (!PyTuple_Check(key) || PyTuple_Size(key) != 2) {
        PyErr_SetString(PyExc_TypeError, "a line's key is the tuple (info, line)");
        return NULL;
    }
    if (2 * (state->count + 1) > state->mask + 1) {
        uint32_t size = 2 * (state->mask + 1);
        LineStat *stats = calloc(size, sizeof(LineStat));
        if (stats == NULL)
            return NULL;
        for (uint32_t i = 0; i <= state->mask; i++) {
            LineStat *old = &state->stats[i];
            if (old->key == NULL)
                continue;
            size_t at = spread((uintptr_t)old->key) & (size - 1);
            while (stats[at].key != NULL)
                at = (at + 1) & (size - 1);
            stats[at] = *old;
        }
        free(state->stats);
        state->stats = stats;
        state->mask = size - 1;
    }
    if (keep(self, key) < 0)
        return NULL;
    size_t at = spread((uintptr_t)key) & state->mask;
    while (state->stats[at].key != NULL)
        at = (at + 1) & state->mask;
    LineStat *stat = &state->stats[at];
    stat->key = key;
    state->count++;
    return stat;
}

static PyObject *lines_before(PyObject *op, PyObject *key)
{
    Timer *self = (Timer *)op;
    LineState *state = thread_state(self, make_line_state, free_line_state);
    if (state == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    LineStat *stat = find_line(state, key);
    if (stat == NULL) {
        stat = add_line(self, state, key);
        if (stat == NULL) {
            if (!PyErr_Occurred())
                PyErr_NoMemory();
            return NULL;
        }
    }
    stat->hits++;
    stat->running = 1;
    stat->started = now_ns();
    Py_RETURN_NONE;
}

static PyObject *lines_after(PyObject *op, PyObject *key)
{
    uint64_t end = now_ns();
    LineState *state = known_state((Timer *)op);
    if (state == NULL)
        Py_RETURN_NONE;
    LineStat *stat = find_line(state, key);
    if (stat != NULL && stat->running) {
        stat->spent += end - stat->started;
        stat->running = 0;
    }
    Py_RETURN_NONE;
}

/* {(info, line): [hits, total_ns]} of one thread's lines. Two woven codes of one function (say, before
   and after another update) have keys of their own that compare equal: their figures are added up. */
static PyObject *line_stats(LineState *state)
{
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    for (uint32_t i = 0; i <= state->mask; i++) {
        /* A copy, read afresh each time: code run by the collector meanwhile may add lines and
           move the array (which only grows); a line moved past `i` waits for the next snapshot. */
        LineStat stat = state->stats[i];
        if (stat.key == NULL)
            continue;
        PyObject *row = PyDict_GetItem(out, stat.key); /* borrowed */
        int failed;
        if (row != NULL) {
            PyObject *hits = PyLong_FromUnsignedLongLong(
                PyLong_AsUnsignedLongLong(PyList_GetItem(row, 0)) + stat.hits);
            PyObject *spent = PyLong_FromUnsignedLongLong(
                PyLong_AsUnsignedLongLong(PyList_GetItem(row, 1)) + stat.spent);
            failed = hits == NULL || spent == NULL;
            if (!failed) {
                PyList_SetItem(row, 0, hits); /* steals */
                PyList_SetItem(row, 1, spent);
            } else {
                Py_XDECREF(hits);
                Py_XDECREF(spent);
            }
        } else {
            PyObject *value = Py_BuildValue("[KK]", (unsigned long long)stat.hits, (unsigned long long)stat.spent);
            failed = value == NULL || PyDict_SetItem(out, stat.key, value) < 0;
            Py_XDECREF(value);
        }
        if (failed) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyObject *lines_stats(PyObject *op, PyObject *arg)
{
    Timer *self = (Timer *)op;
    uint64_t serial;
    if (serial_of(arg, &serial) < 0)
        return NULL;
    Slot *slot = lookup(&self->table, serial);
    if (slot == NULL)
        Py_RETURN_NONE;
    self->converting++;
    PyObject *out = line_stats(slot->state);
    self->converting--;
    return out;
}

static PyObject *lines_take(PyObject *op, PyObject *arg)
{
    Timer *self = (Timer *)op;
    uint64_t serial;
    if (serial_of(arg, &serial) < 0)
        return NULL;
    Slot *slot = lookup(&self->table, serial);
    if (slot == NULL || self->converting)
        Py_RETURN_NONE;
    LineState *state = slot->state;
    self->converting++;
    PyObject *out = line_stats(state);
    self->converting--;
    if (out == NULL)
        return NULL;
    if (self->converting) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    forget(self, serial, state, free_line_state);
    return out;
}

static PyObject *lines_counts(PyObject *op, PyObject *unused)
{
    /* (threads, lines): what the timer holds, for tests of what it frees. */
    Timer *self = (Timer *)op;
    size_t threads = 0, lines = 0;
    for (size_t i = 0; self->table.slots != NULL && i <= self->table.mask; i++) {
        Slot *slot = &self->table.slots[i];
        if (slot->serial == EMPTY || slot->serial == GONE)
            continue;
        threads++;
        lines += ((LineState *)slot->state)->count;
    }
    return Py_BuildValue("(nn)", (Py_ssize_t)threads, (Py_ssize_t)lines);
}

/* -- what both types share --------------------------------------------------------- */

static PyObject *timer_serial(PyObject *op, PyObject *unused)
{
    return PyLong_FromUnsignedLongLong(my_serial());
}

static PyObject *new_timer(PyTypeObject *type, PyObject *args, const char *name)
{
    PyObject *on_thread;
    if (!PyArg_UnpackTuple(args, name, 1, 1, &on_thread))
        return NULL;
    if (!PyCallable_Check(on_thread)) {
        PyErr_Format(PyExc_TypeError, "%s takes a callable (called with each new thread's serial)", name);
        return NULL;
    }
    allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
    Timer *self = (Timer *)alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->keep = PyDict_New();
    if (self->keep == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    Py_INCREF(on_thread);
    self->on_thread = on_thread;
    return (PyObject *)self;
}

static int timer_traverse(PyObject *op, visitproc visit, void *arg)
{
    Timer *self = (Timer *)op;
    Py_VISIT(self->keep);
    Py_VISIT(self->on_thread);
    return 0;
}

static int clear_with(PyObject *op, free_state release)
{
    Timer *self = (Timer *)op;
    free_table(&self->table, release); /* the states borrow from keep: they go first */
    self->last_serial = EMPTY;
    self->last_state = NULL;
    Py_CLEAR(self->keep);
    Py_CLEAR(self->on_thread);
    return 0;
}

static void dealloc_with(PyObject *op, free_state release)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    clear_with(op, release);
    freefunc tp_free = (freefunc)PyType_GetSlot(type, Py_tp_free);
    tp_free(op);
    Py_DECREF(type);
}

static PyObject *calls_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return new_timer(type, args, "CallTimer");
}

static int calls_clear(PyObject *op)
{
    return clear_with(op, free_call_state);
}

static void calls_dealloc(PyObject *op)
{
    dealloc_with(op, free_call_state);
}

static PyObject *lines_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return new_timer(type, args, "LineTimer");
}

static int lines_clear(PyObject *op)
{
    return clear_with(op, free_line_state);
}

static void lines_dealloc(PyObject *op)
{
    dealloc_with(op, free_line_state);
}

static PyMethodDef calls_methods[] = {
    {"enter", timer_enter, METH_O, "A profiled call starts (woven before the body); returns info, or None when not timed."},
    {"leave", timer_leave, METH_O, "The profiled call of info ends (woven in its finally); never raises."},
    {"tree", timer_tree, METH_O, "(root, current) of a thread's tree as node lists, or None."},
    {"take", timer_take, METH_O, "An ended thread's tree as node lists, its nodes freed; None if not now."},
    {"serial", timer_serial, METH_NOARGS, "The calling thread's serial."},
    {"counts", timer_counts, METH_NOARGS, "(threads, nodes) the timer holds."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot calls_slots[] = {
    {Py_tp_new, calls_new},
    {Py_tp_dealloc, calls_dealloc},
    {Py_tp_traverse, timer_traverse},
    {Py_tp_clear, calls_clear},
    {Py_tp_methods, calls_methods},
    {Py_tp_doc, "Call trees of the profiled calls of every thread, kept in C (see lu_accel.c)."},
    {0, NULL},
};

static PyType_Spec calls_spec = {
    "lu_payloads._accel.CallTimer",
    sizeof(Timer),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    calls_slots,
};

static PyMethodDef lines_methods[] = {
    {"before", lines_before, METH_O, "The line of the key (info, line) starts (woven before it)."},
    {"after", lines_after, METH_O, "The line of the key (info, line) completed (woven after it); never raises."},
    {"stats", lines_stats, METH_O, "{(info, line): [hits, total_ns]} of a thread, or None."},
    {"take", lines_take, METH_O, "An ended thread's stats, its table freed; None if not now."},
    {"serial", timer_serial, METH_NOARGS, "The calling thread's serial."},
    {"counts", lines_counts, METH_NOARGS, "(threads, lines) the timer holds."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot lines_slots[] = {
    {Py_tp_new, lines_new},
    {Py_tp_dealloc, lines_dealloc},
    {Py_tp_traverse, timer_traverse},
    {Py_tp_clear, lines_clear},
    {Py_tp_methods, lines_methods},
    {Py_tp_doc, "Hits and time of profiled lines, per thread, kept in C (see lu_accel.c)."},
    {0, NULL},
};

static PyType_Spec lines_spec = {
    "lu_payloads._accel.LineTimer",
    sizeof(Timer),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    lines_slots,
};

/* -- the module -------------------------------------------------------------------- */

static PyObject *clock_seconds(PyObject *module, PyObject *unused)
{
    return PyFloat_FromDouble((double)now_ns() / 1e9);
}

static PyMethodDef module_methods[] = {
    {"clock", clock_seconds, METH_NOARGS, "The timers' clock (CLOCK_MONOTONIC) in seconds."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "_accel", "lu's compiled timers (optional; see lu_accel.c).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

static int add_type(PyObject *module, const char *name, PyType_Spec *spec)
{
    PyObject *type = PyType_FromSpec(spec);
    if (type == NULL)
        return -1;
    if (PyModule_AddObject(module, name, type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__accel(void)
{
    PyObject *module = PyModule_Create(&definition);
    if (module == NULL)
        return NULL;
    if (add_type(module, "CallTimer", &calls_spec) < 0 || add_type(module, "LineTimer", &lines_spec) < 0
        || PyModule_AddIntConstant(module, "ABI", ABI) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
