rule fetch:
    """A raw collaborative-filtering source, present and verified under data/raw/<source>/.
    Files placed there by hand are used as they are; otherwise the official archive
    is downloaded (raw.download) and its checksum checked."""
    input:
        code("fetch"),
    output:
        manifest=paths.RAW_MANIFEST,
    log:
        paths.LOG.format(step="fetch", name="{source}"),
    benchmark:
        paths.BENCHMARK.format(step="fetch", name="{source}")
    priority: DATA_PRIORITY
    conda:
        CONDA_ENV
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        slice=slice_of("fetch"),
    shell:
        "python -m adjoint_meta fetch --slice {params.slice:q} --source {wildcards.source} --out {output.manifest} --log {log}"


rule make_tasks:
    """Task table of one dataset: synthetic families are generated from the seed,
    collaborative-filtering users become tasks (docs/protocol.md §3, parameters in params.yaml)."""
    input:
        code("make-tasks"),
        raw_input,
    output:
        table=paths.TASKS,
        summary=paths.TASKS_SUMMARY,
    log:
        paths.LOG.format(step="make_tasks", name="{dataset}"),
    benchmark:
        paths.BENCHMARK.format(step="make_tasks", name="{dataset}")
    priority: DATA_PRIORITY
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        slice=slice_of("make-tasks", "dataset"),
    shell:
        "python -m adjoint_meta make-tasks --slice {params.slice:q} --dataset {wildcards.dataset}"
        " --out {output.table} --summary {output.summary} --log {log}"
