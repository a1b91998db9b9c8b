import subprocess
import sys

from kanva.cli import main


def test_help_lists_nothing_heavy():
    # `kanva --help` must not import torch: start-up stays fast.
    code = "import sys, kanva.cli; kanva.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 1
    assert "usage: kanva" in capsys.readouterr().out
