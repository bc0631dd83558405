# recon-restore: the paper's whole pipeline as one workflow.
#   snakemake --cores all                                  (preset from params.yaml)
#   snakemake --cores all --config preset=cifar-small
#   snakemake --profile workflow/profiles/slurm --config preset=paper
# Every rule calls one `recon-restore <stage> <verb>` command; the logic lives in src/recon_restore.
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/restorers.smk"
include: "workflow/rules/adapt.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/defences.smk"


rule all:
    default_target: True
    input:
        PLAN.report_files(),
        PLAN.robustness_outputs() if CFG["robustness"]["enabled"] else [],
        PLAN.cost_study_outputs() if CFG["dataset"]["cost_study"]["enabled"] else [],
        PLAN.curve_outputs() if CURVE["enabled"] else [],
        PLAN.cross_outputs() if CFG["evaluate"]["cross_attack"]["enabled"] else [],
        PLAN.wrong_outputs() if CFG["evaluate"]["wrong_release"]["enabled"] else [],
