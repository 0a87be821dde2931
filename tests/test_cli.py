"""The CLI: output contracts, exit codes and one-line errors for each kind of bad input."""

import json
import os
import zipfile

import numpy as np
import pytest

from resque_core.cli import main

DEMO = os.path.join(os.path.dirname(__file__), "..", "assets", "demo", "digits_small_cnn.pt")


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
    code, out, _ = run(
        capsys,
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
    doc = json.loads(out)
    assert code == 0 and doc["kind"] == "task" and doc["n_target"] == 80
    assert len(doc["variants"]) == 4 and doc["value"] == doc["variants"]["centroid/pooled"]


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
            "resnet34 (82 available)",
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
