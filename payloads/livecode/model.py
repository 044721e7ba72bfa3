"""What a version of a source file defines and does, as the watcher compares two versions.

A `FileModel` is one source text parsed and compiled once, as an import
would compile it: every def and class statement (however many share a
name), the code object the compiler made for each def, and every module-
and class-level statement that is not a definition, with the scope it runs
in.  A `Shape` is the small part of a model that is kept between saves (the
base a later save is compared with): no syntax tree survives a save.

Definitions are keyed by (qualified name, occurrence): the third def named
`_` in a file is ("_", 2).  Which running function is which definition is
decided by the code it runs (its code object's name and first line, see
`Shape.by_code`), never by the name it is reachable under.
"""

from __future__ import annotations

import ast
import collections
import os
import re
import types
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Set, Tuple, Union

from ..engine.source import FUNC_NODES, FUTURE_MASK, stmt_list_fields
from ..errors import LuError
from .digest import text_digest

FuncNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]
DefNode = Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef]
DefKey = Tuple[str, int]  # (qualified name, occurrence among the defs of that name in the file)
CodeKey = Tuple[str, int]  # (co_name, co_firstlineno) of a def's code object
# a def's default value, as defaults_key keys it: None (no default), (type, value) of a constant, or an AST dump
DefaultKey = Union[None, Tuple[type, object], str]

MODULE = ""  # the scope of module-level statements (a class's scope is its qualified name)
MAIN_GUARD = 'it is under `if __name__ == "__main__"`'
BESIDE_DEFS = "it is part of a statement that also holds defs"


@dataclass(frozen=True)
class Def:
    """A def or class statement of a source text."""

    key: DefKey
    node: DefNode
    first: int  # its first line (of its first decorator, if any): the line its code object starts on
    parent: Optional[str]  # qualname of the enclosing class, MODULE for the module, None inside a function
    digest: str  # what it says, decorators left out: two defs with the same digest are the same def moved
    signature: str  # digest of its decorators, arguments, return annotation (a class's: decorators, bases)
    body: str  # digest of its body alone
    head: Tuple[str, ...]  # its decorators, as AST dumps
    bases: Tuple[str, ...]  # a class's bases and keywords, as AST dumps (() for a function)

    @property
    def qualname(self) -> str:
        return self.key[0]

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def is_class(self) -> bool:
        return isinstance(self.node, ast.ClassDef)

    @property
    def code_key(self) -> CodeKey:
        return (self.node.name, self.first)

    def display(self, modname: str) -> str:
        """`mod.Class.meth`, and which of several defs of that name it is."""
        name = "%s.%s" % (modname, self.qualname)
        return name if self.key[1] == 0 else "%s (line %d)" % (name, self.node.lineno)


@dataclass(frozen=True)
class Statement:
    """A module- or class-level statement other than a def or class statement."""

    scope: str  # MODULE, or the qualified name of the class whose body it is in
    dump: str  # what a later version is compared with
    node: ast.stmt
    held: str  # why it is never re-run on its own ("" when it can be): it sits in a main guard, or beside defs


@dataclass(frozen=True)
class DefShape:
    """What is kept of a def between saves."""

    digest: str
    signature: str
    body: str
    head: Tuple[str, ...]
    bases: Tuple[str, ...]
    defaults: Tuple[DefaultKey, ...]
    parent: Optional[str]
    line: int  # its def line
    is_class: bool


@dataclass(frozen=True)
class GoneStatement:
    """What is kept of a statement to report it when a later save no longer has it."""

    text: str  # its first line, shortened
    line: int
    binds: Tuple[str, ...]  # the names it binds at its level
    held: bool  # it was never run alone (a main block, beside defs): nothing to say when it goes


@dataclass(frozen=True)
class Shape:
    """What the process was last given for a file, kept to compare the next save with."""

    defs: Dict[DefKey, DefShape]
    by_code: Dict[CodeKey, DefKey]  # the code object a def compiled to -> the def
    statements: Dict[str, collections.Counter[str]]  # scope -> statement dumps (a multiset)
    names: Dict[str, List[DefKey]]  # qualified name -> its defs in file order
    gone: Dict[Tuple[str, str], GoneStatement]  # (scope, dump) -> what to say if a save drops it

    def def_of(self, code: types.CodeType) -> Optional[DefKey]:
        """The def a code object of this file was compiled from, or None."""
        key = self.by_code.get((code.co_name, code.co_firstlineno))
        if key is not None:
            return key
        return self.unique(getattr(code, "co_qualname", None))  # 3.11+

    def unique(self, qualname: Optional[str]) -> Optional[DefKey]:
        """The def of that qualified name if the file has exactly one (the process runs an older text
        than the base: its lines say nothing, its name is the best guess)."""
        found = self.names.get(qualname) if qualname else None
        return found[0] if found and len(found) == 1 and not self.defs[found[0]].is_class else None


def first_line(node: DefNode) -> int:
    return node.decorator_list[0].lineno if node.decorator_list else node.lineno


def head_of(node: DefNode) -> Tuple[str, ...]:
    return tuple(ast.dump(d) for d in node.decorator_list)


def bases_of(node: DefNode) -> Tuple[str, ...]:
    if not isinstance(node, ast.ClassDef):
        return ()
    return tuple(ast.dump(b) for b in node.bases) + tuple(ast.dump(k) for k in node.keywords)


class _Digests(NamedTuple):
    whole: str  # the def without its decorators (ast.dump leaves line numbers out)
    signature: str  # its decorators, arguments and return annotation, or a class's decorators and bases
    body: str  # its body


_sha1 = text_digest


def digests_of(node: DefNode) -> _Digests:
    body = "".join(ast.dump(stmt) for stmt in node.body)
    if isinstance(node, ast.ClassDef):
        outside = [node.name] + [ast.dump(x) for x in list(node.bases) + list(node.keywords)]
    else:
        outside = [node.name, ast.dump(node.args), ast.dump(node.returns) if node.returns else ""]
    head = [ast.dump(d) for d in node.decorator_list]
    return _Digests(
        whole=_sha1("\0".join(outside + [body])), signature=_sha1("\0".join(outside + head)), body=_sha1(body)
    )


def defaults_key(node: FuncNode) -> Tuple[DefaultKey, ...]:
    """A key for a def's default values (constants are cheap, other expressions dumped)."""
    a = node.args
    key: List[DefaultKey] = []
    for d in list(a.defaults) + list(a.kw_defaults):
        if d is None:
            key.append(None)
        elif type(d) is ast.Constant:
            key.append((type(d.value), d.value))
        else:
            key.append(ast.dump(d))
    return tuple(key)


def _is_main_guard(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":` (either way round)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare) or len(node.test.ops) != 1:
        return False
    sides = [node.test.left] + list(node.test.comparators)
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    texts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return bool(names and texts and isinstance(node.test.ops[0], ast.Eq))


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _holds_defs(node: ast.stmt) -> bool:
    return any(isinstance(n, FUNC_NODES + (ast.ClassDef,)) for n in ast.walk(node))


class _Walker:
    """One pass over a tree: defs in file order, and the statements of each scope."""

    def __init__(self) -> None:
        self.defs: List[Def] = []
        self.statements: List[Statement] = []
        self._seen: collections.Counter[str] = collections.Counter()

    def walk(self, stmts: List[ast.stmt], prefix: str, parent: Optional[str], scope: Optional[str], held: str) -> None:
        for node in stmts:
            if isinstance(node, FUNC_NODES + (ast.ClassDef,)):
                qual = prefix + node.name
                key = (qual, self._seen[qual])
                self._seen[qual] += 1
                digests = digests_of(node)
                self.defs.append(
                    Def(
                        key,
                        node,
                        first_line(node),
                        parent,
                        digests.whole,
                        digests.signature,
                        digests.body,
                        head_of(node),
                        bases_of(node),
                    )
                )
                if isinstance(node, ast.ClassDef):
                    inside = qual if parent is not None else None
                    self.walk(node.body, qual + ".", inside, qual if scope is not None else None, held)
                else:
                    self.walk(node.body, qual + ".<locals>.", None, None, held)
                continue
            if scope is None:  # statements inside a function run with it
                for inner in stmt_list_fields(node):
                    self.walk(inner, prefix, parent, None, held)
                continue
            if _is_docstring(node):
                continue
            why = held or (MAIN_GUARD if _is_main_guard(node) else "")
            if _holds_defs(node):
                # a compound statement holding defs: its defs are matched one by one, the rest compared
                # without them (and not run alone: out of their statement they would mean something else)
                for inner in stmt_list_fields(node):
                    self.walk(inner, prefix, parent, scope, why or BESIDE_DEFS)
                continue
            self.statements.append(Statement(scope, ast.dump(node), node, why))


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def bound_names(stmts: List[ast.stmt]) -> Set[str]:
    """The names statements bind at their own level (targets, imports, defs, classes)."""
    out: Set[str] = set()
    for node in stmts:
        for sub in [node] if isinstance(node, _DEFS) else ast.walk(node):
            if isinstance(sub, _DEFS):
                out.add(sub.name)
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
                out.add(sub.id)
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                for alias in sub.names:
                    out.add((alias.asname or alias.name).split(".")[0])
    return out


CodeMap = Dict[CodeKey, List[types.CodeType]]
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what ends a line for the tokenizer (not str.splitlines's \f, \x1c...)


def _code_map(code: types.CodeType, out: Optional[CodeMap] = None) -> CodeMap:
    """(co_name, co_firstlineno) -> [code] for every code object inside `code`."""
    if out is None:
        out = {}
    code_type = type(code)
    for const in code.co_consts:
        if isinstance(const, code_type):
            out.setdefault((const.co_name, const.co_firstlineno), []).append(const)
            _code_map(const, out)
    return out


class FileModel:
    """A source text parsed and compiled once, as an import would compile it."""

    def __init__(self, filename: str, source: str) -> None:
        short = os.path.basename(filename)
        try:
            self.tree = ast.parse(source, filename)
            self.module_code = compile(self.tree, filename, "exec", dont_inherit=True)
        except SyntaxError as e:
            raise LuError("%s:%s: SyntaxError: %s; nothing applied" % (short, e.lineno, e.msg))
        except ValueError as e:
            raise LuError("%s: %s; nothing applied" % (short, e))
        self.filename = filename
        self.source = source
        walker = _Walker()
        walker.walk(self.tree.body, "", MODULE, MODULE, "")
        self.defs: List[Def] = walker.defs
        self.statements: List[Statement] = walker.statements
        self.codes = _code_map(self.module_code)
        self.future_flags = self.module_code.co_flags & FUTURE_MASK
        self.by_key: Dict[DefKey, Def] = {d.key: d for d in self.defs}
        self._lines: Optional[List[str]] = None
        self._shape: Optional[Shape] = None

    def code_of(self, entry: Def) -> Optional[types.CodeType]:
        """The code object the compiler made for a def (None for a class, or if it made none)."""
        if entry.is_class:
            return None
        found = self.codes.get(entry.code_key)
        return found[-1] if found else None

    def compile_alone(self, node: ast.stmt) -> types.CodeType:
        """One statement of this text compiled to run on its own, under the text's `from __future__`
        imports (an annotation of a new class attribute stays a string if the module says so)."""
        module = ast.Module(body=[node], type_ignores=[])
        return compile(module, self.filename, "exec", flags=self.future_flags, dont_inherit=True)

    def text_of(self, node: ast.AST) -> str:
        """The first line of a statement's text, shortened for a one-line report.

        What ast.get_source_segment's first line is, from the text split once
        (get_source_segment splits the whole text again on every call: a
        report of every statement of a long module was quadratic).
        """
        if self._lines is None:
            self._lines = _LINE_BREAK.split(self.source)
        number = getattr(node, "lineno", 0)
        first = ""
        if 0 < number <= len(self._lines):
            raw = self._lines[number - 1].encode("utf-8", "surrogatepass")
            start = getattr(node, "col_offset", 0) or 0
            end = getattr(node, "end_col_offset", None) if getattr(node, "end_lineno", None) == number else None
            first = raw[start:end].decode("utf-8", "replace").strip()
        first = first or type(node).__name__
        return first if len(first) <= 60 else first[:57] + "..."

    def shape(self) -> Shape:
        """What is kept of this text once the process runs it (made once: the model is cached by content)."""
        if self._shape is None:
            self._shape = self._make_shape()
        return self._shape

    def _make_shape(self) -> Shape:
        defs: Dict[DefKey, DefShape] = {}
        by_code: Dict[CodeKey, DefKey] = {}
        names: Dict[str, List[DefKey]] = {}
        for d in self.defs:
            defaults = () if d.is_class else defaults_key(d.node)  # type: ignore[arg-type]
            defs[d.key] = DefShape(
                d.digest, d.signature, d.body, d.head, d.bases, defaults, d.parent, d.node.lineno, d.is_class
            )
            names.setdefault(d.qualname, []).append(d.key)
            if not d.is_class:
                by_code[d.code_key] = d.key
        statements: Dict[str, collections.Counter[str]] = {}
        gone: Dict[Tuple[str, str], GoneStatement] = {}
        for s in self.statements:
            statements.setdefault(s.scope, collections.Counter())[s.dump] += 1
            gone[(s.scope, s.dump)] = GoneStatement(
                self.text_of(s.node), s.node.lineno, tuple(sorted(bound_names([s.node]))), bool(s.held)
            )
        return Shape(defs=defs, by_code=by_code, statements=statements, names=names, gone=gone)
