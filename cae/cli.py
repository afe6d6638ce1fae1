"""Command-line entry points (absl flags). Flags are defined when an entry point runs, not on import, so any
number of cae modules can be imported in one process (tests do).

Every setting is a field of a cae.config dataclass and ``define_flags`` makes it a flag; a command adds by hand
only what is not a setting (predict's --model and --json, inspect's --against). The config classes have no
TensorFlow, so every command but predict and inspect rejects a bad flag before TensorFlow is imported.
"""

import dataclasses
import logging as std_logging
import os
import sys
import tempfile

from absl import app, flags, logging

from cae.config import (BenchmarkConfig, ExperimentConfig, ExportConfig, ExtractConfig, InspectConfig,
                        PretrainConfig, SummaryOverheadConfig, TimeToAccuracyConfig, TransferConfig)
from cae import progress
from cae.cluster import TASK_LOST_EXIT, TaskLost
from cae.errors import UserError
from cae.interrupt import Interrupted

FLAGS = flags.FLAGS


_DEFINE = {str: flags.DEFINE_string, int: flags.DEFINE_integer, float: flags.DEFINE_float, bool: flags.DEFINE_bool}


def define_flags(config_class):
    """One flag per field of ``config_class`` (a cae.config dataclass): named after the field, its default the
    field's, its type the field's annotation (str, int, float, bool), an enum flag where the field has choices,
    and an absl validator where it has a check. Fields come from the config class only, so a command's flags and
    the config it builds (``_config_from_flags``) always match."""
    for field in dataclasses.fields(config_class):
        meta = field.metadata
        if "help" not in meta:
            raise TypeError(f"{config_class.__name__}.{field.name} has no help: declare it with cae.config.option")
        if meta["choices"]:
            flags.DEFINE_enum(field.name, field.default, list(meta["choices"]), meta["help"])
        else:
            _DEFINE[field.type](field.name, field.default, meta["help"])
        if meta["check"]:
            _validate(field.name, *meta["check"])


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
    """The config of the parsed flags: one value per field, as ``define_flags(config_class)`` defined them."""
    return config_class(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(config_class)})


def _run_main(work, takes_arguments=False):
    """app.run ``work()`` (``work(arguments)`` with the non-flag arguments if ``takes_arguments``): a UserError is
    one line on stderr and exit status 2; a SIGINT/SIGTERM that stopped training (checkpoint saved) is one line and
    exit 130, like a shell's Ctrl-C."""
    def main(argv):
        progress.plain_console()  # bare lines on stderr; a run's log.txt keeps absl's full records
        _quiet_tensorflow()  # after flag parsing: a bad flag is rejected without TensorFlow
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
        except TaskLost as e:  # another task of the cluster stopped (cae.cluster.Watch says the same)
            logging.flush()
            print(f"error: {e}", file=sys.stderr)
            sys.exit(TASK_LOST_EXIT)
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
    replayed only if the import itself fails. Without TensorFlow installed (``pip install -e .`` installs no
    build of it, see setup.cfg) the answer is one line naming the extra to install.
    """
    if "tensorflow" in sys.modules:
        return
    # A cluster's gRPC runtime warns of every step rendezvous it cancels (each end of an evaluation, the job's end,
    # and three lines per RPC of a task that stopped): a cluster task shows errors only, and the Watch's one line.
    in_cluster = ("job_name" in FLAGS and FLAGS["job_name"].present) or os.environ.get("TF_CONFIG")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if in_cluster else "1")
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow
        except ModuleNotFoundError as e:
            os.dup2(saved_stderr, 2)
            if e.name != "tensorflow":
                raise
            print("error: TensorFlow is not installed: pip install -e \".[cpu]\" (or \".[gpu]\" on a CUDA "
                  "machine) in this checkout, then run the command again", file=sys.stderr)
            sys.exit(2)
        except BaseException:
            os.dup2(saved_stderr, 2)
            held.seek(0)
            sys.stderr.buffer.write(held.read())
            raise
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
    # TensorFlow's Python logger: its INFO notes ("Restoring parameters from ...", the SavedModel builder's
    # staging paths) are not news to a user, and its own handler would print what the console prints again.
    # The v1 API this toolkit teaches is deprecated as a whole; its per-call notices (Saver's remove_checkpoint
    # when an old checkpoint is deleted, saved_model.load) would fill every run's output with the same warning.
    tf_logger = tensorflow.get_logger()
    tf_logger.setLevel(std_logging.WARNING)
    for handler in list(tf_logger.handlers):
        tf_logger.removeHandler(handler)
    tf_logger.addFilter(lambda record: "is deprecated and will be removed" not in record.getMessage())


def _make_deterministic():
    """Same --seed, flags and machine, same numbers: the graph seed and data order come from --seed, and op
    determinism makes every kernel use a reproducible algorithm (no measurable cost on CPU here; GPUs may slow)."""
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()


def pretrain_main():
    define_flags(PretrainConfig)  # cae.config has no TensorFlow: a bad flag is reported at once

    def work():
        from cae.pretrain import pretrain
        _make_deterministic()
        metrics = pretrain(_config_from_flags(PretrainConfig))
        print(f"test reconstruction loss ({FLAGS.loss}): {metrics['test_reconstruction_loss']:.5f}" if metrics
              else _task_done())
    _run_main(work)


def transfer_main():
    define_flags(TransferConfig)

    def work():
        from cae.transfer import transfer
        _make_deterministic()
        metrics = transfer(_config_from_flags(TransferConfig))
        print(f"test accuracy: {metrics['test_accuracy']:.4f}" if metrics else _task_done())
    _run_main(work)


def _task_done():
    """What a ps task or a worker other than the chief prints at the job's end (the chief prints the results)."""
    return f"{FLAGS.job_name or 'task'} {FLAGS.task_index}: done; the chief (worker 0) wrote the results"


def export_main():
    define_flags(ExportConfig)

    def work():
        from cae.export import export
        checkpoint = export(_config_from_flags(ExportConfig))
        print(f"exported {checkpoint} to {FLAGS.export_dir} (signatures serving_default: float32 images in "
              f"[0, 1], serving_uint8: uint8 images)")
    _run_main(work)


def predict_main():
    _quiet_tensorflow()
    import json
    from cae import predict
    flags.DEFINE_string("model", "checkpoints/transfer",
                        "Transfer checkpoint prefix or directory (its latest; a --patience run's best/, as "
                        "tested), or a SavedModel directory from cae-export.")
    flags.DEFINE_bool("json", False, "Print one JSON list (file, class, class_name, probability, probabilities; "
                                     "decision where the model has an operating point) instead.")

    def work(paths):
        results = predict.classify(FLAGS.model, paths)
        if FLAGS.json:
            print(json.dumps(results))
        else:
            print("\n".join(predict.format_line(r) for r in results))
    _run_main(work, takes_arguments=True)


def inspect_main():
    _quiet_tensorflow()
    from cae.inspect_checkpoint import GRAPHS, inspect
    define_flags(InspectConfig)
    flags.DEFINE_enum("against", None, list(GRAPHS),
                      "Also show which variables this graph would restore, which are missing, which differ.")

    def work():
        cfg = _config_from_flags(InspectConfig)
        print("\n".join(inspect(cfg.checkpoint_path, FLAGS.against, cfg.latent_size, cfg.encoder_filters)))
    _run_main(work)


def benchmark_main():
    define_flags(BenchmarkConfig)

    def work():
        from cae.measure.benchmark import profile_table, run, table
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
    define_flags(ExtractConfig)

    def work():
        from cae.extract import extract
        values, labels = extract(_config_from_flags(ExtractConfig))
        print(f"wrote {FLAGS.output}: features {list(values.shape)}, labels {list(labels.shape)}")
    _run_main(work)


def experiment_main():
    define_flags(ExperimentConfig)

    def work():
        from cae.measure.label_budget import run
        results = run(_config_from_flags(ExperimentConfig), command=" ".join(["python scripts/experiment.py",
                                                                                *sys.argv[1:]]))
        print(f"{len(results)} runs; wrote {os.path.join(FLAGS.report_dir, 'label_budget.md')} and .png")
    _run_main(work)


def time_to_accuracy_main():
    define_flags(TimeToAccuracyConfig)

    def work():
        from cae.measure import time_to_accuracy
        print(time_to_accuracy.table(time_to_accuracy.run(_config_from_flags(TimeToAccuracyConfig))))
        print(f"wrote {FLAGS.output}")
    _run_main(work)


def summary_overhead_main():
    define_flags(SummaryOverheadConfig)

    def work():
        from cae.measure import summary_overhead
        print("\n".join(summary_overhead.table(summary_overhead.run(_config_from_flags(SummaryOverheadConfig)))))
    _run_main(work)
