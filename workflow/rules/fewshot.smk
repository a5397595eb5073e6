# Few-shot classification on the digits (docs/fewshot.md): each estimator's CNN initialization, and
# Prototypical Networks, per training seed. The data ship with scikit-learn: no input but code.


rule fewshot:
    """Meta-train one estimator's initialization on the digits' meta-training classes and fine-tune the
    held-out tasks from it."""
    input:
        code("fewshot"),
    output:
        json=paths.FEWSHOT,
        curve=paths.FEWSHOT_CURVE,
    log:
        paths.LOG.format(step="fewshot", name=paths.FEWSHOT_NAME),
    benchmark:
        paths.BENCHMARK.format(step="fewshot", name=paths.FEWSHOT_NAME)
    conda:
        CONDA_ENV
    threads: P["runtime"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=1,
    params:
        slice=slice_of("fewshot", "estimator", "seed"),
    shell:
        "python -m adjoint_meta fewshot --slice {params.slice:q} --estimator {wildcards.estimator}"
        " --seed {wildcards.seed} --out {output.json} --out-curve {output.curve} --log {log}"


rule protonet:
    """Train Prototypical Networks on the digits' meta-training classes and classify the held-out tasks."""
    input:
        code("protonet"),
    output:
        json=paths.PROTONET,
        curve=paths.PROTONET_CURVE,
    log:
        paths.LOG.format(step="protonet", name=paths.PROTONET_NAME),
    benchmark:
        paths.BENCHMARK.format(step="protonet", name=paths.PROTONET_NAME)
    conda:
        CONDA_ENV
    threads: P["runtime"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=1,
    params:
        slice=slice_of("protonet", "seed"),
    shell:
        "python -m adjoint_meta protonet --slice {params.slice:q} --seed {wildcards.seed}"
        " --out {output.json} --out-curve {output.curve} --log {log}"
