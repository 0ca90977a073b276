"""One TOML file, typed and validated; ``SORA_<SECTION>__<KEY>`` environment overrides.

Each section is declared by the kernel or a plugin as a :class:`~sora_kernel.types.ConfigSection`.
Unknown keys in a declared section are errors; sections nobody declares are kept as raw tables so that
a disabled plugin's settings survive a round trip.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .types import ConfigSection, Setting

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
               "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3}
_DURATION_UNITS = {"ms": 0.001, "s": 1, "": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: Any) -> int:
    """``25mb`` → bytes; integers pass through."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 25mb")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    m = _NUMBER_UNIT.match(str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError("expected a size such as 512kb, 25mb or 1gb")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_duration(value: Any) -> float:
    """``30s``, ``5m``, ``14d`` → seconds; numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    total = 0.0
    text = str(value).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([a-z]*)", "", text).strip():
        raise ValueError("expected a duration such as 500ms, 30s, 5m, 2h or 14d")
    for number, unit in parts:
        if unit not in _DURATION_UNITS:
            raise ValueError(f"unknown duration unit {unit!r}; use ms, s, m, h, d or w")
        total += float(number) * _DURATION_UNITS[unit]
    return total


def parse_addr(value: Any) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    text = str(value).strip()
    m = re.match(r"^\[([^\]]+)\]:(\d+)$", text) or re.match(r"^([^:]*):(\d+)$", text)
    if not m:
        raise ValueError("expected host:port, e.g. 127.0.0.1:143 or [::1]:143")
    port = int(m.group(2))
    if port > 65535:
        raise ValueError("port out of range")
    return (m.group(1) or "0.0.0.0", port)


def convert(setting: Setting, value: Any) -> Any:
    """Convert a raw TOML/env value to the setting's type, raising ValueError with what was expected."""
    kind = setting.kind
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError("expected a string")
        result: Any = value
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("expected an integer")
        try:
            result = int(value)
        except ValueError:
            raise ValueError("expected an integer") from None
    elif kind == "float":
        try:
            result = float(value)
        except (TypeError, ValueError):
            raise ValueError("expected a number") from None
    elif kind == "bool":
        if isinstance(value, bool):
            result = value
        elif isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            result = value.lower() in ("1", "true", "yes", "on")
        else:
            raise ValueError("expected true or false")
    elif kind == "size":
        result = parse_size(value)
    elif kind == "duration":
        result = parse_duration(value)
    elif kind == "addr":
        if value == "" or value is None:
            result = ""
        else:
            parse_addr(value)
            result = str(value)
    elif kind == "list":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of strings")
        result = list(value)
    elif kind == "tables":  # [[section.key]] arrays of tables; the owner validates each table's keys
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ValueError("expected an array of tables ([[section.key]])")
        result = [dict(v) for v in value]
    else:  # pragma: no cover - programming error in a section declaration
        raise ValueError(f"unknown setting kind {kind}")
    if setting.choices and result not in setting.choices:
        raise ValueError("expected one of " + ", ".join(setting.choices))
    return result


@dataclass
class Config:
    """Validated configuration: ``config.section("imap")["addr"]`` or ``config.get("imap", "addr")``."""

    path: Path | None
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, ConfigSection] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """The typed values of one declared section."""
        try:
            return self.values[name]
        except KeyError:
            raise ConfigError(f"[{name}]: no such configuration section is declared") from None

    def get(self, section: str, key: str) -> Any:
        """One typed value."""
        return self.section(section)[key]

    @property
    def data_dir(self) -> Path:
        """The data directory, absolute, relative paths taken from the config file's folder."""
        configured = Path(self.get("server", "data_dir")).expanduser()
        if not configured.is_absolute():
            base = self.path.parent if self.path else Path.cwd()
            configured = base / configured
        return configured.resolve()

    def dump(self, *, mask_secrets: bool = True) -> dict[str, dict[str, Any]]:
        """All sections with their effective values; secrets masked."""
        out: dict[str, dict[str, Any]] = {}
        for name, section in self.sections.items():
            values = dict(self.values.get(name, {}))
            if mask_secrets:
                for setting in section.settings:
                    if setting.secret and values.get(setting.key):
                        values[setting.key] = "********"
            out[name] = values
        return out


def load_raw(path: Path | None) -> dict[str, Any]:
    """Read the TOML file, or an empty config when there is none."""
    if path is None or not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _section_table(raw: Mapping[str, Any], name: str) -> Any:
    """The raw table of a section; ``a.b`` is TOML's ``[a.b]`` (``raw["a"]["b"]``) or a flat ``"a.b"`` key."""
    if name in raw or "." not in name:
        return raw.get(name, {})
    table: Any = raw
    for part in name.split("."):
        table = table.get(part, {}) if isinstance(table, dict) else {}
    return table


def build_config(
    path: Path | None,
    raw: Mapping[str, Any],
    sections: Iterable[ConfigSection],
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate ``raw`` against the declared sections, apply env overrides, fill defaults."""
    env = os.environ if environ is None else environ
    config = Config(path=path, raw=dict(raw))
    errors: list[str] = []
    declared = list(sections)
    for section in declared:
        if section.name in config.sections:
            raise ConfigError(f"[{section.name}] is declared twice")
        config.sections[section.name] = section
        table = _section_table(raw, section.name)
        if not isinstance(table, dict):
            errors.append(f"[{section.name}]: expected a table")
            table = {}
        known = {s.key for s in section.settings}
        # a declared ``[relay.queue]`` is a sub-table of ``[relay]``, not an unknown key of it
        subtables = {s.name.split(".", 1)[1] for s in declared if s.name.startswith(section.name + ".")}
        for key in table:
            if key not in known and not (key in subtables and isinstance(table[key], dict)):
                errors.append(f"[{section.name}] {key}: unknown key (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for setting in section.settings:
            env_name = f"SORA_{section.name.upper().replace('.', '_')}__{setting.key.upper()}"
            source = table.get(setting.key, setting.default)
            origin = "file"
            if env_name in env:
                source, origin = env[env_name], env_name
            elif setting.key not in table:
                origin = "default"
            try:
                values[setting.key] = convert(setting, source)
            except ValueError as exc:
                shown = "********" if setting.secret else repr(source)
                where = f" (from {origin})" if origin != "file" else ""
                errors.append(f"[{section.name}] {setting.key} = {shown}{where}: {exc}")
        config.values[section.name] = values
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    return config


def render_template(sections: Iterable[ConfigSection], overrides: Mapping[str, Mapping[str, Any]]) -> str:
    """A commented sora.toml with every declared key at its default (or an override)."""
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment("Sora configuration. Every key has a default; remove a key to use it."))
    doc.add(tomlkit.comment("Sizes take units (512kb, 25mb), durations too (30s, 5m, 14d)."))
    doc.add(tomlkit.comment("Environment overrides: SORA_<SECTION>__<KEY>, e.g. SORA_IMAP__ADDR."))
    for section in sections:
        table = tomlkit.table()
        if section.help:
            table.add(tomlkit.comment(section.help))
        for setting in section.settings:
            value = overrides.get(section.name, {}).get(setting.key, setting.default)
            if setting.help:
                table.add(tomlkit.comment(setting.help))
            if setting.kind == "tables" and not value:  # `key = []` would forbid [[section.key]] below
                table.add(tomlkit.comment(f"[[{section.name}.{setting.key}]] tables: none by default"))
                continue
            table.add(setting.key, value)
        doc.add(tomlkit.nl())
        parent, _, child = section.name.partition(".")
        if child and parent in doc:  # ``[relay.queue]`` nested under ``[relay]``
            doc[parent].add(child, table)  # type: ignore[union-attr]
        else:
            doc.add(section.name, table)
    return tomlkit.dumps(doc)
