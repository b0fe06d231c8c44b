"""griffe extension: every backticked mention of a documented object in a docstring links to its entry.

The docstrings stay plain Markdown (`ShiftConsistency`, `compute`, `augshift.protocols`), as `help()` shows them;
on the site each mention that names a documented object becomes a cross-reference (`[`ShiftConsistency`][augshift.ShiftConsistency]`),
resolved by mkdocstrings' autorefs. A name is looked up in the scope of the docstring's object: a member of its class
(`compute` in `ShiftConsistency`'s docstrings), a public name of any documented package (`ShiftConsistency`,
`AugShiftTrainer`), a public name followed by a member (`ShiftConsistency.update`), or a full path (`augshift.shift`,
`augshift.protocols`, or where an object is defined, `augshift.metrics.ShiftConsistency`). Documented objects are
those the API pages (`docs/api/*.md`, their `::: path` lines) show: each module's `__all__`, the classes a page
names itself (the types the API returns), and the public members of these classes that have a docstring (the pages
show no other). Code blocks and examples (`>>>`) are left as they are.
"""
from __future__ import annotations

import re
from pathlib import Path

import griffe

PAGES = Path(__file__).parent / "api"
MENTION = re.compile(r"(?<![`\[\w])`(?P<name>[A-Za-z_][\w.]*)(?P<call>\(\))?`(?![`\]\w])")
FENCE = re.compile(r"^\s*(```|~~~)")


def documented_paths() -> list[str]:
    """What the API pages document (`::: augshift.protocols`, `::: augshift.shifts.ShiftParams`), in page order."""
    return [line.split(":::", 1)[1].strip() for page in sorted(PAGES.glob("*.md"))
            for line in page.read_text().splitlines() if line.startswith(":::")]


def target_of(obj: griffe.Object | griffe.Alias, collection: griffe.ModulesCollection) -> griffe.Object | None:
    """The object an alias (an import) stands for, looked up in the loaded modules; None where it is not loaded."""
    seen = 0
    while isinstance(obj, griffe.Alias) and seen < 10:
        try:
            obj = collection.get_member(obj.target_path)
        except (KeyError, ValueError, AttributeError):
            return None
        seen += 1
    return None if isinstance(obj, griffe.Alias) else obj


class Crossrefs(griffe.Extension):
    """Rewrites the docstrings of `augshift` (the integrations mounted under it) once the package is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        if pkg.name != "augshift":
            return
        self.documented: dict[str, str] = {}  # any path a mention may use -> the documented identifier
        self.short: dict[str, set[str]] = {}  # a public name -> the documented identifiers it may mean
        self.canonical: dict[str, str] = {}  # where an object is defined -> its documented identifier
        for path in documented_paths():
            page_object = pkg if path == "augshift" else pkg.get_member(path.removeprefix("augshift."))
            if page_object.is_class:  # a type the API returns, documented where it is defined
                self.add_with_members(path, page_object, page_object.name)
                continue
            self.documented[path] = path
            for name in page_object.exports or ():
                obj = target_of(page_object.members[name], loader.modules_collection) \
                    if name in page_object.members else None
                if obj is not None:
                    self.add_with_members(f"{path}.{name}", obj, name)
        for obj in walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = self.link(obj.docstring.value, obj)

    def add_with_members(self, identifier: str, obj: griffe.Object, public_name: str) -> None:
        """`obj` documented as `identifier`, and a class's public members that have a docstring."""
        self.add(identifier, obj, public_name)
        if obj.is_class:
            for member_name, member in obj.members.items():
                if not member_name.startswith("_") and not member.is_alias and member.docstring:
                    self.add(f"{identifier}.{member_name}", member)

    def add(self, identifier: str, obj: griffe.Object, public_name: str | None = None) -> None:
        self.documented[identifier] = identifier
        self.canonical[obj.path] = identifier
        self.documented.setdefault(obj.path, identifier)
        if public_name:
            self.short.setdefault(public_name, set()).add(identifier)

    def resolve(self, name: str, scope: griffe.Object) -> str | None:
        """The documented identifier `name` means where `scope`'s docstring says it, or None (a parameter or an
        attribute of the scope is itself, never an object of the same name elsewhere: `shift` in `TrainConfig`)."""
        owner = scope if scope.is_class else scope.parent if scope.parent is not None and scope.parent.is_class else None
        if owner is not None and owner.path in self.canonical:
            found = self.documented.get(f"{self.canonical[owner.path]}.{name}")
            if found:
                return found
        if name in local_names(scope, owner):
            return None
        if name in self.documented:
            return self.documented[name]
        head, _, rest = name.partition(".")
        meant = self.short.get(head, set())
        if len(meant) == 1:
            return self.documented.get(f"{next(iter(meant))}.{rest}" if rest else next(iter(meant)))
        return None

    def link(self, text: str, scope: griffe.Object) -> str:
        """`text` with each mention of a documented object a cross-reference, code and examples untouched."""
        out, in_fence, in_example = [], False, False
        for line in text.splitlines(keepends=True):
            stripped = line.strip()
            if FENCE.match(line):
                in_fence = not in_fence
            elif not in_fence:
                if stripped.startswith(">>>"):
                    in_example = True
                elif not stripped:
                    in_example = False
            if in_fence or in_example or FENCE.match(line):
                out.append(line)
                continue
            out.append(MENTION.sub(lambda match: self.reference(match, scope), line))
        return "".join(out)

    def reference(self, match: re.Match, scope: griffe.Object) -> str:
        identifier = self.resolve(match["name"], scope)
        return f"[{match[0]}][{identifier}]" if identifier else match[0]


def local_names(scope: griffe.Object, owner: griffe.Object | None) -> set[str]:
    """The parameters of `scope` (a function, or a class's constructor) and the members of its class."""
    names = set(owner.members) if owner is not None else set()
    for function in (scope, scope.members.get("__init__") if scope.is_class else None):
        if function is not None and function.is_function:
            names |= {parameter.name for parameter in function.parameters}
    return names


def walk(obj: griffe.Object):
    """`obj` and every object defined under it (imports left out)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from walk(member)
