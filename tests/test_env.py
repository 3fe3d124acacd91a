"""course_utils.env: setup(), get_device(), seeding, threads, and no import side effects."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from course_utils import env


def test_import_has_no_side_effects():
    code = (
        "import torch; seed = torch.initial_seed(); threads = torch.get_num_threads(); "
        "import course_utils, course_utils.checks, course_utils.data, course_utils.tools.pipeline, course_utils.tools.cli; "
        "assert torch.initial_seed() == seed, 'seed changed'; "
        "assert torch.get_num_threads() == threads, 'threads changed'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_setup_seeds_every_generator(capsys):
    env.setup(seed=7)
    first = (torch.rand(3), np.random.rand(3))
    env.setup(seed=7)
    second = (torch.rand(3), np.random.rand(3))
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    env.setup(seed=8)
    assert not torch.equal(first[0], torch.rand(3))


def test_setup_prints_one_summary_line_and_returns_the_device(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    device = env.setup()
    lines = capsys.readouterr().out.splitlines()
    assert device == torch.device("cpu")
    assert len(lines) == 1
    assert "torch 2.14.1" in lines[0] and "device cpu" in lines[0] and "threads 1" in lines[0]


def test_setup_is_quiet_on_request(capsys):
    env.setup(quiet=True)
    assert capsys.readouterr().out == ""


def test_setup_sets_deterministic_flags():
    env.setup(quiet=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize("value, expected", [("cpu", "cpu"), ("CPU", "cpu"), ("auto", "cpu" if not torch.cuda.is_available() else "cuda")])
def test_get_device_reads_course_device(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_DEVICE", value)
    if expected == "cpu" and value == "auto" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        expected = "mps"
    assert env.get_device().type == expected


def test_get_device_rejects_unknown_names(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="tpu"):
        env.get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_missing_gpu_says_what_to_do(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    with pytest.raises(ValueError, match="course-cpu"):
        env.get_device()


def test_thread_count_comes_from_course_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("COURSE_THREADS", "2")
        assert env.set_threads() == 2 and torch.get_num_threads() == 2
        monkeypatch.delenv("COURSE_THREADS")
        assert env.set_threads() == env.DEFAULT_THREADS == 1
        monkeypatch.setenv("COURSE_THREADS", "0")
        with pytest.raises(ValueError):
            env.set_threads()
    finally:
        torch.set_num_threads(before)


def test_kernel_environment_is_not_leaking_into_tests():
    # The test process itself must not depend on a kernel's COURSE_DEVICE.
    assert os.environ.get("COURSE_DEVICE") in (None, "cpu", "auto")


def test_quiet_stderr_silences_python_and_c_level_writes_and_restores_both(capfd):
    import os
    import sys

    from course_utils.env import quiet_stderr

    before = sys.stderr
    with quiet_stderr():
        print("python-level noise", file=sys.stderr)
        os.write(2, b"c-level noise\n")
    print("after", file=sys.stderr)
    os.write(2, b"fd after\n")
    err = capfd.readouterr().err
    assert "noise" not in err
    assert "after" in err and "fd after" in err
    assert sys.stderr is before


def test_quiet_stderr_restores_stderr_when_the_block_raises(capfd):
    import os

    import pytest

    from course_utils.env import quiet_stderr

    with pytest.raises(RuntimeError, match="boom"):
        with quiet_stderr():
            os.write(2, b"hidden\n")
            raise RuntimeError("boom")
    os.write(2, b"visible\n")
    err = capfd.readouterr().err
    assert "hidden" not in err and "visible" in err


def test_blas_threads_follow_course_blas_threads_when_set(monkeypatch):
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("COURSE_THREADS", "2")
        monkeypatch.setenv("COURSE_BLAS_THREADS", "1")
        assert env.set_threads() == 2 and torch.get_num_threads() == 2
        assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} == {1}
        monkeypatch.setenv("COURSE_BLAS_THREADS", "0")
        with pytest.raises(ValueError):
            env.set_threads()
    finally:
        monkeypatch.delenv("COURSE_BLAS_THREADS")
        monkeypatch.delenv("COURSE_THREADS")
        env.set_threads(1)
        torch.set_num_threads(before)


class _EchoApp:
    """A stand-in command-line application: keeps its argument list, main() returns it."""

    def __init__(self, sys_argv):
        self.sys_argv = sys_argv

    def main(self):
        return {"argv": self.sys_argv}


def test_run_app_imports_the_class_by_its_dotted_path_and_passes_every_argument_as_a_string(tmp_path):
    result = env.run_app(f"{__name__}._EchoApp", "--epochs", 3, tmp_path)
    assert result == {"argv": ["--epochs", "3", str(tmp_path)]}
    with pytest.raises(ValueError, match="dotted path"):
        env.run_app("LunaTrainingApp")
    with pytest.raises(AttributeError):
        env.run_app(f"{__name__}._NoSuchApp")
