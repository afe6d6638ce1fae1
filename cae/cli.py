"""Command-line entry points (absl flags). Flags are defined when an entry point runs, not on import, so any
number of cae modules can be imported in one process (tests do)."""

import dataclasses
import math
import os
import sys
import tempfile

from absl import app, flags, logging

from cae.errors import UserError
from cae.interrupt import Interrupted

FLAGS = flags.FLAGS


def _define_common(defaults):
    flags.DEFINE_string("data_dir", defaults.data_dir,
                        "Directory with the four IDX .gz files (default: $CAE_DATA_DIR for mnist; then a local copy "
                        "holding them: ../shared/datasets/mnist beside the checkout for mnist, "
                        "/usr/share/datasets/fashion-mnist for fashion_mnist; then ~/.cache/cae/<dataset>).")
    flags.DEFINE_enum("dataset", defaults.dataset, ["mnist", "fashion_mnist"], "Which MNIST-format dataset.")
    flags.DEFINE_string("train_dir", defaults.train_dir, "Where checkpoints, event files and metrics.json go.")
    flags.DEFINE_integer("epochs", defaults.epochs, "Passes over the training set.")
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Images per training step.")
    flags.DEFINE_float("learning_rate", defaults.learning_rate, "Adam learning rate (the start of the schedule).")
    flags.DEFINE_enum("lr_schedule", defaults.lr_schedule, ["constant", "cosine"],
                      "Learning rate: constant, or cosine decay to 0 over all --epochs.")
    flags.DEFINE_integer("seed", defaults.seed, "Seed for weights and data order.")
    flags.DEFINE_integer("keep_checkpoints", defaults.keep_checkpoints, "How many recent checkpoints to keep.")
    flags.DEFINE_integer("save_every_steps", defaults.save_every_steps,
                         "Also checkpoint every N steps within an epoch (0: only at the end of each epoch).")
    flags.DEFINE_float("gpu_memory_fraction", defaults.gpu_memory_fraction,
                       "GPUOptions.per_process_gpu_memory_fraction of the session.")
    flags.DEFINE_bool("allow_growth", defaults.allow_growth, "GPUOptions.allow_growth of the session.")
    flags.DEFINE_integer("intra_op_threads", defaults.intra_op_threads, "Threads inside one op (0: one per core).")
    flags.DEFINE_integer("inter_op_threads", defaults.inter_op_threads, "Ops run in parallel (0: automatic).")
    flags.DEFINE_integer("summary_every_steps", defaults.summary_every_steps,
                         "Write the train/ scalars (loss, learning rate, images/s) every N steps.")
    flags.DEFINE_integer("projector_images", defaults.projector_images,
                         "First N test images whose encoder features go to the Embedding Projector (0: none).")
    flags.DEFINE_bool("download", defaults.download,
                      "Download missing MNIST files from the public mirrors (--nodownload: fail instead).")
    _validate("epochs", lambda v: v >= 0, "expected an integer >= 0")
    _validate("batch_size", lambda v: v >= 1, "expected an integer >= 1")
    _validate("learning_rate", lambda v: 0 < v < math.inf, "expected a number > 0")
    _validate("keep_checkpoints", lambda v: v >= 1, "expected an integer >= 1")
    _validate("save_every_steps", lambda v: v >= 0, "expected an integer >= 0 (0: at the end of each epoch only)")
    _validate("gpu_memory_fraction", lambda v: 0 < v <= 1, "expected a fraction in (0, 1]")
    _validate("intra_op_threads", lambda v: v >= 0, "expected an integer >= 0 (0: one per core)")
    _validate("inter_op_threads", lambda v: v >= 0, "expected an integer >= 0 (0: automatic)")
    _validate("projector_images", lambda v: v >= 0, "expected an integer >= 0 (0: no projector)")


def _validate(name, is_valid, expected):
    """absl validator: a bad value stops the program at flag parsing, before any graph or directory exists."""
    flags.register_validator(name, lambda value: value is None or is_valid(value), message=expected)


def _parse_flags(argv):
    """Parse flags; a bad one is one line on stderr and exit 2 (absl's own parser prints two lines, exit 1)."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)


def _config_from_flags(config_class):
    return config_class(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(config_class)})


def _run_main(work, takes_arguments=False):
    """app.run ``work()`` (``work(arguments)`` with the non-flag arguments if ``takes_arguments``): a UserError is
    one line on stderr and exit status 2; a SIGINT/SIGTERM that stopped training (checkpoint saved) is one line and
    exit 130, like a shell's Ctrl-C."""
    def main(argv):
        _quiet_tensorflow()  # after flag parsing: the workflow commands reject a bad flag without TensorFlow
        try:
            if len(argv) > 1 and not takes_arguments:
                raise UserError(f"unexpected arguments: {' '.join(argv[1:])} (flags are written --name=value)")
            if takes_arguments:
                work(argv[1:])
            else:
                work()
        except UserError as e:
            logging.flush()
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except (Interrupted, KeyboardInterrupt) as e:
            logging.flush()
            print(f"interrupted: {str(e) or 'nothing saved since the last checkpoint'}", file=sys.stderr)
            sys.exit(130)
    # absl's --help lists the key flags of the program's main module; ours are defined here, in cae.cli.
    for flag in FLAGS.flags_by_module_dict().get(__name__, []):
        FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main, flags_parser=_parse_flags)


def _quiet_tensorflow():
    """Import TensorFlow without its start-up chatter, so a user's error stays the one line on stderr.

    TF_CPP_MIN_LOG_LEVEL=1 hides later C++ INFO lines (warnings still show); the oneDNN notice is printed to
    file descriptor 2 while the library loads, before any log setting applies, so it is held back here and
    replayed only if the import itself fails.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved_stderr, 2)
            held.seek(0)
            sys.stderr.buffer.write(held.read())
            raise
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)


def _make_deterministic():
    """Same --seed, flags and machine, same numbers: the graph seed and data order come from --seed, and op
    determinism makes every kernel use a reproducible algorithm (no measurable cost on CPU here; GPUs may slow)."""
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()


def pretrain_main():
    from cae.config import PretrainConfig  # no TensorFlow yet: a bad flag is reported at once
    defaults = PretrainConfig()
    _define_common(defaults)
    flags.DEFINE_integer("latent_size", defaults.latent_size, "Units of the latent_var layer.")
    flags.DEFINE_enum("loss", defaults.loss, ["bce", "mse"],
                      "Reconstruction loss: per-pixel binary cross-entropy or mean squared error.")
    flags.DEFINE_integer("max_train_examples", defaults.max_train_examples,
                         "Train on the first N training images only (quick runs and tests).")
    _validate("latent_size", lambda v: v >= 1, "expected an integer >= 1")
    _validate("max_train_examples", lambda v: v >= 1, "expected an integer >= 1")
    flags.DEFINE_float("input_noise", defaults.input_noise,
                       "Denoising: stddev of Gaussian noise added to the encoder input (0: plain autoencoder).")

    def work():
        from cae.pretrain import pretrain
        _make_deterministic()
        metrics = pretrain(_config_from_flags(PretrainConfig))
        print(f"test reconstruction loss ({FLAGS.loss}): {metrics['test_reconstruction_loss']:.5f}")
    _run_main(work)


def transfer_main():
    from cae.config import TransferConfig
    defaults = TransferConfig()
    _define_common(defaults)
    flags.DEFINE_string("checkpoint_path", defaults.checkpoint_path,
                        "Autoencoder checkpoint prefix, or a directory (its latest). Omit to train from scratch.")
    flags.DEFINE_string("restore_scopes", defaults.restore_scopes,
                        "Comma-separated scopes (regexes on whole scopes) to restore from --checkpoint_path.")
    flags.DEFINE_string("trainable_scopes", defaults.trainable_scopes,
                        "Comma-separated scopes (regexes on whole scopes) the optimizer trains. Default: fc1,logits "
                        "with --checkpoint_path (frozen convs), all layers without (scratch).")
    flags.DEFINE_integer("num_labels", defaults.num_labels, "Train on the first N labelled images only.")
    _validate("num_labels", lambda v: v >= 1, "expected an integer >= 1")
    flags.DEFINE_float("restored_lr_multiplier", defaults.restored_lr_multiplier,
                       "Fine-tuning: restored layers listed in --trainable_scopes learn at --learning_rate times "
                       "this (their own Adam optimizer).")
    flags.DEFINE_bool("cache_features", defaults.cache_features,
                      "Compute the frozen layers' output once per image and train the rest on it (needs every "
                      "restored layer frozen).")
    flags.DEFINE_integer("eval_every_epochs", defaults.eval_every_epochs,
                         "Validate and checkpoint after every this many epochs.")
    flags.DEFINE_integer("patience", defaults.patience,
                         "Early stopping: stop after this many validations without a better validation accuracy "
                         "and report the test accuracy of the best one (0: off).")

    def work():
        from cae.transfer import transfer
        _make_deterministic()
        metrics = transfer(_config_from_flags(TransferConfig))
        print(f"test accuracy: {metrics['test_accuracy']:.4f}")
    _run_main(work)


def export_main():
    _quiet_tensorflow()
    from cae.export import ExportConfig, export
    defaults = ExportConfig()
    flags.DEFINE_string("checkpoint_path", defaults.checkpoint_path,
                        "Transfer (classifier) checkpoint prefix, or a directory (its latest).")
    flags.DEFINE_string("export_dir", defaults.export_dir,
                        "New (or empty) directory for the SavedModel; an existing one is never overwritten.")

    def work():
        checkpoint = export(_config_from_flags(ExportConfig))
        print(f"exported {checkpoint} to {FLAGS.export_dir} (signatures serving_default: float32 images in "
              f"[0, 1], serving_uint8: uint8 images)")
    _run_main(work)


def predict_main():
    _quiet_tensorflow()
    import json
    from cae import predict
    flags.DEFINE_string("model", "checkpoints/transfer",
                        "Transfer checkpoint prefix or directory, or a SavedModel directory from cae-export.")
    flags.DEFINE_bool("json", False, "Print one JSON list (file, class, probability, probabilities) instead.")

    def work(paths):
        results = predict.classify(FLAGS.model, paths)
        if FLAGS.json:
            print(json.dumps(results))
        else:
            print("\n".join(predict.format_line(r) for r in results))
    _run_main(work, takes_arguments=True)


def inspect_main():
    _quiet_tensorflow()
    from cae.config import PretrainConfig
    from cae.inspect_checkpoint import GRAPHS, inspect
    flags.DEFINE_string("checkpoint_path", "checkpoints/transfer",
                        "Checkpoint prefix, or a directory (its latest).")
    flags.DEFINE_enum("against", None, list(GRAPHS),
                      "Also show which variables this graph would restore, which are missing, which differ.")
    flags.DEFINE_integer("latent_size", PretrainConfig().latent_size,
                         "latent_var units of the autoencoder graph (--against=autoencoder).")

    def work():
        print("\n".join(inspect(FLAGS.checkpoint_path, FLAGS.against, FLAGS.latent_size)))
    _run_main(work)


def benchmark_main():
    _quiet_tensorflow()
    from cae.benchmark import BenchmarkConfig, profile_table, run, table
    defaults = BenchmarkConfig()
    flags.DEFINE_string("data_dir", defaults.data_dir, "Directory with the four MNIST IDX .gz files.")
    flags.DEFINE_string("output", defaults.output, "Where the JSON report goes.")
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Images per step, every case.")
    flags.DEFINE_integer("warmup_steps", defaults.warmup_steps, "Untimed steps before the timed blocks.")
    flags.DEFINE_integer("timed_steps", defaults.timed_steps, "Steps per timed block.")
    flags.DEFINE_integer("repeats", defaults.repeats, "Timed blocks per case; the table shows their median.")
    flags.DEFINE_integer("rss_pretrain_epochs", defaults.rss_pretrain_epochs,
                         "Epochs of the full-MNIST pretrain run in a child process for its peak RSS (0: skip).")
    flags.DEFINE_integer("intra_op_threads", defaults.intra_op_threads, "Threads inside one op (0: one per core).")
    flags.DEFINE_integer("inter_op_threads", defaults.inter_op_threads, "Ops run in parallel (0: automatic).")
    flags.DEFINE_integer("profile_steps", defaults.profile_steps,
                         "Traced steps per toolkit case (RunOptions FULL_TRACE) for its kernel times (0: none).")
    flags.DEFINE_bool("quick", defaults.quick, "A few steps on 1,024 images, no pretrain child: a CI smoke run.")

    def work():
        report = run(_config_from_flags(BenchmarkConfig))
        print(table(report))
        if report["profiles"]:
            print()
            print(profile_table(report))
        if "pretrain_peak_rss_mb" in report:
            print(f"peak RSS of a {FLAGS.rss_pretrain_epochs}-epoch full-MNIST pretrain: "
                  f"{report['pretrain_peak_rss_mb']:,.0f} MiB")
        print(f"wrote {FLAGS.output}")
    _run_main(work)


def extract_main():
    _quiet_tensorflow()
    from cae.extract import LAYER_SCOPES, ExtractConfig, extract
    defaults = ExtractConfig()
    flags.DEFINE_string("checkpoint_path", defaults.checkpoint_path,
                        "Autoencoder or classifier checkpoint prefix, or a directory (its latest).")
    flags.DEFINE_string("output", defaults.output, ".npz file to write: 'features' [N, D] and 'labels' [N].")
    flags.DEFINE_enum("layer", defaults.layer, list(LAYER_SCOPES),
                      "conv2 (flattened 7x7x32), latent (autoencoder latent_var) or fc1 (classifier).")
    flags.DEFINE_enum("split", defaults.split, ["train", "validation", "test"], "Which split to run over.")
    flags.DEFINE_string("data_dir", defaults.data_dir, "Directory with the four IDX .gz files (see pretrain_cae).")
    flags.DEFINE_enum("dataset", defaults.dataset, ["mnist", "fashion_mnist"], "Which MNIST-format dataset.")
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Images per forward pass.")
    flags.DEFINE_float("gpu_memory_fraction", defaults.gpu_memory_fraction,
                       "GPUOptions.per_process_gpu_memory_fraction of the session.")
    flags.DEFINE_bool("allow_growth", defaults.allow_growth, "GPUOptions.allow_growth of the session.")
    flags.DEFINE_integer("intra_op_threads", defaults.intra_op_threads, "Threads inside one op (0: one per core).")
    flags.DEFINE_integer("inter_op_threads", defaults.inter_op_threads, "Ops run in parallel (0: automatic).")

    def work():
        values, labels = extract(_config_from_flags(ExtractConfig))
        print(f"wrote {FLAGS.output}: features {list(values.shape)}, labels {list(labels.shape)}")
    _run_main(work)


def experiment_main():
    _quiet_tensorflow()
    from cae.experiment import ExperimentConfig, run
    defaults = ExperimentConfig()
    help_text = {
        "data_dir": "Directory of the classified dataset's IDX files (default as in transfer_classify).",
        "other_data_dir": "Directory of the cross-domain pretraining dataset's IDX files.",
        "dataset": "Dataset to classify; the autoencoder for the cross-domain methods trains on the other one.",
        "work_dir": "Checkpoints of every run: a new or empty directory, or an earlier experiment's (emptied first).",
        "report_dir": "Where label_budget.md and label_budget.png go.",
        "budgets": "Comma-separated label budgets (60000: every training label).",
        "cross_domain_budgets": "Budgets at which the cross-domain methods also run.",
        "quick": "CI mode: a few hundred images, two budgets, two seeds, a few dozen steps.",
        "max_steps": "Training steps per run at most (at least --min_epochs), before early stopping.",
        "validations": "About this many validations per run.",
        "patience": "Validations without improvement before a run stops early.",
    }
    for field in dataclasses.fields(ExperimentConfig):
        value, text = getattr(defaults, field.name), help_text.get(field.name, field.name.replace("_", " ") + ".")
        schedules = ["constant", "cosine"]
        choices = {"dataset": ["mnist", "fashion_mnist"], "loss": ["bce", "mse"], "lr_schedule": schedules,
                   "pretrain_lr_schedule": schedules}.get(field.name)
        if choices:
            flags.DEFINE_enum(field.name, value, choices, text)
        else:
            define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float}.get(
                type(value), flags.DEFINE_string)
            define(field.name, value, text)

    def work():
        results = run(_config_from_flags(ExperimentConfig), command=" ".join(["python scripts/experiment.py",
                                                                                *sys.argv[1:]]))
        print(f"{len(results)} runs; wrote {os.path.join(FLAGS.report_dir, 'label_budget.md')} and .png")
    _run_main(work)
