"""The README's Python examples run as a reader copies them, each on its own; the Korean README's are the same
code. Only their lengths are cut (10000 iterations of the book's loop take half a minute): each cut is named here
and must still find its text."""

import re
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHORTER = {
    "for i in range(10000):": "for i in range(50):", "iters=10_000": "iters=200",
    "TrainConfig(iters=2000)": "TrainConfig(iters=50)", "for i in range(100):": "for i in range(3):",
    'TrainConfig(net="simple-convnet", epochs=20)': 'TrainConfig(net="simple-convnet", filter_num=4, iters=20, train_size=500)',
    'TrainConfig(net="deep-convnet", epochs=20)': 'TrainConfig(net="deep-convnet", filter_num=2, iters=5, train_size=500)',
}


def examples(readme):
    return re.findall(r"^```python\n(.*?)^```$", (PROJECT / readme).read_text(encoding="utf-8"), re.S | re.M)


def code_only(example):
    return [line.split("#")[0].rstrip() for line in example.splitlines()]


def test_the_korean_readme_shows_the_same_code():
    assert [code_only(example) for example in examples("README.ko.md")] == list(map(code_only, examples("README.md")))


@pytest.mark.parametrize("number", range(len(examples("README.md"))))
def test_each_example_of_the_readme_runs_on_its_own(number, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a run it trains makes runs/
    monkeypatch.setenv("SGDLAB_DATA", str(data_dir))
    code = examples("README.md")[number]
    for long, short in SHORTER.items():
        code = code.replace(long, short)
    namespace = {"__name__": "__main__"}
    try:
        exec(compile(code, f"README.md example {number + 1}", "exec"), namespace)
    finally:
        if hasattr(namespace.get("lab"), "close"):  # a LiveLab's page
            namespace["lab"].close()


def test_every_cut_finds_its_text():
    text = "".join(examples("README.md"))
    assert [long for long in SHORTER if text.count(long) != 1] == []
