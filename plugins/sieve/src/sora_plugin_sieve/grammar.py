"""RFC 5228 lexer and parser: source text to a syntax tree, errors with line and column.

The tree is generic (a command or test is a name, its arguments, its tests and its block); what each
name means and which arguments it takes is checked afterwards by :mod:`.compiler`. Multi-line
strings keep CRLF line ends whatever the source used, so a ``text:`` body is the same on every client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

QUANTIFIERS = {"K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024}
MAX_NUMBER = 2**63 - 1


class SieveCompileError(Exception):
    """A script that does not compile; ``str()`` is ``line L, column C: message``."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token with its position (1-based)."""

    kind: str  # identifier, tag, number, string, punct, eof
    value: object
    line: int
    column: int
    multiline: bool = False


@dataclass(slots=True)
class Tag:
    """A ``:tag`` argument."""

    name: str
    line: int
    column: int


@dataclass(slots=True)
class Number:
    """A number argument, quantifier applied."""

    value: int
    line: int
    column: int


@dataclass(slots=True)
class StringList:
    """A string (``single``) or a bracketed string list."""

    values: list[str]
    single: bool
    line: int
    column: int


Argument = Tag | Number | StringList


@dataclass(slots=True)
class Node:
    """A command (with ``block`` when it has one) or a test."""

    name: str
    line: int
    column: int
    arguments: list[Argument] = field(default_factory=list)
    tests: list[Node] = field(default_factory=list)
    test_list: bool = False
    block: list[Node] | None = None


class Lexer:
    """Turns source text into tokens; bracket and hash comments are skipped."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.line = 1
        self.col = 1

    def _error(self, message: str, line: int | None = None, col: int | None = None) -> SieveCompileError:
        return SieveCompileError(message, self.line if line is None else line, self.col if col is None else col)

    def _advance(self, count: int = 1) -> None:
        for _ in range(count):
            if self.pos >= len(self.src):
                return
            if self.src[self.pos] == "\n":
                self.line += 1
                self.col = 1
            else:
                self.col += 1
            self.pos += 1

    def _skip_space(self) -> None:
        src = self.src
        while self.pos < len(src):
            ch = src[self.pos]
            if ch in " \t\r\n":
                self._advance()
            elif ch == "#":
                while self.pos < len(src) and src[self.pos] != "\n":
                    self._advance()
            elif src.startswith("/*", self.pos):
                line, col = self.line, self.col
                end = src.find("*/", self.pos + 2)
                if end < 0:
                    raise self._error("unterminated bracket comment", line, col)
                self._advance(end + 2 - self.pos)
            else:
                return

    def tokens(self) -> list[Token]:
        """Every token of the source, then an ``eof`` token."""
        out: list[Token] = []
        src = self.src
        while True:
            self._skip_space()
            line, col = self.line, self.col
            if self.pos >= len(src):
                out.append(Token("eof", None, line, col))
                return out
            ch = src[self.pos]
            if ch in "[](),;{}":
                self._advance()
                out.append(Token("punct", ch, line, col))
            elif ch == '"':
                out.append(Token("string", self._quoted(), line, col))
            elif ch == ":":
                self._advance()
                name = self._identifier()
                if not name:
                    raise self._error("expected a tag name after ':'", line, col)
                out.append(Token("tag", name.lower(), line, col))
            elif ch.isdigit():
                out.append(Token("number", self._number(), line, col))
            elif ch.isalpha() or ch == "_":
                name = self._identifier()
                if name.lower() == "text" and self.pos < len(src) and src[self.pos] == ":":
                    self._advance()
                    out.append(Token("string", self._multiline(line, col), line, col, multiline=True))
                else:
                    out.append(Token("identifier", name.lower(), line, col))
            else:
                raise self._error(f"unexpected character {ch!r}")

    def _identifier(self) -> str:
        start = self.pos
        src = self.src
        while self.pos < len(src) and (src[self.pos].isascii() and (src[self.pos].isalnum() or src[self.pos] == "_")):
            if self.pos == start and src[self.pos].isdigit():
                break
            self._advance()
        return src[start:self.pos]

    def _number(self) -> int:
        start = self.pos
        src = self.src
        while self.pos < len(src) and src[self.pos].isdigit():
            self._advance()
        value = int(src[start:self.pos])
        if self.pos < len(src) and src[self.pos].upper() in QUANTIFIERS:
            value *= QUANTIFIERS[src[self.pos].upper()]
            self._advance()
        if self.pos < len(src) and (src[self.pos].isalnum() or src[self.pos] == "_"):
            raise self._error("invalid character after number")
        if value > MAX_NUMBER:
            raise self._error("number too large")
        return value

    def _quoted(self) -> str:
        line, col = self.line, self.col
        self._advance()
        src = self.src
        parts: list[str] = []
        while True:
            if self.pos >= len(src):
                raise self._error("unterminated string", line, col)
            ch = src[self.pos]
            if ch == '"':
                self._advance()
                return "".join(parts).replace("\r\n", "\n").replace("\n", "\r\n")
            if ch == "\\":
                self._advance()
                if self.pos >= len(src):
                    raise self._error("unterminated string", line, col)
                ch = src[self.pos]
            parts.append(ch)
            self._advance()

    def _multiline(self, line: int, col: int) -> str:
        src = self.src
        while self.pos < len(src) and src[self.pos] in " \t":
            self._advance()
        if self.pos < len(src) and src[self.pos] == "#":
            while self.pos < len(src) and src[self.pos] != "\n":
                self._advance()
        elif src.startswith("\r\n", self.pos):
            self._advance()
        if self.pos >= len(src) or src[self.pos] != "\n":
            raise self._error("expected end of line after 'text:'")
        self._advance()
        lines: list[str] = []
        while True:
            if self.pos >= len(src):
                raise self._error("unterminated multi-line string", line, col)
            end = src.find("\n", self.pos)
            raw = src[self.pos:] if end < 0 else src[self.pos:end]
            text = raw[:-1] if raw.endswith("\r") else raw
            if text == ".":
                self._advance(len(raw) + (0 if end < 0 else 1))
                return "".join(item + "\r\n" for item in lines)
            if end < 0:
                raise self._error("unterminated multi-line string", line, col)
            lines.append(text[1:] if text.startswith("..") else text)
            self._advance(len(raw) + 1)


class Parser:
    """Recursive descent over the tokens (RFC 5228 §8.2)."""

    def __init__(self, source: str, *, max_nesting: int = 64) -> None:
        self.tokens = Lexer(source).tokens()
        self.index = 0
        self.max_nesting = max_nesting
        self.depth = 0

    def _peek(self) -> Token:
        return self.tokens[self.index]

    def _next(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "eof":
            self.index += 1
        return token

    @staticmethod
    def _describe(token: Token) -> str:
        if token.kind == "eof":
            return "end of script"
        if token.kind == "punct":
            return f"'{token.value}'"
        if token.kind == "tag":
            return f"tag ':{token.value}'"
        if token.kind == "string":
            return "string"
        return f"{token.kind} {token.value!r}"

    def parse(self) -> list[Node]:
        """The script's top-level commands."""
        commands = self._commands()
        token = self._peek()
        if token.kind != "eof":
            raise SieveCompileError(f"unexpected {self._describe(token)}", token.line, token.column)
        return commands

    def _commands(self) -> list[Node]:
        commands: list[Node] = []
        while True:
            token = self._peek()
            if token.kind == "identifier":
                commands.append(self._command())
            elif token.kind == "eof" or (token.kind == "punct" and token.value == "}"):
                return commands
            else:
                raise SieveCompileError(f"expected a command, found {self._describe(token)}",
                                        token.line, token.column)

    def _command(self) -> Node:
        token = self._next()
        node = Node(str(token.value), token.line, token.column)
        self._arguments(node)
        end = self._next()
        if end.kind == "punct" and end.value == ";":
            return node
        if end.kind == "punct" and end.value == "{":
            self.depth += 1
            if self.depth > self.max_nesting:
                raise SieveCompileError("blocks nested too deeply", end.line, end.column)
            node.block = self._commands()
            close = self._next()
            self.depth -= 1
            if not (close.kind == "punct" and close.value == "}"):
                raise SieveCompileError(f"expected '}}', found {self._describe(close)}", close.line, close.column)
            return node
        raise SieveCompileError(f"expected ';' or '{{' after command \"{node.name}\", found "
                                f"{self._describe(end)}", end.line, end.column)

    def _arguments(self, node: Node) -> None:
        while True:
            token = self._peek()
            if token.kind == "tag":
                self._next()
                node.arguments.append(Tag(str(token.value), token.line, token.column))
            elif token.kind == "number":
                self._next()
                value = token.value
                assert isinstance(value, int)
                node.arguments.append(Number(value, token.line, token.column))
            elif token.kind == "string":
                self._next()
                node.arguments.append(StringList([str(token.value)], True, token.line, token.column))
            elif token.kind == "punct" and token.value == "[":
                node.arguments.append(self._string_list())
            else:
                break
        token = self._peek()
        if token.kind == "identifier":
            node.tests.append(self._test())
        elif token.kind == "punct" and token.value == "(":
            self._next()
            node.test_list = True
            self.depth += 1
            if self.depth > self.max_nesting:
                raise SieveCompileError("tests nested too deeply", token.line, token.column)
            while True:
                node.tests.append(self._test())
                sep = self._next()
                if sep.kind == "punct" and sep.value == ")":
                    break
                if not (sep.kind == "punct" and sep.value == ","):
                    raise SieveCompileError(f"expected ',' or ')' in test list, found {self._describe(sep)}",
                                            sep.line, sep.column)
            self.depth -= 1

    def _string_list(self) -> StringList:
        start = self._next()
        values: list[str] = []
        while True:
            token = self._next()
            if token.kind != "string":
                raise SieveCompileError(f"expected a string in string list, found {self._describe(token)}",
                                        token.line, token.column)
            values.append(str(token.value))
            sep = self._next()
            if sep.kind == "punct" and sep.value == "]":
                return StringList(values, False, start.line, start.column)
            if not (sep.kind == "punct" and sep.value == ","):
                raise SieveCompileError(f"expected ',' or ']' in string list, found {self._describe(sep)}",
                                        sep.line, sep.column)

    def _test(self) -> Node:
        token = self._next()
        if token.kind != "identifier":
            raise SieveCompileError(f"expected a test, found {self._describe(token)}", token.line, token.column)
        node = Node(str(token.value), token.line, token.column)
        self.depth += 1
        if self.depth > self.max_nesting:
            raise SieveCompileError("tests nested too deeply", token.line, token.column)
        self._arguments(node)
        self.depth -= 1
        return node


def parse(source: str) -> list[Node]:
    """Parse ``source`` into its top-level commands; raises :class:`SieveCompileError`."""
    return Parser(source).parse()
