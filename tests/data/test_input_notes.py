"""What the app says when real shifted data differs from what the model takes: grey <-> colour,
up- and downscaling, and class names the two sets do not share."""

import pytest

from resque_core.data import Preprocess, class_overlap
from resque_core.errors import DataError


def test_preprocess_notes_name_channel_and_size_changes():
    rgb32 = Preprocess(image_size=(32, 32), channels=3)
    assert rgb32.notes((3, 32, 32)) == []
    grey_small = rgb32.notes((1, 8, 8))
    assert grey_small[0].startswith("grey images: the one channel is repeated")
    assert grey_small[1].startswith("8×8 images are upscaled 4× to the model's 32×32")
    grey8 = Preprocess(image_size=(8, 8), channels=1)
    colour_big = grey8.notes((3, 64, 48))
    assert colour_big[0].startswith("colour images: turned grey")
    assert colour_big[1] == "64×48 images are downscaled to the model's 8×8"


def test_class_overlap_lists_what_is_left_out_and_what_is_untested():
    o = class_overlap(["cat", "dog", "fox"], ["dog", "cow", "cat"], "'new.npz'")
    assert o.shared == ("dog", "cat") and o.only_shifted == ("cow",) and o.only_source == ("fox",)
    notes = o.notes()
    assert (
        notes[0] == "1 class(es) of the shifted data are not source classes and are left out: cow"
    )
    assert notes[1] == (
        "1 source class(es) have no images in the shifted data, so the score says nothing "
        "about them: fox"
    )
    assert class_overlap(["a", "b"], ["b", "a"], "x").notes() == []
    many = class_overlap([str(i) for i in range(9)], ["0"], "x").notes()
    assert many == [
        "8 source class(es) have no images in the shifted data, so the score says nothing "
        "about them: 1, 2, 3, 4, 5 and 3 more"
    ]
    with pytest.raises(DataError, match="shares no class name with the source data"):
        class_overlap(["a"], ["z"], "'z.npz'")
