"""Resource limits on hostile input (resque_core.limits): each case refused with its exact
message before the memory or time it would take is spent.

The decompression bombs are built here (valid files that decode to gigabytes) and loaded in a
child process that reports its own peak RSS (VmHWM, else ``resource.getrusage``).
"""

import gzip
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from resque_core import limits
from resque_core.data import ImageSet, data_fingerprint, load_data, parse_image_size
from resque_core.errors import ConfigError, DataError
from resque_core.plans import plan_from_dict
from resque_core.scoring.estimators import resque_task
from resque_core.scoring.scorer import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
_IMAGE_TAIL = (
    "images may have at most 16,384 pixels a side and 50,000,000 in all; refused as a possible "
    "decompression bomb: shrink the image or remove it"
)


def _raises(error, message):
    return pytest.raises(error, match=re.escape(message))


# ----------------------------------------------------------------------------- bomb builders
def _png(width: int, height: int, *, level: int = 9) -> bytes:
    """A valid 1-bit palette PNG of ``width`` x ``height`` black pixels, compressed row block by
    row block (never held whole): 13,000 x 13,000 is ~20 KB and decodes to 169 MB (mode P),
    507 MB as RGB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    rows_per_block = max(1, (1 << 22) // len(row))
    co = zlib.compressobj(level)
    idat = []
    for start in range(0, height, rows_per_block):
        idat.append(co.compress(row * min(rows_per_block, height - start)))
    idat.append(co.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0)  # bit depth 1, palette
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"PLTE", bytes(6))
        + chunk(b"IDAT", b"".join(idat))
        + chunk(b"IEND", b"")
    )


def _npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    buf = io.BytesIO()
    d = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, d)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _npz_of_zeros(path: Path, shape: tuple[int, ...]) -> Path:
    """A valid .npz whose x is uint8 zeros of ``shape`` (streamed: never held in memory) and y
    zeros; deflate packs 1 GB of zeros into ~4 MB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as f:
            f.write(_npy_header(shape))
            zeros, left = bytes(1 << 24), int(np.prod(shape))
            while left:
                f.write(zeros[: min(left, len(zeros))])
                left -= min(left, len(zeros))
        zf.writestr("y.npy", _npy(np.zeros(shape[0], np.int64)))
    return path


def _npz_declaring(path: Path, x_shape: tuple[int, ...], **members: bytes) -> Path:
    """An .npz whose x member holds only the .npy header declaring ``x_shape`` (the data cut
    short: the limits must refuse from the header alone, so the rest is never needed)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", _npy_header(x_shape) + bytes(64))
        for name, raw in members.items():
            zf.writestr(f"{name}.npy", raw)
    return path


# ----------------------------------------------------------------------------- bombs: peak RSS
_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from resque_core import limits
    from resque_core.data import load_data
    from resque_core.errors import DataError

    def peak_mb():
        # VmHWM: this process's own peak (ru_maxrss also counts the parent it was forked from).
        try:
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
        except (OSError, StopIteration):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    print(json.dumps({"case": "import", "peak_mb": peak_mb()}), flush=True)
    for case, spec, available in json.loads(sys.argv[1]):
        if available is not None:  # a machine with this much memory available
            limits._mem_available = lambda: available
        try:
            load_data(spec)
            error = None
        except DataError as e:
            error = str(e)
        print(json.dumps({"case": case, "error": error, "peak_mb": peak_mb()}), flush=True)
    """
)


@pytest.mark.slow
def test_decompression_bombs_are_refused_from_headers_under_1_gb_peak_rss(tmp_path):
    # 169 megapixels: under Pillow's own refusal (178,956,970), so only our limit stops it.
    bomb = _png(13_000, 13_000)
    assert len(bomb) < 300_000
    with pytest.warns(Image.DecompressionBombWarning), Image.open(io.BytesIO(bomb)) as img:
        assert img.size == (13_000, 13_000) and img.mode == "P"  # a real PNG; Pillow only warns
    pngs = tmp_path / "pngs"
    (pngs / "a").mkdir(parents=True)
    (pngs / "b").mkdir()
    for name in ("a/0.png", "a/1.png", "b/0.png", "b/1.png"):
        (pngs / name).write_bytes(bomb)
    png_zip = tmp_path / "pngs.zip"
    with zipfile.ZipFile(png_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("a/0.png", "a/1.png", "b/0.png", "b/1.png"):
            zf.writestr(name, bomb)
    # Forty 7,000 x 7,000 palette images, each within the per-image limits: 5.5 GiB as RGB.
    tile = _png(7_000, 7_000)
    many_zip = tmp_path / "many.zip"
    with zipfile.ZipFile(many_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(40):
            zf.writestr(f"{'ab'[i % 2]}/{i}.png", tile)
    npz = _npz_of_zeros(tmp_path / "zeros.npz", (6_000, 224, 224, 3))  # 0.84 GiB of x
    two_gib = 2 * 1024**3
    cases = [
        ("4 PNGs", str(pngs), None),
        ("zip of PNGs", str(png_zip), None),
        ("zip of 40 PNGs", str(many_zip), two_gib),
        ("npz", str(npz), two_gib),
    ]
    sizes = {
        c: os.path.getsize(s) if s.endswith(("zip", "npz")) else 4 * len(bomb) for c, s, _ in cases
    }
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(cases)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = {r["case"]: r for r in map(json.loads, out.stdout.splitlines())}
    print({c: (sizes.get(c), round(r["peak_mb"])) for c, r in rows.items()})
    assert rows["4 PNGs"]["error"] == (
        f"image '{pngs / 'a' / '0.png'}' is 13,000 x 13,000 pixels; {_IMAGE_TAIL}"
    )
    assert rows["zip of PNGs"]["error"] == (
        f"image member 'a/0.png' of '{png_zip}' is 13,000 x 13,000 pixels; {_IMAGE_TAIL}"
    )
    assert rows["zip of 40 PNGs"]["error"] == (
        f"zip '{many_zip}' would take 5.5 GiB of memory to decode, over the limit of 1.0 GiB "
        "(50% of the 2.0 GiB available now); use fewer or smaller images"
    )
    assert rows["npz"]["error"] == (
        f"'{npz}' would take 1.7 GiB of memory to decode, over the limit of 1.0 GiB (50% of "
        "the 2.0 GiB available now); use fewer or smaller images"
    )
    assert max(r["peak_mb"] for r in rows.values()) < 1024


# ----------------------------------------------------------------------------- images
def test_image_pillow_refuses_itself_gets_the_same_limit_message(tmp_path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    # 400 megapixels: Pillow raises DecompressionBombError before the header reaches us.
    (root / "a" / "0.png").write_bytes(_png(20_000, 20_000, level=1))
    with _raises(
        DataError, f"image '{root / 'a' / '0.png'}' is over 50,000,000 pixels; {_IMAGE_TAIL}"
    ):
        load_data(str(root))


def test_image_over_the_pixel_count_is_refused_from_its_header(tmp_path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    (root / "a" / "big.png").write_bytes(_png(10_000, 6_000, level=1))  # 60 MP: below Pillow's
    with _raises(
        DataError, f"image '{root / 'a' / 'big.png'}' is 10,000 x 6,000 pixels; {_IMAGE_TAIL}"
    ):
        load_data(str(root))


def test_image_over_the_side_limit_is_refused(tmp_path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    Image.new("L", (20, 20)).save(root / "a" / "0.png")
    (root / "a" / "1.png").write_bytes(_png(10, 20_000))  # 200,000 pixels, but 20,000 high
    with _raises(DataError, f"image '{root / 'a' / '1.png'}' is 10 x 20,000 pixels; {_IMAGE_TAIL}"):
        load_data(str(root))


def test_images_within_the_limits_still_load(tmp_path):
    root = tmp_path / "d"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        (root / c / "0.png").write_bytes(_png(16_384, 2))
    ds = load_data(str(root))
    assert ds.images.shape == (2, 3, 2, 16_384) and int(ds.images.max()) == 0  # palette: RGB


# ----------------------------------------------------------------------------- memory budget
def test_memory_budget_is_half_of_memavailable_or_a_fixed_fallback(monkeypatch):
    if Path("/proc/meminfo").is_file():
        assert limits._mem_available() > 0
    monkeypatch.setattr(limits, "_mem_available", lambda: 6 * 1024**3)
    assert limits.memory_budget() == (3 * 1024**3, "50% of the 6.0 GiB available now")
    monkeypatch.setattr(limits, "_mem_available", lambda: None)
    assert limits.memory_budget() == (4 * 1024**3, "the fixed budget where free memory is unknown")
    with _raises(
        DataError,
        "d would take 4.5 GiB of memory to decode, over the limit of 4.0 GiB (the fixed budget "
        "where free memory is unknown); use fewer or smaller images",
    ):
        limits.check_decoded_bytes(int(4.5 * 1024**3), "d")


def test_meminfo_that_cannot_be_read_gives_none(monkeypatch):
    def fail(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", fail)
    assert limits._mem_available() is None


def test_folder_over_the_budget_is_refused_before_decoding(tmp_path, monkeypatch):
    root = tmp_path / "d"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (100, 100)).save(root / c / f"{i}.png")
    monkeypatch.setattr(limits, "_mem_available", lambda: 200_000)  # budget 100,000 bytes
    with _raises(
        DataError,
        f"data folder '{root}' would take 0.2 MiB of memory to decode, over the limit of 0.1 MiB "
        "(50% of the 0.2 MiB available now); use fewer or smaller images",
    ):
        load_data(str(root))


def test_grey_set_joined_by_a_colour_image_is_rechecked_at_three_channels(tmp_path, monkeypatch):
    root = tmp_path / "d"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
    Image.new("L", (100, 100)).save(root / "a" / "0.png")
    Image.new("RGB", (100, 100)).save(root / "b" / "0.png")
    # 2 x 100 x 100 grey = 20,000 bytes fit; as RGB 60,000 do not.
    monkeypatch.setattr(limits, "_mem_available", lambda: 100_000)
    with _raises(DataError, f"data folder '{root}' would take 0.1 MiB of memory to decode"):
        load_data(str(root))
    monkeypatch.setattr(limits, "_mem_available", lambda: 120_000)
    assert load_data(str(root)).images.shape == (2, 3, 100, 100)


def test_gzipped_idx_file_stops_at_the_budget(tmp_path, monkeypatch):
    idx = tmp_path / "train-images-idx3-ubyte.gz"
    raw = struct.pack(">BBBBIII", 0, 0, 8, 3, 1000, 50, 50) + bytes(1000 * 50 * 50)
    idx.write_bytes(gzip.compress(raw))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(
        struct.pack(">BBBBI", 0, 0, 8, 1, 1000) + bytes(1000)
    )
    monkeypatch.setenv("RESQUE_FASHION_MNIST_DIR", str(tmp_path))
    monkeypatch.setattr(limits, "_mem_available", lambda: 2 * 1024**2)  # budget 1 MiB
    with _raises(
        DataError,
        f"IDX file '{idx}' would take 1.0 MiB of memory to decode, over the limit of 1.0 MiB",
    ):
        load_data("builtin:fashion-mnist")


# ----------------------------------------------------------------------------- npz headers
def test_npz_declaring_a_huge_x_is_refused_from_the_header(tmp_path, monkeypatch):
    y = _npy(np.zeros(100_000, np.int64))
    path = _npz_declaring(tmp_path / "big.npz", (100_000, 224, 224, 3), y=y)
    monkeypatch.setattr(limits, "_mem_available", lambda: 8 * 1024**3)
    with _raises(
        DataError,
        f"'{path}' would take 28.0 GiB of memory to decode, over the limit of 4.0 GiB (50% of "
        "the 8.0 GiB available now); use fewer or smaller images",
    ):
        load_data(str(path))


def test_npz_image_over_the_side_limit_is_refused_from_the_header(tmp_path):
    path = _npz_declaring(tmp_path / "wide.npz", (1, 20_000, 20_000), y=_npy(np.zeros(1, np.int64)))
    with _raises(
        DataError,
        f"each image of x in '{path}' is 20,000 x 20,000 pixels; {_IMAGE_TAIL}",
    ):
        load_data(str(path))


def test_npz_y_of_another_length_is_refused_before_it_is_read(tmp_path):
    y = _npy_header((10**12,), "<i8")  # declares a terabyte of labels
    path = _npz_declaring(tmp_path / "y.npz", (2, 3, 3), y=y)
    with _raises(
        DataError,
        f"'{path}': y must hold 2 integer labels (one per image), got int64 (1000000000000,)",
    ):
        load_data(str(path))


def test_npz_labels_up_to_2_to_the_64_are_refused(tmp_path):
    path = tmp_path / "huge.npz"
    np.savez(path, x=np.zeros((2, 3, 3), np.uint8), y=np.array([0, 2**64 - 1], np.uint64))
    with _raises(
        DataError,
        f"'{path}': labels go up to 18,446,744,073,709,551,615, that is "
        "18,446,744,073,709,551,616 classes for 2 images; a data set may have at most 1,000 "
        "classes (one per image, or 1,000): number the classes 0..K-1",
    ):
        load_data(str(path))


def test_class_count_is_bounded_by_the_number_of_images(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "CLASS_COUNT_FLOOR", 2)
    path = tmp_path / "y.npz"
    np.savez(path, x=np.zeros((3, 2, 2), np.uint8), y=np.array([0, 1, 3]))
    with _raises(
        DataError,
        f"'{path}': labels go up to 3, that is 4 classes for 3 images; a data set may have at "
        "most 3 classes (one per image, or 2): number the classes 0..K-1",
    ):
        load_data(str(path))
    np.savez(path, x=np.zeros((3, 2, 2), np.uint8), y=np.array([0, 1, 2]), classes=list("abcd"))
    with _raises(DataError, f"'{path}': 'classes' holds 4 names, that is 4 classes for 3 images"):
        load_data(str(path))
    np.savez(path, x=np.zeros((3, 2, 2), np.uint8), y=np.array([0, 2, 2]))
    assert load_data(str(path)).classes == ("0", "1", "2")  # empty class 1 kept


def test_npz_class_names_must_be_utf8_and_one_dimensional(tmp_path):
    path = tmp_path / "c.npz"
    x, y = np.zeros((2, 3, 3), np.uint8), np.array([0, 1])
    np.savez(path, x=x, y=y, classes=np.array([b"ok", b"\xff\xfe"]))
    with _raises(
        DataError,
        f"'{path}': class name 1 is not UTF-8 text (b'\\xff\\xfe'); save the names as str",
    ):
        load_data(str(path))
    np.savez(path, x=x, y=y, classes=np.array([["a", "b"]]))
    with _raises(DataError, f"'{path}': classes must be a 1-D array of names, got shape (1, 2)"):
        load_data(str(path))
    np.savez(path, x=x, y=y, classes=np.array([b"caf\xc3\xa9", b"b"]))
    assert load_data(str(path)).classes == ("café", "b")


def test_duplicate_class_names_are_refused(tmp_path):
    path = tmp_path / "dup.npz"
    np.savez(path, x=np.zeros((2, 3, 3), np.uint8), y=np.array([0, 1]), classes=["cat", "cat"])
    with _raises(
        DataError,
        f"{path}: class name 'cat' is given twice (classes 0 and 1); give every class a unique "
        "name",
    ):
        load_data(str(path))
    with _raises(DataError, "t: class name '1' is given twice (classes 0 and 2)"):
        ImageSet(
            torch.zeros(1, 1, 1, 1, dtype=torch.uint8), torch.zeros(1).long(), (1, "a", "1"), "t"
        )


# ----------------------------------------------------------------------------- model input size
def test_model_input_size_is_bounded_in_the_cli_the_config_and_plans(tmp_path):
    with _raises(
        ConfigError,
        "--image-size 100000 x 100000 is over the limit of 1,024 pixels a side for the model's "
        "input; give a smaller size (e.g. 224)",
    ):
        parse_image_size("100000")
    assert parse_image_size("1024x8") == (1024, 8)
    message = (
        "image_size 40000 x 40000 is over the limit of 1,024 pixels a side for the model's "
        "input; give a smaller size (e.g. 224)"
    )
    with _raises(ConfigError, message):
        ModelConfig(checkpoint="m.pt", image_size=(40000, 40000))
    plan = {
        "version": 1,
        "model": {"checkpoint": "m.pt", "image_size": 40000},
        "source": "builtin:digits",
        "candidates": [{"id": "a", "kind": "task", "data": "builtin:digits"}],
    }
    with _raises(ConfigError, message):
        plan_from_dict(plan, base_dir=tmp_path)
    with _raises(ConfigError, "image_size 8 x 2048 is over the limit of 1,024 pixels a side"):
        load_data("builtin:digits", image_size=(8, 2048))


def test_cli_image_size_over_the_limit_is_one_error_line(capsys):
    from resque_core.cli import main

    assert main(["layers", "--checkpoint", "m.pt", "--image-size", "40000"]) == 2
    assert capsys.readouterr().err == (
        "error: --image-size 40000 x 40000 is over the limit of 1,024 pixels a side for the "
        "model's input; give a smaller size (e.g. 224)\n"
    )


# ----------------------------------------------------------------------------- k-means
def _blobs(k: int, n: int, d: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n)
    return rng.normal(size=(k, d))[y] * 3 + rng.normal(size=(k * n, d)), y


def test_task_with_too_many_classes_is_refused_before_clustering():
    x, y = _blobs(2400, 3, d=2)  # 2,400 classes in 7,200 samples: 800+ s of k-means before
    with _raises(
        DataError,
        "the new task has 2,400 classes; RESQUE_task clusters at most 1,000 (one k-means "
        "cluster per class): use a task with fewer classes",
    ):
        resque_task(x, y)


def test_kmeans_iteration_work_is_bounded(monkeypatch):
    monkeypatch.setattr(limits, "KMEANS_MAX_WORK", 1000)
    x, y = _blobs(4, 30)
    with _raises(
        DataError,
        "k-means on 120 embeddings of 6 values with 4 clusters needs 2.9e+03 multiply-adds per "
        "iteration, over the limit of 1e+03; use fewer samples (max task samples) or classes, "
        "or leave out the flattened variants (no --flatten; plan run.flatten false)",
    ):
        resque_task(x, y)


def test_kmeans_in_chunks_finds_the_same_partition_as_one_fit(monkeypatch):
    x, y = _blobs(5, 40, seed=3)
    x = x + np.random.default_rng(4).normal(scale=2.0, size=x.shape)  # overlap: many iterations
    one = KMeans(n_clusters=5, init="k-means++", n_init=1, random_state=0).fit(x)
    assert one.n_iter_ > 6  # so that the chunks below really continue from each other
    monkeypatch.setattr(limits, "KMEANS_CHUNK_WORK", 3 * 200 * 6 * 5)  # 3 iterations per fit
    fits, real_fit = [], KMeans.fit
    monkeypatch.setattr(KMeans, "fit", lambda km, *a: fits.append(km.max_iter) or real_fit(km, *a))
    chunked = resque_task(x, y, init="k-means++", seed=0)
    assert len(fits) > 2 and fits[0] == 3
    assert chunked == pytest.approx(1 - adjusted_rand_score(y, one.labels_), abs=1e-12)


def test_kmeans_time_bound_stops_a_run_between_chunks(monkeypatch):
    x, y = _blobs(5, 40, seed=3)
    x = x + np.random.default_rng(4).normal(scale=2.0, size=x.shape)
    monkeypatch.setattr(limits, "KMEANS_MAX_SECONDS", 0.0)
    # One chunk (the default for small data): one plain fit, never stopped by the clock.
    assert 0 <= resque_task(x, y, init="k-means++") < 2
    monkeypatch.setattr(limits, "KMEANS_CHUNK_WORK", 1)
    with _raises(
        DataError,
        "k-means on 200 embeddings of 6 values with 5 clusters did not converge within 0 s "
        "(stopped after 1 of at most 300 Lloyd iterations); use fewer samples (max task "
        "samples) or classes, or leave out the flattened variants (no --flatten; plan "
        "run.flatten false)",
    ):
        resque_task(x, y, init="k-means++")


def test_scorer_refuses_a_task_with_too_many_classes_before_embedding(
    digits_checkpoint, monkeypatch
):
    from resque_core.scoring import scorer as pipeline

    def no_embeddings(*args, **kwargs):
        raise AssertionError("embeddings computed for a task that is refused")

    monkeypatch.setattr(pipeline, "embeddings", no_embeddings)
    monkeypatch.setattr(limits, "MAX_TASK_CLASSES", 9)
    scorer = pipeline.Scorer(
        ModelConfig(checkpoint=digits_checkpoint, arch="small_cnn", in_channels=1),
        pipeline.RunConfig(samples_per_class=5),
    )
    with _raises(DataError, "the new task has 10 classes; RESQUE_task clusters at most 9"):
        scorer.score_task("builtin:digits")


# ----------------------------------------------------------------------------- regular files only
@pytest.fixture
def alarm():
    """Fails a test that would block (a FIFO opened for reading) instead of hanging the run."""

    def fail(signum, frame):
        raise TimeoutError("blocked on a FIFO")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_fifo_given_as_data_is_refused_without_reading(tmp_path, alarm):
    fifo = tmp_path / "data.npz"
    os.mkfifo(fifo)
    message = f"data file {fifo} is not a regular file (a device, FIFO or socket); give a file"
    with _raises(DataError, message):
        load_data(str(fifo))
    with _raises(DataError, message):
        data_fingerprint(str(fifo))


def test_fifo_inside_a_folder(tmp_path, alarm):
    root = tmp_path / "d"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        Image.new("L", (4, 4)).save(root / c / "0.png")
    os.mkfifo(root / "a" / "notes")  # not an image: left out of the data and its identity
    fingerprint = data_fingerprint(str(root))
    assert len(load_data(str(root))) == 2
    os.mkfifo(root / "a" / "1.png")  # named like an image: refused, never opened
    with _raises(
        DataError,
        f"image {root / 'a' / '1.png'} is not a regular file (a device, FIFO or socket); give a "
        "file",
    ):
        load_data(str(root))
    with _raises(DataError, f"data file {root / 'a' / '1.png'} is not a regular file"):
        data_fingerprint(str(root))
    os.remove(root / "a" / "1.png")
    assert data_fingerprint(str(root)) == fingerprint


# ----------------------------------------------------------------------------- permissions
def _chmod_denies(path: Path) -> bool:
    """True if ``chmod 0`` really stops this process (root reads anyway)."""
    path.chmod(0)
    return not os.access(path, os.R_OK)


def test_unreadable_class_folder_is_an_error_not_an_empty_class(tmp_path):
    root = tmp_path / "d"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        Image.new("L", (4, 4)).save(root / c / "0.png")
    denied = _chmod_denies(root / "b")
    try:
        if not denied:
            pytest.skip("running as root: chmod 0 does not stop reading (see the scandir test)")
        with _raises(
            DataError,
            f"cannot read folder {root / 'b'} of data folder {root}: permission denied",
        ):
            load_data(str(root))
    finally:
        (root / "b").chmod(0o755)


def test_folder_the_os_refuses_to_list_is_an_error(tmp_path, monkeypatch):
    # What os.walk meets in a folder without read permission, for any user (root included).
    root = tmp_path / "d"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        Image.new("L", (4, 4)).save(root / c / "0.png")
    real = os.scandir

    denied = {root / "b"}

    def scandir(path="."):
        if Path(path) in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    message = f"cannot read folder {root / 'b'} of data folder {root}: permission denied"
    with _raises(DataError, message):
        load_data(str(root))
    with _raises(DataError, message):
        data_fingerprint(str(root))
    denied.add(root / "a" / "x")  # the data folder itself
    (root / "a" / "x").mkdir()
    with _raises(DataError, f"cannot read data folder {root / 'a' / 'x'}: permission denied"):
        load_data(str(root / "a" / "x"))


def test_unreadable_image_and_data_file(tmp_path, monkeypatch):
    root = tmp_path / "d"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        Image.new("L", (4, 4)).save(root / c / "0.png")
    npz = tmp_path / "x.npz"
    np.savez(npz, x=np.zeros((2, 2, 2), np.uint8), y=[0, 1])
    locked = {root / "b" / "0.png", npz}
    if not all(_chmod_denies(p) for p in locked):
        # Root reads anyway: os.access answers what it would answer another user.
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: Path(p) not in locked and real(p, mode))
    try:
        with _raises(DataError, f"cannot read image {root / 'b' / '0.png'}: permission denied"):
            load_data(str(root))
        with _raises(DataError, f"cannot read data file {npz}: permission denied"):
            load_data(str(npz))
        with _raises(DataError, f"cannot read data file {root / 'b' / '0.png'}: permission denied"):
            data_fingerprint(str(root))
    finally:
        for p in locked:
            p.chmod(0o644)


def test_data_under_an_unreadable_folder(tmp_path):
    (tmp_path / "locked").mkdir()
    np.savez(tmp_path / "locked" / "x.npz", x=np.zeros((2, 2, 2), np.uint8), y=[0, 1])
    denied = _chmod_denies(tmp_path / "locked")
    try:
        if not denied:
            pytest.skip("running as root: chmod 0 does not stop reading")
        with _raises(
            DataError, f"cannot read data {tmp_path / 'locked' / 'x.npz'}: permission denied"
        ):
            load_data(str(tmp_path / "locked" / "x.npz"))
    finally:
        (tmp_path / "locked").chmod(0o755)
