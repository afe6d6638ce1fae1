"""The settings of every command: plain dataclasses, no TensorFlow.

Each field is also a command-line flag: its metadata holds the flag's help, its choices (an enum flag) and its
check (an absl validator), and ``cae.cli.define_flags(SomeConfig)`` defines one flag per field. So the command line
rejects a bad flag before TensorFlow is imported (seconds, on a small machine), and the library functions
(``cae.pretrain.pretrain``, ``cae.transfer.transfer``, ...) take a config as their one argument.

Groups of settings are shared by inheritance, as tensorflow/models' ``define_base(...)`` groups are: a setting
added to ``DataConfig`` or ``SessionConfig`` becomes a flag of every command that reads data or opens a Session.

    IdxDataConfig   data_dir, dataset, download (the built-in MNIST-format datasets)
    DataConfig(IdxDataConfig)   + image_dir, image_size, color_mode, split percentages, skip_bad_images
    SessionConfig   gpu_memory_fraction, allow_growth, intra_op_threads, inter_op_threads, precision
    AugmentConfig   random_translate, random_crop, random_scale, flips, random_rotate, brightness, contrast, hue,
                    saturation
    ClusterConfig   ps_hosts, worker_hosts, job_name, task_index, cluster_wait_s (several machines)
    RunConfig(DataConfig, SessionConfig, AugmentConfig, ClusterConfig)   + train_dir, seed, checkpoints,
        summaries, epochs, batch, learning rate, encoder, num_clones/clone_on_cpu
        PretrainConfig, TransferConfig     the two workflow steps
    ExtractConfig(DataConfig, SessionConfig), BenchmarkConfig(IdxDataConfig, SessionConfig)
    ExportConfig, InspectConfig, ExperimentConfig, TimeToAccuracyConfig, SummaryOverheadConfig
"""

import collections
import dataclasses
import math

from cae import class_metrics, data
from cae.data import decode

# Choices, from the code that owns them where that code is TensorFlow-free.
DATASETS = tuple(data.DATASETS)  # mnist, fashion_mnist
COLOR_MODES = decode.COLOR_MODES  # auto, grayscale, rgb
SPLITS = data.SPLITS  # train, validation, test
LOSSES = ("bce", "mse", "patch_mse")  # the autoencoder's reconstruction losses (cae.models)
SCHEDULES = ("constant", "cosine", "one_cycle")  # learning-rate schedules (cae.train.learning_rate)
PRECISIONS = ("float32", "mixed_bfloat16")  # the session's arithmetic (cae.session.config_proto)
LAYERS = ("conv2", "latent", "fc1")  # what cae.extract can extract (its LAYER_SCOPES)
CLASS_WEIGHTS = class_metrics.CLASS_WEIGHTS  # none, balanced
SELECT_BY = class_metrics.SELECT_BY  # accuracy, balanced_accuracy, macro_f1


def at_least(smallest, note=""):
    """A check: an integer >= ``smallest``; ``note`` explains a special value in the error message."""
    return lambda v: v >= smallest, f"expected an integer >= {smallest}{note}"


POSITIVE = (lambda v: 0 < v < math.inf, "expected a number > 0")
PERCENTAGE = (lambda v: 0 < v < 100, "expected a percentage > 0 and < 100")
IMAGE_SIZE = (lambda v: v >= 8 and v % 4 == 0, "expected a multiple of 4, at least 8 (the encoder halves the "
                                                 "image twice)")
FRACTION = (lambda v: 0 < v <= 1, "expected a fraction in (0, 1]")
NON_NEGATIVE = (lambda v: 0 <= v < math.inf, "expected a number >= 0")
UNIT_INTERVAL = (lambda v: 0 <= v <= 1, "expected a number in [0, 1]")
MASK_RATIO = (lambda v: 0 <= v < 1, "expected a share of the patches >= 0 and < 1")
PERCENT_OR_ZERO = (lambda v: 0 <= v < 100, "expected a percentage >= 0 and < 100")


def filters_of(text):
    """'16,32' -> (16, 32): --encoder_filters's widths; () where it is not a list of positive integers."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except (ValueError, AttributeError):
        return ()
    return widths if widths and min(widths) >= 1 else ()


FILTERS = (lambda v: bool(filters_of(v)), "expected comma-separated positive integers, one width per stride-2 conv "
                                          "layer (e.g. 16,32)")


def option(default, help, choices=None, check=None):
    """A field that is also a flag. ``choices`` make it an enum flag; ``check`` is ``(is_valid(value), "expected
    ...")``, an absl validator whose message follows ``flag --name=value:`` in the one-line error."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "check": check})


def replace_default(config_class, name, default):
    """``config_class``'s field ``name`` (same help, choices and check) with another default: for a subclass, or a
    config that shares the setting without the whole group."""
    field = next(f for f in dataclasses.fields(config_class) if f.name == name)
    return dataclasses.field(default=default, metadata=field.metadata)


def same_as(config_class, name):
    """``config_class``'s field ``name`` as it is, default included."""
    field = next(f for f in dataclasses.fields(config_class) if f.name == name)
    return replace_default(config_class, name, field.default)


@dataclasses.dataclass
class IdxDataConfig:
    """Where the MNIST-format data comes from."""
    data_dir: str = option(
        None, "Directory with the four IDX .gz files (default: $CAE_DATA_DIR for mnist; then a local copy holding "
        "them: ../shared/datasets/mnist beside the checkout for mnist, /usr/share/datasets/fashion-mnist for "
        "fashion_mnist; then ~/.cache/cae/<dataset>).")
    dataset: str = option("mnist", "Which MNIST-format dataset.", choices=DATASETS)
    download: bool = option(True, "Download missing MNIST files from the public mirrors (--nodownload: fail "
                                  "instead).")


@dataclasses.dataclass
class DataConfig(IdxDataConfig):
    """The data: a built-in dataset, or a folder of your own images (--image_dir, which then replaces --dataset and
    --data_dir)."""
    image_dir: str = option(
        None, "A folder of your own images (PNG, JPEG, BMP, GIF; any size, gray or colour) instead of --dataset: "
        "one subfolder per class for transfer_classify and extract_features, any folder tree for pretrain_cae.")
    image_size: int = option(
        None, "With --image_dir: the square side images are resized to (default: their own size when they all "
        "share one square size that is a multiple of 4, at most 64; else 28).", check=IMAGE_SIZE)
    color_mode: str = option("auto", "With --image_dir: grayscale (1 channel), rgb (3), or auto (rgb if any image "
                                     "has colour).", choices=COLOR_MODES)
    validation_percentage: int = option(10, "With --image_dir: percentage of images held out for validation (a "
                                            "stable hash of each file's path decides).", check=PERCENTAGE)
    testing_percentage: int = option(10, "With --image_dir: percentage of images held out for the test.",
                                     check=PERCENTAGE)
    fold: int = option(0, "With --image_dir: which test fold to hold out (cross-validation): fold F moves the test "
                          "split F times its width round the hash order, so folds 0 ... K-1 at "
                          "--testing_percentage=100/K test every image once; 0 is the plain split.",
                       check=at_least(0))
    skip_bad_images: bool = option(False, "With --image_dir: skip files that are not decodable images (one "
                                          "warning) instead of stopping with an error.")


@dataclasses.dataclass
class SessionConfig:
    """The tf.compat.v1 Session's ConfigProto (cae.session.config_proto_for)."""
    gpu_memory_fraction: float = option(0.2, "GPUOptions.per_process_gpu_memory_fraction of the session.",
                                        check=FRACTION)
    allow_growth: bool = option(False, "GPUOptions.allow_growth of the session.")
    intra_op_threads: int = option(0, "Threads inside one op (0: one per core).",
                                   check=at_least(0, " (0: one per core)"))
    inter_op_threads: int = option(0, "Ops run in parallel (0: automatic).", check=at_least(0, " (0: automatic)"))
    precision: str = option("float32", "mixed_bfloat16: convolutions and matrix products in bfloat16 on CPUs with "
                                       "bfloat16 instructions (oneDNN's graph rewrite; variables and checkpoints stay "
                                       "float32); elsewhere it falls back to float32 with a warning.",
                            choices=PRECISIONS)


@dataclasses.dataclass
class AugmentConfig:
    """Random augmentation of training batches, in the graph (cae.augment; never of validation, test, export or
    predict). All off by default. Meanings of crop, scale and brightness as in TensorFlow's retrain.py."""
    random_translate: float = option(0.0, "Shift each training image by up to this many pixels, up/down and "
                                          "left/right.", check=(lambda v: 0 <= v <= 64, "expected pixels in [0, 64]"))
    random_crop: float = option(0.0, "Percentage margin to crop off training images at a random place "
                                     "(retrain.py): the image is enlarged by it, then cut back to its size.",
                                check=PERCENT_OR_ZERO)
    random_scale: float = option(0.0, "Percentage to enlarge training images by, at random (retrain.py).",
                                 check=PERCENT_OR_ZERO)
    flip_left_right: bool = option(False, "Mirror half the training images left-right at random.")
    flip_up_down: bool = option(False, "Mirror half the training images upside down at random.")
    random_rotate: float = option(0.0, "Rotate each training image by up to this many degrees either way.",
                                  check=(lambda v: 0 <= v <= 180, "expected degrees in [0, 180]"))
    random_brightness: float = option(0.0, "Percentage to multiply training pixels up or down by, at random "
                                           "(retrain.py).", check=PERCENT_OR_ZERO)
    random_contrast: float = option(0.0, "Percentage to scale each training image's contrast up or down by, at "
                                         "random.", check=PERCENT_OR_ZERO)
    random_hue: float = option(0.0, "Colour images: turn each training image's hues by up to this many degrees "
                                    "either way, brightness kept (180: any colour may become any other).",
                               check=(lambda v: 0 <= v <= 180, "expected degrees in [0, 180]"))
    random_saturation: float = option(0.0, "Colour images: percentage to scale each training image's saturation "
                                           "up or down by, at random.", check=PERCENT_OR_ZERO)

    @property
    def augmenting(self):
        return any(getattr(self, f.name) for f in dataclasses.fields(AugmentConfig))


@dataclasses.dataclass
class ClusterConfig:
    """Several machines on TensorFlow's own distributed runtime (cae.cluster, cae.distributed), with the Distributed
    TensorFlow guide's flags; none of them (and no $TF_CONFIG): one process."""
    ps_hosts: str = option(None, "Comma-separated host:port of the parameter-server tasks (they hold the variables); "
                                 "with --worker_hosts and --job_name, or $TF_CONFIG instead.")
    worker_hosts: str = option(None, "Comma-separated host:port of the worker tasks: each trains on its part of "
                                     "every batch; worker 0 is the chief, the only one writing to --train_dir.")
    job_name: str = option(None, "This task's job in the cluster: ps or worker.", choices=("ps", "worker"))
    task_index: int = option(0, "This task's index in its job's host list.", check=at_least(0))
    cluster_wait_s: float = option(60.0, "At start, how long a task waits for every other task of the cluster to "
                                         "answer before it stops with an error.", check=POSITIVE)


@dataclasses.dataclass
class RunConfig(DataConfig, SessionConfig, AugmentConfig, ClusterConfig):
    """Settings every training run shares; PretrainConfig and TransferConfig add their own and their defaults for
    train_dir, epochs, batch size and learning rate."""
    train_dir: str = option(None, "Where checkpoints, event files and metrics.json go.")
    seed: int = option(0, "Seed for weights and data order.")
    keep_checkpoints: int = option(5, "How many recent checkpoints to keep.", check=at_least(1))
    save_every_steps: int = option(0, "Also checkpoint every N steps within an epoch (0: only at the end of each "
                                      "epoch).", check=at_least(0, " (0: at the end of each epoch only)"))
    summary_every_steps: int = option(20, "Write the train/ scalars (loss, learning rate, images/s) every N steps.")
    projector_images: int = option(2000, "First N test images whose encoder features go to the Embedding Projector "
                                         "(0: none).", check=at_least(0, " (0: no projector)"))
    epochs: int = option(10, "Passes over the training set.", check=at_least(0))
    batch_size: int = option(128, "Images per training step.", check=at_least(1))
    learning_rate: float = option(1e-3, "Adam learning rate (the start of the schedule).", check=POSITIVE)
    lr_schedule: str = option("cosine", "Learning rate: constant; cosine decay to 0 over all --epochs; or one_cycle "
                                        "(linear warm-up from --learning_rate/25 over the first 30% of the steps, "
                                        "then cosine decay to 0).", choices=SCHEDULES)
    encoder_filters: str = option("16,32", "Widths of the encoder's 5x5 stride-2 conv layers conv1 ... convN (the "
                                           "decoder mirrors them); the image side must be a multiple of 2^N. The "
                                           "tutorial's 16,32 suits 28-pixel digits; larger images take more, wider "
                                           "layers (e.g. 32,64,128 at 96 pixels).", check=FILTERS)

    batch_norm: bool = option(False, "Batch-normalize every conv of the encoder (variables named as "
                                     "tf.layers.batch_normalization names them; frozen layers use the moving "
                                     "averages).")
    # TF-Slim's model_deploy flags (cae.clones): one model, its batch split over several devices of one process
    num_clones: int = option(1, "Split every training batch over this many towers on as many GPUs (or CPU devices "
                                "with --clone_on_cpu) and average their gradients; same variables and checkpoints "
                                "as one device. --batch_size must divide by it.", check=at_least(1))
    clone_on_cpu: bool = option(False, "With --num_clones: put the towers on CPU devices /device:CPU:0, 1, ... of "
                                       "the session instead of GPUs.")

    @property
    def filters(self):
        return filters_of(self.encoder_filters)


@dataclasses.dataclass
class PretrainConfig(RunConfig):
    train_dir: str = replace_default(RunConfig, "train_dir", "checkpoints/cae")
    # Two one-cycle epochs give convs that transfer as well as ten cosine ones (frozen head: 98.65% against
    # 98.66%, README "Time to accuracy"); the tutorial's settings remain flags (README results).
    epochs: int = replace_default(RunConfig, "epochs", 2)
    batch_size: int = replace_default(RunConfig, "batch_size", 128)
    learning_rate: float = replace_default(RunConfig, "learning_rate", 3e-3)
    lr_schedule: str = replace_default(RunConfig, "lr_schedule", "one_cycle")
    latent_size: int = option(20, "Units of the latent_var layer (0: no dense bottleneck, the decoder starts from "
                                  "the last conv's map, which keeps small details).",
                              check=at_least(0, " (0: no dense bottleneck)"))
    loss: str = option("bce", "Reconstruction loss: per-pixel binary cross-entropy, mean squared error, or "
                              "patch_mse: squared error against every patch (the area one code cell covers) "
                              "normalized to mean 0 and variance 1, so brightness and layout cost nothing and the "
                              "details are the whole loss (MAE's normalized pixels).", choices=LOSSES)
    input_noise: float = option(0.0, "Denoising: stddev of Gaussian noise added to the encoder input (0: plain "
                                     "autoencoder).")
    input_cutout: float = option(0.0, "Inpainting: side, as a fraction of the image's, of a gray square cut out of "
                                      "the encoder's input at a random place in every training image; the loss "
                                      "still compares with the whole image (0: none).", check=UNIT_INTERVAL)
    input_mask: float = option(0.0, "Masked autoencoder: share of the patches (the area one code cell covers) "
                                    "hidden from the encoder, new ones at every step; the loss counts the hidden "
                                    "patches only (0: none; MAE hides 0.75).", check=MASK_RATIO)
    max_train_examples: int = option(None, "Train on the first N training images only (quick runs and tests).",
                                     check=at_least(1))


# transfer_classify's two default recipes, measured in README "Time to accuracy" (one-cycle Adam in both): a run
# that trains convs, and the head alone on the frozen convs' cached output, whose steps are cheap and favour big
# batches (its matmul is the whole step) but which needs more epochs.
Recipe = collections.namedtuple("Recipe", "epochs batch_size learning_rate")
RECIPE = Recipe(epochs=5, batch_size=128, learning_rate=3e-3)
FROZEN_HEAD_RECIPE = Recipe(epochs=15, batch_size=512, learning_rate=5e-3)
# --semi_supervised: epochs are passes over the unlabelled images; the batch size is the labelled batch's.
SEMI_SUPERVISED_RECIPE = Recipe(epochs=20, batch_size=64, learning_rate=3e-3)
SEMI_SUPERVISED_UNLABELED_BATCH = 256


def unlabeled_batch(given):
    """The unlabelled images per semi-supervised step: --unlabeled_batch_size where given, else the default."""
    return given or SEMI_SUPERVISED_UNLABELED_BATCH


@dataclasses.dataclass
class TransferConfig(RunConfig):
    train_dir: str = replace_default(RunConfig, "train_dir", "checkpoints/transfer")
    # Defaults: RECIPE, or FROZEN_HEAD_RECIPE for the frozen-conv default (see settled()). The tutorial's constant
    # Adam 1e-4 plateaus at 98.7-98.8% from scratch here (`--learning_rate=1e-4 --lr_schedule=constant
    # --batch_size=64` reproduces it); one-cycle Adam reaches 99.1% in 5 epochs.
    epochs: int = option(None, f"Passes over the training set. Default: {FROZEN_HEAD_RECIPE.epochs} for the "
                               f"frozen-conv default (--checkpoint_path without --trainable_scopes, the head trained "
                               f"on cached features), else {RECIPE.epochs}.", check=at_least(0))
    batch_size: int = option(None, f"Images per training step. Default: {FROZEN_HEAD_RECIPE.batch_size} for the "
                                   f"frozen-conv default, else {RECIPE.batch_size}.", check=at_least(1))
    learning_rate: float = option(None, f"Adam learning rate (the peak of one_cycle, the start of the other "
                                        f"schedules). Default: {FROZEN_HEAD_RECIPE.learning_rate:g} for the "
                                        f"frozen-conv default, else {RECIPE.learning_rate:g}.", check=POSITIVE)
    lr_schedule: str = replace_default(RunConfig, "lr_schedule", "one_cycle")
    checkpoint_path: str = option(None, "Autoencoder checkpoint prefix, or a directory (its latest). Omit to train "
                                        "from scratch.")
    restore_scopes: str = option(None, "Comma-separated scopes (regexes on whole scopes) to restore from "
                                       "--checkpoint_path. Default: every conv of the encoder (conv1,conv2 for the "
                                       "tutorial's).")
    trainable_scopes: str = option(None, "Comma-separated scopes (regexes on whole scopes) the optimizer trains. "
                                         "Default: fc1,logits with --checkpoint_path (frozen convs), all layers "
                                         "without (scratch); with --semi_supervised all layers, the decoder "
                                         "included.")
    num_labels: int = option(None, "Train on the first N labelled images only.", check=at_least(1))
    labels_per_class: int = option(None, "Train on the first N labelled images of each class only (a folder's hash "
                                         "order; for MNIST an order drawn from --seed).", check=at_least(1))
    # Semi-supervised training (cae.semi_supervised): every step also takes a batch of unlabelled images.
    semi_supervised: bool = option(False, "Also learn from every training image without its label: the "
                                          "autoencoder's reconstruction loss through the shared encoder, and "
                                          "consistency with an EMA teacher and its confident pseudo-labels.")
    unlabeled_dir: str = option(None, "With --semi_supervised: a folder (any tree) of more unlabelled images, "
                                      "resized to the model's size and channels.")
    unlabeled_batch_size: int = option(None, f"With --semi_supervised: unlabelled images per step; an epoch is "
                                             f"one pass over them. Default: {SEMI_SUPERVISED_UNLABELED_BATCH}.",
                                       check=at_least(1))
    reconstruction_weight: float = option(1.0, "With --semi_supervised: weight of the reconstruction loss of the "
                                               "unlabelled batch (0: no decoder).", check=NON_NEGATIVE)
    # the reconstruction term is the autoencoder's own loss: give the --loss it was pretrained with
    loss: str = same_as(PretrainConfig, "loss")
    fixmatch_weight: float = option(1.0, "With --semi_supervised: weight of the pseudo-label loss (FixMatch): the "
                                         "teacher's confident classes of one view taught on a stronger view.",
                                    check=NON_NEGATIVE)
    fixmatch_threshold: float = option(0.95, "With --semi_supervised: the teacher's probability a pseudo-label "
                                             "needs.", check=UNIT_INTERVAL)
    distribution_alignment: bool = option(False, "With --semi_supervised: scale the teacher's class "
                                                 "probabilities by the labelled class frequencies over its own "
                                                 "running mean prediction (ReMixMatch), against a collapse onto "
                                                 "a few classes.")
    consistency_weight: float = option(1.0, "With --semi_supervised: weight of the Mean Teacher loss, the squared "
                                            "distance between the student's and the teacher's class probabilities.",
                                       check=NON_NEGATIVE)
    ema_decay: float = option(0.99, "With --semi_supervised: decay of the exponential moving average of the "
                                    "weights that is the teacher, and is validated, tested and exported (0: no "
                                    "teacher; the student teaches itself).",
                              check=(lambda v: 0 <= v < 1, "expected a number in [0, 1)"))
    unlabeled_ramp_up: float = option(0.1, "With --semi_supervised: the pseudo-label and consistency weights rise "
                                           "from 0 over this fraction of the steps (a sigmoid ramp).",
                                      check=UNIT_INTERVAL)
    cutout: float = option(0.5, "With --semi_supervised: side of the gray square cut out of the student's "
                                "unlabelled view, as a fraction of the image's side.", check=UNIT_INTERVAL)
    strong_magnitude: float = option(2.0, "With --semi_supervised: the student's unlabelled view is augmented this "
                                          "many times as strongly as the labelled batches (then cut out).",
                                     check=(lambda v: 1 <= v <= 10, "expected a factor in [1, 10]"))
    strong_photometric: float = option(0.0, "With --semi_supervised: the student's unlabelled view also scales "
                                            "brightness and contrast (and the saturation of colour images) by up "
                                            "to this percentage, whatever the labelled batches' augmentation.",
                                       check=PERCENT_OR_ZERO)
    restored_lr_multiplier: float = option(1.0, "Fine-tuning: restored layers listed in --trainable_scopes learn at "
                                                "--learning_rate times this (their own Adam optimizer).")
    restored_warmup: float = option(0.0, "Fine-tuning: restored layers listed in --trainable_scopes stay still for "
                                         "this fraction of the steps while the new layers learn on their features, "
                                         "then learn at their rate (linear probing, then fine-tuning).",
                                    check=(lambda v: 0 <= v < 1, "expected a fraction in [0, 1)"))
    cache_features: bool = option(None, "Compute the frozen layers' output once per image and train the rest on "
                                        "it (needs every restored layer frozen). Default: on for the frozen-conv "
                                        "default (--checkpoint_path without --trainable_scopes), else off.")
    eval_every_epochs: int = option(1, "Validate and checkpoint after every this many epochs.")
    patience: int = option(0, "Early stopping: stop after this many validations without a better validation "
                              "accuracy and report the test accuracy of the best one (0: off).")
    stop_at_accuracy: float = option(None, "Stop at the first validation whose accuracy reaches this fraction (e.g. "
                                           "0.99): its weights are saved and tested.", check=FRACTION)
    class_weight: str = option("none", "balanced: weigh each training image's loss by N / (classes * images of "
                                       "its class) in the labelled training split, so a rare class counts as much as "
                                       "a common one.", choices=CLASS_WEIGHTS)
    select_by: str = option("accuracy", "What --patience's early stopping and the best checkpoint follow on the "
                                        "validation split (balanced_accuracy or macro_f1 for imbalanced classes).",
                            choices=SELECT_BY)
    target_recall: float = option(0.0, "Two classes: the decision threshold is chosen on the validation split to "
                                       "find at least this share of --positive_class (0.95: 19 in 20 defective "
                                       "parts); the test split is measured at it, export and predict apply it "
                                       "(0: the more probable class).", check=UNIT_INTERVAL)
    positive_class: str = option("", "With --target_recall: the class to find (default: the one with fewer "
                                     "training images).")

    def settled(self):
        """This config with the defaults that depend on other settings filled in: the recipe (epochs, batch size,
        learning rate) and cache_features, each only where it was not given."""
        frozen_default = bool(self.checkpoint_path) and not self.trainable_scopes and not self.semi_supervised
        recipe = (SEMI_SUPERVISED_RECIPE if self.semi_supervised else
                  FROZEN_HEAD_RECIPE if frozen_default else RECIPE)
        given = {name: getattr(self, name) for name in Recipe._fields if getattr(self, name) is not None}
        # retrain.py's rule: augmented images change every step, so no cache of their features can serve.
        # Clones split the frozen layers' batches; cached features would feed the head whole ones.
        cache = ((frozen_default and not self.augmenting and self.num_clones == 1) if self.cache_features is None
                 else self.cache_features)
        return dataclasses.replace(self, **dict(recipe._asdict(), **given), cache_features=cache,
                                   unlabeled_batch_size=unlabeled_batch(self.unlabeled_batch_size))


@dataclasses.dataclass
class ExportConfig:
    checkpoint_path: str = option("checkpoints/transfer", "Transfer (classifier) checkpoint prefix, or a directory "
                                                          "(its latest; a --patience run's best/, as tested).")
    # A version directory, as TF Serving reads: it must not exist yet, or be empty.
    export_dir: str = option("export/1", "New (or empty) directory for the SavedModel; an existing one is never "
                                         "overwritten.")


@dataclasses.dataclass
class InspectConfig:
    checkpoint_path: str = option("checkpoints/transfer", "Checkpoint prefix, or a directory (its latest).")
    latent_size: int = option(PretrainConfig.latent_size,
                              "latent_var units of the autoencoder graph (--against=autoencoder).")
    encoder_filters: str = option("16,32", "Encoder widths of the graph to compare with (--against), as "
                                           "pretrain_cae's --encoder_filters.", check=FILTERS)


@dataclasses.dataclass
class ExtractConfig(DataConfig, SessionConfig):
    checkpoint_path: str = option(None, "Autoencoder or classifier checkpoint prefix, or a directory (its latest; "
                                        "a --patience run's best/, as tested).")
    output: str = option(None, ".npz file to write: 'features' [N, D] and 'labels' [N].")
    layer: str = option("conv2", "conv2: the encoder's last conv, flattened (7x7x32 for the tutorial's on MNIST; "
                                 "convN of an N-layer encoder), latent (autoencoder latent_var) or fc1 (classifier).",
                        choices=LAYERS)
    split: str = option("test", "Which split to run over.", choices=SPLITS)
    batch_size: int = option(1000, "Images per forward pass.")


@dataclasses.dataclass
class BenchmarkConfig(IdxDataConfig, SessionConfig):
    # No flag checks here: cae.measure.benchmark.run checks its own settings, from the command line or not.
    output: str = option("reports/benchmark.json", "Where the JSON report goes.")
    batch_size: int = option(128, "Images per step, every case.")
    warmup_steps: int = option(20, "Untimed steps before the timed blocks.")
    timed_steps: int = option(100, "Steps per timed block.")
    repeats: int = option(3, "Timed blocks per case; the table shows their median.")
    rss_pretrain_epochs: int = option(2, "Epochs of the full-MNIST pretrain run in a child process for its peak RSS "
                                         "(0: skip).")
    profile_steps: int = option(10, "Traced steps per toolkit case (RunOptions FULL_TRACE) for its kernel times "
                                    "(0: none).")
    quick: bool = option(False, "A few steps on 1,024 images, no pretrain child: a CI smoke run.")


@dataclasses.dataclass
class ExperimentConfig(AugmentConfig):
    """The label-budget experiment (cae.measure.label_budget); the report lists these settings in this order,
    the augmentation flags (for every run, and the pretraining) first."""
    data_dir: str = option(None, "Directory of the classified dataset's IDX files (default as in "
                                 "transfer_classify).")
    other_data_dir: str = option(None, "Directory of the cross-domain pretraining dataset's IDX files.")
    dataset: str = option("mnist", "Dataset to classify; the autoencoder for the cross-domain methods trains on "
                                   "the other one.", choices=DATASETS)
    image_dir: str = option(None, "A folder of your own images, one subfolder per class, instead of --dataset: "
                                  "the autoencoder trains on its training split; no cross-domain methods.")
    image_size: int = same_as(DataConfig, "image_size")
    color_mode: str = same_as(DataConfig, "color_mode")
    validation_percentage: int = same_as(DataConfig, "validation_percentage")
    testing_percentage: int = same_as(DataConfig, "testing_percentage")
    folds: int = option(1, "With --image_dir: cross-validation, every run on each of this many folds "
                           "(transfer_classify --fold), each fold with an autoencoder of its own training split; the "
                           "report pools folds and seeds. K folds need --testing_percentage of at most 100/K; at "
                           "100/K every image is tested once.", check=at_least(1))
    work_dir: str = option("experiments/label_budget", "Checkpoints of every run: a new or empty directory, or an "
                                                       "earlier experiment's (emptied first).")
    report_dir: str = option("reports", "Where label_budget.md and label_budget.png go.")
    # 60000 means every training label (55,000 + 5,000 held out)
    budgets: str = option("100,300,1000,3000,10000,60000", "Comma-separated label budgets (60000: every training "
                                                           "label).")
    labels_per_class: str = option(None, "Comma-separated budgets in labels of each class (e.g. 10,30,100,all) "
                                         "instead of --budgets: the first N of each class, in an order drawn from "
                                         "the seed (a folder: its hash order).")
    cross_domain_budgets: str = option("1000", "Budgets at which the cross-domain methods also run.")
    semi_budgets: str = option("", "With --labels_per_class: budgets at which the semi-supervised run from the "
                                   "autoencoder (transfer_classify --semi_supervised) and scratch with the same "
                                   "augmentation also run.")
    ablation_budget: str = option(None, "With --labels_per_class: a budget at which the semi-supervised run is "
                                        "taken apart: the autoencoder's initialization alone, + augmentation, "
                                        "+ reconstruction, + consistency.")
    semi_epochs: int = option(SEMI_SUPERVISED_RECIPE.epochs, "Passes over the unlabelled images (every training "
                                                             "image) of each semi-supervised run.",
                              check=at_least(1))
    unlabeled_batch_size: int = same_as(TransferConfig, "unlabeled_batch_size")
    strong_photometric: float = same_as(TransferConfig, "strong_photometric")
    seeds: int = option(3, "Seeds per method and budget (each draws its own labelled subset).")
    quick: bool = option(False, "CI mode: a few hundred images, two budgets, two seeds, a few dozen steps.")
    # Pretraining (both domains): a denoising autoencoder, 14 epochs at a constant 3e-3 with sigma 0.3 (see
    # reports/label_budget.md: decaying schedules and pretrain_cae's 2-5 one-cycle epochs transfer worse where labels
    # are few; this transferred better than the 20 epochs at 1e-3, sigma 0.5, it replaced, in less time)
    pretrain_epochs: int = option(14, "Autoencoder pretraining epochs (each domain).")
    pretrain_batch_size: int = option(128, "Images per autoencoder pretraining step.")
    pretrain_learning_rate: float = option(3e-3, "Adam learning rate of the autoencoder pretraining.")
    pretrain_lr_schedule: str = option("constant", "Learning-rate schedule of the autoencoder pretraining.",
                                       choices=SCHEDULES)
    latent_size: int = same_as(PretrainConfig, "latent_size")
    loss: str = same_as(PretrainConfig, "loss")
    input_noise: float = replace_default(PretrainConfig, "input_noise", 0.3)
    input_cutout: float = same_as(PretrainConfig, "input_cutout")
    input_mask: float = same_as(PretrainConfig, "input_mask")
    # The encoder (every pretraining and run) and, for imbalanced classes, the loss weights and the measure that
    # early stopping follows and the report shows
    encoder_filters: str = same_as(RunConfig, "encoder_filters")
    batch_norm: bool = same_as(RunConfig, "batch_norm")
    class_weight: str = same_as(TransferConfig, "class_weight")
    select_by: str = option("accuracy", "The test measure the report shows (and --patience's early stopping "
                                        "follows): balanced_accuracy or macro_f1 for imbalanced classes.",
                            choices=SELECT_BY)
    # Classifier training: transfer_classify's one-cycle recipe, each run its whole schedule (one-cycle ends at its
    # best; early stopping in the high-rate middle would cut runs short), tested once at the end
    batch_size: int = option(RECIPE.batch_size, "Images per classifier training step.")
    learning_rate: float = option(RECIPE.learning_rate, "Adam learning rate of each classifier run (one_cycle's "
                                                        "peak).")
    lr_schedule: str = same_as(TransferConfig, "lr_schedule")
    restored_lr_multiplier: float = replace_default(TransferConfig, "restored_lr_multiplier", 0.1)
    max_steps: int = option(500, "Training steps per run (more where --min_epochs needs them).")
    min_epochs: int = option(5, "Epochs per run at least, however few the labels.")
    validations: int = option(1, "About this many validations per run (the last one at its end).")
    patience: int = option(0, "Validations without improvement before a run stops early and is tested at its best "
                              "validation (0: never).")
    intra_op_threads: int = same_as(SessionConfig, "intra_op_threads")
    inter_op_threads: int = same_as(SessionConfig, "inter_op_threads")
    # Every pretraining and run in bfloat16 where the CPU has it: faster, and its pretraining transferred a little
    # better (reports/label_budget.md); elsewhere the whole experiment runs float32 (one warning)
    precision: str = replace_default(SessionConfig, "precision", "mixed_bfloat16")

    @property
    def filters(self):
        return filters_of(self.encoder_filters)


@dataclasses.dataclass
class TimeToAccuracyConfig:
    """scripts/time_to_accuracy.py (cae.measure.time_to_accuracy): whole default runs, timed, against Keras 3."""
    output: str = option("reports/time_to_accuracy.json", "Where the JSON report goes.")
    seeds: int = option(3, "Runs of every row, seeds 0, 1, ...", check=at_least(1))
    precisions: str = option("float32,mixed_bfloat16", "Comma-separated --precision values of the toolkit's rows.")
    keras: bool = option(True, "Also run the Keras 3 rows (--nokeras: the toolkit only).")
    quick: bool = option(False, "CI mode: 512 images and one epoch per process, one row each.")


@dataclasses.dataclass
class SummaryOverheadConfig:
    """scripts/summary_overhead.py: what fetching the train/ summaries costs the autoencoder's training step."""
    every: str = option("1,20,0", "Comma-separated cadences to compare (0: never fetch the summary op).")
    steps: int = option(200, "Timed training steps per cadence and round.")
    rounds: int = option(3, "Rounds; each runs every cadence once.")
    batch_size: int = option(128, "Images per step.")
