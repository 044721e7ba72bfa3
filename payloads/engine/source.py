"""Source lookup, scope-faithful compilation and the "source must match" check.

A function's code is rebuilt from an ast `FunctionDef` node.  To get exactly the
code object the compiler produced for the original, the node is compiled inside
a synthetic nest of scopes rebuilt from its qualified name: `A.<locals>.K.m`
becomes `def A(): <cells>; class K: def m(...)`.  That gives the same name
mangling (`__x` inside class K), the same `__class__` cell for zero-argument
`super()`, the same free variables (assigned as cells in the innermost
enclosing def, so they are free in the target, in the compiler's order) and the
same qualified names for the function and anything nested in it.  The
synthetic module is compiled, never executed; the target's code object is taken
out of its constants.
"""

from __future__ import annotations
import __future__ as _future

import ast
import contextlib
import linecache
import os
import symtable
import sys
import tokenize
import weakref
from dataclasses import dataclass
from types import CodeType, FunctionType
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple, Type, TypeVar, Union, cast

from ..errors import LuError
from .annotations import Annotations

PY311 = sys.version_info >= (3, 11)
FUTURE_MASK = 0
for _name in _future.all_feature_names:
    FUTURE_MASK |= getattr(_future, _name).compiler_flag
CO_NESTED = 0x10
CO_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR = 0x20, 0x80, 0x100, 0x200
# CO_NESTED differs with context; types.coroutine sets CO_ITERABLE_COROUTINE on live code.
FLAGS_IGNORED = CO_NESTED | CO_ITERABLE_COROUTINE
KIND_FLAGS = CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR

FUNC_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
SCOPE_STMTS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)  # the scopes a statement list can hold

FuncNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]  # a def, the node a function's code is compiled from
StatementLines = Tuple[Set[int], Dict[int, str]]  # (own, nested): see statement_lines
_Tree = TypeVar("_Tree")
_Node = TypeVar("_Node", bound=ast.AST)
_Placed = TypeVar("_Placed", bound=Union[ast.stmt, ast.expr, ast.alias])

_tree_cache: Dict[str, SourceFile] = {}


def code_qualname(func: FunctionType) -> str:
    if sys.version_info >= (3, 11):
        return func.__code__.co_qualname
    return func.__qualname__


def _co_qualname(code: CodeType) -> Optional[str]:
    """code.co_qualname (3.11+), None before."""
    if sys.version_info >= (3, 11):
        return code.co_qualname
    return None


def _linetable(code: CodeType) -> bytes:
    table = getattr(code, "co_linetable", None)
    return table if table is not None else code.co_lnotab


# Where one def is in its file: (first line (its first decorator's, or the def's), last line, column). A plain
# tuple of ints, which the garbage collector stops tracking: a process keeps one per function lu changed.
DefSpan = Tuple[int, int, int]


class SourceFile(NamedTuple):
    """A source file as the engine reads it: its lines and module-level imports, never a syntax tree.

    A process profiled on thousands of functions would otherwise create
    (and, cached, hold) millions of ast nodes, which the program's garbage
    collector then walks in full collections that stop every thread. A def
    is parsed alone from its own lines when it is needed (find_def), and
    its node belongs to the caller.
    """

    stamp: Tuple[Any, ...]
    lines: List[str]  # without their line ends
    imports: Tuple[str, ...]  # names bound by module-level imports, and `super` when the module level uses it
    spans: Dict[Tuple[str, int], Optional[DefSpan]]  # (name, first line) -> where that def is, found on first use


# A file is read a few top-level statements at a time (see _chunks): no single
# call that holds the GIL takes long, however large the file.
CHUNK_LINES = 400
_CONTINUATIONS = ("else", "elif", "except", "finally")  # clauses that continue a statement at its column

# One look at each file per preparation (see one_look_per_file).
_looked: Optional[Dict[str, Optional[os.stat_result]]] = None


@contextlib.contextmanager
def one_look_per_file() -> Iterator[None]:
    """Inside, each source file is stat()ed once, however many of its functions are prepared.

    Not for speed but for the program's threads: a thread that releases the
    GIL for an instant thousands of times (one stat per function) and takes it
    straight back keeps any thread waiting for it from ever getting it (the
    waiter sees the GIL change hands and never asks for its turn), and the
    program stalls for as long as the preparation runs. Without such calls,
    the interpreter's switch interval hands the GIL over every 5 ms.
    """
    global _looked
    outer = _looked
    if outer is None:
        _looked = {}
    try:
        yield
    finally:
        if outer is None:
            _looked = None


def _stat(filename: str) -> Optional[os.stat_result]:
    looked = _looked
    if looked is not None and filename in looked:
        return looked[filename]
    try:
        found: Optional[os.stat_result] = os.stat(filename)
    except OSError:
        found = None
    if looked is not None:
        looked[filename] = found
    return found


def read_source(filename: str) -> SourceFile:
    """A file on disk, or a patch registered in linecache, read (see SourceFile); cached by its stamp."""
    st = _stat(filename)
    text: Optional[str] = None
    if st is None:
        # Not on disk: maybe a patch file registered in linecache by apply_patch.
        entry = linecache.cache.get(filename)
        if entry and len(entry) == 4 and entry[2]:
            stamp: Tuple[Any, ...] = ("linecache", id(entry[2]))
            text = "".join(entry[2])
        else:
            raise LuError("the source file %s does not exist (any more)" % filename)
    else:
        stamp = (st.st_mtime_ns, st.st_size)
    cached = _tree_cache.get(filename)
    if cached is not None and cached.stamp == stamp:
        return cached
    if text is None:
        try:
            with tokenize.open(filename) as fh:
                text = fh.read()
        except (OSError, SyntaxError, UnicodeDecodeError) as e:
            raise LuError("cannot read the source file %s: %s" % (filename, e))
    lines = text.split("\n")
    imports: Set[str] = set()
    try:
        for table in _chunks(lines, filename):
            for symbol in table.get_symbols():
                if symbol.is_imported() or symbol.get_name() == "super":
                    imports.add(symbol.get_name())
    except SyntaxError as e:
        raise LuError(
            "%s:%s: the source file does not parse (edited since the process loaded it?): %s"
            % (filename, e.lineno, e.msg)
        )
    result = SourceFile(stamp, lines, tuple(sorted(imports)), {})
    _tree_cache[filename] = result
    if len(_tree_cache) > 512:
        _tree_cache.pop(next(iter(_tree_cache)))
    return result


def _may_end_block(line: str, col: int, clauses: bool = True) -> bool:
    """Could this line be the first after a block indented deeper than `col`? (A wrong yes is caught: what
    ends there does not parse.) Code at `col` or less; with `clauses` False, not a clause that continues a
    statement (else, except...: it continues the top-level statement before it)."""
    stripped = line.lstrip(" \t\f")
    if not stripped or stripped[0] in "#\r" or len(line) - len(stripped) > col:
        return False
    if not clauses and stripped.startswith(_CONTINUATIONS):
        return stripped.split(None, 1)[0].rstrip(":") not in _CONTINUATIONS
    return True


def _chunks(lines: List[str], filename: str) -> Iterator[symtable.SymbolTable]:
    """The symbol tables of the file's top-level statements, a chunk of about CHUNK_LINES lines at a time.

    A symbol table (which names are imported at module level) is built by
    the compiler from its own syntax tree: no ast nodes are made. A chunk
    ends where a line at column 0 may start a statement. When that line is
    in fact inside a string or a bracket, the chunk does not compile, and
    it is tried again with twice as many of the following candidate
    boundaries (so a long string full of such lines costs a few tries, not
    one per line). Each chunk keeps its real line numbers.
    """
    total = len(lines)
    if total <= CHUNK_LINES:
        yield symtable.symtable("\n".join(lines), filename, "exec")
        return
    bounds = (
        [1]
        + [number for number in range(2, total + 1) if _may_end_block(lines[number - 1], 0, clauses=False)]
        + [total + 1]
    )
    last = len(bounds) - 1
    i = 0
    while i < last:
        j = i + 1
        while j < last and bounds[j + 1] - bounds[i] <= CHUNK_LINES:
            j += 1
        extra = 1
        while True:
            start, end = bounds[i], bounds[j]
            try:
                table = symtable.symtable("\n" * (start - 1) + "\n".join(lines[start - 1 : end - 1]), filename, "exec")
                break
            except SyntaxError:
                if j == last:
                    raise
                j = min(last, j + extra)
                extra *= 2
        yield table
        i = j


def _def_line(lines: List[str], name: str, first: int) -> int:
    """The line of `def name` at or after `first` (past its decorators), or 0."""
    for number in range(first, min(len(lines), first + 200) + 1):
        text = lines[number - 1].lstrip()
        if text.startswith("async"):
            text = text[5:].lstrip()
        if not text.startswith("def"):
            continue
        text = text[3:].lstrip()
        if text.startswith(name) and text[len(name) :].lstrip().startswith(("(", "[")):
            return number
    return 0


def _find_span(
    source: SourceFile, name: str, first: int, filename: str
) -> Tuple[Optional[DefSpan], Optional[FuncNode]]:
    """Where the def `name` that starts at line `first` ends, read from its lines alone.

    It ends before the first line of code indented no deeper than it (not an
    else/except/finally clause). Such a line inside one of its strings or
    brackets cuts it short, and then what is cut does not parse: it is tried
    again up to the next such line (after 64 tries, twice as many at a time).
    """
    lines = source.lines
    if not 1 <= first <= len(lines):
        return None, None
    head = lines[first - 1]
    col = len(head) - len(head.lstrip(" \t\f"))
    def_line = _def_line(lines, name, first)
    if not def_line:
        return None, None
    number = def_line
    tries = 0
    while number < len(lines):
        step = 1 if tries < 64 else tries
        found = 0
        while found < step and number < len(lines):
            number += 1
            if _may_end_block(lines[number - 1], col):
                found += 1
        last = number - 1 if found == step else len(lines)
        node = _parse_span(source, (first, last, col), filename)
        if node is not None and node.name == name and node.lineno == def_line:
            return (first, node.end_lineno or last, col), node
        tries += 1
    return None, None


def _parse_span(source: SourceFile, span: DefSpan, filename: str) -> Optional[FuncNode]:
    """The def at `span`, parsed alone at its real lines and columns (a new node, the caller's to change)."""
    first, last, col = span
    text = "\n".join(source.lines[first - 1 : last])
    try:
        if col == 0 or first < 2:
            tree = ast.parse("\n" * (first - 1) + text, filename)
            node = tree.body[0] if tree.body else None
        else:  # an indented def: under an `if` of its own on the line before, so its columns stay
            tree = ast.parse("\n" * (first - 2) + "if 1:\n" + text, filename)
            inside = tree.body[0] if tree.body else None
            node = inside.body[0] if isinstance(inside, ast.If) and inside.body else None
    except SyntaxError:
        return None
    return node if isinstance(node, FUNC_NODES) else None


def imports_of(filename: str) -> Tuple[str, ...]:
    """Names bound by import statements in the module scope of `filename`, and `super` if it is used there.

    CPython 3.11 compiles `mod.attr(...)` differently when `mod` was imported
    at module level, and 3.12 compiles `super().f()` differently when the
    module level names `super` at all (unittest.mock: `_safe_super = super`),
    so the synthetic module repeats those names as imports (they are
    compiled, never run).
    """
    try:
        return read_source(filename).imports
    except LuError:
        return ()


def find_def(filename: str, name: str, firstlineno: int) -> Optional[FuncNode]:
    """The FunctionDef/AsyncFunctionDef named `name` whose code starts at firstlineno: a new node, the caller's."""
    source = read_source(filename)
    key = (name, firstlineno)
    if key not in source.spans:
        source.spans[key], node = _find_span(source, name, firstlineno, filename)
        return node
    span = source.spans[key]
    return _parse_span(source, span, filename) if span is not None else None


def clone(node: _Tree) -> _Tree:
    """A deep copy of an ast tree (much faster than copy.deepcopy)."""
    if isinstance(node, list):
        return cast(_Tree, [clone(x) for x in node])
    if not isinstance(node, ast.AST):
        return node
    cls = node.__class__
    new = cls.__new__(cls)
    d = new.__dict__
    for k, v in node.__dict__.items():
        if isinstance(v, list):
            d[k] = [clone(x) if isinstance(x, ast.AST) else x for x in v]
        elif isinstance(v, ast.AST):
            d[k] = clone(v)
        else:
            d[k] = v
    return new


def _loc(node: _Placed, like: ast.stmt) -> _Placed:
    node.lineno = like.lineno
    node.col_offset = 0
    node.end_lineno = like.lineno
    node.end_col_offset = 0
    return node


def _with_type_params(cls: Type[_Node], **fields: Any) -> _Node:
    if "type_params" in cls._fields:
        fields["type_params"] = []
    return cls(**fields)


def _empty_args() -> ast.arguments:
    return ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])


def _import_stmts(imports: Sequence[str], like: ast.stmt) -> List[ast.stmt]:
    if not imports:
        return []
    stmt = ast.Import(names=[ast.alias(name="_", asname=n) for n in imports])
    _loc(stmt, like)
    for alias in stmt.names:  # the statement's only other nodes; positioned on 3.10+
        if "lineno" in alias._attributes:
            _loc(alias, like)
    return [stmt]


def compile_in_scope(
    fnode: FuncNode,
    qualname: str,
    freevars: Tuple[str, ...],
    filename: str,
    flags: int,
    imports: Optional[Tuple[str, ...]] = None,
) -> CodeType:
    """Compile a FunctionDef node as if at `qualname`; return its code object.

    `fnode` is used as is (not copied); its decorators only fix co_firstlineno
    (the synthetic module is never run).
    """
    parts = qualname.split(".")
    chain: List[Tuple[str, str]] = []
    i = 0
    while i < len(parts) - 1:
        part = parts[i]
        if part == "<locals>" or not part.isidentifier():
            return _compile_fallback(fnode, qualname, freevars, filename, flags, imports)
        if i + 1 < len(parts) - 1 and parts[i + 1] == "<locals>":
            chain.append(("def", part))
            i += 2
        else:
            chain.append(("class", part))
            i += 1
    has_class = any(kind == "class" for kind, _ in chain)
    cells = [v for v in freevars if not (v == "__class__" and has_class)]
    if cells and not any(kind == "def" for kind, _ in chain):
        return _compile_fallback(fnode, qualname, freevars, filename, flags, imports)
    inner: List[ast.stmt] = [fnode]
    innermost_def = True
    for kind, name in reversed(chain):
        node: ast.stmt
        if kind == "def":
            body = inner
            if innermost_def:
                body = [
                    _loc(
                        ast.Assign(
                            targets=[_loc(ast.Name(id=v, ctx=ast.Store()), fnode)],
                            value=_loc(ast.Constant(value=None), fnode),
                        ),
                        fnode,
                    )
                    for v in cells
                ] + inner
                innermost_def = False
            node = _with_type_params(
                ast.FunctionDef,
                name=name,
                args=_empty_args(),
                body=body,
                decorator_list=[],
                returns=None,
                type_comment=None,
            )
        else:
            node = _with_type_params(ast.ClassDef, name=name, bases=[], keywords=[], body=inner, decorator_list=[])
        inner = [_loc(node, fnode)]
    if imports is None:
        imports = imports_of(filename)
    module = ast.Module(body=_import_stmts(imports, fnode) + inner, type_ignores=[])
    code = compile(module, filename, "exec", flags=flags & FUTURE_MASK, dont_inherit=True)
    target = _find_code(code, fnode.name, qualname, len(chain) + 1)
    if target is None:  # pragma: no cover - defensive
        raise LuError("internal: compiled code for %s not found" % qualname)
    return target


def _compile_fallback(
    fnode: FuncNode,
    qualname: str,
    freevars: Tuple[str, ...],
    filename: str,
    flags: int,
    imports: Optional[Tuple[str, ...]],
) -> CodeType:
    """Scopes the qualified name cannot describe: one wrapper def holding every cell."""
    cells = list(freevars)
    body: List[ast.stmt] = [
        _loc(
            ast.Assign(
                targets=[_loc(ast.Name(id=v, ctx=ast.Store()), fnode)], value=_loc(ast.Constant(value=None), fnode)
            ),
            fnode,
        )
        for v in cells
    ]
    wrapper = _loc(
        _with_type_params(
            ast.FunctionDef,
            name="__lu_scope__",
            args=_empty_args(),
            body=body + [fnode],
            decorator_list=[],
            returns=None,
            type_comment=None,
        ),
        fnode,
    )
    if imports is None:
        imports = imports_of(filename)
    code = compile(
        ast.Module(body=_import_stmts(imports, fnode) + [wrapper], type_ignores=[]),
        filename,
        "exec",
        flags=flags & FUTURE_MASK,
        dont_inherit=True,
    )
    target = _find_code(code, fnode.name, None, 2)
    if target is None:  # pragma: no cover - defensive
        raise LuError("internal: compiled code for %s not found" % qualname)
    if sys.version_info >= (3, 11):
        target = target.replace(co_qualname=qualname)
    return target


def _find_code(code: CodeType, name: str, qualname: Optional[str], depth: int) -> Optional[CodeType]:
    """The code object named `name` `depth` scopes below the synthetic module's code, or the nearest below.

    By depth, not by name alone: before 3.11 code objects have no qualified
    name, and a method named like its class (unittest.mock's
    `_patch_dict._patch_dict`) would find the class body instead. Deeper
    when the compiler put a scope of its own between (3.12's type
    parameters: `def f[T]()` is inside `<generic parameters of f>`).
    """
    code_type = type(code)
    level = [code]
    for _ in range(depth):
        level = [const for c in level for const in c.co_consts if isinstance(const, code_type)]
    while level:
        for const in level:
            if const.co_name == name and (qualname is None or not PY311 or _co_qualname(const) == qualname):
                return const
        level = [const for c in level for const in c.co_consts if isinstance(const, code_type)]
    return None


def _const_key(value: object) -> Tuple[object, object]:
    if isinstance(value, tuple):
        return ("tuple", tuple(_const_key(v) for v in value))
    if isinstance(value, frozenset):
        return ("frozenset", frozenset(_const_key(v) for v in value))
    if isinstance(value, (float, complex)):
        return (type(value).__name__, repr(value))
    return (type(value), value)


def same_code(a: CodeType, b: CodeType) -> bool:
    """Do two code objects do the same thing at the same lines?"""
    if a is b:
        return True
    if (
        a.co_code != b.co_code
        or a.co_names != b.co_names
        or a.co_varnames != b.co_varnames
        or a.co_freevars != b.co_freevars
        or a.co_cellvars != b.co_cellvars
        or (a.co_flags | FLAGS_IGNORED) != (b.co_flags | FLAGS_IGNORED)
        or a.co_argcount != b.co_argcount
        or a.co_kwonlyargcount != b.co_kwonlyargcount
        or a.co_posonlyargcount != b.co_posonlyargcount
        or a.co_firstlineno != b.co_firstlineno
        or a.co_name != b.co_name
        or _linetable(a) != _linetable(b)
        or len(a.co_consts) != len(b.co_consts)
    ):
        return False
    if sys.version_info >= (3, 11) and a.co_exceptiontable != b.co_exceptiontable:
        return False
    code_type = type(a)
    for x, y in zip(a.co_consts, b.co_consts):
        if isinstance(x, code_type) or isinstance(y, code_type):
            if not (isinstance(x, code_type) and isinstance(y, code_type) and same_code(x, y)):
                return False
        elif _const_key(x) != _const_key(y):
            return False
    return True


@dataclass
class Body:
    """One body a function can run: its ast node, file, flags and plain code, and its attributes.

    `moved_from` is (previous body, line delta) when this body is only
    `previous` moved by delta lines (lu watch): line points given for
    `previous` still apply. `from_file` is the module source file this body
    was compiled from (the original's file, or a watched save of it); None for
    a patch file's body.
    """

    node: Optional[FuncNode]
    filename: str
    flags: int
    code: CodeType
    defaults: Optional[Tuple[Any, ...]] = None
    kwdefaults: Optional[Dict[str, Any]] = None
    annotations: Optional[Annotations] = None
    doc: Optional[str] = None
    label: str = ""
    lines: Optional[StatementLines] = None  # statement lines, computed on demand
    moved_from: Optional[Tuple[Body, int]] = None
    from_file: Optional[str] = None

    @classmethod
    def of_function(
        cls,
        func: FunctionType,
        code: CodeType,
        label: str,
        node: Optional[FuncNode] = None,
        from_file: Optional[str] = None,
        compiled_as: Optional[CodeType] = None,
    ) -> Body:
        """`code` as a body with func's attributes (defaults, annotations, docstring).

        Its file and compile flags are those of `compiled_as` (default: `code` itself).
        """
        origin = compiled_as or code
        return cls(
            node=node,
            filename=origin.co_filename,
            flags=origin.co_flags,
            code=code,
            defaults=func.__defaults__,
            kwdefaults=func.__kwdefaults__,
            annotations=Annotations.of(func),
            doc=func.__doc__,
            label=label,
            from_file=from_file,
        )

    def moved(self, delta: int, label: str) -> Body:
        """This body started `delta` lines further down (same code otherwise)."""
        return Body(
            node=None,
            filename=self.filename,
            flags=self.flags,
            code=shift_code(self.code, delta),
            defaults=self.defaults,
            kwdefaults=self.kwdefaults,
            annotations=self.annotations,
            doc=self.doc,
            label=label,
            moved_from=(self, delta),
            from_file=self.from_file,
        )


def shift_code(code: CodeType, delta: int) -> CodeType:
    """`code` moved by `delta` lines (and every code object nested in it).

    Line tables are relative to co_firstlineno on 3.8+, so only the first
    line numbers change; bytecode, constants and columns stay as they are.
    """
    if not delta:
        return code
    code_type = type(code)
    consts = code.co_consts
    if any(isinstance(c, code_type) for c in consts):
        consts = tuple(shift_code(c, delta) if isinstance(c, code_type) else c for c in consts)
        return code.replace(co_firstlineno=code.co_firstlineno + delta, co_consts=consts)
    return code.replace(co_firstlineno=code.co_firstlineno + delta)


def original_node(code: CodeType, qualname: str, name: str) -> FuncNode:
    """The verified ast node of `code`'s source; LuError when unavailable or stale."""
    filename = code.co_filename
    if code.co_name == "<lambda>":
        raise LuError("%s is a lambda; lu can only change functions written with def" % name)
    if not filename or ((filename.startswith("<") and filename.endswith(">")) and filename not in linecache.cache):
        raise LuError(
            "%s has no source file (it was defined in %s, e.g. by exec or at a REPL)"
            % (name, filename or "an unknown place")
        )
    node = find_def(filename, code.co_name, code.co_firstlineno)
    stamp = read_source(filename).stamp if node is not None else None
    seen = _verified.get(id(code))
    if node is not None and seen is not None and seen() is code and (seen.stamp, seen.qualname) == (stamp, qualname):
        return node
    stale = (
        "the source of %s in %s does not match the code the process runs "
        "(the file was edited since it was loaded); lu refuses to use stale source" % (name, filename)
    )
    if node is None:
        raise LuError(stale)
    try:
        compiled = compile_in_scope(node, qualname, code.co_freevars, filename, code.co_flags)
    except SyntaxError as e:
        raise LuError("%s: cannot recompile %s: %s" % (filename, name, e))
    if not same_code(compiled, code):
        raise LuError(stale)
    _verified[id(code)] = _CodeRef(code, stamp, qualname)
    return node


class _CodeRef(weakref.ref):  # type: ignore[type-arg]
    """A checked code object (weakly), the file's stamp and the qualified name then; out of _verified when it goes.

    One object per checked function: a process profiled on thousands keeps as few as it can.
    """

    __slots__ = ("key", "qualname", "stamp")
    key: int
    stamp: Any
    qualname: str

    def __new__(cls, code: CodeType, stamp: Any, qualname: str) -> _CodeRef:
        ref = super().__new__(cls, code, _forget)
        ref.key, ref.stamp, ref.qualname = id(code), stamp, qualname
        return ref

    def __init__(self, code: CodeType, stamp: Any, qualname: str) -> None:
        super().__init__(code, _forget)  # type: ignore[call-arg]


def _forget(ref: _CodeRef) -> None:
    if _verified.get(ref.key) is ref:
        del _verified[ref.key]


# Code objects whose source was checked (compiled again and compared), with the file's stamp then and
# the qualified name it was compiled as: profiling the same functions again does not check them again.
_verified: Dict[int, _CodeRef] = {}


def statement_lines(fnode: FuncNode) -> StatementLines:
    """(own, nested): statement start lines directly in fnode, and lines of nested scopes."""
    own: Set[int] = set()
    nested: Dict[int, str] = {}

    def walk(stmts: List[ast.stmt]) -> None:
        for s in stmts:
            if isinstance(s, SCOPE_STMTS):
                first = s.decorator_list[0].lineno if getattr(s, "decorator_list", None) else s.lineno
                for ln in range(first, (s.end_lineno or s.lineno) + 1):
                    nested.setdefault(ln, s.name)
                own.add(first)
                continue
            own.add(s.lineno)
            for field in stmt_list_fields(s):
                walk(field)

    walk(fnode.body)
    return own, nested


def stmt_list_fields(node: ast.AST) -> List[List[ast.stmt]]:
    """Every list of statements directly held by a (non-scope) statement node."""
    out: List[List[ast.stmt]] = []
    for name in ("body", "orelse", "finalbody"):
        value = getattr(node, name, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            out.append(value)
    for handler in getattr(node, "handlers", None) or ():
        out.append(handler.body)
    for case in getattr(node, "cases", None) or ():
        out.append(case.body)
    return out
