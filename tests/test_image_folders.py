"""Image folders (cae.data.folders, splits, cache) on small folders written here with Pillow; no TensorFlow."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cae import data
from cae.data import decode, splits
from cae.errors import UserError

from conftest import REPO


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test's default cache lives in its tmp_path, never in the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "cae" / "images"


def save(path, image, **options):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, **options)
    return path


def gray(value, size=(8, 8)):
    return Image.new("L", size, int(value))


def make_folder(root, counts, size=8):
    """root/<class>/<i>.png per {class: count}; image j of the whole folder is gray value 4 * j + 2.

    Returns {relative path: value}."""
    values, j = {}, 0
    for name, count in counts.items():
        for i in range(count):
            path = f"{name}/{i:03d}.png"
            save(os.path.join(root, path), gray(4 * j + 2, (size, size)))
            values[path] = 4 * j + 2
            j += 1
    return values


def load(root, **options):
    options.setdefault("validation_percentage", 25)
    options.setdefault("testing_percentage", 25)
    return data.load_image_dir(str(root), **options)


def values_of(split):
    """The gray value of each constant gray image of a split, in order."""
    return [int(v) for v in split.images[:, 0]]


def all_rows(datasets):
    return np.concatenate([data.as_float(s.images) for s in datasets.splits().values()])


def snapshot(directory):
    return sorted(os.path.relpath(os.path.join(root, f), directory)
                  for root, _, files in os.walk(directory) for f in files)


def test_classes_are_sorted_folders_and_images_are_flat_uint8_rows_read_from_the_cache(tmp_path):
    values = make_folder(tmp_path / "img", {"zebra": 10, "ant": 12, "moth": 8})
    ds = load(tmp_path / "img")
    assert ds.class_names == ("ant", "moth", "zebra") and ds.num_classes == 3
    assert ds.image_shape == (8, 8, 1) and ds.input_size == 64
    label_of_value = {v: ds.class_names.index(p.split("/")[0]) for p, v in values.items()}
    seen = []
    for name, split in ds.splits().items():
        assert isinstance(split.images, data.rows.RowFile) and split.images.dtype == np.uint8, name
        assert split.images.shape == (len(split.labels), 64) and split.labels.dtype == np.int64
        assert len(split.labels) > 0
        pixels = np.asarray(split.images)
        np.testing.assert_array_equal(pixels, pixels[:, :1].repeat(64, axis=1))  # constant images
        floats = data.as_float(split.images)
        assert floats.dtype == np.float32 and floats.ctypes.data % 64 == 0
        np.testing.assert_array_equal(floats, pixels.astype(np.float32) / 255)
        assert split.labels.tolist() == [label_of_value[v] for v in values_of(split)]
        seen += values_of(split)
    assert sorted(seen) == sorted(values.values())  # every image once


def test_auto_colour_forced_grayscale_and_rgb(tmp_path):
    root = tmp_path / "img"
    make_folder(root, {"a": 10, "b": 10})
    save(os.path.join(root, "b", "red.png"), Image.new("RGB", (8, 8), (255, 0, 0)))
    auto = load(root)
    assert auto.image_shape == (8, 8, 3)
    rows = all_rows(auto).reshape(-1, 8, 8, 3)
    red = [r for r in rows if r[0, 0, 1] != r[0, 0, 0]]
    assert len(red) == 1 and red[0][0, 0].tolist() == [1, 0, 0]
    others = [r for r in rows if r[0, 0, 1] == r[0, 0, 0]]
    assert len(others) == 20 and all((r == r[..., :1]).all() for r in others)  # gray images: R = G = B

    forced = load(root, color_mode="grayscale")
    assert forced.image_shape == (8, 8, 1)
    assert 76 in np.rint(all_rows(forced)[:, 0] * 255)  # ITU-R 601 luma of pure red: 0.299 * 255

    os.remove(os.path.join(root, "b", "red.png"))  # RGB files of gray pixels are gray for "auto"
    save(os.path.join(root, "b", "gray_rgb.png"), Image.new("RGB", (8, 8), (90, 90, 90)))
    assert load(root).image_shape == (8, 8, 1)
    assert load(root, color_mode="rgb").image_shape == (8, 8, 3)


def test_every_format_and_mode_decodes(tmp_path):
    def decoded(name, image, **options):
        path = save(str(tmp_path / name), image, **options)
        return decode.decode_image(path, 8, "rgb")[0, 0].tolist()

    assert decoded("l.png", gray(100)) == [100] * 3
    jpeg = decoded("c.jpg", Image.new("RGB", (16, 16), (200, 40, 10)), quality=95)
    assert np.abs(np.subtract(jpeg, [200, 40, 10])).max() <= 3
    assert decoded("c.bmp", Image.new("RGB", (8, 8), (1, 2, 3))) == [1, 2, 3]
    assert decoded("p.gif", Image.new("RGB", (8, 8), (0, 0, 255)).convert("P")) == [0, 0, 255]
    frames = [Image.new("RGB", (8, 8), (0, 0, 0)).convert("P"), Image.new("RGB", (8, 8), (255, 255, 255)).convert("P")]
    assert decoded("anim.gif", frames[0], save_all=True, append_images=frames[1:]) == [0, 0, 0]  # first frame
    assert decoded("clear.png", Image.new("RGBA", (8, 8), (0, 0, 0, 0))) == [255, 255, 255]  # alpha over white
    half = decoded("half.png", Image.new("RGBA", (8, 8), (0, 0, 0, 128)))
    assert all(abs(v - 127) <= 1 for v in half)
    assert decoded("la.png", Image.new("LA", (8, 8), (0, 0))) == [255] * 3
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert decoded("pal.png", palette) == [10, 200, 30]
    assert decoded("pal_clear.png", palette, transparency=1) == [255, 255, 255]
    assert decoded("bits.png", Image.new("1", (8, 8), 1)) == [255] * 3
    upright = np.full((8, 8), 255, np.uint8)
    upright[:, 0] = 0  # left column black, stored with EXIF orientation 6: "rotate 90 degrees clockwise to view"
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(str(tmp_path / "camera.png"), Image.fromarray(upright), exif=exif)
    viewed = decode.decode_image(path, 8, "grayscale")[:, :, 0]
    assert (viewed[0] == 0).all() and (viewed[1:] == 255).all()  # the left column is the top row as viewed
    sixteen = Image.fromarray(np.full((8, 8), 257 * 60, np.uint16))
    assert decoded("deep.png", sixteen) == [60] * 3  # 16-bit gray scaled to 8 bits, not clipped

    # All four extensions, any case, through a folder; hidden files and folders and other files are ignored.
    root = tmp_path / "mixed"
    for cls in ("a", "b"):
        for i, ext in enumerate([".png", ".JPG", ".jpeg", ".bmp", ".gif", ".Png"] * 2):
            save(os.path.join(root, cls, f"{i}{ext}"), gray(10 * i), **({"format": "PNG"} if ext == ".Png" else {}))
        save(os.path.join(root, cls, ".hidden.png"), gray(0))
        save(os.path.join(root, cls, ".cache", "x.png"), gray(0))
        (root / cls / "notes.txt").write_text("not an image")
    ds = load(root)
    assert sum(len(s.labels) for s in ds.splits().values()) == 24


def test_non_square_images_are_centre_cropped(tmp_path):
    tall = np.full((40, 30, 3), 128, np.uint8)  # 30 wide, 40 high
    tall[:5], tall[-5:] = (255, 0, 0), (0, 255, 0)
    wide = np.ascontiguousarray(tall.transpose(1, 0, 2))  # 40 wide, 30 high: coloured columns at the sides
    for name, array in (("tall.png", tall), ("wide.png", wide)):
        path = save(str(tmp_path / name), Image.fromarray(array))
        for size in (28, 30, 32):
            pixels = decode.decode_image(path, size, "auto")
            assert pixels.shape == (size, size, 1) and (pixels == 128).all(), (name, size)  # the colour is gone
    root = tmp_path / "img"
    for cls in ("a", "b"):
        for i in range(10):
            save(os.path.join(root, cls, f"{i}.png"), Image.fromarray(tall))
    ds = load(root)
    assert ds.image_shape == (28, 28, 1)  # not square: the default 28
    assert (all_rows(ds) == np.float32(128 / 255)).all()


def test_default_image_size_is_the_images_own_when_it_can_be(tmp_path):
    make_folder(tmp_path / "twelve", {"a": 10, "b": 10}, size=12)
    assert load(tmp_path / "twelve").image_shape == (12, 12, 1)
    assert load(tmp_path / "twelve", image_size=16).image_shape == (16, 16, 1)
    make_folder(tmp_path / "ten", {"a": 10, "b": 10}, size=10)  # not a multiple of 4
    assert load(tmp_path / "ten").image_shape == (28, 28, 1)
    make_folder(tmp_path / "mixed", {"a": 10, "b": 10}, size=12)
    save(str(tmp_path / "mixed" / "a" / "big.png"), gray(5, (16, 16)))
    assert load(tmp_path / "mixed").image_shape == (28, 28, 1)


def test_a_folder_of_large_images_at_the_default_size_says_how_to_keep_their_detail(tmp_path, caplog):
    make_folder(tmp_path / "small", {"a": 10, "b": 10}, size=12)
    save(str(tmp_path / "small" / "a" / "big.png"), gray(5, (16, 16)))
    make_folder(tmp_path / "large", {"a": 10, "b": 10}, size=96)
    save(str(tmp_path / "large" / "a" / "small.png"), gray(5, (64, 64)))
    with caplog.at_level(logging.WARNING):
        assert load(tmp_path / "small").image_shape == (28, 28, 1)  # not one size, but none larger than 64
        assert "larger than" not in caplog.text
        assert load(tmp_path / "large").image_shape == (28, 28, 1)
    assert "20 of 21 images are larger than 64 pixels and are resized to 28" in caplog.text
    assert "--image_size" in caplog.text and "--encoder_filters" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):  # a later run reads the pixels from the cache, and warns the same
        assert load(tmp_path / "large").image_shape == (28, 28, 1)
    assert "from cache" in caplog.text
    assert "20 of 21 images are larger than 64 pixels and are resized to 28" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # asked for, the size is no surprise
        assert load(tmp_path / "large", image_size=32).image_shape == (32, 32, 1)
        assert load(tmp_path / "large", image_size=32).image_shape == (32, 32, 1)
    assert "larger than" not in caplog.text


def test_unlabelled_folder_reads_everything_below_it(tmp_path):
    root = tmp_path / "all"
    places = {"": 3, "b/x/y": 4, "a": 5, "a/deeper": 2}
    value = 0
    for place, count in places.items():
        for i in range(count):
            value += 10
            save(os.path.join(root, place, f"{i}.png"), gray(value))
    save(os.path.join(root, ".hidden", "0.png"), gray(1))
    ds = load(root, labelled=False)
    assert ds.class_names == (".", "a", "b")
    counts = np.bincount(np.concatenate([s.labels for s in ds.splits().values()]), minlength=3)
    assert counts.tolist() == [3, 7, 4]
    os.rename(root / "b", root / ".b")  # labelled, a hidden folder is no class: only "a" is left
    with pytest.raises(UserError, match=r"1 class subfolder \(a\)"):
        load(root)


def test_labelled_classes_may_nest_subfolders(tmp_path):
    root = tmp_path / "img"
    make_folder(root, {"a": 8, "b": 10})
    for i in range(3):
        save(os.path.join(root, "a", "more", "deeper", f"{i}.png"), gray(255))
    ds = load(root)
    labels = np.concatenate([s.labels for s in ds.splits().values()])
    assert np.bincount(labels).tolist() == [11, 10]


def test_splits_are_stable_when_images_are_added(tmp_path):
    root = tmp_path / "img"
    values = make_folder(root, {"a": 30, "b": 30})
    path_of = {v: p for p, v in values.items()}
    before = load(root, validation_percentage=20, testing_percentage=20)
    where = {v: name for name, split in before.splits().items() for v in values_of(split)}
    for name, split in before.splits().items():
        paths = [path_of[v] for v in values_of(split)]
        assert all(splits.split_of(p, 20, 20) == name for p in paths)
        assert paths == sorted(paths, key=splits.path_hash)  # hash order within a split
        assert len(set(split.labels.tolist())) == 2
    for i in range(40):  # new values 1, 5, 9, ...: never equal to an old one (2, 6, 10, ...)
        save(os.path.join(root, "ab"[i % 2], f"new{i}.png"), gray(4 * i + 1))
    after = load(root, validation_percentage=20, testing_percentage=20)
    moved = [v for name, split in after.splits().items() for v in values_of(split) if where.get(v, name) != name]
    assert moved == [] and sum(len(s.labels) for s in after.splits().values()) == 100


def test_folds_test_every_image_once_and_fold_0_is_the_plain_split(tmp_path):
    root = tmp_path / "img"
    make_folder(root, {"a": 30, "b": 30})  # 60 distinct gray values
    plain = load(root, validation_percentage=10, testing_percentage=20)
    folds = [load(root, validation_percentage=10, testing_percentage=20, fold=f) for f in range(5)]
    for name in data.SPLITS:
        np.testing.assert_array_equal(getattr(folds[0], name).images, getattr(plain, name).images)
    tested = [values_of(f.test) for f in folds]
    assert sorted(sum(tested, [])) == sorted(values_of(plain.train) + values_of(plain.validation)
                                             + values_of(plain.test))  # every image in one test fold
    for fold in folds:  # each fold's splits are disjoint and hold every image
        assert len(set(values_of(fold.train) + values_of(fold.validation) + values_of(fold.test))) == 60
    one_line_error(r"--fold=5: expected 0 to 4 \(--testing_percentage=20 makes 5 folds with disjoint test sets\)",
                   data.load_image_dir, str(root), validation_percentage=10, testing_percentage=20, fold=5)
    # pretrain_cae and transfer_classify read their folder through from_config: the fold reaches it
    from cae.config import PretrainConfig
    given = data.from_config(PretrainConfig(image_dir=str(root), validation_percentage=10, testing_percentage=20,
                                            fold=3), labelled=False)
    assert values_of(given.test) == values_of(folds[3].test) and values_of(given.train) == values_of(folds[3].train)


def test_num_labels_takes_the_first_of_the_hash_order(tmp_path):
    make_folder(tmp_path / "img", {"a": 20, "b": 20, "c": 20})
    full = load(tmp_path / "img")
    few = load(tmp_path / "img", num_labels=6)
    np.testing.assert_array_equal(few.train.images, full.train.images[:6])
    np.testing.assert_array_equal(few.train.labels, full.train.labels[:6])
    assert len(set(few.train.labels.tolist())) >= 2
    np.testing.assert_array_equal(few.test.images, full.test.images)
    with pytest.raises(UserError, match=f"--max_train_examples=500: expected 1 to {len(full.train.labels)}$"):
        load(tmp_path / "img", num_labels=500, limit_flag="max_train_examples")


def test_cache_is_used_the_second_time_and_rebuilt_when_a_file_changes(tmp_path, monkeypatch, private_cache,
                                                                       caplog):
    caplog.set_level(logging.INFO)
    root = tmp_path / "img"
    make_folder(root, {"a": 10, "b": 10})
    save(os.path.join(root, "b", "colour.jpg"), Image.new("RGB", (8, 8), (250, 0, 0)))
    listing = snapshot(root)
    first = load(root)
    assert [n for n in os.listdir(private_cache) if n.endswith(".npz")] and snapshot(root) == listing
    assert "wrote 21 decoded images to cache" in caplog.text

    decoded = []
    real_decode = decode.decode_image

    def refuse(*args):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(decode, "decode_image", refuse)
    caplog.clear()
    second = load(root)
    assert "read 21 decoded images from cache" in caplog.text
    for a, b in zip(first, second):
        if isinstance(a, tuple) and hasattr(a, "images"):
            np.testing.assert_array_equal(a.images, b.images)
            np.testing.assert_array_equal(a.labels, b.labels)
        else:
            assert a == b
    load(root, validation_percentage=40, testing_percentage=30)  # other splits, same decoded images

    monkeypatch.setattr(decode, "decode_image", lambda *args: decoded.append(args) or real_decode(*args))
    path = os.path.join(root, "a", "000.png")
    save(path, gray(201))
    info = os.stat(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10 ** 9))
    changed = load(root)
    assert len(decoded) == 21 and 201 in np.rint(all_rows(changed)[:, 0] * 255)
    assert len([n for n in os.listdir(private_cache) if n.endswith(".npz")]) == 2
    assert snapshot(root) == listing  # nothing ever written in the image folder


def test_corrupt_cache_is_ignored_and_rebuilt(tmp_path, private_cache, caplog):
    make_folder(tmp_path / "img", {"a": 10, "b": 10})
    first = np.asarray(load(tmp_path / "img").train.images)
    entry, pixels = sorted(private_cache.iterdir())  # <key>.npz, <key>.pixels
    assert entry.suffix == ".npz" and pixels.suffix == ".pixels" and pixels.stat().st_size == 20 * 64
    caplog.set_level(logging.INFO)
    for damage in (lambda: entry.write_bytes(b"PK\x03\x04 garbage"),
                   lambda: pixels.write_bytes(pixels.read_bytes()[:-1]),  # a truncated pixel file
                   pixels.unlink):
        damage()
        caplog.clear()
        again = load(tmp_path / "img")
        assert "ignoring the unreadable image cache" in caplog.text and "wrote 20 decoded images" in caplog.text
        np.testing.assert_array_equal(first, again.train.images)
        assert sorted(p.name for p in private_cache.iterdir()) == [entry.name, pixels.name]  # no temporary left
    caplog.clear()
    load(tmp_path / "img", cache_dir=str(tmp_path / "elsewhere"))
    assert str(tmp_path / "elsewhere") in caplog.text


def one_line_error(match, function, *args, **options):
    with pytest.raises(UserError, match=match) as e:
        function(*args, **options)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_bad_folders_give_one_line_errors(tmp_path, private_cache):
    one_line_error(f"--image_dir={tmp_path / 'none'}: no such directory", load, tmp_path / "none")
    (tmp_path / "file").write_text("x")
    one_line_error("--image_dir=.*: not a directory", load, tmp_path / "file")

    root = tmp_path / "img"
    make_folder(root, {"only": 10})
    one_line_error(r"img: 1 class subfolder \(only\), expected at least 2", load, root)
    one_line_error(r"flat: 0 class subfolders, expected at least 2", load,
                   os.path.dirname(save(str(tmp_path / "flat" / "x.png"), gray(1))))
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no images here")
    one_line_error(f"{root / 'empty'}: class folder holds no images", load, root)
    (tmp_path / "nothing" / "sub").mkdir(parents=True)
    one_line_error("nothing: no images", load, tmp_path / "nothing", labelled=False)

    make_folder(root, {"full": 12})
    (root / "empty" / "broken.png").write_bytes(b"not a png at all")
    message = one_line_error(f"{root / 'empty' / 'broken.png'}: not a decodable image \\(.+\\)", load, root)
    assert "--skip_bad_images" in message
    assert not private_cache.exists()  # nothing written before the error


def test_skip_bad_images_warns_once_with_the_count(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    root = tmp_path / "img"
    make_folder(root, {"a": 20, "b": 20})
    (root / "a" / "0bad.png").write_bytes(b"garbage")
    good = Image.new("L", (8, 8), 9)
    save(str(root / "b" / "truncated.png"), good)
    (root / "b" / "truncated.png").write_bytes((root / "b" / "truncated.png").read_bytes()[:40])
    for image_size in (None, 8):  # a truncated file passes the header probe of image_size=None, not the decode
        with pytest.raises(UserError, match="0bad.png: not a decodable image"):
            load(root, image_size=image_size)
        caplog.clear()
        ds = load(root, image_size=image_size, skip_bad_images=True)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "skipped 2 undecodable" in warnings[0] and "0bad.png" in warnings[0]
        assert sum(len(s.labels) for s in ds.splits().values()) == 40
    caplog.clear()
    ds = load(root, image_size=8, skip_bad_images=True)  # from the cache: the same warning
    assert "skipped 2 undecodable" in caplog.text and "read 40 decoded images from cache" in caplog.text
    with pytest.raises(UserError, match="0bad.png: not a decodable image"):  # the cache remembers the bad files
        load(root, image_size=8)


def test_small_classes_warn_and_tiny_folders_leave_a_split_empty(tmp_path, caplog):
    make_folder(tmp_path / "img", {"a": 3, "b": 30, "c": 12})
    load(tmp_path / "img")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "fewer than 20 images: a (3), c (12)" in warnings[0]
    make_folder(tmp_path / "tiny", {"a": 2, "b": 1})
    one_line_error(r"tiny: 3 images leave the .+ empty at --validation_percentage=10 --testing_percentage=10: "
                   r"add images or change --validation_percentage/--testing_percentage", data.load_image_dir,
                   str(tmp_path / "tiny"))


@pytest.mark.parametrize("options, match", [
    ({"image_size": 30}, "--image_size=30: expected a multiple of 4 that is at least 8"),
    ({"image_size": 4}, "--image_size=4: expected a multiple of 4"),
    ({"image_size": 0}, "--image_size=0: "),
    ({"color_mode": "cmyk"}, "--color_mode=cmyk: expected one of auto, grayscale, rgb"),
    ({"validation_percentage": 0}, "--validation_percentage=0: expected a percentage above 0 and below 100"),
    ({"testing_percentage": 100}, "--testing_percentage=100: "),
    ({"validation_percentage": 60, "testing_percentage": 40}, "add up to 100: expected less than 100"),
])
def test_bad_options_name_their_flag(tmp_path, options, match):
    one_line_error(match, data.load_image_dir, str(tmp_path / "not-even-read"), **options)


def test_worker_processes_give_the_same_arrays(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    root = tmp_path / "img"
    rng = np.random.default_rng(0)
    for i in range(24):
        size = (20 + i % 3 * 6, 20 + i % 2 * 8)
        save(os.path.join(root, "ab"[i % 2], f"{i}.{['png', 'jpg', 'bmp', 'gif'][i % 4]}"),
             Image.fromarray(rng.integers(0, 256, size[::-1] + (3,), dtype=np.uint8)))
    (root / "a" / "bad.png").write_bytes(b"garbage")
    options = dict(image_size=8, skip_bad_images=True, validation_percentage=20, testing_percentage=20)
    here = load(root, cache_dir=str(tmp_path / "c1"), workers=1, **options)
    assert f"decoding {root}: 25/25 images" in caplog.text
    pooled = load(root, cache_dir=str(tmp_path / "c2"), workers=2, pool_threshold=0, **options)
    assert here.image_shape == pooled.image_shape == (8, 8, 3)
    for name in data.SPLITS:
        np.testing.assert_array_equal(getattr(here, name).images, getattr(pooled, name).images)
        np.testing.assert_array_equal(getattr(here, name).labels, getattr(pooled, name).labels)
    with pytest.raises(UserError, match="bad.png: not a decodable image"):
        load(root, cache_dir=str(tmp_path / "c3"), workers=2, pool_threshold=0, image_size=None)


def test_datasets_type_keeps_its_old_shape_and_describes_the_images(fashion_mnist):
    split = data.Split(np.zeros((2, 784), np.float32), np.zeros(2, np.int64))
    ds = data.Datasets(split, split, split)
    assert ds.image_shape == (28, 28, 1) and ds.class_names == tuple("0123456789") and ds.input_size == 784
    assert list(ds.splits()) == list(data.SPLITS) == ["train", "validation", "test"]
    named = ds._replace(class_names=("x", "y"), image_shape=(8, 8, 3))
    halved = named.map_splits(lambda name, s: s._replace(images=s.images[:1]))
    assert halved.class_names == ("x", "y") and halved.image_shape == (8, 8, 3) and len(halved.test.images) == 1
    assert fashion_mnist.class_names[0] == "T-shirt/top" and fashion_mnist.class_names[9] == "Ankle boot"
    assert fashion_mnist.image_shape == (28, 28, 1)


def test_the_data_package_does_not_import_tensorflow():
    code = ("import sys, cae.data, cae.data.folders, cae.data.decode, cae.data.cache; "
            "assert 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if 'tensorflow' in m)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_make_image_folder_script(tmp_path, mnist_dir):
    script = os.path.join(REPO, "scripts", "make_image_folder.py")
    output = tmp_path / "digits"
    run = subprocess.run([sys.executable, script, "--dataset=mnist", f"--data_dir={mnist_dir}", f"--output={output}",
                          "--per_class=10", "--classes=0,1,2", "--format=mixed", "--color", "--size=36x30"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(output)) == ["0", "1", "2"]
    assert {os.path.splitext(n)[1] for n in os.listdir(output / "1")} == {".png", ".jpg", ".bmp", ".gif"}
    assert Image.open(next((output / "0").glob("*.png"))).size == (36, 30)
    ds = load(output)
    assert ds.class_names == ("0", "1", "2") and ds.image_shape == (28, 28, 3)
    again = subprocess.run([sys.executable, script, f"--output={output}"], capture_output=True, text=True)
    assert again.returncode == 2 and len(again.stderr.splitlines()) == 1 and "not an empty directory" in again.stderr
    fashion = subprocess.run([sys.executable, script, "--dataset=fashion_mnist", f"--output={tmp_path / 'f'}",
                              "--per_class=2", "--classes=0,Ankle boot", "--split=train"],
                             capture_output=True, text=True)
    assert fashion.returncode == 0, fashion.stderr
    assert sorted(os.listdir(tmp_path / "f")) == ["Ankle boot", "T-shirt-top"]
