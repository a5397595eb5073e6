rule evaluate:
    """Fine-tune every held-out task from the learned initialization; nRMSE along the way."""
    input:
        code("evaluate"),
        model=paths.MODEL,
        tasks=paths.TASKS,
    output:
        metrics=paths.EVAL,
        curve=paths.EVAL_CURVE,
    log:
        paths.LOG.format(step="evaluate", name=CELL_NAME),
    benchmark:
        paths.BENCHMARK.format(step="evaluate", name=CELL_NAME)
    conda:
        CONDA_ENV
    threads: P["runtime"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        slice=slice_of("evaluate", "experiment", "dataset", "setting", "estimator", "seed"),
    shell:
        "python -m adjoint_meta evaluate --slice {params.slice:q} --experiment {wildcards.experiment}"
        " --dataset {wildcards.dataset} --setting {wildcards.setting} --estimator {wildcards.estimator}"
        " --seed {wildcards.seed} --model {input.model} --tasks {input.tasks} --out {output.metrics}"
        " --out-curve {output.curve} --log {log}"
