"""``python cdk/app.py`` (what cdk.json runs) synthesises offline, with no AWS credentials."""

from __future__ import annotations

import json
import subprocess
import sys

from infra_env import REPO, clean_env


def test_cdk_json_app_synthesises_without_credentials(app_subprocess):
    proc, outdir = app_subprocess
    _stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    app = json.loads((REPO / "cdk.json").read_text())["app"]
    assert app.endswith("cdk/app.py")
    names = sorted(p.name for p in outdir.glob("*.template.json"))
    assert names == [
        f"recsys-dev-{c}.template.json" for c in ("api", "serving", "storage", "training")
    ]


def test_unknown_environment_is_a_one_line_error(tmp_path):
    env = clean_env(tmp_path)
    env["CDK_CONTEXT_JSON"] = json.dumps({"recsys:env": "nope"})
    proc = subprocess.run(
        [sys.executable, "cdk/app.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "recsys:env='nope' is not one of ['batch', 'dev', 'prod']" in proc.stderr
    assert "Traceback" not in proc.stderr
