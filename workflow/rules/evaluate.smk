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
    # restorer's ~1M reconstructions x 20 samples do not fit one GPU job); the same for every study
    # that restores an evaluation's plain reconstructions (cross attack, wrong release, defences):
    # `folder` is the evaluation's folder under OUT (PLAN.evaluation_folders)
    input:
        plain=lambda w: PLAN.plain_of(w.folder),
        checkpoint=restore_checkpoint,
        weights=restore_weights,
    output:
        f"{OUT}/{{folder}}/restored/{{restorer}}/part-{{shard}}.h5",
    log:
        f"{OUT}/logs/restore_shard/{{folder}}/{{restorer}}-{{shard}}.log",
    wildcard_constraints:
        folder=one_of(EVAL_FOLDERS),
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
        plain=lambda w: PLAN.plain_of(w.folder),
        parts=restore_parts,
    output:
        f"{OUT}/{{folder}}/restored/{{restorer}}.h5",
    log:
        f"{OUT}/logs/merge/{{folder}}/{{restorer}}.log",
    wildcard_constraints:
        folder=one_of(EVAL_FOLDERS),
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
        code=code("evaluate galleries", part=ATTACK_MODULE),
        attack=attack_kind(),
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
        PLAN.curve_outputs() if CURVE["enabled"] else [],
        PLAN.wrong_outputs() if CFG["evaluate"]["wrong_release"]["enabled"] else [],
        PLAN.cross_outputs() if CFG["evaluate"]["cross_attack"]["enabled"] else [],
    # every method of the methods list, matched, and the enabled studies (dvc.yaml's `evaluate` stage)
    localrule: True


# ---- learning curves (evaluate.curve): the restorer trained on part of the dataset, for
# several lengths and seeds, restored and matched like the main methods; one job each


rule evaluate_curve_manifest:
    input:
        lambda w: PLAN.curve_shards(w.data),
    output:
        f"{OUT}/evaluate/curve/{{data}}/manifest.json",
    log:
        f"{OUT}/logs/evaluate_curve/{{data}}-manifest.log",
    wildcard_constraints:
        data=one_of(list(PLAN.curve_datasets())),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        code=code("dataset manifest"),
    shell:
        cli("dataset manifest") + " --shards {input} --out {output} > {log} 2>&1"


rule evaluate_curve_train:
    input:
        manifest=f"{OUT}/evaluate/curve/{{data}}/manifest.json",
    output:
        checkpoint=f"{OUT}/evaluate/curve/{{data}}/{{steps}}-s{{seed}}/{{restorer}}.pt",
        history=f"{OUT}/evaluate/curve/{{data}}/{{steps}}-s{{seed}}/{{restorer}}-history.csv",
    log:
        f"{OUT}/logs/evaluate_curve/{{data}}-{{steps}}-s{{seed}}-{{restorer}}-train.log",
    wildcard_constraints:
        data=one_of(list(PLAN.curve_datasets())),
        restorer=one_of([CURVE["method"]]),
        steps=r"\d+",
        seed=r"\d+",
    conda:
        CONDA_ENV
    threads: PLAN.threads()
    resources:
        runtime=2880,
        mem_mb=16000,
        gpu=lambda w: PLAN.train_gpus(w.restorer),
    params:
        cfg=lambda w: repr(PLAN.train_params(w.restorer)),
        code=lambda w: code("restorers train", w.restorer),
    shell:
        cli("restorers train")
        + " --method {wildcards.restorer} --manifest {input.manifest} --steps {wildcards.steps} --seed {wildcards.seed}"
        + " --out {output.checkpoint} --history {output.history} > {log} 2>&1"


rule evaluate_curve_restore:
    input:
        plain=f"{OUT}/evaluate/plain.h5",
        checkpoint=f"{OUT}/evaluate/curve/{{data}}/{{steps}}-s{{seed}}/{{restorer}}.pt",
    output:
        f"{OUT}/evaluate/curve/{{data}}/{{steps}}-s{{seed}}/restored/{{restorer}}.h5",
    log:
        f"{OUT}/logs/evaluate_curve/{{data}}-{{steps}}-s{{seed}}-{{restorer}}-restore.log",
    wildcard_constraints:
        restorer=one_of([CURVE["method"]]),
    conda:
        CONDA_ENV
    threads: lambda w: RESTORE_THREADS.get(w.restorer, 1)
    resources:
        runtime=720,
        mem_mb=16000,
    params:
        code=lambda w: code("evaluate restore", w.restorer),
    shell:
        cli("evaluate restore")
        + " --method {wildcards.restorer} --plain {input.plain} --checkpoint {input.checkpoint} --seed {wildcards.seed}"
        + " --out {output} > {log} 2>&1"


rule evaluate_curve_match:
    input:
        target=f"{OUT}/attack/target.pt",
        plain=f"{OUT}/evaluate/plain.h5",
        galleries=f"{OUT}/evaluate/null_galleries.h5",
        restored=lambda w: f"{PLAN.curve_dir(w.data, w.steps, w.seed)}/restored/{PLAN.restorer_of(w.method)}.h5",
    output:
        f"{OUT}/evaluate/curve/{{data}}/{{steps}}-s{{seed}}/match/{{method}}.h5",
    log:
        f"{OUT}/logs/evaluate_curve/{{data}}-{{steps}}-s{{seed}}-{{method}}-match.log",
    wildcard_constraints:
        method=one_of(CURVE_METHODS),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=240,
        mem_mb=16000,
    params:
        cfg=section("evaluate", "best_match"),
        code=code("evaluate match"),
    shell:
        cli("evaluate match")
        + " --method {wildcards.method} --target {input.target} --plain {input.plain} --galleries {input.galleries}"
        + " --restored {input.restored} --out {output} > {log} 2>&1"


rule evaluate_curve:
    input:
        plain=f"{OUT}/evaluate/match/plain.h5",
        manifests=expand(
            f"{OUT}/evaluate/curve/{{d}}/manifest.json", d=list(PLAN.curve_datasets())
        ),
        matches=list(PLAN.curve_matches().values()),
    output:
        csv=PLAN.curve_outputs()[0],
        md=PLAN.curve_outputs()[1],
    log:
        f"{OUT}/logs/evaluate_curve/curve.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        cfg=section("evaluate", "good_threshold"),
        code=code("evaluate curve"),
        manifests=" ".join(
            f"{d}={OUT}/evaluate/curve/{d}/manifest.json"
            for d in PLAN.curve_datasets()
        ),
        matches=" ".join(f"{k}={v}" for k, v in PLAN.curve_matches().items()),
    shell:
        cli("evaluate curve")
        + " --plain-match {input.plain} --manifest {params.manifests} --match {params.matches}"
        + " --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"


# ---- cross-attack study (evaluate.cross_attack): the held-out images attacked with another
# attack (its own target network, runs, plain reconstructions and null galleries), restored by
# every method trained on this preset's dataset and matched; one job each, like the main chain


rule evaluate_cross_target:
    input:
        f"{OUT}/data/heldout.h5",
    output:
        f"{CROSS}/target.pt",
    log:
        f"{OUT}/logs/evaluate_cross/target.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=600,
        mem_mb=8000,
    params:
        cfg=section("evaluate", "train"),
        net=section("attack", "target"),
        code=code("attack target", part=CROSS_MODULE),
        attack=section("evaluate", "cross_attack"),
    shell:
        cli("attack target")
        + f" --attack {CROSS_ATTACK} --heldout {{input}} --out {{output}} > {{log}} 2>&1"


rule evaluate_cross_runs:
    input:
        f"{CROSS}/target.pt",
    output:
        f"{CROSS}/runs/batch-{{batch}}.h5",
    log:
        f"{OUT}/logs/evaluate_cross/runs-{{batch}}.log",
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
        code=code("attack runs", part=CROSS_MODULE),
    shell:
        cli("attack runs")
        + f" --attack {CROSS_ATTACK} --target {{input}} --batch {{wildcards.batch}} --out {{output}} > {{log}} 2>&1"


rule evaluate_cross_collect:
    input:
        target=f"{CROSS}/target.pt",
        runs=PLAN.cross_run_batches(),
    output:
        f"{CROSS}/plain.h5",
    log:
        f"{OUT}/logs/evaluate_cross/collect.log",
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


rule evaluate_cross_galleries:
    input:
        target=f"{CROSS}/target.pt",
        heldout=f"{OUT}/data/heldout.h5",
        pool=f"{OUT}/data/pool.h5",
    output:
        f"{CROSS}/null_galleries.h5",
    log:
        f"{OUT}/logs/evaluate_cross/galleries.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=8000,
    params:
        cfg=section("evaluate", "null_galleries"),
        code=code("evaluate galleries", part=CROSS_MODULE),
    shell:
        cli("evaluate galleries")
        + f" --attack {CROSS_ATTACK} --target {{input.target}} --heldout {{input.heldout}} --pool {{input.pool}}"
        + " --out {output} > {log} 2>&1"


rule evaluate_cross_restore:
    input:
        plain=f"{CROSS}/plain.h5",
        checkpoint=restore_checkpoint,
        weights=restore_weights,
    output:
        f"{CROSS}/restored/{{restorer}}.h5",
    log:
        f"{OUT}/logs/evaluate_cross/restore-{{restorer}}.log",
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


rule evaluate_cross_match:
    input:
        target=f"{CROSS}/target.pt",
        plain=f"{CROSS}/plain.h5",
        galleries=f"{CROSS}/null_galleries.h5",
        restored=lambda w: (
            []
            if PLAN.restorer_of(w.method) is None
            else [f"{CROSS}/restored/{PLAN.restorer_of(w.method)}.h5"]
        ),
    output:
        f"{CROSS}/match/{{method}}.h5",
    log:
        f"{OUT}/logs/evaluate_cross/match-{{method}}.log",
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
        + " --method {wildcards.method} --target {input.target} --plain {input.plain} --galleries {input.galleries}"
        + " {params.restored} --out {output} > {log} 2>&1"


rule evaluate_cross:
    input:
        same=expand(f"{OUT}/evaluate/match/{{m}}.h5", m=METHOD_NAMES),
        cross=expand(f"{CROSS}/match/{{m}}.h5", m=METHOD_NAMES),
    output:
        csv=PLAN.cross_outputs()[0],
        md=PLAN.cross_outputs()[1],
    log:
        f"{OUT}/logs/evaluate_cross/cross.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        cfg=section("evaluate", "good_threshold"),
        code=code("evaluate compare"),
        same=" ".join(f"{m}={OUT}/evaluate/match/{m}.h5" for m in METHOD_NAMES),
        cross=" ".join(f"{m}={CROSS}/match/{m}.h5" for m in METHOD_NAMES),
        attack=OWN_ATTACK,
        other=CROSS_ATTACK,
        note=f"Restorers trained on the dataset of {OWN_ATTACK}, evaluated on reconstructions by {OWN_ATTACK} and by {CROSS_ATTACK}.",
    shell:
        cli("evaluate compare")
        + " --same {params.same} --other {params.cross} --same-label {params.attack} --other-label {params.other}"
        + " --note {params.note:q} --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"


# ---- wrong-release control (evaluate.wrong_release): the adaptation network's reconstructions
# (a network trained on pool images, the same hyperparameter draws), restored and matched
# against the released network's training images and its null galleries


rule evaluate_wrong_restore:
    input:
        plain=f"{OUT}/adapt/plain.h5",
        checkpoint=restore_checkpoint,
        weights=restore_weights,
    output:
        f"{WRONG}/restored/{{restorer}}.h5",
    log:
        f"{OUT}/logs/evaluate_wrong/restore-{{restorer}}.log",
    wildcard_constraints:
        restorer=one_of([r for r in WRONG_RESTORERS if r in UNSHARDED]),
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


rule evaluate_wrong_match:
    input:
        target=f"{OUT}/attack/target.pt",
        plain=f"{OUT}/adapt/plain.h5",
        galleries=f"{OUT}/evaluate/null_galleries.h5",
        restored=lambda w: (
            []
            if PLAN.restorer_of(w.method) is None
            else [f"{WRONG}/restored/{PLAN.restorer_of(w.method)}.h5"]
        ),
    output:
        f"{WRONG}/match/{{method}}.h5",
    log:
        f"{OUT}/logs/evaluate_wrong/match-{{method}}.log",
    wildcard_constraints:
        method=one_of(WRONG_METHODS),
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


rule evaluate_wrong:
    input:
        same=expand(f"{OUT}/evaluate/match/{{m}}.h5", m=WRONG_METHODS),
        other=expand(f"{WRONG}/match/{{m}}.h5", m=WRONG_METHODS),
    output:
        csv=PLAN.wrong_outputs()[0],
        md=PLAN.wrong_outputs()[1],
    log:
        f"{OUT}/logs/evaluate_wrong/wrong_release.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        cfg=section("evaluate", "good_threshold"),
        code=code("evaluate compare"),
        same=" ".join(f"{m}={OUT}/evaluate/match/{m}.h5" for m in WRONG_METHODS),
        other=" ".join(f"{m}={WRONG}/match/{m}.h5" for m in WRONG_METHODS),
        note=(
            "Wrong-release control: every count is against the released network's training images; the wrong release is "
            "a network trained on other images of the same distribution (the adaptation network: pool images, the same "
            "hyperparameter draws), so its good count is hallucination by construction."
        ),
    shell:
        cli("evaluate compare")
        + " --same {params.same} --other {params.other} --same-label 'released network' --other-label 'wrong release'"
        + " --note {params.note:q} --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"
