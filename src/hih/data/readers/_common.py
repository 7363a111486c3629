"""Helpers shared by the dataset readers: clear errors for a missing root or a bad line."""

from __future__ import annotations

from pathlib import Path


def require_root(root: str | Path, dataset: str, tree: str) -> Path:
    """Return ``root`` as a Path, or raise FileNotFoundError naming it and showing the expected layout."""
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise FileNotFoundError(f"{dataset} root {root} {what}; expected a folder laid out as:\n{tree}")
    return root


def missing(path: Path, dataset: str, tree: str, what: str) -> FileNotFoundError:
    return FileNotFoundError(f"{dataset}: {what} not found: {path}\nexpected a folder laid out as:\n{tree}")


def line_error(file: Path, line_no: int, message: str) -> ValueError:
    """ValueError for a malformed annotation: ``<file>:<line>: <message>`` (line numbers are 1-based)."""
    return ValueError(f"{file}:{line_no}: {message}")


def parse_floats(tokens: list[str], file: Path, line_no: int, what: str) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise line_error(file, line_no, f"expected numbers for {what}, got {bad!r}") from None


def _is_float(t: str) -> bool:
    try:
        float(t)
    except ValueError:
        return False
    return True


def check_split(split: str, choices: tuple[str, ...], dataset: str) -> str:
    key = str(split).strip().lower()
    if key not in choices:
        raise ValueError(f"{dataset}: unknown split {split!r}; expected one of {', '.join(choices)}")
    return key
