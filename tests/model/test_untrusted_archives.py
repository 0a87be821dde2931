"""Hostile torch.export archives: native code, unknown members, zip tricks and Python hidden in
symbolic shapes are refused before torch reads the file, trusted or not, whatever its name."""

import ctypes
import json
import re
import zipfile

import pytest
import torch
from fixtures.hostile import aoti_archive, compiler, payload_library, tiny_export, with_members
from torch import nn

from resque_core.cli import main
from resque_core.errors import CheckpointError
from resque_core.model import list_layers, load_checkpoint

HINT = (
    "re-export the model with torch.export.save (no AOTInductor packaging), or save "
    "model.state_dict() and pass --arch"
)
RUN = "; loading it would run that code"
needs_cc = pytest.mark.skipif(compiler() is None, reason="no C compiler (cc) to build the payload")


def _refused(path, what):
    return f"checkpoint {path} {what}, so it is refused even if trusted: {HINT}"


def _native(path):
    return _refused(
        path,
        "carries native code (tiny/data/aotinductor/model/evil.so); loading it would run that code",
    )


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return tiny_export(tmp_path_factory.mktemp("clean") / "tiny.pt2")


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "native-code-ran"


@pytest.fixture
def library(tmp_path, marker):
    return payload_library(tmp_path, marker)


@pytest.fixture
def evil(clean, library, tmp_path):
    return aoti_archive(clean, tmp_path / "evil.pt2", library)


# ------------------------------------------------------------------ the AOTInductor payload
@needs_cc
def test_the_payload_library_runs_as_soon_as_it_is_loaded(library, marker):
    # What torch.export.load would do with it (dlopen): the marker proves the payload is live.
    ctypes.CDLL(str(library))
    assert marker.read_text() == "native code ran\n"


def test_a_plain_archive_loads_and_lists_its_layers(clean):
    ckpt = load_checkpoint(clean)
    assert ckpt.format == "export" and ckpt.num_classes == 3
    names = [info.name for info in list_layers(ckpt, input_shape=(1, 8, 8))]
    assert names[0] == "0" and names[-1] == "4"


@needs_cc
@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize("name", ["evil.pt2", "evil.pt", "checkpoint"])
def test_aotinductor_archive_is_refused_by_content_and_runs_nothing(
    evil, marker, tmp_path, name, trusted
):
    path = evil.rename(tmp_path / name) if name != evil.name else evil
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, trusted=trusted)
    assert str(err.value) == _native(path)
    assert not marker.exists()


@needs_cc
@pytest.mark.parametrize("command", ["layers", "score"])
def test_cli_refuses_the_aotinductor_archive_in_one_line(capsys, evil, marker, command):
    argv = [command, "--checkpoint", str(evil), "--in-channels", "1", "--image-size", "8"]
    if command == "score":
        argv += ["--data", "builtin:digits", "--shift", "gaussian_noise:1", "--no-cache"]
    code = main(argv)
    out, err = capsys.readouterr()
    assert (code, out, err) == (2, "", f"error: {_native(evil)}\n")
    assert not marker.exists()


@needs_cc
def test_rank_plan_refuses_the_aotinductor_archive(capsys, evil, marker, tmp_path):
    plan = {
        "version": 1,
        "name": "hostile",
        "model": {"checkpoint": str(evil), "in_channels": 1, "image_size": [8, 8]},
        "source": "builtin:digits",
        "run": {"samples_per_class": 5, "seed": 0},
        "candidates": [
            {"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"},
            {"id": "parity", "kind": "task", "data": "builtin:digits-parity"},
        ],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    code = main(["rank", "--plan", str(tmp_path / "plan.json"), "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == f"error: {_native(evil)}\n"
    assert not marker.exists()


# ------------------------------------------------------------------ members and zip tricks
@pytest.mark.parametrize(
    ("added", "what"),
    [
        ({"tiny/extra/kernel.so": b"\x7fELF"}, f"carries native code (tiny/extra/kernel.so){RUN}"),
        ({"tiny/data/mtia/blob": b"x"}, f"carries native code (tiny/data/mtia/blob){RUN}"),
        (
            {"tiny/data/weights/kernel.cpp": b"int main(){}"},
            f"carries native code (tiny/data/weights/kernel.cpp){RUN}",
        ),
        (
            {"tiny/xl_model_weights/model_param_config": b"{}"},
            "has a member that a torch.export program does not need "
            "(tiny/xl_model_weights/model_param_config)",
        ),
        (
            {"tiny/data/weights/model_weights_config.json": b"{}"},
            "lists the member tiny/data/weights/model_weights_config.json twice",
        ),
        (
            {"tiny/data/../../evil": b"x"},
            "has an unsafe member name 'tiny/data/../../evil' (absolute, '..', '.', '\\' or '//')",
        ),
        (
            {"/tmp/evil": b"x"},
            "has an unsafe member name '/tmp/evil' (absolute, '..', '.', '\\' or '//')",
        ),
        (
            {"tiny\\data\\evil": b"x"},
            "has an unsafe member name 'tiny\\\\data\\\\evil' (absolute, '..', '.', '\\' or '//')",
        ),
        (
            {"other/archive_format": b"pt2"},
            "has a member outside its root folder tiny/ (other/archive_format)",
        ),
        ({"version": b"1"}, "has a member outside its root folder tiny/ (version)"),
    ],
)
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_members_the_program_does_not_need_are_refused(clean, tmp_path, added, what):
    path = with_members(clean, tmp_path / "odd.pt2", added)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, trusted=True)
    assert str(err.value) == _refused(path, what)


def test_a_zip_listed_differently_by_torchs_reader_is_refused(clean, monkeypatch):
    # Two readers disagreeing on a crafted zip's directory: torch's reader sees a member more.
    real = torch._C.PyTorchFileReader

    class Disagreeing:
        def __init__(self, path):
            self.records = [*real(path).get_all_records(), "data/aotinductor/model/x.so"]

        def get_all_records(self):
            return self.records

    monkeypatch.setattr(torch._C, "PyTorchFileReader", Disagreeing)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(clean)
    assert str(err.value) == _refused(
        clean, "lists its members differently to torch's zip reader (data/aotinductor/model/x.so)"
    )


def test_extra_files_and_symbolic_arithmetic_of_a_real_program_load(tmp_path):
    class Halves(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)[:, :, : x.shape[2] // 2]
            return y.reshape(x.shape[0], -1)

    dims = {0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC}
    program = torch.export.export(Halves(), (torch.zeros(2, 1, 8, 8),), dynamic_shapes=(dims,))
    path = tmp_path / "halves.pt2"
    torch.export.save(program, path, extra_files={"notes.txt": "trained on digits"})
    with zipfile.ZipFile(path) as zf:
        assert "halves/extra/notes.txt" in zf.namelist()
        assert "FloorDiv(" in zf.read("halves/models/model.json").decode()
    ckpt = load_checkpoint(path)
    with torch.inference_mode():
        assert ckpt.model(torch.zeros(3, 1, 6, 8)).shape == (3, 2 * 3 * 8)


# ------------------------------------------------------------------ Python in symbolic shapes
def _with_expr(clean, path, expr):
    program = zipfile.ZipFile(clean).read("tiny/models/model.json").decode()
    symbol = re.search(r'"expr_str": "(Symbol\([^"]*\))"', program).group(1)
    return with_members(
        clean, path, {}, replace={"models/model.json": program.replace(symbol, expr).encode()}
    )


def test_python_in_a_symbolic_shape_is_refused_and_runs_nothing(clean, tmp_path):
    marker = tmp_path / "python-ran"
    expr = f"__import__('pathlib').Path('{marker}').touch() or Symbol('s0', integer=True)"
    path = _with_expr(clean, tmp_path / "evil.pt2", expr)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, trusted=True)
    shown = repr(expr[:77] + "...")
    assert str(err.value) == _refused(
        path,
        f"has a symbolic shape in tiny/models/model.json that is not plain arithmetic ({shown}); "
        "torch would evaluate it as Python",
    )
    assert not marker.exists()


@pytest.mark.parametrize(
    "expr",
    [
        "Pow(Integer(3), Integer(4611686018427387904))",  # sympy would compute 3**2**62
        "Pow(Pow(Integer(3), Integer(64)), Integer(64))",
        "LShift(Integer(1), Mul(Integer(64), Integer(64)))",
        "Integer(9223372036854775808)",
        "Symbol('s0').__class__",
        "Lambda(Symbol('x'), Symbol('x'))",
        "Symbol(*['s0'])",
        "Symbol('a b')",
    ],
)
def test_symbolic_shapes_beyond_plain_arithmetic_are_refused(clean, tmp_path, expr):
    path = _with_expr(clean, tmp_path / "odd.pt2", expr)
    with pytest.raises(CheckpointError, match="that is not plain arithmetic"):
        load_checkpoint(path)


# ------------------------------------------------------------------ TorchScript
@needs_cc
@pytest.mark.filterwarnings("ignore:`torch.jit.s:FutureWarning")
def test_torchscript_never_loads_a_library_it_carries(library, marker, tmp_path):
    # torch.jit.load compiles code/ itself and ignores other members: the library stays inert.
    clean, path = tmp_path / "script.pt", tmp_path / "script_evil.pt"
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(64, 3))), clean)
    root = zipfile.ZipFile(clean).namelist()[0].split("/", 1)[0]
    with_members(clean, path, {f"{root}/data/aotinductor/model/evil.so": library.read_bytes()})
    ckpt = load_checkpoint(path)
    assert ckpt.format == "torchscript" and ckpt.num_classes == 3
    with torch.inference_mode():
        ckpt.model(torch.zeros(2, 1, 8, 8))
    assert not marker.exists()
