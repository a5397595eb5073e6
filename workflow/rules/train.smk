rule train:
    """Meta-train one initialization: one experiment, dataset, setting, estimator and seed."""
    input:
        code("train"),
        tasks=paths.TASKS,
    output:
        model=paths.MODEL,
        curve=paths.TRAIN_LOG,
    log:
        paths.LOG.format(step="train", name=CELL_NAME),
    benchmark:
        paths.BENCHMARK.format(step="train", name=CELL_NAME)
    # longest jobs first, so that the last ones to finish are short and no core idles long
    # (below DATA_PRIORITY, so each dataset's tasks are made as soon as a core is free)
    priority: lambda wc: min(amc.train_cost(P, wc) / 1e9, DATA_PRIORITY - 1)
    conda:
        CONDA_ENV
    threads: P["runtime"]["threads"]
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1,
    params:
        slice=slice_of("train", "experiment", "dataset", "setting", "estimator", "seed"),
    shell:
        "python -m adjoint_meta train --slice {params.slice:q} --experiment {wildcards.experiment}"
        " --dataset {wildcards.dataset} --setting {wildcards.setting} --estimator {wildcards.estimator}"
        " --seed {wildcards.seed} --tasks {input.tasks} --out-model {output.model} --out-log {output.curve}"
        " --log {log}"
