"""The console commands of setup.cfg, run as pip's generated wrappers run them (no install needed): --helpfull
and --flagfile (absl) work for each, and a flagfile drives real work."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from setuptools.config.setupcfg import read_configuration

from cae.inspect_checkpoint import inspect

from conftest import REPO

CONSOLE_SCRIPTS = read_configuration(os.path.join(REPO, "setup.cfg"))["options"]["entry_points"]["console_scripts"]
ENTRY_POINTS = dict(line.replace(" ", "").split("=") for line in CONSOLE_SCRIPTS)  # name -> module:function
OWN_FLAGS = {
    "cae-pretrain": ["--latent_size", "--loss"],
    "cae-transfer": ["--checkpoint_path", "--restore_scopes", "--trainable_scopes"],
    "cae-export": ["--checkpoint_path", "--export_dir"],
    "cae-predict": ["--model", "--[no]json"],
    "cae-inspect": ["--checkpoint_path", "--against", "--latent_size"],
    "cae-benchmark": ["--[no]quick", "--timed_steps", "--rss_pretrain_epochs"],
}


def run_command(name, *args):
    """What the installed ``name`` does: import its function, set argv[0], exit with its result."""
    module, function = ENTRY_POINTS[name].split(":")
    code = f"import sys; from {module} import {function}; sys.argv[0] = {name!r}; sys.exit({function}())"
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=600)


def write_flagfile(path, *flags):
    path.write_text("".join(flag + "\n" for flag in flags))
    return f"--flagfile={path}"


def test_setup_cfg_declares_the_commands():
    assert set(OWN_FLAGS) <= set(ENTRY_POINTS)
    assert ENTRY_POINTS["cae-export"] == "cae.cli:export_main"
    assert ENTRY_POINTS["cae-predict"] == "cae.cli:predict_main"
    assert ENTRY_POINTS["cae-inspect"] == "cae.cli:inspect_main"
    assert ENTRY_POINTS["cae-benchmark"] == "cae.cli:benchmark_main"


@pytest.mark.parametrize("name", sorted(OWN_FLAGS))
def test_helpfull_lists_the_command_flags(name):
    result = run_command(name, "--helpfull")
    assert result.returncode == 1, result.stderr[-2000:]  # absl exits 1 after printing help
    assert "cae.cli:" in result.stdout and "--flagfile" in result.stdout
    for flag in OWN_FLAGS[name]:
        assert f"  {flag}:" in result.stdout, flag


@pytest.mark.parametrize("name", sorted(OWN_FLAGS))
def test_help_lists_the_command_flags_and_only_those(name):
    """--help (short) shows the command's own flags, not absl's."""
    result = run_command(name, "--help")
    assert result.returncode == 1, result.stderr[-2000:]
    for flag in OWN_FLAGS[name]:
        assert f"  {flag}:" in result.stdout, flag
    assert "--[no]logtostderr" not in result.stdout and "--[no]logtostderr" in run_command(name, "--helpfull").stdout


@pytest.mark.parametrize("name", ["cae-pretrain", "cae-transfer"])
def test_flagfile_sets_training_flags(name, tmp_path, mnist_dir):
    """Zero epochs: the run only evaluates, in the train_dir that only the flagfile names."""
    train_dir = tmp_path / "run"
    result = run_command(name, write_flagfile(tmp_path / "flags", f"--train_dir={train_dir}", "--epochs=0",
                                              f"--data_dir={mnist_dir}"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.load(open(train_dir / "metrics.json"))["steps"] == 0


def test_flagfile_drives_export_predict_and_inspect(transfer_dir, mnist, tmp_path):
    export_dir = tmp_path / "export" / "1"
    result = run_command("cae-export", write_flagfile(tmp_path / "export.flags", f"--checkpoint_path={transfer_dir}",
                                                      f"--export_dir={export_dir}"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"exported {transfer_dir}/model.ckpt-200 to {export_dir}")

    image = tmp_path / "digit.png"
    tf.io.write_file(str(image), tf.io.encode_png((mnist.test.images[0] * 255).round().astype("uint8")
                                                  .reshape(28, 28, 1)))
    result = run_command("cae-predict", write_flagfile(tmp_path / "predict.flags", f"--model={export_dir}",
                                                       "--json"), str(image))
    assert result.returncode == 0, result.stderr[-2000:]
    assert [r["file"] for r in json.loads(result.stdout)] == [str(image)]

    result = run_command("cae-inspect", write_flagfile(tmp_path / "inspect.flags",
                                                       f"--checkpoint_path={transfer_dir}", "--against=classifier"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == inspect(transfer_dir, "classifier")



@pytest.mark.parametrize("function, flag", [("pretrain_main", "--epochs=-1"), ("transfer_main", "--batch_size=0")])
def test_workflow_commands_reject_a_bad_flag_before_importing_tensorflow(function, flag):
    """Flags come from cae.config (no TensorFlow), so the one error line comes at once, not after TF's import."""
    probe = (f"import sys\nsys.argv = ['cae', '{flag}']\nfrom cae import cli\n"
             f"try:\n    cli.{function}()\nexcept SystemExit as e:\n"
             f"    print(e.code, 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.stdout.split() == ["2", "False"], (result.stdout, result.stderr[-2000:])
    assert result.stderr.startswith(f"error: flag {flag.split('=')[0]}=")
