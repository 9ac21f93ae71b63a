"""The data directory's layout is spelled once, in doorbell.datadir."""

from __future__ import annotations

import ast
from pathlib import Path

from doorbell.datadir import DataDir

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "doorbell"
#: File and directory names below the data dir that only doorbell/datadir.py may spell.
NAMES = {
    "index.sqlite3",
    "audit.sqlite3",
    "exports.sqlite3",
    "owner.key.age",
    "owner.recipients",
    "device.key",
    "device.vkey",
    "owner-anchor",
    "settings.toml",
    "cert.pem",
    "key.pem",
}
#: Modules allowed to spell data-dir file names besides datadir.py (none).
NOT_YET: set[str] = set()


def spellings(source: str) -> list[tuple[int, str]]:
    """(line, name) for every string constant in ``source`` that is a data-dir file name."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if node.value in NAMES or node.value.startswith(("keys/", "tls/")):
            found.append((node.lineno, node.value))
    return found


def test_layout() -> None:
    paths = DataDir("/srv/doorbell")
    root = Path("/srv/doorbell")
    assert paths.root == root
    assert paths.keys == root / "keys"
    assert paths.owner_key == root / "keys/owner.key.age"
    assert paths.owner_recipients == root / "keys/owner.recipients"
    assert paths.device_key == root / "keys/device.key"
    assert paths.device_vkey == root / "keys/device.vkey"
    assert paths.index == root / "index.sqlite3"
    assert paths.audit == root / "audit.sqlite3"
    assert paths.exports_index == root / "exports.sqlite3"
    assert paths.owner_anchor == root / "owner" / "owner-anchor"
    assert paths.settings == root / "settings.toml"
    assert paths.clips == root / "clips"
    assert paths.thumbs == root / "thumbs"
    assert paths.exports == root / "exports"
    assert paths.tls_cert == root / "tls/cert.pem"
    assert paths.tls_key == root / "tls/key.pem"


def test_only_datadir_spells_the_file_names() -> None:
    offenders = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        relative = path.relative_to(PACKAGE_ROOT.parent).as_posix()
        if relative == "doorbell/datadir.py" or any(relative.startswith(p) for p in NOT_YET):
            continue
        offenders += [
            f"{relative}:{line}: {name!r}"
            for line, name in spellings(path.read_text(encoding="utf-8"))
        ]
    assert offenders == []


def test_the_spelling_check_finds_a_spelling() -> None:
    source = 'from pathlib import Path\nINDEX = Path("x") / "index.sqlite3"\n"""doc"""\n'
    assert spellings(source) == [(2, "index.sqlite3")]
