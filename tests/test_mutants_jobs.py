"""The jobs file of ``qa2 batch``, refused line by line: each problem exactly as a user reads it
(`make mutate` found most of these lines unpinned; docs/reliability.md, "Mutation testing").
Only ``qa2core.batch.jobs.load`` runs: no Dask, no cluster."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="qa2 batch needs the batch extra")

from qa2core.batch import jobs

CASES = {
    "shape": ('''
bogus = 1
[defaults]
packpath = "x"
[[job]]
command = "paint"
[[job]]
name = "n"
[[job]]
name = "dup"
command = "verify"
packpath = "out"
[[job]]
name = "dup"
command = "verify"
packpath = "out"
[[job]]
name = 7
command = "verify"
packpath = "out/Q"
[[job]]
command = "package"
packpath = "out/Z"
''', [
        "unknown table or key 'bogus' (the file holds [defaults] and [[job]] tables)",
        "[defaults]: key 'packpath': not an option of any command; valid: KNOWN",
        "job 1: key 'command': 'paint' is not one of package, stage, verify, tar",
        "job 2 (n): key 'command' missing (one of package, stage, verify, tar)",
        "job 5: key 'name': must be a non-empty string",
        "job 6: key 'origpath' missing (package needs origpath and packpath)",
        "job 4 (dup): same name as job 3 (dup); give each job its own name",
    ]),
    "nojobs": ('[defaults]\nmode = "copy"\n', ["no jobs: write one [[job]] table per run"]),
    "jobtable": ('[job]\ncommand = "verify"\n',
                 ["'job' must be an array of tables: write [[job]], not [job]"]),
    "defaults": ('defaults = 3\n[[job]]\ncommand = "verify"\npackpath = "out"\n',
                 ["[defaults] must be a table"]),
    "readers": ('''
[[job]]
command = "verify"
packpath = "out/R"
[[job]]
command = "verify"
packpath = "out/R"
[[job]]
command = "tar"
packpath = "out/R/"
''', [
        "job 2 (verify:out/R): same name as job 1 (verify:out/R); give each job its own name",
    ]),
    "overlap": ('''
[[job]]
command = "package"
origpath = "red"
packpath = "out/P"
[[job]]
command = "package"
origpath = "red"
packpath = "out/P/inner"
[[job]]
command = "package"
origpath = "out/P/src"
packpath = "out/Q"
[[job]]
command = "tar"
packpath = "out/Q"
out = "red"
[[job]]
command = "stage"
pipeline_root = "out/P/src"
staged_root = "out/P.qa2/x"
''', [
        "job 1 (package:out/P): key 'packpath': PACKPATH BASE/out/P holds the ORIGPATH of "
        "job 3 (package:out/Q) (BASE/out/P/src)",
        "job 1 (package:out/P): key 'packpath': PACKPATH BASE/out/P holds the ORIGPATH of "
        "job 5 (stage:out/P.qa2/x) (BASE/out/P/src)",
        "job 2 (package:out/P/inner): key 'packpath': BASE/out/P/inner lies inside the PACKPATH "
        "of job 1 (package:out/P)",
        "job 3 (package:out/Q) and job 4 (tar:out/Q): key 'packpath': both use PACKPATH "
        "BASE/out/Q; only one job may write a PACKPATH",
        "job 4 (tar:out/Q): key 'out': BASE/red lies inside the ORIGPATH of job 1 (package:out/P) "
        "(BASE/red); sources are never written to",
        "job 4 (tar:out/Q): key 'out': BASE/red lies inside the ORIGPATH of job 2 "
        "(package:out/P/inner) (BASE/red); sources are never written to",
        "job 5 (stage:out/P.qa2/x): key 'staged_root': BASE/out/P.qa2/x lies inside the PACKPATH "
        "of job 1 (package:out/P)",
    ]),
    "after": ('''
[[job]]
name = "a"
command = "verify"
packpath = "out/R"
after = 3
[[job]]
name = "b"
command = "verify"
packpath = "out/Q"
after = ["nobody", "b", "a"]
[[job]]
name = "c"
command = "verify"
packpath = "out/Q"
after = "d"
[[job]]
name = "d"
command = "verify"
packpath = "out/Q"
after = ["e"]
[[job]]
name = "e"
command = "verify"
packpath = "out/Q"
after = ["c"]
[[job]]
command = "verify"
packpath = "out/R"
after = [1]
''', [
        "job 1 (a): key 'after': must be a list of job names, not 3",
        "job 2 (b): key 'after': no job named 'nobody'",
        "job 2 (b): key 'after': a job cannot follow itself",
        "job 6: key 'after': must be a list of job names, not [1]",
        "job 3 (c): key 'after': a cycle: it follows itself by way of d, e",
        "job 4 (d): key 'after': a cycle: it follows itself by way of c, e",
        "job 5 (e): key 'after': a cycle: it follows itself by way of c, d",
    ]),
}


@pytest.fixture
def base(tmp_path: Path) -> Path:
    for d in ("red", "out/P/src", "out/Q", "out/R", "out/P.qa2"):
        (tmp_path / d).mkdir(parents=True)
    for f in ("red/scriptForPI.py", "README.txt", "afile"):
        (tmp_path / f).write_text("x")
    return tmp_path


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_problem_of_a_jobs_file_is_one_exact_line(base, case):
    text, want = CASES[case]
    (base / f"{case}.toml").write_text(text)
    with pytest.raises(jobs.JobsFileError) as exc:
        jobs.load(base / f"{case}.toml")
    got = [line.replace(str(base), "BASE") for line in exc.value.lines]
    got = [line.split("valid: ")[0] + "valid: KNOWN" if "not an option of any command" in line
           else line for line in got]

    def head(line: str) -> str:  # what follows "both use PACKPATH P" is being reworded
        return re.sub(r"(both use PACKPATH \S+?)[;,] .*", r"\1", line)

    assert [head(g) for g in got] == [head(f"{case}.toml: {line}") for line in want]
    assert str(exc.value) == f"{base / case}.toml: {len(want)} problem(s) in the jobs file"
    assert exc.value.exit_code == 2


def test_defaults_name_the_options_they_may_hold(base):
    (base / "d.toml").write_text('[defaults]\npackpath = "x"\n[[job]]\ncommand = "verify"\n'
                                 'packpath = "out"\n')
    with pytest.raises(jobs.JobsFileError) as exc:
        jobs.load(base / "d.toml")
    (line,) = exc.value.lines
    valid = line.split("valid: ")[1].split(", ")
    assert valid == sorted(valid) and {"mode", "style", "ous_uids", "out"} <= set(valid)
    assert not {"origpath", "packpath", "pipeline_root", "staged_root"} & set(valid)


def test_a_bad_value_is_named_by_job_key_and_origin(base):
    (base / "v.toml").write_text('[defaults]\nmode = "paper"\n[[job]]\ncommand = "package"\n'
                                 'origpath = "red"\npackpath = "out/P"\n[[job]]\nname = "x"\n'
                                 'command = "package"\norigpath = "red"\npackpath = "out/P2"\n'
                                 'mode = "paper"\n')
    with pytest.raises(jobs.JobsFileError) as exc:
        jobs.load(base / "v.toml")
    first, second = exc.value.lines
    assert first.startswith("v.toml: job 1: key 'mode' (from [defaults]): ") and "paper" in first
    assert second.startswith("v.toml: job 2 (x): key 'mode': ") and "paper" in second


def test_a_missing_or_unreadable_jobs_file_is_named(base):
    with pytest.raises(jobs.JobsFileError) as exc:
        jobs.load(base / "none.toml")
    assert str(exc.value) == f"{base / 'none.toml'}: jobs file does not exist"
    (base / "bad.toml").write_text("[[job]\n")
    with pytest.raises(jobs.JobsFileError) as exc:
        jobs.load(base / "bad.toml")
    assert str(exc.value).startswith(f"{base / 'bad.toml'}: not a readable TOML jobs file: ")


def test_a_good_jobs_file_gives_each_job_its_paths_and_identity(base, monkeypatch):
    (base / "jobs.toml").write_text('''
[defaults]
mode = "copy"
jobs = 2
[[job]]
name = "first one"
command = "package"
origpath = "red"
packpath = "out/P"
piscript = "red"
[[job]]
command = "tar"
packpath = "out/Q"
max_size = 1.5
[[job]]
command = "verify"
packpath = "out/R"
''')
    campaign = jobs.load(base / "jobs.toml")
    assert campaign.ledger == base / "jobs.ledger.jsonl"
    a, b, c = campaign.jobs
    assert (a.number, a.id, a.label, a.writes) == (1, "first one", "job 1 (first one)", True)
    assert (b.id, b.label, b.writes, c.id, c.writes) == ("tar:out/Q", "job 2 (tar:out/Q)", True,
                                                         "verify:out/R", False)
    assert (a.source, a.target, b.source, b.target) == (base / "red", base / "out/P", None,
                                                        base / "out/Q")
    assert "mode" not in b.args  # defaults only where they apply
    assert a.fs == jobs.mount_point(base / "out/P") and os.path.ismount(a.fs)
    # the spec hash: what the job writes, not how fast
    (base / "jobs.toml").write_text((base / "jobs.toml").read_text().replace("jobs = 2",
                                                                              "jobs = 3"))
    assert jobs.load(base / "jobs.toml").jobs[0].spec_hash == a.spec_hash
    (base / "jobs.toml").write_text((base / "jobs.toml").read_text().replace('"copy"', '"hard"'))
    assert jobs.load(base / "jobs.toml").jobs[0].spec_hash != a.spec_hash


ORDERED = '''
[[job]]
name = "w"
command = "package"
origpath = "red"
packpath = "out/N"
[[job]]
name = "v"
command = "verify"
packpath = "out/N"
after = "w"
[[job]]
name = "t"
command = "tar"
packpath = "out/N"
after = ["v"]
'''


def test_readers_after_the_writer_follow_it_directly_or_by_way_of_another(base):
    (base / "out/N").mkdir()
    (base / "j.toml").write_text(ORDERED)
    w, v, t = jobs.load(base / "j.toml").jobs
    assert (w.after, v.after, t.after) == ((), ("w",), ("v",))  # a string is a list of one
    # without `after`, the tar reads a PACKPATH that the package job is writing
    (base / "j.toml").write_text(ORDERED.replace('after = ["v"]', ""))
    with pytest.raises(jobs.JobsFileError) as exc:
        jobs.load(base / "j.toml")
    assert [line.split(";")[0].split(", one writing")[0] for line in exc.value.lines] == [
        f"j.toml: job 1 (w) and job 3 (t): key 'packpath': both use PACKPATH {base}/out/N"]


def test_an_input_a_followed_job_will_make_is_checked_where_the_job_runs(base):
    (base / "raw").mkdir()
    staged = '''
[[job]]
name = "s"
command = "stage"
pipeline_root = "raw"
staged_root = "out/S"
[[job]]
name = "p"
command = "package"
origpath = "out/S/x"
packpath = "out/T"
after = ["s"]
'''
    (base / "j.toml").write_text(staged)
    s, p = jobs.load(base / "j.toml").jobs
    assert (p.after, p.source, s.target) == (("s",), base / "out/S/x", base / "out/S")
    (base / "j.toml").write_text(staged.replace('after = ["s"]', ""))
    with pytest.raises(jobs.JobsFileError) as exc:
        jobs.load(base / "j.toml")
    assert list(exc.value.lines) == [f"j.toml: job 2 (p): key 'origpath': {base}/out/S/x: ORIGPATH does "
                               "not exist"]


def test_readers_writers_and_tars_that_would_collide_are_named(base):
    for d in ("out/N", "out/R/inside", "out/N/x"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "ov.toml").write_text('''
[[job]]
name = "w"
command = "package"
origpath = "red"
packpath = "out/N"
[[job]]
name = "v"
command = "verify"
packpath = "out/N"
[[job]]
name = "t1"
command = "tar"
packpath = "out/Q"
out = "out/R"
[[job]]
name = "t2"
command = "tar"
packpath = "out/Q"
out = "out/R"
[[job]]
name = "t3"
command = "tar"
packpath = "out/R"
out = "out/R/inside"
[[job]]
name = "t4"
command = "tar"
packpath = "out/Q"
out = "out/N/x"
''')
    with pytest.raises(jobs.JobsFileError) as exc:
        jobs.load(base / "ov.toml")
    assert [line.replace(str(base), "BASE") for line in exc.value.lines] == [
        "ov.toml: job 1 (w) and job 2 (v): key 'packpath': both use PACKPATH BASE/out/N, one "
        "writing it: give the reader after = [the writer's name], or use two jobs files",
        "ov.toml: job 3 (t1) and job 4 (t2): key 'out': both write the tars of BASE/out/Q into "
        "BASE/out/R; give one another out",
        "ov.toml: job 5 (t3): key 'out': BASE/out/R/inside lies inside the package it archives",
        "ov.toml: job 6 (t4): key 'out': BASE/out/N/x lies inside the PACKPATH of job 1 (w)",
        "ov.toml: job 6 (t4): key 'out': BASE/out/N/x lies inside the PACKPATH of job 2 (v)",
    ]


def test_a_job_may_write_into_the_origpath_of_a_job_that_follows_it(base):
    (base / "out/M").mkdir(parents=True)
    (base / "out/M/scriptForPI.py").write_text("x")
    text = '''
[[job]]
name = "a"
command = "package"
origpath = "red"
packpath = "out/M/inner"
[[job]]
name = "b"
command = "package"
origpath = "out/M"
packpath = "out/Z"
after = ["a"]
'''
    (base / "j.toml").write_text(text)
    assert [j.id for j in jobs.load(base / "j.toml").jobs] == ["a", "b"]
    (base / "j.toml").write_text(text.replace('after = ["a"]', ""))
    with pytest.raises(jobs.JobsFileError) as exc:
        jobs.load(base / "j.toml")
    assert list(exc.value.lines) == [
        f"j.toml: job 1 (a): key 'packpath': {base}/out/M/inner lies inside the ORIGPATH of job 2 "
        f"(b) ({base}/out/M); sources are never written to"]


def test_a_tar_job_counts_its_out_file_system(base):
    """The per-file-system limit counts a tar where it writes its tars (--out)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.path.ismount(shm) and os.access(shm, os.W_OK)):
        pytest.skip("needs a writable /dev/shm mount")
    import tempfile

    with tempfile.TemporaryDirectory(dir=shm) as out:
        (base / "t.toml").write_text(f'[[job]]\ncommand = "tar"\npackpath = "out/Q"\nout = "{out}"\n'
                                     '[[job]]\ncommand = "verify"\npackpath = "out/R"\n')
        tar, ver = jobs.load(base / "t.toml").jobs
        assert tar.fs == "/dev/shm" and ver.fs == jobs.mount_point(base / "out/R") != "/dev/shm"


def test_jobs_that_are_no_table_unknown_keys_and_a_jobs_file_inside_a_packpath(base):
    (base / "mixed.toml").write_text('job = [{command = "verify", packpath = "out/R"}, 5, '
                                     '{command = "verify", packpath = "out/Q", colour = "red"}]\n')
    with pytest.raises(jobs.JobsFileError) as exc:
        jobs.load(base / "mixed.toml")
    assert list(exc.value.lines) == [
        "mixed.toml: job 2: must be a table ([[job]])",
        "mixed.toml: job 3: key 'colour': unknown for verify; valid: name, command, packpath, "
        "fast, complete, for_ingestion, style, jobs"]
    inside = base / "out/P/jobs.toml"
    inside.write_text('[[job]]\ncommand = "package"\norigpath = "../../red"\npackpath = "../P"\n')
    with pytest.raises(jobs.JobsFileError) as exc:
        jobs.load(inside)
    assert list(exc.value.lines) == [
        f"jobs.toml: job 1 (package:../P): key 'packpath': the jobs file lies inside its PACKPATH "
        f"{base}/out/P: the ledger and logs beside it would be written into the package; keep the "
        "jobs file elsewhere"]


def test_only_inputs_below_what_a_followed_job_makes_wait_for_it(base):
    (base / "raw").mkdir()
    (base / "j.toml").write_text('''
[[job]]
name = "s"
command = "stage"
pipeline_root = "raw"
staged_root = "out/S"
[[job]]
name = "p"
command = "package"
origpath = "elsewhere/x"
packpath = "out/T"
after = ["s"]
[[job]]
name = "q"
command = "package"
origpath = ""
packpath = "out/U"
after = ["s"]
''')
    with pytest.raises(jobs.JobsFileError) as exc:
        jobs.load(base / "j.toml")
    assert list(exc.value.lines) == [
        f"j.toml: job 2 (p): key 'origpath': {base}/elsewhere/x: ORIGPATH does not exist",
        "j.toml: job 3 (q): key 'origpath': ORIGPATH: is empty"]


def test_the_spec_hash_ignores_key_order_and_a_job_knows_if_it_was_named(base):
    one = '[[job]]\ncommand = "verify"\npackpath = "out/R"\nfast = true\nstyle = "cycle3-nopipe"\n'
    two = '[[job]]\nstyle = "cycle3-nopipe"\nfast = true\npackpath = "out/R"\ncommand = "verify"\n'
    (base / "a.toml").write_text(one)
    (base / "b.toml").write_text(two + 'name = "n"\n')
    (a,), (b,) = jobs.load(base / "a.toml").jobs, jobs.load(base / "b.toml").jobs
    assert a.spec_hash == b.spec_hash and len(a.spec_hash) == 16
    assert int(a.spec_hash, 16) >= 0  # hex
    assert (a.named, b.named) == (False, True)
