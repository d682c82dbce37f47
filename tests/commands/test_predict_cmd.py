"""slimkit predict: a trained model reads photos and scans of MNIST's test digits as it reads the
digits themselves; image-folder models see their validation preprocessing; bad files are one
error line each and the rest is still predicted."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from slimkit.cli import main
from slimkit.data.registry import load_arrays
from slimkit.prediction import predict, predict_files
from slimkit.runs import load_run
from test_digits import render

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def photos(tmp_path_factory, mnist_dir):
    """100 MNIST test digits as users' pictures: JPEG photos, PNG/BMP/GIF scans, either polarity."""
    test = load_arrays("mnist", str(mnist_dir), validation_size=0).test
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(100):
        fmt = ("JPEG", "JPEG", "PNG", "BMP", "GIF")[i % 5]
        image = Image.fromarray(render(test.images[i, ..., 0], rng, dark_ink=i % 4 != 3,
                                       colour=fmt in ("JPEG", "PNG")))
        paths.append(folder / f"{i:03d}.{fmt.lower()}")
        image.save(paths[-1], format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return paths, test.images[:100], test.labels[:100]


def test_photos_of_digits_are_read_as_the_digits_themselves(deep_run, photos):
    paths, originals, labels = photos
    run = load_run(deep_run[0])
    on_originals = predict(run, originals)["classes"]
    answers = list(predict_files(run, paths, top_k=1))
    on_photos = np.array([int(a["top"][0]["class"]) for a in answers])
    assert (on_photos == on_originals).mean() >= 0.95
    assert (on_photos == labels).mean() >= (on_originals == labels).mean() - 0.03


def test_predict_lines_json_top_k_and_saved_inputs(deep_run, photos, tmp_path, capsys):
    paths = photos[0][:3]
    saved = tmp_path / "seen"
    assert main(["predict", str(deep_run[0]), *map(str, paths), "--top-k", "2",
                 "--save-preprocessed", str(saved)]) == 0
    lines = capsys.readouterr().out.splitlines()
    run = load_run(deep_run[0])
    seen = [np.asarray(Image.open(saved / f"{p.stem}.png"), np.float32) / 255 for p in paths]
    probabilities = predict(run, np.stack(seen))["probabilities"]
    for line, path, p in zip(lines, paths, probabilities):
        first, second = np.argsort(-p)[:2]
        # (the PNG holds the input rounded to 8 bits: the same answers, probabilities to ~1e-3)
        assert line.startswith(f"{path}: {first} (0.") and f"  {second} (0." in line
        assert abs(float(line.split("(")[1].split(")")[0]) - p[first]) < 5e-3
    assert len(lines) == 3 and all(image.shape == (28, 28) for image in seen)

    assert main(["predict", str(deep_run[0]), str(paths[0]), "--json", "--top-k", "10"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["file"] == str(paths[0]) and len(answer["top"]) == 10
    assert sorted(t["class"] for t in answer["top"]) == list("0123456789")
    assert sum(t["probability"] for t in answer["top"]) == pytest.approx(1, abs=1e-5)
    assert [t["probability"] for t in answer["top"]] == sorted(
        (t["probability"] for t in answer["top"]), reverse=True)


def test_bad_files_get_their_own_error_line_and_the_others_are_predicted(deep_run, photos,
                                                                         tmp_path, capsys):
    good = photos[0][0]
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[:2000])
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 220).save(blank)
    missing = tmp_path / "missing.png"
    files = [text, good, truncated, missing, blank]
    assert main(["predict", str(deep_run[0]), *map(str, files)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith(f"{good}: ")
    assert len(captured.out.splitlines()) == 1
    errors = captured.err.splitlines()
    assert errors[0] == (f"slimkit predict: error: {text}: not an image (expected a PNG, JPEG, "
                         "BMP or GIF file)")
    assert re.fullmatch(rf"slimkit predict: error: {truncated}: truncated or corrupt image data "
                        r"\(image file is truncated \(\d+ bytes not processed\)\)", errors[1])
    assert errors[2] == (f"slimkit predict: error: {missing}: cannot read it: No such file or "
                         "directory")
    assert errors[3].startswith(f"slimkit predict: error: {blank}: No digit found: nothing in the "
                                "picture stands out from the paper")
    assert len(errors) == 4

    assert main(["predict", str(deep_run[0]), str(missing), str(good), "--json"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"file": str(missing), "error": "cannot read it: No such file or directory"}
    assert lines[1]["file"] == str(good) and len(lines[1]["top"]) == 3


def test_an_image_folder_model_sees_its_validation_preprocessing(alexnet_run, shapes_folder):
    run = load_run(alexnet_run[0])
    data = run.data()
    images, _ = next(iter(data.eval_batches("validation", 100)))
    from slimkit.data.image_folder import ImageFolder

    folder = ImageFolder(shapes_folder, image_size=64)
    answers = list(predict_files(run, folder.val_files, top_k=3))
    expected = predict(run, np.asarray(images))["probabilities"]
    assert len(answers) == len(folder.val_files) == len(expected)
    for answer, p in zip(answers, expected):
        assert [t["class"] for t in answer["top"]] == [run.class_names[c] for c in np.argsort(-p)]
        np.testing.assert_allclose([t["probability"] for t in answer["top"]], np.sort(p)[::-1],
                                   rtol=1e-5, atol=1e-7)


def test_predict_in_python_takes_arrays(softmax_run):
    run = load_run(softmax_run[0])
    test_images = np.zeros((2, 28, 28), np.uint8)
    result = predict(run, test_images)
    assert result["probabilities"].shape == (2, 10) and result["classes"].dtype == np.int64
    np.testing.assert_allclose(result["probabilities"].sum(1), 1, rtol=1e-6)
    assert list(result["class_names"]) == [str(c) for c in result["classes"]]
    with pytest.raises(ValueError, match=r"Expected images of shape \(N, 28, 28, 1\) for "
                                         r"softmax_regression as trained in .*\. Received shape "
                                         r"\(2, 32, 32, 3\)\."):
        predict(run, np.zeros((2, 32, 32, 3), np.float32))


def test_a_folder_argument_and_bad_files_for_an_image_folder_model(alexnet_run, shapes_folder,
                                                                   tmp_path, capsys):
    import shutil

    folder = shutil.copytree(shapes_folder / "disc", tmp_path / "mine")
    (folder / "notes.txt").write_text("not an image: skipped, it has no image extension")
    (folder / "fake.png").write_text("not an image either, but named like one")
    data = (folder / "0.png").read_bytes()
    (folder / "sub").mkdir()
    (folder / "sub" / "cut.png").write_bytes(data[:len(data) // 2])
    assert main(["predict", str(alexnet_run[0]), str(folder), "--json", "--top-k", "1"]) == 1
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["file"] for a in answers] == [str(folder / f"{i}.png") for i in range(8)] + [
        str(folder / "fake.png"), str(folder / "sub" / "cut.png")]
    assert all(a["top"][0]["class"] in ("bar", "cross", "disc") for a in answers[:8])
    assert answers[8]["error"] == "not an image (expected a PNG, JPEG, BMP or GIF file)"
    assert re.fullmatch(r"truncated or corrupt image data \(Invalid PNG data, size \d+\)",
                        answers[9]["error"])


def test_a_save_preprocessed_write_fault_is_one_line(deep_run, photos, tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the folder should be")
    assert main(["predict", str(deep_run[0]), str(photos[0][0]), "--save-preprocessed",
                 str(blocker)]) == 2
    out = blocker / f"{photos[0][0].stem}.png"
    assert capsys.readouterr().err == (
        f"slimkit predict: error: Cannot write {out}: {blocker} is a file, not a folder. Expected "
        "a folder this user can write to, with room for the output: free space, or choose "
        "another --save-preprocessed folder.\n")
