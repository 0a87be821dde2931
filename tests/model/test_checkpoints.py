"""Loading checkpoints of every supported format, refusing pickles, listing layers."""

import hashlib
import io
import re
import sys
import threading
import types
import warnings
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from resque_core import _util
from resque_core.errors import CheckpointError, ConfigError, DataError, LayerError
from resque_core.model import LayerInfo, default_layer, list_layers, load_checkpoint
from resque_core.model.archs import build_model

SMALL_CNN_LAYERS = [
    ("features.conv1", "Conv2d", (32, 8, 8)),
    ("features.bn1", "BatchNorm2d", (32, 8, 8)),
    ("features.relu1", "ReLU", (32, 8, 8)),
    ("features.conv2", "Conv2d", (64, 8, 8)),
    ("features.bn2", "BatchNorm2d", (64, 8, 8)),
    ("features.relu2", "ReLU", (64, 8, 8)),
    ("features.pool", "MaxPool2d", (64, 4, 4)),
    ("features.conv3", "Conv2d", (128, 4, 4)),
    ("features.bn3", "BatchNorm2d", (128, 4, 4)),
    ("features.relu3", "ReLU", (128, 4, 4)),
    ("features", "Sequential", (128, 4, 4)),
    ("avgpool", "AdaptiveAvgPool2d", (128, 1, 1)),
    ("flatten", "Flatten", (128,)),
    ("fc", "Linear", (10,)),
]
TRUST_HINT = (
    "if you trust its origin, retry with --trust-checkpoint (CLI) or the 'Trust this file' "
    "switch (app); or save model.state_dict() and pass --arch"
)


class _Payload:
    """Unpickling this creates ``path``: stands for any code a pickle can run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model("small_cnn", num_classes=10, in_channels=1)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a lost buffer would show
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def batch():
    return torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def state_file(model, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    return path


def _same_outputs(loaded, model, batch):
    with torch.inference_mode():
        return torch.allclose(loaded.model(batch), model(batch), atol=1e-6)


def _export(model, path, *, dynamic=True):
    shapes = ({0: torch.export.Dim.DYNAMIC},) if dynamic else None
    program = torch.export.export(model, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=shapes)
    torch.export.save(program, path)


# ------------------------------------------------------------------ state dicts
def test_state_dict_round_trip(model, batch, state_file):
    # in_channels=3 is overridden by the file's stem convolution; num_classes is inferred.
    ckpt = load_checkpoint(state_file, arch="small_cnn", in_channels=3)
    assert ckpt.format == "state_dict" and ckpt.arch == "small_cnn"
    assert (ckpt.num_classes, ckpt.in_channels) == (10, 1)
    assert ckpt.n_parameters == sum(p.numel() for p in model.parameters())
    assert ckpt.hookable and not ckpt.model.training
    assert ckpt.sha256 == hashlib.sha256(state_file.read_bytes()).hexdigest()
    assert ckpt.path == str(state_file)
    with torch.inference_mode():
        assert torch.equal(ckpt.model(batch), model(batch))


@pytest.mark.parametrize(
    ("key", "prefix"),
    [("state_dict", "module."), ("model", "_orig_mod."), ("model_state_dict", "")],
)
def test_nested_and_prefixed_state_dicts_load(model, batch, tmp_path, key, prefix):
    path = tmp_path / "nested.pth"
    weights = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save({key: weights, "epoch": 7, "optimizer": {"lr": 1e-3}}, path)
    ckpt = load_checkpoint(path, arch="small_cnn")
    assert ckpt.format == "state_dict"
    assert _same_outputs(ckpt, model, batch)


def test_sha256_is_memoised_by_file_stamp(state_file, monkeypatch):
    calls = []
    real = _util.sha256_file
    monkeypatch.setattr(_util, "sha256_file", lambda p: calls.append(p) or real(p))
    _util._sha256_stamped.cache_clear()
    first = load_checkpoint(state_file, arch="small_cnn")
    second = load_checkpoint(state_file, arch="small_cnn")
    assert first.sha256 == second.sha256 == hashlib.sha256(state_file.read_bytes()).hexdigest()
    assert len(calls) == 1


def test_state_dict_without_arch_says_to_pass_it(state_file):
    message = (
        f"checkpoint {state_file} is a state_dict: pass its architecture with --arch "
        "(e.g. resnet18, small_cnn) or choose it in the app"
    )
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(state_file)


def test_state_dict_of_another_architecture_names_keys(state_file):
    message = (
        f"checkpoint {state_file} does not fit architecture 'cifar_resnet18' "
        "(10 classes, 1 input channel): missing keys: conv1.weight, bn1.weight, bn1.bias "
        "(+97 more); unexpected keys: features.conv1.weight, features.bn1.weight, "
        "features.bn1.bias (+15 more); shape mismatch: fc.weight (file 10x128, model 10x512); "
        "check --arch and --num-classes"
    )
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(state_file, arch="cifar_resnet18")
    assert str(err.value) == message


def test_wrong_num_classes_is_a_shape_mismatch(state_file):
    message = (
        f"checkpoint {state_file} does not fit architecture 'small_cnn' (5 classes, 1 input "
        "channel): shape mismatch: fc.weight (file 10x128, model 5x128), fc.bias (file 10, "
        "model 5); check --arch and --num-classes"
    )
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(state_file, arch="small_cnn", num_classes=5)
    assert str(err.value) == message


def test_unknown_architecture_lists_closest(state_file):
    with pytest.raises(
        ConfigError, match=re.escape("unknown architecture 'resnt18'; closest: resnet18")
    ):
        load_checkpoint(state_file, arch="resnt18")


def test_state_dict_without_a_classifier_needs_num_classes(tmp_path):
    path = tmp_path / "convs.pt"
    torch.save({"features.conv1.weight": torch.zeros(32, 1, 3, 3)}, path)
    message = (
        f"cannot infer the number of classes of {path}: it has no 2-D classifier weight; "
        "pass --num-classes"
    )
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(path, arch="small_cnn")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"epoch": 3, "optimizer": {"lr": 0.1}},
            "holds a dict without weights (keys: epoch, optimizer); expected a state_dict of "
            "tensors, at the top or under one of: state_dict, model_state_dict, model, "
            "state_dict_ema",
        ),
        ([torch.zeros(2)], "holds a list, not a state_dict or a model"),
    ],
)
def test_files_without_weights_are_explained(tmp_path, content, message):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=re.escape(f"checkpoint {path} {message}")):
        load_checkpoint(path, arch="small_cnn")


# ------------------------------------------------------------------ missing and corrupt files
def test_missing_file(tmp_path):
    path = tmp_path / "absent.pt"
    with pytest.raises(CheckpointError, match=re.escape(f"checkpoint not found: {path}")):
        load_checkpoint(path, arch="small_cnn")


def test_directory_is_not_a_checkpoint(tmp_path):
    message = f"checkpoint {tmp_path} is a directory; give the file"
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(tmp_path)


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def _plain_zip(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("images/0.txt", "not a model")


def _truncated(path, model):
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    path.write_bytes(buffer.getvalue()[:1000])


@pytest.mark.parametrize("make", [_random_bytes, _plain_zip, _truncated])
def test_corrupt_files_are_not_pytorch_files(tmp_path, model, make):
    path = tmp_path / "broken.pt"
    make(path, model) if make is _truncated else make(path)
    message = (
        f"cannot read checkpoint {path}: not a PyTorch file "
        "(state_dict, TorchScript or torch.export archive)"
    )
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, arch="small_cnn", trusted=True)
    assert str(err.value) == message


# ------------------------------------------------------------------ pickles
def test_pickle_is_refused_without_trust_and_runs_nothing(tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    torch.save({"model": _Payload(marker)}, path)
    message = (
        f"checkpoint {path} contains pickled Python objects (e.g. io.open); loading it could "
        f"run code, so it was refused; {TRUST_HINT}"
    )
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, arch="small_cnn")
    assert str(err.value) == message
    assert not marker.exists()


def test_whole_pickled_model_is_refused_without_trust(model, tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    message = (
        f"checkpoint {path} contains pickled Python objects (e.g. "
        f"torch.nn.modules.container.Sequential); loading it could run code, so it was "
        f"refused; {TRUST_HINT}"
    )
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(path)


@pytest.mark.parametrize("wrap", [False, True])
def test_trusted_pickled_model_loads(model, batch, tmp_path, wrap):
    path = tmp_path / "whole.pt"
    torch.save({"model": model, "epoch": 2} if wrap else model, path)
    ckpt = load_checkpoint(path, trusted=True)
    assert ckpt.format == "pickle" and ckpt.arch is None
    assert (ckpt.num_classes, ckpt.in_channels) == (10, 1)
    assert ckpt.hookable
    assert _same_outputs(ckpt, model, batch)
    names = [info.name for info in list_layers(ckpt, input_shape=(1, 8, 8))]
    assert names == [name for name, _, _ in SMALL_CNN_LAYERS]


def test_trusted_pickle_of_a_missing_class_says_what_to_import(tmp_path, monkeypatch):
    module = types.ModuleType("vanished_models")

    class Net(nn.Linear):
        pass

    Net.__module__ = "vanished_models"
    Net.__qualname__ = "Net"
    module.Net = Net
    monkeypatch.setitem(sys.modules, "vanished_models", module)
    path = tmp_path / "net.pt"
    torch.save(Net(4, 2), path)
    monkeypatch.delitem(sys.modules, "vanished_models")
    message = (
        f"cannot unpickle checkpoint {path}: ModuleNotFoundError: No module named "
        "'vanished_models'; import the module that defines its classes first, or save "
        "model.state_dict() and pass --arch"
    )
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(path, trusted=True)


# ------------------------------------------------------------------ TorchScript and torch.export
def test_torchscript_loads_but_exposes_only_its_output(model, batch, tmp_path):
    path = tmp_path / "model.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(model), path)
    ckpt = load_checkpoint(path)
    assert ckpt.format == "torchscript" and ckpt.arch is None
    assert (ckpt.num_classes, ckpt.in_channels, ckpt.hookable) == (10, 1, False)
    assert _same_outputs(ckpt, model, batch)
    message = (
        f"{path} is a TorchScript archive: TorchScript modules run no forward hooks "
        f"(torch {torch.__version__}), so only the model's final output is reachable, not its "
        "layers; to read a layer, save model.state_dict() and pass --arch, or save a "
        "torch.export program (torch.export.save)"
    )
    with pytest.raises(LayerError, match=re.escape(message)):
        list_layers(ckpt, input_shape=(1, 8, 8))


def test_export_program_lists_the_same_layers_as_the_state_dict(model, batch, tmp_path):
    path = tmp_path / "model.bin"  # detection reads the content, not the extension
    _export(model, path)
    ckpt = load_checkpoint(path)
    assert ckpt.format == "export" and ckpt.arch is None and ckpt.hookable
    assert (ckpt.num_classes, ckpt.in_channels) == (10, 1)
    assert ckpt.n_parameters == sum(p.numel() for p in model.parameters())
    assert _same_outputs(ckpt, model, batch)
    layers = list_layers(ckpt, input_shape=(1, 8, 8))
    leaves = [(i.name, i.type, i.out_shape) for i in layers if i.name != "features"]
    assert leaves == [layer for layer in SMALL_CNN_LAYERS if layer[0] != "features"]
    assert default_layer(layers, "dist") == "features.conv3"


def test_export_program_with_a_fixed_batch_is_refused(model, tmp_path):
    path = tmp_path / "static.pt2"
    _export(model, path, dynamic=False)
    message = (
        f"the torch.export program in {path} was exported for a fixed batch of 2; RESQUE feeds "
        "batches of any size: re-export with an example batch of 2 or more and "
        "dynamic_shapes=({0: torch.export.Dim.DYNAMIC},)"
    )
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(path)


def test_export_archive_with_a_pickle_is_refused_and_runs_nothing(model, tmp_path):
    clean, path, marker = tmp_path / "clean.pt2", tmp_path / "evil.pt2", tmp_path / "pwned"
    _export(model, clean)
    payload = io.BytesIO()
    torch.save(_Payload(marker), payload)
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(path, "w") as out:
        for name in src.namelist():
            swap = name.endswith("sample_inputs/model.pt")
            out.writestr(name, payload.getvalue() if swap else src.read(name))
    message = (
        f"checkpoint {path} contains pickled Python objects (in "
        f"clean/data/sample_inputs/model.pt); loading it could run code, so it was refused; "
        f"{TRUST_HINT}"
    )
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == message
    assert not marker.exists()


def test_export_archive_with_a_broken_config_cannot_be_read(model, tmp_path):
    clean, path = tmp_path / "clean.pt2", tmp_path / "broken.pt2"
    _export(model, clean)
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(path, "w") as out:
        for name in src.namelist():
            broken = name.endswith("_weights_config.json")
            out.writestr(name, b"{" if broken else src.read(name))
    message = (
        f"cannot read torch.export archive {path}: Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1)"
    )
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(path)


# ------------------------------------------------------------------ list_layers
def test_list_layers_reports_every_tensor_output_in_order_and_removes_its_hooks(state_file):
    ckpt = load_checkpoint(state_file, arch="small_cnn")
    layers = list_layers(ckpt, input_shape=(1, 8, 8))
    assert [(i.name, i.type, i.out_shape) for i in layers] == SMALL_CNN_LAYERS
    assert all(not m._forward_hooks for m in ckpt.model.modules())


def test_list_layers_ignores_forward_passes_of_other_threads(state_file, monkeypatch):
    ckpt = load_checkpoint(state_file, arch="small_cnn")
    head = ckpt.model.fc
    real_forward = head.forward
    other = []

    def forward_then_let_another_session_run(x):
        # Another session runs the shared model on bigger images while the listing's hooks are
        # still on: its outputs would otherwise overwrite the recorded shapes.
        monkeypatch.setattr(head, "forward", real_forward)
        thread = threading.Thread(
            target=lambda: other.append(ckpt.model(torch.zeros(1, 1, 16, 16)))
        )
        thread.start()
        thread.join()
        return real_forward(x)

    monkeypatch.setattr(head, "forward", forward_then_let_another_session_run)
    layers = list_layers(ckpt, input_shape=(1, 8, 8))
    assert other[0].shape == (1, 10)
    assert [(i.name, i.type, i.out_shape) for i in layers] == SMALL_CNN_LAYERS


def test_list_layers_wrong_channels(state_file):
    ckpt = load_checkpoint(state_file, arch="small_cnn")
    message = (
        "the model expects 1 input channel, got 3: set the channels to 1 (--in-channels 1; "
        "'Input channels' in the app) (torch: Given groups=1, weight of size [32, 1, 3, 3], "
        "expected input[1, 3, 8, 8] to have 1 channels, but got 3 channels instead)"
    )
    with pytest.raises(DataError) as err:
        list_layers(ckpt, input_shape=(3, 8, 8))
    assert str(err.value) == message


def test_list_layers_too_small_an_image(state_file):
    ckpt = load_checkpoint(state_file, arch="small_cnn")
    message = (
        "the model cannot take 1x1 images: it needs a bigger image or the size it was built "
        "for; set the image size (--image-size; 'Image size' in the app) (torch: Given input "
        "size: (64x1x1). Calculated output size: (64x0x0). Output size is too small)"
    )
    with pytest.raises(DataError) as err:
        list_layers(ckpt, input_shape=(1, 1, 1))
    assert str(err.value) == message
    assert all(not m._forward_hooks for m in ckpt.model.modules())


@pytest.mark.parametrize("shape", [(1, 8), (0, 8, 8), (1, 8.0, 8)])
def test_list_layers_bad_input_shape(state_file, shape):
    ckpt = load_checkpoint(state_file, arch="small_cnn")
    message = (
        f"input shape must be three positive integers (channels, height, width), got {shape!r}"
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        list_layers(ckpt, input_shape=shape)


# ------------------------------------------------------------------ default_layer
def _layers(*specs):
    return [LayerInfo(name, kind, shape) for name, kind, shape in specs]


VIT_LIKE = _layers(
    ("conv_proj", "Conv2d", (768, 14, 14)),
    ("encoder.layers.encoder_layer_0.ln_1", "LayerNorm", (197, 768)),
    ("encoder.layers.encoder_layer_0", "EncoderBlock", (197, 768)),
    ("encoder.layers", "Sequential", (197, 768)),
    ("encoder.ln", "LayerNorm", (197, 768)),
    ("encoder", "Encoder", (197, 768)),
    ("heads.head", "Linear", (10,)),
    ("heads", "Sequential", (10,)),
)
MLP = _layers(
    ("flatten", "Flatten", (64,)),
    ("hidden", "Linear", (32,)),
    ("act", "ReLU", (32,)),
    ("out", "Linear", (10,)),
)


@pytest.mark.parametrize("kind", ["dist", "task"])
@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        (_layers(*SMALL_CNN_LAYERS), "features.conv3"),
        (VIT_LIKE, "encoder.ln"),
        (MLP, "hidden"),
        (MLP[-1:], "out"),
    ],
)
def test_default_layer(layers, expected, kind):
    assert default_layer(layers, kind) == expected


def test_default_layer_without_candidates():
    message = (
        "the model has no Conv2d, token-sequence or Linear layer to read by default; "
        "choose a layer (--layer)"
    )
    with pytest.raises(LayerError, match=re.escape(message)):
        default_layer(_layers(("act", "ReLU", (4,))), "dist")


def test_default_layer_unknown_kind():
    with pytest.raises(
        ConfigError, match=re.escape("unknown layer kind 'both'; allowed: dist, task")
    ):
        default_layer(_layers(*SMALL_CNN_LAYERS), "both")
