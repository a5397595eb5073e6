# Profiling (Figures 3-4, the scaling study) and the gradient-accuracy study.


rule profile:
    """Time (medians of interleaved repeats, every estimator beside one plain-training floor
    per point) and peak memory of each estimator's meta-update at every point of a profile's sweeps."""
    input:
        code("profile"),
        tasks=lambda wc: paths.TASKS.format(dataset=profile_job(wc)["dataset"]),
        summary=lambda wc: paths.TASKS_SUMMARY.format(dataset=profile_job(wc)["dataset"]),
    output:
        csv=paths.PROFILE,
    log:
        paths.LOG.format(step="profile", name=paths.PROFILE_NAME),
    benchmark:
        paths.BENCHMARK.format(step="profile", name=paths.PROFILE_NAME)
    conda:
        CONDA_ENV
    threads: P["runtime"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    params:
        slice=slice_of("profile", "profile"),
    shell:
        "python -m adjoint_meta profile --slice {params.slice:q} --profile {wildcards.profile}"
        " --tasks {input.tasks} --out {output.csv} --log {log}"


rule accuracy:
    """Meta-gradient of each estimator against the exact one (float64 discrete adjoint)."""
    input:
        code("accuracy"),
        tasks=lambda wc: paths.TASKS.format(dataset=ACCURACY_JOBS[wc.name]["dataset"]),
        summary=lambda wc: paths.TASKS_SUMMARY.format(dataset=ACCURACY_JOBS[wc.name]["dataset"]),
    output:
        csv=paths.ACCURACY,
    log:
        paths.LOG.format(step="accuracy", name="{name}"),
    benchmark:
        paths.BENCHMARK.format(step="accuracy", name="{name}")
    conda:
        CONDA_ENV
    threads: P["runtime"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    params:
        slice=slice_of("accuracy", "name"),
    shell:
        "python -m adjoint_meta accuracy --slice {params.slice:q} --name {wildcards.name} --tasks {input.tasks}"
        " --out {output.csv} --log {log}"
