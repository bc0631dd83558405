# restorers stage (paper 3-4): train the conditional EDM restorer and BF-DnCNN. GPU rule.


rule restorers_train:
    input:
        f"{OUT}/dataset/manifest.json",
    output:
        checkpoint=f"{OUT}/restorers/{{method}}.pt",
        history=f"{OUT}/restorers/{{method}}-history.csv",
    log:
        f"{OUT}/logs/restorers_train/{{method}}.log",
    wildcard_constraints:
        method="|".join(TRAINED),
    priority: 10
    conda:
        CONDA_ENV
    threads: 2
    resources:
        runtime=2880,
        mem_mb=16000,
    params:
        cfg=lambda w: section("restorers", w.method),
        resample=section("dataset", "resample"),
        code=code("restorers"),
    shell:
        cli("restorers train")
        + " --method {wildcards.method} --manifest {input} --out {output.checkpoint} --history {output.history} > {log} 2>&1"


rule restorers_all:
    input:
        expand(f"{OUT}/restorers/{{m}}.pt", m=TRAINED),
    # every trained restorer of the methods list (dvc.yaml's `restorers` stage)
    localrule: True
