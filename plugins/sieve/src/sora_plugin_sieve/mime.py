"""RFC 5703: ``foreverypart``/``break``, ``:mime``/``:anychild`` on header/address/exists, ``extracttext``.

``foreverypart`` walks the message's MIME parts depth first (the outermost loop starts with the
message itself; a nested loop walks the parts inside the current one); tests with ``:mime`` look at the
current part's header, ``:anychild`` also at every part inside it.
"""

from __future__ import annotations

from typing import Any

from .compiler import CompileState, Extension, Op, Spec, TagSpec
from .grammar import SieveCompileError
from .interpreter import BreakLoop, Interpreter, SieveRuntimeError
from .message import Part

MAX_NESTING = 4


def _descendants(part: Part) -> list[Part]:
    out: list[Part] = []

    def walk(p: Part) -> None:
        for child in p.children:
            out.append(child)
            walk(child)

    walk(part)
    return out


async def run_foreverypart(interp: Interpreter, op: Op) -> None:
    """``foreverypart [:name n] { ... }``."""
    name = op.tags.get("name", "")
    if len(interp.loop_names) >= MAX_NESTING:  # an included script can nest deeper than it compiled
        raise SieveRuntimeError(f"foreverypart: nested more than {MAX_NESTING} deep", op.line)
    if interp.part_stack:  # a nested loop walks the parts inside the current one
        parts = _descendants(interp.part_stack[-1])
    else:  # the outermost loop starts with the message itself
        root = interp.message.tree()
        parts = [root, *_descendants(root)]
    interp.loop_names.append(name)
    try:
        for part in parts:
            interp.part_stack.append(part)
            try:
                await interp.execute(op.block or [])
            finally:
                interp.part_stack.pop()
    except BreakLoop as exc:
        if exc.name and exc.name != name:
            raise
    finally:
        interp.loop_names.pop()


async def run_break(interp: Interpreter, op: Op) -> None:
    """``break [:name n]``: leave the innermost (or the named) foreverypart."""
    raise BreakLoop(op.tags.get("name", ""))


def check_foreverypart(op: Op, state: CompileState) -> None:
    """Loops nest at most four deep."""
    parents = op.data.get("parents", ())
    # reported once, at the first loop too deep (the ones inside it are not counted again)
    if sum(1 for p in parents if p == "foreverypart") == MAX_NESTING:
        raise SieveCompileError(f"foreverypart: nested more than {MAX_NESTING} deep", op.line, op.column)


def check_break(op: Op, state: CompileState) -> None:
    """break only inside foreverypart; a named break names an enclosing loop."""
    parents = op.data.get("parents", ())
    if "foreverypart" not in parents:
        raise SieveCompileError("break: not inside a foreverypart loop", op.line, op.column)
    name = op.tags.get("name")
    if name is not None and name not in state.data.get("loop_names", ()):
        raise SieveCompileError(f'break: no enclosing foreverypart loop named "{name}"', op.line, op.column)


async def run_extracttext(interp: Interpreter, op: Op) -> None:
    """``extracttext [modifiers] [:first n] varname``: the current part's text into a variable."""
    from .commands import run_set

    if not interp.part_stack:
        raise SieveRuntimeError("extracttext outside foreverypart", op.line)
    part = interp.part_stack[-1]
    from .commands import _html_text

    text = part.text if part.text is not None and not part.children else ""
    if part.content_type in ("text/html", "application/xhtml+xml"):
        text = _html_text(text)
    if "first" in op.tags:
        text = text[: op.tags["first"]]
    fake = Op(op.spec, "set", op.line, op.column, {k: v for k, v in op.tags.items() if k != "first"},
              [op.args[0], text.replace("${", "$\u200b{")], [], None)
    saved = interp.requires
    interp.requires = saved - {"variables"}  # the text is data, never expanded
    try:
        await run_set(interp, fake)
    finally:
        interp.requires = saved
    interp.variables[op.args[0].lower()] = interp.variables.get(op.args[0].lower(), "").replace("$\u200b{", "${")


def check_extracttext(op: Op, state: CompileState) -> None:
    """extracttext needs variables and a foreverypart around it."""
    from .commands import check_variable_name

    if "variables" not in state.required:
        raise SieveCompileError('extracttext needs require "variables"', op.line, op.column)
    if "foreverypart" not in op.data.get("parents", ()):
        raise SieveCompileError("extracttext: not inside a foreverypart loop", op.line, op.column)
    check_variable_name(op.args[0], op, state)


def extensions() -> list[Extension]:
    """``mime``, ``foreverypart`` and ``extracttext``."""
    from .commands import SET_MODIFIERS

    modifiers: dict[str, Any] = {name: TagSpec(f"mod{prec}") for name, prec in SET_MODIFIERS.items()}
    return [
        Extension("foreverypart", (
            Spec("foreverypart", "command", "foreverypart", run_foreverypart,
                 tags={"name": TagSpec("name", "string")}, block="required", check=check_foreverypart),
            Spec("break", "command", "foreverypart", run_break, tags={"name": TagSpec("name", "string")},
                 check=check_break),
        )),
        Extension("mime"),
        Extension("extracttext", needs=("foreverypart",), specs=(
            Spec("extracttext", "command", "extracttext", run_extracttext, ("string",),
                 {**modifiers, "first": TagSpec("first", "number")}, check=check_extracttext),
        )),
    ]
