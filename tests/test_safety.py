"""Safety rules, checked on the package's source: no pickle, ``torch.load`` only with
``weights_only=True``, ``np.load`` only with ``allow_pickle=False``, YAML only through
``safe_load``/``safe_dump``, subprocess arguments as lists (never a shell), SSH always with
host-key checking; and run directories never reach outside themselves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from edgeauto.errors import RunDirError
from edgeauto.rundir import RunDir, inside

PACKAGE = Path(__file__).resolve().parents[1] / "edgeauto"
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "shelve", "marshal", "joblib"}
BANNED_CALLS = {
    "os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
    "yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all",
    "eval", "exec", "pickle.load", "pickle.loads",
}  # fmt: skip
SUBPROCESS = {"subprocess.run", "subprocess.Popen", "subprocess.call", "subprocess.check_call",
              "subprocess.check_output"}  # fmt: skip
BANNED_TEXT = ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "UnsafeLoader")


def _name(node: ast.AST) -> str:
    """Dotted name of a call target (``torch.load``, ``eval``), or ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _call_problems(call: ast.Call) -> list[str]:
    name = _name(call.func)
    out = [f"forbidden call {name}()"] if name in BANNED_CALLS else []
    if name == "torch.load" and not _is_true(_kw(call, "weights_only")):
        out.append("torch.load without weights_only=True")
    if name in ("np.load", "numpy.load"):
        flag = _kw(call, "allow_pickle")
        if not (isinstance(flag, ast.Constant) and flag.value is False):
            out.append("np.load without allow_pickle=False")
    if name in SUBPROCESS or name.startswith("subprocess."):
        if _is_true(_kw(call, "shell")):
            out.append(f"{name}(shell=True)")
        if call.args and isinstance(call.args[0], ast.Constant | ast.JoinedStr | ast.BinOp):
            out.append(f"{name} with a command string, not an argument list")
    return out


def problems(source: str, where: str = "<string>") -> list[str]:
    """Every violation of the rules in ``source``, as ``where:line: what``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            bad = [m for m in mods if m and m.split(".")[0] in BANNED_MODULES]
            found += [f"{where}:{line}: imports {m}" for m in bad]
        elif isinstance(node, ast.Call):
            found += [f"{where}:{line}: {p}" for p in _call_problems(node)]
    for text in BANNED_TEXT:
        if text in source:
            found.append(f"{where}: contains {text!r}")
    return found


def test_the_checker_catches_each_rule() -> None:
    """The rules must be able to fail: each forbidden form below is reported."""
    bad = """
import pickle
from dill import loads
import yaml, torch, subprocess, os, numpy as np
yaml.load(text)
torch.load(path)
torch.load(path, weights_only=False)
np.load(path)
subprocess.run("ssh host ls", shell=True)
subprocess.Popen(f"adb {serial} shell")
os.system("rm -rf /")
eval("1 + 1")
argv = ["ssh", "-o", "StrictHostKeyChecking=no"]
"""
    found = problems(bad)
    for what in ("imports pickle", "imports dill", "yaml.load()", "torch.load without",
                 "np.load without", "shell=True", "command string", "os.system()", "eval()",
                 "StrictHostKeyChecking=no"):  # fmt: skip
        assert any(what in f for f in found), (what, found)
    assert len([f for f in found if "torch.load without" in f]) == 2
    good = """
import yaml, torch, subprocess, numpy as np
yaml.safe_load(text)
torch.load(path, weights_only=True, map_location="cpu")
np.load(path, allow_pickle=False)
subprocess.run(["ssh", "-o", "StrictHostKeyChecking=yes", host], check=True)
"""
    assert problems(good) == []


def test_the_package_follows_the_rules() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 40  # the whole package, not an empty glob
    found = [p for f in files for p in problems(f.read_text(), str(f.relative_to(PACKAGE)))]
    assert found == []


def test_ssh_always_checks_host_keys() -> None:
    source = (PACKAGE / "latency" / "runners" / "ssh.py").read_text()
    assert "StrictHostKeyChecking=yes" in source and "BatchMode=yes" in source


# -- run directories never reach outside themselves ------------------------------------------


@pytest.mark.parametrize(
    "name", ["../escape.json", "/etc/passwd", "checkpoints/../../x.pt", "a/../../b", "", "  "]
)
def test_names_that_leave_the_run_are_refused(tmp_path: Path, name: str) -> None:
    rd = RunDir(tmp_path / "run")
    with pytest.raises(RunDirError, match="relative path inside"):
        rd.path(name)
    with pytest.raises(RunDirError):
        rd.write_json(name, {"x": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("name", ["manifest.json", "checkpoints/train.pt", "a..b.json"])
def test_names_inside_the_run_are_kept(tmp_path: Path, name: str) -> None:
    assert inside(tmp_path, name) == tmp_path / name
    assert RunDir(tmp_path / "r").path(name) == (tmp_path / "r").resolve() / name
