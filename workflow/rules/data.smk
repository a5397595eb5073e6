rule make_tasks:
    """Task table of one dataset (synthetic families: generated from the seed)."""
    input:
        code("make-tasks"),
    output:
        table=paths.TASKS,
        summary=paths.TASKS_SUMMARY,
    params:
        slice=slice_of("make-tasks", "dataset"),
    log:
        paths.LOG.format(step="make_tasks", name="{dataset}"),
    benchmark:
        paths.BENCHMARK.format(step="make_tasks", name="{dataset}")
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "{CLI} make-tasks --slice {params.slice:q} --dataset {wildcards.dataset}"
        " --out {output.table} --summary {output.summary} --log {log}"
