"""Typed settings declared once: a frozen dataclass whose fields generate the ``ConfigSection``.

A protocol writes each key, its type, default and help text in one place::

    @dataclass(frozen=True, slots=True)
    class Pop3Settings(SectionSettings):
        SECTION: ClassVar[str] = "pop3"
        HELP: ClassVar[str] = "POP3 server."

        addr: str = setting("addr", "127.0.0.1:1110", "Plain listener; empty disables it.")
        max_errors: int = setting("int", 5, "Failed commands before closing; 0 = no limit.")

``Pop3Settings.config_section()`` is what ``sora_config_sections`` returns, and
``Pop3Settings.from_config(config)`` reads the validated values once at start-up. ``minimum`` clamps a
value, ``zero_means`` replaces 0 (a "0 = default" key), and ``convert`` turns a validated value into
a richer one (CIDR strings into networks); a failing ``convert`` stops start-up with a ConfigError
naming the key. The field's Python default is the converted config default, so a settings object can
also be built directly in unit tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Self

from ..config import Config, convert
from ..errors import ConfigError
from ..types import ConfigSection, Setting

_META = "sora_setting"


@dataclasses.dataclass(frozen=True, slots=True)
class _Declared:
    setting: Setting
    minimum: float | None
    zero_means: Any
    convert: Callable[[Any], Any] | None


def setting(kind: str, default: Any, help: str = "", *, secret: bool = False, choices: tuple[str, ...] = (),
            minimum: float | None = None, zero_means: Any = None,
            convert: Callable[[Any], Any] | None = None) -> Any:
    """Declare one key of a :class:`SectionSettings` class (the key is the field name)."""
    declared = _Declared(Setting("", kind, default, help, secret, choices), minimum, zero_means, convert)
    return dataclasses.field(default=_python_default(declared), metadata={_META: declared})


def _python_default(declared: _Declared) -> Any:
    return _finish("", "", convert(declared.setting, declared.setting.default), declared)


def _finish(section: str, key: str, value: Any, declared: _Declared) -> Any:
    if isinstance(value, list):
        value = tuple(value)
    if declared.zero_means is not None and not value:
        value = declared.zero_means
    if declared.minimum is not None and value < declared.minimum:
        value = type(value)(declared.minimum)
    if declared.convert is not None:
        try:
            value = declared.convert(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"[{section}] {key} = {value!r}: {exc}") from None
    return value


class SectionSettings:
    """Base of a typed settings class for one ``[section]``; subclasses are frozen dataclasses.

    Fields declared with :func:`setting` are config keys; other fields (values derived from other
    sections) are filled by :meth:`derived`.
    """

    SECTION: ClassVar[str]
    HELP: ClassVar[str] = ""

    @classmethod
    def _declared(cls) -> list[tuple[str, _Declared]]:
        return [(f.name, f.metadata[_META]) for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                if _META in f.metadata]

    @classmethod
    def config_section(cls) -> ConfigSection:
        """The ``ConfigSection`` to return from ``sora_config_sections``."""
        settings = tuple(dataclasses.replace(declared.setting, key=name) for name, declared in cls._declared())
        return ConfigSection(cls.SECTION, settings, cls.HELP)

    @classmethod
    def derived(cls, config: Config) -> dict[str, Any]:
        """Values of fields that are not keys of this section (override to read other sections)."""
        return {}

    @classmethod
    def from_config(cls, config: Config) -> Self:
        """Read the validated section once (clamped, defaulted and converted as declared)."""
        values = config.section(cls.SECTION)
        kwargs = {name: _finish(cls.SECTION, name, values[name], declared) for name, declared in cls._declared()}
        kwargs.update(cls.derived(config))
        return cls(**kwargs)
