# Snakemake front end of the pipeline: params.yaml -> tasks -> meta-training ->
# evaluation -> tables and figures -> reports/report.html.
#
#   snakemake --cores all                                   # the paper's protocol (params.yaml)
#   snakemake --cores all --config preset=quick             # every experiment at reduced size
#   snakemake --cores 2 --config params=tests/params.test.yaml   # the tiny test configuration
#   snakemake --cores all --config 'meta={lr: 0.01}'       # any key (dvc exp run -S meta.lr=0.01)
#
# Every rule is a thin wrapper around one `adjoint-meta` command; dvc.yaml calls
# the same commands, so the two front ends cannot drift (tests/test_frontends.py).


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/study.smk"
include: "workflow/rules/fewshot.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
