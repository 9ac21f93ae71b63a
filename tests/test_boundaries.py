"""Import boundaries (docs/architecture.md, "Boundaries"), and imports without side effects.

- The recorder side (camera, motion, masks, recorder, bell, video, live, service, store, public
  keys) never reaches decryption: not `doorbell.age.identities`, `doorbell.age.decrypt`, the
  payload readers nor `doorbell.keys`, however indirectly; and the `doorbell.age` package root
  defines nothing, so importing a name from it (rather than a submodule) is an error too.
- `doorbell.ui` never reaches picamera2, gpiozero or `doorbell.camera`.
- Only `doorbell/camera/picam.py` imports picamera2.
- The notifier (`doorbell.notify`, `doorbell notify`) never reaches decryption, the camera,
  video, the recorder or exports: it holds no key and handles no picture.
- Importing any module writes no file, starts no thread or process, opens no device or socket.

The static checks parse imports with `ast` (imports inside functions count too) and follow
them transitively; a runtime check in a fresh interpreter confirms what actually gets loaded.
Each checker is itself tested on a small broken package, so these tests can fail.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "doorbell"

RECORDER_SIDE = [
    "doorbell.camera",
    "doorbell.motion",
    "doorbell.masks",
    "doorbell.recorder",
    "doorbell.bell",
    "doorbell.media",
    "doorbell.live",
    "doorbell.service",
    "doorbell.store",
    "doorbell.pubkeys",
    "doorbell.commands.recorder",
    # the off-site copy holds no key that decrypts (restore, which unlocks one, is apart)
    "doorbell.replicate.replicator",
    "doorbell.replicate.destination",
    "doorbell.replicate.state",
    "doorbell.replicate.witness",
]
DECRYPTION_SIDE = {
    "doorbell.age.identities",
    "doorbell.age.decrypt",
    "doorbell.age.payload",
    "doorbell.age.sequential",
    "doorbell.age.random_access",
    "doorbell.keys",
}
UI_FORBIDDEN = ("picamera2", "gpiozero", "doorbell.camera")
NOTIFY_FORBIDDEN = (
    *DECRYPTION_SIDE,
    "doorbell.camera",
    "doorbell.media",
    "doorbell.recorder",
    "doorbell.exports",
    "doorbell.redact",
    "picamera2",
    "cv2",
    "av",
)


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module ``name`` imports, anywhere in its file (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if candidate in known:
                    found.add(candidate)
    return found


def with_parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def import_closure(roots: list[str], known: dict[str, Path]) -> dict[str, str]:
    """Every module reachable from ``roots`` -> the module that first imported it."""
    seen: dict[str, str] = {}
    todo = [(root, "<root>") for root in roots]
    while todo:
        module, parent = todo.pop()
        for name in with_parents(module):
            if name in seen:
                continue
            seen[name] = parent
            if name in known:
                todo.extend((child, name) for child in imports_of(name, known[name], known))
    return seen


def root_name_imports(modules: list[str], known: dict[str, Path], package: str) -> list[str]:
    """Places where a module imports a *name* from the ``package`` root (not a submodule)."""
    bad = []
    for module in modules:
        tree = ast.parse(known[module].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == package and not node.level:
                names = [a.name for a in node.names if f"{package}.{a.name}" not in known]
                if names:
                    bad.append(f"{module}: from {package} import {', '.join(names)}")
            elif isinstance(node, ast.Import) and any(a.name == package for a in node.names):
                bad.append(f"{module}: import {package}")
    return bad


def existing(names: list[str], known: dict[str, Path]) -> list[str]:
    return [name for name in names if name in known or any(k.startswith(name + ".") for k in known)]


def expand(names: list[str], known: dict[str, Path]) -> list[str]:
    return sorted(k for k in known for name in names if k == name or k.startswith(name + "."))


def recorder_violations(known: dict[str, Path]) -> list[str]:
    roots = expand(existing(RECORDER_SIDE, known), known)
    closure = import_closure(roots, known)
    problems = [
        f"{name} reached from recorder side via {closure[name]}"
        for name in sorted(DECRYPTION_SIDE & closure.keys())
    ]
    reached = sorted(k for k in closure if k in known)
    return problems + root_name_imports(reached, known, "doorbell.age")


def ui_violations(known: dict[str, Path]) -> list[str]:
    roots = expand(existing(["doorbell.ui", "doorbell.commands.web"], known), known)
    closure = import_closure(roots, known)
    return [
        f"{name} reached from the web UI via {closure[name]}"
        for name in sorted(closure)
        if any(name == f or name.startswith(f + ".") for f in UI_FORBIDDEN)
    ]


def notify_violations(known: dict[str, Path]) -> list[str]:
    roots = expand(existing(["doorbell.notify", "doorbell.commands.notify"], known), known)
    closure = import_closure(roots, known)
    problems = [
        f"{name} reached from the notifier via {closure[name]}"
        for name in sorted(closure)
        if any(name == f or name.startswith(f + ".") for f in NOTIFY_FORBIDDEN)
    ]
    reached = sorted(k for k in closure if k in known)
    return problems + root_name_imports(reached, known, "doorbell.age")


def picamera2_violations(known: dict[str, Path]) -> list[str]:
    return [
        f"{name} imports picamera2"
        for name, path in known.items()
        if name != "doorbell.camera.picam"
        and any(m.split(".")[0] == "picamera2" for m in imports_of(name, path, known))
    ]


# --- the real package ------------------------------------------------------------------------


def test_recorder_side_never_reaches_decryption() -> None:
    assert recorder_violations(module_files(PACKAGE_ROOT)) == []


def test_the_age_package_root_defines_nothing() -> None:
    """No lazy loading, no names: code imports the submodule it needs (encrypt or decrypt)."""
    tree = ast.parse((PACKAGE_ROOT / "age" / "__init__.py").read_text(encoding="utf-8"))
    body = [node for node in tree.body if not isinstance(node, ast.Expr)]  # the docstring
    assert body == []


def test_ui_never_reaches_camera_or_gpio() -> None:
    assert ui_violations(module_files(PACKAGE_ROOT)) == []


def test_notifier_never_reaches_keys_or_pictures() -> None:
    assert notify_violations(module_files(PACKAGE_ROOT)) == []


def test_checker_catches_the_notifier_reaching_decryption(tmp_path: Path) -> None:
    known = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "keys.py": "",
            "notify/__init__.py": "",
            "notify/mqtt.py": "def f():\n    from doorbell import keys\n    import cv2\n",
        },
    )
    assert notify_violations(known) == [
        "cv2 reached from the notifier via doorbell.notify.mqtt",
        "doorbell.keys reached from the notifier via doorbell.notify.mqtt",
    ]


def test_only_picam_imports_picamera2() -> None:
    assert picamera2_violations(module_files(PACKAGE_ROOT)) == []


def run_python(code: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-X", "utf8", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/nonexistent"},
        cwd=str(PACKAGE_ROOT.parent),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_recorder_side_modules_load_no_decryption_at_runtime() -> None:
    known = module_files(PACKAGE_ROOT)
    roots = expand(existing(RECORDER_SIDE, known), known)
    code = textwrap.dedent(f"""
        import importlib, json, sys
        for name in {roots!r}:
            importlib.import_module(name)
        print(json.dumps(sorted(m for m in sys.modules if m in {sorted(DECRYPTION_SIDE)!r})))
    """)
    assert run_python(code) == []


SIDE_EFFECT_PROBE = textwrap.dedent("""
    import importlib, json, os, sys, threading
    events = []
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    FORBIDDEN = {"os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.symlink", "os.link",
                 "os.truncate", "os.chmod", "os.chown", "socket.connect", "socket.bind",
                 "subprocess.Popen", "os.system", "os.fork", "os.posix_spawn", "os.exec",
                 "_thread.start_new_thread", "shutil.rmtree", "os.startfile"}
    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            path = str(path)
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE)
            if writing or path.startswith(("/dev/", "/sys/class/gpio", "/proc/device-tree")):
                events.append(f"open {path} mode={mode} flags={flags}")
        elif event in FORBIDDEN:
            events.append(f"{event} {args!r:.200}")
    sys.addaudithook(hook)
    for name in NAMES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            events.append(f"import {name} failed: {exc}")
    main = threading.main_thread()
    events += [f"thread {t.name}" for t in threading.enumerate() if t is not main]
    print(json.dumps(events))
""")


def side_effects(names: list[str]) -> list[str]:
    return run_python(f"NAMES = {names!r}\n" + SIDE_EFFECT_PROBE)


def test_importing_any_module_has_no_side_effects() -> None:
    names = sorted(module_files(PACKAGE_ROOT))
    assert len(names) >= 5
    assert side_effects(names) == []


# --- the checkers catch what they are meant to catch ------------------------------------------


def make_package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for relative, text in files.items():
        path = tmp_path / "doorbell" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return module_files(tmp_path / "doorbell")


def test_checker_catches_indirect_decryption_import(tmp_path: Path) -> None:
    known = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "age/__init__.py": "",
            "age/decrypt.py": "",
            "age/encrypt.py": "",
            "helpers.py": "def f():\n    from .age import decrypt\n",
            "recorder.py": "from doorbell.age import encrypt\nimport doorbell.helpers\n",
        },
    )
    problems = recorder_violations(known)
    assert problems == ["doorbell.age.decrypt reached from recorder side via doorbell.helpers"]


def test_checker_catches_a_name_imported_from_the_age_root(tmp_path: Path) -> None:
    known = make_package(
        tmp_path,
        {"__init__.py": "", "age/__init__.py": "", "motion.py": "from doorbell.age import decrypt"},
    )
    assert recorder_violations(known) == ["doorbell.motion: from doorbell.age import decrypt"]


def test_checker_catches_ui_reaching_gpio_and_camera(tmp_path: Path) -> None:
    known = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "bell.py": "import gpiozero",
            "camera/__init__.py": "",
            "ui/__init__.py": "from doorbell import bell\nfrom doorbell.camera import Frame",
        },
    )
    assert ui_violations(known) == [
        "doorbell.camera reached from the web UI via doorbell.ui",
        "gpiozero reached from the web UI via doorbell.bell",
    ]


def test_checker_catches_picamera2_outside_picam(tmp_path: Path) -> None:
    known = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "camera/__init__.py": "",
            "camera/picam.py": "def f():\n    import picamera2\n",
            "camera/mock.py": "from picamera2.encoders import H264Encoder",
        },
    )
    assert picamera2_violations(known) == ["doorbell.camera.mock imports picamera2"]


def test_side_effect_probe_catches_files_threads_and_sockets(tmp_path: Path) -> None:
    package = tmp_path / "probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "writes.py").write_text(f"open({str(tmp_path / 'x')!r}, 'w').close()\n")
    (package / "threads.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(5,), name='bg',"
        " daemon=True).start()\n"
    )
    (package / "device.py").write_text(
        "import os\nos.path.exists('/dev/null') and open('/dev/null')\n"
    )
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
    events = run_python(
        code
        + "NAMES = ['probe_pkg.writes', 'probe_pkg.threads', 'probe_pkg.device']\n"
        + SIDE_EFFECT_PROBE
    )
    joined = "\n".join(events)
    assert f"open {tmp_path / 'x'}" in joined
    assert "_thread.start_new_thread" in joined or "thread bg" in joined
    assert "open /dev/null" in joined
