"""The CLI: output contracts, exit codes and one-line errors for each kind of bad input."""

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from resque_core.cli import main
from resque_core.model.archs import available_archs

DEMO = os.path.join(
    os.path.dirname(__file__), "..", "..", "resque_core", "demo", "digits_small_cnn.pt"
)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def model_args(digits_checkpoint):
    return ["--checkpoint", digits_checkpoint, "--arch", "small_cnn", "--in-channels", "1"]


def test_layers_lists_shapes_and_defaults(capsys, model_args):
    code, out, _ = run(capsys, "layers", *model_args, "--image-size", "8", "--json")
    assert code == 0
    doc = json.loads(out)
    names = [layer["name"] for layer in doc["layers"]]
    assert "features.conv3" in names and doc["default"] == {
        "dist": "features.conv3",
        "task": "features.conv3",
    }
    conv3 = doc["layers"][names.index("features.conv3")]
    assert conv3 == {"name": "features.conv3", "type": "Conv2d", "out_shape": [128, 4, 4]}


def test_score_json_contract_and_cache(capsys, model_args, tmp_path):
    argv = [
        "score",
        *model_args,
        "--data",
        "builtin:digits",
        "--shift",
        "gaussian_noise:3",
        "--samples-per-class",
        "30",
        "--cache-dir",
        str(tmp_path),
        "--json",
    ]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    first = json.loads(out)
    for key in (
        "kind",
        "value",
        "per_class",
        "layer",
        "n_source",
        "n_target",
        "seconds",
        "cached",
        "device",
    ):
        assert key in first
    assert first["kind"] == "dist" and first["cached"] is False and 0 <= first["value"] <= 1
    assert first["n_source"] == 300 and first["n_target"] == 300
    code, out, _ = run(capsys, *argv)
    again = json.loads(out)
    assert again["cached"] is True and again["value"] == first["value"]
    assert again["seconds"] < 0.1


def test_score_task_json(capsys, model_args, tmp_path):
    argv = (
        "score",
        *model_args,
        "--task-data",
        "builtin:digits-parity",
        "--samples-per-class",
        "40",
        "--cache-dir",
        str(tmp_path),
        "--json",
    )
    code, out, _ = run(capsys, *argv)
    doc = json.loads(out)
    assert code == 0 and doc["kind"] == "task" and doc["n_target"] == 80
    assert set(doc["variants"]) == {"centroid/pooled", "k-means++/pooled"}
    assert doc["value"] == doc["variants"]["centroid/pooled"]
    code, out, _ = run(capsys, *argv, "--flatten")
    flat = json.loads(out)
    assert code == 0 and flat["cached"] is False  # another request: its own cache entry
    assert len(flat["variants"]) == 4 and flat["value"] == doc["value"]


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "corrupt.pt").write_bytes(np.random.default_rng(0).bytes(300))
    np.savez(d / "nolabels.npz", x=np.zeros((4, 8, 8), np.uint8))
    np.savez(d / "empty.npz", x=np.zeros((0, 8, 8), np.uint8), y=np.zeros(0, int))
    np.savez(d / "single.npz", x=np.zeros((6, 8, 8), np.uint8), y=np.zeros(6, int))
    with zipfile.ZipFile(d / "evil.zip", "w") as z:
        z.writestr("../evil/a.png", b"x")
    return d


SHIFT = ["--data", "builtin:digits", "--shift", "gaussian_noise:1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--checkpoint", "{bad}/nope.pt", "--arch", "small_cnn", *SHIFT],
            "checkpoint not found: {bad}/nope.pt",
        ),
        (
            ["--checkpoint", "{bad}/corrupt.pt", "--arch", "small_cnn", *SHIFT],
            "cannot read checkpoint {bad}/corrupt.pt: not a PyTorch file (state_dict, TorchScript "
            "or torch.export archive)",
        ),
        (
            ["--checkpoint", "{demo}", "--arch", "resnt18", *SHIFT],
            "unknown architecture 'resnt18'; closest: resnet18, resnet152, resnet101, resnet50, "
            f"resnet34 ({len(available_archs())} available)",
        ),
        (
            ["{model}", *SHIFT, "--layer", "features.conv4"],
            "unknown layer 'features.conv4'; closest: features.conv3, features.conv2, "
            "features.conv1, features.bn3, features.bn2; available: avgpool, fc, features, "
            "features.bn1, features.bn2, features.bn3, features.conv1, features.conv2, "
            "features.conv3, features.pool, features.relu1, features.relu2, features.relu3, "
            "flatten",
        ),
        (
            ["{model}", *SHIFT, "--image-size", "1"],
            "the model cannot take 1x1 images: it needs a bigger image or the size it was built "
            "for; set the image size (--image-size; 'Image size' in the app) (torch: Given input "
            "size: (64x1x1). Calculated output size: (64x0x0). Output size is too small)",
        ),
        (
            ["{model}", "--data", "{bad}/empty.npz", "--shift", "gaussian_noise:1"],
            "data '{bad}/empty.npz' contains no images",
        ),
        (
            ["{model}", "--data", "{bad}/nolabels.npz", "--shift", "gaussian_noise:1"],
            "'{bad}/nolabels.npz' has no 'y' array (labels); save it with np.savez(path, "
            "x=images, y=labels)",
        ),
        (
            ["{model}", "--task-data", "{bad}/single.npz"],
            "a new task needs at least 2 classes to cluster; the data has 1 (check the labels of "
            "the task data)",
        ),
        (
            ["{model}", "--data", "builtin:digits", "--shift", "gausian_noise:1"],
            "unknown shift 'gausian_noise'; closest: gaussian_noise, gaussian_blur, shot_noise, "
            "impulse_noise; available: brightness, contrast, fog, gaussian_blur, gaussian_noise, "
            "impulse_noise, jpeg, pixelate, rotation, shot_noise",
        ),
        (
            ["{model}", "--data", "builtin:digits", "--shift", "gaussian_noise:6"],
            "severity 6 is out of range for shift 'gaussian_noise': use 1-5",
        ),
        (
            ["{model}", "--data", "{bad}/evil.zip", "--shift", "gaussian_noise:1"],
            "zip member '../evil/a.png' escapes the archive; refused",
        ),
        (
            ["{model}", "--data", "torchvision:CIFAR10:{bad}/none", "--shift", "gaussian_noise:1"],
            "torchvision dataset CIFAR10 not found under {bad}/none: expected cifar-10-batches-py "
            "there; place the files there (download elsewhere) — nothing is downloaded",
        ),
        (
            ["{model}", "--shift", "gaussian_noise:1"],
            "--data (the source data) is required with --shift / --shifted-data",
        ),
        (["{model}", *SHIFT, "--std", "0"], None),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, bad, model_args, argv, message):
    expanded = []
    for a in argv:
        if a == "{model}":
            expanded += model_args
        else:
            expanded.append(a.format(bad=bad, demo=DEMO))
    code, out, err = run(capsys, "score", *expanded, "--no-cache")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    if message is not None:
        assert err == f"error: {message.format(bad=bad)}\n"


def test_argparse_errors_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["score", "--checkpoint", "x.pt"])
    _, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert err.startswith(
        "error: one of the arguments --shift --shifted-data --task-data is required"
    )


# ------------------------------------------------------------------ trust, seeds and plan files
TRUST_WARNING = (
    "warning: plan field 'model.trusted' is ignored: a plan cannot grant trust to its "
    "checkpoint; give it at run time with --trust-checkpoint (CLI) or the 'Trust this file' "
    "switch on the Checkpoint page (app)\n"
)


@pytest.fixture
def trusted_plan(tmp_path, monkeypatch):
    """(plan path, checkpoint, class name, marker): a plan saying "trusted": true whose checkpoint
    is a pickled model that creates the marker when unpickled."""
    from fixtures.pickled import marker_checkpoint

    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / "pickle-code-ran"
    checkpoint, cls = marker_checkpoint(tmp_path, marker)
    plan = {
        "version": 1,
        "name": "hostile",
        "model": {
            "checkpoint": "pickled.pt",
            "in_channels": 1,
            "image_size": [8, 8],
            "trusted": True,
        },
        "source": "builtin:digits",
        "run": {"samples_per_class": 5, "seed": 0},
        "candidates": [{"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"}],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    return tmp_path / "plan.json", checkpoint, cls, marker


def test_rank_ignores_a_plans_trust_and_runs_no_code_from_the_pickle(capsys, trusted_plan):
    plan, checkpoint, cls, marker = trusted_plan
    code, out, err = run(capsys, "rank", "--plan", str(plan), "--json")
    assert (code, out) == (2, "")
    assert err == TRUST_WARNING + (
        f"error: checkpoint {checkpoint} contains pickled Python objects (e.g. {cls}); loading it "
        "could run code, so it was refused; if you trust its origin, retry with --trust-checkpoint "
        "(CLI) or the 'Trust this file' switch (app); or save model.state_dict() and pass --arch\n"
    )
    assert not marker.exists()


def test_rank_trust_checkpoint_is_the_run_time_trust(capsys, trusted_plan):
    plan, _, _, marker = trusted_plan
    code, out, err = run(capsys, "rank", "--plan", str(plan), "--trust-checkpoint", "--json")
    assert err == TRUST_WARNING  # the field is still ignored: the flag gave the trust
    (row,) = json.loads(out)["candidates"]
    assert (code, row["status"]) == (0, "ok")
    assert marker.exists()
    # The stored run carries no trust even when the run was given it.
    (stored,) = (Path(os.environ["RESQUE_CACHE_DIR"]) / "runs").glob("*.json")
    assert "trusted" not in json.loads(stored.read_text())["plan"]["model"]


def test_every_command_that_runs_a_plan_takes_trust_checkpoint():
    from resque_core.cli import build_parser

    parser = build_parser()
    for command in ("rank", "validate"):
        assert parser.parse_args([command, "--demo", "--trust-checkpoint"]).trust_checkpoint
        assert not parser.parse_args([command, "--plan", "p.json"]).trust_checkpoint


@pytest.mark.parametrize(
    ("seed", "got"),
    [("-1", "-1"), (str(2**63), "9223372036854775808"), ("4294967296", "4294967296")],
)
def test_score_seed_out_of_range_is_one_line(capsys, model_args, seed, got):
    code, out, err = run(
        capsys, "score", *model_args, *SHIFT, "--seed", seed, "--no-cache", "--json"
    )
    assert (code, out) == (2, "")
    assert err == f"error: seed must be an integer from 0 to 4,294,967,295, got {got}\n"


def test_rank_a_deeply_nested_plan_is_one_line(capsys, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 50_000 + "]" * 50_000)
    code, out, err = run(capsys, "rank", "--plan", str(path))
    assert (code, out) == (2, "")
    assert err == (
        f"error: plan {path} is nested too deeply to be a plan (a plan nests at most 3 levels)\n"
    )


def test_version_names_the_engine_version(capsys):
    from resque_core import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"python -m resque_core {__version__}\n"


def test_console_script_is_declared_and_points_at_the_cli():
    import tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"resque": "resque_core.cli:main_entry"}
    from resque_core.cli import main_entry

    assert callable(main_entry)
