"""`sgdlab ARGV` run in-process by the command-line tests."""

from sgdlab.cli import main


def run(capsys, *argv):
    """`sgdlab ARGV` in-process: (exit code, stdout, stderr), whether main returned or exited."""
    try:
        code = main([str(arg) for arg in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
