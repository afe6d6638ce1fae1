"""Documentation that cannot rot: every command line in README.md and docs/*.md uses only flags its command has,
every relative link points at a file that exists, README stays a five-minute read; and the console shows a run's
final result once, with checkpoint lines in log.txt only."""

import glob
import os
import re
import subprocess
import sys

from conftest import REPO, run_cli, stderr_lines

DOCS = [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
CONSOLE_SCRIPTS = {"cae-pretrain": "pretrain_cae", "cae-transfer": "transfer_classify", "cae-export":
                   "export_savedmodel", "cae-predict": "predict", "cae-inspect": "inspect_checkpoint",
                   "cae-benchmark": "benchmark", "cae-extract-features": "extract_features",
                   "cae-experiment": "experiment"}
COMMAND = re.compile(r"(?:python (?:scripts/(\w+)\.py|-m (cae\.measure\.\w+))|(cae-[a-z-]+))((?:[ \t]+[^\s`|&;#]+)*)")
FLAG = re.compile(r"(?<![\w-])--(\[no\])?([a-z][a-z0-9_]*)")


def documented_commands():
    """(file, command, [flags]) for every command line: code blocks (continuation lines joined) and inline code."""
    found = []
    for path in DOCS:
        text = open(path, encoding="utf-8").read().replace("\\\n", " ")
        spans = re.findall(r"```(?:bash)?\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text)
        for span in spans:
            for match in COMMAND.finditer(span):
                script, module, console = match.group(1), match.group(2), match.group(3)
                command = script or module or CONSOLE_SCRIPTS.get(console, console)
                found.append((os.path.relpath(path, REPO), command,
                              [name for _, name in FLAG.findall(match.group(4))]))
    return found


def command_flags(command):
    """The flags a command accepts, read from its own --helpfull (absl) or --help (argparse)."""
    target = ["-m", command] if command.startswith("cae.") else [os.path.join(REPO, "scripts", f"{command}.py")]
    result = subprocess.run([sys.executable, *target, "--helpfull"], capture_output=True, text=True, timeout=300,
                            cwd=REPO)
    if "unrecognized arguments" in result.stderr:  # argparse
        result = subprocess.run([sys.executable, *target, "--help"], capture_output=True, text=True, timeout=300,
                                cwd=REPO)
    names = set()
    for negatable, name in FLAG.findall(result.stdout + result.stderr):
        names.add(name)
        if negatable:
            names.add(f"no{name}")
    return names


def test_every_documented_flag_is_a_flag_of_its_command():
    commands = documented_commands()
    assert len(commands) > 40 and {c for _, c, _ in commands} >= {"pretrain_cae", "transfer_classify", "predict"}
    known = {command: command_flags(command) for command in sorted({c for _, c, _ in commands})}
    for command, names in known.items():
        assert len(names) >= 3, f"{command}: no flags read from its help"
    unknown = sorted({f"{path}: {command} --{flag}" for path, command, flags in commands for flag in flags
                      if flag not in known[command]})
    assert not unknown, "documented flags the command does not have:\n" + "\n".join(unknown)


def test_flag_check_catches_a_renamed_flag():
    """The check above is not vacuous: a flag that no command has is reported."""
    assert "not_a_flag" not in command_flags("transfer_classify")
    assert "semi_supervised" in command_flags("transfer_classify")
    assert "nocache_features" in command_flags("transfer_classify")


def test_relative_links_point_at_files_and_readme_is_short():
    for path in DOCS:
        text = re.sub(r"```.*?```|`[^`\n]*`", "", open(path, encoding="utf-8").read(), flags=re.S)  # prose only
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) + re.findall(r"(?m)^\[\w+\]: ([^#\s]+)", text):
            if not re.match(r"\w+://", target):
                assert os.path.exists(os.path.join(os.path.dirname(path), target)), f"{path}: link to {target}"
    readme = open(DOCS[0], encoding="utf-8").read().splitlines()
    assert len(readme) <= 200
    opening = readme.index("```", 3)  # the opening block's two commands are one line each, however long
    long_lines = [line for line in readme[opening:] if len(line) > 120]
    assert not long_lines, long_lines


def test_final_result_once_on_the_console_and_checkpoint_lines_in_log_txt(tmp_path, mnist_dir):
    train_dir = tmp_path / "run"
    result = run_cli("transfer_classify.py", "--num_labels=256", "--epochs=2", "--batch_size=64",
                     "--projector_images=0", f"--train_dir={train_dir}", data_dir=mnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout.splitlines() + stderr_lines(result)
    assert len([line for line in console if "test accuracy" in line]) == 1, console
    assert not [line for line in console if line.startswith("saved ")], console
    log = (train_dir / "log.txt").read_text()
    assert len(re.findall(r"saved .*model\.ckpt-\d+", log)) == 2 and "test accuracy: " in log
