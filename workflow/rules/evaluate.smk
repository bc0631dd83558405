# evaluate stage (paper 5.1): plain reconstructions, restoration by every method (GPU rule
# for the diffusion sampler), best match per training image.


rule evaluate_collect:
    input:
        target=f"{OUT}/attack/target.pt",
        runs=PLAN.run_batches(),
    output:
        f"{OUT}/evaluate/plain.h5",
    log:
        f"{OUT}/logs/evaluate_collect.log",
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


rule evaluate_restore:
    input:
        plain=f"{OUT}/evaluate/plain.h5",
        checkpoint=restore_checkpoint,
        weights=restore_weights,
    output:
        f"{OUT}/evaluate/restored/{{restorer}}.h5",
    log:
        f"{OUT}/logs/evaluate_restore/{{restorer}}.log",
    wildcard_constraints:
        restorer=one_of(UNSHARDED),
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


rule evaluate_restore_shard:
    # one shard of evaluate.restore_shard_runs.<restorer> evaluation runs (paper scale: the diffusion
    # restorer's ~1M reconstructions x 20 samples do not fit one GPU job)
    input:
        plain=f"{OUT}/evaluate/plain.h5",
        checkpoint=restore_checkpoint,
        weights=restore_weights,
    output:
        f"{OUT}/evaluate/restored/{{restorer}}/part-{{shard}}.h5",
    log:
        f"{OUT}/logs/evaluate_restore/{{restorer}}-{{shard}}.log",
    wildcard_constraints:
        restorer=one_of(SHARDED),
        shard=r"\d+",
    conda:
        CONDA_ENV
    threads: lambda w: RESTORE_THREADS[w.restorer]
    resources:
        runtime=720,
        mem_mb=16000,
    params:
        cfg=lambda w: repr(PLAN.train_params(w.restorer)["restorer"]),
        shards=section("evaluate", "restore_shard_runs"),
        code=lambda w: code("evaluate restore", w.restorer),
        checkpoint=lambda w, input: (
            f"--checkpoint {input.checkpoint}" if input.checkpoint else ""
        ),
    shell:
        cli("evaluate restore")
        + " --method {wildcards.restorer} --plain {input.plain} {params.checkpoint} --shard {wildcards.shard} --out {output} > {log} 2>&1"


rule evaluate_merge:
    input:
        plain=f"{OUT}/evaluate/plain.h5",
        parts=restore_parts,
    output:
        f"{OUT}/evaluate/restored/{{restorer}}.h5",
    log:
        f"{OUT}/logs/evaluate_merge/{{restorer}}.log",
    wildcard_constraints:
        restorer=one_of(SHARDED),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=120,
        mem_mb=8000,
    params:
        code=code("evaluate merge"),
    shell:
        cli("evaluate merge")
        + " --plain {input.plain} --parts {input.parts} --out {output} > {log} 2>&1"


rule evaluate_galleries:
    input:
        target=f"{OUT}/attack/target.pt",
        heldout=f"{OUT}/data/heldout.h5",
        pool=f"{OUT}/data/pool.h5",
    output:
        f"{OUT}/evaluate/null_galleries.h5",
    log:
        f"{OUT}/logs/evaluate_galleries.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=8000,
    params:
        cfg=section("evaluate", "null_galleries"),
        code=code("evaluate galleries"),
    shell:
        cli("evaluate galleries")
        + " --target {input.target} --heldout {input.heldout} --pool {input.pool} --out {output} > {log} 2>&1"


rule evaluate_match:
    input:
        target=f"{OUT}/attack/target.pt",
        plain=f"{OUT}/evaluate/plain.h5",
        galleries=f"{OUT}/evaluate/null_galleries.h5",
        restored=match_restored,
    output:
        f"{OUT}/evaluate/match/{{method}}.h5",
    log:
        f"{OUT}/logs/evaluate_match/{{method}}.log",
    wildcard_constraints:
        method="|".join(METHOD_NAMES),
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
        + " --method {wildcards.method} --target {input.target} --plain {input.plain} --galleries {input.galleries} {params.restored} --out {output} > {log} 2>&1"


rule evaluate_all:
    input:
        expand(f"{OUT}/evaluate/match/{{m}}.h5", m=METHOD_NAMES),
    # every method of the methods list, matched (dvc.yaml's `evaluate` stage)
    localrule: True
