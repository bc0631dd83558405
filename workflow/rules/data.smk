# data stage: the pool (CIFAR-10 train / demo pool) and the held-out images (ciFAIR-10 test / demo).


rule data_prepare:
    input:
        data_inputs,
    output:
        pool=f"{OUT}/data/pool.h5",
        heldout=f"{OUT}/data/heldout.h5",
    log:
        f"{OUT}/logs/data_prepare.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    params:
        cfg=section("data"),
        code=code("data prepare", part=SOURCE_MODULE),
    shell:
        cli("data prepare")
        + " --pool {output.pool} --heldout {output.heldout} > {log} 2>&1"
