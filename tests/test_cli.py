"""The mpat-nb command line: generate, evaluate, clean one-line errors."""

import json

import pytest

from mpat_nb.cli import main


def test_generate_then_evaluate_ground_truth_against_itself(tmp_path, capsys):
    out = tmp_path / "clip"
    assert main(["generate", "--preset", "easy", "--seed", "3", "--frames", "5", "--size", "128x96", "--out", str(out)]) == 0
    annotations = sorted((out / "annotations").glob("*.json"))
    images = sorted((out / "images").glob("*/*.jpg"))
    assert len(annotations) == 1 and len(images) == 5
    totals = tmp_path / "totals.json"
    assert main(["evaluate", "--gt", str(annotations[0]), "--pred", str(out / "annotations"), "--json", str(totals)]) == 0
    printed = capsys.readouterr().out
    assert "Total" in printed and "MOTA" in printed
    data = json.loads(totals.read_text())
    assert data["total"]["mAP"] == pytest.approx(100.0)
    assert data["total"]["MOTA"] == pytest.approx(100.0)


def test_list_presets_names_mixed(capsys):
    assert main(["generate", "--list-presets"]) == 0
    assert "mixed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["generate", "--preset", "no_such_preset", "--out", "{tmp}/x"], "no_such_preset"),
        (["generate", "--frames", "0", "--out", "{tmp}/x"], "--frames"),
        (["evaluate", "--gt", "{tmp}/missing.json", "--pred", "{tmp}/missing.json"], "missing.json"),
        (["evaluate", "--gt", "{tmp}/bad.json", "--pred", "{tmp}/bad.json"], "bad.json"),
    ],
)
def test_bad_input_gives_one_line_error_and_status_2(tmp_path, capsys, argv, needle):
    (tmp_path / "bad.json").write_text("{not json")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "error" in err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").rglob("*.json"))


def test_bad_size_is_an_argparse_error():
    with pytest.raises(SystemExit) as info:
        main(["generate", "--size", "12y"])
    assert info.value.code == 2
