"""Container parity: the code bundle installs and runs as in the SageMaker scikit-learn image,
with no compiler and no network.

One session fixture builds the bundle for this interpreter through the app's own code path
(``build_code_bundle``: the lock's cp3XX wheel, the generated requirements.txt), makes two fresh
venvs holding only what the image holds (numpy, scipy, scikit-learn and the image's pip), and
then does what the containers do (sources: docs/DEPLOY.md, "Inside the containers"):

* training: the bundle arrives as the ``code`` channel, is unpacked into the job's code folder,
  ``pip install -r requirements.txt`` runs there, then both entry points run from that folder
  (the local stack's runner, ``recsys_tools.local.training.train``, with the venv's Python);
* serving: job 2's ``model.tar.gz`` is unpacked, its ``code/`` copied to the code folder, the
  setup.py/setup.cfg/MANIFEST.in of sagemaker-containers' ``prepare()`` written, and
  ``pip install . -r requirements.txt`` run; then ``model_fn``/``predict_fn`` of the installed
  ``inference`` module answer requests.

Every pip call runs with a clean environment: PATH holds only the venv's bin (no gcc, g++ or
cc), CC/CXX are /bin/false, and pip reads no config file, so neither an index nor a compiler is
reachable; an sdist anywhere in the chain fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
HYPERPARAMETERS = {"dim": "16", "epochs": "2", "ef_construction": "50", "ranker_users": "200",
                   "ranker_negatives": "10", "ranker_hard_negatives": "5", "workers": "1"}
REQUESTS = [
    {"action": "recommend", "history": ["i00001", "i00002", "i00003"], "k": 5},
    {"action": "similar", "itemId": "i00007", "k": 5},
    {"action": "popular", "k": 3},
    {"action": "similar", "itemId": "no-such-item", "k": 2},
    {"action": "search", "query": "the", "k": 3},
]


@dataclass
class Container:
    """The container-parity run's products."""

    root: Path
    train_python: Path
    serve_python: Path
    model_dir: Path  # the extracted model.tar.gz of job 2 (the endpoint's /opt/ml/model)
    served: list  # predict_fn's answers to REQUESTS in the serving venv
    installed_inference: str  # inference.__file__ in the serving venv
    batch_out: str = ""  # the installed inference's answer to a jsonlines (Batch Transform) request


def container_env(venv: Path, home: Path) -> dict:
    """No index, no compiler: only the venv on PATH, failing CC/CXX, no pip config."""
    env = {"PATH": str(venv / "bin"), "HOME": str(home), "CC": "/bin/false", "CXX": "/bin/false",
           "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PIP_NO_CACHE_DIR": "1", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
    for tool in ("gcc", "g++", "cc", "c++", "clang"):
        assert shutil.which(tool, path=env["PATH"]) is None, tool
    return env


def run(argv, cwd, env, what: str) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def image_venv(root: Path, name: str) -> Path:
    """A fresh venv with the image's packages: numpy, scipy, scikit-learn (the project's pins,
    from the local uv cache) and the image's pip."""
    from recsys_infra.container import SKLEARN_IMAGE

    venv = root / name
    uv = str(REPO / ".venv" / "bin" / "uv")
    run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], REPO, None, "uv venv")
    python = str(venv / "bin" / "python")
    run([uv, "pip", "install", "--quiet", "--python", python, "-c", "constraints.txt",
         "numpy", "scipy", "scikit-learn==1.9.1"], REPO, None, "image packages")
    run([uv, "pip", "install", "--quiet", "--python", python, f"pip=={SKLEARN_IMAGE.pip_version}"],
        REPO, None, "image pip")
    return venv


def _setup_files(code_dir: Path, name: str) -> None:
    """What sagemaker-containers' modules.prepare() writes into the code folder."""
    (code_dir / "setup.py").write_text(textwrap.dedent(f"""
        from setuptools import setup
        setup(packages=[''],
              name="{name}",
              version='1.0.0',
              include_package_data=True)
        """))
    (code_dir / "setup.cfg").write_text("\n[wheel]\nuniversal = 1\n")
    (code_dir / "MANIFEST.in").write_text(
        "\nrecursive-include . *\nrecursive-exclude . __pycache__*\n"
        "recursive-exclude . *.pyc\nrecursive-exclude . *.pyo\n")


SERVE = """
import json, sys
import hnswlib, inference
model = inference.model_fn(sys.argv[1])
answers = []
for line in sys.stdin:
    data = inference.input_fn(line.encode(), "application/json")
    body, content_type = inference.output_fn(inference.predict_fn(data, model), "application/json")
    answers.append(json.loads(body))
# a Batch Transform request (SplitType Line, MultiRecord): BATCH_LINES of the model's histories
import os
os.environ.update({"RECSYS_BATCH_JOB": "users", "RECSYS_BATCH_NUM_RESULTS": "5"})
with open(sys.argv[1] + "/histories.jsonl") as f:
    users = sorted(json.loads(line)["userId"] for line in f)[:3]
lines = [json.dumps({"userId": u}) for u in users] + ['{"userId": "nobody"}', "{bad"]
data = inference.input_fn("\\n".join(lines).encode(), "application/jsonlines")
batch, batch_type = inference.output_fn(inference.predict_fn(data, model), "application/jsonlines")
print(json.dumps({"answers": answers, "inference": inference.__file__, "hnswlib": hnswlib.__file__,
                  "batch": batch, "batch_type": batch_type}))
"""


@pytest.fixture(scope="session")
def container(tmp_path_factory) -> Container:
    from recsys import synth
    from recsys_infra import images
    from recsys_infra.source_bundle import build_code_bundle
    from recsys_tools.local import training

    root = tmp_path_factory.mktemp("container")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    bundle = build_code_bundle(images.SAGEMAKER_SOURCE_DIR, root / "sourcedir.tar.gz", version,
                               images.wheel_cache())
    train_venv, serve_venv = image_venv(root, "train-venv"), image_venv(root, "serve-venv")
    events, items = synth.write_dataset(root / "data", n_users=200, n_items=120, n_events=5000, seed=3)

    # training: the runner unpacks the code channel, pip-installs, runs both jobs from there
    trained = training.train(
        root / "work", training.TrainingInputs(events, items, HYPERPARAMETERS), echo=False,
        force=True, code_bundle=bundle, python=str(train_venv / "bin" / "python"),
        base_env=container_env(train_venv, root))
    model_tar = root / "model.tar.gz"
    training.make_tarball(trained.run_dir / "ranker" / "model", model_tar)

    # serving: /opt/ml/model from model.tar.gz; its code/ -> the code folder; pip install .
    model_dir = training.extract_tarball(model_tar, root / "serve" / "model")
    code_dir = root / "serve" / "code"
    shutil.copytree(model_dir / "code", code_dir)
    _setup_files(code_dir, "inference")
    env = container_env(serve_venv, root)
    run([str(serve_venv / "bin" / "python"), "-m", "pip", "install", ".", "-r", "requirements.txt"],
        code_dir, env, "serving install")
    elsewhere = root / "elsewhere"  # not the code folder: the installed copy must be complete
    elsewhere.mkdir()
    script = elsewhere / "serve.py"
    script.write_text(SERVE)
    proc = subprocess.run([str(serve_venv / "bin" / "python"), str(script), str(model_dir)],
                          input="".join(json.dumps(r) + "\n" for r in REQUESTS), cwd=elsewhere,
                          env={**env, "PYTHONSAFEPATH": "1"}, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "site-packages" in out["hnswlib"]
    assert out["batch_type"] == "application/jsonlines"
    return Container(root, train_venv / "bin" / "python", serve_venv / "bin" / "python",
                     model_dir, out["answers"], out["inference"], out["batch"])


def _pip_list(python: Path) -> dict:
    out = run([str(python), "-m", "pip", "list", "--format", "json"], None,
              {"PATH": str(python.parent), "PIP_CONFIG_FILE": os.devnull}, "pip list")
    return {p["name"].lower(): p["version"] for p in json.loads(out)}


def test_training_installs_the_bundled_wheel_offline_and_ships_its_code_in_the_model(container):
    from recsys_infra.container import WHEEL_LOCK

    locked = {w.name: w.version for w in WHEEL_LOCK}
    train_pkgs = _pip_list(container.train_python)
    assert train_pkgs.get("chroma-hnswlib") == locked["chroma-hnswlib"]
    assert "hnswlib" not in train_pkgs  # the sdist-only project pin never reached the container
    code = container.model_dir / "code"
    assert (code / "inference.py").is_file() and (code / "recsys" / "model.py").is_file()
    assert (code / "requirements.txt").read_text().count("--no-index") == 1
    assert sorted(p.name for p in (code / "wheels").iterdir()) == sorted(
        p.name for p in (container.root / "work").rglob("retrieval/code/wheels/*.whl"))
    assert (container.model_dir / "manifest.json").is_file()


def test_serving_installs_the_models_code_and_answers_like_the_development_build(container):
    from recsys.model import Recommender

    serve_pkgs = _pip_list(container.serve_python)
    assert serve_pkgs.get("chroma-hnswlib") and serve_pkgs.get("inference") == "1.0.0"
    assert "site-packages" in container.installed_inference
    # the same model, loaded here with hnswlib 0.8.0 (index written by chroma-hnswlib)
    local = Recommender.load(container.model_dir)
    expected = [local.handle(r) for r in REQUESTS]
    assert container.served == json.loads(json.dumps(expected))
    assert container.served[0]["items"] and "error" in container.served[3]


def test_the_ranker_job_ships_histories_and_the_container_answers_a_batch(container):
    """Job 2 (``jobs.ranker_job``) writes histories.jsonl into the model; the installed
    ``inference`` answers a Batch Transform request as the development build does."""
    from recsys import batch_inference as bi
    from recsys.model import Recommender

    histories = bi.load_histories(container.model_dir / bi.HISTORIES_FILE)
    assert len(histories) == 200  # every user of the container's dataset
    local = Recommender.load(container.model_dir)
    lines = [json.dumps({"userId": u}) for u in sorted(histories)[:3]] + ['{"userId": "nobody"}', "{bad"]
    expected = "\n".join(bi.transform_lines(local, lines, "users", 5, histories))
    assert container.batch_out == expected
    rows = [json.loads(line) for line in container.batch_out.split("\n")]
    assert [r["error"] is None for r in rows] == [True, True, True, True, False]


INDEX_SCRIPT = """
import sys, numpy as np, hnswlib
from recsys import hnsw_format  # the copy installed in the serving venv
mode, path, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = np.load(path + ".npy")
index = hnswlib.Index(space="ip", dim=dim)
if mode == "write":
    index.init_index(max_elements=len(data), ef_construction=100, M=16, random_seed=7)
    index.add_items(data, np.arange(len(data)))
    hnsw_format.save(index, path)
    index.save_index(path + ".raw")  # the library's own layout
else:
    hnsw_format.load(index, path, max_elements=len(data))
assert hnsw_format.CHROMA
index.set_ef(50)
labels, dist = index.knn_query(data[:20], k=5)
np.save(path + ".labels.npy", labels)
np.save(path + ".dist.npy", dist)
"""


def _query_local(path: Path, data: np.ndarray, write: bool):
    import hnswlib
    from recsys import hnsw_format

    assert not hnsw_format.CHROMA
    index = hnswlib.Index(space="ip", dim=data.shape[1])
    if write:
        index.init_index(max_elements=len(data), ef_construction=100, M=16, random_seed=7)
        index.add_items(data, np.arange(len(data)))
        hnsw_format.save(index, path)
    else:
        hnsw_format.load(index, path, max_elements=len(data))
    index.set_ef(50)
    return index.knn_query(data[:20], k=5)


@pytest.mark.parametrize("writer", ["container", "development"])
def test_an_hnsw_index_reads_the_same_in_chroma_hnswlib_and_hnswlib(container, tmp_path, writer):
    from importlib.metadata import version

    import hnswlib

    assert version("hnswlib") == "0.8.0"  # this process: the project's development build
    rng = np.random.default_rng(11)
    data = rng.normal(size=(300, 12)).astype(np.float32)
    path = tmp_path / "hnsw.bin"
    np.save(str(path) + ".npy", data)
    script = tmp_path / "index.py"
    script.write_text(INDEX_SCRIPT)
    env = {"PATH": str(container.serve_python.parent)}
    if writer == "container":
        run([str(container.serve_python), str(script), "write", str(path), "12"], tmp_path, env, "write")
        mine = _query_local(path, data, write=False)
        # why recsys.hnsw_format exists: the libraries' own files do not cross over
        with pytest.raises(RuntimeError, match="corrupted or unsupported"):
            hnswlib.Index(space="ip", dim=12).load_index(str(path) + ".raw", max_elements=300)
    else:
        mine = _query_local(path, data, write=True)
        run([str(container.serve_python), str(script), "read", str(path), "12"], tmp_path, env, "read")
    theirs = np.load(str(path) + ".labels.npy"), np.load(str(path) + ".dist.npy")
    np.testing.assert_array_equal(mine[0], theirs[0])
    np.testing.assert_allclose(mine[1], theirs[1], rtol=1e-6, atol=1e-6)
