rule summarize:
    """Tables, metrics (dvc metrics) and mean curves (dvc plots) from every evaluation."""
    input:
        code("summarize"),
        evals=[paths.EVAL.format(**c) for c in CELLS],
        curves=[paths.EVAL_CURVE.format(**c) for c in CELLS],
        models=[paths.MODEL.format(**c) for c in CELLS],
        profiles=[paths.PROFILE.format(**j) for j in amc.profile_jobs(P)],
        accuracy=[paths.ACCURACY.format(**j) for j in amc.accuracy_jobs(P)],
        fewshot=[paths.FEWSHOT.format(**j) for j in amc.fewshot_jobs(P)]
        + [paths.FEWSHOT_CURVE.format(**j) for j in amc.fewshot_jobs(P)],
        protonet=[paths.PROTONET.format(**j) for j in amc.protonet_jobs(P)]
        + [paths.PROTONET_CURVE.format(**j) for j in amc.protonet_jobs(P)],
        # the predictor baselines (adjoint_meta.baselines) are fitted on the collaborative task pools
        tasks=[paths.TASKS.format(dataset=d) for d in amc.baseline_datasets(P)],
        summaries=[paths.TASKS_SUMMARY.format(dataset=d) for d in amc.baseline_datasets(P)],
    output:
        **SUMMARY_OUTPUTS,
    log:
        paths.LOG.format(step="summarize", name="summarize"),
    benchmark:
        paths.BENCHMARK.format(step="summarize", name="summarize")
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        slice=slice_of("summarize"),
    shell:
        "python -m adjoint_meta summarize --slice {params.slice:q} --log {log}"


rule report:
    """The self-contained HTML report (figures embedded) and its figures as PNG files; the verdicts on the
    paper's claims read the per-seed curves (per-task nRMSE) of every cell."""
    input:
        code("report"),
        [paths.TASKS_SUMMARY.format(dataset=d) for d in P["datasets"]],
        **SUMMARY_OUTPUTS,
        seed_curves=[paths.EVAL_CURVE.format(**c) for c in CELLS],
    output:
        html=paths.REPORT,
        figures=[
            report(paths.FIGURE.format(name=name), caption=f"../report/{kind}.rst", category=kind, subcategory=name)
            for name, kind in paths.figure_names(P).items()
        ],
    log:
        paths.LOG.format(step="report", name="report"),
    benchmark:
        paths.BENCHMARK.format(step="report", name="report")
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        slice=slice_of("report"),
    shell:
        "python -m adjoint_meta report --slice {params.slice:q} --out {output.html} --log {log}"
