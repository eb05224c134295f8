"""Config files: TOML in (``--config``), TOML out (``config.toml`` of every run)."""

from __future__ import annotations

import enum
import math
import tomllib
from pathlib import Path
from typing import Any, Mapping

import tomli_w

from .errors import UserError


def plain(value: Any) -> Any:
    """Make an option value TOML/JSON friendly (Enum → value, Path → str, tuple → list)."""
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def to_toml(config: Mapping[str, Any], header: str = "") -> str:
    """Render a flat (or nested) config dict as TOML. ``None`` values, which TOML cannot
    hold, are listed in a comment and left out (re-running then uses their default)."""
    cfg = {k: plain(v) for k, v in config.items()}
    unset = sorted(k for k, v in cfg.items() if v is None)
    body = {k: v for k, v in cfg.items() if v is not None}
    for k, v in body.items():
        if isinstance(v, float) and not math.isfinite(v):
            body[k] = str(v)
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    if unset:
        lines.append(f"# unset (default): {', '.join(unset)}")
    text = tomli_w.dumps(body)
    return ("\n".join(lines) + "\n" if lines else "") + text


def read_toml(path: Path | str) -> dict[str, Any]:
    """Read a TOML file; :class:`UserError` with one line on a missing file or bad syntax."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"config file not found: {path}")
    if path.is_dir():
        raise UserError(f"config path is a folder, not a TOML file: {path}")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"bad TOML in {path}: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read config file {path}: {e}") from None
