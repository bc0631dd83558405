# data stage: the pool (CIFAR-10 train / demo pool) and the held-out images (ciFAIR-10 test / demo).


def data_inputs(wildcards):
    src = CFG["data"]
    if src["source"] != "cifar10":
        return []
    paths = [src["cifar10"]["path"], src["cifair"]["zip"], src["cifair"]["duplicates"]]
    return [p for p in paths if p and os.path.exists(p)]


rule data_prepare:
    input:
        data_inputs,
    output:
        pool=f"{OUT}/data/pool.h5",
        heldout=f"{OUT}/data/heldout.h5",
    params:
        cfg=section("data"),
        code=code("data"),
    log:
        f"{OUT}/logs/data_prepare.log",
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    shell:
        cli("data prepare") + " --pool {output.pool} --heldout {output.heldout} > {log} 2>&1"
