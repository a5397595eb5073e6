rule evaluate:
    """Fine-tune every held-out task from the learned initialization; nRMSE along the way."""
    input:
        code("evaluate"),
        model=paths.MODEL,
        tasks=paths.TASKS,
    output:
        metrics=paths.EVAL,
        curve=paths.EVAL_CURVE,
    params:
        slice=slice_of("evaluate", "experiment", "dataset", "setting", "estimator", "seed"),
    log:
        paths.LOG.format(step="evaluate", name=CELL_NAME),
    benchmark:
        paths.BENCHMARK.format(step="evaluate", name=CELL_NAME)
    threads: P["runtime"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{CLI} evaluate --slice {params.slice:q} " + CELL_ARGS +
        " --model {input.model} --tasks {input.tasks} --out {output.metrics} --out-curve {output.curve} --log {log}"
