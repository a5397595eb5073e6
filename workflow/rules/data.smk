# The data jobs are short and every training job waits for them: they go before any training
# job (whose priorities, from their cost, lie below this), so the longest jobs start early.
DATA_PRIORITY = 100


rule fetch:
    """A raw collaborative-filtering source, present and verified under data/raw/<source>/.
    Files placed there by hand are used as they are; otherwise the official archive
    is downloaded (raw.download) and its checksum checked."""
    input:
        code("fetch"),
    output:
        manifest=paths.RAW_MANIFEST,
    params:
        slice=slice_of("fetch"),
    log:
        paths.LOG.format(step="fetch", name="{source}"),
    benchmark:
        paths.BENCHMARK.format(step="fetch", name="{source}")
    priority: DATA_PRIORITY
    resources:
        mem_mb=1000,
        runtime=30,
    shell:
        "{CLI} fetch --slice {params.slice:q} --source {wildcards.source} --out {output.manifest} --log {log}"


def raw_input(wildcards):
    """The raw manifest a dataset's tasks are built from (none for synthetic families)."""
    src = P["datasets"][wildcards.dataset]["source"]
    return [] if src == "synthetic" else [paths.RAW_MANIFEST.format(source=src)]


rule make_tasks:
    """Task table of one dataset: synthetic families are generated from the seed,
    collaborative-filtering users become tasks (PROTOCOL §3 rules, parameters in params.yaml)."""
    input:
        code("make-tasks"),
        raw_input,
    output:
        table=paths.TASKS,
        summary=paths.TASKS_SUMMARY,
    params:
        slice=slice_of("make-tasks", "dataset"),
    log:
        paths.LOG.format(step="make_tasks", name="{dataset}"),
    benchmark:
        paths.BENCHMARK.format(step="make_tasks", name="{dataset}")
    priority: DATA_PRIORITY
    resources:
        mem_mb=4000,
        runtime=15,
    shell:
        "{CLI} make-tasks --slice {params.slice:q} --dataset {wildcards.dataset}"
        " --out {output.table} --summary {output.summary} --log {log}"
