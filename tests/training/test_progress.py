"""The progress display: a bar on a terminal, plain lines otherwise, and the projected wall time."""

import io

from slimkit.training.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _feed(progress, steps, per_call):
    for step in range(per_call, steps + 1, per_call):
        progress.update(step, loss=1.0 / step, accuracy=0.5, learning_rate=0.1)


def test_plain_lines_every_n_steps_and_one_projection():
    out = io.StringIO()
    progress = Progress(0, 200, batch_size=100, log_every_n_steps=50, stream=out)
    _feed(progress, 200, per_call=10)
    lines = out.getvalue().splitlines()
    steps = [line.split()[1] for line in lines if line.startswith("step ")]
    assert steps == ["50/200", "100/200", "150/200", "200/200"]
    projections = [line for line in lines if line.startswith("projected time: ")]
    assert len(projections) == 1 and "for the remaining" in projections[0]
    assert "loss 0.0050  accuracy 0.500" in lines[-1] and "examples/s" in lines[-1]
    assert "\r" not in out.getvalue()


def test_bar_on_a_terminal_with_messages_above_it():
    out = _Terminal()
    progress = Progress(100, 300, batch_size=32, log_every_n_steps=50, stream=out)
    _feed(progress, 300, per_call=20)
    progress.message("saved runs/x/ckpt-300")
    progress.close()
    text = out.getvalue()
    last_bar = text.rsplit("\r\033[K", 2)[-2]
    assert last_bar.startswith("step 300/300 [") and "100.0%" in last_bar
    assert "loss 0.0033" in last_bar and "ex/s" in last_bar and "ETA 0:00:00" in last_bar
    assert text.endswith("saved runs/x/ckpt-300\n")


def test_disabled_progress_prints_nothing():
    out = io.StringIO()
    progress = Progress(0, 100, batch_size=10, stream=out, enabled=False)
    _feed(progress, 100, per_call=10)
    progress.message("hidden")
    assert out.getvalue() == ""


def test_a_run_too_short_to_measure_says_so_instead_of_zero():
    out = io.StringIO()
    progress = Progress(0, 20, batch_size=10, log_every_n_steps=10, stream=out)
    _feed(progress, 20, per_call=10)  # 2 calls: fewer than the warm-up, no steady-state speed
    lines = out.getvalue().splitlines()
    assert lines == ["step 10/20  loss 0.1000  accuracy 0.500  ? examples/s  lr 0.1  ETA ?",
                     "step 20/20  loss 0.0500  accuracy 0.500  ? examples/s  lr 0.1  ETA 0:00:00"]
