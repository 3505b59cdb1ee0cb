"""Rules the source keeps (issue 7, DESIGN.md section 7), checked from the files themselves:
small files and functions, and a training loop that knows nothing of what it trains."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "difflab"


def _sizes(root: Path):
    """(file, lines) of every module and (file, function, lines) of every function under root."""
    files, funcs = [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        files.append((path, len(text.splitlines())))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                funcs.append((path, node.name, node.end_lineno - node.lineno + 1))
    return files, funcs


def test_no_file_over_400_lines_and_no_function_over_60():
    files, funcs = _sizes(SRC)
    assert len(files) > 40
    assert [(str(p), n) for p, n in files if n > 400] == []
    assert [(str(p), f, n) for p, f, n in funcs if n > 60] == []


def test_the_checker_sees_long_functions(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n" + "    x = 1\n" * 70)
    _, funcs = _sizes(tmp_path)
    assert funcs == [(tmp_path / "m.py", "f", 71)]


def test_the_loop_does_not_know_images_labels_or_actions():
    text = (SRC / "train" / "loop.py").read_text()
    assert len(text.splitlines()) <= 300
    assert re.findall(r"image|label|action", text, flags=re.IGNORECASE) == []
