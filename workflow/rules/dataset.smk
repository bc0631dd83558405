# dataset stage (paper 2-3): wave files (which pool images each run trains on), one shard per job (train + reconstruct +
# match; a GPU rule), and the manifest.


rule dataset_wave:
    input:
        pool=f"{OUT}/data/pool.h5",
        shards=lambda w: PLAN.shards_before_wave(int(w.wave)),
    output:
        f"{OUT}/dataset/waves/wave-{{wave}}.json",
    log:
        f"{OUT}/logs/dataset_wave/wave-{{wave}}.log",
    wildcard_constraints:
        wave=r"\d+",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        cfg=section("dataset", skip=["cost_study"]),
        per_class=section("attack", "train", "images_per_class"),
        attack=attack_kind(),
        code=code("dataset wave", part=ATTACK_MODULE),
    shell:
        cli("dataset wave")
        + " --pool {input.pool} --wave {wildcards.wave} --shards {input.shards} --out {output} > {log} 2>&1"


rule dataset_shard:
    input:
        pool=f"{OUT}/data/pool.h5",
        wave=lambda w: f"{OUT}/dataset/waves/wave-{PLAN.wave_of_job(int(w.job))}.json",
    output:
        f"{OUT}/dataset/shards/shard-{{job}}.h5",
    log:
        f"{OUT}/logs/dataset_shard/shard-{{job}}.log",
    wildcard_constraints:
        job=r"\d+",
    conda:
        CONDA_ENV
    threads: PLAN.threads()
    resources:
        runtime=720,
        mem_mb=16000,
    params:
        attack=section("attack"),
        dataset=section("dataset", skip=["cost_study"]),
        code=code("dataset shard", part=ATTACK_MODULE),
        compile=section("compile"),
    shell:
        cli("dataset shard")
        + " --pool {input.pool} --wave-file {input.wave} --job {wildcards.job} --out {output} > {log} 2>&1"


rule dataset_manifest:
    input:
        PLAN.shards(),
    output:
        f"{OUT}/dataset/manifest.json",
    log:
        f"{OUT}/logs/dataset_manifest.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        code=code("dataset manifest"),
    shell:
        cli("dataset manifest") + " --shards {input} --out {output} > {log} 2>&1"


rule dataset_coverage:
    input:
        pool=f"{OUT}/data/pool.h5",
        manifest=f"{OUT}/dataset/manifest.json",
    output:
        json=f"{OUT}/dataset/coverage.json",
        csv=f"{OUT}/dataset/coverage.csv",
    log:
        f"{OUT}/logs/dataset_coverage.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    params:
        code=code("dataset coverage"),
    shell:
        cli("dataset coverage")
        + " --pool {input.pool} --manifest {input.manifest} --out-json {output.json} --out-csv {output.csv} > {log} 2>&1"


rule dataset_cost:
    # the dataset cost study: pairs per PFLOP over epochs, iterations, candidates, images
    input:
        pool=f"{OUT}/data/pool.h5",
    output:
        PLAN.cost_study_outputs(),
    log:
        f"{OUT}/logs/dataset_cost.log",
    conda:
        CONDA_ENV
    threads: PLAN.threads()
    resources:
        runtime=720,
        mem_mb=16000,
    params:
        cfg=section("dataset", "cost_study"),
        attack=section("attack"),
        code=code("dataset cost-study", part=ATTACK_MODULE),
        out=lambda w, output: os.path.dirname(output[0]),
    shell:
        cli("dataset cost-study")
        + " --pool {input.pool} --out-dir {params.out} > {log} 2>&1"


rule dataset_cost_all:
    input:
        PLAN.cost_study_outputs(),
    # the dataset cost study (`snakemake dataset_cost_all`, also in `all` when enabled)
    localrule: True
