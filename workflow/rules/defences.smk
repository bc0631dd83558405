# defences study (issue "what protects training data", item 3; `snakemake defences_all`, optional):
# per setting of params `defences`, an evaluation network trained on the same images from the same
# draw, its runs (the same hyperparameter draws), plain reconstructions, restorations and best
# matches against the main evaluation's null galleries; then the table and figure.

DEFENCES = f"{OUT}/defences"
DEFENCE_SETTINGS = PLAN.defence_settings()
DEFENCE_METHODS = PLAN.defence_methods()
DEFENCE_RESTORERS = methods.study_restorers(CFG["restorers"], DEFENCE_METHODS)


rule defences_target:
    input:
        heldout=f"{OUT}/data/heldout.h5",
    output:
        f"{DEFENCES}/{{setting}}/target.pt",
    log:
        f"{OUT}/logs/defences/{{setting}}/target.log",
    wildcard_constraints:
        setting=one_of(DEFENCE_SETTINGS),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=600,
        mem_mb=8000,
    params:
        train=section("evaluate", "train"),
        selection=repr(
            {k: CFG["evaluate"][k] for k in ("images_per_class", "selection")}
        ),
        net=section("attack", "target"),
        defence=lambda w: repr(PLAN.defence_params(w.setting)),
        code=lambda w: code(
            "defences target", part=[ATTACK_MODULE, PLAN.defence_module(w.setting)]
        ),
        attack=attack_kind(),
    shell:
        cli("defences target")
        + " --setting {wildcards.setting} --heldout {input.heldout} --out {output} > {log} 2>&1"


rule defences_runs:
    input:
        f"{DEFENCES}/{{setting}}/target.pt",
    output:
        f"{DEFENCES}/{{setting}}/runs/batch-{{batch}}.h5",
    log:
        f"{OUT}/logs/defences/{{setting}}/runs-{{batch}}.log",
    wildcard_constraints:
        setting=one_of(DEFENCE_SETTINGS),
        batch=r"\d+",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=720,
        mem_mb=16000,
    params:
        cfg=section("evaluate", skip=EVALUATE_STUDIES),
        code=code("attack runs", part=ATTACK_MODULE),
        attack=attack_kind(),
    shell:
        cli("attack runs")
        + " --target {input} --batch {wildcards.batch} --out {output} > {log} 2>&1"


rule defences_collect:
    input:
        target=f"{DEFENCES}/{{setting}}/target.pt",
        runs=lambda w: PLAN.run_batches(f"defences/{w.setting}"),
    output:
        f"{DEFENCES}/{{setting}}/plain.h5",
    log:
        f"{OUT}/logs/defences/{{setting}}/collect.log",
    wildcard_constraints:
        setting=one_of(DEFENCE_SETTINGS),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=16000,
    params:
        code=code("evaluate collect"),
    shell:
        cli("evaluate collect")
        + " --target {input.target} --runs {input.runs} --out {output} > {log} 2>&1"


rule defences_restore:
    input:
        plain=f"{DEFENCES}/{{setting}}/plain.h5",
        checkpoint=restore_checkpoint,
        weights=restore_weights,
    output:
        f"{DEFENCES}/{{setting}}/restored/{{restorer}}.h5",
    log:
        f"{OUT}/logs/defences/{{setting}}/restore-{{restorer}}.log",
    wildcard_constraints:
        setting=one_of(DEFENCE_SETTINGS),
        restorer=one_of([r for r in DEFENCE_RESTORERS if r in UNSHARDED]),
    conda:
        CONDA_ENV
    threads: lambda w: RESTORE_THREADS[w.restorer]
    resources:
        runtime=720,
        mem_mb=16000,
    params:
        cfg=lambda w: repr(PLAN.train_params(w.restorer)["restorer"]),
        code=lambda w: code("evaluate restore", w.restorer),
        checkpoint=lambda w, input: (
            f"--checkpoint {input.checkpoint}" if input.checkpoint else ""
        ),
    shell:
        cli("evaluate restore")
        + " --method {wildcards.restorer} --plain {input.plain} {params.checkpoint} --out {output} > {log} 2>&1"


rule defences_match:
    input:
        target=f"{DEFENCES}/{{setting}}/target.pt",
        plain=f"{DEFENCES}/{{setting}}/plain.h5",
        galleries=f"{OUT}/evaluate/null_galleries.h5",
        restored=lambda w: (
            []
            if PLAN.restorer_of(w.method) is None
            else [f"{DEFENCES}/{w.setting}/restored/{PLAN.restorer_of(w.method)}.h5"]
        ),
    output:
        f"{DEFENCES}/{{setting}}/match/{{method}}.h5",
    log:
        f"{OUT}/logs/defences/{{setting}}/match-{{method}}.log",
    wildcard_constraints:
        setting=one_of(DEFENCE_SETTINGS),
        method=one_of(DEFENCE_METHODS),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=240,
        mem_mb=16000,
    params:
        cfg=section("evaluate", "best_match"),
        code=code("evaluate match"),
        restored=lambda w, input: (
            f"--restored {input.restored}" if input.restored else ""
        ),
    shell:
        cli("evaluate match")
        + " --method {wildcards.method} --target {input.target} --plain {input.plain} --galleries {input.galleries}"
        + " {params.restored} --out {output} > {log} 2>&1"


rule defences_table:
    input:
        heldout=f"{OUT}/data/heldout.h5",
        base_target=f"{OUT}/attack/target.pt",
        base=expand(f"{OUT}/evaluate/match/{{m}}.h5", m=DEFENCE_METHODS),
        targets=expand(f"{DEFENCES}/{{s}}/target.pt", s=DEFENCE_SETTINGS),
        matches=expand(
            f"{DEFENCES}/{{s}}/match/{{m}}.h5", s=DEFENCE_SETTINGS, m=DEFENCE_METHODS
        ),
    output:
        csv=PLAN.defence_outputs()[0],
        md=PLAN.defence_outputs()[1],
        fig=PLAN.defence_outputs()[2],
    log:
        f"{OUT}/logs/defences/table.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        cfg=repr(
            {k: CFG["evaluate"][k] for k in ("good_threshold", "bootstrap")}
            | {"seed": CFG["seed"], "attack": CFG["attack"]}
        ),
        code=code("defences table", part=ATTACK_MODULE),
        targets=" ".join(
            [f"none={OUT}/attack/target.pt"]
            + [f"{s}={DEFENCES}/{s}/target.pt" for s in DEFENCE_SETTINGS]
        ),
        matches=" ".join(
            [f"none={OUT}/evaluate/match"]
            + [f"{s}={DEFENCES}/{s}/match" for s in DEFENCE_SETTINGS]
        ),
        methods=" ".join(DEFENCE_METHODS),
        note=(
            "Defences study: each network trained on the same images from the same draw as the undefended one (none), "
            "attacked with the same hyperparameter draws, restored and matched against the same null galleries; "
            "test accuracy on held-out images it never saw."
        ),
    shell:
        cli("defences table")
        + " --heldout {input.heldout} --target {params.targets} --matches {params.matches} --methods {params.methods}"
        + " --note {params.note:q} --out-csv {output.csv} --out-md {output.md} --out-fig {output.fig} > {log} 2>&1"


rule defences_all:
    input:
        PLAN.defence_outputs(),
    # the defences study's table and figure (dvc.yaml's `defences` stage)
    localrule: True
