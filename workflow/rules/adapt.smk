# adaptation study (paper 001): an adaptation network trained on pool images in the
# evaluation setting, its reconstruction runs and plain reconstructions, and stage 2 of the
# two-stage training (restorers adapt). On when params restorers.adapt.enabled.


rule adapt_target:
    input:
        f"{OUT}/data/pool.h5",
    output:
        f"{OUT}/adapt/target.pt",
    log:
        f"{OUT}/logs/adapt_target.log",
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
    shell:
        cli("attack target") + " --heldout {input} --out {output} > {log} 2>&1"


rule adapt_runs:
    input:
        f"{OUT}/adapt/target.pt",
    output:
        f"{OUT}/adapt/runs/batch-{{batch}}.h5",
    log:
        f"{OUT}/logs/adapt_runs/batch-{{batch}}.log",
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
    shell:
        cli("attack runs")
        + " --target {input} --batch {wildcards.batch} --out {output} > {log} 2>&1"


rule adapt_collect:
    input:
        target=f"{OUT}/adapt/target.pt",
        runs=PLAN.run_batches("adapt"),
    output:
        f"{OUT}/adapt/plain.h5",
    log:
        f"{OUT}/logs/adapt_collect.log",
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


rule restorers_adapt:
    input:
        checkpoint=lambda w: f"{OUT}/restorers/{methods.adapted_from(w.method)}.pt",
        recon=f"{OUT}/adapt/plain.h5",
        adaptation=f"{OUT}/adapt/target.pt",
        evaluation=f"{OUT}/attack/target.pt",
        pool=f"{OUT}/data/pool.h5",
    output:
        checkpoint=f"{OUT}/adapt/{{method}}.pt",
        history=f"{OUT}/adapt/{{method}}-history.csv",
    log:
        f"{OUT}/logs/restorers_adapt/{{method}}.log",
    wildcard_constraints:
        method="|".join(m.name for m in methods.ADAPTED),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=720,
        mem_mb=8000,
    params:
        cfg=section("restorers", "adapt"),
        code=lambda w: code("restorers adapt", w.method),
    shell:
        cli("restorers adapt")
        + " --method {wildcards.method} --checkpoint {input.checkpoint} --reconstructions {input.recon}"
        " --adaptation-target {input.adaptation} --evaluation-target {input.evaluation} --pool {input.pool}"
        " --out {output.checkpoint} --history {output.history} > {log} 2>&1"
