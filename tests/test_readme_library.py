"""The "cae as a library" block of docs/library.md, run exactly as written, and the first minutes of a new user:
a clean console (no TensorFlow warnings, plain lines when piped, one live line per epoch on a terminal), one line
when TensorFlow is missing, a warning for a copied checkpoint directory."""

import os
import re
import subprocess
import sys

import numpy as np
import tensorflow as tf

from conftest import REPO, run_cli, save_autoencoder_checkpoint, stderr_lines


def readme_library_block():
    with open(os.path.join(REPO, "docs", "library.md")) as f:
        readme = f.read()
    section = readme[readme.index("## cae as a library"):]
    return section[section.index("```python\n") + len("```python\n"):section.index("```\n", section.index("```python"))]


def test_readme_library_block_restores_only_the_convs_and_trains_the_head(tmp_path, mnist_dir):
    (tmp_path / "checkpoints" / "cae").mkdir(parents=True)
    checkpoint = save_autoencoder_checkpoint(tmp_path / "checkpoints" / "cae")  # where the block looks for it
    script = tmp_path / "block.py"
    script.write_text(readme_library_block())
    env = dict(os.environ, CAE_DATA_DIR=mnist_dir, PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", result.stdout).group(1))
    assert accuracy > 0.8, result.stdout  # the head alone, on the (untrained, random) convs: chance is 0.1
    trained = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "library" / "model.ckpt-1000"))
    pretrained = tf.train.load_checkpoint(checkpoint)
    for name in ("conv1/kernel", "conv1/bias", "conv2/kernel", "conv2/bias"):  # restored, then frozen
        np.testing.assert_array_equal(trained.get_tensor(name), pretrained.get_tensor(name), err_msg=name)
    assert "fc1/kernel" not in pretrained.get_variable_to_shape_map()


def test_workflow_commands_print_no_tensorflow_warnings(tmp_path, mnist_dir):
    """Two epochs with --keep_checkpoints=1 make the Saver delete old checkpoints (TensorFlow's deprecation
    notice for remove_checkpoint used to appear then)."""
    common = ["--max_train_examples=256", "--epochs=2", "--batch_size=64", "--keep_checkpoints=1",
              "--projector_images=16"]
    results = [run_cli("pretrain_cae.py", f"--train_dir={tmp_path / 'cae'}", *common, data_dir=mnist_dir)]
    results.append(run_cli("transfer_classify.py", f"--train_dir={tmp_path / 'transfer'}", "--num_labels=256",
                           f"--checkpoint_path={tmp_path / 'cae'}", *common[1:], data_dir=mnist_dir))
    for result, run in zip(results, ("cae", "transfer")):
        assert result.returncode == 0, result.stderr[-3000:]
        noisy = [line for line in stderr_lines(result)
                 if re.match(r"(W\d{4} |WARNING|E\d{4} )", line) or "deprecat" in line.lower()]
        assert noisy == [], noisy
        # piped: plain lines, no timestamps, no in-place redrawing; absl's full records in the run's log.txt
        assert not [line for line in stderr_lines(result) if re.match(r"[IWEF]\d{4} ", line)]
        assert "\r" not in result.stderr and "epoch 2/2 step 8/8 loss" in result.stderr
        log = (tmp_path / run / "log.txt").read_text()
        assert re.search(r"^I\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \w+\.py:\d+\] epoch 2: validation", log, re.M), log
    # after training too: export and predict say what they did, and nothing of TensorFlow's
    exported = run_cli("export_savedmodel.py", f"--checkpoint_path={tmp_path / 'transfer'}",
                       f"--export_dir={tmp_path / 'export' / '1'}")
    digit = tmp_path / "digit.png"
    digit.write_bytes((tmp_path / "transfer" / "sprite.png").read_bytes())
    predicted = run_cli("predict.py", f"--model={tmp_path / 'export' / '1'}", str(digit))
    for result in (exported, predicted):
        assert result.returncode == 0, result.stderr[-3000:]
        assert stderr_lines(result) == [], result.stderr  # no "Restoring parameters", no builder paths


def test_missing_tensorflow_is_one_line_naming_the_extra(tmp_path):
    """As after `pip install -e .` without an extra: the import of tensorflow fails."""
    runner = tmp_path / "without_tensorflow.py"
    runner.write_text(
        "import runpy, sys\n"
        "class Blocked:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tensorflow':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Blocked())\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    for script, *args in (("pretrain_cae.py",), ("predict.py", "digit.png")):
        result = subprocess.run([sys.executable, str(runner), os.path.join(REPO, "scripts", script), *args],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr[-3000:]
        assert stderr_lines(result) == ['error: TensorFlow is not installed: pip install -e ".[cpu]" (or ".[gpu]" '
                                        'on a CUDA machine) in this checkout, then run the command again']


def test_copied_checkpoint_directory_warns_which_checkpoint_it_restores(tmp_path, mnist_dir):
    """A 'checkpoint' state file with absolute paths still names the original directory after a copy."""
    (tmp_path / "original").mkdir()
    original = save_autoencoder_checkpoint(tmp_path / "original")
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in os.listdir(tmp_path / "original"):
        (copy / name).write_bytes((tmp_path / "original" / name).read_bytes())
    result = run_cli("transfer_classify.py", f"--checkpoint_path={copy}", f"--train_dir={tmp_path / 'run'}",
                     "--num_labels=64", "--epochs=0", "--projector_images=0", data_dir=mnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in stderr_lines(result) if "outside the directory" in line]
    assert len(warnings) == 1 and f"--checkpoint_path={copy}: its 'checkpoint' file points at {original}" in warnings[0]
    assert f"from {original}" in result.stderr  # the restore report names the file really restored


def test_terminal_gets_one_live_line_per_epoch_then_its_summary(tmp_path, mnist_dir):
    """Run under a pseudo-terminal 100 columns wide: tqdm redraws each epoch's line in place."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = dict(os.environ, CAE_DATA_DIR=mnist_dir)
    process = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "pretrain_cae.py"),
                                "--max_train_examples=2560", "--epochs=2", "--batch_size=64", "--projector_images=0",
                                f"--train_dir={tmp_path / 'cae'}"], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=300) == 0
    text = b"".join(chunks).decode()
    shown = [raw.split("\r")[-1] for raw in text.replace("\r\n", "\n").split("\n")]  # what stays on screen
    bars = [line for line in shown if line.startswith("epoch 1/2:") or line.startswith("epoch 2/2:")]
    assert len(bars) == 2 and all("2.56k/2.56k" in bar and "img/s, loss" in bar for bar in bars), shown
    assert text.count("\repoch 1/2:") > 1  # redrawn in place
    summary = shown.index(bars[0]) + 1
    assert shown[summary].startswith("epoch 1: validation reconstruction loss"), shown
    assert not [line for line in shown if re.match(r"[IWEF]\d{4} ", line)]
