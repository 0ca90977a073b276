"""RFC 5293 ``addheader``/``deleteheader``: edit the header the following tests and the stored copy see.

``Received`` and ``Auto-Submitted`` are protected (never deleted; adding is allowed); more fields can be
protected or unprotected with ``editheader_header/<name>/forbid_add|forbid_delete`` settings (the
Pigeonhole keys). A change to a protected field is skipped with a warning, not an error.
"""

from __future__ import annotations

import re
from email.header import Header

from .compiler import CompileState, Extension, Op, Spec, TagSpec
from .grammar import SieveCompileError
from .interpreter import Interpreter, SieveRuntimeError
from .message import decode_value

PROTECTED = ("received", "auto-submitted")
MAX_HEADER_SIZE = 2048
_FIELD = re.compile(r"[\x21-\x39\x3b-\x7e]+")


def valid_field_name(name: str) -> bool:
    """RFC 5322 ftext."""
    return bool(_FIELD.fullmatch(name))


def _config_bool(interp: Interpreter, name: str, key: str) -> bool | None:
    listed = (interp.runtime.config("sieve_editheader_header") or "").split()
    for configured in listed:
        if configured.lower() == name.lower():
            value = interp.runtime.config(f"sieve_editheader_header/{configured}/{key}")
            return None if value is None else value.strip().lower() in ("yes", "true", "1")
    return None


def _forbidden(interp: Interpreter, name: str, what: str) -> bool:
    if name.lower() == "subject":  # RFC 5293 §6: Subject cannot be protected
        return False
    setting = _config_bool(interp, name, f"forbid_{what}")
    if setting is not None:
        return setting
    # Received and Auto-Submitted may be added, never deleted (RFC 5293 §6)
    return what == "delete" and name.lower() in PROTECTED


def _fold(name: str, value: str) -> str:
    """Encode non-ASCII text (RFC 2047) and fold at white space near 78 columns."""
    if not value.isascii():
        value = Header(value, "utf-8", maxlinelen=998).encode(splitchars=" ", maxlinelen=76)
        return value.replace("\n", "\r\n") if "\r\n" not in value else value
    words = value.split(" ")
    lines: list[str] = []
    current = ""
    width = len(name) + 2
    for word in words:
        if current and width + len(current) + 1 + len(word) > 78:
            lines.append(current)
            current = word
            width = 1
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return "\r\n ".join(lines)


def check_addheader(op: Op, state: CompileState) -> None:
    """A constant field name must be valid, a constant value free of NUL and within the size limit."""
    name, value = op.args
    dynamic = "variables" in state.required
    if not (dynamic and "${" in name) and not valid_field_name(name):
        raise SieveCompileError(f"addheader: specified field name '{name}' is invalid", op.line, op.column)
    if dynamic and "${" in value:
        return
    if "\x00" in value:
        raise SieveCompileError(f"addheader: specified value '{value}' is invalid", op.line, op.column)
    if any(ord(ch) < 32 and ch not in "\t\r\n" for ch in value):
        state.warnings.append(f"line {op.line}: addheader: specified value '{value}' has control characters")
    limit = state.options.get("sieve_editheader_max_header_size")
    if limit and len(name) + 2 + len(value.encode("utf-8")) > int(limit):
        raise SieveCompileError(f"addheader: the header field is larger than the limit {limit}", op.line, op.column)


def check_deleteheader(op: Op, state: CompileState) -> None:
    """deleteheader compile checks."""
    from .commands import check_match

    check_match(op, state)
    name = op.args[0]
    if not ("variables" in state.required and "${" in name) and not valid_field_name(name):
        raise SieveCompileError(f"deleteheader: specified field name '{name}' is invalid", op.line, op.column)


def _max_size(interp: Interpreter) -> int:
    value = interp.runtime.config("sieve_editheader_max_header_size")
    try:
        return int(value) if value else MAX_HEADER_SIZE
    except ValueError:
        return MAX_HEADER_SIZE


async def run_addheader(interp: Interpreter, op: Op) -> None:
    """``addheader [:last] name value``."""
    name = interp.expand(op.args[0])
    value = interp.expand(op.args[1])
    if not valid_field_name(name):
        raise SieveRuntimeError(f"addheader: specified field name '{name}' is invalid", op.line)
    if "\r" in value or "\n" in value:
        value = re.sub(r"\r?\n[ \t]*", " ", value)
    if _forbidden(interp, name, "add"):
        interp.warnings.append(f"line {op.line}: addheader: field {name} is protected")
        return
    if len(name) + 2 + len(value.encode("utf-8")) > _max_size(interp):
        raise SieveRuntimeError(f"addheader: field {name} is larger than the limit", op.line)
    fields = list(interp.message.fields)
    field = (name, _fold(name, value))
    if op.tags.get("last"):
        fields.append(field)
    else:
        fields.insert(0, field)
    interp.message.set_fields(fields)


async def run_deleteheader(interp: Interpreter, op: Op) -> None:
    """``deleteheader [:index n [:last]] [comparator] [match] name [value-patterns]``."""
    name = interp.expand(op.args[0])
    if not valid_field_name(name):
        raise SieveRuntimeError(f"deleteheader: specified field name '{name}' is invalid", op.line)
    if _forbidden(interp, name, "delete"):
        interp.warnings.append(f"line {op.line}: deleteheader: field {name} is protected")
        return
    lname = name.lower()
    fields = list(interp.message.fields)
    positions = [i for i, (key, _) in enumerate(fields) if key.lower() == lname]
    if "index" in op.tags:
        index = op.tags["index"]
        if "last" in op.tags:
            index = len(positions) - index + 1
        positions = [positions[index - 1]] if 1 <= index <= len(positions) else []
    patterns = op.args[1] if len(op.args) > 1 else None
    doomed = set()
    saved = interp.match_vars
    for position in positions:
        if patterns is None or interp.match(op, [decode_value(fields[position][1])], patterns):
            doomed.add(position)
    interp.match_vars = saved
    if doomed:
        interp.message.set_fields([f for i, f in enumerate(fields) if i not in doomed])


def extension() -> Extension:
    """The ``editheader`` extension."""
    from .commands import COMPARATOR, MATCH, tags

    return Extension("editheader", (
        Spec("addheader", "command", "editheader", run_addheader, ("string", "string"),
             {"last": TagSpec("last")}, check=check_addheader),
        Spec("deleteheader", "command", "editheader", run_deleteheader, ("string", "?list"),
             tags(COMPARATOR, MATCH, {"index": TagSpec("index", "number"), "last": TagSpec("last")}),
             check=check_deleteheader),
    ))
