"""Maildir++ on disk, as Dovecot and Courier write it: pure functions over names, bytes and folders.

A Maildir++ root holds INBOX in its own ``cur/``, ``new/`` and ``tmp/``; every other mailbox is a
sub-directory ``.<name>`` with the hierarchy levels joined by ``.`` and each level in modified
UTF-7 (RFC 3501 5.1.3): ``.Sent.2024`` is ``Sent/2024``, ``.&AMk-t&AOk-`` is ``Été``. A message is
one file named ``<base>[:2,<info>]``: the base is unique and never changes, the info after ``:2,``
holds the flags as letters in ASCII order. The Maildir spec defines the uppercase ones
(``D`` Draft, ``F`` Flagged, ``P`` Passed, ``R`` Replied, ``S`` Seen, ``T`` Trashed); Dovecot adds
``a``-``z`` for the first 26 keywords of the folder, numbered by ``dovecot-keywords`` (``0 $Label1``
makes ``a`` mean ``$Label1``). Sora maps ``T`` to ``\\Deleted`` and ``D`` to ``\\Draft`` as the spec
and Dovecot do (the Go Sora's importer swaps the two; that is not copied) and ``P`` to the
``$Forwarded`` keyword.

Dovecot keeps IMAP UIDs in ``dovecot-uidlist``: a header ``3 V<uidvalidity> N<nextuid> G<guid>``,
then one line per message ``<uid> [<key><value> ...] :<base>`` (version 1: ``1 <uidvalidity>
<nextuid>`` and ``<uid> <base>``). ``N`` is written lazily, so the next UID is the larger of ``N``
and the highest UID + 1. Dovecot takes INTERNALDATE from the file's mtime, and ``,S=<size>`` in the
base is the file's size (``,W=`` its size with CRLF line ends). The root's ``subscriptions`` file
is ``V\\t2``, an empty line, then one name per line with the levels separated by TAB (version 1,
Courier's: one name per line with ``.`` between levels, ``INBOX.`` prefixed).

Nothing here touches the database; :mod:`sora_kernel.maildir_transfer` moves messages in and out.
"""

from __future__ import annotations

import binascii
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .flags import ANSWERED, DELETED, DRAFT, FLAGGED, SEEN

INBOX = "INBOX"
DELIMITER = "/"
INFO_SEPARATOR = ":2,"
FORWARDED = "$Forwarded"
MAX_DOVECOT_KEYWORDS = 26

# spec letter -> Sora system flag bit (P is a keyword, handled apart)
SYSTEM_LETTERS: dict[str, int] = {"D": DRAFT, "F": FLAGGED, "R": ANSWERED, "S": SEEN, "T": DELETED}

# IMAP atom-chars a keyword may hold (RFC 3501 flag-keyword), without "]" and "\\"
_KEYWORD = re.compile(r"^[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+$")
_DIRECT = re.compile(r"[\x20-\x25\x27-\x7e]+")
_B64_CHARS = re.compile(rb"[A-Za-z0-9+,]*")
_UID_LINE = re.compile(r"^(\d+)(?: (.*?))? ?:(.+)$")


class MaildirFormatError(ValueError):
    """A name, flag string, uidlist or keywords file does not follow the format; the text says why."""


# ------------------------------------------------------------------------------------------ mUTF-7


def _b64encode(text: str) -> bytes:
    raw = text.encode("utf-16-be")
    return binascii.b2a_base64(raw, newline=False).rstrip(b"=").replace(b"/", b",")


def mutf7_encode(name: str) -> str:
    """A name in modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pos, length = 0, len(name)
    while pos < length:
        match = _DIRECT.match(name, pos)
        if match:
            out.append(match.group())
            pos = match.end()
            continue
        if name[pos] == "&":
            out.append("&-")
            pos += 1
            continue
        end = pos
        while end < length and not ("\x20" <= name[end] <= "\x7e"):
            end += 1
        out.append("&" + _b64encode(name[pos:end]).decode("ascii") + "-")
        pos = end
    return "".join(out)


def mutf7_decode(data: str) -> str:
    """Decode modified UTF-7, strictly; MaildirFormatError on anything Dovecot would not write."""
    parts: list[str] = []
    pos, length = 0, len(data)
    while pos < length:
        amp = data.find("&", pos)
        direct = data[pos:] if amp < 0 else data[pos:amp]
        if any(not ("\x20" <= ch <= "\x7e") for ch in direct):
            raise MaildirFormatError(f"{data!r} is not modified UTF-7 (8-bit or control characters)")
        parts.append(direct)
        if amp < 0:
            break
        end = data.find("-", amp + 1)
        if end < 0:
            raise MaildirFormatError(f"{data!r}: unterminated modified UTF-7 sequence")
        run = data[amp + 1:end].encode("ascii", "replace")
        pos = end + 1
        if not run:
            parts.append("&")
            continue
        if not _B64_CHARS.fullmatch(run) or len(run) % 4 == 1:
            raise MaildirFormatError(f"{data!r}: invalid modified UTF-7 sequence")
        padded = run.replace(b",", b"/") + b"=" * (-len(run) % 4)
        try:
            text = binascii.a2b_base64(padded, strict_mode=True).decode("utf-16-be")
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise MaildirFormatError(f"{data!r}: invalid modified UTF-7 sequence") from exc
        parts.append(text)
    return "".join(parts)


# ------------------------------------------------------------------------------------------ folder names


def folder_to_mailbox(dirname: str) -> str:
    """A Maildir++ directory name (``""`` for the root, ``.Sent.2024``) as a Sora mailbox name."""
    if dirname in ("", "."):
        return INBOX
    if not dirname.startswith(".") or dirname in ("..",):
        raise MaildirFormatError(f"{dirname!r} is not a Maildir++ folder (no leading '.')")
    levels = dirname[1:].split(".")
    if any(not level for level in levels):
        raise MaildirFormatError(f"{dirname!r} has an empty hierarchy level")
    names = [mutf7_decode(level) for level in levels]
    if any(DELIMITER in name for name in names):
        raise MaildirFormatError(f"{dirname!r} has a level containing {DELIMITER!r}")
    if names[0].upper() == INBOX:
        names[0] = INBOX
    return DELIMITER.join(names)


def mailbox_to_folder(name: str) -> str:
    """A Sora mailbox name as a Maildir++ directory name (``""`` for INBOX)."""
    if name.upper() == INBOX:
        return ""
    levels = name.split(DELIMITER)
    for level in levels:
        if "." in level:
            raise MaildirFormatError(f"mailbox {name!r}: the level {level!r} holds '.', the Maildir++ separator")
        if not level:
            raise MaildirFormatError(f"mailbox {name!r} has an empty hierarchy level")
    return "." + ".".join(mutf7_encode(level) for level in levels)


# ------------------------------------------------------------------------------------------ file names and flags


def split_filename(filename: str) -> tuple[str, str]:
    """``base:2,FS`` → (base, "FS"); a name without ``:2,`` has no flags."""
    base, sep, info = filename.partition(INFO_SEPARATOR)
    if not sep:
        base = filename.split(":", 1)[0]
        return base, ""
    return base, info


def filename_size(base: str) -> int | None:
    """The ``,S=<size>`` of a Dovecot base name, or None."""
    match = re.search(r",S=(\d+)", base)
    return int(match.group(1)) if match else None


def is_valid_keyword(name: str) -> bool:
    """Whether a keyword can be an IMAP flag-keyword (an atom, not a system flag)."""
    return bool(_KEYWORD.match(name)) and len(name) <= 250


@dataclass(frozen=True, slots=True)
class MessageFlags:
    """The flags of a Maildir file in Sora's terms."""

    bits: int
    keywords: tuple[str, ...]
    unknown: str = ""  # letters no table explains (reported, not kept)


def parse_info(info: str, keywords: Mapping[int, str]) -> MessageFlags:
    """Flags from the letters after ``:2,``, keywords resolved through ``dovecot-keywords``."""
    bits = 0
    names: list[str] = []
    unknown: list[str] = []
    for letter in info:
        if letter in SYSTEM_LETTERS:
            bits |= SYSTEM_LETTERS[letter]
        elif letter == "P":
            if FORWARDED not in names:
                names.append(FORWARDED)
        elif "a" <= letter <= "z":
            name = keywords.get(ord(letter) - ord("a"))
            if name is None:
                unknown.append(letter)
            elif name not in names:
                names.append(name)
        elif letter != ",":
            unknown.append(letter)
    return MessageFlags(bits, tuple(names), "".join(unknown))


def format_info(bits: int, keywords: Iterable[str], index: Mapping[str, int]) -> tuple[str, list[str]]:
    """The letters after ``:2,`` for Sora flags, keywords through ``index`` (name → 0..25).

    Returns (letters, keywords that have no letter). ``$Forwarded`` is written as a keyword letter
    when it has one (Dovecot shows ``P`` to nobody), else as ``P``.
    """
    letters = [letter for letter, bit in SYSTEM_LETTERS.items() if bits & bit]
    lost: list[str] = []
    for name in keywords:
        number = index.get(name)
        if number is not None and number < MAX_DOVECOT_KEYWORDS:
            letters.append(chr(ord("a") + number))
        elif name == FORWARDED:
            letters.append("P")
        else:
            lost.append(name)
    return "".join(sorted(set(letters))), lost


# ------------------------------------------------------------------------------------------ dovecot-keywords


def parse_keywords(text: str) -> tuple[dict[int, str], list[str]]:
    """``dovecot-keywords`` → ({number: name}, problems). Bad lines are reported and left out."""
    table: dict[int, str] = {}
    problems: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        number, _, name = line.partition(" ")
        if not number.isdigit() or not name:
            problems.append(f"line {lineno}: expected '<number> <keyword>', got {line!r}")
            continue
        if not is_valid_keyword(name):
            problems.append(f"line {lineno}: {name!r} cannot be an IMAP keyword")
            continue
        table[int(number)] = name
    return table, problems


def format_keywords(names: Sequence[str]) -> str:
    """``dovecot-keywords`` for keywords numbered in the given order."""
    return "".join(f"{number} {name}\n" for number, name in enumerate(names))


# ------------------------------------------------------------------------------------------ dovecot-uidlist


@dataclass(frozen=True, slots=True)
class UidEntry:
    """One uidlist line: the UID and Dovecot's extension fields (``S``, ``W``, ``G``, ``P``, ``O``)."""

    uid: int
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Uidlist:
    """A parsed ``dovecot-uidlist``: UIDVALIDITY, next UID, and UID per base name."""

    uidvalidity: int
    nextuid: int
    guid: str = ""
    entries: dict[str, UidEntry] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def next_uid(self) -> int:
        """The next UID Dovecot would give: N, or above the highest UID listed."""
        highest = max((e.uid for e in self.entries.values()), default=0)
        return max(self.nextuid, highest + 1)


def parse_uidlist(text: str) -> Uidlist:
    """Parse ``dovecot-uidlist`` (versions 1 and 3). MaildirFormatError for a bad header; a bad
    line is listed in ``problems`` and skipped (that message gets a new UID)."""
    lines = text.splitlines()
    if not lines:
        raise MaildirFormatError("empty uidlist")
    header = lines[0].split(" ")
    if header[0] == "1" and len(header) >= 3 and header[1].isdigit() and header[2].isdigit():
        result = Uidlist(int(header[1]), int(header[2]))
        version = 1
    elif header[0] == "3":
        values = {item[:1]: item[1:] for item in header[1:] if item}
        if not values.get("V", "").isdigit() or not values.get("N", "").isdigit():
            raise MaildirFormatError(f"uidlist header {lines[0]!r} lacks V<uidvalidity> or N<nextuid>")
        result = Uidlist(int(values["V"]), int(values["N"]), values.get("G", ""))
        version = 3
    else:
        raise MaildirFormatError(f"unsupported uidlist header {lines[0]!r} (versions 1 and 3 are known)")
    if not 0 < result.uidvalidity < 2**32:
        raise MaildirFormatError(f"uidlist UIDVALIDITY {result.uidvalidity} is out of range")
    last = 0
    used: set[int] = set()
    for lineno, line in enumerate(lines[1:], 2):
        if not line:
            continue
        if version == 1:
            uid_text, _, name = line.partition(" ")
            fields: tuple[tuple[str, str], ...] = ()
            ok = uid_text.isdigit() and bool(name)
        else:
            match = _UID_LINE.match(line)
            ok = match is not None
            if match is not None:
                uid_text, name = match.group(1), match.group(3)
                fields = tuple((item[:1], item[1:]) for item in (match.group(2) or "").split(" ") if item)
        if not ok:
            result.problems.append(f"line {lineno}: cannot parse {line!r}")
            continue
        uid = int(uid_text)
        base = split_filename(name)[0]
        if not 0 < uid < 2**32 or uid in used:
            result.problems.append(f"line {lineno}: UID {uid} is out of range or listed twice")
            continue
        if uid < last:
            result.problems.append(f"line {lineno}: UID {uid} is below the line before ({last})")
            continue
        if base in result.entries:
            result.problems.append(f"line {lineno}: {base} is listed twice")
            continue
        used.add(uid)
        last = uid
        result.entries[base] = UidEntry(uid, fields)
    return result


def format_uidlist(uidvalidity: int, nextuid: int, entries: Iterable[tuple[int, str]], guid: str = "") -> str:
    """``dovecot-uidlist`` version 3 for (uid, base) pairs (written in UID order)."""
    head = f"3 V{uidvalidity} N{nextuid}" + (f" G{guid}" if guid else "")
    body = "".join(f"{uid} :{base}\n" for uid, base in sorted(entries))
    return head + "\n" + body


# ------------------------------------------------------------------------------------------ subscriptions


def parse_subscriptions(text: str) -> list[str]:
    """Names in a ``subscriptions`` file (Dovecot version 2, or the one-name-per-line form of
    version 1 and Courier's ``courierimapsubscribed``); MaildirFormatError for an undecodable name."""
    lines = text.splitlines()
    names: list[str] = []
    if lines and lines[0].startswith("V\t"):
        for line in lines[1:]:
            if line:
                names.append(DELIMITER.join(mutf7_decode(level) for level in line.split("\t")))
        return names
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if line.upper().startswith("INBOX."):
            line = line[len("INBOX."):]
        names.append(DELIMITER.join(mutf7_decode(level) for level in line.split(".")))
    return names


def format_subscriptions(names: Iterable[str]) -> str:
    """A Dovecot version 2 ``subscriptions`` file."""
    lines = ["\t".join(mutf7_encode(level) for level in name.split(DELIMITER)) for name in names]
    return "V\t2\n\n" + "".join(line + "\n" for line in lines)


# ------------------------------------------------------------------------------------------ scanning


@dataclass(frozen=True, slots=True)
class MaildirFile:
    """One message file found in ``cur/`` or ``new/``."""

    path: Path
    base: str
    info: str
    size: int
    mtime: float


@dataclass(slots=True)
class MaildirFolder:
    """One mailbox of a Maildir++ root; ``name`` is None when the directory name cannot be one."""

    path: Path
    dirname: str
    name: str | None
    problem: str = ""
    files: list[MaildirFile] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def find_folders(root: Path) -> list[MaildirFolder]:
    """The root (INBOX) and every ``.name`` folder under it, by directory name."""
    folders: list[MaildirFolder] = []
    if (root / "cur").is_dir() or (root / "new").is_dir():
        folders.append(MaildirFolder(root, "", INBOX))
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.name.startswith(".") or entry.name in (".", "..") or not entry.is_dir():
            continue
        path = Path(entry.path)
        if not ((path / "cur").is_dir() or (path / "new").is_dir()):
            continue
        try:
            folders.append(MaildirFolder(path, entry.name, folder_to_mailbox(entry.name)))
        except MaildirFormatError as exc:
            folders.append(MaildirFolder(path, entry.name, None, str(exc)))
    return folders


def scan_files(folder: MaildirFolder) -> None:
    """Fill ``folder.files`` from ``cur/`` and ``new/`` (``tmp/`` holds unfinished deliveries)."""
    for sub in ("cur", "new"):
        directory = folder.path / sub
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue
        except OSError as exc:
            folder.unreadable.append((directory, exc.strerror or str(exc)))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                info = entry.stat()
            except OSError as exc:
                folder.unreadable.append((Path(entry.path), exc.strerror or str(exc)))
                continue
            if not entry.is_file():
                continue
            base, flags = split_filename(entry.name)
            folder.files.append(MaildirFile(Path(entry.path), base, flags, info.st_size, info.st_mtime))
    folder.files.sort(key=lambda f: f.base)


def read_text(path: Path) -> str | None:
    """A small control file as text (None when absent); bytes that are not UTF-8 become U+FFFD."""
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return None


def to_lf(raw: bytes) -> bytes:
    """CRLF line ends as LF, as Dovecot stores messages."""
    return raw.replace(b"\r\n", b"\n")
