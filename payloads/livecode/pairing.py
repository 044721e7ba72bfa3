"""Which def of the new source is which def of the base, and which statements are new.

Defs of the same qualified name (`@overload` stubs before the real function,
`@singledispatch` implementations all named `_`, a property's getter and
setter) are paired by what they say first, then by their decorators and
signature, then by their body, and only then in file order: an edit of one
of them pairs every unchanged one with itself, and the edited one with the
def it was.  Pairing by position alone gave the real function a stub's
body when a stub above it was removed or edited.

Statements are compared per scope as multisets of their AST dumps: a
statement is new when the new source has more copies of it in that scope
than the base had, so a statement moved from the module into a class is new
in the class.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

from .model import Def, DefKey, DefShape, FileModel, Shape, Statement


@dataclass
class Pairing:
    pairs: List[Tuple[DefKey, Def]] = field(default_factory=list)  # (base def, its def in the new source)
    added: List[Def] = field(default_factory=list)  # defs of the new source with no base def
    removed: List[DefKey] = field(default_factory=list)  # base defs with none in the new source
    new_statements: List[Statement] = field(default_factory=list)  # in file order
    gone_statements: List[Tuple[str, str]] = field(default_factory=list)  # (scope, dump) the new source dropped


def _same_text(old: DefShape, new: Def) -> bool:
    return old.digest == new.digest


def _same_signature(old: DefShape, new: Def) -> bool:
    return old.signature == new.signature


def _same_body(old: DefShape, new: Def) -> bool:
    return old.body == new.body


def _pair_by(
    base: Shape, olds: List[DefKey], news: List[Def], same: Callable[[DefShape, Def], bool], out: Pairing
) -> List[Def]:
    """Pair each new def with the first old one that is `same` (taken out of olds); the rest is left."""
    left: List[Def] = []
    for d in news:
        found = next((k for k in olds if same(base.defs[k], d)), None)
        if found is None:
            left.append(d)
        else:
            olds.remove(found)
            out.pairs.append((found, d))
    return left


def pair(base: Shape, new: FileModel) -> Pairing:
    out = Pairing()
    new_by_name: Dict[str, List[Def]] = collections.OrderedDict()
    for d in new.defs:
        new_by_name.setdefault(d.qualname, []).append(d)
    for qualname, news in new_by_name.items():
        olds = list(base.names.get(qualname, ()))
        left = news
        # the same text, then the same decorators and signature (the body was edited), then the same
        # body (the signature was), then file order
        for same in (_same_text, _same_signature, _same_body):
            left = _pair_by(base, olds, left, same, out)
        for d in left:
            if olds:
                out.pairs.append((olds.pop(0), d))
            else:
                out.added.append(d)
        out.removed.extend(olds)
    for qualname, olds in base.names.items():
        if qualname not in new_by_name:
            out.removed.extend(olds)
    seen: Dict[str, collections.Counter[str]] = {}
    for s in new.statements:
        counter = seen.setdefault(s.scope, collections.Counter())
        counter[s.dump] += 1
        if counter[s.dump] > base.statements.get(s.scope, collections.Counter()).get(s.dump, 0):
            out.new_statements.append(s)
    for scope, counter in base.statements.items():
        now = seen.get(scope, collections.Counter())
        out.gone_statements += [(scope, dump) for dump, count in counter.items() if count > now.get(dump, 0)]
    return out
