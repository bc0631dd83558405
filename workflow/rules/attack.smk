# attack stage (evaluation setting, paper 5.1): the target network trained on held-out
# images and batches of reconstruction runs with random hyperparameters. GPU rules.


rule attack_target:
    input:
        f"{OUT}/data/heldout.h5",
    output:
        f"{OUT}/attack/target.pt",
    log:
        f"{OUT}/logs/attack_target.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=600,
        mem_mb=8000,
    params:
        cfg=section("evaluate", "train"),
        net=section("attack", "target"),
        code=code("attack target", part=ATTACK_MODULE),
        attack=attack_kind(),
        compile=section("compile"),
    shell:
        cli("attack target") + " --heldout {input} --out {output} > {log} 2>&1"


rule attack_runs:
    input:
        f"{OUT}/attack/target.pt",
    output:
        f"{OUT}/attack/runs/batch-{{batch}}.h5",
    log:
        f"{OUT}/logs/attack_runs/batch-{{batch}}.log",
    wildcard_constraints:
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
        compile=section("compile"),
    shell:
        cli("attack runs")
        + " --target {input} --batch {wildcards.batch} --out {output} > {log} 2>&1"
