"""Run directories: a collision between runs that chose the same version number."""

from nst.run import run_dirs


def test_runs_that_pick_the_same_number_still_get_their_own_directories(tmp_path, monkeypatch):
    # Each run sees the folder as it was before any of them created its directory.
    monkeypatch.setattr(run_dirs, "versions", lambda root: [])
    made = [run_dirs.create_run_dir(tmp_path / "logs" / "starry")[0] for _ in range(3)]
    assert [d.name for d in made] == ["version_0", "version_1", "version_2"]


def test_undoing_a_failed_start_removes_only_what_it_made(tmp_path):
    (tmp_path / "logs").mkdir()
    first = run_dirs.create_run_dir(tmp_path / "logs" / "starry")
    second = run_dirs.create_run_dir(tmp_path / "logs" / "starry")
    assert first[1:] == [tmp_path / "logs" / "starry"]  # logs/ was there already
    assert run_dirs.remove_if_unfinished(second)
    assert first[0].is_dir()  # starry/ still holds the other run, so it stays
    (first[0] / "checkpoints").mkdir()
    (first[0] / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert not run_dirs.remove_if_unfinished(first)  # a run with a checkpoint is never removed
    (first[0] / "checkpoints" / "last.ckpt").unlink()
    assert run_dirs.remove_if_unfinished(first)
    assert [p.name for p in tmp_path.iterdir()] == ["logs"]  # the user's logs/ stays
