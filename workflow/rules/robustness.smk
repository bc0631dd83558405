# robustness stage (paper 004): adversarial attacks on every trained restorer, then the
# study's table and PSNR-ratio histograms. Target: robustness_all.


rule robustness_run:
    input:
        checkpoint=lambda w: trained_checkpoint(w.method),
        target=f"{OUT}/attack/target.pt",
        plain=f"{OUT}/evaluate/plain.h5",
        match=f"{OUT}/evaluate/match/plain.h5",
        heldout=f"{OUT}/data/heldout.h5",
        manifest=f"{OUT}/dataset/manifest.json",
    output:
        table=f"{OUT}/robustness/{{method}}.csv",
        noise=f"{OUT}/robustness/{{method}}.noise.json",
    log:
        f"{OUT}/logs/robustness_run/{{method}}.log",
    wildcard_constraints:
        method="|".join(TRAINED),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=240,
        mem_mb=8000,
    params:
        cfg=section("robustness"),
        code=lambda w: code("robustness run", w.method),
    shell:
        cli("robustness run")
        + " --method {wildcards.method} --checkpoint {input.checkpoint} --target {input.target} --plain {input.plain}"
        " --match {input.match} --heldout {input.heldout} --manifest {input.manifest} --out {output.table}"
        " --noise-out {output.noise} > {log} 2>&1"


rule robustness_report:
    input:
        tables=expand(f"{OUT}/robustness/{{m}}.csv", m=TRAINED),
        noise=expand(f"{OUT}/robustness/{{m}}.noise.json", m=TRAINED),
    output:
        PLAN.robustness_outputs(),
    log:
        f"{OUT}/logs/robustness_report.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        cfg=section("robustness"),
        code=code("robustness report"),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    shell:
        cli("robustness report")
        + " --inputs {input.tables} --noise {input.noise} --out-dir {params.out_dir} > {log} 2>&1"


rule robustness_all:
    input:
        PLAN.robustness_outputs(),
    localrule: True
