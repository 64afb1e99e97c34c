"""The config tree ships inside the package: a non-editable install finds every YAML file."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(f"building the wheel failed: {proc.stderr[-2000:]}")
    (whl,) = out.glob("sac_runner-*.whl")
    return whl


def test_wheel_contains_every_yaml_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    yamls = sorted(p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml"))
    assert yamls, "no config files found"
    missing = [y for y in yamls if f"sac_runner/conf/{y}" not in names]
    assert not missing, f"not packaged: {missing}"


def test_wheel_contains_every_module_of_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "sac_runner").rglob("*.py"))
    assert "sac_runner/training/trainer.py" in modules and "sac_runner/report/__main__.py" in modules
    missing = [m for m in modules if m not in names]
    assert not missing, f"not packaged: {missing}"


def test_installed_wheel_composes_from_another_directory(wheel, tmp_path):
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "import sac_runner, sys;"
        "assert sac_runner.__file__.startswith(sys.argv[1]), sac_runner.__file__;"
        "from sac_runner.config import compose, validate;"
        "import sac_runner.cli, sac_runner.report.cli, sac_runner.visualize\n"
        "for env in ['CartPoleContinuous-v1', 'Pendulum-v1']:\n"
        "    validate(compose('env=' + env, 'architecture=large'))\n"
        "print('ok')"
    )
    # -I: ignore the editable install and the current directory; only the extracted wheel is importable
    paths = [str(target)] + [p for p in sys.path if "site-packages" in p]
    env = {"PYTHONPATH": ":".join(paths), "SDL_VIDEODRIVER": "dummy"}
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path[:0] = {paths!r}; exec({code!r})", str(target)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]


MAX_MODULE_LINES, MAX_CLASS_LINES = 350, 200


def test_modules_and_classes_stay_small_enough_to_read():
    """The package's size rule (README, How it works): a module over 350 lines or a class over 200 is split by
    concern. Counted as `wc -l` does; a class from its `class` line to its last line."""
    import ast

    modules = sorted((ROOT / "sac_runner").rglob("*.py"))
    assert len(modules) > 20, "the package's modules were not found"
    over = []
    for path in modules:
        text = path.read_text()
        name = path.relative_to(ROOT).as_posix()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            over.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                over.append(f"{name}: class {node.name}, {node.end_lineno - node.lineno + 1} lines")
    assert not over, f"over {MAX_MODULE_LINES} lines per module / {MAX_CLASS_LINES} per class: {over}"
