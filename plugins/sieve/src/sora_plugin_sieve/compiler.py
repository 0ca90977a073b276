"""From the syntax tree to a checked, executable script.

Every command and test is described by a :class:`Spec` (its extension, tagged and positional
arguments, tests and block) held in an :class:`ExtensionRegistry`; the compiler checks each node
against its spec once and turns it into an :class:`Op` whose tags are a dict and whose positional
arguments are plain values, so the interpreter never looks at syntax again. The built-in specs live in
:mod:`.commands`; a third-party extension registers its own the same way (see the README).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .grammar import Node, Number, SieveCompileError, StringList, Tag, parse


@dataclass(frozen=True, slots=True)
class TagSpec:
    """A tagged argument: its group (one tag per group), the value it takes, the extension it needs."""

    group: str
    value: str | None = None  # None, "string", "list", "number"
    ext: str | None = None


@dataclass(frozen=True, slots=True)
class Spec:
    """What a command or test accepts and how it runs.

    ``positional`` lists argument kinds in order: ``string`` (one string), ``list`` (a string list),
    ``number``; a leading ``?`` marks an argument that may be left out (only the first one).
    ``tests`` is ``none``, ``one`` or ``list``; ``block`` is ``none`` or ``required``. ``run`` is
    ``async run(interp, op)`` (tests return bool). ``check(op, script)`` adds compile-time checks.
    """

    name: str
    kind: str  # "command" or "test"
    ext: str | None
    run: Callable[..., Any]
    positional: tuple[str, ...] = ()
    tags: Mapping[str, TagSpec] = field(default_factory=dict)
    tests: str = "none"
    block: str = "none"
    check: Callable[[Op, CompileState], None] | None = None


@dataclass(frozen=True, slots=True)
class Extension:
    """A Sieve extension: its capability name, its commands and tests, the names it implies."""

    name: str
    specs: tuple[Spec, ...] = ()
    implies: tuple[str, ...] = ()
    listed: bool = True
    needs: tuple[str, ...] = ()


class ExtensionRegistry:
    """Extensions by name and specs by (kind, name); what a script may require."""

    def __init__(self, extensions: list[Extension] | tuple[Extension, ...] = ()) -> None:
        self.extensions: dict[str, Extension] = {}
        self.specs: dict[tuple[str, str], list[Spec]] = {}
        for extension in extensions:
            self.add(extension)

    def add(self, extension: Extension) -> None:
        """Register ``extension``; a name registered twice is an error."""
        if extension.name in self.extensions:
            raise ValueError(f"Sieve extension {extension.name!r} registered twice")
        self.extensions[extension.name] = extension
        for spec in extension.specs:
            self.specs.setdefault((spec.kind, spec.name), []).append(spec)

    def copy(self) -> ExtensionRegistry:
        """A registry with the same extensions (to add test-only ones)."""
        return ExtensionRegistry(list(self.extensions.values()))

    def lookup(self, kind: str, name: str, required: set[str]) -> Spec | None:
        """The spec of ``name`` available with ``required`` extensions (core specs have ext None)."""
        candidates = self.specs.get((kind, name), [])
        for spec in candidates:
            if spec.ext is None or spec.ext in required:
                return spec
        return None

    def known(self, kind: str, name: str) -> Spec | None:
        """Any spec of ``name``, whatever it needs (for a 'require it' error)."""
        candidates = self.specs.get((kind, name), [])
        return candidates[0] if candidates else None


@dataclass(slots=True)
class Op:
    """A checked command or test, ready to run."""

    spec: Spec
    name: str
    line: int
    column: int
    tags: dict[str, Any]
    args: list[Any]
    tests: list[Op]
    block: list[Op] | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Script:
    """A compiled script: its commands, the extensions it requires and its compile warnings."""

    commands: list[Op]
    requires: frozenset[str]
    warnings: list[str]
    source_size: int


@dataclass(slots=True)
class CompileState:
    """What the compiler knows while it walks one script."""

    registry: ExtensionRegistry
    required: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    allowed: set[str] | None = None
    errors: list[SieveCompileError] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)

    def error(self, message: str, line: int, column: int) -> None:
        """Record an error and go on checking (every error of a script is reported, like Pigeonhole)."""
        self.errors.append(SieveCompileError(message, line, column))


_HEX = re.compile(r"\$\{hex:([\s0-9a-fA-F]*)\}", re.IGNORECASE)
_UNI = re.compile(r"\$\{unicode:([\s0-9a-fA-F]*)\}", re.IGNORECASE)


def decode_encoded_characters(value: str) -> str:
    """RFC 5228 §2.4.2.4: ``${hex:..}`` octets (as UTF-8) and ``${unicode:..}`` code points."""
    if "${" not in value:
        return value

    def hex_repl(match: re.Match[str]) -> str:
        items = match.group(1).split()
        octets = [int(item, 16) for item in items]
        if not octets or any(octet > 255 for octet in octets):
            return match.group(0)
        # invalid UTF-8 stays visible as surrogates, so fileinto can refuse such a name
        return bytes(octets).decode("utf-8", "surrogateescape")

    def uni_repl(match: re.Match[str]) -> str:
        items = match.group(1).split()
        if not items:
            return match.group(0)
        chars = []
        for item in items:
            code = int(item, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise _BadUnicode(item)
            chars.append(chr(code))
        return "".join(chars)

    value = _HEX.sub(hex_repl, value)
    return _UNI.sub(uni_repl, value)


class _BadUnicode(Exception):
    pass


class _UnknownTag(SieveCompileError):
    """An unknown tag: the node and its parent are not checked further."""


class _Reported(SieveCompileError):
    """A child's error already recorded; stop checking this node."""

    def __init__(self) -> None:
        super().__init__("", 0, 0)


_KIND_NAMES = {"string": "a string", "list": "a string list", "number": "a number"}


def _matches_kind(kind: str, arg: object) -> bool:
    if kind == "number":
        return isinstance(arg, Number)
    if kind == "string":
        return isinstance(arg, StringList) and arg.single
    return isinstance(arg, StringList)


def _value(arg: object) -> Any:
    if isinstance(arg, Number):
        return arg.value
    if isinstance(arg, StringList):
        return arg.values[0] if arg.single else list(arg.values)
    return None


def _arg_value(kind: str, arg: object) -> Any:
    if kind == "number":
        assert isinstance(arg, Number)
        return arg.value
    assert isinstance(arg, StringList)
    return arg.values[0] if kind == "string" else list(arg.values)


class Compiler:
    """Checks a parsed script against the registry and builds :class:`Op` trees."""

    def __init__(self, registry: ExtensionRegistry, *, allowed: set[str] | None = None,
                 options: dict[str, str] | None = None,
                 loader: Callable[[str, str], str | None] | None = None) -> None:
        self.registry = registry
        self.allowed = allowed
        self.options = options or {}
        self.loader = loader
        """``loader(location, name)`` gives an included script's source (None: missing); with it,
        ``include`` is resolved at compile time like Pigeonhole (missing, circular, limits)."""
        self.include_stack: list[tuple[str, str]] = []
        self.include_count = [0]

    def compile(self, source: str) -> Script:
        """Parse and check ``source``; raises :class:`SieveCompileError`."""
        try:
            nodes = parse(source)
        except SieveCompileError as exc:
            exc.errors = [exc]  # type: ignore[attr-defined]
            raise
        state = CompileState(self.registry, allowed=self.allowed, options=dict(self.options))
        state.data["compiler"] = self
        commands = self._block(nodes, state, top=True, parents=())
        for name in sorted(state.required):
            extension = self.registry.extensions.get(name)
            for needed in extension.needs if extension is not None else ():
                if needed not in state.required:
                    state.error(f'extension "{name}" cannot be used without "{needed}"', 1, 1)
        if state.errors:
            first = state.errors[0]
            error = SieveCompileError(first.message, first.line, first.column)
            error.errors = list(state.errors)  # type: ignore[attr-defined]
            error.warnings = list(state.warnings)  # type: ignore[attr-defined]
            raise error
        return Script(commands, frozenset(state.required), state.warnings, len(source))

    def _require(self, node: Node, state: CompileState) -> None:
        if node.tests or len(node.arguments) != 1 or not isinstance(node.arguments[0], StringList):
            raise SieveCompileError('require takes one string list', node.line, node.column)
        for name in node.arguments[0].values:
            extension = self.registry.extensions.get(name)
            if extension is None or (state.allowed is not None and name not in state.allowed):
                state.error(f'require: extension "{name}" is not supported', node.line, node.column)
                continue
            state.required.add(name)
            state.required.update(extension.implies)

    def _block(self, nodes: list[Node], state: CompileState, *, top: bool, parents: tuple[str, ...]) -> list[Op]:
        ops: list[Op] = []
        requires_allowed = top
        previous: str | None = None
        for node in nodes:
            try:
                if node.name == "require":
                    previous = "require"
                    if not requires_allowed:
                        raise SieveCompileError("require must come before any other command", node.line, node.column)
                    if node.block is not None:
                        raise SieveCompileError("require takes no block", node.line, node.column)
                    self._require(node, state)
                    continue
                requires_allowed = False
                if node.name in ("elsif", "else") and previous not in ("if", "elsif"):
                    previous = node.name
                    raise SieveCompileError(f'{node.name} without a preceding if', node.line, node.column)
                previous = node.name
                op = self._node(node, "command", state, parents)
                ops.append(op)
            except _Reported:
                pass
            except SieveCompileError as exc:
                state.errors.append(exc)
        return ops

    _REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*|[0-9]+)\}")

    def _check_references(self, value: str, arg: StringList, state: CompileState) -> None:
        """``${ns.name}`` needs a known namespace, ``${N}`` at most 32 (Pigeonhole's limits)."""
        for match in self._REF.finditer(value):
            name = match.group(1)
            if name.isdigit():
                if int(name) > 32:
                    state.error(f"match variable index {name} is over the limit 32", arg.line, arg.column)
            elif "." in name:
                namespace = name.split(".", 1)[0].lower()
                if not (namespace == "global" and "include" in state.required):
                    state.error(f'unknown variable namespace "{namespace}"', arg.line, arg.column)

    IHAVE_EXCLUDED = frozenset({"encoded-character", "variables"})

    def _guarded_block(self, node: Node, state: CompileState, parents: tuple[str, ...]) -> list[Op]:
        """A block; under ``if ihave [...]`` (RFC 5463) compiled with those extensions, or left out
        (it can never run) when one of them is not available."""
        assert node.block is not None
        test = node.tests[0] if node.name in ("if", "elsif") and len(node.tests) == 1 else None
        if test is None or test.name != "ihave" or "ihave" not in state.required or not test.arguments:
            return self._block(node.block, state, top=False, parents=(*parents, node.name))
        names_arg = test.arguments[-1]
        names = names_arg.values if isinstance(names_arg, StringList) else []
        available = {n for n in names if n in self.registry.extensions and n not in self.IHAVE_EXCLUDED
                     and (state.allowed is None or n in state.allowed)}
        if len(available) < len(names):
            return []
        saved = set(state.required)
        for name in available:
            state.required.add(name)
            state.required.update(self.registry.extensions[name].implies)
        try:
            return self._block(node.block, state, top=False, parents=(*parents, node.name))
        finally:
            state.required.clear()
            state.required.update(saved)

    def include(self, location: str, name: str, optional: bool, line: int, column: int,
                state: CompileState) -> None:
        """Compile an included script now (with a loader): its errors and one of ours on failure."""
        if self.loader is None:
            return
        key = (location, name.removesuffix(".sieve"))
        if key in self.include_stack:
            state.error(f'include: circular include of script "{name}"', line, column)
            return
        depth = int(self.options.get("sieve_include_max_nesting_depth", "10"))
        if len(self.include_stack) >= depth:
            state.error(f"include: nesting depth exceeds the limit {depth}", line, column)
            return
        limit = int(self.options.get("sieve_include_max_includes", "255"))
        self.include_count[0] += 1
        if self.include_count[0] > limit:
            state.error(f"include: the number of included scripts exceeds the limit {limit}", line, column)
            return
        source = self.loader(location, name)
        if source is None:
            if not optional:
                state.error(f'include: script "{name}" does not exist', line, column)
            return
        nested = Compiler(self.registry, allowed=self.allowed, options=self.options, loader=self.loader)
        nested.include_stack = [*self.include_stack, key]
        nested.include_count = self.include_count
        try:
            nested.compile(source)
        except SieveCompileError as exc:
            state.errors.extend(getattr(exc, "errors", [exc]))
            state.error(f'include: failed to compile included script "{name}"', line, column)

    def _node(self, node: Node, kind: str, state: CompileState, parents: tuple[str, ...]) -> Op:
        if state.required & {"encoded-character"}:
            for arg in node.arguments:
                if isinstance(arg, StringList):
                    try:
                        arg.values = [decode_encoded_characters(v) for v in arg.values]
                    except _BadUnicode as exc:
                        raise SieveCompileError(f"invalid unicode character {exc.args[0]!r} in encoded-character",
                                                arg.line, arg.column) from None
        if "variables" in state.required:
            for arg in node.arguments:
                if isinstance(arg, StringList):
                    for value in arg.values:
                        if "${" in value:
                            self._check_references(value, arg, state)
        spec = self.registry.lookup(kind, node.name, state.required)
        if spec is None:
            known = self.registry.known(kind, node.name)
            if known is not None and known.ext:
                raise SieveCompileError(f'{kind} "{node.name}" needs require "{known.ext}"', node.line, node.column)
            if kind == "command" and self.registry.known("test", node.name):
                raise SieveCompileError(f'test "{node.name}" used as a command', node.line, node.column)
            if kind == "test" and self.registry.known("command", node.name):
                raise SieveCompileError(f'command "{node.name}" used as a test', node.line, node.column)
            raise SieveCompileError(f'unknown {kind} "{node.name}"', node.line, node.column)
        tags: dict[str, Any] = {}
        groups: dict[str, str] = {}
        positional: list[Any] = []
        args = node.arguments
        before = len(state.errors)
        tag_error = False
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if not isinstance(arg, Tag):
                positional.append(arg)
                continue
            if positional:
                state.error(f'{node.name}: tag ":{arg.name}" after positional arguments', arg.line, arg.column)
                continue
            tag = spec.tags.get(arg.name)
            if tag is None or (tag.ext is not None and tag.ext not in state.required):
                hint = f' (needs require "{tag.ext}")' if tag is not None and tag.ext else ""
                # like Pigeonhole, an unknown tag ends the checks of this node and of its parent
                raise _UnknownTag(f'{node.name}: unknown tag ":{arg.name}"{hint}', arg.line, arg.column)
            if tag.group in groups:
                other = groups[tag.group]
                what = "twice" if other == arg.name else f'together with ":{other}"'
                state.error(f'{node.name}: tag ":{arg.name}" given {what}', arg.line, arg.column)
            groups[tag.group] = arg.name
            if tag.value is None:
                tags[arg.name] = True
            elif i >= len(args) or not _matches_kind(tag.value, args[i]):
                state.error(f'{node.name}: tag ":{arg.name}" needs {_KIND_NAMES[tag.value]}', arg.line, arg.column)
                tag_error = True
                break
            else:
                tags[arg.name] = _arg_value(tag.value, args[i])
                i += 1
        kinds = list(spec.positional)
        if kinds and kinds[0].startswith("?"):
            if len(positional) < len(kinds):
                kinds = kinds[1:]
            else:
                kinds[0] = kinds[0][1:]
        if len(kinds) > 1 and kinds[-1].startswith("?"):
            if len(positional) < len(kinds):
                kinds = kinds[:-1]
            else:
                kinds[-1] = kinds[-1][1:]
        values = []
        if tag_error:
            pass
        elif len(positional) != len(kinds):
            state.error(f'{node.name}: expected {len(kinds)} positional argument(s), found {len(positional)}',
                        node.line, node.column)
        else:
            for arg, want in zip(positional, kinds, strict=True):
                if not _matches_kind(want, arg):
                    state.error(f'{node.name}: expected {_KIND_NAMES[want]}', arg.line, arg.column)
                else:
                    values.append(_arg_value(want, arg))
        if spec.tests == "none" and node.tests:
            state.error(f'{node.name} takes no test', node.line, node.column)
            node.tests = []
        elif spec.tests == "one" and (len(node.tests) != 1 or node.test_list):
            state.error(f'{node.name} needs one test', node.line, node.column)
        elif spec.tests == "list" and not node.test_list:
            state.error(f'{node.name} needs a test list', node.line, node.column)
        tests = []
        fatal = False
        for test in node.tests:
            try:
                tests.append(self._node(test, "test", state, parents))
            except _UnknownTag as exc:
                state.errors.append(exc)
                fatal = True
            except _Reported:
                fatal = True
            except SieveCompileError as exc:
                state.errors.append(exc)
        if fatal:
            raise _Reported
        block: list[Op] | None = None
        if kind == "command":
            if spec.block == "required" and node.block is None:
                state.error(f'{node.name} needs a block', node.line, node.column)
            if spec.block == "none" and node.block is not None:
                state.error(f'{node.name} takes no block', node.line, node.column)
            if node.block is not None:
                names = state.data.setdefault("loop_names", [])
                names.append(tags.get("name", ""))  # foreverypart :name, for break :name
                try:
                    block = self._guarded_block(node, state, parents)
                finally:
                    names.pop()
        op = Op(spec, node.name, node.line, node.column, tags, values, tests, block)
        op.data["parents"] = parents
        if spec.check is not None and len(state.errors) == before:
            try:
                spec.check(op, state)
            except SieveCompileError as exc:
                state.errors.append(exc)
        return op
