# restorers stage (paper 3-4): train the conditional EDM restorer, BF-DnCNN and the
# Noise2Noise U-Nets of the methods list. GPU rule.


rule restorers_train:
    input:
        unpack(train_inputs),
    output:
        checkpoint=f"{OUT}/restorers/{{method}}.pt",
        history=f"{OUT}/restorers/{{method}}-history.csv",
    log:
        f"{OUT}/logs/restorers_train/{{method}}.log",
    wildcard_constraints:
        method="|".join(TRAINED_HERE),
    priority: 10
    conda:
        CONDA_ENV
    threads: PLAN.threads()
    resources:
        runtime=2880,
        mem_mb=16000,
        gpu=lambda w: PLAN.train_gpus(w.method),  # one process per GPU (train.gpus)
    params:
        cfg=train_params,
        code=lambda w: code("restorers train", w.method),
        data=lambda w, input: " ".join(f"--{k} {v}" for k, v in input.items()),
    shell:
        cli("restorers train")
        + " --method {wildcards.method} {params.data} --out {output.checkpoint} --history {output.history} > {log} 2>&1"


rule restorers_all:
    input:
        expand(f"{OUT}/restorers/{{m}}.pt", m=TRAINED_HERE),
    # every trained restorer of the methods list (dvc.yaml's `restorers` stage)
    localrule: True
