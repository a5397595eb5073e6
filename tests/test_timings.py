"""`adjoint-meta timings`: the jobs' own accounting wins over Snakemake's samples; totals and the critical path."""
from pathlib import Path

from adjoint_meta import cli, config, paths, timings, usage

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(root: Path, step: str, name: str, wall: float, rss: float, cpu: float) -> None:
    p = root / paths.BENCHMARK.format(step=step, name=name)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(HEADER + f"{wall}\t0:00:{int(wall):02d}\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")


def test_usage_line_round_trip(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("2026-01-01 00:00:00 INFO something\n")
    assert usage.read(log) is None
    # the line holds what the process had used when it was written: bounded by readings taken
    # just before and after, whatever the host's speed or the tests run before this one
    before = usage.measure()
    usage.append_to(log)
    after = usage.measure()
    cpu, peak = usage.read(log)
    assert round(before[0], 2) - 0.01 <= cpu <= round(after[0], 2) + 0.01
    assert round(before[1], 1) - 0.1 <= peak <= round(after[1], 1) + 0.1
    assert usage.read(tmp_path / "missing.log") is None
    usage.append_to(tmp_path / "no" / "such" / "dir.log")  # an unwritable log never fails a finished job


def test_log_figures_replace_samples_and_totals_show_both(tmp_path):
    params = config.load(Path(__file__).with_name("params.test.yaml"))
    cell = config.cells(params)[0].as_dict()
    name = paths.cell_name(cell)
    _bench(tmp_path, "train", name, 29.1, 400.0, 14.5)
    _bench(tmp_path, "evaluate", name, 3.0, 300.0, 2.0)
    log = tmp_path / paths.LOG.format(step="train", name=name)
    log.parent.mkdir(parents=True)
    log.write_text(f"2026-01-01 00:00:00 INFO {usage.PREFIX} 32.25 s CPU (user + system), peak memory 512.5 MB\n")

    bench = timings.read_benchmarks(tmp_path).set_index("step")
    assert bench.loc["train", "cpu_s"] == 32.25 and bench.loc["train", "max_rss_mb"] == 512.5
    assert bench.loc["train", "sampled_cpu_s"] == 14.5 and bool(bench.loc["train", "from_log"])
    assert bench.loc["evaluate", "cpu_s"] == 2.0 and not bool(bench.loc["evaluate", "from_log"])

    text = timings.summary(params, tmp_path, cores=2)
    assert "summed CPU time 0.01 h" in text  # (32.25 + 2.0) s
    assert "from the jobs' own logs for 1 of 2 jobs" in text and "largest peak memory 512 MB" in text
    assert f"train:{name} -> evaluate:{name}" in text
    assert "critical path: 0.5 min" in text  # 29.1 + 3.0 s on the chain


def test_a_job_with_a_log_ends_with_its_usage(tmp_path):
    log = tmp_path / "make_tasks.log"
    code = cli.main(["make-tasks", "--params", str(Path(__file__).with_name("params.test.yaml")),
                     "--dataset", "cosmixture", "--out", str(tmp_path / "t.parquet"),
                     "--summary", str(tmp_path / "t.json"), "--log", str(log)])
    assert code == 0
    lines = log.read_text().splitlines()
    assert "12 training and 6 test tasks" in lines[-2] and usage.PREFIX in lines[-1]
    assert usage.read(log)[0] > 0


def test_jobs_are_summed_per_part_of_the_study(tmp_path):
    params = config.load(Path(__file__).with_name("params.test.yaml"))
    cells = config.cells(params)
    first = cells[0]
    other = next(c for c in cells if c.experiment != first.experiment)
    prof = config.profile_jobs(params)[0]
    _bench(tmp_path, "train", paths.cell_name(first.as_dict()), 40.0, 400.0, 39.0)
    _bench(tmp_path, "evaluate", paths.cell_name(first.as_dict()), 2.0, 300.0, 1.5)
    _bench(tmp_path, "train", paths.cell_name(other.as_dict()), 10.0, 350.0, 9.0)
    _bench(tmp_path, "profile", paths.PROFILE_NAME.format(**prof), 6.0, 900.0, 5.0)
    _bench(tmp_path, "make_tasks", first.dataset, 1.0, 200.0, 1.0)
    _bench(tmp_path, "train", "gone__from__the__params__seed0", 3.0, 100.0, 3.0)

    bench = timings.read_benchmarks(tmp_path)
    owner = dict(zip(bench["job"] + "/" + bench["step"], timings.parts(params, bench)))
    assert owner[f"{paths.cell_name(first.as_dict())}/evaluate"] == first.experiment
    assert owner[f"{paths.PROFILE_NAME.format(**prof)}/profile"] == f"profile {prof['profile']}"
    assert owner[f"{first.dataset}/make_tasks"] == "data"
    assert owner["gone__from__the__params__seed0/train"] == "train"

    text = timings.summary(params, tmp_path, cores=2)
    table = text.split("# per part of the study")[1].split("\n\n")[0]
    rows = {line.split()[0]: line.split() for line in table.splitlines()[3:]}
    assert rows[first.experiment][1:3] == ["2", "42.0"]  # train + evaluate of that cell
    assert rows[first.experiment][-1] == "0.35"  # 42 s over 2 cores, in minutes
    assert rows[other.experiment][1:3] == ["1", "10.0"]
