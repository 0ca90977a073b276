"""The RFC 5228 parser and the compile checks: what compiles, and the line and column of what does not."""

from __future__ import annotations

import pytest
from sora_plugin_sieve.api import SieveCompileError, capabilities, check_script, compile_script


def test_rfc5228_example_compiles() -> None:
    source = '''require ["fileinto"];
# a comment
if header :is "Sender" "owner-ietf-mrg@imc.org" /* bracket
comment */ {
    fileinto "filter";
} elsif address :DOMAIN :is ["From", "To"] "example.com" {
    keep;
} elsif anyof (not address :all :contains ["To", "Cc", "Bcc"] "me@example.com",
               header :matches "subject" ["*make*money*fast*", "*university*dipl*mas*"]) {
    fileinto "spam";
} elsif size :over 100K {
    discard;
} else {
    fileinto "personal";
}
'''
    assert check_script(source) == []


def test_error_names_line_and_column() -> None:
    with pytest.raises(SieveCompileError) as info:
        check_script('require "fileinto";\n\nif true {\n    fileinot "x";\n}\n')
    err = info.value
    assert (err.line, err.column, err.message) == (4, 5, 'unknown command "fileinot"')
    assert str(err) == 'line 4, column 5: unknown command "fileinot"'


@pytest.mark.parametrize(("source", "line", "column", "fragment"), [
    ("keep", 1, 5, "expected ';'"),
    ('fileinto "x";', 1, 1, 'needs require "fileinto"'),
    ('require "no-such";', 1, 1, "not supported"),
    ('if header :is "a" { keep; }', 1, 4, "positional"),
    ('keep;\nrequire "fileinto";', 2, 1, "require must come before"),
    ('if true { keep; }\nelse keep;', 2, 1, "takes no test"),
    ('else { keep; }', 1, 1, "without a preceding if"),
    ('if header :is :contains "a" "b" { keep; }', 1, 15, "together with"),
    ('if size 100 { keep; }', 1, 4, ":over or :under"),
    ('if "x" { keep; }', 1, 1, "positional"),
    ('keep; /* unterminated', 1, 7, "unterminated"),
    ('redirect "not an address";', 1, 1, "invalid address"),
    ('if header :comparator "i;nope" "a" "b" { keep; }', 1, 4, "unknown comparator"),
    ('if address :is "subject" "b" { keep; }', 1, 4, "not an address header"),
    ('discard :copy;', 1, 9, "unknown tag"),
])
def test_compile_errors(source: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(SieveCompileError) as info:
        check_script(source)
    assert (info.value.line, info.value.column) == (line, column), str(info.value)
    assert fragment in info.value.message


def test_strings_and_numbers() -> None:
    script = compile_script('if size :over 2K { redirect "a@ex\\ample.com"; }\n'
                            'if header :is "x" text:\r\nline one\n..dot\n.\n { keep; }')
    first, second = script.commands
    assert first.tests[0].args == [2048]
    assert first.block is not None and first.block[0].args == ["a@example.com"]
    assert second.tests[0].args[1] == ["line one\r\n.dot\r\n"]


def test_encoded_character() -> None:
    from sora_plugin_sieve.api import registry
    from sora_plugin_sieve.compiler import Compiler

    script = Compiler(registry()).compile('require ["encoded-character", "fileinto"];\n'
                            'fileinto "${hex:48 65}${unicode:006C 006c}o ${hex:zz}";')
    assert script.commands[0].args == ["Hello ${hex:zz}"]


def test_compiled_once_per_source() -> None:
    source = 'keep;'
    assert compile_script(source) is compile_script(source)


def test_capabilities_are_a_stable_list() -> None:
    caps = capabilities()
    assert "fileinto" in caps and len(caps) == len(set(caps))
    assert "vnd.dovecot.testsuite" not in caps
