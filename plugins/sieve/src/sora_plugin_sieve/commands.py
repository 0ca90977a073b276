"""The built-in commands and tests: RFC 5228 core and the extensions, each as :class:`Spec` records.

Each extension is one :class:`~.compiler.Extension`; ``BUILTIN`` lists them all. Which of them the
product advertises is decided in :mod:`.api` (only those whose conformance tests pass).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .compiler import CompileState, Extension, Op, Spec, TagSpec
from .grammar import SieveCompileError
from .interpreter import Action, Interpreter, ReturnScript, SieveRuntimeError, StopScript, split_flags
from .matching import COMPARATORS, RELATIONS, MatchError, posix_regex
from .message import parse_addresses

# -- shared tag groups -------------------------------------------------------------------------------

COMPARATOR = {"comparator": TagSpec("comparator", "string")}
MATCH = {
    "is": TagSpec("match"), "contains": TagSpec("match"), "matches": TagSpec("match"),
    "regex": TagSpec("match", None, "regex"),
    "count": TagSpec("match", "string", "relational"), "value": TagSpec("match", "string", "relational"),
}
ADDRESS_PART = {
    "all": TagSpec("address-part"), "localpart": TagSpec("address-part"), "domain": TagSpec("address-part"),
    "user": TagSpec("address-part", None, "subaddress"), "detail": TagSpec("address-part", None, "subaddress"),
}
INDEX = {"index": TagSpec("index", "number", "index"), "last": TagSpec("last", None, "index")}
MIME_OPTS = {
    "mime": TagSpec("mime", None, "mime"), "anychild": TagSpec("anychild", None, "mime"),
    "type": TagSpec("mime-opt", None, "mime"), "subtype": TagSpec("mime-opt", None, "mime"),
    "contenttype": TagSpec("mime-opt", None, "mime"), "param": TagSpec("mime-opt", "list", "mime"),
}


def tags(*groups: Mapping[str, TagSpec]) -> dict[str, TagSpec]:
    """Several tag groups as one mapping."""
    out: dict[str, TagSpec] = {}
    for group in groups:
        out.update(group)
    return out


def _has_variables(value: str) -> bool:
    return "${" in value


def check_match(op: Op, state: CompileState) -> None:
    """Comparator known and required, relation valid, constant regexes compile, :last needs :index."""
    comparator = op.tags.get("comparator")
    if comparator is not None:
        if comparator not in COMPARATORS:
            raise SieveCompileError(f'unknown comparator "{comparator}"', op.line, op.column)
        builtin = ("i;octet", "i;ascii-casemap", "i;unicode-casemap")
        if comparator not in builtin and f"comparator-{comparator}" not in state.required:
            raise SieveCompileError(f'comparator "{comparator}" needs require "comparator-{comparator}"',
                                    op.line, op.column)
    for rel in ("count", "value"):
        if rel in op.tags and op.tags[rel].lower() not in RELATIONS:
            raise SieveCompileError(f'invalid relational operator "{op.tags[rel]}"', op.line, op.column)
    if "regex" in op.tags:
        if comparator == "i;ascii-numeric":
            raise SieveCompileError("regex match type does not support i;ascii-numeric", op.line, op.column)
        keys = op.args[-1] if op.args else []
        for key in keys if isinstance(keys, list) else [keys]:
            if not ("variables" in state.required and _has_variables(key)):
                try:
                    posix_regex(key, False)
                except MatchError as exc:
                    raise SieveCompileError(str(exc), op.line, op.column) from None
    if "last" in op.tags and "index" not in op.tags:
        raise SieveCompileError(f"{op.name}: the :last tag cannot be specified without the :index tag",
                                op.line, op.column)
    if "index" in op.tags and op.tags["index"] < 1:
        raise SieveCompileError(":index must be 1 or more", op.line, op.column)


def _as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


# -- control -----------------------------------------------------------------------------------------


async def _noop(interp: Interpreter, op: Op) -> None:
    return None


async def run_stop(interp: Interpreter, op: Op) -> None:
    """``stop``."""
    raise StopScript


async def run_keep(interp: Interpreter, op: Op) -> None:
    """``keep``."""
    interp.add_action(Action("keep", op.line, flags=interp.current_flags(op)))


async def run_discard(interp: Interpreter, op: Op) -> None:
    """``discard``."""
    interp.add_action(Action("discard", op.line))


_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[^\[\]\\]*\]")


def normalize_address(text: str) -> str | None:
    """RFC 5228 §4.2: ``Name <local@domain>`` or a bare address to ``local@domain``; None when invalid.

    White space around the parts is dropped and a needlessly quoted local part unquoted
    (``"Sirius"@example.net`` is ``Sirius@example.net``), as Pigeonhole normalizes it.
    """
    text = text.strip()
    if text.endswith(">") and "<" in text:
        text = text[text.rindex("<") + 1:-1].strip()
    elif "<" in text or ">" in text:
        return None
    local, at, domain = text.rpartition("@")
    if not at:
        return None
    local, domain = local.strip(), domain.strip()
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        inner = local[1:-1]
        if _ATOM.fullmatch(inner):
            local = inner
        elif '"' in inner.replace('\\"', ""):
            return None
    elif not _ATOM.fullmatch(local):
        return None
    if not domain or not _DOMAIN.fullmatch(domain):
        return None
    return f"{local}@{domain}"


def valid_address(address: str) -> bool:
    """A valid mail address (redirect, vacation :from and :addresses)."""
    return normalize_address(address) is not None


def check_redirect(op: Op, state: CompileState) -> None:
    """A constant redirect address must be valid."""
    address = op.args[0]
    if not ("variables" in state.required and _has_variables(address)) and normalize_address(address) is None:
        raise SieveCompileError(f'redirect: invalid address "{address}"', op.line, op.column)


async def run_redirect(interp: Interpreter, op: Op) -> None:
    """``redirect [:copy] address``."""
    raw = interp.expand(op.args[0])
    address = normalize_address(raw)
    if address is None:
        raise SieveRuntimeError(f'redirect: invalid address "{raw}"', op.line)
    interp.add_action(Action("redirect", op.line, address=address, copy=bool(op.tags.get("copy"))))


async def run_fileinto(interp: Interpreter, op: Op) -> None:
    """``fileinto [:copy] [:flags] [:create] [:specialuse] [:mailboxid] mailbox``."""
    mailbox = interp.expand(op.args[0])
    if not mailbox or len(mailbox) > 1024 or any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in mailbox):
        shown = mailbox.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise SieveRuntimeError(f'fileinto: invalid folder name "{shown}"', op.line)
    interp.add_action(Action(
        "fileinto", op.line, mailbox=mailbox, flags=interp.current_flags(op), create=bool(op.tags.get("create")),
        copy=bool(op.tags.get("copy")), specialuse=interp.expand(op.tags.get("specialuse", "")),
        mailboxid=interp.expand(op.tags.get("mailboxid", ""))))


def check_fileinto(op: Op, state: CompileState) -> None:
    """A constant mailbox name must be valid UTF-8 text without control characters."""
    name = op.args[0]
    if not name and "variables" not in state.required:
        raise SieveCompileError("fileinto: empty mailbox name", op.line, op.column)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        raise SieveCompileError("fileinto: invalid folder name (not UTF-8)", op.line, op.column)


async def run_reject(interp: Interpreter, op: Op) -> None:
    """``reject reason`` / ``ereject reason``."""
    interp.add_action(Action(op.name, op.line, reason=interp.expand(op.args[0])))


# -- tests -------------------------------------------------------------------------------------------


async def run_true(interp: Interpreter, op: Op) -> bool:
    """``true``."""
    return True


async def run_false(interp: Interpreter, op: Op) -> bool:
    """``false``."""
    return False


async def run_not(interp: Interpreter, op: Op) -> bool:
    """``not test``."""
    return not await interp.test(op.tests[0])


async def run_allof(interp: Interpreter, op: Op) -> bool:
    """``allof (tests)``: short-circuit and."""
    for test in op.tests:
        if not await interp.test(test):
            return False
    return True


async def run_anyof(interp: Interpreter, op: Op) -> bool:
    """``anyof (tests)``: short-circuit or."""
    for test in op.tests:
        if await interp.test(test):
            return True
    return False


async def run_size(interp: Interpreter, op: Op) -> bool:
    """``size :over|:under n``."""
    size = interp.message_size()
    if "over" in op.tags:
        return size > op.args[0]
    return size < op.args[0]


def check_size(op: Op, state: CompileState) -> None:
    """Exactly one of :over and :under."""
    if "over" not in op.tags and "under" not in op.tags:
        raise SieveCompileError("size needs :over or :under", op.line, op.column)


def header_values(interp: Interpreter, op: Op, names: list[str]) -> list[str]:
    """The decoded values of the named fields, honouring :index/:last and :mime/:anychild."""
    values = interp.decoded_values(op, names)
    if "index" in op.tags:
        index = op.tags["index"]
        if index < 1:
            return []
        if "last" in op.tags:
            index = len(values) - index + 1
        return [values[index - 1]] if 1 <= index <= len(values) else []
    return values


def check_header_names(op: Op, state: CompileState, position: int = 0) -> None:
    """Header names must be valid field names (RFC 5322 ftext)."""
    names = op.args[position]
    for name in _as_list(names):
        if "variables" in state.required and _has_variables(name):
            continue
        if not name or any(ord(ch) <= 32 or ord(ch) > 126 or ch == ":" for ch in name):
            raise SieveCompileError(f'{op.name}: invalid header name "{name}"', op.line, op.column)


def check_header(op: Op, state: CompileState) -> None:
    """``header`` compile checks (an invalid field name simply never matches)."""
    check_match(op, state)
    _check_mime(op)


def check_exists(op: Op, state: CompileState) -> None:
    """``exists`` compile checks."""
    check_header_names(op, state)
    _check_mime(op)


def _check_mime(op: Op) -> None:
    if "anychild" in op.tags and "mime" not in op.tags:
        raise SieveCompileError(":anychild needs :mime", op.line, op.column)
    for opt in ("type", "subtype", "contenttype", "param"):
        if opt in op.tags and "mime" not in op.tags:
            raise SieveCompileError(f":{opt} needs :mime", op.line, op.column)


async def run_header(interp: Interpreter, op: Op) -> bool:
    """``header``: decoded field values against keys."""
    names = interp.expand_list(op.args[0])
    values = header_values(interp, op, names)
    if "mime" in op.tags and any(t in op.tags for t in ("type", "subtype", "contenttype", "param")):
        values = interp.mime_header_values(op, values)
    if not values:
        return interp.match(op, [], op.args[1]) if "count" in op.tags else False
    return interp.match(op, values, op.args[1])


async def run_exists(interp: Interpreter, op: Op) -> bool:
    """``exists``: every named field present."""
    names = interp.expand_list(op.args[0])
    sources = interp.header_sources(op)
    for name in names:
        lname = name.lower()
        if not any(k.lower() == lname for fields in sources for k, _ in fields):
            return False
    return True


def address_part(interp: Interpreter, op: Op, address: str) -> str | None:
    """The :localpart/:domain/:user/:detail/:all part of ``address`` (None: no such part)."""
    if "localpart" in op.tags or "user" in op.tags or "detail" in op.tags:
        local = address.rpartition("@")[0] if "@" in address else address
        if "localpart" in op.tags:
            return local
        delimiters = interp.runtime.config("recipient_delimiter") or "+"
        cut = min((i for i in (local.find(d) for d in delimiters) if i >= 0), default=-1)
        if "user" in op.tags:
            return local if cut < 0 else local[:cut]
        return None if cut < 0 else local[cut + 1:]
    if "domain" in op.tags:
        return address.rpartition("@")[2] if "@" in address else ""
    return address


async def run_address(interp: Interpreter, op: Op) -> bool:
    """``address``: the addresses in the named fields."""
    names = interp.expand_list(op.args[0])
    values: list[str] = []
    raws = interp.raw_header_values(op, names)
    if "index" in op.tags:
        index = op.tags["index"]
        if "last" in op.tags:
            index = len(raws) - index + 1
        raws = [raws[index - 1]] if 1 <= index <= len(raws) else []
    for raw in raws:
        for addr in parse_addresses(raw):
            part = address_part(interp, op, addr)
            if part is not None:
                values.append(part)
    if "count" in op.tags:
        return interp.match(op, values, op.args[1])
    if not values:
        return False
    return interp.match(op, values, op.args[1])


ADDRESS_HEADERS = {
    "from", "sender", "to", "cc", "bcc", "reply-to", "resent-from", "resent-sender", "resent-to", "resent-cc",
    "resent-bcc", "return-receipt-to", "disposition-notification-to", "x-envelope-from", "x-envelope-to",
    "x-original-to", "delivered-to", "original-recipient", "errors-to", "return-path", "resent-reply-to",
    "mail-followup-to", "mail-reply-to", "x-beenthere", "envelope-to", "apparently-to",
}


def check_address(op: Op, state: CompileState) -> None:
    """Only address fields may be tested (RFC 5228 §5.1)."""
    check_match(op, state)
    check_header_names(op, state)
    _check_mime(op)
    for name in op.args[0]:
        if "variables" in state.required and _has_variables(name):
            continue
        if name.lower() not in ADDRESS_HEADERS and not name.lower().startswith("x-"):
            raise SieveCompileError(f'address: "{name}" is not an address header', op.line, op.column)


_LABEL = re.compile(r"[A-Za-z0-9_-]+")


def _valid_domain(domain: str) -> bool:
    if domain.startswith("[") and domain.endswith("]"):
        return True
    return bool(domain) and all(_LABEL.fullmatch(label) for label in domain.split("."))


def parse_path(raw: str) -> str | None:
    """An SMTP path (RFC 5321 §4.1.2, source routes dropped) to ``local@domain``, '' for ``<>``; None if invalid."""
    text = raw.strip()
    if text in ("", "<>"):
        return ""
    if text.startswith("<"):
        if not text.endswith(">"):
            return None
        text = text[1:-1]
    elif text.endswith(">"):
        return None
    if "<" in text or ">" in text:
        return None
    if text.startswith("@"):
        route, colon, text = text.partition(":")
        if not colon or any(not hop.startswith("@") or not _valid_domain(hop[1:]) for hop in route.split(",")):
            return None
    if "@" not in text:
        return text if text and " " not in text else None
    local, _, domain = text.rpartition("@")
    quoted = local.startswith('"') and local.endswith('"') and len(local) >= 2
    if not local or not _valid_domain(domain) or (not quoted and any(ch in local for ch in ' @:,;()<>[]\\"')):
        return None
    return f"{local}@{domain}"


async def run_envelope(interp: Interpreter, op: Op) -> bool:
    """``envelope``: ``from``, ``to``, ``auth`` (and ``orig_to``) of the envelope."""
    values: list[str] = []
    for part_name in interp.expand_list(op.args[0]):
        lname = part_name.lower()
        if lname == "from":
            path = parse_path(interp.envelope.sender)
        elif lname == "to":
            path = parse_path(interp.envelope.recipient)
        elif lname == "orig_to":
            path = parse_path(interp.envelope.original_recipient or interp.envelope.recipient)
        elif lname == "auth":
            path = interp.envelope.auth or None
        else:
            continue
        if path is None:
            continue
        if path == "":
            values.append("")
            continue
        part = address_part(interp, op, path)
        if part is not None:
            values.append(part)
    if not values:
        return interp.match(op, [], op.args[1]) if "count" in op.tags else False
    return interp.match(op, values, op.args[1])


def check_envelope(op: Op, state: CompileState) -> None:
    """Envelope parts must be known."""
    check_match(op, state)
    for name in op.args[0]:
        if "variables" in state.required and _has_variables(name):
            continue
        if name.lower() not in ("from", "to", "auth", "orig_to"):
            raise SieveCompileError(f'envelope: unknown envelope part "{name}"', op.line, op.column)


# -- imap4flags --------------------------------------------------------------------------------------


def _flag_target(interp: Interpreter, op: Op) -> tuple[str | None, list[str]]:
    if len(op.args) == 2:
        return interp.expand(op.args[0]).lower(), interp.expand_list(op.args[1])
    return None, interp.expand_list(op.args[0])


def _get_flags(interp: Interpreter, name: str | None) -> list[str]:
    if name is None:
        return list(interp.flags)
    return split_flags([interp.get_variable(name)])


def _put_flags(interp: Interpreter, name: str | None, flags: list[str]) -> None:
    if name is None:
        interp.flags = flags
    else:
        interp.set_variable(name, " ".join(flags))


async def run_setflag(interp: Interpreter, op: Op) -> None:
    """``setflag [variable] flags``."""
    name, values = _flag_target(interp, op)
    _put_flags(interp, name, split_flags(values))


async def run_addflag(interp: Interpreter, op: Op) -> None:
    """``addflag [variable] flags``."""
    name, values = _flag_target(interp, op)
    current = _get_flags(interp, name)
    _put_flags(interp, name, split_flags([*current, *values]))


async def run_removeflag(interp: Interpreter, op: Op) -> None:
    """``removeflag [variable] flags``."""
    name, values = _flag_target(interp, op)
    remove = {f.lower() for f in split_flags(values)}
    _put_flags(interp, name, [f for f in _get_flags(interp, name) if f.lower() not in remove])


async def run_hasflag(interp: Interpreter, op: Op) -> bool:
    """``hasflag [variables] flags``."""
    if len(op.args) == 2:
        flags: list[str] = []
        for name in interp.expand_list(op.args[0]):
            flags.extend(split_flags([interp.get_variable(name.lower())]))
        keys = op.args[1]
    else:
        flags = list(interp.flags)
        keys = op.args[0]
    if "count" in op.tags:
        return interp.match(op, flags, keys)
    expanded: list[str] = []
    for key in interp.expand_list(keys):
        expanded.extend(key.split())
    saved = interp.requires
    try:
        interp.requires = saved - {"variables"}
        return interp.match(op, flags, expanded) if flags else False
    finally:
        interp.requires = saved


def check_flag_variable(op: Op, state: CompileState) -> None:
    """A flag variable name must be a valid variable name."""
    if len(op.args) == 2:
        if "variables" not in state.required:
            raise SieveCompileError(f"{op.name}: a variable name needs require \"variables\"", op.line, op.column)
        for name in _as_list(op.args[0]):
            check_variable_name(name, op)
    if op.spec.kind == "test":
        check_match(op, state)


# -- variables ---------------------------------------------------------------------------------------

SET_MODIFIERS = {
    "lower": 40, "upper": 40, "lowerfirst": 30, "upperfirst": 30, "quotewildcard": 20, "quoteregex": 20,
    "length": 10, "encodeurl": 15,
}


MAX_VARIABLE_NAME = 64
MAX_MATCH_INDEX = 32
MAX_DECLARED_VARIABLES = 255


def check_variable_name(name: str, op: Op, state: CompileState | None = None) -> None:
    """RFC 5229: identifier, or namespace.identifier (only known namespaces), within the limits."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", name):
        raise SieveCompileError(f'invalid variable name "{name}"', op.line, op.column)
    if len(name) > MAX_VARIABLE_NAME:
        raise SieveCompileError(f'variable name "{name[:20]}..." is longer than {MAX_VARIABLE_NAME}',
                                op.line, op.column)
    if "." in name:
        namespace = name.split(".", 1)[0].lower()
        if not (namespace == "global" and state is not None and "include" in state.required):
            raise SieveCompileError(f'unknown variable namespace "{namespace}"', op.line, op.column)
    if state is not None:
        declared = state.data.setdefault("variables", set())
        declared.add(name.lower())
        if len(declared) == MAX_DECLARED_VARIABLES + 1:
            raise SieveCompileError(f"more than {MAX_DECLARED_VARIABLES} variables declared", op.line, op.column)


def check_set(op: Op, state: CompileState) -> None:
    """``set`` compile checks."""
    check_variable_name(op.args[0], op, state)
    state.data.setdefault("set_names", set()).add(op.args[0].lower())
    if "quoteregex" in op.tags and "regex" not in state.required:
        raise SieveCompileError(':quoteregex needs require "regex"', op.line, op.column)
    if "encodeurl" in op.tags and "enotify" not in state.required:
        raise SieveCompileError(':encodeurl needs require "enotify"', op.line, op.column)


def _quote_wildcard(value: str) -> str:
    return value.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def _quote_regex(value: str) -> str:
    return re.sub(r"([\\^$.\[\]|()?*+{}])", r"\\\1", value)


def _encode_url(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="-._~")


async def run_set(interp: Interpreter, op: Op) -> None:
    """``set [modifiers] name value``."""
    value = interp.expand(op.args[1])
    mods = sorted((m for m in op.tags if m in SET_MODIFIERS), key=lambda m: -SET_MODIFIERS[m])
    for mod in mods:
        if mod == "lower":
            value = value.lower()
        elif mod == "upper":
            value = value.upper()
        elif mod == "lowerfirst":
            value = value[:1].lower() + value[1:]
        elif mod == "upperfirst":
            value = value[:1].upper() + value[1:]
        elif mod == "quotewildcard":
            value = _quote_wildcard(value)
        elif mod == "quoteregex":
            value = _quote_regex(value)
        elif mod == "encodeurl":
            value = _encode_url(value)
        elif mod == "length":
            value = str(len(value))
    limit = interp.limits.max_variable_size
    quoted = "quotewildcard" in op.tags or "quoteregex" in op.tags
    if quoted and len(value.encode("utf-8", "surrogateescape")) > limit:
        # never cut an escape pair in half
        cut = value.encode("utf-8", "surrogateescape")[:limit].decode("utf-8", "ignore")
        trailing = len(cut) - len(cut.rstrip("\\"))
        value = cut[:-1] if trailing % 2 else cut
    elif "encodeurl" in op.tags and len(value) > limit:
        # ASCII after encoding; never cut an escape or the escapes of one UTF-8 character
        from urllib.parse import unquote

        raw = unquote(value)
        parts: list[str] = []
        size = 0
        for ch in raw:
            piece = _encode_url(ch)
            if size + len(piece) > limit:
                break
            parts.append(piece)
            size += len(piece)
        value = "".join(parts)
    interp.set_variable(op.args[0], value)


async def run_string(interp: Interpreter, op: Op) -> bool:
    """``string source keys`` (empty strings do not count for :count)."""
    values = interp.expand_list(op.args[0])
    if "count" in op.tags:
        values = [v for v in values if v != ""]
    return interp.match(op, values, op.args[1])


# -- body --------------------------------------------------------------------------------------------


def _html_text(html: str) -> str:
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    text = re.sub(r"(?s)<[^>]*>", " ", text)
    import html as html_module

    return re.sub(r"[ \t]+", " ", html_module.unescape(text)).strip()


def _type_matches(ctype: str, want: str) -> bool:
    if want == "":
        return True
    if "/" in want:
        return ctype == want
    return ctype.split("/", 1)[0] == want


async def run_body(interp: Interpreter, op: Op) -> bool:
    """``body [:raw|:content types|:text]`` (RFC 5173); never sets match variables."""
    message = interp.message
    if not message.has_body:
        return False
    values: list[str] = []
    if "raw" in op.tags:
        values = [message.body.decode("utf-8", "replace")]
    elif "content" in op.tags:
        types = [t.lower().strip() for t in interp.expand_list(op.tags["content"])]
        types = [t for t in types if t == "" or re.fullmatch(r"[^/\s]+(/[^/\s]+)?", t)]
        for part in message.parts():
            ctype = part.content_type
            if not ctype or not any(_type_matches(ctype, want) for want in types):
                continue
            if ctype.startswith("multipart/"):
                values.extend(v for v in (part.preamble, part.epilogue) if v)
            elif ctype == "message/rfc822":
                values.append(part.inner_header)
            elif part.text is not None:
                values.append(part.text)
            else:
                values.append(part.raw_body.decode("utf-8", "replace"))
    else:
        for part in message.parts():
            if part.children or part.text is None:
                continue
            html = part.content_type in ("text/html", "application/xhtml+xml")
            values.append(_html_text(part.text) if html else part.text)
    values = [v.replace("\r\n", "\n").replace("\n", "\r\n") for v in values]
    saved = interp.match_vars
    try:
        return interp.match(op, values, op.args[0]) if values else False
    finally:
        interp.match_vars = saved


def check_body(op: Op, state: CompileState) -> None:
    """body supports no :count on strings? it does; only check the match arguments."""
    check_match(op, state)


# -- vacation ----------------------------------------------------------------------------------------


async def run_vacation(interp: Interpreter, op: Op) -> None:
    """``vacation`` (RFC 5230, RFC 6131 :seconds): the reply is built when the result is executed."""
    if "seconds" in op.tags:
        seconds = float(op.tags["seconds"])
    else:
        seconds = float(op.tags.get("days", 7)) * 86400
    options: dict[str, Any] = {
        "seconds": seconds,
        "subject": interp.expand(op.tags["subject"]) if "subject" in op.tags else None,
        "from": interp.expand(op.tags["from"]) if "from" in op.tags else None,
        "addresses": interp.expand_list(op.tags.get("addresses", [])),
        "mime": bool(op.tags.get("mime")),
        "handle": interp.expand(op.tags["handle"]) if "handle" in op.tags else None,
    }
    reason = interp.expand(op.args[0])
    if options["handle"] is None:
        options["handle"] = "|".join([reason, str(options["subject"]), str(options["from"]),
                                      ",".join(options["addresses"]), str(options["mime"])])
    interp.add_action(Action("vacation", op.line, reason=reason, copy=True, options=options))


def check_vacation(op: Op, state: CompileState) -> None:
    """:from must be an address, :days/:seconds not both."""
    constant = "from" in op.tags and not ("variables" in state.required and _has_variables(op.tags["from"]))
    if constant and not valid_address(op.tags["from"]):
        raise SieveCompileError(f'vacation: invalid :from address "{op.tags["from"]}"', op.line, op.column)
    if "mime" not in op.tags:
        return


# -- ihave, environment, mailbox ---------------------------------------------------------------------


async def run_ihave(interp: Interpreter, op: Op) -> bool:
    """``ihave``: every named extension is available."""
    available = interp.extension_state.get("available")
    if available is None:
        from .api import capabilities

        available = set(capabilities())
    excluded = {"encoded-character", "variables"}
    return all(name in available and name not in excluded for name in interp.expand_list(op.args[0]))


async def run_error(interp: Interpreter, op: Op) -> None:
    """``error message`` (RFC 5463): fail the script."""
    raise SieveRuntimeError(f"error: {interp.expand(op.args[0])}", op.line)


async def run_environment(interp: Interpreter, op: Op) -> bool:
    """``environment name keys``."""
    name = interp.expand(op.args[0]).lower()
    items = interp.environment_items()
    if name not in items:
        return False
    return interp.match(op, [items[name]], op.args[1])


async def run_mailboxexists(interp: Interpreter, op: Op) -> bool:
    """``mailboxexists names``: all exist."""
    for name in interp.expand_list(op.args[0]):
        if not await interp.runtime.mailbox_exists(name):
            return False
    return True


async def run_specialuse_exists(interp: Interpreter, op: Op) -> bool:
    """``specialuse_exists [mailbox] uses``."""
    if len(op.args) == 2:
        return await interp.runtime.special_use_exists(interp.expand(op.args[0]), interp.expand_list(op.args[1]))
    return await interp.runtime.special_use_exists(None, interp.expand_list(op.args[0]))


async def run_mailboxidexists(interp: Interpreter, op: Op) -> bool:
    """``mailboxidexists ids``."""
    for value in interp.expand_list(op.args[0]):
        if not await interp.runtime.mailbox_id_exists(value):
            return False
    return True


def check_specialuse(op: Op, state: CompileState) -> None:
    """Special-use flags start with a backslash."""
    uses = op.args[-1] if op.spec.kind == "test" else [op.tags.get("specialuse", "")]
    for use in _as_list(uses):
        if "variables" in state.required and _has_variables(use):
            continue
        if use and not (use.startswith("\\") and use[1:].isalnum()):
            raise SieveCompileError(f'invalid special-use flag "{use}"', op.line, op.column)


def check_fileinto_all(op: Op, state: CompileState) -> None:
    """fileinto compile checks, including :specialuse."""
    check_fileinto(op, state)
    if "specialuse" in op.tags:
        check_specialuse(op, state)


# -- include -----------------------------------------------------------------------------------------


async def run_include(interp: Interpreter, op: Op) -> None:
    """``include [:personal|:global] [:once] [:optional] name``."""
    location = "global" if "global" in op.tags else "personal"
    name = interp.expand(op.args[0])
    key = (location, name)
    if op.tags.get("once") and key in interp.included_once:
        return
    if key in interp.include_stack:
        raise SieveRuntimeError(f'include: "{name}" includes itself', op.line)
    if len(interp.include_stack) >= interp.limits.max_include_depth:
        raise SieveRuntimeError("include: nested too deeply", op.line)
    interp.include_count += 1
    if interp.include_count > interp.limits.max_includes:
        raise SieveRuntimeError("include: too many includes", op.line)
    script = await interp.runtime.load_include(location, name)
    if script is None:
        if op.tags.get("optional"):
            return
        raise SieveRuntimeError(f'include: script "{name}" not found', op.line)
    interp.included_once.add(key)
    saved = (interp.requires, interp.variables, interp.global_names, interp.match_vars)
    interp.include_stack.append(key)
    interp.requires = script.requires
    interp.variables = {}
    interp.global_names = set()
    interp.match_vars = []
    try:
        await interp.execute(script.commands)
    except ReturnScript:
        pass
    finally:
        interp.include_stack.pop()
        interp.requires, interp.variables, interp.global_names, interp.match_vars = saved


async def run_return(interp: Interpreter, op: Op) -> None:
    """``return``: end the current script (the top one: end processing)."""
    raise ReturnScript


async def run_global(interp: Interpreter, op: Op) -> None:
    """``global names``: the names refer to the shared variables from now on."""
    for name in op.args[0]:
        interp.global_names.add(name.lower())


def check_global(op: Op, state: CompileState) -> None:
    """Global needs variables; names are plain identifiers."""
    if "variables" not in state.required:
        raise SieveCompileError('global needs require "variables"', op.line, op.column)
    globals_ = state.data.setdefault("global_names", set())
    for name in op.args[0]:
        check_variable_name(name, op)
        if name.lower() in state.data.get("set_names", set()) and name.lower() not in globals_:
            raise SieveCompileError(f'global: variable "{name}" is already used as a local variable',
                                    op.line, op.column)
        globals_.add(name.lower())


def valid_script_name(name: str) -> bool:
    """RFC 5804 §1.6: no control characters, no slash, not empty, at most 1024 characters."""
    if not name or len(name) > 1024 or "/" in name:
        return False
    return not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in "\u2028\u2029" for ch in name)


def check_include(op: Op, state: CompileState) -> None:
    """A valid script name; with a loader, the included script is compiled now."""
    name = op.args[0]
    if not valid_script_name(name):
        raise SieveCompileError(f'include: invalid script name "{name}"', op.line, op.column)
    compiler = state.data.get("compiler")
    if compiler is not None and not ("variables" in state.required and "${" in name):
        location = "global" if "global" in op.tags else "personal"
        compiler.include(location, name, bool(op.tags.get("optional")), op.line, op.column, state)


# -- duplicate (RFC 7352) ---------------------------------------------------------------------------


async def run_duplicate(interp: Interpreter, op: Op) -> bool:
    """``duplicate [:handle] [:header|:uniqueid] [:seconds] [:last]``: seen before within the period?"""
    if "uniqueid" in op.tags:
        value = interp.expand(op.tags["uniqueid"])
    else:
        name = interp.expand(op.tags.get("header", "message-id"))
        values = interp.message.values(name)
        if not values:
            return False
        value = values[0].strip()
        if name.lower() == "message-id":
            value = value.replace(" ", "")
    handle = interp.expand(op.tags.get("handle", ""))
    seconds = float(op.tags.get("seconds", 7 * 86400))
    seen = interp.extension_state.setdefault("duplicate:seen", {})
    key = (handle, value)
    if key in seen:  # the same message tested twice in one run gives the same answer
        return bool(seen[key])
    result = await interp.runtime.duplicate(handle, value, seconds, bool(op.tags.get("last")))
    seen[key] = result
    return result


def check_duplicate(op: Op, state: CompileState) -> None:
    """A constant :header must be a valid field name."""
    name = op.tags.get("header")
    if isinstance(name, str) and not name:
        raise SieveCompileError("duplicate: empty :header", op.line, op.column)


# -- extension table ---------------------------------------------------------------------------------

MATCH_TEST_TAGS = tags(COMPARATOR, MATCH)


def core() -> Extension:
    """RFC 5228 without extensions (its capability name is not advertised)."""
    return Extension("", (
        Spec("if", "command", None, _noop, tests="one", block="required"),
        Spec("elsif", "command", None, _noop, tests="one", block="required"),
        Spec("else", "command", None, _noop, block="required"),
        Spec("stop", "command", None, run_stop),
        Spec("keep", "command", None, run_keep, tags={"flags": TagSpec("flags", "list", "imap4flags")}),
        Spec("discard", "command", None, run_discard),
        Spec("redirect", "command", None, run_redirect, ("string",),
             tags={"copy": TagSpec("copy", None, "copy")}, check=check_redirect),
        Spec("true", "test", None, run_true),
        Spec("false", "test", None, run_false),
        Spec("not", "test", None, run_not, tests="one"),
        Spec("allof", "test", None, run_allof, tests="list"),
        Spec("anyof", "test", None, run_anyof, tests="list"),
        Spec("size", "test", None, run_size, ("number",),
             tags={"over": TagSpec("size"), "under": TagSpec("size")}, check=check_size),
        Spec("header", "test", None, run_header, ("list", "list"), tags=tags(COMPARATOR, MATCH, INDEX, MIME_OPTS),
             check=check_header),
        Spec("address", "test", None, run_address, ("list", "list"),
             tags=tags(COMPARATOR, MATCH, ADDRESS_PART, INDEX,
                       {k: v for k, v in MIME_OPTS.items() if k in ("mime", "anychild")}), check=check_address),
        Spec("exists", "test", None, run_exists, ("list",),
             tags=tags({"mime": TagSpec("mime", None, "mime"), "anychild": TagSpec("anychild", None, "mime")}),
             check=check_exists),
    ), listed=False)


def builtin_extensions() -> list[Extension]:
    """Every extension this engine knows."""
    from . import dates, editheader, enotify, mime, spamtest

    fileinto_tags = {
        "copy": TagSpec("copy", None, "copy"), "flags": TagSpec("flags", "list", "imap4flags"),
        "create": TagSpec("create", None, "mailbox"), "specialuse": TagSpec("specialuse", "string", "special-use"),
        "mailboxid": TagSpec("mailboxid", "string", "mailboxid"),
    }
    flag_cmd = ("?string", "list")
    return [
        core(),
        Extension("fileinto", (Spec("fileinto", "command", "fileinto", run_fileinto, ("string",), fileinto_tags,
                                    check=check_fileinto_all),)),
        Extension("envelope", (Spec("envelope", "test", "envelope", run_envelope, ("list", "list"),
                                    tags(COMPARATOR, MATCH, ADDRESS_PART), check=check_envelope),)),
        Extension("encoded-character"),
        Extension("comparator-i;octet", listed=False),
        Extension("comparator-i;ascii-casemap", listed=False),
        Extension("comparator-i;ascii-numeric"),
        Extension("comparator-i;unicode-casemap"),
        Extension("copy"),
        Extension("imap4flags", (
            Spec("setflag", "command", "imap4flags", run_setflag, flag_cmd, check=check_flag_variable),
            Spec("addflag", "command", "imap4flags", run_addflag, flag_cmd, check=check_flag_variable),
            Spec("removeflag", "command", "imap4flags", run_removeflag, flag_cmd, check=check_flag_variable),
            Spec("hasflag", "test", "imap4flags", run_hasflag, ("?list", "list"), MATCH_TEST_TAGS,
                 check=check_flag_variable),
        )),
        Extension("body", (Spec("body", "test", "body", run_body, ("list",), tags(COMPARATOR, MATCH, {
            "raw": TagSpec("body-transform"), "content": TagSpec("body-transform", "list"),
            "text": TagSpec("body-transform")}), check=check_body),)),
        Extension("variables", (
            Spec("set", "command", "variables", run_set, ("string", "string"),
                 {name: TagSpec(f"mod{prec}") for name, prec in SET_MODIFIERS.items()}, check=check_set),
            Spec("string", "test", "variables", run_string, ("list", "list"), MATCH_TEST_TAGS, check=check_match),
        )),
        Extension("relational"),
        dates.extension(),
        *spamtest.extensions(),
        editheader.extension(),
        *mime.extensions(),
        enotify.extension(),
        Extension("duplicate", (Spec("duplicate", "test", "duplicate", run_duplicate, (), {
            "handle": TagSpec("handle", "string"), "header": TagSpec("id", "string"),
            "uniqueid": TagSpec("id", "string"), "seconds": TagSpec("seconds", "number"),
            "last": TagSpec("last")}, check=check_duplicate),)),
        Extension("subaddress"),
        Extension("index"),
        Extension("regex"),
        Extension("reject", (Spec("reject", "command", "reject", run_reject, ("string",)),)),
        Extension("ereject", (Spec("ereject", "command", "ereject", run_reject, ("string",)),)),
        Extension("vacation", (Spec("vacation", "command", "vacation", run_vacation, ("string",), {
            "days": TagSpec("period", "number"), "seconds": TagSpec("period", "number", "vacation-seconds"),
            "subject": TagSpec("subject", "string"), "from": TagSpec("from", "string"),
            "addresses": TagSpec("addresses", "list"), "mime": TagSpec("mime"), "handle": TagSpec("handle", "string"),
        }, check=check_vacation),)),
        Extension("vacation-seconds", implies=("vacation",)),
        Extension("ihave", (
            Spec("ihave", "test", "ihave", run_ihave, ("list",)),
            Spec("error", "command", "ihave", run_error, ("string",)),
        )),
        Extension("environment", (Spec("environment", "test", "environment", run_environment, ("string", "list"),
                                       MATCH_TEST_TAGS, check=check_match),)),
        Extension("mailbox", (Spec("mailboxexists", "test", "mailbox", run_mailboxexists, ("list",)),)),
        Extension("special-use", (Spec("specialuse_exists", "test", "special-use", run_specialuse_exists,
                                       ("?string", "list"), check=check_specialuse),)),
        Extension("mailboxid", (Spec("mailboxidexists", "test", "mailboxid", run_mailboxidexists, ("list",)),)),
        Extension("include", (
            Spec("include", "command", "include", run_include, ("string",), {
                "personal": TagSpec("location"), "global": TagSpec("location"), "once": TagSpec("once"),
                "optional": TagSpec("optional")}, check=check_include),
            Spec("return", "command", "include", run_return),
            Spec("global", "command", "include", run_global, ("list",), check=check_global),
        )),
    ]

