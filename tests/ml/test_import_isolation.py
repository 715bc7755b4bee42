"""The ML package ``recsys`` (shipped to the SageMaker containers) imports nothing AWS-facing or dev-only.

Each check runs in a fresh interpreter, imports modules and reports which forbidden top-level
packages ended up in ``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("recsys_lambdas", "recsys_infra", "recsys_tools", "boto3", "botocore", "moto",
             "aws_cdk", "aws_lambda_powertools")

_CHECK = r"""
import importlib, json, pkgutil, sys
forbidden = set(json.loads(sys.argv[1]))
names = sys.argv[2:]
imported = []
for name in names:
    if name == "recsys:all":
        import recsys
        imported.append("recsys")
        for info in pkgutil.walk_packages(recsys.__path__, prefix="recsys."):
            importlib.import_module(info.name)
            imported.append(info.name)
    else:
        importlib.import_module(name)
        imported.append(name)
leaked = sorted({m.split(".")[0] for m in sys.modules} & forbidden)
print(json.dumps({"imported": imported, "leaked": leaked}))
"""


def _run(*modules: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHECK, json.dumps(FORBIDDEN), *modules],
        capture_output=True, text=True, timeout=120, cwd=str(REPO),
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_recsys_module_imports_no_aws_or_dev_package():
    result = _run("recsys:all")
    # The walk really reached the package's modules (a typo in the walk would pass vacuously).
    for module in ("recsys", "recsys.cli", "recsys.model", "recsys.train", "recsys.__main__"):
        assert module in result["imported"]
    assert result["leaked"] == []


@pytest.mark.parametrize("module", ["recsys", "recsys.cli", "recsys.train", "recsys.model"])
def test_single_module_imports_no_aws_or_dev_package(module):
    assert _run(module)["leaked"] == []


def test_check_detects_a_leak():
    """The same check on a module that does import boto3 reports it (the check can fail)."""
    leaked = _run("recsys_lambdas.aws")["leaked"]
    assert "boto3" in leaked and "recsys_lambdas" in leaked


def test_recsys_has_no_local_subpackage():
    """The local stack lives in recsys_tools, outside the container bundle's sagemaker/ folder."""
    assert not (REPO / "sagemaker" / "recsys" / "local").exists()
    assert (REPO / "tools" / "recsys_tools" / "local" / "stack.py").is_file()


def _imported_roots(path: Path) -> set:
    """Top-level packages named by every import statement of a file, at any depth (lazy
    imports inside functions included)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_file_shipped_to_sagemaker_imports_aws_or_dev_packages_even_lazily():
    """Every .py under sagemaker/ (the container bundle): no import of a forbidden package in
    any function body either, which the sys.modules check above cannot see."""
    files = sorted((REPO / "sagemaker").rglob("*.py"))
    assert REPO / "sagemaker" / "recsys" / "model.py" in files
    offenders = {str(f.relative_to(REPO)): sorted(_imported_roots(f) & set(FORBIDDEN))
                 for f in files if _imported_roots(f) & set(FORBIDDEN)}
    assert offenders == {}


def test_static_check_sees_lazy_imports(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    import boto3\n    from recsys_tools.local import stack\n")
    assert {"boto3", "recsys_tools"} <= _imported_roots(sample)
