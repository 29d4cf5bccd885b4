/* tinyext: a small CPython extension module built as a Wasm side module for Pyodide with Debian's
 * clang and wasm-ld (make-ext-dir.py). No Python headers: Pyodide's CPython is 3.14 on wasm32 and
 * Debian's headers are 3.11 for x86-64, so the few declarations needed are written out here (the
 * layouts are CPython's stable ABI on a 32-bit target). */
typedef long Py_ssize_t;
typedef struct _object { Py_ssize_t ob_refcnt; void *ob_type; } PyObject;
typedef PyObject *(*PyCFunction)(PyObject *, PyObject *);
typedef struct { const char *ml_name; PyCFunction ml_meth; int ml_flags; const char *ml_doc; } PyMethodDef;
typedef struct { PyObject ob_base; PyObject *(*m_init)(void); Py_ssize_t m_index; PyObject *m_copy; } PyModuleDef_Base;
typedef struct {
  PyModuleDef_Base m_base; const char *m_name; const char *m_doc; Py_ssize_t m_size;
  PyMethodDef *m_methods; void *m_slots; void *m_traverse; void *m_clear; void *m_free;
} PyModuleDef;
extern PyObject *PyModule_Create2(PyModuleDef *, int);
extern long PyLong_AsLong(PyObject *);
extern PyObject *PyLong_FromLong(long);
extern PyObject *PyErr_Occurred(void);
extern void PyErr_SetString(PyObject *, const char *);
extern PyObject *PyExc_ValueError; /* main-module data: reached through a GOT.mem import */
#define METH_NOARGS 0x0004
#define METH_O 0x0008
#define PYTHON_API_VERSION 1013

static long counter = 1000;           /* state in the side module's data: must come back from a snapshot */
static long table[4] = {3, 5, 7, 11}; /* an initialised array */
static PyObject *(*from_long)(long) = PyLong_FromLong; /* a main-module function pointer: GOT.func */

static PyObject *square(PyObject *self, PyObject *arg) {
  long x = PyLong_AsLong(arg);
  if (x == -1 && PyErr_Occurred()) return 0;
  if (x < 0) {
    PyErr_SetString(PyExc_ValueError, "tinyext.square: negative");
    return 0;
  }
  return from_long(x * x + table[x & 3]);
}

static PyObject *bump(PyObject *self, PyObject *unused) { return from_long(++counter); }

static PyMethodDef methods[] = {
  {"square", square, METH_O, "x*x + (3, 5, 7, 11)[x % 4]; ValueError for x < 0"},
  {"bump", bump, METH_NOARGS, "increments a static counter (starts at 1000) and returns it"},
  {0, 0, 0, 0},
};
static PyModuleDef def = {{{1, 0}, 0, 0, 0}, "tinyext", "Thaw's test extension", -1, methods, 0, 0, 0, 0};

__attribute__((visibility("default"))) PyObject *PyInit_tinyext(void) { return PyModule_Create2(&def, PYTHON_API_VERSION); }
