"""Write a demo image folder, one subfolder per class, from the local MNIST or Fashion-MNIST files.

    python scripts/make_image_folder.py --dataset=mnist --output=/tmp/digits --per_class=100

writes /tmp/digits/<class>/<index>.png: the first --per_class images of each class in the --split (test by default),
<index> being the image's position in that split. Fashion-MNIST class folders are the class names with '/' made
'-' (T-shirt-top, Trouser, ...). --format=mixed cycles through PNG, JPEG, BMP and GIF; --color draws each image in
random colours (stroke and background; the same for every class, so colour tells nothing about the class) so the
folder is RGB; --size=32 or --size=36x30 (width x height) resizes,
the latter to exercise the centre crop of non-square images. Needs neither TensorFlow nor the network when the
dataset's files are present (see --data_dir).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runs from a plain checkout too

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from cae import data  # noqa: E402
from cae.errors import UserError  # noqa: E402

EXTENSIONS = {"png": (".png",), "jpg": (".jpg",), "mixed": (".png", ".jpg", ".bmp", ".gif")}


def folder_name(class_name):
    return class_name.replace("/", "-")


def parse_size(text):
    """'32' -> (32, 32); '36x30' -> (36, 30), width x height."""
    parts = text.lower().split("x")
    try:
        width, height = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except (ValueError, IndexError):
        width = height = 0
    if len(parts) > 2 or width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected N or WIDTHxHEIGHT, positive integers")
    return width, height


def image_colours(index, seed):
    """(stroke, background) RGB colours of image ``index``: random per image, at least 100 apart in luma."""
    rng = np.random.default_rng([seed, index])
    luma = np.array([0.299, 0.587, 0.114])
    while True:
        stroke, background = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if abs(luma @ stroke - luma @ background) >= 100:
            return stroke, background


def choose_classes(text, class_names):
    if not text:
        return list(range(len(class_names)))
    chosen = []
    for token in text.split(","):
        token = token.strip()
        names = [folder_name(n) for n in class_names]
        if token.isdigit() and int(token) < len(class_names):
            chosen.append(int(token))
        elif token in class_names or token in names:
            chosen.append(class_names.index(token) if token in class_names else names.index(token))
        else:
            raise UserError(f"--classes={text}: {token!r} is neither a class index 0-{len(class_names) - 1} nor "
                            f"a class name ({', '.join(names)})")
    return sorted(set(chosen))


def write_folder(images, labels, class_names, output, per_class, classes, file_format, color, size, seed=0):
    """Write the images; returns how many."""
    extensions = EXTENSIONS[file_format]
    written = 0
    for label in classes:
        directory = os.path.join(output, folder_name(class_names[label]))
        os.makedirs(directory)
        for index in np.flatnonzero(labels == label)[:per_class]:
            gray = np.rint(images[index].reshape(data.IMAGE_SIZE, data.IMAGE_SIZE) * 255).astype(np.uint8)
            if color:
                stroke, background = image_colours(index, seed)
                weight = gray[:, :, None] / 255.0
                image = Image.fromarray(np.rint(background + (stroke - background) * weight).astype(np.uint8), "RGB")
            else:
                image = Image.fromarray(gray, "L")
            if size is not None and size != image.size:
                image = image.resize(size, Image.BILINEAR)
            extension = extensions[written % len(extensions)]
            image.save(os.path.join(directory, f"{index:05d}{extension}"), **({"quality": 95}
                                                                                if extension == ".jpg" else {}))
            written += 1
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(data.DATASETS), default="mnist")
    parser.add_argument("--data_dir", help="directory with the four IDX .gz files (default: as the other commands)")
    parser.add_argument("--output", required=True, help="folder to create (must not exist or be empty)")
    parser.add_argument("--per_class", type=int, default=100, help="images per class")
    parser.add_argument("--classes", help="comma-separated class indices or names (default: all)")
    parser.add_argument("--format", choices=sorted(EXTENSIONS), default="png",
                        help="png, jpg, or mixed (PNG, JPEG, BMP and GIF in turn)")
    parser.add_argument("--color", action="store_true", help="draw each image in random colours")
    parser.add_argument("--size", type=parse_size, help="resize to N x N or WIDTHxHEIGHT (default: 28x28)")
    parser.add_argument("--split", choices=["test", "train"], default="test")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --color colours")
    args = parser.parse_args(argv)
    if args.per_class < 1:
        parser.error(f"--per_class={args.per_class}: expected an integer >= 1")
    if os.path.exists(args.output) and (not os.path.isdir(args.output) or os.listdir(args.output)):
        print(f"--output={args.output}: exists and is not an empty directory; name a new one", file=sys.stderr)
        return 2
    try:
        datasets = data.load(args.data_dir, validation_size=0, dataset=args.dataset)
        classes = choose_classes(args.classes, datasets.class_names)
    except UserError as e:
        print(e, file=sys.stderr)
        return 1
    split = getattr(datasets, args.split)
    count = write_folder(split.images, split.labels, datasets.class_names, args.output, args.per_class, classes,
                         args.format, args.color, args.size, args.seed)
    print(f"wrote {count} images of {len(classes)} classes to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
